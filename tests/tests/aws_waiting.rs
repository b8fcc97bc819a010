//! Approvals, signals, child workflows and notifications on the AWS backend, on the
//! emulator: the same handlers as on the embedded backend, over DynamoDB, SQS and S3,
//! driven the way Lambda drives the five functions (see `braid_emulated::driver`).

use braid_e2e::stack::TestStack;
use braid_emulated::driver::Driver;
use braid_engine::model::{RunId, RunStatus, StepStatus};
use braid_handlers::{Decision, Handlers, SignalRequest, definition};
use braid_ports::env_secrets::env_secrets;
use serde_json::{Value, json};
use std::time::Duration;

/// How long a run may take to end once nothing waits on anyone.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// How long the stack is driven before a waiting run is looked at.
const SETTLE: Duration = Duration::from_secs(2);

async fn driver(stack: &TestStack) -> Driver<'_> {
    let settings = braid_handlers::Settings {
        stale_after: Duration::from_secs(1),
        ..Default::default()
    };
    Driver::new(stack, Handlers::new(stack.ports(), settings, env_secrets()))
}

async fn start(h: &Handlers, source: &str) -> RunId {
    braid_e2e::start(h, "wf.yaml", source, json!({})).await
}

/// Drives the stack until nothing moves for a while; the run is then waiting.
async fn drive_a_while(d: &Driver<'_>, id: &RunId) {
    let _still_going = d.run_to_end(id, Some(SETTLE)).await;
}

async fn drive_to_end(d: &Driver<'_>, id: &RunId) -> RunStatus {
    d.run_to_end(id, Some(RUN_LIMIT))
        .await
        .expect("the run ends")
        .status
}

fn decision(approve: bool) -> Decision {
    Decision {
        approve,
        by: "arn:aws:iam::000000000000:user/ana".into(),
        comment: Some("checked".into()),
    }
}

const PAYOUT: &str = r#"
name: payout
steps:
  - id: manager
    approval: { message: "Pay out?", timeout: 1h }
  - id: pay
    needs: [manager]
    pass: "{{ steps.manager.output.by }}"
output: "{{ steps.pay.output }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_decided_once_on_aws() {
    let stack = TestStack::create("approve").await;
    let d = driver(&stack).await;
    let h = &d.handlers;
    let approved = start(h, PAYOUT).await;
    let rejected = start(h, PAYOUT).await;
    drive_a_while(&d, &approved).await;
    for id in [&approved, &rejected] {
        let view = h.run_view(id).await.unwrap();
        assert_eq!(view.steps["manager"].status, StepStatus::Waiting, "{id}");
    }
    h.decide(&approved, "manager", &decision(true))
        .await
        .unwrap();
    h.decide(&rejected, "manager", &decision(false))
        .await
        .unwrap();
    assert!(
        h.decide(&approved, "manager", &decision(false))
            .await
            .is_err(),
        "decided once"
    );
    assert_eq!(drive_to_end(&d, &approved).await, RunStatus::Succeeded);
    assert_eq!(
        h.run_view(&approved).await.unwrap().output,
        json!("arn:aws:iam::000000000000:user/ana")
    );
    assert_eq!(drive_to_end(&d, &rejected).await, RunStatus::Failed);
    let view = h.run_view(&rejected).await.unwrap();
    assert_eq!(
        view.steps["manager"].error.as_ref().unwrap().error,
        "approval.rejected"
    );
}

const SMOKE: &str = r#"
name: smoke
steps:
  - id: first
    signal: { name: built }
  - id: second
    needs: [first]
    signal: { name: smoke-passed, timeout: 10m }
