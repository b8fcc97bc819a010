//! Retrying a run in place (a redrive): a run that failed, was cancelled or timed out
//! goes on from where it stopped. Steps that succeeded (or were skipped) keep their
//! outputs; the others — or, with `from`, that step — run again with everything
//! downstream of them, with fresh attempts.
//!
//! A retry is recorded on the run first ([`RunRecord::redrives`], in the same write
//! that reopens it), then each step it names is reset by the step lifecycle
//! ([`crate::lifecycle::Event::Redriven`]), each reset guarded and idempotent. Until
//! every step named is reset the run is not over ([`unreset`]): a crash part-way
//! leaves the list for the tick to finish.

use crate::gates;
use crate::model::{Redrive, RunRecord, RunStatus, StepRecord, StepStatus, Timestamp};
use braid_lang::Workflow;
use std::collections::HashSet;

/// Why a run cannot be retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It has not ended (or has not finished closing its end).
    NotOver(RunStatus),
    /// It succeeded: there is nothing to run again (a fork can still start from a step).
    Succeeded,
    /// `from` names no step of its workflow.
    UnknownStep(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotOver(s) => write!(
                f,
                "it is {s}: only a run that failed, was cancelled or timed out is retried"
            ),
            Refusal::Succeeded => f.write_str(
                "it succeeded: only a run that failed, was cancelled or timed out is retried",
            ),
            Refusal::UnknownStep(s) => write!(f, "its workflow has no step `{s}`"),
        }
    }
}

/// The top-level steps a retry runs again, in the workflow's order: those that did
/// not succeed nor were skipped (with `from`, that step too) and every step downstream
/// of them. `steps` are the run's top-level records ([`crate::records::every_step`]).
pub fn reruns(
    wf: &Workflow,
    steps: &[StepRecord],
    from: Option<&str>,
) -> Result<Vec<String>, Refusal> {
    if let Some(f) = from
        && wf.step(f).is_none()
    {
        return Err(Refusal::UnknownStep(f.to_string()));
    }
    let kept = |id: &str| {
        steps.iter().any(|r| {
            r.key.index.is_none()
                && r.key.step == id
                && matches!(r.status, StepStatus::Succeeded | StepStatus::Skipped)
        })
    };
    let mut rerun: HashSet<&str> = wf
        .steps
        .iter()
        .map(|s| s.id.as_str())
        .filter(|id| !kept(id) || Some(*id) == from)
        .collect();
    // The workflow's order is a topological one: a need comes before its dependents.
    for s in &wf.steps {
        if s.needs.iter().any(|n| rerun.contains(n.as_str())) {
            rerun.insert(s.id.as_str());
        }
    }
    Ok(wf
        .steps
        .iter()
        .filter(|s| rerun.contains(s.id.as_str()))
        .map(|s| s.id.clone())
        .collect())
}

/// The run `run` reopened by a retry of `steps` asked by `by` at `now`: running, its
/// failure, cancellation and end cleared, its deadline from now, the retry recorded.
/// A run of a workflow with a concurrency limit holds a slot again (the store takes
/// it in the same write).
pub fn reopened(
    wf: &Workflow,
    run: &RunRecord,
    steps: Vec<String>,
    from: Option<&str>,
    by: &str,
    now: Timestamp,
) -> Result<RunRecord, Refusal> {
    match run.status {
        RunStatus::Failed | RunStatus::Cancelled | RunStatus::TimedOut if !run.closing => {}
        RunStatus::Succeeded => return Err(Refusal::Succeeded),
        s => return Err(Refusal::NotOver(s)),
    }
    let mut redrives = run.redrives.clone();
    redrives.push(Redrive {
        by: by.to_string(),
        at: now,
        from: from.map(str::to_string),
        was: run.status,
        steps,
    });
    Ok(RunRecord {
        status: RunStatus::Running,
        finished_at: None,
        deadline: crate::start::deadline(wf, now),
        failing: false,
        output: None,
        error: None,
        slot: run.limit.is_some(),
        closing: false,
        cancel: None,
        redrives,
        // SLAs count from the run's first start: a retry, maybe days later, is
        // past them all.
        sla_due: None,
        ..run.clone()
    })
}

/// The needs of `step` that a retry of `rerun` leaves letting it run: those kept,
/// as their records (`steps`) say.
pub fn satisfied(
    wf: &Workflow,
    step: &braid_lang::Step,
    steps: &[StepRecord],
    rerun: &[String],
) -> Vec<String> {
    step.needs
        .iter()
        .filter(|n| !rerun.contains(n))
        .filter(|n| {
            let need = wf.step(n);
            steps
                .iter()
                .find(|r| r.key.index.is_none() && r.key.step == **n)
                .zip(need)
                .is_some_and(|(r, s)| gates::lets_dependents_run(s, r.status))
        })
        .cloned()
        .collect()
}

/// The steps `run`'s last retry names whose records (`steps`, top-level, those not
/// written yet included: the reset writes them) it has not reset yet.
pub fn unreset<'a>(run: &'a RunRecord, steps: &'a [StepRecord]) -> Vec<&'a str> {
    let Some(last) = run.redrives.last() else {
        return Vec::new();
    };
    let drive = run.drive();
    last.steps
        .iter()
        .filter(|id| {
            steps
                .iter()
                .find(|r| r.key.index.is_none() && r.key.step == **id)
                .is_some_and(|r| r.drive < drive)
        })
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests;
