//! The step lifecycle: one pure state machine over a step's (or an iteration's)
//! record. [`decide`] takes the record as read, an [`Event`] and a [`Context`], and
//! answers a [`Transition`]: a write with its guard (or none) and the [`Effect`]s the
//! handlers carry out once the write holds. The handlers load, call and carry out; no
//! step changes state any other way.
//!
//! Every transition is decided from recorded facts. "In flight" is one: a task runs
//! only after its attempt is claimed (running, with a lease), so a step that is not
//! running runs nowhere and may be cancelled at once. The clock only starts harmless
//! actions — the sweeper's re-send of a message presumed lost, which a guard makes a
//! no-op if it was not — and those are counted on the record and capped
//! ([`MAX_RESENDS`]): a message no handler can carry out fails its step
//! `undeliverable` instead of costing sends forever.
//!
//! # Transitions
//!
//! "Not started" is pending, ready, retrying or waiting. A pure step (`pass`, `fail`,
//! a `for_each` expansion, a `when` that skips) has no effect outside its record: it is
//! never claimed, and its outcome is written guarded on the record as read.
//!
//! | from | event | guard | to | effects |
//! |---|---|---|---|---|
//! | ready or retrying (attempt n-1), pending at attempt n-1 with needs met (n = 1 unless retried in place) | arrived n, run open, due | unchanged | running n, lease | run the task |
//! | same, pure step | arrived n | — | — | render, outcome guarded on the record as read |
//! | same, not due yet | arrived n | — | — | send n again when due |
//! | same | arrived n, run failing | not started | cancelled | settle |
//! | running n, no fan-out, lease passed or handed on | arrived n again (redelivered, `resume`) | unchanged (lease) | running n, new lease | run the task |
//! | running n, a fan-out | arrived n again | — | — | — (its iterations go on by their own) |
//! | waiting n (`wait`), due | arrived n (its timer) | unchanged | succeeded | settle |
//! | waiting n (approval, signal, `workflow`), due | arrived n (its timeout) | unchanged | failed `<kind>.timeout`, never retried | settle (a `workflow` step's child is cancelled) |
//! | waiting n, not due | arrived n | — | — | send n again when due |
//! | waiting n (approval, signal) | resolved n by its own kind of waiter: approved, signal data / rejected | unchanged | succeeded / failed `approval.rejected` | settle |
//! | waiting n (`workflow`) | resolved n by its child run's end: succeeded / failed, timed out / cancelled | unchanged | succeeded with the child's output / as a failure (retried by the rules, with a new child; a cancelled child is not retried) | settle / send n+1 when due |
//! | running n (or waiting n, resolved) | ended: output, skip, failure for good | held | succeeded, skipped, failed | settle |
//! | running n | ended: retryable failure, attempts left | held | retrying n, due | send n+1 when due; announce the retry |
//! | running n | ended: stopped (its run is being cancelled, and its dispatcher stopped the task) | held | cancelled, with who asked | settle |
//! | running n, `for_each` | ended: expanded | held | running n with its fan-out | launch lanes |
//! | running n, `wait` | parked until t | held | waiting n, due t | send n at t |
//! | running n, approval or signal | parked until its timeout t (or for good) | held | waiting n, due t | send n at t; announce the wait, look for a signal sent before |
//! | running n, task with a `callback` | its call answered: parked until the next heartbeat or the callback's timeout t | held | waiting n, due, deadline t | send n when due; announce the wait |
//! | waiting n (callback) | heartbeat n | unchanged | waiting n, due a heartbeat from now (at most t) | send n when due |
//! | waiting n (callback), due | arrived n | unchanged | as ended with a retryable `callback.heartbeat` (due before t) or `callback.timeout` | as ended |
//! | waiting n (callback) | resolved n by its callback: output / error | unchanged | as ended with that outcome (an error retryable) | as ended |
//! | running n, `workflow` | parked on the child run it started (until its `timeout` t, or for good) | held | waiting n on the child, due t | send n at t; announce the wait, look at the child (it may have ended already) |
//! | running n, a fan-out | fanned in (its iterations over) | running n | succeeded, failed | settle |
//! | running n, lease l passed | lease l expired | unchanged (lease l) | as ended with a retryable `timeout` | as ended |
//! | not started | fail fast, cancel requested | not started, same attempt | cancelled | settle |
//! | not final | its run ended (timed out, stopped; [`run_ended`]) | not final | cancelled | — |
//! | not final | the store refused the write decided (it can never succeed) | that write's | failed `undeliverable` | settle |
//! | not started, message presumed lost, resends < cap | lost | unchanged | same, resends + 1 | send |
//! | same, resends = cap | lost | unchanged | failed `undeliverable` | settle |
//! | waiting n (signal, `workflow`) for good, parked long ago | lost | unchanged | same, resends + 1, never capped | send n (its arrival looks again for a signal kept before, a child over) |
//! | final, or pending (a top-level step), reset by no later retry | its run retried in place (retry d) | unchanged | pending (ready if its needs are met) at the same attempt n, its policy counted afresh, needs met recomputed, retry d | send n+1 if ready |
//! | an iteration succeeded, kept by a retry of its run (its other iterations deleted) | arrived from the new expansion (n past every attempt of the old one) | unchanged | succeeded, same output, the new expansion's base | settle (its lane goes on) |
//! | anything else | any | — | — | — (a duplicate or stale event) |
//!
//! The waits people and systems end (approvals, signals, callback tokens, child
//! runs) are [`Waiter`]s: a waiting step ends by [`Event::Resolved`] from its waiter,
//! through the same outcome rows as a task.

