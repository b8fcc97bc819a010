//! Drives the five functions' handlers in-process the way Lambda drives them on AWS:
//! an event source mapping receives a batch of up to 10 messages, invokes the function
//! with it, deletes the messages it did not report as failures and leaves those for
//! redelivery; the schedule invokes the cron tick. Each invocation is timed and priced
//! at the memory size the template gives its function.
//!
//! [`Driver::run_to_end`] drives one run to its end (`braid run --backend aws`, the
//! tests); [`Driver::serve`] drives every queue and the tick until told to stop
//! (`braid dev --backend aws`).

use crate::stack::Stack;
use crate::template::Template;
use crate::{EmulatorError, EmulatorResult};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use braid_aws::event_bus::EventBridgeSink;
use braid_aws::queue::SqsQueue;
use braid_engine::model::{RunId, RunRecord};
use braid_handlers::Handlers;
use braid_lambda::sqs_batch::{self, Source};
use braid_lambda::{cron, notify};
use braid_ports::EventSink;
use serde_json::json;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the cron tick fires while there is work: the deployed schedule fires it
/// every minute; a second keeps timers and retries' back-offs close to their time.
const TICK_EVERY: Duration = Duration::from_secs(1);

/// The pause between looks at the queues when they were all empty.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// The functions fed by a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    Dispatcher,
    Completer,
    Notifier,
}

impl Consumer {
    fn queue(self) -> &'static str {
        match self {
            Consumer::Dispatcher => "ReadyQueue",
            Consumer::Completer => "ResultQueue",
            Consumer::Notifier => "EventQueue",
        }
    }

    fn function(self) -> &'static str {
        match self {
            Consumer::Dispatcher => "StepDispatcherFunction",
            Consumer::Completer => "StepCompleterFunction",
            Consumer::Notifier => "NotifierFunction",
        }
    }
}

/// Lambda invocations and their billed duration, and the receives that found nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Invocations {
    pub count: u64,
    pub gb_seconds: f64,
    /// Receives that came back empty: the event source mapping's idle polling, whose
    /// cost is by the hour, not by the step.
    pub idle_receives: u64,
}

/// The functions' handlers over one emulated stack.
pub struct Driver<'a> {
    pub stack: &'a Stack,
    /// Shared, so that a caller can read runs while the driver moves them.
    pub handlers: Arc<Handlers>,
    /// Where the notifier forwards lifecycle events: the stack's bus, as deployed.
    pub sink: Arc<dyn EventSink>,
    /// A failed message is made visible again at once instead of after the queue's
    /// visibility timeout (minutes): what is tested is the redelivery, not the wait.
    pub fast_redelivery: bool,
    invocations: Mutex<Invocations>,
}

impl<'a> Driver<'a> {
    pub fn new(stack: &'a Stack, handlers: impl Into<Arc<Handlers>>) -> Self {
        Driver {
            sink: Arc::new(EventBridgeSink::new(
                stack.clients.eventbridge.clone(),
                &stack.config.event_bus,
            )),
            stack,
            handlers: handlers.into(),
            fast_redelivery: true,
            invocations: Mutex::new(Invocations::default()),
        }
    }

    pub fn invocations(&self) -> Invocations {
        self.counts().clone()
    }

    pub fn reset_invocations(&self) {
        *self.counts() = Invocations::default();
    }

    /// The counts; a panic elsewhere while holding them leaves them usable.
    fn counts(&self) -> std::sync::MutexGuard<'_, Invocations> {
        self.invocations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bill(&self, function: &str, took: Duration) {
        let billed_ms = took.as_millis().max(1) as f64;
        let gb = Template::embedded().memory_mb(function) / 1024.0;
        let mut inv = self.counts();
        inv.count += 1;
        inv.gb_seconds += billed_ms / 1000.0 * gb;
    }

