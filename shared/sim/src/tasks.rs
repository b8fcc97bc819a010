//! The task runner the handlers call for `lambda` and `http` steps, played by the
//! simulation. What an attempt does — succeed with an output derived from its input,
//! fail (retryable or not), crash the process, and how much virtual time it takes —
//! is a function of the seed and the attempt's (step, index, attempt) alone, so a
//! faulty run and the fault-free reference see the same task behaviour. Durations are
//! drawn next to each internal threshold (the claim delay, the step's timeout, the
//! sweeper's `stale_after`, the default lease), just below and just above.
//!
//! Each call is recorded and checked on the spot against the state store (read
//! directly, past the faults): the step's needs are final, the step itself is not,
//! and the run is not failing unless this attempt was already claimed.

use crate::remote::Plan;
use crate::workflow::WorkflowSpec;
use crate::world::{Invocation, World};
use async_trait::async_trait;
use braid_engine::model::{RunId, StepKey, StepStatus};
use braid_ports::{PortError, StateStore, Task, TaskError, TaskRunner};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The handlers' default lease of an attempt without a timeout, plus their grace.
const LEASE: Duration = Duration::from_secs(15 * 60 + 30);

/// How an attempt ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ending {
    Succeed,
    FailRetryable,
    FailFatal,
    /// The process dies while the task runs (an out-of-memory kill, a Lambda timeout).
    Crash,
}

/// What one attempt does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    pub ending: Ending,
    pub duration: Duration,
}

/// How often attempts fail or crash, for one seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskPlan {
    pub seed: u64,
    /// Percent of attempts failing retryably, and not retryably.
    pub retryable: u8,
    pub fatal: u8,
    /// Percent of attempts that crash the process.
    pub crash: u8,
}

impl TaskPlan {
    pub fn draw(seed: u64, rng: &mut fastrand::Rng) -> Self {
        TaskPlan {
            seed,
            retryable: rng.u8(0..=30),
            fatal: rng.u8(0..=10),
            crash: if rng.u8(..6) == 0 { rng.u8(10..=50) } else { 0 },
        }
    }

    /// The behaviour of attempt `attempt` of `step` (iteration `index`), whose
    /// timeout is `timeout`.
    pub fn behaviour(
        &self,
        workflow: &str,
        step: &str,
        index: Option<u32>,
        attempt: u32,
        timeout: Option<Duration>,
    ) -> Behaviour {
        let key = format!("{workflow}/{step}/{index:?}/{attempt}");
        let mut r = fastrand::Rng::with_seed(fnv(self.seed, key.as_bytes()));
        let roll = r.u8(..100);
        let ending = if roll < self.retryable {
            Ending::FailRetryable
        } else if roll < self.retryable + self.fatal {
            Ending::FailFatal
        } else if roll < self.retryable + self.fatal + self.crash {
            Ending::Crash
        } else {
            Ending::Succeed
        };
        let ms = Duration::from_millis;
        let near = |t: Duration, r: &mut fastrand::Rng| {
            if r.bool() { t - ms(1) } else { t + ms(1) }
        };
        let duration = match r.u8(..10) {
            0..=5 => ms(r.u64(0..300)),
            6 => near(Duration::from_secs(1), &mut r),
            7 => near(timeout.unwrap_or(Duration::from_secs(2)), &mut r),
            8 => near(Duration::from_secs(60), &mut r),
            _ => near(
                timeout.map_or(Duration::from_secs(1) + LEASE, |t| t + LEASE),
                &mut r,
            ),
        };
        Behaviour { ending, duration }
    }
}

/// The callback token a task was started with.
fn token_of(task: &Task) -> String {
    match task {
        Task::Lambda { payload, .. } => payload["callback"]["token"].as_str(),
        Task::Http { headers, .. } => headers.get("Braid-Callback-Token").map(String::as_str),
    }
    .unwrap_or_default()
    .to_string()
}

