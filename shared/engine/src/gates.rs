//! When a step may start, and what a final step means for the rest of the run.

use crate::model::{FanOut, StepRecord, StepStatus};
use braid_lang::{Step, Workflow};

/// Whether `dep` ending with `status` lets its dependents run: succeeded, skipped (a
/// skipped step does not skip its dependents), or failed with `continue_on_failure`.
pub fn lets_dependents_run(dep: &Step, status: StepStatus) -> bool {
    match status {
        StepStatus::Succeeded | StepStatus::Skipped => true,
        StepStatus::Failed => dep.continue_on_failure,
        _ => false,
    }
}

/// Whether `step` ending with `status` fails the run (fail fast).
pub fn fails_run(step: &Step, status: StepStatus) -> bool {
    status == StepStatus::Failed && !step.continue_on_failure
}

/// Whether every need of `step` is in `satisfied`.
pub fn is_ready(step: &Step, satisfied: &[String]) -> bool {
    step.needs.iter().all(|n| satisfied.contains(n))
}

/// Whether a running fan-out starts no more iterations: one failed for good (the step
/// does not `continue_on_failure`), or the run is failing.
pub fn fan_out_stopping(step: &Step, f: &FanOut, run_failing: bool) -> bool {
    run_failing || (f.failed > 0 && !step.continue_on_failure)
}

/// Whether a fan-out's iterations are over, from their records (`iterations`, every
/// one of the step's): each is final. A stopping fan-out gets there by cancelling
/// those not running.
pub fn fan_out_over<'a>(f: &FanOut, iterations: impl IntoIterator<Item = &'a StepRecord>) -> bool {
    let mut count = 0;
    for r in iterations {
        if !r.status.is_final() {
            return false;
        }
        count += 1;
    }
    count == f.total as usize
}

/// Whether a failing run cancels top-level step `rec` now: it has not started, or is
/// between attempts. A step runs only once claimed, so one not running runs nowhere
/// (a claim racing the cancel finds its guard false). Pending iterations are their
/// fan-out's to cancel ([`cancels_iteration`]).
pub fn fail_fast_cancels(rec: &StepRecord) -> bool {
    match rec.status {
        StepStatus::Ready | StepStatus::Retrying | StepStatus::Waiting => true,
        StepStatus::Pending => rec.key.index.is_none(),
        _ => false,
    }
}

/// Whether a stopping fan-out cancels iteration `rec` now: one neither final nor
/// running (an attempt in flight ends by its own final write).
pub fn cancels_iteration(rec: &StepRecord) -> bool {
    !rec.status.is_final() && rec.status != StepStatus::Running
}

/// How many iterations of a `for_each` step of `total` run at once: its lanes
/// ([`FanOut`]), never more than there are items (a lane with no item would never end).
pub fn max_in_flight(step: &Step, total: u32) -> u32 {
    step.max_parallel.unwrap_or(total).min(total).max(1)
}

/// Whether a run's work is over: every top-level step record in `steps` is final
/// (iterations are ignored; their `for_each` step is final once they are). Seen from
/// the records rather than kept as a counter on the run, so that a step's final write
/// is a write of the step alone.
pub fn run_is_done(steps: &[StepRecord]) -> bool {
    let mut top = steps.iter().filter(|r| r.key.index.is_none()).peekable();
    top.peek().is_some() && top.all(|r| r.status.is_final())
}

/// The top-level steps whose records tell whether a run's work is over. While the
/// run is not failing, a step starts only once its needs are final, so every step is
/// final once each step without dependents is: those are read. Once it is failing,
/// steps are cancelled in any order: all are.
pub fn steps_telling_the_end(wf: &Workflow, failing: bool) -> impl Iterator<Item = &Step> {
    wf.steps
        .iter()
        .filter(move |s| failing || wf.dependents(&s.id).next().is_none())
}

/// Whether `step` becoming final may have ended its run's work, so the run's steps are
/// worth reading. While the run is not failing, a step's dependents end after it: only
/// a step with no dependents can be the last. Once it is failing, steps are cancelled
/// in any order.
pub fn may_end_run(wf: &Workflow, step: &Step, failing: bool) -> bool {
    failing || wf.dependents(&step.id).next().is_none()
}
