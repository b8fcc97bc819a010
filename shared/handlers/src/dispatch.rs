//! Dispatch: render a ready step's fields, run its task — claiming the attempt with a
//! guarded write once it has run a while (see [`claim_mode`]) — and record the outcome
//! (see [`super::complete`]).

use super::{HandlerError, HandlerResult, Handlers, span};
use braid_engine::gates;
use braid_engine::model::{
    DispatchMsg, ErrorInfo, Outcome, ResultMsg, RunRecord, StepRecord, StepStatus,
};
use braid_lang::expr::ExprError;
use braid_lang::{Step, StepKind, WaitFor};
use braid_ports::{Guard, PortError, Task, TaskError};
use serde_json::Value;
use std::time::Duration;

/// Extra lease beyond a step's timeout, so the dispatcher's own timeout fires first.
const LEASE_GRACE: Duration = Duration::from_secs(30);

fn expr_failure(step: &Step, field: &str, text: &str, e: &ExprError) -> Outcome {
    Outcome::Failed {
        error: ErrorInfo::new(
            "expression",
            format!(
                "step `{}`, field `{field}`: expression `{}` failed: {}",
                step.id,
                text.trim(),
                e.message
            ),
        ),
        retryable: false,
    }
}

fn task_failure(e: TaskError) -> Outcome {
    Outcome::Failed {
        retryable: e.retryable,
        error: ErrorInfo {
            error: e.error,
            message: e.message,
        },
    }
}

impl Handlers {
    /// Handles a "ready" message. Duplicate, stale and early messages change nothing.
    pub async fn dispatch(&self, msg: &DispatchMsg) -> HandlerResult<()> {
        self.dispatch_delivery(msg, false).await
    }

    /// Handles a "ready" message; `redelivered` when this very message was received
    /// before (its handler failed or died): an attempt it had claimed is resumed, not
    /// left running until its lease runs out (so is one a message marked `resume`
    /// hands on). A duplicate copy of a message is a new message, so a step whose
    /// attempt is running elsewhere is not run twice by it; of two copies resuming an
    /// attempt, one takes it over (the lease is compared and set).
    pub async fn dispatch_delivery(
        &self,
        msg: &DispatchMsg,
        redelivered: bool,
    ) -> HandlerResult<()> {
        self.dispatch_eagerly(msg, redelivered).await
    }

