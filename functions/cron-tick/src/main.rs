//! The `cron-tick` Lambda function.
//!
//! Every minute, fires due timers and sweeps active runs.
//!
//! Links the stack's own clients only (DynamoDB, SQS, S3): it runs no task.
//! Configuration is read and clients are built once per container
//! (`braid_aws::backend`); each event goes to `braid_lambda::cron`.
//!
//! # Layout
//! This file only: clients and ports built once, then each event handed to
//! `braid-lambda`. Everything it calls is tested without Lambda.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use braid_aws::backend;
use braid_aws::sdk::sdk_from_env;
use braid_lambda::cron;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk_from_env().await;
    let handlers = backend::handlers_from_env(backend::stack_ports_from_env(&sdk)?)?;
    run(service_fn(|event: LambdaEvent<EventBridgeEvent>| {
        let handlers = &handlers;
        async move { Ok::<_, Error>(cron::handle(handlers, event.payload).await?) }
    }))
    .await
}
