//! The driver: one simulated process over the embedded adapters in a temporary
//! folder, wrapped in the decorators, on a single-threaded tokio runtime whose time is
//! paused. It plays the local runtime's part — starts the runs, receives messages and
//! hands them to [`Handlers::deliver_ready`] and [`Handlers::deliver_result`] (in an
//! adversarial order when faults are on), acknowledges the handled ones, ticks at
//! virtual intervals — until every run is final and the queues are quiet, or a bound
//! on virtual time passes. A crash drops every handler future in flight and starts a
//! fresh [`Handlers`] (a new process: nothing cached survives); the messages being
//! handled come back when their visibility timeout ends. It also plays the people and
//! systems of the seed's [`Scenario`]: their decisions, signals and cancels go to
//! [`Handlers::decide`], [`Handlers::signal`] and [`Handlers::cancel_run`] through the
//! same faulty ports, and a call cut by a crash is tried again after the restart; the
//! remotes of callback tasks (see [`crate::remote`]) call [`Handlers::callback`] and
//! [`Handlers::heartbeat`] so too; and whoever answers the child runs' approvals and
//! signals (see [`Process::answer_children`]). The child workflows are registered
//! before any run starts, past the faults: that is setup, not what is simulated.

use crate::clock::{SeqIds, VirtualClock};
use crate::faults::FaultPlan;
use crate::payloads::FaultyPayloads;
use crate::people::{Due, PERSON, People, SYSTEM, Say, Scenario};
use crate::queue::FaultyQueue;
use crate::remote::{self, Call};
use crate::store::FaultyStore;
use crate::tasks::{SimRunner, TaskPlan};
use crate::workflow::Kind;
use crate::workflow::WorkflowSpec;
use crate::world::{Lane, Tally, World};
use braid_engine::model::{Data, RunId, RunRecord, Signal, StepKey, StepRecord, StepStatus};
use braid_handlers::{
    Decision, Delivery, Handlers, Ports, Settings, SignalRequest, StartRequest, TaskRunners,
};
use braid_local::payloads::FolderPayloads;
use braid_local::queue::SqliteQueue;
use braid_local::store::SqliteStore;
use braid_ports::env_secrets::env_secrets;
use braid_ports::{NoOutput, NullSink, Outgoing, PayloadStore, RunFilter, StateStore, WorkQueue};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How long the driver goes on after every run is final, for late messages to arrive
/// and show whether they change anything.
const DRAIN: Duration = Duration::from_secs(17 * 60);

/// Virtual time without a single store write after which a run that is not final is
/// taken as stuck. Every legitimate pause is shorter: the longest task, backoff, wait,
/// held-back message or visibility timeout drawn is under 20 minutes, and a stuck
/// run found early keeps a failing seed cheap.
const STALL: Duration = Duration::from_secs(2 * 3600);

/// Driver passes at one virtual instant after which the seed is taken as spinning.
const SPIN_LIMIT: u32 = 20_000;

/// The tick interval while draining.
const DRAIN_TICK: Duration = Duration::from_secs(60);

/// Visibility timeout of the ready queue, as the local runtime sets it.
pub const READY_VISIBILITY: Duration = Duration::from_secs(16 * 60);
const RESULT_VISIBILITY: Duration = Duration::from_secs(60);

/// What is simulated, the same for the reference and the faulty run.
#[derive(Debug, Clone)]
pub struct Setup {
    pub seed: u64,
    pub spec: Arc<WorkflowSpec>,
    pub plan: TaskPlan,
    pub scenario: Arc<Scenario>,
    pub tick_every: Duration,
}

/// A run as it ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub record: RunRecord,
    pub steps: Vec<StepRecord>,
    /// Outputs by step key, loaded from the payload store when offloaded.
    pub outputs: BTreeMap<String, Value>,
    pub output: Option<Value>,
    /// The signal kept for each name the workflow waits for, with its data.
    pub signals: BTreeMap<String, (Signal, Value)>,
}

