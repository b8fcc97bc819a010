//! Values of any size: run inputs and trigger data over the inline limit are kept by
//! reference (the run's record stays small, a step loads them only when it reads them,
//! and a start whose input is bigger than a store record succeeds as it does on AWS),
//! and an error message of any size is recorded bounded, the whole kept by reference;
//! a long run's payloads are renewed as it ends, to live as long as its records.

use async_trait::async_trait;
use braid_engine::model::RunStatus;
use braid_handlers::{StartRequest, definition};
use braid_local::backend::{LocalOptions, local_ports, local_runtime};
use braid_ports::{PayloadStore, PortResult};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The payload store, counting the reads of keys ending in `suffix`, and keeping what
/// each renewal was asked and did.
struct CountingReads {
    inner: Arc<dyn PayloadStore>,
    suffix: &'static str,
    reads: AtomicUsize,
    renewals: std::sync::Mutex<Vec<(String, usize)>>,
}

impl CountingReads {
    fn around(inner: Arc<dyn PayloadStore>, suffix: &'static str) -> Self {
        CountingReads {
            inner,
            suffix,
            reads: AtomicUsize::new(0),
            renewals: std::sync::Mutex::default(),
        }
    }
}

#[async_trait]
impl PayloadStore for CountingReads {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()> {
        self.inner.put(key, bytes).await
    }

    async fn get(&self, key: &str) -> PortResult<Vec<u8>> {
        if key.ends_with(self.suffix) {
            self.reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get(key).await
    }

    async fn renew(
        &self,
        prefix: &str,
        before: braid_engine::model::Timestamp,
    ) -> PortResult<usize> {
        let renewed = self.inner.renew(prefix, before).await?;
        self.renewals
            .lock()
            .unwrap()
            .push((prefix.to_string(), renewed));
        Ok(renewed)
    }
}

const FAN_OUT: &str = r#"
name: big-input
params:
  list: { type: array, required: true }
steps:
  - id: each
    for_each: "{{ params.list }}"
    max_parallel: 8
    pass: "{{ item.n * 2 }}"
  - id: summary
    needs: [each]
    pass:
      count: "{{ params.list | length }}"
      sum: "{{ steps.each.output | sum }}"
      kind: "{{ trigger.kind }}"
      hook: "{{ trigger.body.note | length }}"
"#;

#[tokio::test]
async fn a_fan_out_over_a_big_input_loads_it_once_not_per_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LocalOptions::new(dir.path());
    let mut ports = local_ports(&opts).unwrap();
    let counting = Arc::new(CountingReads::around(
        ports.payloads.clone(),
        "/params.json",
    ));
    ports.payloads = counting.clone();
    let rt = local_runtime(ports, &opts);

    let n = 3_000;
    let list: Vec<Value> = (0..n)
        .map(|i| json!({"n": i, "pad": "p".repeat(20)}))
        .collect();
    let trigger = json!({"kind": "webhook", "body": {"note": "t".repeat(600 * 1024)}});
    let (def, _) = definition("wf.yaml", FAN_OUT).unwrap();
    let started = rt
        .handlers()
        .start(StartRequest {
            definition: def,
            input: json!({ "list": list }),
            trigger,
            idempotency_key: None,
            queue: false,
        })
        .await
        .expect("an input bigger than a store record is taken");

    let stored = rt
        .handlers()
        .ports()
        .store
        .get_run(&started.run.id)
        .await
        .unwrap();
    let record = serde_json::to_string(&stored).unwrap();
    assert!(
        record.len() < 2048,
        "the run's record holds references, not the input: {} bytes",
        record.len()
    );
    assert_eq!(
        stored.trigger["kind"], "webhook",
        "the trigger's kind stays inline"
    );

    let run = tokio::time::timeout(Duration::from_secs(60), rt.run_to_end(&started.run.id))
        .await
        .expect("the run finishes")
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let view = rt.handlers().run_view(&run.id).await.unwrap();
    assert_eq!(
        view.steps["summary"].output,
        json!({"count": n, "sum": n * (n - 1), "kind": "webhook", "hook": 600 * 1024})
    );
    assert_eq!(
        counting.reads.load(Ordering::SeqCst),
        2,
        "the params are read by the expansion and the step that reads them, not by each iteration"
    );
}

#[tokio::test]
async fn a_failure_with_a_huge_message_is_recorded_bounded_with_the_whole_kept() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LocalOptions::new(dir.path());
    let rt = local_runtime(local_ports(&opts).unwrap(), &opts);
    let yaml = r#"
