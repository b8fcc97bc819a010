//! Whole runs through the handlers and the local runtime on the embedded backend, with
//! faults injected into the work queues: lost messages (a crash between a state write
//! and its send), duplicated messages, shuffled delivery, and restarts.

use braid_engine::model::{EventKind, LifecycleEvent, RunId, RunRecord, RunStatus, StepStatus};
use braid_handlers::Ports;
use braid_handlers::{RunView, StartRequest, definition};
use braid_local::backend::{LocalOptions, local_ports, local_runtime};
use braid_local::runtime::{LocalRuntime, RuntimeSettings};
use braid_ports::testkit::faults::FaultyQueue;
use braid_ports::{EventSink, PortResult, WorkQueue};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Options tuned for tests: the sweeper runs often and re-sends quickly.
fn options(dir: &Path) -> LocalOptions {
    let mut o = LocalOptions::new(dir);
    o.settings.stale_after = Duration::from_millis(150);
    o.runtime = RuntimeSettings {
        tick_every: Duration::from_millis(40),
        idle_poll: Duration::from_millis(5),
        ..RuntimeSettings::default()
    };
    o
}

/// Keeps every lifecycle event published.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<LifecycleEvent>>);

#[async_trait::async_trait]
impl EventSink for Recorder {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

/// Runs `yaml` to the end with the queues wrapped by `wrap`; returns the run view after
/// checking what must hold whatever the delivery: no step started before its needs
/// were final, no step (nor failed iteration) recorded final twice, the run finished once.
async fn run_with(dir: &Path, yaml: &str, input: Value, wrap: impl FnOnce(&mut Ports)) -> RunView {
    let mut opts = options(dir);
    // Every step's end published, to see each recorded once.
    opts.settings.step_events = braid_handlers::StepEvents::All;
    let mut ports = local_ports(&opts).unwrap();
    let recorder = Arc::new(Recorder::default());
    ports.events = recorder.clone();
    wrap(&mut ports);
    let rt = local_runtime(ports, &opts);
    let started = start(&rt, yaml, input).await;
    let run = tokio::time::timeout(Duration::from_secs(30), rt.run_to_end(&started.run.id))
        .await
        .expect("the run finishes")
        .unwrap();
    let records = rt
        .handlers()
        .ports()
        .store
        .list_steps(&run.id)
        .await
        .unwrap();
    let def_wf = braid_lang::parse("wf.yaml", yaml).unwrap();
    for rec in records.iter().filter(|r| r.key.index.is_none()) {
        let Some(started) = rec.started_at else {
            continue;
        };
        for need in &def_wf.step(&rec.key.step).unwrap().needs {
            let dep = records
                .iter()
                .find(|r| r.key.index.is_none() && r.key.step == *need)
                .unwrap();
            let finished = dep.finished_at.expect("a need of a started step is final");
            assert!(
                finished <= started,
                "{} started before its need {need} was final",
                rec.key
            );
        }
    }
    let mut finished = std::collections::HashSet::new();
    for e in recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventKind::StepFinished)
    {
        assert!(
            finished.insert(e.step.clone()),
            "step {:?} recorded final twice",
            e.step
        );
    }
    for rec in records
        .iter()
        .filter(|r| r.key.index.is_none() && r.status.is_final())
    {
        assert!(
            finished.contains(&Some(rec.key.to_string())),
            "step {} ended without its event",
            rec.key
        );
    }
    let run_ends = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventKind::RunFinished)
        .count();
    assert_eq!(run_ends, 1, "the run finishes exactly once");
    rt.handlers().run_view(&run.id).await.unwrap()
}

/// Starts `yaml` on `rt`.
async fn start(rt: &LocalRuntime, yaml: &str, input: Value) -> braid_handlers::Started {
    let (def, _) = definition("wf.yaml", yaml).unwrap();
    rt.handlers()
        .start(StartRequest {
            definition: def,
            input,
            trigger: Value::Null,
            idempotency_key: None,
            queue: false,
        })
        .await
        .unwrap()
}

async fn run_plain(yaml: &str, input: Value) -> RunView {
    let dir = tempfile::tempdir().unwrap();
    run_with(dir.path(), yaml, input, |_| {}).await
}

