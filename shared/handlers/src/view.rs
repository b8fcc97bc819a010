//! A run as users see it: the `braid run --output json` object, also served by
//! `GET /runs/{id}`.

use super::{HandlerResult, Handlers};
use braid_engine::model::{
    AttemptLog, ErrorInfo, Fork, NoticeLog, ParentRef, Redrive, RunId, RunStatus, SlaMiss,
    StepStatus, Timestamp,
};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

/// A run with its steps, outputs loaded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    pub run_id: RunId,
    pub workflow: String,
    pub status: RunStatus,
    pub output: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    pub started_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// For a child run: the run and step that started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    /// Each retry in place, oldest first: who, when, from where, what it ran again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<Redrive>,
    /// For a run forked from another: which, by whom, when, what it ran again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<Fork>,
    /// The notifications sent about it, or given up on, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NoticeLog>,
    /// The SLAs it or its steps missed, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sla_missed: Vec<SlaMiss>,
    /// Steps in workflow file order.
    pub steps: IndexMap<String, StepView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepView {
    pub status: StepStatus,
    pub attempts: u32,
    pub output: Value,
    pub error: Option<ErrorInfo>,
    /// When its first attempt started, and when it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Its attempts that ended before the last, with their errors (see `braid logs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<AttemptLog>,
    /// For a `for_each` step: how many items it ran over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    /// For a step waiting on a person or a system: what for, and how to end the wait
    /// (the commands; an approval's message; its timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Value>,
    /// For a `workflow` step: the child run it started last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_run: Option<RunId>,
}

impl Handlers {
    /// The user-facing view of a run.
    pub async fn run_view(&self, run_id: &RunId) -> HandlerResult<RunView> {
        let run = self.ports.store.get_run(run_id).await?;
        let wf = self.workflow(&run).await?;
        let written = self.ports.store.list_steps(run_id).await?;
        let mut records = braid_engine::records::every_step(&wf, run_id, written);
        records.retain(|r| r.key.index.is_none());
        let mut steps = IndexMap::new();
        for s in &wf.steps {
            let Some(rec) = records.iter().find(|r| r.key.step == s.id) else {
                continue;
            };
            let output = match &rec.output {
                Some(d) => self.load(d).await?,
                None => Value::Null,
            };
            let waiting = match (rec.status, &s.kind) {
                (
                    StepStatus::Waiting,
                    braid_lang::StepKind::Approval { .. }
                    | braid_lang::StepKind::Signal { .. }
                    | braid_lang::StepKind::Workflow { .. },
                ) => Some(self.waiting_for(&run, s, rec).await?),
                _ => None,
            };
            steps.insert(
                s.id.clone(),
                StepView {
                    status: rec.status,
                    // A skipped step's one dispatch only evaluated `when`: no attempt ran.
                    attempts: if rec.status == StepStatus::Skipped {
                        0
                    } else {
                        rec.attempt
                    },
                    output,
                    error: rec.status_error().cloned(),
                    started_at: rec.started_at,
                    finished_at: rec.finished_at,
                    earlier: rec.earlier.clone(),
                    iterations: rec.fan_out.map(|f| f.total),
                    waiting,
                    child_run: rec.child_run.clone(),
                },
            );
        }
        let output = match &run.output {
            Some(d) => self.load(d).await?,
            None => Value::Null,
        };
        Ok(RunView {
            run_id: run.id,
            workflow: run.workflow,
            status: run.status,
            output,
            error: run.error,
            started_at: run.created_at,
            finished_at: run.finished_at,
            parent: run.parent,
            retries: run.redrives,
            forked_from: run.forked_from,
            notifications: run.notices,
            sla_missed: run.sla_missed,
            steps,
        })
    }
}
