//! The HTTP runner against a real HTTP server on 127.0.0.1.

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use braid_ports::{Invocation, Task, TaskError, TaskRunner};
use braid_runners::HttpRunner;
use indexmap::IndexMap;
use serde_json::{Value, json};
use std::time::Duration;

/// Serves the test routes on an ephemeral port; returns the base URL.
async fn serve() -> String {
    let app = Router::new()
        .route(
            "/json",
            get(|| async { axum::Json(json!({"total": 42, "items": [1, 2]})) }),
        )
        .route(
            "/text",
            get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "hello, world") }),
        )
        .route(
            "/status/{code}",
            any(
                |axum::extract::Path(code): axum::extract::Path<u16>| async move {
                    let status = StatusCode::from_u16(code).unwrap();
                    (status, format!("answered {code}"))
                },
            ),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/echo",
            post(|headers: HeaderMap, body: String| async move {
                let content_type = headers
                    .get(header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_string());
                let custom = headers
                    .get("x-custom")
                    .map(|v| v.to_str().unwrap().to_string());
                axum::Json(json!({"content_type": content_type, "custom": custom, "body": body}))
                    .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn get_task(url: String) -> Task {
    Task::Http {
        method: "GET".into(),
        url,
        headers: IndexMap::new(),
        json: None,
        body: None,
        timeout: None,
        expect: None,
    }
}

fn expecting(mut task: Task, codes: &[u16]) -> Task {
    if let Task::Http { expect, .. } = &mut task {
        *expect = Some(codes.to_vec());
    }
    task
}

async fn run(task: Task) -> Result<Value, TaskError> {
    HttpRunner::new().unwrap().run(&task).await
}

#[tokio::test]
async fn json_bodies_are_parsed() {
    let base = serve().await;
    let out = run(get_task(format!("{base}/json"))).await.unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], json!({"total": 42, "items": [1, 2]}));
    assert_eq!(out["headers"]["content-type"], "application/json");
}

#[tokio::test]
async fn text_bodies_stay_text() {
    let base = serve().await;
    let out = run(get_task(format!("{base}/text"))).await.unwrap();
    assert_eq!(out["body"], json!("hello, world"));
}

#[tokio::test]
async fn json_requests_send_json_with_the_given_headers() {
    let base = serve().await;
    let task = Task::Http {
        method: "post".into(),
        url: format!("{base}/echo"),
        headers: IndexMap::from([("X-Custom".to_string(), "yes".to_string())]),
        json: Some(json!({"a": 1})),
        body: None,
        timeout: None,
        expect: None,
    };
    let out = run(task).await.unwrap();
    assert_eq!(
        out["body"],
        json!({"content_type": "application/json", "custom": "yes", "body": "{\"a\":1}"})
    );
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let base = serve().await;
    let err = run(get_task(format!("{base}/status/503")))
        .await
        .unwrap_err();
    assert_eq!(err.error, "http.status_503");
    assert!(err.retryable);
    assert!(
        err.message.contains("returned 503 Service Unavailable"),
        "{}",
        err.message
    );
    assert!(err.message.contains("answered 503"), "{}", err.message);
}

#[tokio::test]
async fn not_found_is_not_retryable() {
    let base = serve().await;
    let err = run(get_task(format!("{base}/status/404")))
        .await
        .unwrap_err();
    assert_eq!(err.error, "http.status_404");
    assert!(!err.retryable);
}

#[tokio::test]
async fn throttling_and_request_timeouts_are_retryable() {
    let base = serve().await;
    for code in [429, 408] {
        let err = run(get_task(format!("{base}/status/{code}")))
            .await
            .unwrap_err();
        assert_eq!(err.error, format!("http.status_{code}"));
        assert!(err.retryable, "{code}");
    }
}

#[tokio::test]
async fn an_expected_status_succeeds_even_when_it_is_an_error() {
    let base = serve().await;
    let out = run(expecting(get_task(format!("{base}/status/404")), &[404]))
        .await
        .unwrap();
    assert_eq!(out["status"], 404);
    assert_eq!(out["body"], json!("answered 404"));
}

#[tokio::test]
async fn a_2xx_outside_expect_fails_for_good() {
    let base = serve().await;
    let err = run(expecting(get_task(format!("{base}/json")), &[201]))
        .await
        .unwrap_err();
    assert_eq!(err.error, "http.status_200");
    assert!(!err.retryable);
    assert!(err.message.contains("expected 201"), "{}", err.message);
}

#[tokio::test]
async fn a_slow_server_times_out_and_may_be_retried() {
    let base = serve().await;
    let mut task = get_task(format!("{base}/slow"));
    if let Task::Http { timeout, .. } = &mut task {
        *timeout = Some(Duration::from_millis(200));
    }
    let started = std::time::Instant::now();
    let err = run(task).await.unwrap_err();
    assert_eq!(err.error, "http.timeout");
    assert!(err.retryable);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_refused_connection_may_be_retried() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = run(get_task(format!("http://127.0.0.1:{port}/x?token=secret")))
        .await
        .unwrap_err();
    assert_eq!(err.error, "http.connect");
    assert!(err.retryable);
    assert!(!err.message.contains("secret"), "{}", err.message);
}

#[tokio::test]
async fn bad_requests_fail_without_retry() {
    let mut task = get_task("not a url".into());
    let err = run(task.clone()).await.unwrap_err();
    assert_eq!(err.error, "http.invalid_request");
    assert!(!err.retryable);
    if let Task::Http { url, method, .. } = &mut task {
        *url = "http://127.0.0.1:1/".into();
        *method = "NOT A METHOD".into();
    }
    let err = run(task).await.unwrap_err();
    assert_eq!(err.error, "http.invalid_request");
}

#[tokio::test]
async fn a_lambda_task_is_refused() {
    let err = run(Task::Lambda {
        function: "f".into(),
        payload: json!({}),
        invocation: Invocation::new("run", "f", 1),
        traceparent: None,
    })
    .await
    .unwrap_err();
    assert_eq!(err.error, "runner.unsupported_task");
    assert!(!err.retryable);
}
