//! The AWS adapters against an AWS endpoint: an emulator (moto_server, LocalStack) named
//! by `AWS_ENDPOINT_URL`, as `./scripts/test` sets it up. Each test creates its own
//! uniquely named queues, buckets and buses, so tests run in parallel and need no
//! cleanup on a throwaway emulator.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::types::QueueAttributeName;
use braid_aws::event_bus::{self, EventBridgeSink};
use braid_aws::events::QueueSink;
use braid_aws::payloads::S3Payloads;
use braid_aws::queue::SqsQueue;
use braid_engine::model::LifecycleEvent;
use braid_ports::testkit::events as event_suite;
use braid_ports::testkit::payloads as payload_suite;
use braid_ports::testkit::queue as queue_suite;
use braid_ports::{PayloadStore, WorkQueue};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The SDK configuration from the environment, which must point at an emulator: these
/// tests create resources and must never silently pass without one.
async fn sdk_config() -> SdkConfig {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        panic!("set AWS_ENDPOINT_URL to an AWS emulator (./scripts/test starts one)");
    }
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// A resource name no other test uses.
fn unique(what: &str) -> String {
    format!("braid-test-{what}-{:012x}", fastrand::u64(..1 << 48))
}

/// A fresh SQS queue; its URL.
async fn create_queue(sqs: &aws_sdk_sqs::Client, what: &str) -> String {
    let out = sqs
        .create_queue()
        .queue_name(unique(what))
        .send()
        .await
        .expect("create queue");
    out.queue_url.expect("queue url")
}

/// A work queue on a fresh SQS queue.
async fn fresh_queue(config: &SdkConfig) -> SqsQueue {
    let sqs = aws_sdk_sqs::Client::new(config);
    let url = create_queue(&sqs, "queue").await;
    SqsQueue::new(sqs, url)
}

/// Lets real time pass for the queue without starving the runtime's other workers.
fn sleep(d: Duration) {
    tokio::task::block_in_place(|| std::thread::sleep(d));
}

