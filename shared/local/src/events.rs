//! Lifecycle events in one process: the embedded backend's [`EventSink`]. Whoever
//! holds an [`EventHub`] subscribes to what the handlers publish — `braid run`'s
//! progress lines, for one. Nothing is kept: an event no one listens for is dropped.

use async_trait::async_trait;
use braid_engine::model::LifecycleEvent;
use braid_ports::{EventSink, PortResult};
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
    pub other: std::sync::Arc<dyn EventSink>,
}

#[async_trait]
impl EventSink for Tee {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        self.hub.publish(events).await?;
        self.other.publish(events).await
    }
}
