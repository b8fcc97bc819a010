//! A run's trace, exported over OTLP to a collector in the test: one root span for the
//! run, one span per attempt under it, a child run's spans under the attempt that
//! started it, and the attempt's `traceparent` handed to the HTTP and Lambda calls it
//! made.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use common::worker_map;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Seen {
    spans: Arc<Mutex<Vec<Span>>>,
    /// The `traceparent` of each call to `/flaky`, in order.
    parents: Arc<Mutex<Vec<String>>>,
}

async fn collect(State(seen): State<Seen>, body: Bytes) -> StatusCode {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut spans = seen.spans.lock().unwrap();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            spans.extend(scope.spans);
        }
    }
    StatusCode::OK
}

/// Fails its first call, answers the next.
async fn flaky(State(seen): State<Seen>, headers: HeaderMap) -> StatusCode {
    let parent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut parents = seen.parents.lock().unwrap();
    parents.push(parent);
    if parents.len() == 1 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

fn attribute(span: &Span, key: &str) -> String {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref());
    match value {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        other => panic!("span {} has no {key}: {other:?}", span.name),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_trace_has_a_span_per_attempt_under_the_run_and_calls_carry_it() {
    let seen = Seen::default();
    let app = Router::new()
        .route("/v1/traces", post(collect))
        .route("/flaky", get(flaky))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let map = worker_map(dir.path());
    std::fs::write(
        dir.path().join("wf.yaml"),
        format!(
            "name: traced\nsteps:\n  - id: prep\n    pass: 1\n  - id: call\n    needs: [prep]\n    http: {{ url: \"{base}/flaky\" }}\n    retry: {{ attempts: 2, backoff: 100ms }}\n  - id: work\n    needs: [call]\n    lambda: braid-example-worker\n    input: {{ op: echo }}\n  - id: sub\n    needs: [work]\n    workflow: traced-child\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("child.yaml"),
        "name: traced-child\nsteps:\n  - id: inner\n    pass: 2\n",
    )
    .unwrap();
    let braid = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
        cmd.args(args)
            .arg("--state")
            .arg(dir.path().join("state"))
            .current_dir(dir.path())
            .env_remove("BRAID_FUNCTIONS")
            .env_remove("OTEL_SERVICE_NAME")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &base)
            .stdin(Stdio::null());
        cmd
    };
    let mut deploy = braid(&["deploy", "child.yaml"]);
    let deployed = tokio::task::spawn_blocking(move || deploy.output().unwrap())
        .await
        .unwrap();
    assert_eq!(deployed.status.code(), Some(0), "{deployed:?}");
    let functions = map.to_string_lossy().into_owned();
    let mut run = braid(&[
        "run",
        "wf.yaml",
        "--functions",
        &functions,
        "--output",
        "json",
    ]);
    let out = tokio::task::spawn_blocking(move || run.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = view["run_id"].as_str().unwrap().to_string();

    // Exported before `braid run` exits.
    let all = seen.spans.lock().unwrap().clone();
    let roots: Vec<&Span> = all.iter().filter(|s| s.parent_span_id.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root span: {all:#?}");
    let root = roots[0];
    assert_eq!(root.name, "run traced");
    assert_eq!(attribute(root, "braid.run_id"), run_id);
    // The child run's spans: in the same trace, its root under the `sub` attempt.
    let (child, spans): (Vec<Span>, Vec<Span>) = all
        .iter()
        .cloned()
        .partition(|s| attribute(s, "braid.workflow") == "traced-child");
    assert_eq!(child.len(), 2, "{child:#?}");
    let child_root = child.iter().find(|s| s.name == "run traced-child").unwrap();
    let inner = child.iter().find(|s| s.name == "pass inner").unwrap();
    assert_eq!(child_root.trace_id, root.trace_id);
    assert_eq!(inner.trace_id, root.trace_id);
    assert_eq!(inner.parent_span_id, child_root.span_id);
    let mut attempts: Vec<(String, String)> = spans
        .iter()
        .filter(|s| !s.parent_span_id.is_empty())
        .map(|s| {
            assert_eq!(
                s.trace_id, root.trace_id,
                "{} is in the run's trace",
                s.name
            );
            assert_eq!(
                s.parent_span_id, root.span_id,
                "{} is under the run",
                s.name
            );
            assert!(s.start_time_unix_nano <= s.end_time_unix_nano);
            (attribute(s, "braid.step"), attribute(s, "braid.attempt"))
        })
        .collect();
    attempts.sort();
    let expected = [
        ("call", "1"),
        ("call", "2"),
        ("prep", "1"),
        ("sub", "1"),
        ("work", "1"),
    ];
    assert_eq!(
        attempts,
        expected.map(|(s, a)| (s.to_string(), a.to_string())),
        "one span per attempt"
    );
    let span_of = |step: &str, attempt: &str| {
        spans
            .iter()
            .find(|s| {
                !s.parent_span_id.is_empty()
                    && attribute(s, "braid.step") == step
                    && attribute(s, "braid.attempt") == attempt
            })
            .unwrap()
    };
    assert_eq!(
        child_root.parent_span_id,
        span_of("sub", "1").span_id,
        "the child run sits under the attempt that started it"
    );
    let failed = span_of("call", "1");
    assert_eq!(failed.status.as_ref().unwrap().code, 2, "an error status");
    assert_eq!(failed.name, "http call");

    // Each HTTP call carried its own attempt's span as its parent.
    let trace = hex(&root.trace_id);
    let parents = seen.parents.lock().unwrap().clone();
    assert_eq!(
        parents,
        ["1", "2"].map(|a| format!("00-{trace}-{}-01", hex(&span_of("call", a).span_id))),
    );

    // The function got it in its client context, and logged it.
    let mut logs = braid(&["logs", &run_id, "--step", "work"]);
    let logs = tokio::task::spawn_blocking(move || logs.output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&logs.stdout);
    let work = format!("00-{trace}-{}-01", hex(&span_of("work", "1").span_id));
    assert!(text.contains(&work), "no {work} in:\n{text}");
}