/// Whatever is visible on `queue` now, acked: the bodies.
async fn drain(queue: &SqsQueue) -> Vec<String> {
    let got = queue
        .receive(10, Duration::from_secs(60))
        .await
        .expect("receive");
    let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
    queue.ack(&receipts).await.expect("ack");
    got.into_iter().map(|m| m.body).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn sqs_queue_passes_the_conformance_suite() {
    let config = sdk_config().await;
    // Each check on its own queue, all at once: the checks wait for real time to pass.
    let checks = vec![
        tokio::spawn({
            let config = config.clone();
            async move {
                let q = fresh_queue(&config).await;
                queue_suite::sent_message_is_received_and_acked(&q).await;
            }
        }),
        tokio::spawn({
            let config = config.clone();
            async move {
                let q = fresh_queue(&config).await;
                queue_suite::unacked_message_is_redelivered_after_visibility(&q, sleep).await;
            }
        }),
        tokio::spawn({
            let config = config.clone();
            async move {
                let q = fresh_queue(&config).await;
                queue_suite::acked_message_never_comes_back(&q, sleep).await;
            }
        }),
        tokio::spawn({
            let config = config.clone();
            async move {
                let q = fresh_queue(&config).await;
                queue_suite::stale_receipt_ack_is_harmless(&q, sleep).await;
            }
        }),
        tokio::spawn({
            let config = config.clone();
            async move {
                let q = fresh_queue(&config).await;
                queue_suite::delayed_message_is_invisible_until_due(&q, sleep).await;
            }
        }),
        tokio::spawn({
            let config = config.clone();
            async move {
                let q = fresh_queue(&config).await;
                queue_suite::batch_of_100_is_received_exactly_once(&q).await;
            }
        }),
    ];
    for check in checks {
        if let Err(e) = check.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

#[tokio::test]
async fn sqs_queue_refuses_delays_over_15_minutes() {
    let queue = fresh_queue(&sdk_config().await).await;
    let too_late = braid_ports::Outgoing {
        body: "x".into(),
        delay: Duration::from_secs(15 * 60 + 1),
    };
    let err = queue.send(vec![too_late]).await.unwrap_err();
    assert!(err.to_string().contains("15 minutes"), "{err}");
}

/// An S3 client for the emulator, which serves every bucket on one host: bucket names
/// go in the path, not in the host name. (The SDK does that by itself for an IP address
/// endpoint, but not for `localhost`, where `BUCKET.localhost` does not resolve.)
fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

/// Payloads in a fresh bucket, under a prefix.
async fn fresh_payloads() -> S3Payloads {
    let s3 = s3_client(&sdk_config().await);
    let bucket = unique("bucket");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    S3Payloads::new(s3, bucket, "payloads")
}

#[tokio::test]
async fn s3_payloads_pass_the_conformance_suite() {
    let store = fresh_payloads().await;
    payload_suite::put_then_get_round_trips(&store).await;
    payload_suite::put_overwrites(&store).await;
    payload_suite::missing_key_is_not_found(&store).await;
    payload_suite::keys_with_slashes_are_distinct(&store).await;
    payload_suite::renew_keeps_older_payloads_under_the_prefix(&store).await;
}

/// Renewing restarts an object's lifecycle clock: S3 counts days from its last write,
/// which the server-side copy onto itself moves to now.
#[tokio::test]
async fn renewing_an_s3_payload_makes_it_count_as_written_now() {
    let s3 = s3_client(&sdk_config().await);
    let bucket = unique("bucket");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let store = S3Payloads::new(s3.clone(), bucket.clone(), "payloads");
    store
        .put("runs/r1/a/1/output.json", b"kept".to_vec())
        .await
        .unwrap();
    let written = |s3: aws_sdk_s3::Client, bucket: String| async move {
        s3.head_object()
            .bucket(bucket)
            .key("payloads/runs/r1/a/1/output.json")
            .send()
            .await
            .expect("head")
            .last_modified()
            .expect("a last-modified time")
            .secs()
    };
    let first = written(s3.clone(), bucket.clone()).await;
    // Last-Modified has whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let renewed = store.renew("runs/r1/", chrono::Utc::now()).await.unwrap();
    assert_eq!(renewed, 1);
    assert!(
        written(s3, bucket).await > first,
        "the lifecycle clock restarted"
    );
    assert_eq!(store.get("runs/r1/a/1/output.json").await.unwrap(), b"kept");
}

#[tokio::test]
async fn s3_payloads_keep_20_mb_intact() {
    let store = fresh_payloads().await;
    payload_suite::large_payload_is_intact(&store).await;
}

#[tokio::test]
async fn s3_payloads_of_a_missing_bucket_are_a_backend_error() {
    let config = sdk_config().await;
    let missing = S3Payloads::new(s3_client(&config), unique("never-created"), "");
    let err = missing.get("k").await.unwrap_err();
    assert!(
        matches!(err, braid_ports::PortError::Backend { .. }),
        "a missing bucket is not a missing key: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_sink_delivers_every_event() {
    let config = sdk_config().await;
    for check in 0..2 {
        let queue = Arc::new(fresh_queue(&config).await);
        let sink = QueueSink::new(queue.clone());
        let q = queue.as_ref();
        let read = move || async move {
            drain(q)
                .await
                .iter()
                .map(|body| QueueSink::decode(body).expect("a lifecycle event"))
                .collect::<Vec<_>>()
        };
        match check {
            0 => event_suite::every_event_arrives_once_with_its_content(&sink, read).await,
            _ => event_suite::batch_of_25_arrives_whole(&sink, read).await,
        }
    }
}

/// What an EventBridge rule puts on an SQS target: the event's envelope.
#[derive(Deserialize)]
struct Envelope {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: LifecycleEvent,
}

/// A fresh bus whose rule for Braid's events targets a fresh queue: the sink onto the
/// bus, and the queue.
async fn bus_into_queue(config: &SdkConfig) -> (EventBridgeSink, SqsQueue) {
    let eventbridge = aws_sdk_eventbridge::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let bus = unique("bus");
    eventbridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create bus");
    let queue_url = create_queue(&sqs, "events").await;
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn");
    // What AWS itself needs for the rule to deliver; emulators may not check it.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
        }]
    });
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .expect("queue policy");
    let rule = unique("rule");
    eventbridge
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(serde_json::json!({"source": [event_bus::SOURCE]}).to_string())
        .send()
        .await
        .expect("put rule");
    eventbridge
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("put targets");
    (
        EventBridgeSink::new(eventbridge, bus),
        SqsQueue::new(sqs, queue_url),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_sink_delivers_every_event_through_a_rule() {
    let config = sdk_config().await;
    for check in 0..2 {
        let (sink, queue) = bus_into_queue(&config).await;
        let q = &queue;
        let read = move || async move {
            drain(q)
                .await
                .iter()
                .map(|body| {
                    let envelope: Envelope =
                        serde_json::from_str(body).expect("an EventBridge envelope");
                    assert_eq!(envelope.source, event_bus::SOURCE);
                    assert_eq!(
                        envelope.detail_type,
                        event_bus::detail_type(&envelope.detail)
                    );
                    envelope.detail
                })
                .collect::<Vec<_>>()
        };
        match check {
            0 => event_suite::every_event_arrives_once_with_its_content(&sink, read).await,
            _ => event_suite::batch_of_25_arrives_whole(&sink, read).await,
        }
    }
}

/// An event that calls for no notification goes on the bus; one that calls for
/// some goes to the notifier's queue, and so does one the bus does not take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_first_puts_plain_events_on_the_bus_and_queues_the_rest() {
    use braid_aws::event_bus::BusFirst;
    use braid_engine::model::EventKind;
    use braid_engine::notify::NoticeRef;
    use braid_ports::EventSink;
    let config = sdk_config().await;
    let (bus, on_bus) = bus_into_queue(&config).await;
    let notifier = Arc::new(fresh_queue(&config).await);
    let sink = BusFirst::new(bus, Arc::new(QueueSink::new(notifier.clone())));
    let event = |kind: EventKind, status: &str| LifecycleEvent {
        kind,
        run_id: unique("run").into(),
        workflow: "orders".into(),
        status: status.into(),
        step: None,
        error: None,
        trigger: None,
        detail: None,
        at: chrono::DateTime::from_timestamp_millis(1_793_000_000_000).unwrap_or_default(),
        notices: Vec::new(),
    };
    let plain = event(EventKind::RunStarted, "running");
    let noticed = LifecycleEvent {
        notices: vec![NoticeRef {
            step: None,
            index: 0,
            on: "failed".into(),
        }],
        ..event(EventKind::RunFinished, "failed")
    };
    sink.publish(&[plain.clone(), noticed.clone()])
        .await
        .unwrap();
    let mut arrived = Vec::new();
    for _ in 0..5 {
        arrived.extend(drain(&on_bus).await);
        if !arrived.is_empty() {
            break;
        }
    }
    let arrived: Vec<LifecycleEvent> = arrived
        .iter()
        .map(|b| serde_json::from_str::<Envelope>(b).unwrap().detail)
        .collect();
    assert_eq!(
        arrived,
        std::slice::from_ref(&plain),
        "only the plain event is on the bus"
    );
    let queued = || async {
        drain(&notifier)
            .await
            .iter()
            .map(|b| QueueSink::decode(b).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        queued().await,
        [noticed],
        "the notifier sends the notifications"
    );

    // A bus that does not take the event: it waits on the queue instead.
    let missing = EventBridgeSink::new(
        aws_sdk_eventbridge::Client::new(&config),
        unique("never-created"),
    );
    let fallback = BusFirst::new(missing, Arc::new(QueueSink::new(notifier.clone())));
    fallback
        .publish(std::slice::from_ref(&plain))
        .await
        .unwrap();
    assert_eq!(
        queued().await,
        [plain],
        "the notifier puts it on the bus later"
    );
}

/// Writes `lines` (milliseconds since the Unix epoch, text) to a new stream `stream`
/// of log group `group`, creating the group if need be.
async fn put_lines(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    lines: &[(i64, String)],
) {
    let _ = logs.create_log_group().log_group_name(group).send().await;
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .expect("create log stream");
    let events = lines.iter().map(|(at, text)| {
        aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
            .timestamp(*at)
            .message(text)
            .build()
            .unwrap()
    });
    logs.put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events.collect()))
        .send()
        .await
        .expect("put log events");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attempts_function_lines_are_found_through_the_dispatchers_log() {
    use braid_aws::logs::CloudWatchOutput;
    use braid_ports::{FunctionOutput, Invocation};
    let config = sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let dispatcher = format!("/aws/lambda/{}", unique("dispatcher"));
    let function = unique("fn");
    let group = format!("/aws/lambda/{function}");
    let started = chrono::Utc::now() - chrono::Duration::seconds(30);
    let t = |s: i64| started.timestamp_millis() + s * 1000;
    let invoked = |attempt: u32, request: &str| {
        format!(
            r#"{{"level":"INFO","fields":{{"message":"invoked a function","invocation":"[run-1 charge attempt {attempt}]","function":"{function}:live","request_id":"{request}"}},"spans":[{{"name":"dispatch","run":"run-1"}}]}}"#
        )
    };
    put_lines(
        &logs,
        &dispatcher,
        "2026/12/07/[$LATEST]d1",
        &[(t(0), invoked(1, "req-1")), (t(5), invoked(10, "req-10"))],
    )
    .await;
    let lines = |v: &[(i64, &str)]| -> Vec<(i64, String)> {
        v.iter().map(|(at, s)| (*at, s.to_string())).collect()
    };
    put_lines(
        &logs,
        &group,
        "env-a",
        &lines(&[
            (t(-3), "START RequestId: req-0 Version: $LATEST"),
            (t(-2), "an earlier invocation's line"),
            (t(-1), "END RequestId: req-0"),
            (t(1), "START RequestId: req-1 Version: $LATEST"),
            (t(2), "charging order 7"),
            (t(3), r#"{"level":"ERROR","message":"card declined"}"#),
            (t(4), "END RequestId: req-1"),
            (t(4), "REPORT RequestId: req-1 Duration: 3000.00 ms"),
            (t(8), "START RequestId: req-2 Version: $LATEST"),
            (t(9), "a later invocation's line"),
        ]),
    )
    .await;
    put_lines(
        &logs,
        &group,
        "env-b",
        &lines(&[
            (t(6), "START RequestId: req-10 Version: $LATEST"),
            (t(6), "the tenth attempt's line"),
            (t(7), "END RequestId: req-10"),
        ]),
    )
    .await;

    let output = CloudWatchOutput::new(logs.clone(), &dispatcher);
    let text = |lines: Vec<braid_ports::OutputLine>| -> Vec<String> {
        lines.into_iter().map(|l| l.text).collect()
    };
    let first = output
        .lines(&Invocation::new("run-1", "charge", 1), started)
        .await
        .unwrap();
    assert_eq!(first[0].at.timestamp_millis(), t(1));
    assert_eq!(
        text(first),
        [
            "START RequestId: req-1 Version: $LATEST",
            "charging order 7",
            r#"{"level":"ERROR","message":"card declined"}"#,
            "END RequestId: req-1",
            "REPORT RequestId: req-1 Duration: 3000.00 ms",
        ]
    );
    let tenth = output
        .lines(&Invocation::new("run-1", "charge", 10), started)
        .await
        .unwrap();
    assert_eq!(text(tenth)[1], "the tenth attempt's line");
    let never = output
        .lines(&Invocation::new("run-1", "charge", 2), started)
        .await
        .unwrap();
    assert!(never.is_empty(), "no invocation logged for attempt 2");
    let elsewhere = CloudWatchOutput::new(logs, "/aws/lambda/no-such-group");
    let none = elsewhere
        .lines(&Invocation::new("run-1", "charge", 1), started)
        .await
        .unwrap();
    assert!(none.is_empty(), "a missing log group finds nothing");
}
