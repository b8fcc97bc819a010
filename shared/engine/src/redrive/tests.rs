//! Which steps a retry runs again, what it reopens, and when it is complete.

use super::*;
use crate::model::{RunId, StepKey};
use braid_lang::Workflow;
use chrono::TimeZone;
use serde_json::{Value, json};

/// `a` → `b` → `d`, `a` → `c` → `d`; `e` apart; `c` goes on after a failure.
const WF: &str = r#"
name: shape
timeout: 1h
steps:
  - id: a
    pass: 1
  - id: b
    needs: [a]
    pass: 2
  - id: c
    needs: [a]
    pass: 3
    continue_on_failure: true
  - id: d
    needs: [b, c]
    pass: 4
  - id: e
    pass: 5
"#;

fn wf() -> Workflow {
    braid_lang::parse("t.yaml", WF).unwrap_or_else(|e| panic!("{e}"))
}

fn t0() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn rec(step: &str, status: StepStatus) -> StepRecord {
    StepRecord::new("r", StepKey::step(step), status)
}

fn ended(statuses: &[(&str, StepStatus)]) -> Vec<StepRecord> {
    statuses.iter().map(|(s, st)| rec(s, *st)).collect()
}

fn failed_run() -> RunRecord {
    RunRecord {
        id: RunId::from("r"),
        workflow: "shape".into(),
        version: "v".into(),
        status: RunStatus::Failed,
        params: json!({}),
        trigger: Value::Null,
        params_ref: None,
        trigger_ref: None,
        created_at: t0(),
        finished_at: Some(t0() + chrono::TimeDelta::minutes(5)),
        deadline: Some(t0() + chrono::TimeDelta::hours(1)),
        failing: true,
        output: None,
        error: Some(crate::model::ErrorInfo::new("x", "step `b` failed")),
        idempotency_key: None,
        limit: None,
        slot: false,
        closing: false,
        parent: None,
        cancel: None,
        redrives: Vec::new(),
        forked_from: None,
        notices: Vec::new(),
        sla_due: None,
        sla_missed: Vec::new(),
    }
}

use StepStatus::{Cancelled, Failed, Pending, Skipped, Succeeded};

#[test]
fn a_retry_reruns_what_did_not_succeed_and_everything_downstream() {
    let steps = ended(&[
        ("a", Succeeded),
        ("b", Failed),
        ("c", Succeeded),
        ("d", Cancelled),
        ("e", Skipped),
    ]);
    assert_eq!(reruns(&wf(), &steps, None).unwrap(), ["b", "d"]);
}

#[test]
fn a_retry_from_a_step_reruns_it_and_its_dependents_too() {
    let steps = ended(&[
        ("a", Succeeded),
        ("b", Failed),
        ("c", Succeeded),
        ("d", Cancelled),
        ("e", Succeeded),
    ]);
    assert_eq!(
        reruns(&wf(), &steps, Some("a")).unwrap(),
        ["a", "b", "c", "d"]
    );
    assert_eq!(reruns(&wf(), &steps, Some("e")).unwrap(), ["b", "d", "e"]);
}

#[test]
fn a_step_never_reached_runs_in_the_retry() {
    let steps = ended(&[("a", Failed), ("b", Pending), ("e", Succeeded)]);
    assert_eq!(reruns(&wf(), &steps, None).unwrap(), ["a", "b", "c", "d"]);
}

#[test]
fn a_retry_from_an_unknown_step_is_refused() {
    assert_eq!(
        reruns(&wf(), &[], Some("nope")),
        Err(Refusal::UnknownStep("nope".into()))
    );
}

#[test]
fn a_failed_run_reopens_running_with_the_retry_recorded() {
    let now = t0() + chrono::TimeDelta::days(30);
    let run = reopened(&wf(), &failed_run(), vec!["b".into()], None, "ada", now).unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert!(!run.failing && run.error.is_none() && run.finished_at.is_none());
    assert_eq!(run.deadline, Some(now + chrono::TimeDelta::hours(1)));
    assert_eq!(run.drive(), 1);
    let r = &run.redrives[0];
    assert_eq!(
        (r.by.as_str(), r.at, r.was),
        ("ada", now, RunStatus::Failed)
    );
    assert_eq!(r.steps, ["b"]);
}

#[test]
fn only_a_run_over_and_closed_that_did_not_succeed_is_retried() {
    let now = t0();
    for (status, closing, refusal) in [
        (
            RunStatus::Running,
            false,
            Refusal::NotOver(RunStatus::Running),
        ),
        (
            RunStatus::Queued,
            false,
            Refusal::NotOver(RunStatus::Queued),
        ),
        (RunStatus::Failed, true, Refusal::NotOver(RunStatus::Failed)),
        (RunStatus::Succeeded, false, Refusal::Succeeded),
    ] {
        let run = RunRecord {
            status,
            closing,
            ..failed_run()
        };
        assert_eq!(
            reopened(&wf(), &run, vec![], None, "ada", now),
            Err(refusal)
        );
    }
    for status in [RunStatus::Cancelled, RunStatus::TimedOut] {
        let run = RunRecord {
            status,
            ..failed_run()
        };
        assert!(reopened(&wf(), &run, vec![], None, "ada", now).is_ok());
    }
}

#[test]
fn needs_kept_by_a_retry_stay_satisfied() {
    let w = wf();
    let steps = ended(&[("a", Succeeded), ("b", Failed), ("c", Failed)]);
    let d = w.step("d").unwrap();
    // `c` failed but goes on after a failure; `b` runs again.
    assert_eq!(satisfied(&w, d, &steps, &["b".into(), "d".into()]), ["c"]);
    assert!(satisfied(&w, d, &steps, &["b".into(), "c".into(), "d".into()]).is_empty());
}

#[test]
fn a_retry_is_complete_once_each_step_it_names_is_reset() {
    let w = wf();
    let steps = ended(&[("a", Succeeded), ("b", Failed), ("d", Cancelled)]);
    let run = reopened(
        &w,
        &failed_run(),
        vec!["b".into(), "d".into()],
        None,
        "x",
        t0(),
    )
    .unwrap();
    let all = crate::records::every_step(&w, &run.id, steps.clone());
    assert_eq!(unreset(&run, &all), ["b", "d"]);
    let reset: Vec<StepRecord> = all
        .into_iter()
        .map(|r| match r.key.step.as_str() {
            "b" => StepRecord { drive: 1, ..r },
            _ => r,
        })
        .collect();
    assert_eq!(unreset(&run, &reset), ["d"]);
    assert!(unreset(&failed_run(), &reset).is_empty());
}
