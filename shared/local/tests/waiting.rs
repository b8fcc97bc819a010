//! Approvals and signals on the embedded backend, driven one delivery and one tick at a
//! time: a waiting step ends by its decision or signal once, whatever comes twice,
//! late, early or after its timeout.

mod common;

use braid_engine::model::{DispatchMsg, EventKind, RunId, RunStatus, StepKey, StepStatus};
use braid_handlers::{Decision, HandlerError, SignalRequest};
use braid_ports::PortError;
use braid_ports::testkit::faults::FailingStore;
use common::{Bench, Events};
use serde_json::json;
use std::sync::Arc;

const PAYOUT: &str = r#"
name: payout
steps:
  - id: amount
    pass: 12000
  - id: manager
    needs: [amount]
    approval: { message: "Pay out {{ steps.amount.output }}?", timeout: 1h }
    retry: { attempts: 3 }
  - id: pay
    needs: [manager]
    pass: "{{ steps.manager.output.decision }} by {{ steps.manager.output.by }}"
output: "{{ steps.pay.output }}"
"#;

const DEPLOY: &str = r#"
name: deploy
steps:
  - id: gate
    approval: { message: "Deploy?" }
  - id: smoke
    needs: [gate]
    signal: { name: smoke-passed, timeout: 10m }
output: "{{ steps.smoke.output }}"
"#;

fn bench_with_events() -> (Bench, Arc<Events>) {
    let events = Arc::new(Events::default());
    let e = events.clone();
    (Bench::new(move |p| p.events = e), events)
}

fn decision(approve: bool, comment: Option<&str>) -> Decision {
    Decision {
        approve,
        by: "ana".into(),
        comment: comment.map(str::to_string),
    }
}

fn signal(data: serde_json::Value, id: &str) -> SignalRequest {
    SignalRequest {
        name: "smoke-passed".into(),
        data,
        id: Some(id.into()),
        by: "ci".into(),
    }
}

fn is_conflict(r: Result<impl std::fmt::Debug, HandlerError>) -> String {
    match r {
        Err(HandlerError::Port(PortError::Conflict(m))) => m,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn an_approved_step_lets_the_run_go_on_with_who_decided() {
    let (b, events) = bench_with_events();
    let id = b.start(PAYOUT).await;
    b.deliver_all().await;
    let manager = b.step(&id, &StepKey::step("manager")).await;
    assert_eq!(manager.status, StepStatus::Waiting);
    let waiting = events.of(EventKind::StepWaiting);
    assert_eq!(waiting.len(), 1);
    let detail = waiting[0].detail.clone().unwrap();
    assert_eq!(detail["for"], "approval");
    assert_eq!(
        detail["message"], "Pay out 12000?",
        "the message is rendered"
    );
    assert_eq!(detail["approve"], format!("braid approve {id} manager"));

    let after = b
        .handlers()
        .decide(&id, "manager", &decision(true, Some("ok")))
        .await
        .unwrap();
    assert_eq!(after.status, StepStatus::Succeeded);
    b.deliver_all().await;
    let run = b.run(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    let view = b.handlers().run_view(&id).await.unwrap();
    assert_eq!(view.output, json!("approved by ana"));
    assert_eq!(view.steps["manager"].output["comment"], "ok");
    let decided = events.of(EventKind::StepDecided);
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].detail.as_ref().unwrap()["decision"], "approved");

    let again = b
        .handlers()
        .decide(&id, "manager", &decision(false, None))
        .await;
    assert!(
        is_conflict(again).contains("succeeded"),
        "a second decision changes nothing"
    );
}

#[tokio::test]
async fn a_rejection_fails_the_step_for_good_and_says_who() {
    let (b, _) = bench_with_events();
    let id = b.start(PAYOUT).await;
    b.deliver_all().await;
    let after = b
        .handlers()
        .decide(&id, "manager", &decision(false, Some("too much")))
        .await
        .unwrap();
    assert_eq!(after.status, StepStatus::Failed);
    assert_eq!(after.attempt, 1, "retry rules do not ask again");
    let error = after.error.unwrap();
    assert_eq!(error.error, "approval.rejected");
    assert!(
        error.message.contains("ana") && error.message.contains("too much"),
        "{error:?}"
    );
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Failed);
}

