//! The HTTP routes that end waits: deciding an approval and sending a signal as an
//! authenticated caller, and deciding through a signed approval link (see [`links`])
//! as anyone holding it.
//!
//! [`links`]: super::links

use super::api::{ApiRequest, ApiResponse, failure};
use super::links::{self, Claims, LINK_KEY_SECRET, LinkError};
use super::waiting::{Decision, SignalRequest};
use super::{HandlerError, HandlerResult, Handlers, span};
use braid_engine::model::{RunId, RunRecord, StepRecord};
use braid_ports::PortError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration;

/// How long a link lives when its approval has no timeout.
const LINK_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Who decided through a link: whoever held it.
const BY_LINK: &str = "link";

/// The body of `POST /runs/{id}/steps/{step}/approve|reject` (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    comment: Option<String>,
    /// Who decided, where the server does not authenticate callers (`braid dev`).
    by: Option<String>,
}

/// The body of `POST /runs/{id}/signals/{name}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    #[serde(default)]
    data: Value,
    id: Option<String>,
    by: Option<String>,
}

/// The approve and reject links of one waiting approval.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Links {
    pub approve: String,
    pub reject: String,
}

impl Handlers {
    pub(super) async fn api_decide(
        &self,
        req: &ApiRequest,
        run_id: &RunId,
        step: &str,
        approve: bool,
    ) -> ApiResponse {
        let body: DecideBody = match parse_body(req) {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        let decision = Decision {
            approve,
            by: who(req, body.by),
            comment: body.comment,
        };
        match self.decide(run_id, step, &decision).await {
            Ok(rec) => self.step_answer(&rec).await,
            Err(e) => failure(e),
        }
    }

    pub(super) async fn api_signal(
        &self,
        req: &ApiRequest,
        run_id: &RunId,
        name: &str,
    ) -> ApiResponse {
        let body: SignalBody = match parse_body(req) {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        let signal = SignalRequest {
            name: name.to_string(),
            data: body.data,
            id: body.id,
            by: who(req, body.by),
        };
        match self.signal(run_id, signal).await {
            Ok(sent) => ApiResponse::ok(202, json!(sent)),
            Err(e) => failure(e),
        }
    }

    /// `GET /approvals/{token}`: a page asking to confirm, so that a link opened by a
    /// mail scanner or a chat preview decides nothing.
    pub(super) async fn link_page(&self, token: &str) -> ApiResponse {
        let (claims, rec) = match self.open_link(token).await {
            Ok(found) => found,
            Err(refused) => return refused,
        };
        let verb = if claims.approve { "Approve" } else { "Reject" };
        let message = match self.waiting_detail(&claims, &rec).await {
            Ok(detail) => detail["message"].as_str().map(str::to_string),
            Err(e) => return failure(e),
        };
        let message = message
            .map(|m| format!("<p>{}</p>", escape(&m)))
            .unwrap_or_default();
        ApiResponse::html(
            200,
            page(
                &format!("{verb} step {}?", claims.step),
                &format!(
                    "<p>Run <code>{}</code> waits for a decision on step <code>{}</code>.</p>{message}\
                     <form method=\"post\"><button type=\"submit\">{verb}</button></form>",
                    escape(&claims.run),
                    escape(&claims.step)
                ),
            ),
        )
    }

    /// `POST /approvals/{token}`: decides as the link says, once.
    pub(super) async fn link_decide(&self, token: &str) -> ApiResponse {
        let (claims, _) = match self.open_link(token).await {
            Ok(found) => found,
            Err(refused) => return refused,
        };
        let decision = Decision {
            approve: claims.approve,
            by: BY_LINK.into(),
            comment: None,
        };
        let run_id = RunId::from(claims.run.as_str());
        match self
            .decide_attempt(&run_id, &claims.step, &decision, Some(claims.attempt))
            .await
        {
            Ok(rec) => {
                let done = if claims.approve {
                    "approved"
                } else {
                    "rejected"
                };
                ApiResponse::html(
                    200,
                    page(
                        &format!("Step {} {done}", claims.step),
                        &format!(
                            "<p>Step <code>{}</code> of run <code>{}</code> is {}.</p>",
                            escape(&claims.step),
                            escape(&claims.run),
                            rec.status
                        ),
                    ),
                )
            }
            Err(e) => used_or_failure(e),
        }
    }

    /// The approve and reject links of waiting approval `rec`, when the API's base URL
    /// and the links' key are both set.
    pub(super) async fn approval_links(
        &self,
        run: &RunRecord,
        rec: &StepRecord,
    ) -> HandlerResult<Option<Links>> {
        let Some(base) = self.base_url() else {
            return Ok(None);
        };
        let Some(key) = self.link_key().await? else {
            return Ok(None);
        };
        // Until the approval's timeout; a week from when it parked without one.
        let expires = rec
            .due_at
            .or_else(|| rec.started_at.map(|t| t + span(LINK_LIFETIME)))
            .unwrap_or_else(|| self.now() + span(LINK_LIFETIME));
        let link = |approve| {
            let claims = Claims {
                run: run.id.to_string(),
                step: rec.key.to_string(),
                attempt: rec.attempt,
                approve,
                expires: expires.timestamp(),
            };
            let token = links::sign(key.as_bytes(), &claims);
            format!("{}/approvals/{token}", base.trim_end_matches('/'))
        };
        Ok(Some(Links {
            approve: link(true),
            reject: link(false),
        }))
    }

    /// The claims of `token` and the record of the attempt it names, still waiting;
    /// else the answer: 401 for a token not signed with the key, 410 for one expired
    /// or whose attempt was decided or ended.
    async fn open_link(&self, token: &str) -> Result<(Claims, StepRecord), ApiResponse> {
        let key = match self.link_key().await {
            Ok(Some(key)) => key,
            // No key: no link was ever valid here.
            Ok(None) => return Err(refused(LinkError::Forged)),
            Err(e) => return Err(failure(e)),
        };
        let claims = links::open(key.as_bytes(), token, self.now()).map_err(refused)?;
        let run_id = RunId::from(claims.run.as_str());
        match self
            .waiting_approval_attempt(&run_id, &claims.step, Some(claims.attempt))
            .await
        {
            Ok((_, _, rec)) => Ok((claims, rec)),
            Err(e) => Err(used_or_failure(e)),
        }
    }

    /// The links' key; an empty one (a stack deployed without it) is none.
    async fn link_key(&self) -> HandlerResult<Option<String>> {
        let key = self.ports.secrets.secret(LINK_KEY_SECRET).await?;
        Ok(key.filter(|k| !k.is_empty()))
    }

    /// The waiting detail of the step a link names, for its page.
    async fn waiting_detail(&self, claims: &Claims, rec: &StepRecord) -> HandlerResult<Value> {
        let run = self
            .ports
            .store
            .get_run(&RunId::from(claims.run.as_str()))
            .await?;
        let wf = self.workflow(&run).await?;
        let step = wf.step(&rec.key.step).ok_or_else(|| {
            HandlerError::Invalid(format!("no step `{}` in the workflow", rec.key.step))
        })?;
        self.waiting_for(&run, step, rec).await
    }

    /// The answer to a decision: the step as it left it.
    async fn step_answer(&self, rec: &StepRecord) -> ApiResponse {
        let output = match &rec.output {
            Some(d) => match self.load(d).await {
                Ok(v) => v,
                Err(e) => return failure(e),
            },
            None => Value::Null,
        };
        ApiResponse::ok(
            200,
            json!({
                "run_id": rec.run_id, "step": rec.key.to_string(), "status": rec.status,
                "output": output, "error": rec.error,
            }),
        )
    }
}

/// The body of `req` as `T`; none at all is `T`'s default.
pub(super) fn parse_body<T: DeserializeOwned + Default>(
    req: &ApiRequest,
) -> Result<T, ApiResponse> {
    match req.body.as_deref().map(str::trim) {
        None | Some("") => Ok(T::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ApiResponse::error(400, "invalid_request", format!("request body: {e}"))),
    }
}

/// Who acted: the authenticated caller when the server knows one, else who the body
/// says, else `anonymous`.
pub(super) fn who(req: &ApiRequest, by: Option<String>) -> String {
    req.principal
        .clone()
        .or(by)
        .unwrap_or_else(|| "anonymous".into())
}

fn refused(e: LinkError) -> ApiResponse {
    match e {
        LinkError::Forged => ApiResponse::error(401, "unauthorized", e.to_string()),
        LinkError::Expired(_) => ApiResponse::error(410, "gone", e.to_string()),
    }
}

/// A link whose attempt is no longer waiting was used (or outlived its wait): 410.
fn used_or_failure(e: HandlerError) -> ApiResponse {
    match e {
        HandlerError::Port(PortError::Conflict(m)) => {
            ApiResponse::error(410, "gone", format!("this approval link was used up: {m}"))
        }
        other => failure(other),
    }
}

/// A minimal page.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body><h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    )
}

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
