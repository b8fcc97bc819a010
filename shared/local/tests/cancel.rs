//! Cancelling runs on the embedded backend: what has not started is cancelled at once,
//! attempts in flight are stopped (or, ending first, recorded as they ended), and the
//! run ends `cancelled` saying who asked and why; child runs go with the steps that
//! wait on them.

mod common;

use braid_engine::model::{RunStatus, StepKey, StepStatus};
use braid_handlers::{HandlerError, definition};
use braid_ports::PortError;
use common::Bench;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const WAITING: &str = r#"
name: waiting
steps:
  - id: gate
    approval: { message: "Go?" }
  - id: after
    needs: [gate]
    pass: 1
"#;

#[tokio::test]
async fn a_waiting_run_is_cancelled_at_once_with_who_and_why() {
    let b = Bench::new(|_| {});
    let id = b.start(WAITING).await;
    b.deliver_all().await;
    let run = b
        .handlers()
        .cancel_run(&id, "ana", Some("wrong input"))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    let error = run.error.unwrap();
    assert_eq!(error.error, "cancelled");
    assert_eq!(error.message, "cancelled by ana: wrong input");
    let view = b.handlers().run_view(&id).await.unwrap();
    assert_eq!(view.steps["gate"].status, StepStatus::Cancelled);
    assert_eq!(view.steps["after"].status, StepStatus::Cancelled);
    let again = b.handlers().cancel_run(&id, "bo", None).await;
    match again {
        Err(HandlerError::Port(PortError::Conflict(m))) => assert!(m.contains("cancelled"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn a_task_ending_before_its_dispatcher_looks_is_recorded_as_it_ended() {
    let (b, gate) = Bench::gated();
    let b = Arc::new(b);
    let id = b
        .start(
            r#"
name: busy
steps:
  - id: call
    http: { url: "http://example.invalid" }
  - id: next
    needs: [call]
    pass: 1
"#,
        )
        .await;
    let msgs = b.take_ready().await;
    let running = {
        let b = b.clone();
        let call = msgs[0].clone();
        tokio::spawn(async move { b.handlers().dispatch(&call).await.unwrap() })
    };
    gate.started().await;
    let run = b.handlers().cancel_run(&id, "ana", None).await.unwrap();
    assert_eq!(
        run.status,
        RunStatus::Running,
        "it ends once its call in flight is recorded"
    );
    gate.open.add_permits(1);
    running.await.unwrap();
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Cancelled);
    assert_eq!(
        b.step(&id, &StepKey::step("call")).await.status,
        StepStatus::Succeeded,
        "the call happened and is recorded"
    );
    let view = b.handlers().run_view(&id).await.unwrap();
    assert_eq!(
        view.steps["next"].status,
        StepStatus::Cancelled,
        "nothing new started"
    );
}

#[tokio::test]
async fn an_http_call_in_flight_is_dropped_and_its_step_cancelled() {
    // A server that takes the request and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0; 64 * 1024];
        // Reads the request, then waits for the caller to hang up.
        while socket.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        let _ = closed_tx.send(());
    });
    let b = Arc::new(Bench::with(
        |o| o.settings.cancel_check = Duration::from_millis(20),
        |_| {},
    ));
    let id = b
        .start(&format!(
            "name: hung\nsteps:\n  - id: call\n    http: {{ url: \"http://127.0.0.1:{port}/\" }}\n  - id: next\n    needs: [call]\n    pass: 1\n"
        ))
        .await;
    let msgs = b.take_ready().await;
    let running = {
        let b = b.clone();
        let call = msgs[0].clone();
        tokio::spawn(async move { b.handlers().dispatch(&call).await.unwrap() })
    };
    // Until the call is in flight.
    while b.step(&id, &StepKey::step("call")).await.status != StepStatus::Running {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.handlers()
        .cancel_run(&id, "ana", Some("hung"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the dispatcher stopped the call")
        .unwrap();
    closed.await.expect("the server saw the request dropped");
    b.deliver_all().await;
    let call = b.step(&id, &StepKey::step("call")).await;
    assert_eq!(call.status, StepStatus::Cancelled);
    let error = call.error.expect("why it stopped");
    assert_eq!(error.error, "cancelled");
    assert_eq!(
        error.message,
        "stopped while running: cancelled by ana: hung"
    );
    assert_eq!(b.run(&id).await.status, RunStatus::Cancelled);
    assert_eq!(
        b.step(&id, &StepKey::step("next")).await.status,
        StepStatus::Cancelled
    );
}

#[tokio::test]
async fn a_queued_run_is_cancelled_at_once_and_a_finished_one_is_a_conflict() {
    let b = Bench::new(|_| {});
    let (def, _) = definition(
        "wf.yaml",
        "name: one-at-a-time\nconcurrency: 1\nsteps:\n  - id: gate\n    approval: {}\n",
    )
    .unwrap();
    let first = b.start_def(def.clone()).await;
    let second = b.start_def(def).await;
    assert_eq!(b.run(&second).await.status, RunStatus::Queued);
    let run = b.handlers().cancel_run(&second, "ana", None).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    b.handlers().cancel_run(&first, "ana", None).await.unwrap();
    let done = b.handlers().cancel_run(&first, "ana", None).await;
    match done {
        Err(HandlerError::Port(PortError::Conflict(m))) => {
            assert!(m.contains("it is cancelled"), "{m}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn cancelling_a_parent_cancels_its_children() {
    let b = Bench::new(|_| {});
    let (child, _) = definition(
        "gated.yaml",
        "name: gated\nsteps:\n  - id: ok\n    approval: {}\n",
    )
    .unwrap();
    b.handlers().register(&child).await.unwrap();
    let id = b
        .start("name: parent\nsteps:\n  - id: call\n    workflow: gated\n")
        .await;
    b.deliver_all().await;
    let view = b.handlers().run_view(&id).await.unwrap();
    let child_id = view.steps["call"].child_run.clone().unwrap();
    b.handlers().cancel_run(&id, "ana", None).await.unwrap();
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Cancelled);
    let child = b.run(&child_id).await;
    assert_eq!(child.status, RunStatus::Cancelled);
    assert!(
        child.error.unwrap().message.contains(&id.to_string()),
        "the child says which run cancelled it"
    );
}

#[tokio::test]
async fn the_api_cancels_a_run_once_and_names_who_asked() {
    let b = Bench::new(|_| {});
    let id = b.start(WAITING).await;
    b.deliver_all().await;
    let post = |body: &str| braid_handlers::ApiRequest {
        method: "POST".into(),
        path: format!("/runs/{id}/cancel"),
        body: Some(body.to_string()),
        principal: Some("arn:aws:iam::1:user/ana".into()),
        ..Default::default()
    };
    let r = b
        .handlers()
        .api(&post(r#"{"reason": "wrong input"}"#))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    assert_eq!(
        r.body["error"]["message"],
        "cancelled by arn:aws:iam::1:user/ana: wrong input"
    );
    let again = b.handlers().api(&post("")).await;
    assert_eq!(again.status, 409, "{:?}", again.body);
    let unknown = braid_handlers::ApiRequest {
        path: "/runs/01nope/cancel".into(),
        ..post("")
    };
    assert_eq!(b.handlers().api(&unknown).await.status, 404);
}
