//! The local Lambda runners end to end: the example worker launched under the Runtime
//! API, an Invoke API test double standing in for `cargo lambda watch`, and function
//! map files.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use braid_local::lambda::{
    EndpointSpec, FunctionMap, FunctionTarget, InvokeApiRunner, LambdaConfigError, LambdaRunner,
    ProcessSpec, RuntimeApiRunner,
};
use braid_ports::{Invocation, Task, TaskRunner};
use indexmap::IndexMap;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The example worker's binary, next to this test's own binary
/// (`<target>/<profile>/deps/..` → `<target>/<profile>/braid-example-worker`).
///
/// Built once per test run with the same target folder and profile: a no-op when it is
/// up to date, and never stale after the worker's code changed. (`cargo test` releases
/// its build lock before it runs tests, so the nested build does not wait on it.)
fn worker_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test knows its own path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("tests run from <target>/<profile>/deps");
            let target_dir = profile_dir.parent().expect("a target folder");
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let mut build = Command::new(env!("CARGO"));
            build
                .current_dir(&workspace)
                .args(["build", "--quiet", "-p", "braid-example-worker"])
                .arg("--target-dir")
                .arg(target_dir);
            if profile_dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "building braid-example-worker failed");
            profile_dir.join(format!(
                "braid-example-worker{}",
                std::env::consts::EXE_SUFFIX
            ))
        })
        .clone()
}

fn worker(spec: impl FnOnce(&mut ProcessSpec)) -> RuntimeApiRunner {
    let mut process = ProcessSpec::new(worker_binary());
    spec(&mut process);
    RuntimeApiRunner::new("braid-example-worker", process)
}

fn lambda(function: &str, payload: Value) -> Task {
    Task::Lambda {
        function: function.into(),
        payload,
        invocation: Invocation::new("run", "step", 1),
        traceparent: None,
    }
}

#[tokio::test]
async fn a_launched_function_echoes_its_payload() {
    let runner = worker(|_| {});
    let input = json!({"op": "echo", "nested": {"list": [1, 2, 3]}, "text": "héllo"});
    let out = runner.invoke(&input, None, None).await.unwrap();
    assert_eq!(out, input);
    let out = runner
        .invoke(
            &json!({"op": "split", "items": [1, 2, 3], "size": 2}),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"chunks": [[1, 2], [3]]}));
}

#[tokio::test]
async fn a_warm_process_keeps_its_state_between_invocations() {
    let runner = worker(|_| {});
    let input = json!({"op": "flaky", "key": "k", "fail_times": 2});
    for attempt in 1..=2 {
        let err = runner.invoke(&input, None, None).await.unwrap_err();
        assert_eq!(err.error, "Flaky", "attempt {attempt}: {err}");
        assert!(err.retryable);
        assert!(err.message.contains(&format!("attempt {attempt}")), "{err}");
    }
    let out = runner.invoke(&input, None, None).await.unwrap();
    assert_eq!(out, json!({"key": "k", "attempts": 3}));
}

#[tokio::test]
async fn function_errors_carry_the_function_error_type() {
    let runner = worker(|_| {});
    let err = runner
        .invoke(
            &json!({"op": "fail", "error": "OrderRejected", "message": "no stock"}),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.error, "OrderRejected");
    assert_eq!(err.message, "no stock");
    assert!(err.retryable);
    let err = runner
        .invoke(&json!({"op": "nope"}), None, None)
        .await
        .unwrap_err();
    assert_eq!(err.error, "UnknownOp");
}

#[tokio::test]
async fn a_crashed_process_fails_the_attempt_and_is_replaced() {
    let runner = worker(|_| {});
    let err = runner
        .invoke(&json!({"op": "exit", "code": 3}), None, None)
        .await
        .unwrap_err();
    assert_eq!(err.error, "lambda.crash");
    assert!(err.retryable);
    assert!(err.message.contains("exit status: 3"), "{err}");
    let out = runner
        .invoke(&json!({"op": "echo"}), None, None)
        .await
        .unwrap();
    assert_eq!(out, json!({"op": "echo"}));
}

#[tokio::test]
async fn an_invocation_past_its_deadline_times_out_and_the_process_is_replaced() {
    let runner = worker(|p| p.timeout = Duration::from_millis(300));
    let err = runner
        .invoke(&json!({"op": "sleep", "ms": 5000}), None, None)
        .await
        .unwrap_err();
    assert_eq!(err.error, "lambda.timeout");
    assert!(err.retryable);
    let flaky = json!({"op": "flaky", "key": "fresh", "fail_times": 0});
    // A fresh process: the counter starts again.
    assert_eq!(
        runner.invoke(&flaky, None, None).await.unwrap(),
        json!({"key": "fresh", "attempts": 1})
    );
}