use crate::gates;
use crate::guard::Guard;
use crate::model::{
    AttemptLog, Data, DispatchMsg, ErrorInfo, FanOut, Outcome, StepRecord, StepStatus, Timestamp,
};
use crate::verdict::{self, Verdict};
use braid_lang::{Step, StepKind};
use std::time::Duration;

/// How many times the sweeper re-sends a step's message presumed lost before the step
/// fails `undeliverable`. Re-sends are spaced twice as far apart each time
/// ([`resend_due`]): with a one-minute staleness window a step waits out about half
/// an hour of backlog before it is given up on.
pub const MAX_RESENDS: u32 = 5;

/// Extra lease beyond a step's timeout, so the dispatcher's own timeout fires first.
pub const LEASE_GRACE: Duration = Duration::from_secs(30);

/// Statuses of a step that has not started (or is between attempts): what fail fast
/// and a cancel request end.
pub const NOT_STARTED: &[StepStatus] = &[
    StepStatus::Pending,
    StepStatus::Ready,
    StepStatus::Retrying,
    StepStatus::Waiting,
];

/// Every status that is not final.
const OPEN: &[StepStatus] = &[
    StepStatus::Pending,
    StepStatus::Ready,
    StepStatus::Running,
    StepStatus::Waiting,
    StepStatus::Retrying,
];

/// What ends a waiting step. Timers (`wait`) are kept by the queue and the tick; the
/// others are ended by a person or another system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiter {
    /// A `wait` step's time came.
    Timer,
    /// An `approval` step was approved or rejected.
    Approval,
    /// A `signal` step's signal arrived.
    Signal,
    /// A task's callback token was used.
    Callback,
    /// A `workflow` step's child run ended.
    ChildRun,
}

/// Something that happened to a step.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A "ready" message arrived; `again` when it was received before, or was handed
    /// on by a dispatcher that had claimed its attempt and could not finish it.
    Arrived { msg: &'a DispatchMsg, again: bool },
    /// Attempt `attempt` ended with `outcome`. `held` is the guard under which the
    /// attempt ran (its claim, or the record as read for a pure step); without it, the
    /// record as read must show the attempt in flight.
    Ended {
        attempt: u32,
        outcome: &'a Outcome,
        held: Option<&'a Guard>,
    },
    /// Attempt `attempt` of a `wait`, `approval` or `signal` step parks until `due`
    /// (its time, or its timeout; for good without one), under `held`.
    Parked {
        attempt: u32,
        due: Option<Timestamp>,
        held: &'a Guard,
    },
    /// The sweeper saw attempt `attempt`'s lease `lease` pass.
    LeaseExpired { attempt: u32, lease: Timestamp },
    /// The task of waiting attempt `attempt` says it is alive (its callback's
    /// heartbeat): the wait goes on until the next heartbeat is due.
    Heartbeat { attempt: u32 },
    /// The waiting attempt `attempt` was ended by its waiter with `outcome`.
    Resolved {
        attempt: u32,
        by: Waiter,
        outcome: &'a Outcome,
    },
    /// The run is failing: what has not started never will.
    FailFast,
    /// A person asked to cancel the step's run.
    CancelRequested,
    /// A running fan-out's iterations are over: it ends so.
    FannedIn {
        status: StepStatus,
        output: Option<&'a Data>,
        error: Option<&'a ErrorInfo>,
    },
    /// The sweeper presumes the step's message lost (it is overdue, see [`resend_due`]).
    Lost,
    /// The run was retried in place (its retry number `drive`): the step runs again
    /// with fresh attempts, `satisfied` being its needs that keep their ends.
    /// `iteration_base`: for a `for_each` step, the attempts its iterations used.
    Redriven {
        drive: u32,
        satisfied: &'a [String],
        iteration_base: u32,
    },
    /// The store refused a write decided for the step under `guard` — one that can
    /// never succeed (a value too big for a record after every offload): the step
    /// fails instead of retrying it.
    Refused { guard: &'a Guard, reason: &'a str },
}

