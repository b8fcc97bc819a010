//! The `cron-tick` Lambda function.
//!
//! Every minute, fires due timers and sweeps active runs.
//!
//! Configuration is read and clients are built once per container (see
//! `braid::aws::config`); each event goes to its handler in `braid::aws`.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use braid::aws::{backend, cron};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let handlers = backend::handlers_from_env().await?;
    run(service_fn(|event: LambdaEvent<EventBridgeEvent>| {
        let handlers = &handlers;
        async move { Ok::<_, Error>(cron::handle(handlers, event.payload).await?) }
    }))
    .await
}
