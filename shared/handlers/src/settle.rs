//! What follows a step becoming final: releasing dependents, fail fast, fan-in, and
//! finishing the run. Every operation here is idempotent, so the sweeper runs the same
//! code to repair whatever a crash left half done.

use super::eager::FollowUps;
use super::{HandlerResult, Handlers, StepEvents};
use braid_engine::lifecycle::{self, Event};
use braid_engine::model::{
    DispatchMsg, ErrorInfo, LifecycleEvent, RunId, RunRecord, RunStatus, StepId, StepKey,
    StepRecord, StepStatus,
};
use braid_engine::{gates, output, records};
use braid_lang::Workflow;
use std::borrow::Cow;
use std::time::Duration;

impl Handlers {
    /// Carries out the lifecycle's `Retrying` effect for `rec`, just set to retry:
    /// publishes `step.retrying` for a top-level step when all step events are, or
    /// when a `notify` entry wants it (an iteration's retries are its fan-out's own
    /// business, as its end is).
    pub(super) async fn announce_retry(&self, wf: &Workflow, run: &RunRecord, rec: &StepRecord) {
        if let Some(step) = wf.step(&rec.key.step) {
            self.ports
                .metrics
                .observe(&braid_ports::Observation::Retried {
                    workflow: &run.workflow,
                    kind: step.kind.name(),
                });
        }
        if rec.key.index.is_some() {
            return;
        }
        let e = LifecycleEvent::step_retrying(run, rec, self.now());
        if self.settings.step_events == StepEvents::All
            || !braid_engine::notify::wanted(wf, &e).is_empty()
        {
            self.publish(run, vec![e]).await;
        }
    }

