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
//! - [`start`]: an ad-hoc run of a workflow's text, as `braid run` starts one.
//!
//! The emulator's endpoint comes from `AWS_ENDPOINT_URL` (`./scripts/test` starts
//! `moto_server`; LocalStack users export `AWS_ENDPOINT_URL=http://localhost:4566`).

pub mod examples;
pub mod requests;
pub mod stack;

use braid_engine::model::RunId;
use braid_handlers::{Handlers, StartRequest, definition};
use serde_json::Value;

/// Starts an ad-hoc run of workflow text `source` (named `file`) with `input`.
pub async fn start(handlers: &Handlers, file: &str, source: &str, input: Value) -> RunId {
    let (def, _) = definition(file, source).expect("a valid workflow");
    handlers
        .start(StartRequest {
            definition: def,
            input,
            trigger: Value::Null,
            idempotency_key: None,
            queue: false,
        })
        .await
        .expect("the run starts")
        .run
        .id
}
