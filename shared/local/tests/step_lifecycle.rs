//! The step lifecycle's recovery rules, driven one delivery and one tick at a time on
//! the embedded backend with a manual clock: what a crash, a redelivery, a backlog or
//! a missing definition leaves behind is finished, at a bounded cost.

mod common;

use common::{Bench, Events};

use braid_engine::lifecycle::MAX_RESENDS;
use braid_engine::model::{RunRecord, RunStatus, StepKey, StepStatus};
use braid_handlers::definition;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const LIMITED: &str = r#"
name: limited
concurrency: 1
steps:
  - id: only
    pass: 1
"#;

const PASS_CHAIN: &str = r#"
name: chain
steps:
  - id: first
    pass: 1
  - id: second
    needs: [first]
    pass: 2
"#;

#[tokio::test]
async fn a_message_no_handler_survives_is_re_sent_a_bounded_number_of_times() {
    // Every handler that takes `first`'s message dies before writing anything (out of
    // memory on a huge expansion, a panic): the message is gone each time.
    let b = Bench::new(|_| {});
    let id = b.start(PASS_CHAIN).await;
    let mut sends = b.take_ready().await.len();
    for _ in 0..40 {
        b.clock.advance(Duration::from_secs(3600));
        b.handlers().tick().await.unwrap();
        sends += b.take_ready().await.len();
        if b.run(&id).await.status.is_final() {
            break;
        }
    }
    let run = b.run(&id).await;
    assert_eq!(run.status, RunStatus::Failed, "the run ends: {run:?}");
    assert_eq!(
        sends as u32,
        1 + MAX_RESENDS,
        "the first send and the capped re-sends"
    );
    let first = b.step(&id, &StepKey::step("first")).await;
    assert_eq!(first.status, StepStatus::Failed);
    let error = first.error.unwrap();
    assert_eq!(error.error, "undeliverable");
    assert!(error.message.contains("step `first`"), "{}", error.message);
}

