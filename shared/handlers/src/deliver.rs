//! Delivery: one queue message handed to its handler, and what to do with the message
//! afterwards. The local runtime and the Lambda functions' SQS batches both go through
//! here, so a message is judged the same way on every backend.

use super::{HandlerError, Handlers};
use braid_engine::model::{DispatchMsg, ErrorInfo, ResultMsg, RunId, RunStatus, StepKey};
use braid_ports::Received;
use tracing::Instrument;

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Handled: delete it.
    Done,
    /// Given up on: its run was failed with the reason. An SQS queue keeps it (as a
    /// failure) until its redrive policy moves it to the dead-letter queue, where it
    /// can be looked at; the local queue drops it.
    GaveUp,
    /// Not handled this time: leave it for redelivery.
    Retry,
    /// Not a message of this queue: keep it out of the way (an SQS queue moves it to
    /// its dead-letter queue) with the reason.
    Malformed(String),
}

pub use braid_ports::MAX_RECEIVES;

impl Handlers {
    /// Hands a "ready" message to [`Handlers::dispatch`].
    pub async fn deliver_ready(&self, m: &Received) -> Delivery {
        match serde_json::from_str::<DispatchMsg>(&m.body) {
            Ok(msg) => {
                let span = tracing::info_span!("dispatch", run = %msg.run_id, step = %msg.key, attempt = msg.attempt);
                let outcome = self
                    .dispatch_delivery(&msg, m.receive_count > 1)
                    .instrument(span)
                    .await;
                self.judge(m, "ready", &msg.run_id, &msg.key, outcome).await
            }
            Err(e) => malformed("ready", e),
        }
    }

    /// Hands a "result" message to [`Handlers::complete`].
    pub async fn deliver_result(&self, m: &Received) -> Delivery {
        match serde_json::from_str::<ResultMsg>(&m.body) {
            Ok(msg) => {
                let span = tracing::info_span!("complete", run = %msg.run_id, step = %msg.key);
                let outcome = self.complete(&msg).instrument(span).await;
                self.judge(m, "result", &msg.run_id, &msg.key, outcome)
                    .await
            }
            Err(e) => malformed("result", e),
        }
    }

    /// What to do with a message after its handler returned `r`.
    async fn judge(
        &self,
        m: &Received,
        kind: &str,
        run_id: &RunId,
        key: &StepKey,
        r: Result<(), HandlerError>,
    ) -> Delivery {
        let e = match r {
            Ok(()) => return Delivery::Done,
            Err(e) => e,
        };
        if e.is_retryable() && m.receive_count < MAX_RECEIVES {
            tracing::warn!(error = %e, "{kind} message failed; it will be delivered again");
            return Delivery::Retry;
        }
        tracing::error!(error = %e, run = %run_id, step = %key, "{kind} message given up; failing its run");
        let queue = if kind == "ready" { "ready" } else { "result" };
        self.ports
            .metrics
            .observe(&braid_ports::Observation::DeadLetter { queue });
        let reason = ErrorInfo::new(
            "undeliverable",
            format!(
                "the {kind} message for step `{key}` could not be handled (delivered {} time(s)): {e}",
                m.receive_count
            ),
        );
        match self.end_run(run_id, RunStatus::Failed, reason).await {
            Ok(()) => Delivery::GaveUp,
            Err(e) => {
                tracing::warn!(error = %e, "failing the run failed; the message will be delivered again");
                Delivery::Retry
            }
        }
    }
}

fn malformed(kind: &str, e: serde_json::Error) -> Delivery {
    let reason = format!("{kind} message is not valid: {e}");
    tracing::error!(%reason, "message set aside");
    Delivery::Malformed(reason)
}