    /// Receives one batch for `consumer` and invokes it; returns how many messages the
    /// batch held (0: nothing was waiting, no invocation).
    pub async fn deliver(&self, consumer: Consumer) -> EmulatorResult<usize> {
        let url = self.stack.queue(consumer.queue());
        let sqs = &self.stack.clients.sqs;
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| EmulatorError::aws(format!("receive from {}", consumer.queue()), &e))?;
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            self.counts().idle_receives += 1;
            return Ok(0);
        }
        // The event exactly as Lambda builds it, parsed by the same types the functions use.
        let records: Vec<_> = messages
            .iter()
            .map(|m| {
                let count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .cloned()
                    .unwrap_or_else(|| "1".into());
                json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": {"ApproximateReceiveCount": count},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{}", consumer.queue()),
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({ "Records": records }))
            .expect("SQS messages make an SQS event");
        let started = Instant::now();
        let response: SqsBatchResponse = match consumer {
            Consumer::Dispatcher => sqs_batch::handle(&self.handlers, Source::Ready, event).await,
            Consumer::Completer => sqs_batch::handle(&self.handlers, Source::Results, event).await,
            Consumer::Notifier => {
                let dead = SqsQueue::new(
                    self.stack.clients.sqs.clone(),
                    self.stack.queue("EventDeadLetterQueue"),
                );
                notify::handle(&self.handlers, self.sink.as_ref(), &dead, event).await
            }
        };
        self.bill(consumer.function(), started.elapsed());
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        // Like the event source mapping: the successes are deleted in one batch, the
        // failures left for redelivery.
        let mut done = Vec::new();
        for m in &messages {
            let receipt = m.receipt_handle.clone().unwrap_or_default();
            if m.message_id.as_ref().is_some_and(|id| failed.contains(id)) {
                if self.fast_redelivery {
                    sqs.change_message_visibility()
                        .queue_url(url)
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .map_err(|e| EmulatorError::aws("make a failed message visible", &e))?;
                }
            } else {
                done.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("m{}", done.len()))
                        .receipt_handle(receipt)
                        .build()
                        .expect("an entry with an id and a receipt handle"),
                );
            }
        }
        if !done.is_empty() {
            sqs.delete_message_batch()
                .queue_url(url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| EmulatorError::aws("delete delivered messages", &e))?;
        }
        Ok(messages.len())
    }

    /// Invokes the cron tick with a scheduled event.
    pub async fn tick(&self) -> EmulatorResult<()> {
        let event: EventBridgeEvent = serde_json::from_value(json!({
            "version": "0", "id": "tick", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "000000000000",
            "time": chrono::Utc::now().to_rfc3339(), "region": "us-east-1", "resources": [], "detail": {}
        }))
        .expect("a scheduled event");
        let started = Instant::now();
        cron::handle(&self.handlers, event).await?;
        self.bill("CronTickFunction", started.elapsed());
        Ok(())
    }

    /// One batch for each function fed by a queue; how many messages they held.
    async fn deliver_all(&self) -> EmulatorResult<usize> {
        let mut moved = 0;
        for c in [
            Consumer::Dispatcher,
            Consumer::Completer,
            Consumer::Notifier,
        ] {
            moved += self.deliver(c).await?;
        }
        Ok(moved)
    }

    /// Delivers every queue until run `run_id` is final; ticks every half second of
    /// quiet (a lost message, a timer, a retry's back-off is the tick's work). Gives up
    /// after `limit`, if one is given.
    pub async fn run_to_end(
        &self,
        run_id: &RunId,
        limit: Option<Duration>,
    ) -> EmulatorResult<RunRecord> {
        let started = Instant::now();
        let tick_every = Duration::from_millis(500);
        let mut last_tick = Instant::now();
        loop {
            if self.deliver_all().await? > 0 {
                continue;
            }
            let run = self.handlers.ports().store.get_run(run_id).await?;
            if run.status.is_final() {
                // Drain what the end of the run published.
                while self.deliver(Consumer::Notifier).await? > 0 {}
                return Ok(run);
            }
            if let Some(limit) = limit
                && started.elapsed() >= limit
            {
                return Err(EmulatorError::Unfinished {
                    run: run_id.to_string(),
                    limit,
                    status: run.status.to_string(),
                });
            }
            if last_tick.elapsed() >= tick_every {
                self.tick().await?;
                last_tick = Instant::now();
            } else {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }

    /// Delivers every queue and fires the tick every second until `stop` resolves,
    /// like the deployed stack's event source mappings and schedule. A failed look
    /// (the emulator went away) is logged and tried again a second later.
    pub async fn serve(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut last_tick: Option<Instant> = None;
        loop {
            let pause = match self.step(&mut last_tick).await {
                Ok(0) => IDLE_POLL,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::error!("driving the emulated stack failed: {e}");
                    TICK_EVERY
                }
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One round of [`Driver::serve`]: the tick when it is due, then a batch per queue.
    async fn step(&self, last_tick: &mut Option<Instant>) -> EmulatorResult<usize> {
        if last_tick.is_none_or(|t| t.elapsed() >= TICK_EVERY) {
            *last_tick = Some(Instant::now());
            self.tick().await?;
        }
        self.deliver_all().await
    }
}
