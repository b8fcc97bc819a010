//! The records a run is made of, as the state store keeps them, and the messages the
//! handlers pass through the work queues. Plain data: no behaviour beyond small queries.

pub use crate::ids::{RunId, StepId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// A point in time (UTC, millisecond precision in storage).
pub type Timestamp = DateTime<Utc>;

/// Status of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl RunStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_RUN_STATUSES.iter().copied().find(|r| r.as_str() == s)
    }
}

const ALL_RUN_STATUSES: [RunStatus; 6] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
    RunStatus::TimedOut,
];

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a step (or of one `for_each` iteration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Ready,
    Running,
    Waiting,
    Retrying,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Ready => "ready",
            StepStatus::Running => "running",
            StepStatus::Waiting => "waiting",
            StepStatus::Retrying => "retrying",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A unit of work: a step, or iteration `index` of a `for_each` step.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StepKey {
    pub step: StepId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

impl StepKey {
    pub fn step(step: impl Into<StepId>) -> Self {
        StepKey {
            step: step.into(),
            index: None,
        }
    }

    pub fn iteration(step: impl Into<StepId>, index: u32) -> Self {
        StepKey {
            step: step.into(),
            index: Some(index),
        }
    }
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}[{i}]", self.step),
            None => f.write_str(&self.step),
        }
    }
}

/// Why a step or a run failed: `{"error": "...", "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub error: String,
    pub message: String,
}

impl ErrorInfo {
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo {
            error: error.into(),
            message: message.into(),
        }
    }
}

/// A JSON value kept inline, or a reference to bytes in the payload store.
///
/// Values over the inline limit are offloaded so records and messages stay small; the
/// handlers load them back transparently, so users never see the difference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Data {
    Inline(Value),
    Stored { key: String, bytes: u64 },
}

/// A workflow definition as registered: the source text, identified by content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub workflow: String,
    /// Content hash of `source`: a new version never changes runs already going.
    pub version: String,
    /// File name used in error messages.
    pub file: String,
    pub source: String,
}

/// How long the delivery that finished a run has to close it (see
/// [`RunRecord::closing`]) before the tick presumes it stopped and closes the run
/// itself: soon enough to repair, late enough not to race the closing in progress
/// (which would publish `run.finished` twice).
pub const CLOSING_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The run record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub workflow: String,
    pub version: String,
    pub status: RunStatus,
    /// The run's params; null when they are kept by reference ([`RunRecord::params_ref`]).
    pub params: Value,
    /// What started the run (`trigger` in expressions); when it is kept by reference
    /// ([`RunRecord::trigger_ref`]), only its `kind`.
    pub trigger: Value,
    /// The params, when over the inline limit: kept in the payload store so that the
    /// run's record stays small — it is read by every step — and a step that does not
    /// read `params` (an iteration reading its item) never loads them. Absent from
    /// records written before it existed, which hold their params inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_ref: Option<Data>,
    /// The trigger data, when over the inline limit (as [`RunRecord::params_ref`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_ref: Option<Data>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// When the run times out, from the workflow's `timeout`.
    pub deadline: Option<Timestamp>,
    /// Set when a step failed for good: no new step starts (fail fast).
    pub failing: bool,
    pub output: Option<Data>,
    pub error: Option<ErrorInfo>,
    pub idempotency_key: Option<String>,
    /// At most this many runs of the workflow may hold a slot at once (its
    /// `concurrency`): the run is created `queued` and starts when it takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Whether the run holds one of its workflow's slots (released when it finishes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slot: bool,
    /// Set by the run's final write, cleared once what follows its end is carried out
    /// (its steps closed, its `run.finished` event, the next queued run's admission,
    /// its records' expiry). While set the run has a timer, so an error or a crash
    /// after the final write leaves work the tick finishes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closing: bool,
    /// For a child run: the `workflow` step that started it, which its end resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    /// Someone asked to cancel the run: it stops as fail fast does (`failing` is set
    /// with it) and ends `cancelled` once its attempts in flight are recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<CancelRequest>,
    /// Each time the run was retried in place after it ended (see
    /// [`crate::redrive`]), oldest first. The last one's number is
    /// [`RunRecord::drive`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redrives: Vec<Redrive>,
    /// For a run forked from another (`braid retry --new`): which, by whom, when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<Fork>,
    /// The notifications sent about the run (or that failed for good), oldest first;
    /// at most [`MAX_NOTICES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<NoticeLog>,
    /// When the tick next looks at the run's `sla` (the earliest SLA not yet checked;
    /// see [`crate::sla`]); none once every SLA was checked, or for a run retried in
    /// place, whose SLAs counted from its first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_due: Option<Timestamp>,
    /// The SLAs the run or its steps missed, each noted once, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sla_missed: Vec<SlaMiss>,
}

