//! Retrying runs in place on the embedded backend: what succeeded keeps its output,
//! the rest runs again with fresh attempts — iterations of a fan-out included — and a
//! retry cut short by a crash is finished by the tick.

mod common;

use braid_engine::model::{RunStatus, StepKey, StepStatus};
use braid_handlers::HandlerError;
use braid_ports::{Clock, PortError, Task, TaskError, TaskRunner};
use common::Bench;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// `fetch` → `items` → `each` (one call per item) → `report`.
const SHAPE: &str = r#"
name: shape
steps:
  - id: fetch
    http: { url: "http://svc.invalid/fetch" }
  - id: items
    needs: [fetch]
    pass: [1, 2, 3]
  - id: each
    needs: [items]
    for_each: "{{ steps.items.output }}"
    max_parallel: 2
    http: { url: "http://svc.invalid/each", json: { n: "{{ item }}" } }
  - id: report
    needs: [each]
    pass: "{{ steps.each.output | length }}"
"#;

/// A service whose `/each` fails for good while it is broken (for item `only_item`
/// alone when set); counts calls per path, and per item of `/each`.
#[derive(Default)]
struct Service {
    broken: AtomicBool,
    only_item: Mutex<Option<Value>>,
    calls: Mutex<HashMap<String, usize>>,
}

impl Service {
    fn calls(&self, path: &str) -> usize {
        self.calls.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl TaskRunner for Service {
    async fn run(&self, task: &Task) -> Result<Value, TaskError> {
        let Task::Http { url, json, .. } = task else {
            return Err(TaskError::fatal("unexpected", "not an HTTP task"));
        };
        let path = url.rsplit('/').next().unwrap_or_default().to_string();
        *self.calls.lock().unwrap().entry(path.clone()).or_default() += 1;
        let item = json.as_ref().map(|j| j["n"].clone());
        if path == "each" {
            *self
                .calls
                .lock()
                .unwrap()
                .entry(format!("each/{}", item.clone().unwrap_or_default()))
                .or_default() += 1;
        }
        let only = self.only_item.lock().unwrap().clone();
        let hit = only.is_none_or(|o| Some(o) == item);
        if path == "each" && hit && self.broken.load(Ordering::SeqCst) {
            return Err(TaskError::fatal("http.500", "the service is down"));
        }
        Ok(json.clone().unwrap_or(json!("fetched")))
    }
}

fn bench() -> (Bench, Arc<Service>) {
    let svc = Arc::new(Service::default());
    svc.broken.store(true, Ordering::SeqCst);
    let s = svc.clone();
    let b = Bench::new(move |p| {
        p.tasks = Some(braid_handlers::TaskRunners {
            http: s.clone(),
            lambda: s,
        })
    });
    (b, svc)
}

async fn failed_run(b: &Bench) -> braid_engine::model::RunId {
    let id = b.start(SHAPE).await;
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Failed);
    id
}

#[tokio::test]
async fn a_retry_runs_the_failed_step_again_keeping_earlier_outputs() {
    let (b, svc) = bench();
    let id = failed_run(&b).await;
    assert_eq!(svc.calls("fetch"), 1);
    svc.broken.store(false, Ordering::SeqCst);

    let run = b.handlers().retry_run(&id, "ana", None).await.unwrap();
    assert_eq!(run.status, RunStatus::Running);
    let retry = run.redrives.last().unwrap();
    assert_eq!((retry.by.as_str(), retry.was), ("ana", RunStatus::Failed));
    assert_eq!(retry.steps, ["each", "report"]);
    b.deliver_all().await;

    let view = b.handlers().run_view(&id).await.unwrap();
    assert_eq!(view.status, RunStatus::Succeeded, "{view:?}");
    assert_eq!(view.output, json!({"report": 3}));
    assert_eq!(
        svc.calls("fetch"),
        1,
        "a step that succeeded is not run again"
    );
    assert_eq!(view.steps["fetch"].output, json!("fetched"));
    assert_eq!(view.retries.len(), 1);
    assert!(view.error.is_none());
}

#[tokio::test]
async fn a_retry_from_an_earlier_step_runs_it_and_what_follows() {
    let (b, svc) = bench();
    let id = failed_run(&b).await;
    svc.broken.store(false, Ordering::SeqCst);
    let run = b
        .handlers()
        .retry_run(&id, "ana", Some("fetch"))
        .await
        .unwrap();
    assert_eq!(run.redrives[0].steps, ["fetch", "items", "each", "report"]);
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Succeeded);
    assert_eq!(svc.calls("fetch"), 2);
}

