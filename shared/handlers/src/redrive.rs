//! Retrying a run in place (a redrive, `braid retry`, `POST /runs/{id}/retry`): the
//! run reopens with the retry recorded on it, then each step the retry names is reset
//! by the step lifecycle ([`Event::Redriven`]) and those whose needs are met are sent.
//! What the retry names and how a step resets are the engine's
//! ([`braid_engine::redrive`]); a crash part-way leaves the retry recorded and the
//! tick resets what is left ([`Handlers::complete_redrive`]).

use super::api::{ApiRequest, ApiResponse, failure};
use super::approvals::{parse_body, who};
use super::audit::Target;
use super::{HandlerError, HandlerResult, Handlers};
use braid_engine::lifecycle::{self, Event};
use braid_engine::model::{
    AuditAction, DispatchMsg, RunId, RunRecord, StepId, StepKey, StepStatus,
};
use braid_engine::{records, redrive};
use braid_lang::Workflow;
use braid_ports::PortError;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// The body of `POST /runs/{id}/retry` (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    /// Run again from this step (and everything downstream of it) too.
    from: Option<String>,
    /// Fork a new run instead of retrying this one in place (see `fork`).
    #[serde(default)]
    new: bool,
    /// The fork's input (only with `new`).
    input: Option<serde_json::Value>,
    /// Who asks, where the server does not authenticate callers (`braid dev`).
    by: Option<String>,
}

impl Handlers {
    /// Retries run `run_id` in place for `by`, from the steps that did not succeed
    /// (and `from`, if given); returns the run as reopened. A run not over, one that
    /// succeeded, or a `from` that names no step is a conflict saying so.
    pub async fn retry_run(
        &self,
        run_id: &RunId,
        by: &str,
        from: Option<&str>,
    ) -> HandlerResult<RunRecord> {
        let run = self.ports.store.get_run(run_id).await?;
        let refused = |why: redrive::Refusal| {
            HandlerError::from(PortError::Conflict(format!(
                "run {run_id} cannot be retried: {why}"
            )))
        };
        let wf = self.workflow(&run).await?;
        let written = self.ports.store.list_steps(run_id).await?;
        let steps = records::every_step(&wf, run_id, written);
        let rerun = redrive::reruns(&wf, &steps, from).map_err(|e| match e {
            redrive::Refusal::UnknownStep(_) => {
                HandlerError::Invalid(format!("run {run_id} cannot be retried: {e}"))
            }
            other => refused(other),
        })?;
        let reopened =
            redrive::reopened(&wf, &run, rerun, from, by, self.now()).map_err(refused)?;
        if !self.ports.store.reopen_run(&run, &reopened).await? {
            let now = self.ports.store.get_run(run_id).await?;
            let why = if now.status.is_final() && now.limit.is_some() {
                format!(
                    "workflow `{}` is at its concurrency limit ({}); retry once a run ends",
                    now.workflow,
                    now.limit.unwrap_or_default()
                )
            } else {
                format!("it changed meanwhile (it is {})", now.status)
            };
            return Err(
                PortError::Conflict(format!("run {run_id} cannot be retried: {why}")).into(),
            );
        }
        // The kept outputs must outlive the run's new end (see `retention`). Renewed
        // only once the store took the retry; if a crash skips this, the renewal at
        // the last end still leaves them weeks, and the next end renews them again.
        let target = Target {
            workflow: &run.workflow,
            run_id: Some(run_id),
            step: from,
            ..Target::default()
        };
        self.audit_action(AuditAction::Retry, by, target).await;
        self.keep_payloads(&run).await?;
        self.complete_redrive(&wf, &reopened).await?;
        Ok(self.ports.store.get_run(run_id).await?)
    }

