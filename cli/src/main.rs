//! `braid`, the command line (SPEC §3).
//!
//! This file only parses arguments and dispatches: each command lives in its own module
//! under [`cmd`] and returns the [`cmd::Exit`] status the shell sees.
//!
//! Locally (`run`, `dev`, and `runs`/`show` by default) state lives under `.braid/`. Against a
//! deployed stack (`deploy`, `start`, and `runs`/`show` with `--stack NAME` or the
//! per-resource flags) the CLI works on the stack's table, queues and bucket directly
//! through the AWS SDK with the caller's credentials, not through the HTTP API; that
//! part is the cargo feature `aws` (on by default), so a local-only binary builds with
//! `--no-default-features`. The same feature gives `braid run` and `braid dev`
//! `--backend aws`: the AWS adapters on an emulator, the functions' handlers driven in
//! this process (`braid-emulated`).
//!
//! # Layout
//! - this file: the arguments and the dispatch;
//! - `cmd/`: a module per command (`run`, `continue`, `validate`, `graph`, `schema`, `dev`,
//!   `deploy`, `workflows`, `backfill`, `runs`, `show`, `start`, `pause`, `bench`,
//!   `waits` for approve, reject and signal), with
//!   `target` (the local state or a stack), `local` (the embedded backend's options),
//!   `stack` (a deployed stack, feature `aws`), `backend` (`--backend`) and `emulated`
//!   (the AWS backend on an emulator, feature `aws`), `progress` and `report` (what is
//!   printed), `interrupt` (Ctrl-C and SIGTERM).
//!
//! Commands reach state through the handlers (`braid-handlers`) over a backend's
//! adapters (`braid-local`, `braid-aws`), never through a port directly.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Braid: a serverless workflow orchestrator for AWS.
#[derive(Debug, Parser)]
#[command(name = "braid", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check workflow files; print every problem with its line and column.
    Validate(cmd::validate::Args),
    /// Print a workflow's DAG as Mermaid or Graphviz DOT source.
    Graph(cmd::graph::Args),
    /// Print the JSON Schema of the workflow file.
    Schema(cmd::schema::Args),
    /// Run a workflow locally to the end and print the result.
    Run(cmd::run::Args),
    /// Drive an unfinished local run (left by Ctrl-C, a crash or a full disk) to its end.
    Continue(cmd::continue_run::Args),
    /// Serve the workflows of a folder locally like the deployed stack: the HTTP API and
    /// webhooks, schedules, and folders as S3 buckets; reload files as they change.
    Dev(cmd::dev::Args),
    /// Register workflow files (their triggers fire under `braid dev` or in the stack):
    /// in the local state, or in a deployed stack with --stack NAME.
    Deploy(cmd::deploy::Args),
    /// Take a registered workflow out of the registry: its triggers stop, runs going
    /// finish (locally or with --stack NAME).
    Undeploy(cmd::undeploy::Args),
    /// Pause a registered workflow's schedules (instants pass without a run).
    Pause(cmd::pause::Args),
    /// Resume a workflow's schedules from their next instant.
    Resume(cmd::pause::Args),
    /// Start a run of a registered workflow (locally or with --stack NAME); print its
    /// id, or with --wait its end.
    Start(cmd::start::Args),
    /// List runs, newest first: in the local state, or in a stack with --stack NAME.
    Runs(cmd::runs::Args),
    /// Show one run with its steps, outputs and errors (locally or with --stack NAME).
    Show(cmd::show::Args),
    /// Every attempt of a run's steps in time order (locally or with --stack NAME).
    Logs(cmd::logs::Args),
    /// Measure local throughput (steps/s) and peak memory, or with --validation the
    /// time validation takes per step.
    Bench(cmd::bench::Args),
    /// List registered workflows with their triggers (locally or with --stack NAME).
    Workflows(cmd::workflows::Args),
    /// Start the runs a schedule would have started from --from to --to.
    Backfill(cmd::backfill::Args),
    /// Cancel a run: nothing new starts, steps in flight finish (locally or with
    /// --stack NAME).
    Cancel(cmd::waits::CancelArgs),
    /// Retry a failed, cancelled or timed-out run in place: what succeeded keeps its
    /// output, the rest runs again (locally or with --stack NAME).
    Retry(cmd::retry::Args),
    /// Approve a waiting approval step (locally or with --stack NAME).
    Approve(cmd::waits::DecideArgs),
    /// Reject a waiting approval step: it fails, and so does the run.
    Reject(cmd::waits::DecideArgs),
    /// Send a signal to a run: the step waiting for it goes on with its data.
    Signal(cmd::waits::SignalArgs),
    /// Who deployed, started, cancelled, retried, approved or signalled what, and
    /// when, oldest first (locally or with --stack NAME).
    Audit(cmd::audit::Args),
}

fn main() -> ExitCode {
    // clap exits with 2 on usage errors, which is the contract's "bad usage" code.
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BRAID_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let outcome = match cli.command {
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Graph(args) => cmd::graph::run(&args),
        Command::Schema(args) => cmd::schema::run(&args),
        Command::Run(args) => cmd::run::run(&args),
        Command::Continue(args) => cmd::continue_run::run(&args),
        Command::Dev(args) => cmd::dev::run(&args),
        Command::Deploy(args) => cmd::deploy::run(&args),
        Command::Pause(args) => cmd::pause::run(&args, true),
        Command::Resume(args) => cmd::pause::run(&args, false),
        Command::Start(args) => cmd::start::run(&args),
        Command::Undeploy(args) => cmd::undeploy::run(&args),
        Command::Runs(args) => cmd::runs::run(&args),
        Command::Show(args) => cmd::show::run(&args),
        Command::Logs(args) => cmd::logs::run(&args),
        Command::Bench(args) => cmd::bench::run(&args),
        Command::Workflows(args) => cmd::workflows::run(&args),
        Command::Backfill(args) => cmd::backfill::run(&args),
        Command::Cancel(args) => cmd::waits::cancel(&args),
        Command::Retry(args) => cmd::retry::run(&args),
        Command::Approve(args) => cmd::waits::decide(&args, true),
        Command::Reject(args) => cmd::waits::decide(&args, false),
        Command::Signal(args) => cmd::waits::signal(&args),
        Command::Audit(args) => cmd::audit::run(&args),
    };
    match outcome {
        Ok(exit) => exit.into(),
        Err(e) => cmd::report(&e).into(),
    }
}
