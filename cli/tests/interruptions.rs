//! Interruptions as users meet them, through the binary: a `braid run` killed with
//! `kill -9` or stopped with Ctrl-C, a second process on a state already driven, and a
//! state that cannot be written. Whatever stopped, the next process that drives the
//! state finishes the run at once — well within the deadlines below, which only tell
//! "at once" from "after the minute-long staleness window, or a 15-minute lease".

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::routing::get;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous bound for "at once" on a busy machine; the slowest repair this suite must
/// not wait for is a minute away.
const AT_ONCE: Duration = Duration::from_secs(30);

/// A local HTTP service whose `/slow/{ms}` answers after `ms`.
fn slow_server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            async fn slow(UrlPath(ms): UrlPath<u64>) -> String {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "\"late\"".into()
            }
            let app = Router::new().route("/slow/{ms}", get(slow));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

/// A workflow whose first step calls the service for `ms` milliseconds.
fn slow_workflow(base: &str, ms: u64) -> String {
    format!(
        "name: slow\nsteps:\n  - id: call\n    http: {{ url: \"{base}/slow/{ms}\" }}\n  - id: after\n    needs: [call]\n    pass: done\n"
    )
}

/// A folder with `wf.yaml`; the state goes in `state/`.
struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    fn new(workflow: &str) -> Folder {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wf.yaml"), workflow).unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        Folder { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
        cmd.args(args)
            .arg("--state")
            .arg(self.state())
            .current_dir(self.dir.path())
            .env_remove("BRAID_FUNCTIONS")
            .env_remove("BRAID_TEST_STATE_MAX_PAGES")
            .stdin(Stdio::null());
        cmd
    }

    fn braid(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `braid ARGS` in the background, its stderr collected.
    fn spawn(&self, args: &[&str]) -> Background {
        self.spawn_with(args, &[])
    }

    /// [`Folder::spawn`] with variables `env` set for this process only.
    fn spawn_with(&self, args: &[&str], env: &[(&str, &str)]) -> Background {
        let mut child = self
            .command(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Background { child, stderr }
    }

    /// The status of `step` in run `id`, read by `braid show` beside any driver.
    fn step_status(&self, id: &str, step: &str) -> String {
        let run = self.show(id);
        run["steps"][step]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn show(&self, id: &str) -> Value {
        let out = self.braid(&["show", id, "--output", "json"]);
        assert!(
            out.status.success(),
            "braid show failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until `done` holds of run `id`, or panics after `limit`.
    fn wait_until(&self, id: &str, limit: Duration, what: &str, done: impl Fn(&Value) -> bool) {
        let start = Instant::now();
        loop {
            let run = self.show(id);
            if done(&run) {
                return;
            }
            assert!(start.elapsed() < limit, "not {what} in time: {run:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The messages waiting in the "ready" queue's file.
    fn ready_messages(&self) -> i64 {
        let db = rusqlite::Connection::open(self.state().join("ready.db")).unwrap();
        db.query_row("SELECT COUNT(*) FROM queue_message", [], |r| r.get(0))
            .unwrap()
    }
}

/// A `braid` process in the background; killed when dropped.
struct Background {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Background {
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the `run ID ...` line and returns the id.
    fn run_id(&mut self) -> String {
        let start = Instant::now();
        loop {
            let text = self.stderr();
            if let Some(line) = text.lines().find(|l| l.starts_with("run ")) {
                return line.split_whitespace().nth(1).unwrap().to_string();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("braid exited ({status}) before printing the run id:\n{text}");
            }
            assert!(start.elapsed() < AT_ONCE, "no run id printed:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {name} failed");
    }

    /// Waits for the exit; returns its code (None: killed by a signal).
    fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                start.elapsed() < limit,
                "braid did not exit in time:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `braid run wf.yaml` and waits until its slow step is claimed (recorded
/// `running`): the moment a crash leaves an attempt in flight.
fn run_until_the_call_is_running(folder: &Folder) -> (Background, String) {
    let mut run = folder.spawn(&["run", "wf.yaml"]);
    let id = run.run_id();
    folder.wait_until(&id, AT_ONCE, "running", |r| {
        r["steps"]["call"]["status"] == "running"
    });
    (run, id)
}

#[test]
fn a_run_killed_mid_step_is_finished_at_once_by_the_next_braid_dev() {
    let folder = Folder::new(&slow_workflow(&slow_server(), 1500));
    let (mut run, id) = run_until_the_call_is_running(&folder);
    run.signal("-KILL");
    assert_eq!(run.exit_code(AT_ONCE), None, "killed");

    let dev = folder.spawn(&["dev", "--workflows", "workflows", "--listen", "127.0.0.1:0"]);
    folder.wait_until(&id, AT_ONCE, "succeeded", |r| r["status"] == "succeeded");
    let run = folder.show(&id);
    assert_eq!(run["steps"]["after"]["output"], "done");
    assert!(
        dev.stderr().contains("taking over 1 unfinished run(s)"),
        "{}",
        dev.stderr()
    );
}

#[test]
fn a_run_killed_mid_step_is_finished_by_braid_continue() {
    let folder = Folder::new(&slow_workflow(&slow_server(), 1500));
    let (mut run, id) = run_until_the_call_is_running(&folder);
    run.signal("-KILL");
    run.exit_code(AT_ONCE);

    let mut cont = folder.spawn(&["continue", &id, "--output", "json"]);
    assert_eq!(cont.exit_code(AT_ONCE), Some(0), "{}", cont.stderr());
    assert_eq!(folder.step_status(&id, "after"), "succeeded");
}

#[test]
fn ctrl_c_stops_braid_run_with_130_and_says_how_to_continue() {
    let folder = Folder::new(&slow_workflow(&slow_server(), 60_000));
    let (mut run, id) = run_until_the_call_is_running(&folder);
    run.signal("-INT");
    assert_eq!(run.exit_code(AT_ONCE), Some(130), "{}", run.stderr());
    let said = run.stderr();
    assert!(
        said.contains(&format!("run {id} is not finished")),
        "{said}"
    );
    assert!(
        said.contains(&format!("braid continue {id} --state ")),
        "{said}"
    );
    assert_eq!(folder.step_status(&id, "call"), "running", "left to resume");
}

#[test]
fn sigterm_stops_braid_run_like_ctrl_c() {
    let folder = Folder::new(&slow_workflow(&slow_server(), 60_000));
    let mut run = folder.spawn(&["run", "wf.yaml", "--output", "json"]);
    let id = run.run_id();
    run.signal("-TERM");
    assert_eq!(run.exit_code(AT_ONCE), Some(130), "{}", run.stderr());
    let out = run.child.stdout.take().unwrap();
    let printed = std::io::read_to_string(out).unwrap();
    assert!(printed.is_empty(), "stdout stays JSON-only: {printed:?}");
    assert!(run.stderr().contains(&id));
}

#[test]
fn a_second_driver_is_refused_naming_the_holder_while_reads_work() {
    let folder = Folder::new(&slow_workflow(&slow_server(), 100));
    let first = folder.braid(&["run", "wf.yaml"]);
    assert!(first.status.success());
    let mut dev = folder.spawn(&["dev", "--workflows", "workflows", "--listen", "127.0.0.1:0"]);
    let start = Instant::now();
    while !dev.stderr().contains("API on ") {
        assert!(start.elapsed() < AT_ONCE, "{}", dev.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = folder.braid(&["run", "wf.yaml"]);
    let said = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{said}");
    let pid = dev.child.id();
    assert!(said.contains(&format!("pid {pid} (braid dev)")), "{said}");
    assert!(!said.contains("started"), "nothing started: {said}");
    let listed = folder.braid(&["runs", "--output", "json"]);
    assert!(listed.status.success());
    let runs: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(runs.len(), 1, "only the first run");
    dev.signal("-TERM");
    assert_eq!(dev.exit_code(AT_ONCE), Some(0));
}

/// A chain of steps each writing about a page of output.
fn page_eater(steps: usize) -> String {
    let blob = "y".repeat(3000);
    let mut text = String::from("name: pages\nsteps:\n");
    for i in 0..steps {
        let needs = if i == 0 {
            String::new()
        } else {
            format!("\n    needs: [s{}]", i - 1)
        };
        text.push_str(&format!(
            "  - id: s{i}{needs}\n    pass: {{ blob: \"{blob}\" }}\n"
        ));
    }
    text
}

#[test]
fn a_full_store_fails_braid_run_fast_and_a_later_process_finishes_the_run() {
    let folder = Folder::new(&page_eater(40));
    // A state made by a small run, so the cap leaves room to start a run, not to end it.
    std::fs::write(
        folder.dir.path().join("small.yaml"),
        "name: small\nsteps:\n  - id: a\n    pass: 1\n",
    )
    .unwrap();
    assert!(folder.braid(&["run", "small.yaml"]).status.success());
    let pages = std::fs::metadata(folder.state().join("state.db"))
        .unwrap()
        .len()
        / 4096;
    // The definition (~120 KB) fits; the steps' outputs (a page each) do not.
    let cap = (pages + 50).to_string();

    let mut full = folder.spawn_with(&["run", "wf.yaml"], &[("BRAID_TEST_STATE_MAX_PAGES", &cap)]);
    let code = full.exit_code(AT_ONCE);
    let said = full.stderr();
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("state.db"), "names the file: {said}");
    assert!(said.contains("full"), "says what failed: {said}");
    assert!(
        folder.ready_messages() <= 2,
        "no pile of re-sent messages: {}",
        folder.ready_messages()
    );
    let id = said
        .lines()
        .find(|l| l.starts_with("run "))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the run id")
        .to_string();
    assert_ne!(folder.show(&id)["status"], "succeeded", "stopped mid-run");

    let mut cont = folder.spawn(&["continue", &id]);
    assert_eq!(cont.exit_code(AT_ONCE), Some(0), "{}", cont.stderr());
    assert_eq!(folder.show(&id)["status"], "succeeded");
}
