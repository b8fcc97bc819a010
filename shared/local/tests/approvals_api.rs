//! Ending waits through the HTTP API on the embedded backend: approve and reject,
//! signals, and the signed approval links — valid once, refused when forged, altered,
//! expired or used.

mod common;

use braid_engine::model::{EventKind, RunId, RunStatus};
use braid_handlers::{ApiRequest, ApiResponse, HTML};
use braid_local::link_key;
use common::{Bench, Events};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const GATED: &str = r#"
name: gated
steps:
  - id: manager
    approval: { message: "Ship <it>?", timeout: 1h }
  - id: smoke
    needs: [manager]
    signal: { name: smoke-passed }
output: { who: "{{ steps.manager.output.by }}", smoke: "{{ steps.smoke.output }}" }
"#;

const BASE: &str = "http://braid.test";

/// A bench whose approvals get links (base URL set, key made), and its events.
async fn linked() -> (Bench, Arc<Events>) {
    let events = Arc::new(Events::default());
    let e = events.clone();
    let b = Bench::with(
        |o| o.settings.api_base_url = Some(BASE.into()),
        move |p| p.events = e,
    );
    link_key::ensure(&*b.handlers().ports().secrets, b.dir())
        .await
        .unwrap();
    (b, events)
}

async fn waiting_run(b: &Bench) -> RunId {
    let id = b.start(GATED).await;
    b.deliver_all().await;
    id
}

async fn call(b: &Bench, method: &str, path: &str, body: Option<Value>) -> ApiResponse {
    let req = ApiRequest {
        method: method.into(),
        path: path.into(),
        body: body.map(|b| b.to_string()),
        principal: Some("arn:aws:iam::123456789012:user/ana".into()),
        ..ApiRequest::default()
    };
    b.handlers().api(&req).await
}

