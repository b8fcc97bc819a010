//! The notifier function's batches: lifecycle events from the event queue, forwarded to
//! the event sink (EventBridge) in one publish per batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use braid_engine::model::LifecycleEvent;
use braid_ports::EventSink;

/// Publishes every event of the batch. A failed publish fails the whole batch (SQS
/// delivers it again; subscribers must expect an event more than once, as with any
/// EventBridge target); a message that is not an event fails alone, towards the DLQ.
pub async fn handle(sink: &dyn EventSink, event: SqsEvent) -> SqsBatchResponse {
    let mut events = Vec::new();
    let mut response = SqsBatchResponse::default();
    let mut parsed_ids = Vec::new();
    for m in &event.records {
        let id = m.message_id.clone().unwrap_or_default();
        match serde_json::from_str::<LifecycleEvent>(m.body.as_deref().unwrap_or_default()) {
            Ok(e) => {
                events.push(e);
                parsed_ids.push(id);
            }
            Err(e) => {
                tracing::error!(error = %e, message = %id, "not a lifecycle event; set aside");
                response.add_failure(id);
            }
        }
    }
    if events.is_empty() {
        return response;
    }
    if let Err(e) = sink.publish(&events).await {
        tracing::warn!(error = %e, "publishing failed; the batch will be delivered again");
        for id in parsed_ids {
            response.add_failure(id);
        }
    }
    response
}
