//! Callback tokens: a `lambda` or `http` step with `callback:` starts its task with a
//! token and a URL, and its attempt ends when the task (or whatever it hands the
//! token to) reports back with `POST /callbacks/{token}` — an output, or an error —
//! or when a heartbeat goes missing, or at the callback's timeout. This is how work
//! longer than a function can run is waited on.
//!
//! A token is sealed claims (run, step key, attempt) under the signing key (see
//! [`links`]): unguessable, bound to one attempt, and useless once that attempt has
//! ended, since only a waiting attempt with that number takes it. A report that comes
//! before the task's call has returned (the step still `running`) is kept for the
//! attempt and taken as it parks.
//!
//! [`links`]: super::links

use super::api::{ApiRequest, ApiResponse, failure};
use super::eager::FollowUps;
use super::links::{self, LINK_KEY_SECRET};
use super::transition::Attempt;
use super::waiting::{deadline, parse_key};
use super::{HandlerError, HandlerResult, Handlers};
use braid_engine::lifecycle::{Event, Waiter};
use braid_engine::model::{
    Data, ErrorInfo, Outcome, RunId, RunRecord, Signal, StepRecord, StepStatus,
};
use braid_lang::{Step, Workflow};
use braid_ports::PortError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Signed into every callback token, so a link's token never passes as one.
const LABEL: &[u8] = b"braid-callback.v1.";

/// What a callback token names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    run: String,
    step: String,
    attempt: u32,
}

/// The body of `POST /callbacks/{token}`: `{"output"}` or `{"error", "message"}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl CallbackReport {
    fn outcome_value(&self) -> Result<Result<Value, ErrorInfo>, String> {
        match (&self.output, &self.error) {
            (Some(v), None) => Ok(Ok(v.clone())),
            (None, Some(e)) => Ok(Err(ErrorInfo::new(
                e.clone(),
                self.message.clone().unwrap_or_default(),
            ))),
            _ => Err("a callback brings either `output` or `error` (with `message`)".into()),
        }
    }
}

/// What a callback or heartbeat came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackAnswer {
    pub run_id: RunId,
    pub step: String,
    /// The step's status after it: final when the callback ended the attempt, still
    /// `running` when it was kept for the attempt until its call returns.
    pub status: StepStatus,
}

impl Handlers {
    /// `{token, url}` for attempt `rec`'s callback; an error when no signing key is
    /// set, which fails the attempt for good.
    pub(super) async fn callback_ref(
        &self,
        run: &RunRecord,
        rec: &StepRecord,
    ) -> HandlerResult<Result<Value, Outcome>> {
        let Some(key) = self.signing_key().await? else {
            return Ok(Err(Outcome::Failed {
                error: ErrorInfo::new(
                    "callback.unavailable",
                    format!(
                        "step `{}`: a callback token needs the `{LINK_KEY_SECRET}` secret, which is not set",
                        rec.key
                    ),
                ),
                retryable: false,
            }));
        };
        let claims = Claims {
            run: run.id.to_string(),
            step: rec.key.to_string(),
            attempt: rec.attempt,
        };
        let token = links::seal(key.as_bytes(), LABEL, &claims);
        let url = self
            .settings
            .api_base_url
            .as_ref()
            .map(|base| format!("{}/callbacks/{token}", base.trim_end_matches('/')));
        Ok(Ok(json!({ "token": token, "url": url })))
    }

    /// Attempt of `step`, whose task was started, parks for its callback: until the
    /// first heartbeat is due, or the callback's timeout.
    pub(super) fn park_for_callback(&self, step: &Step) -> Attempt {
        let c = step.callback.expect("a step with a callback");
        let now = self.now();
        let until = deadline(now, c.timeout);
        let due = c.heartbeat.map_or(until, |h| deadline(now, h).min(until));
        Attempt::Parked {
            due: Some(due),
            child: None,
            deadline: Some(until),
        }
    }

    /// Ends the attempt `token` names with `report`.
    pub async fn callback(
        &self,
        token: &str,
        report: &CallbackReport,
    ) -> HandlerResult<CallbackAnswer> {
        let value = report.outcome_value().map_err(HandlerError::Invalid)?;
        let (run, wf, rec) = self.callback_step(token).await?;
        if rec.status == StepStatus::Running {
            // Reported before the task's call returned: kept for the attempt.
            let sent = Signal {
                name: early_name(&rec),
                id: "callback".into(),
                data: Data::Inline(serde_json::to_value(report).expect("reports serialize")),
                by: "callback".into(),
                at: self.now(),
            };
            self.ports.store.put_signal(&run.id, &sent).await?;
            let now = self.ports.store.get_step(&run.id, &rec.key).await?;
            if now.status == StepStatus::Waiting && now.attempt == rec.attempt {
                self.resolve_callback(&wf, &run, &now, value).await?;
            }
        } else {
            self.resolve_callback(&wf, &run, &rec, value).await?;
        }
        let after = self.ports.store.get_step(&run.id, &rec.key).await?;
        Ok(CallbackAnswer {
            run_id: run.id,
            step: rec.key.to_string(),
            status: after.status,
        })
    }

