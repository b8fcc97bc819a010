//! The simulated world shared by the decorators, the task runner and the driver: the
//! seeded randomness, the fault gate every port call passes, the "network" holding
//! messages between a send and the queue, and what the checks need to know afterwards
//! (final writes, run closes, dispatch sends, task invocations, the trace).
//!
//! Everything runs on one thread, so a plain mutex is never contended; it is held only
//! for bookkeeping, never across an `.await`.

use crate::clock::VirtualClock;
use crate::faults::{FaultPlan, backlog_windows};
use crate::remote::{self, Call, Plan, Remote, STALE};
use braid_ports::{PortError, PortResult};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// Which work queue a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    Ready,
    Results,
}

/// A message on its way to a queue.
#[derive(Debug, Clone)]
struct Held {
    lane: Lane,
    body: String,
    /// Virtual time (from the start) it reaches the queue.
    due: Duration,
    seq: u64,
}

/// One call of the simulated task runner.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub run: String,
    pub step: String,
    pub index: Option<u32>,
    pub attempt: u32,
    pub at: Duration,
    /// The task ran to its end (it was not cut by a timeout or a crash).
    pub ended: bool,
}

/// What the checks read after a run: counts kept by the decorators.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Final writes that took effect, by run and step key (and, for a run retried in
    /// place, the retry that wrote it: see [`final_key`]).
    pub finals: BTreeMap<(String, String), u32>,
    /// Run closes that took effect, by run.
    pub finishes: BTreeMap<String, u32>,
    /// "Ready" messages sent, by run, step key and attempt.
    pub dispatches: BTreeMap<(String, String, u32), u32>,
    pub invocations: Vec<Invocation>,
    /// Runs in which the tick recorded an attempt's lease as expired (a step write
    /// by the tick whose record has error `timeout`).
    pub lease_expiries: BTreeSet<String>,
    /// The decisions said (approve or reject), by run and step, whether they took or not.
    pub decisions: BTreeMap<(String, String), BTreeSet<bool>>,
    /// Invariants broken while running (the rest are checked at the end).
    pub violations: Vec<(String, String)>,
    /// Port calls made, crashes included.
    pub calls: u64,
    pub crashes: u32,
    /// Virtual time of the last store write that went through: progress.
    pub last_write: Duration,
    /// What the remote of each callback task's attempt does, by run, step key and
    /// attempt (the first invocation's: a repeated one plans the same).
    pub callback_plans: BTreeMap<(String, String, u32), Plan>,
    /// Runs in which a callback attempt ended by its timeout or a missed heartbeat
    /// although its remote answered in time (faults held the calls up), or whose task
    /// was started again (after a crash): its remote's calls, timed from each start,
    /// may then come in time for the later one, or not.
    pub callback_lapses: BTreeSet<String>,
    /// Runs someone cancelled (the request took), until a retry reopened them.
    pub cancels: BTreeSet<String>,
    /// Retries in place that took, by run: each ends the run once more.
    pub retries: BTreeMap<String, u32>,
    /// Heartbeats the remotes sent, by attempt.
    pub heartbeats: BTreeMap<(String, String, u32), u32>,
    /// Attempts whose task a cancel of their run stopped while it ran.
    pub stops: u32,
    /// Iterations that a retry of their run kept (succeeded before, not run again).
    pub kept: u32,
}

impl Tally {
    /// The most "ready" messages attempt (run, step key, number) may be sent: the
    /// bound of re-sends, plus one per heartbeat (each wakes the attempt at its new
    /// due time).
    pub fn send_bound(&self, attempt: &(String, String, u32)) -> u32 {
        crate::check::MAX_SENDS + self.heartbeats.get(attempt).copied().unwrap_or(0)
    }
}

struct State {
    rng: fastrand::Rng,
    crash_points: VecDeque<u64>,
    crashed: bool,
    held: Vec<Held>,
    next_seq: u64,
    trace: Vec<String>,
    tally: Tally,
    remote: Remote,
    /// The callback token of each attempt started, for the remote to replay.
    tokens: BTreeMap<(String, String, u32), String>,
}

tokio::task_local! {
    /// Set while the driver's tick runs: the handlers do not spawn, so every port call
    /// the tick makes is made within its task.
    static IN_TICK: ();
}

/// Runs `f` as the tick: [`by_tick`] holds within it.
pub async fn as_tick<F: Future>(f: F) -> F::Output {
    IN_TICK.scope((), f).await
}

/// Whether the caller runs within the tick (see [`as_tick`]).
pub fn by_tick() -> bool {
    IN_TICK.try_with(|()| ()).is_ok()
}

/// The shared world of one simulated run.
pub struct World {
    pub clock: Arc<VirtualClock>,
    pub plan: FaultPlan,
    verbose: bool,
    state: Mutex<State>,
    /// Poked when the driver has something to look at: a crash, a message sent.
    pub wake: Notify,
}

