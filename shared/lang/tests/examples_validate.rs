//! Every workflow in `examples/` is valid: it parses and validates with Braid, and, read
//! as plain JSON, it matches the published JSON Schema (what `braid schema` prints), so
//! editors using the schema agree with Braid about the examples.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Files in `examples/` that are not workflows: the map of where the examples' Lambda
/// functions run locally.
const NOT_WORKFLOWS: &[&str] = &["functions.yaml"];

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| NOT_WORKFLOWS.iter().any(|w| n == *w))
        })
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The file as plain data, the way an editor's schema check sees it.
fn as_json(path: &Path, text: &str) -> Value {
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    } else {
        serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

#[test]
fn there_are_yaml_examples_and_a_json_one() {
    let files = examples();
    let yaml = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .count();
    assert!(yaml >= 6, "only {yaml} YAML examples");
    assert!(
        files.iter().any(|p| p.ends_with("hello.json")),
        "no examples/hello.json"
    );
}

#[test]
fn every_example_parses_and_validates() {
    let mut failures = Vec::new();
    for path in examples() {
        let name = path.display().to_string();
        if let Err(e) = braid_lang::parse(&name, &read(&path)) {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_example_matches_the_json_schema() {
    let schema = braid_lang::json_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let mut failures = Vec::new();
    for path in examples() {
        let doc = as_json(&path, &read(&path));
        for error in validator.iter_errors(&doc) {
            failures.push(format!(
                "{}: {} at `{}`",
                path.display(),
                error,
                error.instance_path()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_schema_rejects_what_braid_rejects() {
    let schema = braid_lang::json_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let typo: Value =
        serde_saphyr::from_str("name: x\nsteps:\n  - id: a\n    neds: []\n    pass: 1\n").unwrap();
    assert!(
        !validator.is_valid(&typo),
        "an unknown step key passes the schema"
    );
    let no_id: Value = serde_saphyr::from_str("name: x\nsteps:\n  - pass: 1\n").unwrap();
    assert!(
        !validator.is_valid(&no_id),
        "a step without id passes the schema"
    );
}
