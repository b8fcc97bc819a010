//! Braid's handlers: intake (start a run), dispatch (render, run the task — claimed
//! once it has run a while — record its outcome, then run eagerly what that made
//! ready), complete (record an outcome, release dependents, go on along a fan-out's
//! lanes, fan in, finish the run — for the dispatcher's outcomes and for those that
//! arrive on the result queue), tick (the sweeper); delivery (a queue message to its
//! handler, and whether to delete, retry or give up on it — the same for the local
//! runtime and the Lambda functions); the HTTP API's routes, backend-neutral.
//!
//! They are generic over the ports ([`Ports`]), so the same code runs in the Lambda
//! functions, in the local runtime and in tests. Each handler is idempotent: a message
//! delivered twice, or a repair applied to something that was not broken, changes
//! nothing, because every write is guarded (see [`braid_ports::Guard`]). The crate
//! depends on the engine and the ports only: no adapter, no SDK, no database.
//!
//! # Layout
//! - the crate root: [`Ports`], [`Settings`], [`Handlers`] and the reads and writes of
//!   values through the payload store; `bounded`: errors bounded before they are
//!   recorded (a long message kept by reference);
//! - `intake`, `admission`: starting runs, and admitting queued ones under `concurrency`;
//! - `dispatch`, `eager`, `iteration`: running a ready step, what it made ready, and a
//!   fan-out's iterations;
//! - `complete`, `settle`: recording outcomes, releasing dependents, finishing runs;
//! - `tick`: the sweeper; `deliver`: a queue message to its handler and its fate;
//! - `retention`: a long run's payloads renewed as it ends, to outlive its records;
//! - `triggers`, `backfill`: triggered and scheduled starts, and runs for past instants;
//! - `cancel`: cancelling a run on request; `redrive`: retrying one in place;
//!   `fork`: starting a new run from one's outputs;
//! - `callbacks`: tasks that end by a callback token (and their heartbeats);
//! - `children`: `workflow` steps — child runs started, waited on and cancelled;
//! - `waiting`: approvals and signals — decisions, signals kept for a run, the wait
//!   announced; `approvals`: their HTTP routes; `links`: signed approval links;
//! - `api`, `view`, `query`: the HTTP API's routes, the run view, the reads tools make;
//!   `logs`: a run's attempts in time order;
//! - `notify`: the notifications an event calls for, sent, retried and recorded.

mod admission;
mod api;
mod approvals;
mod audit;
mod backfill;
mod bounded;
mod callbacks;
mod cancel;
mod children;
mod complete;
mod context;
mod deliver;
mod dispatch;
mod eager;
mod fork;
mod intake;
mod iteration;
pub mod links;
mod logs;
mod notify;
mod observe;
mod query;
mod redrive;
mod retention;
mod settle;
mod shared_reads;
mod sla;
mod tick;
mod transition;
mod triggers;
mod view;
mod waiting;

pub use api::{ApiRequest, ApiResponse, HTML, JSON, StartBody};
pub use audit::{MAX_AUDIT_LIMIT, parse_since};
pub use backfill::MAX_BACKFILL_INSTANTS;
pub use callbacks::{CallbackAnswer, CallbackReport};
pub use deliver::{Delivery, MAX_RECEIVES};
pub use intake::{StartRequest, Started};
pub use notify::{DeadNotice, NOTICE_TRIES, NotifierMessage};
pub use retention::{PAYLOAD_LIFETIME_DAYS, RENEW_OLDER_THAN};
pub use tick::TickReport;
pub use triggers::TriggeredRun;
pub use view::{RunView, StepView};
pub use waiting::{Decision, SignalRequest, SignalSent};

