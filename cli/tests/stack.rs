//! The `braid` binary against a deployed stack on an AWS emulator (`AWS_ENDPOINT_URL`):
//! `deploy`, `start`, `runs` and `show` with the per-resource flags and with `--stack`
//! through CloudFormation outputs.

use aws_sdk_cloudformation::types::StackStatus;
use braid_aws::backend::aws_handlers;
use braid_aws::config::AwsConfig;
use braid_e2e::stack::{TestStack, sdk};
use braid_emulated::driver::Driver;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs `braid` with the emulator's environment (dummy credentials unless set).
fn braid<S: AsRef<str>>(args: &[S]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
    cmd.args(args.iter().map(AsRef::as_ref));
    for (var, default) in [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, default);
        }
    }
    cmd.output().expect("the braid binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_out(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// `args` followed by the flags naming each of the stack's resources.
fn with_flags(args: &[&str], cfg: &AwsConfig) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    for (flag, value) in [
        ("--table", &cfg.table),
        ("--ready-queue-url", &cfg.ready_queue_url),
        ("--result-queue-url", &cfg.result_queue_url),
        ("--event-queue-url", &cfg.event_queue_url),
        ("--bucket", &cfg.bucket),
        ("--event-bus", &cfg.event_bus),
    ] {
        all.extend([flag.to_string(), value.clone()]);
    }
    all
}

fn hello() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/hello.yaml")
        .display()
        .to_string()
}

/// The dispatcher's ARN and invokable functions, as the template's outputs give them
/// with the default `InvokableFunctionPrefix`.
const DISPATCHER_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:braid-StepDispatcher-X1";
const INVOKABLE: &str = "arn:aws:lambda:us-east-1:123456789012:function:braid-*";

/// A CloudFormation stack whose outputs name `stack`'s resources (all but `leave_out`),
/// as the template's do; its only resource is a queue, because a stack needs one.
async fn cloudformation_stack(stack: &TestStack, leave_out: &[&str]) -> String {
    let cfg = &stack.config;
    let mut outputs = serde_json::Map::new();
    for (key, value) in [
        ("TableName", &cfg.table),
        ("ReadyQueueUrl", &cfg.ready_queue_url),
        ("ResultQueueUrl", &cfg.result_queue_url),
        ("EventQueueUrl", &cfg.event_queue_url),
        ("PayloadBucketName", &cfg.bucket),
        ("EventBusName", &cfg.event_bus),
        ("StepDispatcherFunctionArn", &DISPATCHER_ARN.to_string()),
        ("InvokableFunctionPatterns", &INVOKABLE.to_string()),
    ] {
        if !leave_out.contains(&key) {
            outputs.insert(key.into(), json!({ "Value": value }));
        }
    }
    let template = json!({
        "Resources": { "Anchor": { "Type": "AWS::SQS::Queue" } },
        "Outputs": outputs,
    });
    let cfn = aws_sdk_cloudformation::Client::new(&sdk().await);
    let name = format!("{}-cfn", stack.name);
    cfn.create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .send()
        .await
        .expect("create stack");
    for _ in 0..100 {
        let described = cfn
            .describe_stacks()
            .stack_name(&name)
            .send()
            .await
            .unwrap();
        let status = described.stacks()[0].stack_status().cloned();
        if status == Some(StackStatus::CreateComplete) {
            return name;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stack {name} was not created");
}

#[tokio::test]
async fn a_deployed_workflow_is_started_listed_and_shown_through_the_resource_flags() {
    let stack = TestStack::create("cli").await;
    let cfg = &stack.config;

    let out = braid(&with_flags(&["deploy", &hello()], cfg));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let registered = stdout(&out);
    assert!(registered.starts_with("registered hello "), "{registered}");

    let started = json_out(&braid(&with_flags(
        &[
            "start",
            "hello",
            "--input",
            r#"{"who": "Ada"}"#,
            "--output",
            "json",
        ],
        cfg,
    )));
    assert_eq!(started["status"], "running");
    assert_eq!(started["existing"], false);
    let run_id = started["run_id"].as_str().unwrap().to_string();

    let listed = json_out(&braid(&with_flags(&["runs", "--output", "json"], cfg)));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["run_id"], run_id.as_str());
    assert_eq!(listed[0]["workflow"], "hello");
    let table = stdout(&braid(&with_flags(&["runs"], cfg)));
    assert!(
        table.contains(&run_id) && table.contains("running"),
        "{table}"
    );

    let shown = json_out(&braid(&with_flags(
        &["show", &run_id, "--output", "json"],
        cfg,
    )));
    assert_eq!(shown["status"], "running");

    // The stack's functions, driven in-process, take the run from its queued steps.
    let driver = Driver::new(&stack, aws_handlers(stack.ports()));
    driver
        .run_to_end(&run_id.as_str().into(), Some(Duration::from_secs(60)))
        .await
        .expect("the run ends");

    let shown = json_out(&braid(&with_flags(
        &["show", &run_id, "--output", "json"],
        cfg,
    )));
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(
        shown["output"],
        json!({"greeting": "Hello, Ada!", "characters": 11})
    );
    let text = stdout(&braid(&with_flags(&["show", &run_id], cfg)));
    assert!(
        text.contains(&format!("run {run_id} (hello): succeeded")),
        "{text}"
    );
    assert!(text.contains("\"greeting\": \"Hello, Ada!\""), "{text}");
}

#[tokio::test]
async fn start_with_a_used_idempotency_key_prints_the_first_run() {
    let stack = TestStack::create("cli-idem").await;
    let cfg = &stack.config;
    assert_eq!(
        braid(&with_flags(&["deploy", &hello()], cfg)).status.code(),
        Some(0)
    );

    let start = with_flags(&["start", "hello", "--idempotency-key", "k1"], cfg);
    let first = braid(&start);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let again = braid(&start);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(stdout(&again), stdout(&first));
    assert!(stderr(&again).contains("idempotency key was used before"));

    let mut json_start = start.clone();
    json_start.extend(["--output".to_string(), "json".to_string()]);
    let existing = json_out(&braid(&json_start));
    assert_eq!(existing["existing"], true);
    assert_eq!(existing["run_id"], stdout(&first).trim());
}

#[tokio::test]
async fn deploy_registers_nothing_when_any_file_is_invalid() {
    let stack = TestStack::create("cli-bad").await;
    let cfg = &stack.config;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "name: good\nsteps:\n  - id: a\n    pass: 1\n").unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nsteps:\n  - id: a\n    neds: [b]\n    pass: 1\n",
    )
    .unwrap();
    let (good, bad) = (good.display().to_string(), bad.display().to_string());

    let out = braid(&with_flags(&["deploy", &good, &bad], cfg));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains(&format!("{bad}:4:5: unknown key `neds` in step `a`")),
        "{}",
        stderr(&out)
    );

    let out = braid(&with_flags(&["start", "good"], cfg));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("workflow `good` is not registered"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn show_of_an_unknown_run_exits_2_naming_the_run() {
    let stack = TestStack::create("cli-unknown").await;
    let out = braid(&with_flags(&["show", "01NOSUCHRUN"], &stack.config));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "error: no run `01NOSUCHRUN` in table `{}`\n",
            stack.config.table
        )
    );
}

