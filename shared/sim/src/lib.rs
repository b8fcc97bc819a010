//! Deterministic simulation of Braid's handlers: seeded random workflows run by the
//! real [`braid_handlers::Handlers`] over the real embedded adapters, in a world that
//! loses, duplicates, delays and reorders messages, fails store calls, fills the disk
//! and crashes the process between any two effects — with virtual time, so that a
//! seed replays exactly and hours of backlog take milliseconds.
//!
//! # What one seed does
//! From the seed: a workflow and its child workflows (see [`workflow`]), how its tasks
//! behave per (step, index, attempt) (see [`tasks`]) and what the remotes of callback
//! tasks do (see [`remote`]), who answers its approvals and signals and who cancels
//! its runs, what and when (see [`people`]), a tick interval and a mix of faults (see
//! [`faults`]). The
//! workflow's runs are driven twice (see [`driver`]): once without any fault — the
//! reference — and once with the faults and crashes at port calls drawn among those
//! the reference made; the people's decisions, signals and cancels and the remotes'
//! callbacks and heartbeats pass the same faults. Then the invariants are checked
//! (see [`check`]):
//! - every run is final within a bound of virtual time (a step waiting without a
//!   timeout is always answered, so nothing waits forever);
//! - every step and iteration is recorded final exactly once, and every run closed once;
//! - no task starts before its needs are final, for a step already final, or — unless
//!   its attempt was already claimed — once its run is failing (fail fast);
//! - fail fast never cancels an attempt whose task ran to its end (steps in flight
//!   finish and are recorded);
//! - a fan-out's counters only go up (a fan-out is expanded once), an attempt is
//!   never recorded lost while it holds a lease that has not run out, and a parked
//!   attempt (a rejected or timed-out approval or signal) is never retried (checked
//!   on each write by the store decorator);
//! - a waiting step ends by its answer: a `wait` not before its time, an approval
//!   succeeded only when approved (rejected only when rejected), a signal step only
//!   with the first signal of its name kept for its run — another sender's is
//!   refused — and a signal sent before its step is reached is taken by it unless
//!   the step timed out first (see [`check::waits`]);
//! - a callback attempt ends only by its remote's outcome (its output, or its
//!   error), a missed heartbeat or its timeout — these not before they are due, and
//!   never for a remote that answered in time unless faults held it up — each attempt
//!   once; a replayed token of an attempt before changes nothing (checked on each
//!   write by the store decorator, and on each call);
//! - a child run is started once per parent attempt, and a `workflow` step that
//!   succeeded has its child's output; a final run leaves no child running; a run
//!   whose cancel took ends `cancelled`, and nothing starts after the cancel's scan
//!   (see [`check::children`]);
//! - a step's attempt is sent at most [`check::MAX_SENDS`] "ready" messages;
//! - a faulty run ends like the reference (same status; when it succeeded, the same
//!   steps' statuses, attempts and outputs and the same run output; an approval's
//!   output without the instant of its decision), unless a fault legitimately changed
//!   its course — such as an answer and a timeout racing, a callback held up or taken
//!   after it was due, a cancel (whose moment in the run depends on timing), or such a
//!   change in a child run (see [`check::compare`]).
//!
//! # Running it
//! ```text
//! cargo run -p braid-sim --release -- --seeds 1000000 [--start S]   # a night's worth
//! cargo run -p braid-sim --release -- --seed S --verbose            # replay one seed, with its trace
//! BRAID_SIM_SEEDS=N BRAID_SIM_START=S cargo test -p braid-sim -- --include-ignored   # the CI seed set
//! ```
//! A failing seed prints the one command that replays it.
//!
//! # Layout
//! - [`clock`]: virtual time (the Clock port over tokio's paused clock) and ids;
//! - [`world`]: the shared world — seeded randomness, the fault gate, the network, tallies;
//! - [`store`], [`queue`], [`payloads`]: the decorators over the embedded adapters;
//! - [`tasks`]: the simulated task runner and the task behaviour plan;
//! - [`workflow`]: the random workflow generator;
//! - [`people`]: the people and systems who answer approvals and signals, and cancel runs;
//! - [`remote`]: the remote systems behind callback tasks;
//! - [`faults`]: the per-seed fault mix;
//! - [`driver`]: one simulated process, start to end;
//! - [`check`]: the invariants.

