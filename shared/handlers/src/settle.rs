//! What follows a step becoming final: releasing dependents, fail fast, fan-in, and
//! finishing the run. Every operation here is idempotent, so the sweeper runs the same
//! code to repair whatever a crash left half done.

use super::{HandlerResult, Handlers, StepEvents, eager};
use braid_engine::model::{
    DispatchMsg, ErrorInfo, LifecycleEvent, RunId, RunRecord, RunStatus, StepId, StepKey,
    StepRecord, StepStatus,
};
use braid_engine::{gates, output, records};
use braid_lang::Workflow;
use braid_ports::{Finalized, Guard};
use std::borrow::Cow;
use std::time::Duration;

/// Statuses a step can be cancelled from: not final and not running (attempts in
/// flight finish and are recorded).
const CANCELLABLE: &[StepStatus] = &[
    StepStatus::Pending,
    StepStatus::Ready,
    StepStatus::Retrying,
    StepStatus::Waiting,
];

/// The run's error when step `id` fails it.
pub(super) fn run_error(id: &str, e: &ErrorInfo) -> ErrorInfo {
    ErrorInfo::new(
        e.error.clone(),
        format!("step `{id}` failed: {}", e.message),
    )
}

impl Handlers {
    /// Carries out the consequences of `rec` having become final. `fresh` is true when
    /// the caller just made it final (publish its event), false for a sweeper repair.
    ///
    /// A step's end is published when it failed, or with [`StepEvents::All`] when it
    /// is a top-level step: an iteration's `for_each` step reports the whole fan-out,
    /// and an event per successful iteration would flood the bus (and the bill) with
    /// thousands of events nobody routes.
    pub(super) async fn settle(
        &self,
        wf: &Workflow,
        run: RunRecord,
        rec: &StepRecord,
        parent: Option<StepRecord>,
        fresh: bool,
    ) -> HandlerResult<()> {
        let published = rec.status == StepStatus::Failed
            || (rec.key.index.is_none() && self.settings.step_events == StepEvents::All);
        if fresh && published {
            self.publish(vec![LifecycleEvent::step_finished(&run, rec, self.now())])
                .await;
        }
        let Some(step) = wf.step(&rec.key.step) else {
            return Ok(());
        };
        if rec.key.index.is_some() {
            return self.follow_lane(wf, &run, rec, parent).await;
        }
        if gates::fails_run(step, rec.status) {
            return self.fail_fast(wf, &run.id).await;
        }
        if !run.failing && gates::lets_dependents_run(step, rec.status) {
            let (mut wake, mut ready) = (Vec::new(), Vec::new());
            for dependent in wf.dependents(&step.id) {
                // One that only this step held back may run next in this delivery,
                // released in memory only.
                if dependent.needs == [step.id.as_str()] {
                    let released = StepRecord {
                        satisfied: vec![step.id.clone()],
                        ..records::unwritten(&run.id, &dependent.id)
                    };
                    if eager::keep_released(&released, &run) {
                        continue;
                    }
                }
                if let Some(rec) = self.release(&run.id, dependent, &rec.key.step).await? {
                    wake.push((DispatchMsg::first(&run.id, rec.key.clone()), Duration::ZERO));
                    ready.push(rec);
                }
            }
            self.send_dispatch_of(&run, wake, &ready).await?;
        } else if run.failing {
            // Not released, so never to run: cancelled here. Fail fast may have left a
            // pending dependent to this step's delivery (see `gates::released_lately`).
            for dependent in wf.dependents(&step.id) {
                let key = StepKey::step(&dependent.id);
                if let Some(pending) = self
                    .step_or_iteration(&run.id, &key)
                    .await?
                    .filter(|r| r.status == StepStatus::Pending)
                {
                    self.cancel(wf, &pending).await?;
                }
            }
        }
        // Each step that may be the last reads the others after its own final write:
        // of two ending at once, at least the later one sees both final.
        if gates::may_end_run(wf, step, run.failing) {
            self.finish_if_done(wf, &run.id, Some(rec)).await?;
        }
        Ok(())
    }