/// An SLA the run (`step` none) or one of its steps missed: it had not ended
/// `within` (as written, e.g. `30m`) of the run's start, at `due`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaMiss {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub within: String,
    pub due: Timestamp,
}

/// Where a forked run came from: it started with the outputs of the steps of `run`
/// it did not run again (see [`crate::start::fork`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fork {
    pub run: RunId,
    pub by: String,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub steps: Vec<String>,
}

/// One retry of a run in place: who asked, when, from which step, and the steps it
/// runs again (in the workflow's order), recorded on the run before any step is
/// reset — so a crash part-way leaves the list the tick finishes resetting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redrive {
    pub by: String,
    pub at: Timestamp,
    /// The step it was asked to run again from (with everything downstream), if any;
    /// else the steps that did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// How the run had ended.
    pub was: RunStatus,
    pub steps: Vec<String>,
}

/// Who asked to cancel a run, why and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// The IAM principal on AWS, the OS user or `--as` locally, or the parent run
    /// whose end cancels its children.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: Timestamp,
}

impl CancelRequest {
    /// The error a run cancelled so ends with.
    pub fn error(&self) -> ErrorInfo {
        let why = self
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        ErrorInfo::new("cancelled", format!("cancelled by {}{why}", self.by))
    }
}

/// The most notifications a run record keeps: a run that sends more (a `waiting`
/// entry on a step of a big fan-out) records the first ones.
pub const MAX_NOTICES: usize = 50;

/// How one notification about a run went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeLog {
    pub at: Timestamp,
    /// The status it was sent for (`failed`, `waiting`, ...).
    pub on: String,
    /// The step whose event it told, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// `slack` or `webhook`.
    pub target: String,
    /// Whether it was delivered.
    pub sent: bool,
    /// How many times it was tried.
    pub tries: u32,
    /// Why it failed for good (never the URL, which may be a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a message a Slack bot posted: the thread the run's next messages to that
    /// channel go under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<SlackThread>,
}

/// A Slack thread: the channel as the `notify` entry names it, and the timestamp of
/// the message that started the thread.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackThread {
    pub channel: String,
    pub ts: String,
}

/// The step of another run that started a run as its child (a `workflow` step).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    pub run_id: RunId,
    pub key: StepKey,
    /// The attempt of the step that started the child: a retry starts another child.
    pub attempt: u32,
    /// How deep the child is: 1 for a child of a run nobody started, and so on.
    pub depth: u32,
    /// The run at the top of the family, which nobody started: its trace is the
    /// child's ([`crate::trace::trace_of`]). None in records made before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RunId>,
}

impl ParentRef {
    /// The run at the top of the family.
    pub fn root(&self) -> &RunId {
        self.root.as_ref().unwrap_or(&self.run_id)
    }
}

/// How deep child runs may nest: a child at this depth starts no child of its own.
pub const MAX_CHILD_DEPTH: u32 = 8;

impl RunRecord {
    /// How many times the run was retried in place: 0 for one never retried. Step
    /// records reset by a retry carry its number ([`StepRecord::drive`]).
    pub fn drive(&self) -> u32 {
        self.redrives.len() as u32
    }