pub mod check;
pub mod clock;
pub mod driver;
pub mod faults;
pub mod payloads;
pub mod people;
pub mod queue;
pub mod remote;
pub mod store;
pub mod tasks;
pub mod workflow;
pub mod world;

use check::Violation;
use driver::{Setup, drive};
use faults::FaultPlan;
use std::sync::Arc;
use std::time::Duration;
use tasks::TaskPlan;

/// How seeds are run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The largest workflow drawn, in steps.
    pub max_steps: usize,
    /// Keep the traces (slower).
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_steps: 5,
            verbose: false,
        }
    }
}

/// What one seed found.
#[derive(Debug)]
pub struct SeedReport {
    pub seed: u64,
    pub violations: Vec<Violation>,
    /// Runs compared with the fault-free reference, of `runs`.
    pub compared: usize,
    pub runs: usize,
    /// Tasks a cancel stopped while they ran, in both drives.
    pub stops: u32,
    /// Iterations a retry of their run kept, in both drives.
    pub kept: u32,
    /// SLA misses noted on the runs, in both drives.
    pub sla_misses: usize,
    /// Virtual time the faulty drive took.
    pub virtual_time: Duration,
    /// Real time the seed took, both drives.
    pub wall: Duration,
    /// The workflow, the task plan and the fault mix, for a replay's reader.
    pub setting: String,
    pub reference_trace: Vec<String>,
    pub faulty_trace: Vec<String>,
}

/// Runs one seed: its reference drive, its faulty drive and the checks.
pub fn run_seed(seed: u64, opts: &Options) -> SeedReport {
    let began = std::time::Instant::now();
    let mut rng = fastrand::Rng::with_seed(seed);
    let spec = Arc::new(workflow::generate(&mut rng, opts.max_steps));
    let scenario = Arc::new(people::Scenario::draw(&spec, &mut rng));
    let plan = TaskPlan::draw(seed, &mut rng);
    let tick_every = [15, 60, 60, 60].map(Duration::from_secs)[rng.usize(..4)];
    let faults = FaultPlan::draw(&mut rng);
    let setup = Setup {
        seed,
        spec: spec.clone(),
        plan,
        scenario: scenario.clone(),
        tick_every,
    };
    let bound = reference_bound(&spec, &plan, tick_every);
    if opts.verbose {
        eprintln!(
            "seed {seed}: {} run(s) of\n{}tasks: {plan:?}, tick every {tick_every:?}\nanswers: {:?}",
            spec.runs, spec.yaml, scenario.answers
        );
    }
    let reference = drive(
        &setup,
        FaultPlan::none(),
        Vec::new(),
        bound,
        opts.verbose,
        true,
    );
    let mut crashes: Vec<u64> = (0..faults.crashes)
        .map(|_| rng.u64(1..=reference.tally.calls.max(1)))
        .collect();
    crashes.sort_unstable();
    crashes.dedup();
    let setting = format!(
        "workflow ({} run(s)):\n{}\ntasks: {plan:?}\nanswers: {:?}\ntick every {tick_every:?}\nfaults: {faults:?}\ncrashes before port calls {crashes:?}",
        spec.runs, spec.yaml, scenario.answers
    );
    let faulty_bound = 2 * bound + Duration::from_secs(2 * 3600);
    let faulty = drive(&setup, faults, crashes, faulty_bound, opts.verbose, true);
    let mut violations = check::check_drive(&setup, &reference, "reference");
    violations.extend(check::check_drive(&setup, &faulty, "faulty"));
    let (differences, compared) = check::compare(&setup, &reference, &faulty);
    violations.extend(differences);
    SeedReport {
        seed,
        violations,
        compared,
        runs: spec.runs as usize,
        stops: reference.tally.stops + faulty.tally.stops,
        kept: reference.tally.kept + faulty.tally.kept,
        sla_misses: [&reference, &faulty]
            .iter()
            .flat_map(|d| d.runs.iter().flatten())
            .map(|r| r.record.sla_missed.len())
            .sum(),
        virtual_time: faulty.elapsed,
        wall: began.elapsed(),
        setting,
        reference_trace: reference.trace,
        faulty_trace: faulty.trace,
    }
}

