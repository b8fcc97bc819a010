//! The state store decorator: the real SQLite store behind the fault gate (throttles,
//! a full disk, writes that fail after taking effect, pauses, crashes), counting the
//! writes the checks need — every final step write and every run close that took
//! effect — and checking the port's own contract on the way, and the invariants best
//! seen write by write: fan-out counters, parked approvals and signals never retried,
//! lease expiries, how a callback attempt ends (see `judge_callback`), and that
//! nothing starts once a cancel's scan is over.

use crate::world::World;
use async_trait::async_trait;
use braid_engine::model::{
    AuditEntry, CancelRequest, Definition, ErrorInfo, NoticeLog, RunId, RunRecord, Signal, SlaMiss,
    StepId, StepKey, StepRecord, Timestamp,
};
use braid_ports::{AuditFilter, Created, Finalized, Guard, PortResult, RunFilter, StateStore};
use std::sync::Arc;

/// A [`StateStore`] that fails, pauses and crashes as its [`World`] says.
pub struct FaultyStore {
    inner: Arc<dyn StateStore>,
    world: Arc<World>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn StateStore>, world: Arc<World>) -> Self {
        FaultyStore { inner, world }
    }

    /// Passes the gate as a read.
    async fn read(&self, call: &str) -> PortResult<()> {
        self.world.enter(call, false).await.map(|_| ())
    }

    /// Carries out write `call`: the gate, the effect, then perhaps an error anyway.
    /// `changed` tells from the result whether the write changed anything (progress).
    async fn write<T>(
        &self,
        call: &str,
        effect: impl Future<Output = PortResult<T>>,
        changed: impl FnOnce(&T) -> bool,
    ) -> PortResult<T> {
        let fail_after = self.world.enter(call, true).await?;
        let r = effect.await?;
        if changed(&r) {
            self.world.progress();
        }
        if fail_after {
            return Err(self.world.failed_after(call));
        }
        Ok(r)
    }
}

impl FaultyStore {
    /// The record a step write is about to replace, read past the faults.
    async fn observe(&self, new: &StepRecord) -> Option<StepRecord> {
        self.inner.get_step(&new.run_id, &new.key).await.ok()
    }

