//! Waiting on people and systems: an `approval` step waits for a decision, a `signal`
//! step for a signal of its name. Both park as `waiting` (nothing runs, nothing is
//! billed) and end by the lifecycle's `Resolved` event, guarded on the waiting attempt,
//! so a decision or signal that comes twice, late or after the timeout changes
//! nothing. A signal sent before its step is reached is kept by the store and taken
//! when the step parks — or, when that look is cut short by a failed call or a crash,
//! by the next message for the waiting step (its redelivery, its timeout).

use super::audit::Target;
use super::eager::FollowUps;
use super::transition::Attempt;
use super::{HandlerResult, Handlers, span};
use braid_engine::lifecycle::{Event, Waiter};
use braid_engine::model::{
    AuditAction, ErrorInfo, EventKind, LifecycleEvent, Outcome, RunId, RunRecord, Signal, StepKey,
    StepRecord, StepStatus, Timestamp,
};
use braid_lang::{Step, StepKind, Workflow};
use braid_ports::PortError;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Duration;

/// A person's decision on a waiting approval.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub approve: bool,
    /// Who decided: the IAM principal on AWS, the OS user or `--as` locally, `link`
    /// for a signed link.
    pub by: String,
    pub comment: Option<String>,
}

/// A signal to send to a run.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalRequest {
    pub name: String,
    pub data: Value,
    /// The sender's id: sending again with it changes nothing. A fresh one if none.
    pub id: Option<String>,
    pub by: String,
}

/// What a signal came to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SignalSent {
    pub run_id: RunId,
    pub name: String,
    pub id: String,
    /// The steps it ended now (a step reached later takes it then).
    pub ended: Vec<String>,
}

impl Handlers {
    /// Approves or rejects waiting approval `step` (`id` or `id[i]`) of run `run_id`,
    /// and returns the step as the decision left it. Not found: the run or step; a
    /// conflict: the run is over or the step is not waiting (already decided, timed
    /// out, not reached yet).
    pub async fn decide(
        &self,
        run_id: &RunId,
        step: &str,
        d: &Decision,
    ) -> HandlerResult<StepRecord> {
        self.decide_attempt(run_id, step, d, None).await
    }

    /// [`Handlers::decide`], on waiting attempt `attempt` only when given (what an
    /// approval link was made for): another attempt is a conflict.
    pub(super) async fn decide_attempt(
        &self,
        run_id: &RunId,
        step: &str,
        d: &Decision,
        attempt: Option<u32>,
    ) -> HandlerResult<StepRecord> {
        let (run, wf, rec) = self.waiting_approval_attempt(run_id, step, attempt).await?;
        // A link is its own credential (sent to whoever should decide); a direct
        // decision must come from one of the approvers, when the step names them.
        if let Some(StepKind::Approval { approvers, .. }) = wf.step(&rec.key.step).map(|s| &s.kind)
            && attempt.is_none()
            && !approvers.is_empty()
            && !approvers.iter().any(|a| is_approver(&d.by, a))
        {
            return Err(super::HandlerError::Forbidden(format!(
                "{} may not decide step `{}`: its approvers are {}",
                d.by,
                rec.key,
                approvers.join(", ")
            )));
        }
        let now = self.now();
        let decision = if d.approve { "approved" } else { "rejected" };
        let record = json!({
            "decision": decision,
            "by": d.by,
            "comment": d.comment,
            "at": now,
        });
        let outcome = if d.approve {
            let key = format!("runs/{}/{}/{}/decision.json", run.id, rec.key, rec.attempt);
            Outcome::Succeeded {
                output: self.store_value(&key, record.clone()).await?,
            }
        } else {
            let comment = d
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            Outcome::Failed {
                error: ErrorInfo::new(
                    "approval.rejected",
                    format!("step `{}` was rejected by {}{comment}", rec.key, d.by),
                ),
                retryable: false,
            }
        };
        let after = self
            .resolve(&wf, &run, &rec, Waiter::Approval, &outcome)
            .await?;
        let action = match d.approve {
            true => AuditAction::Approve,
            false => AuditAction::Reject,
        };
        let target = Target {
            workflow: &run.workflow,
            run_id: Some(&run.id),
            step: Some(step),
            detail: d.comment.as_deref(),
        };
        self.audit_action(action, &d.by, target).await;
        self.publish(
            &run,
            vec![LifecycleEvent::of_step(
                EventKind::StepDecided,
                &run,
                &after,
                record,
                now,
            )],
        )
        .await;
        Ok(after)
    }

