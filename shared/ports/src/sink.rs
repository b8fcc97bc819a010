use super::PortResult;
use async_trait::async_trait;
use braid_engine::model::LifecycleEvent;

/// Lifecycle events out (EventBridge; embedded: in-process subscribers).
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()>;
}

/// Drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

#[async_trait]
impl EventSink for NullSink {
    async fn publish(&self, _: &[LifecycleEvent]) -> PortResult<()> {
        Ok(())
    }
}