    /// Resets the steps the last retry of `run` names and has not reset yet, then
    /// sends those whose needs are met. All are reset before any is sent, so no step
    /// of the retry ends while another it names still shows its earlier end. A
    /// `for_each` step's iterations are deleted first (its next expansion makes new
    /// ones, numbered after every attempt the old ones could have made) — but those
    /// that succeeded, when its items cannot have changed (none of its needs runs
    /// again, and the retry is not from it): the new expansion keeps their outputs,
    /// as a redriven Map state does.
    pub(super) async fn complete_redrive(
        &self,
        wf: &Workflow,
        run: &RunRecord,
    ) -> HandlerResult<()> {
        let Some(last) = run.redrives.last() else {
            return Ok(());
        };
        let written = self.ports.store.list_steps(&run.id).await?;
        let all = records::every_step(wf, &run.id, written);
        let mut sends: Vec<(DispatchMsg, Duration)> = Vec::new();
        for id in redrive::unreset(run, &all) {
            let (Some(step), Some(rec)) =
                (wf.step(id), all.iter().find(|r| r.key == StepKey::step(id)))
            else {
                continue;
            };
            // Each iteration made at most `retry.attempts` attempts after its base —
            // the last expansion's, which a record whose fan-out is gone (a write
            // refused) still holds as `iteration_base`. Other steps keep theirs.
            let mut iteration_base = rec.iteration_base;
            if step.for_each.is_some() {
                let last_base = rec.fan_out.map_or(0, |f| f.base).max(rec.iteration_base);
                iteration_base = last_base + step.retry.attempts.max(1);
                let same_items = last.from.as_deref() != Some(id)
                    && !step.needs.iter().any(|n| last.steps.contains(n));
                // The run's records, read above, hold its iterations too.
                let keep: Vec<u32> = all
                    .iter()
                    .filter(|r| same_items && r.key.step == id)
                    .filter(|r| r.status == StepStatus::Succeeded)
                    .filter_map(|r| r.key.index)
                    .collect();
                self.ports
                    .store
                    .delete_iterations(&run.id, &StepId::from(id), &keep)
                    .await?;
            }
            let satisfied = redrive::satisfied(wf, step, &all, &last.steps);
            let event = Event::Redriven {
                drive: run.drive(),
                satisfied: &satisfied,
                iteration_base,
            };
            let t = lifecycle::decide(rec, event, &self.context(step, run));
            let Some(w) = t.write else { continue };
            if self.ports.store.update_step(&w.guard, &w.record).await? {
                sends.extend(t.effects.into_iter().filter_map(|e| match e {
                    lifecycle::Effect::Send { msg, delay } => Some((msg, delay)),
                    _ => None,
                }));
            }
        }
        self.send_now(sends).await
    }

    /// `POST /runs/{id}/retry`: 202 with the run reopened (or, with `new`, the run
    /// forked); 409 for a run that is not over (or, in place, succeeded); 400 for a
    /// `from` that names no step, or an `input` without `new`.
    pub(super) async fn api_retry(&self, req: &ApiRequest, run_id: &RunId) -> ApiResponse {
        let body: RetryBody = match parse_body(req) {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        let by = who(req, body.by);
        if body.new {
            return match self
                .fork_run(run_id, &by, body.from.as_deref(), body.input)
                .await
            {
                Ok(started) => ApiResponse::ok(
                    202,
                    json!({
                        "run_id": started.run.id,
                        "status": started.run.status,
                        "forked_from": started.run.forked_from,
                    }),
                ),
                Err(e) => failure(e),
            };
        }
        if body.input.is_some() {
            return ApiResponse::error(
                400,
                "invalid_request",
                "`input` needs `\"new\": true`: a run retried in place keeps its input",
            );
        }
        match self.retry_run(run_id, &by, body.from.as_deref()).await {
            Ok(run) => ApiResponse::ok(
                202,
                json!({
                    "run_id": run.id,
                    "status": run.status,
                    "retry": run.redrives.last(),
                }),
            ),
            Err(e) => failure(e),
        }
    }
}
