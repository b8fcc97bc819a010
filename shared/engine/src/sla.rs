//! SLAs (a workflow's `sla`): how long a run and its steps should take, each counted
//! from the run's start. The run's record holds when the tick should next look
//! ([`RunRecord::sla_due`], part of the run's timer); [`check`] tells which SLAs are
//! missed by then and when to look again, and the handlers note the misses with one
//! guarded write before they announce them (`sla.missed`), so each is told once.
//! A miss fails nothing: the run goes on.

use crate::model::{RunRecord, SlaMiss, StepRecord, Timestamp};
use braid_lang::{Workflow, format_duration};
use std::time::Duration;

/// When the first of `wf`'s SLAs falls for a run started at `start`.
pub fn first_due(wf: &Workflow, start: Timestamp) -> Option<Timestamp> {
    wf.sla.entries().map(|(_, d)| at(start, d)).min()
}

/// What a look at `run`'s SLAs at `now` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Check {
    /// SLAs past and not met, not noted before.
    pub missed: Vec<SlaMiss>,
    /// When the next SLA falls; none when every one is past.
    pub next: Option<Timestamp>,
}

/// Looks at `run`'s SLAs at `now`, `steps` being its top-level step records. An SLA
/// past is missed when its step (or the run) had not ended by it: a step that ended
/// after it counts too, though the tick came later.
pub fn check(wf: &Workflow, run: &RunRecord, steps: &[StepRecord], now: Timestamp) -> Check {
    let mut out = Check::default();
    for (step, within) in wf.sla.entries() {
        let due = at(run.created_at, within);
        // Past only once the clock is beyond it: what ends at `due` ended in time.
        if due >= now {
            out.next = Some(out.next.map_or(due, |n: Timestamp| n.min(due)));
            continue;
        }
        if run.sla_missed.iter().any(|m| m.step.as_deref() == step) {
            continue;
        }
        let ended_by_then = match step {
            None => run.finished_at.is_some_and(|t| t <= due),
            Some(id) => steps
                .iter()
                .find(|r| r.key.index.is_none() && r.key.step == id)
                .filter(|r| r.status.is_final())
                .is_some_and(|r| r.finished_at.is_none_or(|t| t <= due)),
        };
        if !ended_by_then {
            out.missed.push(SlaMiss {
                step: step.map(str::to_string),
                within: format_duration(within),
                due,
            });
        }
    }
    out
}

fn at(start: Timestamp, d: Duration) -> Timestamp {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| start.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests;
