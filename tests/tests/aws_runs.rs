//! Whole runs on the AWS backend, on the emulator: the stack's resources made from
//! `infra/template.yaml`, the five functions' handlers driven the way Lambda drives
//! them (see `braid_emulated::driver`).

use braid_e2e::examples::{self, Example};
use braid_e2e::requests::CostReport;
use braid_e2e::stack::TestStack;
use braid_e2e::start;
use braid_emulated::driver::Driver;
use braid_engine::model::{RunStatus, StepStatus};
use braid_handlers::{Handlers, Ports, RunView, Settings, definition};
use braid_local::backend::{LocalOptions, local_ports, local_runtime};
use braid_ports::env_secrets::env_secrets;
use braid_ports::testkit::faults::FaultyQueue;
use braid_ports::{PayloadStore, PortError, PortResult};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const RUN_LIMIT: Duration = Duration::from_secs(40);

/// Settings for tests: lost messages are re-sent after a second, not a minute.
fn settings() -> Settings {
    Settings {
        stale_after: Duration::from_secs(1),
        ..Settings::default()
    }
}

/// Runs `source` on the emulated stack with `ports` (adjusted by the test) to the end.
async fn run_on_aws(
    stack: &TestStack,
    ports: Ports,
    file: &str,
    source: &str,
    input: Value,
) -> RunView {
    let driver = Driver::new(stack, Handlers::new(ports, settings(), env_secrets()));
    let id = start(&driver.handlers, file, source, input).await;
    driver
        .run_to_end(&id, Some(RUN_LIMIT))
        .await
        .expect("the run ends");
    // Seen through the stack's own ports, whatever faults the run was given.
    let viewer = Handlers::new(stack.ports(), settings(), env_secrets());
    viewer.run_view(&id).await.unwrap()
}

/// Runs `source` on the embedded backend to the end.
async fn run_locally(file: &str, source: &str, input: Value) -> RunView {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = LocalOptions::new(dir.path().join("state"));
    opts.settings = settings();
    let mut ports = local_ports(&opts).unwrap();
    ports.tasks.as_mut().expect("the stack runs tasks").lambda =
        Arc::new(examples::worker_runner(dir.path()));
    let rt = local_runtime(ports, &opts);
    let id = start(rt.handlers(), file, source, input).await;
    tokio::time::timeout(RUN_LIMIT, rt.run_to_end(&id))
        .await
        .expect("the local run finishes")
        .unwrap();
    rt.handlers().run_view(&id).await.unwrap()
}

/// What must agree between backends: the run's status and output, each step's status
/// and output (attempt counts may differ: flaky steps are flaky), with the run's own
/// id (which outputs may mention) written as `RUN`.
fn outcome(v: &RunView) -> Value {
    let steps: serde_json::Map<String, Value> = v
        .steps
        .iter()
        .map(|(id, s)| {
            (
                id.clone(),
                json!({"status": s.status, "output": without_date(&s.output)}),
            )
        })
        .collect();
    let o = json!({"status": v.status, "output": v.output, "error": v.error, "steps": steps});
    serde_json::from_str(&o.to_string().replace(v.run_id.as_str(), "RUN")).unwrap()
}

