//! Notifications sent: for each `notify` entry an event calls for (attached by
//! `Handlers::publish`, see [`braid_engine::notify`]), the target is rendered — its
//! secrets resolved where the run's expressions resolve them — the message posted, a
//! failure with 5xx, 429, a timeout or a dropped connection tried again (up to
//! [`NOTICE_TRIES`] times), and how it went recorded on the run (`braid show`). One
//! that fails for good is handed back as a [`DeadNotice`] for the notifier's
//! dead-letter queue; it never fails the run nor holds it up.
//!
//! A webhook's body is the lifecycle event; with a `secret` it is signed
//! `Braid-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, the scheme
//! Braid checks on its own webhooks, and `Braid-Delivery` names the notification so a
//! receiver can drop a repeat (delivery is at least once).

use super::{HandlerResult, Handlers};
use braid_engine::model::{LifecycleEvent, NoticeLog, RunRecord, SlackThread};
use braid_engine::notify::{self, NoticeRef};
use braid_lang::{NotifyTarget, Reads};
use braid_ports::{Task, TaskError};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How many times a notification is tried before it is given up on.
pub const NOTICE_TRIES: u32 = 3;

/// The wait before each try after the first.
const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];

/// The longest wait between tries a receiver's `Retry-After` gets: three tries of
/// [`NOTICE_TIMEOUT`] and two such waits fit in the notifier's time limit (60 s).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// How long one try may take.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(10);

/// A notification given up on, as the dead-letter queue keeps it: sent to the event
/// queue again (a redrive), it is tried once more.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadNotice {
    pub event: LifecycleEvent,
    pub notice: NoticeRef,
    pub reason: String,
    pub tries: u32,
}

/// A message of the notifier's queue.
pub enum NotifierMessage {
    /// A lifecycle event: forwarded, then its notifications sent.
    Event(LifecycleEvent),
    /// A notification given up on before, sent again.
    Redriven(DeadNotice),
}

impl NotifierMessage {
    /// The message in `body`, or why it is none.
    pub fn decode(body: &str) -> Result<Self, serde_json::Error> {
        match serde_json::from_str::<DeadNotice>(body) {
            Ok(d) => Ok(NotifierMessage::Redriven(d)),
            Err(_) => serde_json::from_str(body).map(NotifierMessage::Event),
        }
    }
}

impl Handlers {
    /// Sends the notifications `event` calls for, side by side (a slow receiver
    /// delays no other); returns those given up on.
    pub async fn send_notices(&self, event: &LifecycleEvent) -> HandlerResult<Vec<DeadNotice>> {
        let sends = event.notices.iter().map(|n| self.send_notice(event, n));
        let mut dead = Vec::new();
        for sent in futures::future::join_all(sends).await {
            dead.extend(sent?);
        }
        Ok(dead)
    }

    /// Sends one notification of `event`; `Some` when it was given up on.
    pub async fn send_notice(
        &self,
        event: &LifecycleEvent,
        notice: &NoticeRef,
    ) -> HandlerResult<Option<DeadNotice>> {
        let run = self.ports.store.get_run(&event.run_id).await?;
        let wf = self.workflow(&run).await?;
        let entries = match &notice.step {
            None => Some(&wf.notify),
            Some(id) => wf.step(id).map(|s| &s.notify),
        };
        let Some(entry) = entries.and_then(|e| e.get(notice.index)) else {
            tracing::warn!(run = %run.id, ?notice, "no such notify entry in the run's workflow; nothing sent");
            return Ok(None);
        };
        let (tries, result) = match self.notice_task(&run, event, notice, &entry.target).await {
            Ok((task, bot)) => self.try_notice(&task, bot.as_ref()).await,
            Err(reason) => (0, Err(reason)),
        };
        let thread = result.as_ref().ok().cloned().flatten();
        let result = result.map(|_| ());
        let log = NoticeLog {
            at: self.now(),
            on: notice.on.clone(),
            step: event.step.clone(),
            target: entry.target.kind().to_string(),
            sent: result.is_ok(),
            tries,
            error: result.as_ref().err().cloned(),
            thread,
        };
        match &result {
            Ok(()) => {
                tracing::info!(run = %run.id, on = %notice.on, target = log.target, "notification sent")
            }
            Err(reason) => {
                tracing::error!(run = %run.id, on = %notice.on, target = log.target, %reason, "notification given up on")
            }
        }
        if let Err(e) = self.ports.store.note_notice(&run.id, &log).await {
            tracing::warn!(run = %run.id, error = %e, "cannot record how a notification went");
        }
        Ok(result.err().map(|reason| DeadNotice {
            event: LifecycleEvent {
                notices: vec![notice.clone()],
                ..event.clone()
            },
            notice: notice.clone(),
            reason,
            tries,
        }))
    }