    /// Checks a step write that took effect against the record it replaced: a
    /// running fan-out's counters only go up (a fan-out expanded again would start
    /// them over), and the tick never expires an attempt's lease before it has run out.
    /// Notes the lease expiries for the comparison with the fault-free run.
    fn judge(&self, before: Option<&StepRecord>, new: &StepRecord) {
        let Some(old) = before else { return };
        // Only while the fan-out runs: its fan-in, guarded on the status and attempt
        // alone, may carry counters as read before the last iterations counted —
        // hints that no one reads once the step is final.
        if let (Some(a), Some(b)) = (&old.fan_out, &new.fan_out)
            && !new.status.is_final()
            && (b.ended < a.ended || b.failed < a.failed)
        {
            self.world.violation(
                "fan-out-counted-back",
                format!(
                    "{}: {} fan-out went from {} ended / {} failed to {} / {}",
                    new.run_id, new.key, a.ended, a.failed, b.ended, b.failed
                ),
            );
        }
        // A parked approval or signal ends by its answer or its timeout, for good: a
        // rejected or timed-out one is never retried (a callback's or a child's
        // failure is a failed attempt, which its retry rules may retry).
        use braid_engine::model::StepStatus;
        let answered = new
            .error
            .as_ref()
            .is_some_and(|e| e.error.starts_with("approval.") || e.error.starts_with("signal."));
        if old.status == StepStatus::Waiting && new.status == StepStatus::Retrying && answered {
            self.world.violation(
                "waiting-retried",
                format!(
                    "{}: {} attempt {} went from waiting to retrying ({:?})",
                    new.run_id, new.key, old.attempt, new.error
                ),
            );
        }
        self.judge_callback(old, new);
        if old.status == StepStatus::Running
            && new.status == StepStatus::Cancelled
            && new
                .error
                .as_ref()
                .is_some_and(|e| e.message.starts_with("stopped while running"))
        {
            self.world.tally(|t| t.stops += 1);
        }
        // An iteration kept by a retry of its run: taken into the new expansion with
        // its output and attempts as they were.
        if old.status == StepStatus::Succeeded
            && new.status == StepStatus::Succeeded
            && new.retry_base > old.retry_base
        {
            self.world.tally(|t| t.kept += 1);
            if (new.attempt, &new.output, new.key.index.is_some())
                != (old.attempt, &old.output, true)
            {
                self.world.violation(
                    "kept-changed",
                    format!(
                        "{}: {} was kept by a retry but changed: attempt {} -> {}, output {:?} -> {:?}",
                        new.run_id, new.key, old.attempt, new.attempt, old.output, new.output
                    ),
                );
            }
        }
        // Once a cancel's scan is over (its request returned), nothing starts.
        let started = new.status == StepStatus::Running
            && braid_engine::lifecycle::NOT_STARTED.contains(&old.status);
        if started
            && self
                .world
                .tally(|t| t.cancels.contains(new.run_id.as_str()))
        {
            self.world.violation(
                "claimed-after-cancel",
                format!(
                    "{}: {} attempt {} started after its run's cancel",
                    new.run_id, new.key, new.attempt
                ),
            );
        }
        // A lease expiry: the tick ends a claimed attempt (running, not a fan-out) as
        // failed with `timeout`, retrying or for good. Nothing else the tick writes
        // looks so: a re-send keeps a retrying record's last error, and a claim
        // (by a dispatcher) keeps the error of the attempt before.
        let expiry = crate::world::by_tick()
            && old.status == StepStatus::Running
            && old.fan_out.is_none()
            && old.attempt == new.attempt
            && matches!(new.status, StepStatus::Retrying | StepStatus::Failed)
            && new.error.as_ref().is_some_and(|e| e.error == "timeout");
        if !expiry {
            return;
        }
        // The attempt is lost: its step's course may differ from the fault-free one.
        self.world.trace(|| {
            format!(
                "lease expired: {} {} attempt {}",
                new.run_id, new.key, new.attempt
            )
        });
        self.world
            .tally(|t| t.lease_expiries.insert(new.run_id.to_string()));
        let now = self.world.clock.now_ts();
        if old.lease_until.is_some_and(|l| l > now) {
            self.world.violation(
                "expiry-of-live-lease",
                format!(
                    "{}: {} attempt {} recorded lost while its lease runs until {:?}",
                    new.run_id, new.key, new.attempt, old.lease_until
                ),
            );
        }
    }
}

