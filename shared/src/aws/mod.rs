//! The AWS backend: an adapter per port over the AWS SDK, and the entry points the five
//! Lambda functions hand their events to.
//!
//! # Layout
//! - [`config`]: the stack's resources, from the environment.
//! - [`store`]: the state store in one DynamoDB table.
pub mod config;
pub mod store;
