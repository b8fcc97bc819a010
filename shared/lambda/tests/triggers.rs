//! Triggers on the embedded backend: each kind starts the right workflow with the right
//! `trigger` data, a non-matching event starts nothing, a repeated event starts one run,
//! bad webhooks get 401 and start nothing, and schedules fire at the right instants —
//! across DST changes and after an outage, per catch-up policy.

use braid_engine::model::RunRecord;
use braid_handlers::{ApiRequest, Handlers, definition};
use braid_lang::triggers::incoming::{Incoming, S3Object, SqsMessage};
use braid_lang::triggers::signature::sign_braid;
use braid_local::backend::{LocalOptions, open};
use braid_local::runtime::LocalRuntime;
use braid_ports::{ManualClock, RunFilter};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const ORDERS: &str = r#"
name: orders
params:
  key: { type: string, required: true }
triggers:
  - s3: { bucket: acme-orders, prefix: incoming/, suffix: .csv }
    params: { key: "{{ trigger.key }}" }
  - event: { source: [acme.orders], detail-type: [OrderBatchReady], detail: { count: [{ numeric: [">", 0] }] } }
    params: { key: "{{ trigger.detail.key }}" }
  - sqs: { queue: "arn:aws:sqs:us-east-1:111122223333:orders-in" }
    params: { key: "{{ trigger.body.key }}" }
  - webhook: { path: orders, secret: orders-hook }
    params: { key: "{{ trigger.body.key }}" }
steps:
  - id: a
    pass: { key: "{{ params.key }}" }
"#;

const SECRET: &str = "hook-secret-for-tests";

struct Env {
    _dir: tempfile::TempDir,
    rt: LocalRuntime,
    clock: Arc<ManualClock>,
}

impl Env {
    fn handlers(&self) -> &Handlers {
        self.rt.handlers()
    }

    async fn register(&self, file: &str, yaml: &str) {
        let (def, _) = definition(file, yaml).unwrap();
        self.handlers()
            .ports()
            .store
            .put_definition(&def)
            .await
            .unwrap();
    }

    async fn runs(&self, workflow: &str) -> Vec<RunRecord> {
        let filter = RunFilter {
            workflow: Some(workflow.into()),
            status: None,
            limit: 1000,
        };
        self.handlers()
            .ports()
            .store
            .list_runs(&filter)
            .await
            .unwrap()
    }
}

async fn env(start: DateTime<Utc>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("secrets.toml"),
        format!("orders-hook = \"{SECRET}\"\n"),
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let mut opts = LocalOptions::new(dir.path());
    opts.clock = clock.clone();
    let rt = open(&opts).unwrap();
    let e = Env {
        _dir: dir,
        rt,
        clock,
    };
    e.register("orders.yaml", ORDERS).await;
    e
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn upload(bucket: &str, key: &str) -> Incoming {
    Incoming::S3(S3Object {
        bucket: bucket.into(),
        key: key.into(),
        size: Some(10),
        etag: Some("e1".into()),
        version_id: None,
        sequencer: Some("0061".into()),
        time: None,
    })
}

#[tokio::test]
async fn an_upload_starts_its_workflow_once_with_the_object_as_trigger() {
    let e = env(now()).await;
    for _ in 0..3 {
        let started = e
            .handlers()
            .start_triggered(&upload("acme-orders", "incoming/d1.csv"))
            .await
            .unwrap();
        assert_eq!(started.len(), 1);
        assert!(started[0].outcome.is_ok(), "{started:?}");
    }
    let runs = e.runs("orders").await;
    assert_eq!(runs.len(), 1, "three deliveries, one run");
    assert_eq!(runs[0].trigger["kind"], "s3");
    assert_eq!(runs[0].trigger["key"], "incoming/d1.csv");
    assert_eq!(runs[0].params, json!({"key": "incoming/d1.csv"}));

    for (bucket, key) in [
        ("other", "incoming/d2.csv"),
        ("acme-orders", "incoming/d2.txt"),
    ] {
        let started = e
            .handlers()
            .start_triggered(&upload(bucket, key))
            .await
            .unwrap();
        assert!(started.is_empty(), "{bucket}/{key} matches no trigger");
    }
    assert_eq!(e.runs("orders").await.len(), 1);
}

#[tokio::test]
async fn an_eventbridge_event_starts_what_its_pattern_matches_once() {
    let e = env(now()).await;
    let event = |id: &str, count: i64| {
        Incoming::from_eventbridge(json!({
            "version": "0", "id": id, "source": "acme.orders", "detail-type": "OrderBatchReady",
            "account": "1", "time": "2026-11-25T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"key": "batch-7", "count": count}
        }))
    };
    for _ in 0..3 {
        e.handlers()
            .start_triggered(&event("ev-1", 3))
            .await
            .unwrap();
    }
    let runs = e.runs("orders").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger["kind"], "event");
    assert_eq!(runs[0].trigger["detail"]["key"], "batch-7");
    let none = e
        .handlers()
        .start_triggered(&event("ev-2", 0))
        .await
        .unwrap();
    assert!(none.is_empty(), "count 0 fails the numeric filter");
}