/// A generous bound on the virtual time a fault-free drive needs: every step one after
/// the other, each attempt as long as the longest task (past the default lease) plus
/// the longest backoff, every iteration too, every run in turn, plus an hour. When
/// tasks may crash the process, an attempt whose task crashes is claimed again by
/// each delivery of its message — one per visibility timeout, and the queue gives up
/// after [`braid_handlers::MAX_RECEIVES`] — until the tick expires its lease, a tick
/// after the last. A step waiting for an answer waits at most until its timeout or
/// until the scenario answers it (see [`people`]), whichever the bound takes as later;
/// a callback attempt at most its timeout, and a `workflow` step its child's run.
fn reference_bound(spec: &workflow::WorkflowSpec, plan: &TaskPlan, tick: Duration) -> Duration {
    let longest = Duration::from_secs(25 * 60);
    let per_attempt = if plan.crash > 0 {
        longest.max(driver::READY_VISIBILITY * braid_handlers::MAX_RECEIVES + tick)
    } else {
        longest
    };
    run_bound(spec, per_attempt) * spec.runs + Duration::from_secs(3600)
}

/// One run of `spec` in turn, each attempt taking `per_attempt` (plus its callback's
/// timeout, or its child's run).
fn run_bound(spec: &workflow::WorkflowSpec, per_attempt: Duration) -> Duration {
    spec.steps
        .iter()
        .map(|s| {
            let attempts = s.retry.map_or(1, |r| r.0);
            let items = if s.for_each.is_some() { 4 } else { 1 };
            let answer = if s.kind.is_answered() {
                people::LATEST + people::POLL + s.kind.answer_timeout().unwrap_or_default()
            } else {
                Duration::ZERO
            };
            let waits = match s.kind {
                workflow::Kind::Child(i) => run_bound(&spec.children[i], per_attempt),
                _ => Duration::from_secs(s.callback.map_or(0, |c| c.timeout)),
            };
            (per_attempt + waits) * attempts * items + answer + Duration::from_secs(17 * 60)
        })
        .sum()
}

/// The command that replays `seed` with its trace.
pub fn replay_command(seed: u64, opts: &Options) -> String {
    let steps = if opts.max_steps == Options::default().max_steps {
        String::new()
    } else {
        format!(" --max-steps {}", opts.max_steps)
    };
    format!("cargo run -p braid-sim --release -- --seed {seed}{steps} --verbose")
}

/// How many of the slowest seeds a [`Summary`] names.
const SLOWEST: usize = 3;

/// What a range of seeds found.
#[derive(Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    pub runs: usize,
    pub compared: usize,
    pub stops: u64,
    pub kept: u64,
    pub sla_misses: u64,
    /// The slowest seeds, slowest first, with their real time.
    pub slowest: Vec<(u64, Duration)>,
    /// The reports of the seeds that broke an invariant, in seed order (the others
    /// are dropped as they end: a night's million seeds would not fit in memory).
    pub failing: Vec<SeedReport>,
}

/// Runs seeds `start..start + count` on `threads` threads (each seed on its own
/// single-threaded runtime), calling `each` as each one ends.
pub fn run_seeds(
    start: u64,
    count: u64,
    threads: usize,
    opts: &Options,
    each: impl Fn(&SeedReport) + Sync,
) -> Summary {
    let next = std::sync::atomic::AtomicU64::new(start);
    let end = start.saturating_add(count);
    let summary = std::sync::Mutex::new(Summary::default());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if seed >= end {
                        break;
                    }
                    let r = run_seed(seed, opts);
                    each(&r);
                    let mut sum = summary.lock().expect("summary lock");
                    sum.seeds += 1;
                    sum.runs += r.runs;
                    sum.compared += r.compared;
                    sum.stops += u64::from(r.stops);
                    sum.kept += u64::from(r.kept);
                    sum.sla_misses += r.sla_misses as u64;
                    sum.slowest.push((r.seed, r.wall));
                    sum.slowest.sort_by_key(|s| std::cmp::Reverse(s.1));
                    sum.slowest.truncate(SLOWEST);
                    if !r.violations.is_empty() {
                        sum.failing.push(r);
                    }
                }
            });
        }
    });
    let mut summary = summary.into_inner().expect("summary lock");
    summary.failing.sort_by_key(|r| r.seed);
    summary
}
