//! The `step-dispatcher` Lambda function.
//!
//! Claims ready steps, runs their tasks and records the outcomes.
//!
//! The only function that runs tasks, so the only one linking the Lambda client and an
//! HTTP client, beside the stack's own (DynamoDB, SQS, S3). Configuration is read and
//! clients are built once per container (`braid_aws::backend`); each batch goes to
//! `braid_lambda::sqs_batch`.
//!
//! # Layout
//! This file only: clients and ports built once, then each event handed to
//! `braid-lambda`. Everything it calls is tested without Lambda.

use aws_lambda_events::event::sqs::SqsEvent;
use braid_aws::backend;
use braid_aws::lambda::task_runners;
use braid_aws::sdk::sdk_from_env;
use braid_lambda::sqs_batch::{self, Source};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk_from_env().await;
    let mut ports = backend::stack_ports_from_env(&sdk)?;
    ports.tasks = Some(task_runners(aws_sdk_lambda::Client::new(&sdk))?);
    let handlers = backend::handlers_from_env(ports)?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let handlers = &handlers;
        async move { Ok::<_, Error>(sqs_batch::handle(handlers, Source::Ready, event.payload).await) }
    }))
    .await
}
