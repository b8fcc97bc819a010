//! The AWS backend on an AWS API emulator (LocalStack, `moto_server`), in one process:
//! the stack's resources made from the template the stack is deployed with, and the
//! five functions' handlers driven the way Lambda drives them on AWS.
//!
//! `braid run FILE --backend aws` and `braid dev --backend aws` run workflows this way,
//! and the end-to-end suite tests the AWS adapters with it. It exists for emulators
//! only: [`sdk::emulator_sdk`] refuses to build clients without `AWS_ENDPOINT_URL`, so
//! a stray credential can never make it create resources in a real account (a deployed
//! stack is operated through its own functions, `braid … --stack NAME`).
//!
//! # Layout
//! - [`template`]: `infra/template.yaml`, built in, as data: the resources made here are
//!   the deployed stack's, not a copy that could drift.
//! - [`stack`]: makes those resources on the emulator (or finds them, made by an
//!   earlier process) and builds the backend's ports over them.
//! - [`driver`]: delivers SQS batches to the handlers the way a Lambda event source
//!   mapping does, and fires the cron tick: a run to its end, or a long-lived loop.
//! - [`sdk`]: the SDK configuration for the emulator.
//!
//! It sits above both the adapters (`braid-aws`) and the Lambda glue (`braid-lambda`),
//! which know nothing of each other, and links no part of the embedded backend.

pub mod driver;
pub mod sdk;
pub mod stack;
pub mod template;

use braid_aws::backend::BackendError;
use braid_handlers::HandlerError;
use braid_ports::PortError;
use std::time::Duration;

/// Why the emulated stack could not be made or driven.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(
        "AWS_ENDPOINT_URL is not set: the AWS backend runs on an AWS API emulator only \
         (e.g. AWS_ENDPOINT_URL=http://localhost:4566 for LocalStack); a deployed stack \
         is operated with --stack NAME"
    )]
    NoEndpoint,
    /// An AWS request failed; `detail` is the SDK's error with its causes.
    #[error("cannot {action}: {detail}")]
    Aws { action: String, detail: String },
    #[error("the stack's template {0}")]
    Template(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Handler(#[from] HandlerError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("run {run} did not finish within {limit:?} (last seen {status})")]
    Unfinished {
        run: String,
        limit: Duration,
        status: String,
    },
}

impl EmulatorError {
    /// An AWS request's failure, with the SDK's whole error chain in the message (an
    /// SDK error's own `Display` is only "service error").
    pub(crate) fn aws<E>(action: impl Into<String>, e: &E) -> Self
    where
        E: std::error::Error,
    {
        EmulatorError::Aws {
            action: action.into(),
            detail: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
        }
    }
}

pub type EmulatorResult<T> = Result<T, EmulatorError>;
