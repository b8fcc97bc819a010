//! `braid run` end to end: every rule of SPEC §2 as a user sees it, through the binary.

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A local HTTP service: `/flaky/{key}/{n}` answers 503 `n` times per key then 200;
/// `/slow/{ms}` answers after `ms`; `/status/{code}` answers that status;
/// `/count` tells how many requests `/flaky` saw per key.
async fn serve() -> (String, tokio::task::JoinHandle<()>) {
    type Counts = Arc<Mutex<HashMap<String, u32>>>;
    async fn flaky(
        State(c): State<Counts>,
        UrlPath((key, n)): UrlPath<(String, u32)>,
    ) -> (StatusCode, String) {
        let seen = {
            let mut c = c.lock().unwrap();
            let e = c.entry(key.clone()).or_default();
            *e += 1;
            *e
        };
        if seen <= n {
            (StatusCode::SERVICE_UNAVAILABLE, "try again".into())
        } else {
            (
                StatusCode::OK,
                json!({"key": key, "calls": seen}).to_string(),
            )
        }
    }
    async fn slow(UrlPath(ms): UrlPath<u64>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        "late".into()
    }
    async fn status(UrlPath(code): UrlPath<u16>) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }
    let app = Router::new()
        .route("/flaky/{key}/{n}", get(flaky))
        .route("/slow/{ms}", get(slow))
        .route("/status/{code}", get(status))
        .with_state(Counts::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), task)
}

fn braid(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .arg("--state")
        .arg(dir.join("state"))
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Writes `yaml` and runs it with `--output json`; returns the exit code and the object.
async fn run_json(yaml: &str, input: Value) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wf.yaml"), yaml).unwrap();
    let path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let out = braid(
            &path,
            &[
                "run",
                "wf.yaml",
                "--output",
                "json",
                "--input",
                &input.to_string(),
            ],
        );
        drop(path);
        out
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    drop(dir);
    (out.status.code().unwrap(), v, stderr)
}

#[tokio::test]
async fn a_flaky_http_endpoint_is_retried_until_it_answers() {
    let (base, _server) = serve().await;
    let yaml = format!(
        r#"
name: flaky
steps:
  - id: call
    retry: {{ attempts: 4, backoff: 50ms, factor: 2 }}
    http: {{ url: "{base}/flaky/a/2" }}
"#
    );
    let (code, v, err) = run_json(&yaml, json!({})).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["steps"]["call"]["attempts"], 3);
    assert_eq!(v["steps"]["call"]["output"]["status"], 200);
    assert_eq!(v["steps"]["call"]["output"]["body"]["calls"], 3);
}

#[tokio::test]
async fn retries_stop_at_the_attempt_limit_and_4xx_is_never_retried() {
    let (base, _server) = serve().await;
    let yaml = format!(
        r#"
name: limits
steps:
  - id: unavailable
    continue_on_failure: true
    retry: {{ attempts: 2, backoff: 10ms }}
    http: {{ url: "{base}/flaky/b/5" }}
  - id: missing
    continue_on_failure: true
    retry: {{ attempts: 3, backoff: 10ms }}
    http: {{ url: "{base}/status/404" }}
"#
    );
    let (code, v, err) = run_json(&yaml, json!({})).await;
    assert_eq!(code, 0, "tolerated failures let the run succeed: {err}");
    assert_eq!(v["steps"]["unavailable"]["status"], "failed");
    assert_eq!(v["steps"]["unavailable"]["attempts"], 2);
    assert_eq!(v["steps"]["missing"]["status"], "failed");
    assert_eq!(
        v["steps"]["missing"]["attempts"], 1,
        "a 404 is not retryable"
    );
    assert!(v["steps"]["missing"]["error"]["error"].is_string());
    assert!(v["steps"]["missing"]["error"]["message"].is_string());
}

