//! Iterations before their first write. A `for_each` expansion writes one record, its
//! step's, holding the items; an iteration's own record is written only when it first
//! changes (its claim, or its outcome written straight over it), so a fan-out of n
//! items costs n writes fewer. Until then an iteration is what
//! [`FanOut::iteration`] says, and its item is read from its step's.
//!
//! An expanded fan-out's items and lanes change only when its run is retried in
//! place (a new expansion, with a new [`FanOut::base`]), so each dispatcher keeps the
//! last few it read ([`KEPT`]): the iterations of one fan-out that it runs read their
//! step once.

use super::{HandlerResult, Handlers};
use braid_engine::model::{FanOut, RunId, StepKey, StepRecord};
use braid_engine::records;
use braid_ports::PortError;
use serde_json::Value;
use std::sync::Arc;

/// How many fan-outs a dispatcher keeps (their items are in memory).
pub(super) const KEPT: usize = 16;

/// An expanded fan-out's lanes and items.
#[derive(Debug)]
pub(super) struct Expansion {
    fan_out: FanOut,
    items: Vec<Value>,
}

impl Handlers {
    /// The record of top-level step `step` of run `run_id`, pending
    /// ([`records::unwritten`]) while it has none yet.
    pub(super) async fn step_record(
        &self,
        run_id: &RunId,
        step: &str,
    ) -> HandlerResult<StepRecord> {
        match self
            .ports
            .store
            .get_step(run_id, &StepKey::step(step))
            .await
        {
            Err(PortError::NotFound(_)) => Ok(records::unwritten(run_id, step)),
            other => Ok(other?),
        }
    }

    /// The record of step or iteration `key` of run `run_id`. One with no record yet
    /// is pending ([`records::unwritten`], [`FanOut::iteration`]); `None` when its
    /// `for_each` step has no such iteration (not expanded yet, or past its items).
    /// `base`: the expansion an unwritten iteration is expected from, when known.
    pub(super) async fn step_or_iteration(
        &self,
        run_id: &RunId,
        key: &StepKey,
        base: Option<u32>,
    ) -> HandlerResult<Option<StepRecord>> {
        let Some(index) = key.index else {
            return self.step_record(run_id, &key.step).await.map(Some);
        };
        match self.ports.store.get_step(run_id, key).await {
            Err(PortError::NotFound(_)) => {
                self.unwritten_iteration(run_id, &key.step, index, base)
                    .await
            }
            other => Ok(Some(other?)),
        }
    }

    /// Iteration `index` of `step` as it is before its first write ([`FanOut::iteration`]),
    /// without reading whether it was written; none when `step` is not expanded or has
    /// no such iteration. `base` as for [`Handlers::step_or_iteration`].
    pub(super) async fn unwritten_iteration(
        &self,
        run_id: &RunId,
        step: &str,
        index: u32,
        base: Option<u32>,
    ) -> HandlerResult<Option<StepRecord>> {
        Ok(self
            .expansion(run_id, step, base)
            .await?
            .filter(|e| index < e.fan_out.total)
            .map(|e| e.fan_out.iteration(run_id, step, index)))
    }

    /// The item of iteration `rec`: its record's (one written before iterations were
    /// recorded on first write), else its `for_each` step's.
    pub(super) async fn item_of(&self, rec: &StepRecord) -> HandlerResult<Value> {
        if let Some(d) = &rec.item {
            return self.load(d).await;
        }
        let index = rec.key.index.unwrap_or(0) as usize;
        Ok(self
            .expansion(&rec.run_id, &rec.key.step, Some(rec.retry_base))
            .await?
            .and_then(|e| e.items.get(index).cloned())
            .unwrap_or(Value::Null))
    }

    /// The expansion of `step` in run `run_id`, from memory or its record (read once
    /// however many of its iterations start at the same moment); `None` while it is
    /// not expanded (that answer is not kept). A run retried in place expands again:
    /// one kept from before another `base` than the caller expects is read again.
    async fn expansion(
        &self,
        run_id: &RunId,
        step: &str,
        base: Option<u32>,
    ) -> HandlerResult<Option<Arc<Expansion>>> {
        let id = format!("{run_id}#{step}");
        let kept = self.read_expansion(run_id, step, &id).await?;
        if base.is_some_and(|b| kept.as_ref().is_some_and(|e| e.fan_out.base != b)) {
            self.expansions.forget(&id);
            return self.read_expansion(run_id, step, &id).await;
        }
        Ok(kept)
    }

    /// Drops the expansion of `step` kept for run `run_id`: the next caller reads it.
    pub(super) fn forget_expansion(&self, run_id: &RunId, step: &str) {
        self.expansions.forget(&format!("{run_id}#{step}"));
    }

    async fn read_expansion(
        &self,
        run_id: &RunId,
        step: &str,
        id: &str,
    ) -> HandlerResult<Option<Arc<Expansion>>> {
        let read = self
            .expansions
            .get(id, async {
                let parent = self
                    .ports
                    .store
                    .get_step(run_id, &StepKey::step(step))
                    .await?;
                // Only a running fan-out has iterations not written yet: one over has
                // written them all, and a retry of its run deleted them before its
                // step's reset — an iteration read then is no iteration.
                let Some(fan_out) = parent
                    .fan_out
                    .filter(|_| parent.status == braid_engine::model::StepStatus::Running)
                else {
                    return HandlerResult::Ok(None);
                };
                let items = match &parent.items {
                    Some(d) => match self.load(d).await? {
                        Value::Array(a) => a,
                        _ => Vec::new(),
                    },
                    None => Vec::new(),
                };
                Ok(Some(Arc::new(Expansion { fan_out, items })))
            })
            .await?;
        if read.is_none() {
            self.expansions.forget(id);
        }
        Ok(read)
    }
}