impl FaultyStore {
    /// Checks how a callback task's waiting attempt ends: by its callback's outcome
    /// (the remote's output, or its error), a missed heartbeat or its timeout — not
    /// before they are due, and, when the remote answered in time, only because
    /// faults held the calls up (noted for the comparison) — and never by a replayed
    /// token of an attempt before.
    fn judge_callback(&self, old: &StepRecord, new: &StepRecord) {
        use braid_engine::model::{Data, StepStatus};
        let attempt = (old.run_id.to_string(), old.key.to_string(), old.attempt);
        let plan = self
            .world
            .tally(|t| t.callback_plans.get(&attempt).cloned());
        let Some(plan) = plan else { return };
        // Ended by its outcome: a cancel (fail fast, the run's end) keeps the error of
        // the attempt before, which says nothing of this one.
        let ended = matches!(
            new.status,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Retrying
        );
        if old.status != StepStatus::Waiting || !ended {
            return;
        }
        let run = &new.run_id;
        let key = &new.key;
        let error = new.error.as_ref().map(|e| e.error.as_str());
        let wrong = |class: &str, what: String| {
            self.world.violation(
                class,
                format!("{run}: {key} attempt {} {what}", old.attempt),
            );
        };
        let now = self.world.clock.now_ts();
        // A callback taken after its attempt was due (its timeout or next heartbeat)
        // raced the message that ends the wait, which comes late after a fault, or
        // after a tick's sweep for a due time past the queue's longest delay: noted
        // for the comparison. A remote that answered in time lapsing is faults' doing
        // alone: without faults, a violation.
        let note = || {
            self.world
                .tally(|t| t.callback_lapses.insert(run.to_string()));
        };
        let answered = matches!(
            (new.status, error),
            (StepStatus::Succeeded, _) | (_, Some(crate::remote::REMOTE_ERROR))
        );
        if answered && old.due_at.is_some_and(|d| d < now) {
            note();
        }
        match (new.status, error) {
            (StepStatus::Succeeded, _) => {
                let want = match &plan.answer {
                    crate::remote::Answer::Output(v) => Some(v),
                    _ => None,
                };
                if let Some(Data::Inline(got)) = &new.output
                    && want != Some(got)
                {
                    wrong(
                        "callback-not-said",
                        format!("succeeded with {got}, its remote said {:?}", plan.answer),
                    );
                }
            }
            (_, Some(crate::remote::STALE)) => {
                wrong("stale-token-taken", "ended by a replayed token".into())
            }
            (_, Some(crate::remote::REMOTE_ERROR))
                if plan.answer != crate::remote::Answer::Error =>
            {
                wrong(
                    "callback-not-said",
                    format!(
                        "failed by an error its remote did not say ({:?})",
                        plan.answer
                    ),
                );
            }
            (_, Some(lapse @ ("callback.timeout" | "callback.heartbeat"))) => {
                if old.due_at.is_none_or(|d| d > now) {
                    wrong(
                        "callback-lapsed-early",
                        format!("ended {lapse} at {now}, due {:?}", old.due_at),
                    );
                }
                if plan.in_time {
                    if self.world.plan.is_none() {
                        wrong(
                            "callback-lapsed",
                            format!("ended {lapse} although its remote answered in time"),
                        );
                    }
                    note();
                }
            }
            _ => {}
        }
    }
}

#[async_trait]
impl StateStore for FaultyStore {
    async fn put_definition(&self, def: &Definition) -> PortResult<()> {
        self.write("put_definition", self.inner.put_definition(def), |_| false)
            .await
    }

    async fn put_version(&self, def: &Definition) -> PortResult<()> {
        self.write("put_version", self.inner.put_version(def), |_| false)
            .await
    }

    async fn get_definition(&self, workflow: &str, version: &str) -> PortResult<Definition> {
        self.read("get_definition").await?;
        self.inner.get_definition(workflow, version).await
    }

    async fn current_definition(&self, workflow: &str) -> PortResult<Definition> {
        self.read("current_definition").await?;
        self.inner.current_definition(workflow).await
    }

    async fn current_definitions(&self) -> PortResult<Vec<Definition>> {
        self.read("current_definitions").await?;
        self.inner.current_definitions().await
    }

    async fn remove_definition(&self, workflow: &str) -> PortResult<bool> {
        self.write(
            "remove_definition",
            self.inner.remove_definition(workflow),
            |_| false,
        )
        .await
    }

    async fn marker(&self, name: &str) -> PortResult<Option<String>> {
        self.read("marker").await?;
        self.inner.marker(name).await
    }

    async fn set_marker(&self, name: &str, value: Option<&str>) -> PortResult<()> {
        self.write("set_marker", self.inner.set_marker(name, value), |_| false)
            .await
    }

    async fn create_run(&self, run: &RunRecord, steps: &[StepRecord]) -> PortResult<Created> {
        self.write("create_run", self.inner.create_run(run, steps), |c| {
            *c == Created::New
        })
        .await
    }

    async fn get_run(&self, run_id: &RunId) -> PortResult<RunRecord> {
        self.read("get_run").await?;
        self.inner.get_run(run_id).await
    }

