//! Every workflow in `examples/` runs through `braid run` and ends as its comments say:
//! final status, exit code and the outputs that matter.
//!
//! `lambda` steps run the example worker (`examples/worker`), built here into the same
//! target folder as this test; `http-check.yaml` talks to a small httpbin look-alike
//! served by the test. A new example fails `every_example_file_is_run_by_a_test_here`
//! until it is listed in [`EXPECTATIONS`] with the tests that run it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

mod common;
use std::time::Duration;

/// The tests that run one example file.
type Tests = &'static [fn()];

/// Each example file and the tests that run it. Function pointers, so a listed test
/// cannot silently disappear.
const EXPECTATIONS: &[(&str, Tests)] = &[
    (
        "branch-and-rejoin.yaml",
        &[
            a_big_order_goes_to_manual_review_and_cools_down_before_its_receipt,
            a_small_order_takes_the_automatic_route_and_skips_the_cool_down,
        ],
    ),
    (
        "guard-input.yaml",
        &[
            guard_input_squares_each_number_and_describes_the_list,
            guard_input_fails_an_empty_list_with_empty_input,
        ],
    ),
    ("hello.json", &[hello_json_shouts_the_default_greeting]),
    (
        "hello.yaml",
        &[hello_greets_the_given_name_and_counts_the_characters],
    ),
    (
        "http-check.yaml",
        &[http_check_pings_posts_the_record_and_summarises_both_answers],
    ),
    (
        "inbox.yaml",
        &[an_order_given_as_a_webhook_would_give_it_is_taken_in],
    ),
    (
        "nightly-report.yaml",
        &[the_nightly_report_settles_then_totals_the_sales_of_every_region],
    ),
    (
        "orders.yaml",
        &[orders_are_priced_in_chunks_and_totalled_with_tax_after_a_flaky_rate_call],
    ),
    (
        "release-gate.yaml",
        &[a_release_is_approved_deployed_by_callback_and_smoke_tested_by_signal],
    ),
    (
        "retry-and-tolerate.yaml",
        &[a_flaky_function_is_retried_until_it_answers_and_a_failing_audit_is_tolerated],
    ),
    (
        "square.yaml",
        &[sum_of_squares_runs_a_square_child_per_number],
    ),
    (
        "sum-of-squares.yaml",
        &[sum_of_squares_runs_a_square_child_per_number],
    ),
];

/// Longest any example may take before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .canonicalize()
        .expect("the examples folder exists")
}

/// Whether the run needs a function map for its `lambda` steps.
#[derive(Clone, Copy, PartialEq)]
enum Functions {
    None,
    ExampleWorker,
}

/// What `braid run --output json` answered.
struct Run {
    code: i32,
    json: Value,
    stderr: String,
}

impl Run {
    fn step(&self, id: &str) -> &Value {
        let step = &self.json["steps"][id];
        assert!(step.is_object(), "no step `{id}` in {}", self.json);
        step
    }

    /// Asserts a step ended with `status` after exactly `attempts` attempts.
    fn assert_step(&self, id: &str, status: &str, attempts: u64) {
        let step = self.step(id);
        assert_eq!(step["status"], status, "step `{id}`: {step}");
        assert_eq!(step["attempts"], attempts, "step `{id}`: {step}");
    }

    /// How long the run took, from its own timestamps.
    fn elapsed(&self) -> Duration {
        let at = |field: &str| -> DateTime<FixedOffset> {
            let text = self.json[field].as_str().unwrap_or_else(|| {
                panic!("`{field}` is a timestamp in {}", self.json);
            });
            DateTime::parse_from_rfc3339(text).expect("an RFC 3339 timestamp")
        };
        (at("finished_at") - at("started_at"))
            .to_std()
            .expect("a run finishes after it starts")
    }
}

/// Runs `examples/<file>` with its own state folder and returns what braid printed.
async fn run_example(file: &str, input: Option<Value>, functions: Functions) -> Run {
    run_example_after(&[], file, input, functions).await
}

