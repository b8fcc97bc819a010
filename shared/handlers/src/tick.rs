//! The tick: every minute on AWS (every second locally), fire due timers and sweep.
//!
//! Two passes, both ending in [`braid_engine::reconcile`] over one run's records:
//! first the runs the store's timer index says have something due (a retry or wait
//! over, a run deadline) — found by index, so timers fire on time however many runs
//! are active; then one page of all active runs, which repairs what leaves no timer
//! behind (a lost wake-up of a ready step or a lane's next iteration, an attempt whose
//! worker is gone past its lease, a crash between a step's final write and what
//! follows it, a run whose last step finished but which was not closed, a queued run
//! not admitted). Each run swept has its SLAs looked at when they are due.

use super::eager::FollowUps;
use super::{HandlerError, HandlerResult, Handlers};
use braid_engine::lifecycle::{self, Event};
use braid_engine::model::{ErrorInfo, RunId, RunRecord, RunStatus, StepKey};
use braid_engine::reconcile::{Repair, reconcile};
use braid_engine::records;
use braid_lang::{Workflow, format_duration};

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct TickReport {
    /// Runs started by schedules.
    pub scheduled: usize,
    pub runs_checked: usize,
    pub repairs: usize,
    /// Workflows whose queued runs were offered free slots (once each per tick).
    pub admissions: usize,
}

/// The marker holding where the sweeper's next page starts.
const SWEEP_CURSOR: &str = "sweep_cursor";

impl Handlers {
    /// Sweeps the runs with due timers, then one page of active runs (all of them when
    /// there are fewer than `sweep_limit`).
    pub async fn tick(&self) -> HandlerResult<TickReport> {
        let mut report = TickReport::default();
        // Schedules first; their trouble must not stop the sweep.
        match self.fire_schedules().await {
            Ok(started) => report.scheduled = started.len(),
            Err(e) => {
                tracing::warn!(error = %e, "firing schedules failed; the next tick tries again")
            }
        }
        let due = self
            .ports
            .store
            .due_runs(self.now(), self.settings.sweep_limit)
            .await?;
        let mut swept = std::collections::HashSet::new();
        let mut admit = std::collections::BTreeSet::new();
        for run_id in due {
            let run = match self.ports.store.get_run(&run_id).await {
                Ok(run) => run,
                Err(e) => {
                    tracing::warn!(run = %run_id, error = %e, "reading a due run failed; the next tick tries again");
                    continue;
                }
            };
            if run.status.is_final() {
                // An error or a crash after the run's final write: what follows its end
                // is carried out again (a run closed already may still have steps with
                // timers, which this closes).
                let closed = match run.closing {
                    true => self.ended(&run, self.now()).await,
                    false => self.cancel_open_steps(&run).await,
                };
                if let Err(e) = closed {
                    tracing::warn!(run = %run_id, error = %e, "closing a finished run failed; the next tick tries again");
                }
                continue;
            }
            self.sweep_one(&run, &mut report, &mut admit).await;
            swept.insert(run_id);
        }
        let after = self
            .ports
            .store
            .marker(SWEEP_CURSOR)
            .await?
            .map(RunId::from);
        let page = self
            .ports
            .store
            .active_runs(after.as_ref(), self.settings.sweep_limit)
            .await?;
        // A short page reached the end: the next tick starts from the oldest again.
        let next = (page.len() >= self.settings.sweep_limit)
            .then(|| page.last().map(|r| r.id.clone()))
            .flatten();
        if next != after {
            self.ports
                .store
                .set_marker(SWEEP_CURSOR, next.as_deref())
                .await?;
        }
        for run in page.iter().filter(|r| !swept.contains(&r.id)) {
            self.sweep_one(run, &mut report, &mut admit).await;
        }
        // Once per workflow, however many of its runs are queued: an admission takes
        // the oldest queued runs while slots are free.
        for workflow in admit {
            report.admissions += 1;
            if let Err(e) = self.admit(&workflow).await {
                tracing::warn!(%workflow, error = %e, "admitting queued runs failed; the next tick tries again");
            }
        }
        Ok(report)
    }