#[tokio::test]
async fn a_retried_fan_out_runs_new_attempts_of_its_iterations() {
    let (b, svc) = bench();
    let id = failed_run(&b).await;
    let first = svc.calls("each");
    svc.broken.store(false, Ordering::SeqCst);
    b.handlers().retry_run(&id, "ana", None).await.unwrap();
    b.deliver_all().await;
    assert_eq!(svc.calls("each") - first, 3, "each item once");
    // Attempt numbers only grow: no token or child of the first try names these.
    for i in 0..3 {
        let it = b.step(&id, &StepKey::iteration("each", i)).await;
        assert_eq!(it.status, StepStatus::Succeeded);
        assert!(it.attempt > 1, "iteration {i} at attempt {}", it.attempt);
    }
    let each = b.step(&id, &StepKey::step("each")).await;
    assert_eq!(each.attempt, 2);
    assert_eq!(each.retry_base, 1);
}

#[tokio::test]
async fn a_retried_fan_out_runs_only_the_items_that_did_not_succeed() {
    let (b, svc) = bench();
    *svc.only_item.lock().unwrap() = Some(json!(2));
    let id = failed_run(&b).await;
    assert_eq!(
        (
            svc.calls("each/1"),
            svc.calls("each/2"),
            svc.calls("each/3")
        ),
        (1, 1, 1)
    );
    svc.broken.store(false, Ordering::SeqCst);
    let run = b.handlers().retry_run(&id, "ana", None).await.unwrap();
    assert_eq!(run.redrives[0].steps, ["each", "report"]);
    b.deliver_all().await;
    let view = b.handlers().run_view(&id).await.unwrap();
    assert_eq!(view.status, RunStatus::Succeeded, "{view:?}");
    assert_eq!(
        (
            svc.calls("each/1"),
            svc.calls("each/2"),
            svc.calls("each/3")
        ),
        (1, 2, 1),
        "only the failed item runs again"
    );
    assert_eq!(view.output, json!({"report": 3}));
    assert_eq!(
        view.steps["each"].output,
        json!([{"n": 1}, {"n": 2}, {"n": 3}]),
        "kept outputs and the new one, in item order"
    );

    // Retried from the fan-out itself, every item runs again.
    svc.broken.store(true, Ordering::SeqCst);
    *svc.only_item.lock().unwrap() = None;
    let id = failed_run(&b).await;
    svc.broken.store(false, Ordering::SeqCst);
    let before = svc.calls("each/1");
    b.handlers()
        .retry_run(&id, "ana", Some("each"))
        .await
        .unwrap();
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Succeeded);
    assert_eq!(svc.calls("each/1") - before, 1);
}

#[tokio::test]
async fn a_run_retried_again_after_failing_again_keeps_both_retries() {
    let (b, svc) = bench();
    let id = failed_run(&b).await;
    b.handlers().retry_run(&id, "ana", None).await.unwrap();
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Failed, "still broken");
    svc.broken.store(false, Ordering::SeqCst);
    b.handlers().retry_run(&id, "bo", None).await.unwrap();
    b.deliver_all().await;
    let run = b.run(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    let by: Vec<&str> = run.redrives.iter().map(|r| r.by.as_str()).collect();
    assert_eq!(by, ["ana", "bo"]);
}

