//! Tasks that end by a callback, on the embedded backend: the task gets a token and
//! URL, and its attempt ends by the callback's output or error, a missed heartbeat or
//! the timeout; a token is useless once its attempt has ended, and a forged one
//! proves nothing.

mod common;

use braid_engine::model::{RunId, RunStatus, StepKey, StepStatus};
use braid_handlers::{ApiRequest, CallbackReport, HandlerError, TaskRunners};
use braid_ports::{Task, TaskError, TaskRunner};
use common::Bench;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Starts every task (answers at once) and keeps what it was handed.
#[derive(Default)]
struct Starter(Mutex<Vec<Task>>);

#[async_trait::async_trait]
impl TaskRunner for Starter {
    async fn run(&self, task: &Task) -> Result<Value, TaskError> {
        self.0.lock().unwrap().push(task.clone());
        Ok(json!("started"))
    }
}

impl Starter {
    /// The callback token the last Lambda task was handed.
    fn last_token(&self) -> String {
        let tasks = self.0.lock().unwrap();
        match tasks.last().expect("a task started") {
            Task::Lambda { payload, .. } => payload["callback"]["token"]
                .as_str()
                .expect("a token in the payload")
                .to_string(),
            Task::Http { headers, .. } => headers["Braid-Callback-Token"].clone(),
        }
    }
}

const DEPLOY: &str = r#"
name: deploy
steps:
  - id: start
    lambda: start-deploy
    input: { version: 7, report_to: "{{ callback.url }}" }
    callback: { timeout: 2h, heartbeat: 10m }
    retry: { attempts: 2, backoff: 1s }
output: "{{ steps.start.output }}"
"#;

async fn bench() -> (Bench, Arc<Starter>) {
    let starter = Arc::new(Starter::default());
    let s = starter.clone();
    let b = Bench::with(
        |o| o.settings.api_base_url = Some("http://127.0.0.1:8300".into()),
        move |p| {
            p.tasks = Some(TaskRunners {
                http: s.clone(),
                lambda: s,
            })
        },
    );
    braid_local::link_key::ensure(&*b.handlers().ports().secrets, b.dir())
        .await
        .unwrap();
    (b, starter)
}

fn output(v: Value) -> CallbackReport {
    CallbackReport {
        output: Some(v),
        error: None,
        message: None,
    }
}

async fn status(b: &Bench, id: &RunId) -> StepStatus {
    b.step(id, &StepKey::step("start")).await.status
}

#[tokio::test]
async fn a_callback_with_an_output_ends_the_attempt_once() {
    let (b, starter) = bench().await;
    let id = b.start(DEPLOY).await;
    b.deliver_all().await;
    assert_eq!(status(&b, &id).await, StepStatus::Waiting);
    let token = starter.last_token();
    let Task::Lambda { payload, .. } = starter.0.lock().unwrap()[0].clone() else {
        panic!("a Lambda task")
    };
    let url = payload["callback"]["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("http://127.0.0.1:8300/callbacks/{token}"));
    assert_eq!(
        payload["report_to"],
        json!(url),
        "{{ callback.url }} renders"
    );

    let answer = b
        .handlers()
        .callback(&token, &output(json!({"deployed": 7})))
        .await
        .unwrap();
    assert_eq!(answer.status, StepStatus::Succeeded);
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Succeeded);
    assert_eq!(
        b.handlers().run_view(&id).await.unwrap().output,
        json!({"deployed": 7})
    );
    let replayed = b.handlers().callback(&token, &output(json!(0))).await;
    assert!(
        matches!(
            replayed,
            Err(HandlerError::Port(braid_ports::PortError::Conflict(_)))
        ),
        "a token replayed after its attempt ended: {replayed:?}"
    );
}