    async fn request_cancel(
        &self,
        run_id: &RunId,
        cancel: &CancelRequest,
    ) -> PortResult<Option<RunRecord>> {
        self.write(
            "request_cancel",
            self.inner.request_cancel(run_id, cancel),
            Option::is_some,
        )
        .await
    }

    async fn note_notice(&self, run_id: &RunId, log: &NoticeLog) -> PortResult<bool> {
        self.write("note_notice", self.inner.note_notice(run_id, log), |k| *k)
            .await
    }

    async fn note_audit(&self, entry: &AuditEntry) -> PortResult<()> {
        self.write("note_audit", self.inner.note_audit(entry), |_| true)
            .await
    }

    async fn audit(&self, filter: &AuditFilter) -> PortResult<Vec<AuditEntry>> {
        self.read("audit").await?;
        self.inner.audit(filter).await
    }

    async fn note_sla_missed(
        &self,
        was: &RunRecord,
        missed: &[SlaMiss],
        next: Option<Timestamp>,
    ) -> PortResult<bool> {
        self.write(
            "note_sla_missed",
            self.inner.note_sla_missed(was, missed, next),
            |k| *k,
        )
        .await
    }

    /// Counts each reopening that took effect: the run ends once more, and what
    /// starts in it now is the retry's, not a start after its cancel.
    async fn reopen_run(&self, was: &RunRecord, run: &RunRecord) -> PortResult<bool> {
        let fail_after = self.world.enter("reopen_run", true).await?;
        let done = self.inner.reopen_run(was, run).await?;
        if done {
            self.world.progress();
            self.world.trace(|| format!("RUN {} reopened", run.id));
            self.world.tally(|t| {
                t.cancels.remove(run.id.as_str());
                *t.retries.entry(run.id.to_string()).or_default() += 1;
            });
        }
        if fail_after {
            return Err(self.world.failed_after("reopen_run"));
        }
        Ok(done)
    }

    async fn delete_iterations(
        &self,
        run_id: &RunId,
        step: &StepId,
        keep: &[u32],
    ) -> PortResult<()> {
        self.write(
            "delete_iterations",
            self.inner.delete_iterations(run_id, step, keep),
            |_| true,
        )
        .await
    }

    async fn put_signal(&self, run_id: &RunId, signal: &Signal) -> PortResult<Signal> {
        self.write(
            "put_signal",
            self.inner.put_signal(run_id, signal),
            |kept| kept == signal,
        )
        .await
    }

    async fn get_signal(&self, run_id: &RunId, name: &str) -> PortResult<Option<Signal>> {
        self.read("get_signal").await?;
        self.inner.get_signal(run_id, name).await
    }