    /// Sends signal `req` to run `run_id`: kept for the run, and ending every step
    /// that waits for its name now. Not found: the run, or a step waiting for that
    /// name; a conflict: the run is over, or a signal of that name with another id
    /// was sent before.
    pub async fn signal(&self, run_id: &RunId, req: SignalRequest) -> HandlerResult<SignalSent> {
        let run = self.ports.store.get_run(run_id).await?;
        if run.status.is_final() {
            // Sent again with its id after it ended the run: the same signal.
            if let Some(id) = &req.id
                && let Some(kept) = self.ports.store.get_signal(run_id, &req.name).await?
                && kept.id == *id
            {
                return Ok(SignalSent {
                    run_id: run_id.clone(),
                    name: req.name,
                    id: id.clone(),
                    ended: Vec::new(),
                });
            }
            return Err(PortError::Conflict(format!(
                "run {run_id} is {}: it takes no more signals",
                run.status
            ))
            .into());
        }
        let wf = self.workflow(&run).await?;
        let steps: Vec<&Step> = wf
            .steps
            .iter()
            .filter(|s| matches!(&s.kind, StepKind::Signal { name, .. } if *name == req.name))
            .collect();
        if steps.is_empty() {
            return Err(PortError::NotFound(format!(
                "workflow `{}` has no step waiting for signal `{}`",
                wf.name, req.name
            ))
            .into());
        }
        let now = self.now();
        let id = req
            .id
            .clone()
            .unwrap_or_else(|| self.ports.ids.run_id(now).to_string());
        let data = self
            .store_value(
                &format!("runs/{run_id}/signals/{}.json", req.name),
                req.data,
            )
            .await?;
        let sent = Signal {
            name: req.name.clone(),
            id: id.clone(),
            data,
            by: req.by.clone(),
            at: now,
        };
        let kept = self.ports.store.put_signal(run_id, &sent).await?;
        if kept.id != id {
            return Err(PortError::Conflict(format!(
                "signal `{}` was sent to run {run_id} before (id {}, at {}); a run takes one signal of each name",
                req.name, kept.id, kept.at
            ))
            .into());
        }
        let target = Target {
            workflow: &run.workflow,
            run_id: Some(run_id),
            detail: Some(&req.name),
            ..Target::default()
        };
        self.audit_action(AuditAction::Signal, &req.by, target)
            .await;
        let mut ended = Vec::new();
        for step in steps {
            let rec = self.step_record(run_id, &step.id).await?;
            if rec.status != StepStatus::Waiting {
                continue;
            }
            let after = self.take_signal(&wf, &run, &rec, &kept).await?;
            if after.status.is_final() && after.attempt == rec.attempt {
                ended.push(step.id.clone());
            }
        }
        Ok(SignalSent {
            run_id: run_id.clone(),
            name: req.name,
            id,
            ended,
        })
    }

    /// An approval or signal step's attempt: it parks until its timeout (for good
    /// without one); the wait is announced once the park is recorded.
    pub(super) fn park_for(&self, step: &Step) -> Attempt {
        let timeout = match &step.kind {
            StepKind::Approval { timeout, .. } | StepKind::Signal { timeout, .. } => *timeout,
            _ => None,
        };
        Attempt::Parked {
            due: timeout.map(|t| deadline(self.now(), t)),
            child: None,
            deadline: None,
        }
    }

