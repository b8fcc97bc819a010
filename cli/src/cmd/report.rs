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
        "\n  {:<width$}  {:<10} {:>8} {:>6}  {:<8} {:>7}  OUTPUT / ERROR",
        "STEP", "STATUS", "ATTEMPTS", "ITEMS", "STARTED", "TOOK"
    );
    for (id, s) in &v.steps {
        let items = s.iterations.map(|n| n.to_string()).unwrap_or_default();
        let started = s
            .started_at
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default();
        let took = s
            .started_at
            .zip(s.finished_at)
            .map(|(a, b)| seconds((b - a).num_milliseconds()))
            .unwrap_or_default();
        let said = match &s.error {
            Some(e) => format!("{}: {}", e.error, e.message),
            None if s.output.is_null() => String::new(),
            None => abbreviated(&s.output),
        };
        let _ = writeln!(
            out,
            "{} {:<width$}  {:<10} {:>8} {:>6}  {:<8} {:>7}  {}",
            status_mark(s.status),
            id,
            s.status.as_str(),
            s.attempts,
            items,
            started,
            took,
            said
        );
    }
    let earlier: Vec<String> = v
        .steps
        .iter()
        .flat_map(|(id, s)| {
            s.earlier.iter().filter_map(move |a| {
                let e = a.error.as_ref()?;
                Some(format!(
                    "  {id} attempt {}: {}: {}",
                    a.attempt, e.error, e.message
                ))
            })
        })
        .collect();
    if !earlier.is_empty() {
        let _ = writeln!(
            out,
            "\nearlier attempts (braid logs {} tells all):",
            v.run_id
        );
        for line in earlier {
            let _ = writeln!(out, "{line}");
        }
    }
    if !v.sla_missed.is_empty() {
        let _ = writeln!(out, "\nSLA missed:");
        for m in &v.sla_missed {
            let who = m
                .step
                .as_deref()
                .map_or("the run".to_string(), |s| format!("step {s}"));
            let _ = writeln!(
                out,
                "  {who}: not ended within {} (by {})",
                m.within,
                m.due.format("%Y-%m-%d %H:%M:%SZ")
            );
        }
    }
    if !v.notifications.is_empty() {
        let _ = writeln!(out, "\nnotifications:");
        for n in &v.notifications {
            let about = n
                .step
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let how = match (&n.error, n.sent) {
                (_, true) => format!(
                    "sent after {} tr{}",
                    n.tries,
                    if n.tries == 1 { "y" } else { "ies" }
                ),
                (Some(e), false) => format!("failed after {} tries: {e}", n.tries),
                (None, false) => "failed".to_string(),
            };
            let _ = writeln!(
                out,
                "  {} {}{about} to {}: {how}",
                n.at.format("%H:%M:%S"),
                n.on,
                n.target
            );
        }
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

/// Seconds, one decimal: `1.3s`.
fn seconds(ms: i64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// A value as compact JSON, cut to a table cell's width.
fn abbreviated(v: &serde_json::Value) -> String {
    const WIDTH: usize = 48;
    let text = v.to_string();
    match text.char_indices().nth(WIDTH) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The run as one JSON object.
pub fn json(v: &RunView) -> String {
    serde_json::to_string(v).expect("a run view is JSON")
}
