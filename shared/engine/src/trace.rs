//! Traces: one trace per run, with the run as its root span and a span per attempt.
//!
//! Every id is derived from the run id, the step and the attempt, so any process can
//! name a span with nothing stored: the dispatcher hands an attempt's `traceparent`
//! to its task before the attempt ends, and whichever handler records the attempt's
//! end names the same span. [`ended_attempt`] tells, from a write that held, whether
//! it ended an attempt — so each attempt's span is recorded once, by the one write
//! that ended it.

use crate::ids::RunId;
use crate::model::{ErrorInfo, RunRecord, StepKey, StepRecord, StepStatus, Timestamp};

/// A W3C trace id: 16 bytes, never all zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A W3C span id: 8 bytes, never all zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

/// The trace of run `run`.
pub fn trace_id(run: &RunId) -> TraceId {
    let mut id = fnv1a_128(&["trace", run.as_str()]).to_be_bytes();
    if id == [0; 16] {
        id[15] = 1;
    }
    TraceId(id)
}

/// The trace `run` is in: its own, or for a child run (a `workflow` step's), its
/// family's — so a child's spans sit under the attempt that started it.
pub fn trace_of(run: &RunRecord) -> TraceId {
    trace_id(run.parent.as_ref().map_or(&run.id, |p| p.root()))
}

/// The parent of `run`'s root span: for a child run, the span of the attempt that
/// started it; none for a run nobody started.
pub fn run_span_parent(run: &RunRecord) -> Option<SpanId> {
    let p = run.parent.as_ref()?;
    Some(attempt_span_id(&p.run_id, &p.key, p.attempt))
}

/// The root span of run `run`: the parent of its attempts' spans.
pub fn run_span_id(run: &RunId) -> SpanId {
    span_id(&["run", run.as_str()])
}

/// The span of attempt `attempt` of step (or iteration) `key` of run `run`.
pub fn attempt_span_id(run: &RunId, key: &StepKey, attempt: u32) -> SpanId {
    span_id(&[
        "attempt",
        run.as_str(),
        &key.to_string(),
        &attempt.to_string(),
    ])
}

/// The W3C `traceparent` an attempt's task is called with: its calls become children
/// of the attempt's span. `sampled` when Braid records its spans (an exporter is set).
pub fn traceparent(run: &RunRecord, key: &StepKey, attempt: u32, sampled: bool) -> String {
    format!(
        "00-{}-{}-{}",
        hex(&trace_of(run).0),
        hex(&attempt_span_id(&run.id, key, attempt).0),
        if sampled { "01" } else { "00" }
    )
}

/// An attempt a write ended: what its span tells.
#[derive(Clone, Debug, PartialEq)]
pub struct EndedAttempt {
    pub attempt: u32,
    pub started: Timestamp,
    pub ended: Timestamp,
    /// How the step stood after it: final, or retrying.
    pub status: StepStatus,
    pub error: Option<ErrorInfo>,
}

/// The attempt that the write from `before` to `after` ended, if it ended one: the
/// step went from running or waiting (an attempt in flight or parked) — or, for a
/// pure step, from not started to a new attempt's end — to final or retrying. A step
/// cancelled or failed while no attempt was under way ended none.
pub fn ended_attempt(before: &StepRecord, after: &StepRecord) -> Option<EndedAttempt> {
    let ends = after.status.is_final() || after.status == StepStatus::Retrying;
    let in_flight = matches!(before.status, StepStatus::Running | StepStatus::Waiting);
    if !ends || after.attempt == 0 || !(in_flight || after.attempt > before.attempt) {
        return None;
    }
    let (ended, error) = match after.status {
        StepStatus::Retrying => {
            let last = after
                .earlier
                .last()
                .filter(|a| a.attempt == after.attempt)?;
            (last.ended_at, last.error.clone())
        }
        _ => (after.finished_at?, after.status_error().cloned()),
    };
    Some(EndedAttempt {
        attempt: after.attempt,
        started: after.attempt_started_at.unwrap_or(ended).min(ended),
        ended,
        status: after.status,
        error,
    })
}

fn span_id(parts: &[&str]) -> SpanId {
    let mut id = (fnv1a_128(parts) as u64).to_be_bytes();
    if id == [0; 8] {
        id[7] = 1;
    }
    SpanId(id)
}

