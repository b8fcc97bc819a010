//! Conformance suite for [`StateStore`]: every adapter runs every check.
//!
//! Each check uses fresh run ids, so one store can run the whole suite.

use crate::{AuditFilter, Created, Guard, PortError, RunFilter, StateStore};
use braid_engine::model::*;
use chrono::TimeZone;
use serde_json::{Value, json};
use std::sync::Arc;

fn t0() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn fresh_name(tag: &str) -> String {
    format!(
        "{tag}-{}",
        ulid::Ulid::from_parts(0, fastrand::u128(..))
            .to_string()
            .to_lowercase()
    )
}

fn fresh_id(tag: &str) -> RunId {
    RunId::new(fresh_name(tag))
}

fn run_record(id: &str, workflow: &str, key: Option<&str>) -> RunRecord {
    RunRecord {
        id: id.into(),
        workflow: workflow.to_string(),
        version: "v1".into(),
        status: RunStatus::Running,
        params: json!({"p": 1}),
        trigger: Value::Null,
        params_ref: None,
        trigger_ref: None,
        created_at: t0(),
        finished_at: None,
        deadline: None,
        failing: false,
        output: None,
        error: None,
        idempotency_key: key.map(str::to_string),
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

/// A run with steps `a` (ready) and `b` (pending, needs a), created in the store.
async fn two_step_run(store: &dyn StateStore, tag: &str) -> RunRecord {
    let run = run_record(&fresh_id(tag), "conformance", None);
    let a = StepRecord::new(&run.id, StepKey::step("a"), StepStatus::Ready);
    let b = StepRecord::new(&run.id, StepKey::step("b"), StepStatus::Pending);
    assert_eq!(store.create_run(&run, &[a, b]).await.unwrap(), Created::New);
    run
}

fn claimed(rec: &StepRecord, attempt: u32) -> StepRecord {
    StepRecord {
        status: StepStatus::Running,
        attempt,
        lease_until: Some(t0()),
        ..rec.clone()
    }
}

/// Runs every check against `store`.
pub async fn run_all(store: Arc<dyn StateStore>) {
    definitions_round_trip(&*store).await;
    a_version_stored_aside_leaves_the_current_one(&*store).await;
    the_last_stored_definition_is_current(&*store).await;
    markers_round_trip(&*store).await;
    a_signal_is_kept_once_per_name(&*store).await;
    a_cancel_is_recorded_once_on_a_running_run(&*store).await;
    notices_are_appended_up_to_the_cap(&*store).await;
    sla_misses_are_noted_once_and_move_the_timer(&*store).await;
    the_audit_trail_lists_the_latest_entries_oldest_first(&*store).await;
    current_definitions_list_the_registry(&*store).await;
    a_removed_definition_leaves_the_registry_not_its_versions(&*store).await;
    created_run_and_steps_read_back(&*store).await;
    idempotency_key_returns_the_existing_run(&*store).await;
    racing_starts_with_one_key_create_one_run(store.clone()).await;
    claim_succeeds_once(&*store).await;
    concurrent_claims_have_one_winner(store.clone()).await;
    finalize_records_a_result_once(&*store).await;
    satisfy_is_idempotent(&*store).await;
    a_step_not_written_yet_is_created_by_its_first_write(&*store).await;
    fan_out_counts_failures_and_ended_lanes(&*store).await;
    failing_and_finishing_happen_once(&*store).await;
    a_finished_run_reopens_once_as_read(&*store).await;
    a_reopened_step_runs_again_and_its_iterations_go(&*store).await;
    due_runs_follow_timers(&*store).await;
    a_closing_run_is_due_until_closed(&*store).await;
    slots_admit_queued_runs_up_to_the_limit(&*store).await;
    concurrent_admissions_never_exceed_the_limit(store.clone()).await;
    listings_filter_and_order_runs(&*store).await;
    runs_are_found_by_a_prefix_of_their_id(&*store).await;
    missing_records_are_not_found(&*store).await;
    records_over_the_size_limit_are_refused_for_good(&*store).await;
}

pub async fn definitions_round_trip(store: &dyn StateStore) {
    let def = Definition {
        workflow: fresh_name("wf"),
        version: "abc".into(),
        file: "wf.yaml".into(),
        source: "name: x\n".into(),
    };
    store.put_definition(&def).await.unwrap();
    store.put_definition(&def).await.unwrap();
    assert_eq!(
        store.get_definition(&def.workflow, "abc").await.unwrap(),
        def
    );
    assert!(matches!(
        store.get_definition(&def.workflow, "nope").await,
        Err(PortError::NotFound(_))
    ));
}

pub async fn the_last_stored_definition_is_current(store: &dyn StateStore) {
    let v1 = Definition {
        workflow: fresh_name("wf"),
        version: "v1".into(),
        file: "wf.yaml".into(),
        source: "name: x\n".into(),
    };
    let v2 = Definition {
        version: "v2".into(),
        source: "name: x\n# changed\n".into(),
        ..v1.clone()
    };
    assert!(matches!(
        store.current_definition(&v1.workflow).await,
        Err(PortError::NotFound(_))
    ));
    store.put_definition(&v1).await.unwrap();
    assert_eq!(store.current_definition(&v1.workflow).await.unwrap(), v1);
    store.put_definition(&v2).await.unwrap();
    assert_eq!(store.current_definition(&v1.workflow).await.unwrap(), v2);
    store.put_definition(&v1).await.unwrap();
    assert_eq!(store.current_definition(&v1.workflow).await.unwrap(), v1);
}

pub async fn current_definitions_list_the_registry(store: &dyn StateStore) {
    let one = |wf: &str, v: &str| Definition {
        workflow: wf.to_string(),
        version: v.into(),
        file: "wf.yaml".into(),
        source: format!("name: x\n# {v}\n"),
    };
    let (a, b) = (fresh_name("reg"), fresh_name("reg"));
    for d in [one(&a, "v1"), one(&b, "v1"), one(&a, "v2")] {
        store.put_definition(&d).await.unwrap();
    }
    let all = store.current_definitions().await.unwrap();
    let ours: Vec<_> = all
        .iter()
        .filter(|d| d.workflow == a || d.workflow == b)
        .collect();
    assert_eq!(ours.len(), 2, "one entry per workflow: {ours:?}");
    assert!(
        ours.contains(&&one(&a, "v2")),
        "the last stored version is listed"
    );
    assert!(ours.contains(&&one(&b, "v1")));
}

pub async fn a_removed_definition_leaves_the_registry_not_its_versions(store: &dyn StateStore) {
    let def = Definition {
        workflow: "leaving".into(),
        version: "v1".into(),
        file: "leaving.yaml".into(),
        source: "name: leaving\n".into(),
    };
    store.put_definition(&def).await.unwrap();
    assert!(store.remove_definition("leaving").await.unwrap());
    assert!(matches!(
        store.current_definition("leaving").await,
        Err(PortError::NotFound(_))
    ));
    assert!(
        !store
            .current_definitions()
            .await
            .unwrap()
            .iter()
            .any(|d| d.workflow == "leaving")
    );
    assert_eq!(
        store.get_definition("leaving", "v1").await.unwrap(),
        def,
        "runs of the version can still read it"
    );
    assert!(
        !store.remove_definition("leaving").await.unwrap(),
        "not registered any more"
    );
    store.put_definition(&def).await.unwrap();
    assert_eq!(
        store.current_definition("leaving").await.unwrap(),
        def,
        "deployed again"
    );
}

pub async fn a_version_stored_aside_leaves_the_current_one(store: &dyn StateStore) {
    let def = |version: &str| Definition {
        workflow: "aside".into(),
        version: version.into(),
        file: "aside.yaml".into(),
        source: format!("name: aside # {version}\n"),
    };
    store.put_definition(&def("v1")).await.unwrap();
    store.put_version(&def("v2")).await.unwrap();
    assert_eq!(store.current_definition("aside").await.unwrap(), def("v1"));
    assert_eq!(
        store.get_definition("aside", "v2").await.unwrap(),
        def("v2")
    );
}

pub async fn markers_round_trip(store: &dyn StateStore) {
    store.set_marker("other", Some("x")).await.unwrap();
    store.set_marker("sweep", Some("01abc")).await.unwrap();
    assert_eq!(
        store.marker("sweep").await.unwrap().as_deref(),
        Some("01abc")
    );
    store.set_marker("sweep", None).await.unwrap();
    assert_eq!(store.marker("sweep").await.unwrap(), None);
    assert_eq!(
        store.marker("other").await.unwrap().as_deref(),
        Some("x"),
        "markers are independent"
    );
}

pub async fn a_signal_is_kept_once_per_name(store: &dyn StateStore) {
    let run = two_step_run(store, "signals").await;
    let signal = |id: &str, data| braid_engine::model::Signal {
        name: "smoke-passed".into(),
        id: id.into(),
        data: braid_engine::model::Data::Inline(data),
        by: "ana".into(),
        at: t0(),
    };
    assert_eq!(
        store.get_signal(&run.id, "smoke-passed").await.unwrap(),
        None
    );
    let first = signal("s-1", serde_json::json!({"ok": true}));
    assert_eq!(store.put_signal(&run.id, &first).await.unwrap(), first);
    assert_eq!(
        store.put_signal(&run.id, &first).await.unwrap(),
        first,
        "sent again with its id: the same signal"
    );
    let second = signal("s-2", serde_json::json!("late"));
    assert_eq!(
        store.put_signal(&run.id, &second).await.unwrap(),
        first,
        "one signal per name: the first is kept"
    );
    assert_eq!(
        store.get_signal(&run.id, "smoke-passed").await.unwrap(),
        Some(first)
    );
    let other = two_step_run(store, "signals-other").await;
    assert_eq!(
        store.get_signal(&other.id, "smoke-passed").await.unwrap(),
        None,
        "signals are per run"
    );
}

pub async fn a_cancel_is_recorded_once_on_a_running_run(store: &dyn StateStore) {
    let run = two_step_run(store, "cancel").await;
    let ask = braid_engine::model::CancelRequest {
        by: "ana".into(),
        reason: Some("wrong input".into()),
        at: t0(),
    };
    let asked = store
        .request_cancel(&run.id, &ask)
        .await
        .unwrap()
        .expect("a running run takes a cancel");
    assert!(asked.failing, "no new step starts");
    assert_eq!(asked.cancel.as_ref(), Some(&ask));
    assert_eq!(asked.error, Some(ask.error()));
    assert_eq!(store.get_run(&run.id).await.unwrap(), asked);
    let again = braid_engine::model::CancelRequest {
        by: "bo".into(),
        ..ask.clone()
    };
    assert_eq!(
        store.request_cancel(&run.id, &again).await.unwrap(),
        None,
        "asked once"
    );
    let failing = two_step_run(store, "cancel-failing").await;
    let step = store
        .get_step(&failing.id, &StepKey::step("a"))
        .await
        .unwrap();
    let failed = StepRecord {
        status: StepStatus::Failed,
        ..step.clone()
    };
    store
        .finalize_step(
            &Guard::unchanged(&step),
            &failed,
            Some(&ErrorInfo::new("Boom", "a failed")),
        )
        .await
        .unwrap();
    assert_eq!(
        store.request_cancel(&failing.id, &ask).await.unwrap(),
        None,
        "a failing run ends failed"
    );
}

pub async fn sla_misses_are_noted_once_and_move_the_timer(store: &dyn StateStore) {
    // A time of its own, as in `due_runs_follow_timers`.
    let base = chrono::Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()
        + chrono::Duration::seconds(fastrand::i64(0..86_400 * 300));
    let min = |m: i64| base + chrono::Duration::minutes(m);
    let run = RunRecord {
        sla_due: Some(min(5)),
        deadline: Some(min(60)),
        ..run_record(&fresh_id("sla"), "conformance", None)
    };
    let a = StepRecord::new(&run.id, StepKey::step("a"), StepStatus::Ready);
    assert_eq!(store.create_run(&run, &[a]).await.unwrap(), Created::New);
    let ours = |ids: Vec<RunId>| ids.contains(&run.id);
    assert!(
        ours(store.due_runs(min(6), 10_000).await.unwrap()),
        "due at its SLA"
    );

    let miss = |step: &str, m: i64| SlaMiss {
        step: Some(step.to_string()),
        within: format!("{m}m"),
        due: min(m),
    };
    assert!(
        store
            .note_sla_missed(&run, &[miss("a", 5)], Some(min(20)))
            .await
            .unwrap()
    );
    assert!(
        !store
            .note_sla_missed(&run, &[miss("a", 5)], Some(min(20)))
            .await
            .unwrap(),
        "noted once: the run is no longer as read"
    );
    let read = store.get_run(&run.id).await.unwrap();
    assert_eq!(read.sla_missed, [miss("a", 5)]);
    assert_eq!(read.sla_due, Some(min(20)));
    assert!(
        !ours(store.due_runs(min(6), 10_000).await.unwrap()),
        "the timer moved on"
    );
    assert!(ours(store.due_runs(min(21), 10_000).await.unwrap()));

    assert!(
        store
            .note_sla_missed(&read, &[miss("b", 20)], None)
            .await
            .unwrap()
    );
    let last = store.get_run(&run.id).await.unwrap();
    assert_eq!(last.sla_missed, [miss("a", 5), miss("b", 20)]);
    assert_eq!(last.sla_due, None);
    assert!(
        !ours(store.due_runs(min(30), 10_000).await.unwrap()),
        "no SLA left: due at its deadline only"
    );
    assert!(ours(store.due_runs(min(61), 10_000).await.unwrap()));
    assert_eq!(
        RunRecord {
            sla_missed: Vec::new(),
            sla_due: Some(min(5)),
            ..last
        },
        run,
        "the rest of the run is left as it is"
    );
}

pub async fn the_audit_trail_lists_the_latest_entries_oldest_first(store: &dyn StateStore) {
    // Recent, so a store that keeps its trail for a while lists them.
    let now = chrono::Utc::now();
    let workflow = fresh_name("audited");
    let entry = |secs: i64, action: AuditAction, actor: &str| AuditEntry {
        at: now - chrono::Duration::seconds(100 - secs),
        actor: actor.to_string(),
        action,
        workflow: workflow.clone(),
        run_id: (action != AuditAction::Deploy).then(|| RunId::new("01RUN")),
        step: (action == AuditAction::Approve).then(|| "gate".to_string()),
        detail: (action == AuditAction::Cancel).then(|| "not needed".to_string()),
    };
    let all = [
        entry(1, AuditAction::Deploy, "ana"),
        entry(2, AuditAction::Start, "bo"),
        entry(2, AuditAction::Approve, "cy"),
        entry(3, AuditAction::Cancel, "ana"),
    ];
    for e in &all {
        store.note_audit(e).await.unwrap();
    }
    let other = AuditEntry {
        workflow: fresh_name("other"),
        ..entry(4, AuditAction::Deploy, "dee")
    };
    store.note_audit(&other).await.unwrap();
    let of = |since: Option<Timestamp>, limit: usize| AuditFilter {
        workflow: Some(workflow.clone()),
        since,
        limit,
    };
    let listed = store.audit(&of(None, 100)).await.unwrap();
    let actions: Vec<_> = listed.iter().map(|e| e.action).collect();
    assert_eq!(listed.len(), 4, "its workflow's only: {listed:?}");
    assert_eq!(listed[0], all[0]);
    assert_eq!(listed[3], all[3]);
    assert!(
        actions
            == [
                AuditAction::Deploy,
                AuditAction::Start,
                AuditAction::Approve,
                AuditAction::Cancel
            ]
            || actions
                == [
                    AuditAction::Deploy,
                    AuditAction::Approve,
                    AuditAction::Start,
                    AuditAction::Cancel
                ],
        "in time order: {actions:?}"
    );
    let latest = store.audit(&of(None, 2)).await.unwrap();
    assert_eq!(latest.last(), Some(&all[3]), "the latest ones");
    assert_eq!(latest.len(), 2);
    let since = store.audit(&of(Some(all[3].at), 100)).await.unwrap();
    assert_eq!(since, [all[3].clone()]);
    let everyone = store
        .audit(&AuditFilter {
            workflow: None,
            since: Some(all[0].at),
            limit: 1000,
        })
        .await
        .unwrap();
    assert!(everyone.contains(&other) && everyone.contains(&all[0]));
}

pub async fn notices_are_appended_up_to_the_cap(store: &dyn StateStore) {
    let run = two_step_run(store, "notices").await;
    let log = |i: usize| braid_engine::model::NoticeLog {
        at: t0(),
        on: "failed".into(),
        step: i.is_multiple_of(2).then(|| "a".to_string()),
        target: "slack".into(),
        sent: i != 1,
        tries: 3,
        error: (i == 1).then(|| "http.500: down".to_string()),
        thread: (i == 2).then(|| braid_engine::model::SlackThread {
            channel: "#ops".into(),
            ts: "1700000000.000100".into(),
        }),
    };
    for i in 0..braid_engine::model::MAX_NOTICES {
        assert!(
            store.note_notice(&run.id, &log(i)).await.unwrap(),
            "notice {i}"
        );
    }
    assert!(
        !store.note_notice(&run.id, &log(99)).await.unwrap(),
        "over the cap"
    );
    let read = store.get_run(&run.id).await.unwrap();
    assert_eq!(read.notices.len(), braid_engine::model::MAX_NOTICES);
    assert_eq!(read.notices[1], log(1));
    assert_eq!(read.notices[2], log(2));
    assert_eq!(
        RunRecord {
            notices: Vec::new(),
            ..read
        },
        run,
        "the rest of the run is left as it was"
    );
    assert!(
        !store
            .note_notice(&RunId::new("no-such-run"), &log(0))
            .await
            .unwrap_or(false),
        "an unknown run keeps nothing"
    );
}

pub async fn created_run_and_steps_read_back(store: &dyn StateStore) {
    let run = two_step_run(store, "create").await;
    assert_eq!(store.get_run(&run.id).await.unwrap(), run);
    let steps = store.list_steps(&run.id).await.unwrap();
    let keys: Vec<String> = steps.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(keys, vec!["a", "b"]);
    assert_eq!(
        store
            .get_step(&run.id, &StepKey::step("b"))
            .await
            .unwrap()
            .status,
        StepStatus::Pending
    );
}

pub async fn idempotency_key_returns_the_existing_run(store: &dyn StateStore) {
    let key = fresh_name("key");
    let first = run_record(&fresh_id("idem"), "idem-wf", Some(&key));
    let a = StepRecord::new(&first.id, StepKey::step("a"), StepStatus::Ready);
    assert_eq!(
        store
            .create_run(&first, std::slice::from_ref(&a))
            .await
            .unwrap(),
        Created::New
    );
    let second = run_record(&fresh_id("idem"), "idem-wf", Some(&key));
    let a2 = StepRecord::new(&second.id, StepKey::step("a"), StepStatus::Ready);
    match store.create_run(&second, &[a2]).await.unwrap() {
        Created::Existing(r) => assert_eq!(r.id, first.id),
        Created::New => panic!("a used idempotency key must not start a second run"),
    }
    assert!(matches!(
        store.get_run(&second.id).await,
        Err(PortError::NotFound(_))
    ));
    // The same key under another workflow is another run.
    let other = run_record(&fresh_id("idem"), "idem-other", Some(&key));
    assert_eq!(store.create_run(&other, &[]).await.unwrap(), Created::New);
}

/// Starts racing with one idempotency key (one event delivered several times at once)
/// create one run; every other start gets that run back.
pub async fn racing_starts_with_one_key_create_one_run(store: Arc<dyn StateStore>) {
    let key = fresh_name("race-key");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let run = run_record(&fresh_id("idem-race"), "idem-race", Some(&key));
            let a = StepRecord::new(&run.id, StepKey::step("a"), StepStatus::Ready);
            let created = store.create_run(&run, &[a]).await.unwrap();
            (run.id, created)
        }));
    }
    let mut new = Vec::new();
    let mut existing = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (id, Created::New) => new.push(id),
            (_, Created::Existing(r)) => existing.push(r.id),
        }
    }
    assert_eq!(new.len(), 1, "exactly one start creates the run");
    assert!(existing.iter().all(|id| *id == new[0]), "{existing:?}");
}

