//! The remote systems behind callback tasks: a task whose step has a `callback` is
//! started with a token, and what the remote then does with it — calls back with an
//! output or an error, or never; early (before the task's call returned), in time, or
//! late (after the timeout); heartbeats that keep coming or stop; copies of its
//! callback, and a replay of the token of the attempt before — is a function of the
//! seed and the attempt alone (see [`Plan::draw`]), so both drives see the same.
//!
//! The simulated task runner hands each started attempt's calls to [`Remote`]; the
//! driver makes them, through the same faulty ports as every other handler call, and
//! tries a call that failed again until it takes or its attempt is over.

use crate::tasks::fnv;
use crate::workflow::CallbackSpec;
use braid_handlers::CallbackReport;
use serde_json::{Value, json};
use std::time::Duration;

/// The error a remote reports with a callback; a replayed token's carries
/// [`STALE`], which no record may ever show.
pub const REMOTE_ERROR: &str = "SimRemote";
pub const STALE: &str = "SimStale";

/// How the remote answers one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Output(Value),
    Error,
    Silent,
}

/// What the remote does for one attempt, as offsets from the task's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub answer: Answer,
    pub at: Duration,
    pub beats: Vec<Duration>,
    /// Copies of the callback, after it took.
    pub copies: Vec<Duration>,
    /// The attempt is answered before its timeout and without missing a heartbeat
    /// (by a margin): only faults may make it lapse.
    pub in_time: bool,
}

impl Plan {
    /// The plan for attempt `key` (workflow, step, index, attempt) of a step with
    /// callback `c`, whose task call takes `call`; `output` is what it answers.
    pub fn draw(seed: u64, key: &str, c: CallbackSpec, call: Duration, output: Value) -> Plan {
        let mut r = fastrand::Rng::with_seed(fnv(seed ^ 0xca11, key.as_bytes()));
        let s = Duration::from_secs;
        let answer = match r.u8(..10) {
            0..=5 => Answer::Output(output),
            6..=7 => Answer::Error,
            _ => Answer::Silent,
        };
        let timeout = s(c.timeout);
        let at = match r.u8(..4) {
            0 => Duration::from_millis(r.u64(0..=call.as_millis() as u64)),
            1 | 2 => call + s(r.u64(1..=c.timeout / 2)),
            _ => call + timeout + s(r.u64(60..600)),
        };
        let missed = c.heartbeat.is_some() && r.u8(..4) == 0;
        let mut beats = Vec::new();
        if let Some(h) = c.heartbeat.map(s) {
            let mut t = call + h / 3;
            while t < at.min(call + timeout) {
                beats.push(t);
                if missed {
                    break;
                }
                t += h / 3;
            }
        }
        let in_time = answer != Answer::Silent
            && at <= call + timeout / 2
            && !(missed && c.heartbeat.is_some_and(|h| at > call + s(h) / 2));
        let copies = (0..r.usize(0..=2))
            .map(|_| [0, 1, 30, 20 * 60].map(s)[r.usize(..4)])
            .collect();
        Plan {
            answer,
            at,
            beats,
            copies,
            in_time,
        }
    }

    /// Its callback's report, if it calls back.
    pub fn report(&self) -> Option<CallbackReport> {
        match &self.answer {
            Answer::Output(v) => Some(CallbackReport {
                output: Some(v.clone()),
                error: None,
                message: None,
            }),
            Answer::Error => Some(error_report(REMOTE_ERROR)),
            Answer::Silent => None,
        }
    }
}

/// A report with error `error`.
pub fn error_report(error: &str) -> CallbackReport {
    CallbackReport {
        output: None,
        error: Some(error.into()),
        message: Some(format!("the remote says {error}")),
    }
}

/// What the remote says with a token.
#[derive(Debug, Clone, PartialEq)]
pub enum Say {
    Callback(CallbackReport),
    Heartbeat,
}

/// One call of the remote, for the attempt `attempt` names (run, step key, number).
#[derive(Debug, Clone)]
pub struct Call {
    pub attempt: (String, String, u32),
    pub token: String,
    pub say: Say,
    /// A copy or a replay: tried once, whatever comes of it.
    pub once: bool,
}

/// The remote's calls still to make, by when.
#[derive(Debug, Default)]
pub struct Remote {
    due: Vec<(Duration, u64, Call)>,
    seq: u64,
}

impl Remote {
    pub fn add(&mut self, at: Duration, call: Call) {
        self.seq += 1;
        self.due.push((at, self.seq, call));
    }

    /// The calls due at `now`, in the order they were planned.
    pub fn take_due(&mut self, now: Duration) -> Vec<Call> {
        let mut due: Vec<(Duration, u64, Call)> = Vec::new();
        let mut rest = Vec::new();
        for d in self.due.drain(..) {
            if d.0 <= now {
                due.push(d)
            } else {
                rest.push(d)
            }
        }
        self.due = rest;
        due.sort_by_key(|d| (d.0, d.1));
        due.into_iter().map(|d| d.2).collect()
    }

    pub fn next_due(&self) -> Option<Duration> {
        self.due.iter().map(|d| d.0).min()
    }
}

/// The output a remote answers for a task with input `input`: small, so that it is
/// kept inline and the store decorator can compare it write by write.
pub fn output_for(input: &Value) -> Value {
    json!({ "called_back": crate::tasks::output_of(input)["v"] })
}

/// Step key `s` as written (`id` or `id[i]`).
pub fn parse_key(s: &str) -> braid_engine::model::StepKey {
    use braid_engine::model::StepKey;
    match s.split_once('[') {
        Some((id, rest)) => match rest.trim_end_matches(']').parse() {
            Ok(i) => StepKey::iteration(id, i),
            Err(_) => StepKey::step(s),
        },
        None => StepKey::step(s),
    }
}
