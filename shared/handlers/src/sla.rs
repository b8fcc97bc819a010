//! SLA checks (see [`braid_engine::sla`]): the tick looks at a run whose next SLA
//! is due, notes what it missed with one guarded write, then announces each miss
//! (`sla.missed`). The write comes first so two ticks never announce one miss twice;
//! a crash between the two loses the announcement, never the record of the miss.

use super::{HandlerResult, Handlers};
use braid_engine::model::{LifecycleEvent, RunRecord, StepKey};
use braid_ports::PortError;

impl Handlers {
    /// Notes and announces the SLAs `run` missed, if its next SLA look is due.
    pub(super) async fn check_sla(&self, run: &RunRecord) -> HandlerResult<()> {
        let now = self.now();
        if run.status.is_final() || run.sla_due.is_none_or(|t| t > now) {
            return Ok(());
        }
        let wf = self.workflow(run).await?;
        let mut steps = Vec::new();
        for id in wf.sla.steps.keys() {
            match self.ports.store.get_step(&run.id, &StepKey::step(id)).await {
                Ok(rec) => steps.push(rec),
                // Not written yet: pending, as its absence says.
                Err(PortError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let check = braid_engine::sla::check(&wf, run, &steps, now);
        let noted = self
            .ports
            .store
            .note_sla_missed(run, &check.missed, check.next)
            .await?;
        if !noted || check.missed.is_empty() {
            return Ok(());
        }
        let status = |step: Option<&str>| match step {
            None => run.status.as_str(),
            Some(id) => steps
                .iter()
                .find(|r| r.key.step == id)
                .map_or("pending", |r| r.status.as_str()),
        };
        let events = check
            .missed
            .iter()
            .map(|m| LifecycleEvent::sla_missed(run, m, status(m.step.as_deref()), now))
            .collect();
        self.publish(run, events).await;
        Ok(())
    }
}
