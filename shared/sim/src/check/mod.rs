//! The invariants checked after each run (those about a task's start are checked
//! when it starts, by the task runner):
//!
//! - **terminal**: every run is final within the virtual-time bound;
//! - **in flight finishes**: fail fast never cancels an attempt whose task ran to its
//!   end (the SPEC: steps in flight finish and are recorded); a task is stopped
//!   while running only in a run that ends cancelled;
//! - **final once**: every step and iteration of a final run has a final record,
//!   written by exactly one final write that took effect (counted by the store
//!   decorator, per retry of its run), and the run was closed by exactly one write
//!   per end (each retry in place ends it once more);
//! - **bounded re-sends**: no step's attempt got more than [`MAX_SENDS`] "ready"
//!   messages;
//! - **waits end by their answer**: see [`waits`];
//! - **children and cancels**: see [`children`];
//! - **same as without faults**: a faulty run ends like the fault-free reference run
//!   of the same workflow, task behaviour and seed (see [`compare`] for what "the
//!   same" means when faults may legitimately change the course of a run).

pub mod children;
pub mod waits;

use crate::driver::{Drive, RunResult, Setup};
use braid_engine::model::{RunStatus, StepStatus};
use serde_json::Value;

/// The most "ready" messages one attempt of one step may be sent: one, plus re-sends
/// after lost or late messages. Each re-send needs a fault (or a crash) to happen
/// first, and seeds draw few of them, so more than this means re-sends that never stop.
pub const MAX_SENDS: u32 = 12;

/// A broken invariant.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub class: String,
    /// `reference` or `faulty`: which of the two runs of the seed broke it.
    pub within: &'static str,
    pub detail: String,
}

/// Every invariant of one drive on its own.
pub fn check_drive(setup: &Setup, d: &Drive, within: &'static str) -> Vec<Violation> {
    let mut out: Vec<Violation> = d
        .tally
        .violations
        .iter()
        .map(|(class, detail)| Violation {
            class: class.clone(),
            within,
            detail: detail.clone(),
        })
        .collect();
    let mut add = |class: &str, detail: String| {
        out.push(Violation {
            class: class.to_string(),
            within,
            detail,
        });
    };
    // A drive stopped at its first violation is not final, and says so no further.
    if d.ended_at.is_none() && d.tally.violations.is_empty() {
        add(
            "not-terminal",
            "the simulation stopped before every run was final".into(),
        );
    }
    // The queue decorator reports the first attempt over the bound as it happens.
    if !d
        .tally
        .violations
        .iter()
        .any(|(c, _)| c == "unbounded-resends")
    {
        for (attempt, n) in &d.tally.dispatches {
            let (run, key, attempt) = attempt;
            if *n > d.tally.send_bound(&(run.clone(), key.clone(), *attempt)) {
                add(
                    "unbounded-resends",
                    format!("{run}: {n} ready messages for {key} attempt {attempt}"),
                );
            }
        }
    }
    for ((run, key), n) in &d.tally.finals {
        if *n > 1 {
            add(
                "final-twice",
                format!("{run}: {key} recorded final {n} times"),
            );
        }
    }
    if d.ended_at.is_none() {
        return out;
    }
    // Child runs too, but for their waits: their answers are not the scenario's.
    let top = d.runs.iter().flatten().map(|r| (r, true));
    for (r, scenario) in top.chain(d.children.iter().map(|r| (r, false))) {
        let Some(spec) = setup.spec.workflow(&r.record.workflow) else {
            add("unknown-workflow", format!("{:?}", r.record));
            continue;
        };
        let id = r.record.id.to_string();
        let closes = d.tally.finishes.get(&id).copied().unwrap_or(0);
        let ends = 1 + d.tally.retries.get(&id).copied().unwrap_or(0);
        if closes != ends {
            add(
                "run-closed-not-once",
                format!("{id} closed {closes} times, ended {ends}"),
            );
        }
        if scenario {
            waits::check_run(spec, &d.tally, r, &mut add);
        }
        check_sla(r, &mut add);
        for s in &spec.steps {
            if !r
                .steps
                .iter()
                .any(|rec| rec.key.index.is_none() && rec.key.step.as_str() == s.id)
            {
                add("step-never-final", format!("{id}: {} has no record", s.id));
            }
        }
        // Fail fast lets steps in flight finish and be recorded: an attempt whose task
        // ran to its end must not be overtaken by a cancel of the attempt before it.
        for inv in d
            .tally
            .invocations
            .iter()
            .filter(|i| i.ended && i.run == id)
        {
            let key = match inv.index {
                Some(i) => braid_engine::model::StepKey::iteration(inv.step.as_str(), i),
                None => braid_engine::model::StepKey::step(inv.step.as_str()),
            };
            if let Some(rec) = r.steps.iter().find(|s| s.key == key)
                && rec.status == StepStatus::Cancelled
                && rec.attempt < inv.attempt
            {
                add(
                    "in-flight-cancelled",
                    format!(
                        "{id}: {key} cancelled at attempt {} while attempt {} ran to its end (started at {:?})",
                        rec.attempt, inv.attempt, inv.at
                    ),
                );
            }
        }
        for rec in &r.steps {
            let key = crate::world::final_key(rec);
            // A task is stopped only because its run is being cancelled.
            let stopped = rec.status == StepStatus::Cancelled
                && rec
                    .error
                    .as_ref()
                    .is_some_and(|e| e.message.starts_with("stopped while running"));
            if stopped && r.record.status != RunStatus::Cancelled {
                add(
                    "stopped-outside-cancel",
                    format!(
                        "{id}: {key} attempt {} was stopped in a run that ended {:?}",
                        rec.attempt, r.record.status
                    ),
                );
            }
            if !rec.status.is_final() {
                add(
                    "step-left-open",
                    format!(
                        "{id}: {key} is {:?} in a {:?} run",
                        rec.status, r.record.status
                    ),
                );
            } else if d
                .tally
                .finals
                .get(&(id.clone(), key.clone()))
                .copied()
                .unwrap_or(0)
                == 0
            {
                add(
                    "final-not-counted",
                    format!("{id}: {key} is final but no final write took effect"),
                );
            }
        }
    }
    children::check(d, &mut add);
    out
}