/// What one simulated process did.
#[derive(Debug)]
pub struct Drive {
    /// By start order; `None` for a run that was never started.
    pub runs: Vec<Option<RunResult>>,
    /// Every child run, as it ended.
    pub children: Vec<RunResult>,
    pub tally: Tally,
    pub trace: Vec<String>,
    /// Virtual time when the last run became final, if they all did.
    pub ended_at: Option<Duration>,
    pub elapsed: Duration,
}

/// What a handler task reports back to the driver.
enum Job {
    Delivered(Lane, String, Delivery),
    Started(usize, Result<RunId, (bool, String)>),
    /// A try of answer `.0` saying `.1`: whether it took, or why not.
    Answered(usize, Say, Result<bool, String>),
    /// A child run's answer was said: whether it took shows at the next look.
    Done,
    /// Remote call `.0` came to this (`Ok(true)`: it ended or kept a callback).
    Called(u64, Result<bool, String>),
    Ticked,
}

/// Runs `setup` under `faults`, crashing at port calls `crashes`, for at most `bound`
/// of virtual time (stopping at the first violation when `stop_early`).
pub fn drive(
    setup: &Setup,
    faults: FaultPlan,
    crashes: Vec<u64>,
    bound: Duration,
    verbose: bool,
    stop_early: bool,
) -> Drive {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new().prefix("braid-sim").tempdir_in(shm)
    } else {
        tempfile::Builder::new().prefix("braid-sim").tempdir()
    }
    .expect("a temporary folder");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    let root = dir.path().to_path_buf();
    let out = rt.block_on(async move {
        let mut p = Process::open(setup, faults, crashes, &root, verbose);
        p.run(bound, stop_early).await;
        p.finish().await
    });
    drop(rt);
    drop(dir);
    out
}

/// The simulated process and what the driver keeps between passes.
struct Process {
    setup: Setup,
    world: Arc<World>,
    store: Arc<dyn StateStore>,
    ready: Arc<SqliteQueue>,
    results: Arc<SqliteQueue>,
    payloads: Arc<dyn PayloadStore>,
    ports: Ports,
    handlers: Arc<Handlers>,
    tasks: JoinSet<Job>,
    started: Vec<Option<RunId>>,
    /// When each run's start is (re)tried; `None` while it is under way or done.
    start_due: Vec<Option<Duration>>,
    tick_running: bool,
    next_tick: Duration,
    ended_at: Option<Duration>,
    /// Reopenings of runs by a retry seen so far (see the tally's `retries`).
    reopened: u32,
    /// A handler task ended since the runs were last looked at.
    changed: bool,
    people: People,
    /// The remote's calls under way, by number: tried again after a crash.
    calls: BTreeMap<u64, Call>,
    next_call: u64,
    /// When the child runs' waits are next looked at.
    next_child_look: Duration,
}

