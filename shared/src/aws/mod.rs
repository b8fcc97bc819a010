//! The AWS backend: an adapter per port over the AWS SDK, and the entry points the five
//! Lambda functions hand their events to.
//!
//! # Layout
//! Adapters, one per port:
//! - [`store`]: the state store in one DynamoDB table.
//! - [`queue`]: the work queue on SQS.
//! - [`payloads`]: the payload store on S3.
//! - [`events`]: lifecycle events onto the notifier's queue, and from there to EventBridge.
//! - [`lambda`]: `lambda` steps, invoked through the Lambda API.
//! - [`secrets`]: webhook secrets from Parameter Store or Secrets Manager.
//!
//! Assembly and entry points:
//! - [`config`]: the stack's resources, from the environment.
//! - [`backend`]: the clients and the ports for one stack, built once per container.
//! - [`intake`]: the trigger-intake function's events (direct starts, the HTTP API and
//!   webhooks, S3 notifications, EventBridge events, a user's SQS queue), with
//!   [`http_api`] converting API Gateway events.
//! - [`sqs_batch`]: SQS batches to the dispatcher/completer handlers, partial failures back.
//! - [`cron`]: the cron-tick function's scheduled event.
//! - [`notify`]: the notifier function's batches, forwarded to EventBridge.
pub mod backend;
pub mod config;
pub mod cron;
pub mod events;
pub mod http_api;
pub mod intake;
pub mod lambda;
pub mod notify;
pub mod payloads;
pub mod queue;
pub mod secrets;
pub mod sqs_batch;
pub mod store;