/// Whether a run's course may legitimately differ from the fault-free one, by the
/// step lifecycle's rules:
/// - someone cancelled the run, or it ended cancelled (a queued run cancelled ends
///   at once, with no request kept): when the cancel comes in its course depends on
///   timing;
/// - someone retried the run in place: whether it failed first, and so was retried,
///   depends on the course;
/// - a callback attempt ended by its timeout or a missed heartbeat although its
///   remote answered in time: faults held the remote's calls up;
/// - a child run's course changed so, or one of its waits timed out (see
///   [`children::perturbed`]);
/// - an attempt was lost: the tick recorded its lease expired (a running attempt
///   written failed or retrying with error `timeout`), which counts as a failed
///   attempt. A crash while an attempt is claimed loses it only so: otherwise its
///   message, back after its visibility timeout, claims the same attempt again, and
///   the task behaves as it did;
/// - a step (or the run) failed `undeliverable`: its message was re-sent to the cap,
///   or could not be handled, because of faults;
/// - the run timed out;
/// - a step timed out waiting for an answer the scenario has for it (see
///   [`waits::answer_raced_timeout`]).
///
/// Nothing else: a message lost, duplicated or late, a store call failed, a crash —
/// each is recovered without changing the course. A task planned to end near its
/// step's timeout ends the same way under faults: the timeout is measured around the
/// task alone, on the virtual clock.
fn perturbed(setup: &Setup, d: &Drive, run: usize, r: &RunResult) -> bool {
    lost_course(d, r)
        || d.tally.retries.contains_key(r.record.id.as_str())
        || r.record.cancel.is_some()
        || r.record.status == RunStatus::Cancelled
        || waits::answer_raced_timeout(&setup.spec, &setup.scenario, run, r)
        || children::perturbed(d, r)
}

/// What may change the course of run `r` or of a child run alike: an attempt lost,
/// a callback held up, an undeliverable message, the run's timeout.
pub(crate) fn lost_course(d: &Drive, r: &RunResult) -> bool {
    let id = r.record.id.to_string();
    let undeliverable =
        |e: Option<&braid_engine::model::ErrorInfo>| e.is_some_and(|e| e.error == "undeliverable");
    d.tally.lease_expiries.contains(&id)
        || d.tally.callback_lapses.contains(&id)
        || r.record.status == RunStatus::TimedOut
        || undeliverable(r.record.error.as_ref())
        || r.steps.iter().any(|s| undeliverable(s.error.as_ref()))
}

