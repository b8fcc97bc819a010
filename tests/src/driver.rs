//! Drives the five functions' handlers in-process the way Lambda drives them on AWS:
//! an event source mapping receives a batch of up to 10 messages, invokes the function
//! with it, deletes the messages it did not report as failures and leaves those for
//! redelivery; the schedule invokes the cron tick. Each invocation is timed and priced
//! at the memory size the template gives its function.

use crate::stack::Stack;
use crate::template::Template;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use braid_aws::event_bus::EventBridgeSink;
use braid_engine::model::{RunId, RunRecord};
use braid_handlers::Handlers;
use braid_lambda::sqs_batch::{self, Source};
use braid_lambda::{cron, notify};
use serde_json::json;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    pub handlers: Handlers,
    pub sink: EventBridgeSink,
    /// A failed message is made visible again at once instead of after the queue's
    /// visibility timeout (minutes): what is tested is the redelivery, not the wait.
    pub fast_redelivery: bool,
    template: Template,
    invocations: Mutex<Invocations>,
}

impl<'a> Driver<'a> {
    pub fn new(stack: &'a Stack, handlers: Handlers) -> Self {
        Driver {
            sink: EventBridgeSink::new(stack.clients.eventbridge.clone(), &stack.config.event_bus),
            stack,
            handlers,
            fast_redelivery: true,
            template: Template::load(),
            invocations: Mutex::new(Invocations::default()),
        }
    }

    pub fn invocations(&self) -> Invocations {
        self.invocations.lock().unwrap().clone()
    }

    pub fn reset_invocations(&self) {
        *self.invocations.lock().unwrap() = Invocations::default();
    }

    /// The memory size the template gives `function`, in GB: its own (a number or a
    /// parameter's default), else the global one.
    fn memory_gb(&self, function: &str) -> f64 {
        let own = &self.template.resource(function)["Properties"]["MemorySize"];
        let own = match own["Ref"].as_str() {
            Some(param) => &self.template.0["Parameters"][param]["Default"],
            None => own,
        };
        let mb = own
            .as_f64()
            .or_else(|| self.template.0["Globals"]["Function"]["MemorySize"].as_f64())
            .unwrap_or(128.0);
        mb / 1024.0
    }

    fn bill(&self, function: &str, took: Duration) {
        let billed_ms = took.as_millis().max(1) as f64;
        let mut inv = self.invocations.lock().unwrap();
        inv.count += 1;
        inv.gb_seconds += billed_ms / 1000.0 * self.memory_gb(function);
    }

    /// Receives one batch for `consumer` and invokes it; returns how many messages the
    /// batch held (0: nothing was waiting, no invocation).
    pub async fn deliver(&self, consumer: Consumer) -> usize {
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
            .expect("receive");
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            self.invocations.lock().unwrap().idle_receives += 1;
            return 0;
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
        let event: SqsEvent =
            serde_json::from_value(json!({ "Records": records })).expect("an SQS event");
        let started = Instant::now();
        let response: SqsBatchResponse = match consumer {
            Consumer::Dispatcher => sqs_batch::handle(&self.handlers, Source::Ready, event).await,
            Consumer::Completer => sqs_batch::handle(&self.handlers, Source::Results, event).await,
            Consumer::Notifier => notify::handle(&self.sink, event).await,
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
            if failed.contains(m.message_id.as_ref().unwrap()) {
                if self.fast_redelivery {
                    sqs.change_message_visibility()
                        .queue_url(url)
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .expect("change visibility");
                }
            } else {
                done.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("m{}", done.len()))
                        .receipt_handle(receipt)
                        .build()
                        .expect("an entry"),
                );
            }
        }
        if !done.is_empty() {
            sqs.delete_message_batch()
                .queue_url(url)
                .set_entries(Some(done))
                .send()
                .await
                .expect("delete batch");
        }
        messages.len()
    }

    /// Invokes the cron tick with a scheduled event.
    pub async fn tick(&self) {
        let event: EventBridgeEvent = serde_json::from_value(json!({
            "version": "0", "id": "tick", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "000000000000",
            "time": chrono::Utc::now().to_rfc3339(), "region": "us-east-1", "resources": [], "detail": {}
        }))
        .expect("a scheduled event");
        let started = Instant::now();
        cron::handle(&self.handlers, event).await.expect("tick");
        self.bill("CronTickFunction", started.elapsed());
    }

    /// Delivers every queue until run `run_id` is final; ticks every `tick_every` of
    /// quiet. Panics after `limit`.
    pub async fn run_to_end(&self, run_id: &RunId, limit: Duration) -> RunRecord {
        let deadline = Instant::now() + limit;
        let tick_every = Duration::from_millis(500);
        let mut last_tick = Instant::now();
        loop {
            let mut moved = 0;
            for c in [
                Consumer::Dispatcher,
                Consumer::Completer,
                Consumer::Notifier,
            ] {
                moved += self.deliver(c).await;
            }
            if moved == 0 {
                let run = self
                    .handlers
                    .ports()
                    .store
                    .get_run(run_id)
                    .await
                    .expect("the run exists");
                if run.status.is_final() {
                    // Drain what the end of the run published.
                    while self.deliver(Consumer::Notifier).await > 0 {}
                    return run;
                }
                if Instant::now() >= deadline {
                    let steps = self.handlers.ports().store.list_steps(run_id).await;
                    panic!(
                        "run {run_id} did not finish within {limit:?}: {run:?}\nsteps: {steps:#?}"
                    );
                }
                if last_tick.elapsed() >= tick_every {
                    self.tick().await;
                    last_tick = Instant::now();
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
