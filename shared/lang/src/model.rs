//! The checked workflow: what the engine and the handlers run.

use super::decl::{CatchupPolicy, OverlapPolicy, ParamType, SignatureScheme};
use super::located::Pos;
use super::schedule::Schedule;
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// The longest a step's attempt may run (its `timeout`, and an HTTP call's), the same
/// on both backends: a task runs inside the step dispatcher, which on AWS is a Lambda
/// function that runs at most 15 minutes (its `Timeout` in `infra/template.yaml`, the
/// most Lambda allows), and the dispatcher needs time after the task's end to record
/// its outcome. A longer timeout could never be honoured, so validation refuses it.
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(14 * 60);

/// A validated workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    pub params: IndexMap<String, Param>,
    pub triggers: Vec<Trigger>,
    pub timeout: Option<Duration>,
    pub concurrency: Option<u32>,
    /// Run output template; `None` means the map of leaf step outputs.
    pub output: Option<Value>,
    /// How long the run and its steps should take (its `sla`).
    pub sla: Sla,
    pub notify: Vec<Notify>,
    /// Steps in file order.
    pub steps: Vec<Step>,
    /// Lookups the handlers make for every message, built once by [`Workflow::new`].
    pub(super) index: StepIndex,
}

/// Step positions by id, and who needs whom, so lookups cost the same in a workflow of
/// three steps and of three thousand.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepIndex {
    by_id: HashMap<String, usize>,
    dependents: Vec<Vec<usize>>,
}

impl Workflow {
    /// Builds the lookup index of `wf.steps` (ids are unique once validated).
    pub(super) fn new(mut wf: Workflow) -> Workflow {
        let by_id: HashMap<String, usize> = wf
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let mut dependents = vec![Vec::new(); wf.steps.len()];
        for (i, s) in wf.steps.iter().enumerate() {
            for n in &s.needs {
                if let Some(&j) = by_id.get(n) {
                    dependents[j].push(i);
                }
            }
        }
        wf.index = StepIndex { by_id, dependents };
        wf
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.index.by_id.get(id).map(|&i| &self.steps[i])
    }

    /// Steps that list `id` in their `needs`.
    pub fn dependents<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a Step> + 'a {
        let list = self
            .index
            .by_id
            .get(id)
            .map(|&i| self.index.dependents[i].as_slice())
            .unwrap_or(&[]);
        list.iter().map(move |&i| &self.steps[i])
    }

    /// Steps no other step needs: their outputs form the default run output.
    pub fn leaves(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .enumerate()
            .filter(|(i, _)| self.index.dependents[*i].is_empty())
            .map(|(_, s)| s)
    }
}

#[derive(Debug, Clone)]
pub struct Param {
    pub kind: Option<ParamType>,
    pub default: Option<Value>,
    pub required: bool,
}

#[derive(Debug, Clone)]
pub struct Trigger {
    pub source: TriggerSource,
    /// Parameters taken from the event (a template over `trigger`).
    pub params: Option<Value>,
}

#[derive(Debug, Clone)]
pub enum TriggerSource {
    Schedule {
        schedule: Schedule,
        catchup: CatchupPolicy,
        catchup_window: Duration,
        overlap: OverlapPolicy,
    },
    S3 {
        bucket: String,
        prefix: Option<String>,
        suffix: Option<String>,
    },
    Event {
        pattern: Value,
    },
    Webhook {
        path: String,
        secret: String,
        signature: SignatureScheme,
    },
    Sqs {
        queue: String,
    },
}

/// How long a run and its steps should take, each counted from the run's start
/// (as Airflow counts a task's SLA): one not ended by then is an SLA miss, notified
/// once (`sla_missed`) and failing nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sla {
    pub run: Option<Duration>,
    /// Step ids, in file order of the `sla` entry.
    pub steps: IndexMap<String, Duration>,
}

impl Sla {
    /// Each SLA as (the step, or none for the run; its duration), the run's first.
    pub fn entries(&self) -> impl Iterator<Item = (Option<&str>, Duration)> {
        self.run
            .map(|d| (None, d))
            .into_iter()
            .chain(self.steps.iter().map(|(s, d)| (Some(s.as_str()), *d)))
    }
}

#[derive(Debug, Clone)]
pub struct Notify {
    /// The statuses that send it (see [`crate::validate::RUN_NOTIFY_STATUSES`] and
    /// [`crate::validate::STEP_NOTIFY_STATUSES`]).
    pub on: Vec<String>,
    pub target: NotifyTarget,
}

