//! `braid-sim`: runs seeds of the deterministic simulation and prints a summary; a
//! failing seed prints the command that replays it with its trace.

use braid_sim::{Options, SeedReport, replay_command, run_seeds};
use clap::Parser;
use std::collections::BTreeMap;
use std::time::Instant;

/// Deterministic simulation of Braid's handlers under faults.
#[derive(Parser, Debug)]
#[command(name = "braid-sim")]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Run this one seed only.
    #[arg(long)]
    seed: Option<u64>,
    /// The largest workflow drawn, in steps.
    #[arg(long, default_value_t = Options::default().max_steps)]
    max_steps: usize,
    /// Print the seed's workflow, faults and event traces.
    #[arg(long)]
    verbose: bool,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() {
    let args = Args::parse();
    let opts = Options {
        max_steps: args.max_steps,
        verbose: args.verbose,
    };
    let (start, count) = match args.seed {
        Some(s) => (s, 1),
        None => (args.start, args.seeds),
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let began = Instant::now();
    let summary = run_seeds(start, count, threads, &opts, |r| {
        if opts.verbose {
            print_verbose(r);
        }
        if args.seed.is_some() {
            println!(
                "seed {}: {} run(s), {} compared, {:.0}s of virtual time",
                r.seed,
                r.runs,
                r.compared,
                r.virtual_time.as_secs_f64()
            );
        }
        if let Some(v) = r.violations.first() {
            eprintln!(
                "seed {} violates {} ({}): {}\n  replay: {}",
                r.seed,
                v.class,
                v.within,
                v.detail,
                replay_command(r.seed, &opts)
            );
        }
    });
    let secs = began.elapsed().as_secs_f64();
    let mut classes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &summary.failing {
        for v in &r.violations {
            let e = classes
                .entry(format!("{} ({})", v.class, v.within))
                .or_insert((0, r.seed));
            e.0 += 1;
        }
    }
    println!(
        "{count} seed(s) from {start} in {secs:.1}s ({:.1} seeds/s): {} runs, {} compared with their fault-free run, {} task(s) stopped by a cancel, {} iteration(s) kept by a retry, {} SLA miss(es) noted, {} seed(s) failing",
        count as f64 / secs.max(1e-9),
        summary.runs,
        summary.compared,
        summary.stops,
        summary.kept,
        summary.sla_misses,
        summary.failing.len()
    );
    let slowest: Vec<String> = summary
        .slowest
        .iter()
        .map(|(seed, t)| format!("{seed} ({:.2}s)", t.as_secs_f64()))
        .collect();
    println!("  slowest seeds: {}", slowest.join(", "));
    for (class, (n, seed)) in &classes {
        println!(
            "  {class}: {n} time(s); first at seed {seed}: {}",
            replay_command(*seed, &opts)
        );
    }
    if !summary.failing.is_empty() {
        std::process::exit(1);
    }
}

fn print_verbose(r: &SeedReport) {
    println!("== seed {}\n{}", r.seed, r.setting);
    println!("== reference trace");
    for l in &r.reference_trace {
        println!("{l}");
    }
    println!("== faulty trace");
    for l in &r.faulty_trace {
        println!("{l}");
    }
    println!("== violations");
    for v in &r.violations {
        println!("{} ({}): {}", v.class, v.within, v.detail);
    }
}
