//! `braid workflows` and `braid backfill` on the local state, through the binary:
//! the registry listing with next instants, a dry run that starts nothing, a backfill
//! that runs each instant to the end, a second one that starts nothing new, and the
//! exit codes of failures and bad requests.

use braid_lang::Schedule;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const NIGHTLY: &str = r#"
name: nightly
description: A nightly job.
params:
  day: { type: string, required: true }
triggers:
  - schedule: { cron: "0 2 * * *", timezone: Europe/Paris }
    params: { day: "{{ trigger.scheduled_at }}" }
  - webhook: { path: nightly, secret: nightly-hook }
steps:
  - id: a
    pass: { day: "{{ params.day }}" }
"#;

/// Fails on 25 October, succeeds on other days.
const PICKY: &str = r#"
name: picky
params:
  day: { type: string, required: true }
triggers:
  - schedule: "0 12 * * *"
    params: { day: "{{ trigger.scheduled_at }}" }
steps:
  - id: check
    when: "{{ '2026-10-25' in params.day }}"
    fail: { error: BadDay, message: "no data for this day" }
"#;

const MINUTELY: &str = r#"
name: minutely
triggers:
  - schedule: "* * * * *"
steps:
  - id: a
    pass: 1
"#;

const PLAIN: &str = "name: plain\nsteps:\n  - id: a\n    pass: 1\n";