pub async fn claim_succeeds_once(store: &dyn StateStore) {
    let run = two_step_run(store, "claim").await;
    let a = store.get_step(&run.id, &StepKey::step("a")).await.unwrap();
    let guard = Guard::at(&[StepStatus::Ready, StepStatus::Retrying], 0);
    assert!(store.update_step(&guard, &claimed(&a, 1)).await.unwrap());
    assert!(
        !store.update_step(&guard, &claimed(&a, 1)).await.unwrap(),
        "a duplicate claim must fail"
    );
    let stale = Guard::at(&[StepStatus::Running], 7);
    assert!(
        !store.update_step(&stale, &claimed(&a, 8)).await.unwrap(),
        "a stale attempt must fail"
    );
    let now = store.get_step(&run.id, &StepKey::step("a")).await.unwrap();
    assert_eq!((now.status, now.attempt), (StepStatus::Running, 1));
    // Taking the running attempt over (a message resuming it) compares its lease.
    let renewed = StepRecord {
        lease_until: Some(t0() + chrono::Duration::minutes(5)),
        ..now.clone()
    };
    let as_read = Guard::unchanged(&now);
    assert!(store.update_step(&as_read, &renewed).await.unwrap());
    assert!(
        !store.update_step(&as_read, &renewed).await.unwrap(),
        "a second take-over of the same lease must fail"
    );
}

