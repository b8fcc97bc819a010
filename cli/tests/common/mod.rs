//! A `braid` process in the background and its stderr lines, for the tests that act on
//! a run from another command while it waits.

#![allow(dead_code)] // Each test file uses what it needs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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