impl Process {
    fn open(
        setup: &Setup,
        faults: FaultPlan,
        crashes: Vec<u64>,
        root: &std::path::Path,
        verbose: bool,
    ) -> Self {
        // The handlers' retry jitter and the queue's receipts draw from fastrand's
        // thread-local generator: seeded here, so a seed replays.
        fastrand::seed(setup.seed);
        let base = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("a timestamp")
            .with_timezone(&chrono::Utc);
        let clock = Arc::new(VirtualClock::new(base));
        let rng = fastrand::Rng::with_seed(setup.seed ^ 0x5eed_f00d);
        let world = Arc::new(World::new(clock.clone(), faults, rng, crashes, verbose));
        let opened = "the simulation's adapters open";
        let store: Arc<dyn StateStore> =
            Arc::new(SqliteStore::open(&root.join("state.db")).expect(opened));
        let queues = root.join("queues.db");
        let ready = Arc::new(SqliteQueue::open(&queues, "ready", clock.clone()).expect(opened));
        let results = Arc::new(SqliteQueue::open(&queues, "results", clock.clone()).expect(opened));
        let payloads: Arc<dyn PayloadStore> =
            Arc::new(FolderPayloads::open(&root.join("payloads")).expect(opened));
        let runner = Arc::new(SimRunner::new(
            world.clone(),
            store.clone(),
            setup.spec.clone(),
            setup.plan,
        ));
        let ports = Ports {
            store: Arc::new(FaultyStore::new(store.clone(), world.clone())),
            ready: Arc::new(FaultyQueue::new(Lane::Ready, ready.clone(), world.clone())),
            results: Arc::new(FaultyQueue::new(
                Lane::Results,
                results.clone(),
                world.clone(),
            )),
            payloads: Arc::new(FaultyPayloads::new(payloads.clone(), world.clone())),
            events: Arc::new(NullSink),
            tasks: Some(TaskRunners {
                http: runner.clone(),
                lambda: runner,
            }),
            output: Arc::new(NoOutput),
            notices: None,
            metrics: Arc::new(braid_ports::NoMetrics),
            traces: Arc::new(braid_ports::NoTraces),
            secrets: Arc::new(LinkKey),
            clock,
            ids: Arc::new(SeqIds::default()),
        };
        let runs = setup.spec.runs as usize;
        Process {
            setup: setup.clone(),
            handlers: new_handlers(&ports),
            world,
            store,
            ready,
            results,
            payloads,
            ports,
            tasks: JoinSet::new(),
            started: vec![None; runs],
            start_due: vec![Some(Duration::ZERO); runs],
            tick_running: false,
            next_tick: setup.tick_every,
            ended_at: None,
            reopened: 0,
            changed: false,
            people: People::new(&setup.scenario),
            calls: BTreeMap::new(),
            next_call: 0,
            next_child_look: Duration::ZERO,
        }
    }

    fn queue(&self, lane: Lane) -> &Arc<SqliteQueue> {
        match lane {
            Lane::Ready => &self.ready,
            Lane::Results => &self.results,
        }
    }

    fn adversarial(&self) -> bool {
        !self.world.plan.is_none()
    }

    /// Registers the child workflows, past the faults.
    async fn register_children(&self) {
        let ports = Ports {
            store: self.store.clone(),
            ..self.ports.clone()
        };
        let h = new_handlers(&ports);
        for child in &self.setup.spec.children {
            h.register(&child.definition)
                .await
                .expect("a child workflow registers");
        }
    }

    /// The main loop.
    async fn run(&mut self, bound: Duration, stop_early: bool) {
        self.register_children().await;
        let mut instant = (Duration::MAX, 0_u32);
        loop {
            let now = self.world.now();
            // Handlers and driver spinning at one virtual instant would hang the seed.
            if instant.0 == now {
                instant.1 += 1;
                if instant.1 > SPIN_LIMIT {
                    self.world.violation(
                        "livelock",
                        format!("{SPIN_LIMIT} passes at {now:?} without virtual time moving"),
                    );
                    return;
                }
            } else {
                instant = (now, 0);
            }
            if self.world.take_crash() {
                self.restart().await;
            }
            while let Some(done) = self.tasks.try_join_next() {
                self.settle(done).await;
            }
            if stop_early && self.world.tally(|t| !t.violations.is_empty()) {
                return;
            }
            let arrived = self.world.arrivals(now);
            for lane in [Lane::Ready, Lane::Results] {
                let batch: Vec<Outgoing> = arrived
                    .iter()
                    .filter(|(l, _)| *l == lane)
                    .map(|(_, body)| Outgoing {
                        body: body.clone(),
                        delay: Duration::ZERO,
                    })
                    .collect();
                if !batch.is_empty() {
                    self.queue(lane)
                        .send(batch)
                        .await
                        .expect("the queue takes messages");
                }
            }
            self.start_due_runs(now);
            self.answer_due(now).await;
            self.call_remote(now);
            if now >= self.next_child_look {
                self.next_child_look = now + crate::people::POLL;
                self.answer_children().await;
            }
            self.receive(Lane::Ready).await;
            self.receive(Lane::Results).await;
            if now >= self.next_tick && !self.tick_running {
                self.spawn_tick();
                // Once every run is final a tick only closes what a crash left open:
                // once a minute is enough, and keeps a long drain cheap.
                let every = match self.ended_at {
                    Some(_) => self.setup.tick_every.max(DRAIN_TICK),
                    None => self.setup.tick_every,
                };
                while self.next_tick <= now {
                    self.next_tick += every;
                }
            }
            if self.ended_at.is_none()
                && std::mem::take(&mut self.changed)
                && self.all_final().await
            {
                self.ended_at = Some(now);
                self.world.trace(|| "every run is final".into());
            }
            // A retry reopened a run (its reopening counted by the store, even when
            // the request then failed): the drive goes on until it is final again.
            let reopened = self.world.tally(|t| t.retries.values().sum::<u32>());
            if reopened > self.reopened {
                self.reopened = reopened;
                self.ended_at = None;
                self.changed = true;
            }
            if let Some(at) = self.ended_at {
                let answers_due = self.people.next_due().is_some_and(|d| d <= at + DRAIN);
                if (self.tasks.is_empty()
                    && self.quiet()
                    && !answers_due
                    && self.all_closed().await)
                    || now > at + DRAIN
                {
                    return;
                }
            } else if now > bound || now > self.world.tally(|t| t.last_write) + STALL {
                let open: Vec<String> = self
                    .started
                    .iter()
                    .flatten()
                    .map(|r| r.to_string())
                    .collect();
                self.world.violation(
                    "not-terminal",
                    format!(
                        "runs {open:?} not final after {:.0}s of virtual time, the last {:.0}s without a store write",
                        now.as_secs_f64(),
                        (now - self.world.tally(|t| t.last_write)).as_secs_f64()
                    ),
                );
                return;
            }
            self.wait(now, bound).await;
        }
    }

