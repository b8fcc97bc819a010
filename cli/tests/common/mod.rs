//! A `braid` process in the background and its stderr lines, for the tests that act on
//! a run from another command while it waits.

#![allow(dead_code)] // Each test file uses what it needs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

/// Long enough for a loaded machine; a wait that ends does so within a second.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A background `braid`, killed if the test fails before it ends.
pub struct Background(pub Option<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `cmd` started in the background with its output piped, and its stderr lines.
pub fn in_background(mut cmd: Command) -> (Background, mpsc::Receiver<String>) {
    let mut background = Background(Some(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let child = background.0.as_mut().unwrap();
    let (lines, seen) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    (background, seen)
}

/// The next line of `seen` that contains `what`.
pub fn line_with(seen: &mpsc::Receiver<String>, what: &str) -> String {
    loop {
        let line = seen
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no line with `{what}`"));
        if line.contains(what) {
            return line;
        }
    }
}

/// The run id of a `run <id> of ... started` line.
pub fn started_run(seen: &mpsc::Receiver<String>) -> String {
    let started = line_with(seen, "started");
    started.split_whitespace().nth(1).unwrap().to_string()
}

/// `braid ARGS --state DIR/state` run in `dir` to its end, with no function map from
/// the environment.
pub fn braid_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .arg("--state")
        .arg(dir.join("state"))
        .current_dir(dir)
        .env_remove("BRAID_FUNCTIONS")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A local port nothing listens on (yet): a call to it fails.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The example worker's binary, built once per test run next to the `braid` binary
/// (`<target>/<profile>/braid`), with the same target folder and profile.
pub fn worker_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let braid = Path::new(env!("CARGO_BIN_EXE_braid"));
            let profile_dir = braid.parent().expect("braid lives in <target>/<profile>");
            let target_dir = profile_dir.parent().expect("a target folder");
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let mut build = Command::new(env!("CARGO"));
            build
                .current_dir(&workspace)
                .args(["build", "--quiet", "-p", "braid-example-worker"])
                .arg("--target-dir")
                .arg(target_dir);
            if profile_dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "building braid-example-worker failed");
            let binary = profile_dir.join(format!(
                "braid-example-worker{}",
                std::env::consts::EXE_SUFFIX
            ));
            assert!(binary.is_file(), "{} was not built", binary.display());
            binary
        })
        .clone()
}

/// A function map in `dir` that launches the example worker as `braid-example-worker`.
pub fn worker_map(dir: &Path) -> PathBuf {
    let map = dir.join("functions.yaml");
    let command = serde_json::to_string(&worker_binary().to_string_lossy()).unwrap();
    std::fs::write(
        &map,
        format!("functions:\n  braid-example-worker:\n    command: {command}\n"),
    )
    .unwrap();
    map
}