/// The parts of a view that must not depend on delivery: statuses, attempts, outputs.
fn outcome(v: &RunView) -> Value {
    let steps: serde_json::Map<String, Value> = v
        .steps
        .iter()
        .map(|(k, s)| (k.clone(), json!([s.status, s.attempts, s.output, s.error])))
        .collect();
    json!({"status": v.status, "output": v.output, "steps": steps})
}

const SHAPES: &str = r#"
name: shapes
params:
  items: { type: array, default: [1, 2, 3, 4, 5] }
steps:
  - id: start
    pass: { items: "{{ params.items }}" }
  - id: fan
    needs: [start]
    for_each: "{{ steps.start.output.items }}"
    max_parallel: 2
    pass: "{{ item * 10 + index }}"
  - id: big
    needs: [start]
    when: "{{ steps.start.output.items | length > 3 }}"
    pass: "big"
  - id: small
    needs: [start]
    when: "{{ steps.start.output.items | length <= 3 }}"
    pass: "small"
  - id: tolerated
    needs: [start]
    continue_on_failure: true
    fail: { error: expected, message: "this one may fail" }
  - id: pause
    needs: [start]
    wait: 30ms
  - id: join
    needs: [fan, big, small, tolerated, pause]
    pass:
      total: "{{ steps.fan.output | sum }}"
      branch: "{{ steps.big.status }}/{{ steps.small.status }}"
"#;

#[tokio::test]
async fn fan_out_when_branches_and_tolerated_failures_rejoin() {
    let v = run_plain(SHAPES, json!({})).await;
    assert_eq!(v.status, RunStatus::Succeeded, "{v:?}");
    assert_eq!(v.steps["fan"].output, json!([10, 21, 32, 43, 54]));
    assert_eq!(v.steps["fan"].iterations, Some(5));
    assert_eq!(v.steps["big"].status, StepStatus::Succeeded);
    assert_eq!(v.steps["small"].status, StepStatus::Skipped);
    assert_eq!(v.steps["tolerated"].status, StepStatus::Failed);
    assert_eq!(
        v.steps["join"].output,
        json!({"total": 160, "branch": "succeeded/skipped"})
    );
    assert_eq!(
        v.output,
        json!({"join": {"total": 160, "branch": "succeeded/skipped"}})
    );
}

#[tokio::test]
async fn every_message_delivered_twice_changes_nothing() {
    let baseline = run_plain(SHAPES, json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let twice = run_with(dir.path(), SHAPES, json!({}), |p| {
        p.ready = Arc::new(FaultyQueue::duplicating(p.ready.clone()));
        p.results = Arc::new(FaultyQueue::duplicating(p.results.clone()));
    })
    .await;
    assert_eq!(outcome(&twice), outcome(&baseline));
}

/// How many messages a fault-free run of `yaml` sends on each queue.
async fn count_sends(yaml: &str) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let counters: Arc<std::sync::Mutex<Vec<Arc<FaultyQueue>>>> = Arc::default();
    let c = counters.clone();
    run_with(dir.path(), yaml, json!({}), move |p| {
        let ready = Arc::new(FaultyQueue::losing(p.ready.clone(), |_, _| false));
        let results = Arc::new(FaultyQueue::losing(p.results.clone(), |_, _| false));
        c.lock().unwrap().extend([ready.clone(), results.clone()]);
        p.ready = ready;
        p.results = results;
    })
    .await;
    let c = counters.lock().unwrap();
    (c[0].sent(), c[1].sent())
}

#[tokio::test]
async fn a_lost_message_at_any_point_is_repaired_by_the_sweeper() {
    let baseline = run_plain(SHAPES, json!({})).await;
    let (ready_sends, result_sends) = count_sends(SHAPES).await;
    // Outcomes are recorded where they happen (a task's by its dispatcher, a wait's
    // by its wake-up): no result message is sent.
    assert!(
        ready_sends > 5 && result_sends == 0,
        "{ready_sends} {result_sends}"
    );
    for (queue, n) in (0..ready_sends)
        .map(|n| ("ready", n))
        .chain((0..result_sends).map(|n| ("results", n)))
    {
        let dir = tempfile::tempdir().unwrap();
        let lossy = |q: Arc<dyn WorkQueue>| -> Arc<dyn WorkQueue> {
            Arc::new(FaultyQueue::losing(q, move |i, _| i == n))
        };
        let v = run_with(dir.path(), SHAPES, json!({}), |p| {
            if queue == "ready" {
                p.ready = lossy(p.ready.clone());
            } else {
                p.results = lossy(p.results.clone());
            }
        })
        .await;
        assert_eq!(
            outcome(&v),
            outcome(&baseline),
            "losing {queue} message #{n}"
        );
    }
}

