//! The transition table, row by row: each test names the row it checks.

use super::*;
use crate::model::{Data, StepKey};
use braid_lang::Workflow;
use chrono::TimeZone;
use serde_json::json;

const WF: &str = r#"
name: lifecycle
steps:
  - id: task
    http: { url: "http://example.invalid" }
    timeout: 10s
    retry: { attempts: 3, backoff: 2s }
  - id: pure
    pass: 1
  - id: fan
    for_each: "{{ [1, 2, 3] }}"
    max_parallel: 2
    http: { url: "http://example.invalid" }
  - id: pause
    wait: 1m
  - id: needy
    needs: [task, pure]
    http: { url: "http://example.invalid" }
  - id: ship
    approval: { message: "Ship it?", timeout: 1h }
    retry: { attempts: 3 }
  - id: smoke
    signal: { name: smoke-passed, timeout: 10m }
  - id: child
    workflow: nightly
    retry: { attempts: 2, backoff: 1s }
  - id: deploy
    http: { url: "http://example.invalid" }
    timeout: 10s
    callback: { timeout: 1h, heartbeat: 5m }
    retry: { attempts: 2, backoff: 1s }
"#;

fn wf() -> Workflow {
    braid_lang::parse("t.yaml", WF).unwrap_or_else(|e| panic!("{e}"))
}

fn t0() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn secs(n: i64) -> chrono::TimeDelta {
    chrono::TimeDelta::seconds(n)
}

fn rec(step: &str, status: StepStatus, attempt: u32) -> StepRecord {
    StepRecord {
        attempt,
        ..StepRecord::new("r", StepKey::step(step), status)
    }
}

fn msg(step: &str, attempt: u32) -> DispatchMsg {
    DispatchMsg {
        attempt,
        ..DispatchMsg::first("r", StepKey::step(step))
    }
}

fn decide_in(w: &Workflow, rec: &StepRecord, event: Event<'_>, failing: bool) -> Transition {
    let ctx = Context {
        step: w.step(&rec.key.step).expect("a step of the test workflow"),
        run_failing: failing,
        now: t0(),
        default_lease: Duration::from_secs(900),
        max_queue_delay: Duration::from_secs(900),
        random: 0.5,
    };
    decide(rec, event, &ctx)
}

/// The transition in short: the status written (if any) and the effects' names.
fn summary(t: &Transition) -> (Option<StepStatus>, Vec<String>) {
    let effects = t
        .effects
        .iter()
        .map(|e| match e {
            Effect::Run { record, .. } => format!("run {}", record.attempt),
            Effect::Send { msg, delay } => {
                format!("send {} after {}s", msg.attempt, delay.as_secs())
            }
            Effect::Settle => "settle".into(),
            Effect::LaunchLanes => "launch lanes".into(),
            Effect::Waiting => "announce the wait".into(),
            Effect::Retrying => "announce the retry".into(),
        })
        .collect();
    (t.write.as_ref().map(|w| w.record.status), effects)
}

fn s(status: Option<StepStatus>, effects: &[&str]) -> (Option<StepStatus>, Vec<String>) {
    (status, effects.iter().map(|e| e.to_string()).collect())
}

#[test]
fn arrival_claims_a_task_before_running_it() {
    let w = wf();
    let ready = StepRecord {
        due_at: Some(t0()),
        ..rec("task", StepStatus::Ready, 0)
    };
    let retrying = StepRecord {
        due_at: Some(t0() - secs(1)),
        ..rec("task", StepStatus::Retrying, 1)
    };
    let released = StepRecord {
        satisfied: vec!["task".into(), "pure".into()],
        ..rec("needy", StepStatus::Pending, 0)
    };
    // The lease: the step's timeout (else the default lease) and a grace.
    for (r, attempt, lease) in [(&ready, 1, 40), (&retrying, 2, 40), (&released, 1, 930)] {
        let m = msg(&r.key.step, attempt);
        let t = decide_in(
            &w,
            r,
            Event::Arrived {
                msg: &m,
                again: false,
            },
            false,
        );
        let run = format!("run {attempt}");
        assert_eq!(summary(&t), s(Some(StepStatus::Running), &[&run]), "{r:?}");
        let write = t.write.unwrap();
        assert_eq!(
            write.guard,
            Guard::unchanged(r),
            "claimed from the record as read"
        );
        assert_eq!(write.record.lease_until, Some(t0() + secs(lease)));
        let Effect::Run { held, .. } = &t.effects[0] else {
            unreachable!()
        };
        assert_eq!(
            held.lease, write.record.lease_until,
            "the outcome holds the claim"
        );
    }
}