/// The faulty run against the reference. Runs are matched by start order (their ids
/// may differ: a start retried after a crash draws a new id before it finds its run).
/// Runs perturbed in either drive (see [`perturbed`]) are not compared. Otherwise:
/// the same run status; and when the reference succeeded, every step and iteration
/// with the same status, attempt count and output, and the same run output — an
/// approval's output (also as a leaf's in the run output) without the instant of its
/// decision, which faults move. Failed
/// runs are compared by status only: fail fast cancels what is not running yet, and
/// what is running at that moment depends on timing, which faults change.
///
/// Returns the violations and how many runs were compared.
pub fn compare(setup: &Setup, reference: &Drive, faulty: &Drive) -> (Vec<Violation>, usize) {
    let mut out = Vec::new();
    let mut compared = 0;
    if reference.ended_at.is_none() || faulty.ended_at.is_none() {
        return (out, 0);
    }
    for (run, (want, got)) in reference.runs.iter().zip(&faulty.runs).enumerate() {
        let (Some(want), Some(got)) = (want, got) else {
            continue;
        };
        if perturbed(setup, reference, run, want) || perturbed(setup, faulty, run, got) {
            continue;
        }
        compared += 1;
        let id = got.record.id.to_string();
        let mut add = |detail: String| {
            out.push(Violation {
                class: "differs-from-fault-free".into(),
                within: "faulty",
                detail: format!("{id}: {detail}"),
            });
        };
        if want.record.status != got.record.status {
            add(format!(
                "run {:?} ({:?}), fault-free {:?} ({:?})",
                got.record.status, got.record.error, want.record.status, want.record.error
            ));
            continue;
        }
        if want.record.status != RunStatus::Succeeded {
            continue;
        }
        for w in &want.steps {
            let key = w.key.to_string();
            let Some(g) = got.steps.iter().find(|g| g.key == w.key) else {
                add(format!("{key} has no record"));
                continue;
            };
            if (w.status, w.attempt) != (g.status, g.attempt) {
                add(format!(
                    "{key} {:?} at attempt {}, fault-free {:?} at attempt {}",
                    g.status, g.attempt, w.status, w.attempt
                ));
            } else if w.status == StepStatus::Succeeded
                && comparable(setup, want, &key) != comparable(setup, got, &key)
            {
                add(format!("{key} output differs"));
            }
        }
        if got.steps.len() != want.steps.len() {
            add(format!(
                "{} step records, fault-free {}",
                got.steps.len(),
                want.steps.len()
            ));
        }
        if run_comparable(setup, want) != run_comparable(setup, got) {
            add("run output differs".into());
        }
    }
    (out, compared)
}

/// Step `key`'s output in `r` as compared: an approval's without the instant of its
/// decision.
fn comparable(setup: &Setup, r: &RunResult, key: &str) -> Option<Value> {
    let mut out = r.outputs.get(key).cloned();
    if is_approval(setup, key)
        && let Some(o) = &mut out
    {
        forget_instant(o);
    }
    out
}

/// Run `r`'s output as compared: without a template it maps the leaves to their
/// outputs, an approval's without the instant of its decision.
fn run_comparable(setup: &Setup, r: &RunResult) -> Option<Value> {
    let mut out = r.output.clone();
    if let Some(Value::Object(leaves)) = &mut out {
        for (id, v) in leaves.iter_mut() {
            if is_approval(setup, id) {
                forget_instant(v);
            }
        }
    }
    out
}

fn is_approval(setup: &Setup, id: &str) -> bool {
    setup
        .spec
        .step(id)
        .is_some_and(|s| matches!(s.kind, crate::workflow::Kind::Approval { .. }))
}

/// An approval's output without the instant of its decision.
fn forget_instant(output: &mut Value) {
    if let Value::Object(o) = output {
        o.remove("at");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Tally;
    use std::time::Duration;

    fn setup() -> Setup {
        super::comparison_tests::setup(1, 2)
    }

    fn drive(tally: Tally, ended: bool) -> Drive {
        Drive {
            runs: Vec::new(),
            children: Vec::new(),
            tally,
            trace: Vec::new(),
            ended_at: ended.then_some(Duration::from_secs(1)),
            elapsed: Duration::from_secs(1),
        }
    }

    fn classes(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.class.as_str()).collect()
    }

    #[test]
    fn a_step_recorded_final_twice_is_a_violation() {
        let mut t = Tally::default();
        t.finals.insert(("run-1".into(), "s0".into()), 2);
        assert_eq!(
            classes(&check_drive(&setup(), &drive(t, true), "faulty")),
            ["final-twice"]
        );
    }

    #[test]
    fn too_many_ready_messages_for_one_attempt_are_a_violation() {
        let mut t = Tally::default();
        t.dispatches
            .insert(("run-1".into(), "s0".into(), 1), MAX_SENDS + 1);
        t.dispatches
            .insert(("run-1".into(), "s1".into(), 1), MAX_SENDS);
        assert_eq!(
            classes(&check_drive(&setup(), &drive(t, true), "faulty")),
            ["unbounded-resends"]
        );
    }

    #[test]
    fn a_drive_that_did_not_end_is_a_violation() {
        let v = check_drive(&setup(), &drive(Tally::default(), false), "reference");
        assert_eq!(classes(&v), ["not-terminal"]);
        assert_eq!(v[0].within, "reference");
    }
}

