//! The glue between the Lambda runtime and the handlers: what each function is invoked
//! with, handed to its handler, and the answer Lambda expects back. A function's
//! `main.rs` builds its ports once (`braid_aws::backend`) and passes every event here.
//!
//! Kept apart from the adapters (`braid-aws`) so that the adapters know nothing of
//! Lambda's event shapes, and the functions' event parsing is tested without AWS.
//!
//! # Layout
//! - `intake` (feature `handlers`): the trigger-intake function's events (direct starts,
//!   the HTTP API and webhooks, S3 notifications, EventBridge events, a user's SQS
//!   queue), with `http_api` converting API Gateway events.
//! - `sqs_batch` (feature `handlers`): SQS batches to the dispatcher/completer handlers,
//!   partial failures back.
//! - `cron` (feature `handlers`): the cron-tick function's scheduled event.
//! - `notify` (feature `handlers`): the notifier function's batches, forwarded to an
//!   event sink, then the notifications they call for sent.

#[cfg(feature = "handlers")]
pub mod cron;
#[cfg(feature = "handlers")]
pub mod http_api;
#[cfg(feature = "handlers")]
pub mod intake;
#[cfg(feature = "handlers")]
pub mod notify;
#[cfg(feature = "handlers")]
pub mod sqs_batch;