use braid_engine::model::{
    Data, Definition, DispatchMsg, LifecycleEvent, RunRecord, StepRecord, Timestamp,
};
use braid_lang::Workflow;
use braid_lang::expr::Renderer;
use braid_ports::{
    Clock, EventSink, FunctionOutput, Ids, MetricsSink, Outgoing, PayloadStore, PortError,
    SecretStore, StateStore, TaskRunner, TraceSink, WorkQueue,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The adapters the handlers work through.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn StateStore>,
    /// "Ready" messages: a step to run ([`DispatchMsg`]).
    pub ready: Arc<dyn WorkQueue>,
    /// "Result" messages: an attempt's outcome ([`ResultMsg`]).
    pub results: Arc<dyn WorkQueue>,
    pub payloads: Arc<dyn PayloadStore>,
    pub events: Arc<dyn EventSink>,
    /// What runs steps' tasks; `None` in a process that runs none (on AWS, every
    /// function but the step dispatcher, which then links no HTTP or Lambda client).
    pub tasks: Option<TaskRunners>,
    /// What functions wrote while they ran attempts (`braid logs`).
    pub output: Arc<dyn FunctionOutput>,
    /// Where events that call for notifications wait, for a process that sends them
    /// itself (the local runtime); `None` where the notifier function reads the event
    /// queue.
    pub notices: Option<Arc<dyn WorkQueue>>,
    /// Where runs and attempts are counted (CloudWatch EMF, Prometheus).
    pub metrics: Arc<dyn MetricsSink>,
    /// Where the spans of runs and attempts go (OTLP).
    pub traces: Arc<dyn TraceSink>,
    pub secrets: Arc<dyn SecretStore>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
}

/// The runners of steps' tasks, one per kind of task.
#[derive(Clone)]
pub struct TaskRunners {
    pub http: Arc<dyn TaskRunner>,
    pub lambda: Arc<dyn TaskRunner>,
}

/// Tunables, with the defaults both backends use.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Values whose JSON is larger than this many bytes go to the payload store.
    pub inline_limit: usize,
    /// Lease of an attempt of a step without a `timeout`.
    pub default_lease: Duration,
    /// A message not acted on after this long is presumed lost and re-sent by the sweeper.
    pub stale_after: Duration,
    /// The longest delay the work queue takes (SQS: 15 minutes); longer waits are
    /// fired by the sweeper from the record's `due_at`.
    pub max_queue_delay: Duration,
    /// Runs the sweeper looks at per tick.
    pub sweep_limit: usize,
    /// Which steps' ends are published as `step.finished` events.
    pub step_events: StepEvents,
    /// The HTTP API's base URL (`https://…`, no trailing path), for the signed
    /// approval links; `None`: no links are made (the commands still decide).
    pub api_base_url: Option<String>,
    /// How often a dispatcher whose task is still running looks whether the run is
    /// being cancelled, and stops the task if so. A task that ends sooner costs no look.
    pub cancel_check: Duration,
    /// Where a Slack bot's messages are posted (`chat.postMessage` of Slack's Web API).
    pub slack_post_url: String,
}

/// Slack's `chat.postMessage`.
pub const SLACK_POST_URL: &str = "https://slack.com/api/chat.postMessage";

/// Which steps' ends are published as `step.finished` lifecycle events (`run.started`
/// and `run.finished` always are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepEvents {
    /// Failed steps and iterations only: what alerts need. An event per step would
    /// cost more than orchestrating the step (EventBridge bills each event).
    #[default]
    Failed,
    /// Every top-level step's end too (an iteration's only when it failed: its
    /// `for_each` step's event reports the fan-out).
    All,
}

impl std::str::FromStr for StepEvents {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "failed" => Ok(StepEvents::Failed),
            "all" => Ok(StepEvents::All),
            other => Err(format!(
                "step events must be `failed` or `all`, not `{other}`"
            )),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            inline_limit: 4096,
            default_lease: Duration::from_secs(15 * 60),
            stale_after: Duration::from_secs(60),
            max_queue_delay: Duration::from_secs(15 * 60),
            sweep_limit: 1000,
            step_events: StepEvents::default(),
            api_base_url: None,
            cancel_check: Duration::from_secs(3),
            slack_post_url: SLACK_POST_URL.to_string(),
        }
    }
}

