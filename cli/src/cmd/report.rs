//! How runs are printed: the summary table and the JSON object of SPEC §3.

use braid_engine::model::{RunStatus, StepStatus};
use braid_handlers::RunView;
use std::fmt::Write;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn status_mark(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Succeeded => "✓",
        StepStatus::Failed => "✗",
        StepStatus::Skipped => "↷",
        StepStatus::Cancelled => "⊘",
        StepStatus::Running => "▶",
        StepStatus::Retrying => "↻",
        StepStatus::Waiting => "…",
        StepStatus::Pending | StepStatus::Ready => "·",
    }
}

/// The run as a table, with its output or error.
pub fn summary(v: &RunView) -> String {
    let mut out = String::new();
    let took = v
        .finished_at
        .map(|f| {
            format!(
                " in {:.1}s",
                (f - v.started_at).num_milliseconds() as f64 / 1000.0
            )
        })
        .unwrap_or_default();
    let _ = writeln!(out, "run {} ({}): {}{took}", v.run_id, v.workflow, v.status);
    if let Some(f) = &v.forked_from {
        let from = f
            .from
            .as_deref()
            .map(|s| format!(" from {s}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  forked{from} from run {} by {} at {}: {}",
            f.run,
            f.by,
            f.at.format("%Y-%m-%d %H:%M:%S UTC"),
            f.steps.join(", ")
        );
    }
    for r in &v.retries {
        let from = r
            .from
            .as_deref()
            .map(|f| format!(" from {f}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  retried{from} by {} at {} (was {}): {}",
            r.by,
            r.at.format("%Y-%m-%d %H:%M:%S UTC"),
            r.was,
            r.steps.join(", ")
        );
    }
    let width = v.steps.keys().map(String::len).max().unwrap_or(4).max(4);
    let _ = writeln!(
        out,
        "\n  {:<width$}  {:<10} {:>8} {:>6}  ERROR",
        "STEP", "STATUS", "ATTEMPTS", "ITEMS"
    );
    for (id, s) in &v.steps {
        let items = s.iterations.map(|n| n.to_string()).unwrap_or_default();
        let error = s
            .error
            .as_ref()
            .map(|e| format!("{}: {}", e.error, e.message))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {:<width$}  {:<10} {:>8} {:>6}  {}",
            status_mark(s.status),
            id,
            s.status.as_str(),
            s.attempts,
            items,
            error
        );
    }
    match v.status {
        RunStatus::Succeeded => {
            let pretty = serde_json::to_string_pretty(&v.output).unwrap_or_default();
            let _ = writeln!(out, "\noutput:\n{pretty}");
        }
        _ => {
            if let Some(e) = &v.error {
                let _ = writeln!(out, "\nerror: {}: {}", e.error, e.message);
            }
        }
    }
    out
}

/// The run as one JSON object.
pub fn json(v: &RunView) -> String {
    serde_json::to_string(v).expect("a run view is JSON")
}
