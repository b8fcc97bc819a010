//! What a sweep must repair in one run.
//!
//! The queues are only wake-ups; the records are the truth. Any message can be lost
//! between a state write and its send (a crash, a dropped message), so the sweeper
//! looks at a run's records and names every consequence that should have followed and
//! did not. Each repair is carried out with the same idempotent operations the handlers
//! use, so repairing something that was not broken changes nothing.

use super::{gates, lifecycle};
use crate::model::{
    FanOut, RunRecord, RunStatus, StepId, StepKey, StepRecord, StepStatus, Timestamp,
};
use braid_lang::Step;
use braid_lang::Workflow;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// One repair.
#[derive(Debug, Clone, PartialEq)]
pub enum Repair {
    /// The run's deadline passed.
    TimeOut,
    /// Every step is final but the run is not.
    FinishRun,
    /// A final step whose consequences (releasing dependents, fail fast, fan-in) may
    /// not have been carried out.
    Settle(StepKey),
    /// A step not started whose message may be lost: re-send it, counted (see
    /// [`crate::lifecycle::Event::Lost`]).
    Resend(StepKey),
    /// A running attempt past its lease `lease`: it timed out or its worker died.
    ExpireLease {
        key: StepKey,
        attempt: u32,
        lease: Timestamp,
    },
    /// A step that can no longer run because the run is failing.
    Cancel(StepKey),
    /// A running `for_each` step whose iterations are over, or that is stopping with
    /// iterations left to cancel: try its fan-in.
    AdvanceFanOut(StepId),
    /// A queued run: admit it (and the runs queued before it) if a slot is free.
    Admit,
    /// A root step of an admitted run still pending: the admission stopped before
    /// making it ready.
    ReleaseRoot(StepKey),
    /// A run retried in place with steps its retry has not reset yet: reset them
    /// (see [`crate::redrive`]).
    CompleteRedrive,
}

/// Lists the repairs `run` needs at `now`. A message younger than `stale` (doubled for
/// each re-send, see [`lifecycle::resend_due`]) is presumed still on its way.
pub fn reconcile(
    wf: &Workflow,
    run: &RunRecord,
    steps: &[StepRecord],
    now: Timestamp,
    stale: Duration,
) -> Vec<Repair> {
    if run.status.is_final() {
        return Vec::new();
    }
    if run.status == RunStatus::Queued {
        return vec![Repair::Admit];
    }
    if run.deadline.is_some_and(|d| d <= now) {
        return vec![Repair::TimeOut];
    }
    if !run.redrives.is_empty() {
        let all = crate::records::every_step(wf, &run.id, steps.to_vec());
        if !crate::redrive::unreset(run, &all).is_empty() {
            return vec![Repair::CompleteRedrive];
        }
    }
    if gates::run_is_done(steps) {
        return vec![Repair::FinishRun];
    }
    let overdue = |rec: &StepRecord, since: Option<Timestamp>| {
        lifecycle::resend_due(rec, since.unwrap_or(Timestamp::MIN_UTC), now, stale)
    };
    let top: HashMap<&str, &StepRecord> = steps
        .iter()
        .filter(|r| r.key.index.is_none())
        .map(|r| (r.key.step.as_str(), r))
        .collect();
    let mut out = Vec::new();
    for rec in steps {
        let Some(step) = wf.step(&rec.key.step) else {
            continue;
        };
        let top_level = rec.key.index.is_none();
        match rec.status {
            StepStatus::Running => {
                if let Some(lease) = rec.lease_until.filter(|l| *l <= now) {
                    out.push(Repair::ExpireLease {
                        key: rec.key.clone(),
                        attempt: rec.attempt,
                        lease,
                    });
                } else if let (true, Some(f)) = (top_level, rec.fan_out) {
                    out.extend(fan_out_repairs(run, step, rec, &f, steps, now, stale));
                }
            }
            // A failing run starts nothing new: what has not started is cancelled (a
            // pending iteration by its stopping fan-out).
            _ if run.failing && gates::fail_fast_cancels(rec) => {
                out.push(Repair::Cancel(rec.key.clone()));
            }
            _ if run.failing => {}
            // Waiting for good (without a timeout): no timer to lose. But a signal or
            // `workflow` step's look for what ended its wait before it parked (a signal
            // kept, a child over) may have been cut short (a failed call, a crash), and
            // that is sent once: its message is sent again — from its claim, less and
            // less often — to look again.
            StepStatus::Waiting
                if rec.due_at.is_none()
                    && matches!(
                        lifecycle::waiter(step),
                        Some(lifecycle::Waiter::Signal | lifecycle::Waiter::ChildRun)
                    )
                    && overdue(rec, rec.started_at) =>
            {
                out.push(Repair::Resend(rec.key.clone()))
            }
            StepStatus::Waiting if rec.due_at.is_none() => {}
            StepStatus::Ready | StepStatus::Retrying | StepStatus::Waiting
                if overdue(rec, rec.due_at) =>
            {
                out.push(Repair::Resend(rec.key.clone()))
            }
            StepStatus::Pending if top_level => {
                if step.needs.is_empty() {
                    out.push(Repair::ReleaseRoot(rec.key.clone()));
                    continue;
                }
                let ended = |n: &String| {
                    top.get(n.as_str())
                        .zip(wf.step(n))
                        .filter(|(r, s)| gates::lets_dependents_run(s, r.status))
                        .map(|(r, _)| r.finished_at)
                };
                // Every need released, but not made ready: re-sent from when the last
                // need ended (or the last re-send).
                if gates::is_ready(step, &rec.satisfied) {
                    let since = step.needs.iter().filter_map(ended).max().flatten();
                    if overdue(rec, rec.due_at.or(since)) {
                        out.push(Repair::Resend(rec.key.clone()));
                    }
                    continue;
                }
                // A need that ended lately may be releasing it still (or its delivery
                // may be running it next, see `braid_handlers::eager`).
                out.extend(
                    step.needs
                        .iter()
                        .filter(|n| !rec.satisfied.contains(n))
                        .filter(|n| ended(n).is_some_and(|t| overdue(rec, t)))
                        .map(|n| Repair::Settle(StepKey::step(n))),
                );
            }
            _ => {}
        }
    }
    out.dedup();
    out
}

