//! Metrics in the Prometheus text format, kept in memory by the process that drives
//! runs (`braid dev` serves them at `GET /metrics`). The same series as the stack's
//! CloudWatch metrics, named as Prometheus names things: snake_case with the unit and
//! a `_total` suffix on counters.

use braid_ports::{MetricsSink, Observation};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the duration histograms' buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 900.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at or below each of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if v <= *le {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }
}

#[derive(Debug, Clone)]
enum Value {
    Counter(u64),
    Histogram(Box<Histogram>),
}

/// One series: its family, its labels as the exposition writes them
/// (`workflow="x",kind="http"`), and its value.
#[derive(Debug, Clone)]
struct Series {
    family: &'static str,
    labels: String,
    value: Value,
}

/// What each family means, for its `# HELP` line, and whether it is a histogram.
const FAMILIES: &[(&str, &str, bool)] = &[
    ("braid_runs_started_total", "Runs started.", false),
    (
        "braid_runs_finished_total",
        "Runs finished, by status.",
        false,
    ),
    (
        "braid_run_duration_seconds",
        "How long finished runs took.",
        true,
    ),
    (
        "braid_step_attempts_total",
        "Step attempts ended, by kind and outcome.",
        false,
    ),
    (
        "braid_step_attempt_duration_seconds",
        "How long step attempts took.",
        true,
    ),
    (
        "braid_step_retries_total",
        "Step attempts that failed and will be tried again.",
        false,
    ),
    (
        "braid_queue_lag_seconds",
        "How long after its step was due an attempt started.",
        true,
    ),
    (
        "braid_dead_letters_total",
        "Messages and notifications given up on, by queue.",
        false,
    ),
];

/// Observations counted in memory, rendered in the Prometheus text format.
#[derive(Debug, Default)]
pub struct PromMetrics {
    /// By family and labels, joined: one allocation finds a series.
    series: Mutex<HashMap<String, Series>>,
}

impl PromMetrics {
    /// The Prometheus text exposition (format 0.0.4) of every series seen.
    pub fn render(&self) -> String {
        let mut all: Vec<Series> = self
            .series
            .lock()
            .expect("metrics lock")
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut out = String::new();
        for (family, help, histogram) in FAMILIES {
            let kind = if *histogram { "histogram" } else { "counter" };
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} {kind}");
            for s in all.iter().filter(|s| s.family == *family) {
                let l = &s.labels;
                match &s.value {
                    Value::Counter(n) => {
                        let _ = writeln!(out, "{family}{{{l}}} {n}");
                    }
                    Value::Histogram(h) => {
                        for (i, le) in BUCKETS.iter().enumerate() {
                            let _ = writeln!(
                                out,
                                "{family}_bucket{{{l},le=\"{le}\"}} {}",
                                h.buckets[i]
                            );
                        }
                        let _ = writeln!(out, "{family}_bucket{{{l},le=\"+Inf\"}} {}", h.count);
                        let _ = writeln!(out, "{family}_sum{{{l}}} {}", h.sum);
                        let _ = writeln!(out, "{family}_count{{{l}}} {}", h.count);
                    }
                }
            }
        }
        out
    }

    /// Adds one to counter `family` of `labels`.
    fn count(&self, family: &'static str, labels: &[(&str, &str)]) {
        self.update(
            family,
            labels,
            |v| {
                if let Value::Counter(n) = v {
                    *n += 1
                }
            },
            || Value::Counter(1),
        );
    }

    /// Puts `secs` in histogram `family` of `labels`.
    fn time(&self, family: &'static str, labels: &[(&str, &str)], secs: f64) {
        self.update(
            family,
            labels,
            |v| {
                if let Value::Histogram(h) = v {
                    h.observe(secs)
                }
            },
            || {
                let mut h = Histogram::default();
                h.observe(secs);
                Value::Histogram(Box::new(h))
            },
        );
    }

    fn update(
        &self,
        family: &'static str,
        labels: &[(&str, &str)],
        change: impl FnOnce(&mut Value),
        first: impl FnOnce() -> Value,
    ) {
        let text = label_text(labels);
        let key = format!("{family}\0{text}");
        let mut map = self.series.lock().expect("metrics lock");
        match map.get_mut(&key) {
            Some(s) => change(&mut s.value),
            None => {
                let value = first();
                map.insert(
                    key,
                    Series {
                        family,
                        labels: text,
                        value,
                    },
                );
            }
        }
    }
}

impl MetricsSink for PromMetrics {
    fn exposition(&self) -> Option<String> {
        Some(self.render())
    }

    fn observe(&self, o: &Observation<'_>) {
        match *o {
            Observation::RunStarted { workflow } => {
                self.count("braid_runs_started_total", &[("workflow", workflow)])
            }
            Observation::RunFinished {
                workflow,
                status,
                took,
            } => {
                let labels = [("workflow", workflow), ("status", status)];
                self.count("braid_runs_finished_total", &labels);
                self.time("braid_run_duration_seconds", &labels, took.as_secs_f64());
            }
            Observation::AttemptEnded {
                workflow,
                kind,
                outcome,
                took,
            } => {
                let labels = [("workflow", workflow), ("kind", kind), ("outcome", outcome)];
                self.count("braid_step_attempts_total", &labels);
                self.time(
                    "braid_step_attempt_duration_seconds",
                    &labels[..2],
                    took.as_secs_f64(),
                );
            }
            Observation::Retried { workflow, kind } => self.count(
                "braid_step_retries_total",
                &[("workflow", workflow), ("kind", kind)],
            ),
            Observation::QueueLag {
                workflow,
                kind,
                lag,
            } => self.time(
                "braid_queue_lag_seconds",
                &[("workflow", workflow), ("kind", kind)],
                lag.as_secs_f64(),
            ),
            Observation::DeadLetter { queue } => {
                self.count("braid_dead_letters_total", &[("queue", queue)])
            }
        }
    }
}

/// `a="x",b="y"`, values escaped as the format says (backslash, quote, newline).
fn label_text(labels: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counters_and_histograms_render_with_escaped_labels() {
        let m = PromMetrics::default();
        m.observe(&Observation::RunStarted { workflow: "a\"b" });
        m.observe(&Observation::RunStarted { workflow: "a\"b" });
        m.observe(&Observation::QueueLag {
            workflow: "w",
            kind: "http",
            lag: Duration::from_millis(20),
        });
        let text = m.render();
        assert!(
            text.contains("braid_runs_started_total{workflow=\"a\\\"b\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "braid_queue_lag_seconds_bucket{workflow=\"w\",kind=\"http\",le=\"0.01\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "braid_queue_lag_seconds_bucket{workflow=\"w\",kind=\"http\",le=\"0.025\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("braid_queue_lag_seconds_count{workflow=\"w\",kind=\"http\"} 1\n"));
        assert!(
            text.contains("# TYPE braid_dead_letters_total counter\n"),
            "every family is described"
        );
    }
}