#[tokio::test]
async fn an_unanswered_approval_times_out_for_good() {
    let (b, _) = bench_with_events();
    let id = b.start(PAYOUT).await;
    b.deliver_all().await;
    // Past the timeout, and the sweeper's window for a timer the queue cannot hold.
    b.clock.advance(std::time::Duration::from_secs(3600 + 300));
    b.handlers().tick().await.unwrap();
    b.deliver_all().await;
    let manager = b.step(&id, &StepKey::step("manager")).await;
    assert_eq!(manager.status, StepStatus::Failed);
    assert_eq!(manager.error.unwrap().error, "approval.timeout");
    assert_eq!(manager.attempt, 1);
    assert_eq!(b.run(&id).await.status, RunStatus::Failed);
    let late = b
        .handlers()
        .decide(&id, "manager", &decision(true, None))
        .await;
    assert!(is_conflict(late).contains("is failed"));
}

#[tokio::test]
async fn decisions_on_what_does_not_wait_say_why() {
    let (b, _) = bench_with_events();
    let id = b.start(DEPLOY).await;
    b.deliver_all().await;
    let h = b.handlers();
    let early = h.decide(&id, "smoke", &decision(true, None)).await;
    assert!(matches!(early, Err(HandlerError::Invalid(m)) if m.contains("`signal` step")));
    let unknown = h.decide(&id, "nope", &decision(true, None)).await;
    assert!(
        matches!(unknown, Err(HandlerError::Port(PortError::NotFound(m))) if m.contains("no step `nope`"))
    );
    let no_run = h
        .decide(&"01nope".into(), "gate", &decision(true, None))
        .await;
    assert!(matches!(
        no_run,
        Err(HandlerError::Port(PortError::NotFound(_)))
    ));
}

#[tokio::test]
async fn a_signal_sent_before_its_step_is_reached_is_taken_when_it_is() {
    let (b, _) = bench_with_events();
    let id = b.start(DEPLOY).await;
    b.deliver_all().await;
    let h = b.handlers();
    let sent = h
        .signal(&id, signal(json!({"p95_ms": 180}), "s-1"))
        .await
        .unwrap();
    assert!(sent.ended.is_empty(), "nothing waits for it yet");
    let view = h.run_view(&id).await.unwrap();
    assert_eq!(view.steps["smoke"].status, StepStatus::Pending);
    h.decide(&id, "gate", &decision(true, None)).await.unwrap();
    b.deliver_all().await;
    let run = b.run(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    let view = h.run_view(&id).await.unwrap();
    assert_eq!(view.output, json!({"p95_ms": 180}));
}

#[tokio::test]
async fn a_signal_ends_its_waiting_step_once() {
    let (b, _) = bench_with_events();
    let id = b.start(DEPLOY).await;
    b.deliver_all().await;
    let h = b.handlers();
    h.decide(&id, "gate", &decision(true, None)).await.unwrap();
    b.deliver_all().await;
    assert_eq!(
        b.step(&id, &StepKey::step("smoke")).await.status,
        StepStatus::Waiting
    );
    let view = h.run_view(&id).await.unwrap();
    assert_eq!(
        view.steps["smoke"].waiting.as_ref().unwrap()["name"],
        "smoke-passed"
    );

    let sent = h.signal(&id, signal(json!("green"), "s-1")).await.unwrap();
    assert_eq!(sent.ended, vec!["smoke".to_string()]);
    let again = h.signal(&id, signal(json!("green"), "s-1")).await;
    assert!(again.is_ok(), "sent again with its id: {again:?}");
    b.deliver_all().await;
    assert_eq!(h.run_view(&id).await.unwrap().output, json!("green"));

    let after_end = h.signal(&id, signal(json!("late"), "s-2")).await;
    assert!(is_conflict(after_end).contains("succeeded"));
}

#[tokio::test]
async fn signals_with_another_id_or_an_unknown_name_are_refused() {
    let (b, _) = bench_with_events();
    let id = b.start(DEPLOY).await;
    b.deliver_all().await;
    let h = b.handlers();
    h.signal(&id, signal(json!(1), "s-1")).await.unwrap();
    let other = h.signal(&id, signal(json!(2), "s-2")).await;
    assert!(is_conflict(other).contains("s-1"));
    let unknown = SignalRequest {
        name: "nope".into(),
        ..signal(json!(1), "s-3")
    };
    let r = h.signal(&id, unknown).await;
    assert!(matches!(r, Err(HandlerError::Port(PortError::NotFound(m))) if m.contains("`nope`")));
}

#[tokio::test]
async fn an_unanswered_signal_times_out() {
    let (b, _) = bench_with_events();
    let id = b.start(DEPLOY).await;
    b.deliver_all().await;
    b.handlers()
        .decide(&id, "gate", &decision(true, None))
        .await
        .unwrap();
    b.deliver_all().await;
    b.clock.advance(std::time::Duration::from_secs(601));
    b.handlers().tick().await.unwrap();
    b.deliver_all().await;
    let smoke = b.step(&id, &StepKey::step("smoke")).await;
    assert_eq!(smoke.error.unwrap().error, "signal.timeout");
    assert_eq!(b.run(&id).await.status, RunStatus::Failed);
}

/// A run whose signal step (with `timeout`, if any) was sent its signal before it was
/// reached, then parked but failed to look for it (a throttled read): the bench, the
/// run and the message whose delivery failed.
async fn parked_without_its_early_signal(timeout: &str) -> (Bench, RunId, DispatchMsg) {
    let yaml = format!(
        r#"
name: release
steps:
  - id: gate
    approval: {{ message: "Release?" }}
  - id: tagged
    needs: [gate]
    signal: {{ name: tag-pushed{timeout} }}
output: "{{{{ steps.tagged.output }}}}"
"#
    );
    let store = std::sync::OnceLock::<Arc<FailingStore>>::new();
    let b = Bench::new(|p| {
        let failing = Arc::new(FailingStore::new(p.store.clone()));
        store.set(failing.clone()).ok();
        p.store = failing;
    });
    let id = b.start(&yaml).await;
    b.deliver_all().await;
    let h = b.handlers();
    let early = SignalRequest {
        name: "tag-pushed".into(),
        ..signal(json!("v1.2"), "t-1")
    };
    h.signal(&id, early).await.unwrap();
    h.decide(&id, "gate", &decision(true, None)).await.unwrap();
    store.get().unwrap().fail_next("get_signal", 1);
    let msgs = b.take_ready().await;
    assert_eq!(msgs.len(), 1);
    assert!(h.dispatch(&msgs[0]).await.is_err());
    let tagged = b.step(&id, &StepKey::step("tagged")).await;
    assert_eq!(tagged.status, StepStatus::Waiting);
    (b, id, msgs[0].clone())
}

#[tokio::test]
async fn an_early_signal_missed_when_its_step_parked_is_taken_on_redelivery() {
    // Waiting for good, the step ends only by the signal, which is not sent again.
    let (b, id, msg) = parked_without_its_early_signal("").await;
    b.handlers().dispatch_delivery(&msg, true).await.unwrap();
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Succeeded);
    assert_eq!(
        b.handlers().run_view(&id).await.unwrap().output,
        json!("v1.2")
    );
}