    /// Carries out the lifecycle's `Waiting` effect for `rec`, just parked: publishes
    /// `step.waiting` with what it waits for, and gives a signal step the signal sent
    /// before it was reached, a `workflow` step the end of a child already over.
    pub(super) async fn announce_wait(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        step: &Step,
        rec: &StepRecord,
    ) -> HandlerResult<()> {
        let detail = self.waiting_for(run, step, rec).await?;
        self.publish(
            run,
            vec![LifecycleEvent::of_step(
                EventKind::StepWaiting,
                run,
                rec,
                detail,
                self.now(),
            )],
        )
        .await;
        self.take_early_end(wf, run, step, rec).await?;
        Ok(())
    }

    /// Ends waiting `rec` with what came before it parked, if anything did: a signal
    /// kept for the run, a callback kept for the attempt, a child run already over;
    /// whether it did. Done as the step parks, and again on each of its messages (a
    /// redelivery, its timeout): the look at parking may be cut short (a failed call,
    /// a crash), and what came is sent once.
    pub(super) async fn take_early_end(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        step: &Step,
        rec: &StepRecord,
    ) -> HandlerResult<bool> {
        match &step.kind {
            StepKind::Signal { name, .. } => {
                if let Some(sent) = self.ports.store.get_signal(&run.id, name).await? {
                    self.take_signal(wf, run, rec, &sent).await?;
                    return Ok(true);
                }
            }
            StepKind::Lambda { .. } | StepKind::Http(_) if step.callback.is_some() => {
                return self.take_early_callback(wf, run, rec).await;
            }
            StepKind::Workflow { .. } => {
                if let Some(child) = &rec.child_run {
                    let child = self.ports.store.get_run(child).await?;
                    if child.status.is_final() {
                        self.resolve_by_child(wf, run, rec, &child).await?;
                        return Ok(true);
                    }
                }
            }
            _ => {}
        }
        Ok(false)
    }

    /// What waiting step `rec` waits for, as `step.waiting` and the run view tell it.
    pub(super) async fn waiting_for(
        &self,
        run: &RunRecord,
        step: &Step,
        rec: &StepRecord,
    ) -> HandlerResult<Value> {
        let until = rec.due_at;
        Ok(match &step.kind {
            StepKind::Approval { message, .. } => {
                let message = match message {
                    Some(m) => Some(self.render_text(run, step, rec, m).await?),
                    None => None,
                };
                let mut detail = json!({
                    "for": "approval",
                    "message": message,
                    "timeout_at": until,
                    "approve": format!("braid approve {} {}", run.id, rec.key),
                    "reject": format!("braid reject {} {}", run.id, rec.key),
                });
                if let Some(links) = self.approval_links(run, rec).await? {
                    detail["approve_url"] = json!(links.approve);
                    detail["reject_url"] = json!(links.reject);
                }
                detail
            }
            StepKind::Signal { name, .. } => json!({
                "for": "signal",
                "name": name,
                "timeout_at": until,
                "send": format!("braid signal {} {name} --data JSON", run.id),
            }),
            StepKind::Lambda { .. } | StepKind::Http(_) => json!({
                "for": "callback",
                "timeout_at": rec.wait_deadline,
                "heartbeat_due": rec.due_at.filter(|d| Some(*d) != rec.wait_deadline),
            }),
            StepKind::Workflow { name } => json!({
                "for": "workflow",
                "workflow": name,
                "run_id": rec.child_run,
                "timeout_at": until,
            }),
            _ => json!({ "for": step.kind.name(), "until": until }),
        })
    }

    /// Ends signal step `rec` (waiting) with the data of `sent`; the step as after.
    async fn take_signal(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        rec: &StepRecord,
        sent: &Signal,
    ) -> HandlerResult<StepRecord> {
        let outcome = Outcome::Succeeded {
            output: sent.data.clone(),
        };
        self.resolve(wf, run, rec, Waiter::Signal, &outcome).await
    }