/// What a decision knows besides the record: the step's definition, the run, the time.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub step: &'a Step,
    /// The run is failing (fail fast began): nothing new starts.
    pub run_failing: bool,
    pub now: Timestamp,
    /// An attempt's lease when the step has no `timeout`.
    pub default_lease: Duration,
    /// The longest delay the ready queue takes; a later timer is the tick's.
    pub max_queue_delay: Duration,
    /// In `[0, 1)`: drives retry jitter.
    pub random: f64,
}

/// A guarded write of a step record. A final record is written with the run's error
/// when it fails the run (`fail_run`, see the store port's `finalize_step`).
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub guard: Guard,
    pub record: StepRecord,
    pub fail_run: Option<ErrorInfo>,
}

/// What the handlers do once the transition's write holds (at once when it has none).
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Run attempt `record.attempt` — render the step, call its task — and bring its
    /// end back as [`Event::Ended`] (or [`Event::Parked`]) on `record`, held by `held`.
    Run {
        record: Box<StepRecord>,
        held: Guard,
        /// When the step became due, for a new attempt (not one resumed): its wait in
        /// queues is the attempt's start less this.
        ready_since: Option<Timestamp>,
    },
    /// Send a "ready" message after `delay`.
    Send { msg: DispatchMsg, delay: Duration },
    /// Carry out what follows the step becoming final: release dependents, fail fast,
    /// fan-in, finish the run.
    Settle,
    /// Start the fan-out's lanes.
    LaunchLanes,
    /// The step now waits for a person or a system: announce it (`step.waiting`), and
    /// look for what may have ended the wait before it began (a signal sent early).
    Waiting,
    /// The step will be tried again: announce it (`step.retrying`).
    Retrying,
}

/// A decision: a write (or none) and what follows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transition {
    pub write: Option<Write>,
    pub effects: Vec<Effect>,
}

impl Transition {
    /// Nothing changes: a duplicate, stale or early event.
    pub fn none() -> Self {
        Transition::default()
    }

    fn write(guard: Guard, record: StepRecord, effects: Vec<Effect>) -> Self {
        Transition {
            write: Some(Write {
                guard,
                record,
                fail_run: None,
            }),
            effects,
        }
    }

    fn effect(effect: Effect) -> Self {
        Transition {
            write: None,
            effects: vec![effect],
        }
    }
}

