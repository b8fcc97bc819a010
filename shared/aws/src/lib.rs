//! The AWS backend: an adapter per port over the AWS SDK, and the ports of one stack
//! assembled from them.
//!
//! Each adapter sits behind a feature naming what it is for, so a Lambda function
//! links only the SDK clients it calls (the notifier: EventBridge alone; the step
//! dispatcher: DynamoDB, SQS, S3 and Lambda). The CLI and the tests take the defaults,
//! which are all of them.
//!
//! # Layout
//! Adapters, one per port:
//! - `store` (feature `stack`): the state store in one DynamoDB table.
//! - `queue` (feature `stack`): the work queue on SQS.
//! - `payloads` (feature `stack`): the payload store on S3.
//! - [`events`]: lifecycle events onto the notifier's queue (any [`braid_ports::WorkQueue`]).
//! - `event_bus` (feature `stack`): lifecycle events published on EventBridge, straight
//!   from the handlers when they call for no notification, else by the notifier.
//! - `lambda` (feature `lambda`): `lambda` steps, invoked through the Lambda API.
//! - `logs` (feature `logs`): what those steps' functions logged, from CloudWatch Logs.
//! - `secrets` (feature `secrets`): webhook secrets from Parameter Store or Secrets Manager.
//! - [`metrics`]: metrics as CloudWatch Embedded Metric Format lines.
//!
//! Assembly:
//! - [`config`]: the stack's resources, from the environment.
//! - [`sdk`]: the SDK configuration from the environment.
//! - `backend` (feature `stack`): the clients and the ports for one stack, built once
//!   per container.

pub mod config;
pub mod events;
pub mod metrics;
pub mod sdk;

#[cfg(feature = "stack")]
pub mod backend;
#[cfg(feature = "stack")]
pub mod event_bus;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "logs")]
pub mod logs;
#[cfg(feature = "stack")]
pub mod payloads;
#[cfg(feature = "stack")]
pub mod queue;
#[cfg(feature = "secrets")]
pub mod secrets;
#[cfg(feature = "stack")]
pub mod store;
