//! What a sweep must repair in one run.
//!
//! The queues are only wake-ups; the records are the truth. Any message can be lost
//! between a state write and its send (a crash, a dropped message), so the sweeper
//! looks at a run's records and names every consequence that should have followed and
//! did not. Each repair is carried out with the same idempotent operations the handlers
//! use, so repairing something that was not broken changes nothing.

use super::gates;
use crate::model::{
    DispatchMsg, FanOut, RunRecord, RunStatus, StepId, StepKey, StepRecord, StepStatus, Timestamp,
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
    /// A step that should be running or checked but whose message may be lost.
    Dispatch(DispatchMsg),
    /// A running attempt past its lease: it timed out or its worker died.
    ExpireLease { key: StepKey, attempt: u32 },
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
}

/// Lists the repairs `run` needs at `now`. A message younger than `stale` (at least
/// twice [`gates::CLAIM_DELAY`]) is presumed still on its way and is not re-sent.
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
    if gates::run_is_done(steps) {
        return vec![Repair::FinishRun];
    }
    // A message is not presumed lost while a task it started may still be unclaimed.
    let stale = gates::presumed_lost_after(stale);
    let overdue = |t: Option<Timestamp>| t.is_none_or(|t| t + stale <= now);
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
        let dispatch = |attempt| {
            Repair::Dispatch(DispatchMsg {
                run_id: run.id.clone(),
                key: rec.key.clone(),
                attempt,
                resume: false,
            })
        };
        match rec.status {
            StepStatus::Running => {
                if rec.lease_until.is_some_and(|l| l <= now) {
                    out.push(Repair::ExpireLease {
                        key: rec.key.clone(),
                        attempt: rec.attempt,
                    });
                } else if let (true, Some(f)) = (top_level, rec.fan_out) {
                    out.extend(fan_out_repairs(run, step, rec, &f, steps, now, stale));
                }
            }
            // A failing run starts nothing new: what waits to run is cancelled (a pending
            // iteration by its stopping fan-out), once nothing may be running it
            // unrecorded — its message, or its own final write, settles it before that.
            StepStatus::Ready
            | StepStatus::Retrying
            | StepStatus::Waiting
            | StepStatus::Pending
                if run.failing
                    && (top_level || rec.status != StepStatus::Pending)
                    && gates::fail_fast_cancels(wf, rec, |n| top.get(n).copied(), now, stale) =>
            {
                out.push(Repair::Cancel(rec.key.clone()));
            }
            // Left to what may be running it (a pending iteration, to its fan-out).
            _ if run.failing => {}
            StepStatus::Ready | StepStatus::Retrying if overdue(rec.due_at) => {
                out.push(dispatch(rec.attempt + 1))
            }
            StepStatus::Waiting if overdue(rec.due_at) => out.push(dispatch(rec.attempt)),
            StepStatus::Pending if top_level => {
                let need = |n: &str| top.get(n).copied();
                if step.needs.is_empty() {
                    out.push(Repair::ReleaseRoot(rec.key.clone()));
                    continue;
                }
                // Every need released, but not made ready: a release of several writes
                // stopped before its last. Its message runs it from pending.
                if gates::is_ready(step, &rec.satisfied)
                    && !gates::released_lately(wf, step, need, now, stale)
                {
                    out.push(dispatch(1));
                    continue;
                }
                // A need that ended lately may be releasing it still (or running it
                // in place of a release, see `eager`).
                let passed: Vec<&String> = step
                    .needs
                    .iter()
                    .filter(|n| {
                        top.get(n.as_str()).zip(wf.step(n)).is_some_and(|(r, s)| {
                            gates::lets_dependents_run(s, r.status) && overdue(r.finished_at)
                        })
                    })
                    .collect();
                out.extend(
                    passed
                        .into_iter()
                        .filter(|n| !rec.satisfied.contains(n))
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
    lost_after: chrono::TimeDelta,
) -> Vec<Repair> {
    let overdue = |t: Option<Timestamp>| t.is_none_or(|t| t + lost_after <= now);
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
    // A stopping fan-out cancels what has not started; a launched iteration overdue is
    // sent again below, and its message cancels it.
    if gates::fan_out_stopping(step, f, run.failing) {
        let before = |i: u32| {
            i.checked_sub(f.lanes.max(1))
                .and_then(|b| iterations.get(&b).copied())
        };
        if iterations
            .iter()
            .any(|(&i, r)| gates::cancels_iteration(f, r, before(i), now, lost_after))
        {
            out.extend(fan_in());
        }
    }
    for (&i, rec) in &iterations {
        if rec.status != StepStatus::Pending || rec.attempt != 0 {
            continue;
        }
        let due_since = match i.checked_sub(f.lanes.max(1)) {
            None => Some(parent.started_at),
            Some(prev) => iterations
                .get(&prev)
                .filter(|p| p.status.is_final())
                .map(|p| p.finished_at),
        };
        if due_since.is_some_and(overdue) {
            out.push(Repair::Dispatch(DispatchMsg::first(
                &run.id,
                rec.key.clone(),
            )));
        }
    }
    out
}
