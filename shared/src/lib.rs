//! Braid's core: the workflow language, the pure engine, the ports, the handlers and
//! the adapters.
//!
//! # Layout
//! - [`spec`]: the workflow file — parsing, validation, the checked [`spec::Workflow`].
//! - [`expr`]: `{{ ... }}` expressions (minijinja).
//! - [`engine`]: pure decisions: what follows from records, an event and the time.
//! - [`model`]: run and step records, queue messages, lifecycle events.
//! - [`ports`]: what the handlers need from outside (state, queues, payloads, tasks).
//! - [`handlers`]: intake, dispatch, complete, tick, delivery, the HTTP API — generic over
//!   the ports.
//! - [`runners`]: task runners shared by every backend (HTTP).
//! - [`secrets`]: where `secret(name)` finds its values.
//! - [`triggers`]: matching incoming events and schedules to the workflows they start.
//! - `local` (feature `local`): the embedded backend's adapters and runtime loop.
//! - `aws` (feature `aws`): the AWS backend's adapters and the entry points the
//!   Lambda functions hand their events to.
//! - `testkit` (feature `testkit`): conformance suites and fault injection.
//!
//! The language, the expressions and the engine do no I/O: they import no AWS SDK,
//! no database, no HTTP client; the handlers reach the world only through ports.

pub mod engine;
pub mod expr;
pub mod handlers;
pub mod model;
pub mod ports;
pub mod runners;
pub mod secrets;
pub mod spec;
pub mod triggers;

#[cfg(feature = "local")]
pub mod local;

#[cfg(feature = "aws")]
pub mod aws;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
