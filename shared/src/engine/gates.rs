//! When a step may start, and what a final step means for the rest of the run.

use crate::model::StepStatus;
use crate::spec::Step;

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

/// How many iterations of a `for_each` step may be in flight at once.
pub fn max_in_flight(step: &Step, total: u32) -> u32 {
    step.max_parallel.unwrap_or(total).max(1)
}
