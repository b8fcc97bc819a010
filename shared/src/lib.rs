//! Braid's core: the workflow language, the pure engine, the ports, the handlers and
//! the adapters.
//!
//! # Layout
//! - [`spec`]: the workflow file — parsing, validation, the checked [`spec::Workflow`].
//! - [`expr`]: `{{ ... }}` expressions (minijinja).
//!
//! The language and the engine do no I/O.

pub mod expr;
#[cfg(feature = "local")]
pub mod local;
pub mod model;
pub mod ports;
pub mod spec;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
