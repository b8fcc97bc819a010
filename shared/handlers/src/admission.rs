//! Concurrency: a workflow with `concurrency: N` has at most N runs holding a slot. A
//! run started beyond that is created `queued` and waits, in order, for a slot; each
//! run that ends gives its slot back and admits the oldest queued run.
//!
//! Taking a slot is one atomic store write ([`braid_ports::StateStore::take_slot`]), so
//! concurrent intakes and finishing runs never admit more than N. A crash between a run
//! ending and the next admission, or between an admission and its root steps being
//! made ready, is repaired by the sweeper (`Admit`, `ReleaseRoot`).

use super::{HandlerResult, Handlers};
use braid_engine::model::{LifecycleEvent, RunRecord, RunStatus, StepKey, StepStatus, Timestamp};
use braid_engine::start;
use braid_ports::Guard;
use std::time::Duration;

/// Queued runs looked at per admission: admission stops at the first that finds no
/// slot, so more are only read when earlier ones were admitted by someone else.
const ADMIT_BATCH: usize = 10;

impl Handlers {
    /// Admits the oldest queued runs of `workflow` while slots are free.
    pub async fn admit(&self, workflow: &str) -> HandlerResult<()> {
        loop {
            let queued = self.ports.store.queued_runs(workflow, ADMIT_BATCH).await?;
            if queued.is_empty() {
                return Ok(());
            }
            let mut admitted_any = false;
            for next in queued {
                let wf = self.workflow(&next).await?;
                let now = self.now();
                let (run, mut roots) = start::admit(&wf, &next, now);
                // A fork starts with the steps whose needs it kept, its roots or not.
                if next.forked_from.is_some() {
                    let written = self.ports.store.list_steps(&next.id).await?;
                    let records = braid_engine::records::every_step(&wf, &next.id, written);
                    roots = start::startable(&wf, &records);
                }
                if self
                    .ports
                    .store
                    .take_slot(&run, next.limit.unwrap_or(1))
                    .await?
                {
                    admitted_any = true;
                    self.release_roots(&run, &roots, now).await?;
                    self.publish(&run, vec![LifecycleEvent::run_started(&run, now)])
                        .await;
                    continue;
                }
                // Not admitted: no slot is free, unless the run was no longer queued
                // (admitted or cancelled meanwhile; the index lags the table).
                if self.ports.store.get_run(&next.id).await?.status == RunStatus::Queued {
                    return Ok(());
                }
            }
            if !admitted_any {
                return Ok(());
            }
        }
    }

    /// Makes an admitted run's pending root steps ready and wakes them.
    pub(super) async fn release_roots(
        &self,
        run: &RunRecord,
        roots: &[StepKey],
        now: Timestamp,
    ) -> HandlerResult<()> {
        let mut wake = Vec::new();
        for key in roots {
            let rec = self.ports.store.get_step(&run.id, key).await?;
            let ready = braid_engine::model::StepRecord {
                status: StepStatus::Ready,
                due_at: Some(now),
                ..rec
            };
            if self
                .ports
                .store
                .update_step(&Guard::status(&[StepStatus::Pending]), &ready)
                .await?
            {
                wake.push((
                    braid_engine::model::DispatchMsg::next(&ready),
                    Duration::ZERO,
                ));
            }
        }
        self.send_now(wake).await
    }

    /// What follows a run's end, once its final write marked it closing: its steps
    /// still open (of a run that did not succeed) are cancelled, with their child
    /// runs; its `run.finished` event is published, the next queued run is admitted
    /// when it held a slot, the parent step of a child run is resolved, and the run is
    /// closed. Each part is
    /// idempotent: after an error, the tick does it all again from the closing mark
    /// (so a subscriber may see `run.finished` twice, never not at all).
    pub(super) async fn ended(&self, done: &RunRecord, now: Timestamp) -> HandlerResult<()> {
        // A run succeeds only once every step is final.
        if done.status != RunStatus::Succeeded {
            self.cancel_open_steps(done).await?;
        }
        self.publish(done, vec![LifecycleEvent::run_finished(done, now)])
            .await;
        if done.slot {
            self.admit(&done.workflow).await?;
        }
        self.tell_parent(done).await?;
        self.ports.store.close_run(done).await?;
        Ok(())
    }
}
