//! Notifications: which `notify` entries a lifecycle event calls for ([`wanted`]), and
//! what the messages say ([`slack_message`], [`webhook_body`]). Pure: the handlers
//! attach the entries to the event they publish, and the notifier renders the target
//! (its secrets), sends, and records how it went.
//!
//! | event | a workflow's entries with | a step's entries with |
//! |---|---|---|
//! | `run.started` | `started` | — |
//! | `run.finished` | the run's status | — |
//! | `step.finished` of a step (not an iteration) | — | the step's status |
//! | `step.waiting` | `waiting` | `waiting` |
//! | `step.retrying` of a step (not an iteration) | `retrying` | `retrying` |
//! | `sla.missed` of the run / of a step | `sla_missed` | — / `sla_missed` |

use crate::model::{EventKind, LifecycleEvent, NoticeLog, SlackThread};
use braid_lang::Workflow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

/// One `notify` entry an event calls for: the workflow's (`step` none) or a step's,
/// by its place in that list, and the status it was named for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub index: usize,
    pub on: String,
}

/// The `notify` entries of `wf` that `e` calls for, the workflow's first.
pub fn wanted(wf: &Workflow, e: &LifecycleEvent) -> Vec<NoticeRef> {
    let (run_status, step_status) = match e.kind {
        EventKind::RunStarted => (Some("started"), None),
        EventKind::RunFinished => (Some(e.status.as_str()), None),
        EventKind::StepFinished => (None, Some(e.status.as_str())),
        EventKind::StepWaiting => (Some("waiting"), Some("waiting")),
        EventKind::StepRetrying => (Some("retrying"), Some("retrying")),
        EventKind::SlaMissed => (Some("sla_missed"), Some("sla_missed")),
        EventKind::StepDecided => (None, None),
    };
    let mut out = Vec::new();
    if let Some(status) = run_status {
        for (index, n) in wf.notify.iter().enumerate() {
            if n.on.iter().any(|o| o == status) {
                out.push(NoticeRef {
                    step: None,
                    index,
                    on: status.to_string(),
                });
            }
        }
    }
    // An iteration's events name `step[i]`, which is no step of the workflow.
    if let (Some(status), Some(step)) = (step_status, e.step.as_deref().and_then(|s| wf.step(s))) {
        for (index, n) in step.notify.iter().enumerate() {
            if n.on.iter().any(|o| o == status) {
                out.push(NoticeRef {
                    step: Some(step.id.clone()),
                    index,
                    on: status.to_string(),
                });
            }
        }
    }
    out
}

/// Whether a step's end with `status` is wanted by one of its own `notify` entries,
/// so it must be published even where step ends are not by default.
pub fn step_end_wanted(wf: &Workflow, step: &str, status: &str) -> bool {
    wf.step(step)
        .is_some_and(|s| s.notify.iter().any(|n| n.on.iter().any(|o| o == status)))
}

/// The most characters of an error quoted in a Slack message (a section's text may
/// hold 3,000).
const MAX_ERROR_CHARS: usize = 2_000;

