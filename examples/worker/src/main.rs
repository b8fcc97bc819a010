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
    let worker = &worker;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let op = event
            .payload
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // The trace context Braid passes in the client context: calls made from here
        // with it join the run's trace under this attempt's span.
        let traceparent = event
            .context
            .client_context
            .as_ref()
            .and_then(|c| c.custom.get("traceparent"))
            .cloned()
            .unwrap_or_default();
        lambda_runtime::tracing::info!(%op, %traceparent, "invoked");
        let result = worker.handle(event.payload).await;
        if let Err(e) = &result {
            // What a function says about its own failure, on its stderr.
            eprintln!("{op} failed: {e}");
        }
        result
    }))
    .await
}
