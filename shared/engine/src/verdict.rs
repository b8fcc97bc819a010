//! What an attempt's outcome means for the step.

use super::retry;
use crate::model::{Data, ErrorInfo, Outcome, StepStatus, Timestamp};
use braid_lang::Step;

/// The decision on one attempt's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The step (or iteration) ends with this status.
    Final {
        status: StepStatus,
        output: Option<Data>,
        error: Option<ErrorInfo>,
    },
    /// Another attempt runs at `due_at`.
    Retry { due_at: Timestamp, error: ErrorInfo },
    /// A `for_each` step fans out over `total` items.
    Expand { items: Data, total: u32 },
}

/// Decides on the outcome of attempt `attempt` of `step`.
///
/// Retries happen only for retryable failures with attempts left; `fail` steps and
/// non-retryable errors end the step at once. `random` (in `[0, 1)`) drives jitter.
pub fn decide(
    step: &Step,
    attempt: u32,
    outcome: &Outcome,
    now: Timestamp,
    random: f64,
) -> Verdict {
    match outcome {
        Outcome::Succeeded { output } => Verdict::Final {
            status: StepStatus::Succeeded,
            output: Some(output.clone()),
            error: None,
        },
        Outcome::Skipped => Verdict::Final {
            status: StepStatus::Skipped,
            output: None,
            error: None,
        },
        Outcome::Stopped { error } => Verdict::Final {
            status: StepStatus::Cancelled,
            output: None,
            error: Some(error.clone()),
        },
        Outcome::Expanded { items, total } => Verdict::Expand {
            items: items.clone(),
            total: *total,
        },
        Outcome::Failed { error, retryable } => {
            if *retryable && retry::has_attempts_left(&step.retry, attempt) {
                let wait = retry::delay(&step.retry, attempt, random);
                let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                Verdict::Retry {
                    due_at: now.checked_add_signed(wait).unwrap_or(now),
                    error: error.clone(),
                }
            } else {
                Verdict::Final {
                    status: StepStatus::Failed,
                    output: None,
                    error: Some(error.clone()),
                }
            }
        }
    }
}