    /// Waits for a handler to finish, a message to be sent or the next thing due.
    ///
    /// The loop's deadlines are strict (`now > bound`, `now > last write + STALL`,
    /// `now > end + DRAIN`), so each is woken at a millisecond past it: waking at the
    /// deadline itself would find nothing to do and nothing left to wait for, and the
    /// loop would yield at that instant forever — virtual time moves only when every
    /// task waits (a task in flight sleeping its duration would never end).
    async fn wait(&mut self, now: Duration, bound: Duration) {
        let past = |t: Duration| t + Duration::from_millis(1);
        let mut next = Duration::MAX;
        if !self.tick_running {
            next = next.min(self.next_tick);
        }
        if let Some(at) = self.world.next_arrival() {
            next = next.min(at);
        }
        for q in [&self.ready, &self.results] {
            if let Some(at) = q.next_visible_at().expect("the queue reads") {
                next = next.min(self.world.clock.since_start(at));
            }
        }
        if let Some(at) = self.start_due.iter().flatten().min() {
            next = next.min(*at);
        }
        if let Some(at) = self.people.next_due() {
            next = next.min(at);
        }
        if let Some(at) = self.world.remote_next() {
            next = next.min(at);
        }
        if self.ended_at.is_none() {
            next = next.min(self.next_child_look);
        }
        match self.ended_at {
            Some(at) => next = next.min(past(at + DRAIN)),
            None => {
                let stall = self.world.tally(|t| t.last_write) + STALL;
                next = next.min(past(bound)).min(past(stall));
            }
        }
        if next <= now {
            tokio::task::yield_now().await;
            return;
        }
        let until = self.world.clock.instant(next);
        tokio::select! {
            biased;
            Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => self.settle(done).await,
            () = self.world.wake.notified() => {}
            () = tokio::time::sleep_until(until) => {}
        }
    }

    /// Whether nothing is left to deliver.
    fn quiet(&self) -> bool {
        self.world.in_transit() == 0
            && [&self.ready, &self.results]
                .iter()
                .all(|q| q.next_visible_at().expect("the queue reads").is_none())
    }

    /// Whether every run is started and final, child runs included.
    async fn all_final(&self) -> bool {
        self.started.iter().all(Option::is_some)
            && self
                .store
                .active_runs(None, 1)
                .await
                .is_ok_and(|open| open.is_empty())
    }

