//! The `notifier` Lambda function.
//!
//! Publishes lifecycle events to the stack's EventBridge bus.
//!
//! Links the EventBridge client alone: the event source mapping hands it the event
//! queue's messages, and it reads nothing else of the stack. Configuration
//! (`BRAID_EVENT_BUS`) is read and the client built once per container; each batch
//! goes to `braid_lambda::notify`.
//!
//! # Layout
//! This file only: clients and ports built once, then each event handed to
//! `braid-lambda`. Everything it calls is tested without Lambda.

use aws_lambda_events::event::sqs::SqsEvent;
use braid_aws::event_bus::event_bus_from_env;
use braid_aws::sdk::sdk_from_env;
use braid_lambda::notify;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sink = event_bus_from_env(&sdk_from_env().await)?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let sink = &sink;
        async move { Ok::<_, Error>(notify::handle(sink, event.payload).await) }
    }))
    .await
}
