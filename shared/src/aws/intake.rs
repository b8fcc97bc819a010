//! The trigger-intake function's events: a direct invoke with a start
//! (`{"workflow", "input", "idempotency_key"}`, as `aws lambda invoke` or another
//! service sends it) or an HTTP API request.

use super::http_api;
use crate::handlers::{HandlerError, Handlers, StartBody};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use serde_json::{Value, json};

/// What the trigger-intake function was invoked with.
#[derive(Debug, Clone, PartialEq)]
pub enum IntakeEvent {
    Http(Box<ApiGatewayV2httpRequest>),
    Start(StartBody),
}

impl IntakeEvent {
    /// Tells the two apart by API Gateway's `requestContext`; anything else must be a
    /// start, and a start with unknown or missing fields is refused with the reason.
    pub fn parse(event: Value) -> Result<Self, HandlerError> {
        if event.get("requestContext").is_some() {
            return serde_json::from_value(event)
                .map(|e| IntakeEvent::Http(Box::new(e)))
                .map_err(|e| HandlerError::Invalid(format!("not an HTTP API request: {e}")));
        }
        serde_json::from_value(event)
            .map(IntakeEvent::Start)
            .map_err(|e| HandlerError::Invalid(format!("invalid start: {e}")))
    }
}

/// Handles one invocation. A direct start answers `{"run_id", "status", "existing"}` or
/// fails the invocation with the reason; an HTTP request always gets an HTTP response.
pub async fn handle(handlers: &Handlers, event: Value) -> Result<Value, HandlerError> {
    match IntakeEvent::parse(event)? {
        IntakeEvent::Start(start) => {
            let trigger = json!({"type": "direct"});
            let started = handlers.start_named(start, trigger).await?;
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
    }
}
