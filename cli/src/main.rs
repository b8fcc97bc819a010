//! `braid`, the command line (SPEC §3).
//!
//! This file only parses arguments and dispatches: each command lives in its own module
//! under [`cmd`] and returns the [`cmd::Exit`] status the shell sees.

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
    /// List the runs in the local state, newest first.
    Runs(cmd::runs::Args),
    /// Show one run with its steps, outputs and errors.
    Show(cmd::show::Args),
    /// Measure local throughput (steps/s) and peak memory.
    Bench(cmd::bench::Args),
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
        Command::Runs(args) => cmd::runs::run(&args),
        Command::Show(args) => cmd::show::run(&args),
        Command::Bench(args) => cmd::bench::run(&args),
    };
    match outcome {
        Ok(exit) => exit.into(),
        Err(e) => cmd::report(&e).into(),
    }
}
