//! The corpus of broken workflow files in `tests/invalid/`: each file shows one family of
//! mistakes and declares, in `# expect: LINE:COL: TEXT` comment lines, every diagnostic
//! it must produce, in order, with its exact position and a part of its message.

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One expected diagnostic.
#[derive(Debug)]
struct Expect {
    line: u32,
    column: u32,
    text: String,
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .collect();
    files.sort();
    files
}

fn expectations(text: &str) -> Result<Vec<Expect>, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let (Some(line), Some(column), Some(message)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("malformed expectation `{rest}`"));
            };
            Ok(Expect {
                line: line
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad line in `{rest}`"))?,
                column: column
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad column in `{rest}`"))?,
                text: message.trim().to_string(),
            })
        })
        .collect()
}

/// What is wrong with one file's diagnostics, if anything.
fn check(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let expected = expectations(&text)?;
    if expected.is_empty() {
        return Err("declares no `# expect:` line".into());
    }
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let invalid = match braid_lang::parse(&name, &text) {
        Ok(_) => return Err("parsed as a valid workflow".into()),
        Err(e) => e,
    };
    let got = &invalid.diagnostics;
    let mut problems = String::new();
    if got.len() != expected.len() {
        let _ = writeln!(
            problems,
            "expected {} diagnostics, got {}",
            expected.len(),
            got.len()
        );
    }
    for (i, want) in expected.iter().enumerate() {
        match got.get(i) {
            Some(d)
                if d.pos.line == want.line
                    && d.pos.column == want.column
                    && d.message.contains(&want.text) => {}
            Some(d) => {
                let _ = writeln!(
                    problems,
                    "#{}: expected {}:{}: …{}…\n    got {}:{}: {}",
                    i + 1,
                    want.line,
                    want.column,
                    want.text,
                    d.pos.line,
                    d.pos.column,
                    d.message
                );
            }
            None => {
                let _ = writeln!(
                    problems,
                    "#{}: expected {}:{}: …{}…, got nothing",
                    i + 1,
                    want.line,
                    want.column,
                    want.text
                );
            }
        }
    }
    for (i, d) in got.iter().enumerate().skip(expected.len()) {
        let _ = writeln!(problems, "#{}: unexpected {}: {}", i + 1, d.pos, d.message);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{problems}full output:\n{invalid}"))
    }
}

#[test]
fn every_broken_file_reports_exactly_its_expected_diagnostics() {
    let mut failures = String::new();
    for path in corpus() {
        if let Err(why) = check(&path) {
            let _ = writeln!(failures, "{}:\n{why}", path.display());
        }
    }
    assert!(failures.is_empty(), "\n{failures}");
}

#[test]
fn the_corpus_covers_many_families_of_mistakes() {
    let files = corpus();
    assert!(
        files.len() >= 25,
        "only {} files in the corpus",
        files.len()
    );
    let several = files
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            expectations(&text).unwrap().len() > 1
        })
        .count();
    assert!(
        several >= 5,
        "only {several} files show several mistakes at once"
    );
}