#[tokio::test]
async fn stack_names_its_resources_through_its_cloudformation_outputs() {
    let stack = TestStack::create("cli-cfn").await;
    let name = cloudformation_stack(&stack, &[]).await;

    let out = braid(&["deploy", &hello(), "--stack", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = braid(&["start", "hello", "--stack", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();

    let listed = json_out(&braid(&["runs", "--stack", &name, "--output", "json"]));
    assert_eq!(listed[0]["run_id"], run_id.as_str(), "{listed}");
    let shown = json_out(&braid(&[
        "show", &run_id, "--stack", &name, "--output", "json",
    ]));
    assert_eq!(shown["workflow"], "hello");
    let out = braid(&["show", "01NOSUCHRUN", "--stack", &name]);
    assert!(
        stderr(&out).contains(&format!("in stack `{name}`")),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn deploy_refuses_a_lambda_step_the_stacks_dispatcher_may_not_invoke() {
    let stack = TestStack::create("cli-scope").await;
    let name = cloudformation_stack(&stack, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed.yaml");
    std::fs::write(
        &allowed,
        "name: allowed\nsteps:\n  - id: a\n    lambda: braid-example-worker\n  \
         - id: b\n    lambda: braid-example-worker:live\n",
    )
    .unwrap();
    let outside = dir.path().join("outside.yaml");
    std::fs::write(
        &outside,
        "name: outside\nsteps:\n  - id: price\n    lambda: orders-price\n",
    )
    .unwrap();
    let (allowed, outside) = (allowed.display().to_string(), outside.display().to_string());

    let out = braid(&["deploy", &allowed, &outside, "--stack", &name]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!(
            "error: {outside}: step `price` invokes `orders-price`, which the dispatcher of \
             stack `{name}` may not invoke (it may invoke {INVOKABLE}): allow it with the \
             stack parameter InvokableFunctionPrefix (a name prefix) or InvokableFunctions \
             (ARN patterns)\n"
        )
    );
    let registered = json_out(&braid(&["workflows", "--stack", &name, "--output", "json"]));
    assert_eq!(registered, json!([]));

    let out = braid(&["deploy", &allowed, "--stack", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test]
async fn a_missing_stack_output_is_named_and_its_flag_stands_in() {
    let stack = TestStack::create("cli-partial").await;
    let name = cloudformation_stack(&stack, &["EventBusName"]).await;

    let out = braid(&["runs", "--stack", &name]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "error: stack `{name}` has no output EventBusName: is it a Braid stack? \
             (or pass --event-bus)\n"
        )
    );

    let out = braid(&[
        "runs",
        "--stack",
        &name,
        "--event-bus",
        &stack.config.event_bus,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test]
async fn a_missing_stack_exits_2_naming_it() {
    // The emulator must be there, so that the stack is what is missing.
    braid_e2e::stack::endpoint();
    let out = braid(&["runs", "--stack", "braid-no-such-stack"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: no stack `braid-no-such-stack` in "),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
}

#[tokio::test]
async fn a_failed_run_is_retried_forked_logged_and_refused_a_cancel_on_a_stack() {
    let stack = TestStack::create("cli-retry").await;
    let cfg = &stack.config;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guarded.yaml");
    std::fs::write(
        &file,
        "name: guarded\nparams:\n  bad: { type: boolean, required: true }\nsteps:\n  - id: prep\n    pass: 1\n  - id: check\n    needs: [prep]\n    when: \"{{ params.bad }}\"\n    fail: { error: Bad, message: \"the input is bad\" }\n  - id: done\n    needs: [check]\n    pass: \"{{ steps.prep.output }}\"\n",
    )
    .unwrap();
    let deployed = braid(&with_flags(&["deploy", &file.display().to_string()], cfg));
    assert_eq!(deployed.status.code(), Some(0), "{}", stderr(&deployed));
    let driver = Driver::new(&stack, aws_handlers(stack.ports()));
    let drive = |id: String| {
        let driver = &driver;
        async move {
            driver
                .run_to_end(&id.as_str().into(), Some(Duration::from_secs(60)))
                .await
                .expect("the run ends");
        }
    };

    let started = json_out(&braid(&with_flags(
        &[
            "start",
            "guarded",
            "--input",
            r#"{"bad": true}"#,
            "--output",
            "json",
        ],
        cfg,
    )));
    let run_id = started["run_id"].as_str().unwrap().to_string();
    drive(run_id.clone()).await;

    let cancel = braid(&with_flags(&["cancel", &run_id], cfg));
    assert_eq!(cancel.status.code(), Some(2), "{}", stderr(&cancel));
    assert!(
        stderr(&cancel).contains("it is failed"),
        "{}",
        stderr(&cancel)
    );

    // In place: `check` runs again (and fails again); `prep` keeps its output.
    // On a stack the credentials' principal acts: a name is refused.
    let named = braid(&with_flags(&["retry", &run_id, "--as", "ana"], cfg));
    assert_eq!(named.status.code(), Some(2), "{}", stderr(&named));
    assert!(
        stderr(&named).contains("--as ana: on a stack"),
        "{}",
        stderr(&named)
    );
    let retried = braid(&with_flags(&["retry", &run_id], cfg));
    assert_eq!(retried.status.code(), Some(0), "{}", stderr(&retried));
    assert!(
        stderr(&retried).contains("check, done run again"),
        "{}",
        stderr(&retried)
    );
    drive(run_id.clone()).await;
    let shown = json_out(&braid(&with_flags(
        &["show", &run_id, "--output", "json"],
        cfg,
    )));
    assert_eq!(shown["status"], "failed");
    let by = shown["retries"][0]["by"].as_str().unwrap().to_string();
    assert!(by.starts_with("arn:aws:"), "the IAM principal: {by}");
    let audit = json_out(&braid(&with_flags(&["audit", "--output", "json"], cfg)));
    let retry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "retry" && e["run_id"] == run_id.as_str())
        .expect("the retry is in the stack's audit trail");
    assert_eq!(retry["actor"], by.as_str());
    assert_eq!(shown["steps"]["prep"]["attempts"], 1);
    assert_eq!(shown["steps"]["check"]["earlier"][0]["status"], "failed");

    // A fork with a good input succeeds; the source stays failed.
    let forked = braid(&with_flags(
        &["retry", &run_id, "--new", "--input", r#"{"bad": false}"#],
        cfg,
    ));
    assert_eq!(forked.status.code(), Some(0), "{}", stderr(&forked));
    let fork_id = stdout(&forked).trim().to_string();
    assert_ne!(fork_id, run_id);
    drive(fork_id.clone()).await;
    let fork = json_out(&braid(&with_flags(
        &["show", &fork_id, "--output", "json"],
        cfg,
    )));
    assert_eq!(fork["status"], "succeeded", "{fork}");
    assert_eq!(fork["output"], json!({"done": 1}));
    assert_eq!(fork["forked_from"]["run"], run_id.as_str());
    assert_eq!(fork["steps"]["done"]["output"], 1);

    let logs = stdout(&braid(&with_flags(
        &["logs", &run_id, "--step", "check"],
        cfg,
    )));
    let ends = logs.lines().filter(|l| l.contains("failed after")).count();
    assert_eq!(ends, 2, "one end per drive:\n{logs}");
}