    /// A heartbeat for the attempt `token` names: its wait goes on.
    pub async fn heartbeat(&self, token: &str) -> HandlerResult<CallbackAnswer> {
        let (run, wf, rec) = self.callback_step(token).await?;
        if rec.status == StepStatus::Waiting {
            let event = Event::Heartbeat {
                attempt: rec.attempt,
            };
            self.apply(&FollowUps::none(), &wf, &run, &rec, event)
                .await?;
        }
        Ok(CallbackAnswer {
            run_id: run.id,
            step: rec.key.to_string(),
            status: rec.status,
        })
    }

    /// Gives a task's waiting attempt the callback that came before it parked;
    /// whether one had.
    pub(super) async fn take_early_callback(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        rec: &StepRecord,
    ) -> HandlerResult<bool> {
        let Some(kept) = self
            .ports
            .store
            .get_signal(&run.id, &early_name(rec))
            .await?
        else {
            return Ok(false);
        };
        let report: CallbackReport = serde_json::from_value(self.load(&kept.data).await?)
            .map_err(|e| HandlerError::Invalid(format!("a kept callback does not read: {e}")))?;
        match report.outcome_value() {
            Ok(value) => {
                self.resolve_callback(wf, run, rec, value).await?;
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// The run, workflow and step of the attempt `token` names, which must be running
    /// or waiting: a forged token is `Unauthorized`, an ended attempt a conflict (410
    /// on the API).
    async fn callback_step(
        &self,
        token: &str,
    ) -> HandlerResult<(RunRecord, std::sync::Arc<Workflow>, StepRecord)> {
        let key = self.signing_key().await?.unwrap_or_default();
        let Some(claims) = (!key.is_empty())
            .then(|| links::unseal::<Claims>(key.as_bytes(), LABEL, token))
            .flatten()
        else {
            return Err(HandlerError::Unauthorized(
                "this callback token is not valid".into(),
            ));
        };
        let run_id = RunId::from(claims.run.as_str());
        let run = self.ports.store.get_run(&run_id).await?;
        let wf = self.workflow(&run).await?;
        let ended = || {
            HandlerError::Port(PortError::Conflict(format!(
                "the attempt {} of step `{}` of run {} this callback belongs to has ended",
                claims.attempt, claims.step, claims.run
            )))
        };
        if run.status.is_final() {
            return Err(ended());
        }
        let rec = self
            .step_or_iteration(&run_id, &parse_key(&claims.step), None)
            .await?
            .ok_or_else(ended)?;
        let open = matches!(rec.status, StepStatus::Running | StepStatus::Waiting);
        if !open || rec.attempt != claims.attempt {
            return Err(ended());
        }
        Ok((run, wf, rec))
    }

    /// Applies the callback's outcome to waiting `rec`.
    async fn resolve_callback(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        rec: &StepRecord,
        value: Result<Value, ErrorInfo>,
    ) -> HandlerResult<()> {
        let outcome = match value {
            Ok(v) => {
                let slot = format!("runs/{}/{}/{}/output.json", run.id, rec.key, rec.attempt);
                Outcome::Succeeded {
                    output: self.store_value(&slot, v).await?,
                }
            }
            Err(error) => Outcome::Failed {
                error,
                retryable: true,
            },
        };
        let event = Event::Resolved {
            attempt: rec.attempt,
            by: Waiter::Callback,
            outcome: &outcome,
        };
        self.apply(&FollowUps::none(), wf, run, rec, event).await
    }

    /// The key links and callback tokens are signed with, if set.
    pub(super) async fn signing_key(&self) -> HandlerResult<Option<String>> {
        let key = self.ports.secrets.secret(LINK_KEY_SECRET).await?;
        Ok(key.filter(|k| !k.is_empty()))
    }

    /// `POST /callbacks/{token}` and `POST /callbacks/{token}/heartbeat`.
    pub(super) async fn api_callback(
        &self,
        req: &ApiRequest,
        token: &str,
        heartbeat: bool,
    ) -> ApiResponse {
        let answer = if heartbeat {
            self.heartbeat(token).await
        } else {
            let report: CallbackReport =
                match serde_json::from_str(req.body.as_deref().unwrap_or("")) {
                    Ok(r) => r,
                    Err(e) => {
                        return ApiResponse::error(
                            400,
                            "invalid_request",
                            format!("request body: {e}"),
                        );
                    }
                };
            self.callback(token, &report).await
        };
        match answer {
            Ok(a) => ApiResponse::ok(if a.status.is_final() { 200 } else { 202 }, json!(a)),
            Err(HandlerError::Port(PortError::Conflict(m))) => ApiResponse::error(410, "gone", m),
            Err(e) => failure(e),
        }
    }
}

/// The name an early callback is kept under for its attempt (no signal name can
/// start with `~`).
fn early_name(rec: &StepRecord) -> String {
    format!("~callback/{}/{}", rec.key, rec.attempt)
}
