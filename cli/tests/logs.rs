//! `braid logs` and `braid show` through the binary: every attempt of a retried step
//! in time order, with its error and when the retry was due, and what a locally
//! launched function wrote during each attempt.

mod common;

use common::{braid_in, free_port, worker_map};
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

#[test]
fn logs_print_a_local_functions_own_lines_under_each_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let map = worker_map(dir.path());
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: noisy\nsteps:\n  - id: work\n    lambda: braid-example-worker\n    input: { op: fail, error: Broken, message: \"disk on fire\" }\n    retry: { attempts: 2, backoff: 100ms }\n",
    )
    .unwrap();
    let functions = map.to_string_lossy().into_owned();
    let run = braid_in(
        dir.path(),
        &[
            "run",
            "wf.yaml",
            "--functions",
            &functions,
            "--output",
            "json",
        ],
    );
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let view: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let id = view["run_id"].as_str().unwrap().to_string();

    let text = stdout(&braid_in(dir.path(), &["logs", &id]));
    let lines: Vec<&str> = text.lines().collect();
    let find = |what: &str, from: usize| {
        from + lines[from..]
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?} after line {from} in:\n{text}"))
    };
    // Each attempt: its start, the function's own lines, then its end.
    let mut at = 0;
    for attempt in 1..=2 {
        at = find(&format!("work  attempt {attempt}  started"), at);
        at = find(&format!("work  attempt {attempt}  stdout| "), at);
        assert!(lines[at].contains("invoked"), "{}", lines[at]);
        at = find(
            &format!("work  attempt {attempt}  stderr| fail failed: disk on fire"),
            at,
        );
        at = find(&format!("work  attempt {attempt}  failed after"), at);
    }

    let json = stdout(&braid_in(dir.path(), &["logs", &id, "--output", "json"]));
    let stderr_lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "output" && e["stream"] == "stderr")
        .collect();
    assert_eq!(stderr_lines.len(), 2, "{json}");
    assert_eq!(stderr_lines[1]["attempt"], 2);
    assert_eq!(stderr_lines[1]["text"], "fail failed: disk on fire");
}
