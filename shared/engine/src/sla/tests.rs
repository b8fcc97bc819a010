use super::*;
use crate::model::{StepKey, StepStatus};
use crate::start::{StartInfo, plan};
use chrono::TimeZone;
use serde_json::{Value, json};

fn wf() -> Workflow {
    braid_lang::parse(
        "wf.yaml",
        r#"
name: nightly
sla: { run: 30m, steps: { load: 5m, report: 20m } }
steps:
  - id: load
    pass: 1
  - id: report
    needs: [load]
    pass: 2
"#,
    )
    .unwrap()
}

fn t0() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap()
}

fn mins(m: i64) -> Timestamp {
    t0() + chrono::TimeDelta::minutes(m)
}

fn run(wf: &Workflow) -> RunRecord {
    let info = StartInfo {
        run_id: "r1".into(),
        version: "v".into(),
        params: json!({}),
        trigger: Value::Null,
        idempotency_key: None,
        limit: None,
    };
    plan(wf, info, t0()).run
}

fn ended(step: &str, status: StepStatus, at: Timestamp) -> StepRecord {
    StepRecord {
        finished_at: Some(at),
        ..StepRecord::new("r1", StepKey::step(step), status)
    }
}

fn names(c: &Check) -> Vec<Option<&str>> {
    c.missed.iter().map(|m| m.step.as_deref()).collect()
}

#[test]
fn a_new_run_is_first_looked_at_when_its_earliest_sla_falls() {
    let wf = wf();
    assert_eq!(run(&wf).sla_due, Some(mins(5)));
    assert_eq!(run(&wf).timer(), Some(mins(5)), "part of the run's timer");
}

#[test]
fn a_workflow_without_sla_has_no_sla_timer() {
    let wf = braid_lang::parse("wf.yaml", "name: x\nsteps:\n  - id: a\n    pass: 1\n").unwrap();
    assert_eq!(run(&wf).sla_due, None);
}

#[test]
fn a_step_not_ended_by_its_sla_is_missed_and_the_next_sla_named() {
    let wf = wf();
    let c = check(&wf, &run(&wf), &[], mins(6));
    assert_eq!(names(&c), [Some("load")]);
    assert_eq!(c.missed[0].within, "5m");
    assert_eq!(c.missed[0].due, mins(5));
    assert_eq!(c.next, Some(mins(20)));
}

#[test]
fn a_step_ended_in_time_misses_nothing_and_one_ended_late_misses_though_seen_later() {
    let wf = wf();
    let in_time = [ended("load", StepStatus::Succeeded, mins(4))];
    assert!(check(&wf, &run(&wf), &in_time, mins(6)).missed.is_empty());
    let late = [ended(
        "load",
        StepStatus::Succeeded,
        mins(5) + chrono::TimeDelta::seconds(1),
    )];
    assert_eq!(
        names(&check(&wf, &run(&wf), &late, mins(6))),
        [Some("load")]
    );
}

#[test]
fn a_step_still_running_past_its_sla_is_missed() {
    let wf = wf();
    let running = [StepRecord::new(
        "r1",
        StepKey::step("load"),
        StepStatus::Running,
    )];
    assert_eq!(
        names(&check(&wf, &run(&wf), &running, mins(6))),
        [Some("load")]
    );
}

#[test]
fn each_sla_is_missed_once() {
    let wf = wf();
    let mut r = run(&wf);
    let first = check(&wf, &r, &[], mins(31));
    assert_eq!(names(&first), [None, Some("load"), Some("report")]);
    assert_eq!(first.next, None, "every SLA is past");
    r.sla_missed = first.missed;
    assert!(check(&wf, &r, &[], mins(40)).missed.is_empty());
}

#[test]
fn a_run_seen_going_at_the_very_instant_of_its_sla_has_not_missed_it_yet() {
    let wf = wf();
    let c = check(&wf, &run(&wf), &[], mins(5));
    assert!(c.missed.is_empty(), "it may still end at that instant");
    assert_eq!(c.next, Some(mins(5)));
}

#[test]
fn nothing_is_missed_before_the_first_sla() {
    let wf = wf();
    let c = check(&wf, &run(&wf), &[], mins(1));
    assert!(c.missed.is_empty());
    assert_eq!(c.next, Some(mins(5)));
}