impl World {
    /// A world whose faults come from `plan`, crashing at the given port calls.
    pub fn new(
        clock: Arc<VirtualClock>,
        plan: FaultPlan,
        rng: fastrand::Rng,
        crash_points: Vec<u64>,
        verbose: bool,
    ) -> Self {
        World {
            clock,
            plan,
            verbose,
            state: Mutex::new(State {
                rng,
                crash_points: crash_points.into(),
                crashed: false,
                held: Vec::new(),
                next_seq: 0,
                trace: Vec::new(),
                tally: Tally::default(),
                remote: Remote::default(),
                tokens: BTreeMap::new(),
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("world lock")
    }

    pub fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Adds a line to the trace (kept only when verbose: formatting costs).
    pub fn trace(&self, line: impl FnOnce() -> String) {
        if self.verbose {
            let at = self.now();
            let line = format!("{:>10.3}s  {}", at.as_secs_f64(), line());
            self.lock().trace.push(line);
        }
    }

    pub fn take_trace(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().trace)
    }

    /// Runs `f` on the tally.
    pub fn tally<R>(&self, f: impl FnOnce(&mut Tally) -> R) -> R {
        f(&mut self.lock().tally)
    }

    /// Notes that a store write went through.
    pub fn progress(&self) {
        let now = self.now();
        self.lock().tally.last_write = now;
    }

    /// Records a broken invariant of class `class`.
    pub fn violation(&self, class: &str, detail: String) {
        self.trace(|| format!("VIOLATION {class}: {detail}"));
        self.lock()
            .tally
            .violations
            .push((class.to_string(), detail));
    }

    /// A draw from the seeded generator.
    pub fn rng<R>(&self, f: impl FnOnce(&mut fastrand::Rng) -> R) -> R {
        f(&mut self.lock().rng)
    }

    /// The task of `attempt` (run, step key, number) was started with `token`: its
    /// remote goes to work as `plan` says, and replays the token of the attempt
    /// before with its callback.
    pub fn start_remote(&self, attempt: (String, String, u32), token: String, plan: Plan) {
        let now = self.now();
        let mut s = self.lock();
        let call = |say, once| Call {
            attempt: attempt.clone(),
            token: token.clone(),
            say,
            once,
        };
        for beat in &plan.beats {
            s.remote
                .add(now + *beat, call(remote::Say::Heartbeat, false));
        }
        if let Some(report) = plan.report() {
            let at = now + plan.at;
            s.remote
                .add(at, call(remote::Say::Callback(report.clone()), false));
            for copy in &plan.copies {
                s.remote.add(
                    at + *copy,
                    call(remote::Say::Callback(report.clone()), true),
                );
            }
            let (run, key, n) = &attempt;
            if let Some(old) = s.tokens.get(&(run.clone(), key.clone(), n - 1)).cloned() {
                let replay = Call {
                    attempt: (run.clone(), key.clone(), n - 1),
                    token: old,
                    say: remote::Say::Callback(remote::error_report(STALE)),
                    once: true,
                };
                s.remote.add(at, replay);
            }
        }
        s.tokens.insert(attempt.clone(), token.clone());
        let run = attempt.0.clone();
        match s.tally.callback_plans.entry(attempt) {
            std::collections::btree_map::Entry::Occupied(_) => {
                s.tally.callback_lapses.insert(run);
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(plan);
            }
        }
        drop(s);
        self.wake.notify_one();
    }

    /// The remote's calls due at `now`.
    pub fn remote_due(&self, now: Duration) -> Vec<Call> {
        self.lock().remote.take_due(now)
    }

    /// Makes `call` again at `at`.
    pub fn remote_again(&self, at: Duration, call: Call) {
        self.lock().remote.add(at, call);
    }

    /// When the remote's next call is due.
    pub fn remote_next(&self) -> Option<Duration> {
        self.lock().remote.next_due()
    }

    /// Whether the process crashed since the driver last looked; clears it.
    pub fn take_crash(&self) -> bool {
        std::mem::replace(&mut self.lock().crashed, false)
    }

    /// The process dies here: the caller's future never completes (the driver drops
    /// it, with every other handler in flight).
    pub async fn crash_now(&self, why: String) -> ! {
        // A second task reaching its crash at the same instant finds the process dead.
        let first = {
            let mut s = self.lock();
            let first = !s.crashed;
            if first {
                s.crashed = true;
                s.tally.crashes += 1;
            }
            first
        };
        if first {
            self.trace(|| format!("CRASH {why}"));
            self.wake.notify_one();
        }
        std::future::pending::<()>().await;
        unreachable!("a pending future never completes")
    }

    /// The gate every port call passes before its effect: may crash the process, fail
    /// the call, or pause it so that other handlers run in between. Returns whether a
    /// write is to fail after its effect.
    pub async fn enter(&self, call: &str, write: bool) -> PortResult<bool> {
        enum Gate {
            Crash(u64),
            Dead,
            Fail(&'static str),
            Go {
                pause: Option<Duration>,
                after: bool,
            },
        }
        let now = self.now();
        let gate = {
            let mut s = self.lock();
            let plan = &self.plan;
            if s.crashed {
                Gate::Dead
            } else {
                s.tally.calls += 1;
                let n = s.tally.calls;
                if s.crash_points.front() == Some(&n) {
                    s.crash_points.pop_front();
                    Gate::Crash(n)
                } else if write && plan.disk_full.is_some_and(|(a, b)| a <= now && now < b) {
                    Gate::Fail("disk full")
                } else if plan.error > 0.0 && s.rng.f64() < plan.error {
                    Gate::Fail("throttled")
                } else {
                    let pause = (plan.pause > 0.0 && s.rng.f64() < plan.pause).then(|| {
                        if s.rng.u8(..) < 32 {
                            Duration::from_millis(s.rng.u64(500..2_500))
                        } else {
                            Duration::from_millis(s.rng.u64(0..50))
                        }
                    });
                    let after = write && plan.error_after > 0.0 && s.rng.f64() < plan.error_after;
                    Gate::Go { pause, after }
                }
            }
        };
        match gate {
            Gate::Dead => std::future::pending().await,
            Gate::Crash(n) => {
                self.crash_now(format!("before port call {n} ({call})"))
                    .await
            }
            Gate::Fail(why) => {
                self.trace(|| format!("fail {call}: {why}"));
                Err(PortError::backend_msg(format!("simulated: {why}")))
            }
            Gate::Go { pause, after } => {
                if let Some(d) = pause {
                    tokio::time::sleep(d).await;
                    if self.lock().crashed {
                        std::future::pending::<()>().await;
                    }
                }
                Ok(after)
            }
        }
    }

    /// The error of a write that took effect but whose caller is told it failed.
    pub fn failed_after(&self, call: &str) -> PortError {
        self.trace(|| format!("fail {call} after its effect"));
        PortError::backend_msg("simulated: timed out after the write")
    }

    /// Puts sent messages on their way: each may be lost, duplicated, delayed or held
    /// back past an internal window; `delay` is the delay the sender asked for.
    pub fn route(&self, lane: Lane, body: String, delay: Duration) {
        let now = self.now();
        let plan = &self.plan;
        let mut s = self.lock();
        if plan.drop > 0.0 && s.rng.f64() < plan.drop {
            drop(s);
            self.trace(|| format!("drop {lane:?} {body}"));
            return;
        }
        let copies = if plan.duplicate > 0.0 && s.rng.f64() < plan.duplicate {
            2
        } else {
            1
        };
        for copy in 0..copies {
            let extra = if plan.backlog > 0.0 && s.rng.f64() < plan.backlog {
                let windows = backlog_windows();
                windows[s.rng.usize(..windows.len())]
            } else if plan.jitter > 0.0 && s.rng.f64() < plan.jitter {
                plan.max_jitter.mul_f64(s.rng.f64())
            } else {
                Duration::ZERO
            };
            let seq = s.next_seq;
            s.next_seq += 1;
            let due = now + delay + extra;
            s.held.push(Held {
                lane,
                body: body.clone(),
                due,
                seq,
            });
            if self.verbose {
                let line = format!(
                    "{:>10.3}s  send {lane:?}{} due {:.3}s {body}",
                    now.as_secs_f64(),
                    if copy > 0 { " (copy)" } else { "" },
                    due.as_secs_f64()
                );
                s.trace.push(line);
            }
        }
        drop(s);
        self.wake.notify_one();
    }

    /// The messages due at `now`, in the order they reach their queue.
    pub fn arrivals(&self, now: Duration) -> Vec<(Lane, String)> {
        let mut s = self.lock();
        let mut due: Vec<Held> = Vec::new();
        s.held.retain(|h| {
            if h.due <= now {
                due.push(h.clone());
                false
            } else {
                true
            }
        });
        due.sort_by_key(|h| (h.due, h.seq));
        due.into_iter().map(|h| (h.lane, h.body)).collect()
    }

    /// When the next message on its way reaches its queue.
    pub fn next_arrival(&self) -> Option<Duration> {
        self.lock().held.iter().map(|h| h.due).min()
    }

    /// Messages on their way.
    pub fn in_transit(&self) -> usize {
        self.lock().held.len()
    }
}

/// The key a step record's final writes are counted by: its step key, and for a
/// record a retry of its run reset (or an iteration of an expansion after one), the
/// retry and the attempts before it — each retry ends the step once more.
pub fn final_key(rec: &braid_engine::model::StepRecord) -> String {
    match (rec.drive, rec.retry_base) {
        (0, 0) => rec.key.to_string(),
        (d, b) => format!("{} (retry {d}, after attempt {b})", rec.key),
    }
}