#[tokio::test]
async fn a_callback_with_an_error_fails_the_attempt_and_the_retry_gets_a_new_token() {
    let (b, starter) = bench().await;
    let id = b.start(DEPLOY).await;
    b.deliver_all().await;
    let first = starter.last_token();
    let failed = CallbackReport {
        output: None,
        error: Some("DeployFailed".into()),
        message: Some("health check red".into()),
    };
    b.handlers().callback(&first, &failed).await.unwrap();
    b.clock.advance(Duration::from_secs(2));
    b.handlers().tick().await.unwrap();
    b.deliver_all().await;
    let rec = b.step(&id, &StepKey::step("start")).await;
    assert_eq!((rec.status, rec.attempt), (StepStatus::Waiting, 2));
    let second = starter.last_token();
    assert_ne!(first, second, "a token per attempt");
    let stale = b.handlers().callback(&first, &output(json!(1))).await;
    assert!(stale.is_err(), "the first attempt's token ended with it");
    b.handlers().callback(&second, &failed).await.unwrap();
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Failed);
    let error = b.step(&id, &StepKey::step("start")).await.error.unwrap();
    assert_eq!(error.error, "DeployFailed");
}

#[tokio::test]
async fn heartbeats_keep_the_wait_and_a_missed_one_fails_the_attempt() {
    let (b, starter) = bench().await;
    let id = b.start(DEPLOY).await;
    b.deliver_all().await;
    let token = starter.last_token();
    for _ in 0..3 {
        b.clock.advance(Duration::from_secs(8 * 60));
        b.handlers().heartbeat(&token).await.unwrap();
        b.handlers().tick().await.unwrap();
        b.deliver_all().await;
        assert_eq!(status(&b, &id).await, StepStatus::Waiting, "kept alive");
    }
    // No heartbeat for longer than 10 minutes (and the sweeper's window).
    b.clock.advance(Duration::from_secs(15 * 60));
    b.handlers().tick().await.unwrap();
    b.deliver_all().await;
    let rec = b.step(&id, &StepKey::step("start")).await;
    assert_eq!(rec.error.unwrap().error, "callback.heartbeat");
    assert!(
        matches!(rec.status, StepStatus::Retrying | StepStatus::Waiting),
        "the retry rules apply: {:?}",
        rec.status
    );
}

#[tokio::test]
async fn a_callback_that_never_comes_times_out() {
    let (b, _) = bench().await;
    let id = b
        .start(
            r#"
name: slow
steps:
  - id: start
    http: { url: "http://deploy.invalid/start", method: POST }
    callback: { timeout: 30m }
"#,
        )
        .await;
    b.deliver_all().await;
    b.clock.advance(Duration::from_secs(35 * 60));
    b.handlers().tick().await.unwrap();
    b.deliver_all().await;
    let rec = b.step(&id, &StepKey::step("start")).await;
    assert_eq!(rec.error.unwrap().error, "callback.timeout");
    assert_eq!(b.run(&id).await.status, RunStatus::Failed);
}

#[tokio::test]
async fn forged_and_altered_tokens_are_refused_over_the_api() {
    let (b, starter) = bench().await;
    let id = b.start(DEPLOY).await;
    b.deliver_all().await;
    let token = starter.last_token();
    let post = |path: String, body: &str| ApiRequest {
        method: "POST".into(),
        path,
        body: Some(body.to_string()),
        ..Default::default()
    };
    let mut altered = token.clone();
    altered.insert(3, 'x');
    for bad in ["nope.nope".to_string(), altered] {
        let r = b
            .handlers()
            .api(&post(format!("/callbacks/{bad}"), r#"{"output": 1}"#))
            .await;
        assert_eq!(r.status, 401, "{bad}: {:?}", r.body);
    }
    let beat = b
        .handlers()
        .api(&post(format!("/callbacks/{token}/heartbeat"), ""))
        .await;
    assert_eq!(beat.status, 202, "{:?}", beat.body);
    let ok = b
        .handlers()
        .api(&post(
            format!("/callbacks/{token}"),
            r#"{"output": "done"}"#,
        ))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let again = b
        .handlers()
        .api(&post(
            format!("/callbacks/{token}"),
            r#"{"output": "done"}"#,
        ))
        .await;
    assert_eq!(again.status, 410, "{:?}", again.body);
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Succeeded);
}