pub async fn concurrent_claims_have_one_winner(store: Arc<dyn StateStore>) {
    let run = two_step_run(&*store, "race").await;
    let a = store.get_step(&run.id, &StepKey::step("a")).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, a) = (store.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            let guard = Guard::at(&[StepStatus::Ready], 0);
            store.update_step(&guard, &claimed(&a, 1)).await.unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one concurrent claim wins");
}

pub async fn finalize_records_a_result_once(store: &dyn StateStore) {
    let run = two_step_run(store, "final").await;
    let a = store.get_step(&run.id, &StepKey::step("a")).await.unwrap();
    store
        .update_step(&Guard::at(&[StepStatus::Ready], 0), &claimed(&a, 1))
        .await
        .unwrap();
    let done = StepRecord {
        status: StepStatus::Succeeded,
        attempt: 1,
        output: Some(Data::Inline(json!({"x": 1}))),
        ..a.clone()
    };
    let guard = Guard::at(&[StepStatus::Running], 1);
    let fin = store
        .finalize_step(&guard, &done, None)
        .await
        .unwrap()
        .expect("first finalize applies");
    assert_eq!(fin.run.id, run.id);
    assert!(fin.parent.is_none());
    assert!(
        store
            .finalize_step(&guard, &done, None)
            .await
            .unwrap()
            .is_none(),
        "a duplicate result is recorded once"
    );
    assert_eq!(
        store
            .get_step(&run.id, &StepKey::step("a"))
            .await
            .unwrap()
            .output,
        done.output
    );
}

