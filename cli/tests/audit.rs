//! `braid audit` lists the actions taken on a local state, in order, with their
//! actors: the OS user, or `--as`.

use serde_json::Value;
use std::process::{Command, Output, Stdio};

const TINY: &str = "name: tiny\nsteps:\n  - id: a\n    pass: 1\n";

fn braid(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .arg("--state")
        .arg(dir.join("state"))
        .current_dir(dir)
        .env("USER", "dee")
        .env_remove("BRAID_FUNCTIONS")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn audit_lists_the_actions_taken_in_order_with_their_actors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("wf.yaml"), TINY).unwrap();
    ok(braid(d, &["deploy", "wf.yaml", "--as", "ana"]));
    let started: Value =
        serde_json::from_str(&ok(braid(d, &["start", "tiny", "--output", "json"]))).unwrap();
    let run = started["run_id"].as_str().unwrap().to_string();
    ok(braid(
        d,
        &["cancel", &run, "--as", "bo", "--reason", "not today"],
    ));
    ok(braid(d, &["retry", &run, "--as", "cy"]));
    ok(braid(d, &["undeploy", "tiny"]));

    let listed: Value =
        serde_json::from_str(&ok(braid(d, &["audit", "--output", "json"]))).unwrap();
    let told: Vec<(&str, &str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["run_id"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        told,
        [
            ("deploy", "ana", "-"),
            ("start", "dee", run.as_str()),
            ("cancel", "bo", run.as_str()),
            ("retry", "cy", run.as_str()),
            ("undeploy", "dee", "-"),
        ]
    );
    assert_eq!(listed[2]["detail"], "not today");

    let text = ok(braid(d, &["audit", "--workflow", "tiny", "--limit", "2"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and the latest two: {text}");
    assert!(
        lines[1].contains("retry") && lines[1].contains("cy"),
        "{text}"
    );
    assert!(lines[2].contains("undeploy"), "{text}");
    assert_eq!(
        ok(braid(d, &["audit", "--workflow", "other"]))
            .lines()
            .count(),
        1,
        "nothing on another workflow"
    );
    let bad = braid(d, &["audit", "--since", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`soon` is not an instant"));
}