#[test]
fn arrival_renders_a_pure_step_without_a_claim() {
    let w = wf();
    for step in ["pure", "fan"] {
        let ready = rec(step, StepStatus::Ready, 0);
        let m = msg(step, 1);
        let t = decide_in(
            &w,
            &ready,
            Event::Arrived {
                msg: &m,
                again: false,
            },
            false,
        );
        assert_eq!(summary(&t), s(None, &["run 1"]), "{step}");
        let Effect::Run { held, .. } = &t.effects[0] else {
            unreachable!()
        };
        assert_eq!(held, &Guard::unchanged(&ready));
    }
}

#[test]
fn arrival_before_due_sends_the_message_again_for_then() {
    let w = wf();
    let later = StepRecord {
        due_at: Some(t0() + secs(5)),
        ..rec("task", StepStatus::Retrying, 1)
    };
    let m = msg("task", 2);
    let t = decide_in(
        &w,
        &later,
        Event::Arrived {
            msg: &m,
            again: false,
        },
        false,
    );
    assert_eq!(summary(&t), s(None, &["send 2 after 5s"]));
}

#[test]
fn arrival_in_a_failing_run_cancels_what_has_not_started() {
    let w = wf();
    let ready = rec("task", StepStatus::Ready, 0);
    let m = msg("task", 1);
    let t = decide_in(
        &w,
        &ready,
        Event::Arrived {
            msg: &m,
            again: false,
        },
        true,
    );
    assert_eq!(summary(&t), s(Some(StepStatus::Cancelled), &["settle"]));
    assert_eq!(t.write.unwrap().guard, Guard::at(NOT_STARTED, 0));
}

#[test]
fn a_message_arriving_again_takes_over_its_attempt_only_when_handed_on_or_lapsed() {
    let w = wf();
    let live = StepRecord {
        lease_until: Some(t0() + secs(3)),
        ..rec("task", StepStatus::Running, 2)
    };
    let lapsed = StepRecord {
        lease_until: Some(t0() - secs(1)),
        ..live.clone()
    };
    let m = msg("task", 2);
    let handed_on = DispatchMsg {
        resume: true,
        ..m.clone()
    };
    for (r, m) in [(&live, &handed_on), (&lapsed, &m)] {
        let t = decide_in(
            &w,
            r,
            Event::Arrived {
                msg: m,
                again: true,
            },
            false,
        );
        assert_eq!(summary(&t), s(Some(StepStatus::Running), &["run 2"]));
        let write = t.write.unwrap();
        assert_eq!(write.guard.lease, r.lease_until, "one copy takes it over");
        assert_eq!(write.record.lease_until, Some(t0() + secs(40)));
    }
    // A copy received again while the lease is live, or seen for the first time, is
    // a duplicate: the attempt runs elsewhere.
    for again in [true, false] {
        let dup = decide_in(&w, &live, Event::Arrived { msg: &m, again }, false);
        assert_eq!(dup, Transition::none(), "again: {again}");
    }
}

#[test]
fn a_fan_out_arriving_again_is_not_expanded_again() {
    let w = wf();
    let expanded = StepRecord {
        fan_out: Some(FanOut {
            total: 3,
            lanes: 2,
            ended: 1,
            failed: 0,
            base: 0,
        }),
        ..rec("fan", StepStatus::Running, 1)
    };
    let m = msg("fan", 1);
    for again in [false, true] {
        let t = decide_in(&w, &expanded, Event::Arrived { msg: &m, again }, false);
        assert_eq!(t, Transition::none(), "again: {again}");
    }
}

#[test]
fn a_waiting_step_wakes_when_due_and_waits_again_before() {
    let w = wf();
    let waiting = StepRecord {
        due_at: Some(t0()),
        ..rec("pause", StepStatus::Waiting, 1)
    };
    let m = msg("pause", 1);
    let t = decide_in(
        &w,
        &waiting,
        Event::Arrived {
            msg: &m,
            again: false,
        },
        false,
    );
    assert_eq!(summary(&t), s(Some(StepStatus::Succeeded), &["settle"]));
    let early = StepRecord {
        due_at: Some(t0() + secs(60)),
        ..waiting
    };
    let t = decide_in(
        &w,
        &early,
        Event::Arrived {
            msg: &m,
            again: false,
        },
        false,
    );
    assert_eq!(summary(&t), s(None, &["send 1 after 60s"]));
}

