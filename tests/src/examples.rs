//! The example workflows as fixtures: each with the input it runs with, and what it
//! needs — the example Lambda worker for `lambda` steps, an HTTP service for `http`
//! steps (a small httpbin look-alike served here, with deterministic answers).

use axum::Json;
use axum::routing::{get, post};
use braid_local::lambda::{FunctionMap, LambdaRunner};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One example run.
#[derive(Debug, Clone)]
pub struct Example {
    pub file: &'static str,
    pub input: Value,
}

/// Every example file that runs on its own, with the input it runs with. Two do not:
/// `sum-of-squares.yaml` needs its child registered first, and `release-gate.yaml`
/// waits for a person and a signal; what they do runs on both backends in
/// `aws_waiting.rs` and through `braid run` in `examples_run.rs`.
/// `{base_url}` in an input is the HTTP service's address.
pub fn all() -> Vec<Example> {
    let e = |file, input| Example { file, input };
    vec![
        e("branch-and-rejoin.yaml", json!({"amount": 2500})),
        e("guard-input.yaml", json!({"numbers": [3, 1, 2]})),
        e("hello.json", json!({})),
        e("hello.yaml", json!({"who": "Ada"})),
        e("http-check.yaml", json!({"base_url": "{base_url}"})),
        e("nightly-report.yaml", json!({})),
        e("orders.yaml", json!({})),
        e("retry-and-tolerate.yaml", json!({})),
        e("square.yaml", json!({"n": 12})),
    ]
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The example's source text.
pub fn source(file: &str) -> String {
    std::fs::read_to_string(examples_dir().join(file)).expect("the example exists")
}

/// The example worker binary, built once into this test's target folder.
pub fn worker_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| cargo_binary("braid-example-worker", "braid-example-worker"))
        .clone()
}

/// The `braid` command with its default features (the AWS backend included):
/// `BRAID_BIN` when set (`./scripts/test` points it at the one `cargo test --workspace`
/// built, which a build of braid-cli alone would build again with other features),
/// else built once into this test's target folder.
pub fn braid_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(
            || match std::env::var_os("BRAID_BIN").filter(|v| !v.is_empty()) {
                Some(path) => PathBuf::from(path),
                None => cargo_binary("braid-cli", "braid"),
            },
        )
        .clone()
}

/// Builds `package`'s binary `name` into this test's target folder and profile.
fn cargo_binary(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a profile folder");
    let target_dir = profile_dir.parent().expect("a target folder");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args([
            "build",
            "--quiet",
            "-p",
            package,
            "--bin",
            name,
            "--target-dir",
        ])
        .arg(target_dir);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    assert!(
        build.status().expect("cargo runs").success(),
        "building {package} failed"
    );
    profile_dir.join(name)
}

/// A `lambda` task runner that launches the example worker under the Lambda Runtime
/// API (the emulator cannot run Lambda functions without Docker).
pub fn worker_runner(dir: &Path) -> LambdaRunner {
    let path = worker_function_map(dir);
    LambdaRunner::new(FunctionMap::load(&path).expect("a valid function map")).expect("a runner")
}

/// Writes `dir/functions.yaml`, a function map running the example worker (`braid run
/// --functions`); returns its path.
pub fn worker_function_map(dir: &Path) -> PathBuf {
    let command = serde_json::to_string(&worker_binary().to_string_lossy()).unwrap();
    let path = dir.join("functions.yaml");
    std::fs::write(
        &path,
        format!(
            "functions:\n  braid-example-worker:\n    command: {command}\n    concurrency: 2\n"
        ),
    )
    .unwrap();
    path
}

/// Serves `GET /get` and `POST /post` like httpbin, with answers that do not depend
/// on the request's headers or time; returns its base URL.
pub async fn http_service() -> String {
    let app = axum::Router::new()
        .route(
            "/get",
            get(|| async { Json(json!({"args": {}, "url": "/get"})) }),
        )
        .route(
            "/post",
            post(|Json(body): Json<Value>| async move {
                Json(json!({"json": {"record": body["record"]}, "url": "/post"}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The example's input with the HTTP service's address filled in.
pub fn input_for(example: &Example, base_url: &str) -> Value {
    serde_json::from_str(&example.input.to_string().replace("{base_url}", base_url)).unwrap()
}
