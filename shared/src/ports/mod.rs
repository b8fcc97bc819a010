//! The ports: what the handlers need from the outside world, at the level of the domain.
//!
//! Each port has an embedded adapter ([`crate::local`]) and an AWS adapter; each adapter
//! passes the port's conformance suite in [`crate::testkit`]. Adapter errors map to the
//! few meaningful cases of [`PortError`].

mod clock;
mod payloads;
mod queue;
mod secrets;
mod sink;
mod store;
mod tasks;

pub use clock::{Clock, Ids, ManualClock, SystemClock, UlidIds};
pub use payloads::PayloadStore;
pub use queue::{Outgoing, Received, WorkQueue};
pub use secrets::SecretStore;
pub use sink::{EventSink, NullSink};
pub use store::{Created, Finalized, Guard, RunFilter, StateStore};
pub use tasks::{Task, TaskError, TaskRunner};

/// What can go wrong behind a port.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend failed; worth retrying later.
    #[error("backend error: {0}")]
    Backend(String),
}

impl PortError {
    pub fn backend(e: impl std::fmt::Display) -> Self {
        PortError::Backend(e.to_string())
    }
}

pub type PortResult<T> = Result<T, PortError>;
