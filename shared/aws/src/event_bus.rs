//! Lifecycle events published on an EventBridge bus, where users route them with rules
//! (see [`crate::events`] for the first hop, the notifier's queue).
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
                PortError::backend_msg(format!(
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
            Err(PortError::backend_msg(format!(
                "eventbridge PutEvents on bus {}: {} of {} events not put: {}",
                self.bus,
                failed.len(),
                events.len(),
                failed.join("; ")
            )))
        }
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