#[cfg(test)]
mod comparison_tests {
    use super::*;
    use crate::driver::{Setup, drive};
    use crate::faults::FaultPlan;
    use crate::tasks::TaskPlan;
    use std::sync::Arc;
    use std::time::Duration;

    /// Seed `seed`'s workflow of at most `max_steps` steps and its answers, with
    /// tasks that always succeed.
    pub(super) fn setup(seed: u64, max_steps: usize) -> Setup {
        let mut rng = fastrand::Rng::with_seed(seed);
        let spec = crate::workflow::generate(&mut rng, max_steps);
        let scenario = crate::people::Scenario::draw(&spec, &mut rng);
        Setup {
            seed,
            spec: Arc::new(spec),
            plan: TaskPlan {
                seed,
                retryable: 0,
                fatal: 0,
                crash: 0,
            },
            scenario: Arc::new(scenario),
            tick_every: Duration::from_secs(60),
        }
    }

    /// A fault-free drive of the first workflow (from seed 0 on) whose run succeeds
    /// with a step output, driven twice.
    fn two_successful_drives() -> (Setup, Drive, Drive) {
        for seed in 0..200 {
            let setup = setup(seed, 3);
            let bound = Duration::from_secs(6 * 3600);
            let a = drive(&setup, FaultPlan::none(), Vec::new(), bound, false, true);
            let succeeded = a
                .runs
                .iter()
                .flatten()
                .any(|r| r.record.status == RunStatus::Succeeded && !r.outputs.is_empty());
            if succeeded {
                let b = drive(&setup, FaultPlan::none(), Vec::new(), bound, false, true);
                return (setup, a, b);
            }
        }
        panic!("no seed under 200 drew a workflow whose run succeeds");
    }

    #[test]
    fn a_run_compares_equal_to_itself_and_not_to_a_changed_output() {
        let (setup, a, mut b) = two_successful_drives();
        let (v, compared) = compare(&setup, &a, &b);
        assert!(v.is_empty(), "{v:?}");
        assert!(compared >= 1);
        let run = b
            .runs
            .iter_mut()
            .flatten()
            .find(|r| r.record.status == RunStatus::Succeeded && !r.outputs.is_empty())
            .expect("a successful run");
        let out = run.outputs.values_mut().next().expect("an output");
        *out = serde_json::json!({ "changed": true });
        let (v, _) = compare(&setup, &a, &b);
        assert_eq!(classes(&v), ["differs-from-fault-free"]);
    }

    fn classes(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.class.as_str()).collect()
    }
}

/// Each SLA miss is noted once, and only when true: its step (or the run) ended
/// after it. A run retried in place may run its steps again later: not checked.
fn check_sla(r: &RunResult, add: &mut impl FnMut(&str, String)) {
    let id = &r.record.id;
    let mut seen = std::collections::HashSet::new();
    for m in &r.record.sla_missed {
        if !seen.insert(m.step.clone()) {
            add(
                "sla-noted-twice",
                format!("{id}: {:?} missed twice", m.step),
            );
        }
        if !r.record.redrives.is_empty() {
            continue;
        }
        let ended = match &m.step {
            None => r.record.finished_at,
            Some(s) => r
                .steps
                .iter()
                .find(|rec| rec.key.index.is_none() && rec.key.step.as_str() == s)
                .and_then(|rec| rec.finished_at),
        };
        if ended.is_some_and(|t| t <= m.due) {
            add(
                "sla-missed-wrongly",
                format!(
                    "{id}: {:?} ended at {ended:?}, by its SLA at {}",
                    m.step, m.due
                ),
            );
        }
    }
}