#[test]
fn outcomes_end_retry_or_expand_the_attempt_under_its_guard() {
    let w = wf();
    let held = Guard::at(&[StepStatus::Running], 1);
    let running = rec("task", StepStatus::Running, 1);
    let ok = Outcome::Succeeded {
        output: Data::Inline(json!(1)),
    };
    let retryable = Outcome::Failed {
        error: ErrorInfo::new("http", "503"),
        retryable: true,
    };
    let fatal = Outcome::Failed {
        error: ErrorInfo::new("http", "400"),
        retryable: false,
    };
    let ended = |r: &StepRecord, o: &Outcome| {
        decide_in(
            &w,
            r,
            Event::Ended {
                attempt: r.attempt,
                outcome: o,
                held: Some(&held),
            },
            false,
        )
    };
    assert_eq!(
        summary(&ended(&running, &ok)),
        s(Some(StepStatus::Succeeded), &["settle"])
    );
    assert_eq!(
        summary(&ended(&running, &retryable)),
        s(
            Some(StepStatus::Retrying),
            &["send 2 after 2s", "announce the retry"]
        )
    );
    let failed = ended(&running, &fatal);
    assert_eq!(summary(&failed), s(Some(StepStatus::Failed), &["settle"]));
    let w_ = failed.write.unwrap();
    assert_eq!(w_.guard, held);
    assert_eq!(
        w_.fail_run,
        Some(ErrorInfo::new("http", "step `task` failed: 400")),
        "fail fast in the same write"
    );
    let last = rec("task", StepStatus::Running, 3);
    assert_eq!(
        summary(&ended(&last, &retryable)),
        s(Some(StepStatus::Failed), &["settle"]),
        "no attempts left"
    );
    let fan = rec("fan", StepStatus::Running, 1);
    let expanded = Outcome::Expanded {
        items: Data::Inline(json!([1, 2, 3])),
        total: 3,
    };
    let t = ended(&fan, &expanded);
    assert_eq!(summary(&t), s(Some(StepStatus::Running), &["launch lanes"]));
    let f = t.write.unwrap().record.fan_out.unwrap();
    assert_eq!((f.total, f.lanes), (3, 2));
}

#[test]
fn a_task_stopped_by_a_cancel_ends_cancelled_never_retried_nor_failing_the_run() {
    let w = wf();
    let held = Guard::at(&[StepStatus::Running], 1);
    let running = rec("task", StepStatus::Running, 1);
    let asked = ErrorInfo::new("cancelled", "stopped while running: cancelled by ana");
    let stopped = Outcome::Stopped {
        error: asked.clone(),
    };
    let t = decide_in(
        &w,
        &running,
        Event::Ended {
            attempt: 1,
            outcome: &stopped,
            held: Some(&held),
        },
        false,
    );
    assert_eq!(summary(&t), s(Some(StepStatus::Cancelled), &["settle"]));
    let write = t.write.unwrap();
    assert_eq!(write.guard, held);
    assert_eq!(write.record.error, Some(asked));
    assert_eq!(
        write.fail_run, None,
        "the cancel, not the step, ends the run"
    );
}

#[test]
fn an_outcome_for_another_attempt_or_a_step_not_running_changes_nothing() {
    let w = wf();
    let ok = Outcome::Succeeded {
        output: Data::Inline(json!(1)),
    };
    for r in [
        rec("task", StepStatus::Running, 2),
        rec("task", StepStatus::Succeeded, 1),
        rec("task", StepStatus::Waiting, 1),
        rec("task", StepStatus::Cancelled, 1),
    ] {
        let t = decide_in(
            &w,
            &r,
            Event::Ended {
                attempt: 1,
                outcome: &ok,
                held: None,
            },
            false,
        );
        assert_eq!(t, Transition::none(), "{r:?}");
    }
}

#[test]
fn a_wait_parks_under_its_claim_and_the_tick_wakes_long_ones() {
    let w = wf();
    let held = Guard::at(&[StepStatus::Running], 1);
    let running = rec("pause", StepStatus::Running, 1);
    let soon = Event::Parked {
        attempt: 1,
        due: Some(t0() + secs(60)),
        held: &held,
    };
    assert_eq!(
        summary(&decide_in(&w, &running, soon, false)),
        s(Some(StepStatus::Waiting), &["send 1 after 60s"])
    );
    let late = Event::Parked {
        attempt: 1,
        due: Some(t0() + secs(86_400)),
        held: &held,
    };
    assert_eq!(
        summary(&decide_in(&w, &running, late, false)),
        s(Some(StepStatus::Waiting), &[]),
        "beyond the queue's longest delay"
    );
}