    /// Carries out the consequences of `rec` having become final. `fresh` is true when
    /// the caller just made it final (publish its event), false for a sweeper repair.
    ///
    /// A step's end is published when it failed, or with [`StepEvents::All`] when it
    /// is a top-level step: an iteration's `for_each` step reports the whole fan-out,
    /// and an event per successful iteration would flood the bus (and the bill) with
    /// thousands of events nobody routes.
    pub(super) async fn settle(
        &self,
        fu: &FollowUps,
        wf: &Workflow,
        run: RunRecord,
        rec: &StepRecord,
        parent: Option<StepRecord>,
        fresh: bool,
    ) -> HandlerResult<()> {
        let published = rec.status == StepStatus::Failed
            || (rec.key.index.is_none()
                && (self.settings.step_events == StepEvents::All
                    || braid_engine::notify::step_end_wanted(
                        wf,
                        &rec.key.step,
                        rec.status.as_str(),
                    )));
        if fresh && published {
            self.publish(
                &run,
                vec![LifecycleEvent::step_finished(&run, rec, self.now())],
            )
            .await;
        }
        let Some(step) = wf.step(&rec.key.step) else {
            return Ok(());
        };
        // A `workflow` step that ended otherwise than by its child's end.
        if rec.status != StepStatus::Succeeded {
            self.cancel_child(rec).await?;
        }
        if rec.key.index.is_some() {
            return self.follow_lane(fu, wf, &run, rec, parent).await;
        }
        if gates::fails_run(step, rec.status) {
            return self.fail_fast(fu, wf, &run.id).await;
        }
        if !run.failing && gates::lets_dependents_run(step, rec.status) {
            let (mut wake, mut ready) = (Vec::new(), Vec::new());
            for dependent in wf.dependents(&step.id) {
                // One that only this step held back may run next in this delivery,
                // released in memory only.
                // Not in a run retried in place, whose dependent may have a record
                // at a later attempt.
                if dependent.needs == [step.id.as_str()] && run.redrives.is_empty() {
                    let released = StepRecord {
                        satisfied: vec![step.id.clone()],
                        ..records::unwritten(&run.id, &dependent.id)
                    };
                    if fu.keep_released(&released, &run) {
                        continue;
                    }
                }
                if let Some(rec) = self.release(&run.id, dependent, &rec.key.step).await? {
                    wake.push((DispatchMsg::next(&rec), Duration::ZERO));
                    ready.push(rec);
                }
            }
            self.send_dispatch_of(fu, &run, wake, &ready).await?;
        } else if run.failing {
            // Not released, so never to run: cancelled here (fail fast may have run
            // before this step's final write).
            for dependent in wf.dependents(&step.id) {
                let key = StepKey::step(&dependent.id);
                if let Some(pending) = self
                    .step_or_iteration(&run.id, &key, None)
                    .await?
                    .filter(|r| r.status == StepStatus::Pending)
                {
                    self.cancel(fu, wf, &run, &pending).await?;
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
    /// new step starts; steps that have not started are cancelled, and each running
    /// fan-out stops its iterations; attempts in flight finish and are recorded; the
    /// run fails when nothing is open.
    pub(super) async fn fail_fast(
        &self,
        fu: &FollowUps,
        wf: &Workflow,
        run_id: &RunId,
    ) -> HandlerResult<()> {
        let run = self.ports.store.get_run(run_id).await?;
        let written = self.ports.store.list_steps(run_id).await?;
        let all = records::every_step(wf, run_id, written);
        for rec in &all {
            // A fan-out stops its own iterations (see `advance_fan_out`).
            if rec.key.index.is_some() {
                continue;
            }
            if gates::fail_fast_cancels(rec) {
                self.cancel(fu, wf, &run, rec).await?;
            } else if rec.status == StepStatus::Running && rec.fan_out.is_some() {
                self.advance_fan_out(fu, wf, &run, rec.clone()).await?;
            }
        }
        self.finish_if_done(wf, run_id, None).await
    }

    /// Cancels a step (or iteration) of `run` that has not started or is between
    /// attempts, and settles it.
    pub(super) async fn cancel(
        &self,
        fu: &FollowUps,
        wf: &Workflow,
        run: &RunRecord,
        rec: &StepRecord,
    ) -> HandlerResult<()> {
        self.apply(fu, wf, run, rec, Event::FailFast).await
    }

    /// Cancels iteration `rec` of a stopping fan-out, the write alone: the caller fans
    /// in next, which is all its settling would do. True if this call cancelled it.
    async fn cancel_iteration(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        rec: &StepRecord,
    ) -> HandlerResult<bool> {
        let Some(step) = wf.step(&rec.key.step) else {
            return Ok(false);
        };
        let t = lifecycle::decide(rec, Event::FailFast, &self.context(step, run));
        let Some(w) = t.write else {
            return Ok(false);
        };
        Ok(self
            .ports
            .store
            .finalize_step(&w.guard, &w.record, None)
            .await?
            .is_some())
    }

    /// Starts a fan-out's lanes: the first iteration of each, right after its expansion
    /// (or fans in at once when there is nothing to iterate). Sends only: a pending
    /// iteration is claimed straight from its message, without a read of its record
    /// when none can have been written (a first expansion: a run retried in place may
    /// have kept some). All go to the queue (none is run eagerly), so the first wave
    /// starts together.
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
            return self
                .advance_fan_out(&FollowUps::none(), wf, run, parent)
                .await;
        }
        let step = &parent.key.step;
        let msgs = f
            .lane_starts()
            .map(|i| {
                (
                    DispatchMsg {
                        unwritten: f.base == 0,
                        ..DispatchMsg::next(&f.iteration(&run.id, step, i))
                    },
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
        fu: &FollowUps,
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
                        self.step_or_iteration(
                            &run.id,
                            &StepKey::iteration(step_id, i),
                            Some(rec.retry_base),
                        )
                        .await?
                    }
                    None => None,
                };
                if let Some(pending) = next.filter(|r| r.status == StepStatus::Pending) {
                    self.cancel_iteration(wf, run, &pending).await?;
                }
                return self.advance_fan_out(fu, wf, run, parent).await;
            }
        }
        if let Some(next) = rec.next_in_lane {
            // The iterations of one expansion share their first attempt (its base).
            let msg = DispatchMsg {
                attempt: rec.retry_base + 1,
                ..DispatchMsg::first(&run.id, StepKey::iteration(step_id, next))
            };
            // Launched only here, so it has no record yet (at worst a race wrote one,
            // which its guard then finds) — unless its run was retried in place (a base
            // above zero), which may have kept its record from before: then it is read.
            let unwritten = match rec.retry_base {
                0 => {
                    self.unwritten_iteration(&run.id, step_id, next, Some(rec.retry_base))
                        .await?
                }
                _ => None,
            };
            return self
                .send_dispatch_of(fu, run, vec![(msg, Duration::ZERO)], unwritten.as_slice())
                .await;
        }
        // The lane's end. Its count is a hint: the fan-in reads the records.
        match self.ports.store.end_lane(&run.id, &step_id.into()).await? {
            Some(p) if p.fan_out.is_some_and(|f| f.ended >= f.lanes) => {
                self.advance_fan_out(fu, wf, run, p).await
            }
            _ => Ok(()),
        }
    }

    /// Fans a running `for_each` step in once its iterations are over, from their
    /// records. A stopping fan-out (an iteration failed for good, or the run is
    /// failing) first cancels every iteration not running (see
    /// [`gates::cancels_iteration`]) — so none starts after this, a claim racing it
    /// finds its guard false — and ends when those in flight are recorded.
    pub(super) async fn advance_fan_out(
        &self,
        fu: &FollowUps,
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
            for it in iterations.iter_mut() {
                if !gates::cancels_iteration(it) {
                    continue;
                }
                if self.cancel_iteration(wf, run, it).await? {
                    it.status = StepStatus::Cancelled;
                } else {
                    // Claimed meanwhile: it runs, and its end comes back here.
                    *it = self.ports.store.get_step(run_id, &it.key).await?;
                }
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
        let (status, output) = if failed_for_good {
            (StepStatus::Failed, None)
        } else {
            let key = format!("runs/{run_id}/{step_id}/output.json");
            (status, Some(self.store_value(&key, list).await?))
        };
        let event = Event::FannedIn {
            status,
            output: output.as_ref(),
            error: first_error.as_ref(),
        };
        self.apply(fu, wf, run, &parent, event).await
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

    /// Finishes `run`, whose steps are all final, once. A run retried in place is
    /// not over while its retry has steps left to reset (which still show their
    /// earlier end).
    async fn finish(&self, wf: &Workflow, run: RunRecord) -> HandlerResult<()> {
        if run.status.is_final() {
            return Ok(());
        }
        if !run.redrives.is_empty() {
            let written = self.ports.store.list_steps(&run.id).await?;
            let all = records::every_step(wf, &run.id, written);
            if !braid_engine::redrive::unreset(&run, &all).is_empty() {
                return Ok(());
            }
        }
        let run_id = run.id.as_str();
        let now = self.now();
        let mut done = RunRecord {
            finished_at: Some(now),
            closing: true,
            ..run.clone()
        };
        if run.cancel.is_some() {
            done.status = RunStatus::Cancelled;
        } else if run.failing {
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
