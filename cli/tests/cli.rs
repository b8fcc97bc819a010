//! The `braid` binary as users run it: output, stderr and exit codes (SPEC §3).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn braid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .output()
        .expect("the braid binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Every workflow file in `examples/` (not the local function map, `functions.yaml`).
fn example_workflows() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .filter(|p| !p.ends_with("functions.yaml"))
        .collect();
    files.sort();
    files
}

fn example(name: &str) -> String {
    examples_dir().join(name).display().to_string()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const GOOD: &str =
    "name: good\nsteps:\n  - id: a\n    pass: 1\n  - id: b\n    needs: [a]\n    pass: 2\n";
const BAD: &str =
    "name: bad\nsteps:\n  - id: a\n    neds: [b]\n    pass: 1\n  - id: a\n    pass: 2\n";

#[test]
fn validate_prints_ok_for_a_valid_file_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir, "good.yaml", GOOD);
    let out = braid(&["validate", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("ok {good}\n"));
    assert_eq!(stderr(&out), "");
}

#[test]
fn validate_prints_every_problem_with_file_line_and_column_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.yaml", BAD);
    let out = braid(&["validate", &bad]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{bad}:4:5: unknown key `neds` in step `a`; did you mean `needs`?"
        )),
        "{err}"
    );
    // Shape problems are reported before meaning problems, so the duplicate id waits.
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn validate_checks_every_file_even_after_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir,
        "dup.yaml",
        "name: dup\nsteps:\n  - id: a\n    pass: 1\n  - id: a\n    pass: 2\n",
    );
    let good = write(&dir, "good.yaml", GOOD);
    let out = braid(&["validate", &bad, &good]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), format!("ok {good}\n"));
    assert!(
        stderr(&out).contains(&format!("{bad}:5:9: duplicate step id `a`")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_names_a_file_it_cannot_read() {
    let out = braid(&["validate", "no/such/workflow.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("cannot read `no/such/workflow.yaml`"), "{err}");
}

#[test]
fn validate_accepts_json_files() {
    let out = braid(&["validate", &example("hello.json")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn every_example_validates() {
    let files: Vec<String> = example_workflows()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = braid(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), files.len());
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["validate"][..],
        &["no-such-command"][..],
        &["graph"][..],
        &["graph", "x.yaml", "--format", "png"][..],
    ] {
        let out = braid(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "braid {args:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).is_empty(), "braid {args:?} explained nothing");
    }
}

#[test]
fn help_and_version_exit_0() {
    assert_eq!(braid(&["--help"]).status.code(), Some(0));
    assert_eq!(braid(&["--version"]).status.code(), Some(0));
}

/// The `needs` edges of examples/branch-and-rejoin.yaml, from needed step to step.
const EDGES: &[(&str, &str)] = &[
    ("classify", "big-order"),
    ("big-order", "cool-down"),
    ("classify", "small-order"),
    ("cool-down", "receipt"),
    ("small-order", "receipt"),
];

#[test]
fn graph_prints_mermaid_by_default_with_every_edge() {
    let out = braid(&["graph", &example("branch-and-rejoin.yaml")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("flowchart TD"), "{text}");
    for (from, to) in EDGES {
        let edge = format!(
            "s_{} --> s_{}",
            from.replace('-', "_"),
            to.replace('-', "_")
        );
        assert!(text.contains(&edge), "no `{edge}` in\n{text}");
    }
    assert_eq!(text.matches("-->").count(), EDGES.len(), "{text}");
    assert!(text.contains(r#""big-order<br/>pass · when""#), "{text}");
}

#[test]
fn graph_prints_dot_with_every_edge() {
    let out = braid(&[
        "graph",
        &example("branch-and-rejoin.yaml"),
        "--format",
        "dot",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("digraph \"branch-and-rejoin\" {"),
        "{text}"
    );
    for (from, to) in EDGES {
        let edge = format!("\"{from}\" -> \"{to}\";");
        assert!(text.contains(&edge), "no `{edge}` in\n{text}");
    }
    assert_eq!(text.matches(" -> ").count(), EDGES.len(), "{text}");
}

#[test]
fn graph_marks_for_each_steps() {
    let out = braid(&["graph", &example("nightly-report.yaml"), "--format", "dot"]);
    let text = stdout(&out);
    assert!(
        text.contains(r#""figures" [label="figures\nlambda · for_each", shape=box3d];"#),
        "{text}"
    );
    let out = braid(&["graph", &example("nightly-report.yaml")]);
    let text = stdout(&out);
    assert!(
        text.contains(r#"s_figures[["figures<br/>lambda · for_each"]]"#),
        "{text}"
    );
}

#[test]
fn graph_of_an_invalid_file_prints_its_problems_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.yaml", BAD);
    let out = braid(&["graph", &bad]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).starts_with(&format!("{bad}:4:5: unknown key `neds`")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn schema_prints_a_json_schema_that_every_example_matches() {
    let out = braid(&["schema"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let schema: Value = serde_json::from_slice(&out.stdout).expect("the schema is JSON");
    assert_eq!(schema["title"], "Braid workflow");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    for path in example_workflows() {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let doc: Value = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => serde_json::from_str(&text).unwrap(),
            Some("yaml") => serde_saphyr::from_str(&text).unwrap(),
            _ => continue,
        };
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
    let typo: Value = serde_saphyr::from_str(BAD).unwrap();
    assert!(
        !validator.is_valid(&typo),
        "the schema accepts an unknown key"
    );
}

#[test]
fn deploy_registers_workflows_in_the_local_state_and_nothing_when_one_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let bad = write(&dir, "bad.yaml", "name: Bad Name\nsteps: []\n");
    let out = braid(&["deploy", &example("hello.yaml"), &bad, "--state", &state]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stdout(&out).is_empty(),
        "nothing registered: {}",
        stdout(&out)
    );

    let out = braid(&[
        "deploy",
        &example("hello.yaml"),
        &example("nightly-report.yaml"),
        "--state",
        &state,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("registered hello "), "{text}");
    assert!(text.contains("registered nightly-report "), "{text}");
    assert!(text.contains(&state), "says where: {text}");
}

#[test]
fn pause_and_resume_stop_and_restart_a_workflows_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let out = braid(&["deploy", &example("nightly-report.yaml"), "--state", &state]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = braid(&["pause", "nightly-report", "--state", &state]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("paused the schedules of nightly-report"));
    let listed = stdout(&braid(&["workflows", "--state", &state]));
    assert!(listed.contains("(schedules paused)"), "{listed}");
    assert!(
        listed.contains("— paused") && !listed.contains("— next"),
        "a paused schedule has no next instant: {listed}"
    );
    let out = braid(&["resume", "nightly-report", "--state", &state]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = stdout(&braid(&["workflows", "--state", &state]));
    assert!(!listed.contains("paused"), "{listed}");
    let out = braid(&["deploy", &example("hello.yaml"), "--state", &state]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = braid(&["pause", "hello", "--state", &state]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "nothing to pause: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("has no schedule to pause"),
        "{}",
        stderr(&out)
    );
    let out = braid(&["pause", "nope", "--state", &state]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`nope` is not registered"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_checks_the_examples_folder_function_map_included() {
    let mut args = vec!["validate".to_string()];
    let mut files: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "json"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = braid(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("functions.yaml (a function map)"),
        "{}",
        stdout(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("functions.yaml");
    std::fs::write(&broken, "functions:\n  worker: { nonsense: 1 }\n").unwrap();
    let out = braid(&["validate", &broken.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("functions.yaml"), "{}", stderr(&out));
}

#[test]
fn undeploy_takes_a_workflow_out_of_the_registry_and_keeps_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let out = braid(&["deploy", &example("hello.yaml"), "--state", &state]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = braid(&["start", "hello", "--wait", "--state", &state]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = braid(&["undeploy", "hello", "--state", &state]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("undeployed hello"));
    let listed = stdout(&braid(&["workflows", "--state", &state]));
    assert!(!listed.contains("hello"), "{listed}");
    let out = braid(&["start", "hello", "--state", &state]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let runs = stdout(&braid(&["runs", "--state", &state]));
    assert!(runs.contains("hello"), "history stays: {runs}");
    let out = braid(&["undeploy", "hello", "--state", &state]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not registered"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_ad_hoc_run_of_an_edited_copy_leaves_the_registered_workflow_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let registered = write(
        &dir,
        "hooked.yaml",
        "name: hooked\ntriggers:\n  - webhook: { path: orders, secret: s }\nsteps:\n  - id: a\n    pass: 1\n",
    );
    let out = braid(&["deploy", &registered, "--state", &state]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = stdout(&braid(&["workflows", "--state", &state]));
    let edited = write(
        &dir,
        "copy.yaml",
        "name: hooked\ntriggers:\n  - webhook: { path: elsewhere, secret: s }\nsteps:\n  - id: a\n    pass: 2\n",
    );
    let out = braid(&["run", &edited, "--state", &state]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = stdout(&braid(&["workflows", "--state", &state]));
    assert_eq!(
        after, before,
        "the registered version and its triggers stay"
    );
    assert!(after.contains("/hooks/orders"), "{after}");
}

/// Every entry under `dir`, as paths relative to it, sorted.
#[cfg(unix)]
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            found.push(path.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    found.sort();
    found
}

/// Sets `mode` on every file under `dir`, and `dir_mode` on `dir` and its folders.
#[cfg(unix)]
fn chmod_tree(dir: &Path, dir_mode: u32, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for rel in tree(dir) {
        let path = dir.join(rel);
        let m = if path.is_dir() { dir_mode } else { mode };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
}

#[cfg(unix)]
#[test]
fn runs_show_and_workflows_read_a_state_folder_nobody_may_write() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // An output over the inline limit, so that `show` reads the payload folder too.
    let wf = write(
        &dir,
        "wf.yaml",
        "name: kept\nsteps:\n  - id: many\n    pass: \"{{ range(2000) | list }}\"\n",
    );
    let state_arg = state.display().to_string();
    let out = braid(&["deploy", &wf, "--state", &state_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = braid(&["run", &wf, "--output", "json", "--state", &state_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = run["run_id"].as_str().unwrap().to_string();

    // chmod -R a-w. Root ignores file modes: the reads then run as an unprivileged
    // user (through a link to the binary it can reach), whom the modes do stop.
    let root = std::fs::metadata(dir.path()).unwrap().uid() == 0;
    chmod_tree(&state, 0o555, 0o444);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = dir.path().join("braid");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_braid"), &binary).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_braid"), &binary).unwrap();
    }
    let before = tree(&state);
    let read = |args: &[&str]| {
        let mut cmd = Command::new(&binary);
        cmd.args(args).arg("--state").arg(&state);
        if root {
            cmd.uid(65534).gid(65534);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        out
    };

    let listed: Value =
        serde_json::from_slice(&read(&["runs", "--output", "json"]).stdout).unwrap();
    assert_eq!(listed[0]["run_id"], id.as_str(), "{listed}");
    let shown: Value =
        serde_json::from_slice(&read(&["show", &id[..8], "--output", "json"]).stdout).unwrap();
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(
        shown["steps"]["many"]["output"].as_array().unwrap().len(),
        2000
    );
    assert!(stdout(&read(&["workflows"])).starts_with("kept  version "));
    assert_eq!(
        tree(&state),
        before,
        "reading creates no file (no lock, no journal)"
    );

    chmod_tree(&state, 0o755, 0o644);
}
