//! Fault injection around a real work queue, for crash-safety tests: lose chosen sends
//! (as if the process died between its state write and its send), or deliver every
//! message twice (as SQS may).

use crate::{Outgoing, PortResult, Received, WorkQueue};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Decides from a message's number and body whether to lose it.
type LoseRule = Box<dyn Fn(usize, &str) -> bool + Send + Sync>;

/// Wraps a queue; numbers every message sent through it from 0.
pub struct FaultyQueue {
    inner: Arc<dyn WorkQueue>,
    sent: AtomicUsize,
    lose: LoseRule,
    duplicate: bool,
    /// Extra random delay per message, so deliveries arrive in a shuffled order.
    jitter: std::time::Duration,
}

impl FaultyQueue {
    /// Loses every message for which `lose(number, body)` is true.
    pub fn losing(
        inner: Arc<dyn WorkQueue>,
        lose: impl Fn(usize, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        FaultyQueue {
            inner,
            sent: AtomicUsize::new(0),
            lose: Box::new(lose),
            duplicate: false,
            jitter: std::time::Duration::ZERO,
        }
    }

    /// Sends every message twice.
    pub fn duplicating(inner: Arc<dyn WorkQueue>) -> Self {
        FaultyQueue {
            inner,
            sent: AtomicUsize::new(0),
            lose: Box::new(|_, _| false),
            duplicate: true,
            jitter: std::time::Duration::ZERO,
        }
    }

    /// Delays every message by a random time up to `jitter`, shuffling delivery order.
    pub fn reordering(inner: Arc<dyn WorkQueue>, jitter: std::time::Duration) -> Self {
        FaultyQueue {
            inner,
            sent: AtomicUsize::new(0),
            lose: Box::new(|_, _| false),
            duplicate: false,
            jitter,
        }
    }

    /// Messages sent through this wrapper so far (lost ones included).
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl WorkQueue for FaultyQueue {
    async fn send(&self, messages: Vec<Outgoing>) -> PortResult<()> {
        let mut kept = Vec::with_capacity(messages.len() * 2);
        for m in messages {
            let n = self.sent.fetch_add(1, Ordering::SeqCst);
            if (self.lose)(n, &m.body) {
                continue;
            }
            if self.duplicate {
                kept.push(m.clone());
            }
            let extra = self.jitter.mul_f64(fastrand::f64());
            kept.push(Outgoing {
                delay: m.delay + extra,
                ..m
            });
        }
        if kept.is_empty() {
            return Ok(());
        }
        self.inner.send(kept).await
    }

    async fn receive(
        &self,
        max: usize,
        visibility: std::time::Duration,
    ) -> PortResult<Vec<Received>> {
        self.inner.receive(max, visibility).await
    }

    async fn ack(&self, receipts: &[String]) -> PortResult<()> {
        self.inner.ack(receipts).await
    }
}