#[test]
fn a_lease_expiry_holds_only_for_the_lease_it_saw() {
    let w = wf();
    let lease = t0() - secs(1);
    let running = StepRecord {
        lease_until: Some(lease),
        ..rec("task", StepStatus::Running, 1)
    };
    let t = decide_in(
        &w,
        &running,
        Event::LeaseExpired { attempt: 1, lease },
        false,
    );
    assert_eq!(
        summary(&t),
        s(
            Some(StepStatus::Retrying),
            &["send 2 after 2s", "announce the retry"]
        )
    );
    assert_eq!(t.write.unwrap().guard, Guard::unchanged(&running));
    // Taken over since: a new lease, so the expiry seen is no longer the record's.
    let resumed = StepRecord {
        lease_until: Some(t0() + secs(30)),
        ..running.clone()
    };
    let t = decide_in(
        &w,
        &resumed,
        Event::LeaseExpired { attempt: 1, lease },
        false,
    );
    assert_eq!(t, Transition::none());
}

#[test]
fn fail_fast_and_cancel_end_only_what_has_not_started() {
    let w = wf();
    for status in [
        StepStatus::Pending,
        StepStatus::Ready,
        StepStatus::Retrying,
        StepStatus::Waiting,
    ] {
        for event in [Event::FailFast, Event::CancelRequested] {
            let t = decide_in(&w, &rec("task", status, 1), event, true);
            assert_eq!(
                summary(&t),
                s(Some(StepStatus::Cancelled), &["settle"]),
                "{status:?}"
            );
        }
    }
    for status in [
        StepStatus::Running,
        StepStatus::Succeeded,
        StepStatus::Failed,
    ] {
        let t = decide_in(&w, &rec("task", status, 1), Event::FailFast, true);
        assert_eq!(t, Transition::none(), "{status:?}");
    }
}

#[test]
fn a_fan_out_ends_by_its_fan_in() {
    let w = wf();
    let running = StepRecord {
        fan_out: Some(FanOut::default()),
        ..rec("fan", StepStatus::Running, 1)
    };
    let out = Data::Inline(json!([1, 2, 3]));
    let event = Event::FannedIn {
        status: StepStatus::Succeeded,
        output: Some(&out),
        error: None,
    };
    let t = decide_in(&w, &running, event, false);
    assert_eq!(summary(&t), s(Some(StepStatus::Succeeded), &["settle"]));
    assert_eq!(t.write.unwrap().guard, Guard::at(&[StepStatus::Running], 1));
    let plain = rec("task", StepStatus::Running, 1);
    assert_eq!(decide_in(&w, &plain, event, false), Transition::none());
}

#[test]
fn a_lost_message_is_sent_again_counted_then_given_up_on() {
    let w = wf();
    let ready = rec("task", StepStatus::Ready, 0);
    let t = decide_in(&w, &ready, Event::Lost, false);
    assert_eq!(
        summary(&t),
        s(Some(StepStatus::Ready), &["send 1 after 0s"])
    );
    let write = t.write.unwrap();
    assert_eq!(
        write.guard,
        Guard::unchanged(&ready),
        "a no-op if it moved on"
    );
    assert_eq!((write.record.resends, write.record.due_at), (1, Some(t0())));
    let worn = StepRecord {
        resends: MAX_RESENDS,
        ..ready
    };
    let t = decide_in(&w, &worn, Event::Lost, false);
    assert_eq!(summary(&t), s(Some(StepStatus::Failed), &["settle"]));
    let write = t.write.unwrap();
    assert_eq!(write.record.error.unwrap().error, "undeliverable");
    assert!(
        write.fail_run.is_some(),
        "the run goes on by its failure rules"
    );
    for status in [StepStatus::Running, StepStatus::Succeeded] {
        let t = decide_in(&w, &rec("task", status, 1), Event::Lost, false);
        assert_eq!(t, Transition::none(), "{status:?}");
    }
}

#[test]
fn a_signal_waiting_for_good_is_sent_its_message_again_without_a_cap() {
    // Its message only looks again for a signal kept before it parked.
    let w = wf();
    let waiting = StepRecord {
        resends: MAX_RESENDS,
        ..rec("smoke", StepStatus::Waiting, 1)
    };
    let t = decide_in(&w, &waiting, Event::Lost, false);
    assert_eq!(
        summary(&t),
        s(Some(StepStatus::Waiting), &["send 1 after 0s"])
    );
    let write = t.write.unwrap();
    assert_eq!(
        (write.record.resends, write.record.due_at),
        (MAX_RESENDS + 1, None),
        "counted, and still waiting for good"
    );
}

#[test]
fn re_sends_wait_twice_as_long_each_time() {
    let stale = Duration::from_secs(60);
    let mut r = rec("task", StepStatus::Ready, 0);
    for (resends, wait) in [(0, 60), (1, 120), (3, 480)] {
        r.resends = resends;
        assert!(!resend_due(&r, t0(), t0() + secs(wait - 1), stale));
        assert!(resend_due(&r, t0(), t0() + secs(wait), stale));
    }
}

