//! The AWS backend: an adapter per port over the AWS SDK, and the entry points the five
//! Lambda functions hand their events to.
//!
//! # Layout
//! - [`config`]: the stack's resources, from the environment.
//! - [`queue`]: the work queue on SQS.
//! - [`payloads`]: the payload store on S3.
//! - [`events`]: lifecycle events onto the notifier's queue, and from there to EventBridge.
//! - [`lambda`]: `lambda` steps, invoked through the Lambda API.
pub mod config;
pub mod events;
pub mod lambda;
pub mod payloads;
pub mod queue;