/// FNV-1a over the parts, each ended by a zero byte so that no two lists of parts
/// read the same. Not a secret: ids only need to be spread and stable.
fn fnv1a_128(parts: &[&str]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u128::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// Lower-case hex, as W3C ids are written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttemptLog;
    use chrono::{TimeZone, Utc};

    fn at(s: i64) -> Timestamp {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn record(status: StepStatus, attempt: u32) -> StepRecord {
        let mut r = StepRecord::new("r1", StepKey::step("fetch"), status);
        r.attempt = attempt;
        r
    }

    fn ended(status: StepStatus, attempt: u32) -> StepRecord {
        let mut r = record(status, attempt);
        r.attempt_started_at = Some(at(10));
        r.finished_at = Some(at(12));
        r
    }

    #[test]
    fn traceparent_names_the_runs_trace_and_the_attempts_span() {
        let record = RunRecord {
            id: RunId::new("01JRUN"),
            ..crate::tests::run()
        };
        let run = record.id.clone();
        let tp = traceparent(&record, &StepKey::step("fetch"), 2, true);
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], hex(&trace_id(&run).0));
        assert_eq!(
            parts[2],
            hex(&attempt_span_id(&run, &StepKey::step("fetch"), 2).0)
        );
        assert_eq!(parts[3], "01");
        assert!(traceparent(&record, &StepKey::step("fetch"), 2, false).ends_with("-00"));
        assert_eq!(
            tp,
            traceparent(&record, &StepKey::step("fetch"), 2, true),
            "stable"
        );
    }

    #[test]
    fn a_child_run_is_traced_in_its_familys_trace_under_the_attempt_that_started_it() {
        let top = RunRecord {
            id: RunId::new("top"),
            ..crate::tests::run()
        };
        assert_eq!(trace_of(&top), trace_id(&top.id));
        assert_eq!(run_span_parent(&top), None);
        let parent = |run: &str, root: Option<&str>| crate::model::ParentRef {
            run_id: RunId::new(run),
            key: StepKey::step("nightly"),
            attempt: 2,
            depth: 1,
            root: root.map(RunId::new),
        };
        let child = RunRecord {
            id: RunId::new("child"),
            parent: Some(parent("top", Some("top"))),
            ..crate::tests::run()
        };
        assert_eq!(trace_of(&child), trace_of(&top));
        assert_eq!(
            run_span_parent(&child),
            Some(attempt_span_id(&top.id, &StepKey::step("nightly"), 2))
        );
        let grandchild = RunRecord {
            id: RunId::new("grandchild"),
            parent: Some(parent("child", Some("top"))),
            ..crate::tests::run()
        };
        assert_eq!(trace_of(&grandchild), trace_of(&top));
        // A child recorded before the family's top was kept: its parent's trace.
        let older = RunRecord {
            parent: Some(parent("child", None)),
            ..grandchild
        };
        assert_eq!(trace_of(&older), trace_id(&RunId::new("child")));
    }

    #[test]
    fn ids_differ_by_run_step_iteration_and_attempt() {
        let (a, b) = (RunId::new("a"), RunId::new("b"));
        assert_ne!(trace_id(&a), trace_id(&b));
        assert_ne!(run_span_id(&a), run_span_id(&b));
        let key = StepKey::step("s");
        let spans = [
            attempt_span_id(&a, &key, 1),
            attempt_span_id(&a, &key, 2),
            attempt_span_id(&b, &key, 1),
            attempt_span_id(&a, &StepKey::step("t"), 1),
            attempt_span_id(&a, &StepKey::iteration("s", 0), 1),
            attempt_span_id(&a, &StepKey::iteration("s", 1), 1),
            run_span_id(&a),
        ];
        for (i, x) in spans.iter().enumerate() {
            for y in &spans[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn which_writes_end_an_attempt() {
        use StepStatus::*;
        // (before, after, ends)
        let rows = [
            (record(Running, 1), ended(Succeeded, 1), true),
            (record(Running, 1), ended(Failed, 1), true),
            (record(Running, 1), ended(Cancelled, 1), true),
            (record(Waiting, 1), ended(Succeeded, 1), true),
            // A pure step: never claimed, its outcome is a new attempt's end.
            (record(Ready, 0), ended(Succeeded, 1), true),
            (record(Ready, 0), ended(Skipped, 1), true),
            // Nothing was under way.
            (record(Pending, 0), ended(Cancelled, 0), false),
            (record(Retrying, 1), ended(Cancelled, 1), false),
            (record(Ready, 1), ended(Cancelled, 1), false),
            // Not an end.
            (record(Ready, 0), ended(Running, 1), false),
            (record(Running, 1), ended(Waiting, 1), false),
        ];
        for (before, after, ends) in rows {
            let got = ended_attempt(&before, &after);
            assert_eq!(
                got.is_some(),
                ends,
                "{:?} -> {:?}",
                before.status,
                after.status
            );
            if let Some(e) = got {
                assert_eq!((e.started, e.ended, e.attempt), (at(10), at(12), 1));
            }
        }
    }

    #[test]
    fn a_retried_attempt_ends_when_its_log_says() {
        let mut after = record(StepStatus::Retrying, 2);
        after.attempt_started_at = Some(at(20));
        after.earlier.push(AttemptLog {
            attempt: 2,
            started_at: Some(at(20)),
            ended_at: at(23),
            status: StepStatus::Failed,
            error: Some(ErrorInfo::new("http.status", "503")),
            retry_at: Some(at(30)),
        });
        let e = ended_attempt(&record(StepStatus::Running, 2), &after).unwrap();
        assert_eq!((e.attempt, e.started, e.ended), (2, at(20), at(23)));
        assert_eq!(e.status, StepStatus::Retrying);
        assert_eq!(e.error.unwrap().error, "http.status");
    }
}