/// A Slack message (Block Kit, with a `text` fallback) telling `e`; `took`, how long
/// the run ran, for a run's end. An approval's links become buttons.
pub fn slack_message(e: &LifecycleEvent, took: Option<Duration>) -> Value {
    let mark = match (e.kind, e.status.as_str()) {
        (EventKind::SlaMissed, _) => "⏰",
        (EventKind::StepRetrying, _) => "🔁",
        (_, "succeeded") => "✅",
        (_, "failed" | "timed_out") => "❌",
        (_, "cancelled") => "⏹",
        (_, "waiting") => "⏳",
        _ => "▶",
    };
    let sla = e.detail.as_ref().and_then(|d| d["sla"].as_str());
    let what = match (e.kind, e.step.as_deref()) {
        (EventKind::StepWaiting, Some(step)) => format!("step `{step}` is waiting"),
        (EventKind::StepRetrying, Some(step)) => format!("step `{step}` failed and will retry"),
        (EventKind::SlaMissed, Some(step)) => {
            format!("step `{step}` missed its SLA ({})", sla.unwrap_or("?"))
        }
        (EventKind::SlaMissed, None) => format!("run missed its SLA ({})", sla.unwrap_or("?")),
        (_, Some(step)) => format!("step `{step}` {}", e.status),
        (_, None) => e.status.clone(),
    };
    let title = format!("{mark} {} {what}", e.workflow);
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Run*\n`{}`", e.run_id)}),
        json!({"type": "mrkdwn", "text": format!("*Status*\n{}", e.status)}),
    ];
    if let Some(t) = took {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Duration*\n{}", braid_lang::format_duration(t))}));
    }
    if let Some(step) = &e.step {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Step*\n`{step}`")}));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&title, 150), "emoji": true}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(err) = &e.error {
        let text = cut(&format!("{}: {}", err.error, err.message), MAX_ERROR_CHARS);
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{text}```")}}),
        );
    }
    let detail = e.detail.as_ref();
    if let Some(message) = detail.and_then(|d| d["message"].as_str()) {
        blocks.push(json!({"type": "section", "text": {"type": "plain_text", "text": cut(message, MAX_ERROR_CHARS)}}));
    }
    let buttons: Vec<Value> = [
        ("Approve", "approve_url", "primary"),
        ("Reject", "reject_url", "danger"),
    ]
    .iter()
    .filter_map(|(label, key, style)| {
        let url = detail.and_then(|d| d[*key].as_str())?;
        Some(
            json!({"type": "button", "text": {"type": "plain_text", "text": label},
                "style": style, "url": url, "action_id": key}),
        )
    })
    .collect();
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": format!("Braid · workflow `{}` · {}", e.workflow, e.at.format("%Y-%m-%d %H:%M:%SZ"))}]}));
    json!({"text": title, "blocks": blocks})
}

/// The thread a run's next Slack message to `channel` goes under: that of the first
/// message a bot posted there for the run (from the run's notice log).
pub fn slack_thread<'a>(log: &'a [NoticeLog], channel: &str) -> Option<&'a str> {
    log.iter()
        .filter_map(|n| n.thread.as_ref())
        .find(|t| t.channel == channel)
        .map(|t| t.ts.as_str())
}

/// The body of a `chat.postMessage` call posting `message` ([`slack_message`]) to
/// `channel`, under `thread` when the run has one there.
pub fn slack_post(message: Value, channel: &str, thread: Option<&str>) -> Value {
    let mut body = message;
    body["channel"] = json!(channel);
    if let Some(ts) = thread {
        body["thread_ts"] = json!(ts);
    }
    body
}

/// Why Slack's Web API refused a call that it answered with a 2xx: it says `ok: false`
/// with an `error` code in the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlackRefusal {
    pub error: String,
    /// Slack's own trouble, which a later try may not meet; a bad token, a channel
    /// the bot is not in, and the like are not.
    pub retryable: bool,
}

/// What a `chat.postMessage` answer means: the thread the message started or joined
/// (its `thread_ts` when it replied, else its own `ts`), or why it was refused.
pub fn slack_answer(
    body: &Value,
    channel: &str,
    thread: Option<&str>,
) -> Result<SlackThread, SlackRefusal> {
    if body["ok"] != json!(true) {
        let error = body["error"].as_str().unwrap_or("no `ok` in the answer");
        return Err(SlackRefusal {
            error: error.to_string(),
            retryable: matches!(
                error,
                "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout"
            ),
        });
    }
    let ts = thread.or(body["ts"].as_str()).ok_or_else(|| SlackRefusal {
        error: "no `ts` in the answer".into(),
        retryable: false,
    })?;
    Ok(SlackThread {
        channel: channel.to_string(),
        ts: ts.to_string(),
    })
}

/// The body of a webhook notification: the lifecycle event as published, without the
/// entries it was routed by.
pub fn webhook_body(e: &LifecycleEvent) -> Value {
    let mut body = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Some(obj) = body.as_object_mut() {
        obj.remove("notices");
    }
    body
}

/// `text` cut to at most `max` characters, marked when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests;
