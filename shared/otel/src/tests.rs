use super::*;
use braid_engine::model::StepKey;
use braid_engine::trace;
use chrono::{TimeZone, Utc};
use opentelemetry_sdk::trace::InMemorySpanExporter;

fn span(parent: bool, error: Option<&str>) -> Span {
    let run = "01RUN".into();
    Span {
        trace: trace::trace_id(&run),
        id: if parent {
            trace::attempt_span_id(&run, &StepKey::step("fetch"), 1)
        } else {
            trace::run_span_id(&run)
        },
        parent: parent.then(|| trace::run_span_id(&run)),
        name: "http fetch".into(),
        calls_out: parent,
        start: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
        end: Utc.timestamp_opt(1_800_000_002, 0).unwrap(),
        attributes: vec![
            ("braid.step", SpanValue::Text("fetch".into())),
            ("braid.attempt", SpanValue::Int(1)),
        ],
        error: error.map(str::to_string),
    }
}

#[tokio::test]
async fn a_flush_exports_the_spans_with_braids_ids_and_times() {
    let exporter = InMemorySpanExporter::default();
    let traces = OtelTraces::new(exporter.clone(), resource());
    traces.record(span(false, None));
    traces.record(span(true, Some("http.status: 503")));
    traces.flush().await;
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 2);
    let (root, attempt) = (&spans[0], &spans[1]);
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_eq!(attempt.parent_span_id, root.span_context.span_id());
    assert_eq!(
        attempt.span_context.trace_id(),
        root.span_context.trace_id()
    );
    assert_eq!(
        attempt.span_context.trace_id().to_string(),
        trace::hex(&trace::trace_id(&"01RUN".into()).0)
    );
    assert_eq!(attempt.span_kind, SpanKind::Client);
    assert_eq!(attempt.status, Status::error("http.status: 503"));
    assert_eq!(root.status, Status::Unset);
    assert_eq!(
        attempt.end_time.duration_since(attempt.start_time).unwrap(),
        Duration::from_secs(2)
    );
    assert!(
        attempt
            .attributes
            .contains(&KeyValue::new("braid.attempt", 1))
    );
    assert!(attempt.span_context.is_sampled());
}

#[tokio::test(start_paused = true)]
async fn spans_are_sent_a_second_after_the_first_without_a_flush() {
    let exporter = InMemorySpanExporter::default();
    let traces = OtelTraces::new(exporter.clone(), resource());
    traces.record(span(false, None));
    traces.record(span(true, None));
    tokio::task::yield_now().await;
    assert!(exporter.get_finished_spans().unwrap().is_empty());
    tokio::time::sleep(SEND_AFTER + Duration::from_millis(10)).await;
    assert_eq!(exporter.get_finished_spans().unwrap().len(), 2);
}

#[tokio::test]
async fn spans_beyond_the_buffer_are_dropped_not_kept() {
    let exporter = InMemorySpanExporter::default();
    let traces = OtelTraces::new(exporter.clone(), resource());
    for _ in 0..MAX_PENDING + 10 {
        traces.record(span(true, None));
    }
    traces.flush().await;
    assert_eq!(exporter.get_finished_spans().unwrap().len(), MAX_PENDING);
}

#[test]
fn the_service_is_braid_unless_the_environment_names_one() {
    let r = resource();
    let name = r.get(&opentelemetry::Key::new("service.name"));
    match std::env::var("OTEL_SERVICE_NAME") {
        Ok(n) => assert_eq!(name.unwrap().to_string(), n),
        Err(_) => assert_eq!(name.unwrap().to_string(), "braid"),
    }
}

/// An exporter whose collector never answers.
#[derive(Debug)]
struct Stuck;

impl SpanExporter for Stuck {
    async fn export(&self, _: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_flush_gives_up_on_a_collector_that_does_not_answer() {
    let traces = OtelTraces::new(Stuck, resource());
    traces.record(span(false, None));
    let started = tokio::time::Instant::now();
    traces.flush().await;
    assert_eq!(
        started.elapsed(),
        FLUSH_LIMIT,
        "the flush ends at its limit"
    );
    assert!(
        traces.inner.pending().is_empty(),
        "its spans are dropped, not kept"
    );
}
