//! A run's step records as the engine reads them. A step's record is written when the
//! step first changes: a run is created with its root steps' records only (see
//! [`super::start`]), and the others are pending until released or run. What is not
//! written yet is what [`unwritten`] says.

use crate::model::{RunId, StepKey, StepRecord, StepStatus};
use braid_lang::Workflow;

/// Top-level step `step` of run `run_id` before its first write: pending, no attempt.
pub fn unwritten(run_id: &RunId, step: &str) -> StepRecord {
    StepRecord::new(run_id, StepKey::step(step), StepStatus::Pending)
}

/// The records `written` (a run's, as listed) with every top-level step of `wf` that
/// has none yet, in the workflow's order before the iterations.
pub fn every_step(wf: &Workflow, run_id: &RunId, mut written: Vec<StepRecord>) -> Vec<StepRecord> {
    let iterations: Vec<StepRecord> = written
        .iter()
        .filter(|r| r.key.index.is_some())
        .cloned()
        .collect();
    written.retain(|r| r.key.index.is_none());
    let mut out: Vec<StepRecord> = wf
        .steps
        .iter()
        .map(|s| match written.iter().position(|r| r.key.step == s.id) {
            Some(i) => written.swap_remove(i),
            None => unwritten(run_id, &s.id),
        })
        .collect();
    out.extend(iterations);
    out
}