/// Decides what `event` does to `rec`, the step's record as read.
pub fn decide(rec: &StepRecord, event: Event<'_>, ctx: &Context<'_>) -> Transition {
    match event {
        Event::Arrived { msg, again } => arrived(rec, msg, again, ctx),
        Event::Ended {
            attempt,
            outcome,
            held,
        } => {
            // With `held`, `rec` is the attempt as it ran and the store checks the
            // guard; without, the record as read must show the attempt running.
            if rec.status != StepStatus::Running || rec.attempt != attempt {
                return Transition::none();
            }
            let guard = held.cloned().unwrap_or_else(|| Guard::unchanged(rec));
            ended(rec, guard, outcome, ctx)
        }
        Event::Parked { attempt, due, held } => {
            if rec.status != StepStatus::Running || rec.attempt != attempt {
                return Transition::none();
            }
            let waiting = StepRecord {
                status: StepStatus::Waiting,
                lease_until: None,
                due_at: due,
                ..rec.clone()
            };
            let mut effects = Vec::new();
            // Longer than the queue can delay: the tick wakes it from `due_at`.
            if let Some(d) = due
                && until(d, ctx.now) <= ctx.max_queue_delay
            {
                effects.push(Effect::Send {
                    msg: wake(rec, d),
                    delay: until(d, ctx.now),
                });
            }
            if waiter(ctx.step).is_some_and(|w| w != Waiter::Timer) {
                effects.push(Effect::Waiting);
            }
            Transition::write(held.clone(), waiting, effects)
        }
        Event::LeaseExpired { attempt, lease } => {
            let live = rec.status == StepStatus::Running
                && rec.attempt == attempt
                && rec.lease_until == Some(lease)
                && rec.fan_out.is_none();
            if !live || lease > ctx.now {
                return Transition::none();
            }
            let outcome = Outcome::Failed {
                error: lease_error(rec, ctx.step),
                retryable: true,
            };
            ended(rec, Guard::unchanged(rec), &outcome, ctx)
        }
        Event::Resolved {
            attempt,
            by,
            outcome,
        } => {
            if rec.status != StepStatus::Waiting
                || rec.attempt != attempt
                || waiter(ctx.step) != Some(by)
            {
                return Transition::none();
            }
            ended(rec, Guard::unchanged(rec), outcome, ctx)
        }
        Event::Heartbeat { attempt } => heartbeat(rec, attempt, ctx),
        Event::FailFast | Event::CancelRequested => cancel(rec, ctx.now),
        Event::FannedIn {
            status,
            output,
            error,
        } => {
            if rec.status != StepStatus::Running || rec.fan_out.is_none() || !status.is_final() {
                return Transition::none();
            }
            let done = StepRecord {
                status,
                output: output.cloned(),
                error: error.cloned(),
                lease_until: None,
                finished_at: Some(ctx.now),
                ..rec.clone()
            };
            finalize(
                rec,
                Guard::at(&[StepStatus::Running], rec.attempt),
                done,
                ctx.step,
            )
        }
        Event::Lost => lost(rec, ctx),
        Event::Redriven {
            drive,
            satisfied,
            iteration_base,
        } => redriven(rec, drive, satisfied, iteration_base, ctx),
        // `rec` is the record the refused write carried; its guard still decides.
        Event::Refused { guard, reason } => {
            let error = ErrorInfo::new(
                "undeliverable",
                format!(
                    "step `{}` attempt {}: the state store refused its record: {reason}",
                    rec.key, rec.attempt
                ),
            );
            let failed = StepRecord {
                status: StepStatus::Failed,
                output: None,
                error: Some(error),
                lease_until: None,
                due_at: None,
                finished_at: Some(ctx.now),
                fan_out: None,
                items: None,
                ..rec.clone()
            };
            finalize(rec, guard.clone(), failed, ctx.step)
        }
    }
}

/// A "ready" message's arrival.
fn arrived(rec: &StepRecord, msg: &DispatchMsg, again: bool, ctx: &Context<'_>) -> Transition {
    let step = ctx.step;
    match rec.status {
        StepStatus::Waiting if rec.attempt == msg.attempt => {
            // Waiting for good (an approval without a timeout): only its waiter ends it.
            let Some(due) = rec.due_at else {
                return Transition::none();
            };
            if due > ctx.now {
                // Sent for a due time a heartbeat has moved since: the heartbeat sent
                // the message for the new one, so this one ends here.
                if msg.due.is_some_and(|d| d != due) {
                    return Transition::none();
                }
                return Transition::effect(Effect::Send {
                    msg: wake(rec, due),
                    delay: until(due, ctx.now),
                });
            }
            ended(rec, Guard::unchanged(rec), &timed_out(ctx.step, rec), ctx)
        }
        StepStatus::Running
            if again
                && rec.attempt == msg.attempt
                && rec.fan_out.is_none()
                && (msg.resume || rec.lease_until.is_none_or(|l| l <= ctx.now)) =>
        {
            // Its dispatcher is gone — it handed the attempt on (`resume`), or its
            // lease ran out before its message came back: take the attempt over. A
            // copy arriving again while the lease is live is a duplicate: the attempt
            // runs elsewhere.
            let resumed = StepRecord {
                lease_until: Some(lease_end(step, ctx)),
                ..rec.clone()
            };
            claim(Guard::unchanged(rec), resumed, None)
        }
        _ if starts(rec, msg, step) => {
            if ctx.run_failing {
                return cancel(rec, ctx.now);
            }
            if let Some(due) = rec.due_at.filter(|d| *d > ctx.now) {
                return Transition::effect(Effect::Send {
                    msg: msg.clone(),
                    delay: until(due, ctx.now),
                });
            }
            let running = StepRecord {
                status: StepStatus::Running,
                attempt: msg.attempt,
                lease_until: Some(lease_end(step, ctx)),
                due_at: None,
                started_at: rec.started_at.or(Some(ctx.now)),
                attempt_started_at: Some(ctx.now),
                // Re-sends count the messages of one state not started: this one's
                // message came.
                resends: 0,
                ..rec.clone()
            };
            if is_pure(step, rec) {
                // Nothing outside the record: no claim, its outcome guarded on the
                // record as read.
                Transition::effect(Effect::Run {
                    record: Box::new(StepRecord {
                        lease_until: None,
                        ..running
                    }),
                    held: Guard::unchanged(rec),
                    ready_since: rec.due_at,
                })
            } else {
                claim(Guard::unchanged(rec), running, rec.due_at)
            }
        }
        StepStatus::Succeeded if kept_by_retry(rec, msg, step) => {
            // Succeeded before its run was retried in place: the new expansion keeps
            // its output rather than run it again, and its lane goes on from it. Taking
            // the new expansion's base makes a copy of this message a duplicate.
            // Its attempt is told among the earlier ones, as a reset step's is.
            let earlier = match rec.finished_at {
                Some(ended_at) if rec.earlier.iter().all(|a| a.attempt != rec.attempt) => rec
                    .with_ended(AttemptLog {
                        attempt: rec.attempt,
                        started_at: rec.attempt_started_at,
                        ended_at,
                        status: rec.status,
                        error: None,
                        retry_at: None,
                    }),
                _ => rec.earlier.clone(),
            };
            let kept = StepRecord {
                retry_base: msg.attempt - 1,
                resends: 0,
                earlier,
                ..rec.clone()
            };
            Transition::write(Guard::unchanged(rec), kept, vec![Effect::Settle])
        }
        _ => Transition::none(),
    }
}