    /// Records that `dep` lets `dependent` run; makes it ready when it was the last
    /// need, and then returns it as written.
    async fn release(
        &self,
        run_id: &RunId,
        dependent: &braid_lang::Step,
        dep: &StepId,
    ) -> HandlerResult<Option<StepRecord>> {
        // One guarded write: of two completers releasing the last needs, one wins.
        Ok(self
            .ports
            .store
            .satisfy(
                run_id,
                &StepId::from(&dependent.id),
                dep,
                &dependent.needs,
                self.now(),
            )
            .await?)
    }

    /// Fail fast (the run was marked failing by the failed step's own final write): no
    /// new step starts; steps that can no longer run are cancelled, and each running
    /// fan-out stops its iterations; attempts in flight finish and are recorded (one
    /// that may be running unclaimed is left to its message, which cancels it if it
    /// had not started); the run fails when nothing is open.
    async fn fail_fast(&self, wf: &Workflow, run_id: &RunId) -> HandlerResult<()> {
        let run = self.ports.store.get_run(run_id).await?;
        let now = self.now();
        let written = self.ports.store.list_steps(run_id).await?;
        let all = records::every_step(wf, run_id, written);
        let lost_after = gates::presumed_lost_after(self.settings.stale_after);
        let need = |n: &str| {
            all.iter()
                .find(|r| r.key.index.is_none() && r.key.step == n)
        };
        for rec in &all {
            // A fan-out stops its own iterations (see `advance_fan_out`).
            if rec.key.index.is_some() {
                continue;
            }
            if gates::fail_fast_cancels(wf, rec, need, now, lost_after) {
                self.cancel(wf, rec).await?;
            } else if rec.status == StepStatus::Running && rec.fan_out.is_some() {
                self.advance_fan_out(wf, &run, rec.clone()).await?;
            }
        }
        self.finish_if_done(wf, run_id, None).await
    }

    /// Cancels a step (or iteration) that has not started or is between attempts, and
    /// settles it.
    pub(super) async fn cancel(&self, wf: &Workflow, rec: &StepRecord) -> HandlerResult<()> {
        let cancelled = StepRecord {
            status: StepStatus::Cancelled,
            due_at: None,
            finished_at: Some(self.now()),
            ..rec.clone()
        };
        if let Some(fin) = self
            .ports
            .store
            .finalize_step(&Guard::status(CANCELLABLE), &cancelled, None)
            .await?
        {
            Box::pin(self.settle(wf, fin.run, &cancelled, fin.parent, true)).await?;
        }
        Ok(())
    }

    /// Starts a fan-out's lanes: the first iteration of each, right after its expansion
    /// (or fans in at once when there is nothing to iterate). Sends only: a pending
    /// iteration is claimed straight from its message. All go to the queue (none is
    /// run eagerly), so the first wave starts together.
    pub(super) async fn launch_lanes(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        parent: StepRecord,
    ) -> HandlerResult<()> {
        let Some(f) = parent.fan_out else {
            return Ok(());
        };
        if f.total == 0 {
            return self.advance_fan_out(wf, run, parent).await;
        }
        let step = &parent.key.step;
        let msgs = f
            .lane_starts()
            .map(|i| {
                (
                    DispatchMsg::first(&run.id, StepKey::iteration(step, i)),
                    Duration::ZERO,
                )
            })
            .collect();
        self.send_now(msgs).await
    }

