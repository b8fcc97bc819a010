//! Eager dispatch: the dispatcher runs the step that its own step's end makes ready
//! (the next iteration of a lane, a dependent released) in the same delivery, instead
//! of sending it a "ready" message and waiting for the queue to bring it back.
//!
//! Only one follow-up per step is kept — the others are sent as before — so a run is
//! as parallel as with messages alone: one line of work goes on in place of a message.
//! A fan-out's first iterations all go to the queue, so they start together.
//! The follow-up is recorded with the same guarded writes, and starts from the run and
//! record its cause left instead of reading them. A dependent that only the ended step
//! held back is not even released by a write ([`FollowUps::keep_released`]): a crash in the
//! follow-up is repaired like a lost message, or, for that one, like a lost release.
//! It saves, per step, a queue send, its receive and delete, two reads, a share of a
//! function invocation, and for a chain its releases.
//!
//! A delivery keeps going for at most [`EAGER_BUDGET`]; what is left then goes to the
//! queue, so a long chain never holds one invocation near its timeout. The follow-up
//! is kept in [`FollowUps`], passed explicitly down every call that may make a step
//! ready.

use super::{HandlerResult, Handlers};
use braid_engine::model::{DispatchMsg, RunRecord, StepRecord};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one delivery goes on running follow-ups before it sends them instead.
pub const EAGER_BUDGET: Duration = Duration::from_secs(10);

/// A step the delivery runs next, with its run as read after the write that made the
/// step ready and its record as that write left it, when the sender had them: the
/// follow-up need not read them again.
struct FollowUp {
    msg: DispatchMsg,
    run: Option<RunRecord>,
    rec: Option<StepRecord>,
}

/// Where one delivery keeps its follow-up: passed down every call that may make a
/// step ready, so what a delivery runs next is never hidden state. Outside a
/// dispatcher's delivery (the tick, intake, the completer) it keeps nothing
/// ([`FollowUps::none`]): every message is sent.
pub(super) struct FollowUps {
    keeps: bool,
    next: Mutex<Option<FollowUp>>,
}

impl FollowUps {
    /// Keeps nothing.
    pub(super) fn none() -> Self {
        FollowUps {
            keeps: false,
            next: Mutex::new(None),
        }
    }

    /// A dispatcher's delivery: keeps one follow-up at a time.
    fn keeping() -> Self {
        FollowUps {
            keeps: true,
            next: Mutex::new(None),
        }
    }

    /// Takes one message due now out of `msgs` as the follow-up, if this delivery
    /// keeps one and has none yet; returns the messages left to send. `run` and
    /// `records` (the steps' records, some of them) go with the one kept.
    pub(super) fn keep(
        &self,
        mut msgs: Vec<(DispatchMsg, Duration)>,
        run: Option<&RunRecord>,
        records: &[StepRecord],
    ) -> Vec<(DispatchMsg, Duration)> {
        let mut next = self.next.lock().expect("follow-up lock");
        if !self.keeps || next.is_some() {
            return msgs;
        }
        if let Some(i) = msgs.iter().position(|(_, delay)| delay.is_zero()) {
            let msg = msgs.remove(i).0;
            let rec = records.iter().find(|r| r.key == msg.key).cloned();
            *next = Some(FollowUp {
                msg,
                run: run.cloned(),
                rec,
            });
        }
        msgs
    }

    /// Keeps `released` — a step of `run` whose last need just ended, released in
    /// memory only — as the follow-up, if one can be kept; false (nothing kept)
    /// otherwise. Its claim then records the need; a crash before that leaves a
    /// release the sweeper carries out.
    pub(super) fn keep_released(&self, released: &StepRecord, run: &RunRecord) -> bool {
        let mut next = self.next.lock().expect("follow-up lock");
        if !self.keeps || next.is_some() {
            return false;
        }
        *next = Some(FollowUp {
            msg: DispatchMsg::first(&run.id, released.key.clone()),
            run: Some(run.clone()),
            rec: Some(released.clone()),
        });
        true
    }

    /// The follow-up kept, if any.
    fn take(&self) -> Option<FollowUp> {
        self.next.lock().expect("follow-up lock").take()
    }
}

impl Handlers {
    /// Sends follow-up `f` to the queue instead of running it (marked `resume` when it
    /// may have claimed its attempt). A step released in memory only (see `settle`) is
    /// released by a write first, so that the message finds it ready.
    async fn send_follow_up(&self, f: FollowUp, resume: bool) -> HandlerResult<()> {
        if let Some(rec) = f.rec.filter(|r| {
            r.key.index.is_none() && r.status == braid_engine::model::StepStatus::Pending
        }) {
            for need in &rec.satisfied {
                self.ports
                    .store
                    .satisfy(
                        &rec.run_id,
                        &rec.key.step,
                        &need.into(),
                        &rec.satisfied,
                        self.now(),
                    )
                    .await?;
            }
        }
        let msg = DispatchMsg { resume, ..f.msg };
        self.send_now(vec![(msg, Duration::ZERO)]).await
    }

    /// Handles a "ready" message, then the follow-ups its step's end kept, in turn,
    /// within [`EAGER_BUDGET`]. `redelivered` applies to the message itself only.
    ///
    /// A follow-up that fails is sent to the queue, where it is retried like any
    /// message; the delivery itself has succeeded. Only the first step's failure is
    /// the delivery's.
    pub(super) async fn dispatch_eagerly(
        &self,
        msg: &DispatchMsg,
        redelivered: bool,
    ) -> HandlerResult<()> {
        let started = Instant::now();
        let fu = FollowUps::keeping();
        if let Err(e) = self.dispatch_one(&fu, msg, None, None, redelivered).await {
            // What the step's end made ready is not lost with the delivery's
            // failure (a redelivery finds the step final and goes no further).
            if let Some(next) = fu.take()
                && let Err(send) = self.send_follow_up(next, false).await
            {
                tracing::warn!(error = %send, "sending a follow-up failed; the sweeper re-sends it");
            }
            return Err(e);
        }
        while let Some(next) = fu.take() {
            if started.elapsed() >= EAGER_BUDGET {
                return self.send_follow_up(next, false).await;
            }
            let FollowUp { msg, run, rec } = next;
            let kept = rec.clone();
            if let Err(e) = self.dispatch_one(&fu, &msg, run, rec, false).await {
                tracing::warn!(error = %e, run = %msg.run_id, step = %msg.key, "a follow-up failed; sending it to the queue");
                // It may have claimed its attempt: the message resumes it.
                let failed = FollowUp {
                    msg,
                    run: None,
                    rec: kept,
                };
                let after = fu.take();
                self.send_follow_up(failed, true).await?;
                if let Some(after) = after {
                    self.send_follow_up(after, false).await?;
                }
                return Ok(());
            }
        }
        Ok(())
    }
}
