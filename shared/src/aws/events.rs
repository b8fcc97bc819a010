//! Lifecycle events out, in two hops.
//!
//! The handlers publish through a [`QueueSink`] onto the notifier's SQS queue: a send to
//! SQS is what they already do for their own work, and the queue keeps the events when
//! the notifier or EventBridge is slow or failing. The notifier reads each message back
//! with [`QueueSink::decode`] and forwards the events through an [`EventBridgeSink`],
//! where users route them with rules.
//!
//! On EventBridge every event has `source` [`SOURCE`], a `detail-type` naming what
//! happened ([`detail_type`], e.g. `Run Succeeded`) and the event's JSON as `detail`, so
//! a rule can match e.g. `{"source": ["braid"], "detail-type": ["Run Failed"]}` or
//! `{"detail": {"workflow": ["orders"]}}`.

use crate::model::LifecycleEvent;
use crate::ports::{EventSink, Outgoing, PortError, PortResult, WorkQueue};
use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use futures::future::join_all;
use std::sync::Arc;
use std::time::Duration;

/// The `source` of every event Braid puts on EventBridge.
pub const SOURCE: &str = "braid";
/// The most entries EventBridge takes per PutEvents call.
const BATCH: usize = 10;

/// Publishes lifecycle events on an EventBridge bus; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct EventBridgeSink {
    client: Client,
    bus: String,
}

impl EventBridgeSink {
    /// A sink onto `bus` (a bus name or ARN; `default` for the account's default bus).
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgeSink {
            client,
            bus: bus.into(),
        }
    }

    fn entry(&self, event: &LifecycleEvent) -> PortResult<PutEventsRequestEntry> {
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(detail_type(event))
            .detail(encode(event)?)
            .time(DateTime::from_millis(event.at.timestamp_millis()))
            .build())
    }

    /// Puts one chunk of at most [`BATCH`] events; what failed, if anything.
    async fn put_chunk(&self, chunk: &[LifecycleEvent]) -> PortResult<Vec<String>> {
        let entries = chunk
            .iter()
            .map(|e| self.entry(e))
            .collect::<PortResult<Vec<_>>>()?;
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                PortError::Backend(format!(
                    "eventbridge PutEvents on bus {}: {}",
                    self.bus,
                    DisplayErrorContext(e)
                ))
            })?;
        // Result entries are in request order; a failed one carries an error code.
        Ok(chunk
            .iter()
            .zip(out.entries())
            .filter_map(|(event, result)| {
                let code = result.error_code()?;
                Some(format!(
                    "{} of run {} ({code}: {})",
                    detail_type(event),
                    event.run_id,
                    result.error_message().unwrap_or("")
                ))
            })
            .collect())
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    /// Chunks go out concurrently; if any event fails, the error names each failed one
    /// and the caller publishes the whole batch again (consumers may see an event twice,
    /// as with any EventBridge delivery).
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        let mut failed = Vec::new();
        for result in join_all(events.chunks(BATCH).map(|c| self.put_chunk(c))).await {
            failed.extend(result?);
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(PortError::Backend(format!(
                "eventbridge PutEvents on bus {}: {} of {} events not put: {}",
                self.bus,
                failed.len(),
                events.len(),
                failed.join("; ")
            )))
        }
    }
}

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

/// What happened, as EventBridge's `detail-type`: the subject of the event kind and,
/// for a `finished` event, the final status (`run.finished` + `timed_out` →
/// `Run Timed Out`, `step.finished` + `failed` → `Step Failed`), else the kind's verb
/// (`run.started` → `Run Started`).
pub fn detail_type(event: &LifecycleEvent) -> String {
    let (subject, verb) = event.kind.split_once('.').unwrap_or((&event.kind, ""));
    let what = if verb == "finished" || verb.is_empty() {
        event.status.as_str()
    } else {
        verb
    };
    [subject, what]
        .iter()
        .flat_map(|part| part.split(['_', '.', ' ']))
        .filter(|word| !word.is_empty())
        .map(capitalised)
        .collect::<Vec<_>>()
        .join(" ")
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn encode(event: &LifecycleEvent) -> PortResult<String> {
    serde_json::to_string(event).map_err(PortError::backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ErrorInfo;
    use chrono::{TimeZone, Utc};

    fn event(kind: &str, status: &str) -> LifecycleEvent {
        LifecycleEvent {
            kind: kind.into(),
            run_id: "01hx".into(),
            workflow: "orders".into(),
            status: status.into(),
            step: Some("price".into()),
            error: Some(ErrorInfo::new("Flaky", "try again")),
            at: Utc.with_ymd_and_hms(2026, 11, 3, 9, 30, 0).unwrap(),
        }
    }

    #[test]
    fn detail_types_name_the_subject_and_what_happened() {
        assert_eq!(detail_type(&event("run.started", "running")), "Run Started");
        assert_eq!(
            detail_type(&event("run.finished", "succeeded")),
            "Run Succeeded"
        );
        assert_eq!(
            detail_type(&event("run.finished", "timed_out")),
            "Run Timed Out"
        );
        assert_eq!(
            detail_type(&event("step.finished", "failed")),
            "Step Failed"
        );
    }

    #[test]
    fn events_round_trip_through_a_message_body() {
        let e = event("step.finished", "failed");
        let body = encode(&e).unwrap();
        assert_eq!(QueueSink::decode(&body).unwrap(), e);
        let err = QueueSink::decode("{}").unwrap_err();
        assert!(
            err.to_string().starts_with("not a lifecycle event"),
            "{err}"
        );
    }
}