#[tokio::test]
async fn a_runtime_killed_mid_run_is_finished_after_restart() {
    let baseline = run_plain(SHAPES, json!({})).await;
    for kill_after_ms in [0u64, 2, 5, 10, 20] {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let rt = local_runtime(local_ports(&opts).unwrap(), &opts);
        let started = start(&rt, SHAPES, json!({})).await;
        // Kill: drop the runtime future wherever it is.
        let _ = tokio::time::timeout(
            Duration::from_millis(kill_after_ms),
            rt.run_to_end(&started.run.id),
        )
        .await;
        drop(rt);
        let rt = local_runtime(local_ports(&opts).unwrap(), &opts);
        let run = tokio::time::timeout(Duration::from_secs(30), rt.run_to_end(&started.run.id))
            .await
            .expect("the restarted runtime finishes the run")
            .unwrap();
        let v = rt.handlers().run_view(&run.id).await.unwrap();
        assert_eq!(
            outcome(&v),
            outcome(&baseline),
            "killed after {kill_after_ms} ms"
        );
    }
}

#[tokio::test]
async fn fail_fast_records_steps_in_flight_and_cancels_the_rest() {
    let yaml = r#"
name: failfast
steps:
  - id: a
    pass: 1
  - id: slow
    needs: [a]
    wait: 300ms
  - id: boom
    needs: [a]
    fail: { error: broken, message: "it broke" }
  - id: after-slow
    needs: [slow]
    pass: 2
  - id: after-boom
    needs: [boom]
    pass: 3
"#;
    let v = run_plain(yaml, json!({})).await;
    assert_eq!(v.status, RunStatus::Failed);
    assert_eq!(v.steps["boom"].status, StepStatus::Failed);
    assert_eq!(
        v.steps["slow"].status,
        StepStatus::Cancelled,
        "a parked wait holds no compute and is cancelled"
    );
    assert_eq!(v.steps["after-slow"].status, StepStatus::Cancelled);
    assert_eq!(v.steps["after-boom"].status, StepStatus::Cancelled);
    let err = v.error.expect("a failed run says why");
    assert_eq!(err.error, "broken");
    assert!(
        err.message.contains("step `boom` failed: it broke"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_failing_iteration_fails_its_for_each_step_and_the_run() {
    let yaml = r#"
name: fanfail
steps:
  - id: fan
    for_each: "{{ [1, 2, 0, 4] }}"
    max_parallel: 1
    pass: "{{ 10 // item }}"
"#;
    let v = run_plain(yaml, json!({})).await;
    assert_eq!(v.status, RunStatus::Failed);
    assert_eq!(v.steps["fan"].status, StepStatus::Failed);
    let err = v.steps["fan"].error.clone().unwrap();
    assert!(err.message.contains("iteration 2"), "{}", err.message);
}

#[tokio::test]
async fn a_large_payload_passes_through_three_steps_intact() {
    let yaml = r#"
name: big
params:
  blob: { type: string, required: true }
steps:
  - id: one
    pass: { data: "{{ params.blob }}" }
  - id: two
    needs: [one]
    pass: "{{ steps.one.output }}"
  - id: three
    needs: [two]
    pass: { data: "{{ steps.two.output.data }}", size: "{{ steps.two.output.data | length }}" }
"#;
    let blob: String = (0..10 * 1024 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let v = run_with(dir.path(), yaml, json!({ "blob": blob }), |_| {}).await;
    assert_eq!(v.status, RunStatus::Succeeded);
    assert_eq!(v.steps["three"].output["size"], json!(blob.len()));
    assert!(
        v.steps["three"].output["data"].as_str() == Some(blob.as_str()),
        "the payload arrives intact"
    );
    let stored = std::fs::read_dir(dir.path().join("payloads"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        stored > 0,
        "large values are offloaded to the payload folder"
    );
}

/// A random DAG: each step needs some earlier steps; some fail, some are tolerated,
/// some are skipped. Also says whether any step fails the run.
fn random_workflow(shape: &[(Vec<bool>, u8)]) -> (String, bool) {
    let mut fatal = false;
    let mut y = String::from("name: random\nsteps:\n");
    for (i, (needs, kind)) in shape.iter().enumerate() {
        y.push_str(&format!("  - id: s{i}\n"));
        let deps: Vec<String> = needs
            .iter()
            .enumerate()
            .filter(|(j, n)| **n && *j < i)
            .map(|(j, _)| format!("s{j}"))
            .collect();
        if !deps.is_empty() {
            y.push_str(&format!("    needs: [{}]\n", deps.join(", ")));
        }
        match kind % 6 {
            0 => y.push_str("    fail: { error: e, message: m }\n    continue_on_failure: true\n"),
            1 => y.push_str("    when: \"{{ false }}\"\n    pass: skipped\n"),
            2 => y.push_str("    for_each: \"{{ [1, 2, 3] }}\"\n    pass: \"{{ item }}\"\n"),
            3 if i > 2 => {
                fatal = true;
                y.push_str("    fail: { error: e, message: m }\n");
            }
            _ => y.push_str(&format!("    pass: {{ n: {i} }}\n")),
        }
    }
    (y, fatal)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn outcomes_do_not_depend_on_delivery_order_duplicates_or_losses(
        shape in prop::collection::vec((prop::collection::vec(any::<bool>(), 8), any::<u8>()), 2..8),
        lose in 0usize..40,
    ) {
        let (yaml, fatal) = random_workflow(&shape);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let baseline = run_plain(&yaml, json!({})).await;
            prop_assert!(baseline.status.is_final());
            for s in baseline.steps.values() {
                prop_assert!(s.status.is_final(), "every step ends final: {:?}", baseline);
            }
            let dir = tempfile::tempdir().unwrap();
            let chaotic = run_with(dir.path(), &yaml, json!({}), |p| {
                let shuffled: Arc<dyn WorkQueue> = Arc::new(FaultyQueue::reordering(p.ready.clone(), Duration::from_millis(20)));
                let doubled: Arc<dyn WorkQueue> = Arc::new(FaultyQueue::duplicating(shuffled));
                p.ready = Arc::new(FaultyQueue::losing(doubled, move |i, _| i == lose));
                p.results = Arc::new(FaultyQueue::reordering(p.results.clone(), Duration::from_millis(20)));
            }).await;
            if fatal {
                // Fail fast: which steps were in flight when the first failure landed
                // depends on timing, so only the run's end and the outputs of the steps
                // that did succeed must agree.
                prop_assert_eq!(chaotic.status, baseline.status);
                for (id, s) in &chaotic.steps {
                    prop_assert!(s.status.is_final(), "{} ends final", id);
                    if s.status == StepStatus::Succeeded && baseline.steps[id].status == StepStatus::Succeeded {
                        prop_assert_eq!(&s.output, &baseline.steps[id].output);
                    }
                }
            } else {
                prop_assert_eq!(outcome(&chaotic), outcome(&baseline), "{}", yaml);
            }
            Ok(())
        })?;
    }
}

/// Publishing a failure's event is slow, so a sibling's success lands in between.
struct SlowFailures;

#[async_trait::async_trait]
impl EventSink for SlowFailures {
    async fn publish(&self, events: &[LifecycleEvent]) -> PortResult<()> {
        if events.iter().any(|e| e.status == "failed") {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_failure_racing_the_last_success_still_fails_the_run() {
    let yaml = r#"
name: race
steps:
  - id: a
    fail: { error: broken, message: "no" }
  - id: b
    pass: 1
"#;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let mut ports = local_ports(&opts).unwrap();
    ports.events = Arc::new(SlowFailures);
    let rt = local_runtime(ports, &opts);
    let started = start(&rt, yaml, json!({})).await;
    let run = tokio::time::timeout(Duration::from_secs(30), rt.run_to_end(&started.run.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.unwrap().error, "broken");
}

/// Requests a test server is answering now, and the most it answered at once.
#[derive(Default)]
struct InFlight {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

/// Answers every HTTP request with 200 after `delay`, counting the requests in flight.
async fn slow_server(delay: Duration) -> (String, Arc<InFlight>) {
    server_answering(delay, "200 OK").await
}

/// A server answering every request with `status` after `delay`.
async fn server_answering(delay: Duration, status: &'static str) -> (String, Arc<InFlight>) {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let in_flight = Arc::new(InFlight::default());
    let counts = in_flight.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let now = counts.now.fetch_add(1, SeqCst) + 1;
                counts.most.fetch_max(now, SeqCst);
                tokio::time::sleep(delay).await;
                counts.now.fetch_sub(1, SeqCst);
                let body = "{\"ok\":true}";
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), in_flight)
}

#[tokio::test]
async fn a_fan_out_never_runs_more_iterations_at_once_than_its_max_parallel() {
    let (slow, in_flight) = slow_server(Duration::from_millis(100)).await;
    let yaml = format!(
        r#"
name: lanes
steps:
  - id: fan
    for_each: "{{{{ range(8) | list }}}}"
    max_parallel: 3
    http: {{ url: "{slow}?i={{{{ item }}}}" }}
"#
    );
    let v = run_plain(&yaml, json!({})).await;
    assert_eq!(v.status, RunStatus::Succeeded, "{:?}", v.error);
    assert_eq!(v.steps["fan"].iterations, Some(8));
    let outputs = v.steps["fan"].output.as_array().map(Vec::len);
    assert_eq!(outputs, Some(8));
    let most = in_flight.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} iterations ran at once");
}

#[tokio::test]
async fn a_chain_runs_on_in_one_delivery_without_a_message_per_step() {
    let chain = "name: chain\nsteps:\n  - id: a\n    pass: 1\n  - id: b\n    needs: [a]\n    pass: 2\n  - id: c\n    needs: [b]\n    pass: 3\n  - id: d\n    needs: [c]\n    pass: 4\n";
    let (ready, _) = count_sends(chain).await;
    assert_eq!(ready, 1, "only the root's message is sent");
}

/// The handlers' default (what the stack's functions use); the local runtime
/// publishes every step's end.
#[tokio::test]
async fn by_default_only_failed_steps_publish_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.settings.step_events = braid_handlers::StepEvents::default();
    let mut ports = local_ports(&opts).unwrap();
    let recorder = Arc::new(Recorder::default());
    ports.events = recorder.clone();
    let rt = local_runtime(ports, &opts);
    let yaml = "name: events\nsteps:\n  - id: ok\n    pass: 1\n  - id: bad\n    fail: { error: e, message: m }\n    continue_on_failure: true\n";
    let started = start(&rt, yaml, json!({})).await;
    rt.run_to_end(&started.run.id).await.unwrap();
    let kinds: Vec<(EventKind, Option<String>)> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.kind, e.step.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::RunStarted, None),
            (EventKind::StepFinished, Some("bad".to_string())),
            (EventKind::RunFinished, None),
        ]
    );
}

/// A fan-out of four HTTP calls, `max_parallel` at a time: the first to `failing` (a
/// call that fails for good), the others to `slow`.
fn failing_fan_out(failing: &str, slow: &str, max_parallel: u32) -> String {
    format!(
        r#"
name: fan-fail-fast
params:
  urls: {{ type: array, default: ["{failing}", "{slow}", "{slow}", "{slow}"] }}
steps:
  - id: fan
    for_each: "{{{{ params.urls }}}}"
    max_parallel: {max_parallel}
    http: {{ url: "{{{{ item }}}}" }}
"#
    )
}

/// A URL whose call fails at once: nothing listens there.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test]
async fn a_failing_iteration_lets_iterations_in_flight_finish_before_the_run_fails() {
    let (slow, _) = slow_server(Duration::from_millis(400)).await;
    let (failing, _) = server_answering(Duration::from_millis(100), "400 Bad Request").await;
    // Item 0 fails for good after 100 ms, while items 1 and 2 (400 ms) are in flight;
    // item 3 never starts.
    let yaml = failing_fan_out(&failing, &slow, 3);
    let v = run_plain(&yaml, json!({})).await;
    assert_eq!(v.status, RunStatus::Failed);
    assert_eq!(v.steps["fan"].status, StepStatus::Failed);
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let rt = local_runtime(local_ports(&opts).unwrap(), &opts);
    let started = start(&rt, &yaml, json!({})).await;
    let run = rt.run_to_end(&started.run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let its = rt
        .handlers()
        .ports()
        .store
        .list_iterations(&run.id, &"fan".into())
        .await
        .unwrap();
    let statuses: Vec<StepStatus> = its.iter().map(|i| i.status).collect();
    assert_eq!(statuses[0], StepStatus::Failed);
    assert_eq!(
        &statuses[1..3],
        &[StepStatus::Succeeded, StepStatus::Succeeded],
        "in flight: finished and recorded"
    );
    assert_ne!(statuses[3], StepStatus::Running, "nothing new started");
    for it in &its[1..3] {
        assert!(
            it.finished_at.unwrap() <= run.finished_at.unwrap(),
            "the run ends after its iterations"
        );
    }
}

#[tokio::test]
async fn a_late_lease_expiry_does_not_touch_a_parked_wait() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let rt = local_runtime(local_ports(&opts).unwrap(), &opts);
    let started = start(
        &rt,
        "name: nap\nsteps:\n  - id: nap\n    wait: 1h\n",
        json!({}),
    )
    .await;
    let run_id = started.run.id.clone();
    // Let the runtime park the step, then stop it.
    let _ = tokio::time::timeout(Duration::from_millis(300), rt.run_to_end(&run_id)).await;
    let key = braid_engine::model::StepKey::step("nap");
    let parked = rt
        .handlers()
        .ports()
        .store
        .get_step(&run_id, &key)
        .await
        .unwrap();
    assert_eq!(parked.status, StepStatus::Waiting);
    rt.handlers()
        .complete(&braid_engine::model::ResultMsg {
            run_id: run_id.clone(),
            key: key.clone(),
            attempt: parked.attempt,
            outcome: braid_engine::model::Outcome::Failed {
                error: braid_engine::model::ErrorInfo::new("timeout", "lease expired"),
                retryable: true,
            },
            by: None,
        })
        .await
        .unwrap();
    let after = rt
        .handlers()
        .ports()
        .store
        .get_step(&run_id, &key)
        .await
        .unwrap();
    assert_eq!(after, parked, "the parked wait is unchanged");
}

#[tokio::test]
async fn a_message_that_can_never_be_handled_fails_its_run_with_the_reason() {
    use braid_engine::model::{Definition, DispatchMsg, RunRecord, StepKey, StepRecord};
    use braid_ports::Outgoing;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let rt = local_runtime(local_ports(&opts).unwrap(), &opts);
    let ports = &rt.handlers().ports();
    // A run whose stored definition no longer parses: its messages can never succeed.
    let def = Definition {
        workflow: "broken".into(),
        version: "v0".into(),
        file: "broken.yaml".into(),
        source: "name: broken\nsteps: 7\n".into(),
    };
    ports.store.put_definition(&def).await.unwrap();
    let run = RunRecord {
        id: "r-poison".into(),
        workflow: "broken".into(),
        version: "v0".into(),
        status: RunStatus::Running,
        params: json!({}),
        trigger: Value::Null,
        params_ref: None,
        trigger_ref: None,
        created_at: chrono::Utc::now(),
        finished_at: None,
        deadline: None,
        failing: false,
        output: None,
        error: None,
        idempotency_key: None,
        limit: None,
        slot: false,
        closing: false,
        parent: None,
        cancel: None,
        redrives: Vec::new(),
        forked_from: None,
        notices: Vec::new(),
        sla_due: None,
        sla_missed: Vec::new(),
    };
    let step = StepRecord::new("r-poison", StepKey::step("a"), StepStatus::Ready);
    ports.store.create_run(&run, &[step]).await.unwrap();
    let msg = DispatchMsg::first("r-poison", StepKey::step("a"));
    ports
        .ready
        .send(vec![Outgoing {
            body: serde_json::to_string(&msg).unwrap(),
            delay: Duration::ZERO,
        }])
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), rt.run_to_end(&"r-poison".into()))
        .await
        .expect("the run is not left stuck")
        .unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    let err = done.error.unwrap();
    // The dispatcher gives the message up, or the sweeper finds the run cannot go on:
    // either way the run fails saying why.
    assert!(
        ["undeliverable", "invalid"].contains(&err.error.as_str()),
        "{err:?}"
    );
    assert!(
        err.message.contains("`steps` must be a list"),
        "{}",
        err.message
    );
    let a = ports
        .store
        .get_step(&"r-poison".into(), &StepKey::step("a"))
        .await
        .unwrap();
    assert_eq!(a.status, StepStatus::Cancelled);
}

