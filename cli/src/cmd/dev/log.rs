//! One line on stderr per run started and per run finished, from the handlers'
//! lifecycle events (on AWS they go to EventBridge; here they are printed as the
//! handlers publish them, on either backend).

use async_trait::async_trait;
use braid_engine::model::{EventKind, LifecycleEvent};
use braid_ports::{EventSink, PortResult};

/// Prints `run <id> of <workflow> started by <kind>`, `run <id> of <workflow> <status>`,
/// what a waiting step waits for and how it was decided, and each SLA missed.
pub struct RunLog;

#[async_trait]
impl EventSink for RunLog {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        for e in events {
            match e.kind {
                EventKind::RunStarted => eprintln!(
                    "run {} of {} started by {}",
                    e.run_id,
                    e.workflow,
                    e.trigger.as_deref().unwrap_or("api")
                ),
                EventKind::RunFinished => match &e.error {
                    Some(err) => eprintln!(
                        "run {} of {} {}: {}: {}",
                        e.run_id, e.workflow, e.status, err.error, err.message
                    ),
                    None => eprintln!("run {} of {} {}", e.run_id, e.workflow, e.status),
                },
                // A wait that needs someone: what it waits for and how to end it.
                EventKind::StepWaiting => {
                    let d = e.detail.clone().unwrap_or_default();
                    let how = ["approve", "send"]
                        .iter()
                        .find_map(|k| d[*k].as_str())
                        .unwrap_or_default();
                    eprintln!(
                        "run {} of {}: step {} waits for {}: {how}",
                        e.run_id,
                        e.workflow,
                        e.step.as_deref().unwrap_or_default(),
                        d["for"].as_str().unwrap_or("something")
                    );
                }
                EventKind::StepDecided => {
                    let d = e.detail.clone().unwrap_or_default();
                    eprintln!(
                        "run {} of {}: step {} {} by {}",
                        e.run_id,
                        e.workflow,
                        e.step.as_deref().unwrap_or_default(),
                        d["decision"].as_str().unwrap_or("decided"),
                        d["by"].as_str().unwrap_or("someone")
                    );
                }
                EventKind::SlaMissed => {
                    let d = e.detail.clone().unwrap_or_default();
                    let who = match &e.step {
                        Some(step) => format!("step {step}"),
                        None => "the run".to_string(),
                    };
                    eprintln!(
                        "run {} of {}: {who} missed its SLA ({})",
                        e.run_id,
                        e.workflow,
                        d["sla"].as_str().unwrap_or("?")
                    );
                }
                EventKind::StepFinished | EventKind::StepRetrying => {}
            }
        }
        Ok(())
    }
}

/// Hands the events on to the sink it wraps, then prints them like [`RunLog`] (once
/// published: a batch that fails is delivered again, and printed then).
pub struct Logged(pub std::sync::Arc<dyn EventSink>);

#[async_trait]
impl EventSink for Logged {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        self.0.publish(events).await?;
        RunLog.publish(events).await
    }
}