/// Runs example `file` after registering the examples in `deploy` (the child
/// workflows it starts) with `braid deploy` in the same state.
async fn run_example_after(
    deploy: &[&str],
    file: &str,
    input: Option<Value>,
    functions: Functions,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    for child in deploy {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_braid"))
            .arg("deploy")
            .arg(examples_dir().join(child))
            .arg("--state")
            .arg(dir.path().join("state"))
            .current_dir(dir.path())
            .output()
            .expect("braid starts");
        assert!(out.status.success(), "braid deploy {child}: {out:?}");
    }
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_braid"));
    cmd.arg("run")
        .arg(examples_dir().join(file))
        .args(["--output", "json"])
        .arg("--state")
        .arg(dir.path().join("state"))
        .current_dir(dir.path())
        .env_remove("BRAID_FUNCTIONS")
        .env_remove("BRAID_LAMBDA_ENDPOINT")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(input) = input {
        cmd.arg("--input").arg(input.to_string());
    }
    if functions == Functions::ExampleWorker {
        let worker = tokio::task::spawn_blocking(common::worker_binary)
            .await
            .unwrap();
        let map = dir.path().join("functions.yaml");
        // A JSON string is a valid YAML double-quoted scalar, whatever the path holds.
        let command = serde_json::to_string(&worker.to_string_lossy()).unwrap();
        std::fs::write(
            &map,
            format!(
                "functions:\n  braid-example-worker:\n    command: {command}\n    concurrency: 2\n"
            ),
        )
        .unwrap();
        cmd.arg("--functions").arg(&map);
    }
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`braid run {file}` did not end within {RUN_LIMIT:?}"))
        .expect("braid starts");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("`braid run {file}` printed no JSON ({e}): {stdout}\nstderr: {stderr}")
    });
    Run {
        code: out.status.code().expect("braid exits with a code"),
        json,
        stderr,
    }
}

/// Asserts the run's exit code, workflow name, status and output.
fn assert_run(run: &Run, code: i32, workflow: &str, status: &str, output: Value) {
    assert_eq!(run.code, code, "{}\nstderr: {}", run.json, run.stderr);
    assert_eq!(run.json["workflow"], workflow, "{}", run.json);
    assert_eq!(run.json["status"], status, "{}", run.json);
    assert_eq!(run.json["output"], output, "{}", run.json);
}

#[test]
fn every_example_file_is_run_by_a_test_here() {
    let mut files: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| name != "functions.yaml")
        .collect();
    files.sort();
    for file in &files {
        let tests = EXPECTATIONS
            .iter()
            .find(|(listed, _)| listed == file)
            .map(|(_, tests)| tests.len());
        assert!(
            tests.is_some_and(|n| n > 0),
            "examples/{file} has no test with expectations: add one to cli/tests/examples_run.rs \
             and list it in EXPECTATIONS"
        );
    }
    let listed: Vec<String> = EXPECTATIONS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        listed, files,
        "EXPECTATIONS lists exactly the example files, sorted"
    );
}

#[tokio::test]
async fn hello_greets_the_given_name_and_counts_the_characters() {
    let run = run_example("hello.yaml", Some(json!({"who": "Ada"})), Functions::None).await;
    assert_run(
        &run,
        0,
        "hello",
        "succeeded",
        json!({"greeting": "Hello, Ada!", "characters": 11}),
    );
    run.assert_step("greet", "succeeded", 1);
    assert_eq!(run.step("greet")["output"], "Hello, Ada!");
    run.assert_step("measure", "succeeded", 1);
    assert_eq!(run.step("measure")["error"], Value::Null);
}

/// The webhook trigger's params, given by hand; `braid dev` starts it from an upload
/// or a signed webhook (cli/tests/dev.rs).
#[tokio::test]
async fn an_order_given_as_a_webhook_would_give_it_is_taken_in() {
    let input = json!({"source": "webhook", "order": {"id": 7}});
    let run = run_example("inbox.yaml", Some(input), Functions::None).await;
    assert_run(
        &run,
        0,
        "inbox",
        "succeeded",
        json!({"source": "webhook", "file": "", "order": {"id": 7}}),
    );
    run.assert_step("file", "skipped", 0);
    assert_eq!(run.step("order")["output"], "took in order 7");
}

#[tokio::test]
async fn sum_of_squares_runs_a_square_child_per_number() {
    let run = run_example_after(
        &["square.yaml"],
        "sum-of-squares.yaml",
        Some(json!({"numbers": [1, 2, 3, 4]})),
        Functions::None,
    )
    .await;
    assert_run(&run, 0, "sum-of-squares", "succeeded", json!(30));
    run.assert_step("squares", "succeeded", 1);
    assert_eq!(run.step("squares")["output"], json!([1, 4, 9, 16]));
}

