//! One line on stderr per run started and per run finished, from the handlers'
//! lifecycle events (on AWS they go to EventBridge; here they are printed).

use async_trait::async_trait;
use braid_engine::model::{EventKind, LifecycleEvent};
use braid_ports::{EventSink, PortResult, StateStore};
use std::sync::Arc;

/// Prints `run <id> of <workflow> started by <kind>` and `run <id> of <workflow> <status>`.
pub struct RunLog {
    /// Where the run's trigger is read from (the event does not carry it).
    pub store: Arc<dyn StateStore>,
}

#[async_trait]
impl EventSink for RunLog {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        for e in events {
            match e.kind {
                EventKind::RunStarted => {
                    let kind = match self.store.get_run(&e.run_id).await {
                        Ok(run) => started_by(&run.trigger),
                        Err(_) => "api".to_string(),
                    };
                    eprintln!("run {} of {} started by {kind}", e.run_id, e.workflow);
                }
                EventKind::RunFinished => match &e.error {
                    Some(err) => eprintln!(
                        "run {} of {} {}: {}: {}",
                        e.run_id, e.workflow, e.status, err.error, err.message
                    ),
                    None => eprintln!("run {} of {} {}", e.run_id, e.workflow, e.status),
                },
                EventKind::StepFinished => {}
            }
        }
        Ok(())
    }
}

/// The trigger kind of a run (`s3`, `webhook`, `schedule`…); `api` for one started by
/// `POST /runs`, which has no trigger data.
fn started_by(trigger: &serde_json::Value) -> String {
    trigger["kind"].as_str().unwrap_or("api").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_trigger_kind_or_api() {
        assert_eq!(started_by(&json!({"kind": "s3", "key": "a"})), "s3");
        assert_eq!(started_by(&serde_json::Value::Null), "api");
    }
}
