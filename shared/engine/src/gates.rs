//! When a step may start, and what a final step means for the rest of the run.

use crate::model::{FanOut, StepRecord, StepStatus, Timestamp};
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

/// How long a dispatcher runs a task before it claims the attempt in the store: a step
/// that ends sooner is recorded by its final write alone, and shows `running` only
/// after this. Until then its record says it is still to run (see [`may_run_unclaimed`]).
pub const CLAIM_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long after its cause a message (or a release) is presumed lost: `stale`, but
/// never before a task it started could have been claimed.
pub fn presumed_lost_after(stale: std::time::Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(stale.max(2 * CLAIM_DELAY)).unwrap_or_default()
}

/// Whether pending top-level step `step` may be running although its record does not
/// say so: every need ended letting it run, the last less than `lost_after` ago — the
/// delivery that ended it may run it in place of writing its release (see
/// `braid_handlers::eager`). Fail fast leaves it to that run's own final write until then.
/// `need` gives a need's record.
pub fn released_lately<'a>(
    wf: &Workflow,
    step: &Step,
    need: impl Fn(&str) -> Option<&'a StepRecord>,
    now: Timestamp,
    lost_after: chrono::TimeDelta,
) -> bool {
    let mut last = None;
    for n in &step.needs {
        match need(n).zip(wf.step(n)) {
            Some((r, s)) if lets_dependents_run(s, r.status) => last = last.max(r.finished_at),
            _ => return false,
        }
    }
    last.is_some_and(|t| t + lost_after > now)
}

/// How much two functions' clocks may differ when one decides a step between attempts
/// is not due yet and another that it is.
const CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Whether an attempt of `rec` may be running at `now` although its record does not say
/// so: a dispatcher claims a task only once it has run a while, so a step that is ready,
/// or due for its next attempt, may be in flight — until `lost_after` past its due
/// time, when its message is presumed lost. Cancelling it before would drop the
/// outcome of a task that ran; it is left to its message, which cancels it on arrival
/// if the run is failing, or to its own final write.
pub fn may_run_unclaimed(rec: &StepRecord, now: Timestamp, lost_after: chrono::TimeDelta) -> bool {
    let not_lost = |d: Timestamp| d + lost_after > now;
    match rec.status {
        StepStatus::Ready => rec.due_at.is_none_or(not_lost),
        StepStatus::Retrying => rec
            .due_at
            .is_none_or(|d| d <= now + CLOCK_SLACK && not_lost(d)),
        _ => false,
    }
}

/// Whether a failing run cancels step `rec` now (a top-level step, or an iteration
/// between attempts; a pending iteration is its fan-out's, see [`cancels_iteration`]):
/// it is neither final nor running, and nothing may be running it unrecorded — an
/// unclaimed attempt ([`may_run_unclaimed`]), or a step released in memory only
/// ([`released_lately`]). `need` gives a top-level step's record.
pub fn fail_fast_cancels<'a>(
    wf: &Workflow,
    rec: &StepRecord,
    need: impl Fn(&str) -> Option<&'a StepRecord>,
    now: Timestamp,
    lost_after: chrono::TimeDelta,
) -> bool {
    match rec.status {
        StepStatus::Ready | StepStatus::Retrying => !may_run_unclaimed(rec, now, lost_after),
        StepStatus::Waiting => true,
        StepStatus::Pending if rec.key.index.is_none() => !wf
            .step(&rec.key.step)
            .is_some_and(|s| released_lately(wf, s, need, now, lost_after)),
        _ => false,
    }
}

/// Whether pending iteration `index` of fan-out `f` was launched (its message sent, or
/// it runs in place of one): the first of its lane, or the iteration `before` it in
/// its lane ended other than cancelled. A lane that meets a stopping fan-out cancels
/// its next iteration instead of launching it.
pub fn iteration_launched(f: &FanOut, index: u32, before: Option<&StepRecord>) -> bool {
    index < f.lanes.max(1)
        || before.is_some_and(|b| b.status.is_final() && b.status != StepStatus::Cancelled)
}

/// Whether a stopping fan-out cancels iteration `rec` now, `before` being the one
/// before it in its lane: one not final, not running, and neither launched nor maybe
/// running unclaimed (those end by their own message or final write).
pub fn cancels_iteration(
    f: &FanOut,
    rec: &StepRecord,
    before: Option<&StepRecord>,
    now: Timestamp,
    lost_after: chrono::TimeDelta,
) -> bool {
    match rec.status {
        StepStatus::Pending => !iteration_launched(f, rec.key.index.unwrap_or(0), before),
        StepStatus::Running => false,
        s if s.is_final() => false,
        _ => !may_run_unclaimed(rec, now, lost_after),
    }
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