    /// Sweeps one run, counting it in `report` and adding its workflow to `admit` when
    /// it is queued. One run's trouble must not stop the sweep of the others: a run
    /// that cannot go on is failed, other errors are left for the next tick.
    async fn sweep_one(
        &self,
        run: &RunRecord,
        report: &mut TickReport,
        admit: &mut std::collections::BTreeSet<String>,
    ) {
        report.runs_checked += 1;
        if let Err(e) = self.check_sla(run).await {
            tracing::warn!(run = %run.id, error = %e, "checking the run's SLAs failed; the next tick tries again");
        }
        match self.repair_run(run, admit).await {
            Ok(n) => report.repairs += n,
            Err(HandlerError::Invalid(reason)) => {
                tracing::error!(run = %run.id, %reason, "run cannot go on; failing it");
                let error = ErrorInfo::new("invalid", reason);
                match self.end_run(&run.id, RunStatus::Failed, error).await {
                    Ok(()) => report.repairs += 1,
                    Err(e) => {
                        tracing::warn!(run = %run.id, error = %e, "failing the run failed; the next tick tries again")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "sweeping the run failed; the next tick tries again");
            }
        }
    }

    /// Repairs one run now, admitting queued runs of its workflow if it is queued;
    /// returns how many repairs it applied. The tick sweeps with [`Handlers::tick`];
    /// this is for a process that knows a run needs looking at (a takeover).
    pub async fn sweep_run(&self, run: &RunRecord) -> HandlerResult<usize> {
        let mut admit = std::collections::BTreeSet::new();
        let n = self.repair_run(run, &mut admit).await?;
        for workflow in admit {
            self.admit(&workflow).await?;
        }
        Ok(n)
    }

    /// Repairs one run; returns how many repairs it applied. A queued run's workflow
    /// goes to `admit`, admitted once per tick by the caller.
    async fn repair_run(
        &self,
        run: &RunRecord,
        admit: &mut std::collections::BTreeSet<String>,
    ) -> HandlerResult<usize> {
        let now = self.now();
        let wf = self.workflow(run).await?;
        let written = self.ports.store.list_steps(&run.id).await?;
        let steps = records::every_step(&wf, &run.id, written);
        let repairs = reconcile(&wf, run, &steps, now, self.settings.stale_after);
        let count = repairs.len();
        for repair in repairs {
            match repair {
                Repair::TimeOut => self.time_out(&wf, run).await?,
                Repair::FinishRun => self.finish_if_done(&wf, &run.id, None).await?,
                Repair::Settle(key) => {
                    let rec = self.ports.store.get_step(&run.id, &key).await?;
                    let fresh_run = self.ports.store.get_run(&run.id).await?;
                    if rec.status.is_final() {
                        self.settle(&FollowUps::none(), &wf, fresh_run, &rec, None, false)
                            .await?;
                    }
                }
                Repair::Resend(key) => self.step_event(&wf, run, &key, Event::Lost).await?,
                Repair::ExpireLease {
                    key,
                    attempt,
                    lease,
                } => {
                    let event = Event::LeaseExpired { attempt, lease };
                    self.step_event(&wf, run, &key, event).await?
                }
                Repair::Cancel(key) => self.step_event(&wf, run, &key, Event::FailFast).await?,
                Repair::Admit => {
                    admit.insert(run.workflow.clone());
                }
                Repair::CompleteRedrive => self.complete_redrive(&wf, run).await?,
                Repair::ReleaseRoot(key) => {
                    self.release_roots(run, std::slice::from_ref(&key), now)
                        .await?;
                }
                Repair::AdvanceFanOut(step) => {
                    let parent = self
                        .ports
                        .store
                        .get_step(&run.id, &braid_engine::model::StepKey::step(&step))
                        .await?;
                    self.advance_fan_out(&FollowUps::none(), &wf, run, parent)
                        .await?;
                }
            }
        }
        Ok(count)
    }

    /// Applies `event` to step (or iteration) `key` of `run` as its record now reads.
    async fn step_event(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        key: &StepKey,
        event: Event<'_>,
    ) -> HandlerResult<()> {
        // An iteration not written yet is of its fan-out's expansion as now recorded
        // (a dispatcher may keep one of before the run was retried).
        let base = match key.index {
            Some(_) => self
                .ports
                .store
                .get_step(&run.id, &StepKey::step(&key.step))
                .await?
                .fan_out
                .map(|f| f.base),
            None => None,
        };
        match self.step_or_iteration(&run.id, key, base).await? {
            Some(rec) => self.apply(&FollowUps::none(), wf, run, &rec, event).await,
            None => Ok(()),
        }
    }

    /// Ends a run that passed its deadline.
    async fn time_out(&self, wf: &Workflow, run: &RunRecord) -> HandlerResult<()> {
        let limit = wf.timeout.map(format_duration).unwrap_or_default();
        let error = ErrorInfo::new(
            "timed_out",
            format!("the run exceeded its timeout of {limit}"),
        );
        self.end_run(&run.id, RunStatus::TimedOut, error).await
    }

    /// Ends a run at once with `status` and `error`: the run first (so late results are
    /// dropped), then every step still open is cancelled. Used for timeouts and for
    /// messages that can never be handled, so a run is never left stuck.
    pub async fn end_run(
        &self,
        run_id: &RunId,
        status: RunStatus,
        error: ErrorInfo,
    ) -> HandlerResult<()> {
        let now = self.now();
        let run = self.ports.store.get_run(run_id).await?;
        let done = RunRecord {
            status,
            finished_at: Some(now),
            error: Some(error),
            closing: true,
            ..run.clone()
        };
        self.keep_payloads(&done).await?;
        if self.ports.store.finish_run(&done).await? {
            self.ended(&done, now).await?;
        }
        Ok(())
    }

    /// Cancels every step of a run that is not final (those not written yet too).
    pub(super) async fn cancel_open_steps(&self, run: &RunRecord) -> HandlerResult<()> {
        let now = self.now();
        let written = self.ports.store.list_steps(&run.id).await?;
        // A definition that cannot be read names no step beyond the records.
        let wf = match self.workflow(run).await {
            Ok(wf) => Some(wf),
            Err(HandlerError::Invalid(_)) => None,
            Err(e) => return Err(e),
        };
        let steps = match &wf {
            Some(wf) => records::every_step(wf, &run.id, written),
            None => written,
        };
        for rec in &steps {
            if let Some(w) = lifecycle::run_ended(rec, now).write {
                let held = self
                    .ports
                    .store
                    .finalize_step(&w.guard, &w.record, None)
                    .await?;
                // An attempt in flight ends here, cancelled: its span says so.
                if held.is_some()
                    && let Some(step) = wf.as_ref().and_then(|wf| wf.step(&rec.key.step))
                {
                    self.trace_attempt(run, step, rec, &w.record);
                }
                // A child's end cancels its own children in turn.
                Box::pin(self.cancel_child(&w.record)).await?;
            }
        }
        Ok(())
    }
}