/// Where a notification goes. Text fields are templates, rendered when it is sent.
#[derive(Debug, Clone)]
pub enum NotifyTarget {
    /// A Slack incoming webhook.
    Slack { webhook_url: String },
    /// Slack's `chat.postMessage` with a bot token: a run's messages to one channel
    /// are threaded under its first.
    SlackBot { token: String, channel: String },
    /// A JSON POST of the lifecycle event, signed `Braid-Signature` with the secret
    /// named by `secret`, when given.
    Webhook {
        url: String,
        headers: IndexMap<String, String>,
        secret: Option<String>,
    },
}

impl NotifyTarget {
    /// `slack` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            NotifyTarget::Slack { .. } | NotifyTarget::SlackBot { .. } => "slack",
            NotifyTarget::Webhook { .. } => "webhook",
        }
    }
}

/// A validated step.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub pos: Pos,
    pub needs: Vec<String>,
    pub when: Option<String>,
    pub for_each: Option<String>,
    pub max_parallel: Option<u32>,
    pub retry: RetryPolicy,
    /// Time limit of one attempt.
    pub timeout: Option<Duration>,
    pub continue_on_failure: bool,
    pub input: Option<Value>,
    /// For a `lambda` or `http` step: its attempts end by a callback.
    pub callback: Option<Callback>,
    pub kind: StepKind,
    /// Notifications about this step alone.
    pub notify: Vec<Notify>,
    /// What this step's fields read of the run: steps, params, trigger.
    pub reads: Reads,
    /// What the fields rendered for each run of its task read (all but `when` and
    /// `for_each`): what an iteration reads.
    pub task_reads: Reads,
}

/// A task that ends by a callback: the task is started with a token, and the attempt
/// waits for `POST /callbacks/{token}` up to `timeout`, failing if no heartbeat comes
/// within `heartbeat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Callback {
    pub timeout: Duration,
    pub heartbeat: Option<Duration>,
}

/// What some expressions read of their run, so that evaluating them loads only that:
/// a run's params or trigger data may be large (kept in the payload store), and every
/// iteration of a fan-out over them would otherwise load all of it again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// Ids of the steps whose status or output they read.
    pub steps: BTreeSet<String>,
    /// Whether they read `params`.
    pub params: bool,
    /// Whether they read `trigger`.
    pub trigger: bool,
}

impl Reads {
    /// What `s`, a string that may hold expressions, reads.
    pub fn of_text(s: &str) -> Self {
        let roots = crate::expr::root_names(s);
        Reads {
            steps: crate::expr::step_refs(s),
            params: roots.contains("params"),
            trigger: roots.contains("trigger"),
        }
    }

    /// What every string inside `v` reads.
    pub fn of_value(v: &serde_json::Value) -> Self {
        let mut r = Reads::default();
        crate::expr::for_each_string(v, &mut |s| r.extend(Reads::of_text(s)));
        r
    }

    /// Adds what `other` reads.
    pub fn extend(&mut self, other: Reads) {
        self.steps.extend(other.steps);
        self.params |= other.params;
        self.trigger |= other.trigger;
    }

    /// What either reads.
    #[must_use]
    pub fn union(&self, other: &Reads) -> Reads {
        let mut r = self.clone();
        r.extend(other.clone());
        r
    }
}

/// Retry policy with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Duration,
    pub factor: f64,
    pub max_backoff: Option<Duration>,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            backoff: Duration::from_secs(1),
            factor: 2.0,
            max_backoff: None,
            jitter: false,
        }
    }
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum StepKind {
    Lambda {
        function: String,
    },
    Http(HttpCall),
    Pass {
        value: Value,
    },
    Wait(WaitFor),
    Approval {
        message: Option<String>,
        timeout: Option<Duration>,
        /// Who may decide; anyone when empty.
        approvers: Vec<String>,
    },
    Signal {
        name: String,
        timeout: Option<Duration>,
    },
    Workflow {
        name: String,
    },
    Fail {
        error: String,
        message: Option<String>,
    },
}

impl StepKind {
    /// The key that names this kind in the file.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Lambda { .. } => "lambda",
            StepKind::Http(_) => "http",
            StepKind::Pass { .. } => "pass",
            StepKind::Wait(_) => "wait",
            StepKind::Approval { .. } => "approval",
            StepKind::Signal { .. } => "signal",
            StepKind::Workflow { .. } => "workflow",
            StepKind::Fail { .. } => "fail",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: IndexMap<String, String>,
    pub json: Option<Value>,
    pub body: Option<String>,
    pub timeout: Option<Duration>,
    pub expect: Option<Vec<u16>>,
}

#[derive(Debug, Clone)]
pub enum WaitFor {
    Duration(Duration),
    /// An RFC 3339 timestamp or an expression yielding one.
    Until(String),
}
