//! `--backend`: which backend `braid run` and `braid dev` drive runs on.
//!
//! `embedded` (the default) is the local state in SQLite. `aws` is the AWS adapters on
//! an AWS API emulator at `AWS_ENDPOINT_URL` (LocalStack, moto), the five functions'
//! handlers driven in this process ([`super::emulated`]): what the deployed stack
//! does, seen on a laptop. It is part of the cargo feature `aws`; a binary built
//! without it says so instead.

use super::Exit;
use super::report::Format;
use braid_engine::model::Definition;
use serde_json::Value;
use std::path::PathBuf;

/// `--backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The embedded backend: SQLite state under `--state`.
    #[default]
    Embedded,
    /// The AWS adapters on the emulator at AWS_ENDPOINT_URL (LocalStack, moto).
    Aws,
}

/// What `braid run` hands the AWS backend: the checked file, its input, where its
/// `lambda` steps run.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub struct RunRequest {
    pub definition: Definition,
    pub step_order: Vec<String>,
    pub input: Value,
    pub idempotency_key: Option<String>,
    pub functions: Option<PathBuf>,
    pub output: Format,
}

/// `braid run FILE --backend aws`.
#[cfg(feature = "aws")]
pub fn run_on_aws(request: RunRequest) -> anyhow::Result<Exit> {
    super::emulated::run(request)
}

/// `braid run FILE --backend aws` in a binary built without the AWS SDK.
#[cfg(not(feature = "aws"))]
pub fn run_on_aws(_: RunRequest) -> anyhow::Result<Exit> {
    Err(not_built())
}

/// The error of a binary built without the cargo feature `aws`.
#[cfg(not(feature = "aws"))]
pub fn not_built() -> anyhow::Error {
    anyhow::anyhow!(
        "--backend aws is not available: this braid was built without AWS support \
         (cargo build -p braid-cli --no-default-features); build it with the default \
         features (cargo build -p braid-cli)"
    )
}
