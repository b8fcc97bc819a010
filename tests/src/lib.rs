//! End-to-end tests of the AWS backend against an AWS API emulator.
//!
//! The stack on the emulator and the driving of the functions' handlers are the
//! `braid-emulated` crate's (which `braid run --backend aws` uses too); this crate adds
//! what only tests need.
//!
//! # Layout
//! - [`stack`]: a stack per test under a fresh name, counting its requests.
//! - [`examples`]: the example workflows as fixtures, and what they need to run.
//! - [`requests`]: counts AWS requests by service and operation, and prices them.
//!
//! The emulator's endpoint comes from `AWS_ENDPOINT_URL` (`./scripts/test` starts
//! `moto_server`; LocalStack users export `AWS_ENDPOINT_URL=http://localhost:4566`).

pub mod examples;
pub mod requests;
pub mod stack;
