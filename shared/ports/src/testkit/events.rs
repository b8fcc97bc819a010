//! Conformance checks for [`EventSink`] adapters.
//!
//! Each check takes the sink and `read`, which returns the events that arrived where the
//! sink delivers since the previous call — possibly none yet, as deliveries may lag (e.g.
//! receive from the queue an EventBridge rule targets, acking what it returns). Each
//! check expects a fresh sink and destination: nothing may arrive but what it publishes.
//! Event contents are compared whole, so the destination must keep the event's JSON.

use crate::EventSink;
use braid_engine::model::{ErrorInfo, EventKind, LifecycleEvent};
use chrono::{DateTime, Utc};
use std::future::Future;

/// Reads in a row that found nothing after which a wanted event counts as missing.
const EMPTY_READS: usize = 5;

/// Three events of the kinds the handlers publish, under one random run id.
fn lifecycle(run_id: &str) -> Vec<LifecycleEvent> {
    let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(1_793_000_000_000 + ms);
    let event = |kind: EventKind, status: &str, ms: i64| LifecycleEvent {
        kind,
        run_id: run_id.into(),
        workflow: "nightly-orders".into(),
        status: status.into(),
        step: None,
        error: None,
        trigger: None,
        detail: None,
        at: at(ms).unwrap_or_default(),
        notices: Vec::new(),
    };
    vec![
        LifecycleEvent {
            trigger: Some("webhook".into()),
            ..event(EventKind::RunStarted, "running", 0)
        },
        LifecycleEvent {
            step: Some("price[3]".into()),
            error: Some(ErrorInfo::new("Flaky", "déjà vu: \"try again\" ✓")),
            ..event(EventKind::StepFinished, "failed", 1_500)
        },
        LifecycleEvent {
            error: Some(ErrorInfo::new(
                "run.timed_out",
                "over the run's 1h deadline",
            )),
            ..event(EventKind::RunFinished, "timed_out", 3_600_123)
        },
    ]
}

fn run_id() -> String {
    format!("conformance-{:016x}", fastrand::u64(..))
}

/// Reads until `want` events came, or [`EMPTY_READS`] reads in a row found nothing.
async fn read_some<R, F>(read: &R, want: usize) -> Vec<LifecycleEvent>
where
    R: Fn() -> F,
    F: Future<Output = Vec<LifecycleEvent>>,
{
    let mut got = Vec::new();
    let mut empty = 0;
    while got.len() < want && empty < EMPTY_READS {
        let batch = read().await;
        empty = if batch.is_empty() { empty + 1 } else { 0 };
        got.extend(batch);
    }
    got
}

/// Asserts that `got` holds each of `sent` exactly once, in any order, and nothing else.
fn assert_arrived_once(sent: &[LifecycleEvent], got: &[LifecycleEvent]) {
    for event in sent {
        let n = got.iter().filter(|g| *g == event).count();
        assert_eq!(
            n, 1,
            "{} of run {} arrived {n} times; arrived: {got:#?}",
            event.kind, event.run_id
        );
    }
    let unexpected: Vec<_> = got.iter().filter(|g| !sent.contains(g)).collect();
    assert!(
        unexpected.is_empty(),
        "arrived but never published (or altered): {unexpected:#?}"
    );
}

/// Every published event arrives once with its content intact (step, error, time, text
/// outside ASCII). Publishing nothing is fine.
pub async fn every_event_arrives_once_with_its_content<S, R, F>(sink: &S, read: R)
where
    S: EventSink + ?Sized,
    R: Fn() -> F,
    F: Future<Output = Vec<LifecycleEvent>>,
{
    sink.publish(&[]).await.expect("publish nothing");
    let sent = lifecycle(&run_id());
    sink.publish(&sent).await.expect("publish");
    let got = read_some(&read, sent.len()).await;
    assert_arrived_once(&sent, &got);
    let late = read().await;
    assert!(late.is_empty(), "arrived again: {late:#?}");
}

/// 25 events published in one call (more than one batch for SQS and EventBridge) all
/// arrive, each once.
pub async fn batch_of_25_arrives_whole<S, R, F>(sink: &S, read: R)
where
    S: EventSink + ?Sized,
    R: Fn() -> F,
    F: Future<Output = Vec<LifecycleEvent>>,
{
    let sent: Vec<LifecycleEvent> = (0..9).flat_map(|_| lifecycle(&run_id())).take(25).collect();
    sink.publish(&sent).await.expect("publish 25");
    let got = read_some(&read, sent.len()).await;
    assert_arrived_once(&sent, &got);
}
