//! Ending waits from the command line: `braid run` says what a waiting step waits for
//! and keeps waiting; `braid approve` and `braid signal`, run beside it on the same
//! state, end the waits and the run goes on to succeed; `braid cancel` ends it, and
//! stops a function that is running.

mod common;

use common::{PATIENCE, in_background, line_with, started_run, worker_map};
use std::process::{Command, Output, Stdio};

const GATED: &str = r#"
name: gated
steps:
  - id: manager
    approval: { message: "Ship it?" }
  - id: smoke
    needs: [manager]
    signal: { name: smoke-passed }
output: "{{ steps.manager.output.by }} {{ steps.smoke.output.build }}"
"#;

fn braid(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
    cmd.args(args)
        .arg("--state")
        .arg(dir.join("state"))
        .current_dir(dir)
        .env_remove("BRAID_FUNCTIONS")
        .stdin(Stdio::null());
    cmd
}

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    braid(dir, args).output().unwrap()
}

/// `braid run wf.yaml --output json` in the background, and its stderr lines.
fn run_in_background(
    dir: &std::path::Path,
) -> (common::Background, std::sync::mpsc::Receiver<String>) {
    in_background(braid(dir, &["run", "wf.yaml", "--output", "json"]))
}

#[test]
fn a_waiting_run_goes_on_when_approved_and_signalled_from_another_command() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wf.yaml"), GATED).unwrap();
    let (mut background, seen) = run_in_background(dir.path());
    let wait_for = |what: &str| line_with(&seen, what);

    let run_id = started_run(&seen);
    let waiting = wait_for("waits for approval");
    assert!(
        waiting.contains(&format!("braid approve {run_id} manager --state")),
        "{waiting}"
    );

    let wrong = run(dir.path(), &["approve", &run_id, "nope"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("no step `nope`"));

    let approved = run(dir.path(), &["approve", &run_id, "manager", "--as", "ana"]);
    assert!(approved.status.success(), "{approved:?}");
    let again = run(dir.path(), &["reject", &run_id, "manager"]);
    assert_eq!(again.status.code(), Some(2), "decided already: {again:?}");

    let waiting = wait_for("waits for signal smoke-passed");
    assert!(
        waiting.contains(&format!("braid signal {run_id} smoke-passed")),
        "{waiting}"
    );
    let bad = run(
        dir.path(),
        &["signal", &run_id, "smoke-passed", "--data", "{bad"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--data is not valid JSON"));
    let sent = run(
        dir.path(),
        &[
            "signal",
            &run_id,
            "smoke-passed",
            "--data",
            r#"{"build": "b42"}"#,
        ],
    );
    assert!(sent.status.success(), "{sent:?}");
    assert!(String::from_utf8_lossy(&sent.stdout).contains("ended smoke"));

    let out = background.0.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "succeeded");
    assert_eq!(result["output"], "ana b42");
}

#[test]
fn a_waiting_run_is_cancelled_from_another_command_with_who_and_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wf.yaml"), GATED).unwrap();
    let (mut background, seen) = run_in_background(dir.path());
    let run_id = started_run(&seen);
    line_with(&seen, "waits for approval");

    let cancelled = run(
        dir.path(),
        &["cancel", &run_id, "--reason", "not today", "--as", "ana"],
    );
    assert!(cancelled.status.success(), "{cancelled:?}");
    assert!(
        String::from_utf8_lossy(&cancelled.stdout).contains(&format!("run {run_id} cancelled")),
        "{cancelled:?}"
    );
    let again = run(dir.path(), &["cancel", &run_id]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("it is cancelled"));

    let out = background.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "cancelled");
    assert_eq!(result["error"]["message"], "cancelled by ana: not today");
    assert_eq!(result["steps"]["manager"]["status"], "cancelled");
}

#[test]
fn a_running_function_is_stopped_when_its_run_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let map = worker_map(dir.path());
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: slow\nsteps:\n  - id: crunch\n    lambda: braid-example-worker\n    input: { op: sleep, ms: 600000 }\n",
    )
    .unwrap();
    let functions = map.to_string_lossy().into_owned();
    let (mut background, seen) = in_background(braid(
        dir.path(),
        &[
            "run",
            "wf.yaml",
            "--functions",
            &functions,
            "--output",
            "json",
        ],
    ));
    let run_id = started_run(&seen);
    // Until the function says it was invoked: its task is in flight.
    let began = std::time::Instant::now();
    while !String::from_utf8_lossy(&run(dir.path(), &["logs", &run_id]).stdout).contains("invoked")
    {
        assert!(began.elapsed() < PATIENCE, "the function never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let cancelled = run(dir.path(), &["cancel", &run_id, "--as", "ana"]);
    assert!(cancelled.status.success(), "{cancelled:?}");
    let out = background.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "cancelled");
    let crunch = &result["steps"]["crunch"];
    assert_eq!(crunch["status"], "cancelled", "{crunch}");
    assert_eq!(
        crunch["error"]["message"], "stopped while running: cancelled by ana",
        "{crunch}"
    );
}
