//! The `trigger-intake` Lambda function.
//!
//! Starts runs — direct invokes, HTTP API requests and signed webhooks, S3 uploads,
//! EventBridge events, messages of a user's queue — and serves run views.
//!
//! Links the stack's own clients (DynamoDB, SQS, S3) and, for webhook secrets, SSM and
//! Secrets Manager. Configuration is read and clients are built once per container
//! (`braid_aws::backend`); each event goes to `braid_lambda::intake`.
//!
//! # Layout
//! This file only: clients and ports built once, then each event handed to
//! `braid-lambda`. Everything it calls is tested without Lambda.

use braid_aws::backend;
use braid_aws::sdk::sdk_from_env;
use braid_aws::secrets::AwsSecrets;
use braid_lambda::intake;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk_from_env().await;
    let mut ports = backend::stack_ports_from_env(&sdk)?;
    ports.secrets = Arc::new(AwsSecrets::from_sdk(&sdk));
    let handlers = backend::handlers_from_env(ports)?;
    run(service_fn(|event: LambdaEvent<Value>| {
        let handlers = &handlers;
        async move { Ok::<_, Error>(intake::handle(handlers, event.payload).await?) }
    }))
    .await
}
