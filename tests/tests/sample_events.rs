//! Every sample event in `events/` is parsed by the types its function uses and pushed
//! through its handler on the emulated stack.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use braid_aws::event_bus::EventBridgeSink;
use braid_e2e::examples;
use braid_e2e::stack::TestStack;
use braid_emulated::driver::Driver;
use braid_engine::model::RunStatus;
use braid_handlers::{Handlers, Settings, definition};
use braid_lambda::sqs_batch::{self, Source};
use braid_lambda::{cron, intake, notify};
use braid_ports::env_secrets::env_secrets;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The sample events and the tests that push them through their handlers.
const COVERED: &[&str] = &[
    "cron-tick-scheduled.json",
    "notifier-sqs.json",
    "step-completer-sqs.json",
    "step-dispatcher-sqs.json",
    "trigger-intake-direct-start.json",
    "trigger-intake-eventbridge-custom.json",
    "trigger-intake-eventbridge-s3.json",
    "trigger-intake-http-approve.json",
    "trigger-intake-http-list-runs.json",
    "trigger-intake-http-start.json",
    "trigger-intake-http-webhook.json",
    "trigger-intake-s3-notification.json",
    "trigger-intake-sqs.json",
];

/// A workflow with one trigger of each event kind the samples carry.
const TRIGGERED: &str = r#"
name: uploads
params:
  key: { type: string, required: true }
triggers:
  - s3: { bucket: acme-orders, prefix: incoming/, suffix: .csv }
    params: { key: "{{ trigger.key }}" }
  - event: { source: [acme.orders], detail-type: [OrderBatchReady] }
    params: { key: "{{ trigger.detail.key }}" }
  - sqs: { queue: orders-in }
    params: { key: "{{ trigger.body.key }}" }
  - webhook: { path: orders, secret: sample-hook, signature: github }
    params: { key: "{{ trigger.body.key }}" }
steps:
  - id: take
    pass: { key: "{{ params.key }}" }
"#;