    /// Whether every run is closed: what follows a run's end (its open steps
    /// cancelled, the next queued run admitted) is done, or the tick — which does it
    /// again after an error — still has it to do.
    async fn all_closed(&self) -> bool {
        for id in self.started.iter().flatten() {
            match self.store.get_run(id).await {
                Ok(r) if !r.closing => {}
                _ => return false,
            }
        }
        true
    }

    /// The process died: every handler in flight is dropped and a new process starts.
    async fn restart(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.tick_running = false;
        let now = self.world.now();
        self.people.restart(now);
        for (_, call) in std::mem::take(&mut self.calls) {
            if !call.once {
                self.world.remote_again(now + Duration::from_secs(1), call);
            }
        }
        for (i, due) in self.start_due.iter_mut().enumerate() {
            if self.started[i].is_none() && due.is_none() {
                *due = Some(now + Duration::from_secs(1));
            }
        }
        // An attempt claimed when the process died is not lost by itself: its
        // message, back after its visibility timeout, claims it again (the same
        // attempt, so the same task behaviour), or the tick expires its lease — which
        // the store decorator notes (see `check::compare`).
        self.handlers = new_handlers(&self.ports);
        self.world.trace(|| "process restarted".into());
    }

    /// Takes in what a finished handler task reports.
    async fn settle(&mut self, done: Result<Job, tokio::task::JoinError>) {
        self.changed = true;
        let job = match done {
            Ok(job) => job,
            Err(e) if e.is_panic() => {
                self.world
                    .violation("panic", format!("a handler panicked: {e}"));
                return;
            }
            Err(_) => return,
        };
        match job {
            Job::Delivered(lane, receipt, d) => {
                self.world
                    .trace(|| format!("delivered {lane:?} {receipt}: {d:?}"));
                if let Delivery::Malformed(why) = &d {
                    self.world.violation("malformed", why.clone());
                }
                if d != Delivery::Retry {
                    self.queue(lane)
                        .ack(&[receipt])
                        .await
                        .expect("the queue acks");
                }
            }
            Job::Started(i, Ok(id)) => {
                self.world.trace(|| format!("run {i} started as {id}"));
                self.started[i] = Some(id);
            }
            Job::Started(i, Err((retryable, e))) => {
                self.world.trace(|| format!("start of run {i} failed: {e}"));
                if retryable {
                    self.start_due[i] = Some(self.world.now() + Duration::from_secs(1));
                } else {
                    self.world.violation("start-refused", e);
                }
            }
            Job::Ticked => self.tick_running = false,
            Job::Answered(i, say, took) => self.answered(i, say, took).await,
            Job::Called(n, took) => self.called(n, took).await,
            Job::Done => {}
        }
    }

    /// Makes the remote's calls that are due.
    fn call_remote(&mut self, now: Duration) {
        for call in self.world.remote_due(now) {
            let n = self.next_call;
            self.next_call += 1;
            self.world.trace(|| format!("remote {call:?}"));
            if call.say == remote::Say::Heartbeat {
                self.world
                    .tally(|t| *t.heartbeats.entry(call.attempt.clone()).or_default() += 1);
            }
            self.calls.insert(n, call.clone());
            let h = self.handlers.clone();
            self.tasks.spawn(async move {
                let r = match &call.say {
                    remote::Say::Callback(report) => h.callback(&call.token, report).await,
                    remote::Say::Heartbeat => h.heartbeat(&call.token).await,
                };
                Job::Called(n, r.map(|a| a.status.is_final()).map_err(|e| e.to_string()))
            });
        }
    }