#[test]
fn an_enormous_timeout_saturates_the_lease_instead_of_overflowing() {
    let w = braid_lang::parse(
        "t.yaml",
        "name: t\nsteps:\n  - id: task\n    http: { url: \"http://x.invalid\" }\n    timeout: 100000000d\n",
    );
    // Validation may refuse it; when it does not, the claim must not panic.
    if let Ok(w) = w {
        let ready = rec("task", StepStatus::Ready, 0);
        let m = msg("task", 1);
        let t = decide_in(
            &w,
            &ready,
            Event::Arrived {
                msg: &m,
                again: false,
            },
            false,
        );
        assert_eq!(summary(&t).0, Some(StepStatus::Running));
    }
}

#[test]
fn the_end_of_its_run_cancels_every_step_not_final() {
    for status in [
        StepStatus::Pending,
        StepStatus::Ready,
        StepStatus::Running,
        StepStatus::Waiting,
        StepStatus::Retrying,
    ] {
        let t = run_ended(&rec("task", status, 1), t0());
        assert_eq!(
            summary(&t),
            s(Some(StepStatus::Cancelled), &[]),
            "{status:?}"
        );
    }
    let t = run_ended(&rec("task", StepStatus::Succeeded, 1), t0());
    assert_eq!(t, Transition::none());
}

#[test]
fn a_write_the_store_refuses_fails_the_step_under_the_same_guard() {
    let w = wf();
    let held = Guard::at(&[StepStatus::Running], 1);
    let huge = StepRecord {
        status: StepStatus::Succeeded,
        output: Some(Data::Inline(json!("x".repeat(10)))),
        ..rec("task", StepStatus::Running, 1)
    };
    let event = Event::Refused {
        guard: &held,
        reason: "item too large",
    };
    let t = decide_in(&w, &huge, event, false);
    assert_eq!(summary(&t), s(Some(StepStatus::Failed), &["settle"]));
    let write = t.write.unwrap();
    assert_eq!(write.guard, held);
    assert_eq!(
        write.record.output, None,
        "the value refused is not written again"
    );
    assert_eq!(write.record.error.unwrap().error, "undeliverable");
}

#[test]
fn an_approval_or_signal_parks_and_announces_its_wait() {
    let w = wf();
    let held = Guard::at(&[StepStatus::Running], 1);
    for step in ["ship", "smoke"] {
        let running = rec(step, StepStatus::Running, 1);
        let timeout = Event::Parked {
            attempt: 1,
            due: Some(t0() + secs(600)),
            held: &held,
        };
        assert_eq!(
            summary(&decide_in(&w, &running, timeout, false)),
            s(
                Some(StepStatus::Waiting),
                &["send 1 after 600s", "announce the wait"]
            ),
            "{step}"
        );
        let for_good = Event::Parked {
            attempt: 1,
            due: None,
            held: &held,
        };
        let t = decide_in(&w, &running, for_good, false);
        assert_eq!(
            summary(&t),
            s(Some(StepStatus::Waiting), &["announce the wait"]),
            "{step} without a timeout"
        );
        assert_eq!(t.write.unwrap().record.due_at, None);
    }
}

#[test]
fn a_waiting_approval_ends_by_its_decision_once() {
    let w = wf();
    let waiting = StepRecord {
        due_at: Some(t0() + secs(3600)),
        ..rec("ship", StepStatus::Waiting, 1)
    };
    let approved = Outcome::Succeeded {
        output: Data::Inline(json!({"decision": "approved"})),
    };
    let resolved = |by, attempt, outcome| Event::Resolved {
        attempt,
        by,
        outcome,
    };
    let t = decide_in(
        &w,
        &waiting,
        resolved(Waiter::Approval, 1, &approved),
        false,
    );
    assert_eq!(summary(&t), s(Some(StepStatus::Succeeded), &["settle"]));
    assert_eq!(t.write.unwrap().guard, Guard::unchanged(&waiting));
    let rejected = Outcome::Failed {
        error: ErrorInfo::new("approval.rejected", "rejected by ana"),
        retryable: false,
    };
    let t = decide_in(
        &w,
        &waiting,
        resolved(Waiter::Approval, 1, &rejected),
        false,
    );
    assert_eq!(
        summary(&t),
        s(Some(StepStatus::Failed), &["settle"]),
        "a rejection is never asked again, whatever the retry rules"
    );
    // A decision for another attempt, by the wrong kind of waiter, or once decided.
    for (r, event) in [
        (&waiting, resolved(Waiter::Approval, 2, &approved)),
        (&waiting, resolved(Waiter::Signal, 1, &approved)),
        (
            &rec("ship", StepStatus::Succeeded, 1),
            resolved(Waiter::Approval, 1, &approved),
        ),
        (
            &rec("task", StepStatus::Waiting, 1),
            resolved(Waiter::Approval, 1, &approved),
        ),
    ] {
        assert_eq!(decide_in(&w, r, event, false), Transition::none(), "{r:?}");
    }
}

