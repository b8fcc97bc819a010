//! The invariants of waiting steps, checked on each final run (that a waiting step
//! ends once is the general "final once"; that a parked attempt is never retried is
//! checked on each write by the store decorator):
//! - a `wait` step succeeds no sooner than its time after it started;
//! - an approval succeeds only when approved by the scenario's person, with the
//!   decision as its output, and is rejected only when someone rejected it;
//! - a signal step succeeds only with the data of the signal kept for its run and
//!   name, the first sender's (another sender's is refused);
//! - a signal kept well before a step of its name timed out was taken by it: a
//!   signal sent before its step is reached is not lost.

use crate::driver::RunResult;
use crate::people::{PERSON, SYSTEM, Scenario};
use crate::workflow::{Kind, WorkflowSpec};
use crate::world::Tally;
use braid_engine::model::{StepKey, StepRecord, StepStatus};
use std::time::Duration;

/// How much later than a signal was kept a step of its name may still time out:
/// the signal's instant is taken before it is written, and the write may be held up
/// by the faults' pauses.
const SIGNAL_MARGIN: Duration = Duration::from_secs(60);

/// Checks final run `r`, adding each problem by its class.
pub fn check_run(
    spec: &WorkflowSpec,
    tally: &Tally,
    r: &RunResult,
    mut add: impl FnMut(&str, String),
) {
    let id = r.record.id.to_string();
    for s in &spec.steps {
        let key = StepKey::step(s.id.as_str());
        let Some(rec) = r.steps.iter().find(|rec| rec.key == key) else {
            continue;
        };
        let output = r.outputs.get(&s.id);
        let error = rec.error.as_ref().map(|e| e.error.as_str());
        match s.kind {
            Kind::Wait(secs) if rec.status == StepStatus::Succeeded => {
                let waited = elapsed(rec);
                if waited < Some(Duration::from_secs(secs)) {
                    add(
                        "wait-ended-early",
                        format!("{id}: {key} of {secs}s succeeded after {waited:?}"),
                    );
                }
            }
            Kind::Approval { .. } => {
                let said = tally.decisions.get(&(id.clone(), s.id.clone()));
                let approved = rec.status == StepStatus::Succeeded;
                let rejected = error == Some("approval.rejected");
                if (approved || rejected) && !said.is_some_and(|d| d.contains(&approved)) {
                    add(
                        "answered-unasked",
                        format!(
                            "{id}: {key} is {:?} ({error:?}) but no one said so",
                            rec.status
                        ),
                    );
                }
                if approved
                    && output.is_none_or(|o| o["decision"] != "approved" || o["by"] != PERSON)
                {
                    add(
                        "answered-unasked",
                        format!("{id}: {key} approved with output {output:?}"),
                    );
                }
            }
            Kind::Signal { name, timeout } => {
                let kept = r.signals.get(name);
                if let Some((signal, _)) = kept
                    && (signal.by != SYSTEM || signal.id.ends_with("-other"))
                {
                    add(
                        "signal-replaced",
                        format!("{id}: signal {name} kept is {signal:?}"),
                    );
                }
                if rec.status == StepStatus::Succeeded && kept.map(|k| &k.1) != output {
                    add(
                        "answered-unasked",
                        format!(
                            "{id}: {key} succeeded with {output:?}, the signal kept is {kept:?}"
                        ),
                    );
                }
                if error == Some("signal.timeout")
                    && let (Some((signal, _)), Some(started), Some(t)) =
                        (kept, rec.started_at, timeout)
                    && signal.at + chrono::Duration::from_std(SIGNAL_MARGIN).expect("a margin")
                        < started + chrono::Duration::seconds(t as i64)
                {
                    add(
                        "early-signal-lost",
                        format!(
                            "{id}: {key} (started {started}) timed out although signal {name} was kept at {}",
                            signal.at
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// How long a step took from its claim to its end.
fn elapsed(rec: &StepRecord) -> Option<Duration> {
    (rec.finished_at? - rec.started_at?).to_std().ok()
}

/// Whether a step of run `r` (the `run`-th started) timed out waiting for an answer
/// the scenario has for it: whether the answer or the timeout comes first depends on
/// when the step parked, which faults move, so such a run's course is not compared.
pub fn answer_raced_timeout(
    spec: &WorkflowSpec,
    scenario: &Scenario,
    run: usize,
    r: &RunResult,
) -> bool {
    r.steps.iter().any(|rec| {
        let Some(s) = spec.step(&rec.key.step) else {
            return false;
        };
        let timed_out = rec
            .error
            .as_ref()
            .is_some_and(|e| e.error.ends_with(".timeout"));
        timed_out && s.kind.is_answered() && scenario.answers.iter().any(|a| a.answers(run, s))
    })
}