name: long-failure
params:
  text: { type: string, required: true }
steps:
  - id: explain
    fail: { error: too_long, message: "{{ params.text }}" }
"#;
    let text = "why ".repeat(128 * 1024);
    let (def, _) = definition("wf.yaml", yaml).unwrap();
    let started = rt
        .handlers()
        .start(StartRequest {
            definition: def,
            input: json!({ "text": text }),
            trigger: Value::Null,
            idempotency_key: None,
            queue: false,
        })
        .await
        .unwrap();
    let run = tokio::time::timeout(Duration::from_secs(30), rt.run_to_end(&started.run.id))
        .await
        .expect("the run finishes")
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let view = rt.handlers().run_view(&run.id).await.unwrap();
    let error = view.steps["explain"]
        .error
        .clone()
        .expect("the step's error");
    assert_eq!(
        error.error, "too_long",
        "the step failed for its own reason"
    );
    assert!(
        error.message.len() < 8 * 1024,
        "bounded: {} bytes",
        error.message.len()
    );
    assert!(error.message.starts_with("why why"));
    let key = error
        .message
        .rsplit_once("the whole message is payload ")
        .map(|(_, k)| k.trim_end_matches(']'))
        .expect("the message names where the whole one is");
    assert!(error.message.contains(&format!("of {} bytes", text.len())));
    let whole = rt.handlers().ports().payloads.get(key).await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&whole).unwrap(),
        json!(text)
    );
    let run_error = view.error.expect("the run's error");
    assert!(run_error.message.len() < 8 * 1024);
}

#[tokio::test]
async fn a_long_run_renews_its_payloads_as_it_ends_and_a_short_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LocalOptions::new(dir.path());
    let mut ports = local_ports(&opts).unwrap();
    let counting = Arc::new(CountingReads::around(ports.payloads.clone(), "-"));
    ports.payloads = counting.clone();
    // The clock is the run's: a month passes while it waits. The files' own times are
    // the real ones, a month before the run's end.
    let clock = Arc::new(braid_ports::ManualClock::new(chrono::Utc::now()));
    ports.clock = clock.clone();
    let rt = local_runtime(ports, &opts);
    let yaml = r#"
name: long
steps:
  - id: make
    pass: "{{ 'x' * 10000 }}"
  - id: nap
    needs: [make]
    wait: 20d
  - id: use
    needs: [nap]
    pass: "{{ steps.make.output | length }}"
"#;
    let (def, _) = definition("wf.yaml", yaml).unwrap();
    let start = |def: braid_engine::model::Definition| StartRequest {
        definition: def,
        input: json!({}),
        trigger: Value::Null,
        idempotency_key: None,
        queue: false,
    };
    let started = rt.handlers().start(start(def)).await.unwrap();
    let id = started.run.id.clone();
    let waiting = async {
        loop {
            let nap = rt.handlers().run_view(&id).await.unwrap().steps["nap"].status;
            if nap == braid_engine::model::StepStatus::Waiting {
                clock.advance(Duration::from_secs(30 * 24 * 3600));
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (run, ()) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(rt.run_to_end(&id), waiting)
    })
    .await
    .expect("the run finishes");
    assert_eq!(run.unwrap().status, RunStatus::Succeeded);
    assert_eq!(
        *counting.renewals.lock().unwrap(),
        [(format!("runs/{id}/"), 1)],
        "the month-old output of `make` is renewed as the run ends"
    );

    let (def, _) = definition("wf.yaml", &yaml.replace("20d", "1d")).unwrap();
    let short = rt.handlers().start(start(def)).await.unwrap();
    let short_yaml_done = async {
        loop {
            let nap = rt.handlers().run_view(&short.run.id).await.unwrap().steps["nap"].status;
            if nap == braid_engine::model::StepStatus::Waiting {
                // Two days: the run is shorter than a week, nothing to renew.
                clock.advance(Duration::from_secs(2 * 24 * 3600));
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (run, ()) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(rt.run_to_end(&short.run.id), short_yaml_done)
    })
    .await
    .expect("the run finishes");
    assert_eq!(run.unwrap().status, RunStatus::Succeeded);
    assert_eq!(
        counting.renewals.lock().unwrap().len(),
        1,
        "a run ending within a week of its start asks for no renewal"
    );
}
