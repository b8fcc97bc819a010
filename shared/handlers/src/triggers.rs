//! Starts from triggers: an incoming event (S3 upload, EventBridge event, SQS message)
//! starts every registered workflow whose trigger matches it; a signed webhook starts the
//! workflow serving its path; the tick fires due schedules.
//!
//! Every start is keyed by the real-world event ([`Incoming::idempotency_key`], the
//! webhook delivery, the scheduled instant), so a source delivering twice — or through
//! two paths — starts one run. Whatever is rejected starts nothing.

use super::api::ApiResponse;
use super::intake::{Registry, StartRequest, Started};
use super::{HandlerError, HandlerResult, Handlers};
use braid_engine::model::{AuditAction, Definition, RunStatus};
use braid_lang::triggers::incoming::Incoming;
use braid_lang::triggers::route;
use braid_lang::triggers::schedule::{Overlap, due, overlap_decision};
use braid_lang::triggers::signature;
use braid_lang::{Schedule, Trigger, TriggerSource, Workflow};
use braid_ports::RunFilter;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// What a trigger did for one workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggeredRun {
    pub workflow: String,
    /// The run started (or found, for a repeated event), or why none could start.
    pub outcome: Result<Started, String>,
}

/// Headers a webhook's `trigger` data leaves out: they carry signatures or credentials.
const HIDDEN_HEADERS: &[&str] = &[
    signature::BRAID_SIGNATURE,
    signature::GITHUB_SIGNATURE,
    signature::STRIPE_SIGNATURE,
    "authorization",
    "cookie",
    "x-amz-security-token",
];

impl Handlers {
    /// The registered workflows with their definitions, parsed (cached by version). A
    /// definition that no longer parses is left out with a warning rather than
    /// stopping every other workflow's triggers.
    pub async fn registered(&self) -> HandlerResult<Vec<(Definition, Arc<Workflow>)>> {
        let mut out = Vec::new();
        for def in self.ports.store.current_definitions().await? {
            match self.parse_cached(&def) {
                Ok(wf) => out.push((def, wf)),
                Err(e) => {
                    tracing::warn!(workflow = %def.workflow, error = %e, "registered workflow does not parse; its triggers are off")
                }
            }
        }
        Ok(out)
    }

    /// Starts the runs `incoming` triggers: one per matching workflow. A workflow whose
    /// trigger cannot give a valid input is reported and starts nothing; the others
    /// still start. Store or queue failures are errors (deliver the event again: the
    /// starts already made are found by their key).
    pub async fn start_triggered(&self, incoming: &Incoming) -> HandlerResult<Vec<TriggeredRun>> {
        let registered = self.registered().await?;
        let data = incoming.trigger_data();
        let key = incoming.idempotency_key();
        let mut out = Vec::new();
        for m in route::route(registered.iter().map(|(_, wf)| &**wf), incoming) {
            let (def, wf) = registered
                .iter()
                .find(|(d, _)| d.workflow == m.workflow)
                .expect("routes name registered workflows");
            let outcome = self
                .start_from(
                    def,
                    &wf.triggers[m.trigger],
                    data.clone(),
                    key.clone(),
                    false,
                )
                .await?;
            out.push(TriggeredRun {
                workflow: m.workflow,
                outcome,
            });
        }
        Ok(out)
    }

    /// Starts `def` from a trigger (waiting for a slot with `queue`); `Err` inside when
    /// the event gives it no valid input.
    async fn start_from(
        &self,
        def: &Definition,
        trigger: &Trigger,
        data: Value,
        key: String,
        queue: bool,
    ) -> HandlerResult<Result<Started, String>> {
        let input = match route::input(trigger, &data, &self.renderer) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let req = StartRequest {
            definition: def.clone(),
            input,
            trigger: data,
            idempotency_key: Some(key),
            queue,
        };
        // Triggers are matched against the registry: the definition is current.
        let started = self.start_as(req, Registry::Current, None).await;
        match started {
            Ok(s) => Ok(Ok(s)),
            Err(HandlerError::Invalid(e)) => Ok(Err(e)),
            Err(e) => Err(e),
        }
    }

