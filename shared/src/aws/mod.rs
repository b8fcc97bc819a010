//! The AWS backend: an adapter per port over the AWS SDK, and the entry points the five
//! Lambda functions hand their events to.
//!
//! # Layout
//! - [`config`]: the stack's resources, from the environment.
//! - [`store`]: the state store in one DynamoDB table.
//! - [`sqs_batch`]: SQS batches to the dispatcher/completer handlers, partial failures back.
//! - [`intake`]: the trigger-intake function's events (direct starts, HTTP API).
//! - [`http_api`]: API Gateway HTTP API events to and from the backend-neutral API.
//! - [`notify`]: the notifier function's batches, forwarded to EventBridge.
//! - [`cron`]: the cron-tick function's scheduled event.
pub mod config;
pub mod cron;
pub mod http_api;
pub mod intake;
pub mod notify;
pub mod sqs_batch;
pub mod store;