#[tokio::test]
async fn an_early_signal_missed_when_its_step_parked_is_taken_at_its_timeout() {
    // The timeout comes before the failed delivery's message is visible again.
    let (b, id, _) = parked_without_its_early_signal(", timeout: 90s").await;
    b.clock.advance(std::time::Duration::from_secs(91));
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Succeeded);
    assert_eq!(
        b.handlers().run_view(&id).await.unwrap().output,
        json!("v1.2")
    );
}

#[tokio::test]
async fn an_early_signal_missed_when_its_step_parked_is_taken_after_a_sweep() {
    // Waiting for good, and the failed delivery's message is lost too: the sweep
    // sends the step's message again, which looks again.
    let (b, id, _) = parked_without_its_early_signal("").await;
    b.clock.advance(std::time::Duration::from_secs(61));
    b.handlers().tick().await.unwrap();
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Succeeded);
    assert_eq!(
        b.handlers().run_view(&id).await.unwrap().output,
        json!("v1.2")
    );
}

#[tokio::test]
async fn only_the_named_approvers_decide() {
    let (b, _) = bench_with_events();
    let id = b
        .start(
            r#"
name: guarded
steps:
  - id: payout
    approval: { message: "Pay?", approvers: [ana, "arn:aws:iam::1:role/finance"] }
"#,
        )
        .await;
    b.deliver_all().await;
    let h = b.handlers();
    let by = |who: &str| Decision {
        approve: true,
        by: who.into(),
        comment: None,
    };
    let refused = h.decide(&id, "payout", &by("bo")).await;
    match refused {
        Err(HandlerError::Forbidden(m)) => assert!(m.contains("bo may not decide"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let decided = h
        .decide(&id, "payout", &by("arn:aws:iam::1:user/ana"))
        .await
        .unwrap();
    assert_eq!(
        decided.status,
        StepStatus::Succeeded,
        "ana, by her IAM user"
    );
}