    /// Takes in how remote call `n` ended: a replayed token must be refused; a call
    /// that failed is made again while its attempt is not over.
    async fn called(&mut self, n: u64, r: Result<bool, String>) {
        let Some(call) = self.calls.remove(&n) else {
            return;
        };
        self.world
            .trace(|| format!("remote {:?} came to {r:?}", call.say));
        let stale = matches!(&call.say, remote::Say::Callback(c) if c.error.as_deref() == Some(remote::STALE));
        if stale && r.is_ok() {
            self.world.violation(
                "stale-token-taken",
                format!(
                    "{:?}: a replayed token of an ended attempt was taken",
                    call.attempt
                ),
            );
        }
        if r.is_ok() || call.once {
            return;
        }
        let (run, key, attempt) = &call.attempt;
        let run = RunId::new(run.as_str());
        let over = self.run_final(&run).await
            || self
                .store
                .get_step(&run, &remote::parse_key(key))
                .await
                .is_ok_and(|rec| {
                    rec.attempt > *attempt
                        || (rec.attempt == *attempt
                            && !matches!(rec.status, StepStatus::Running | StepStatus::Waiting))
                });
        if !over {
            let at = self.world.now() + Duration::from_secs(2);
            self.world.remote_again(at, call);
        }
    }

    /// Answers the approvals and signals the child runs wait for, past the first
    /// look: approved or not, and a signal sent or not (left to time out, when its
    /// step has a timeout), as the seed and the step say — the same in both drives.
    async fn answer_children(&mut self) {
        let Ok(open) = self.store.active_runs(None, 1000).await else {
            return;
        };
        for run in open.into_iter().filter(|r| r.parent.is_some()) {
            let Some(spec) = self.setup.spec.workflow(&run.workflow) else {
                continue;
            };
            let Ok(steps) = self.store.list_steps(&run.id).await else {
                continue;
            };
            for rec in steps.iter().filter(|r| r.status == StepStatus::Waiting) {
                let Some(step) = spec.step(&rec.key.step) else {
                    continue;
                };
                let roll = crate::tasks::fnv(
                    self.setup.seed,
                    format!("{}/{}", spec.name, rec.key).as_bytes(),
                );
                if step.kind.answer_timeout().is_some() && roll.is_multiple_of(4) {
                    continue;
                }
                let h = self.handlers.clone();
                let (id, key) = (run.id.clone(), rec.key.to_string());
                match &step.kind {
                    Kind::Approval { .. } => {
                        let d = Decision {
                            approve: roll % 5 != 1,
                            by: PERSON.into(),
                            comment: None,
                        };
                        self.tasks.spawn(async move {
                            let _ = h.decide(&id, &key, &d).await;
                            Job::Done
                        });
                    }
                    Kind::Signal { name, .. } => {
                        let req = SignalRequest {
                            name: name.to_string(),
                            data: serde_json::json!({ "child": name }),
                            id: Some(format!("child-{name}")),
                            by: SYSTEM.into(),
                        };
                        self.tasks.spawn(async move {
                            let _ = h.signal(&id, req).await;
                            Job::Done
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    /// Tries the answers that are due, on runs already started.
    async fn answer_due(&mut self, now: Duration) {
        let started = &self.started;
        let scenario = &self.setup.scenario;
        let due = self
            .people
            .due(scenario, &self.setup.spec, now, |r| started[r].is_some());
        for (i, due) in due {
            let run = self.started[scenario.answers[i].run]
                .clone()
                .expect("answers are due on started runs");
            let say = match due {
                Due::FindTimeout(step) => {
                    // The person reads the run's view (past the faults) to see the wait.
                    let rec = self.store.get_step(&run, &StepKey::step(step)).await;
                    let timeout = rec.as_ref().ok().and_then(|r| {
                        (r.status == StepStatus::Waiting)
                            .then(|| r.due_at.map(|t| self.world.clock.since_start(t)))
                            .flatten()
                    });
                    let ended =
                        rec.is_ok_and(|r| r.status.is_final()) || self.run_final(&run).await;
                    self.people.at(i, now, timeout, ended);
                    continue;
                }
                Due::Say(say) => say,
            };
            self.world.trace(|| format!("say to {run}: {say:?}"));
            if let Say::Decide { step, approve } = &say {
                self.world.tally(|t| {
                    t.decisions
                        .entry((run.to_string(), step.clone()))
                        .or_default()
                        .insert(*approve);
                });
            }
            let h = self.handlers.clone();
            self.tasks.spawn(async move {
                let took = match &say {
                    Say::Decide { step, approve } => {
                        let d = Decision {
                            approve: *approve,
                            by: PERSON.into(),
                            comment: Some(format!("{step} looked at")),
                        };
                        h.decide(&run, step, &d).await.map(|s| s.status.is_final())
                    }
                    Say::Signal { name, id, data } => {
                        let req = SignalRequest {
                            name: name.clone(),
                            data: data.clone(),
                            id: Some(id.clone()),
                            by: SYSTEM.into(),
                        };
                        h.signal(&run, req).await.map(|_| true)
                    }
                    Say::Cancel => h
                        .cancel_run(&run, PERSON, Some("no longer needed"))
                        .await
                        .map(|_| true),
                    Say::Retry => h.retry_run(&run, PERSON, None).await.map(|_| true),
                };
                Job::Answered(i, say, took.map_err(|e| e.to_string()))
            });
        }
    }

    /// Takes in how a try of answer `i` ended. Another sender's signal of a name
    /// already kept must be refused.
    async fn answered(&mut self, i: usize, say: Say, took: Result<bool, String>) {
        let answer = &self.setup.scenario.answers[i];
        let run = self.started[answer.run]
            .clone()
            .expect("answers are said to started runs");
        self.world
            .trace(|| format!("answered {run}: {say:?}: {took:?}"));
        if say != answer.say && took.is_ok() {
            self.world.violation(
                "signal-replaced",
                format!("{run}: {say:?} was taken after {:?} took", answer.say),
            );
        }
        let took = took.unwrap_or(false);
        // Unless a retry reopened the run since (which clears its cancel): then what
        // starts is the retry's.
        if took
            && say == Say::Cancel
            && self
                .store
                .get_run(&run)
                .await
                .is_ok_and(|r| r.cancel.is_some())
        {
            self.world.tally(|t| t.cancels.insert(run.to_string()));
        }
        let moot = !took
            && (if say == Say::Retry {
                // Said until the run has ended; nothing to retry once it succeeded.
                self.store
                    .get_run(&run)
                    .await
                    .is_ok_and(|r| r.status == braid_engine::model::RunStatus::Succeeded)
            } else {
                self.run_final(&run).await
            } || match &say {
                Say::Cancel => self.store.get_run(&run).await.is_ok_and(|r| r.failing),
                Say::Decide { step, .. } => self
                    .store
                    .get_step(&run, &StepKey::step(step.as_str()))
                    .await
                    .is_ok_and(|r| r.status.is_final()),
                Say::Signal { .. } | Say::Retry => false,
            });
        let now = self.world.now();
        self.people
            .answered(&self.setup.scenario, i, now, took, moot);
    }

    /// Whether run `id` is final, read past the faults.
    async fn run_final(&self, id: &RunId) -> bool {
        self.store
            .get_run(id)
            .await
            .is_ok_and(|r| r.status.is_final())
    }

    fn start_due_runs(&mut self, now: Duration) {
        for i in 0..self.start_due.len() {
            if self.start_due[i].is_some_and(|at| at <= now) {
                self.start_due[i] = None;
                let h = self.handlers.clone();
                let req = StartRequest {
                    definition: self.setup.spec.definition.clone(),
                    input: Value::Object(Default::default()),
                    trigger: Value::Object(Default::default()),
                    // A start retried after a failure or a crash finds its run.
                    idempotency_key: Some(format!("sim-{i}")),
                    queue: false,
                };
                self.tasks.spawn(async move {
                    let r = h.start(req).await;
                    Job::Started(
                        i,
                        r.map(|s| s.run.id)
                            .map_err(|e| (e.is_retryable(), e.to_string())),
                    )
                });
            }
        }
    }

    /// Receives a batch from a queue and hands each message to its handler, the batch
    /// shuffled when faults are on.
    async fn receive(&mut self, lane: Lane) {
        let (max, visibility) = match lane {
            Lane::Ready => (8, READY_VISIBILITY),
            Lane::Results => (8, RESULT_VISIBILITY),
        };
        let max = if self.adversarial() {
            self.world.rng(|r| r.usize(1..=max))
        } else {
            max
        };
        // A receive is a write; a look at the earliest visible time is a read.
        let due = self.queue(lane).next_visible_at().expect("the queue reads");
        if due.is_none_or(|at| at > self.world.clock.now_ts()) {
            return;
        }
        let mut got = self
            .queue(lane)
            .receive(max, visibility)
            .await
            .expect("the queue receives");
        if self.adversarial() {
            self.world.rng(|r| r.shuffle(&mut got));
        }
        for m in got {
            self.world.trace(|| {
                format!(
                    "receive {lane:?} {} (#{}) {}",
                    m.receipt, m.receive_count, m.body
                )
            });
            let h = self.handlers.clone();
            self.tasks.spawn(async move {
                let d = match lane {
                    Lane::Ready => h.deliver_ready(&m).await,
                    Lane::Results => h.deliver_result(&m).await,
                };
                Job::Delivered(lane, m.receipt, d)
            });
        }
    }

    fn spawn_tick(&mut self) {
        self.tick_running = true;
        let h = self.handlers.clone();
        let world = self.world.clone();
        self.tasks.spawn(async move {
            world.trace(|| "tick".into());
            if let Err(e) = crate::world::as_tick(h.tick()).await {
                world.trace(|| format!("tick failed: {e}"));
            }
            Job::Ticked
        });
    }

    /// Stops what is still running and reads every run as it ended.
    async fn finish(mut self) -> Drive {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let mut runs = Vec::new();
        for id in &self.started {
            runs.push(match id {
                Some(id) => Some(self.read_run(id).await),
                None => None,
            });
        }
        let mut children = Vec::new();
        let all = RunFilter {
            workflow: None,
            status: None,
            limit: 100_000,
        };
        for r in self.store.list_runs(&all).await.expect("the runs read") {
            if r.parent.is_some() {
                children.push(self.read_run(&r.id).await);
            }
        }
        Drive {
            runs,
            children,
            tally: self.world.tally(std::mem::take),
            trace: self.world.take_trace(),
            ended_at: self.ended_at,
            elapsed: self.world.now(),
        }
    }

    async fn read_run(&self, id: &RunId) -> RunResult {
        let record = self.store.get_run(id).await.expect("the run reads");
        let steps = self.store.list_steps(id).await.expect("the steps read");
        let mut outputs = BTreeMap::new();
        for s in &steps {
            if let Some(d) = &s.output {
                outputs.insert(s.key.to_string(), self.load(d).await);
            }
        }
        let output = match &record.output {
            Some(d) => Some(self.load(d).await),
            None => None,
        };
        let mut signals = BTreeMap::new();
        for name in self.setup.spec.signal_names() {
            if let Some(kept) = self.store.get_signal(id, name).await.expect("signals read") {
                let data = self.load(&kept.data).await;
                signals.insert(name.to_string(), (kept, data));
            }
        }
        RunResult {
            record,
            steps,
            outputs,
            output,
            signals,
        }
    }

    async fn load(&self, d: &Data) -> Value {
        match d {
            Data::Inline(v) => v.clone(),
            Data::Stored { key, .. } => {
                let bytes = futures::executor::block_on(self.payloads.get(key))
                    .unwrap_or_else(|e| panic!("payload {key} is missing: {e}"));
                serde_json::from_slice(&bytes).expect("a payload is JSON")
            }
        }
    }
}

/// The secrets of the simulated process: the key callback tokens are signed with.
struct LinkKey;

#[async_trait::async_trait]
impl braid_ports::SecretStore for LinkKey {
    async fn secret(&self, name: &str) -> braid_ports::PortResult<Option<String>> {
        Ok((name == braid_handlers::links::LINK_KEY_SECRET).then(|| "sim-link-key".to_string()))
    }
}

fn new_handlers(ports: &Ports) -> Arc<Handlers> {
    Arc::new(Handlers::new(
        ports.clone(),
        Settings::default(),
        env_secrets(),
    ))
}