#[test]
fn a_waiting_approval_or_signal_times_out_for_good() {
    let w = wf();
    for (step, error) in [("ship", "approval.timeout"), ("smoke", "signal.timeout")] {
        let due = StepRecord {
            due_at: Some(t0()),
            ..rec(step, StepStatus::Waiting, 1)
        };
        let t = decide_in(
            &w,
            &due,
            Event::Arrived {
                msg: &msg(step, 1),
                again: false,
            },
            false,
        );
        assert_eq!(summary(&t), s(Some(StepStatus::Failed), &["settle"]));
        assert_eq!(t.write.unwrap().record.error.unwrap().error, error);
        let for_good = rec(step, StepStatus::Waiting, 1);
        let t = decide_in(
            &w,
            &for_good,
            Event::Arrived {
                msg: &msg(step, 1),
                again: true,
            },
            false,
        );
        assert_eq!(
            t,
            Transition::none(),
            "{step} without a timeout: no clock ends it"
        );
    }
}

#[test]
fn a_child_runs_end_resolves_its_waiting_step_and_failures_retry() {
    let w = wf();
    let waiting = StepRecord {
        child_run: Some("child-1".into()),
        ..rec("child", StepStatus::Waiting, 1)
    };
    let by_child = |outcome| Event::Resolved {
        attempt: 1,
        by: Waiter::ChildRun,
        outcome,
    };
    let done = Outcome::Succeeded {
        output: Data::Inline(json!(49)),
    };
    assert_eq!(
        summary(&decide_in(&w, &waiting, by_child(&done), false)),
        s(Some(StepStatus::Succeeded), &["settle"])
    );
    let failed = Outcome::Failed {
        error: ErrorInfo::new("workflow.failed", "child run child-1 failed"),
        retryable: true,
    };
    assert_eq!(
        summary(&decide_in(&w, &waiting, by_child(&failed), false)),
        s(
            Some(StepStatus::Retrying),
            &["send 2 after 1s", "announce the retry"]
        ),
        "a retry starts attempt 2, whose child is a new run"
    );
    let cancelled = Outcome::Failed {
        error: ErrorInfo::new("workflow.cancelled", "child run child-1 cancelled"),
        retryable: false,
    };
    assert_eq!(
        summary(&decide_in(&w, &waiting, by_child(&cancelled), false)),
        s(Some(StepStatus::Failed), &["settle"])
    );
    let approval = Event::Resolved {
        attempt: 1,
        by: Waiter::Approval,
        outcome: &done,
    };
    assert_eq!(decide_in(&w, &waiting, approval, false), Transition::none());
}

#[test]
fn a_task_with_a_callback_parks_beats_and_ends_by_its_callback() {
    let w = wf();
    let held = Guard::at(&[StepStatus::Running], 1);
    let deadline = t0() + secs(3600);
    let running = StepRecord {
        wait_deadline: Some(deadline),
        ..rec("deploy", StepStatus::Running, 1)
    };
    let parked = Event::Parked {
        attempt: 1,
        due: Some(t0() + secs(300)),
        held: &held,
    };
    assert_eq!(
        summary(&decide_in(&w, &running, parked, false)),
        s(
            Some(StepStatus::Waiting),
            &["send 1 after 300s", "announce the wait"]
        )
    );
    let waiting = StepRecord {
        status: StepStatus::Waiting,
        due_at: Some(t0() + secs(300)),
        ..running.clone()
    };
    let t = decide_in(&w, &waiting, Event::Heartbeat { attempt: 1 }, false);
    assert_eq!(
        summary(&t),
        s(Some(StepStatus::Waiting), &["send 1 after 300s"]),
        "the next heartbeat is due five minutes from now"
    );
    // The message sent for the due time the heartbeat moved ends where it arrives;
    // one for the current due time that comes early is sent on to it.
    let moved = StepRecord {
        due_at: Some(t0() + secs(600)),
        ..waiting.clone()
    };
    let arrival = |due: i64| {
        let m = DispatchMsg {
            due: Some(t0() + secs(due)),
            ..msg("deploy", 1)
        };
        summary(&decide_in(
            &w,
            &moved,
            Event::Arrived {
                msg: &m,
                again: false,
            },
            false,
        ))
    };
    assert_eq!(arrival(300), s(None, &[]), "sent for the earlier due time");
    assert_eq!(arrival(600), s(None, &["send 1 after 600s"]), "early");
    assert_eq!(
        decide_in(&w, &waiting, Event::Heartbeat { attempt: 2 }, false),
        Transition::none()
    );
    let called_back = Outcome::Succeeded {
        output: Data::Inline(json!({"deployed": true})),
    };
    let resolved = Event::Resolved {
        attempt: 1,
        by: Waiter::Callback,
        outcome: &called_back,
    };
    assert_eq!(
        summary(&decide_in(&w, &waiting, resolved, false)),
        s(Some(StepStatus::Succeeded), &["settle"])
    );
}

