//! Metrics: what the handlers observe as runs and attempts go (runs started and
//! finished, attempts by kind and outcome with their durations, retries, the wait
//! between a step being due and its attempt starting, messages given up on). An
//! adapter turns each [`Observation`] into its ecosystem's form: CloudWatch Embedded
//! Metric Format lines on AWS, Prometheus series in `braid dev` (`GET /metrics`).
//! Observing never fails and never waits: a metric is not worth a run's time.

use std::time::Duration;

/// One thing worth counting, with the labels it is counted by.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation<'a> {
    RunStarted {
        workflow: &'a str,
    },
    RunFinished {
        workflow: &'a str,
        /// `succeeded`, `failed`, `cancelled`, `timed_out`.
        status: &'a str,
        took: Duration,
    },
    /// An attempt of a step (or an iteration) ended.
    AttemptEnded {
        workflow: &'a str,
        /// The step's kind: `lambda`, `http`, `pass`, ...
        kind: &'a str,
        /// `succeeded`, `failed`, `skipped`, `stopped`, `expanded`.
        outcome: &'a str,
        took: Duration,
    },
    /// A step's attempt failed and it will be tried again.
    Retried {
        workflow: &'a str,
        kind: &'a str,
    },
    /// An attempt started this long after its step was due: time spent in queues and
    /// in backlogs.
    QueueLag {
        workflow: &'a str,
        kind: &'a str,
        lag: Duration,
    },
    /// A message or a notification given up on (a dead letter): `ready`, `result`,
    /// `notify`.
    DeadLetter {
        queue: &'a str,
    },
}

/// Where observations go.
pub trait MetricsSink: Send + Sync {
    fn observe(&self, o: &Observation<'_>);

    /// The text a scraper reads, for an adapter that keeps the series itself (the
    /// Prometheus exposition); none for one that sends them on.
    fn exposition(&self) -> Option<String> {
        None
    }
}

/// Observes nothing: for tests and tools that want no metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMetrics;

impl MetricsSink for NoMetrics {
    fn observe(&self, _: &Observation<'_>) {}
}