#[tokio::test]
async fn a_cancelled_invocation_does_not_leave_a_busy_process_behind() {
    let runner = worker(|_| {});
    let flaky = json!({"op": "flaky", "key": "c", "fail_times": 5});
    let err = runner.invoke(&flaky, None, None).await.unwrap_err();
    assert!(err.message.contains("attempt 1"), "{err}");
    // The step's own timeout drops the invocation mid-flight.
    let sleep = json!({"op": "sleep", "ms": 10_000});
    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        runner.invoke(&sleep, None, None),
    )
    .await;
    assert!(cancelled.is_err());
    // The next invocation does not wait for the abandoned one: it gets a fresh process.
    let started = std::time::Instant::now();
    let err = runner.invoke(&flaky, None, None).await.unwrap_err();
    assert!(err.message.contains("attempt 1"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_function_sees_the_lambda_environment_and_its_own_variables() {
    // `sh -c` stands in for a runtime that reports its environment, so the variables
    // the Runtime API runner sets can be checked without a special worker op.
    let runner = RuntimeApiRunner::new("env-check", {
        let mut spec = ProcessSpec::new("sh");
        spec.args = vec![
            "-c".into(),
            "echo \"$AWS_LAMBDA_FUNCTION_NAME $AWS_LAMBDA_FUNCTION_MEMORY_SIZE $GREETING\" >&2; exit 7"
                .into(),
        ];
        spec.env = IndexMap::from([("GREETING".to_string(), "hi".to_string())]);
        spec.memory_mb = 512;
        spec
    });
    let err = runner.invoke(&json!({}), None, None).await.unwrap_err();
    assert_eq!(err.error, "lambda.crash");
    assert!(err.message.contains("env-check 512 hi"), "{err}");
}

/// Not a test of its own: when `an_init_error_fails_the_attempt` launches this test
/// binary as a function, this plays a runtime whose initialisation fails.
#[tokio::test]
async fn fake_runtime_with_a_failing_init() {
    let (Ok(api), Ok("init_error")) = (
        std::env::var("AWS_LAMBDA_RUNTIME_API"),
        std::env::var("BRAID_FAKE_RUNTIME").as_deref(),
    ) else {
        return;
    };
    reqwest::Client::new()
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .body(r#"{"errorType":"ConfigMissing","errorMessage":"TABLE_NAME is not set"}"#)
        .send()
        .await
        .unwrap();
    std::process::exit(1);
}

#[tokio::test]
async fn an_init_error_fails_the_attempt() {
    let mut spec = ProcessSpec::new(std::env::current_exe().unwrap());
    spec.args = ["fake_runtime_with_a_failing_init", "--exact", "--nocapture"]
        .map(String::from)
        .to_vec();
    spec.env = IndexMap::from([("BRAID_FAKE_RUNTIME".to_string(), "init_error".to_string())]);
    let runner = RuntimeApiRunner::new("broken-init", spec);
    let err = runner.invoke(&json!({}), None, None).await.unwrap_err();
    assert_eq!(err.error, "lambda.init_error");
    assert!(err.retryable);
    assert!(
        err.message.contains("ConfigMissing: TABLE_NAME is not set"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_binary_is_a_fatal_spawn_error() {
    let runner = RuntimeApiRunner::new("ghost", ProcessSpec::new("/nonexistent/ghost"));
    let err = runner.invoke(&json!({}), None, None).await.unwrap_err();
    assert_eq!(err.error, "lambda.spawn");
    assert!(!err.retryable);
    assert!(err.message.contains("/nonexistent/ghost"), "{err}");
}

#[tokio::test]
async fn concurrent_invocations_use_up_to_the_allowed_processes() {
    let runner = worker(|p| p.concurrency = 2);
    let started = std::time::Instant::now();
    let sleep = json!({"op": "sleep", "ms": 1000});
    let (a, b) = tokio::join!(
        runner.invoke(&sleep, None, None),
        runner.invoke(&sleep, None, None)
    );
    assert_eq!(a.unwrap(), json!({"slept_ms": 1000}));
    assert_eq!(b.unwrap(), json!({"slept_ms": 1000}));
    // Side by side, not one after the other.
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// The Invoke API runner against a test double of `cargo lambda watch`'s Invoke API.

/// Serves `POST /2015-03-31/functions/{name}/invocations` for a few canned functions.
async fn invoke_api_double() -> String {
    async fn invoke(UrlPath(name): UrlPath<String>, body: Bytes) -> axum::response::Response {
        let json_type = [(header::CONTENT_TYPE, "application/json")];
        match name.as_str() {
            "echo" => (json_type, body).into_response(),
            // How Lambda and LocalStack report a function error.
            "broken" => (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::HeaderName::from_static("x-amz-function-error"), "Unhandled"),
                ],
                r#"{"errorType":"Flaky","errorMessage":"try again"}"#,
            )
                .into_response(),
            // How `cargo lambda watch` reports one.
            "broken-watch" => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json_type,
                r#"{"errorType":"BadInput","errorMessage":"no items"}"#,
            )
                .into_response(),
            "throttled" => (StatusCode::TOO_MANY_REQUESTS, "Rate exceeded").into_response(),
            "bad" => (StatusCode::BAD_REQUEST, "InvalidRequestContentException").into_response(),
            _ => (
                StatusCode::NOT_FOUND,
                json_type,
                r#"{"title":"Missing function","detail":"that function doesn't exist as a binary in your project"}"#,
            )
                .into_response(),
        }
    }
    let app = Router::new().route("/2015-03-31/functions/{name}/invocations", post(invoke));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn invoke_runner(endpoint: &str) -> InvokeApiRunner {
    InvokeApiRunner::new(reqwest::Client::new(), endpoint.parse().unwrap())
}

#[tokio::test]
async fn the_invoke_api_runner_returns_the_function_response() {
    let runner = invoke_runner(&invoke_api_double().await);
    let out = runner
        .invoke("echo", &json!({"a": [1, 2]}), None)
        .await
        .unwrap();
    assert_eq!(out, json!({"a": [1, 2]}));
    // An ARN reaches the function by its name.
    let out = runner
        .invoke(
            "arn:aws:lambda:us-east-1:000000000000:function:echo",
            &json!(7),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out, json!(7));
}

#[tokio::test]
async fn the_invoke_api_runner_classifies_errors() {
    let runner = invoke_runner(&invoke_api_double().await);

    let err = runner.invoke("broken", &json!({}), None).await.unwrap_err();
    assert_eq!(
        (err.error.as_str(), err.message.as_str()),
        ("Flaky", "try again")
    );
    assert!(err.retryable);

    let err = runner
        .invoke("broken-watch", &json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(err.error, "BadInput");
    assert!(err.retryable);

    let err = runner
        .invoke("throttled", &json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(err.error, "lambda.status_429");
    assert!(err.retryable);

    let err = runner.invoke("bad", &json!({}), None).await.unwrap_err();
    assert_eq!(err.error, "lambda.status_400");
    assert!(!err.retryable);

    let err = runner.invoke("nobody", &json!({}), None).await.unwrap_err();
    assert_eq!(err.error, "lambda.unknown_function");
    assert!(!err.retryable);
    assert!(err.message.contains("Missing function"), "{err}");
}

#[tokio::test]
async fn an_unreachable_invoke_api_may_be_retried() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = invoke_runner(&format!("http://127.0.0.1:{port}"))
        .invoke("echo", &json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(err.error, "lambda.connect");
    assert!(err.retryable);
    assert!(err.message.contains("cargo lambda watch"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Function maps and the routing runner.

fn write_map(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("functions.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn load_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write_map(dir.path(), text);
    let err: LambdaConfigError = FunctionMap::load(&path).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "the error names the file: {message}"
    );
    message
}

#[test]
fn a_function_map_parses_processes_endpoints_and_a_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_map(
        dir.path(),
        r#"
functions:
  braid-example-worker:
    command: target/debug/braid-example-worker
    args: [--port, 8080]
    env: { K: V, N: 1 }
    timeout: 30s
    memory: 256
    concurrency: 2
  orders-price: { endpoint: "http://127.0.0.1:9000", timeout: 1m }
  tool: { command: python3 }
default_endpoint: "http://127.0.0.1:9001"
"#,
    );
    let map = FunctionMap::load(&path).unwrap();
    let Some(FunctionTarget::Process(worker)) = map.functions.get("braid-example-worker") else {
        panic!("a process: {map:?}");
    };
    let folder = std::path::absolute(dir.path()).unwrap();
    assert_eq!(
        worker.command,
        folder.join("target/debug/braid-example-worker")
    );
    assert_eq!(worker.args, vec!["--port", "8080"]);
    assert_eq!(worker.env.get("K").map(String::as_str), Some("V"));
    assert_eq!(worker.env.get("N").map(String::as_str), Some("1"));
    assert_eq!(worker.timeout, Duration::from_secs(30));
    assert_eq!((worker.memory_mb, worker.concurrency), (256, 2));

    let Some(FunctionTarget::Process(tool)) = map.functions.get("tool") else {
        panic!("a process: {map:?}");
    };
    assert_eq!(
        tool.command,
        PathBuf::from("python3"),
        "bare names go to PATH"
    );

    let Some(FunctionTarget::Endpoint(price)) =
        map.target("arn:aws:lambda:eu-west-1:1:function:orders-price")
    else {
        panic!("an endpoint: {map:?}");
    };
    assert_eq!(price.url.as_str(), "http://127.0.0.1:9000/");
    assert_eq!(price.timeout, Duration::from_secs(60));
    assert_eq!(
        map.default_endpoint.as_ref().map(|e| e.url.as_str()),
        Some("http://127.0.0.1:9001/")
    );
}

#[test]
fn unknown_keys_in_a_function_map_are_rejected_with_their_place() {
    let message = load_error("functions:\n  f: { command: x, argz: [] }\n");
    assert!(message.contains("unknown field `argz`"), "{message}");
    assert!(message.contains(":2:"), "names the line: {message}");
    let message = load_error("functions: {}\ndefault_endpont: http://x\n");
    assert!(
        message.contains("unknown field `default_endpont`"),
        "{message}"
    );
}

#[test]
fn a_function_needs_exactly_one_of_command_and_endpoint() {
    let message = load_error("functions:\n  f: { args: [a] }\n");
    assert!(message.contains("needs `command`"), "{message}");
    let message = load_error("functions:\n  f: { command: x, endpoint: \"http://h\" }\n");
    assert!(
        message.contains("both `command` and `endpoint`"),
        "{message}"
    );
    let message = load_error("functions:\n  f: { endpoint: \"http://h\", env: {A: b} }\n");
    assert!(
        message.contains("`env` applies to a `command`"),
        "{message}"
    );
}

#[test]
fn bad_values_in_a_function_map_are_explained() {
    let message = load_error("functions:\n  f: { command: x, timeout: 30 }\n");
    assert!(
        message.contains("timeout") && message.contains("unit"),
        "{message}"
    );
    let message = load_error("functions:\n  f: { endpoint: \"ftp://h\" }\n");
    assert!(message.contains("http(s) URL"), "{message}");
    let message = load_error("functions:\n  f: { command: x, concurrency: 0 }\n");
    assert!(message.contains("at least 1"), "{message}");
    let message = load_error("default_endpoint: nowhere\n");
    assert!(message.contains("default_endpoint"), "{message}");
}

#[test]
fn a_missing_function_map_names_the_file() {
    let err = FunctionMap::load(Path::new("/nonexistent/functions.yaml")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/functions.yaml"),
        "{err}"
    );
}

#[tokio::test]
async fn the_lambda_runner_routes_each_function_where_the_map_says() {
    let endpoint = invoke_api_double().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_map(
        dir.path(),
        &format!(
            "functions:\n  worker: {{ command: {:?} }}\n  echo: {{ endpoint: {endpoint:?} }}\n",
            worker_binary().display().to_string()
        ),
    );
    let runner = LambdaRunner::new(FunctionMap::load(&path).unwrap()).unwrap();

    let out = runner
        .run(&lambda("worker", json!({"op": "sum", "values": [1, 2, 3]})))
        .await
        .unwrap();
    assert_eq!(out, json!({"total": 6}));

    let out = runner
        .run(&lambda("echo", json!({"via": "invoke api"})))
        .await
        .unwrap();
    assert_eq!(out, json!({"via": "invoke api"}));

    let err = runner
        .run(&lambda("elsewhere", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.error, "lambda.unknown_function");
    assert!(!err.retryable);
    assert!(err.message.contains("BRAID_LAMBDA_ENDPOINT"), "{err}");
    assert!(err.message.contains("functions.yaml"), "{err}");
}

#[tokio::test]
async fn unmapped_functions_go_to_the_default_endpoint() {
    let endpoint = invoke_api_double().await;
    let map = FunctionMap {
        default_endpoint: Some(EndpointSpec::new(endpoint.parse().unwrap())),
        ..FunctionMap::default()
    };
    let runner = LambdaRunner::new(map).unwrap();
    let out = runner
        .invoke("echo", &json!([1]), None, None)
        .await
        .unwrap();
    assert_eq!(out, json!([1]));
}
