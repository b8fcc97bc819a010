//! What the handlers tell metrics and traces as runs and attempts go. Both are told
//! from records and events already decided, after the write that made them true: an
//! observation never changes a run, and one lost (a crash just after the write) costs
//! a point on a graph, not a step.

use super::Handlers;
use braid_engine::model::{
    ErrorInfo, EventKind, LifecycleEvent, RunRecord, StepRecord, StepStatus,
};
use braid_engine::trace;
use braid_lang::{Step, StepKind};
use braid_ports::{Observation, Span, SpanValue};

impl Handlers {
    /// Counts a run's start or end in the metrics and, at its end, records the run's
    /// root span, from its lifecycle event.
    pub(super) fn observe_run(&self, run: &RunRecord, e: &LifecycleEvent) {
        let o = match e.kind {
            EventKind::RunStarted => Observation::RunStarted {
                workflow: &run.workflow,
            },
            EventKind::RunFinished => {
                self.trace_run(run, e);
                Observation::RunFinished {
                    workflow: &run.workflow,
                    status: &e.status,
                    took: (e.at - run.created_at).to_std().unwrap_or_default(),
                }
            }
            _ => return,
        };
        self.ports.metrics.observe(&o);
    }

    fn trace_run(&self, run: &RunRecord, e: &LifecycleEvent) {
        if !self.ports.traces.enabled() {
            return;
        }
        let failed = e.status != "succeeded";
        self.ports.traces.record(Span {
            trace: trace::trace_of(run),
            id: trace::run_span_id(&run.id),
            parent: trace::run_span_parent(run),
            name: format!("run {}", run.workflow),
            calls_out: false,
            start: run.created_at,
            // Its recorded end, so that a `run.finished` told again (the tick
            // finishing a run's close) names the same span the same way.
            end: run.finished_at.unwrap_or(e.at).max(run.created_at),
            attributes: vec![
                ("braid.workflow", SpanValue::Text(run.workflow.to_string())),
                ("braid.run_id", SpanValue::Text(run.id.to_string())),
                ("braid.status", SpanValue::Text(e.status.clone())),
            ],
            error: failed.then(|| why(e.error.as_ref(), &e.status)),
        });
    }

    /// Records the span of the attempt that the write from `before` to `after` ended,
    /// if it ended one ([`trace::ended_attempt`]): each attempt's span is recorded by
    /// the one write that ended it.
    pub(super) fn trace_attempt(
        &self,
        run: &RunRecord,
        step: &Step,
        before: &StepRecord,
        after: &StepRecord,
    ) {
        if !self.ports.traces.enabled() {
            return;
        }
        let Some(ended) = trace::ended_attempt(before, after) else {
            return;
        };
        let kind = step.kind.name();
        let mut attributes = vec![
            ("braid.workflow", SpanValue::Text(run.workflow.to_string())),
            ("braid.run_id", SpanValue::Text(run.id.to_string())),
            ("braid.step", SpanValue::Text(after.key.to_string())),
            ("braid.step.kind", SpanValue::Text(kind.to_string())),
            ("braid.attempt", SpanValue::Int(i64::from(ended.attempt))),
            (
                "braid.status",
                SpanValue::Text(ended.status.as_str().into()),
            ),
        ];
        if let Some(err) = &ended.error {
            attributes.push(("error.type", SpanValue::Text(err.error.clone())));
        }
        let failed = !matches!(ended.status, StepStatus::Succeeded | StepStatus::Skipped);
        self.ports.traces.record(Span {
            trace: trace::trace_of(run),
            id: trace::attempt_span_id(&run.id, &after.key, ended.attempt),
            parent: Some(trace::run_span_id(&run.id)),
            name: format!("{kind} {}", after.key.step),
            calls_out: matches!(step.kind, StepKind::Lambda { .. } | StepKind::Http(_)),
            start: ended.started,
            end: ended.ended,
            attributes,
            error: failed.then(|| why(ended.error.as_ref(), ended.status.as_str())),
        });
    }
}

/// What a failed span says: its error, else the status it ended with.
fn why(error: Option<&ErrorInfo>, status: &str) -> String {
    match error {
        Some(e) => format!("{}: {}", e.error, e.message),
        None => status.to_string(),
    }
}