#[tokio::test]
async fn an_sqs_message_starts_its_workflow() {
    let e = env(now()).await;
    let msg = Incoming::Sqs(SqsMessage {
        queue: "arn:aws:sqs:us-east-1:111122223333:orders-in".into(),
        message_id: "m-1".into(),
        body: r#"{"key": "from-queue"}"#.into(),
        attributes: json!({}),
    });
    e.handlers().start_triggered(&msg).await.unwrap();
    e.handlers().start_triggered(&msg).await.unwrap();
    let runs = e.runs("orders").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].params["key"], "from-queue");
}

#[tokio::test]
async fn an_event_without_what_the_params_need_starts_nothing_and_says_why() {
    let e = env(now()).await;
    let msg = Incoming::Sqs(SqsMessage {
        queue: "orders-in".into(),
        message_id: "m-2".into(),
        body: "not json".into(),
        attributes: json!({}),
    });
    let started = e.handlers().start_triggered(&msg).await.unwrap();
    let err = started[0].outcome.clone().unwrap_err();
    assert!(err.contains("params"), "{err}");
    assert!(e.runs("orders").await.is_empty());
}

fn hook(headers: Vec<(&str, String)>, body: &str) -> ApiRequest {
    ApiRequest {
        method: "POST".into(),
        path: "/hooks/orders".into(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        body: Some(body.to_string()),
        ..ApiRequest::default()
    }
}

#[tokio::test]
async fn a_signed_webhook_starts_one_run_and_bad_ones_get_401() {
    let e = env(now()).await;
    let body = r#"{"key": "hooked"}"#;
    let t = e.clock_now().timestamp();
    let signed = |secret: &str, t: i64| sign_braid(secret.as_bytes(), body.as_bytes(), t);

    let ok = e
        .handlers()
        .api(&hook(
            vec![
                ("Braid-Signature", signed(SECRET, t)),
                ("Braid-Delivery", "d-1".into()),
            ],
            body,
        ))
        .await;
    assert_eq!(ok.status, 202, "{}", ok.body);
    let run_id = ok.body["run_id"].as_str().unwrap().to_string();

    let cases = [
        (
            "replayed",
            vec![
                ("Braid-Signature", signed(SECRET, t)),
                ("Braid-Delivery", "d-1".into()),
            ],
        ),
        (
            "replayed without a delivery id",
            vec![("Braid-Signature", signed(SECRET, t - 1))],
        ),
        ("forged", vec![("Braid-Signature", signed("guess", t))]),
        ("unsigned", vec![]),
        ("stale", vec![("Braid-Signature", signed(SECRET, t - 301))]),
        (
            "from the future",
            vec![("Braid-Signature", signed(SECRET, t + 301))],
        ),
        ("malformed", vec![("Braid-Signature", "v1=abc".to_string())]),
    ];
    // The same signature again, without a delivery id, is a replay too.
    let first_plain = e
        .handlers()
        .api(&hook(
            vec![("Braid-Signature", signed(SECRET, t - 1))],
            body,
        ))
        .await;
    assert_eq!(first_plain.status, 202, "{}", first_plain.body);
    for (what, headers) in cases {
        let r = e.handlers().api(&hook(headers, body)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_eq!(r.body["error"], "unauthorized", "{what}");
    }
    let runs = e.runs("orders").await;
    assert_eq!(runs.len(), 2, "only the two good deliveries started runs");
    let run = runs.iter().find(|r| r.id == run_id).unwrap();
    assert_eq!(run.trigger["kind"], "webhook");
    assert_eq!(run.trigger["delivery"], "d-1");
    assert_eq!(run.trigger["body"]["key"], "hooked");
    assert!(
        run.trigger["headers"].get("braid-signature").is_none(),
        "signatures are not kept in the trigger data"
    );

    let unknown = e
        .handlers()
        .api(&ApiRequest {
            path: "/hooks/nope".into(),
            ..hook(vec![], body)
        })
        .await;
    assert_eq!(unknown.status, 404);
}

impl Env {
    fn clock_now(&self) -> DateTime<Utc> {
        use braid_ports::Clock;
        self.clock.now()
    }

    /// Ticks every minute from now until `until`, firing schedules; returns the
    /// scheduled instants of the runs they started.
    async fn tick_until(&self, until: DateTime<Utc>, step: Duration) -> Vec<String> {
        let mut fired = Vec::new();
        while self.clock_now() < until {
            self.clock.advance(step);
            for t in self.handlers().fire_schedules().await.unwrap() {
                let started = t.outcome.expect("scheduled runs start");
                fired.push(
                    started.run.trigger["scheduled_at"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
        }
        fired
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

const NIGHTLY_PARIS: &str = r#"
name: nightly
triggers:
  - schedule: { cron: "0 2 * * *", timezone: Europe/Paris }
steps:
  - id: a
    pass: {}
"#;

#[tokio::test]
async fn a_paris_2am_schedule_fires_at_the_right_instants_across_both_dst_changes() {
    for (start, until, expected) in [
        // Spring forward on 29 March 2026: 02:00 does not exist; it fires at 03:00 CEST.
        (
            utc(2026, 3, 27, 23, 0),
            utc(2026, 3, 30, 3, 0),
            [
                "2026-03-28T01:00:00+00:00",
                "2026-03-29T01:00:00+00:00",
                "2026-03-30T00:00:00+00:00",
            ],
        ),
        // Fall back on 25 October 2026: 02:00 happens twice; it fires once.
        (
            utc(2026, 10, 23, 23, 0),
            utc(2026, 10, 26, 3, 0),
            [
                "2026-10-24T00:00:00+00:00",
                "2026-10-25T00:00:00+00:00",
                "2026-10-26T01:00:00+00:00",
            ],
        ),
    ] {
        let e = env(start).await;
        e.register("nightly.yaml", NIGHTLY_PARIS).await;
        let fired = e.tick_until(until, Duration::from_secs(60)).await;
        assert_eq!(fired, expected);
        assert_eq!(e.runs("nightly").await.len(), 3);
    }
}

fn hourly(catchup: &str) -> String {
    format!(
        "name: hourly-{catchup}\ntriggers:\n  - schedule: {{ cron: \"0 * * * *\", catchup: {catchup}, catchup_window: 6h }}\nsteps:\n  - id: a\n    pass: {{}}\n"
    )
}

#[tokio::test]
async fn after_a_three_hour_outage_each_catchup_policy_does_what_it_says() {
    for (policy, expected) in [
        ("none", vec![]),
        ("latest", vec!["2026-06-01T13:00:00+00:00"]),
        (
            "all",
            vec![
                "2026-06-01T11:00:00+00:00",
                "2026-06-01T12:00:00+00:00",
                "2026-06-01T13:00:00+00:00",
            ],
        ),
    ] {
        let e = env(utc(2026, 6, 1, 10, 30)).await;
        e.register("h.yaml", &hourly(policy)).await;
        // Registered and seen by a tick at 10:30; then nothing runs until 13:20.
        assert!(e.handlers().fire_schedules().await.unwrap().is_empty());
        e.clock.set(utc(2026, 6, 1, 13, 20));
        let fired: Vec<String> = e
            .handlers()
            .fire_schedules()
            .await
            .unwrap()
            .into_iter()
            .map(|t| {
                t.outcome.unwrap().run.trigger["scheduled_at"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(fired, expected, "catchup: {policy}");
        // Back to normal: the 14:00 instant fires on time under every policy.
        let next = e
            .tick_until(utc(2026, 6, 1, 14, 1), Duration::from_secs(60))
            .await;
        assert_eq!(next, ["2026-06-01T14:00:00+00:00"], "catchup: {policy}");
    }
}

#[tokio::test]
async fn a_schedule_that_skips_overlaps_does_not_start_beside_an_active_run() {
    let e = env(utc(2026, 6, 1, 10, 30)).await;
    let yaml = "name: busy\ntriggers:\n  - schedule: { cron: \"*/10 * * * *\", overlap: skip }\nsteps:\n  - id: w\n    wait: 1h\n";
    e.register("busy.yaml", yaml).await;
    let fired = e
        .tick_until(utc(2026, 6, 1, 11, 5), Duration::from_secs(60))
        .await;
    assert_eq!(
        fired,
        ["2026-06-01T10:40:00+00:00"],
        "later instants are skipped while it waits"
    );
    let runs: Vec<Value> = e
        .runs("busy")
        .await
        .iter()
        .map(|r| r.trigger.clone())
        .collect();
    assert_eq!(runs.len(), 1);
}

/// Arbitrary JSON, a few levels deep, biased towards the fields intake reads.
fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(Value::from("acme-orders")),
        Just(Value::from("ObjectCreated:Put")),
        Just(Value::from("aws.s3")),
        Just(Value::from("Object Created")),
        Just(Value::from("%zz+%")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("eventName".to_string()),
            Just("s3".to_string()),
            Just("bucket".to_string()),
            Just("name".to_string()),
            Just("object".to_string()),
            Just("key".to_string()),
            Just("source".to_string()),
            Just("detail-type".to_string()),
            Just("detail".to_string()),
            Just("id".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Malformed events, bodies and headers never panic intake, are refused with a
    /// reason, and start nothing.
    #[test]
    fn malformed_events_and_webhooks_are_refused_and_start_nothing(
        record in arb_json(),
        event in arb_json(),
        headers in proptest::collection::vec(
            (
                proptest::prop_oneof![
                    proptest::strategy::Just("Braid-Signature".to_string()),
                    proptest::strategy::Just("Braid-Delivery".to_string()),
                    "[A-Za-z-]{1,12}",
                ],
                "[ -~]{0,80}",
            ),
            0..4,
        ),
        body in "[ -~]{0,64}",
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let e = env(now()).await;
            // A record either parses to an object upload or is refused with a reason.
            match S3Object::from_notification(&record) {
                Ok(Some(obj)) => {
                    e.handlers().start_triggered(&Incoming::S3(obj)).await.unwrap();
                }
                Ok(None) => {}
                Err(reason) => proptest::prop_assert!(reason.contains('`'), "names the field: {reason}"),
            }
            // The function's event shapes: recognised, or refused with the reason.
            if let Err(e) = braid_lambda::intake::IntakeEvent::parse(event.clone()) {
                proptest::prop_assert!(!e.to_string().is_empty());
            }
            let _ = e.handlers().start_triggered(&Incoming::from_eventbridge(event)).await.unwrap();
            let r = e
                .handlers()
                .api(&hook(headers.iter().map(|(k, v)| (k.as_str(), v.clone())).collect(), &body))
                .await;
            proptest::prop_assert_eq!(r.status, 401, "{}", r.body);
            proptest::prop_assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
            let started: Vec<Value> = e.runs("orders").await.iter().map(|r| r.trigger.clone()).collect();
            // Random data can only start a run by being a matching upload or event.
            for t in &started {
                proptest::prop_assert!(t["kind"] == "s3" || t["kind"] == "event", "{t}");
            }
            Ok(())
        })?;
    }
}

const ONE_AT_A_TIME: &str = r#"
name: serial
concurrency: 1
params:
  n: { type: integer, default: 0 }
steps:
  - id: a
    pass: { n: "{{ params.n }}" }
"#;

#[tokio::test]
async fn with_concurrency_1_a_second_run_waits_for_the_first_and_runs_in_order() {
    let e = env(now()).await;
    let (def, _) = definition("serial.yaml", ONE_AT_A_TIME).unwrap();
    let start = |n: i64| braid_handlers::StartRequest {
        definition: def.clone(),
        input: json!({ "n": n }),
        trigger: Value::Null,
        idempotency_key: None,
        queue: false,
    };
    let first = e.handlers().start(start(1)).await.unwrap().run;
    let second = e.handlers().start(start(2)).await.unwrap().run;
    let third = e.handlers().start(start(3)).await.unwrap().run;
    use braid_engine::model::RunStatus::*;
    let status = |id: braid_engine::model::RunId| {
        let e = &e;
        async move {
            e.handlers()
                .ports()
                .store
                .get_run(&id)
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(first.status, Running);
    assert_eq!((second.status, third.status), (Queued, Queued));

    // Nothing of the queued runs ran while the first held the slot.
    let steps = e
        .handlers()
        .ports()
        .store
        .list_steps(&second.id)
        .await
        .unwrap();
    assert!(
        steps
            .iter()
            .all(|s| s.status == braid_engine::model::StepStatus::Pending)
    );
    let done = e.rt.run_to_end(&first.id).await.unwrap();
    assert_eq!(done.status, Succeeded);
    assert_ne!(
        status(second.id.clone()).await,
        Queued,
        "the oldest queued run goes next"
    );
    assert_eq!(e.rt.run_to_end(&second.id).await.unwrap().status, Succeeded);
    assert_eq!(e.rt.run_to_end(&third.id).await.unwrap().status, Succeeded);
}

#[tokio::test]
async fn a_queued_run_left_behind_by_a_crash_is_admitted_by_the_sweeper() {
    let e = env(now()).await;
    let (def, _) = definition("serial.yaml", ONE_AT_A_TIME).unwrap();
    let req = braid_handlers::StartRequest {
        definition: def,
        input: json!({}),
        trigger: Value::Null,
        idempotency_key: None,
        queue: false,
    };
    let first = e.handlers().start(req.clone()).await.unwrap().run;
    let second = e.handlers().start(req).await.unwrap().run;
    // The first run ends, but the process stops before admitting the next one.
    let store = &e.handlers().ports().store;
    let ended = RunRecord {
        status: braid_engine::model::RunStatus::Cancelled,
        finished_at: Some(now()),
        ..store.get_run(&first.id).await.unwrap()
    };
    assert!(store.finish_run(&ended).await.unwrap());
    assert_eq!(
        store.get_run(&second.id).await.unwrap().status,
        braid_engine::model::RunStatus::Queued
    );
    e.handlers().tick().await.unwrap();
    let done = e.rt.run_to_end(&second.id).await.unwrap();
    assert_eq!(done.status, braid_engine::model::RunStatus::Succeeded);
}

#[tokio::test]
async fn paused_schedules_fire_nothing_and_resume_from_the_next_instant() {
    let e = env(utc(2026, 6, 1, 10, 30)).await;
    e.register("h.yaml", &hourly("all")).await;
    assert!(e.handlers().fire_schedules().await.unwrap().is_empty());
    e.handlers()
        .pause_schedules("hourly-all", true, "ana")
        .await
        .unwrap();
    assert!(e.handlers().schedules_paused("hourly-all").await.unwrap());
    let fired = e
        .tick_until(utc(2026, 6, 1, 12, 30), Duration::from_secs(60))
        .await;
    assert!(fired.is_empty(), "paused: {fired:?}");
    e.handlers()
        .pause_schedules("hourly-all", false, "ana")
        .await
        .unwrap();
    let fired = e
        .tick_until(utc(2026, 6, 1, 13, 1), Duration::from_secs(60))
        .await;
    assert_eq!(
        fired,
        ["2026-06-01T13:00:00+00:00"],
        "no catch-up of the paused hours"
    );
    let err = e
        .handlers()
        .pause_schedules("nope", true, "ana")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not registered"), "{err}");
}
