//! The simulation in every `cargo test`: a set of seeds, each a random workflow run
//! with and without faults, must keep every invariant (see the crate docs). The set
//! is `BRAID_SIM_SEEDS` seeds (default 10,000) from `BRAID_SIM_START` (default 0), so
//! CI can widen it or move it; a failure names each failing seed and the command that
//! replays it with its trace.

use braid_sim::{Options, replay_command, run_seed, run_seeds};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The largest workflow the CI seeds draw: sized so that 10,000 seeds take a couple
/// of minutes of a debug build on two cores.
const CI_MAX_STEPS: usize = 4;

#[test]
fn every_seed_keeps_every_invariant() {
    let start = env_or("BRAID_SIM_START", 0);
    let count = env_or("BRAID_SIM_SEEDS", 10_000);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = Options {
        max_steps: CI_MAX_STEPS,
        verbose: false,
    };
    let summary = run_seeds(start, count, threads, &opts, |_| {});
    assert_eq!(summary.seeds, count);
    let lines: Vec<String> = summary
        .failing
        .iter()
        .map(|r| {
            let v = &r.violations[0];
            format!(
                "seed {}: {} ({}): {}\n    {}",
                r.seed,
                v.class,
                v.within,
                v.detail,
                replay_command(r.seed, &opts)
            )
        })
        .collect();
    assert!(
        lines.is_empty(),
        "{} of {count} seeds from {start} broke an invariant:\n{}",
        lines.len(),
        lines.join("\n")
    );
}

#[test]
fn a_seed_replays_exactly() {
    let opts = Options {
        max_steps: 5,
        verbose: true,
    };
    for seed in [3, 16, 110, 4242] {
        let a = run_seed(seed, &opts);
        let b = run_seed(seed, &opts);
        assert!(!a.faulty_trace.is_empty(), "seed {seed} traced nothing");
        assert_eq!(
            a.reference_trace, b.reference_trace,
            "seed {seed}: reference trace"
        );
        assert_eq!(a.faulty_trace, b.faulty_trace, "seed {seed}: faulty trace");
        assert_eq!(a.violations, b.violations, "seed {seed}: violations");
    }
}
