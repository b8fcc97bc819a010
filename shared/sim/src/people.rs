//! The people and systems who answer waiting steps: per run, a decision for each
//! `approval` step and a signal for each signal name, and now and then someone who
//! cancels the run or retries it once it failed, drawn from the seed, so that the
//! faulty drive and its fault-free reference hear the same answers (see [`Scenario`]).
//! When each answer is said depends on the drive: it is first tried at a virtual time
//! drawn from the seed (early, before its step is reached; about when it parks; or
//! late, after its timeout), or at the very instant its step's timeout passes, and a
//! person whose answer did not take (the step is not waiting yet, a call failed or
//! crashed the process) tries again until it takes or nothing is left to answer.
//!
//! Nothing waits forever: a step without a timeout is always answered (within
//! [`LATEST`] of the start), and a step with one may go unanswered and time out.

use crate::workflow::{Kind, StepSpec, WorkflowSpec};
use serde_json::{Value, json};
use std::time::Duration;

/// Who decides approvals.
pub const PERSON: &str = "sim-person";
/// Who sends signals.
pub const SYSTEM: &str = "sim-system";

/// How long a person whose answer did not take waits before trying again.
pub const POLL: Duration = Duration::from_secs(20);

/// The latest first try of an answer, from the start.
pub const LATEST: Duration = Duration::from_secs(40 * 60);

/// What is said.
#[derive(Debug, Clone, PartialEq)]
pub enum Say {
    Decide {
        step: String,
        approve: bool,
    },
    Signal {
        name: String,
        id: String,
        data: Value,
    },
    /// Cancel the run.
    Cancel,
    /// Retry the run in place once it has ended without succeeding.
    Retry,
}

/// When an answer is first tried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// At this virtual time from the start.
    At(Duration),
    /// The instant the timeout of the step (index in the workflow) passes, once it waits.
    AtTimeout(usize),
}

/// One answer to a run, said until it takes, then said again as `again` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The run, by start order.
    pub run: usize,
    pub say: Say,
    pub when: When,
    /// Once it took: said again after each delay, one try each — duplicates, late
    /// copies, and for a signal, another sender's signal of the same name, which must
    /// be refused.
    pub again: Vec<(Duration, Say)>,
}

impl Answer {
    /// Whether it answers step `step` of the `run`-th run.
    pub fn answers(&self, run: usize, step: &StepSpec) -> bool {
        self.run == run
            && match (&self.say, &step.kind) {
                (Say::Decide { step: id, .. }, Kind::Approval { .. }) => *id == step.id,
                (Say::Signal { name, .. }, Kind::Signal { name: n, .. }) => name == n,
                _ => false,
            }
    }
}

/// Every answer of one seed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    pub answers: Vec<Answer>,
}

impl Scenario {
    /// Draws the answers to `spec`'s runs.
    pub fn draw(spec: &WorkflowSpec, rng: &mut fastrand::Rng) -> Self {
        let mut answers = Vec::new();
        for run in 0..spec.runs as usize {
            for (i, s) in spec.steps.iter().enumerate() {
                if let Kind::Approval { timeout } = s.kind
                    && (timeout.is_none() || rng.u8(..4) != 0)
                {
                    let say = Say::Decide {
                        step: s.id.clone(),
                        approve: rng.u8(..4) != 0,
                    };
                    answers.push(answer(rng, run, say, timeout.map(|_| i)));
                }
            }
            for name in spec.signal_names() {
                let steps = || {
                    spec.steps.iter().enumerate().filter(
                        move |(_, s)| matches!(s.kind, Kind::Signal { name: n, .. } if n == name),
                    )
                };
                // Unanswered, or answered at a step's timeout, only when every step of
                // that name has one: a step waiting for good may be the one that comes
                // first, and the others wait for it.
                let all_timed = steps().all(|(_, s)| s.kind.answer_timeout().is_some());
                if all_timed && rng.u8(..4) == 0 {
                    continue;
                }
                let timed = steps().next().filter(|_| all_timed);
                let say = Say::Signal {
                    name: name.to_string(),
                    id: format!("{name}-{run}"),
                    data: json!({ "name": name, "run": run, "n": rng.u16(..) }),
                };
                let mut a = answer(rng, run, say, timed.map(|(i, _)| i));
                if rng.u8(..3) == 0 {
                    let other = Say::Signal {
                        name: name.to_string(),
                        id: format!("{name}-{run}-other"),
                        data: json!({ "other": true }),
                    };
                    a.again.push((later(rng), other));
                }
                answers.push(a);
            }
            // Someone cancels the run now and then, at any moment (with its children).
            if rng.u8(..5) == 0 {
                answers.push(answer(rng, run, Say::Cancel, None));
            }
            // Someone retries a run that did not succeed, now and then (said until the
            // run has ended; again with the copies, which retry a run that failed
            // again). Not a run that waits on people: their answers are said once.
            let waits_on_people = spec
                .steps
                .iter()
                .any(|s| matches!(s.kind, Kind::Approval { .. } | Kind::Signal { .. }));
            if !waits_on_people && rng.u8(..4) == 0 {
                answers.push(answer(rng, run, Say::Retry, None));
            }
        }
        Scenario { answers }
    }
}

