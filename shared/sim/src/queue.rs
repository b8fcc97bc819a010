//! The work queue decorator: a send passes the fault gate, then goes onto the
//! [`World`]'s "network", which may lose, duplicate, delay or hold back each message
//! before the driver puts it on the real SQLite queue. "Ready" sends are counted here:
//! the checks bound them per step and attempt.

use crate::world::{Lane, World};
use async_trait::async_trait;
use braid_engine::model::DispatchMsg;
use braid_ports::{Outgoing, PortResult, Received, WorkQueue};
use std::sync::Arc;
use std::time::Duration;

/// A [`WorkQueue`] whose messages travel through the world's network.
pub struct FaultyQueue {
    lane: Lane,
    inner: Arc<dyn WorkQueue>,
    world: Arc<World>,
}

impl FaultyQueue {
    pub fn new(lane: Lane, inner: Arc<dyn WorkQueue>, world: Arc<World>) -> Self {
        FaultyQueue { lane, inner, world }
    }

    /// Counts what the checks count about a message.
    fn count(&self, body: &str) {
        match self.lane {
            Lane::Ready => {
                if let Ok(m) = serde_json::from_str::<DispatchMsg>(body) {
                    let attempt = (m.run_id.to_string(), m.key.to_string(), m.attempt);
                    let (n, bound) = self.world.tally(|t| {
                        let n = t.dispatches.entry(attempt.clone()).or_default();
                        *n += 1;
                        (*n, t.send_bound(&attempt))
                    });
                    // Said at once: re-sends that never stop would keep the drive going.
                    if n == bound + 1 {
                        self.world.violation(
                            "unbounded-resends",
                            format!(
                                "{}: more than {bound} ready messages for {} attempt {}",
                                m.run_id, m.key, m.attempt
                            ),
                        );
                    }
                }
            }
            Lane::Results => {}
        }
    }
}

#[async_trait]
impl WorkQueue for FaultyQueue {
    async fn send(&self, messages: Vec<Outgoing>) -> PortResult<()> {
        let fail_after = self.world.enter("send", true).await?;
        for m in messages {
            self.count(&m.body);
            self.world.route(self.lane, m.body, m.delay);
        }
        if fail_after {
            return Err(self.world.failed_after("send"));
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> PortResult<Vec<Received>> {
        self.world.enter("receive", false).await?;
        self.inner.receive(max, visibility).await
    }

    async fn ack(&self, receipts: &[String]) -> PortResult<()> {
        self.world.enter("ack", true).await?;
        self.inner.ack(receipts).await
    }
}