    /// What follows iteration `rec` becoming final: the next iteration of its lane
    /// starts; at a lane's end the lane is counted, and the fan-in is tried when it may
    /// be the last; once the fan-out is stopping, every end tries the fan-in. `parent`
    /// is the `for_each` step when the final write returned it.
    async fn follow_lane(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        rec: &StepRecord,
        parent: Option<StepRecord>,
    ) -> HandlerResult<()> {
        let step_id = rec.key.step.as_str();
        // The fan-out can be stopping only if the run is failing (a failure that stops
        // it fails the run in the same write) or this very end says so (a failure
        // counted on the parent, which the write returned, or a cancellation). Else
        // going on along the lane needs no read of the `for_each` step.
        let may_stop = parent.is_some() || run.failing || rec.status == StepStatus::Cancelled;
        if may_stop {
            let parent = match parent {
                Some(p) => p,
                None => {
                    self.ports
                        .store
                        .get_step(&run.id, &StepKey::step(step_id))
                        .await?
                }
            };
            let (Some(step), Some(f)) = (wf.step(step_id), parent.fan_out) else {
                return Ok(());
            };
            if parent.status != StepStatus::Running {
                return Ok(());
            }
            if gates::fan_out_stopping(step, &f, run.failing) {
                // The lane stops here: its next iteration is not launched but cancelled,
                // which tells the fan-in it is not in flight.
                let next = match rec.next_in_lane {
                    Some(i) => {
                        self.step_or_iteration(&run.id, &StepKey::iteration(step_id, i))
                            .await?
                    }
                    None => None,
                };
                if let Some(pending) = next {
                    let cancelled = StepRecord {
                        status: StepStatus::Cancelled,
                        finished_at: Some(self.now()),
                        ..pending
                    };
                    let guard = Guard::status(&[StepStatus::Pending]);
                    self.ports
                        .store
                        .finalize_step(&guard, &cancelled, None)
                        .await?;
                }
                return self.advance_fan_out(wf, run, parent).await;
            }
        }
        if let Some(next) = rec.next_in_lane {
            let msg = DispatchMsg::first(&run.id, StepKey::iteration(step_id, next));
            // Launched only here, so it has no record yet (at worst a race wrote one,
            // which its guard then finds).
            let unwritten = self.unwritten_iteration(&run.id, step_id, next).await?;
            return self
                .send_dispatch_of(run, vec![(msg, Duration::ZERO)], unwritten.as_slice())
                .await;
        }
        // The lane's end. Its count is a hint: the fan-in reads the records.
        match self.ports.store.end_lane(&run.id, &step_id.into()).await? {
            Some(p) if p.fan_out.is_some_and(|f| f.ended >= f.lanes) => {
                self.advance_fan_out(wf, run, p).await
            }
            _ => Ok(()),
        }
    }

    /// Fans a running `for_each` step in once its iterations are over, from their
    /// records. A stopping fan-out (an iteration failed for good, or the run is
    /// failing) first cancels every iteration not started (see
    /// [`gates::cancels_iteration`]) — so none starts after this, a claim racing it
    /// finds its guard false — and ends when those in flight are recorded.
    pub(super) async fn advance_fan_out(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        parent: StepRecord,
    ) -> HandlerResult<()> {
        let (run_id, step_key) = (&run.id, parent.key.step.clone());
        let step_id = step_key.as_str();
        let Some(step) = wf.step(step_id) else {
            return Ok(());
        };
        let Some(f) = parent
            .fan_out
            .filter(|_| parent.status == StepStatus::Running)
        else {
            return Ok(());
        };
        let written = self.ports.store.list_iterations(run_id, &step_key).await?;
        let mut iterations: Vec<StepRecord> = f
            .iterations(run_id, step_id, written.into_iter().map(Cow::Owned))
            .into_iter()
            .map(Cow::into_owned)
            .collect();
        if gates::fan_out_stopping(step, &f, run.failing) {
            let now = self.now();
            let lost_after = gates::presumed_lost_after(self.settings.stale_after);
            // In index order, so that a lane cancelled here is seen by its next one.
            for n in 0..iterations.len() {
                let before = n
                    .checked_sub(f.lanes.max(1) as usize)
                    .map(|b| &iterations[b]);
                if !gates::cancels_iteration(&f, &iterations[n], before, now, lost_after) {
                    continue;
                }
                let it = &mut iterations[n];
                let cancelled = StepRecord {
                    status: StepStatus::Cancelled,
                    due_at: None,
                    finished_at: Some(now),
                    ..it.clone()
                };
                let guard = Guard::status(CANCELLABLE);
                *it = match self
                    .ports
                    .store
                    .finalize_step(&guard, &cancelled, None)
                    .await?
                {
                    Some(_) => cancelled,
                    // Claimed meanwhile: it runs, and its end comes back here.
                    None => self.ports.store.get_step(run_id, &it.key).await?,
                };
            }
        }
        if !gates::fan_out_over(&f, &iterations) {
            return Ok(());
        }
        let failed_for_good = f.failed > 0 && !step.continue_on_failure;
        let mut parts = Vec::with_capacity(iterations.len());
        let mut first_error = None;
        for it in &iterations {
            if it.status == StepStatus::Failed && first_error.is_none() {
                first_error = it.error.clone().map(|e| ErrorInfo {
                    message: format!(
                        "iteration {} failed: {}",
                        it.key.index.unwrap_or(0),
                        e.message
                    ),
                    ..e
                });
            }
            let out = match &it.output {
                Some(d) => Some(self.load(d).await?),
                None => None,
            };
            parts.push((it.status, out));
        }
        let (status, list) = output::fan_in(parts);
        if failed_for_good {
            return self
                .finalize_top(wf, parent, StepStatus::Failed, None, first_error)
                .await;
        }
        let out = self
            .store_value(&format!("runs/{run_id}/{step_id}/output.json"), list)
            .await?;
        self.finalize_top(wf, parent, status, Some(out), first_error)
            .await
    }

