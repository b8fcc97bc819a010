//! `braid bench --validation`: how the time `braid validate` takes grows with the
//! number of steps. Time per step that stays flat as workflows double is linear;
//! time per step that doubles with them is quadratic.
//!
//! Two generated shapes, each with dashed ids (looked up in every expression): a chain
//! whose steps read the step before and the first step (a reference far upstream),
//! and a fan-in of independent steps into one step that needs them all.

use super::super::Exit;
use std::fmt::Write;
use std::time::Instant;

/// A shape's name, and the workflow of it with a number of steps.
type Shape = (&'static str, fn(u32) -> String);

const SHAPES: [Shape; 2] = [("chain", chain_workflow), ("fan-in", fan_in_workflow)];

/// Each size is validated this many times and the fastest is kept: the others measure
/// the machine's other work too.
const TRIES: usize = 3;

fn chain_workflow(steps: u32) -> String {
    let mut y = String::from("name: bench-validate-chain\nsteps:\n  - id: step-0\n    pass: 0\n");
    for i in 1..steps {
        let _ = write!(
            y,
            "  - id: step-{i}\n    needs: [step-{}]\n    pass: {{ before: \"{{{{ steps['step-{}'].output }}}}\", first: \"{{{{ steps['step-0'].output }}}}\" }}\n",
            i - 1,
            i - 1
        );
    }
    y
}

fn fan_in_workflow(steps: u32) -> String {
    let mut y = String::from("name: bench-validate-fan-in\nsteps:\n");
    let parts = steps.saturating_sub(1);
    for i in 0..parts {
        let _ = write!(y, "  - id: part-{i}\n    pass: {i}\n");
    }
    let needs: Vec<String> = (0..parts).map(|i| format!("part-{i}")).collect();
    let _ = write!(
        y,
        "  - id: join\n    needs: [{}]\n    pass: \"{{{{ steps['part-0'].output }}}}\"\n",
        needs.join(", ")
    );
    y
}

/// The fastest of [`TRIES`] validations of `yaml`, in seconds.
fn time_validation(yaml: &str) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..TRIES {
        let started = Instant::now();
        braid_lang::parse("bench.yaml", yaml)?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(best)
}

pub fn run(sizes: &[u32]) -> anyhow::Result<Exit> {
    println!("braid validate, fastest of {TRIES}:");
    for (shape, workflow) in SHAPES {
        for &steps in sizes {
            let took = time_validation(&workflow(steps))?;
            println!(
                "{shape:>6} of {steps:>6} steps: {:>8.1} ms, {:>6.1} µs/step",
                took * 1e3,
                took * 1e6 / f64::from(steps.max(1))
            );
        }
    }
    Ok(Exit::Success)
}