/// Releasing needs is idempotent, and the write that completes them makes the
/// dependent ready exactly once.
pub async fn satisfy_is_idempotent(store: &dyn StateStore) {
    let run = two_step_run(store, "satisfy").await;
    let needs = vec!["a".to_string(), "x".to_string()];
    assert!(
        store
            .satisfy(&run.id, &"b".into(), &"a".into(), &needs, t0())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .satisfy(&run.id, &"b".into(), &"a".into(), &needs, t0())
            .await
            .unwrap()
            .is_none()
    );
    let b = store.get_step(&run.id, &StepKey::step("b")).await.unwrap();
    assert_eq!(
        (b.satisfied.clone(), b.status),
        (vec!["a".to_string()], StepStatus::Pending)
    );
    let ready = store
        .satisfy(&run.id, &"b".into(), &"x".into(), &needs, t0())
        .await
        .unwrap()
        .expect("the last need makes it ready");
    assert_eq!(
        (ready.status, ready.due_at),
        (StepStatus::Ready, Some(t0()))
    );
    assert!(
        store
            .satisfy(&run.id, &"b".into(), &"x".into(), &needs, t0())
            .await
            .unwrap()
            .is_none(),
        "only once"
    );
}

/// A step not written yet (a run is created with its roots' records) is created by its
/// release — pending with the need, or ready when it was the only one — or by a write
/// whose guard admits pending.
pub async fn a_step_not_written_yet_is_created_by_its_first_write(store: &dyn StateStore) {
    let run = run_record(&fresh_id("unwritten"), "conformance", None);
    let a = StepRecord::new(&run.id, StepKey::step("a"), StepStatus::Ready);
    store.create_run(&run, &[a]).await.unwrap();
    let both = vec!["a".to_string(), "x".to_string()];
    assert!(
        store
            .satisfy(&run.id, &"b".into(), &"a".into(), &both, t0())
            .await
            .unwrap()
            .is_none()
    );
    let b = store.get_step(&run.id, &StepKey::step("b")).await.unwrap();
    assert_eq!(
        b,
        StepRecord {
            satisfied: vec!["a".to_string()],
            ..StepRecord::new(&run.id, StepKey::step("b"), StepStatus::Pending)
        }
    );
    let ready = store
        .satisfy(&run.id, &"c".into(), &"a".into(), &["a".to_string()], t0())
        .await
        .unwrap()
        .expect("its only need makes it ready");
    assert_eq!(
        (ready.status, ready.satisfied, ready.due_at),
        (StepStatus::Ready, vec!["a".to_string()], Some(t0()))
    );
    let unwritten = StepRecord::new(&run.id, StepKey::step("d"), StepStatus::Pending);
    let skipped = StepRecord {
        status: StepStatus::Skipped,
        finished_at: Some(t0()),
        ..unwritten.clone()
    };
    assert!(
        store
            .finalize_step(&Guard::unchanged(&unwritten), &skipped, None)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.get_step(&run.id, &StepKey::step("d")).await.unwrap(),
        skipped
    );
}

