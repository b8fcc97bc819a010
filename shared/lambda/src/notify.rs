//! The notifier function's batches: lifecycle events from the event queue, forwarded
//! to the event sink (EventBridge) in one publish per batch, then the notifications
//! each calls for sent (see `braid_handlers` `notify`). A notification given up on goes
//! to the dead-letter queue with the reason; sent back to the event queue from there
//! (a redrive), it is tried again alone.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use braid_handlers::{Handlers, NotifierMessage};
use braid_ports::{EventSink, Outgoing, WorkQueue};
use std::time::Duration;

/// Forwards every event of the batch, then sends their notifications. A failed
/// forward fails the batch's events (SQS delivers them again; subscribers must expect
/// an event more than once, as with any EventBridge target); a message that is not
/// the notifier's fails alone, towards the DLQ; a notification given up on is put in
/// `dead`, its message handled.
pub async fn handle(
    handlers: &Handlers,
    sink: &dyn EventSink,
    dead: &dyn WorkQueue,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    // (message id, message) of each message taken.
    let mut taken = Vec::new();
    for m in event.records {
        let id = m.message_id.unwrap_or_default();
        match NotifierMessage::decode(m.body.as_deref().unwrap_or_default()) {
            Ok(msg) => taken.push((id, msg)),
            Err(e) => {
                tracing::error!(error = %e, message = %id, "not a notifier message; set aside");
                response.add_failure(id);
            }
        }
    }
    let forwarded: Vec<_> = taken
        .iter()
        .filter_map(|(_, msg)| match msg {
            NotifierMessage::Event(e) => Some(braid_engine::model::LifecycleEvent {
                notices: Vec::new(),
                ..e.clone()
            }),
            NotifierMessage::Redriven(_) => None,
        })
        .collect();
    if !forwarded.is_empty()
        && let Err(e) = sink.publish(&forwarded).await
    {
        tracing::warn!(error = %e, "publishing failed; the batch will be delivered again");
        taken.retain(|(id, msg)| {
            let event = matches!(msg, NotifierMessage::Event(_));
            if event {
                response.add_failure(id.clone());
            }
            !event
        });
    }
    let sends = taken.iter().map(|(id, msg)| async move {
        let ok = match handlers.notify(msg).await {
            Ok(given_up) => put_aside(dead, &given_up).await,
            Err(e) => {
                tracing::warn!(error = %e, "sending notifications failed; the message will be delivered again");
                false
            }
        };
        (id, ok)
    });
    for (id, ok) in futures::future::join_all(sends).await {
        if !ok {
            response.add_failure(id.clone());
        }
    }
    response
}

/// Puts the notifications given up on in the dead-letter queue; whether it could.
async fn put_aside(dead: &dyn WorkQueue, given_up: &[braid_handlers::DeadNotice]) -> bool {
    if given_up.is_empty() {
        return true;
    }
    let messages: Vec<Outgoing> = given_up
        .iter()
        .filter_map(|d| serde_json::to_string(d).ok())
        .map(|body| Outgoing {
            body,
            delay: Duration::ZERO,
        })
        .collect();
    match dead.send(messages).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "cannot put notifications given up on in the dead-letter queue; the message will be delivered again");
            false
        }
    }
}