#[tokio::test]
async fn the_sweeper_reaches_every_run_when_they_fill_more_than_one_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.settings.sweep_limit = 1;
    let mut ports = local_ports(&opts).unwrap();
    // Every run's first wake-up is lost: only the sweeper can start them.
    ports.ready = Arc::new(FaultyQueue::losing(ports.ready.clone(), |i, _| i < 3));
    let rt = local_runtime(ports, &opts);
    // The oldest run stays active (a long wait), so a sweep that always began with the
    // oldest page would never reach the others.
    let parked = start(
        &rt,
        "name: parked\nsteps:\n  - id: nap\n    wait: 1h\n",
        json!({}),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(
            start(
                &rt,
                "name: paged\nsteps:\n  - id: a\n    pass: 1\n",
                json!({}),
            )
            .await
            .run
            .id,
        );
    }
    for id in &ids {
        let run = tokio::time::timeout(Duration::from_secs(30), rt.run_to_end(id))
            .await
            .expect("every run is swept")
            .unwrap();
        assert_eq!(run.status, RunStatus::Succeeded);
    }
    // The oldest run's repair may still be on its way: drive until it has parked.
    let store = rt.handlers().ports().store.clone();
    let nap = braid_engine::model::StepKey::step("nap");
    let parks = async {
        while store.get_step(&parked.run.id, &nap).await.unwrap().status != StepStatus::Waiting {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let mut driving = std::pin::pin!(rt.run_to_end(&parked.run.id));
    tokio::select! {
        () = parks => {}
        _ = &mut driving => panic!("the parked run ended"),
        () = tokio::time::sleep(Duration::from_secs(30)) => panic!("the oldest run was never swept"),
    }
}

/// `serve` (what `braid dev` runs) drives runs with no run to wait for; once stopped it
/// takes no new message but lets the one in flight finish, and a later `serve` on the
/// same state finishes the run.
#[tokio::test]
async fn serve_runs_until_stopped_and_finishes_the_message_in_flight() {
    let (slow, in_flight) = slow_server(Duration::from_millis(600)).await;
    let yaml = format!(
        r#"
name: served
steps:
  - id: call
    http: {{ url: "{slow}" }}
  - id: after
    needs: [call]
    pass: done
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let rt = Arc::new(local_runtime(local_ports(&opts).unwrap(), &opts));
    let id = start(&rt, &yaml, json!({})).await.run.id;
    let store = rt.handlers().ports().store.clone();
    let step = |id: &RunId| {
        let store = store.clone();
        let id = id.clone();
        async move {
            let steps = store.list_steps(&id).await.unwrap();
            steps
                .into_iter()
                .find(|s| s.key.step == "call")
                .unwrap()
                .status
        }
    };

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let rt = rt.clone();
        async move {
            rt.serve(async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // The call has reached the server (it is too short to be claimed as running).
    while in_flight.now.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the step never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), serving)
        .await
        .expect("serve returns once the message in flight is handled")
        .unwrap()
        .unwrap();
    assert_eq!(step(&id).await, StepStatus::Succeeded);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let rt = rt.clone();
        async move {
            rt.serve(async {
                let _ = stopped.await;
            })
            .await
        }
    });
    while !store.get_run(&id).await.unwrap().status.is_final() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never finished"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    assert_eq!(
        store.get_run(&id).await.unwrap().status,
        RunStatus::Succeeded
    );
}