/// An iteration has no record until its first write, which a guard admitting pending
/// creates (once: a second finds it written); a success writes only its own record, a
/// failure counts on its parent in the same write; lanes end once each.
pub async fn fan_out_counts_failures_and_ended_lanes(store: &dyn StateStore) {
    let run = run_record(&fresh_id("fan"), "conformance", None);
    let f = StepRecord::new(&run.id, StepKey::step("f"), StepStatus::Ready);
    store
        .create_run(&run, std::slice::from_ref(&f))
        .await
        .unwrap();
    store
        .update_step(&Guard::at(&[StepStatus::Ready], 0), &claimed(&f, 1))
        .await
        .unwrap();
    let fan_out = FanOut {
        total: 5,
        lanes: 2,
        ..FanOut::default()
    };
    let parent = StepRecord {
        fan_out: Some(fan_out),
        items: Some(Data::Inline(json!([0, 1, 2, 3, 4]))),
        ..claimed(&f, 1)
    };
    let guard = Guard::at(&[StepStatus::Running], 1);
    assert!(store.update_step(&guard, &parent).await.unwrap());
    assert_eq!(
        store.get_step(&run.id, &f.key).await.unwrap().items,
        parent.items
    );
    assert!(
        store
            .list_iterations(&run.id, &"f".into())
            .await
            .unwrap()
            .is_empty()
    );
    let iterations: Vec<StepRecord> = (0..5).map(|i| fan_out.iteration(&run.id, "f", i)).collect();
    assert!(
        matches!(
            store.get_step(&run.id, &iterations[0].key).await,
            Err(PortError::NotFound(_))
        ),
        "not written yet"
    );
    assert!(
        matches!(
            store
                .update_step(
                    &Guard::at(&[StepStatus::Ready], 0),
                    &claimed(&iterations[0], 1)
                )
                .await,
            Err(PortError::NotFound(_))
        ),
        "a guard without pending does not hold for an iteration not written yet"
    );
    let [it0, it1] = [0, 1].map(|i| iterations[i].clone());
    for it in [&it0, &it1] {
        let first = Guard::at(&[StepStatus::Pending], 0);
        assert!(store.update_step(&first, &claimed(it, 1)).await.unwrap());
        assert!(
            !store.update_step(&first, &claimed(it, 1)).await.unwrap(),
            "written once"
        );
    }
    // An outcome written straight over the pending iteration creates its record.
    let straight = StepRecord {
        status: StepStatus::Succeeded,
        attempt: 1,
        output: Some(Data::Inline(json!(4))),
        ..iterations[4].clone()
    };
    assert!(
        store
            .finalize_step(&Guard::unchanged(&iterations[4]), &straight, None)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.get_step(&run.id, &straight.key).await.unwrap(),
        straight
    );
    let ok = StepRecord {
        status: StepStatus::Succeeded,
        output: Some(Data::Inline(json!(1))),
        ..claimed(&it1, 1)
    };
    let fin = store
        .finalize_step(&Guard::at(&[StepStatus::Running], 1), &ok, None)
        .await
        .unwrap()
        .expect("iteration finalizes");
    assert!(fin.parent.is_none(), "a success touches only its record");
    let failed = StepRecord {
        status: StepStatus::Failed,
        error: Some(ErrorInfo::new("x", "y")),
        ..claimed(&it0, 1)
    };
    let fin = store
        .finalize_step(&Guard::at(&[StepStatus::Running], 1), &failed, None)
        .await
        .unwrap()
        .expect("iteration finalizes");
    let counted = fin
        .parent
        .expect("a failure reports its parent")
        .fan_out
        .unwrap();
    assert_eq!((counted.failed, counted.ended), (1, 0));
    for expected in [1, 2] {
        let p = store
            .end_lane(&run.id, &"f".into())
            .await
            .unwrap()
            .expect("running");
        assert_eq!(p.fan_out.unwrap().ended, expected);
    }
    let done = StepRecord {
        status: StepStatus::Failed,
        finished_at: Some(t0()),
        ..store.get_step(&run.id, &f.key).await.unwrap()
    };
    store
        .finalize_step(&guard, &done, None)
        .await
        .unwrap()
        .expect("the fan-out ends");
    assert_eq!(
        store.end_lane(&run.id, &"f".into()).await.unwrap(),
        None,
        "a fan-out that ended counts no lane"
    );
    let iterations = store.list_iterations(&run.id, &"f".into()).await.unwrap();
    let order: Vec<Option<u32>> = iterations.iter().map(|i| i.key.index).collect();
    assert_eq!(
        order,
        vec![Some(0), Some(1), Some(4)],
        "the iterations written, in index order"
    );
}