    /// Applies `Resolved` by `by` with `outcome` to waiting `rec`; the step as after
    /// (unchanged when the attempt was no longer waiting).
    async fn resolve(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        rec: &StepRecord,
        by: Waiter,
        outcome: &Outcome,
    ) -> HandlerResult<StepRecord> {
        let event = Event::Resolved {
            attempt: rec.attempt,
            by,
            outcome,
        };
        self.apply(&FollowUps::none(), wf, run, rec, event).await?;
        Ok(self.ports.store.get_step(&run.id, &rec.key).await?)
    }

    /// Run `run_id`, its workflow and the record of approval `step`, which must be
    /// waiting (in `attempt`, when given).
    pub(super) async fn waiting_approval_attempt(
        &self,
        run_id: &RunId,
        step: &str,
        attempt: Option<u32>,
    ) -> HandlerResult<(RunRecord, std::sync::Arc<Workflow>, StepRecord)> {
        let run = self.ports.store.get_run(run_id).await?;
        let wf = self.workflow(&run).await?;
        let key = parse_key(step);
        let Some(def) = wf.step(&key.step) else {
            return Err(PortError::NotFound(format!(
                "run {run_id} (workflow `{}`) has no step `{}`",
                wf.name, key.step
            ))
            .into());
        };
        if !matches!(def.kind, StepKind::Approval { .. }) {
            return Err(invalid_kind(def, "an approval"));
        }
        if run.status.is_final() {
            return Err(PortError::Conflict(format!("run {run_id} is {}", run.status)).into());
        }
        let rec = match self.step_or_iteration(run_id, &key, None).await? {
            Some(rec) => rec,
            None => {
                return Err(
                    PortError::NotFound(format!("run {run_id} has no step `{key}`")).into(),
                );
            }
        };
        if rec.status != StepStatus::Waiting {
            let why = match rec.status {
                StepStatus::Succeeded | StepStatus::Failed => "it was decided already",
                StepStatus::Pending | StepStatus::Ready => "it has not been reached yet",
                _ => "it is not waiting",
            };
            return Err(PortError::Conflict(format!(
                "step `{key}` of run {run_id} is {}: {why}",
                rec.status
            ))
            .into());
        }
        if let Some(attempt) = attempt.filter(|a| *a != rec.attempt) {
            return Err(PortError::Conflict(format!(
                "attempt {attempt} of step `{key}` of run {run_id} is over; attempt {} waits now",
                rec.attempt
            ))
            .into());
        }
        Ok((run, wf, rec))
    }

    /// `text` rendered in `step`'s scope; the text as written if it does not render.
    async fn render_text(
        &self,
        run: &RunRecord,
        step: &Step,
        rec: &StepRecord,
        text: &str,
    ) -> HandlerResult<String> {
        let item = rec.key.index.map(|_| rec);
        let reads = if item.is_some() {
            &step.task_reads
        } else {
            &step.reads
        };
        let scope = self.scope(run, reads, item).await?;
        Ok(
            match self.renderer.render(&Value::String(text.into()), &scope) {
                Ok(Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(_) => text.to_string(),
            },
        )
    }
}

/// `now` plus `timeout`, saturating far in the future.
pub(super) fn deadline(now: Timestamp, timeout: Duration) -> Timestamp {
    now.checked_add_signed(span(timeout))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// `id` or `id[i]` as a step key.
pub(super) fn parse_key(step: &str) -> StepKey {
    if let Some((id, rest)) = step.split_once('[')
        && let Some(Ok(i)) = rest.strip_suffix(']').map(str::parse::<u32>)
    {
        return StepKey::iteration(id, i);
    }
    StepKey::step(step)
}

fn invalid_kind(step: &Step, what: &str) -> super::HandlerError {
    super::HandlerError::Invalid(format!(
        "step `{}` is a `{}` step, not {what}",
        step.id,
        step.kind.name()
    ))
}

/// Whether `by` (a name, or an IAM principal such as `arn:aws:iam::1:user/ana`) is
/// `approver` (a whole principal, or a name matching a principal's last part).
fn is_approver(by: &str, approver: &str) -> bool {
    by == approver
        || by
            .rsplit_once('/')
            .is_some_and(|(_, name)| name == approver)
}