/// An answer saying `say` to run `run`, at a drawn time or at the timeout of step
/// `timed` (when it has one), with copies.
fn answer(rng: &mut fastrand::Rng, run: usize, say: Say, timed: Option<usize>) -> Answer {
    let s = Duration::from_secs;
    let when = match (timed, rng.u8(..6)) {
        (Some(i), 0) => When::AtTimeout(i),
        (_, 1..=2) => When::At(Duration::from_millis(rng.u64(0..30_000))),
        (_, 3..=4) => When::At(s(rng.u64(60..600))),
        _ => When::At(s(rng.u64(600..LATEST.as_secs()))),
    };
    let again = (0..rng.usize(0..=2))
        .map(|_| (later(rng), say.clone()))
        .collect();
    Answer {
        run,
        say,
        when,
        again,
    }
}

/// How long after an answer took it is said again: at once, a moment later, or much
/// later (after its step, or its run, ended).
fn later(rng: &mut fastrand::Rng) -> Duration {
    [0, 1, 30, 20 * 60].map(Duration::from_secs)[rng.usize(..4)]
}

/// Where each answer of a [`Scenario`] is, in one drive.
#[derive(Debug)]
pub struct People {
    progress: Vec<Progress>,
}

#[derive(Debug, Clone)]
struct Progress {
    /// When it is next tried; `None` while a try is under way, or once done.
    due: Option<Duration>,
    /// 0 for the answer itself, `k` for its `k`-th repetition.
    stage: usize,
    /// The instant of its step's timeout is known (see [`When::AtTimeout`]).
    timed: bool,
    done: bool,
}

/// What the driver is to do with an answer that is due.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// Say this (to the run of the answer).
    Say(Say),
    /// Find when the timeout of this step passes, and call [`People::at`].
    FindTimeout(String),
}

impl People {
    pub fn new(scenario: &Scenario) -> Self {
        let progress = scenario
            .answers
            .iter()
            .map(|a| Progress {
                due: Some(match a.when {
                    When::At(t) => t,
                    When::AtTimeout(_) => Duration::ZERO,
                }),
                stage: 0,
                timed: false,
                done: false,
            })
            .collect();
        People { progress }
    }

    /// The answers due at `now` whose run is started (`started(run)`), each marked
    /// under way.
    pub fn due(
        &mut self,
        scenario: &Scenario,
        spec: &WorkflowSpec,
        now: Duration,
        started: impl Fn(usize) -> bool,
    ) -> Vec<(usize, Due)> {
        let mut out = Vec::new();
        for (i, (p, a)) in self.progress.iter_mut().zip(&scenario.answers).enumerate() {
            if p.due.is_none_or(|d| d > now) {
                continue;
            }
            if !started(a.run) {
                p.due = Some(now + POLL);
                continue;
            }
            p.due = None;
            out.push((
                i,
                match (p.stage, a.when) {
                    (0, When::AtTimeout(s)) if !p.timed => {
                        Due::FindTimeout(spec.steps[s].id.clone())
                    }
                    (0, _) => Due::Say(a.say.clone()),
                    (k, _) => Due::Say(a.again[k - 1].1.clone()),
                },
            ));
        }
        out
    }

    /// Answer `i` waits for its step's timeout: at `timeout` when the step waits, again
    /// later when it has not parked yet, never when it ended.
    pub fn at(&mut self, i: usize, now: Duration, timeout: Option<Duration>, ended: bool) {
        let p = &mut self.progress[i];
        match timeout {
            Some(t) => {
                p.timed = true;
                p.due = Some(t);
            }
            None if ended => p.done = true,
            None => p.due = Some(now + POLL),
        }
    }

