//! End-to-end tests of the AWS backend against an AWS API emulator.
//!
//! # Layout
//! - [`template`]: reads `infra/template.yaml`, so the resources made here are the
//!   deployed stack's, not a copy that could drift.
//! - [`stack`]: makes those resources on the emulator and the handlers over them.
//! - [`driver`]: delivers SQS batches to the handlers the way a Lambda event source
//!   mapping does, and fires the cron tick.
//! - [`examples`]: the example workflows as fixtures, and what they need to run.
//! - [`requests`]: counts AWS requests by service and operation, and prices them.
//!
//! The emulator's endpoint comes from `AWS_ENDPOINT_URL` (`./scripts/test` starts
//! `moto_server`; LocalStack users export `AWS_ENDPOINT_URL=http://localhost:4566`).

pub mod driver;
pub mod examples;
pub mod requests;
pub mod stack;
pub mod template;