    /// When the tick must look at this run whatever its steps do: its deadline or its
    /// next SLA, whichever comes first, while it is not final; [`CLOSING_GRACE`] after
    /// its end while it is closing. State stores index it (the store port's
    /// `due_runs`).
    pub fn timer(&self) -> Option<Timestamp> {
        if self.status.is_final() {
            self.finished_at
                .filter(|_| self.closing)
                .and_then(|t| t.checked_add_signed(CLOSING_GRACE))
        } else {
            match (self.deadline, self.sla_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
    }
}

/// How a `for_each` step's iterations run: in `lanes` (its `max_parallel`, at most one
/// per item), lane `j` running iterations `j, j + lanes, j + 2·lanes, …` one after the
/// other. An iteration's
/// end starts the next of its lane, so launching needs no shared counter: an iteration
/// that succeeds is one write of its own record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FanOut {
    pub total: u32,
    pub lanes: u32,
    /// Lanes seen ending (their last iteration final). A hint, not the truth: once it
    /// reaches `lanes` the iterations' records are read to decide the fan-in, and the
    /// sweeper fans in when a crash kept it from counting. A stopping fan-out does not
    /// count: each iteration's end there tries the fan-in.
    pub ended: u32,
    /// Iterations failed (counted in the same write as their final record).
    pub failed: u32,
    /// Attempts its iterations' keys used before this expansion (a run retried in
    /// place expands again): an iteration's first attempt is `base + 1`, so a token,
    /// link or child run of an earlier attempt never names a new one.
    #[serde(skip_serializing_if = "is_zero")]
    pub base: u32,
}

impl FanOut {
    /// The iteration that follows `index` in its lane, if any.
    pub fn next_in_lane(&self, index: u32) -> Option<u32> {
        index
            .checked_add(self.lanes.max(1))
            .filter(|&n| n < self.total)
    }

    /// The first iteration of each lane.
    pub fn lane_starts(&self) -> std::ops::Range<u32> {
        0..self.lanes.max(1).min(self.total)
    }

    /// Iteration `index` of `step` in run `run_id` as it is before its first write:
    /// pending, no attempt yet. An iteration's record is written only when it first
    /// changes (its claim or its outcome), so the expansion writes one record, not one
    /// per item; until then this is what it is. Its item is its `for_each` step's.
    pub fn iteration(&self, run_id: &RunId, step: &str, index: u32) -> StepRecord {
        StepRecord {
            next_in_lane: self.next_in_lane(index),
            attempt: self.base,
            retry_base: self.base,
            ..StepRecord::new(run_id, StepKey::iteration(step, index), StepStatus::Pending)
        }
    }

    /// Every iteration of `step`, from the records written so far (`written`, any
    /// order, other steps' ignored; borrowed or owned) and, for those not written yet,
    /// [`FanOut::iteration`]; in index order.
    pub fn iterations<'a>(
        &self,
        run_id: &RunId,
        step: &str,
        written: impl IntoIterator<Item = std::borrow::Cow<'a, StepRecord>>,
    ) -> Vec<std::borrow::Cow<'a, StepRecord>> {
        let mut by_index: std::collections::BTreeMap<u32, std::borrow::Cow<'a, StepRecord>> =
            written
                .into_iter()
                .filter(|r| r.key.step == step)
                .filter_map(|r| r.key.index.map(|i| (i, r)))
                .collect();
        (0..self.total)
            .map(|i| {
                by_index
                    .remove(&i)
                    .unwrap_or_else(|| std::borrow::Cow::Owned(self.iteration(run_id, step, i)))
            })
            .collect()
    }
}

/// A step record, or one iteration of a `for_each` step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub run_id: RunId,
    pub key: StepKey,
    pub status: StepStatus,
    /// The attempt running or last run (1-based); 0 before the first claim. Attempt
    /// numbers only grow, across retries of the run too (see [`StepRecord::retry_base`]).
    pub attempt: u32,
    /// Attempts made before the run was last retried in place: the step's `retry`
    /// policy counts only those after (`attempt - retry_base`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_base: u32,
    /// The retry of the run ([`RunRecord::drive`]) that last reset this record.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drive: u32,
    /// For a `for_each` step reset by a retry of its run: the attempts its iterations
    /// used before ([`FanOut::base`] of its next expansion).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub iteration_base: u32,
    /// While running: when the attempt is presumed lost.
    pub lease_until: Option<Timestamp>,
    /// While retrying or waiting: when the step may go on.
    pub due_at: Option<Timestamp>,
    /// `needs` already final in a way that lets this step run.
    pub satisfied: Vec<String>,
    pub output: Option<Data>,
    pub error: Option<ErrorInfo>,
    /// For an iteration: its `item`.
    pub item: Option<Data>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub fan_out: Option<FanOut>,
    /// For an iteration: the one after it in its lane ([`FanOut::next_in_lane`]),
    /// which its end starts; `None` at the lane's end. Kept here so that going on
    /// needs no read of the `for_each` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_in_lane: Option<u32>,
    /// For a `for_each` step once expanded: its items. Its iterations have no record
    /// until their first write (see [`FanOut::iteration`]), so each finds its item here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Data>,
    /// How many times the sweeper re-sent this step's message, presumed lost. Counted
    /// so that a message no handler can carry out costs a bounded number of sends
    /// (see [`crate::lifecycle::MAX_RESENDS`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resends: u32,
    /// For a `workflow` step waiting on its child: the child's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_run: Option<RunId>,
    /// For a task waiting on its callback: when the wait ends for good (its timeout),
    /// while `due_at` is the next heartbeat due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_deadline: Option<Timestamp>,
    /// When the attempt running or last run was claimed (`started_at` is the first's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_started_at: Option<Timestamp>,
    /// The attempts before this one that ended, oldest first, the last
    /// [`MAX_EARLIER_ATTEMPTS`] of them: what `braid logs` and `braid show` tell of
    /// them. Kept on the record, so telling them costs no write of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<AttemptLog>,
}

