//! Cancelling a run on request: nothing new starts, what has not started (waiting
//! approvals, signals and child runs included) is cancelled at once, and tasks in
//! flight are stopped by their dispatchers, which look for the request while they
//! wait on them (see `Handlers::execute`); an attempt ending first is recorded as it
//! ended. The run ends `cancelled`, saying who asked and why. A queued run, which started nothing, ends
//! at once. Its child runs are cancelled with the steps that wait on them.

use super::api::{ApiRequest, ApiResponse, failure};
use super::approvals::{parse_body, who};
use super::audit::Target;
use super::eager::FollowUps;
use super::{HandlerResult, Handlers};
use braid_engine::model::{AuditAction, CancelRequest, RunId, RunRecord, RunStatus};
use braid_ports::PortError;
use serde::Deserialize;
use serde_json::json;

/// The body of `POST /runs/{id}/cancel` (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: Option<String>,
    /// Who asks, where the server does not authenticate callers (`braid dev`).
    by: Option<String>,
}

impl Handlers {
    /// Cancels run `run_id` for `by`, with an optional `reason`; returns the run as the
    /// request left it (`cancelled`, or still running while attempts in flight end).
    /// A run already over is a conflict naming its status; a failing one ends failed.
    pub async fn cancel_run(
        &self,
        run_id: &RunId,
        by: &str,
        reason: Option<&str>,
    ) -> HandlerResult<RunRecord> {
        let run = self.ports.store.get_run(run_id).await?;
        let ask = CancelRequest {
            by: by.to_string(),
            reason: reason.map(str::to_string),
            at: self.now(),
        };
        let target = Target {
            workflow: &run.workflow,
            run_id: Some(run_id),
            detail: reason,
            ..Target::default()
        };
        if run.status == RunStatus::Queued {
            self.end_run(run_id, RunStatus::Cancelled, ask.error())
                .await?;
            self.audit_action(AuditAction::Cancel, by, target).await;
            return Ok(self.ports.store.get_run(run_id).await?);
        }
        let Some(asked) = self.ports.store.request_cancel(run_id, &ask).await? else {
            let now = self.ports.store.get_run(run_id).await?;
            let why = match (&now.cancel, now.failing) {
                (Some(c), _) if !now.status.is_final() => {
                    format!("it is being cancelled already (asked by {})", c.by)
                }
                (None, true) if !now.status.is_final() => {
                    "it is failing: it ends failed once its steps in flight end".into()
                }
                _ => format!("it is {}", now.status),
            };
            return Err(
                PortError::Conflict(format!("run {run_id} cannot be cancelled: {why}")).into(),
            );
        };
        self.audit_action(AuditAction::Cancel, by, target).await;
        let wf = self.workflow(&asked).await?;
        self.fail_fast(&FollowUps::none(), &wf, run_id).await?;
        Ok(self.ports.store.get_run(run_id).await?)
    }

    /// `POST /runs/{id}/cancel`: 202 with the run while attempts in flight end, 200
    /// once it is cancelled; 409 for a run over, failing or being cancelled.
    pub(super) async fn api_cancel(&self, req: &ApiRequest, run_id: &RunId) -> ApiResponse {
        let body: CancelBody = match parse_body(req) {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        let by = who(req, body.by);
        match self.cancel_run(run_id, &by, body.reason.as_deref()).await {
            Ok(run) => ApiResponse::ok(
                if run.status.is_final() { 200 } else { 202 },
                json!({"run_id": run.id, "status": run.status, "error": run.error}),
            ),
            Err(e) => failure(e),
        }
    }
}