/// Every trigger sample delivered three times starts one run, keyed and filled in from
/// its event; the S3 upload seen through EventBridge and through a notification is one
/// run. The webhook's secret comes from Parameter Store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_samples_each_start_one_run_with_their_event_as_trigger() {
    let stack = TestStack::create("triggers").await;
    let (def, _) = definition("uploads.yaml", TRIGGERED).unwrap();
    stack.ports().store.put_definition(&def).await.unwrap();
    stack
        .clients
        .ssm
        .put_parameter()
        .name("/braid/secrets/sample-hook")
        .value("sample-hook-secret")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let h = handlers(&stack);
    let mut keys = Vec::new();
    for name in [
        "trigger-intake-s3-notification.json",
        "trigger-intake-eventbridge-s3.json",
        "trigger-intake-eventbridge-custom.json",
        "trigger-intake-sqs.json",
    ] {
        let event: Value = serde_json::from_str(&sample(name)).unwrap();
        for _ in 0..3 {
            let answer = intake::handle(&h, event.clone()).await.unwrap();
            if let Some(failures) = answer.get("batchItemFailures") {
                assert_eq!(failures, &serde_json::json!([]), "{name}: {answer}");
            } else {
                assert_eq!(
                    answer["started"][0]["workflow"], "uploads",
                    "{name}: {answer}"
                );
            }
        }
        keys.push(name);
    }
    let webhook: Value = serde_json::from_str(&sample("trigger-intake-http-webhook.json")).unwrap();
    let first = intake::handle(&h, webhook.clone()).await.unwrap();
    assert_eq!(first["statusCode"], 202, "{first}");
    let replay = intake::handle(&h, webhook.clone()).await.unwrap();
    assert_eq!(
        replay["statusCode"], 401,
        "a delivery is taken once: {replay}"
    );
    let mut forged = webhook;
    forged["body"] = Value::from(r#"{"key": "incoming/forged.csv", "action": "created"}"#);
    let refused = intake::handle(&h, forged).await.unwrap();
    assert_eq!(refused["statusCode"], 401, "{refused}");

    let runs = h
        .ports()
        .store
        .list_runs(&braid_ports::RunFilter {
            workflow: Some("uploads".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            (
                r.trigger["kind"].as_str().unwrap().to_string(),
                r.params["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let want = [
        ("event", "batches/2026-11-25.csv"),
        ("s3", "incoming/day 1.csv"),
        ("sqs", "queued/order-77.csv"),
        ("webhook", "incoming/hooked.csv"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(
        got,
        want,
        "one run per real event, {} samples",
        keys.len() + 1
    );
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(events_dir().join(name)).expect("the sample exists")
}

/// A sample SQS event with its messages' `RUN_ID` set to `run_id`.
fn sqs_sample(name: &str, run_id: &str) -> SqsEvent {
    serde_json::from_str(&sample(name).replace("RUN_ID", run_id)).expect("an SQS event")
}

fn handlers(stack: &TestStack) -> Handlers {
    Handlers::new(stack.ports(), Settings::default(), env_secrets())
}

/// A stack with `examples/hello.yaml` registered.
async fn stack_with_hello(tag: &str) -> TestStack {
    let stack = TestStack::create(tag).await;
    let (def, _) = definition("hello.yaml", &examples::source("hello.yaml")).unwrap();
    stack.ports().store.put_definition(&def).await.unwrap();
    stack
}

/// API Gateway names the IAM caller of a management route (who decided) and the
/// API's domain (where approval links point).
#[test]
fn an_http_request_carries_its_iam_caller_as_principal() {
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
    let event: ApiGatewayV2httpRequest =
        serde_json::from_str(&sample("trigger-intake-http-approve.json")).unwrap();
    let req = braid_lambda::http_api::request(&event).unwrap();
    assert_eq!(
        req.principal.as_deref(),
        Some("arn:aws:iam::123456789012:user/ana")
    );
    assert_eq!(
        req.path,
        "/runs/01KDVDNA00BTFEWA8KEZ2BA9F0/steps/manager/approve"
    );
    assert_eq!(req.body.as_deref(), Some("{\"comment\": \"ship it\"}"));
    let open: ApiGatewayV2httpRequest =
        serde_json::from_str(&sample("trigger-intake-http-webhook.json")).unwrap();
    assert_eq!(
        braid_lambda::http_api::request(&open).unwrap().principal,
        None
    );
}

#[test]
fn every_sample_event_is_covered_here() {
    let mut found: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, COVERED, "add the new sample event to a test here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_http_starts_start_runs_and_the_list_shows_them() {
    let stack = stack_with_hello("intake").await;
    let h = handlers(&stack);
    let direct: Value = serde_json::from_str(&sample("trigger-intake-direct-start.json")).unwrap();
    let answer = intake::handle(&h, direct.clone()).await.unwrap();
    assert_eq!(answer["status"], "running");
    assert_eq!(answer["existing"], false);
    let again = intake::handle(&h, direct).await.unwrap();
    assert_eq!(
        again["run_id"], answer["run_id"],
        "the idempotency key holds"
    );
    assert_eq!(again["existing"], true);

    let http: Value = serde_json::from_str(&sample("trigger-intake-http-start.json")).unwrap();
    let response = intake::handle(&h, http).await.unwrap();
    assert_eq!(response["statusCode"], 202, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let run_id = body["run_id"].as_str().unwrap().to_string();

    let list: Value = serde_json::from_str(&sample("trigger-intake-http-list-runs.json")).unwrap();
    let response = intake::handle(&h, list).await.unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let listed: Vec<&str> = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&run_id.as_str()), "{body}");
    assert_eq!(listed.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_direct_start_is_refused_with_the_reason_and_starts_nothing() {
    let stack = stack_with_hello("refuse").await;
    let h = handlers(&stack);
    let bad = serde_json::json!({"workflow": "hello", "inputs": {}});
    let err = intake::handle(&h, bad).await.unwrap_err();
    assert!(err.to_string().contains("unknown field `inputs`"), "{err}");
    let wrong = serde_json::json!({"workflow": "hello", "input": {"who": 7}});
    let err = intake::handle(&h, wrong).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid input for workflow `hello`"),
        "{err}"
    );
    let runs = h
        .ports()
        .store
        .list_runs(&braid_ports::RunFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(runs.is_empty(), "nothing was started: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_and_completer_samples_are_handled_and_duplicates_change_nothing() {
    let stack = stack_with_hello("sqs").await;
    let h = handlers(&stack);
    let direct: Value = serde_json::from_str(&sample("trigger-intake-direct-start.json")).unwrap();
    let run_id = intake::handle(&h, direct).await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run_id = braid_engine::model::RunId::new(run_id);

    // The sample is the first step's "ready" message: it runs the step.
    let response = sqs_batch::handle(
        &h,
        Source::Ready,
        sqs_sample("step-dispatcher-sqs.json", &run_id),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    let greet = h
        .ports()
        .store
        .get_step(&run_id, &braid_engine::model::StepKey::step("greet"))
        .await
        .unwrap();
    assert_eq!(greet.status, braid_engine::model::StepStatus::Succeeded);
    // The sample result repeats what was recorded: nothing changes.
    let response = sqs_batch::handle(
        &h,
        Source::Results,
        sqs_sample("step-completer-sqs.json", &run_id),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());

    let driver = Driver::new(&stack, handlers(&stack));
    let run = driver
        .run_to_end(&run_id, Some(Duration::from_secs(60)))
        .await
        .expect("the run ends");
    assert_eq!(run.status, RunStatus::Succeeded);
    let view = h.run_view(&run_id).await.unwrap();
    assert_eq!(view.output["greeting"], "Hello, Ada!");
    assert_eq!(view.steps["greet"].attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifier_sample_reaches_the_event_bus_and_the_tick_sample_sweeps() {
    let stack = TestStack::create("notify").await;
    // A rule on the bus sending every Braid event to a queue, to see what arrived.
    let watch = stack
        .clients
        .sqs
        .create_queue()
        .queue_name(format!("{}-watch", stack.name))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = stack
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(&watch)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let eb = &stack.clients.eventbridge;
    eb.put_rule()
        .name("watch")
        .event_bus_name(&stack.config.event_bus)
        .event_pattern(r#"{"source": ["braid"]}"#)
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule("watch")
        .event_bus_name(&stack.config.event_bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("watch")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let event: SqsEvent = serde_json::from_str(&sample("notifier-sqs.json")).unwrap();
    let sink = EventBridgeSink::new(eb.clone(), &stack.config.event_bus);
    let notifier = handlers(&stack);
    let dead = braid_aws::queue::SqsQueue::new(
        stack.clients.sqs.clone(),
        stack.queue("EventDeadLetterQueue"),
    );
    let response = notify::handle(&notifier, &sink, &dead, event).await;
    assert!(response.batch_item_failures.is_empty());
    let mut kinds = Vec::new();
    for _ in 0..20 {
        let got = stack
            .clients
            .sqs
            .receive_message()
            .queue_url(&watch)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in got.messages.unwrap_or_default() {
            let envelope: Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
            kinds.push(envelope["detail"]["kind"].as_str().unwrap().to_string());
        }
        if kinds.len() >= 2 {
            break;
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["run.finished", "step.finished"]);

    let tick: EventBridgeEvent = serde_json::from_str(&sample("cron-tick-scheduled.json")).unwrap();
    let report = cron::handle(&handlers(&stack), tick).await.unwrap();
    assert_eq!(report.runs_checked, 0);
}

/// On the emulated stack too: events no trigger matches start nothing, and unsigned,
/// stale or forged webhooks get 401 and start nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_events_and_bad_webhooks_start_nothing_on_aws() {
    use braid_lang::triggers::signature::sign_braid;
    let stack = TestStack::create("refusals").await;
    let signed = "name: signed\ntriggers:\n  - webhook: { path: signed, secret: signed-hook }\nsteps:\n  - id: a\n    pass: 1\n";
    for (file, source) in [("uploads.yaml", TRIGGERED), ("signed.yaml", signed)] {
        let (def, _) = definition(file, source).unwrap();
        stack.ports().store.put_definition(&def).await.unwrap();
    }
    stack
        .clients
        .ssm
        .put_parameter()
        .name("/braid/secrets/signed-hook")
        .value("signed-hook-secret")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let h = handlers(&stack);

    let mut upload: Value =
        serde_json::from_str(&sample("trigger-intake-s3-notification.json")).unwrap();
    upload["Records"][0]["s3"]["bucket"]["name"] = Value::from("other-bucket");
    let mut event: Value =
        serde_json::from_str(&sample("trigger-intake-eventbridge-custom.json")).unwrap();
    event["detail-type"] = Value::from("SomethingElse");
    for unmatched in [upload, event] {
        let answer = intake::handle(&h, unmatched).await.unwrap();
        assert_eq!(answer["started"], serde_json::json!([]), "{answer}");
    }

    let body = r#"{"n": 1}"#;
    let hook = |headers: Value| {
        let mut e: Value =
            serde_json::from_str(&sample("trigger-intake-http-webhook.json")).unwrap();
        e["rawPath"] = Value::from("/hooks/signed");
        e["requestContext"]["http"]["path"] = Value::from("/hooks/signed");
        e["headers"] = headers;
        e["body"] = Value::from(body);
        e
    };
    let now = chrono::Utc::now().timestamp();
    let secret = b"signed-hook-secret";
    for (what, headers) in [
        ("unsigned", serde_json::json!({})),
        (
            "stale",
            serde_json::json!({"braid-signature": sign_braid(secret, body.as_bytes(), now - 600)}),
        ),
        (
            "forged",
            serde_json::json!({"braid-signature": sign_braid(b"guess", body.as_bytes(), now)}),
        ),
    ] {
        let answer = intake::handle(&h, hook(headers)).await.unwrap();
        assert_eq!(answer["statusCode"], 401, "{what}: {answer}");
    }
    let fresh = serde_json::json!({"braid-signature": sign_braid(secret, body.as_bytes(), now)});
    let answer = intake::handle(&h, hook(fresh)).await.unwrap();
    assert_eq!(answer["statusCode"], 202, "{answer}");

    let runs = h
        .ports()
        .store
        .list_runs(&braid_ports::RunFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        runs.len(),
        1,
        "only the good delivery started a run: {runs:?}"
    );
    assert_eq!(runs[0].workflow, "signed");
}
