//! Braid's ports: what the handlers need from the outside world, at the level of the
//! domain.
//!
//! Each port has an embedded adapter (`braid-local`) and an AWS adapter (`braid-aws`);
//! each adapter passes the port's conformance suite in `testkit` (feature `testkit`).
//! Adapter errors map to the few meaningful cases of [`PortError`].
//!
//! # Layout
//! - [`StateStore`]: runs, steps and definitions, with guarded writes ([`Guard`]);
//! - [`WorkQueue`]: at-least-once messages with a delay;
//! - [`PayloadStore`]: bytes by key, for values over the inline limit;
//! - [`EventSink`]: lifecycle events out;
//! - [`TaskRunner`]: a step's task ([`Task`]) carried out, for an [`Invocation`];
//! - [`FunctionOutput`]: what functions wrote while they ran attempts;
//! - [`MetricsSink`]: what is counted as runs and attempts go ([`Observation`]);
//! - [`TraceSink`]: the spans of runs and attempts ([`Span`]);
//! - [`SecretStore`]: webhook keys; [`env_secrets`]: secrets from the environment, for
//!   both backends;
//! - [`Clock`] and [`Ids`]: time and ids, injected so tests control them;
//! - `limits`: the largest record a state store takes ([`MAX_RECORD_BYTES`]), the
//!   same on every backend;
//! - `testkit`: the conformance suites and fault injection.

mod clock;
pub mod env_secrets;
mod limits;
mod metrics;
mod output;
mod payloads;
mod queue;
mod secrets;
mod sink;
mod store;
mod tasks;
mod traces;

pub use clock::{Clock, Ids, ManualClock, SystemClock, UlidIds};
pub use limits::{MAX_RECORD_BYTES, Record, check_record_size};
pub use metrics::{MetricsSink, NoMetrics, Observation};
pub use output::{FunctionOutput, Invocation, NoOutput, OutputLine};
pub use payloads::PayloadStore;
pub use queue::{MAX_RECEIVES, Outgoing, Received, WorkQueue};
pub use secrets::SecretStore;
pub use sink::{EventSink, NullSink};
pub use store::{AuditFilter, Created, Finalized, Guard, RunFilter, StateStore};
pub use tasks::{Task, TaskError, TaskRunner, lambda_client_context};
pub use traces::{NoTraces, Span, SpanValue, TraceSink};

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

/// What can go wrong behind a port.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend refused the request and always will: a record over the item size
    /// limit ([`MAX_RECORD_BYTES`]), a value it cannot hold. Retrying cannot help, so
    /// whoever meets it must end what it was doing (fail the step or the run with the
    /// reason), not try again.
    #[error("refused: {0}")]
    Refused(String),
    /// The backend failed; worth retrying later. `source` is the adapter's own error,
    /// kept for whoever walks the chain; `message` already says what it says.
    #[error("backend error: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl PortError {
    /// Whether the same request can never succeed ([`PortError::Refused`]): the caller
    /// must not retry it but fail what needed it, with this error as the reason.
    pub fn is_permanent(&self) -> bool {
        matches!(self, PortError::Refused(_))
    }

    /// A backend failure caused by `e`.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        PortError::Backend {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }

    /// A backend failure caused by `e`, in the words of `context` (`context: e`).
    pub fn backend_in(
        context: impl std::fmt::Display,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        PortError::Backend {
            message: format!("{context}: {e}"),
            source: Some(Box::new(e)),
        }
    }

    /// A backend failure with no underlying error to keep.
    pub fn backend_msg(message: impl Into<String>) -> Self {
        PortError::Backend {
            message: message.into(),
            source: None,
        }
    }
}

pub type PortResult<T> = Result<T, PortError>;