/// Why a handler could not finish its work on a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The input is wrong and always will be: report it, do not retry.
    #[error("{0}")]
    Invalid(String),
    /// The caller proved nothing (a forged or altered token).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is known but may not do this (not among an approval's approvers).
    #[error("{0}")]
    Forbidden(String),
    /// A port failed; the message should be delivered again.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl HandlerError {
    /// Whether delivering the same message again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, HandlerError::Port(PortError::Backend { .. }))
    }
}

pub type HandlerResult<T> = Result<T, HandlerError>;

/// The handlers with their ports, settings and a cache of parsed definitions.
pub struct Handlers {
    ports: Ports,
    pub settings: Settings,
    renderer: Renderer,
    workflows: Mutex<HashMap<(String, String), Arc<Workflow>>>,
    /// Expanded fan-outs, by run and step (see [`iteration`]).
    expansions: shared_reads::SharedReads<Option<Arc<iteration::Expansion>>>,
    /// Runs being read by dispatches (see [`Handlers::dispatch_one`]).
    run_reads: shared_reads::SharedReads<RunRecord>,
    /// The API's URL as learnt from a request, when the settings name none.
    base_url_seen: std::sync::OnceLock<String>,
}

impl Handlers {
    pub fn new(ports: Ports, settings: Settings, renderer: Renderer) -> Self {
        Handlers {
            ports,
            settings,
            renderer,
            workflows: Mutex::new(HashMap::new()),
            expansions: shared_reads::SharedReads::new(iteration::KEPT),
            // Forgotten once read: only reads under way are held.
            run_reads: shared_reads::SharedReads::new(usize::MAX),
            base_url_seen: std::sync::OnceLock::new(),
        }
    }

    /// Where approval links point: the settings' URL, else the one a request showed.
    fn base_url(&self) -> Option<&str> {
        self.settings
            .api_base_url
            .as_deref()
            .or_else(|| self.base_url_seen.get().map(String::as_str))
    }

    /// Keeps `url` as the API's, unless one is known already.
    fn learn_base_url(&self, url: &str) {
        if self.settings.api_base_url.is_none() {
            let _ = self.base_url_seen.set(url.to_string());
        }
    }

    fn now(&self) -> Timestamp {
        self.ports.clock.now()
    }

    /// The parsed workflow a run was started with (cached: definitions never change).
    pub async fn workflow(&self, run: &RunRecord) -> HandlerResult<Arc<Workflow>> {
        if let Some(wf) = self.cached(&run.workflow, &run.version) {
            return Ok(wf);
        }
        let def = match self
            .ports
            .store
            .get_definition(&run.workflow, &run.version)
            .await
        {
            // Definitions are stored before their runs and never deleted: a missing
            // one will not appear, so the run cannot go on.
            Err(PortError::NotFound(_)) => {
                return Err(HandlerError::Invalid(format!(
                    "run `{}`: the definition of workflow `{}` version `{}` is missing from the state store",
                    run.id, run.workflow, run.version
                )));
            }
            other => other?,
        };
        self.parse_cached(&def)
    }

    fn cached(&self, workflow: &str, version: &str) -> Option<Arc<Workflow>> {
        let key = (workflow.to_string(), version.to_string());
        self.workflows
            .lock()
            .expect("cache lock")
            .get(&key)
            .cloned()
    }

    /// Parses a definition once per version and keeps the result.
    fn parse_cached(&self, def: &Definition) -> HandlerResult<Arc<Workflow>> {
        if let Some(wf) = self.cached(&def.workflow, &def.version) {
            return Ok(wf);
        }
        let wf = Arc::new(parse_definition(def)?);
        self.keep_parsed(def, wf.clone());
        Ok(wf)
    }

    /// Keeps `wf`, the parse of `def`, for the runs of its version.
    fn keep_parsed(&self, def: &Definition, wf: Arc<Workflow>) {
        let key = (def.workflow.clone(), def.version.clone());
        self.workflows.lock().expect("cache lock").insert(key, wf);
    }

    /// Keeps `value` inline when small, else stores it under `key` and returns a reference.
    async fn store_value(&self, key: &str, value: Value) -> HandlerResult<Data> {
        let bytes = serde_json::to_vec(&value).map_err(|e| HandlerError::Invalid(e.to_string()))?;
        if bytes.len() <= self.settings.inline_limit {
            return Ok(Data::Inline(value));
        }
        let len = bytes.len() as u64;
        self.ports.payloads.put(key, bytes).await?;
        Ok(Data::Stored {
            key: key.to_string(),
            bytes: len,
        })
    }

