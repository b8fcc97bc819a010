//! Dispatch: a "ready" message's arrival goes to the step lifecycle (see
//! [`super::transition`]), which claims the attempt; this module renders the step's
//! fields and runs its task ([`Handlers::execute`]).

use super::eager::FollowUps;
use super::transition::Attempt;
use super::{HandlerError, HandlerResult, Handlers, span};
use braid_engine::lifecycle::{Event, is_pure};
use braid_engine::model::{
    CancelRequest, DispatchMsg, ErrorInfo, Outcome, RunId, RunRecord, StepRecord, StepStatus,
};
use braid_engine::trace;
use braid_lang::expr::ExprError;
use braid_lang::{Step, StepKind, WaitFor};
use braid_ports::{Invocation, PortError, Task, TaskError};
use serde_json::Value;

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

    /// Handles one "ready" message (see [`Handlers::dispatch_delivery`]) in the delivery
    /// keeping follow-ups in `fu`; `known_run` and `known_rec` are its run and step when
    /// the caller has just read or written them.
    pub(super) async fn dispatch_one(
        &self,
        fu: &FollowUps,
        msg: &DispatchMsg,
        known_run: Option<RunRecord>,
        known_rec: Option<StepRecord>,
        redelivered: bool,
    ) -> HandlerResult<()> {
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
        // A run retried in place expanded its fan-outs again, and a message of an
        // earlier expansion may still come: an iteration with no record is then taken
        // from its step as now recorded, never from an expansion kept before.
        if !run.redrives.is_empty() && msg.key.index.is_some() {
            self.forget_expansion(&msg.run_id, &msg.key.step);
        }
        let base = Some(msg.attempt.saturating_sub(1));
        let rec = match (known_rec, msg.key.index) {
            (Some(rec), _) => Some(rec),
            (None, Some(index)) if msg.unwritten && !redelivered => {
                self.unwritten_iteration(&msg.run_id, &msg.key.step, index, base)
                    .await?
            }
            (None, _) => self.step_or_iteration(&msg.run_id, &msg.key, base).await?,
        };
        let Some(rec) = rec else {
            return Ok(());
        };
        let wf = self.workflow(&run).await?;
        // Only the dispatcher receives "ready" messages; a process without runners that
        // meets a task is wired wrong. Nothing is claimed: the message comes back.
        if self.ports.tasks.is_none()
            && let Some(step) = wf.step(&msg.key.step)
            && !is_pure(step, &rec)
            && matches!(step.kind, StepKind::Http(_) | StepKind::Lambda { .. })
        {
            return Err(no_runners(step));
        }
        // What ended a wait before the step parked (an early signal or callback, a
        // child over) is looked for as it parks; that look may be cut short (a failed
        // call, a crash) and what came is sent once: each message for the waiting step
        // — a redelivery, its timeout — looks again first, so it is neither lost to
        // the timeout nor waited for forever.
        if rec.status == StepStatus::Waiting
            && rec.attempt == msg.attempt
            && let Some(step) = wf.step(&msg.key.step)
            && self.take_early_end(&wf, &run, step, &rec).await?
        {
            return Ok(());
        }
        let again = redelivered || msg.resume;
        self.apply(fu, &wf, &run, &rec, Event::Arrived { msg, again })
            .await
    }

    /// Runs attempt `rec` (claimed, or a pure step's): renders the step and calls its
    /// task. A `wait` step parks instead.
    pub(super) async fn execute(
        &self,
        run: &RunRecord,
        step: &Step,
        rec: &StepRecord,
    ) -> HandlerResult<Attempt> {
        let iteration = rec.key.index.is_some();
        let mut scope = self
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
        // A task that ends by a callback renders with `callback` (its token and URL).
        if step.callback.is_some() {
            match self.callback_ref(run, rec).await? {
                Ok(c) => scope.callback = Some(c),
                Err(refused) => return Ok(Attempt::Ended(refused)),
            }
        }
        let r = &self.renderer;
        let base = format!("runs/{}/{}", run.id, rec.key.step);
        let slot = match rec.key.index {
            Some(i) => format!("{base}/{i}/{}", rec.attempt),
            None => format!("{base}/{}", rec.attempt),
        };
        if !iteration {
            if let Some(when) = &step.when {
                match r.truthy(when, &scope) {
                    Ok(false) => return Ok(Attempt::Ended(Outcome::Skipped)),
                    Ok(true) => {}
                    Err(e) => return Ok(Attempt::Ended(expr_failure(step, "when", when, &e))),
                }
            }
            if let Some(list) = &step.for_each {
                return Ok(Attempt::Ended(match r.list(list, &scope) {
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
                return Ok(Attempt::Ended(match rendered("pass", value) {
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
                return Ok(Attempt::Ended(match (rendered_err, rendered_msg) {
                    (Ok(e), Ok(m)) => Outcome::Failed {
                        error: ErrorInfo::new(as_text(e), as_text(m)),
                        retryable: false,
                    },
                    (Err((f, t, e)), _) | (_, Err((f, t, e))) => expr_failure(step, &f, &t, &e),
                }));
            }
            StepKind::Wait(w) => return self.park(step, w, &scope),
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
                        Err((f, t, e)) => {
                            return Ok(Attempt::Ended(expr_failure(step, &f, &t, &e)));
                        }
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
                    Err((f, t, e)) => return Ok(Attempt::Ended(expr_failure(step, &f, &t, &e))),
                };
                let function = match rendered("lambda", &Value::String(function.clone())) {
                    Ok(f) => as_text(f),
                    Err((f, t, e)) => return Ok(Attempt::Ended(expr_failure(step, &f, &t, &e))),
                };
                Task::Lambda {
                    function,
                    payload,
                    invocation: Invocation {
                        run_id: run.id.to_string(),
                        step: rec.key.to_string(),
                        attempt: rec.attempt,
                    },
                    traceparent: None,
                }
            }
            StepKind::Approval { .. } | StepKind::Signal { .. } => return Ok(self.park_for(step)),
            StepKind::Workflow { name } => {
                let input = match step
                    .input
                    .as_ref()
                    .map(|i| rendered("input", i))
                    .transpose()
                {
                    Ok(i) => i.unwrap_or(Value::Object(Default::default())),
                    Err((f, t, e)) => return Ok(Attempt::Ended(expr_failure(step, &f, &t, &e))),
                };
                return self.start_child(run, step, rec, name, input).await;
            }
        };
        let Some(tasks) = &self.ports.tasks else {
            return Err(no_runners(step));
        };
        let mut task = task;
        if let Some(c) = &scope.callback {
            hand_callback(&mut task, c);
        }
        let sampled = self.ports.traces.enabled();
        hand_traceparent(
            &mut task,
            trace::traceparent(run, &rec.key, rec.attempt, sampled),
        );
        let runner = match task {
            Task::Http { .. } => &tasks.http,
            Task::Lambda { .. } => &tasks.lambda,
        };
        let call = async {
            match step.timeout {
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
            }
        };
        // Dropping the call stops it: the HTTP request is dropped, a launched
        // function's process is killed.
        let result = tokio::select! {
            result = call => result,
            asked = self.cancel_asked(&run.id) => {
                let error = ErrorInfo::new(
                    "cancelled",
                    format!("stopped while running: {}", asked.error().message),
                );
                return Ok(Attempt::Ended(Outcome::Stopped { error }));
            }
        };
        Ok(match result {
            // Started: the attempt waits for its callback.
            Ok(_) if step.callback.is_some() => self.park_for_callback(step),
            Ok(v) => Attempt::Ended(Outcome::Succeeded {
                output: self.store_value(&format!("{slot}/output.json"), v).await?,
            }),
            Err(e) => Attempt::Ended(task_failure(e)),
        })
    }

    /// Returns once run `run_id` is being cancelled, looking every `cancel_check`
    /// (never before the first has passed). A look that fails is tried again at the
    /// next: the task goes on meanwhile.
    async fn cancel_asked(&self, run_id: &RunId) -> CancelRequest {
        loop {
            tokio::time::sleep(self.settings.cancel_check).await;
            match self.ports.store.get_run(run_id).await {
                Ok(RunRecord {
                    cancel: Some(asked),
                    ..
                }) => return asked,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(run = %run_id, error = %e, "cannot look whether the run is being cancelled");
                }
            }
        }
    }

    /// When a `wait` step's attempt is over: it parks until then (see the lifecycle's
    /// `Parked`), a record change and a delayed message, no sleeping thread.
    fn park(
        &self,
        step: &Step,
        w: &WaitFor,
        scope: &braid_lang::expr::Scope,
    ) -> HandlerResult<Attempt> {
        let now = self.now();
        let due = match w {
            WaitFor::Duration(d) => now
                .checked_add_signed(span(*d))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
            WaitFor::Until(text) => {
                let v = match self.renderer.render(&Value::String(text.clone()), scope) {
                    Ok(v) => as_text(v),
                    Err(e) => {
                        return Ok(Attempt::Ended(expr_failure(step, "wait.until", text, &e)));
                    }
                };
                match chrono::DateTime::parse_from_rfc3339(&v) {
                    Ok(t) => t.with_timezone(&chrono::Utc),
                    Err(_) => {
                        return Ok(Attempt::Ended(Outcome::Failed {
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
        Ok(Attempt::Parked {
            due: Some(due),
            child: None,
            deadline: None,
        })
    }
}

/// The error of a process without task runners that meets a task.
fn no_runners(step: &Step) -> HandlerError {
    HandlerError::Port(PortError::backend_msg(format!(
        "step `{}`: this process runs no tasks (the step dispatcher does)",
        step.id
    )))
}

/// Hands `task` its callback `{token, url}`: a Lambda payload that is an object gets
/// it as `callback` (unless it has one), an HTTP call as the `Braid-Callback-Token`
/// and `Braid-Callback-Url` headers (unless it sets them).
/// Hands the task the attempt's W3C `traceparent`, so what it calls joins the run's
/// trace under the attempt's span: an HTTP header (unless the step sets its own), the
/// Lambda invocation's client context.
fn hand_traceparent(task: &mut Task, parent: String) {
    match task {
        Task::Http { headers, .. } => {
            if !headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("traceparent"))
            {
                headers.insert("traceparent".into(), parent);
            }
        }
        Task::Lambda { traceparent, .. } => *traceparent = Some(parent),
    }
}

fn hand_callback(task: &mut Task, callback: &Value) {
    match task {
        Task::Lambda { payload, .. } => {
            if let Some(obj) = payload.as_object_mut() {
                obj.entry("callback").or_insert_with(|| callback.clone());
            }
        }
        Task::Http { headers, .. } => {
            for (name, field) in [
                ("Braid-Callback-Token", "token"),
                ("Braid-Callback-Url", "url"),
            ] {
                if let Some(v) = callback[field].as_str() {
                    headers
                        .entry(name.to_string())
                        .or_insert_with(|| v.to_string());
                }
            }
        }
    }
}

/// A rendered value as text: strings as they are, anything else as JSON.
fn as_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}