output: { built: "{{ steps.first.output }}", smoke: "{{ steps.second.output }}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_before_and_after_their_step_is_reached_end_it_on_aws() {
    let stack = TestStack::create("signal").await;
    let d = driver(&stack).await;
    let h = &d.handlers;
    let id = start(h, SMOKE).await;
    drive_a_while(&d, &id).await;
    let signal = |name: &str, data: Value| SignalRequest {
        name: name.into(),
        data,
        id: Some(format!("{name}-1")),
        by: "ci".into(),
    };
    // `second` is not reached yet: its signal is kept for it.
    let early = h
        .signal(&id, signal("smoke-passed", json!("green")))
        .await
        .unwrap();
    assert!(early.ended.is_empty());
    let now = h.signal(&id, signal("built", json!(42))).await.unwrap();
    assert_eq!(now.ended, vec!["first".to_string()]);
    assert_eq!(drive_to_end(&d, &id).await, RunStatus::Succeeded);
    assert_eq!(
        h.run_view(&id).await.unwrap().output,
        json!({"built": 42, "smoke": "green"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_workflows_run_fan_out_and_are_cancelled_with_their_parent_on_aws() {
    let stack = TestStack::create("children").await;
    let d = driver(&stack).await;
    let h = &d.handlers;
    for child in [
        "name: square\nparams:\n  n: { type: integer, required: true }\nsteps:\n  - id: calc\n    pass: \"{{ params.n * params.n }}\"\noutput: \"{{ steps.calc.output }}\"\n",
        "name: gated\nsteps:\n  - id: ok\n    approval: { message: \"Go?\" }\n",
    ] {
        let (def, _) = definition("child.yaml", child).unwrap();
        h.register(&def).await.unwrap();
    }
    let fan = start(
        h,
        r#"
name: fan
steps:
  - id: squares
    for_each: "{{ range(100) | list }}"
    max_parallel: 20
    workflow: square
    input: { n: "{{ item }}" }
output: "{{ steps.squares.output | sum }}"
"#,
    )
    .await;
    assert_eq!(drive_to_end(&d, &fan).await, RunStatus::Succeeded);
    assert_eq!(h.run_view(&fan).await.unwrap().output, json!(328_350));

    let parent = start(
        h,
        "name: parent\nsteps:\n  - id: child\n    workflow: gated\n  - id: boom\n    fail: { error: Nope }\n",
    )
    .await;
    assert_eq!(drive_to_end(&d, &parent).await, RunStatus::Failed);
    let view = h.run_view(&parent).await.unwrap();
    let child = view.steps["child"].child_run.clone().expect("a child run");
    assert_eq!(
        h.run_record(&child).await.unwrap().status,
        RunStatus::Cancelled,
        "the parent's end cancels its child"
    );
}

/// Keeps the signing key callback tokens need where the functions look for it first.
async fn signing_key(stack: &TestStack) {
    stack
        .clients
        .ssm
        .put_parameter()
        .name(format!(
            "{}{}",
            braid_aws::secrets::SSM_PREFIX,
            braid_handlers::links::LINK_KEY_SECRET
        ))
        .value("an emulated stack's key")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("the emulator keeps the parameter");
}

/// Starts every task and keeps the callback token it was handed.
#[derive(Default)]
struct Starter(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl braid_ports::TaskRunner for Starter {
    async fn run(&self, task: &braid_ports::Task) -> Result<Value, braid_ports::TaskError> {
        if let braid_ports::Task::Http { headers, .. } = task {
            let token = headers.get("Braid-Callback-Token").cloned();
            self.0.lock().unwrap().extend(token);
        }
        Ok(json!("started"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_end_their_attempt_once_and_cancels_stop_runs_on_aws() {
    let stack = TestStack::create("callback").await;
    signing_key(&stack).await;
    let starter = std::sync::Arc::new(Starter::default());
    let mut ports = stack.ports();
    ports.tasks = Some(braid_handlers::TaskRunners {
        http: starter.clone(),
        lambda: starter.clone(),
    });
    let settings = braid_handlers::Settings {
        stale_after: Duration::from_secs(1),
        ..Default::default()
    };
    let d = Driver::new(&stack, Handlers::new(ports, settings, env_secrets()));
    let h = &d.handlers;
    let source = r#"
name: deploy
steps:
  - id: start
    http: { url: "http://deploy.invalid/start", method: POST }
    callback: { timeout: 1h, heartbeat: 10m }
output: "{{ steps.start.output }}"
"#;
    let id = start(h, source).await;
    drive_a_while(&d, &id).await;
    let token = starter.0.lock().unwrap().last().cloned().expect("a token");
    h.heartbeat(&token).await.unwrap();
    let done = braid_handlers::CallbackReport {
        output: Some(json!({"version": 7})),
        error: None,
        message: None,
    };
    assert_eq!(
        h.callback(&token, &done).await.unwrap().status,
        StepStatus::Succeeded
    );
    assert!(h.callback(&token, &done).await.is_err(), "a replayed token");
    assert_eq!(drive_to_end(&d, &id).await, RunStatus::Succeeded);
    assert_eq!(h.run_view(&id).await.unwrap().output, json!({"version": 7}));

    let waiting = start(h, source).await;
    drive_a_while(&d, &waiting).await;
    let run = h
        .cancel_run(&waiting, "ana", Some("not today"))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(run.error.unwrap().message, "cancelled by ana: not today");
    let token = starter.0.lock().unwrap().last().cloned().unwrap();
    assert!(
        h.callback(&token, &done).await.is_err(),
        "a cancelled attempt takes no callback"
    );
}

const GATES: &str = r#"
name: gates
steps:
  - id: prep
    pass: 7
  - id: each
    needs: [prep]
    for_each: "{{ [1, 2] }}"
    approval: { message: "Item {{ item }}?" }
  - id: total
    needs: [each]
    pass: "{{ steps.prep.output }}"
output: "{{ steps.total.output }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_retried_in_place_on_aws() {
    let stack = TestStack::create("retry").await;
    let d = driver(&stack).await;
    let h = &d.handlers;
    let id = start(h, GATES).await;
    drive_a_while(&d, &id).await;
    h.decide(&id, "each[0]", &decision(false)).await.unwrap();
    assert_eq!(drive_to_end(&d, &id).await, RunStatus::Failed);

    let run = h.retry_run(&id, "ana", None).await.unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.redrives[0].steps, ["each", "total"]);
    drive_a_while(&d, &id).await;
    for i in 0..2 {
        let step = format!("each[{i}]");
        let decided = h.decide(&id, &step, &decision(true)).await.unwrap();
        assert!(
            decided.attempt > 1,
            "{step}: a new attempt, {}",
            decided.attempt
        );
    }
    assert_eq!(drive_to_end(&d, &id).await, RunStatus::Succeeded);
    let view = h.run_view(&id).await.unwrap();
    assert_eq!(view.output, json!(7));
    assert_eq!(view.steps["prep"].attempts, 1, "kept, not run again");
    assert_eq!(view.retries.len(), 1);
    assert!(
        h.retry_run(&id, "ana", None).await.is_err(),
        "a run that succeeded is not retried"
    );
    // A fork from its last step starts with every other step's output.
    let fork = h
        .fork_run(&id, "bo", Some("total"), None)
        .await
        .unwrap()
        .run;
    assert_eq!(drive_to_end(&d, &fork.id).await, RunStatus::Succeeded);
    let view = h.run_view(&fork.id).await.unwrap();
    assert_eq!(view.output, json!(7));
    assert_eq!(view.steps["each"].status, StepStatus::Succeeded);
    assert_eq!(view.forked_from.unwrap().run, id);
}

/// A receiver standing in for Slack and webhook endpoints: `/ok/...` answers 200,
/// `/down/...` 500; returns its base URL and the paths and bodies it got.
async fn receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
) {
    use axum::extract::{Path, State};
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>;
    async fn take(
        State(seen): State<Seen>,
        Path((mode, name)): Path<(String, String)>,
        body: axum::body::Bytes,
    ) -> axum::http::StatusCode {
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        seen.lock().unwrap().push((format!("{mode}/{name}"), body));
        if mode == "ok" {
            axum::http::StatusCode::OK
        } else {
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        }
    }
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/{mode}/{name}", axum::routing::post(take))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_sent_recorded_and_given_up_on_into_the_dlq_on_aws() {
    let stack = TestStack::create("notify").await;
    let d = driver(&stack).await;
    let h = &d.handlers;
    let (base, seen) = receiver().await;
    let posts = |path: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect::<Vec<_>>()
    };
    let id = start(
        h,
        &format!(
            r#"
name: nightly
notify:
  - on: [failed]
    slack: {{ webhook_url: "{base}/ok/slack" }}
  - on: [failed]
    webhook: {{ url: "{base}/down/hook" }}
steps:
  - id: load
    fail: {{ error: LoadError, message: "the warehouse is down" }}
"#
        ),
    )
    .await;
    assert_eq!(
        drive_to_end(&d, &id).await,
        RunStatus::Failed,
        "the run is unaffected"
    );

    let slack = posts("ok/slack");
    assert_eq!(slack.len(), 1, "one message");
    let text = slack[0].to_string();
    assert!(
        text.contains("LoadError") && text.contains("the warehouse is down"),
        "{text}"
    );
    assert_eq!(
        posts("down/hook").len(),
        braid_handlers::NOTICE_TRIES as usize
    );

    let run = h.run_record(&id).await.unwrap();
    assert_eq!(run.notices.len(), 2, "{:?}", run.notices);
    assert!(run.notices.iter().any(|n| n.target == "slack" && n.sent));
    assert!(run.notices.iter().any(|n| n.target == "webhook" && !n.sent));

    // Given up on: in the dead-letter queue, with the reason.
    let sqs = &stack.clients.sqs;
    let dlq = stack.queue("EventDeadLetterQueue");
    let got = sqs
        .receive_message()
        .queue_url(dlq)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(got.len(), 1, "{got:?}");
    let body = got[0].body.clone().unwrap();
    let dead: braid_handlers::DeadNotice = serde_json::from_str(&body).unwrap();
    assert_eq!(dead.event.run_id, id);
    assert!(dead.reason.contains("500"), "{}", dead.reason);
    assert!(
        !dead.reason.contains("/down/hook"),
        "no URL: {}",
        dead.reason
    );

    // Redriven to the event queue, it is tried again, alone.
    sqs.send_message()
        .queue_url(stack.queue("EventQueue"))
        .message_body(body)
        .send()
        .await
        .unwrap();
    while d
        .deliver(braid_emulated::driver::Consumer::Notifier)
        .await
        .unwrap()
        > 0
    {}
    assert_eq!(
        posts("down/hook").len(),
        2 * braid_handlers::NOTICE_TRIES as usize
    );
    assert_eq!(
        posts("ok/slack").len(),
        1,
        "the other notification is not sent again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_sla_is_notified_once_on_aws_and_the_run_goes_on() {
    let stack = TestStack::create("sla").await;
    let d = driver(&stack).await;
    let h = &d.handlers;
    let (base, seen) = receiver().await;
    let id = start(
        h,
        &format!(
            r#"
name: slow-report
sla: {{ run: 1s, steps: {{ report: 1s }} }}
notify:
  - on: [sla_missed]
    webhook: {{ url: "{base}/ok/sla" }}
steps:
  - id: report
    wait: 3s
"#
        ),
    )
    .await;
    assert_eq!(drive_to_end(&d, &id).await, RunStatus::Succeeded);
    let mut told: Vec<(Value, Value)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "ok/sla")
        .map(|(_, b)| (b["kind"].clone(), b["step"].clone()))
        .collect();
    told.sort_by_key(|t| t.1.to_string());
    assert_eq!(
        told,
        [
            (json!("sla.missed"), json!("report")),
            (json!("sla.missed"), Value::Null),
        ],
        "once each, whatever the ticks"
    );
    let run = h.run_record(&id).await.unwrap();
    assert_eq!(run.sla_missed.len(), 2, "{:?}", run.sla_missed);
    assert_eq!(run.sla_due, None, "every SLA looked at");
}
