//! The invariants of child runs and cancels, checked once the world has settled:
//! - a child run is started once per parent attempt (child runs counted by the
//!   parent step and attempt they name);
//! - a `workflow` step that succeeded has its child's output as its own;
//! - a run that is final leaves no child running (a parent step ending otherwise than
//!   by its child, its run's end or a cancel included, cancels the child);
//! - a run whose cancel took (a person's, or its parent step's end) ends `cancelled`:
//!   the request is refused once the run is failing, so it was not failing first —
//!   unless a message that could never be handled ended it `undeliverable`.
//!
//! That no step is claimed after a cancel's scan is checked on each write by the store
//! decorator, and that attempts in flight are recorded by the general "in flight
//! finishes".

use super::lost_course;
use crate::driver::{Drive, RunResult};
use braid_engine::model::{RunStatus, StepStatus};
use serde_json::Value;
use std::collections::BTreeMap;

/// Every run of the drive, top-level and children.
fn all_runs(d: &Drive) -> impl Iterator<Item = &RunResult> {
    d.runs.iter().flatten().chain(&d.children)
}

/// The child runs whose parent is run `id`.
fn children_of<'a>(d: &'a Drive, id: &'a str) -> impl Iterator<Item = &'a RunResult> {
    d.children.iter().filter(move |c| {
        c.record
            .parent
            .as_ref()
            .is_some_and(|p| p.run_id.as_str() == id)
    })
}

/// Whether a child run of `r` (or theirs) took another course than it would have
/// without faults — so `r`'s may too: its course changed by the general rules, or one
/// of its waits timed out (its answers come at the next look, which faults move).
pub fn perturbed(d: &Drive, r: &RunResult) -> bool {
    children_of(d, r.record.id.as_str()).any(|c| {
        let timed_out = c.steps.iter().any(|s| {
            s.error
                .as_ref()
                .is_some_and(|e| e.error.ends_with(".timeout"))
        });
        timed_out || lost_course(d, c) || perturbed(d, c)
    })
}

/// Checks drive `d`, adding each problem by its class.
pub fn check(d: &Drive, mut add: impl FnMut(&str, String)) {
    let mut started: BTreeMap<(String, String, u32), Vec<String>> = BTreeMap::new();
    for c in &d.children {
        if let Some(p) = &c.record.parent {
            let at = (p.run_id.to_string(), p.key.to_string(), p.attempt);
            started.entry(at).or_default().push(c.record.id.to_string());
        }
    }
    for ((run, key, attempt), ids) in &started {
        if ids.len() > 1 {
            add(
                "child-started-twice",
                format!("{run}: {key} attempt {attempt} started child runs {ids:?}"),
            );
        }
    }
    for r in all_runs(d) {
        let id = r.record.id.to_string();
        for rec in r.steps.iter().filter(|s| s.status == StepStatus::Succeeded) {
            let Some(child) = &rec.child_run else {
                continue;
            };
            let Some(c) = d.children.iter().find(|c| &c.record.id == child) else {
                add(
                    "child-output-differs",
                    format!(
                        "{id}: {} succeeded by child {child}, which is not found",
                        rec.key
                    ),
                );
                continue;
            };
            let want = c.output.clone().unwrap_or(Value::Null);
            if c.record.status != RunStatus::Succeeded
                || r.outputs.get(&rec.key.to_string()) != Some(&want)
            {
                add(
                    "child-output-differs",
                    format!(
                        "{id}: {} succeeded with {:?}, its child {child} is {:?} with {want}",
                        rec.key,
                        r.outputs.get(&rec.key.to_string()),
                        c.record.status
                    ),
                );
            }
        }
        if r.record.status.is_final() {
            for c in children_of(d, &id).filter(|c| !c.record.status.is_final()) {
                add(
                    "child-left-running",
                    format!(
                        "{id} is {:?} but its child {} is {:?}",
                        r.record.status, c.record.id, c.record.status
                    ),
                );
            }
        }
        // A message that can never be handled (faults alone) ends its run failed
        // `undeliverable`, whatever else was asked of it.
        let undeliverable = r
            .record
            .error
            .as_ref()
            .is_some_and(|e| e.error == "undeliverable");
        if r.record.cancel.is_some() && r.record.status != RunStatus::Cancelled && !undeliverable {
            add(
                "cancel-not-ended",
                format!(
                    "{id} was cancelled but ended {:?} ({:?})",
                    r.record.status, r.record.error
                ),
            );
        }
    }
}