/// How many ended attempts a step record keeps ([`StepRecord::earlier`]).
pub const MAX_EARLIER_ATTEMPTS: usize = 20;

/// An attempt that ended before its step's current one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptLog {
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    pub ended_at: Timestamp,
    /// How it ended: `failed` (and retried), or, for the attempts a retry of the run
    /// ran again, the status it had ended with.
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// When the next attempt was due, for one retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
}

impl StepRecord {
    /// The error that tells how the step stands: its failure's, the failure it is
    /// retrying after, or the cancel that stopped its task. None for any other status:
    /// an error kept from an attempt before says nothing of how it ended.
    pub fn status_error(&self) -> Option<&ErrorInfo> {
        self.error.as_ref().filter(|e| match self.status {
            StepStatus::Failed | StepStatus::Retrying => true,
            StepStatus::Cancelled => e.error == "cancelled",
            _ => false,
        })
    }

    /// `earlier` with the attempt `rec` reached ended as `log`, the oldest dropped
    /// beyond [`MAX_EARLIER_ATTEMPTS`].
    pub fn with_ended(&self, log: AttemptLog) -> Vec<AttemptLog> {
        let mut earlier = self.earlier.clone();
        earlier.push(log);
        let over = earlier.len().saturating_sub(MAX_EARLIER_ATTEMPTS);
        earlier.drain(..over);
        earlier
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl StepRecord {
    /// A fresh record in `status`.
    pub fn new(run_id: impl Into<RunId>, key: StepKey, status: StepStatus) -> Self {
        StepRecord {
            run_id: run_id.into(),
            key,
            status,
            attempt: 0,
            retry_base: 0,
            drive: 0,
            iteration_base: 0,
            lease_until: None,
            due_at: None,
            satisfied: Vec::new(),
            output: None,
            error: None,
            item: None,
            started_at: None,
            finished_at: None,
            fan_out: None,
            next_in_lane: None,
            items: None,
            resends: 0,
            child_run: None,
            wait_deadline: None,
            attempt_started_at: None,
            earlier: Vec::new(),
        }
    }
    /// When the tick must look at this step: when a retrying or waiting step is due (a
    /// delay longer than the queue holds, or a lost wake-up).
    ///
    /// Neither a ready step nor a running attempt's lease is indexed: indexing either
    /// would cost two index writes per step (one as it starts, one as it ends) for
    /// what is only a crash's repair — a lost message, a worker gone (an attempt's own
    /// `timeout` is kept by its dispatcher). The sweep, which reads every active run
    /// in turn, finds those. Pending and final steps wait on nothing the clock decides.
    pub fn timer(&self) -> Option<Timestamp> {
        match self.status {
            StepStatus::Retrying | StepStatus::Waiting => self.due_at,
            _ => None,
        }
    }
}

/// A "ready" message: run attempt `attempt` of `key` (or, for a waiting step, check it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DispatchMsg {
    pub run_id: RunId,
    pub key: StepKey,
    pub attempt: u32,
    /// The attempt was claimed by a dispatcher that could not finish it and handed it
    /// on: run it again rather than take it for a duplicate (as for a message received
    /// again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume: bool,
    /// For a waiting attempt: the due time it was sent to wake it at. A callback's
    /// heartbeat moves the due time and sends a message for the new one, so one sent
    /// for an earlier due time ends where it arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Timestamp>,
    /// Sent for a step whose record its sender knew was not written (a fan-out's
    /// first iterations): its first delivery starts from the record as it is before
    /// its first write ([`FanOut::iteration`]) instead of reading it; a copy finds the
    /// claim's guard false. A delivery received again reads the record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unwritten: bool,
}

impl DispatchMsg {
    /// The message that starts the next attempt of `rec`, a step not started.
    pub fn next(rec: &StepRecord) -> Self {
        DispatchMsg {
            attempt: rec.attempt + 1,
            ..DispatchMsg::first(rec.run_id.clone(), rec.key.clone())
        }
    }