    /// A try of answer `i` ended: `took` whether it was taken, `moot` whether nothing
    /// is left to answer (its step or run ended). Repetitions are tried once.
    pub fn answered(
        &mut self,
        scenario: &Scenario,
        i: usize,
        now: Duration,
        took: bool,
        moot: bool,
    ) {
        let p = &mut self.progress[i];
        let again = &scenario.answers[i].again;
        if p.stage == 0 && !took {
            if moot {
                p.done = true;
            } else {
                p.due = Some(now + POLL);
            }
            return;
        }
        p.stage += 1;
        match again.get(p.stage - 1) {
            Some((delay, _)) => p.due = Some(now + *delay),
            None => p.done = true,
        }
    }

    /// The process died: the tries under way are tried again a second later.
    pub fn restart(&mut self, now: Duration) {
        for p in &mut self.progress {
            if !p.done && p.due.is_none() {
                p.due = Some(now + Duration::from_secs(1));
            }
        }
    }

    /// When the next answer is due.
    pub fn next_due(&self) -> Option<Duration> {
        self.progress.iter().filter_map(|p| p.due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_answer(when: When) -> (Scenario, WorkflowSpec) {
        let spec = crate::workflow::generate(&mut fastrand::Rng::with_seed(1), 1);
        let say = Say::Decide {
            step: "s0".into(),
            approve: true,
        };
        let answer = Answer {
            run: 0,
            say: say.clone(),
            when,
            again: vec![(Duration::from_secs(30), say)],
        };
        (
            Scenario {
                answers: vec![answer],
            },
            spec,
        )
    }

    #[test]
    fn an_answer_is_tried_until_it_takes_then_said_again_once() {
        let (scenario, spec) = one_answer(When::At(Duration::from_secs(5)));
        let mut p = People::new(&scenario);
        let s = Duration::from_secs;
        assert!(p.due(&scenario, &spec, s(4), |_| true).is_empty());
        assert_eq!(p.due(&scenario, &spec, s(5), |_| true).len(), 1);
        assert_eq!(p.next_due(), None, "under way");
        // The process dies during the try: it is tried again a second later.
        p.restart(s(6));
        assert_eq!(p.next_due(), Some(s(7)));
        assert_eq!(p.due(&scenario, &spec, s(7), |_| true).len(), 1);
        // Not taken (the step is not waiting yet): tried again after a poll.
        p.answered(&scenario, 0, s(8), false, false);
        assert_eq!(p.next_due(), Some(s(8) + POLL));
        p.due(&scenario, &spec, s(8) + POLL, |_| true);
        p.answered(&scenario, 0, s(30), true, false);
        assert_eq!(p.next_due(), Some(s(60)), "said again 30s after it took");
        p.due(&scenario, &spec, s(60), |_| true);
        p.answered(&scenario, 0, s(60), false, false);
        assert_eq!(p.next_due(), None, "a repetition is tried once");
    }

    #[test]
    fn an_answer_at_a_timeout_waits_for_its_step_to_park() {
        let (scenario, spec) = one_answer(When::AtTimeout(0));
        let mut p = People::new(&scenario);
        let s = Duration::from_secs;
        let due = p.due(&scenario, &spec, s(0), |_| true);
        assert_eq!(due, vec![(0, Due::FindTimeout("s0".into()))]);
        p.at(0, s(0), None, false);
        assert_eq!(p.next_due(), Some(POLL), "not parked yet: looks again");
        p.due(&scenario, &spec, POLL, |_| true);
        p.at(0, POLL, Some(s(300)), false);
        let due = p.due(&scenario, &spec, s(300), |_| true);
        assert!(matches!(due[..], [(0, Due::Say(_))]), "{due:?}");
    }

    #[test]
    fn a_step_without_a_timeout_is_always_answered() {
        for seed in 0..300 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let spec = crate::workflow::generate(&mut rng, 5);
            let scenario = Scenario::draw(&spec, &mut rng);
            for run in 0..spec.runs as usize {
                for s in spec.steps.iter().filter(|s| s.kind.is_answered()) {
                    if s.kind.answer_timeout().is_some() {
                        continue;
                    }
                    let answered = scenario.answers.iter().any(|a| a.answers(run, s));
                    assert!(answered, "seed {seed}: {} of run {run}", s.id);
                }
            }
        }
    }
}