    /// Posts `task` up to [`NOTICE_TRIES`] times while it fails retryably; how many
    /// tries it took, and why it failed for good (never naming its URL). For a Slack
    /// bot's post, Slack's answer is judged too ([`notify::slack_answer`]), and the
    /// thread it names returned.
    async fn try_notice(
        &self,
        task: &Task,
        bot: Option<&BotPost>,
    ) -> (u32, Result<Option<SlackThread>, String>) {
        let Some(runners) = &self.ports.tasks else {
            return (0, Err("this process sends no notifications".into()));
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let answer = runners.http.run(task).await.and_then(|v| match bot {
                None => Ok(None),
                Some(b) => notify::slack_answer(&v["body"], &b.channel, b.thread.as_deref())
                    .map(Some)
                    .map_err(|r| TaskError {
                        retryable: r.retryable,
                        ..TaskError::fatal(
                            "slack.refused",
                            format!("Slack refused the message: {}", r.error),
                        )
                    }),
            });
            match answer {
                Ok(thread) => return (tries, Ok(thread)),
                Err(e) if e.retryable && tries < NOTICE_TRIES => {
                    // A receiver that asks for a longer wait (429 with Retry-After)
                    // gets it, up to a bound that keeps all tries within a delivery.
                    let backoff = BACKOFF[(tries - 1) as usize % BACKOFF.len()];
                    let asked = e.retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
                    let wait = backoff.max(asked);
                    tracing::warn!(error = %without_url(&e, task), tries, "a notification failed; trying again");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return (tries, Err(without_url(&e, task))),
            }
        }
    }

    /// The request that tells `event` to `target`, rendered for `run` (and, for a Slack
    /// bot, where it posts); why it cannot be made (an expression that fails, a
    /// missing secret) otherwise.
    async fn notice_task(
        &self,
        run: &RunRecord,
        event: &LifecycleEvent,
        notice: &NoticeRef,
        target: &NotifyTarget,
    ) -> Result<(Task, Option<BotPost>), String> {
        let took = run
            .finished_at
            .map(|end| (end - run.created_at).to_std().unwrap_or_default());
        let (url, mut headers, mut body) = match target {
            NotifyTarget::Slack { webhook_url } => (
                webhook_url.clone(),
                IndexMap::new(),
                notify::slack_message(event, took),
            ),
            NotifyTarget::SlackBot { token, .. } => (
                self.settings.slack_post_url.clone(),
                IndexMap::from([("Authorization".to_string(), format!("Bearer {token}"))]),
                notify::slack_message(event, took),
            ),
            NotifyTarget::Webhook { url, headers, .. } => {
                (url.clone(), headers.clone(), notify::webhook_body(event))
            }
        };
        let channel = match target {
            NotifyTarget::SlackBot { channel, .. } => Some(channel.as_str()),
            _ => None,
        };
        let reads = std::iter::once(url.as_str())
            .chain(headers.values().map(String::as_str))
            .chain(channel)
            .map(Reads::of_text)
            .fold(Reads::default(), |a, b| a.union(&b));
        let scope = self
            .scope(run, &reads, None)
            .await
            .map_err(|e| format!("cannot read the run to render the target: {e}"))?;
        let render = |field: &str, text: &str| match self
            .renderer
            .render(&Value::String(text.to_string()), &scope)
        {
            Ok(Value::String(s)) => Ok(s),
            Ok(other) => Ok(other.to_string()),
            Err(e) => Err(format!("{} `{field}`: {e}", target.kind())),
        };
        let url = render("url", &url)?;
        for (name, value) in headers.iter_mut() {
            *value = render(name, value)?;
        }
        let bot = match channel {
            Some(channel) => {
                let channel = render("channel", channel)?;
                let thread = notify::slack_thread(&run.notices, &channel).map(str::to_string);
                body = notify::slack_post(body, &channel, thread.as_deref());
                Some(BotPost { channel, thread })
            }
            None => None,
        };
        let body = body.to_string();
        headers.insert("Content-Type".into(), "application/json".into());
        if let NotifyTarget::Webhook {
            secret: Some(name), ..
        } = target
        {
            let key = self
                .ports
                .secrets
                .secret(name)
                .await
                .map_err(|e| format!("cannot read secret `{name}`: {e}"))?
                .ok_or_else(|| {
                    format!("secret `{name}` is not set; the webhook is not signed without it")
                })?;
            let t = self.now().timestamp();
            headers.insert(
                "Braid-Signature".into(),
                braid_lang::triggers::signature::sign_braid(key.as_bytes(), body.as_bytes(), t),
            );
        }
        headers.insert("Braid-Delivery".into(), delivery_id(event, notice));
        let task = Task::Http {
            method: "POST".into(),
            url,
            headers,
            json: None,
            body: Some(body),
            timeout: Some(NOTICE_TIMEOUT),
            expect: None,
        };
        Ok((task, bot))
    }
}

/// Where a Slack bot's message goes: the channel, and the run's thread there if it
/// has one.
struct BotPost {
    channel: String,
    thread: Option<String>,
}

/// The same for every try and every redelivery of one notification of one event.
fn delivery_id(event: &LifecycleEvent, notice: &NoticeRef) -> String {
    let key = format!(
        "{}|{}|{}|{}|{:?}|{}",
        event.run_id,
        event.kind,
        event.step.as_deref().unwrap_or(""),
        event.at.timestamp_millis(),
        notice.step,
        notice.index
    );
    Sha256::digest(key.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `e` told without the URL it names: a Slack webhook's path is its secret.
fn without_url(e: &TaskError, task: &Task) -> String {
    let mut message = format!("{}: {}", e.error, e.message);
    if let Task::Http { url, .. } = task {
        let bare = url.split(['?', '#']).next().unwrap_or(url);
        message = message.replace(bare, "<url>");
    }
    message
}

impl Handlers {
    /// One message of the notifier's queue, its event already forwarded: the
    /// notifications it calls for sent. Returns those given up on; an error when the
    /// run could not be read (the message should be delivered again).
    pub async fn notify(&self, msg: &NotifierMessage) -> HandlerResult<Vec<DeadNotice>> {
        let dead: Vec<DeadNotice> = match msg {
            NotifierMessage::Event(e) => self.send_notices(e).await?,
            NotifierMessage::Redriven(d) => self
                .send_notice(&d.event, &d.notice)
                .await?
                .into_iter()
                .collect(),
        };
        for _ in &dead {
            let o = braid_ports::Observation::DeadLetter { queue: "notify" };
            self.ports.metrics.observe(&o);
        }
        Ok(dead)
    }
}
