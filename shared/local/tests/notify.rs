//! Notifications on the embedded backend, with a local HTTP server standing in for
//! Slack and for a webhook receiver: a failed run's Slack message names the failed
//! step and its error; a succeeded run's webhook is signed with the workflow's secret;
//! a receiver answering 500 twice gets the third try; one that always fails is given
//! up on, recorded on the run, and the run is unaffected.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use braid_engine::model::RunStatus;
use braid_lang::triggers::signature::sign_braid;
use braid_local::backend::{LocalOptions, open};
use braid_local::runtime::LocalRuntime;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// What the receiver got: (path, headers, body), and how many times each path failed.
#[derive(Default)]
struct Seen {
    posts: Vec<(String, HeaderMap, Bytes)>,
    failed: std::collections::HashMap<String, u32>,
    /// When each post came, in order.
    times: Vec<std::time::Instant>,
}

type Shared = Arc<Mutex<Seen>>;

/// `/ok/{name}` answers 200; `/flaky/{name}` 500 twice, then 200; `/down/{name}`
/// always 500; `/throttled/{name}` 429 with `Retry-After: 2` once, then 200;
/// `/slack/chat.postMessage` answers as Slack's Web API does, each message its own
/// `ts`; `/slack/refusing` with `ok: false`.
async fn receiver() -> (String, Shared) {
    async fn take(
        State(seen): State<Shared>,
        Path((mode, name)): Path<(String, String)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut s = seen.lock().unwrap();
        let path = format!("{mode}/{name}");
        s.posts.push((path.clone(), headers, body));
        s.times.push(std::time::Instant::now());
        if mode == "slack" {
            let answer = match name.as_str() {
                "refusing" => json!({"ok": false, "error": "not_in_channel"}),
                _ => {
                    json!({"ok": true, "channel": "C0001", "ts": format!("1700000000.{:06}", s.posts.len())})
                }
            };
            return axum::Json(answer).into_response();
        }
        let failed = s.failed.entry(path).or_default();
        let fail = match mode.as_str() {
            "flaky" => *failed < 2,
            "throttled" => *failed < 1,
            "down" => true,
            _ => false,
        };
        if !fail {
            return StatusCode::OK.into_response();
        }
        *failed += 1;
        match mode.as_str() {
            "throttled" => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "2")]).into_response(),
            _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
    let seen = Shared::default();
    let app = Router::new()
        .route("/{mode}/{name}", post(take))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn runtime(dir: &std::path::Path) -> LocalRuntime {
    std::fs::write(dir.join("secrets.toml"), "hook-secret = \"s3cret\"\n").unwrap();
    open(&LocalOptions::new(dir)).unwrap()
}

async fn run(rt: &LocalRuntime, yaml: &str) -> braid_engine::model::RunRecord {
    let (def, _) = braid_handlers::definition("wf.yaml", yaml).unwrap();
    let started = rt
        .handlers()
        .start(braid_handlers::StartRequest {
            definition: def,
            input: json!({}),
            trigger: Value::Null,
            idempotency_key: None,
            queue: false,
        })
        .await
        .unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        rt.run_to_end(&started.run.id),
    )
    .await
    .expect("the run ends, its notifications sent")
    .unwrap();
    rt.handlers().run_record(&started.run.id).await.unwrap()
}

/// A runtime whose Slack bot posts to `slack` and whose `secret('slack-bot')` is a
/// test token.
fn runtime_with_slack(dir: &std::path::Path, slack: &str) -> LocalRuntime {
    let mut opts = LocalOptions::new(dir);
    opts.settings.slack_post_url = slack.to_string();
    let ports = braid_local::backend::local_ports(&opts).unwrap();
    let secrets = braid_lang::expr::Renderer::new(Arc::new(|name: &str| {
        (name == "slack-bot").then(|| "xoxb-test".to_string())
    }));
    let handlers = braid_handlers::Handlers::new(ports, opts.settings.clone(), secrets);
    LocalRuntime::new(
        Arc::new(handlers),
        opts.runtime.clone(),
        opts.fault.clone(),
        opts.events.clone(),
    )
}

fn posts_to(seen: &Shared, path: &str) -> Vec<(HeaderMap, Value)> {
    seen.lock()
        .unwrap()
        .posts
        .iter()
        .filter(|(p, ..)| p == path)
        .map(|(_, h, b)| (h.clone(), serde_json::from_slice(b).unwrap()))
        .collect()
}

