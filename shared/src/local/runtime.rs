//! The local runtime: drives the handlers message by message, the way SQS event source
//! mappings and the one-minute schedule drive the Lambda functions — receive a batch,
//! hand each message to its handler, acknowledge the ones handled, leave the others
//! for redelivery — plus a tick every second. There is no other execution path.

use crate::handlers::{Delivery, HandlerError, Handlers};
use crate::model::RunRecord;
use crate::ports::Received;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How often the result queue and the run's status are looked at when nothing happens.
const POLL_RARE: Duration = Duration::from_millis(5);

/// How the runtime paces itself.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Tasks (HTTP calls, Lambda invocations) running at once.
    pub concurrency: usize,
    /// Messages taken per receive.
    pub batch: usize,
    /// How often the sweeper runs.
    pub tick_every: Duration,
    /// Longest idle pause between polls.
    pub idle_poll: Duration,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            concurrency: 64,
            batch: 256,
            tick_every: Duration::from_secs(1),
            idle_poll: Duration::from_millis(20),
        }
    }
}

/// Runs the handlers over the work queues in one process.
pub struct LocalRuntime {
    handlers: Arc<Handlers>,
    settings: RuntimeSettings,
}

impl LocalRuntime {
    pub fn new(handlers: Arc<Handlers>, settings: RuntimeSettings) -> Self {
        LocalRuntime { handlers, settings }
    }

    pub fn handlers(&self) -> &Arc<Handlers> {
        &self.handlers
    }

    /// Drives every run until `run_id` is final, and returns its record.
    pub async fn run_to_end(&self, run_id: &str) -> Result<RunRecord, HandlerError> {
        let ports = &self.handlers.ports;
        let mut tasks: JoinSet<Handled> = JoinSet::new();
        let mut next_tick = Instant::now();
        // The result queue and the run's status change rarely compared with the ready
        // queue: they are looked at every `POLL_RARE` unless there is news.
        let mut next_rare = Instant::now();
        let mut idle = Duration::from_millis(1);
        let mut drained = false;
        // Handled messages are acknowledged in batches: an ack is a write, and a message
        // redelivered because its ack was late changes nothing.
        let mut acks: Vec<String> = Vec::new();
        loop {
            let mut worked = false;
            while let Some(done) = tasks.try_join_next() {
                if let Ok(Handled::Ack(r)) = done {
                    acks.push(r);
                }
                worked = true;
            }
            if acks.len() >= self.settings.batch
                || (!acks.is_empty() && Instant::now() >= next_rare)
            {
                ports.ready.ack(&std::mem::take(&mut acks)).await?;
            }

            let free = self
                .settings
                .concurrency
                .saturating_sub(tasks.len())
                .min(self.settings.batch);
            // A receive that came back short drained the queue: until a task ends (and
            // may have sent more) or the rare poll comes round, asking again finds nothing.
            if free > 0 && (!drained || worked || Instant::now() >= next_rare) {
                let visibility = self.handlers.settings.default_lease + Duration::from_secs(60);
                let ready = ports.ready.receive(free, visibility).await?;
                drained = ready.len() < free;
                worked |= !ready.is_empty();
                for m in ready {
                    let handlers = self.handlers.clone();
                    tasks.spawn(async move {
                        let d = handlers.deliver_ready(&m).await;
                        fate(m, d)
                    });
                }
            }

            if Instant::now() >= next_rare {
                let results = ports
                    .results
                    .receive(self.settings.batch, Duration::from_secs(60))
                    .await?;
                let mut handled = Vec::with_capacity(results.len());
                let news = !results.is_empty();
                for m in results {
                    let d = self.handlers.deliver_result(&m).await;
                    if let Handled::Ack(r) = fate(m, d) {
                        handled.push(r);
                    }
                }
                if !handled.is_empty() {
                    ports.results.ack(&handled).await?;
                }
                if !news && tasks.is_empty() {
                    let run = ports.store.get_run(run_id).await?;
                    if run.status.is_final() {
                        if !acks.is_empty() {
                            ports.ready.ack(&acks).await?;
                        }
                        return Ok(run);
                    }
                }
                worked |= news;
                if !news {
                    next_rare = Instant::now() + POLL_RARE;
                }
            }

            if Instant::now() >= next_tick {
                self.handlers.tick().await?;
                next_tick = Instant::now() + self.settings.tick_every;
            }

            if worked {
                idle = Duration::from_millis(1);
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(Handled::Ack(r)) = done {
                        acks.push(r);
                    }
                    drained = false;
                    continue;
                }
            }
            idle = (idle * 2).min(self.settings.idle_poll);
        }
    }
}

/// A message's fate: handled, given up on or malformed, it is acknowledged — locally
/// the reason is in the run's error or the log, not in a dead-letter queue.
fn fate(m: Received, d: Delivery) -> Handled {
    match d {
        Delivery::Done | Delivery::GaveUp | Delivery::Malformed(_) => Handled::Ack(m.receipt),
        Delivery::Retry => Handled::Retry,
    }
}

/// What became of one message.
enum Handled {
    Ack(String),
    Retry,
}
