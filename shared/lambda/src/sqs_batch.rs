//! SQS batches as the Lambda event source mapping delivers them: each message is handed
//! to its handler, and the ones not handled are reported as batch item failures so SQS
//! delivers only those again (`ReportBatchItemFailures`); after the queue's
//! `maxReceiveCount` a message moves to its dead-letter queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use braid_handlers::{Delivery, Handlers};
use braid_ports::Received;
use std::future::Future;

/// Which of the stack's queues a batch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// "Ready" messages, for the step dispatcher.
    Ready,
    /// "Result" messages, for the step completer.
    Results,
}

/// Hands every message of `event` to the handler for `source`, all at once (a batch
/// of ready messages runs its tasks concurrently), and reports the failures. The
/// spans recorded are sent before the invocation ends (a frozen process sends none).
pub async fn handle(handlers: &Handlers, source: Source, event: SqsEvent) -> SqsBatchResponse {
    let response = each_message(event, |m| async move {
        match source {
            Source::Ready => handlers.deliver_ready(&m).await,
            Source::Results => handlers.deliver_result(&m).await,
        }
    })
    .await;
    handlers.ports().traces.flush().await;
    response
}

/// Runs `deliver` on every message concurrently; a message is a batch item failure
/// unless it was [`Delivery::Done`]. A malformed message fails every time, so SQS
/// moves it to the dead-letter queue where it can be looked at.
pub async fn each_message<F, Fut>(event: SqsEvent, deliver: F) -> SqsBatchResponse
where
    F: Fn(Received) -> Fut,
    Fut: Future<Output = Delivery>,
{
    let mut ids = Vec::with_capacity(event.records.len());
    let mut work = Vec::with_capacity(event.records.len());
    for m in event.records {
        ids.push(m.message_id.clone().unwrap_or_default());
        work.push(deliver(received(m)));
    }
    let outcomes = futures::future::join_all(work).await;
    let mut response = SqsBatchResponse::default();
    for (id, outcome) in ids.into_iter().zip(outcomes) {
        if outcome != Delivery::Done {
            response.add_failure(id);
        }
    }
    response
}

/// The port's view of an SQS message from a Lambda event.
pub fn received(m: SqsMessage) -> Received {
    Received {
        receive_count: m
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        receipt: m.receipt_handle.unwrap_or_default(),
        body: m.body.unwrap_or_default(),
    }
}