    /// The message that starts the first attempt of `key` in run `run_id`.
    pub fn first(run_id: impl Into<RunId>, key: StepKey) -> Self {
        DispatchMsg {
            run_id: run_id.into(),
            key,
            attempt: 1,
            resume: false,
            due: None,
            unwritten: false,
        }
    }
}

/// The outcome of one attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded {
        output: Data,
    },
    Failed {
        error: ErrorInfo,
        retryable: bool,
    },
    /// `when` was false.
    Skipped,
    /// A `for_each` list was evaluated: this many iterations.
    Expanded {
        items: Data,
        total: u32,
    },
    /// The task was told to stop because its run is being cancelled; `error` says who
    /// asked. It may have had effects before it stopped.
    Stopped {
        error: ErrorInfo,
    },
}

/// A "result" message: attempt `attempt` of `key` ended with `outcome` — a running
/// attempt, or, with `by`, a waiting one its waiter ended (a child run's end).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultMsg {
    pub run_id: RunId,
    pub key: StepKey,
    pub attempt: u32,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<crate::lifecycle::Waiter>,
}

/// What a lifecycle event tells, written `run.started`, `run.finished` and
/// `step.finished` in JSON and on EventBridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "run.started")]
    RunStarted,
    #[serde(rename = "run.finished")]
    RunFinished,
    #[serde(rename = "step.finished")]
    StepFinished,
    /// A step began to wait for a person or a system (an approval, a signal).
    #[serde(rename = "step.waiting")]
    StepWaiting,
    /// A person decided an approval.
    #[serde(rename = "step.decided")]
    StepDecided,
    /// A step's attempt failed and the step will be tried again.
    #[serde(rename = "step.retrying")]
    StepRetrying,
    /// The run (`step` none) or a step had not ended by its SLA.
    #[serde(rename = "sla.missed")]
    SlaMissed,
}

impl EventKind {
    /// The kind as written: `run.started`, `run.finished`, `step.finished`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunStarted => "run.started",
            EventKind::RunFinished => "run.finished",
            EventKind::StepFinished => "step.finished",
            EventKind::StepWaiting => "step.waiting",
            EventKind::StepDecided => "step.decided",
            EventKind::StepRetrying => "step.retrying",
            EventKind::SlaMissed => "sla.missed",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outcome {
    /// What the attempt came to, as metrics count it: `succeeded`, `failed`,
    /// `skipped`, `expanded`, `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Succeeded { .. } => "succeeded",
            Outcome::Failed { .. } => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Expanded { .. } => "expanded",
            Outcome::Stopped { .. } => "stopped",
        }
    }
}

/// A lifecycle event published to the event sink (EventBridge on AWS).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    pub kind: EventKind,
    pub run_id: RunId,
    pub workflow: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// On `run.started`: what started the run (`s3`, `webhook`, `schedule`, `event`,
    /// `sqs`, or `api` for an explicit start), so a subscriber need not read the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// On `step.waiting`: what the step waits for (and, for an approval, its message
    /// and the signed links that decide it); on `step.decided`: the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    pub at: Timestamp,
    /// The workflow's `notify` entries this event calls for (see
    /// [`crate::notify::wanted`]): what the notifier sends. Not forwarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<crate::notify::NoticeRef>,
}

impl LifecycleEvent {
    /// `run.started` of `run`, with what started it.
    pub fn run_started(run: &RunRecord, at: Timestamp) -> Self {
        LifecycleEvent {
            trigger: Some(run.trigger["kind"].as_str().unwrap_or("api").to_string()),
            ..Self::of_run(EventKind::RunStarted, run, at)
        }
    }

