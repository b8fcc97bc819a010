//! Complete: record an outcome that arrives on its own, through the result queue —
//! today none does (the dispatcher records the outcomes of the tasks it runs, the
//! tick a lease's expiry); callbacks, approvals and signals will — by the step
//! lifecycle (see [`super::transition`]).

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
        let rec = self.ports.store.get_step(&msg.run_id, &msg.key).await?;
        let wf = self.workflow(&run).await?;
        let event = Event::Ended {
            attempt: msg.attempt,
            outcome: &msg.outcome,
            held: None,
        };
        self.apply(&FollowUps::none(), &wf, &run, &rec, event).await
    }
}
