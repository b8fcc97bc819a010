//! Metrics as CloudWatch Embedded Metric Format: one JSON line on stdout per
//! observation, which the Lambda runtime sends to CloudWatch Logs and CloudWatch turns
//! into metrics (no API call, no extra latency). Names follow CloudWatch's habit:
//! PascalCase metrics and dimensions in the namespace the stack names.

use braid_ports::{MetricsSink, Observation};
use serde_json::{Map, Value, json};

/// The namespace when the environment names none.
pub const DEFAULT_NAMESPACE: &str = "Braid";

/// Writes EMF lines to stdout.
#[derive(Debug, Clone)]
pub struct EmfMetrics {
    namespace: String,
}

impl EmfMetrics {
    pub fn new(namespace: impl Into<String>) -> Self {
        EmfMetrics {
            namespace: namespace.into(),
        }
    }

    /// The namespace from `BRAID_METRICS_NAMESPACE` (the template sets
    /// `Braid/<stack>`), else [`DEFAULT_NAMESPACE`].
    pub fn from_env() -> Self {
        Self::new(
            std::env::var("BRAID_METRICS_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        )
    }
}

impl MetricsSink for EmfMetrics {
    fn observe(&self, o: &Observation<'_>) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        println!("{}", emf(&self.namespace, o, at));
    }
}

/// A dimension: its name and value.
type Dimension<'a> = (&'a str, &'a str);
/// A metric: its name, unit and value.
type Metric = (&'static str, &'static str, f64);

/// The EMF document telling `o`, at `at_ms` (epoch milliseconds). Each metric is
/// published by all its dimensions and, for the stack's alarms and dashboard, by a
/// roll-up across workflows (its last dimension alone).
pub fn emf(namespace: &str, o: &Observation<'_>, at_ms: i64) -> Value {
    let (dims, metrics): (Vec<Dimension>, Vec<Metric>) = match *o {
        Observation::RunStarted { workflow } => (
            vec![("Workflow", workflow)],
            vec![("RunsStarted", "Count", 1.0)],
        ),
        Observation::RunFinished {
            workflow,
            status,
            took,
        } => (
            vec![("Workflow", workflow), ("Status", status)],
            vec![
                ("RunsFinished", "Count", 1.0),
                ("RunDuration", "Seconds", took.as_secs_f64()),
            ],
        ),
        Observation::AttemptEnded {
            workflow,
            kind,
            outcome,
            took,
        } => (
            vec![("Workflow", workflow), ("Kind", kind), ("Outcome", outcome)],
            vec![
                ("StepAttempts", "Count", 1.0),
                ("StepDuration", "Milliseconds", took.as_secs_f64() * 1000.0),
            ],
        ),
        Observation::Retried { workflow, kind } => (
            vec![("Workflow", workflow), ("Kind", kind)],
            vec![("StepRetries", "Count", 1.0)],
        ),
        Observation::QueueLag {
            workflow,
            kind,
            lag,
        } => (
            vec![("Workflow", workflow), ("Kind", kind)],
            vec![("QueueLag", "Milliseconds", lag.as_secs_f64() * 1000.0)],
        ),
        Observation::DeadLetter { queue } => {
            (vec![("Queue", queue)], vec![("DeadLetters", "Count", 1.0)])
        }
    };
    let mut doc = Map::new();
    let names: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
    let mut sets = vec![names.clone()];
    if names.len() > 1 {
        sets.push(names[names.len() - 1..].to_vec());
    }
    let defs: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": sets, "Metrics": defs}],
        }),
    );
    for (k, v) in dims {
        doc.insert(k.into(), json!(v));
    }
    for (name, _, v) in metrics {
        doc.insert(name.into(), json!(v));
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What CloudWatch checks of an EMF document: a `_aws` root with a timestamp and
    /// directives; each directive's dimensions and metrics present at the root, the
    /// dimensions as strings and the metrics as numbers; at most 30 dimensions and 100
    /// metrics per directive; units from CloudWatch's list.
    fn assert_valid_emf(doc: &Value) {
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_i64(), "{doc}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert!(!directives.is_empty());
        for d in directives {
            assert!(d["Namespace"].as_str().is_some_and(|n| !n.is_empty()));
            for set in d["Dimensions"].as_array().unwrap() {
                let set = set.as_array().unwrap();
                assert!(set.len() <= 30);
                for k in set {
                    assert!(doc[k.as_str().unwrap()].is_string(), "dimension {k}: {doc}");
                }
            }
            let metrics = d["Metrics"].as_array().unwrap();
            assert!(!metrics.is_empty() && metrics.len() <= 100);
            for m in metrics {
                let name = m["Name"].as_str().unwrap();
                assert!(doc[name].is_number(), "metric {name}: {doc}");
                assert!(
                    ["Count", "Seconds", "Milliseconds"].contains(&m["Unit"].as_str().unwrap())
                );
            }
        }
    }

    #[test]
    fn every_observation_is_a_valid_emf_document() {
        let all = [
            Observation::RunStarted { workflow: "orders" },
            Observation::RunFinished {
                workflow: "orders",
                status: "failed",
                took: Duration::from_millis(1500),
            },
            Observation::AttemptEnded {
                workflow: "orders",
                kind: "http",
                outcome: "succeeded",
                took: Duration::from_millis(42),
            },
            Observation::Retried {
                workflow: "orders",
                kind: "lambda",
            },
            Observation::QueueLag {
                workflow: "orders",
                kind: "pass",
                lag: Duration::from_millis(7),
            },
            Observation::DeadLetter { queue: "ready" },
        ];
        for o in &all {
            let line = emf("Braid/prod", o, 1_765_000_000_000).to_string();
            assert!(!line.contains('\n'), "one line each");
            assert_valid_emf(&serde_json::from_str(&line).unwrap());
        }
        let doc = emf("Braid/prod", &all[1], 1);
        assert_eq!(doc["RunDuration"], 1.5);
        assert_eq!(doc["Status"], "failed");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Workflow", "Status"], ["Status"]])
        );
    }
}
