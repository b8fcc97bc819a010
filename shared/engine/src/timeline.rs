//! A run's attempts in time order — each start and each end, with its error and the
//! time of the retry it led to — as `braid logs` and `GET /runs/{id}/logs` tell them.
//! Read from the step records alone: each holds its ended attempts
//! ([`StepRecord::earlier`]) beside its current one. What a function wrote while it
//! ran an attempt is kept apart and put among them by [`with_output`].

use crate::model::{ErrorInfo, StepRecord, StepStatus, Timestamp};
use serde::{Deserialize, Serialize};

/// One line of a run's timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub at: Timestamp,
    /// The step, or `step[i]` for an iteration.
    pub step: String,
    /// 0 for a step that ended without an attempt (skipped, or cancelled first).
    pub attempt: u32,
    #[serde(flatten)]
    pub what: What,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum What {
    Started,
    /// The attempt waits for a person or a system, until `until` (or for good).
    Waiting {
        #[serde(skip_serializing_if = "Option::is_none")]
        until: Option<Timestamp>,
    },
    /// A line the function wrote while it ran the attempt.
    Output {
        stream: Stream,
        text: String,
    },
    Ended {
        status: StepStatus,
        /// How long it ran, in milliseconds, when its start is known.
        #[serde(skip_serializing_if = "Option::is_none")]
        took_ms: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorInfo>,
        /// When the next attempt was due, for one retried.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_at: Option<Timestamp>,
    },
}

/// Which of a process's streams a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// `entries` (a timeline) with `output` ([`What::Output`] entries) among them, in time
/// order: a line stamped at the same instant as another entry comes after it.
pub fn with_output(mut entries: Vec<Entry>, output: Vec<Entry>) -> Vec<Entry> {
    entries.extend(output);
    // Stable: lines keep their own order, and follow entries of the same instant.
    entries.sort_by_key(|e| e.at);
    entries
}

/// The timeline of `records` (steps and iterations, any order): every start and end,
/// oldest first (ties in the records' order).
pub fn timeline(records: &[StepRecord]) -> Vec<Entry> {
    let mut out = Vec::new();
    for rec in records {
        let step = rec.key.to_string();
        let mut add = |at: Timestamp, attempt: u32, what: What| {
            out.push(Entry {
                at,
                step: step.clone(),
                attempt,
                what,
            })
        };
        for e in &rec.earlier {
            if let Some(s) = e.started_at {
                add(s, e.attempt, What::Started);
            }
            add(
                e.ended_at,
                e.attempt,
                What::Ended {
                    status: e.status,
                    took_ms: e.started_at.map(|s| (e.ended_at - s).num_milliseconds()),
                    error: e.error.clone(),
                    retry_at: e.retry_at,
                },
            );
        }
        // The current attempt, if one was made since the last retry of the run.
        let current = rec.attempt > rec.retry_base;
        // Records written before starts were kept per attempt have the first's.
        let started = rec
            .attempt_started_at
            .or(rec.started_at.filter(|_| rec.attempt == 1));
        if current && let Some(s) = started {
            add(s, rec.attempt, What::Started);
        }
        match rec.status {
            StepStatus::Waiting if current => {
                let until = rec.wait_deadline.or(rec.due_at);
                let at = started.unwrap_or_default();
                add(at, rec.attempt, What::Waiting { until });
            }
            s if s.is_final() => {
                let Some(ended) = rec.finished_at else {
                    continue;
                };
                let attempt = if current { rec.attempt } else { 0 };
                add(
                    ended,
                    attempt,
                    What::Ended {
                        status: s,
                        took_ms: started
                            .filter(|_| current)
                            .map(|st| (ended - st).num_milliseconds()),
                        error: rec.status_error().cloned(),
                        retry_at: None,
                    },
                );
            }
            _ => {}
        }
    }
    out.sort_by_key(|e| e.at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttemptLog, StepKey};
    use chrono::TimeZone;

    fn t(s: i64) -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::TimeDelta::seconds(s)
    }

    #[test]
    fn a_retried_step_tells_each_attempt_in_order() {
        let boom = ErrorInfo::new("http.500", "boom");
        let rec = StepRecord {
            attempt: 2,
            started_at: Some(t(0)),
            attempt_started_at: Some(t(5)),
            finished_at: Some(t(6)),
            earlier: vec![AttemptLog {
                attempt: 1,
                started_at: Some(t(0)),
                ended_at: t(2),
                status: StepStatus::Failed,
                error: Some(boom.clone()),
                retry_at: Some(t(5)),
            }],
            ..StepRecord::new("r", StepKey::step("call"), StepStatus::Succeeded)
        };
        let skipped = StepRecord {
            finished_at: Some(t(1)),
            ..StepRecord::new("r", StepKey::step("maybe"), StepStatus::Skipped)
        };
        let lines: Vec<(i64, String, u32, String)> = timeline(&[rec, skipped])
            .iter()
            .map(|e| {
                let what = match &e.what {
                    What::Started => "started",
                    What::Waiting { .. } => "waiting",
                    What::Output { .. } => "output",
                    What::Ended { status, .. } => status.as_str(),
                };
                let at = (e.at - t(0)).num_seconds();
                (at, e.step.clone(), e.attempt, what.to_string())
            })
            .collect();
        let want =
            |at, step: &str, attempt, what: &str| (at, step.to_string(), attempt, what.to_string());
        assert_eq!(
            lines,
            [
                want(0, "call", 1, "started"),
                want(1, "maybe", 0, "skipped"),
                want(2, "call", 1, "failed"),
                want(5, "call", 2, "started"),
                want(6, "call", 2, "succeeded"),
            ]
        );
        let first_end = &timeline(&[StepRecord {
            earlier: vec![AttemptLog {
                attempt: 1,
                started_at: Some(t(0)),
                ended_at: t(2),
                status: StepStatus::Failed,
                error: Some(boom.clone()),
                retry_at: Some(t(5)),
            }],
            ..StepRecord::new("r", StepKey::step("call"), StepStatus::Retrying)
        }])[1];
        assert_eq!(
            first_end.what,
            What::Ended {
                status: StepStatus::Failed,
                took_ms: Some(2000),
                error: Some(boom),
                retry_at: Some(t(5)),
            }
        );
    }

    #[test]
    fn output_lines_come_between_their_attempts_start_and_end() {
        let entry = |at, what| Entry {
            at: t(at),
            step: "call".into(),
            attempt: 1,
            what,
        };
        let line = |at, text: &str| {
            entry(
                at,
                What::Output {
                    stream: Stream::Stdout,
                    text: text.into(),
                },
            )
        };
        let ended = What::Ended {
            status: StepStatus::Succeeded,
            took_ms: Some(3000),
            error: None,
            retry_at: None,
        };
        let merged = with_output(
            vec![entry(0, What::Started), entry(3, ended)],
            vec![line(0, "first"), line(2, "second"), line(2, "third")],
        );
        let order: Vec<_> = merged
            .iter()
            .map(|e| match &e.what {
                What::Output { text, .. } => text.as_str(),
                What::Started => "started",
                _ => "ended",
            })
            .collect();
        assert_eq!(order, ["started", "first", "second", "third", "ended"]);
    }
}
