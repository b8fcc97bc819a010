//! The HTTP API (SPEC §4) as plain requests and responses: the AWS trigger-intake
//! function converts API Gateway events to [`ApiRequest`], the local dev server its own
//! requests; both serve the same routes with the same answers.
//!
//! Routes served here: `POST /runs`, `GET /runs`, `GET /runs/{run_id}`,
//! `POST /hooks/{path}` (signed webhooks, see [`Handlers::webhook`]), and the routes
//! that end waits (see `approvals`): `POST /runs/{run_id}/steps/{step}/approve|reject`,
//! `POST /runs/{run_id}/signals/{name}`, `GET|POST /approvals/{token}`.

use super::{HandlerError, Handlers};
use braid_engine::model::{RunId, RunStatus};
use braid_ports::{PortError, RunFilter};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// An HTTP request, already authenticated by whatever serves it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiRequest {
    pub method: String,
    /// The path without query string, e.g. `/runs/01j…`.
    pub path: String,
    pub query: HashMap<String, String>,
    /// Header names as received (lookups ignore case).
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Who is calling, as whatever served the request authenticated them: the IAM
    /// user or role ARN on AWS, the OS user (or the body's `by`) in `braid dev`. It is
    /// recorded as who decided or signalled.
    pub principal: Option<String>,
    /// The API's own URL as the request reached it (`https://{domain}` on AWS); see
    /// [`Handlers::api`].
    pub base_url: Option<String>,
}

/// An HTTP response: a JSON body, or a page for a person (approval links).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    /// JSON, or for an HTML response the page as a JSON string.
    pub body: Value,
    pub content_type: &'static str,
}

/// The content type of every response but the pages of approval links.
pub const JSON: &str = "application/json";
/// The content type of the pages of approval links.
pub const HTML: &str = "text/html; charset=utf-8";

impl ApiResponse {
    pub(super) fn ok(status: u16, body: Value) -> Self {
        ApiResponse {
            status,
            body,
            content_type: JSON,
        }
    }

    /// A page for a person.
    pub(super) fn html(status: u16, page: String) -> Self {
        ApiResponse {
            status,
            body: Value::String(page),
            content_type: HTML,
        }
    }

    /// `{"error", "message"}` with its status code.
    pub fn error(status: u16, error: &str, message: impl Into<String>) -> Self {
        Self::ok(status, json!({"error": error, "message": message.into()}))
    }

    /// The body as sent: JSON text, or the page.
    pub fn text(&self) -> String {
        match (&self.body, self.content_type) {
            (Value::String(page), HTML) => page.clone(),
            (body, _) => body.to_string(),
        }
    }
}

/// The body of `POST /runs` (and of a direct start of the trigger-intake function).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    pub workflow: String,
    #[serde(default = "no_input")]
    pub input: Value,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

fn no_input() -> Value {
    json!({})
}

/// Runs listed when `limit` is not given, and the most listed at once.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