    /// Makes a running top-level step final and settles it.
    async fn finalize_top(
        &self,
        wf: &Workflow,
        rec: StepRecord,
        status: StepStatus,
        output: Option<braid_engine::model::Data>,
        error: Option<ErrorInfo>,
    ) -> HandlerResult<()> {
        let done = StepRecord {
            status,
            output,
            error,
            lease_until: None,
            finished_at: Some(self.now()),
            ..rec
        };
        let guard = Guard::at(&[StepStatus::Running], done.attempt);
        let fail_run = wf
            .step(&done.key.step)
            .filter(|s| gates::fails_run(s, status))
            .and_then(|s| done.error.as_ref().map(|e| run_error(&s.id, e)));
        if let Some(Finalized { run, .. }) = self
            .ports
            .store
            .finalize_step(&guard, &done, fail_run.as_ref())
            .await?
        {
            Box::pin(self.settle(wf, run, &done, None, true)).await?;
        }
        Ok(())
    }

    /// Finishes the run once every top-level step is final: failed if fail fast began,
    /// else succeeded with its output. Reads the run and, by key, the top-level steps
    /// that tell (see [`gates::steps_telling_the_end`]) but `ended`, the step just made
    /// final by the caller; never the iterations.
    pub(super) async fn finish_if_done(
        &self,
        wf: &Workflow,
        run_id: &RunId,
        ended: Option<&StepRecord>,
    ) -> HandlerResult<()> {
        let run = self.ports.store.get_run(run_id).await?;
        if run.status.is_final() {
            return Ok(());
        }
        let mut steps: Vec<StepRecord> = futures::future::try_join_all(
            gates::steps_telling_the_end(wf, run.failing)
                .filter(|s| ended.is_none_or(|e| e.key != StepKey::step(&s.id)))
                .map(|s| self.step_record(run_id, &s.id)),
        )
        .await?;
        steps.extend(ended.cloned());
        if gates::run_is_done(&steps) {
            self.finish(wf, run).await?;
        }
        Ok(())
    }

    /// Finishes `run`, whose steps are all final, once.
    async fn finish(&self, wf: &Workflow, run: RunRecord) -> HandlerResult<()> {
        if run.status.is_final() {
            return Ok(());
        }
        let run_id = run.id.as_str();
        let now = self.now();
        let mut done = RunRecord {
            finished_at: Some(now),
            ..run.clone()
        };
        if run.failing {
            done.status = RunStatus::Failed;
        } else {
            let scope = self.output_scope(wf, &run).await?;
            match output::run_output(wf, &self.renderer, &scope) {
                Ok(v) => {
                    done.status = RunStatus::Succeeded;
                    done.output = Some(
                        self.store_value(&format!("runs/{run_id}/output.json"), v)
                            .await?,
                    );
                }
                Err(e) => {
                    done.status = RunStatus::Failed;
                    done.error = Some(ErrorInfo::new(
                        "expression",
                        format!("the run output failed to render: {}", e.message),
                    ));
                }
            }
        }
        self.keep_payloads(&done).await?;
        if self.ports.store.finish_run(&done).await? {
            self.ended(&done, now).await?;
        }
        Ok(())
    }
}
