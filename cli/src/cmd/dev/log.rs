//! One line on stderr per run started and per run finished, from the handlers'
//! lifecycle events (on AWS they go to EventBridge; here they are printed, and with
//! `--backend aws` printed as the notifier forwards them to the stack's bus).

use async_trait::async_trait;
use braid_engine::model::{EventKind, LifecycleEvent};
use braid_ports::{EventSink, PortResult};

/// Prints `run <id> of <workflow> started by <kind>` and `run <id> of <workflow> <status>`.
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
                EventKind::StepFinished => {}
            }
        }
        Ok(())
    }
}

/// Hands the events on to the sink it wraps, then prints them like [`RunLog`] (once
/// published: a batch that fails is delivered again, and printed then).
#[cfg(feature = "aws")]
pub struct Logged(pub std::sync::Arc<dyn EventSink>);

#[cfg(feature = "aws")]
#[async_trait]
impl EventSink for Logged {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        self.0.publish(events).await?;
        RunLog.publish(events).await
    }
}
