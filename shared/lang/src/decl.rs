//! The workflow file as written: the serde and JSON Schema shape of SPEC §1.
//!
//! These types only describe the syntax. Validation (`validate`) checks their meaning and
//! turns them into the [`super::Workflow`] the engine runs. Every struct denies unknown
//! keys; the schema generated from these types is the one `braid schema` prints and the
//! one the unknown-key check (`keys`) reads, so the two cannot drift.

use super::located::At;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// A Braid workflow: a DAG of steps, what starts it, and how it behaves.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Braid workflow")]
pub struct WorkflowDecl {
    /// Workflow name: lowercase letters, digits and dashes, at most 63 characters.
    pub name: At<String>,
    /// What the workflow does, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// The run input: parameter names with their JSON type, default and whether required.
    #[serde(default)]
    pub params: IndexMap<String, At<ParamDecl>>,
    /// What starts a run besides an explicit start.
    #[serde(default)]
    pub triggers: Vec<At<TriggerDecl>>,
    /// Settings applied to every step unless the step overrides them.
    #[serde(default)]
    pub defaults: Option<At<DefaultsDecl>>,
    /// Time limit for the whole run, e.g. `2h`.
    #[serde(default)]
    pub timeout: Option<At<String>>,
    /// At most this many active runs of this workflow; others wait in order.
    #[serde(default)]
    pub concurrency: Option<At<u32>>,
    /// The run's output (an expression or a value with expressions); default: a map of
    /// the outputs of the leaf steps.
    #[serde(default)]
    pub output: Option<At<Value>>,
    /// How long the run and its steps should take, counted from the run's start;
    /// exceeding one notifies `sla_missed` once and does not fail anything.
    #[serde(default)]
    pub sla: Option<At<SlaDecl>>,
    /// Notifications on run lifecycle events.
    #[serde(default)]
    pub notify: Vec<At<NotifyDecl>>,
    /// The steps of the DAG.
    pub steps: At<Vec<At<StepDecl>>>,
}

/// JSON type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

/// A run parameter.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamDecl {
    /// JSON type the value must have (any type when absent).
    #[serde(default, rename = "type")]
    pub kind: Option<ParamType>,
    /// Value used when the input does not give one.
    #[serde(default)]
    pub default: Option<At<Value>>,
    /// The input must give this parameter.
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// One trigger: exactly one of `schedule`, `s3`, `event`, `webhook`, `sqs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerDecl {
    /// A 5-field cron expression (UTC), `rate(N unit)`, or a full schedule.
    #[serde(default)]
    pub schedule: Option<At<ScheduleDecl>>,
    /// Object Created in an S3 bucket.
    #[serde(default)]
    pub s3: Option<At<S3TriggerDecl>>,
    /// An EventBridge event pattern.
    #[serde(default)]
    pub event: Option<At<Value>>,
    /// A signed HTTPS POST to `/hooks/{path}`.
    #[serde(default)]
    pub webhook: Option<At<WebhookTriggerDecl>>,
    /// Messages on a user's own SQS queue.
    #[serde(default)]
    pub sqs: Option<At<SqsTriggerDecl>>,
    /// Parameters taken from the triggering event (expressions over `trigger`).
    #[serde(default)]
    pub params: Option<At<Value>>,
}