/// Whether `msg` is an iteration's first message from an expansion after the one
/// that made `rec`: numbered past every attempt `rec`'s expansion could have made
/// (see [`crate::model::FanOut::base`]).
fn kept_by_retry(rec: &StepRecord, msg: &DispatchMsg, step: &Step) -> bool {
    rec.key.index.is_some() && msg.attempt > rec.retry_base + step.retry.attempts.max(1)
}

/// What ends `step`'s wait, for a step that waits.
pub fn waiter(step: &Step) -> Option<Waiter> {
    match step.kind {
        StepKind::Wait(_) => Some(Waiter::Timer),
        StepKind::Approval { .. } => Some(Waiter::Approval),
        StepKind::Signal { .. } => Some(Waiter::Signal),
        StepKind::Workflow { .. } => Some(Waiter::ChildRun),
        StepKind::Lambda { .. } | StepKind::Http(_) if step.callback.is_some() => {
            Some(Waiter::Callback)
        }
        _ => None,
    }
}

/// A callback's heartbeat on waiting attempt `attempt`: the next one is due a
/// heartbeat from now (never past the callback's timeout), and a message is sent to
/// wake the attempt then. The message on its way for the earlier due time ends where
/// it arrives (see [`arrived`]): sent on, as a message for a waiting attempt that
/// comes early is, each beat would add a chain of messages — and each copy of one —
/// living as long as the wait.
fn heartbeat(rec: &StepRecord, attempt: u32, ctx: &Context<'_>) -> Transition {
    let Some(every) = ctx.step.callback.and_then(|c| c.heartbeat) else {
        return Transition::none();
    };
    if rec.status != StepStatus::Waiting || rec.attempt != attempt {
        return Transition::none();
    }
    let next = chrono::TimeDelta::from_std(every)
        .ok()
        .and_then(|d| ctx.now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    let due = rec.wait_deadline.map_or(next, |d| d.min(next));
    let beat = StepRecord {
        due_at: Some(due),
        ..rec.clone()
    };
    let delay = until(due, ctx.now);
    let effects = if delay <= ctx.max_queue_delay {
        vec![Effect::Send {
            msg: wake(rec, due),
            delay,
        }]
    } else {
        Vec::new()
    };
    Transition::write(Guard::unchanged(rec), beat, effects)
}

/// The outcome of a wait whose time came: a `wait` step's end; a callback's timeout
/// or missed heartbeat, a failure of the task's attempt (retried by the rules); any
/// other waiting step's timeout (`<kind>.timeout`), which retries do not ask again.
fn timed_out(step: &Step, rec: &StepRecord) -> Outcome {
    if matches!(step.kind, StepKind::Wait(_)) {
        return Outcome::Succeeded {
            output: crate::model::Data::Inline(serde_json::Value::Null),
        };
    }
    if waiter(step) == Some(Waiter::Callback) {
        let missed_beat = rec.wait_deadline.is_some_and(|d| rec.due_at < Some(d));
        let (error, what) = match missed_beat {
            true => ("callback.heartbeat", "no heartbeat came in time"),
            false => ("callback.timeout", "no callback came within its timeout"),
        };
        return Outcome::Failed {
            error: ErrorInfo::new(
                error,
                format!("step `{}` attempt {}: {what}", rec.key, rec.attempt),
            ),
            retryable: true,
        };
    }
    let kind = step.kind.name();
    Outcome::Failed {
        error: ErrorInfo::new(
            format!("{kind}.timeout"),
            format!(
                "step `{}`: the {kind} was not answered within its timeout",
                step.id
            ),
        ),
        retryable: false,
    }
}

/// Whether `msg` starts attempt `msg.attempt` of `rec`: the next attempt of a ready or
/// retrying step, or the first of a pending one whose needs are met (an iteration's
/// needs are its fan-out's, met when its lane launched it).
fn starts(rec: &StepRecord, msg: &DispatchMsg, step: &Step) -> bool {
    match rec.status {
        StepStatus::Ready | StepStatus::Retrying => rec.attempt + 1 == msg.attempt,
        StepStatus::Pending => {
            rec.attempt + 1 == msg.attempt
                && (rec.key.index.is_some() || gates::is_ready(step, &rec.satisfied))
        }
        _ => false,
    }
}

/// A claim: the attempt is running under `running`'s lease once the write holds.
fn claim(guard: Guard, running: StepRecord, ready_since: Option<Timestamp>) -> Transition {
    let held = Guard {
        statuses: vec![StepStatus::Running],
        attempt: Some(running.attempt),
        lease: running.lease_until,
    };
    Transition::write(
        guard,
        running.clone(),
        vec![Effect::Run {
            record: Box::new(running),
            held,
            ready_since,
        }],
    )
}

/// Whether attempt of `rec` only renders values: a `pass` or `fail` step, or the
/// expansion of a `for_each` step (its iterations run tasks, claimed each).
pub fn is_pure(step: &Step, rec: &StepRecord) -> bool {
    matches!(step.kind, StepKind::Pass { .. } | StepKind::Fail { .. })
        || (step.for_each.is_some() && rec.key.index.is_none())
}

/// What an attempt's outcome does to `rec`, written under `guard`.
fn ended(rec: &StepRecord, guard: Guard, outcome: &Outcome, ctx: &Context<'_>) -> Transition {
    let now = ctx.now;
    // The retry policy counts the attempts since the run was last retried.
    let attempt = rec.attempt.saturating_sub(rec.retry_base);
    match verdict::decide(ctx.step, attempt, outcome, now, ctx.random) {
        Verdict::Retry { due_at, error } => {
            let retrying = StepRecord {
                status: StepStatus::Retrying,
                lease_until: None,
                due_at: Some(due_at),
                earlier: rec.with_ended(AttemptLog {
                    attempt: rec.attempt,
                    started_at: rec.attempt_started_at,
                    ended_at: now,
                    status: StepStatus::Failed,
                    error: Some(error.clone()),
                    retry_at: Some(due_at),
                }),
                error: Some(error),
                // The next attempt's message is counted afresh: re-sends of a wait
                // (never capped, see `lost`) must not delay or fail the retry.
                resends: 0,
                ..rec.clone()
            };
            let delay = until(due_at, now);
            let mut effects = Vec::new();
            if delay <= ctx.max_queue_delay {
                effects.push(Effect::Send {
                    msg: message(rec, rec.attempt + 1),
                    delay,
                });
            }
            effects.push(Effect::Retrying);
            Transition::write(guard, retrying, effects)
        }
        Verdict::Expand { items, total } => {
            // The fan-out step holds no lease: its iterations have their own.
            let expanded = StepRecord {
                status: StepStatus::Running,
                fan_out: Some(FanOut {
                    total,
                    lanes: gates::max_in_flight(ctx.step, total),
                    base: rec.iteration_base,
                    ..FanOut::default()
                }),
                items: Some(items),
                lease_until: None,
                ..rec.clone()
            };
            Transition::write(guard, expanded, vec![Effect::LaunchLanes])
        }
        Verdict::Final {
            status,
            output,
            error,
        } => finalize(
            rec,
            guard,
            StepRecord {
                status,
                output,
                error,
                lease_until: None,
                due_at: None,
                finished_at: Some(now),
                ..rec.clone()
            },
            ctx.step,
        ),
    }
}

/// A final write of `done` under `guard`, failing the run in the same write when the
/// step's failure does (fail fast).
fn finalize(rec: &StepRecord, guard: Guard, done: StepRecord, step: &Step) -> Transition {
    let fail_run = done
        .error
        .as_ref()
        .filter(|_| gates::fails_run(step, done.status))
        .map(|e| run_error(rec, e));
    Transition {
        write: Some(Write {
            guard,
            record: done,
            fail_run,
        }),
        effects: vec![Effect::Settle],
    }
}

/// The run's error when step (or iteration) `rec` fails it with `e`.
pub fn run_error(rec: &StepRecord, e: &ErrorInfo) -> ErrorInfo {
    let message = match rec.key.index {
        Some(i) => format!("iteration {i} failed: {}", e.message),
        None => e.message.clone(),
    };
    ErrorInfo::new(
        e.error.clone(),
        format!("step `{}` failed: {message}", rec.key.step),
    )
}

/// Cancels a step that has not started; one running finishes and is recorded.
fn cancel(rec: &StepRecord, now: Timestamp) -> Transition {
    if !NOT_STARTED.contains(&rec.status) {
        return Transition::none();
    }
    // At the attempt as read: a record read before a claim must not write its old
    // attempt over the one claimed since (which, parked waiting, is not started
    // again); that one is cancelled from its own record, by the sweep if need be.
    Transition::write(
        Guard::at(NOT_STARTED, rec.attempt),
        cancelled(rec, now),
        vec![Effect::Settle],
    )
}

/// What the end of its run (a timeout, a message that can never be handled) does to
/// step `rec`: one not final is cancelled, an attempt in flight included — its outcome
/// would change nothing. Decided without the step's definition, which a run that
/// cannot go on may lack.
pub fn run_ended(rec: &StepRecord, now: Timestamp) -> Transition {
    if rec.status.is_final() {
        return Transition::none();
    }
    Transition::write(Guard::status(OPEN), cancelled(rec, now), Vec::new())
}

/// `rec` cancelled at `now`.
fn cancelled(rec: &StepRecord, now: Timestamp) -> StepRecord {
    StepRecord {
        status: StepStatus::Cancelled,
        lease_until: None,
        due_at: None,
        finished_at: Some(now),
        ..rec.clone()
    }
}

/// A step of a run retried in place: final (or never started), it becomes pending
/// (ready when its needs are met) again at the attempt it reached — attempt numbers only grow, so a callback token,
/// approval link or child run of an earlier attempt never names the next — with its
/// retry policy counted afresh. Sent at once when its needs are met. A record already
/// reset by this retry (or a later one) is left alone.
fn redriven(
    rec: &StepRecord,
    drive: u32,
    satisfied: &[String],
    iteration_base: u32,
    ctx: &Context<'_>,
) -> Transition {
    let resettable = rec.status.is_final() || rec.status == StepStatus::Pending;
    if !resettable || rec.drive >= drive || rec.key.index.is_some() {
        return Transition::none();
    }
    // The attempt it ended with is told among the earlier ones.
    let earlier = match rec.finished_at.filter(|_| rec.attempt > rec.retry_base) {
        Some(ended_at) => rec.with_ended(AttemptLog {
            attempt: rec.attempt,
            started_at: rec.attempt_started_at,
            ended_at,
            status: rec.status,
            error: rec.error.clone(),
            retry_at: None,
        }),
        None => rec.earlier.clone(),
    };
    let pending = StepRecord {
        status: StepStatus::Pending,
        retry_base: rec.attempt,
        drive,
        iteration_base,
        satisfied: satisfied.to_vec(),
        earlier,
        ..StepRecord::new(rec.run_id.clone(), rec.key.clone(), StepStatus::Pending)
    };
    let ready = gates::is_ready(ctx.step, satisfied);
    let reset = StepRecord {
        attempt: rec.attempt,
        // Made ready as a release makes it, so a lost message is re-sent.
        status: if ready {
            StepStatus::Ready
        } else {
            StepStatus::Pending
        },
        due_at: ready.then_some(ctx.now),
        ..pending
    };
    let effects = if ready {
        vec![Effect::Send {
            msg: DispatchMsg::next(&reset),
            delay: Duration::ZERO,
        }]
    } else {
        Vec::new()
    };
    Transition::write(Guard::unchanged(rec), reset, effects)
}

/// The sweeper's re-send of a message presumed lost: counted, and capped.
fn lost(rec: &StepRecord, ctx: &Context<'_>) -> Transition {
    let attempt = match rec.status {
        StepStatus::Ready | StepStatus::Retrying => rec.attempt + 1,
        StepStatus::Waiting => rec.attempt,
        StepStatus::Pending => rec.attempt + 1,
        _ => return Transition::none(),
    };
    if ctx.run_failing {
        return cancel(rec, ctx.now);
    }
    // A signal step waiting for good is sent its message only to look again for a
    // signal kept before it parked (see `reconcile`): nothing is carried out that
    // could fail, so it is never given up on, and it goes on waiting for good.
    let for_good = rec.status == StepStatus::Waiting && rec.due_at.is_none();
    if rec.resends >= MAX_RESENDS && !for_good {
        let error = ErrorInfo::new(
            "undeliverable",
            format!(
                "step `{}` attempt {attempt} was never carried out: its message was sent {} times \
                 and every handler that took it stopped before recording anything (a crash, \
                 out of memory, or a backlog longer than {} re-sends waited)",
                rec.key,
                rec.resends + 1,
                MAX_RESENDS
            ),
        );
        let failed = StepRecord {
            status: StepStatus::Failed,
            error: Some(error),
            lease_until: None,
            due_at: None,
            finished_at: Some(ctx.now),
            ..rec.clone()
        };
        return finalize(rec, Guard::unchanged(rec), failed, ctx.step);
    }
    let counted = StepRecord {
        resends: rec.resends + 1,
        // When it was last sent: the next re-send waits from here.
        due_at: (!for_good).then_some(ctx.now),
        ..rec.clone()
    };
    Transition::write(
        Guard::unchanged(rec),
        counted,
        vec![Effect::Send {
            msg: message(rec, attempt),
            delay: Duration::ZERO,
        }],
    )
}

/// Whether the message of a step not started, sent (or due) at `since`, is presumed
/// lost at `now`: `stale` after it, doubled for each re-send already made.
pub fn resend_due(rec: &StepRecord, since: Timestamp, now: Timestamp, stale: Duration) -> bool {
    let wait = stale.saturating_mul(1 << rec.resends.min(16));
    since
        .checked_add_signed(chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX))
        .is_some_and(|t| t <= now)
}

