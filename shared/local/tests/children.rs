//! Child workflows on the embedded backend, driven one delivery and one tick at a
//! time: a `workflow` step starts a child run once per attempt, takes its output or
//! its failure, and cancels it when the parent step ends otherwise.

mod common;

use braid_engine::model::{RunId, RunStatus, StepStatus};
use braid_handlers::{Decision, HandlerError, definition};
use common::Bench;
use serde_json::json;

const SQUARE: &str = r#"
name: square
params:
  n: { type: integer, required: true }
steps:
  - id: calc
    pass: "{{ params.n * params.n }}"
output: "{{ steps.calc.output }}"
"#;

const BROKEN: &str = r#"
name: broken
steps:
  - id: boom
    fail: { error: Boom, message: "it broke" }
"#;

const GATED: &str = r#"
name: gated
steps:
  - id: ok
    approval: { message: "Go?" }
"#;

impl Bench {
    async fn register(&self, yaml: &str) {
        let (def, _) = definition("child.yaml", yaml).unwrap();
        self.handlers().register(&def).await.unwrap();
    }

    /// Delivers messages and ticks until the run is over (or gives up).
    async fn finish(&self, id: &RunId) -> RunStatus {
        for _ in 0..20 {
            self.deliver_all().await;
            let status = self.run(id).await.status;
            if status.is_final() {
                return status;
            }
            self.clock.advance(std::time::Duration::from_secs(120));
            self.handlers().tick().await.unwrap();
        }
        self.run(id).await.status
    }
}

#[tokio::test]
async fn a_child_runs_with_its_input_and_its_output_is_the_steps() {
    let b = Bench::new(|_| {});
    b.register(SQUARE).await;
    let id = b
        .start(
            r#"
name: parent
steps:
  - id: sq
    workflow: square
    input: { n: 7 }
output: "{{ steps.sq.output }}"
"#,
        )
        .await;
    assert_eq!(b.finish(&id).await, RunStatus::Succeeded);
    let view = b.handlers().run_view(&id).await.unwrap();
    assert_eq!(view.output, json!(49));
    let child = view.steps["sq"].child_run.clone().expect("the child's id");
    let child_view = b.handlers().run_view(&child).await.unwrap();
    assert_eq!(child_view.status, RunStatus::Succeeded);
    let parent = child_view.parent.expect("the child names its parent");
    assert_eq!((parent.run_id, parent.key.to_string()), (id, "sq".into()));
}

#[tokio::test]
async fn a_failed_child_fails_the_step_and_a_retry_starts_a_new_child() {
    let b = Bench::new(|_| {});
    b.register(BROKEN).await;
    let id = b
        .start(
            r#"
name: parent
steps:
  - id: try
    workflow: broken
    retry: { attempts: 2, backoff: 1s }
"#,
        )
        .await;
    assert_eq!(b.finish(&id).await, RunStatus::Failed);
    let view = b.handlers().run_view(&id).await.unwrap();
    let step = &view.steps["try"];
    assert_eq!(step.attempts, 2);
    let error = step.error.clone().unwrap();
    assert_eq!(error.error, "workflow.failed");
    assert!(
        error.message.contains("Boom") && error.message.contains("it broke"),
        "{error:?}"
    );
    let children = b
        .handlers()
        .list_runs(&braid_ports::RunFilter {
            workflow: Some("broken".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(children.len(), 2, "one child per attempt");
}

#[tokio::test]
async fn a_parent_that_fails_cancels_its_waiting_child() {
    let b = Bench::new(|_| {});
    b.register(GATED).await;
    let id = b
        .start(
            r#"
name: parent
steps:
  - id: wait-for-child
    workflow: gated
  - id: slow-fail
    wait: 1m
  - id: fail
    needs: [slow-fail]
    fail: { error: Nope }
"#,
        )
        .await;
    b.deliver_all().await;
    let view = b.handlers().run_view(&id).await.unwrap();
    assert_eq!(view.steps["wait-for-child"].status, StepStatus::Waiting);
    let child = view.steps["wait-for-child"].child_run.clone().unwrap();
    assert_eq!(b.finish(&id).await, RunStatus::Failed);
    let child_run = b.run(&child).await;
    assert_eq!(child_run.status, RunStatus::Cancelled);
    // The child's approval is over with it.
    let late = b
        .handlers()
        .decide(
            &child,
            "ok",
            &Decision {
                approve: true,
                by: "ana".into(),
                comment: None,
            },
        )
        .await;
    assert!(late.is_err());
}

#[tokio::test]
async fn for_each_over_a_child_workflow_runs_a_child_per_item() {
    let b = Bench::new(|_| {});
    b.register(SQUARE).await;
    let id = b
        .start(
            r#"
name: fan
steps:
  - id: squares
    for_each: "{{ range(100) | list }}"
    max_parallel: 10
    workflow: square
    input: { n: "{{ item }}" }
output: "{{ steps.squares.output | sum }}"
"#,
        )
        .await;
    assert_eq!(b.finish(&id).await, RunStatus::Succeeded);
    let view = b.handlers().run_view(&id).await.unwrap();
    // 0² + 1² + … + 99²
    assert_eq!(view.output, json!(328_350));
}

#[tokio::test]
async fn a_workflow_that_would_call_itself_is_refused_at_deploy() {
    let b = Bench::new(|_| {});
    b.register("name: a\nsteps:\n  - id: call\n    workflow: b\n")
        .await;
    let (b_def, _) =
        definition("b.yaml", "name: b\nsteps:\n  - id: back\n    workflow: a\n").unwrap();
    let refused = b.handlers().register(&b_def).await;
    match refused {
        Err(HandlerError::Invalid(m)) => assert!(m.contains("b → a → b"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let (me, _) = definition(
        "me.yaml",
        "name: me\nsteps:\n  - id: again\n    workflow: me\n",
    )
    .unwrap();
    assert!(matches!(
        b.handlers().register(&me).await,
        Err(HandlerError::Invalid(_))
    ));
}

#[tokio::test]
async fn children_nest_only_so_deep() {
    let b = Bench::new(|_| {});
    // w9 calls w8 … w1 calls w0: ten runs deep, over the limit of 8 children.
    b.register("name: w0\nsteps:\n  - id: leaf\n    pass: 0\n")
        .await;
    for i in 1..=9 {
        b.register(&format!(
            "name: w{i}\nsteps:\n  - id: call\n    workflow: w{}\n",
            i - 1
        ))
        .await;
    }
    let id = b
        .start("name: top\nsteps:\n  - id: call\n    workflow: w9\n")
        .await;
    assert_eq!(b.finish(&id).await, RunStatus::Failed);
    // Follow the children down to the run whose step was refused a child.
    let mut run_id = id;
    let mut depth = 0;
    let refused = loop {
        let view = b.handlers().run_view(&run_id).await.unwrap();
        let call = view.steps["call"].clone();
        match call.child_run {
            Some(child) => {
                run_id = child;
                depth += 1;
            }
            None => break call.error.unwrap(),
        }
    };
    assert_eq!(depth, 8, "eight children deep, then refused");
    assert_eq!(refused.error, "workflow.depth");
}
