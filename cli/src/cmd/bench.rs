//! `braid bench`: local engine throughput with durable state, and peak memory.
//!
//! Three shapes: a `for_each` of N `pass` iterations over `range(N)`, the same over an
//! N-item input list (kept by reference: each iteration must read its item, not the
//! whole input), and a chain of M `pass` steps, each run to the end on a fresh
//! embedded backend in a temporary folder. With `--validation`, the time validation
//! takes per step instead ([`validation`]).

mod validation;

use super::Exit;
use super::local::tokio;
use braid_handlers::{StartRequest, definition};
use braid_local::backend::{self, LocalOptions};
use serde_json::Value;
use std::fmt::Write;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Items of the `for_each` shape.
    #[arg(long, default_value_t = 10_000)]
    pub items: u32,
    /// Steps of the chain shape.
    #[arg(long, default_value_t = 1_000)]
    pub chain: u32,
    /// Measure validation instead of runs: generated workflows of `--steps` steps.
    #[arg(long)]
    pub validation: bool,
    /// The numbers of steps of the workflows `--validation` validates.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2000,4000,8000,16000",
        requires = "validation"
    )]
    pub steps: Vec<u32>,
}

fn fan_out_workflow(items: u32) -> String {
    format!(
        "name: bench-fan-out\nsteps:\n  - id: fan\n    for_each: \"{{{{ range({items}) | list }}}}\"\n    pass: \"{{{{ item }}}}\"\n"
    )
}

fn input_fan_out_workflow() -> &'static str {
    "name: bench-input-fan-out\nparams:\n  list: { type: array, required: true }\nsteps:\n  - id: fan\n    for_each: \"{{ params.list }}\"\n    pass: \"{{ item }}\"\n"
}

/// The input of the input fan-out shape: `items` numbers.
fn input_list(items: u32) -> Value {
    serde_json::json!({ "list": (0..items).collect::<Vec<_>>() })
}

fn chain_workflow(steps: u32) -> String {
    let mut y = String::from("name: bench-chain\nsteps:\n  - id: s0\n    pass: 0\n");
    for i in 1..steps {
        let _ = write!(y, "  - id: s{i}\n    needs: [s{}]\n    pass: {i}\n", i - 1);
    }
    y
}

/// Runs `yaml` with `input` once on a fresh backend; returns seconds taken.
async fn time_run(yaml: &str, input: Value) -> anyhow::Result<f64> {
    let dir = tempfile_dir()?;
    let rt = backend::open(&LocalOptions::new(&dir))?;
    let (def, _) = definition("bench.yaml", yaml)?;
    let started_at = Instant::now();
    let started = rt
        .handlers()
        .start(StartRequest {
            definition: def,
            input,
            trigger: Value::Null,
            idempotency_key: None,
            queue: false,
        })
        .await?;
    let run = rt.run_to_end(&started.run.id).await?;
    let took = started_at.elapsed().as_secs_f64();
    anyhow::ensure!(
        run.status == braid_engine::model::RunStatus::Succeeded,
        "benchmark run ended {}",
        run.status
    );
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(took)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "braid-bench-{}-{}",
        std::process::id(),
        unique_suffix()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Peak resident memory of this process in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    if args.validation {
        return validation::run(&args.steps);
    }
    let rt = tokio()?;
    let fan = rt.block_on(time_run(&fan_out_workflow(args.items), Value::Null))?;
    println!(
        "for_each of {} pass steps: {:.2}s, {:.0} steps/s",
        args.items,
        fan,
        f64::from(args.items) / fan
    );
    let input = rt.block_on(time_run(input_fan_out_workflow(), input_list(args.items)))?;
    println!(
        "for_each over a {}-item input: {:.2}s, {:.0} steps/s",
        args.items,
        input,
        f64::from(args.items) / input
    );
    let chain = rt.block_on(time_run(&chain_workflow(args.chain), Value::Null))?;
    println!(
        "chain of {} pass steps:      {:.2}s, {:.0} steps/s",
        args.chain,
        chain,
        f64::from(args.chain) / chain
    );
    if let Some(mib) = peak_rss_mib() {
        println!("peak memory: {mib:.1} MiB");
    }
    Ok(Exit::Success)
}