/// What a running fan-out needs: its fan-in when its iterations are over (or, stopping,
/// when some are left to cancel), else the message of each lane's next iteration that
/// is still pending well after it was due — the first of a lane after the expansion,
/// a later one after the iteration before it in its lane ended.
fn fan_out_repairs(
    run: &RunRecord,
    step: &Step,
    parent: &StepRecord,
    f: &FanOut,
    steps: &[StepRecord],
    now: Timestamp,
    stale: Duration,
) -> Vec<Repair> {
    // Those not written yet are pending (see `FanOut::iteration`).
    let all = f.iterations(&run.id, &parent.key.step, steps.iter().map(Cow::Borrowed));
    let iterations: BTreeMap<u32, &StepRecord> = all
        .iter()
        .filter_map(|r| r.key.index.map(|i| (i, r.as_ref())))
        .collect();
    let fan_in = || vec![Repair::AdvanceFanOut(parent.key.step.clone())];
    if gates::fan_out_over(f, iterations.values().copied()) {
        return fan_in();
    }
    let mut out = Vec::new();
    // A stopping fan-out cancels what has not started.
    if gates::fan_out_stopping(step, f, run.failing) {
        if iterations.values().any(|r| gates::cancels_iteration(r)) {
            out.extend(fan_in());
        }
        return out;
    }
    for (&i, rec) in &iterations {
        if rec.status != StepStatus::Pending || rec.attempt != rec.retry_base {
            continue;
        }
        let due_since = match i.checked_sub(f.lanes.max(1)) {
            None => Some(parent.started_at),
            Some(prev) => iterations
                .get(&prev)
                .filter(|p| p.status.is_final())
                .map(|p| p.finished_at),
        };
        if let Some(since) = due_since
            && lifecycle::resend_due(
                rec,
                rec.due_at.or(since).unwrap_or(Timestamp::MIN_UTC),
                now,
                stale,
            )
        {
            out.push(Repair::Resend(rec.key.clone()));
        }
    }
    out
}