/// A schedule written short (`"0 2 * * *"`) or in full.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ScheduleDecl {
    Short(String),
    Full(ScheduleFullDecl),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFullDecl {
    /// 5-field cron expression or `rate(N unit)`.
    pub cron: At<String>,
    /// IANA time zone, e.g. `Europe/Paris` (default UTC).
    #[serde(default)]
    pub timezone: Option<At<String>>,
    /// What to do with instants missed while nothing ran.
    #[serde(default)]
    pub catchup: Option<CatchupPolicy>,
    /// How far back catch-up looks, e.g. `6h` (default 24h).
    #[serde(default)]
    pub catchup_window: Option<At<String>>,
    /// What to do when the previous run is still active.
    #[serde(default)]
    pub overlap: Option<OverlapPolicy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchupPolicy {
    None,
    Latest,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    Skip,
    Queue,
    Allow,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3TriggerDecl {
    pub bucket: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    /// `Braid-Signature: t=<unix>,v1=<hex hmac>`.
    Braid,
    /// GitHub's `X-Hub-Signature-256`.
    Github,
    /// Stripe's `Stripe-Signature`.
    Stripe,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookTriggerDecl {
    /// The hook is served at `/hooks/{path}`.
    pub path: String,
    /// Name of the secret holding the HMAC key (never the key itself).
    pub secret: String,
    /// Signature form (default `braid`).
    #[serde(default)]
    pub signature: Option<SignatureScheme>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqsTriggerDecl {
    /// Queue name, URL or ARN.
    pub queue: String,
}

/// Step settings that `defaults` can give.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultsDecl {
    #[serde(default)]
    pub retry: Option<At<RetryDecl>>,
    #[serde(default)]
    pub timeout: Option<At<String>>,
}

/// Retry policy; `attempts` counts every try.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDecl {
    /// Tries in all, the first included (default 1: no retry).
    #[serde(default)]
    pub attempts: Option<At<u32>>,
    /// Wait before the second attempt, e.g. `2s` (default 1s).
    #[serde(default)]
    pub backoff: Option<At<String>>,
    /// Multiplier of the wait for each further attempt (default 2).
    #[serde(default)]
    pub factor: Option<At<f64>>,
    /// Upper bound of the wait, e.g. `1m`.
    #[serde(default)]
    pub max_backoff: Option<At<String>>,
    /// Full jitter: wait a random time between zero and the computed wait.
    #[serde(default)]
    pub jitter: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaDecl {
    /// The run should have ended this long after it started, e.g. `30m`.
    #[serde(default)]
    pub run: Option<At<String>>,
    /// Step ids with how long after the run's start each should have ended.
    #[serde(default)]
    pub steps: IndexMap<String, At<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyDecl {
    /// What sends this notification: the run's (or, on a step, the step's) statuses,
    /// and `waiting` when a step starts to wait for a person or a system.
    pub on: Vec<At<String>>,
    #[serde(default)]
    pub slack: Option<SlackDecl>,
    #[serde(default)]
    pub webhook: Option<NotifyWebhookDecl>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackDecl {
    /// Incoming-webhook URL; use `{{ secret('name') }}` rather than the URL itself.
    #[serde(default)]
    pub webhook_url: Option<At<String>>,
    /// Bot token (`xoxb-...`) for Slack's `chat.postMessage`, instead of a webhook: a
    /// run's messages then come as one thread. Must be `{{ secret('name') }}`.
    #[serde(default)]
    pub token: Option<At<String>>,
    /// The channel the bot posts to (an id such as `C0123456789`, or `#name`); with
    /// `token` only.
    #[serde(default)]
    pub channel: Option<At<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyWebhookDecl {
    pub url: At<String>,
    /// Extra request headers (rendered; may use `secret(name)`).
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// Name of the secret used to sign deliveries.
    #[serde(default)]
    pub secret: Option<String>,
}

/// One step: common fields plus exactly one kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDecl {
    /// Unique step id: `[a-z0-9][a-z0-9_-]*`.
    pub id: At<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Steps that must finish before this one starts.
    #[serde(default)]
    pub needs: Vec<At<String>>,
    /// Expression; when false the step is skipped.
    #[serde(default)]
    pub when: Option<At<String>>,
    /// Expression yielding a list; the step runs once per item.
    #[serde(default)]
    pub for_each: Option<At<String>>,
    /// At most this many iterations of `for_each` at once.
    #[serde(default)]
    pub max_parallel: Option<At<u32>>,
    #[serde(default)]
    pub retry: Option<At<RetryDecl>>,
    /// Time limit of one attempt, e.g. `30s`.
    #[serde(default)]
    pub timeout: Option<At<String>>,
    /// The run goes on when this step fails.
    #[serde(default)]
    pub continue_on_failure: bool,
    /// Payload of `lambda` and `workflow` steps.
    #[serde(default)]
    pub input: Option<At<Value>>,
    /// For `lambda` and `http` steps: the task gets a callback token and URL, and the
    /// attempt ends when the callback comes (or its timeout or heartbeat passes).
    #[serde(default)]
    pub callback: Option<At<CallbackDecl>>,

    /// Invoke an AWS Lambda function (name or ARN).
    #[serde(default)]
    pub lambda: Option<At<String>>,
    /// Call an HTTP(S) endpoint.
    #[serde(default)]
    pub http: Option<At<HttpDecl>>,
    /// Output the rendered value.
    #[serde(default)]
    pub pass: Option<At<Value>>,
    /// Sleep for a duration or until a timestamp, holding no compute.
    #[serde(default)]
    pub wait: Option<At<WaitDecl>>,
    /// Park until someone approves or rejects.
    #[serde(default)]
    pub approval: Option<At<ApprovalDecl>>,
    /// Park until the named signal arrives.
    #[serde(default)]
    pub signal: Option<At<SignalDecl>>,
    /// Run a child workflow and wait for it.
    #[serde(default)]
    pub workflow: Option<At<String>>,
    /// Fail the step with this error.
    #[serde(default)]
    pub fail: Option<At<FailDecl>>,
    /// Notifications about this step alone.
    #[serde(default)]
    pub notify: Vec<At<NotifyDecl>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpDecl {
    /// HTTP method (default GET).
    #[serde(default)]
    pub method: Option<At<String>>,
    pub url: At<String>,
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// JSON body (rendered).
    #[serde(default)]
    pub json: Option<Value>,
    /// Raw text body (rendered).
    #[serde(default)]
    pub body: Option<String>,
    /// Time limit of the request, e.g. `10s`.
    #[serde(default)]
    pub timeout: Option<At<String>>,
    /// Statuses that count as success (default: any 2xx).
    #[serde(default)]
    pub expect: Option<Vec<u16>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WaitDecl {
    For(String),
    Until(WaitUntilDecl),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitUntilDecl {
    /// RFC 3339 timestamp, or an expression yielding one.
    pub until: At<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecl {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub timeout: Option<At<String>>,
    /// Who may decide: user names (`ana`, matching `…/ana` IAM principals) or whole
    /// principals; anyone when absent.
    #[serde(default)]
    pub approvers: Option<At<Vec<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackDecl {
    /// How long the attempt waits for its callback once the task was started.
    pub timeout: At<String>,
    /// The task must send a heartbeat at least this often, or the attempt fails.
    #[serde(default)]
    pub heartbeat: Option<At<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalDecl {
    pub name: String,
    #[serde(default)]
    pub timeout: Option<At<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailDecl {
    pub error: String,
    #[serde(default)]
    pub message: Option<String>,
}
