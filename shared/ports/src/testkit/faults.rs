//! Fault injection around a real work queue, for crash-safety tests: lose chosen sends
//! (as if the process died between its state write and its send), or deliver every
//! message twice (as SQS may); and around a real state store, failing chosen
//! operations ([`FailingStore`]).

use crate::{Outgoing, PortResult, Received, WorkQueue};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Decides from a message's number and body whether to lose it.
type LoseRule = Box<dyn Fn(usize, &str) -> bool + Send + Sync>;

/// Wraps a queue; numbers every message sent through it from 0.
pub struct FaultyQueue {
    inner: Arc<dyn WorkQueue>,
    sent: AtomicUsize,
    lose: LoseRule,
    duplicate: bool,
    /// Extra random delay per message, so deliveries arrive in a shuffled order.
    jitter: std::time::Duration,
}

impl FaultyQueue {
    /// Loses every message for which `lose(number, body)` is true.
    pub fn losing(
        inner: Arc<dyn WorkQueue>,
        lose: impl Fn(usize, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        FaultyQueue {
            inner,
            sent: AtomicUsize::new(0),
            lose: Box::new(lose),
            duplicate: false,
            jitter: std::time::Duration::ZERO,
        }
    }

    /// Sends every message twice.
    pub fn duplicating(inner: Arc<dyn WorkQueue>) -> Self {
        FaultyQueue {
            inner,
            sent: AtomicUsize::new(0),
            lose: Box::new(|_, _| false),
            duplicate: true,
            jitter: std::time::Duration::ZERO,
        }
    }

    /// Delays every message by a random time up to `jitter`, shuffling delivery order.
    pub fn reordering(inner: Arc<dyn WorkQueue>, jitter: std::time::Duration) -> Self {
        FaultyQueue {
            inner,
            sent: AtomicUsize::new(0),
            lose: Box::new(|_, _| false),
            duplicate: false,
            jitter,
        }
    }

    /// Messages sent through this wrapper so far (lost ones included).
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl WorkQueue for FaultyQueue {
    async fn send(&self, messages: Vec<Outgoing>) -> PortResult<()> {
        let mut kept = Vec::with_capacity(messages.len() * 2);
        for m in messages {
            let n = self.sent.fetch_add(1, Ordering::SeqCst);
            if (self.lose)(n, &m.body) {
                continue;
            }
            if self.duplicate {
                kept.push(m.clone());
            }
            let extra = self.jitter.mul_f64(fastrand::f64());
            kept.push(Outgoing {
                delay: m.delay + extra,
                ..m
            });
        }
        if kept.is_empty() {
            return Ok(());
        }
        self.inner.send(kept).await
    }

    async fn receive(
        &self,
        max: usize,
        visibility: std::time::Duration,
    ) -> PortResult<Vec<Received>> {
        self.inner.receive(max, visibility).await
    }

    async fn ack(&self, receipts: &[String]) -> PortResult<()> {
        self.inner.ack(receipts).await
    }
}

/// Wraps a real state store; fails chosen operations a chosen number of times with a
/// retryable backend error (as a throttled DynamoDB call), to show that an error at
/// any write leaves state the next delivery or tick finishes.
pub struct FailingStore {
    inner: Arc<dyn crate::StateStore>,
    failures: std::sync::Mutex<std::collections::HashMap<&'static str, usize>>,
}

impl FailingStore {
    pub fn new(inner: Arc<dyn crate::StateStore>) -> Self {
        FailingStore {
            inner,
            failures: Default::default(),
        }
    }

    /// Makes the next `times` calls of operation `op` (a port method's name) fail.
    pub fn fail_next(&self, op: &'static str, times: usize) {
        self.failures.lock().unwrap().insert(op, times);
    }

    fn trip(&self, op: &'static str) -> PortResult<()> {
        let mut f = self.failures.lock().unwrap();
        match f.get_mut(op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(crate::PortError::backend_msg(format!(
                    "{op}: injected failure (throttled)"
                )))
            }
            _ => Ok(()),
        }
    }
}

mod failing_store {
    use super::FailingStore;
    use crate::{AuditFilter, Created, Finalized, Guard, PortResult, RunFilter, StateStore};
    use async_trait::async_trait;
    use braid_engine::model::{
        AuditEntry, CancelRequest, Definition, ErrorInfo, NoticeLog, RunId, RunRecord, Signal,
        SlaMiss, StepId, StepKey, StepRecord, Timestamp,
    };

    /// Each method trips its failure, if one is set, then delegates.
    macro_rules! delegate {
        ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
            #[async_trait]
            impl StateStore for FailingStore {
                $(async fn $name(&self, $($arg: $ty),*) -> PortResult<$ret> {
                    self.trip(stringify!($name))?;
                    self.inner.$name($($arg),*).await
                })*
            }
        };
    }

    delegate! {
        put_definition(def: &Definition) -> ();
        put_version(def: &Definition) -> ();
        get_definition(workflow: &str, version: &str) -> Definition;
        current_definition(workflow: &str) -> Definition;
        current_definitions() -> Vec<Definition>;
        remove_definition(workflow: &str) -> bool;
        marker(name: &str) -> Option<String>;
        set_marker(name: &str, value: Option<&str>) -> ();
        create_run(run: &RunRecord, steps: &[StepRecord]) -> Created;
        get_run(run_id: &RunId) -> RunRecord;
        list_runs(filter: &RunFilter) -> Vec<RunRecord>;
        runs_with_prefix(prefix: &str, limit: usize) -> Vec<RunId>;
        active_runs(after: Option<&RunId>, limit: usize) -> Vec<RunRecord>;
        due_runs(before: Timestamp, limit: usize) -> Vec<RunId>;
        get_step(run_id: &RunId, key: &StepKey) -> StepRecord;
        list_steps(run_id: &RunId) -> Vec<StepRecord>;
        list_iterations(run_id: &RunId, step: &StepId) -> Vec<StepRecord>;
        update_step(guard: &Guard, new: &StepRecord) -> bool;
        finalize_step(guard: &Guard, new: &StepRecord, fail_run: Option<&ErrorInfo>) -> Option<Finalized>;
        satisfy(run_id: &RunId, dependent: &StepId, dep: &StepId, needs: &[String], now: Timestamp) -> Option<StepRecord>;
        end_lane(run_id: &RunId, step: &StepId) -> Option<StepRecord>;
        finish_run(run: &RunRecord) -> bool;
        close_run(run: &RunRecord) -> ();
        request_cancel(run_id: &RunId, cancel: &CancelRequest) -> Option<RunRecord>;
        note_notice(run_id: &RunId, log: &NoticeLog) -> bool;
        note_sla_missed(was: &RunRecord, missed: &[SlaMiss], next: Option<Timestamp>) -> bool;
        note_audit(entry: &AuditEntry) -> ();
        audit(filter: &AuditFilter) -> Vec<AuditEntry>;
        reopen_run(was: &RunRecord, run: &RunRecord) -> bool;
        delete_iterations(run_id: &RunId, step: &StepId, keep: &[u32]) -> ();
        put_signal(run_id: &RunId, signal: &Signal) -> Signal;
        get_signal(run_id: &RunId, name: &str) -> Option<Signal>;
        queued_runs(workflow: &str, limit: usize) -> Vec<RunRecord>;
        take_slot(run: &RunRecord, limit: u32) -> bool;
    }
}
