//! Lifecycle events onto the notifier's queue, the hop of those that call for
//! notifications.
//!
//! The handlers publish an event that calls for a `notify` entry (and one the event bus
//! did not take) through a [`QueueSink`] onto the notifier's SQS queue, which keeps it
//! while the notifier or EventBridge is slow or failing; the others go straight on the
//! bus (`event_bus::BusFirst`, feature `stack`). The notifier reads each message back
//! with [`QueueSink::decode`], sends the notifications and puts the event on the bus.

use async_trait::async_trait;
use braid_engine::model::LifecycleEvent;
use braid_ports::{EventSink, Outgoing, PortError, PortResult, WorkQueue};
use std::sync::Arc;
use std::time::Duration;
/// Publishes lifecycle events as messages on a work queue, one event per message, as
/// the handlers do on AWS; see the [module docs](self).
#[derive(Clone)]
pub struct QueueSink {
    queue: Arc<dyn WorkQueue>,
}

/// A queue message that is not a lifecycle event.
#[derive(Debug, thiserror::Error)]
#[error("not a lifecycle event: {0}")]
pub struct NotAnEvent(#[from] serde_json::Error);

impl QueueSink {
    pub fn new(queue: Arc<dyn WorkQueue>) -> Self {
        QueueSink { queue }
    }

    /// The event in a message body that a [`QueueSink`] sent.
    pub fn decode(body: &str) -> Result<LifecycleEvent, NotAnEvent> {
        Ok(serde_json::from_str(body)?)
    }
}

#[async_trait]
impl EventSink for QueueSink {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        let messages = events
            .iter()
            .map(|e| {
                Ok(Outgoing {
                    body: encode(e)?,
                    delay: Duration::ZERO,
                })
            })
            .collect::<PortResult<Vec<_>>>()?;
        self.queue.send(messages).await
    }
}

pub(crate) fn encode(event: &LifecycleEvent) -> PortResult<String> {
    serde_json::to_string(event).map_err(PortError::backend)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use braid_engine::model::{ErrorInfo, EventKind};
    use chrono::{TimeZone, Utc};

    /// An event of `kind` with every field set, for the tests of both hops.
    pub(crate) fn event(kind: EventKind, status: &str) -> LifecycleEvent {
        LifecycleEvent {
            kind,
            run_id: "01hx".into(),
            workflow: "orders".into(),
            status: status.into(),
            step: Some("price".into()),
            error: Some(ErrorInfo::new("Flaky", "try again")),
            trigger: None,
            detail: None,
            at: Utc.with_ymd_and_hms(2026, 11, 3, 9, 30, 0).unwrap(),
            notices: Vec::new(),
        }
    }

    #[test]
    fn events_round_trip_through_a_message_body() {
        let e = event(EventKind::StepFinished, "failed");
        let body = encode(&e).unwrap();
        assert_eq!(QueueSink::decode(&body).unwrap(), e);
        let err = QueueSink::decode("{}").unwrap_err();
        assert!(
            err.to_string().starts_with("not a lifecycle event"),
            "{err}"
        );
    }
}
