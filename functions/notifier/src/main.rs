//! The `notifier` Lambda function.
//!
//! Publishes lifecycle events to the stack's EventBridge bus, then sends the
//! notifications the workflows' `notify` entries call for (Slack, webhooks).
//!
//! Links the EventBridge client, the stack's own clients (the run and workflow a
//! notification tells, and how it went), Parameter Store and Secrets Manager for
//! signing secrets, and an HTTP client. Configuration is read and clients are built
//! once per container; each batch goes to `braid_lambda::notify`.
//!
//! # Layout
//! This file only: clients and ports built once, then each batch handed to
//! `braid-lambda`. Everything it calls is tested without Lambda.

use aws_lambda_events::event::sqs::SqsEvent;
use braid_aws::backend;
use braid_aws::event_bus::event_bus_from_env;
use braid_aws::sdk::sdk_from_env;
use braid_aws::secrets::AwsSecrets;
use braid_lambda::notify;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk_from_env().await;
    let sink = event_bus_from_env(&sdk)?;
    let dead = backend::event_dead_letters_from_env(&sdk)?;
    let mut ports = backend::stack_ports_from_env(&sdk)?;
    ports.secrets = Arc::new(AwsSecrets::from_sdk(&sdk));
    ports.tasks = Some(backend::http_runners()?);
    let handlers = backend::handlers_from_env(ports)?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (handlers, sink, dead) = (&handlers, &sink, &dead);
        async move { Ok::<_, Error>(notify::handle(handlers, sink, dead, event.payload).await) }
    }))
    .await
}