/// The link's path (what follows the base URL).
fn path_of(url: &Value) -> String {
    url.as_str()
        .unwrap()
        .strip_prefix(BASE)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn approve_by_api_records_the_caller_and_the_run_goes_on_by_signal() {
    let (b, _) = linked().await;
    let id = waiting_run(&b).await;
    let r = call(
        &b,
        "POST",
        &format!("/runs/{id}/steps/manager/approve"),
        Some(json!({"comment": "ok", "by": "mallory"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "succeeded");
    assert_eq!(
        r.body["output"]["by"], "arn:aws:iam::123456789012:user/ana",
        "an authenticated caller cannot claim another name"
    );
    assert_eq!(r.body["output"]["comment"], "ok");
    b.deliver_all().await;

    let r = call(
        &b,
        "POST",
        &format!("/runs/{id}/signals/smoke-passed"),
        Some(json!({"data": {"green": true}, "id": "ci-1"})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["ended"], json!(["smoke"]));
    assert_eq!(r.body["id"], "ci-1");
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Succeeded);

    // The audit trail names the authenticated caller of each, in order.
    let r = call(&b, "GET", "/audit", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let told: Vec<_> = r.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
                e["step"]
                    .as_str()
                    .or(e["detail"].as_str())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let ana = "arn:aws:iam::123456789012:user/ana";
    assert_eq!(
        told,
        [
            (
                "approve".to_string(),
                ana.to_string(),
                "manager".to_string()
            ),
            (
                "signal".to_string(),
                ana.to_string(),
                "smoke-passed".to_string()
            ),
        ]
    );
    let bad_since = ApiRequest {
        method: "GET".into(),
        path: "/audit".into(),
        query: [("since".to_string(), "tomorrow".to_string())].into(),
        ..ApiRequest::default()
    };
    let r = b.handlers().api(&bad_since).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.to_string().contains("since `tomorrow`"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn reject_by_api_fails_the_step_and_a_second_decision_is_a_conflict() {
    let (b, _) = linked().await;
    let id = waiting_run(&b).await;
    let path = format!("/runs/{id}/steps/manager/reject");
    let r = call(&b, "POST", &path, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "failed");
    assert_eq!(r.body["error"]["error"], "approval.rejected");
    let again = call(&b, "POST", &path, None).await;
    assert_eq!(
        (again.status, &again.body["error"]),
        (409, &json!("conflict"))
    );
}

#[tokio::test]
async fn unknown_runs_steps_and_signals_are_404_and_bad_bodies_400() {
    let (b, _) = linked().await;
    let id = waiting_run(&b).await;
    let cases = [
        ("/runs/nope/steps/manager/approve".to_string(), None, 404),
        (format!("/runs/{id}/steps/nope/approve"), None, 404),
        (
            format!("/runs/{id}/signals/nope"),
            Some(json!({"data": 1})),
            404,
        ),
        (format!("/runs/{id}/steps/smoke/approve"), None, 400),
        (
            format!("/runs/{id}/steps/manager/approve"),
            Some(json!({"coment": "x"})),
            400,
        ),
        (
            format!("/runs/{id}/signals/smoke-passed"),
            Some(json!({"data": 1, "id": "a"})),
            202,
        ),
        (
            format!("/runs/{id}/signals/smoke-passed"),
            Some(json!({"data": 2, "id": "b"})),
            409,
        ),
    ];
    for (path, body, status) in cases {
        let r = call(&b, "POST", &path, body).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn a_link_shows_a_page_then_decides_once() {
    let (b, events) = linked().await;
    let id = waiting_run(&b).await;
    let waiting = events.of(EventKind::StepWaiting);
    let detail = waiting[0].detail.clone().unwrap();
    let view = b.handlers().run_view(&id).await.unwrap();
    let shown = view.steps["manager"].waiting.clone().unwrap();
    assert_eq!(
        shown["approve_url"], detail["approve_url"],
        "the view shows the links"
    );
    let approve = path_of(&detail["approve_url"]);
    assert!(approve.starts_with("/approvals/"), "{approve}");

    let page = call(&b, "GET", &approve, None).await;
    assert_eq!((page.status, page.content_type), (200, HTML));
    let html = page.text();
    assert!(html.contains("<form method=\"post\">"), "{html}");
    assert!(
        html.contains("Ship &lt;it&gt;?"),
        "the message is escaped: {html}"
    );

    let decided = call(&b, "POST", &approve, None).await;
    assert_eq!(decided.status, 200, "{}", decided.text());
    let view = b.handlers().run_view(&id).await.unwrap();
    assert_eq!(view.steps["manager"].output["by"], "link");

    for (method, path) in [
        ("POST", approve.clone()),
        ("GET", approve),
        ("POST", path_of(&detail["reject_url"])),
    ] {
        let r = call(&b, method, &path, None).await;
        assert_eq!(r.status, 410, "{method} after the decision: {}", r.body);
        assert!(r.body["message"].as_str().unwrap().contains("used"));
    }
}

#[tokio::test]
async fn forged_or_altered_links_are_401() {
    let (b, events) = linked().await;
    waiting_run(&b).await;
    let detail = events.of(EventKind::StepWaiting)[0].detail.clone().unwrap();
    let approve = path_of(&detail["approve_url"]);
    let reject = path_of(&detail["reject_url"]);
    let (approve_claims, approve_tag) = approve.rsplit_once('.').unwrap();
    let (reject_claims, _) = reject.rsplit_once('.').unwrap();
    let swapped = format!("{reject_claims}.{approve_tag}");
    let other = if approve_tag.starts_with('A') {
        "B"
    } else {
        "A"
    };
    let flipped = format!("{approve_claims}.{other}{}", &approve_tag[1..]);
    for path in [
        swapped,
        flipped,
        "/approvals/nothing".into(),
        "/approvals/a.b".into(),
    ] {
        let r = call(&b, "POST", &path, None).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn an_expired_link_is_410() {
    let (b, events) = linked().await;
    waiting_run(&b).await;
    let detail = events.of(EventKind::StepWaiting)[0].detail.clone().unwrap();
    b.clock.advance(Duration::from_secs(3600 + 1));
    let r = call(&b, "GET", &path_of(&detail["approve_url"]), None).await;
    assert_eq!(r.status, 410, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn handlers_given_no_url_link_to_the_one_their_requests_reach() {
    let b = Bench::new(|_| {});
    link_key::ensure(&*b.handlers().ports().secrets, b.dir())
        .await
        .unwrap();
    let id = waiting_run(&b).await;
    let req = ApiRequest {
        method: "GET".into(),
        path: format!("/runs/{id}"),
        base_url: Some("https://api.example".into()),
        ..ApiRequest::default()
    };
    let r = b.handlers().api(&req).await;
    let url = r.body["steps"]["manager"]["waiting"]["approve_url"].as_str();
    assert!(
        url.is_some_and(|u| u.starts_with("https://api.example/approvals/")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn without_a_base_url_there_are_no_links() {
    let b = Bench::new(|_| {});
    let id = waiting_run(&b).await;
    let view = b.handlers().run_view(&id).await.unwrap();
    let waiting = view.steps["manager"].waiting.clone().unwrap();
    assert!(waiting.get("approve_url").is_none(), "{waiting}");
    assert_eq!(waiting["approve"], format!("braid approve {id} manager"));
}