/// FNV-1a over `bytes`, seeded: stable across builds and platforms.
pub fn fnv(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The output of a task with input `input` (its `run` field and callback token left
/// out, so that runs compare): what a deterministic service would answer.
pub fn output_of(input: &Value) -> Value {
    let mut core = input.clone();
    if let Some(o) = core.as_object_mut() {
        o.remove("run");
        o.remove("callback");
    }
    let h = fnv(0, core.to_string().as_bytes());
    let items: Vec<u64> = (0..h % 4).collect();
    let mut out = json!({ "v": h % 1000, "items": items, "from": core.get("step") });
    // Now and then an output over the inline limit, which goes to the payload store.
    if h.is_multiple_of(7) {
        out["pad"] = Value::String("x".repeat(5000));
    }
    out
}

/// The simulated [`TaskRunner`], for both kinds of task.
pub struct SimRunner {
    world: Arc<World>,
    /// The store without faults: the runner's checks are the observer's, not a port call.
    store: Arc<dyn StateStore>,
    spec: Arc<WorkflowSpec>,
    plan: TaskPlan,
}

impl SimRunner {
    pub fn new(
        world: Arc<World>,
        store: Arc<dyn StateStore>,
        spec: Arc<WorkflowSpec>,
        plan: TaskPlan,
    ) -> Self {
        SimRunner {
            world,
            store,
            spec,
            plan,
        }
    }

    /// The attempt a task call belongs to, as the store shows it: the dispatcher
    /// claims after the task started, so a record still ready, retrying or pending
    /// is at the attempt before.
    async fn attempt(&self, run: &RunId, key: &StepKey) -> Result<u32, PortError> {
        match self.store.get_step(run, key).await {
            Ok(rec) => Ok(match rec.status {
                StepStatus::Running | StepStatus::Waiting => rec.attempt,
                _ => rec.attempt + 1,
            }),
            Err(PortError::NotFound(_)) => Ok(1),
            Err(e) => Err(e),
        }
    }

    /// Checks the call against the records; each problem is a violation.
    async fn check(
        &self,
        spec: &WorkflowSpec,
        run: &RunId,
        key: &StepKey,
        attempt: u32,
    ) -> Result<(), PortError> {
        let Some(step) = spec.step(&key.step) else {
            self.world
                .violation("unknown-step", format!("a task of unknown step {key} ran"));
            return Ok(());
        };
        for need in &step.needs {
            let rec = self
                .store
                .get_step(run, &StepKey::step(need.as_str()))
                .await;
            let met = match &rec {
                Ok(r) => {
                    matches!(r.status, StepStatus::Succeeded | StepStatus::Skipped)
                        || (r.status == StepStatus::Failed
                            && spec.step(need).is_some_and(|n| n.continue_on_failure))
                }
                Err(_) => false,
            };
            if !met {
                let status = rec
                    .map(|r| format!("{:?}", r.status))
                    .unwrap_or_else(|_| "absent".into());
                self.world.violation(
                    "need-not-final",
                    format!("{run}: task of {key} attempt {attempt} started while its need {need} was {status}"),
                );
            }
        }
        let rec = match self.store.get_step(run, key).await {
            Ok(r) => Some(r),
            Err(PortError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        if let Some(r) = &rec
            && r.status.is_final()
        {
            self.world.violation(
                "task-of-final-step",
                format!(
                    "{run}: task of {key} started although it is {:?} (attempt {})",
                    r.status, r.attempt
                ),
            );
        }
        let claimed = rec
            .as_ref()
            .is_some_and(|r| r.status == StepStatus::Running && r.attempt == attempt);
        let run_rec = self.store.get_run(run).await?;
        if (run_rec.failing || run_rec.status.is_final()) && !claimed {
            self.world.violation(
                "started-after-fail-fast",
                format!(
                    "{run}: task of {key} attempt {attempt} started unclaimed while the run was {}",
                    if run_rec.failing { "failing" } else { "final" }
                ),
            );
        }
        Ok(())
    }
}

#[async_trait]
impl TaskRunner for SimRunner {
    async fn run(&self, task: &Task) -> Result<Value, TaskError> {
        let input = match task {
            Task::Lambda { payload, .. } => payload.clone(),
            Task::Http { json, .. } => json.clone().unwrap_or(Value::Null),
        };
        let step = input["step"].as_str().unwrap_or_default().to_string();
        let spec = self
            .spec
            .workflow(input["wf"].as_str().unwrap_or_default())
            .unwrap_or(&self.spec);
        let run = RunId::new(input["run"].as_str().unwrap_or_default());
        let index = input["index"].as_u64().and_then(|i| u32::try_from(i).ok());
        let key = match index {
            Some(i) => StepKey::iteration(step.as_str(), i),
            None => StepKey::step(step.as_str()),
        };
        let observe = async {
            let attempt = self.attempt(&run, &key).await?;
            self.check(spec, &run, &key, attempt).await?;
            Ok::<u32, PortError>(attempt)
        };
        let attempt = match observe.await {
            Ok(a) => a,
            Err(e) => panic!("the simulation could not read its own store: {e}"),
        };
        let step_spec = spec.step(&step);
        let timeout = step_spec.and_then(|s| s.timeout);
        let b = self
            .plan
            .behaviour(&spec.name, &step, index, attempt, timeout);
        if let (Ending::Succeed, Some(c)) = (b.ending, step_spec.and_then(|s| s.callback)) {
            let plan = Plan::draw(
                self.plan.seed,
                &format!("{}/{key}/{attempt}", spec.name),
                c,
                b.duration,
                crate::remote::output_for(&input),
            );
            let attempt = (run.to_string(), key.to_string(), attempt);
            self.world.start_remote(attempt, token_of(task), plan);
        }
        let at = self.world.now();
        let number = self.world.tally(|t| {
            t.invocations.push(Invocation {
                run: run.to_string(),
                step: step.clone(),
                index,
                attempt,
                at,
                ended: false,
            });
            t.invocations.len() - 1
        });
        self.world.trace(|| {
            format!(
                "task {run} {key} attempt {attempt}: {:?} after {:?}",
                b.ending, b.duration
            )
        });
        tokio::time::sleep(b.duration).await;
        if b.ending != Ending::Crash {
            self.world.tally(|t| t.invocations[number].ended = true);
        }
        match b.ending {
            Ending::Succeed => {
                let out = output_of(&input);
                Ok(match task {
                    Task::Http { .. } => json!({ "status": 200, "headers": {}, "body": out }),
                    Task::Lambda { .. } => out,
                })
            }
            Ending::FailRetryable => Err(TaskError::retryable("SimBusy", format!("{key} is busy"))),
            Ending::FailFatal => Err(TaskError::fatal("SimBroken", format!("{key} is broken"))),
            Ending::Crash => {
                self.world
                    .crash_now(format!("in the task of {run} {key} attempt {attempt}"))
                    .await
            }
        }
    }
}