    /// Handles one "ready" message (see [`Handlers::dispatch_delivery`]); `known_run`
    /// and `known_rec` are its run and step when the caller has just read or written
    /// them.
    pub(super) async fn dispatch_one(
        &self,
        msg: &DispatchMsg,
        known_run: Option<RunRecord>,
        known_rec: Option<StepRecord>,
        redelivered: bool,
    ) -> HandlerResult<()> {
        let now = self.now();
        let run = match known_run {
            Some(run) => run,
            // Dispatches starting at the same moment (a batch of one run's messages, a
            // fan-out's first wave) share one read. A copy a moment old is all they
            // need: what they write is guarded, and an outcome's write reads the run
            // again.
            None => {
                let id = &msg.run_id;
                self.run_reads
                    .get(id, async {
                        let run = self.ports.store.get_run(id).await;
                        self.run_reads.forget(id);
                        run
                    })
                    .await?
            }
        };
        if run.status.is_final() {
            return Ok(());
        }
        let rec = match known_rec {
            Some(rec) => rec,
            None => match self.step_or_iteration(&msg.run_id, &msg.key).await? {
                Some(rec) => rec,
                None => return Ok(()),
            },
        };
        let wf = self.workflow(&run).await?;
        let Some(step) = wf.step(&msg.key.step) else {
            return Ok(());
        };
        match rec.status {
            StepStatus::Waiting if rec.attempt == msg.attempt => return self.wake(&rec, now).await,
            StepStatus::Ready | StepStatus::Retrying if rec.attempt + 1 == msg.attempt => {}
            // An iteration's first attempt is claimed straight from pending: the end of
            // the one before it in its lane sent the message (see `FanOut`).
            StepStatus::Pending
                if rec.key.index.is_some() && rec.attempt == 0 && msg.attempt == 1 => {}
            // So is a step whose release was not written: the delivery of the step that
            // released it runs it next (see `settle`), its needs met in memory.
            StepStatus::Pending
                if rec.key.index.is_none()
                    && rec.attempt == 0
                    && msg.attempt == 1
                    && gates::is_ready(step, &rec.satisfied) => {}
            StepStatus::Running if (redelivered || msg.resume) && rec.attempt == msg.attempt => {}
            _ => return Ok(()),
        }
        if run.failing {
            // Not started, so never to start (an iteration's end tells its fan-out).
            return self.cancel(&wf, &rec).await;
        }
        if let Some(due) = rec.due_at
            && due > now
        {
            let wait = (due - now).to_std().unwrap_or_default();
            return self.send_dispatch(vec![(msg.clone(), wait)]).await;
        }
        let lease = step.timeout.unwrap_or(self.settings.default_lease) + LEASE_GRACE;
        let claimed = StepRecord {
            status: StepStatus::Running,
            attempt: msg.attempt,
            lease_until: Some(now + span(lease)),
            due_at: None,
            started_at: rec.started_at.or(Some(now)),
            ..rec.clone()
        };
        // The claim: only one dispatcher moves this attempt from ready to running (or,
        // resuming, renews the lease of the attempt this message had claimed). It is
        // written only once the task has run for `gates::CLAIM_DELAY`: most end sooner,
        // and their outcome is written straight over the record as read, guarded on it,
        // one write instead of two. Until then the attempt's lease is the message's
        // (its visibility timeout, or the sweeper's re-send of a follow-up). A pure step
        // is never claimed: its outcome is a rendering with no effect outside.
        let stored = Guard::unchanged(&rec);
        let running = Guard::at(&[StepStatus::Running], claimed.attempt);
        let outcome = match claim_mode(step, &rec) {
            Claim::Never => self
                .execute(&run, step, &claimed)
                .await?
                .map(|o| (stored, o)),
            Claim::First => {
                if !self.ports.store.update_step(&stored, &claimed).await? {
                    return Ok(());
                }
                self.execute(&run, step, &claimed)
                    .await?
                    .map(|o| (running, o))
            }
            Claim::Late => {
                let task = self.execute(&run, step, &claimed);
                tokio::pin!(task);
                tokio::select! {
                    done = &mut task => done?.map(|o| (stored, o)),
                    () = tokio::time::sleep(gates::CLAIM_DELAY) => {
                        // Another copy of the message took the attempt, or the step
                        // moved on (fail fast cancelled it): this run of it stops.
                        if !self.ports.store.update_step(&stored, &claimed).await? {
                            return Ok(());
                        }
                        task.await?.map(|o| (running, o))
                    }
                }
            }
        };
        if let Some((held, outcome)) = outcome {
            let outcome = self.bound_outcome(&claimed, outcome).await?;
            // Recorded here, not sent on: an outcome that only lived in a message could
            // be lost with it, and the attempt would have to wait out its lease.
            let msg = ResultMsg {
                run_id: run.id.clone(),
                key: claimed.key.clone(),
                attempt: claimed.attempt,
                outcome,
            };
            self.record_held(&wf, &held, claimed, &msg).await?;
        }
        Ok(())
    }

    /// A waiting step's wake-up: when due, its outcome goes to the result queue (the
    /// completer records it); else it waits again.
    async fn wake(
        &self,
        rec: &StepRecord,
        now: braid_engine::model::Timestamp,
    ) -> HandlerResult<()> {
        let due = rec.due_at.unwrap_or(now);
        if due > now {
            let msg = DispatchMsg {
                run_id: rec.run_id.clone(),
                key: rec.key.clone(),
                attempt: rec.attempt,
                resume: false,
            };
            return self
                .send_dispatch(vec![(msg, (due - now).to_std().unwrap_or_default())])
                .await;
        }
        self.send_result(&ResultMsg {
            run_id: rec.run_id.clone(),
            key: rec.key.clone(),
            attempt: rec.attempt,
            outcome: Outcome::Succeeded {
                output: braid_engine::model::Data::Inline(Value::Null),
            },
        })
        .await
    }