fn braid(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .arg("--state")
        .arg(state)
        .output()
        .expect("the braid binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A state with the workflows registered, each by one `braid run`.
fn registered(workflows: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for (name, yaml) in workflows {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let mut args = vec!["run", file.to_str().unwrap()];
        if yaml.contains("day:") {
            args.extend(["--input", r#"{"day": "by hand"}"#]);
        }
        let out = braid(&state, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    (dir, state)
}

/// The runs of `workflow` in the state, as `braid runs --output json` lists them.
fn runs(state: &Path, workflow: &str) -> Vec<Value> {
    let out = braid(state, &["runs", "--workflow", workflow, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The next instant of the nightly schedule, as seen at some moment between `before`
/// and `after`.
fn next_nightly(before: DateTime<Utc>, after: DateTime<Utc>) -> Vec<String> {
    let s = Schedule::parse("0 2 * * *", Some("Europe/Paris")).unwrap();
    [before, after]
        .iter()
        .map(|t| {
            s.next_after(*t)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect()
}

#[test]
fn workflows_lists_each_registered_workflow_with_its_triggers_and_next_instant() {
    let (_dir, state) = registered(&[("nightly", NIGHTLY), ("plain", PLAIN)]);
    let before = Utc::now();
    let out = braid(&state, &["workflows"]);
    let text_after = Utc::now();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("nightly  version "), "{text}");
    assert_eq!(lines[1], "  A nightly job.");
    assert!(
        next_nightly(before, text_after)
            .iter()
            .any(|n| lines[2] == format!("  schedule 0 2 * * * Europe/Paris — next {n}")),
        "{text}"
    );
    assert_eq!(
        lines[3],
        "  webhook /hooks/nightly (signature braid, secret nightly-hook)"
    );
    assert!(lines[4].starts_with("plain  version "), "{text}");
    assert_eq!(lines[5], "  no triggers: started explicitly only");
    assert_eq!(lines.len(), 6, "{text}");

    let before = Utc::now();
    let out = braid(&state, &["workflows", "--output", "json"]);
    let after = Utc::now();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let nightly = &list[0];
    assert_eq!(nightly["workflow"], "nightly");
    assert_eq!(nightly["version"].as_str().unwrap().len(), 16);
    let schedule = &nightly["triggers"][0];
    assert_eq!(schedule["kind"], "schedule");
    assert_eq!(schedule["expression"], "0 2 * * *");
    assert_eq!(schedule["timezone"], "Europe/Paris");
    assert_eq!(schedule["catchup"], "none");
    assert_eq!(schedule["overlap"], "allow");
    assert!(
        next_nightly(before, after)
            .iter()
            .any(|n| schedule["next"] == *n),
        "{schedule}"
    );
    assert_eq!(nightly["triggers"][1]["url_path"], "/hooks/nightly");
    assert_eq!(nightly["triggers"][1]["secret"], "nightly-hook");
    assert_eq!(list[1]["workflow"], "plain");
    assert_eq!(list[1]["triggers"], serde_json::json!([]));
}

#[test]
fn workflows_without_a_local_state_says_so_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = braid(&dir.path().join("none"), &["workflows"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no local state"), "{}", stderr(&out));
}

#[test]
fn a_backfill_runs_each_instant_once_and_a_second_one_starts_nothing() {
    let (_dir, state) = registered(&[("nightly", NIGHTLY)]);
    let range = ["--from", "2026-10-23", "--to", "2026-10-27T01:00:00Z"];
    let expected = [
        "2026-10-23T00:00:00Z",
        "2026-10-24T00:00:00Z",
        "2026-10-25T00:00:00Z",
        "2026-10-26T01:00:00Z",
        "2026-10-27T01:00:00Z",
    ];

    // A dry run lists the instants (across the autumn DST change) and starts nothing.
    let mut args = vec!["backfill", "nightly", "--dry-run"];
    args.extend(range);
    let out = braid(&state, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected.map(|t| format!("{t}\n")).concat());
    assert!(stderr(&out).contains("nothing started"), "{}", stderr(&out));
    assert_eq!(runs(&state, "nightly").len(), 1, "only the `braid run`");

    // The backfill: a run per instant, each to success, two at a time.
    let mut args = vec!["backfill", "nightly", "--max-parallel", "2"];
    args.extend(range);
    let out = braid(&state, &args);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    for t in expected {
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(t)).collect();
        assert_eq!(lines.len(), 2, "started and finished: {text}");
        assert!(lines[0].ends_with("  started"), "{text}");
        assert!(lines[1].contains("  succeeded in "), "{text}");
    }
    assert!(
        text.ends_with(
            "backfill of `nightly` from 2026-10-23T00:00:00Z to 2026-10-27T01:00:00Z: \
             5 succeeded; 5 run(s) started, 0 existing\n"
        ),
        "{text}"
    );
    let all = runs(&state, "nightly");
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|r| r["status"] == "succeeded"), "{all:?}");

    // Each run got its instant as input, through the trigger's params.
    let first = all
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .find_map(|id| {
            let out = braid(&state, &["show", &id, "--output", "json"]);
            let view: Value = serde_json::from_str(&stdout(&out)).unwrap();
            (view["output"]["a"]["day"] == "2026-10-23T00:00:00+00:00").then_some(view)
        });
    assert!(first.is_some(), "no run for 23 October");

    // Again: every instant has its run, nothing new starts.
    let out = braid(&state, &args);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(
        text.lines()
            .filter(|l| l.ends_with("(started before)"))
            .count(),
        5,
        "{text}"
    );
    assert!(
        text.ends_with("5 succeeded; 0 run(s) started, 5 existing\n"),
        "{text}"
    );
    assert_eq!(runs(&state, "nightly").len(), 6);
}

#[test]
fn a_backfill_with_a_failed_run_exits_1() {
    let (_dir, state) = registered(&[("picky", PICKY)]);
    let out = braid(
        &state,
        &[
            "backfill",
            "picky",
            "--from",
            "2026-10-24",
            "--to",
            "2026-10-26T23:00:00Z",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(
        text.lines()
            .any(|l| l.starts_with("2026-10-25T12:00:00Z") && l.contains("failed in ")),
        "{text}"
    );
    assert!(
        text.ends_with("1 failed, 2 succeeded; 3 run(s) started, 0 existing\n"),
        "{text}"
    );
}

#[test]
fn bad_backfills_exit_2_with_the_reason_and_start_nothing() {
    let (_dir, state) = registered(&[
        ("nightly", NIGHTLY),
        ("minutely", MINUTELY),
        ("plain", PLAIN),
    ]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["nightly", "--from", "2026-11-02", "--to", "2026-11-01"],
            "is after",
        ),
        (
            &["ghost", "--from", "2026-11-01", "--to", "2026-11-02"],
            "workflow `ghost` is not registered",
        ),
        (
            &["plain", "--from", "2026-11-01", "--to", "2026-11-02"],
            "has no schedule trigger",
        ),
        (
            &["minutely", "--from", "2026-11-01", "--to", "2026-11-09"],
            "more than the limit of 10000",
        ),
        (
            &["nightly", "--from", "last week", "--to", "2026-11-02"],
            "neither an RFC 3339 instant",
        ),
        (
            &[
                "nightly",
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-02",
                "--max-parallel",
                "0",
            ],
            "--max-parallel",
        ),
    ];
    for (args, reason) in cases {
        let mut all = vec!["backfill"];
        all.extend_from_slice(args);
        let out = braid(&state, &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(reason), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    assert_eq!(runs(&state, "nightly").len(), 1);
    assert_eq!(runs(&state, "minutely").len(), 1);
}
