//! Iterations before their first write. A `for_each` expansion writes one record, its
//! step's, holding the items; an iteration's own record is written only when it first
//! changes (its claim, or its outcome written straight over it), so a fan-out of n
//! items costs n writes fewer. Until then an iteration is what
//! [`FanOut::iteration`] says, and its item is read from its step's.
//!
//! An expanded fan-out's items and lanes never change, so each dispatcher keeps the
//! last few it read: the iterations of one fan-out that it runs read their step once.

use super::{HandlerResult, Handlers};
use crate::engine::records;
use crate::model::{FanOut, StepKey, StepRecord};
use crate::ports::PortError;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// How many fan-outs a dispatcher keeps (their items are in memory).
const KEPT: usize = 16;

/// An expanded fan-out's lanes and items.
#[derive(Debug)]
pub(super) struct Expansion {
    fan_out: FanOut,
    items: Vec<Value>,
}

/// An expansion being read or read: `None` when the step was not expanded.
type Slot = Arc<OnceCell<Option<Arc<Expansion>>>>;

/// The expansions read lately, by run and step. Each is read once however many of its
/// iterations start at the same moment (a fan-out's first wave).
#[derive(Debug, Default)]
pub(super) struct Expansions(Mutex<HashMap<(String, String), Slot>>);

impl Handlers {
    /// The record of step or iteration `key` of run `run_id`. One with no record yet
    /// is pending ([`records::unwritten`], [`FanOut::iteration`]); `None` when its
    /// `for_each` step has no such iteration (not expanded yet, or past its items).
    pub(super) async fn step_or_iteration(
        &self,
        run_id: &str,
        key: &StepKey,
    ) -> HandlerResult<Option<StepRecord>> {
        match (self.ports.store.get_step(run_id, key).await, key.index) {
            (Ok(rec), _) => Ok(Some(rec)),
            (Err(PortError::NotFound(_)), None) => Ok(Some(records::unwritten(run_id, &key.step))),
            (Err(PortError::NotFound(_)), Some(index)) => {
                let Some(e) = self.expansion(run_id, &key.step).await? else {
                    return Ok(None);
                };
                Ok(
                    (index < e.fan_out.total)
                        .then(|| e.fan_out.iteration(run_id, &key.step, index)),
                )
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    /// Iteration `index` of `step` as it is before its first write ([`FanOut::iteration`]),
    /// without reading whether it was written; none when `step` is not expanded.
    pub(super) async fn unwritten_iteration(
        &self,
        run_id: &str,
        step: &str,
        index: u32,
    ) -> HandlerResult<Vec<StepRecord>> {
        Ok(self
            .expansion(run_id, step)
            .await?
            .filter(|e| index < e.fan_out.total)
            .map(|e| e.fan_out.iteration(run_id, step, index))
            .into_iter()
            .collect())
    }

    /// The item of iteration `rec`: its record's (one written before iterations were
    /// recorded on first write), else its `for_each` step's.
    pub(super) async fn item_of(&self, rec: &StepRecord) -> HandlerResult<Value> {
        if let Some(d) = &rec.item {
            return self.load(d).await;
        }
        let index = rec.key.index.unwrap_or(0) as usize;
        Ok(self
            .expansion(&rec.run_id, &rec.key.step)
            .await?
            .and_then(|e| e.items.get(index).cloned())
            .unwrap_or(Value::Null))
    }

    /// The expansion of `step` in run `run_id`, from memory or its record; `None`
    /// while it is not expanded (that answer is not kept).
    async fn expansion(&self, run_id: &str, step: &str) -> HandlerResult<Option<Arc<Expansion>>> {
        let id = (run_id.to_string(), step.to_string());
        let cell = {
            let mut kept = self.expansions.0.lock().unwrap();
            if kept.len() >= KEPT && !kept.contains_key(&id) {
                kept.clear();
            }
            kept.entry(id.clone()).or_default().clone()
        };
        let read = cell
            .get_or_try_init(|| async {
                let parent = self
                    .ports
                    .store
                    .get_step(run_id, &StepKey::step(step))
                    .await?;
                let Some(fan_out) = parent.fan_out else {
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
            .await?
            .clone();
        if read.is_none() {
            self.expansions.0.lock().unwrap().remove(&id);
        }
        Ok(read)
    }
}
