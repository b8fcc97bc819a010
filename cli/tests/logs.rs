//! `braid logs` and `braid show` through the binary: every attempt of a retried step
//! in time order, with its error and when the retry was due.

mod common;

use common::{braid_in, free_port};
use std::process::Output;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn logs_tell_each_attempt_of_a_retried_step_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: each call fails, and is retried once.
    let port = free_port();
    std::fs::write(
        dir.path().join("wf.yaml"),
        format!(
            "name: down\nsteps:\n  - id: prep\n    pass: 1\n  - id: call\n    needs: [prep]\n    http: {{ url: \"http://127.0.0.1:{port}/\" }}\n    retry: {{ attempts: 2, backoff: 100ms }}\n"
        ),
    )
    .unwrap();
    let run = braid_in(dir.path(), &["run", "wf.yaml", "--output", "json"]);
    assert_eq!(run.status.code(), Some(1));
    let view: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let id = view["run_id"].as_str().unwrap().to_string();
    assert_eq!(view["steps"]["call"]["earlier"][0]["attempt"], 1);

    let logs = braid_in(dir.path(), &["logs", &id]);
    assert_eq!(logs.status.code(), Some(0));
    let text = stdout(&logs);
    let lines: Vec<&str> = text.lines().collect();
    let find = |what: &str| {
        lines
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?} in:\n{text}"))
    };
    let first_failed = find("call  attempt 1  failed after");
    assert!(find("prep  attempt 1  started") < find("call  attempt 1  started"));
    assert!(find("call  attempt 1  started") < first_failed);
    assert!(first_failed < find("call  attempt 2  started"));
    assert!(find("call  attempt 2  started") < find("call  attempt 2  failed"));
    assert!(
        lines[first_failed].contains("; retry at "),
        "{}",
        lines[first_failed]
    );
    assert!(!lines[find("call  attempt 2  failed")].contains("retry at"));

    let only = stdout(&braid_in(
        dir.path(),
        &["logs", &id, "--step", "call", "--output", "json"],
    ));
    let entries: Vec<serde_json::Value> = only
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.iter().all(|e| e["step"] == "call"), "{only}");
    assert_eq!(entries.len(), 4, "two starts and two ends: {only}");
    assert_eq!(entries[1]["event"], "ended");
    assert_eq!(entries[1]["status"], "failed");

    let unknown = braid_in(dir.path(), &["logs", &id, "--step", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));

    let shown = stdout(&braid_in(dir.path(), &["show", &id]));
    assert!(shown.contains("earlier attempts"), "{shown}");
    assert!(shown.contains("call attempt 1: "), "{shown}");
}
