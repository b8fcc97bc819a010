//! Complete: record an attempt's outcome with a guarded write, then carry out what
//! follows (see [`super::settle`]).
//!
//! The dispatcher records the outcomes of the tasks it runs by calling [`Handlers::complete`]
//! directly; the result queue carries the outcomes that arrive on their own: a `wait`
//! that is over, an attempt whose lease expired (from the tick), and later callbacks,
//! approvals and signals.

use super::settle::run_error;
use super::{HandlerResult, Handlers};
use braid_engine::gates;
use braid_engine::model::{
    Data, DispatchMsg, ErrorInfo, FanOut, Outcome, ResultMsg, StepRecord, StepStatus,
};
use braid_engine::verdict::{self, Verdict};
use braid_lang::Workflow;
use braid_ports::Guard;

/// The statuses an attempt can be recorded from: running, or waiting for a `wait` step.
const IN_FLIGHT: &[StepStatus] = &[StepStatus::Running, StepStatus::Waiting];

impl Handlers {
    /// Records an outcome, from a "result" message or straight from the dispatcher.
    /// A duplicate or stale result finds the guard false and changes nothing.
    pub async fn complete(&self, msg: &ResultMsg) -> HandlerResult<()> {
        let run = self.ports.store.get_run(&msg.run_id).await?;
        let rec = self.ports.store.get_step(&msg.run_id, &msg.key).await?;
        let wf = self.workflow(&run).await?;
        self.record(&wf, rec, msg).await
    }

    /// Records `msg`'s outcome on `rec`, the step's record as last read.
    pub(super) async fn record(
        &self,
        wf: &Workflow,
        rec: StepRecord,
        msg: &ResultMsg,
    ) -> HandlerResult<()> {
        if !Guard::at(IN_FLIGHT, msg.attempt).holds(&rec) {
            return Ok(());
        }
        // The write holds only while the record is as read: whatever moved it since
        // decided for it (and only a waiting step carries a timer to take out).
        let guard = Guard::at(&[rec.status], msg.attempt);
        self.record_held(wf, &guard, rec, msg).await
    }

    /// Records `msg`'s outcome on `rec`, the attempt as it ran, if the stored record
    /// still meets `guard`.
    pub(super) async fn record_held(
        &self,
        wf: &Workflow,
        guard: &Guard,
        rec: StepRecord,
        msg: &ResultMsg,
    ) -> HandlerResult<()> {
        let now = self.now();
        // A parked step only ever ends by its wake-up; a lease expiry sent while it was
        // still running arrives late and means nothing now.
        if rec.status == StepStatus::Waiting && !matches!(msg.outcome, Outcome::Succeeded { .. }) {
            return Ok(());
        }
        let Some(step) = wf.step(&msg.key.step) else {
            return Ok(());
        };
        match verdict::decide(step, msg.attempt, &msg.outcome, now, fastrand::f64()) {
            Verdict::Retry { due_at, error } => {
                let retrying = StepRecord {
                    status: StepStatus::Retrying,
                    lease_until: None,
                    due_at: Some(due_at),
                    error: Some(error),
                    ..rec.clone()
                };
                if self.ports.store.update_step(guard, &retrying).await? {
                    let delay = (due_at - now).to_std().unwrap_or_default();
                    // Longer than the queue can delay: the sweeper fires it from `due_at`.
                    if delay <= self.settings.max_queue_delay {
                        let next = DispatchMsg {
                            run_id: rec.run_id.clone(),
                            key: rec.key.clone(),
                            attempt: rec.attempt + 1,
                            resume: false,
                        };
                        self.send_dispatch(vec![(next, delay)]).await?;
                    }
                }
                Ok(())
            }
            Verdict::Expand { items, total } => self.expand(wf, guard, rec, items, total).await,
            Verdict::Final {
                status,
                output,
                error,
            } => {
                let done = StepRecord {
                    status,
                    output,
                    error,
                    lease_until: None,
                    due_at: None,
                    finished_at: Some(now),
                    ..rec
                };
                // A failure that fails the run says so in the same write (see the port).
                let fail_run = done
                    .error
                    .as_ref()
                    .filter(|_| gates::fails_run(step, status))
                    .map(|e| match done.key.index {
                        Some(i) => run_error(
                            &step.id,
                            &ErrorInfo::new(
                                e.error.clone(),
                                format!("iteration {i} failed: {}", e.message),
                            ),
                        ),
                        None => run_error(&step.id, e),
                    });
                if let Some(fin) = self
                    .ports
                    .store
                    .finalize_step(guard, &done, fail_run.as_ref())
                    .await?
                {
                    self.settle(wf, fin.run, &done, fin.parent, true).await?;
                }
                Ok(())
            }
        }
    }

    /// Records a fan-out — its items and lanes on the `for_each` step, in one write
    /// (an iteration has no record before its first write) — then starts its lanes.
    async fn expand(
        &self,
        wf: &braid_lang::Workflow,
        guard: &Guard,
        rec: StepRecord,
        items: Data,
        total: u32,
    ) -> HandlerResult<()> {
        let lanes = wf
            .step(&rec.key.step)
            .map_or(total, |s| gates::max_in_flight(s, total));
        let fan_out = FanOut {
            total,
            lanes,
            ..FanOut::default()
        };
        // The fan-out step holds no lease: its iterations have their own.
        let parent = StepRecord {
            fan_out: Some(fan_out),
            items: Some(items),
            lease_until: None,
            ..rec
        };
        if self.ports.store.update_step(guard, &parent).await? {
            let run = self.ports.store.get_run(&parent.run_id).await?;
            self.launch_lanes(wf, &run, parent).await?;
        }
        Ok(())
    }
}