    /// Serves `POST /hooks/{path}`: 202 with the run when the signature holds; 401 and
    /// nothing started when it is missing, wrong, stale or a delivery already seen;
    /// 404 for a path no workflow serves.
    pub async fn webhook(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> ApiResponse {
        match self.webhook_start(path, headers, body).await {
            Ok(r) => r,
            Err(e) => super::api::failure(e),
        }
    }

    async fn webhook_start(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> HandlerResult<ApiResponse> {
        let registered = self.registered().await?;
        let Some((wf, index)) = route::webhook(registered.iter().map(|(_, wf)| &**wf), path) else {
            return Ok(ApiResponse::error(
                404,
                "not_found",
                format!("no workflow serves the webhook `{path}`"),
            ));
        };
        let def = registered
            .iter()
            .find(|(d, _)| d.workflow == wf.name)
            .map(|(d, _)| d)
            .expect("found among the registered");
        let trigger = &wf.triggers[index];
        let TriggerSource::Webhook {
            secret, signature, ..
        } = &trigger.source
        else {
            unreachable!("route::webhook finds webhook triggers");
        };
        let Some(key) = self.ports.secrets.secret(secret).await? else {
            tracing::error!(workflow = %wf.name, secret = %secret, "the webhook's secret is not set");
            return Ok(ApiResponse::error(
                500,
                "misconfigured",
                "the webhook's secret is not set on the server",
            ));
        };
        let verified = match signature::verify(
            *signature,
            key.as_bytes(),
            headers,
            body.as_bytes(),
            self.now(),
        ) {
            Ok(v) => v,
            Err(rejection) => {
                tracing::info!(path, %rejection, "webhook refused");
                return Ok(ApiResponse::error(
                    401,
                    "unauthorized",
                    rejection.to_string(),
                ));
            }
        };
        // The delivery id the sender gives, else the signature itself (it covers the
        // body and, in the timestamped forms, the time).
        let delivery = verified
            .delivery_id
            .clone()
            .unwrap_or_else(|| format!("sig:{}", verified.signature));
        let data = webhook_data(path, headers, body, &delivery);
        let outcome = self
            .start_from(def, trigger, data, format!("hook:{path}:{delivery}"), false)
            .await?;
        Ok(match outcome {
            Ok(s) if s.existing => {
                ApiResponse::error(401, "unauthorized", "this delivery was already received")
            }
            Ok(s) => ApiResponse::ok(202, json!({"run_id": s.run.id, "status": s.run.status})),
            Err(e) => ApiResponse::error(400, "invalid_request", e),
        })
    }

    /// Fires every registered schedule that is due, each instant once: the instant is
    /// the run's idempotency key, and a marker per schedule keeps how far it was
    /// handled. Returns the runs started.
    pub async fn fire_schedules(&self) -> HandlerResult<Vec<TriggeredRun>> {
        let now = self.now();
        let mut out = Vec::new();
        for (def, wf) in self.registered().await? {
            for (index, trigger) in wf.triggers.iter().enumerate() {
                if let TriggerSource::Schedule { .. } = trigger.source {
                    out.extend(self.fire_schedule(&def, &wf, index, now).await?);
                }
            }
        }
        Ok(out)
    }

    async fn fire_schedule(
        &self,
        def: &Definition,
        wf: &Workflow,
        index: usize,
        now: DateTime<Utc>,
    ) -> HandlerResult<Vec<TriggeredRun>> {
        let trigger = &wf.triggers[index];
        let TriggerSource::Schedule {
            schedule,
            catchup,
            catchup_window,
            overlap,
        } = &trigger.source
        else {
            return Ok(Vec::new());
        };
        // Keyed by the expression too: a changed schedule starts afresh from now.
        let marker = format!("schedule:{}:{}", wf.name, schedule.expression);
        if self.schedules_paused(&wf.name).await? {
            // Paused: instants pass unfired, and resuming does not catch them up.
            self.ports
                .store
                .set_marker(&marker, Some(&now.to_rfc3339()))
                .await?;
            return Ok(Vec::new());
        }
        let last = self
            .ports
            .store
            .marker(&marker)
            .await?
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        let plan = due(schedule, *catchup, *catchup_window, last, now);
        let mut out = Vec::new();
        for instant in &plan.fire {
            let active = self.active_runs_of(&wf.name).await?;
            let queue = match overlap_decision(*overlap, active) {
                Overlap::Skip => {
                    tracing::info!(workflow = %wf.name, %instant, "schedule skipped: a run is still active");
                    continue;
                }
                Overlap::Queue => true,
                Overlap::Start => false,
            };
            let outcome = self
                .start_scheduled(def, trigger, schedule, *instant, queue)
                .await?;
            out.push(TriggeredRun {
                workflow: wf.name.clone(),
                outcome,
            });
        }
        // Nothing due and nothing passed over: the marker stays, and the next tick looks
        // at the same span plus what came since — no write per schedule per tick.
        if last.is_none() || !plan.fire.is_empty() || plan.skipped > 0 {
            self.ports
                .store
                .set_marker(&marker, Some(&plan.handled_until.to_rfc3339()))
                .await?;
        }
        Ok(out)
    }

    /// Starts `def` for `instant` of its schedule trigger `trigger` (whose schedule is
    /// `schedule`): the one way a scheduled instant becomes a run, for the tick and for
    /// a backfill alike. The instant is the idempotency key, so an instant started
    /// twice — fired, then backfilled — is one run.
    pub(super) async fn start_scheduled(
        &self,
        def: &Definition,
        trigger: &Trigger,
        schedule: &Schedule,
        instant: DateTime<Utc>,
        queue: bool,
    ) -> HandlerResult<Result<Started, String>> {
        let data = json!({
            "kind": "schedule",
            "scheduled_at": instant.to_rfc3339(),
            "expression": schedule.expression,
            "timezone": schedule.timezone.name(),
        });
        let key = format!("schedule:{}", instant.to_rfc3339());
        self.start_from(def, trigger, data, key, queue).await
    }

    /// Pauses (or resumes) the schedules of a registered workflow: while paused, its
    /// scheduled instants pass without a run, and resuming fires from the next instant
    /// on — whatever the catch-up policy. Other triggers are not affected.
    /// A workflow without schedules has nothing to pause: that is said, not done.
    /// `by` is noted in the audit trail.
    pub async fn pause_schedules(
        &self,
        workflow: &str,
        paused: bool,
        by: &str,
    ) -> HandlerResult<()> {
        let def = self
            .ports
            .store
            .current_definition(workflow)
            .await
            .map_err(|e| match e {
                braid_ports::PortError::NotFound(_) => HandlerError::Invalid(format!(
                    "workflow `{workflow}` is not registered (braid deploy FILE registers it)"
                )),
                e => e.into(),
            })?;
        let wf = self.parse_cached(&def)?;
        let scheduled = wf
            .triggers
            .iter()
            .any(|t| matches!(t.source, braid_lang::TriggerSource::Schedule { .. }));
        if !scheduled {
            return Err(HandlerError::Invalid(format!(
                "workflow `{workflow}` has no schedule to {}",
                if paused { "pause" } else { "resume" }
            )));
        }
        let value = paused.then_some("paused");
        self.ports
            .store
            .set_marker(&paused_marker(workflow), value)
            .await?;
        let action = match paused {
            true => AuditAction::Pause,
            false => AuditAction::Resume,
        };
        let target = super::audit::Target {
            workflow,
            ..Default::default()
        };
        self.audit_action(action, by, target).await;
        Ok(())
    }

    /// Whether `workflow`'s schedules are paused.
    pub async fn schedules_paused(&self, workflow: &str) -> HandlerResult<bool> {
        Ok(self
            .ports
            .store
            .marker(&paused_marker(workflow))
            .await?
            .is_some())
    }

    /// Runs of `workflow` not final yet.
    async fn active_runs_of(&self, workflow: &str) -> HandlerResult<usize> {
        let mut n = 0;
        for status in [RunStatus::Queued, RunStatus::Running] {
            n += self
                .ports
                .store
                .list_runs(&RunFilter {
                    workflow: Some(workflow.to_string()),
                    status: Some(status),
                    limit: 1,
                })
                .await?
                .len();
        }
        Ok(n)
    }
}

/// A webhook's `trigger` data: its path, delivery, headers (lower-cased, without
/// signatures or credentials) and body (parsed when JSON, else text).
fn webhook_data(path: &str, headers: &[(String, String)], body: &str, delivery: &str) -> Value {
    let shown: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| !HIDDEN_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k, Value::String(v.clone())))
        .collect();
    json!({
        "kind": "webhook",
        "path": path,
        "delivery": delivery,
        "headers": shown,
        "body": serde_json::from_str::<Value>(body).unwrap_or_else(|_| Value::String(body.to_string())),
    })
}

/// The marker that says a workflow's schedules are paused.
fn paused_marker(workflow: &str) -> String {
    format!("paused:{workflow}")
}
