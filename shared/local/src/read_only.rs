//! [`NoQueue`]: the work queues of a process that only reads the state (`braid runs`,
//! `show`, `workflows`). Reading needs no queue, and opening the queue files would
//! create them, which a read-only state folder does not allow.

use async_trait::async_trait;
use braid_ports::{Outgoing, PortError, PortResult, Received, WorkQueue};
use std::time::Duration;

/// A work queue that refuses every call: nothing reading the state sends or receives.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoQueue;

impl NoQueue {
    fn refused<T>() -> PortResult<T> {
        Err(PortError::Refused(
            "the local state is opened for reading only".into(),
        ))
    }
}

#[async_trait]
impl WorkQueue for NoQueue {
    async fn send(&self, _: Vec<Outgoing>) -> PortResult<()> {
        Self::refused()
    }

    async fn receive(&self, _: usize, _: Duration) -> PortResult<Vec<Received>> {
        Self::refused()
    }

    async fn ack(&self, _: &[String]) -> PortResult<()> {
        Self::refused()
    }
}