#[tokio::test]
async fn a_step_over_its_timeout_fails_the_attempt_and_retries() {
    let (base, _server) = serve().await;
    let yaml = format!(
        r#"
name: timeouts
steps:
  - id: slow
    timeout: 100ms
    retry: {{ attempts: 2, backoff: 10ms }}
    http: {{ url: "{base}/slow/2000" }}
"#
    );
    let (code, v, _) = run_json(&yaml, json!({})).await;
    assert_eq!(code, 1);
    assert_eq!(v["status"], "failed");
    assert_eq!(v["steps"]["slow"]["attempts"], 2, "a timeout is retryable");
    assert_eq!(v["steps"]["slow"]["error"]["error"], "timeout");
}

#[tokio::test]
async fn a_run_over_its_timeout_ends_timed_out() {
    let yaml = r#"
name: run-timeout
timeout: 300ms
steps:
  - id: nap
    wait: 10s
  - id: after
    needs: [nap]
    pass: 1
"#;
    let (code, v, _) = run_json(yaml, json!({})).await;
    assert_eq!(code, 1);
    assert_eq!(v["status"], "timed_out");
    assert_eq!(v["steps"]["after"]["status"], "cancelled");
}

#[tokio::test]
async fn fail_fast_cancels_what_has_not_started() {
    let yaml = r#"
name: fail-fast
steps:
  - id: boom
    fail: { error: bad_data, message: "row 7 is broken" }
  - id: next
    needs: [boom]
    pass: 1
  - id: later
    needs: [next]
    pass: 2
"#;
    let (code, v, _) = run_json(yaml, json!({})).await;
    assert_eq!(code, 1);
    assert_eq!(v["status"], "failed");
    assert_eq!(v["steps"]["boom"]["status"], "failed");
    assert_eq!(
        v["steps"]["boom"]["error"],
        json!({"error": "bad_data", "message": "row 7 is broken"})
    );
    assert_eq!(v["steps"]["next"]["status"], "cancelled");
    assert_eq!(v["steps"]["later"]["status"], "cancelled");
}

#[tokio::test]
async fn skipped_branches_rejoin_and_tolerated_failures_go_on() {
    let yaml = r#"
name: rejoin
params:
  amount: { type: integer, required: true }
steps:
  - id: high
    when: "{{ params.amount > 100 }}"
    pass: high
  - id: low
    when: "{{ params.amount <= 100 }}"
    pass: low
  - id: optional
    continue_on_failure: true
    fail: { error: nope }
  - id: join
    needs: [high, low, optional]
    pass: "{{ steps.high.output or steps.low.output }}"
output: "{{ steps.join.output }}"
"#;
    let (code, v, err) = run_json(yaml, json!({"amount": 500})).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["steps"]["low"]["status"], "skipped");
    assert_eq!(v["steps"]["optional"]["status"], "failed");
    assert_eq!(v["output"], "high");
}

#[tokio::test]
async fn for_each_outputs_keep_item_order_with_an_iteration_count() {
    let yaml = r#"
name: fan
params:
  words: { type: array, default: [a, bb, ccc] }
steps:
  - id: lengths
    for_each: "{{ params.words }}"
    max_parallel: 2
    pass: { word: "{{ item }}", n: "{{ item | length }}", at: "{{ index }}" }
"#;
    let (code, v, _) = run_json(yaml, json!({})).await;
    assert_eq!(code, 0);
    assert_eq!(v["steps"]["lengths"]["iterations"], 3);
    assert_eq!(
        v["steps"]["lengths"]["output"],
        json!([{"word": "a", "n": 1, "at": 0}, {"word": "bb", "n": 2, "at": 1}, {"word": "ccc", "n": 3, "at": 2}])
    );
    assert_eq!(
        v["output"]["lengths"][2]["n"], 3,
        "the default output maps leaf steps"
    );
}

