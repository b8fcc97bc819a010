use super::PortResult;
use async_trait::async_trait;
use braid_engine::model::{
    AuditEntry, CancelRequest, Definition, ErrorInfo, NoticeLog, RunId, RunRecord, RunStatus,
    Signal, SlaMiss, StepId, StepKey, StepRecord, Timestamp,
};

pub use braid_engine::guard::Guard;

/// What [`StateStore::create_run`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Created {
    New,
    /// The idempotency key was used before: this is the run it started.
    Existing(Box<RunRecord>),
}

/// What a final step write changed besides the step.
#[derive(Clone, Debug, PartialEq)]
pub struct Finalized {
    /// The run as read after the write. What follows a step's end depends on whether
    /// the run is failing, which a copy read before the step ran may not show.
    pub run: RunRecord,
    /// For a failed iteration: its `for_each` step after counting it.
    pub parent: Option<StepRecord>,
}

/// Which runs to list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: usize,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub workflow: Option<String>,
    /// Entries at or after this instant.
    pub since: Option<Timestamp>,
    /// At most this many: the latest ones.
    pub limit: usize,
}

/// Run and step records with atomic, conditional transitions (DynamoDB; embedded: SQLite).
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Stores a definition and makes it its workflow's current one (what a start by
    /// name runs); storing the same version again only makes it current again.
    async fn put_definition(&self, def: &Definition) -> PortResult<()>;
    /// Stores `def` as a version of its workflow without making it current: the
    /// definition of an ad-hoc run, which must not change what is registered.
    async fn put_version(&self, def: &Definition) -> PortResult<()>;
    async fn get_definition(&self, workflow: &str, version: &str) -> PortResult<Definition>;
    /// The definition last stored for `workflow`.
    async fn current_definition(&self, workflow: &str) -> PortResult<Definition>;
    /// The current definition of every registered workflow, by name: the registry that
    /// triggers are matched against.
    async fn current_definitions(&self) -> PortResult<Vec<Definition>>;
    /// Takes `workflow` out of the registry (its triggers stop, it cannot be started
    /// by name); its versions stay, for the runs that use them. False when it was not
    /// registered.
    async fn remove_definition(&self, workflow: &str) -> PortResult<bool>;

    /// A named marker the tick keeps between runs — where the sweeper's next page starts
    /// (see [`StateStore::active_runs`]), up to when a schedule was handled. Kept in the
    /// store because on AWS each tick may run in a fresh process.
    async fn marker(&self, name: &str) -> PortResult<Option<String>>;
    /// Sets a marker, or removes it with `None`.
    async fn set_marker(&self, name: &str, value: Option<&str>) -> PortResult<()>;

    /// Creates the run and its step records in one atomic write. When the run's
    /// idempotency key was used before, writes nothing and returns that run.
    async fn create_run(&self, run: &RunRecord, steps: &[StepRecord]) -> PortResult<Created>;
    async fn get_run(&self, run_id: &RunId) -> PortResult<RunRecord>;
    /// Runs newest first.
    async fn list_runs(&self, filter: &RunFilter) -> PortResult<Vec<RunRecord>>;
    /// Ids of the runs whose id starts with `prefix`, at most `limit`: what a run id
    /// given short (as git takes a commit's) may name.
    async fn runs_with_prefix(&self, prefix: &str, limit: usize) -> PortResult<Vec<RunId>>;
    /// Runs not final with ids after `after` (all when `None`), oldest first, at most
    /// `limit`: what the sweeper looks at, a page at a time.
    async fn active_runs(&self, after: Option<&RunId>, limit: usize) -> PortResult<Vec<RunRecord>>;

    /// Ids of runs with a timer at or before `before` — a step's or the run's own
    /// ([`StepRecord::timer`], [`RunRecord::timer`]) — earliest timer first, at most
    /// `limit`, each once. An index, never a scan: the tick fires due timers on time
    /// however many runs are active. May name a run that has since finished.
    async fn due_runs(&self, before: Timestamp, limit: usize) -> PortResult<Vec<RunId>>;

    async fn get_step(&self, run_id: &RunId, key: &StepKey) -> PortResult<StepRecord>;
    /// Every step and iteration record of a run, steps before their iterations.
    async fn list_steps(&self, run_id: &RunId) -> PortResult<Vec<StepRecord>>;
    /// The iterations of a `for_each` step in index order.
    async fn list_iterations(&self, run_id: &RunId, step: &StepId) -> PortResult<Vec<StepRecord>>;

    /// Replaces a step record with a non-final `new` if `guard` holds; false otherwise.
    /// Step writes create an iteration's record when the guard admits its absence
    /// ([`Guard::admits_absent`]); a record that is absent otherwise is `NotFound`.
    /// A final record reopened so (its run retried in place) loses its expiry.
    async fn update_step(&self, guard: &Guard, new: &StepRecord) -> PortResult<bool>;

    /// Replaces a step record with a final `new` if `guard` holds. A failed iteration
    /// raises its parent's `fan_out.failed` in the same atomic write; anything else
    /// touches only its own record (the run's end and a fan-in are seen from the
    /// records, see [`braid_engine::gates`]). With `fail_run`, the same write
    /// also turns on fail-fast for a run that is not final nor failing yet, with that
    /// error — so no other writer can finish the run as succeeded in between, and a
    /// crash right after leaves a run the sweeper fails. `None` when the guard is false.
    async fn finalize_step(
        &self,
        guard: &Guard,
        new: &StepRecord,
        fail_run: Option<&ErrorInfo>,
    ) -> PortResult<Option<Finalized>>;

    /// Adds `dep` to the satisfied needs of `dependent` (creating its record, pending,
    /// if it has none yet) if it is not there yet and, in the same write, makes a
    /// `pending` dependent `ready` (with `due_at = now`) once all of `needs` are
    /// satisfied. Returns the dependent if this call made it ready — of
    /// two callers releasing the last needs at once, exactly one gets it.
    async fn satisfy(
        &self,
        run_id: &RunId,
        dependent: &StepId,
        dep: &StepId,
        needs: &[String],
        now: Timestamp,
    ) -> PortResult<Option<StepRecord>>;

    /// Counts one more lane of a running `for_each` step as ended
    /// ([`braid_engine::model::FanOut::ended`]); returns the step after the write, or `None`
    /// when it is not a running fan-out any more.
    async fn end_lane(&self, run_id: &RunId, step: &StepId) -> PortResult<Option<StepRecord>>;

    /// Moves a run that is not final to `run.status` with its output, error and finish
    /// time, once: false if it was already final, or if `run` ends it succeeded but
    /// it is failing (a step failed it since it was read). A run holding a slot
    /// ([`RunRecord::slot`]) gives it back in the same atomic write.
    async fn finish_run(&self, run: &RunRecord) -> PortResult<bool>;

    /// Marks what follows the end of finished run `run` as carried out: clears its
    /// [`RunRecord::closing`] and, with it, its timer. A store that expires records
    /// stamps the expiry on the run's items here, so a failure doing so leaves the run
    /// closing, for the tick to finish.
    async fn close_run(&self, run: &RunRecord) -> PortResult<()>;

    /// Records `cancel` on run `run_id` if it is running and not failing yet, turning
    /// on `failing` (no new step starts) and setting the run's error to the
    /// cancellation's; returns the run as written, or `None` when it was not running,
    /// was failing already, or had been asked before.
    async fn request_cancel(
        &self,
        run_id: &RunId,
        cancel: &CancelRequest,
    ) -> PortResult<Option<RunRecord>>;

    /// Appends `log` to run `run_id`'s notifications unless it keeps
    /// [`MAX_NOTICES`](braid_engine::model::MAX_NOTICES) already; returns whether it
    /// was kept. The rest of the run is left as it is.
    async fn note_notice(&self, run_id: &RunId, log: &NoticeLog) -> PortResult<bool>;

    /// Notes that run `was` missed the SLAs `missed` (added to its `sla_missed`) and
    /// sets its next SLA look to `next` (its timer moving with it), if the run is
    /// still as `was` read it: the same status and the same `sla_due`. False when it
    /// changed (another tick noted them, or the run was admitted or ended).
    async fn note_sla_missed(
        &self,
        was: &RunRecord,
        missed: &[SlaMiss],
        next: Option<Timestamp>,
    ) -> PortResult<bool>;

    /// Appends `entry` to the audit trail.
    async fn note_audit(&self, entry: &AuditEntry) -> PortResult<()>;

    /// The audit entries `filter` asks for, oldest first.
    async fn audit(&self, filter: &AuditFilter) -> PortResult<Vec<AuditEntry>>;

    /// Reopens run `was`, which ended and is closed, as `run` (running, retried in
    /// place: see [`braid_engine::redrive`]) if it is still as `was` read; a store that
    /// expires records takes the run's expiry back. A run of a workflow with a
    /// concurrency limit takes a slot in the same atomic write. False when the run
    /// changed since `was` was read, or no slot is free.
    async fn reopen_run(&self, was: &RunRecord, run: &RunRecord) -> PortResult<bool>;

    /// Deletes the iteration records of `for_each` step `step` but those at the
    /// indexes in `keep`: a retried run expands the step again, and its new iterations
    /// run where no record is kept (see the lifecycle's kept iterations).
    async fn delete_iterations(
        &self,
        run_id: &RunId,
        step: &StepId,
        keep: &[u32],
    ) -> PortResult<()>;

    /// Keeps `signal` for run `run_id` unless a signal of its name is kept already,
    /// and returns the one kept: `signal` itself, or the earlier one (the same when
    /// it was sent again with its id). One signal per name and run.
    async fn put_signal(&self, run_id: &RunId, signal: &Signal) -> PortResult<Signal>;
    /// The signal of `name` sent to run `run_id`, if one was.
    async fn get_signal(&self, run_id: &RunId, name: &str) -> PortResult<Option<Signal>>;

    /// Queued runs of `workflow`, oldest first, at most `limit`.
    async fn queued_runs(&self, workflow: &str, limit: usize) -> PortResult<Vec<RunRecord>>;

    /// Admits a queued run: replaces it by `run` (running, holding a slot) if it is
    /// still queued and fewer than `limit` runs of its workflow hold a slot — checked
    /// and taken in one atomic write, so concurrent admissions never exceed the limit.
    /// False when no slot is free or the run is no longer queued.
    async fn take_slot(&self, run: &RunRecord, limit: u32) -> PortResult<bool>;
}