#[tokio::test]
async fn hello_json_shouts_the_default_greeting() {
    let run = run_example("hello.json", None, Functions::None).await;
    assert_run(&run, 0, "hello-json", "succeeded", json!("HELLO, WORLD!"));
    run.assert_step("greet", "succeeded", 1);
    assert_eq!(run.step("greet")["output"], "Hello, world!");
    run.assert_step("shout", "succeeded", 1);
    assert_eq!(
        run.step("shout")["output"],
        json!({"loud": "HELLO, WORLD!"})
    );
}

#[tokio::test]
async fn a_big_order_goes_to_manual_review_and_cools_down_before_its_receipt() {
    let run = run_example(
        "branch-and-rejoin.yaml",
        Some(json!({"amount": 2500})),
        Functions::None,
    )
    .await;
    assert_run(
        &run,
        0,
        "branch-and-rejoin",
        "succeeded",
        json!({
            "amount": 2500,
            "route": "manual-review",
            "branches": {"big": "succeeded", "small": "skipped"}
        }),
    );
    run.assert_step("classify", "succeeded", 1);
    assert_eq!(
        run.step("classify")["output"],
        json!({"big": true, "amount": 2500})
    );
    run.assert_step("big-order", "succeeded", 1);
    assert_eq!(
        run.step("big-order")["output"],
        json!({"route": "manual-review", "amount": 2500})
    );
    run.assert_step("cool-down", "succeeded", 1);
    run.assert_step("small-order", "skipped", 0);
    run.assert_step("receipt", "succeeded", 1);
    assert!(
        run.elapsed() >= Duration::from_secs(2),
        "the 2s cool-down was waited: {:?}",
        run.elapsed()
    );
}

#[tokio::test]
async fn a_small_order_takes_the_automatic_route_and_skips_the_cool_down() {
    let run = run_example(
        "branch-and-rejoin.yaml",
        Some(json!({"amount": 40})),
        Functions::None,
    )
    .await;
    assert_run(
        &run,
        0,
        "branch-and-rejoin",
        "succeeded",
        json!({
            "amount": 40,
            "route": "automatic",
            "branches": {"big": "skipped", "small": "succeeded"}
        }),
    );
    assert_eq!(
        run.step("classify")["output"],
        json!({"big": false, "amount": 40})
    );
    run.assert_step("big-order", "skipped", 0);
    run.assert_step("cool-down", "skipped", 0);
    run.assert_step("small-order", "succeeded", 1);
    assert_eq!(
        run.step("small-order")["output"],
        json!({"route": "automatic", "amount": 40})
    );
    run.assert_step("receipt", "succeeded", 1);
}

#[tokio::test]
async fn guard_input_squares_each_number_and_describes_the_list() {
    let run = run_example(
        "guard-input.yaml",
        Some(json!({"numbers": [3, 1, 2]})),
        Functions::None,
    )
    .await;
    assert_run(
        &run,
        0,
        "guard-input",
        "succeeded",
        json!({"count": 3, "sorted": [1, 2, 3], "smallest": 1, "largest": 3, "squares": [9, 1, 4]}),
    );
    run.assert_step("reject-empty", "skipped", 0);
    run.assert_step("square", "succeeded", 1);
    assert_eq!(run.step("square")["iterations"], 3);
    assert_eq!(
        run.step("square")["output"],
        json!([
            {"number": 3, "square": 9, "position": 0},
            {"number": 1, "square": 1, "position": 1},
            {"number": 2, "square": 4, "position": 2}
        ])
    );
    run.assert_step("describe", "succeeded", 1);
}

#[tokio::test]
async fn guard_input_fails_an_empty_list_with_empty_input() {
    let run = run_example(
        "guard-input.yaml",
        Some(json!({"numbers": []})),
        Functions::None,
    )
    .await;
    assert_run(&run, 1, "guard-input", "failed", Value::Null);
    assert_eq!(run.json["error"]["error"], "EmptyInput", "{}", run.json);
    run.assert_step("reject-empty", "failed", 1);
    assert_eq!(
        run.step("reject-empty")["error"],
        json!({"error": "EmptyInput", "message": "`numbers` is empty; give at least one number"})
    );
    run.assert_step("square", "cancelled", 0);
    run.assert_step("describe", "cancelled", 0);
}

/// What the httpbin look-alike saw: one entry per request.
type Seen = Arc<Mutex<Vec<Value>>>;

