//! Table-driven tests of the engine's rules (SPEC §2), as pure functions.

use super::reconcile::{Repair, reconcile};
use super::*;
use crate::model::*;
use braid_lang::{RetryPolicy, Workflow};
use chrono::TimeZone;
use serde_json::{Value, json};
use std::time::Duration;

fn wf(yaml: &str) -> Workflow {
    braid_lang::parse("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn t0() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

const DIAMOND: &str = "
name: diamond
timeout: 1h
params:
  n: { type: integer, default: 3 }
  who: { type: string, required: true }
steps:
  - id: a
    pass: 1
  - id: b
    needs: [a]
    pass: 2
  - id: c
    needs: [a]
    continue_on_failure: true
    pass: 3
  - id: d
    needs: [b, c]
    pass: 4
";

#[test]
fn params_fill_defaults_and_check_types_and_required() {
    let w = wf(DIAMOND);
    assert_eq!(
        params::resolve(&w, &json!({"who": "x"})).unwrap(),
        json!({"n": 3, "who": "x"})
    );
    let cases: &[(Value, &str)] = &[
        (json!({}), "param `who` is required"),
        (
            json!({"who": 1}),
            "param `who` must be of type string, got integer",
        ),
        (
            json!({"who": "x", "n": 1.5}),
            "param `n` must be of type integer, got number",
        ),
        (json!({"who": "x", "m": 1}), "input `m` is not a param"),
        (json!([1]), "must be a JSON object"),
    ];
    for (input, expected) in cases {
        let errs = params::resolve(&w, input).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains(expected)),
            "{input}: {errs:?}"
        );
    }
}

#[test]
fn a_run_timeout_beyond_the_calendar_starts_a_run_without_a_deadline() {
    let w = wf("name: long\ntimeout: 100000000d\nsteps:\n  - id: a\n    pass: 1\n");
    let plan = start::plan(
        &w,
        start::StartInfo {
            run_id: "r1".into(),
            version: "v".into(),
            params: json!({}),
            trigger: Value::Null,
            idempotency_key: None,
            limit: None,
        },
        t0(),
    );
    assert_eq!(plan.run.deadline, None, "never, rather than a panic");
}

#[test]
fn a_new_run_writes_its_roots_ready_and_everything_else_is_pending() {
    let w = wf(DIAMOND);
    let plan = start::plan(
        &w,
        start::StartInfo {
            run_id: "r1".into(),
            version: "v".into(),
            params: json!({}),
            trigger: Value::Null,
            idempotency_key: None,
            limit: None,
        },
        t0(),
    );
    assert_eq!(plan.run.status, RunStatus::Running);
    assert_eq!(plan.run.deadline, Some(t0() + secs(3600)));
    let statuses: Vec<_> = plan
        .steps
        .iter()
        .map(|s| (s.key.step.as_str(), s.status))
        .collect();
    assert_eq!(
        statuses,
        vec![("a", StepStatus::Ready)],
        "only the root is written: the others are pending until they first change"
    );
    assert_eq!(plan.dispatch.len(), 1);
    assert_eq!(plan.dispatch[0].attempt, 1);
    let every: Vec<_> = records::every_step(&w, &"r1".into(), plan.steps)
        .into_iter()
        .map(|s| (s.key.step.to_string(), s.status))
        .collect();
    assert_eq!(
        every,
        vec![
            ("a".to_string(), StepStatus::Ready),
            ("b".to_string(), StepStatus::Pending),
            ("c".to_string(), StepStatus::Pending),
            ("d".to_string(), StepStatus::Pending)
        ]
    );
}

#[test]
fn retry_waits_grow_by_factor_up_to_the_cap() {
    let p = RetryPolicy {
        attempts: 6,
        backoff: Duration::from_secs(2),
        factor: 2.0,
        max_backoff: Some(Duration::from_secs(10)),
        jitter: false,
    };
    let waits: Vec<u64> = (1..=5)
        .map(|a| retry::delay(&p, a, 0.5).as_secs())
        .collect();
    assert_eq!(waits, vec![2, 4, 8, 10, 10]);
}

