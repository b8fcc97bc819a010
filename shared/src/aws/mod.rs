//! The AWS backend: an adapter per port over the AWS SDK, and the entry points the five
//! Lambda functions hand their events to.
//!
//! # Layout
//! - [`config`]: the stack's resources, from the environment.
//! - [`sqs_batch`]: SQS batches to the dispatcher/completer handlers, partial failures back.
//! - [`intake`]: the trigger-intake function's events (direct starts, HTTP API).
//! - [`http_api`]: API Gateway HTTP API events to and from the backend-neutral API.
//! - [`notify`]: the notifier function's batches, forwarded to EventBridge.
pub mod config;
pub mod http_api;
pub mod intake;
pub mod notify;
pub mod sqs_batch;
