//! Braid's core: the workflow language, the pure engine, the ports, the handlers and
//! the adapters.
//!
//! # Layout
//! - [`spec`]: the workflow file — parsing, validation, the checked [`spec::Workflow`].
//! - [`expr`]: `{{ ... }}` expressions (minijinja).
//! - [`runners`]: task runners shared by every backend (HTTP).
//! - `local` (feature `local`): the embedded backend's adapters, e.g. `local::lambda`.
//!
//! The language and the engine do no I/O.

pub mod expr;
pub mod model;
pub mod ports;
pub mod runners;
pub mod spec;

#[cfg(feature = "local")]
pub mod local;
