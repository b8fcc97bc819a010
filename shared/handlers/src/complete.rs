//! Complete: record an outcome that arrives on its own, through the result queue —
//! a child run's end for its parent step (see [`super::children`]); the dispatcher
//! records the outcomes of the tasks it runs itself — by the step lifecycle (see
//! [`super::transition`]).

use super::eager::FollowUps;
use super::{HandlerResult, Handlers};
use braid_engine::lifecycle::Event;
use braid_engine::model::ResultMsg;

impl Handlers {
    /// Records an outcome from a "result" message. A duplicate or stale result finds
    /// the attempt no longer running and changes nothing.
    pub async fn complete(&self, msg: &ResultMsg) -> HandlerResult<()> {
        let run = self.ports.store.get_run(&msg.run_id).await?;
        if run.status.is_final() {
            return Ok(());
        }
        let Some(rec) = self.step_or_iteration(&msg.run_id, &msg.key, None).await? else {
            return Ok(());
        };
        let wf = self.workflow(&run).await?;
        let event = match msg.by {
            Some(by) => Event::Resolved {
                attempt: msg.attempt,
                by,
                outcome: &msg.outcome,
            },
            None => Event::Ended {
                attempt: msg.attempt,
                outcome: &msg.outcome,
                held: None,
            },
        };
        self.apply(&FollowUps::none(), &wf, &run, &rec, event).await
    }
}