#[tokio::test]
async fn bad_input_exits_2_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: needs-input\nparams:\n  bucket: { type: string, required: true }\nsteps:\n  - id: a\n    pass: 1\n",
    )
    .unwrap();
    let out = braid(dir.path(), &["run", "wf.yaml", "--input", "{}"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("param `bucket` is required"));
    let out = braid(dir.path(), &["run", "wf.yaml", "--input", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
    let out = braid(
        dir.path(),
        &["run", "wf.yaml", "--input", r#"{"bucket": 7}"#],
    );
    assert_eq!(out.status.code(), Some(2));
    let runs = braid(dir.path(), &["runs", "--output", "json"]);
    let listed: Value = serde_json::from_slice(&runs.stdout).unwrap_or(json!([]));
    assert_eq!(listed, json!([]), "nothing was started");
}

#[tokio::test]
async fn an_invalid_workflow_exits_2_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: bad\nsteps:\n  - id: a\n    neds: [b]\n    pass: 1\n",
    )
    .unwrap();
    let out = braid(dir.path(), &["run", "wf.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wf.yaml:4:5"), "{err}");
    assert!(err.contains("did you mean `needs`"), "{err}");
}

#[tokio::test]
async fn runs_and_show_read_back_what_run_recorded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: hello\nsteps:\n  - id: a\n    pass: { hi: there }\n",
    )
    .unwrap();
    let out = braid(dir.path(), &["run", "wf.yaml", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["run_id"].as_str().unwrap().to_string();
    let listed = braid(dir.path(), &["runs"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    let shown = braid(dir.path(), &["show", &id, "--output", "json"]);
    let s: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(s["steps"]["a"]["output"], json!({"hi": "there"}));
    let text = braid(dir.path(), &["show", &id]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("succeeded"));
    let missing = braid(dir.path(), &["show", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[tokio::test]
async fn an_idempotency_key_used_twice_shows_the_first_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: once\nsteps:\n  - id: a\n    pass: 1\n",
    )
    .unwrap();
    let first: Value = serde_json::from_slice(
        &braid(
            dir.path(),
            &[
                "run",
                "wf.yaml",
                "--output",
                "json",
                "--idempotency-key",
                "k1",
            ],
        )
        .stdout,
    )
    .unwrap();
    let second: Value = serde_json::from_slice(
        &braid(
            dir.path(),
            &[
                "run",
                "wf.yaml",
                "--output",
                "json",
                "--idempotency-key",
                "k1",
            ],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(first["run_id"], second["run_id"]);
}

#[tokio::test]
async fn a_child_workflow_not_registered_fails_its_step_saying_how_to_register_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: parent\nsteps:\n  - id: call\n    workflow: child\n  - id: after\n    needs: [call]\n    pass: 1\n",
    )
    .unwrap();
    let out = braid(dir.path(), &["run", "wf.yaml", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["steps"]["call"]["error"]["error"], "workflow.not_found");
    let message = run["steps"]["call"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("braid deploy"), "{message}");
    assert_eq!(run["steps"]["after"]["status"], "cancelled");
}

#[tokio::test]
async fn a_registered_workflow_is_started_locally_and_driven_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: greet\nparams:\n  who: { type: string, default: world }\nsteps:\n  - id: hi\n    pass: \"hello {{ params.who }}\"\noutput: \"{{ steps.hi.output }}\"\n",
    )
    .unwrap();
    let deployed = braid(dir.path(), &["deploy", "wf.yaml"]);
    assert!(deployed.status.success(), "{deployed:?}");

    let waited = braid(
        dir.path(),
        &[
            "start",
            "greet",
            "--input",
            r#"{"who": "ada"}"#,
            "--wait",
            "--output",
            "json",
        ],
    );
    assert!(waited.status.success(), "{waited:?}");
    let run: Value = serde_json::from_slice(&waited.stdout).unwrap();
    assert_eq!(
        (run["status"].clone(), run["output"].clone()),
        (json!("succeeded"), json!("hello ada"))
    );
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert!(
        !stderr.to_lowercase().contains("metadata") && !stderr.contains("WARN"),
        "nothing local touches AWS: {stderr}"
    );

    let started = braid(dir.path(), &["start", "greet", "--idempotency-key", "k1"]);
    assert!(started.status.success(), "{started:?}");
    let id = String::from_utf8_lossy(&started.stdout).trim().to_string();
    assert!(
        String::from_utf8_lossy(&started.stderr).contains(&format!("braid continue {id}")),
        "{started:?}"
    );
    let continued = braid(dir.path(), &["continue", &id, "--output", "json"]);
    assert!(continued.status.success(), "{continued:?}");
    let again = braid(dir.path(), &["start", "greet", "--idempotency-key", "k1"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), id);

    let unknown = braid(dir.path(), &["start", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("braid deploy"));
}

#[tokio::test]
async fn a_lambda_function_nothing_can_reach_is_refused_before_the_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: calls\nsteps:\n  - id: first\n    pass: 1\n  - id: call\n    needs: [first]\n    lambda: nowhere-fn\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["run", "wf.yaml", "--state"])
        .arg(dir.path().join("state"))
        .current_dir(dir.path())
        .env_remove("BRAID_FUNCTIONS")
        .env_remove("BRAID_LAMBDA_ENDPOINT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("step `call`")
            && err.contains("no local route for Lambda function `nowhere-fn`"),
        "{err}"
    );
    assert!(!err.contains("started"), "nothing started: {err}");
}

#[tokio::test]
async fn a_run_is_named_by_a_unique_prefix_of_its_id() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: p\nsteps:\n  - id: a\n    pass: 1\n",
    )
    .unwrap();
    let id = |out: &Output| -> String {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["run_id"].as_str().unwrap().to_string()
    };
    let first = id(&braid(dir.path(), &["run", "wf.yaml", "--output", "json"]));
    let second = id(&braid(dir.path(), &["run", "wf.yaml", "--output", "json"]));
    let common: String = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let unique = &second[..common.len() + 1];
    let shown = braid(dir.path(), &["show", unique, "--output", "json"]);
    assert!(shown.status.success(), "{shown:?}");
    assert_eq!(id(&shown), second);
    let both = braid(dir.path(), &["show", &common]);
    assert_eq!(both.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("more than one run"),
        "{both:?}"
    );
}