    /// The value behind `data`, loading it from the payload store when offloaded.
    pub async fn load(&self, data: &Data) -> HandlerResult<Value> {
        match data {
            Data::Inline(v) => Ok(v.clone()),
            Data::Stored { key, .. } => {
                let bytes = self.ports.payloads.get(key).await?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    HandlerError::Port(PortError::backend_msg(format!(
                        "payload {key} is not JSON: {e}"
                    )))
                })
            }
        }
    }

    /// Sends "ready" messages for steps of `run`, but for one that the delivery keeps
    /// in `fu` to run itself (see [`eager`]). `run` is as read after the write that
    /// made them ready, and `records` (some of the steps') as written: a follow-up
    /// kept starts from these copies instead of reading them.
    async fn send_dispatch_of(
        &self,
        fu: &eager::FollowUps,
        run: &RunRecord,
        msgs: Vec<(DispatchMsg, Duration)>,
        records: &[StepRecord],
    ) -> HandlerResult<()> {
        self.send_now(fu.keep(msgs, Some(run), records)).await
    }

    /// Sends "ready" messages to the queue.
    async fn send_now(&self, msgs: Vec<(DispatchMsg, Duration)>) -> HandlerResult<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        let out = msgs
            .into_iter()
            .map(|(m, delay)| Outgoing {
                body: serde_json::to_string(&m).expect("messages serialize"),
                delay: delay.min(self.settings.max_queue_delay),
            })
            .collect();
        self.ports.ready.send(out).await?;
        Ok(())
    }

    /// Publishes `events` of `run`, each with the `notify` entries of its workflow it
    /// calls for. Never fails: a lost event loses no state.
    async fn publish(&self, run: &RunRecord, mut events: Vec<LifecycleEvent>) {
        for e in &events {
            self.observe_run(run, e);
        }
        match self.workflow(run).await {
            Ok(wf) => {
                for e in &mut events {
                    e.notices = braid_engine::notify::wanted(&wf, e);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell which notifications an event calls for")
            }
        }
        if let Err(e) = self.ports.events.publish(&events).await {
            tracing::warn!(error = %e, "publishing lifecycle events failed");
        }
    }
}

/// Parses a stored definition; a definition that no longer parses is a hard error.
pub fn parse_definition(def: &Definition) -> HandlerResult<Workflow> {
    braid_lang::parse(&def.file, &def.source).map_err(|e| HandlerError::Invalid(e.to_string()))
}

/// Makes a definition from a workflow file's text; its version is a content hash.
pub fn definition(file: &str, source: &str) -> Result<(Definition, Workflow), braid_lang::Invalid> {
    use sha2::{Digest, Sha256};
    let wf = braid_lang::parse(file, source)?;
    let digest = Sha256::digest(source.as_bytes());
    let version: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Ok((
        Definition {
            workflow: wf.name.clone(),
            version,
            file: file.to_string(),
            source: source.to_string(),
        },
        wf,
    ))
}

/// The longest span added to a timestamp: a thousand years. A duration may be written
/// as large as `100000000d`; a timestamp that far off is out of chrono's range and
/// adding it would panic, while a thousand years is forever all the same.
const LONGEST_SPAN: Duration = Duration::from_secs(1000 * 366 * 24 * 3600);

/// Converts a std duration for timestamp arithmetic, saturating at [`LONGEST_SPAN`],
/// so `now + span(d)` never overflows.
fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d.min(LONGEST_SPAN)).expect("a thousand years fits")
}

#[cfg(test)]
mod tests {
    use super::span;
    use std::time::Duration;

    #[test]
    fn a_span_added_to_now_never_overflows() {
        let now = chrono::Utc::now();
        let far = now + span(Duration::from_secs(100_000_000 * 86_400));
        assert!(far > now);
        assert!(now + span(Duration::MAX) > now);
    }
}