/// A failing step's final write turns on fail fast atomically, once; a run finishes once.
pub async fn failing_and_finishing_happen_once(store: &dyn StateStore) {
    let run = two_step_run(store, "finish").await;
    // Both steps fail the run; the first failure recorded is the run's error.
    let err = ErrorInfo::new("boom", "step `a` failed");
    let later = ErrorInfo::new("bang", "step `b` failed");
    for (step, from, e) in [
        ("a", StepStatus::Ready, &err),
        ("b", StepStatus::Pending, &later),
    ] {
        let rec = store.get_step(&run.id, &StepKey::step(step)).await.unwrap();
        let failed = StepRecord {
            status: StepStatus::Failed,
            error: Some(e.clone()),
            ..rec
        };
        let fin = store
            .finalize_step(&Guard::status(&[from]), &failed, Some(e))
            .await
            .unwrap()
            .expect("the failure is recorded");
        assert!(fin.run.failing, "the final write turns on fail fast");
    }
    let failing = store.get_run(&run.id).await.unwrap();
    assert!(failing.failing);
    assert_eq!(
        failing.error,
        Some(err),
        "a later failure does not replace the first"
    );
    let done = RunRecord {
        status: RunStatus::Failed,
        finished_at: Some(t0()),
        ..failing
    };
    let read_before = RunRecord {
        status: RunStatus::Succeeded,
        failing: false,
        error: None,
        ..done.clone()
    };
    assert!(
        !store.finish_run(&read_before).await.unwrap(),
        "a run read before a step failed it does not end succeeded"
    );
    assert!(store.finish_run(&done).await.unwrap());
    assert!(
        !store.finish_run(&done).await.unwrap(),
        "a run finishes once"
    );
    let active = store.active_runs(None, 10_000).await.unwrap();
    assert!(
        !active.iter().any(|r| r.id == run.id),
        "finished runs are not active"
    );
}

/// A run `two_step_run` ended failed and closed, as read after.
async fn failed_and_closed(store: &dyn StateStore, tag: &str) -> RunRecord {
    let run = two_step_run(store, tag).await;
    let done = RunRecord {
        status: RunStatus::Failed,
        finished_at: Some(t0()),
        failing: true,
        error: Some(ErrorInfo::new("boom", "step `a` failed")),
        closing: true,
        ..run
    };
    assert!(store.finish_run(&done).await.unwrap());
    store.close_run(&done).await.unwrap();
    store.get_run(&done.id).await.unwrap()
}

pub async fn a_finished_run_reopens_once_as_read(store: &dyn StateStore) {
    let was = failed_and_closed(store, "reopen").await;
    let reopened = RunRecord {
        status: RunStatus::Running,
        finished_at: None,
        failing: false,
        error: None,
        redrives: vec![braid_engine::model::Redrive {
            by: "ana".into(),
            at: t0(),
            from: None,
            was: RunStatus::Failed,
            steps: vec!["a".into()],
        }],
        ..was.clone()
    };
    assert!(store.reopen_run(&was, &reopened).await.unwrap());
    assert_eq!(store.get_run(&was.id).await.unwrap(), reopened);
    let active = store.active_runs(None, 10_000).await.unwrap();
    assert!(active.iter().any(|r| r.id == was.id), "active again");
    assert!(
        !store.reopen_run(&was, &reopened).await.unwrap(),
        "reopened once: the run is no longer as read"
    );
    // It can end again, and be reopened again from that end.
    let again = RunRecord {
        status: RunStatus::Failed,
        finished_at: Some(t0() + chrono::TimeDelta::seconds(5)),
        ..reopened.clone()
    };
    assert!(store.finish_run(&again).await.unwrap());
    let read = store.get_run(&was.id).await.unwrap();
    let twice = RunRecord {
        status: RunStatus::Running,
        finished_at: None,
        redrives: [reopened.redrives.clone(), reopened.redrives].concat(),
        ..read.clone()
    };
    assert!(
        !store.reopen_run(&was, &twice).await.unwrap(),
        "a copy read before the first retry is stale"
    );
    assert!(store.reopen_run(&read, &twice).await.unwrap());
}

pub async fn a_reopened_step_runs_again_and_its_iterations_go(store: &dyn StateStore) {
    let run = failed_and_closed(store, "reset").await;
    let a = store.get_step(&run.id, &StepKey::step("a")).await.unwrap();
    let failed = StepRecord {
        status: StepStatus::Failed,
        attempt: 2,
        finished_at: Some(t0()),
        ..a
    };
    store
        .finalize_step(&Guard::status(&[StepStatus::Ready]), &failed, None)
        .await
        .unwrap()
        .expect("recorded");
    let it = StepRecord {
        status: StepStatus::Succeeded,
        ..StepRecord::new(&run.id, StepKey::iteration("a", 0), StepStatus::Pending)
    };
    store
        .finalize_step(&Guard::status(&[StepStatus::Pending]), &it, None)
        .await
        .unwrap()
        .expect("recorded");
    let reset = StepRecord {
        status: StepStatus::Ready,
        retry_base: 2,
        drive: 1,
        finished_at: None,
        ..failed.clone()
    };
    assert!(
        store
            .update_step(&Guard::unchanged(&failed), &reset)
            .await
            .unwrap()
    );
    assert_eq!(store.get_step(&run.id, &reset.key).await.unwrap(), reset);
    for i in [1, 12] {
        let other = StepRecord {
            key: StepKey::iteration("a", i),
            ..it.clone()
        };
        store
            .finalize_step(&Guard::status(&[StepStatus::Pending]), &other, None)
            .await
            .unwrap()
            .expect("recorded");
    }
    // Those kept stay (1, not 12: the index is compared whole).
    store
        .delete_iterations(&run.id, &"a".into(), &[1])
        .await
        .unwrap();
    let left = store.list_iterations(&run.id, &"a".into()).await.unwrap();
    let left: Vec<_> = left.iter().map(|r| r.key.index).collect();
    assert_eq!(left, [Some(1)]);
    store
        .delete_iterations(&run.id, &"a".into(), &[])
        .await
        .unwrap();
    assert!(
        store
            .list_iterations(&run.id, &"a".into())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get_step(&run.id, &reset.key).await.unwrap(), reset);
    // Deleting what is gone already is no error.
    store
        .delete_iterations(&run.id, &"a".into(), &[])
        .await
        .unwrap();
}

/// A run whose one step `a` is in `status` with `due_at`/`lease_until` at `at`.
async fn run_with_timer(
    store: &dyn StateStore,
    status: StepStatus,
    at: Timestamp,
    deadline: Option<Timestamp>,
) -> RunRecord {
    let mut run = run_record(&fresh_id("timer"), "conformance", None);
    run.deadline = deadline;
    let mut a = StepRecord::new(&run.id, StepKey::step("a"), status);
    match status {
        StepStatus::Running => a.lease_until = Some(at),
        _ => a.due_at = Some(at),
    }
    assert_eq!(store.create_run(&run, &[a]).await.unwrap(), Created::New);
    run
}

