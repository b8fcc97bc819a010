//! The HTTP API's routes on the embedded backend: what `POST /runs`, `GET /runs` and
//! `GET /runs/{id}` answer, and the errors they give.

use braid_handlers::{ApiRequest, ApiResponse, definition};
use braid_local::backend::{LocalOptions, open};
use braid_local::runtime::LocalRuntime;
use serde_json::{Value, json};
use std::collections::HashMap;

const WORKFLOW: &str = "name: greet\nparams:\n  who: {type: string}\nsteps:\n  - id: hello\n    http: {url: 'http://127.0.0.1:1/'}\n";

fn runtime(dir: &std::path::Path) -> LocalRuntime {
    open(&LocalOptions::new(dir)).unwrap()
}

async fn registered(rt: &LocalRuntime) {
    let (def, _) = definition("greet.yaml", WORKFLOW).unwrap();
    rt.handlers()
        .ports()
        .store
        .put_definition(&def)
        .await
        .unwrap();
}

fn request(method: &str, path: &str, body: Option<Value>) -> ApiRequest {
    ApiRequest {
        method: method.into(),
        path: path.into(),
        query: HashMap::new(),
        headers: Vec::new(),
        body: body.map(|b| b.to_string()),
        principal: None,
        base_url: None,
    }
}

fn error_of(r: &ApiResponse) -> (u16, &str, &str) {
    (
        r.status,
        r.body["error"].as_str().unwrap(),
        r.body["message"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn post_runs_starts_the_current_definition_once_per_idempotency_key() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    registered(&rt).await;
    let body = json!({"workflow": "greet", "input": {"who": "ada"}, "idempotency_key": "k1"});
    let first = rt
        .handlers()
        .api(&request("POST", "/runs", Some(body.clone())))
        .await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let run_id = first.body["run_id"].as_str().unwrap().to_string();
    assert_eq!(first.body["status"], "running");
    let again = rt
        .handlers()
        .api(&request("POST", "/runs", Some(body)))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["run_id"], run_id.as_str());

    let shown = rt
        .handlers()
        .api(&request("GET", &format!("/runs/{run_id}"), None))
        .await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["workflow"], "greet");
    assert!(shown.body["steps"]["hello"].is_object());

    let mut list = request("GET", "/runs", None);
    list.query.insert("workflow".into(), "greet".into());
    let listed = rt.handlers().api(&list).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["runs"][0]["run_id"], run_id.as_str());
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_input_or_empty_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    registered(&rt).await;
    let start = |who: &str, key: &str| {
        request(
            "POST",
            "/runs",
            Some(json!({"workflow": "greet", "input": {"who": who}, "idempotency_key": key})),
        )
    };
    let first = rt.handlers().api(&start("ada", "k1")).await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let run_id = first.body["run_id"].as_str().unwrap().to_string();
    let other = rt.handlers().api(&start("bob", "k1")).await;
    assert_eq!(other.status, 409, "{:?}", other.body);
    let message = other.body["message"].as_str().unwrap();
    assert!(
        message.contains(&run_id) && message.contains("another input"),
        "{message}"
    );
    let empty = rt.handlers().api(&start("ada", " ")).await;
    assert_eq!(empty.status, 400, "{:?}", empty.body);
}

#[tokio::test]
async fn bad_requests_say_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    registered(&rt).await;
    let h = rt.handlers();

    let r = h
        .api(&request("POST", "/runs", Some(json!({"workflow": "nope"}))))
        .await;
    assert_eq!(error_of(&r).0, 404);
    assert!(
        error_of(&r).2.contains("workflow `nope` is not registered"),
        "{:?}",
        r.body
    );

    let r = h
        .api(&request(
            "POST",
            "/runs",
            Some(json!({"workflow": "greet", "inptu": {}})),
        ))
        .await;
    let (status, error, message) = error_of(&r);
    assert_eq!((status, error), (400, "invalid_request"));
    assert!(message.contains("unknown field `inptu`"), "{message}");

    let r = h
        .api(&request(
            "POST",
            "/runs",
            Some(json!({"workflow": "greet", "input": {"who": 5}})),
        ))
        .await;
    let (status, _, message) = error_of(&r);
    assert_eq!(status, 400);
    assert!(
        message.contains("invalid input for workflow `greet`"),
        "{message}"
    );

    let r = h.api(&request("GET", "/runs/01nosuchrun", None)).await;
    assert_eq!(error_of(&r).0, 404);

    let mut list = request("GET", "/runs", None);
    list.query.insert("status".into(), "done".into());
    assert!(error_of(&h.api(&list).await).2.contains("status `done`"));

    let r = h.api(&request("DELETE", "/runs", None)).await;
    assert_eq!(error_of(&r).0, 405);
    let r = h.api(&request("GET", "/elsewhere", None)).await;
    assert_eq!(error_of(&r).0, 404);
}

#[tokio::test]
async fn a_failed_run_is_retried_forked_and_its_attempts_listed_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    registered(&rt).await;
    let h = rt.handlers();
    let started = h
        .api(&request(
            "POST",
            "/runs",
            Some(json!({"workflow": "greet", "input": {"who": "ada"}})),
        ))
        .await;
    let id = started.body["run_id"].as_str().unwrap().to_string();
    rt.run_to_end(&id.as_str().into()).await.unwrap();

    let logs = h
        .api(&request("GET", &format!("/runs/{id}/logs"), None))
        .await;
    assert_eq!(logs.status, 200);
    assert_eq!(logs.body["status"], "failed");
    let events: Vec<&str> = logs.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["started", "ended"]);

    let bad = h
        .api(&request(
            "POST",
            &format!("/runs/{id}/retry"),
            Some(json!({"input": {}})),
        ))
        .await;
    assert_eq!(error_of(&bad).0, 400);
    let forked = h
        .api(&request(
            "POST",
            &format!("/runs/{id}/retry"),
            Some(json!({"new": true, "input": {"who": "bo"}, "by": "ana"})),
        ))
        .await;
    assert_eq!(forked.status, 202, "{:?}", forked.body);
    assert_eq!(forked.body["forked_from"]["run"], id.as_str());
    assert_ne!(forked.body["run_id"], id.as_str());
    let retried = h
        .api(&request(
            "POST",
            &format!("/runs/{id}/retry"),
            Some(json!({"by": "ana"})),
        ))
        .await;
    assert_eq!(retried.status, 202, "{:?}", retried.body);
    assert_eq!(retried.body["status"], "running");
    assert_eq!(retried.body["retry"]["by"], "ana");
    let again = h
        .api(&request("POST", &format!("/runs/{id}/retry"), None))
        .await;
    assert_eq!(error_of(&again).0, 409);
}
