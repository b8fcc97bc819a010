//! The checked workflow: what the engine and the handlers run.

use super::decl::{CatchupPolicy, OverlapPolicy, ParamType, SignatureScheme};
use super::located::Pos;
use super::schedule::Schedule;
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

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
    pub notify: Vec<Notify>,
    /// Steps in file order.
    pub steps: Vec<Step>,
}

impl Workflow {
    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Steps that list `id` in their `needs`.
    pub fn dependents<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Step> + 'a {
        self.steps
            .iter()
            .filter(move |s| s.needs.iter().any(|n| n == id))
    }

    /// Steps no other step needs: their outputs form the default run output.
    pub fn leaves(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| self.dependents(&s.id).next().is_none())
    }

    /// Steps with no `needs`: they start with the run.
    pub fn roots(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.needs.is_empty())
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

#[derive(Debug, Clone)]
pub struct Notify {
    pub on: Vec<String>,
    pub target: NotifyTarget,
}

#[derive(Debug, Clone)]
pub enum NotifyTarget {
    Slack { webhook_url: String },
    Webhook { url: String, secret: Option<String> },
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
    pub kind: StepKind,
    /// Ids of the steps whose status or output this step's fields read.
    pub reads: BTreeSet<String>,
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