#[test]
fn a_callback_that_misses_its_heartbeat_or_timeout_fails_the_attempt_for_a_retry() {
    let w = wf();
    let arrived = |r: &StepRecord| {
        decide_in(
            &w,
            r,
            Event::Arrived {
                msg: &msg("deploy", 1),
                again: false,
            },
            false,
        )
    };
    for (due, deadline, error) in [
        (t0(), t0() + secs(3000), "callback.heartbeat"),
        (t0(), t0(), "callback.timeout"),
    ] {
        let waiting = StepRecord {
            due_at: Some(due),
            wait_deadline: Some(deadline),
            ..rec("deploy", StepStatus::Waiting, 1)
        };
        let t = arrived(&waiting);
        assert_eq!(
            summary(&t),
            s(
                Some(StepStatus::Retrying),
                &["send 2 after 1s", "announce the retry"]
            ),
            "{error}"
        );
        assert_eq!(t.write.unwrap().record.error.unwrap().error, error);
    }
}

#[test]
fn a_retry_of_the_run_resets_a_final_step_to_pending_at_its_attempt() {
    let w = wf();
    let failed = StepRecord {
        error: Some(ErrorInfo::new("http.500", "boom")),
        finished_at: Some(t0()),
        ..rec("task", StepStatus::Failed, 3)
    };
    let redriven = |r: &StepRecord, satisfied: &[String]| {
        decide_in(
            &w,
            r,
            Event::Redriven {
                drive: 1,
                satisfied,
                iteration_base: 0,
            },
            false,
        )
    };
    // A root: its needs are met, so it is sent its next attempt at once.
    let t = redriven(&failed, &[]);
    assert_eq!(
        summary(&t),
        s(Some(StepStatus::Ready), &["send 4 after 0s"])
    );
    let write = t.write.unwrap();
    assert_eq!(write.guard, Guard::unchanged(&failed));
    let reset = write.record;
    assert_eq!((reset.attempt, reset.retry_base, reset.drive), (3, 3, 1));
    assert!(reset.error.is_none() && reset.finished_at.is_none());
    // A step whose needs run again too waits for them.
    let cancelled = rec("needy", StepStatus::Cancelled, 0);
    let t = redriven(&cancelled, &["pure".to_string()]);
    assert_eq!(summary(&t), s(Some(StepStatus::Pending), &[]));
    assert_eq!(t.write.unwrap().record.satisfied, ["pure"]);
    // Reset once per retry; a step in flight is not reset.
    assert_eq!(reset.due_at, Some(t0()));
    let again = StepRecord { drive: 1, ..reset };
    assert_eq!(redriven(&again, &[]), Transition::none());
    assert_eq!(
        redriven(&rec("task", StepStatus::Running, 3), &[]),
        Transition::none()
    );
}

#[test]
fn a_reset_step_starts_on_its_next_attempt_and_counts_retries_afresh() {
    let w = wf();
    let reset = StepRecord {
        retry_base: 3,
        drive: 1,
        ..rec("task", StepStatus::Pending, 3)
    };
    let arrive = |m: &DispatchMsg| {
        decide_in(
            &w,
            &reset,
            Event::Arrived {
                msg: m,
                again: false,
            },
            false,
        )
    };
    // A message of the run's first drive starts nothing.
    assert_eq!(arrive(&msg("task", 1)), Transition::none());
    let t = arrive(&msg("task", 4));
    assert_eq!(summary(&t), s(Some(StepStatus::Running), &["run 4"]));
    // Attempt 4 is the first of this drive: two more are left (`attempts: 3`).
    let running = t.write.unwrap().record;
    let failure = Outcome::Failed {
        error: ErrorInfo::new("http.500", "boom"),
        retryable: true,
    };
    let ended = |r: &StepRecord| {
        decide_in(
            &w,
            r,
            Event::Ended {
                attempt: r.attempt,
                outcome: &failure,
                held: None,
            },
            false,
        )
    };
    assert_eq!(
        ended(&running).write.unwrap().record.status,
        StepStatus::Retrying
    );
    let third = StepRecord {
        attempt: 6,
        ..running
    };
    assert_eq!(
        ended(&third).write.unwrap().record.status,
        StepStatus::Failed
    );
}

