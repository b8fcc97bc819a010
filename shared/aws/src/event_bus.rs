//! Lifecycle events published on an EventBridge bus, where users route them with rules.
//! The handlers publish through a [`BusFirst`]: an event that calls for no notification
//! goes straight on the bus; one that does (and one the bus did not take) goes to the
//! notifier's queue ([`crate::events`]), and the notifier puts it on the bus once it
//! has sent its notifications.
//!
//! Every event has `source` [`SOURCE`], a `detail-type` naming what happened
//! ([`detail_type`], e.g. `Run Succeeded`) and the event's JSON as `detail`, so a rule
//! can match e.g. `{"source": ["braid"], "detail-type": ["Run Failed"]}` or
//! `{"detail": {"workflow": ["orders"]}}`.

use crate::config::{AwsConfig, MissingConfig};
use crate::events::encode;
use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use braid_engine::model::LifecycleEvent;
use braid_ports::{EventSink, PortError, PortResult};
use futures::future::join_all;
use std::sync::Arc;
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

    /// Puts one chunk of at most [`BATCH`] events; the events not put, each with why.
    async fn put_chunk<'a>(
        &self,
        chunk: &'a [LifecycleEvent],
    ) -> Vec<(&'a LifecycleEvent, String)> {
        let entries = match chunk
            .iter()
            .map(|e| self.entry(e))
            .collect::<PortResult<Vec<_>>>()
        {
            Ok(entries) => entries,
            Err(e) => return chunk.iter().map(|ev| (ev, e.to_string())).collect(),
        };
        let out = match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let why = DisplayErrorContext(e).to_string();
                return chunk.iter().map(|ev| (ev, why.clone())).collect();
            }
        };
        // Result entries are in request order; a failed one carries an error code.
        chunk
            .iter()
            .zip(out.entries())
            .filter_map(|(event, result)| {
                let code = result.error_code()?;
                Some((
                    event,
                    format!("{code}: {}", result.error_message().unwrap_or("")),
                ))
            })
            .collect()
    }

    /// Puts `events`, chunks concurrently; the events not put, each with why.
    async fn put<'a>(&self, events: &'a [LifecycleEvent]) -> Vec<(&'a LifecycleEvent, String)> {
        join_all(events.chunks(BATCH).map(|c| self.put_chunk(c)))
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    /// If any event fails, the error names each failed one and the caller publishes
    /// the whole batch again (consumers may see an event twice, as with any
    /// EventBridge delivery).
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        let failed = self.put(events).await;
        if failed.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = failed
            .iter()
            .map(|(e, why)| format!("{} of run {} ({why})", detail_type(e), e.run_id))
            .collect();
        Err(PortError::backend_msg(format!(
            "eventbridge PutEvents on bus {}: {} of {} events not put: {}",
            self.bus,
            failed.len(),
            events.len(),
            named.join("; ")
        )))
    }
}

/// The handlers' sink: an event that calls for no notification goes straight on the
/// bus, which spares it the notifier's queue (a send, a receive, a delete and an
/// invocation per event); one with notifications to send goes to the queue, and so
/// does one the bus did not take, for the notifier to put again: none is lost.
#[derive(Clone)]
pub struct BusFirst {
    bus: EventBridgeSink,
    queue: Arc<dyn EventSink>,
}

impl BusFirst {
    /// Straight onto `bus`, else onto `queue` (the notifier's, [`crate::events::QueueSink`]).
    pub fn new(bus: EventBridgeSink, queue: Arc<dyn EventSink>) -> Self {
        BusFirst { bus, queue }
    }
}

#[async_trait]
impl EventSink for BusFirst {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        let (plain, mut queued): (Vec<LifecycleEvent>, Vec<LifecycleEvent>) =
            events.iter().cloned().partition(|e| e.notices.is_empty());
        for (event, why) in self.bus.put(&plain).await {
            tracing::warn!(
                event = %detail_type(event),
                run = %event.run_id,
                bus = %self.bus.bus,
                error = %why,
                "the event bus did not take an event; the notifier will put it"
            );
            queued.push(event.clone());
        }
        if queued.is_empty() {
            return Ok(());
        }
        self.queue.publish(&queued).await
    }
}

/// The stack's event bus, configured from the environment (the notifier's sink).
pub fn event_bus_from_env(sdk: &aws_config::SdkConfig) -> Result<EventBridgeSink, MissingConfig> {
    Ok(EventBridgeSink::new(
        Client::new(sdk),
        AwsConfig::event_bus_from_env()?,
    ))
}

/// What happened, as EventBridge's `detail-type`: the subject of the event kind and,
/// for a `finished` event, the final status (`run.finished` + `timed_out` →
/// `Run Timed Out`, `step.finished` + `failed` → `Step Failed`), else the kind's verb
/// (`run.started` → `Run Started`).
pub fn detail_type(event: &LifecycleEvent) -> String {
    let kind = event.kind.as_str();
    let (subject, verb) = kind.split_once('.').unwrap_or((kind, ""));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::tests::event;
    use braid_engine::model::EventKind;

    #[test]
    fn detail_types_name_the_subject_and_what_happened() {
        assert_eq!(
            detail_type(&event(EventKind::RunStarted, "running")),
            "Run Started"
        );
        assert_eq!(
            detail_type(&event(EventKind::RunFinished, "succeeded")),
            "Run Succeeded"
        );
        assert_eq!(
            detail_type(&event(EventKind::RunFinished, "timed_out")),
            "Run Timed Out"
        );
        assert_eq!(
            detail_type(&event(EventKind::StepFinished, "failed")),
            "Step Failed"
        );
    }
}