pub async fn due_runs_follow_timers(store: &dyn StateStore) {
    // A time of its own, far before every other check's, so their records stay out.
    let base = chrono::Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap()
        + chrono::Duration::seconds(fastrand::i64(0..86_400 * 300));
    let min = |m: i64| base + chrono::Duration::minutes(m);
    let far = Some(min(10_000));
    let retrying = run_with_timer(store, StepStatus::Retrying, min(1), None).await;
    let running = run_with_timer(store, StepStatus::Running, min(2), None).await;
    let late = run_with_timer(store, StepStatus::Pending, min(0), Some(min(3))).await;
    let waiting = run_with_timer(store, StepStatus::Waiting, min(20), far).await;
    let pending = run_with_timer(store, StepStatus::Pending, min(0), None).await;
    let due = |ids: Vec<RunId>| -> Vec<RunId> {
        let ours = [
            &retrying.id,
            &running.id,
            &late.id,
            &waiting.id,
            &pending.id,
        ];
        ids.into_iter().filter(|id| ours.contains(&id)).collect()
    };

    let got = due(store.due_runs(min(10), 10_000).await.unwrap());
    assert_eq!(
        got,
        [retrying.id.clone(), late.id.clone()],
        "due runs are those with a step or run timer passed, earliest first; a lease is no timer"
    );
    let got = due(store.due_runs(min(30), 10_000).await.unwrap());
    assert!(got.contains(&waiting.id), "a wait is due once it is over");
    assert!(!got.contains(&pending.id), "a pending step has no timer");

    // A claim takes the retry's timer out of the index (a lease is no timer).
    let rec = store
        .get_step(&retrying.id, &StepKey::step("a"))
        .await
        .unwrap();
    let claimed = StepRecord {
        status: StepStatus::Running,
        attempt: 1,
        lease_until: Some(min(60)),
        due_at: None,
        ..rec
    };
    let guard = Guard::status(&[StepStatus::Retrying]);
    assert!(store.update_step(&guard, &claimed).await.unwrap());
    // A final write clears it.
    let rec = store
        .get_step(&running.id, &StepKey::step("a"))
        .await
        .unwrap();
    let done = StepRecord {
        status: StepStatus::Succeeded,
        lease_until: None,
        ..rec
    };
    let guard = Guard::status(&[StepStatus::Running]);
    assert!(
        store
            .finalize_step(&guard, &done, None)
            .await
            .unwrap()
            .is_some()
    );
    // A finished run has no deadline to keep.
    let finished = RunRecord {
        status: RunStatus::Cancelled,
        finished_at: Some(min(4)),
        ..store.get_run(&late.id).await.unwrap()
    };
    assert!(store.finish_run(&finished).await.unwrap());
    // Releasing the last need makes the step ready: due at once, not a timer.
    assert!(
        store
            .satisfy(&pending.id, &"a".into(), &"x".into(), &["x".into()], min(5))
            .await
            .unwrap()
            .is_some()
    );
    let got = due(store.due_runs(min(10), 10_000).await.unwrap());
    assert!(got.is_empty(), "each timer moved with its record: {got:?}");
    let got = due(store.due_runs(min(60), 10_000).await.unwrap());
    assert_eq!(got, std::slice::from_ref(&waiting.id));
    let got = store.due_runs(min(60), 1).await.unwrap();
    assert_eq!(got.len(), 1, "at most `limit` runs");
}

pub async fn a_closing_run_is_due_until_closed(store: &dyn StateStore) {
    let base = chrono::Utc.with_ymd_and_hms(2002, 1, 1, 0, 0, 0).unwrap()
        + chrono::Duration::seconds(fastrand::i64(0..86_400 * 300));
    let run = run_with_timer(
        store,
        StepStatus::Pending,
        base,
        Some(base + chrono::Duration::hours(1)),
    )
    .await;
    let finished = RunRecord {
        status: RunStatus::Failed,
        finished_at: Some(base),
        closing: true,
        ..run.clone()
    };
    assert!(store.finish_run(&finished).await.unwrap());
    let due = |ids: Vec<RunId>| ids.contains(&run.id);
    let later = base + chrono::Duration::minutes(1);
    assert!(
        due(store.due_runs(later, 10_000).await.unwrap()),
        "a run whose end is not followed up yet is due from its end"
    );
    assert!(store.get_run(&run.id).await.unwrap().closing);
    store.close_run(&finished).await.unwrap();
    assert!(!due(store.due_runs(later, 10_000).await.unwrap()));
    let closed = store.get_run(&run.id).await.unwrap();
    assert_eq!((closed.status, closed.closing), (RunStatus::Failed, false));
    store.close_run(&finished).await.unwrap();
}

/// `n` queued runs of a fresh workflow limited to `limit`, oldest first.
async fn queued(store: &dyn StateStore, n: usize, limit: u32) -> Vec<RunRecord> {
    let workflow = fresh_name("limited");
    let mut out = Vec::new();
    for _ in 0..n {
        // Ids sort by creation, as ULIDs do.
        let mut run = run_record(&format!("{workflow}-{}", out.len()), &workflow, None);
        run.status = RunStatus::Queued;
        run.limit = Some(limit);
        let a = StepRecord::new(&run.id, StepKey::step("a"), StepStatus::Pending);
        assert_eq!(store.create_run(&run, &[a]).await.unwrap(), Created::New);
        out.push(run);
    }
    out
}

fn admitted(run: &RunRecord) -> RunRecord {
    RunRecord {
        status: RunStatus::Running,
        slot: true,
        closing: false,
        parent: None,
        cancel: None,
        ..run.clone()
    }
}