#[test]
fn full_jitter_scales_the_wait_by_the_random_draw() {
    let p = RetryPolicy {
        jitter: true,
        backoff: Duration::from_secs(8),
        ..RetryPolicy::default()
    };
    assert_eq!(retry::delay(&p, 1, 0.25), Duration::from_secs(2));
    assert_eq!(retry::delay(&p, 1, 0.0), Duration::ZERO);
}

fn failed(retryable: bool) -> Outcome {
    Outcome::Failed {
        error: ErrorInfo::new("boom", "it broke"),
        retryable,
    }
}

#[test]
fn outcomes_become_final_retry_or_fan_out() {
    let w = wf("
name: r
steps:
  - id: flaky
    retry: { attempts: 3, backoff: 1s }
    pass: 1
  - id: once
    pass: 1
");
    let flaky = w.step("flaky").unwrap();
    let once = w.step("once").unwrap();
    let ok = Outcome::Succeeded {
        output: Data::Inline(json!(1)),
    };
    let cases: Vec<(&braid_lang::Step, u32, Outcome, &str)> = vec![
        (flaky, 1, ok.clone(), "final succeeded"),
        (flaky, 1, Outcome::Skipped, "final skipped"),
        (flaky, 1, failed(true), "retry"),
        (flaky, 2, failed(true), "retry"),
        (flaky, 3, failed(true), "final failed"),
        (flaky, 1, failed(false), "final failed"),
        (once, 1, failed(true), "final failed"),
        (
            flaky,
            1,
            Outcome::Expanded {
                items: Data::Inline(json!([1])),
                total: 1,
            },
            "expand",
        ),
    ];
    for (step, attempt, outcome, expected) in cases {
        let got = match verdict::decide(step, attempt, &outcome, t0(), 0.5) {
            verdict::Verdict::Final { status, .. } => format!("final {status}"),
            verdict::Verdict::Retry { due_at, .. } => {
                assert!(due_at > t0());
                "retry".to_string()
            }
            verdict::Verdict::Expand { .. } => "expand".to_string(),
        };
        assert_eq!(got, expected, "{} attempt {attempt} {outcome:?}", step.id);
    }
}

#[test]
fn skipped_and_tolerated_failures_let_dependents_run_but_failures_do_not() {
    let w = wf(DIAMOND);
    let (b, c) = (w.step("b").unwrap(), w.step("c").unwrap());
    assert!(gates::lets_dependents_run(b, StepStatus::Succeeded));
    assert!(gates::lets_dependents_run(b, StepStatus::Skipped));
    assert!(!gates::lets_dependents_run(b, StepStatus::Failed));
    assert!(!gates::lets_dependents_run(b, StepStatus::Cancelled));
    assert!(gates::lets_dependents_run(c, StepStatus::Failed));
    assert!(gates::fails_run(b, StepStatus::Failed));
    assert!(!gates::fails_run(c, StepStatus::Failed));
    let d = w.step("d").unwrap();
    assert!(!gates::is_ready(d, &["b".into()]));
    assert!(gates::is_ready(d, &["c".into(), "b".into()]));
}

#[test]
fn fan_in_keeps_item_order_and_reports_failed_or_stopped_iterations() {
    let (s, v) = output::fan_in(vec![
        (StepStatus::Succeeded, Some(json!("a"))),
        (StepStatus::Succeeded, Some(json!("b"))),
    ]);
    assert_eq!((s, v), (StepStatus::Succeeded, json!(["a", "b"])));
    let (s, v) = output::fan_in(vec![
        (StepStatus::Failed, None),
        (StepStatus::Succeeded, Some(json!(2))),
    ]);
    assert_eq!((s, v), (StepStatus::Failed, json!([null, 2])));
    let (s, _) = output::fan_in(vec![
        (StepStatus::Succeeded, Some(json!(1))),
        (StepStatus::Cancelled, None),
    ]);
    assert_eq!(
        s,
        StepStatus::Cancelled,
        "an iteration stopped by fail fast leaves the step cancelled"
    );
}

#[test]
fn default_run_output_maps_leaf_steps() {
    let w = wf(DIAMOND);
    assert_eq!(
        output::reads(&w).steps.into_iter().collect::<Vec<_>>(),
        vec!["d"]
    );
    let mut scope = braid_lang::expr::Scope::default();
    scope.add_step("d", "succeeded", json!(4));
    let out = output::run_output(&w, &braid_lang::expr::Renderer::default(), &scope).unwrap();
    assert_eq!(out, json!({"d": 4}));
}

pub(crate) fn run() -> RunRecord {
    RunRecord {
        id: "r".into(),
        workflow: "diamond".into(),
        version: "v".into(),
        status: RunStatus::Running,
        params: json!({}),
        trigger: Value::Null,
        params_ref: None,
        trigger_ref: None,
        created_at: t0(),
        finished_at: None,
        deadline: Some(t0() + secs(3600)),
        failing: false,
        output: None,
        error: None,
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

fn rec(step: &str, status: StepStatus) -> StepRecord {
    StepRecord::new("r", StepKey::step(step), status)
}

const STALE: Duration = Duration::from_secs(60);

#[test]
fn sweep_re_sends_ready_steps_only_once_their_message_is_stale() {
    let w = wf(DIAMOND);
    let mut a = rec("a", StepStatus::Ready);
    a.due_at = Some(t0());
    let steps = vec![
        a,
        rec("b", StepStatus::Pending),
        rec("c", StepStatus::Pending),
        rec("d", StepStatus::Pending),
    ];
    assert!(reconcile(&w, &run(), &steps, t0() + secs(10), STALE).is_empty());
    let repairs = reconcile(&w, &run(), &steps, t0() + secs(61), STALE);
    assert_eq!(repairs, vec![Repair::Resend(StepKey::step("a"))]);
}

#[test]
fn sweep_spaces_re_sends_twice_as_far_apart_each_time() {
    let w = wf(DIAMOND);
    let mut a = rec("a", StepStatus::Ready);
    a.due_at = Some(t0());
    a.resends = 2;
    let steps = vec![
        a,
        rec("b", StepStatus::Pending),
        rec("c", StepStatus::Pending),
        rec("d", StepStatus::Pending),
    ];
    assert!(reconcile(&w, &run(), &steps, t0() + secs(239), STALE).is_empty());
    assert_eq!(
        reconcile(&w, &run(), &steps, t0() + secs(240), STALE),
        vec![Repair::Resend(StepKey::step("a"))]
    );
}

#[test]
fn sweep_re_sends_a_signal_waiting_for_good_to_look_again_for_its_signal() {
    let w = wf("
name: waits
steps:
  - id: approve
    approval: { message: ok? }
  - id: tagged
    signal: { name: tag }
");
    let parked = |step: &str| StepRecord {
        attempt: 1,
        started_at: Some(t0()),
        ..rec(step, StepStatus::Waiting)
    };
    let steps = vec![parked("approve"), parked("tagged")];
    assert!(reconcile(&w, &run(), &steps, t0() + secs(59), STALE).is_empty());
    assert_eq!(
        reconcile(&w, &run(), &steps, t0() + secs(60), STALE),
        vec![Repair::Resend(StepKey::step("tagged"))],
        "an approval has nothing kept to look for"
    );
}

#[test]
fn sweep_settles_a_final_step_whose_dependents_were_not_released() {
    let w = wf(DIAMOND);
    let steps = vec![
        rec("a", StepStatus::Succeeded),
        rec("b", StepStatus::Pending),
        rec("c", StepStatus::Pending),
        rec("d", StepStatus::Pending),
    ];
    let repairs = reconcile(&w, &run(), &steps, t0(), STALE);
    assert_eq!(repairs, vec![Repair::Settle(StepKey::step("a"))]);
    // One that ended lately may be releasing them still, or running one in place of a
    // release: it is settled again only once that is stale.
    let mut a = rec("a", StepStatus::Succeeded);
    a.finished_at = Some(t0());
    let lately = vec![a, steps[1].clone(), steps[2].clone(), steps[3].clone()];
    assert!(reconcile(&w, &run(), &lately, t0() + secs(10), STALE).is_empty());
    assert_eq!(
        reconcile(&w, &run(), &lately, t0() + secs(61), STALE),
        vec![Repair::Settle(StepKey::step("a"))]
    );
}

#[test]
fn sweep_expires_leases_and_times_out_runs() {
    let w = wf(DIAMOND);
    let mut a = rec("a", StepStatus::Running);
    a.attempt = 2;
    a.lease_until = Some(t0() + secs(5));
    let steps = vec![
        a,
        rec("b", StepStatus::Pending),
        rec("c", StepStatus::Pending),
        rec("d", StepStatus::Pending),
    ];
    assert!(reconcile(&w, &run(), &steps, t0(), STALE).is_empty());
    assert_eq!(
        reconcile(&w, &run(), &steps, t0() + secs(6), STALE),
        vec![Repair::ExpireLease {
            key: StepKey::step("a"),
            attempt: 2,
            lease: t0() + secs(5),
        }]
    );
    assert_eq!(
        reconcile(&w, &run(), &steps, t0() + secs(3600), STALE),
        vec![Repair::TimeOut]
    );
}

#[test]
fn sweep_cancels_a_ready_step_of_a_failing_run_at_once() {
    // A step runs only once claimed: one still ready runs nowhere.
    let w = wf(DIAMOND);
    let failing = RunRecord {
        failing: true,
        ..run()
    };
    let mut c = rec("c", StepStatus::Ready);
    c.due_at = Some(t0());
    let steps = vec![
        rec("a", StepStatus::Succeeded),
        rec("b", StepStatus::Failed),
        c,
        rec("d", StepStatus::Cancelled),
    ];
    assert_eq!(
        reconcile(&w, &failing, &steps, t0(), STALE),
        vec![Repair::Cancel(StepKey::step("c"))]
    );
}

#[test]
fn a_stopping_fan_out_cancels_only_iterations_not_running() {
    let it = |i: u32, status: StepStatus| StepRecord::new("r", StepKey::iteration("f", i), status);
    for (status, cancels) in [
        (StepStatus::Pending, true),
        (StepStatus::Ready, true),
        (StepStatus::Retrying, true),
        (StepStatus::Waiting, true),
        (StepStatus::Running, false),
        (StepStatus::Succeeded, false),
        (StepStatus::Cancelled, false),
    ] {
        assert_eq!(
            gates::cancels_iteration(&it(4, status)),
            cancels,
            "{status:?}"
        );
    }
}

#[test]
fn sweep_cancels_what_can_no_longer_run_in_a_failing_run_and_finishes_empty_runs() {
    let w = wf(DIAMOND);
    let mut failing = run();
    failing.failing = true;
    let steps = vec![
        rec("a", StepStatus::Succeeded),
        rec("b", StepStatus::Failed),
        rec("c", StepStatus::Running),
        rec("d", StepStatus::Pending),
    ];
    assert_eq!(
        reconcile(&w, &failing, &steps, t0(), STALE),
        vec![Repair::Cancel(StepKey::step("d"))]
    );
    let all_final: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|id| rec(id, StepStatus::Cancelled))
        .collect();
    assert_eq!(
        reconcile(&w, &run(), &all_final, t0(), STALE),
        vec![Repair::FinishRun]
    );
}

#[test]
fn sweep_re_sends_a_lanes_next_iteration_once_overdue_and_fans_in_when_all_are_final() {
    let w = wf("
name: fan
steps:
  - id: f
    for_each: '{{ [1, 2, 3] }}'
    max_parallel: 2
    pass: '{{ item }}'
");
    let mut f = rec("f", StepStatus::Running);
    f.started_at = Some(t0());
    f.fan_out = Some(FanOut {
        total: 3,
        lanes: 2,
        ..FanOut::default()
    });
    let it = |i: u32, status: StepStatus| {
        let mut r = StepRecord::new("r", StepKey::iteration("f", i), status);
        if status.is_final() {
            r.attempt = 1;
            r.finished_at = Some(t0());
        }
        r
    };
    // Iteration 0 ended at t0, so 2 (next in its lane) is due; 1 runs in the other lane.
    let steps = vec![
        f.clone(),
        it(0, StepStatus::Succeeded),
        it(1, StepStatus::Running),
        it(2, StepStatus::Pending),
    ];
    assert!(reconcile(&w, &run(), &steps, t0() + secs(10), STALE).is_empty());
    assert_eq!(
        reconcile(&w, &run(), &steps, t0() + secs(61), STALE),
        vec![Repair::Resend(StepKey::iteration("f", 2))]
    );
    // The first iteration of a lane is due from the expansion.
    let fresh = vec![
        f.clone(),
        it(0, StepStatus::Pending),
        it(1, StepStatus::Running),
        it(2, StepStatus::Pending),
    ];
    assert_eq!(
        reconcile(&w, &run(), &fresh, t0() + secs(61), STALE),
        vec![Repair::Resend(StepKey::iteration("f", 0))]
    );
    let over = vec![
        f.clone(),
        it(0, StepStatus::Succeeded),
        it(1, StepStatus::Succeeded),
        it(2, StepStatus::Succeeded),
    ];
    assert_eq!(
        reconcile(&w, &run(), &over, t0(), STALE),
        vec![Repair::AdvanceFanOut("f".into())]
    );
    // Stopping after a failure (which failed the run in the same write): what has not
    // started is to be cancelled; then it waits for what runs.
    let mut stopping = f.clone();
    stopping.fan_out = Some(FanOut {
        failed: 1,
        ..f.fan_out.unwrap()
    });
    let failing = RunRecord {
        failing: true,
        ..run()
    };
    let unlaunched = vec![
        stopping.clone(),
        it(0, StepStatus::Running),
        it(1, StepStatus::Failed),
        it(2, StepStatus::Pending),
    ];
    assert_eq!(
        reconcile(&w, &failing, &unlaunched, t0(), STALE),
        vec![Repair::AdvanceFanOut("f".into())],
        "iteration 2 waits for 0, still running: it has not started"
    );
    // Iteration 2 was launched when 0 ended, but not claimed: it runs nowhere, so it
    // is cancelled at once (its message, arriving, finds it cancelled).
    let left = vec![
        stopping.clone(),
        it(0, StepStatus::Failed),
        it(1, StepStatus::Running),
        it(2, StepStatus::Pending),
    ];
    assert_eq!(
        reconcile(&w, &failing, &left, t0(), STALE),
        vec![Repair::AdvanceFanOut("f".into())]
    );
    let running = vec![
        stopping,
        it(0, StepStatus::Failed),
        it(1, StepStatus::Running),
        it(2, StepStatus::Cancelled),
    ];
    assert!(reconcile(&w, &failing, &running, t0(), STALE).is_empty());
}

#[test]
fn a_run_under_a_concurrency_limit_is_planned_queued_with_nothing_to_run() {
    let w = wf(DIAMOND);
    let plan = start::plan(
        &w,
        start::StartInfo {
            run_id: "r1".into(),
            version: "v".into(),
            params: json!({}),
            trigger: Value::Null,
            idempotency_key: None,
            limit: Some(1),
        },
        t0(),
    );
    assert_eq!(plan.run.status, RunStatus::Queued);
    assert_eq!(
        plan.run.deadline, None,
        "its time counts from its admission"
    );
    assert!(plan.dispatch.is_empty());
    assert!(plan.steps.iter().all(|s| s.status == StepStatus::Pending));
    let (run, roots) = start::admit(&w, &plan.run, t0() + secs(60));
    assert_eq!((run.status, run.slot), (RunStatus::Running, true));
    assert_eq!(run.deadline, Some(t0() + secs(60) + secs(3600)));
    assert_eq!(roots, [StepKey::step("a")]);
}

#[test]
fn the_sweeper_admits_queued_runs_and_releases_roots_an_admission_left_pending() {
    let w = wf(DIAMOND);
    let queued = RunRecord {
        status: RunStatus::Queued,
        ..run()
    };
    let pending: Vec<StepRecord> = ["a", "b", "c", "d"]
        .iter()
        .map(|s| rec(s, StepStatus::Pending))
        .collect();
    assert_eq!(
        reconcile(&w, &queued, &pending, t0(), Duration::from_secs(60)),
        [Repair::Admit]
    );
    assert_eq!(
        reconcile(&w, &run(), &pending, t0(), Duration::from_secs(60)),
        [Repair::ReleaseRoot(StepKey::step("a"))]
    );
}

#[test]
fn a_fan_out_has_no_more_lanes_than_items_and_all_items_when_unlimited() {
    let w = wf("
name: fan
steps:
  - id: f
    for_each: '{{ [1, 2, 3] }}'
    max_parallel: 10
    pass: '{{ item }}'
  - id: g
    for_each: '{{ [1, 2, 3] }}'
    pass: '{{ item }}'
");
    let f = w.step("f").unwrap();
    let g = w.step("g").unwrap();
    assert_eq!(gates::max_in_flight(f, 3), 3, "a lane per item at most");
    assert_eq!(gates::max_in_flight(f, 30), 10);
    assert_eq!(
        gates::max_in_flight(g, 30),
        30,
        "no max_parallel: all at once"
    );
    let lanes = FanOut {
        total: 5,
        lanes: 2,
        ..FanOut::default()
    };
    assert_eq!(lanes.lane_starts().collect::<Vec<_>>(), [0, 1]);
    assert_eq!(
        (0..5).map(|i| lanes.next_in_lane(i)).collect::<Vec<_>>(),
        [Some(2), Some(3), Some(4), None, None]
    );
}

#[test]
fn a_runs_end_is_told_by_its_last_steps_unless_it_is_failing() {
    let w = wf(DIAMOND);
    let ids = |failing| {
        gates::steps_telling_the_end(&w, failing)
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(false), ["d"], "every other step ends before `d` starts");
    assert_eq!(ids(true), ["a", "b", "c", "d"], "cancelled in any order");
}

#[test]
fn sweep_cancels_a_step_just_released_in_a_failing_run_at_once() {
    let w = wf(DIAMOND);
    let failing = RunRecord {
        failing: true,
        ..run()
    };
    let mut a = rec("a", StepStatus::Succeeded);
    a.finished_at = Some(t0());
    // `b` only needs `a`: the delivery that ended `a` may be about to run it, but only
    // by claiming it, which the cancel's write makes fail.
    let steps = vec![
        a,
        rec("b", StepStatus::Pending),
        rec("c", StepStatus::Failed),
        rec("d", StepStatus::Cancelled),
    ];
    assert_eq!(
        reconcile(&w, &failing, &steps, t0(), STALE),
        vec![Repair::Cancel(StepKey::step("b"))]
    );
}

#[test]
fn sweep_runs_a_step_whose_needs_were_all_released_but_that_was_not_made_ready() {
    let w = wf(DIAMOND);
    let mut b = rec("b", StepStatus::Succeeded);
    b.finished_at = Some(t0());
    let mut c = rec("c", StepStatus::Succeeded);
    c.finished_at = Some(t0());
    let mut d = rec("d", StepStatus::Pending);
    d.satisfied = vec!["b".into(), "c".into()];
    let steps = vec![rec("a", StepStatus::Succeeded), b, c, d];
    assert!(reconcile(&w, &run(), &steps, t0() + secs(10), STALE).is_empty());
    assert_eq!(
        reconcile(&w, &run(), &steps, t0() + secs(61), STALE),
        vec![Repair::Resend(StepKey::step("d"))]
    );
}

#[test]
fn run_started_names_the_trigger_kind_or_api() {
    let at = run().created_at;
    let by_s3 = RunRecord {
        trigger: json!({"kind": "s3", "key": "a"}),
        ..run()
    };
    let started = LifecycleEvent::run_started(&by_s3, at);
    assert_eq!(started.kind, EventKind::RunStarted);
    assert_eq!(started.trigger.as_deref(), Some("s3"));
    let by_api = RunRecord {
        trigger: Value::Null,
        ..run()
    };
    assert_eq!(
        LifecycleEvent::run_started(&by_api, at).trigger.as_deref(),
        Some("api")
    );
    assert_eq!(LifecycleEvent::run_finished(&by_api, at).trigger, None);
}