/// A local stand-in for httpbin: `GET /get` and `POST /post` answer JSON describing
/// the request (`args`, `headers`, `url`, and for POST `data` and `json`).
async fn serve_httpbin() -> (String, Seen, tokio::task::JoinHandle<()>) {
    fn header_object(headers: &HeaderMap) -> Value {
        headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap_or(""))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
    async fn get_handler(State(seen): State<Seen>, headers: HeaderMap) -> Json<Value> {
        let reply = json!({"args": {}, "headers": header_object(&headers), "url": "/get"});
        seen.lock()
            .unwrap()
            .push(json!({"method": "GET", "reply": reply}));
        Json(reply)
    }
    async fn post_handler(
        State(seen): State<Seen>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Json<Value> {
        let data = String::from_utf8_lossy(&body).into_owned();
        let parsed = serde_json::from_str::<Value>(&data).unwrap_or(Value::Null);
        let reply = json!({
            "args": {}, "data": data, "files": {}, "form": {},
            "headers": header_object(&headers), "json": parsed, "url": "/post"
        });
        seen.lock()
            .unwrap()
            .push(json!({"method": "POST", "reply": reply}));
        Json(reply)
    }
    let seen = Seen::default();
    let app = Router::new()
        .route("/get", get(get_handler))
        .route("/post", post(post_handler))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), seen, task)
}

#[tokio::test]
async fn http_check_pings_posts_the_record_and_summarises_both_answers() {
    let (base, seen, _server) = serve_httpbin().await;
    let run = run_example(
        "http-check.yaml",
        Some(json!({"base_url": base})),
        Functions::None,
    )
    .await;
    assert_run(
        &run,
        0,
        "http-check",
        "succeeded",
        json!({"ping_status": 200, "post_status": 200, "echoed": {"id": 42, "state": "ready"}}),
    );
    run.assert_step("ping", "succeeded", 1);
    run.assert_step("post-record", "succeeded", 1);
    run.assert_step("summary", "succeeded", 1);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one ping, one post: {seen:?}");
    let (ping, posted) = (&seen[0], &seen[1]);
    assert_eq!(ping["method"], "GET");
    assert_eq!(
        ping["reply"]["headers"]["accept"], "application/json",
        "the ping asks for JSON"
    );
    assert_eq!(
        run.step("ping")["output"]["body"],
        ping["reply"],
        "the step's body is the parsed JSON answer"
    );
    assert_eq!(posted["method"], "POST");
    let sent = &posted["reply"]["json"];
    assert_eq!(sent["record"], json!({"id": 42, "state": "ready"}));
    // The same instant; `run.started_at` may spell UTC `+00:00` where the report says `Z`.
    let instant = |v: &Value| {
        DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{v} is not an RFC 3339 timestamp: {e}"))
    };
    assert_eq!(
        instant(&sent["checked_at"]),
        instant(&run.json["started_at"]),
        "`checked_at` is the run's start time"
    );
    assert!(
        posted["reply"]["headers"]["content-type"]
            .as_str()
            .is_some_and(|t| t.starts_with("application/json")),
        "{posted}"
    );
    assert_eq!(run.step("post-record")["output"]["status"], 200);
    assert_eq!(run.step("post-record")["output"]["body"], posted["reply"]);
}

#[tokio::test]
async fn the_nightly_report_settles_then_totals_the_sales_of_every_region() {
    let run = run_example("nightly-report.yaml", None, Functions::ExampleWorker).await;
    assert_run(
        &run,
        0,
        "nightly-report",
        "succeeded",
        json!({"regions": ["north", "south", "east", "west"], "total": 1000}),
    );
    run.assert_step("settle", "succeeded", 1);
    run.assert_step("figures", "succeeded", 1);
    assert_eq!(run.step("figures")["iterations"], 4);
    assert_eq!(
        run.step("figures")["output"],
        json!([
            {"op": "echo", "region": "north", "sales": 100},
            {"op": "echo", "region": "south", "sales": 200},
            {"op": "echo", "region": "east", "sales": 300},
            {"op": "echo", "region": "west", "sales": 400}
        ])
    );
    run.assert_step("total", "succeeded", 1);
    assert_eq!(run.step("total")["output"], json!({"total": 1000}));
    run.assert_step("too-low", "skipped", 0);
    assert!(
        run.elapsed() >= Duration::from_secs(3),
        "the 3s settle was waited: {:?}",
        run.elapsed()
    );
}