    /// Runs a claimed attempt; `None` when the step parked itself (a `wait`).
    async fn execute(
        &self,
        run: &RunRecord,
        step: &Step,
        rec: &StepRecord,
    ) -> HandlerResult<Option<Outcome>> {
        let iteration = rec.key.index.is_some();
        let scope = self
            .scope(
                run,
                if iteration {
                    &step.task_reads
                } else {
                    &step.reads
                },
                iteration.then_some(rec),
            )
            .await?;
        let r = &self.renderer;
        let base = format!("runs/{}/{}", run.id, rec.key.step);
        let slot = match rec.key.index {
            Some(i) => format!("{base}/{i}/{}", rec.attempt),
            None => format!("{base}/{}", rec.attempt),
        };
        if !iteration {
            if let Some(when) = &step.when {
                match r.truthy(when, &scope) {
                    Ok(false) => return Ok(Some(Outcome::Skipped)),
                    Ok(true) => {}
                    Err(e) => return Ok(Some(expr_failure(step, "when", when, &e))),
                }
            }
            if let Some(list) = &step.for_each {
                return Ok(Some(match r.list(list, &scope) {
                    Ok(items) => {
                        let total = u32::try_from(items.len()).unwrap_or(u32::MAX);
                        let items = self
                            .store_value(&format!("{slot}/items.json"), Value::Array(items))
                            .await?;
                        Outcome::Expanded { items, total }
                    }
                    Err(e) => expr_failure(step, "for_each", list, &e),
                }));
            }
        }
        let rendered = |field: &str, v: &Value| {
            r.render(v, &scope)
                .map_err(|e| (field.to_string(), v.to_string(), e))
        };
        let task = match &step.kind {
            StepKind::Pass { value } => {
                return Ok(Some(match rendered("pass", value) {
                    Ok(v) => Outcome::Succeeded {
                        output: self.store_value(&format!("{slot}/output.json"), v).await?,
                    },
                    Err((f, t, e)) => expr_failure(step, &f, &t, &e),
                }));
            }
            StepKind::Fail { error, message } => {
                let msg = message
                    .clone()
                    .unwrap_or_else(|| format!("step `{}` failed", step.id));
                let rendered_err = rendered("fail.error", &Value::String(error.clone()));
                let rendered_msg = rendered("fail.message", &Value::String(msg));
                return Ok(Some(match (rendered_err, rendered_msg) {
                    (Ok(e), Ok(m)) => Outcome::Failed {
                        error: ErrorInfo::new(as_text(e), as_text(m)),
                        retryable: false,
                    },
                    (Err((f, t, e)), _) | (_, Err((f, t, e))) => expr_failure(step, &f, &t, &e),
                }));
            }
            StepKind::Wait(w) => return self.park(step, rec, w, &scope).await,
            StepKind::Http(call) => {
                let mut parts = Vec::new();
                for (field, v) in [
                    ("http.url", Value::String(call.url.clone())),
                    (
                        "http.headers",
                        serde_json::to_value(&call.headers).unwrap_or_default(),
                    ),
                    ("http.json", call.json.clone().unwrap_or(Value::Null)),
                    (
                        "http.body",
                        call.body.clone().map(Value::String).unwrap_or(Value::Null),
                    ),
                ] {
                    match rendered(field, &v) {
                        Ok(x) => parts.push(x),
                        Err((f, t, e)) => return Ok(Some(expr_failure(step, &f, &t, &e))),
                    }
                }
                let [url, headers, json, body]: [Value; 4] = parts.try_into().expect("four parts");
                Task::Http {
                    method: call.method.clone(),
                    url: as_text(url),
                    headers: serde_json::from_value(headers).unwrap_or_default(),
                    json: call.json.as_ref().map(|_| json),
                    body: call.body.as_ref().map(|_| as_text(body)),
                    timeout: call.timeout,
                    expect: call.expect.clone(),
                }
            }
            StepKind::Lambda { function } => {
                let payload = match step
                    .input
                    .as_ref()
                    .map(|i| rendered("input", i))
                    .transpose()
                {
                    Ok(p) => p.unwrap_or(Value::Object(Default::default())),
                    Err((f, t, e)) => return Ok(Some(expr_failure(step, &f, &t, &e))),
                };
                let function = match rendered("lambda", &Value::String(function.clone())) {
                    Ok(f) => as_text(f),
                    Err((f, t, e)) => return Ok(Some(expr_failure(step, &f, &t, &e))),
                };
                Task::Lambda { function, payload }
            }
            // Refused at intake; only a run begun by an older definition reaches here.
            StepKind::Approval { .. } | StepKind::Signal { .. } | StepKind::Workflow { .. } => {
                return Ok(Some(Outcome::Failed {
                    error: ErrorInfo::new(
                        "unsupported",
                        format!(
                            "step `{}`: `{}` steps are not supported by this version of Braid",
                            step.id,
                            step.kind.name()
                        ),
                    ),
                    retryable: false,
                }));
            }
        };
        // Only the dispatcher receives "ready" messages; a process without runners that
        // meets a task is wired wrong. Nothing is recorded: the message comes back.
        let Some(tasks) = &self.ports.tasks else {
            return Err(HandlerError::Port(PortError::backend_msg(format!(
                "step `{}`: this process runs no tasks (the step dispatcher does)",
                step.id
            ))));
        };
        let runner = match task {
            Task::Http { .. } => &tasks.http,
            Task::Lambda { .. } => &tasks.lambda,
        };
        let result = match step.timeout {
            Some(limit) => match tokio::time::timeout(limit, runner.run(&task)).await {
                Ok(r) => r,
                Err(_) => Err(TaskError::retryable(
                    "timeout",
                    format!(
                        "step `{}` attempt {} exceeded its timeout of {}",
                        step.id,
                        rec.attempt,
                        braid_lang::format_duration(limit)
                    ),
                )),
            },
            None => runner.run(&task).await,
        };
        Ok(Some(match result {
            Ok(v) => Outcome::Succeeded {
                output: self.store_value(&format!("{slot}/output.json"), v).await?,
            },
            Err(e) => task_failure(e),
        }))
    }