#[tokio::test]
async fn a_failed_run_sends_one_slack_message_naming_the_failed_step() {
    let (base, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let done = run(
        &rt,
        &format!(
            r#"
name: nightly
notify:
  - on: [failed]
    slack: {{ webhook_url: "{base}/ok/slack" }}
steps:
  - id: load
    fail: {{ error: LoadError, message: "the warehouse is down" }}
"#
        ),
    )
    .await;
    assert_eq!(done.status, RunStatus::Failed);
    let posts = posts_to(&seen, "ok/slack");
    assert_eq!(posts.len(), 1, "one message: {:?}", done.notices);
    let message = posts[0].1.to_string();
    assert!(message.contains("nightly failed"), "{message}");
    assert!(message.contains("LoadError"), "{message}");
    assert!(message.contains("the warehouse is down"), "{message}");
    assert!(message.contains("`load`"), "{message}");
    assert_eq!(done.notices.len(), 1);
    assert!(done.notices[0].sent);
    assert_eq!(
        (done.notices[0].target.as_str(), done.notices[0].on.as_str()),
        ("slack", "failed")
    );
}

#[tokio::test]
async fn a_succeeded_run_sends_a_webhook_signed_with_the_workflows_secret() {
    let (base, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let done = run(
        &rt,
        &format!(
            r#"
name: report
notify:
  - on: [succeeded]
    webhook: {{ url: "{base}/ok/hook", secret: hook-secret, headers: {{ X-Team: data }} }}
  - on: [failed]
    webhook: {{ url: "{base}/ok/never" }}
steps:
  - id: build
    pass: 42
"#
        ),
    )
    .await;
    assert_eq!(done.status, RunStatus::Succeeded);
    assert!(posts_to(&seen, "ok/never").is_empty());
    let s = seen.lock().unwrap();
    let (_, headers, body) = s
        .posts
        .iter()
        .find(|(p, ..)| p == "ok/hook")
        .expect("a post");
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], Value::Null);
    assert_eq!(event["kind"], "run.finished");
    assert_eq!(event["status"], "succeeded");
    assert_eq!(event["run_id"], done.id.as_str());
    assert_eq!(headers["x-team"], "data");
    assert!(headers.contains_key("braid-delivery"));
    let signature = headers["braid-signature"].to_str().unwrap();
    let t: i64 = signature
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(signature, sign_braid(b"s3cret", body, t), "it verifies");
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_third_try_and_one_always_failing_is_given_up() {
    let (base, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let done = run(
        &rt,
        &format!(
            r#"
name: flaky-receivers
notify:
  - on: [succeeded]
    webhook: {{ url: "{base}/flaky/a" }}
  - on: [succeeded]
    slack: {{ webhook_url: "{base}/down/b?token=hidden" }}
steps:
  - id: only
    pass: 1
"#
        ),
    )
    .await;
    assert_eq!(done.status, RunStatus::Succeeded, "the run is unaffected");
    assert_eq!(
        posts_to(&seen, "flaky/a").len(),
        3,
        "two failures, then the third try"
    );
    assert_eq!(
        posts_to(&seen, "down/b").len(),
        braid_handlers::NOTICE_TRIES as usize
    );
    let by_target = |t: &str| done.notices.iter().find(|n| n.target == t).unwrap().clone();
    let flaky = by_target("webhook");
    assert!(flaky.sent);
    assert_eq!(flaky.tries, 3);
    let down = by_target("slack");
    assert!(!down.sent);
    let error = down.error.unwrap();
    assert!(error.contains("500"), "{error}");
    assert!(
        !error.contains("down/b"),
        "the URL is never recorded: {error}"
    );
}

#[tokio::test]
async fn a_throttled_receiver_is_tried_again_after_the_wait_it_asks_for() {
    let (base, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let done = run(
        &rt,
        &format!(
            r#"
name: throttled
notify:
  - on: [succeeded]
    webhook: {{ url: "{base}/throttled/a" }}
steps:
  - id: only
    pass: 1
"#
        ),
    )
    .await;
    assert_eq!(posts_to(&seen, "throttled/a").len(), 2);
    let times = seen.lock().unwrap().times.clone();
    // The first backoff is 1 s; the receiver asked for 2.
    assert!(
        times[1] - times[0] >= std::time::Duration::from_secs(2),
        "tried again after {:?}",
        times[1] - times[0]
    );
    let sent = done.notices.iter().find(|n| n.target == "webhook").unwrap();
    assert!(sent.sent);
    assert_eq!(sent.tries, 2);
}

#[tokio::test]
async fn each_retry_of_a_step_is_notified_with_the_failed_attempts_error() {
    let (base, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let done = run(
        &rt,
        &format!(
            r#"
name: flaky-call
steps:
  - id: call
    http: {{ url: "{base}/flaky/service", method: POST }}
    retry: {{ attempts: 3, backoff: 100ms }}
    notify:
      - on: [retrying]
        webhook: {{ url: "{base}/ok/retries" }}
"#
        ),
    )
    .await;
    assert_eq!(done.status, RunStatus::Succeeded, "the third try succeeds");
    let posts = posts_to(&seen, "ok/retries");
    let told: Vec<_> = posts
        .iter()
        .map(|(_, b)| (b["kind"].clone(), b["detail"]["failed_attempt"].clone()))
        .collect();
    assert_eq!(
        told,
        [
            (json!("step.retrying"), json!(1)),
            (json!("step.retrying"), json!(2))
        ]
    );
    assert_eq!(posts[0].1["step"], "call");
    assert!(
        posts[0].1["error"]["error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{}",
        posts[0].1
    );
}

#[tokio::test]
async fn a_run_and_a_step_past_their_sla_are_notified_once_each_and_the_run_goes_on() {
    let (base, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let done = run(
        &rt,
        &format!(
            r#"
name: slow-report
sla: {{ run: 1s, steps: {{ report: 1s, quick: 30m }} }}
notify:
  - on: [sla_missed]
    webhook: {{ url: "{base}/ok/sla" }}
steps:
  - id: quick
    pass: 1
  - id: report
    wait: 3s
"#
        ),
    )
    .await;
    assert_eq!(
        done.status,
        RunStatus::Succeeded,
        "a missed SLA fails nothing"
    );
    let posts = posts_to(&seen, "ok/sla");
    let mut told: Vec<_> = posts
        .iter()
        .map(|(_, b)| {
            (
                b["kind"].clone(),
                b["step"].clone(),
                b["detail"]["sla"].clone(),
            )
        })
        .collect();
    told.sort_by_key(|t| t.1.to_string());
    assert_eq!(
        told,
        [
            (json!("sla.missed"), json!("report"), json!("1s")),
            (json!("sla.missed"), Value::Null, json!("1s")),
        ],
        "once each, though the tick looked many times; `quick` ended in time"
    );
    let missed: Vec<_> = done.sla_missed.iter().map(|m| m.step.as_deref()).collect();
    assert_eq!(missed, [None, Some("report")]);
    assert_eq!(done.notices.len(), 2);
}

#[tokio::test]
async fn a_slack_bots_messages_of_one_run_are_threaded_under_the_first() {
    let (base, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime_with_slack(dir.path(), &format!("{base}/slack/chat.postMessage"));
    let done = run(
        &rt,
        &format!(
            r##"
name: threaded
notify:
  - on: [retrying, succeeded]
    slack: {{ token: "{{{{ secret('slack-bot') }}}}", channel: "#ops" }}
steps:
  - id: call
    http: {{ url: "{base}/flaky/service", method: POST }}
    retry: {{ attempts: 3, backoff: 100ms }}
"##
        ),
    )
    .await;
    assert_eq!(done.status, RunStatus::Succeeded);
    let posts = posts_to(&seen, "slack/chat.postMessage");
    assert_eq!(posts.len(), 3, "two retries and the end");
    for (headers, body) in &posts {
        assert_eq!(headers["authorization"], "Bearer xoxb-test");
        assert_eq!(body["channel"], "#ops");
        assert!(body["blocks"].is_array(), "Block Kit: {body}");
    }
    let first_ts = "1700000000.000002"; // the receiver's second post: after `flaky` once
    assert!(
        posts[0].1.get("thread_ts").is_none(),
        "the first starts the thread"
    );
    assert_eq!(posts[1].1["thread_ts"], first_ts);
    assert_eq!(posts[2].1["thread_ts"], first_ts);
    assert!(posts[2].1["text"].as_str().unwrap().contains("succeeded"));
    assert!(done.notices.iter().all(|n| n.sent && n.target == "slack"));
}

#[tokio::test]
async fn a_message_slack_refuses_is_given_up_with_slacks_reason() {
    let (base, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime_with_slack(dir.path(), &format!("{base}/slack/refusing"));
    let done = run(
        &rt,
        r##"
name: refused
notify:
  - on: [succeeded]
    slack: { token: "{{ secret('slack-bot') }}", channel: "#nowhere" }
steps:
  - id: only
    pass: 1
"##,
    )
    .await;
    assert_eq!(done.status, RunStatus::Succeeded, "the run is unaffected");
    assert_eq!(
        posts_to(&seen, "slack/refusing").len(),
        1,
        "not tried again"
    );
    let n = &done.notices[0];
    assert!(!n.sent);
    assert_eq!(n.tries, 1);
    let error = n.error.as_deref().unwrap();
    assert!(error.contains("not_in_channel"), "{error}");
    assert!(!error.contains("xoxb"), "{error}");
}