#[test]
fn a_retry_and_a_claim_count_re_sends_afresh() {
    let w = wf();
    // A child run waited on for good was looked at again many times.
    let waited = StepRecord {
        resends: 9,
        ..rec("child", StepStatus::Waiting, 1)
    };
    let failed = Outcome::Failed {
        error: ErrorInfo::new("workflow.failed", "the child failed"),
        retryable: true,
    };
    let t = decide_in(
        &w,
        &waited,
        Event::Resolved {
            attempt: 1,
            by: Waiter::ChildRun,
            outcome: &failed,
        },
        false,
    );
    let retrying = t.write.unwrap().record;
    assert_eq!(retrying.status, StepStatus::Retrying);
    assert_eq!(
        retrying.resends, 0,
        "the retry's message is not presumed lost for long"
    );
    let counted = StepRecord {
        resends: 3,
        due_at: Some(t0()),
        ..rec("task", StepStatus::Ready, 0)
    };
    let m = msg("task", 1);
    let t = decide_in(
        &w,
        &counted,
        Event::Arrived {
            msg: &m,
            again: false,
        },
        false,
    );
    assert_eq!(t.write.unwrap().record.resends, 0);
}

#[test]
fn a_cancel_decided_from_a_record_read_before_a_claim_does_not_hold() {
    let w = wf();
    // Read pending, then claimed and parked on its callback (attempt 1) meanwhile.
    let read = rec("deploy", StepStatus::Pending, 0);
    let now = rec("deploy", StepStatus::Waiting, 1);
    let t = decide_in(&w, &read, Event::FailFast, true);
    let guard = t.write.unwrap().guard;
    assert!(guard.holds(&read));
    assert!(
        !guard.holds(&now),
        "the waiting attempt is cancelled from its own record"
    );
}

#[test]
fn an_iteration_kept_by_a_retry_of_its_run_settles_from_the_new_expansion() {
    // `fan` makes one attempt per expansion: the first expansion's base is 0, the
    // next one's 1, so its first messages are attempt 2.
    let kept = StepRecord {
        key: StepKey::iteration("fan", 0),
        output: Some(Data::Inline(json!("done"))),
        finished_at: Some(t0() - secs(60)),
        ..rec("fan", StepStatus::Succeeded, 1)
    };
    let from_new = DispatchMsg {
        key: StepKey::iteration("fan", 0),
        ..msg("fan", 2)
    };
    let t = decide_in(
        &wf(),
        &kept,
        Event::Arrived {
            msg: &from_new,
            again: false,
        },
        false,
    );
    let w = t.write.expect("a write");
    assert_eq!(w.guard, Guard::unchanged(&kept));
    assert_eq!(w.record.status, StepStatus::Succeeded);
    assert_eq!(w.record.output, kept.output, "its output is kept");
    assert_eq!(w.record.attempt, 1, "no new attempt is made");
    assert_eq!(w.record.retry_base, 1, "the new expansion's base");
    assert_eq!(
        w.record
            .earlier
            .iter()
            .map(|a| a.attempt)
            .collect::<Vec<_>>(),
        [1],
        "its attempt is told among the earlier ones"
    );
    assert_eq!(t.effects, [Effect::Settle]);

    // A copy of the message, once kept, and a message of the old expansion: nothing.
    for m in [
        &from_new,
        &DispatchMsg {
            attempt: 1,
            ..from_new.clone()
        },
    ] {
        let t = decide_in(
            &wf(),
            &w.record,
            Event::Arrived {
                msg: m,
                again: true,
            },
            false,
        );
        assert_eq!(t, Transition::none());
    }
    let stale = decide_in(
        &wf(),
        &kept,
        Event::Arrived {
            msg: &DispatchMsg {
                attempt: 1,
                ..from_new.clone()
            },
            again: true,
        },
        false,
    );
    assert_eq!(stale, Transition::none(), "the old expansion's own message");
    // A top-level step that succeeded is never kept this way.
    let top = rec("task", StepStatus::Succeeded, 1);
    let t = decide_in(
        &wf(),
        &top,
        Event::Arrived {
            msg: &msg("task", 9),
            again: false,
        },
        false,
    );
    assert_eq!(t, Transition::none());
}