    async fn runs_with_prefix(&self, prefix: &str, limit: usize) -> PortResult<Vec<RunId>> {
        self.read("runs_with_prefix").await?;
        self.inner.runs_with_prefix(prefix, limit).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> PortResult<Vec<RunRecord>> {
        self.read("list_runs").await?;
        self.inner.list_runs(filter).await
    }

    async fn active_runs(&self, after: Option<&RunId>, limit: usize) -> PortResult<Vec<RunRecord>> {
        self.read("active_runs").await?;
        self.inner.active_runs(after, limit).await
    }

    async fn due_runs(&self, before: Timestamp, limit: usize) -> PortResult<Vec<RunId>> {
        self.read("due_runs").await?;
        self.inner.due_runs(before, limit).await
    }

    async fn get_step(&self, run_id: &RunId, key: &StepKey) -> PortResult<StepRecord> {
        self.read("get_step").await?;
        self.inner.get_step(run_id, key).await
    }

    async fn list_steps(&self, run_id: &RunId) -> PortResult<Vec<StepRecord>> {
        self.read("list_steps").await?;
        self.inner.list_steps(run_id).await
    }

    async fn list_iterations(&self, run_id: &RunId, step: &StepId) -> PortResult<Vec<StepRecord>> {
        self.read("list_iterations").await?;
        self.inner.list_iterations(run_id, step).await
    }

    async fn update_step(&self, guard: &Guard, new: &StepRecord) -> PortResult<bool> {
        if new.status.is_final() {
            self.world.violation(
                "port-contract",
                format!(
                    "update_step wrote final status {:?} for {} of {}",
                    new.status, new.key, new.run_id
                ),
            );
        }
        let fail_after = self.world.enter("update_step", true).await?;
        let before = self.observe(new).await;
        let done = self.inner.update_step(guard, new).await?;
        if done {
            self.world.progress();
            self.judge(before.as_ref(), new);
            self.world.trace(|| {
                format!(
                    "write {} {} {:?} attempt {}{}",
                    new.run_id,
                    new.key,
                    new.status,
                    new.attempt,
                    new.due_at.map(|d| format!(" due {d}")).unwrap_or_default()
                )
            });
        }
        if fail_after {
            return Err(self.world.failed_after("update_step"));
        }
        Ok(done)
    }

    async fn finalize_step(
        &self,
        guard: &Guard,
        new: &StepRecord,
        fail_run: Option<&ErrorInfo>,
    ) -> PortResult<Option<Finalized>> {
        let fail_after = self.world.enter("finalize_step", true).await?;
        let before = self.observe(new).await;
        let done = self.inner.finalize_step(guard, new, fail_run).await?;
        if done.is_some() {
            self.judge(before.as_ref(), new);
            self.world.progress();
            self.world.trace(|| {
                format!(
                    "FINAL {} {} {:?} attempt {}{}",
                    new.run_id,
                    new.key,
                    new.status,
                    new.attempt,
                    if fail_run.is_some() {
                        " (fails the run)"
                    } else {
                        ""
                    }
                )
            });
            self.world.tally(|t| {
                *t.finals
                    .entry((new.run_id.to_string(), crate::world::final_key(new)))
                    .or_default() += 1;
            });
        }
        if fail_after {
            return Err(self.world.failed_after("finalize_step"));
        }
        Ok(done)
    }

    async fn satisfy(
        &self,
        run_id: &RunId,
        dependent: &StepId,
        dep: &StepId,
        needs: &[String],
        now: Timestamp,
    ) -> PortResult<Option<StepRecord>> {
        self.write(
            "satisfy",
            self.inner.satisfy(run_id, dependent, dep, needs, now),
            Option::is_some,
        )
        .await
    }

    async fn end_lane(&self, run_id: &RunId, step: &StepId) -> PortResult<Option<StepRecord>> {
        self.write(
            "end_lane",
            self.inner.end_lane(run_id, step),
            Option::is_some,
        )
        .await
    }

    async fn close_run(&self, run: &RunRecord) -> PortResult<()> {
        self.write("close_run", self.inner.close_run(run), |_| true)
            .await
    }

    async fn finish_run(&self, run: &RunRecord) -> PortResult<bool> {
        let fail_after = self.world.enter("finish_run", true).await?;
        let done = self.inner.finish_run(run).await?;
        if done {
            self.world.progress();
            self.world
                .trace(|| format!("RUN {} finished {:?}", run.id, run.status));
            self.world
                .tally(|t| *t.finishes.entry(run.id.to_string()).or_default() += 1);
        }
        if fail_after {
            return Err(self.world.failed_after("finish_run"));
        }
        Ok(done)
    }

    async fn queued_runs(&self, workflow: &str, limit: usize) -> PortResult<Vec<RunRecord>> {
        self.read("queued_runs").await?;
        self.inner.queued_runs(workflow, limit).await
    }

    async fn take_slot(&self, run: &RunRecord, limit: u32) -> PortResult<bool> {
        self.write("take_slot", self.inner.take_slot(run, limit), |w| *w)
            .await
    }
}
