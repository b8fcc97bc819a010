//! The trigger-intake function's events, told apart by shape:
//!
//! | event | from | answer |
//! |---|---|---|
//! | API Gateway HTTP API request (`requestContext`) | `POST /runs`, `GET /runs…`, `POST /hooks/{path}` | the HTTP response |
//! | S3 event notification (`Records[].eventSource = aws:s3`) | a user's bucket notifying the function | the starts |
//! | SQS batch (`Records[].eventSource = aws:sqs`) | a user's queue, through an event source mapping | batch item failures |
//! | EventBridge event (`detail-type`) | rules on the stack's bus and on S3 Object Created | the starts |
//! | `{"workflow", "input", "idempotency_key"}` | a direct invoke (`aws lambda invoke`, another service) | the run |
//!
//! An event that can never start anything (malformed, or bad input for its workflow) is
//! answered with the reason and logged, not failed: redelivering it would not help.
//! Store or queue failures fail the invocation (or, for SQS, the message) so the source
//! delivers again — every start is keyed by its event, so nothing starts twice.

use crate::http_api;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use braid_handlers::{HandlerError, Handlers, StartBody, TriggeredRun};
use braid_lang::triggers::incoming::{Incoming, S3Object, SqsMessage};
use serde_json::{Value, json};

/// What the trigger-intake function was invoked with.
#[derive(Debug, Clone, PartialEq)]
pub enum IntakeEvent {
    Http(Box<ApiGatewayV2httpRequest>),
    /// The records of an S3 event notification.
    S3Notification(Vec<Value>),
    /// A batch from a user's queue.
    Sqs(Box<SqsEvent>),
    /// An EventBridge event (S3 Object Created, or anything on the stack's bus).
    EventBridge(Value),
    Start(StartBody),
}

impl IntakeEvent {
    /// Tells the shapes apart; anything unrecognised must be a start, and a start with
    /// unknown or missing fields is refused with the reason.
    pub fn parse(event: Value) -> Result<Self, HandlerError> {
        if event.get("requestContext").is_some() {
            return serde_json::from_value(event)
                .map(|e| IntakeEvent::Http(Box::new(e)))
                .map_err(|e| HandlerError::Invalid(format!("not an HTTP API request: {e}")));
        }
        if let Some(records) = event.get("Records").and_then(Value::as_array) {
            let source = records
                .first()
                .and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")))
                .and_then(Value::as_str)
                .unwrap_or_default();
            return match source {
                "aws:s3" => Ok(IntakeEvent::S3Notification(records.clone())),
                "aws:sqs" => serde_json::from_value(event)
                    .map(|e| IntakeEvent::Sqs(Box::new(e)))
                    .map_err(|e| HandlerError::Invalid(format!("not an SQS batch: {e}"))),
                other => Err(HandlerError::Invalid(format!(
                    "records from `{other}` cannot start runs: intake takes S3 notifications and SQS batches"
                ))),
            };
        }
        if event.get("detail-type").is_some() && event.get("source").is_some() {
            return Ok(IntakeEvent::EventBridge(event));
        }
        serde_json::from_value(event)
            .map(IntakeEvent::Start)
            .map_err(|e| HandlerError::Invalid(format!("invalid start: {e}")))
    }
}

/// Handles one invocation (see the module doc for the answers), and sends the spans
/// it recorded (a run that ran to its end at once, a run cancelled).
pub async fn handle(handlers: &Handlers, event: Value) -> Result<Value, HandlerError> {
    let answer = answer(handlers, event).await;
    handlers.ports().traces.flush().await;
    answer
}

async fn answer(handlers: &Handlers, event: Value) -> Result<Value, HandlerError> {
    match IntakeEvent::parse(event)? {
        IntakeEvent::Start(start) => {
            let trigger = json!({"kind": "direct"});
            // A direct invoke says nothing of who invoked: CloudTrail does.
            let started = handlers
                .start_named(start, trigger, "lambda:Invoke")
                .await?;
            Ok(json!({
                "run_id": started.run.id,
                "status": started.run.status,
                "existing": started.existing,
            }))
        }
        IntakeEvent::Http(req) => {
            let answer = match http_api::request(&req) {
                Ok(r) => handlers.api(&r).await,
                Err(refused) => refused,
            };
            Ok(serde_json::to_value(http_api::response(answer)).expect("responses serialize"))
        }
        IntakeEvent::EventBridge(event) => {
            let runs = handlers
                .start_triggered(&Incoming::from_eventbridge(event))
                .await?;
            Ok(report(runs, Vec::new()))
        }
        IntakeEvent::S3Notification(records) => {
            let mut runs = Vec::new();
            let mut rejected = Vec::new();
            for (i, record) in records.iter().enumerate() {
                match S3Object::from_notification(record) {
                    Ok(Some(obj)) => {
                        runs.extend(handlers.start_triggered(&Incoming::S3(obj)).await?)
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        tracing::error!(record = i, %reason, "S3 notification record refused");
                        rejected.push(json!({"record": i, "reason": reason}));
                    }
                }
            }
            Ok(report(runs, rejected))
        }
        IntakeEvent::Sqs(batch) => {
            let mut response = SqsBatchResponse::default();
            for m in batch.records {
                let id = m.message_id.clone().unwrap_or_default();
                let msg = SqsMessage {
                    queue: m.event_source_arn.clone().unwrap_or_default(),
                    message_id: id.clone(),
                    body: m.body.clone().unwrap_or_default(),
                    attributes: serde_json::to_value(&m.message_attributes).unwrap_or(Value::Null),
                };
                let runs = match handlers.start_triggered(&Incoming::Sqs(msg)).await {
                    Ok(runs) => runs,
                    Err(e) => {
                        tracing::warn!(message = %id, error = %e, "message not handled; SQS delivers it again");
                        response.add_failure(id);
                        continue;
                    }
                };
                for r in runs {
                    if let Err(reason) = r.outcome {
                        refused(&r.workflow, &reason);
                    }
                }
            }
            Ok(serde_json::to_value(response).expect("responses serialize"))
        }
    }
}

/// The answer for an event that may start several workflows; refusals are logged.
fn report(runs: Vec<TriggeredRun>, mut rejected: Vec<Value>) -> Value {
    let mut started = Vec::new();
    for r in runs {
        match r.outcome {
            Ok(s) => started.push(json!({
                "workflow": r.workflow,
                "run_id": s.run.id,
                "existing": s.existing,
            })),
            Err(reason) => {
                refused(&r.workflow, &reason);
                rejected.push(json!({"workflow": r.workflow, "reason": reason}));
            }
        }
    }
    json!({"started": started, "rejected": rejected})
}

/// Logs an event that matched `workflow` but could not start it.
fn refused(workflow: &str, reason: &str) {
    tracing::error!(%workflow, %reason, "trigger refused: the event gives no valid input");
}
