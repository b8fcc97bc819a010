//! Carrying out the step lifecycle: ask [`braid_engine::lifecycle::decide`] what an
//! event does to a step, make its guarded write, then carry out its effects. The
//! handlers decide nothing about a step's state themselves: they load the record, call
//! the lifecycle, and do what it says.

use super::eager::FollowUps;
use super::{HandlerResult, Handlers};
use braid_engine::lifecycle::{self, Context, Effect, Event, Transition};
use braid_engine::model::{RunRecord, StepRecord};
use braid_lang::{Step, Workflow};
use braid_ports::Observation;

/// What running an attempt came to.
pub(super) enum Attempt {
    /// It ended with this outcome.
    Ended(braid_engine::model::Outcome),
    /// A waiting step parks until `due` (for good: `None`); a `workflow` step on the
    /// child run it started.
    Parked {
        due: Option<braid_engine::model::Timestamp>,
        child: Option<braid_engine::model::RunId>,
        /// A callback's timeout, when `due` is its next heartbeat.
        deadline: Option<braid_engine::model::Timestamp>,
    },
}

impl Handlers {
    /// The lifecycle's context for `step` of `run` now.
    pub(super) fn context<'a>(&self, step: &'a Step, run: &RunRecord) -> Context<'a> {
        Context {
            step,
            run_failing: run.failing,
            now: self.now(),
            default_lease: self.settings.default_lease,
            max_queue_delay: self.settings.max_queue_delay,
            random: fastrand::f64(),
        }
    }

    /// Decides what `event` does to `rec` (the step's record as read, or as the attempt
    /// ran) and carries it out. `run` is the run as last read; `fu` is where a step
    /// made ready may be kept to run next in this delivery (see [`super::eager`]).
    pub(super) async fn apply(
        &self,
        fu: &FollowUps,
        wf: &Workflow,
        run: &RunRecord,
        rec: &StepRecord,
        event: Event<'_>,
    ) -> HandlerResult<()> {
        let Some(step) = wf.step(&rec.key.step) else {
            return Ok(());
        };
        let t = lifecycle::decide(rec, event, &self.context(step, run));
        Box::pin(self.carry_out(fu, wf, run, step, rec, t)).await
    }

    /// Makes transition `t`'s write and, if it held, carries out its effects. `before`
    /// is the record as it stood before the transition (for the trace).
    async fn carry_out(
        &self,
        fu: &FollowUps,
        wf: &Workflow,
        run: &RunRecord,
        step: &Step,
        before: &StepRecord,
        t: Transition,
    ) -> HandlerResult<()> {
        let store = &self.ports.store;
        let (written, run_after, parent) = match t.write {
            None => (None, None, None),
            Some(w) => {
                let result = if w.record.status.is_final() {
                    store
                        .finalize_step(&w.guard, &w.record, w.fail_run.as_ref())
                        .await
                        .map(|fin| fin.map(|f| (Some(f.run), f.parent)))
                } else {
                    store
                        .update_step(&w.guard, &w.record)
                        .await
                        .map(|held| held.then_some((None, None)))
                };
                match result {
                    Ok(Some((run_after, parent))) => (Some(w.record), run_after, parent),
                    Ok(None) => return Ok(()),
                    // A write that can never succeed is not retried: the step fails.
                    Err(e) if e.is_permanent() => {
                        let reason = e.to_string();
                        let event = Event::Refused {
                            guard: &w.guard,
                            reason: &reason,
                        };
                        let t = lifecycle::decide(&w.record, event, &self.context(step, run));
                        return Box::pin(self.carry_out(fu, wf, run, step, before, t)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if let Some(after) = &written {
            self.trace_attempt(run, step, before, after);
        }
        let mut parent = parent;
        for effect in t.effects {
            match effect {
                Effect::Run {
                    mut record,
                    held,
                    ready_since,
                } => {
                    let attempt = record.attempt;
                    let started = record.attempt_started_at.unwrap_or_else(|| self.now());
                    if let Some(since) = ready_since {
                        self.ports.metrics.observe(&Observation::QueueLag {
                            workflow: &run.workflow,
                            kind: step.kind.name(),
                            lag: (started - since).to_std().unwrap_or_default(),
                        });
                    }
                    let event_outcome;
                    let event = match self.execute(run, step, &record).await? {
                        Attempt::Ended(outcome) => {
                            self.ports.metrics.observe(&Observation::AttemptEnded {
                                workflow: &run.workflow,
                                kind: step.kind.name(),
                                outcome: outcome.name(),
                                took: (self.now() - started).to_std().unwrap_or_default(),
                            });
                            // Every value bounded before it is recorded (see `bounded`).
                            event_outcome = self.bound_outcome(&record, outcome).await?;
                            Event::Ended {
                                attempt,
                                outcome: &event_outcome,
                                held: Some(&held),
                            }
                        }
                        Attempt::Parked {
                            due,
                            child,
                            deadline,
                        } => {
                            // The park records the child it waits on, the callback's end.
                            record.child_run = child;
                            record.wait_deadline = deadline;
                            Event::Parked {
                                attempt,
                                due,
                                held: &held,
                            }
                        }
                    };
                    self.apply(fu, wf, run, &record, event).await?;
                }
                Effect::Send { msg, delay } => {
                    self.send_dispatch_of(fu, run, vec![(msg, delay)], written.as_slice())
                        .await?;
                }
                Effect::Settle => {
                    let Some(done) = &written else { continue };
                    let after = run_after.clone().unwrap_or_else(|| run.clone());
                    self.settle(fu, wf, after, done, parent.take(), true)
                        .await?;
                }
                Effect::Waiting => {
                    let Some(parked) = &written else { continue };
                    self.announce_wait(wf, run, step, parked).await?;
                }
                Effect::Retrying => {
                    let Some(retrying) = &written else { continue };
                    self.announce_retry(wf, run, retrying).await;
                }
                Effect::LaunchLanes => {
                    let Some(expanded) = written.clone() else {
                        continue;
                    };
                    let run = self.ports.store.get_run(&expanded.run_id).await?;
                    self.launch_lanes(wf, &run, expanded).await?;
                }
            }
        }
        Ok(())
    }
}