    /// `run.finished` of `run`, with its error if it failed.
    pub fn run_finished(run: &RunRecord, at: Timestamp) -> Self {
        LifecycleEvent {
            error: run.error.clone(),
            ..Self::of_run(EventKind::RunFinished, run, at)
        }
    }

    /// `step.finished` of the step (or iteration) `rec` of `run`.
    pub fn step_finished(run: &RunRecord, rec: &StepRecord, at: Timestamp) -> Self {
        LifecycleEvent {
            status: rec.status.as_str().into(),
            step: Some(rec.key.to_string()),
            error: rec.error.clone(),
            ..Self::of_run(EventKind::StepFinished, run, at)
        }
    }

    /// `step.retrying` of the step (or iteration) `rec` of `run`, just set to retry:
    /// the failed attempt's error, the next attempt and when it is due.
    pub fn step_retrying(run: &RunRecord, rec: &StepRecord, at: Timestamp) -> Self {
        LifecycleEvent {
            status: rec.status.as_str().into(),
            step: Some(rec.key.to_string()),
            error: rec.error.clone(),
            detail: Some(serde_json::json!({
                "failed_attempt": rec.attempt,
                "next_attempt": rec.attempt + 1,
                "retry_at": rec.due_at,
            })),
            ..Self::of_run(EventKind::StepRetrying, run, at)
        }
    }

    /// `sla.missed` of `run` for `miss`; `status`, the run's or the step's as seen.
    pub fn sla_missed(run: &RunRecord, miss: &SlaMiss, status: &str, at: Timestamp) -> Self {
        LifecycleEvent {
            status: status.to_string(),
            step: miss.step.clone(),
            detail: Some(serde_json::json!({ "sla": miss.within, "due": miss.due })),
            ..Self::of_run(EventKind::SlaMissed, run, at)
        }
    }

    /// `kind` (`step.waiting`, `step.decided`) of step `rec`, with its `detail`.
    pub fn of_step(
        kind: EventKind,
        run: &RunRecord,
        rec: &StepRecord,
        detail: serde_json::Value,
        at: Timestamp,
    ) -> Self {
        LifecycleEvent {
            status: rec.status.as_str().into(),
            step: Some(rec.key.to_string()),
            detail: Some(detail),
            ..Self::of_run(kind, run, at)
        }
    }

    fn of_run(kind: EventKind, run: &RunRecord, at: Timestamp) -> Self {
        LifecycleEvent {
            kind,
            run_id: run.id.clone(),
            workflow: run.workflow.clone(),
            status: run.status.as_str().into(),
            step: None,
            error: None,
            trigger: None,
            detail: None,
            at,
            notices: Vec::new(),
        }
    }
}

/// A signal sent to a run (`POST /runs/{id}/signals/{name}`): kept until a `signal`
/// step waiting for its name takes its data as output — at once if one waits, else
/// when one is reached. Sending again with the same `id` changes nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub name: String,
    /// The sender's id for this signal (a fresh one when it gave none).
    pub id: String,
    pub data: Data,
    /// Who sent it: the IAM principal on AWS, the OS user or `--as` locally.
    pub by: String,
    pub at: Timestamp,
}

/// What a person (or a system acting for one) did, for the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Deploy,
    Undeploy,
    Start,
    Cancel,
    Retry,
    Fork,
    Approve,
    Reject,
    Signal,
    Pause,
    Resume,
}

impl AuditAction {
    /// The action as written: `deploy`, `cancel`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Deploy => "deploy",
            AuditAction::Undeploy => "undeploy",
            AuditAction::Start => "start",
            AuditAction::Cancel => "cancel",
            AuditAction::Retry => "retry",
            AuditAction::Fork => "fork",
            AuditAction::Approve => "approve",
            AuditAction::Reject => "reject",
            AuditAction::Signal => "signal",
            AuditAction::Pause => "pause",
            AuditAction::Resume => "resume",
        }
    }
}

/// One entry of the audit trail: who did what to which workflow (and run, step),
/// and when. Kept with the state, as long as run records are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// The IAM principal on AWS; the OS user or `--as` locally.
    pub actor: String,
    pub action: AuditAction,
    pub workflow: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What else tells the action: a version deployed, a cancel's reason, a retry's
    /// `from`, a signal's name, an approval's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