/// A command on the local state never builds an AWS configuration: that asks the
/// instance metadata service for a region (and credentials) where the environment
/// names none, and warns when it does not answer. Here the service is a listener of
/// the test's that must see no connection.
#[test]
fn local_commands_never_contact_the_aws_metadata_service() {
    let metadata = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    metadata.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", metadata.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: greet\nsteps:\n  - id: hi\n    pass: hello\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    let local = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
        cmd.args(args)
            .arg("--state")
            .arg(dir.path().join("state"))
            .current_dir(dir.path())
            .env("HOME", dir.path().join("home"))
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint);
        for var in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_EC2_METADATA_DISABLED",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            cmd.env_remove(var);
        }
        cmd.output().unwrap()
    };
    let quiet = |args: &[&str]| {
        let out = local(args);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {said}");
        assert!(
            !said.to_lowercase().contains("warn") && !said.to_lowercase().contains("metadata"),
            "{args:?} warned: {said}"
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };

    quiet(&["deploy", "wf.yaml"]);
    let id = quiet(&["start", "greet"]);
    quiet(&["continue", &id]);
    quiet(&["start", "greet", "--wait"]);
    quiet(&["runs"]);
    quiet(&["show", &id]);
    quiet(&["workflows"]);
    let contacted = metadata.accept();
    assert!(
        matches!(&contacted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a local command contacted the metadata service: {contacted:?}"
    );

    // The listener does see an AWS configuration being built: a command on a stack
    // asks it for the region.
    #[cfg(feature = "aws")]
    {
        let out = local(&["runs", "--stack", "braid-no-such-stack"]);
        assert!(!out.status.success());
        assert!(
            metadata.accept().is_ok(),
            "the SDK did not ask the listener: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn progress_lines_tell_every_step_end_in_the_order_they_ended() {
    let dir = tempfile::tempdir().unwrap();
    // `fast` is listed after `slow` but ends first; `last` ends as the run does.
    std::fs::write(
        dir.path().join("order.yaml"),
        "name: order\nsteps:\n  - id: slow\n    wait: 300ms\n  - id: fast\n    pass: 1\n  - id: last\n    needs: [slow, fast]\n    pass: 2\n",
    )
    .unwrap();
    let out = braid(dir.path(), &["run", "order.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ends: Vec<&str> = stderr
        .lines()
        .filter(|l| l.ends_with(" succeeded"))
        .collect();
    assert_eq!(
        ends,
        ["✓ fast succeeded", "✓ slow succeeded", "✓ last succeeded"],
        "{stderr}"
    );
}