pub async fn slots_admit_queued_runs_up_to_the_limit(store: &dyn StateStore) {
    let runs = queued(store, 3, 1).await;
    let ids = |rs: Vec<RunRecord>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let wf = &runs[0].workflow;
    assert_eq!(
        ids(store.queued_runs(wf, 10).await.unwrap()),
        ids(runs.clone()),
        "oldest first"
    );
    assert!(store.take_slot(&admitted(&runs[0]), 1).await.unwrap());
    assert!(
        !store.take_slot(&admitted(&runs[0]), 1).await.unwrap(),
        "a run is admitted once"
    );
    assert!(
        !store.take_slot(&admitted(&runs[1]), 1).await.unwrap(),
        "no slot is free"
    );
    let first = store.get_run(&runs[0].id).await.unwrap();
    assert_eq!((first.status, first.slot), (RunStatus::Running, true));
    assert_eq!(ids(store.queued_runs(wf, 10).await.unwrap()).len(), 2);
    // Ending the first gives its slot back.
    let done = RunRecord {
        status: RunStatus::Succeeded,
        finished_at: Some(t0()),
        ..first
    };
    assert!(store.finish_run(&done).await.unwrap());
    assert!(store.take_slot(&admitted(&runs[1]), 1).await.unwrap());
    assert_eq!(
        ids(store.queued_runs(wf, 10).await.unwrap()),
        [runs[2].id.clone()]
    );
    // A queued run that is cancelled holds no slot and gives none back.
    let cancelled = RunRecord {
        status: RunStatus::Cancelled,
        finished_at: Some(t0()),
        ..runs[2].clone()
    };
    assert!(store.finish_run(&cancelled).await.unwrap());
    assert!(store.queued_runs(wf, 10).await.unwrap().is_empty());
    let another = queued(store, 1, 1).await;
    assert!(store.take_slot(&admitted(&another[0]), 1).await.unwrap());
}

pub async fn concurrent_admissions_never_exceed_the_limit(store: Arc<dyn StateStore>) {
    let runs = queued(&*store, 6, 2).await;
    let tasks: Vec<_> = runs
        .iter()
        .map(|r| {
            let store = store.clone();
            let run = admitted(r);
            tokio::spawn(async move { store.take_slot(&run, 2).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 2, "six admissions racing for two slots");
}

pub async fn listings_filter_and_order_runs(store: &dyn StateStore) {
    let wf = fresh_name("list");
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = RunId::new(format!("{}-{i}", fresh_name("l")));
        let r = run_record(&id, &wf, None);
        store.create_run(&r, &[]).await.unwrap();
        ids.push(id);
    }
    let listed = store
        .list_runs(&RunFilter {
            workflow: Some(wf.clone()),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let got: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    let mut expected: Vec<&str> = ids.iter().map(RunId::as_str).collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(got, expected, "newest first");
    // The sweeper pages through active runs: after the first, the rest follow in order.
    let mut sorted = ids.clone();
    sorted.sort();
    let page = store
        .active_runs(Some(&sorted[0].as_str().into()), 2)
        .await
        .unwrap();
    let paged: Vec<&str> = page
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| sorted.iter().any(|s| s == id))
        .collect();
    assert_eq!(paged, vec![sorted[1].as_str(), sorted[2].as_str()]);
    let none = store
        .list_runs(&RunFilter {
            workflow: Some(wf),
            status: Some(RunStatus::Succeeded),
            limit: 10,
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

pub async fn runs_are_found_by_a_prefix_of_their_id(store: &dyn StateStore) {
    let run = two_step_run(store, "pfx").await;
    let id = run.id.as_str();
    let short = &id[..id.len() - 10];
    assert_eq!(
        store.runs_with_prefix(short, 5).await.unwrap(),
        vec![run.id.clone()]
    );
    assert_eq!(
        store.runs_with_prefix(id, 5).await.unwrap(),
        vec![run.id.clone()]
    );
    assert!(
        store
            .runs_with_prefix("zz9-none", 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store.runs_with_prefix("pfx%", 5).await.unwrap().is_empty(),
        "a wildcard is not a prefix"
    );
}

pub async fn missing_records_are_not_found(store: &dyn StateStore) {
    assert!(matches!(
        store.get_run(&"no-such-run".into()).await,
        Err(PortError::NotFound(_))
    ));
    assert!(matches!(
        store
            .get_step(&"no-such-run".into(), &StepKey::step("a"))
            .await,
        Err(PortError::NotFound(_))
    ));
}

/// A record over [`crate::MAX_RECORD_BYTES`] is refused with the permanent error kind,
/// whatever the write, and nothing of it is written; one just under it is stored.
pub async fn records_over_the_size_limit_are_refused_for_good(store: &dyn StateStore) {
    let big = || json!("x".repeat(crate::MAX_RECORD_BYTES));
    fn refused<T>(r: Result<T, PortError>, what: &str) {
        match r {
            Err(e) if e.is_permanent() => assert!(
                e.to_string().contains("limit"),
                "{what}: the error names the limit: {e}"
            ),
            Err(e) => panic!("{what}: refused as retryable: {e}"),
            Ok(_) => panic!("{what}: an oversized record was written"),
        }
    }

    let mut run = run_record(&fresh_id("huge"), "conformance", None);
    run.params = big();
    let a = StepRecord::new(&run.id, StepKey::step("a"), StepStatus::Ready);
    refused(store.create_run(&run, &[a]).await, "create_run");
    assert!(matches!(
        store.get_run(&run.id).await,
        Err(PortError::NotFound(_))
    ));

    let run = two_step_run(store, "huge").await;
    let a = store.get_step(&run.id, &StepKey::step("a")).await.unwrap();
    let oversized = StepRecord {
        output: Some(Data::Inline(big())),
        ..claimed(&a, 1)
    };
    refused(
        store
            .update_step(&Guard::at(&[StepStatus::Ready], 0), &oversized)
            .await,
        "update_step",
    );
    let failed = StepRecord {
        status: StepStatus::Failed,
        error: Some(ErrorInfo::new("boom", "x".repeat(crate::MAX_RECORD_BYTES))),
        ..a.clone()
    };
    refused(
        store
            .finalize_step(&Guard::at(&[StepStatus::Ready], 0), &failed, None)
            .await,
        "finalize_step",
    );
    assert_eq!(
        store.get_step(&run.id, &StepKey::step("a")).await.unwrap(),
        a,
        "a refused write changes nothing"
    );
    let done = RunRecord {
        status: RunStatus::Failed,
        finished_at: Some(t0()),
        error: Some(ErrorInfo::new("boom", "x".repeat(crate::MAX_RECORD_BYTES))),
        ..run.clone()
    };
    refused(store.finish_run(&done).await, "finish_run");
    assert_eq!(
        store.get_run(&run.id).await.unwrap().status,
        RunStatus::Running
    );

    let under = StepRecord {
        output: Some(Data::Inline(json!(
            "y".repeat(crate::MAX_RECORD_BYTES - 2048)
        ))),
        ..claimed(&a, 1)
    };
    assert!(
        store
            .update_step(&Guard::at(&[StepStatus::Ready], 0), &under)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_step(&run.id, &StepKey::step("a"))
            .await
            .unwrap()
            .output,
        under.output
    );
}
