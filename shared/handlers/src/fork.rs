//! Forking a run (`braid retry --new`, `POST /runs/{id}/retry` with `"new": true`): a
//! new run of the same workflow version that starts with the outputs of the source's
//! steps that succeeded (or were skipped) and runs the others — with `from`, that step
//! too — and everything downstream of them, with the source's input or a new one. The
//! source stays as it was. What runs again is the same as for a retry in place
//! ([`braid_engine::redrive::reruns`]); the plan is [`braid_engine::start::fork`].

use super::audit::Target;
use super::intake::Started;
use super::{HandlerError, HandlerResult, Handlers};
use braid_engine::model::{AuditAction, Data, Fork, RunId, StepRecord};
use braid_engine::{params, records, redrive, start};
use braid_ports::PortError;
use serde_json::Value;

impl Handlers {
    /// Forks run `run_id` (which has ended) for `by`: see the module docs. `input`
    /// replaces the source's input, checked against the workflow's params.
    pub async fn fork_run(
        &self,
        run_id: &RunId,
        by: &str,
        from: Option<&str>,
        input: Option<Value>,
    ) -> HandlerResult<Started> {
        let source = self.ports.store.get_run(run_id).await?;
        if !source.status.is_final() {
            return Err(PortError::Conflict(format!(
                "run {run_id} cannot be forked: it is {}; it can be once it has ended",
                source.status
            ))
            .into());
        }
        let wf = self.workflow(&source).await?;
        let written = self.ports.store.list_steps(run_id).await?;
        let steps = records::every_step(&wf, run_id, written);
        let rerun = redrive::reruns(&wf, &steps, from)
            .map_err(|e| HandlerError::Invalid(format!("run {run_id} cannot be forked: {e}")))?;
        if rerun.is_empty() {
            return Err(HandlerError::Invalid(format!(
                "run {run_id} succeeded: name a step to run again from (`from`)"
            )));
        }
        let params = match input {
            Some(input) => params::resolve(&wf, &input).map_err(|problems| {
                HandlerError::Invalid(format!(
                    "invalid input for workflow `{}`: {}",
                    wf.name,
                    problems.join("; ")
                ))
            })?,
            None => self.params_of(&source).await?,
        };
        let trigger = match &source.trigger_ref {
            Some(d) => self.load(d).await?,
            None => source.trigger.clone(),
        };
        let now = self.now();
        let info = start::StartInfo {
            run_id: self.ports.ids.run_id(now),
            version: source.version.clone(),
            params,
            trigger,
            idempotency_key: None,
            limit: wf.concurrency,
        };
        let mut plan = start::fork(&wf, info, &steps, &rerun, now);
        plan.run.forked_from = Some(Fork {
            run: run_id.clone(),
            by: by.to_string(),
            at: now,
            from: from.map(str::to_string),
            steps: rerun,
        });
        self.keep_input(&mut plan.run).await?;
        for rec in plan.steps.iter_mut() {
            self.copy_output(rec).await?;
        }
        self.ports.store.create_run(&plan.run, &plan.steps).await?;
        let detail = format!("from run {run_id}");
        let target = Target {
            workflow: &source.workflow,
            run_id: Some(&plan.run.id),
            step: from,
            detail: Some(&detail),
        };
        self.audit_action(AuditAction::Fork, by, target).await;
        Ok(Started {
            run: self.launch(plan, now).await?,
            existing: false,
        })
    }

    /// Copies a kept step's output held by reference into the fork's own payloads, so
    /// it lives as long as the fork's records (see `retention`), not the source's.
    async fn copy_output(&self, rec: &mut StepRecord) -> HandlerResult<()> {
        let Some(stored @ Data::Stored { .. }) = &rec.output else {
            return Ok(());
        };
        let value = self.load(stored).await?;
        let key = format!("runs/{}/{}/output.json", rec.run_id, rec.key.step);
        rec.output = Some(self.store_value(&key, value).await?);
        Ok(())
    }
}