#[tokio::test]
async fn only_a_run_that_ended_without_succeeding_is_retried() {
    let (b, svc) = bench();
    svc.broken.store(false, Ordering::SeqCst);
    let id = b.start(SHAPE).await;
    let conflict = |r: Result<_, HandlerError>| match r {
        Err(HandlerError::Port(PortError::Conflict(m))) => m,
        other => panic!("expected a conflict, got {other:?}"),
    };
    let m = conflict(b.handlers().retry_run(&id, "ana", None).await);
    assert!(m.contains("it is running"), "{m}");
    b.deliver_all().await;
    let m = conflict(b.handlers().retry_run(&id, "ana", None).await);
    assert!(m.contains("it succeeded"), "{m}");
    match b.handlers().retry_run(&id, "ana", Some("nope")).await {
        Err(HandlerError::Invalid(m)) => assert!(m.contains("no step `nope`"), "{m}"),
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn a_retry_cut_short_after_reopening_the_run_is_finished_by_the_tick() {
    let (b, svc) = bench();
    let id = failed_run(&b).await;
    svc.broken.store(false, Ordering::SeqCst);
    // The retry's first write alone, as a crash right after it leaves it.
    let store = &b.handlers().ports().store;
    let was = store.get_run(&id).await.unwrap();
    let wf = b.handlers().workflow(&was).await.unwrap();
    let steps = braid_engine::records::every_step(&wf, &id, store.list_steps(&id).await.unwrap());
    let rerun = braid_engine::redrive::reruns(&wf, &steps, None).unwrap();
    let reopened =
        braid_engine::redrive::reopened(&wf, &was, rerun, None, "ana", b.clock.now()).unwrap();
    assert!(store.reopen_run(&was, &reopened).await.unwrap());
    // Nothing ends the run while its retry has steps to reset.
    b.handlers().tick().await.unwrap();
    b.deliver_all().await;
    let run = b.run(&id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
}

#[tokio::test]
async fn a_fork_starts_a_new_run_from_the_kept_outputs_leaving_the_source() {
    let (b, svc) = bench();
    let id = failed_run(&b).await;
    svc.broken.store(false, Ordering::SeqCst);
    let forked = b
        .handlers()
        .fork_run(&id, "ana", None, None)
        .await
        .unwrap()
        .run;
    assert_ne!(forked.id, id);
    let from = forked.forked_from.clone().unwrap();
    assert_eq!((from.run.clone(), from.by.as_str()), (id.clone(), "ana"));
    assert_eq!(from.steps, ["each", "report"]);
    b.deliver_all().await;
    let view = b.handlers().run_view(&forked.id).await.unwrap();
    assert_eq!(view.status, RunStatus::Succeeded, "{view:?}");
    assert_eq!(view.output, json!({"report": 3}));
    assert_eq!(view.steps["fetch"].output, json!("fetched"));
    assert_eq!(
        svc.calls("fetch"),
        1,
        "the kept output is copied, not made again"
    );
    let source = b.run(&id).await;
    assert_eq!(
        source.status,
        RunStatus::Failed,
        "the source stays as it was"
    );
    assert!(source.redrives.is_empty());
}

#[tokio::test]
async fn a_fork_with_new_input_reruns_from_a_step_with_it() {
    let (b, svc) = bench();
    svc.broken.store(false, Ordering::SeqCst);
    let yaml = r#"
name: greet
params:
  who: { type: string }
steps:
  - id: fetch
    http: { url: "http://svc.invalid/fetch" }
  - id: hello
    needs: [fetch]
    pass: "hello {{ params.who }}"
"#;
    let (def, _) = braid_handlers::definition("wf.yaml", yaml).unwrap();
    let id = b
        .handlers()
        .start(braid_handlers::StartRequest {
            definition: def,
            input: json!({"who": "ada"}),
            trigger: Value::Null,
            idempotency_key: None,
            queue: false,
        })
        .await
        .unwrap()
        .run
        .id;
    b.deliver_all().await;
    assert_eq!(b.run(&id).await.status, RunStatus::Succeeded);
    // A run that succeeded forks only from a step.
    match b.handlers().fork_run(&id, "ana", None, None).await {
        Err(HandlerError::Invalid(m)) => assert!(m.contains("name a step"), "{m}"),
        other => panic!("expected invalid, got {other:?}"),
    }
    match b
        .handlers()
        .fork_run(&id, "ana", Some("hello"), Some(json!({"who": 3})))
        .await
    {
        Err(HandlerError::Invalid(m)) => assert!(m.contains("invalid input"), "{m}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
    let forked = b
        .handlers()
        .fork_run(&id, "ana", Some("hello"), Some(json!({"who": "bo"})))
        .await
        .unwrap()
        .run;
    b.deliver_all().await;
    let view = b.handlers().run_view(&forked.id).await.unwrap();
    assert_eq!(view.status, RunStatus::Succeeded);
    assert_eq!(view.steps["hello"].output, json!("hello bo"));
    assert_eq!(svc.calls("fetch"), 1);
}

#[tokio::test]
async fn a_retry_waits_for_a_slot_under_its_workflows_concurrency_limit() {
    let (b, _svc) = bench();
    let limited = SHAPE.replace("name: shape\n", "name: shape\nconcurrency: 1\n");
    let (def, _) = braid_handlers::definition("wf.yaml", &limited).unwrap();
    let first = b.start_queued(&def).await;
    b.deliver_all().await;
    assert_eq!(b.run(&first).await.status, RunStatus::Failed);
    // Another run holds the one slot.
    let second = b.start_queued(&def).await;
    assert_eq!(b.run(&second).await.status, RunStatus::Running);

    match b.handlers().retry_run(&first, "ana", None).await {
        Err(HandlerError::Port(PortError::Conflict(m))) => {
            assert!(m.contains("at its concurrency limit (1)"), "{m}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        b.run(&first).await.status,
        RunStatus::Failed,
        "left as it was"
    );

    b.deliver_all().await;
    assert!(b.run(&second).await.status.is_final());
    let run = b.handlers().retry_run(&first, "ana", None).await.unwrap();
    assert_eq!(run.status, RunStatus::Running, "the slot is free again");
}