impl Handlers {
    /// Serves one API request. The first request that names the API's URL teaches it
    /// to handlers that were given none: on AWS the API cannot be told its own URL
    /// (it depends on the function serving it), yet its run views show approval links.
    pub async fn api(&self, req: &ApiRequest) -> ApiResponse {
        if let Some(url) = &req.base_url {
            self.learn_base_url(url);
        }
        let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("POST", ["runs"]) => self.api_start(req).await,
            ("GET", ["audit"]) => self.api_audit(req).await,
            ("POST", ["hooks", path]) => {
                self.webhook(path, &req.headers, req.body.as_deref().unwrap_or(""))
                    .await
            }
            ("GET", ["runs"]) => self.api_list(&req.query).await,
            ("GET", ["runs", id]) => match self.run_view(&RunId::from(*id)).await {
                Ok(view) => ApiResponse::ok(200, json!(view)),
                Err(e) => failure(e),
            },
            ("GET", ["runs", id, "logs"]) => self.api_logs(&RunId::from(*id), &req.query).await,
            ("POST", ["runs", id, "steps", step, verb @ ("approve" | "reject")]) => {
                self.api_decide(req, &RunId::from(*id), step, *verb == "approve")
                    .await
            }
            ("POST", ["runs", id, "cancel"]) => self.api_cancel(req, &RunId::from(*id)).await,
            ("POST", ["runs", id, "retry"]) => self.api_retry(req, &RunId::from(*id)).await,
            ("POST", ["runs", id, "signals", name]) => {
                self.api_signal(req, &RunId::from(*id), name).await
            }
            ("POST", ["callbacks", token]) => self.api_callback(req, token, false).await,
            ("POST", ["callbacks", token, "heartbeat"]) => {
                self.api_callback(req, token, true).await
            }
            ("GET", ["approvals", token]) => self.link_page(token).await,
            ("POST", ["approvals", token]) => self.link_decide(token).await,
            (_, ["runs"] | ["runs", _] | ["approvals", _]) => ApiResponse::error(
                405,
                "method_not_allowed",
                format!("{} is not allowed on {}", req.method, req.path),
            ),
            _ => ApiResponse::error(404, "not_found", format!("no route for {}", req.path)),
        }
    }

    async fn api_start(&self, req: &ApiRequest) -> ApiResponse {
        let start: StartBody = match serde_json::from_str(req.body.as_deref().unwrap_or("")) {
            Ok(s) => s,
            Err(e) => {
                return ApiResponse::error(400, "invalid_request", format!("request body: {e}"));
            }
        };
        let by = super::approvals::who(req, None);
        match self.start_named(start, Value::Null, &by).await {
            Ok(started) => ApiResponse::ok(
                if started.existing { 200 } else { 202 },
                json!({"run_id": started.run.id, "status": started.run.status}),
            ),
            Err(e) => failure(e),
        }
    }

    async fn api_list(&self, query: &HashMap<String, String>) -> ApiResponse {
        let status = match query.get("status").map(|s| (s, RunStatus::parse(s))) {
            None => None,
            Some((_, Some(st))) => Some(st),
            Some((s, None)) => {
                return ApiResponse::error(
                    400,
                    "invalid_request",
                    format!(
                        "status `{s}` is not one of queued, running, succeeded, failed, cancelled, timed_out"
                    ),
                );
            }
        };
        let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
            None => DEFAULT_LIMIT,
            Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(_) => {
                return ApiResponse::error(
                    400,
                    "invalid_request",
                    format!("limit must be a number from 1 to {MAX_LIMIT}"),
                );
            }
        };
        let filter = RunFilter {
            workflow: query.get("workflow").cloned(),
            status,
            limit,
        };
        match self.ports.store.list_runs(&filter).await {
            Ok(runs) => {
                let runs: Vec<Value> = runs
                    .iter()
                    .map(|r| {
                        json!({
                            "run_id": r.id, "workflow": r.workflow, "status": r.status,
                            "started_at": r.created_at, "finished_at": r.finished_at,
                        })
                    })
                    .collect();
                ApiResponse::ok(200, json!({ "runs": runs }))
            }
            Err(e) => failure(e.into()),
        }
    }
}

/// The response for a handler error.
pub(super) fn failure(e: HandlerError) -> ApiResponse {
    match e {
        HandlerError::Invalid(m) => ApiResponse::error(400, "invalid_request", m),
        HandlerError::Unauthorized(m) => ApiResponse::error(401, "unauthorized", m),
        HandlerError::Forbidden(m) => ApiResponse::error(403, "forbidden", m),
        HandlerError::Port(PortError::NotFound(m)) => ApiResponse::error(404, "not_found", m),
        HandlerError::Port(PortError::Conflict(m)) => ApiResponse::error(409, "conflict", m),
        // The store refused what the request would write, and always will.
        HandlerError::Port(PortError::Refused(m)) => ApiResponse::error(422, "refused", m),
        HandlerError::Port(PortError::Backend { message: m, .. }) => {
            tracing::error!(error = %m, "API request failed");
            ApiResponse::error(
                503,
                "unavailable",
                "the state store is unavailable; try again",
            )
        }
    }
}
