//! Taking over a state folder: the runs a stopped process left are driven on at once
//! by the next owner, with the default settings (a minute's staleness, 15-minute
//! leases) that would otherwise hold them back; a full store stops the runtime.

use braid_engine::model::{RunId, RunStatus, StepKey, StepStatus};
use braid_handlers::StartRequest;
use braid_handlers::definition;
use braid_local::backend::{LocalOptions, local_ports, local_runtime};
use braid_local::runtime::LocalRuntime;
use braid_local::takeover::take_over;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Far below what the default settings would make a stopped run wait (a minute's
/// staleness, a 15-minute lease), far above what a busy machine needs.
const AT_ONCE: Duration = Duration::from_secs(20);

/// Answers every HTTP request with 200 after `delay`.
async fn slow_server(delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let body = "{\"ok\":true}";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

fn runtime(dir: &Path) -> LocalRuntime {
    let opts = LocalOptions::new(dir);
    local_runtime(local_ports(&opts).unwrap(), &opts)
}

async fn start(rt: &LocalRuntime, yaml: &str) -> RunId {
    let (def, _) = definition("wf.yaml", yaml).unwrap();
    rt.handlers()
        .start(StartRequest {
            definition: def,
            input: Value::Null,
            trigger: Value::Null,
            idempotency_key: None,
            queue: false,
        })
        .await
        .unwrap()
        .run
        .id
}

async fn status(rt: &LocalRuntime, id: &RunId, key: &StepKey) -> StepStatus {
    let recs = rt.handlers().step_records(id).await.unwrap();
    recs.iter()
        .find(|r| r.key == *key)
        .map_or(StepStatus::Pending, |r| r.status)
}

/// Drives `yaml` until step (or iteration) `key` is recorded running, then drops the
/// runtime mid-task (what a crash leaves); returns the run.
async fn stopped_while_running(dir: &Path, yaml: &str, key: StepKey) -> RunId {
    let rt = runtime(dir);
    take_over(&rt, dir, "first").await.unwrap();
    let id = start(&rt, yaml).await;
    let mut driving = std::pin::pin!(rt.run_to_end(&id));
    let deadline = tokio::time::Instant::now() + AT_ONCE;
    loop {
        tokio::select! {
            r = &mut driving => panic!("the run ended early: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if status(&rt, &id, &key).await == StepStatus::Running {
            return id.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{key} never ran");
    }
}

async fn finished_by_the_next_owner(dir: &Path, id: &RunId) {
    let rt = runtime(dir);
    let found = take_over(&rt, dir, "second").await.unwrap();
    assert_eq!(found.active_runs, 1);
    let run = tokio::time::timeout(AT_ONCE, rt.run_to_end(id))
        .await
        .expect("the next owner finishes the run at once")
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
}

/// Stops a process while `key`'s call to a slow server is under way in `yaml` (made
/// from the server's URL), and checks that the next owner finishes the run.
async fn resumed_after_a_stop_mid_call(yaml: impl Fn(&str) -> String, key: StepKey) {
    let slow = slow_server(Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let id = stopped_while_running(dir.path(), &yaml(&slow), key).await;
    finished_by_the_next_owner(dir.path(), &id).await;
}

#[tokio::test]
async fn an_attempt_claimed_by_a_stopped_process_is_resumed_by_its_message() {
    let yaml =
        |url: &str| format!("name: one\nsteps:\n  - id: call\n    http: {{ url: \"{url}\" }}\n");
    resumed_after_a_stop_mid_call(yaml, StepKey::step("call")).await;
}

#[tokio::test]
async fn a_fan_outs_first_iteration_claimed_by_a_stopped_process_is_resumed() {
    // The iteration was claimed straight from its lane's first message, with no read
    // of a record: the next owner's delivery of it reads the claim and runs it.
    let yaml = |url: &str| {
        format!(
            "name: fan\nsteps:\n  - id: each\n    for_each: \"{{{{ [1, 2] }}}}\"\n    http: {{ url: \"{url}\" }}\n"
        )
    };
    resumed_after_a_stop_mid_call(yaml, StepKey::iteration("each", 0)).await;
}

#[tokio::test]
async fn a_step_run_in_place_of_a_message_is_resumed_when_taken_over() {
    // `call` runs in the delivery of `first`'s message (eager dispatch): it has no
    // message of its own for the next owner to deliver again.
    let yaml = |url: &str| {
        format!(
            "name: chain\nsteps:\n  - id: first\n    pass: 1\n  - id: call\n    needs: [first]\n    http: {{ url: \"{url}\" }}\n"
        )
    };
    resumed_after_a_stop_mid_call(yaml, StepKey::step("call")).await;
}

#[tokio::test]
async fn a_dependent_released_in_memory_only_is_run_after_a_takeover() {
    // Stopped after `first` ended and before `second`, run in its place, wrote
    // anything: only the takeover's sweep knows `second` is to run.
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: pair\nsteps:\n  - id: first\n    pass: 1\n  - id: second\n    needs: [first]\n    pass: 2\n";
    let rt = runtime(dir.path());
    take_over(&rt, dir.path(), "first").await.unwrap();
    let id = start(&rt, yaml).await;
    // `first` ends by its record alone, as its delivery would leave it.
    let ready = rt.handlers().step_records(&id).await.unwrap();
    let first = ready
        .iter()
        .find(|r| r.key == StepKey::step("first"))
        .unwrap();
    let done = braid_engine::model::StepRecord {
        status: StepStatus::Succeeded,
        attempt: 1,
        finished_at: Some(chrono::Utc::now()),
        output: Some(braid_engine::model::Data::Inline(Value::from(1))),
        ..first.clone()
    };
    rt.handlers()
        .ports()
        .store
        .finalize_step(&braid_ports::Guard::unchanged(first), &done, None)
        .await
        .unwrap();
    drop(rt);
    // The "ready" message of `first` was never sent to the queue in this test; what
    // repairs the run is the sweep, long before the minute a sweep would wait.
    finished_by_the_next_owner(dir.path(), &id).await;
}