/// Why a lease ran out: the step's timeout, or a worker gone.
fn lease_error(rec: &StepRecord, step: &Step) -> ErrorInfo {
    let message = match step.timeout {
        Some(t) => format!(
            "step `{}` attempt {} exceeded its timeout of {}",
            rec.key,
            rec.attempt,
            braid_lang::format_duration(t)
        ),
        None => format!(
            "step `{}` attempt {} was lost: its worker stopped reporting",
            rec.key, rec.attempt
        ),
    };
    ErrorInfo::new("timeout", message)
}

/// When an attempt claimed now is presumed lost: its timeout (or the default lease)
/// and a grace, so the dispatcher's own timeout fires first. Saturates far in the
/// future rather than overflowing.
fn lease_end(step: &Step, ctx: &Context<'_>) -> Timestamp {
    // A waiting kind's `timeout` bounds its wait, not the attempt that starts it (a
    // task's, its call, callback or not).
    let waits = matches!(
        step.kind,
        StepKind::Approval { .. } | StepKind::Signal { .. } | StepKind::Workflow { .. }
    );
    let timeout = step.timeout.filter(|_| !waits);
    let lease = timeout
        .unwrap_or(ctx.default_lease)
        .saturating_add(LEASE_GRACE);
    chrono::TimeDelta::from_std(lease)
        .ok()
        .and_then(|d| ctx.now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// The "ready" message for attempt `attempt` of `rec`.
fn message(rec: &StepRecord, attempt: u32) -> DispatchMsg {
    DispatchMsg {
        attempt,
        ..DispatchMsg::first(rec.run_id.clone(), rec.key.clone())
    }
}

/// The message that wakes waiting `rec` at `due`.
fn wake(rec: &StepRecord, due: Timestamp) -> DispatchMsg {
    DispatchMsg {
        due: Some(due),
        ..message(rec, rec.attempt)
    }
}

fn until(t: Timestamp, now: Timestamp) -> Duration {
    (t - now).to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests;