/// Runs `yaml` with a sweeper that never comes round during the run: what ends it is
/// the handlers' own work.
async fn run_without_the_sweeper(yaml: &str) -> RunRecord {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.runtime.tick_every = Duration::from_secs(3600);
    let rt = local_runtime(local_ports(&opts).unwrap(), &opts);
    let started = start(&rt, yaml, json!({})).await;
    tokio::time::timeout(Duration::from_secs(30), rt.run_to_end(&started.run.id))
        .await
        .expect("the run ends without the sweeper")
        .unwrap()
}

#[tokio::test]
async fn a_run_failing_while_other_steps_run_ends_without_the_sweeper() {
    let (slow, _) = slow_server(Duration::from_millis(300)).await;
    // `a` is still running (and has a dependent) when `b` fails the run.
    let branches = format!(
        "name: branches\nsteps:\n  - id: a\n    http: {{ url: \"{slow}\" }}\n  - id: c\n    needs: [a]\n    pass: 1\n  - id: b\n    fail: {{ error: boom }}\n"
    );
    let run = run_without_the_sweeper(&branches).await;
    assert_eq!(run.status, RunStatus::Failed);
    // An iteration fails while another of the fan-out is still running.
    let run = run_without_the_sweeper(&failing_fan_out(&closed_port(), &slow, 2)).await;
    assert_eq!(run.status, RunStatus::Failed);
    // More lanes asked for than there are items: the fan-in still happens.
    let wide = "name: wide\nsteps:\n  - id: fan\n    for_each: \"{{ [1, 2, 3] }}\"\n    max_parallel: 10\n    pass: \"{{ item }}\"\n";
    let run = run_without_the_sweeper(wide).await;
    assert_eq!(run.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_process_without_task_runners_records_nothing_and_hands_the_task_back() {
    // The Lambda functions other than the dispatcher have no task runners; a task that
    // reaches one is a wiring fault: the message comes back, and nothing is recorded.
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let mut ports = local_ports(&opts).unwrap();
    ports.tasks = None;
    let rt = local_runtime(ports, &opts);
    let yaml = "name: t\nsteps:\n  - id: call\n    http: { url: \"http://127.0.0.1:9/\" }\n";
    let started = start(&rt, yaml, json!({})).await;
    let before = rt.handlers().step_records(&started.run.id).await.unwrap();

    let msg = braid_engine::model::DispatchMsg::first(
        &started.run.id,
        braid_engine::model::StepKey::step("call"),
    );
    let err = rt.handlers().dispatch(&msg).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("runs no tasks"), "{err}");
    let after = rt.handlers().step_records(&started.run.id).await.unwrap();
    assert_eq!(after, before);
    let run = rt.handlers().run_record(&started.run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Running);
}

/// A fan-out's first iteration is claimed from its lane's message without a read of
/// its record: a copy of that message finds the claim and changes nothing, and the
/// message received again after its claimer stopped runs the claimed attempt.
#[tokio::test]
async fn a_lane_start_claimed_then_received_again_is_resumed_and_a_copy_changes_nothing() {
    use braid_engine::model::{DispatchMsg, StepKey, StepRecord};
    use braid_ports::Guard;
    use std::sync::atomic::Ordering::SeqCst;
    let (url, calls) = slow_server(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let ports = local_ports(&opts).unwrap();
    let store = ports.store.clone();
    let rt = local_runtime(ports, &opts);
    let yaml = format!(
        "name: fan\nsteps:\n  - id: each\n    for_each: \"{{{{ [1] }}}}\"\n    http: {{ url: \"{url}\" }}\n"
    );
    let id = start(&rt, &yaml, Value::Null).await.run.id;
    let handlers = rt.handlers();
    // The expansion sends the lane's first message (the queue is not driven here).
    let expand = DispatchMsg::first(id.clone(), StepKey::step("each"));
    handlers.dispatch_delivery(&expand, false).await.unwrap();
    let key = StepKey::iteration("each", 0);
    let lane_start = DispatchMsg {
        unwritten: true,
        ..DispatchMsg::first(id.clone(), key.clone())
    };
    // A dispatcher claimed it and stopped before the call; its lease ran out.
    let fan_out = store
        .get_step(&id, &StepKey::step("each"))
        .await
        .unwrap()
        .fan_out
        .expect("expanded");
    let now = chrono::Utc::now();
    let claimed = StepRecord {
        status: StepStatus::Running,
        attempt: 1,
        attempt_started_at: Some(now),
        started_at: Some(now),
        lease_until: Some(now - chrono::TimeDelta::seconds(1)),
        ..fan_out.iteration(&id, "each", 0)
    };
    let first_write = Guard::at(&[StepStatus::Pending], 0);
    assert!(store.update_step(&first_write, &claimed).await.unwrap());

    handlers
        .dispatch_delivery(&lane_start, false)
        .await
        .unwrap();
    assert_eq!(calls.most.load(SeqCst), 0, "a copy does not call the task");
    assert_eq!(store.get_step(&id, &key).await.unwrap(), claimed);

    handlers.dispatch_delivery(&lane_start, true).await.unwrap();
    assert_eq!(calls.most.load(SeqCst), 1, "received again, it runs");
    let done = store.get_step(&id, &key).await.unwrap();
    assert_eq!((done.status, done.attempt), (StepStatus::Succeeded, 1));
}
