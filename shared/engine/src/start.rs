//! The records of a new run.

use crate::model::{
    DispatchMsg, RunId, RunRecord, RunStatus, StepKey, StepRecord, StepStatus, Timestamp,
};
use braid_lang::Workflow;
use serde_json::Value;

/// What starting a run writes and sends.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    pub run: RunRecord,
    /// One record per step: roots `ready`, the rest `pending`.
    pub steps: Vec<StepRecord>,
    /// A "ready" message per root step, sent once the records are stored.
    pub dispatch: Vec<DispatchMsg>,
}

/// Who starts the run and with what.
#[derive(Debug, Clone, PartialEq)]
pub struct StartInfo {
    pub run_id: RunId,
    pub version: String,
    /// Params as resolved by [`super::params::resolve`].
    pub params: Value,
    pub trigger: Value,
    pub idempotency_key: Option<String>,
    /// A concurrency limit: the run is planned `queued`, its roots `pending` and nothing
    /// sent; it starts when it takes a slot ([`admit`]).
    pub limit: Option<u32>,
}

/// When a run started at `now` times out; none when that is beyond the calendar
/// (`timeout: 100000000d`), which is never all the same.
pub fn deadline(wf: &Workflow, now: Timestamp) -> Option<Timestamp> {
    wf.timeout
        .and_then(|t| chrono::Duration::from_std(t).ok())
        .and_then(|t| now.checked_add_signed(t))
}

/// Plans a new run: every step gets its record up front, so the run's progress is
/// always visible and its end is seen from its step records. A run under a
/// concurrency limit is planned queued: nothing runs and its time does not count
/// until it is admitted.
pub fn plan(wf: &Workflow, info: StartInfo, now: Timestamp) -> RunPlan {
    let queued = info.limit.is_some();
    let run = RunRecord {
        id: info.run_id.clone(),
        workflow: wf.name.clone(),
        version: info.version,
        status: if queued {
            RunStatus::Queued
        } else {
            RunStatus::Running
        },
        params: info.params,
        trigger: info.trigger,
        // Set by the handlers when the input is big (they hold the payload store).
        params_ref: None,
        trigger_ref: None,
        created_at: now,
        finished_at: None,
        deadline: if queued { None } else { deadline(wf, now) },
        failing: false,
        output: None,
        error: None,
        idempotency_key: info.idempotency_key,
        limit: info.limit,
        slot: false,
        closing: false,
        parent: None,
        cancel: None,
        redrives: Vec::new(),
        forked_from: None,
        notices: Vec::new(),
        sla_due: crate::sla::first_due(wf, now),
        sla_missed: Vec::new(),
    };
    // Only the root steps are written: the others are pending until they first change
    // (see `braid_ports::Guard::admits_absent`).
    let mut steps = Vec::new();
    let mut dispatch = Vec::new();
    for s in wf.steps.iter().filter(|s| s.needs.is_empty()) {
        let root = !queued;
        let mut rec = StepRecord::new(
            &info.run_id,
            StepKey::step(&s.id),
            if root {
                StepStatus::Ready
            } else {
                StepStatus::Pending
            },
        );
        if root {
            rec.due_at = Some(now);
            dispatch.push(DispatchMsg::first(&info.run_id, rec.key.clone()));
        }
        steps.push(rec);
    }
    RunPlan {
        run,
        steps,
        dispatch,
    }
}

/// Plans a fork of a run whose top-level records are `source`: a new run (as
/// [`plan`] makes it, queued under a limit) in which the steps not in `rerun` start
/// as they ended in the source — succeeded or skipped, with their outputs — and those
/// in `rerun` run, the ones whose needs are all kept at once. The outputs are the
/// source's as recorded: the handlers copy those kept by reference into the new run.
pub fn fork(
    wf: &Workflow,
    info: StartInfo,
    source: &[StepRecord],
    rerun: &[String],
    now: Timestamp,
) -> RunPlan {
    let mut plan = plan(wf, info, now);
    let queued = plan.run.status == RunStatus::Queued;
    let id = plan.run.id.clone();
    plan.steps.clear();
    plan.dispatch.clear();
    for s in &wf.steps {
        if !rerun.contains(&s.id) {
            let kept = source
                .iter()
                .find(|r| r.key.index.is_none() && r.key.step == s.id.as_str());
            if let Some(src) = kept {
                plan.steps.push(StepRecord {
                    run_id: id.clone(),
                    // Its iterations stay with the source: nothing here reads them.
                    items: None,
                    resends: 0,
                    child_run: src.child_run.clone(),
                    ..src.clone()
                });
            }
            continue;
        }
        let satisfied = crate::redrive::satisfied(wf, s, source, rerun);
        let ready = !queued && crate::gates::is_ready(s, &satisfied);
        let mut rec = StepRecord::new(
            &id,
            StepKey::step(&s.id),
            if ready {
                StepStatus::Ready
            } else {
                StepStatus::Pending
            },
        );
        rec.satisfied = satisfied;
        if ready {
            rec.due_at = Some(now);
            plan.dispatch.push(DispatchMsg::first(&id, rec.key.clone()));
        }
        plan.steps.push(rec);
    }
    plan
}

/// The top-level steps of a run admitted from the queue that start with it: those
/// pending whose needs are all met (a new run's roots; a fork's steps whose needs it
/// kept). `records` are the run's top-level records ([`crate::records::every_step`]).
pub fn startable(wf: &Workflow, records: &[StepRecord]) -> Vec<StepKey> {
    records
        .iter()
        .filter(|r| r.key.index.is_none() && r.status == StepStatus::Pending)
        .filter(|r| {
            wf.step(&r.key.step)
                .is_some_and(|s| crate::gates::is_ready(s, &r.satisfied))
        })
        .map(|r| r.key.clone())
        .collect()
}

/// What admitting a queued run writes and sends once it took a slot: the run running
/// (its deadline from now), its root steps ready, a "ready" message each.
pub fn admit(wf: &Workflow, queued: &RunRecord, now: Timestamp) -> (RunRecord, Vec<StepKey>) {
    let run = RunRecord {
        status: RunStatus::Running,
        deadline: deadline(wf, now),
        slot: true,
        closing: false,
        parent: None,
        cancel: None,
        ..queued.clone()
    };
    let roots = roots(wf);
    (run, roots)
}

/// The steps that need nothing.
pub fn roots(wf: &Workflow) -> Vec<StepKey> {
    wf.steps
        .iter()
        .filter(|s| s.needs.is_empty())
        .map(|s| StepKey::step(&s.id))
        .collect()
}
