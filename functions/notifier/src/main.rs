//! The `notifier` Lambda function.
//!
//! Publishes lifecycle events to the stack's EventBridge bus.
//!
//! Configuration is read and clients are built once per container (see
//! `braid::aws::config`); each event goes to its handler in `braid::aws`.

use aws_lambda_events::event::sqs::SqsEvent;
use braid::aws::{backend, notify};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sink = backend::event_bus_from_env().await?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let sink = &sink;
        async move { Ok::<_, Error>(notify::handle(sink, event.payload).await) }
    }))
    .await
}
