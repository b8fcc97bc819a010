use super::*;
use crate::model::{ErrorInfo, RunId};
use chrono::TimeZone;

fn wf() -> Workflow {
    braid_lang::parse(
        "wf.yaml",
        r#"
name: shipping
notify:
  - on: [failed, timed_out]
    slack: { webhook_url: "https://hooks.example/a" }
  - on: [succeeded, waiting]
    webhook: { url: "https://example.com/b" }
steps:
  - id: deploy
    pass: 1
    notify:
      - on: [failed]
        webhook: { url: "https://example.com/c" }
  - id: gate
    needs: [deploy]
    approval: { message: "Ship?" }
    notify:
      - on: [waiting]
        slack: { webhook_url: "https://hooks.example/d" }
"#,
    )
    .unwrap()
}

fn event(kind: EventKind, status: &str, step: Option<&str>) -> LifecycleEvent {
    LifecycleEvent {
        kind,
        run_id: RunId::new("01RUN"),
        workflow: "shipping".into(),
        status: status.into(),
        step: step.map(str::to_string),
        error: None,
        trigger: None,
        detail: None,
        at: chrono::Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap(),
        notices: Vec::new(),
    }
}

fn refs(v: &[NoticeRef]) -> Vec<(Option<&str>, usize, &str)> {
    v.iter()
        .map(|r| (r.step.as_deref(), r.index, r.on.as_str()))
        .collect()
}

#[test]
fn each_event_calls_for_the_entries_naming_its_status() {
    let wf = wf();
    let of = |kind, status, step| wanted(&wf, &event(kind, status, step));
    assert_eq!(
        refs(&of(EventKind::RunFinished, "failed", None)),
        [(None, 0, "failed")]
    );
    assert_eq!(
        refs(&of(EventKind::RunFinished, "succeeded", None)),
        [(None, 1, "succeeded")]
    );
    assert!(of(EventKind::RunFinished, "cancelled", None).is_empty());
    assert!(of(EventKind::RunStarted, "running", None).is_empty());
    assert_eq!(
        refs(&of(EventKind::StepFinished, "failed", Some("deploy"))),
        [(Some("deploy"), 0, "failed")],
        "a step's failure is its own entries' business, not the run's"
    );
    assert!(of(EventKind::StepFinished, "failed", Some("deploy[2]")).is_empty());
    assert_eq!(
        refs(&of(EventKind::StepWaiting, "waiting", Some("gate"))),
        [(None, 1, "waiting"), (Some("gate"), 0, "waiting")]
    );
    assert!(step_end_wanted(&wf, "deploy", "failed"));
    assert!(!step_end_wanted(&wf, "deploy", "succeeded"));
}

#[test]
fn a_slack_message_tells_the_failure_and_offers_an_approvals_links() {
    let mut failed = event(EventKind::RunFinished, "failed", None);
    failed.error = Some(ErrorInfo::new("http.500", "step `deploy` failed: boom"));
    let m = slack_message(&failed, Some(Duration::from_secs(192)));
    assert_eq!(m["text"], "❌ shipping failed");
    let text = m.to_string();
    assert!(text.contains("*Run*\\n`01RUN`"), "{text}");
    assert!(text.contains("*Duration*\\n3m12s"), "{text}");
    assert!(
        text.contains("```http.500: step `deploy` failed: boom```"),
        "{text}"
    );

    let mut waiting = event(EventKind::StepWaiting, "waiting", Some("gate"));
    waiting.detail = Some(json!({"for": "approval", "message": "Ship?",
        "approve_url": "https://x/approve", "reject_url": "https://x/reject"}));
    let m = slack_message(&waiting, None);
    assert_eq!(m["text"], "⏳ shipping step `gate` is waiting");
    let actions = m["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons");
    assert_eq!(actions["elements"][0]["url"], "https://x/approve");
    assert_eq!(actions["elements"][1]["url"], "https://x/reject");
}

#[test]
fn a_webhook_body_is_the_event_without_its_routing() {
    let mut e = event(EventKind::RunFinished, "succeeded", None);
    e.notices = vec![NoticeRef {
        step: None,
        index: 1,
        on: "succeeded".into(),
    }];
    let body = webhook_body(&e);
    assert_eq!(body["type"], Value::Null);
    assert_eq!(body["status"], "succeeded");
    assert!(body.get("notices").is_none());
}