#[tokio::test]
async fn an_undeliverable_step_that_may_fail_lets_the_run_go_on() {
    let b = Bench::new(|_| {});
    let id = b
        .start(
            r#"
name: tolerant
steps:
  - id: first
    continue_on_failure: true
    pass: 1
  - id: second
    needs: [first]
    pass: 2
"#,
        )
        .await;
    b.take_ready().await;
    for _ in 0..40 {
        b.clock.advance(Duration::from_secs(3600));
        b.handlers().tick().await.unwrap();
        if b.step(&id, &StepKey::step("first")).await.status.is_final() {
            break;
        }
        b.take_ready().await;
    }
    b.deliver_all().await;
    let run = b.run(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
}

const FAN: &str = r#"
name: fan
steps:
  - id: fan
    for_each: "{{ range(6) }}"
    max_parallel: 2
    pass: "{{ item }}"
"#;

#[tokio::test]
async fn a_fan_out_message_delivered_again_does_not_expand_again() {
    let b = Bench::new(|_| {});
    let id = b.start(FAN).await;
    let first = b.take_ready().await;
    assert_eq!(first.len(), 1);
    b.handlers()
        .dispatch_delivery(&first[0], false)
        .await
        .unwrap();
    let lanes = b.take_ready().await;
    assert_eq!(lanes.len(), 2, "one message per lane");
    // Its handler failed after the expansion: the very message comes back.
    b.handlers()
        .dispatch_delivery(&first[0], true)
        .await
        .unwrap();
    assert!(b.take_ready().await.is_empty(), "no lane started twice");
    for m in lanes {
        b.handlers().dispatch(&m).await.unwrap();
    }
    b.deliver_all().await;
    let run = b.run(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let fan = b.step(&id, &StepKey::step("fan")).await;
    let out = b
        .handlers()
        .load(fan.output.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(out, json!([0, 1, 2, 3, 4, 5]));
}

#[tokio::test]
async fn fail_fast_never_cancels_a_step_whose_task_is_running() {
    let (b, gate) = Bench::gated();
    let b = Arc::new(b);
    let id = b
        .start(
            r#"
name: racing
steps:
  - id: call
    http: { url: "http://example.invalid" }
  - id: boom
    fail: { error: broken, message: "failed on purpose" }
"#,
        )
        .await;
    let msgs = b.take_ready().await;
    let call = msgs.iter().find(|m| m.key.step == "call").unwrap().clone();
    let boom = msgs.iter().find(|m| m.key.step == "boom").unwrap().clone();
    // The call's message waited in a backlog for two minutes; its task is running.
    b.clock.advance(Duration::from_secs(120));
    let running = {
        let b = b.clone();
        tokio::spawn(async move { b.handlers().dispatch(&call).await.unwrap() })
    };
    gate.started().await;
    b.handlers().dispatch(&boom).await.unwrap();
    b.handlers().tick().await.unwrap();
    assert_eq!(
        b.step(&id, &StepKey::step("call")).await.status,
        StepStatus::Running,
        "the call is in flight: it is recorded when it ends"
    );
    gate.open.add_permits(1);
    running.await.unwrap();
    let call = b.step(&id, &StepKey::step("call")).await;
    assert_eq!(
        call.status,
        StepStatus::Succeeded,
        "the call happened: {call:?}"
    );
    let run = b.run(&id).await;
    assert_eq!(run.status, RunStatus::Failed);
}

#[tokio::test]
async fn queued_runs_are_admitted_once_per_workflow_per_tick() {
    let b = Bench::new(|_| {});
    let (def, _) = definition("wf.yaml", LIMITED).unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(b.start_queued(&def).await);
    }
    let statuses = async || {
        let mut out = Vec::new();
        for id in &ids {
            out.push(b.run(id).await.status);
        }
        out
    };
    assert_eq!(
        statuses()
            .await
            .iter()
            .filter(|s| **s == RunStatus::Queued)
            .count(),
        4
    );
    let report = b.handlers().tick().await.unwrap();
    assert_eq!(
        report.admissions, 1,
        "one admission try for the workflow: {report:?}"
    );
    b.deliver_all().await;
    let after = statuses().await;
    assert_eq!(after[0], RunStatus::Succeeded, "{after:?}");
}

#[tokio::test]
async fn a_run_whose_definition_is_missing_fails_and_the_tick_goes_on() {
    let b = Bench::new(|_| {});
    let good = b.start(PASS_CHAIN).await;
    // A run of a version whose definition the store does not have (lost, or written
    // by a broken tool).
    let store = &b.handlers().ports().store;
    let orphan = RunRecord {
        id: "orphan".into(),
        version: "gone".into(),
        idempotency_key: None,
        ..store.get_run(&good).await.unwrap()
    };
    store.create_run(&orphan, &[]).await.unwrap();
    b.take_ready().await;
    b.clock.advance(Duration::from_secs(3600));
    b.handlers().tick().await.unwrap();
    let orphan = b.run(&orphan.id).await;
    assert_eq!(orphan.status, RunStatus::Failed, "{orphan:?}");
    let error = orphan.error.unwrap();
    assert!(error.message.contains("definition"), "{error:?}");
    // The others are swept as before.
    b.deliver_all().await;
    assert_eq!(b.run(&good).await.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn an_error_after_a_runs_final_write_still_announces_it_and_admits_the_next() {
    let events = Arc::new(Events::default());
    let store = std::sync::OnceLock::<Arc<braid_ports::testkit::faults::FailingStore>>::new();
    let e = events.clone();
    let b = Bench::new(|p| {
        let failing = Arc::new(braid_ports::testkit::faults::FailingStore::new(
            p.store.clone(),
        ));
        store.set(failing.clone()).ok();
        p.store = failing;
        p.events = e;
    });
    let store = store.get().unwrap();
    let (def, _) = definition("wf.yaml", LIMITED).unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(b.start_queued(&def).await);
    }
    // The run's final write holds, then what follows it fails (a throttled read of
    // the queued runs): the delivery fails, and its redelivery finds the run final.
    store.fail_next("queued_runs", 1);
    let msgs = b.take_ready().await;
    assert_eq!(msgs.len(), 1);
    assert!(b.handlers().dispatch(&msgs[0]).await.is_err());
    b.handlers()
        .dispatch_delivery(&msgs[0], true)
        .await
        .unwrap();
    assert_eq!(b.run(&ids[0]).await.status, RunStatus::Succeeded);
    assert_eq!(b.run(&ids[1]).await.status, RunStatus::Queued);
    // The tick finishes what the error cut short.
    b.clock.advance(Duration::from_secs(60));
    b.handlers().tick().await.unwrap();
    assert!(!b.run(&ids[0]).await.closing);
    assert_eq!(
        b.run(&ids[1]).await.status,
        RunStatus::Running,
        "the next run admitted"
    );
    let finished: Vec<_> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.kind == braid_engine::model::EventKind::RunFinished)
        .map(|e| e.run_id.clone())
        .collect();
    assert!(
        finished.contains(&ids[0]),
        "run.finished published: {finished:?}"
    );
}
