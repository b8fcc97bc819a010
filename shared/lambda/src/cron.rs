//! The cron-tick function's event: the one-minute schedule. Each tick sweeps a page of
//! active runs (fires due timers, repairs lost messages and expired leases, times runs
//! out); the page cursor lives in the table, so ticks in fresh containers go on where
//! the last one stopped.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use braid_handlers::{HandlerResult, Handlers, TickReport};
use serde_json::Value;

/// Runs one tick for a scheduled event, and sends the spans it recorded.
pub async fn handle(
    handlers: &Handlers,
    event: EventBridgeEvent<Value>,
) -> HandlerResult<TickReport> {
    let report = handlers.tick().await;
    handlers.ports().traces.flush().await;
    let report = report?;
    tracing::info!(
        scheduled = ?event.time,
        runs_checked = report.runs_checked,
        repairs = report.repairs,
        "tick"
    );
    Ok(report)
}
