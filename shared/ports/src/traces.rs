//! Traces: a span for each run and each attempt, recorded once it has ended (its
//! start and end are recorded facts, so a span needs no state kept while it is open).
//! An adapter sends them on: OTLP when an endpoint is configured. Like metrics,
//! recording never fails and never holds up a run; [`TraceSink::flush`] sends what
//! is buffered before a process may be frozen or end.

use async_trait::async_trait;
use braid_engine::model::Timestamp;
use braid_engine::trace::{SpanId, TraceId};

/// A span that ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace: TraceId,
    pub id: SpanId,
    /// None for a run's root span.
    pub parent: Option<SpanId>,
    /// Low in cardinality, as OpenTelemetry asks: `run <workflow>`, `<kind> <step>`.
    pub name: String,
    /// A call out of Braid (an HTTP request, a Lambda invocation), or work inside it.
    pub calls_out: bool,
    pub start: Timestamp,
    pub end: Timestamp,
    pub attributes: Vec<(&'static str, SpanValue)>,
    /// The error it ended with, if it failed.
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SpanValue {
    Text(String),
    Int(i64),
}

/// Where ended spans go.
#[async_trait]
pub trait TraceSink: Send + Sync {
    fn record(&self, span: Span);

    /// Whether spans go anywhere: when not, none is built.
    fn enabled(&self) -> bool {
        true
    }

    /// Sends what is buffered: called at the end of each Lambda invocation (a frozen
    /// process sends nothing) and before a local process exits.
    async fn flush(&self) {}
}

/// Records nothing: where no trace exporter is configured.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTraces;

impl TraceSink for NoTraces {
    fn record(&self, _: Span) {}

    fn enabled(&self) -> bool {
        false
    }
}
