//! Child workflows: a `workflow: NAME` step starts a run of the registered workflow
//! `NAME` and waits for it; the child's end resolves the step (its output, or its
//! failure, which the step's retry rules may retry with a new child).
//!
//! The start is idempotent per parent run, step (iteration) and attempt — the child's
//! idempotency key — so a redelivered or resumed attempt finds the child it started.
//! The parent parks, then looks at the child; the child, as it ends, looks at the
//! parent: whichever comes second resolves the step, and the resolution is guarded on
//! the waiting attempt, so doing it twice changes nothing. Telling the parent is part
//! of what follows a run's end (done again by the tick after a crash). A parent step
//! that ends any other way (fail fast, its timeout, its run ending) cancels its child.

use super::eager::FollowUps;
use super::intake::Registry;
use super::transition::Attempt;
use super::{HandlerError, HandlerResult, Handlers, StartRequest};
use braid_engine::lifecycle::{Event, Waiter};
use braid_engine::model::{
    ErrorInfo, MAX_CHILD_DEPTH, Outcome, ParentRef, ResultMsg, RunId, RunRecord, RunStatus,
    StepKey, StepRecord, StepStatus,
};
use braid_lang::{Step, Workflow};
use braid_ports::Outgoing;
use braid_ports::PortError;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

impl Handlers {
    /// Starts (or finds) the child run of attempt `rec` of `workflow` step `step`,
    /// with `input`, and parks the attempt on it.
    pub(super) async fn start_child(
        &self,
        run: &RunRecord,
        step: &Step,
        rec: &StepRecord,
        name: &str,
        input: Value,
    ) -> HandlerResult<Attempt> {
        let depth = run.parent.as_ref().map_or(0, |p| p.depth) + 1;
        if depth > MAX_CHILD_DEPTH {
            return Ok(Attempt::Ended(refused(
                "workflow.depth",
                format!(
                    "step `{}`: a child run would nest {depth} deep, over the limit of {MAX_CHILD_DEPTH}",
                    rec.key
                ),
            )));
        }
        let definition = match self.ports.store.current_definition(name).await {
            Ok(d) => d,
            Err(PortError::NotFound(_)) => {
                return Ok(Attempt::Ended(refused(
                    "workflow.not_found",
                    format!(
                        "step `{}`: workflow `{name}` is not registered (braid deploy FILE registers it)",
                        rec.key
                    ),
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let parent = ParentRef {
            run_id: run.id.clone(),
            key: rec.key.clone(),
            attempt: rec.attempt,
            depth,
            root: Some(run.parent.as_ref().map_or(&run.id, |p| p.root()).clone()),
        };
        let req = StartRequest {
            definition,
            input,
            trigger: json!({"kind": "parent", "run_id": run.id, "step": rec.key.to_string()}),
            idempotency_key: Some(format!("child:{}:{}:{}", run.id, rec.key, rec.attempt)),
            queue: false,
        };
        let started = match self.start_as(req, Registry::Current, Some(parent)).await {
            Ok(s) => s,
            Err(HandlerError::Invalid(m)) => {
                return Ok(Attempt::Ended(refused(
                    "workflow.invalid_input",
                    format!("step `{}`: {m}", rec.key),
                )));
            }
            Err(e) => return Err(e),
        };
        let due = step
            .timeout
            .map(|t| super::waiting::deadline(self.now(), t));
        Ok(Attempt::Parked {
            due,
            child: Some(started.run.id),
            deadline: None,
        })
    }

    /// Tells the parent step of `child`, which has ended, by a result message: the
    /// parent's resolution runs in its own delivery (a chain of nested runs ending at
    /// once never piles up in one call), and at least once (this is part of what
    /// follows the child's end, done again after a crash).
    pub(super) async fn tell_parent(&self, child: &RunRecord) -> HandlerResult<()> {
        let Some(p) = &child.parent else {
            return Ok(());
        };
        let msg = ResultMsg {
            run_id: p.run_id.clone(),
            key: p.key.clone(),
            attempt: p.attempt,
            outcome: self
                .child_outcome(&p.run_id, &p.key, p.attempt, child)
                .await?,
            by: Some(Waiter::ChildRun),
        };
        let body = serde_json::to_string(&msg).expect("messages serialize");
        self.ports
            .results
            .send(vec![Outgoing {
                body,
                delay: Duration::ZERO,
            }])
            .await?;
        Ok(())
    }

    /// Resolves `rec`, waiting on `child`, with the child's end; nothing while the
    /// child goes on or when `rec` waits on another child.
    pub(super) async fn resolve_by_child(
        &self,
        wf: &Workflow,
        run: &RunRecord,
        rec: &StepRecord,
        child: &RunRecord,
    ) -> HandlerResult<()> {
        if !child.status.is_final()
            || rec.status != StepStatus::Waiting
            || rec.child_run.as_ref() != Some(&child.id)
        {
            return Ok(());
        }
        let outcome = self
            .child_outcome(&run.id, &rec.key, rec.attempt, child)
            .await?;
        let event = Event::Resolved {
            attempt: rec.attempt,
            by: Waiter::ChildRun,
            outcome: &outcome,
        };
        self.apply(&FollowUps::none(), wf, run, rec, event).await
    }

    /// The parent step's outcome from its child's end. The output is copied under the
    /// parent's own keys: the parent's payloads live as long as its records.
    async fn child_outcome(
        &self,
        run_id: &RunId,
        key: &StepKey,
        attempt: u32,
        child: &RunRecord,
    ) -> HandlerResult<Outcome> {
        if child.status == RunStatus::Succeeded {
            let value = match &child.output {
                Some(d) => self.load(d).await?,
                None => Value::Null,
            };
            let slot = format!("runs/{run_id}/{key}/{attempt}/output.json");
            return Ok(Outcome::Succeeded {
                output: self.store_value(&slot, value).await?,
            });
        }
        let why = child
            .error
            .as_ref()
            .map(|e| format!(": {}: {}", e.error, e.message))
            .unwrap_or_default();
        Ok(Outcome::Failed {
            error: ErrorInfo::new(
                format!("workflow.{}", child.status),
                format!(
                    "child run {} of `{}` {}{why}",
                    child.id, child.workflow, child.status
                ),
            ),
            // Cancelled by someone: not for the retry rules to undo.
            retryable: child.status != RunStatus::Cancelled,
        })
    }

    /// Cancels the child run of `rec`, a `workflow` step that ended otherwise than by
    /// its child's end, as a cancel request does (its attempts in flight finish). A
    /// child over, or failing (it ends so by itself), is left as it is.
    pub(super) async fn cancel_child(&self, rec: &StepRecord) -> HandlerResult<()> {
        let Some(child) = &rec.child_run else {
            return Ok(());
        };
        let by = format!("run {} (step `{}` {})", rec.run_id, rec.key, rec.status);
        match Box::pin(self.cancel_run(child, &by, Some("its parent step ended"))).await {
            Ok(_) => Ok(()),
            Err(HandlerError::Port(PortError::Conflict(_) | PortError::NotFound(_))) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Refuses registering `wf` when it would call itself through `workflow` steps,
    /// given the registry's other current definitions.
    pub(super) async fn check_no_cycle(&self, wf: &Workflow) -> HandlerResult<()> {
        let mut calls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for def in self.ports.store.current_definitions().await? {
            if def.workflow == wf.name {
                continue;
            }
            // A stored definition that no longer parses calls nothing it can start.
            if let Ok(other) = self.parse_cached(&def) {
                calls.insert(other.name.clone(), children_of(&other));
            }
        }
        calls.insert(wf.name.clone(), children_of(wf));
        if let Some(path) = cycle_from(&wf.name, &calls) {
            return Err(HandlerError::Invalid(format!(
                "workflow `{}` would call itself: {}",
                wf.name,
                path.join(" → ")
            )));
        }
        Ok(())
    }
}

/// The workflows `wf`'s `workflow` steps start.
fn children_of(wf: &Workflow) -> BTreeSet<String> {
    wf.steps
        .iter()
        .filter_map(|s| match &s.kind {
            braid_lang::StepKind::Workflow { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// A path of calls from `start` back to itself, if there is one.
fn cycle_from(start: &str, calls: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        calls: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in calls.get(at).into_iter().flatten() {
            path.push(next.clone());
            if next == start || (seen.insert(next.clone()) && walk(next, start, calls, path, seen))
            {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(start, start, calls, &mut path, &mut BTreeSet::new()).then_some(path)
}

/// A failure no retry can change.
fn refused(error: &str, message: String) -> Outcome {
    Outcome::Failed {
        error: ErrorInfo::new(error, message),
        retryable: false,
    }
}

#[cfg(test)]
mod tests {
    use super::cycle_from;
    use std::collections::{BTreeMap, BTreeSet};

    fn calls(edges: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        edges
            .iter()
            .map(|(a, bs)| (a.to_string(), bs.iter().map(|b| b.to_string()).collect()))
            .collect()
    }

    #[test]
    fn a_call_back_to_the_start_is_a_cycle_with_its_path() {
        let c = calls(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        assert_eq!(
            cycle_from("a", &c),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(
            cycle_from("a", &calls(&[("a", &["a"])])),
            Some(vec!["a".into(), "a".into()])
        );
    }

    #[test]
    fn shared_children_and_cycles_elsewhere_are_not_the_starts_cycle() {
        let c = calls(&[("a", &["b", "c"]), ("b", &["d"]), ("c", &["d"]), ("d", &[])]);
        assert_eq!(cycle_from("a", &c), None);
        let elsewhere = calls(&[("a", &["b"]), ("b", &["c"]), ("c", &["b"])]);
        assert_eq!(cycle_from("a", &elsewhere), None);
    }
}