    /// Parks a `wait` step until its time: a record change and a delayed message, no
    /// sleeping thread. Waits beyond the queue's longest delay are woken by the sweeper.
    async fn park(
        &self,
        step: &Step,
        rec: &StepRecord,
        w: &WaitFor,
        scope: &braid_lang::expr::Scope,
    ) -> HandlerResult<Option<Outcome>> {
        let now = self.now();
        let due = match w {
            WaitFor::Duration(d) => now + span(*d),
            WaitFor::Until(text) => {
                let v = match self.renderer.render(&Value::String(text.clone()), scope) {
                    Ok(v) => as_text(v),
                    Err(e) => return Ok(Some(expr_failure(step, "wait.until", text, &e))),
                };
                match chrono::DateTime::parse_from_rfc3339(&v) {
                    Ok(t) => t.with_timezone(&chrono::Utc),
                    Err(_) => {
                        return Ok(Some(Outcome::Failed {
                            error: ErrorInfo::new(
                                "invalid_input",
                                format!(
                                    "step `{}`: wait.until `{v}` is not an RFC 3339 timestamp",
                                    step.id
                                ),
                            ),
                            retryable: false,
                        }));
                    }
                }
            }
        };
        let waiting = StepRecord {
            status: StepStatus::Waiting,
            lease_until: None,
            due_at: Some(due),
            ..rec.clone()
        };
        if self
            .ports
            .store
            .update_step(&Guard::at(&[StepStatus::Running], rec.attempt), &waiting)
            .await?
        {
            let msg = DispatchMsg {
                run_id: rec.run_id.clone(),
                key: rec.key.clone(),
                attempt: rec.attempt,
                resume: false,
            };
            let delay = (due - now).to_std().unwrap_or_default();
            if delay <= self.settings.max_queue_delay {
                self.send_dispatch(vec![(msg, delay)]).await?;
            }
        }
        Ok(None)
    }
}

/// When a dispatcher claims the attempt it runs (see [`Handlers::dispatch_one`]).
enum Claim {
    /// A pure step (`pass`, `fail`, a `for_each` expansion) only renders values.
    Never,
    /// Before anything runs: a `wait` parks on its claim, and an attempt already
    /// running is resumed by renewing its lease.
    First,
    /// Once the task has run for [`gates::CLAIM_DELAY`].
    Late,
}

fn claim_mode(step: &Step, rec: &StepRecord) -> Claim {
    if rec.status == StepStatus::Running || matches!(step.kind, StepKind::Wait(_)) {
        Claim::First
    } else if matches!(step.kind, StepKind::Pass { .. } | StepKind::Fail { .. })
        || (step.for_each.is_some() && rec.key.index.is_none())
    {
        Claim::Never
    } else {
        Claim::Late
    }
}

/// A rendered value as text: strings as they are, anything else as JSON.
fn as_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}