#[tokio::test]
async fn orders_are_priced_in_chunks_and_totalled_with_tax_after_a_flaky_rate_call() {
    let run = run_example("orders.yaml", None, Functions::ExampleWorker).await;
    assert_run(
        &run,
        0,
        "orders",
        "succeeded",
        json!({"orders": 10, "chunks": 4, "subtotal": 286.24, "with_tax": 343.49, "tax_attempts": 2}),
    );
    run.assert_step("split", "succeeded", 1);
    assert_eq!(
        run.step("split")["output"],
        json!({"chunks": [[12.5, 3, 99.99], [42, 7.25, 18], [64.1, 5, 23.4], [11]]})
    );
    run.assert_step("price", "succeeded", 1);
    assert_eq!(run.step("price")["iterations"], 4);
    assert_eq!(
        run.step("price")["output"],
        json!([
            {"total": 115.49, "count": 3},
            {"total": 67.25, "count": 3},
            {"total": 92.5, "count": 3},
            {"total": 11, "count": 1}
        ])
    );
    // The rate fails once per worker process; with two processes the retry may land on
    // the one that has not failed yet, so it takes two or three attempts.
    let tax = run.step("tax-rate");
    assert_eq!(tax["status"], "succeeded", "{tax}");
    let attempts = tax["attempts"].as_u64().unwrap();
    assert!((2..=3).contains(&attempts), "{tax}");
    let run_id = run.json["run_id"].as_str().unwrap();
    assert_eq!(
        tax["output"],
        json!({"key": format!("tax-{run_id}"), "attempts": 2})
    );
    run.assert_step("total", "succeeded", 1);
    assert_eq!(run.step("total")["output"], json!({"total": 286.24}));
    run.assert_step("report", "succeeded", 1);
}

#[test]
fn a_release_is_approved_deployed_by_callback_and_smoke_tested_by_signal() {
    let dir = tempfile::tempdir().unwrap();
    let map = common::worker_map(dir.path());
    let braid = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
        cmd.args(args)
            .arg("--state")
            .arg(dir.path().join("state"))
            .current_dir(dir.path())
            .stdin(Stdio::null());
        cmd
    };
    let mut run = braid(&["run"]);
    run.arg(examples_dir().join("release-gate.yaml"))
        .args(["--output", "json", "--input", r#"{"version": "1.4.2"}"#])
        .arg("--functions")
        .arg(&map);
    let (mut background, seen) = common::in_background(run);
    let run_id = common::started_run(&seen);
    let waiting = common::line_with(&seen, "waits for approval");
    assert!(
        waiting.contains("Release 1.4.2 to production?"),
        "{waiting}"
    );
    let approved = braid(&["approve", &run_id, "approve", "--as", "ana"])
        .output()
        .unwrap();
    assert!(approved.status.success(), "{approved:?}");
    // The deploy reports back by its callback URL; then the smoke test waits.
    common::line_with(&seen, "waits for signal smoke-passed");
    let signalled = braid(&[
        "signal",
        &run_id,
        "smoke-passed",
        "--data",
        r#"{"p95_ms": 180}"#,
    ])
    .output()
    .unwrap();
    assert!(signalled.status.success(), "{signalled:?}");
    let out = background.0.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        result["output"],
        json!({"version": "1.4.2", "approved_by": "ana", "p95_ms": 180})
    );
    assert_eq!(
        result["steps"]["deploy"]["output"],
        json!({"deployed": "1.4.2"})
    );
}

#[tokio::test]
async fn a_flaky_function_is_retried_until_it_answers_and_a_failing_audit_is_tolerated() {
    let run = run_example("retry-and-tolerate.yaml", None, Functions::ExampleWorker).await;
    assert_run(
        &run,
        0,
        "retry-and-tolerate",
        "succeeded",
        json!({"flaky": "succeeded", "calls_seen_by_the_worker": 3, "audit": "failed"}),
    );
    // Two failures per worker process, two processes: three to five attempts.
    let flaky = run.step("flaky");
    assert_eq!(flaky["status"], "succeeded", "{flaky}");
    let attempts = flaky["attempts"].as_u64().unwrap();
    assert!((3..=5).contains(&attempts), "{flaky}");
    assert_eq!(
        flaky["output"],
        json!({"key": run.json["run_id"], "attempts": 3})
    );
    run.assert_step("optional-audit", "failed", 1);
    assert_eq!(
        run.step("optional-audit")["error"],
        json!({"error": "AuditUnavailable", "message": "the audit service is down"})
    );
    assert_eq!(run.step("optional-audit")["output"], Value::Null);
    run.assert_step("report", "succeeded", 1);
}
