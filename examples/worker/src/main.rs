//! The example worker function: the handler lives in the library; this file only wires
//! it to the Lambda runtime.

use braid_example_worker::Worker;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // One `Worker` per process: its state (the `flaky` counters) lives as long as the
    // warm execution environment, as it would in Lambda.
    let worker = Worker::default();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        worker.handle(event.payload)
    }))
    .await
}
