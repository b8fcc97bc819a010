//! The `trigger-intake` Lambda function.
//!
//! Starts runs — direct invokes, HTTP API requests and signed webhooks, S3 uploads,
//! EventBridge events, messages of a user's queue — and serves run views.
//!
//! Configuration is read and clients are built once per container (see
//! `braid::aws::config`); each event goes to its handler in `braid::aws`.

use braid::aws::{backend, intake};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let handlers = backend::handlers_from_env().await?;
    run(service_fn(|event: LambdaEvent<Value>| {
        let handlers = &handlers;
        async move { Ok::<_, Error>(intake::handle(handlers, event.payload).await?) }
    }))
    .await
}
