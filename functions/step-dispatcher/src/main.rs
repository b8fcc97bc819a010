//! The `step-dispatcher` Lambda function.
//!
//! Claims ready steps, runs their tasks and records the outcomes.
//!
//! Configuration is read and clients are built once per container (see
//! `braid::aws::config`); each event goes to its handler in `braid::aws`.

use aws_lambda_events::event::sqs::SqsEvent;
use braid::aws::backend;
use braid::aws::sqs_batch::{self, Source};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let handlers = backend::handlers_from_env().await?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let handlers = &handlers;
        async move { Ok::<_, Error>(sqs_batch::handle(handlers, Source::Ready, event.payload).await) }
    }))
    .await
}
