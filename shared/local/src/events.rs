//! Lifecycle events in one process: the embedded backend's [`EventSink`]s. Whoever
//! holds an [`EventHub`] subscribes to what the handlers publish — `braid run`'s
//! progress lines, for one; nothing is kept there. The events that call for
//! notifications are also queued ([`NoticeQueue`]), so that the runtime sends them
//! even across a crash.

use async_trait::async_trait;
use braid_engine::model::LifecycleEvent;
use braid_ports::{EventSink, Outgoing, PortError, PortResult, WorkQueue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind by before it misses some.
const BACKLOG: usize = 16 * 1024;

/// Publishes lifecycle events to the subscribers of this process.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<LifecycleEvent>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl EventHub {
    /// The events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LifecycleEvent> {
        self.tx.subscribe()
    }
}

#[async_trait]
impl EventSink for EventHub {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        for e in events {
            // An error only means that no one subscribes.
            let _ = self.tx.send(e.clone());
        }
        Ok(())
    }
}

/// Publishes to a hub and to another sink (the stack's, on the emulated backend).
pub struct Tee {
    pub hub: EventHub,
    pub other: Arc<dyn EventSink>,
}

#[async_trait]
impl EventSink for Tee {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        self.hub.publish(events).await?;
        self.other.publish(events).await
    }
}

/// Queues the events that call for notifications (see
/// [`braid_engine::notify::wanted`]), for the runtime to send; drops the others.
pub struct NoticeQueue(pub Arc<dyn WorkQueue>);

#[async_trait]
impl EventSink for NoticeQueue {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        let messages = events
            .iter()
            .filter(|e| !e.notices.is_empty())
            .map(|e| {
                serde_json::to_string(e)
                    .map(|body| Outgoing {
                        body,
                        delay: Duration::ZERO,
                    })
                    .map_err(PortError::backend)
            })
            .collect::<PortResult<Vec<_>>>()?;
        if messages.is_empty() {
            return Ok(());
        }
        self.0.send(messages).await
    }
}
