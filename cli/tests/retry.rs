//! `braid retry` through the binary: a run that failed on a service that was down is
//! forked, then retried in place, once it is up — the step that succeeded keeps its
//! output, the failed one and what follows run again — and the retry shows on the run.

mod common;

use common::{braid_in, free_port};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;

/// Answers every request on `listener` with a JSON `"up"`.
fn serve(listener: TcpListener) {
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4\r\nconnection: close\r\n\r\n\"up\"",
            );
        }
    });
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_failed_run_is_retried_in_place_once_its_service_is_up() {
    let dir = tempfile::tempdir().unwrap();
    // A port with nothing listening yet: the call fails.
    let port = free_port();
    std::fs::write(
        dir.path().join("wf.yaml"),
        format!(
            r#"
name: flaky
steps:
  - id: prep
    pass: "ready"
  - id: call
    needs: [prep]
    http: {{ url: "http://127.0.0.1:{port}/" }}
  - id: after
    needs: [call]
    pass: "{{{{ steps.prep.output }}}}-{{{{ steps.call.output.body }}}}"
output: "{{{{ steps.after.output }}}}"
"#
        ),
    )
    .unwrap();
    let failed = braid_in(dir.path(), &["run", "wf.yaml", "--output", "json"]);
    assert_eq!(failed.status.code(), Some(1));
    let view = json(&failed);
    assert_eq!(view["steps"]["call"]["status"], "failed");
    let run_id = view["run_id"].as_str().unwrap().to_string();

    serve(TcpListener::bind(("127.0.0.1", port)).unwrap());
    // A fork first: a new run from the kept outputs; the source stays failed.
    let forked = braid_in(
        dir.path(),
        &["retry", &run_id, "--new", "--wait", "--output", "json"],
    );
    assert_eq!(
        forked.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forked.stderr)
    );
    let fork = json(&forked);
    assert_ne!(fork["run_id"], run_id.as_str());
    assert_eq!(fork["forked_from"]["run"], run_id.as_str());
    assert_eq!(fork["output"], "ready-up");
    let source = json(&braid_in(
        dir.path(),
        &["show", &run_id, "--output", "json"],
    ));
    assert_eq!(source["status"], "failed");

    let retried = braid_in(
        dir.path(),
        &[
            "retry",
            &run_id[..10],
            "--as",
            "ana",
            "--wait",
            "--output",
            "json",
        ],
    );
    let stderr = String::from_utf8_lossy(&retried.stderr);
    assert_eq!(retried.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("call, after run again"), "{stderr}");
    let view = json(&retried);
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["output"], "ready-up");
    assert_eq!(view["steps"]["prep"]["attempts"], 1, "kept, not run again");
    assert_eq!(view["steps"]["call"]["attempts"], 2);
    assert_eq!(view["retries"][0]["by"], "ana");
    assert_eq!(view["retries"][0]["was"], "failed");

    let shown = braid_in(dir.path(), &["show", &run_id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("retried by ana"), "{text}");

    let again = braid_in(dir.path(), &["retry", &run_id]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("it succeeded"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn input_is_refused_without_new() {
    let dir = tempfile::tempdir().unwrap();
    let out = braid_in(dir.path(), &["retry", "some-run", "--input", "{}"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--new"), "{stderr}");
}

#[test]
fn a_retry_from_a_step_the_workflow_lacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "name: fails\nsteps:\n  - id: boom\n    fail: { error: nope, message: no }\n",
    )
    .unwrap();
    let failed = braid_in(dir.path(), &["run", "wf.yaml", "--output", "json"]);
    let run_id = json(&failed)["run_id"].as_str().unwrap().to_string();
    let out = braid_in(dir.path(), &["retry", &run_id, "--from", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no step `nope`"), "{stderr}");
}