/// An HTTP step's output without the `date` response header, which says when the
/// request was answered, not what.
fn without_date(output: &Value) -> Value {
    let mut out = output.clone();
    if let Some(headers) = out.get_mut("headers").and_then(Value::as_object_mut) {
        headers.remove("date");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_ends_the_same_on_the_embedded_and_the_emulated_aws_backend() {
    let stack = TestStack::create("parity").await;
    let base_url = examples::http_service().await;
    let dir = tempfile::tempdir().unwrap();
    for Example { file, input } in examples::all() {
        let input = examples::input_for(&Example { file, input }, &base_url);
        let source = examples::source(file);
        let local = run_locally(file, &source, input.clone()).await;
        let mut ports = stack.ports();
        ports.tasks.as_mut().expect("the stack runs tasks").lambda =
            Arc::new(examples::worker_runner(dir.path()));
        let aws = run_on_aws(&stack, ports, file, &source, input).await;
        assert!(local.status.is_final(), "{file}: {local:?}");
        assert_eq!(
            outcome(&aws),
            outcome(&local),
            "{file} differs between backends"
        );
    }
}

/// A workflow with a fan-out, a fan-in and a chain: the shape most runs have.
const REPRESENTATIVE: &str = r#"
name: representative
steps:
  - id: list
    pass: "{{ range(20) | list }}"
  - id: square
    needs: [list]
    for_each: "{{ steps.list.output }}"
    max_parallel: 10
    pass: "{{ item * item }}"
  - id: total
    needs: [square]
    pass: "{{ steps.square.output | sum }}"
  - id: report
    needs: [total]
    pass: { total: "{{ steps.total.output }}" }
output: "{{ steps.report.output }}"
"#;

/// The cost benchmark's workflow: a 20-item fan-out of HTTP calls ten at a time, a
/// fan-in and a chain ending in another call — what most runs do, with real tasks
/// (every step but two calls the test's HTTP service).
const REPRESENTATIVE_TASKS: &str = r#"
name: representative-tasks
params:
  base_url: { type: string, required: true }
steps:
  - id: list
    pass: "{{ range(20) | list }}"
  - id: price
    needs: [list]
    for_each: "{{ steps.list.output }}"
    max_parallel: 10
    http:
      method: POST
      url: "{{ params.base_url }}/post"
      json: { record: "{{ item * item }}" }
  - id: total
    needs: [price]
    pass: "{{ steps.price.output | map(attribute='body') | map(attribute='json') | map(attribute='record') | sum }}"
  - id: report
    needs: [total]
    http:
      method: POST
      url: "{{ params.base_url }}/post"
      json: { record: "{{ steps.total.output }}" }
output: "{{ steps.report.output.body.json.record }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_changes_nothing() {
    let stack = TestStack::create("dup").await;
    let expected = run_on_aws(&stack, stack.ports(), "r.yaml", REPRESENTATIVE, json!({})).await;
    assert_eq!(expected.status, RunStatus::Succeeded);
    assert_eq!(expected.output, json!({"total": 2470}));

    let mut ports = stack.ports();
    ports.ready = Arc::new(FaultyQueue::duplicating(ports.ready.clone()));
    ports.results = Arc::new(FaultyQueue::duplicating(ports.results.clone()));
    let twice = run_on_aws(&stack, ports, "r.yaml", REPRESENTATIVE, json!({})).await;
    assert_eq!(outcome(&twice), outcome(&expected));
    for (id, step) in &twice.steps {
        assert_eq!(step.attempts, 1, "step `{id}` ran again: {step:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_killed_between_its_write_and_its_send_is_repaired_by_the_cron_tick() {
    let stack = TestStack::create("crash").await;
    let expected = run_on_aws(&stack, stack.ports(), "r.yaml", REPRESENTATIVE, json!({})).await;
    // Every other "ready" message is never sent: the handler wrote the state, then died.
    let mut ports = stack.ports();
    let lossy = Arc::new(FaultyQueue::losing(ports.ready.clone(), |n, _| n % 2 == 0));
    ports.ready = lossy.clone();
    let repaired = run_on_aws(&stack, ports, "r.yaml", REPRESENTATIVE, json!({})).await;
    assert!(lossy.sent() > 4, "messages were lost along the way");
    assert_eq!(outcome(&repaired), outcome(&expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_step_result_flows_through_s3_to_the_next_step() {
    let stack = TestStack::create("big").await;
    let workflow = r#"
name: big
steps:
  - id: make
    pass: "{{ 'x' * 20000000 }}"
  - id: measure
    needs: [make]
    pass: { length: "{{ steps.make.output | length }}", tail: "{{ steps.make.output[-3:] }}" }
output: "{{ steps.measure.output }}"
"#;
    let view = run_on_aws(&stack, stack.ports(), "big.yaml", workflow, json!({})).await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.error);
    assert_eq!(view.output, json!({"length": 20_000_000, "tail": "xxx"}));
    let puts = stack
        .requests
        .requests()
        .get(&("S3".to_string(), "PutObject".to_string()))
        .copied()
        .unwrap_or(0);
    assert!(puts >= 1, "the big value went to S3");
}

/// The payload store with S3 "down" for reads: every attempt to load a payload fails.
struct UnreadablePayloads(Arc<dyn PayloadStore>);

#[async_trait::async_trait]
impl PayloadStore for UnreadablePayloads {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()> {
        self.0.put(key, bytes).await
    }
    async fn get(&self, _: &str) -> PortResult<Vec<u8>> {
        Err(PortError::backend_msg("S3 is unavailable"))
    }
    async fn renew(
        &self,
        prefix: &str,
        before: braid_engine::model::Timestamp,
    ) -> PortResult<usize> {
        self.0.renew(prefix, before).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_always_fails_lands_in_the_dlq_and_fails_its_run() {
    let stack = TestStack::create("poison").await;
    let workflow = r#"
name: poison
steps:
  - id: make
    pass: "{{ 'y' * 10000 }}"
  - id: read
    needs: [make]
    pass: "{{ steps.make.output | length }}"
"#;
    let mut ports = stack.ports();
    ports.payloads = Arc::new(UnreadablePayloads(ports.payloads.clone()));
    let view = run_on_aws(&stack, ports, "poison.yaml", workflow, json!({})).await;
    assert_eq!(view.status, RunStatus::Failed);
    let error = view.error.expect("the run says why it failed");
    assert_eq!(error.error, "undeliverable");
    assert!(
        error.message.contains("step `read`") && error.message.contains("S3 is unavailable"),
        "{}",
        error.message
    );
    assert_eq!(view.steps["read"].status, StepStatus::Cancelled);
    // The message was reported failed after the run was failed: SQS moves it to the
    // dead-letter queue on its next receive.
    let driver = Driver::new(
        &stack,
        Handlers::new(stack.ports(), settings(), env_secrets()),
    );
    driver
        .deliver(braid_emulated::driver::Consumer::Dispatcher)
        .await
        .expect("a batch is delivered");
    assert_eq!(stack.depth("ReadyDeadLetterQueue").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestration_cost_per_million_steps_is_measured_from_every_request() {
    let stack = TestStack::create("cost").await;
    let driver = Driver::new(
        &stack,
        Handlers::new(stack.ports(), settings(), env_secrets()),
    );
    let base_url = examples::http_service().await;
    stack.requests.reset();
    let runs = 3;
    let mut steps = 0;
    for _ in 0..runs {
        let input = json!({ "base_url": base_url });
        let id = start(&driver.handlers, "r.yaml", REPRESENTATIVE_TASKS, input).await;
        let run = driver
            .run_to_end(&id, Some(RUN_LIMIT))
            .await
            .expect("the run ends");
        assert_eq!(
            (run.status, run.output),
            (
                RunStatus::Succeeded,
                Some(braid_engine::model::Data::Inline(json!(2470)))
            )
        );
        let records = driver.handlers.ports().store.list_steps(&id).await.unwrap();
        // A step is a unit of work: every plain step and every iteration (the
        // `for_each` step itself only fans out).
        steps += records
            .iter()
            .filter(|r| r.key.index.is_some() || r.fan_out.is_none())
            .count() as u64;
    }
    let inv = driver.invocations();
    let report = CostReport {
        steps,
        requests: stack.requests.requests(),
        dynamodb_write_units: stack.requests.dynamodb_write_units(),
        eventbridge_entries: stack.requests.eventbridge_entries(),
        invocations: inv.count,
        gb_seconds: inv.gb_seconds,
        idle_receives: inv.idle_receives,
    };
    // The figure is a measurement, printed for the record (`cargo test -p braid-e2e
    // --test aws_runs orchestration -- --nocapture`); what must hold is that every
    // request was seen.
    println!("{}", report.render());
    for service in ["DynamoDB", "SQS", "EventBridge"] {
        assert!(
            report.requests.keys().any(|(s, _)| s == service),
            "no {service} request was counted:\n{}",
            report.render()
        );
    }
    assert!(report.dynamodb_write_units > 0 && report.invocations > 0);
}

/// `concurrency: 1` on DynamoDB: the second and third runs wait queued, start in turn
/// as slots free, and the slot count is back to zero at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_concurrency_1_runs_wait_their_turn_on_aws() {
    let stack = TestStack::create("serial").await;
    let driver = Driver::new(
        &stack,
        Handlers::new(stack.ports(), settings(), env_secrets()),
    );
    let source = "name: serial\nconcurrency: 1\nsteps:\n  - id: a\n    pass: 1\n  - id: b\n    needs: [a]\n    pass: 2\n";
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(start(&driver.handlers, "serial.yaml", source, json!({})).await);
    }
    let store = &driver.handlers.ports().store;
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(store.get_run(id).await.unwrap().status);
    }
    assert_eq!(
        statuses,
        [RunStatus::Running, RunStatus::Queued, RunStatus::Queued]
    );
    for id in &ids {
        let run = driver
            .run_to_end(id, Some(RUN_LIMIT))
            .await
            .expect("the run ends");
        assert_eq!(run.status, RunStatus::Succeeded);
    }
    let slots = stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&stack.config.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("SLOTS#serial".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("SLOTS".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        slots["held"].as_n().unwrap(),
        "0",
        "every slot was given back"
    );
}

/// Schedules on DynamoDB: the registry and the schedule's marker live in the table; an
/// instant fires once however many ticks see it, and its run goes to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_each_instant_once_on_aws() {
    use chrono::TimeZone;
    let stack = TestStack::create("schedule").await;
    let start = chrono::Utc.with_ymd_and_hms(2026, 6, 1, 10, 30, 0).unwrap();
    let clock = Arc::new(braid_ports::ManualClock::new(start));
    let mut ports = stack.ports();
    ports.clock = clock.clone();
    let handlers = Handlers::new(ports, settings(), env_secrets());
    let source = "name: hourly\ntriggers:\n  - schedule: \"0 * * * *\"\nsteps:\n  - id: a\n    pass: \"{{ trigger.scheduled_at }}\"\n";
    let (def, _) = definition("hourly.yaml", source).unwrap();
    handlers.ports().store.put_definition(&def).await.unwrap();
    assert!(handlers.fire_schedules().await.unwrap().is_empty());
    clock.set(chrono::Utc.with_ymd_and_hms(2026, 6, 1, 11, 0, 30).unwrap());
    let fired = handlers.fire_schedules().await.unwrap();
    assert_eq!(fired.len(), 1);
    let run = fired[0].outcome.clone().unwrap().run;
    assert_eq!(run.trigger["scheduled_at"], "2026-06-01T11:00:00+00:00");
    assert!(handlers.fire_schedules().await.unwrap().is_empty(), "once");
    let driver = Driver::new(
        &stack,
        Handlers::new(stack.ports(), settings(), env_secrets()),
    );
    assert_eq!(
        driver
            .run_to_end(&run.id, Some(RUN_LIMIT))
            .await
            .expect("the run ends")
            .status,
        RunStatus::Succeeded
    );
    let view = driver.handlers.run_view(&run.id).await.unwrap();
    assert_eq!(view.steps["a"].output, json!("2026-06-01T11:00:00+00:00"));
}

/// Values bigger than a store item end the same on both backends: a 500 KB input, a
/// fan-out over it, and a failure whose rendered message is 500 KB.
const BIG_VALUES: &str = r#"
name: big-values
params:
  list: { type: array, required: true }
  text: { type: string, required: true }
steps:
  - id: each
    for_each: "{{ params.list }}"
    max_parallel: 4
    pass: "{{ item | length }}"
  - id: explain
    needs: [each]
    fail: { error: too_long, message: "{{ params.text }}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_bigger_than_a_store_item_end_the_same_on_both_backends() {
    let stack = TestStack::create("big").await;
    let input = json!({
        "list": (0..50).map(|i| "x".repeat(10 * 1024 + i)).collect::<Vec<_>>(),
        "text": "why ".repeat(128 * 1024),
    });
    let local = run_locally("big.yaml", BIG_VALUES, input.clone()).await;
    let aws = run_on_aws(&stack, stack.ports(), "big.yaml", BIG_VALUES, input).await;
    assert_eq!(local.status, RunStatus::Failed);
    let error = local.steps["explain"].error.clone().expect("its error");
    assert_eq!(
        error.error, "too_long",
        "failed for its own reason: {error:?}"
    );
    assert_eq!(local.steps["each"].status, StepStatus::Succeeded);
    assert_eq!(outcome(&aws), outcome(&local), "the backends differ");
}