#[test]
fn retries_and_sla_misses_call_for_the_entries_naming_them() {
    let wf = braid_lang::parse(
        "wf.yaml",
        r#"
name: nightly
sla: { run: 30m, steps: { load: 5m } }
notify:
  - on: [sla_missed]
    slack: { webhook_url: "https://hooks.example/a" }
steps:
  - id: load
    pass: 1
    notify:
      - on: [retrying, sla_missed]
        webhook: { url: "https://example.com/b" }
"#,
    )
    .unwrap();
    let of = |kind, step| wanted(&wf, &event(kind, "running", step));
    assert_eq!(
        refs(&of(EventKind::StepRetrying, Some("load"))),
        [(Some("load"), 0, "retrying")]
    );
    assert_eq!(
        refs(&of(EventKind::SlaMissed, None)),
        [(None, 0, "sla_missed")]
    );
    assert_eq!(
        refs(&of(EventKind::SlaMissed, Some("load"))),
        [(None, 0, "sla_missed"), (Some("load"), 0, "sla_missed")]
    );
}

#[test]
fn a_slack_message_names_a_missed_sla_and_a_retry() {
    let mut missed = event(EventKind::SlaMissed, "running", Some("load"));
    missed.detail = Some(json!({"sla": "5m", "due": "2026-12-07T01:05:00Z"}));
    assert_eq!(
        slack_message(&missed, None)["text"],
        "⏰ shipping step `load` missed its SLA (5m)"
    );
    let mut run = event(EventKind::SlaMissed, "running", None);
    run.detail = Some(json!({"sla": "30m"}));
    assert_eq!(
        slack_message(&run, None)["text"],
        "⏰ shipping run missed its SLA (30m)"
    );
    let mut retrying = event(EventKind::StepRetrying, "retrying", Some("load"));
    retrying.error = Some(ErrorInfo::new("http.503", "unavailable"));
    let m = slack_message(&retrying, None);
    assert_eq!(m["text"], "🔁 shipping step `load` failed and will retry");
    assert!(m.to_string().contains("http.503: unavailable"));
}

#[test]
fn a_bots_messages_of_a_run_are_threaded_under_its_first_per_channel() {
    let at = chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let log = |channel: &str, ts: &str| NoticeLog {
        at,
        on: "failed".into(),
        step: None,
        target: "slack".into(),
        sent: true,
        tries: 1,
        error: None,
        thread: Some(SlackThread {
            channel: channel.into(),
            ts: ts.into(),
        }),
    };
    let notices = [log("#ops", "1.1"), log("#dev", "2.2"), log("#ops", "1.1")];
    assert_eq!(slack_thread(&notices, "#ops"), Some("1.1"));
    assert_eq!(slack_thread(&notices, "#dev"), Some("2.2"));
    assert_eq!(slack_thread(&notices, "#other"), None);

    let body = slack_post(json!({"text": "t", "blocks": []}), "#ops", Some("1.1"));
    assert_eq!(body["channel"], "#ops");
    assert_eq!(body["thread_ts"], "1.1");
    assert!(
        slack_post(json!({"text": "t"}), "#ops", None)
            .get("thread_ts")
            .is_none()
    );
}

#[test]
fn a_slack_answer_names_the_thread_or_why_it_was_refused() {
    let first = slack_answer(
        &json!({"ok": true, "ts": "9.9", "channel": "C1"}),
        "#ops",
        None,
    );
    assert_eq!(
        first.unwrap().ts,
        "9.9",
        "a first message starts the thread"
    );
    let reply = slack_answer(&json!({"ok": true, "ts": "9.10"}), "#ops", Some("9.9"));
    assert_eq!(reply.unwrap().ts, "9.9", "a reply stays in it");
    let refused = slack_answer(
        &json!({"ok": false, "error": "not_in_channel"}),
        "#ops",
        None,
    );
    assert_eq!(
        refused,
        Err(SlackRefusal {
            error: "not_in_channel".into(),
            retryable: false
        })
    );
    let trouble = slack_answer(
        &json!({"ok": false, "error": "internal_error"}),
        "#ops",
        None,
    );
    assert!(trouble.unwrap_err().retryable);
    assert!(slack_answer(&json!("not json object"), "#ops", None).is_err());
}
