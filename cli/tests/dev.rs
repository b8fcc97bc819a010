//! `braid dev` end to end, through the binary: uploads into a bucket folder, signed
//! webhooks, reloading an edited workflow, an invalid file among valid ones, and a
//! clean stop.

mod common;

use braid_lang::triggers::signature::sign_braid;
use serde_json::{Value, json};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long anything may take before a test gives up: generous, for a busy machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// A `braid dev` child on a free port with its own folders; killed when dropped.
struct Dev {
    dir: tempfile::TempDir,
    /// The state folder, relative to `dir`.
    state: &'static str,
    child: Child,
    stderr: Arc<Mutex<String>>,
    base: String,
    http: reqwest::Client,
}

impl Dev {
    /// Writes the workflow files and starts `braid dev` over them.
    fn start(files: &[(&str, &str)], env: &[(&str, &str)]) -> Dev {
        Self::start_with(files, env, |_| {})
    }

    /// Like [`Dev::start`], after `prepare` made what should be there at start.
    fn start_with(
        files: &[(&str, &str)],
        env: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join("workflows").join(name), text).unwrap();
        }
        prepare(dir.path());
        let args = ["dev", "--workflows", "workflows", "--buckets", "buckets"];
        let args = args
            .into_iter()
            .chain(["--state", "state", "--listen", "127.0.0.1:0"]);
        Self::launch(dir, "state", args.map(OsString::from), env)
    }

    /// `braid dev` as the README's walkthrough starts it, in a fresh folder: over the
    /// repository's `examples/`, with the state and its bucket folders in `.braid`.
    fn on_examples(env: &[(&str, &str)]) -> Dev {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let args = [
            "dev".into(),
            "--workflows".into(),
            examples.into_os_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        Self::launch(tempfile::tempdir().unwrap(), ".braid", args, env)
    }

    /// Starts `braid ARGS` in `dir`, its state in `state`, and waits for its API's
    /// address.
    fn launch(
        dir: tempfile::TempDir,
        state: &'static str,
        args: impl IntoIterator<Item = OsString>,
        env: &[(&str, &str)],
    ) -> Dev {
        let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
            .args(args)
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .env_remove("BRAID_FUNCTIONS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
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
        let mut dev = Dev {
            dir,
            state,
            child,
            stderr,
            base: String::new(),
            http: reqwest::Client::new(),
        };
        let line = dev.wait_for_line("API on ");
        let url = line.split("API on ").nth(1).unwrap();
        dev.base = url.split_whitespace().next().unwrap().to_string();
        dev
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a line of stderr containing `needle`, and returns it.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.stderr().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "braid dev exited ({status}) before printing `{needle}`:\n{}",
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no `{needle}` on stderr in time:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `braid runs --state DIR --output json`, run beside the server.
    fn runs(&self) -> Vec<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_braid"))
            .args(["runs", "--output", "json", "--state"])
            .arg(self.path(self.state))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        match serde_json::from_slice(&out.stdout).unwrap() {
            Value::Array(runs) => runs,
            other => panic!("not a list: {other}"),
        }
    }

    async fn post(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Starts `workflow` with `POST /runs`; returns the run id.
    /// `GET /metrics`, which must answer the Prometheus text format: the text, parsed.
    async fn scrape(&self) -> (String, prometheus_parse::Scrape) {
        let resp = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{}", self.stderr());
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        let text = resp.text().await.unwrap();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .unwrap_or_else(|e| panic!("not the Prometheus text format ({e}):\n{text}"));
        (text, scrape)
    }

    async fn start_run(&self, workflow: &str) -> String {
        let body = json!({"workflow": workflow}).to_string().into_bytes();
        let (status, v) = self.post("/runs", &[], body).await;
        assert_eq!(status, 202, "{v}\n{}", self.stderr());
        v["run_id"].as_str().unwrap().to_string()
    }

    /// Waits until run `id` is final; returns its view (`GET /runs/{id}`).
    async fn finished(&self, id: &str) -> Value {
        let start = Instant::now();
        loop {
            let (status, v) = self.get(&format!("/runs/{id}")).await;
            if status == 200 && !["queued", "running"].contains(&v["status"].as_str().unwrap()) {
                return v;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "run {id} did not finish: {v}\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `braid runs` lists a run of `workflow`; returns it.
    async fn listed(&self, workflow: &str) -> Value {
        let start = Instant::now();
        loop {
            if let Some(r) = self.runs().into_iter().find(|r| r["workflow"] == workflow) {
                return r;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no run of {workflow} listed:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited 0.
    #[cfg(unix)]
    fn stop(&mut self) -> bool {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "braid dev did not stop:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const UPLOAD: &str = r#"
name: upload
triggers:
  - s3: { bucket: inbox, prefix: in/ }
steps:
  - id: seen
    pass: { key: "{{ trigger.key }}", size: "{{ trigger.size }}", bucket: "{{ trigger.bucket }}" }
output: "{{ steps.seen.output }}"
"#;

#[tokio::test]
async fn a_file_created_in_a_bucket_folder_starts_the_workflow_with_its_key() {
    let mut dev = Dev::start_with(&[("upload.yaml", UPLOAD)], &[], |dir| {
        let old = dir.join("buckets/inbox/in");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("old.csv"), "there before").unwrap();
    });
    dev.wait_for_line("loaded upload");
    assert!(
        dev.stderr()
            .contains("s3: files created under buckets/inbox/in/"),
        "{}",
        dev.stderr()
    );

    std::fs::create_dir_all(dev.path("buckets/inbox/in/sub")).unwrap();
    std::fs::write(dev.path("buckets/inbox/in/sub/new.csv"), "a,b\n1,2\n").unwrap();
    let listed = dev.listed("upload").await;
    let view = dev.finished(listed["run_id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(
        view["output"],
        json!({"key": "in/sub/new.csv", "size": 8, "bucket": "inbox"})
    );
    dev.wait_for_line("started by s3");

    // A file outside the trigger's prefix starts nothing, and the file that was there
    // at start never did.
    std::fs::write(dev.path("buckets/inbox/elsewhere.txt"), "x").unwrap();
    dev.wait_for_line("inbox/elsewhere.txt: no s3 trigger matches");
    assert_eq!(dev.runs().len(), 1, "{:?}", dev.runs());

    #[cfg(unix)]
    {
        assert!(dev.stop(), "{}", dev.stderr());
        assert!(
            dev.stderr().contains("braid dev stopped"),
            "{}",
            dev.stderr()
        );
    }
}

const HOOKED: &str = r#"
name: hooked
triggers:
  - webhook: { path: orders, secret: orders-hook }
steps:
  - id: order
    pass: "{{ trigger.body.id }}"
output: "{{ steps.order.output }}"
"#;

#[tokio::test]
async fn a_signed_webhook_starts_a_run_and_a_bad_signature_is_refused() {
    let secret = "s3cret-for-tests";
    let mut dev = Dev::start(
        &[("hooked.yaml", HOOKED)],
        &[("BRAID_SECRET_ORDERS_HOOK", secret)],
    );
    dev.wait_for_line("loaded hooked");
    assert!(
        dev.stderr()
            .contains(&format!("webhook: POST {}/hooks/orders", dev.base)),
        "{}",
        dev.stderr()
    );

    let body = br#"{"id": 42}"#.to_vec();
    let now = chrono::Utc::now().timestamp();
    let bad = sign_braid(b"not the secret", &body, now);
    let (status, v) = dev
        .post("/hooks/orders", &[("Braid-Signature", bad)], body.clone())
        .await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"], "unauthorized");
    assert!(dev.runs().is_empty());

    let good = sign_braid(secret.as_bytes(), &body, now);
    let (status, v) = dev
        .post(
            "/hooks/orders",
            &[("Braid-Signature", good.clone())],
            body.clone(),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let id = v["run_id"].as_str().unwrap().to_string();
    let listed = dev.listed("hooked").await;
    assert_eq!(listed["run_id"], id.as_str());
    let view = dev.finished(&id).await;
    assert_eq!(view["output"], 42, "{view}");
    dev.wait_for_line(&format!("run {id} of hooked started by webhook"));

    // The same delivery again is refused; a body that is not text is a 400.
    let (status, _) = dev
        .post("/hooks/orders", &[("Braid-Signature", good)], body)
        .await;
    assert_eq!(status, 401);
    let (status, v) = dev.post("/hooks/orders", &[], vec![0xff, 0xfe]).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = dev.get("/runs?workflow=hooked").await;
    assert_eq!(status, 200);
    assert_eq!(v["runs"].as_array().unwrap().len(), 1, "{v}");
}

fn versioned(text: &str) -> String {
    format!(
        "name: edited\nsteps:\n  - id: say\n    pass: \"{text}\"\noutput: \"{{{{ steps.say.output }}}}\"\n"
    )
}

#[tokio::test]
async fn an_edited_workflow_file_is_registered_again_and_new_runs_use_it() {
    let mut dev = Dev::start(&[("edited.yaml", &versioned("first"))], &[]);
    dev.wait_for_line("loaded edited");
    let first = dev.start_run("edited").await;
    assert_eq!(dev.finished(&first).await["output"], "first");

    std::fs::write(
        dev.path("workflows/edited.yaml"),
        versioned("second version"),
    )
    .unwrap();
    dev.wait_for_line("reloaded edited");
    let second = dev.start_run("edited").await;
    assert_eq!(dev.finished(&second).await["output"], "second version");
    // The first run still shows what it ran.
    assert_eq!(dev.finished(&first).await["output"], "first");

    // A new file is loaded too.
    std::fs::write(
        dev.path("workflows/later.json"),
        r#"{"name": "later", "steps": [{"id": "a", "pass": 1}]}"#,
    )
    .unwrap();
    dev.wait_for_line("loaded later");
    let later = dev.start_run("later").await;
    assert_eq!(dev.finished(&later).await["status"], "succeeded");
}

const BROKEN: &str = "name: broken\nsteps:\n  - id: a\n    pass: 1\n    needs: [nowhere]\n";

#[tokio::test]
async fn an_invalid_workflow_file_is_reported_and_the_others_still_load() {
    let good = "name: good\nsteps:\n  - id: a\n    pass: ok\n";
    let mut dev = Dev::start(&[("good.yaml", good), ("broken.yaml", BROKEN)], &[]);
    dev.wait_for_line("loaded good");
    let line = dev.wait_for_line("broken.yaml:");
    // file:line:col: message
    let after = line.split("broken.yaml:").nth(1).unwrap();
    let mut parts = after.split(':');
    assert!(parts.next().unwrap().parse::<u32>().is_ok(), "{line}");
    assert!(parts.next().unwrap().parse::<u32>().is_ok(), "{line}");
    dev.wait_for_line("broken.yaml is invalid: skipped");
    let (status, v) = dev
        .post(
            "/runs",
            &[],
            json!({"workflow": "broken"}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 404, "{v}");

    // Breaking a loaded file keeps its last good version.
    std::fs::write(dev.path("workflows/good.yaml"), "name: good\nsteps: 3\n").unwrap();
    dev.wait_for_line("good.yaml is invalid: workflow `good` stays at version");
    let id = dev.start_run("good").await;
    assert_eq!(dev.finished(&id).await["output"], json!({"a": "ok"}));
}

#[tokio::test]
async fn a_removed_workflow_file_undeploys_its_workflow_and_its_webhook() {
    let secret = "s3cret-for-tests";
    let mut dev = Dev::start(
        &[("hooked.yaml", HOOKED)],
        &[("BRAID_SECRET_ORDERS_HOOK", secret)],
    );
    dev.wait_for_line("loaded hooked");
    let before = dev.start_run("hooked").await;
    assert!(!before.is_empty());

    std::fs::remove_file(dev.dir.path().join("workflows/hooked.yaml")).unwrap();
    dev.wait_for_line("undeployed hooked");
    let body = br#"{"id": 7}"#.to_vec();
    let signed = sign_braid(secret.as_bytes(), &body, chrono::Utc::now().timestamp());
    let (status, v) = dev
        .post("/hooks/orders", &[("Braid-Signature", signed)], body)
        .await;
    assert_eq!(status, 404, "the webhook is gone: {v}");
    let start = serde_json::to_vec(&serde_json::json!({"workflow": "hooked"})).unwrap();
    let (status, v) = dev.post("/runs", &[], start).await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = dev.get("/runs?workflow=hooked").await;
    assert_eq!(status, 200);
    assert_eq!(v["runs"].as_array().unwrap().len(), 1, "history stays: {v}");
}

#[test]
fn the_buckets_folder_follows_the_state_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
    cmd.args(["dev", "--workflows", "workflows", "--state", "elsewhere"])
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdin(Stdio::null());
    let (_dev, seen) = common::in_background(cmd);
    let watching = common::line_with(&seen, "watching");
    assert!(
        watching.contains("`elsewhere/buckets` for uploads"),
        "{watching}"
    );
    assert!(dir.path().join("elsewhere/buckets").is_dir());
}

#[tokio::test]
async fn stopping_says_which_runs_are_left_unfinished_and_how_to_finish_them() {
    let gated = "name: gated\nsteps:\n  - id: ok\n    approval: { message: \"Go?\" }\n";
    let mut dev = Dev::start(&[("gated.yaml", gated)], &[]);
    dev.wait_for_line("loaded gated");
    let id = dev.start_run("gated").await;
    dev.wait_for_line("waits for approval");
    assert!(dev.stop(), "{}", dev.stderr());
    let said = dev.stderr();
    assert!(said.contains("1 run(s) not finished"), "{said}");
    assert!(said.contains(&format!("{id} of gated")), "{said}");
}

#[tokio::test]
async fn bodies_the_stack_takes_are_taken_and_larger_ones_get_a_json_413() {
    let mut dev = Dev::start(
        &[("hooked.yaml", HOOKED)],
        &[("BRAID_SECRET_ORDERS_HOOK", "s3cret-for-tests")],
    );
    dev.wait_for_line("loaded hooked");
    let big = vec![b'x'; 3_900_000];
    let (status, v) = dev.post("/hooks/orders", &[], big).await;
    assert_eq!(status, 401, "read, then refused for its signature: {v}");
    let too_big = vec![b'x'; 7 * 1024 * 1024];
    let (status, v) = dev.post("/hooks/orders", &[], too_big).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"], "invalid_request", "{v}");
}

/// A workflow file of several megabytes: thousands of steps with long texts, and at
/// the end a need of a step that is not there, so it is checked to the end and refused.
fn big_invalid_workflow() -> String {
    let text = "x".repeat(400);
    let mut yaml = String::from("name: big\nsteps:\n");
    for i in 0..10_000 {
        yaml.push_str(&format!("  - id: s{i}\n    pass: \"{text}\"\n"));
    }
    yaml.push_str("  - id: last\n    needs: [nowhere]\n    pass: 1\n");
    yaml
}

#[tokio::test]
async fn the_api_answers_while_a_big_workflow_file_is_checked() {
    let small = "name: small\nsteps:\n  - id: a\n    pass: ok\n";
    let mut dev = Dev::start(&[("small.yaml", small)], &[]);
    dev.wait_for_line("loaded small");

    // Written under a hidden name, then renamed: the folder sees it whole at once.
    let big = big_invalid_workflow();
    assert!(big.len() > 4_000_000, "{}", big.len());
    std::fs::write(dev.path("workflows/.big.yaml"), &big).unwrap();
    std::fs::rename(
        dev.path("workflows/.big.yaml"),
        dev.path("workflows/big.yaml"),
    )
    .unwrap();
    dev.wait_for_line("loading workflows/big.yaml");
    let (status, v) = dev.get("/runs").await;
    assert_eq!(status, 200, "{v}");
    assert!(
        !dev.stderr().contains("big.yaml is invalid"),
        "the API answered only once the file was checked:\n{}",
        dev.stderr()
    );

    dev.wait_for_line("big.yaml is invalid: skipped");
    let id = dev.start_run("small").await;
    assert_eq!(dev.finished(&id).await["status"], "succeeded");
}

/// The README's `braid dev` walkthrough, step by step as typed there: the server over
/// `examples/`, a run started by `POST /runs` (curl's `-d` sends a form content type)
/// and listed, a file created in `examples/inbox.yaml`'s bucket folder, and a webhook
/// signed as the openssl one-liner signs it.
#[tokio::test]
async fn the_readme_walkthrough_starts_each_run_it_shows() {
    let secret = "dev-secret";
    let mut dev = Dev::on_examples(&[("BRAID_SECRET_ORDERS_HOOK", secret)]);
    dev.wait_for_line("loaded inbox");
    let form = || {
        (
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        )
    };

    let body = br#"{"workflow": "hello", "input": {"who": "Ada"}}"#.to_vec();
    let (status, v) = dev.post("/runs", &[form()], body).await;
    assert_eq!(status, 202, "{v}");
    let hello = dev.finished(v["run_id"].as_str().unwrap()).await;
    assert_eq!(hello["status"], "succeeded", "{hello}");
    assert_eq!(hello["output"]["greeting"], "Hello, Ada!");
    let (status, v) = dev.get("/runs?workflow=hello").await;
    assert_eq!(
        (status, v["runs"].as_array().unwrap().len()),
        (200, 1),
        "{v}"
    );

    let incoming = dev.path(".braid/buckets/acme-orders/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::write(incoming.join("day.csv"), "id,total\n").unwrap();
    let listed = dev.listed("inbox").await;
    let uploaded = dev.finished(listed["run_id"].as_str().unwrap()).await;
    assert_eq!(uploaded["status"], "succeeded", "{uploaded}");
    assert_eq!(
        uploaded["output"],
        json!({"source": "s3", "file": "incoming/day.csv", "order": {}})
    );
    dev.wait_for_line("of inbox started by s3");

    let body = br#"{"id": 42}"#.to_vec();
    let signed = sign_braid(secret.as_bytes(), &body, chrono::Utc::now().timestamp());
    let (status, v) = dev
        .post(
            "/hooks/orders",
            &[("Braid-Signature", signed), form()],
            body,
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let hooked = dev.finished(v["run_id"].as_str().unwrap()).await;
    assert_eq!(hooked["status"], "succeeded", "{hooked}");
    assert_eq!(
        hooked["output"],
        json!({"source": "webhook", "file": "", "order": {"id": 42}})
    );
    assert_eq!(hooked["steps"]["order"]["output"], "took in order 42");
    dev.wait_for_line("of inbox started by webhook");
}

#[tokio::test]
async fn metrics_are_served_in_the_prometheus_text_format_after_a_few_runs() {
    let flaky = "name: counted\nsteps:\n  - id: a\n    pass: 1\n  - id: b\n    needs: [a]\n    http: { url: \"http://127.0.0.1:1/\", timeout: 2s }\n    retry: { attempts: 2, backoff: 10ms }\n";
    let mut dev = Dev::start(&[("counted.yaml", flaky)], &[]);
    dev.wait_for_line("loaded counted");
    for _ in 0..3 {
        let id = dev.start_run("counted").await;
        assert_eq!(dev.finished(&id).await["status"], "failed");
    }
    let (text, scrape) = dev.scrape().await;
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                _ => 0.0,
            })
            .sum()
    };
    let wf = ("workflow", "counted");
    assert_eq!(value("braid_runs_started_total", &[wf]), 3.0, "{text}");
    assert_eq!(
        value("braid_runs_finished_total", &[wf, ("status", "failed")]),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(
            "braid_step_attempts_total",
            &[wf, ("kind", "http"), ("outcome", "failed")]
        ),
        6.0,
        "two attempts a run: {text}"
    );
    assert_eq!(
        value("braid_step_retries_total", &[wf, ("kind", "http")]),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(
            "braid_step_attempts_total",
            &[wf, ("kind", "pass"), ("outcome", "succeeded")]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(value("braid_run_duration_seconds", &[wf]), 3.0, "{text}");
    assert!(
        value("braid_queue_lag_seconds", &[wf, ("kind", "pass")]) >= 3.0,
        "{text}"
    );
}

#[tokio::test]
async fn metrics_are_served_under_the_aws_backend_too() {
    let wf = "name: counted-on-aws\nsteps:\n  - id: a\n    pass: 1\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
    std::fs::write(dir.path().join("workflows/counted-on-aws.yaml"), wf).unwrap();
    let args = [
        "dev",
        "--workflows",
        "workflows",
        "--backend",
        "aws",
        "--listen",
        "127.0.0.1:0",
    ];
    let mut dev = Dev::launch(dir, "state", args.map(OsString::from), &[]);
    dev.wait_for_line("loaded counted-on-aws");
    let id = dev.start_run("counted-on-aws").await;
    assert_eq!(dev.finished(&id).await["status"], "succeeded");
    // Its events went straight on the stack's bus, and were printed as they went.
    dev.wait_for_line(&format!("run {id} of counted-on-aws started by api"));
    dev.wait_for_line(&format!("run {id} of counted-on-aws succeeded"));
    let (text, scrape) = dev.scrape().await;
    let finished = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "braid_runs_finished_total"
                && s.labels.get("workflow") == Some("counted-on-aws")
                && s.labels.get("status") == Some("succeeded")
        })
        .unwrap_or_else(|| panic!("no finished run counted:\n{text}"));
    assert!(matches!(
        finished.value,
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) if v >= 1.0
    ));
}

#[tokio::test]
async fn a_failed_runs_notification_is_sent_from_braid_dev() {
    use axum::{Router, body::Bytes, extract::State, routing::post};
    type Got = Arc<Mutex<Vec<Value>>>;
    async fn take(State(got): State<Got>, body: Bytes) -> &'static str {
        got.lock()
            .unwrap()
            .push(serde_json::from_slice(&body).unwrap());
        "ok"
    }
    let got = Got::default();
    let app = Router::new()
        .route("/hook", post(take))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let wf = format!(
        "name: alerted\nnotify:\n  - on: [failed]\n    webhook: {{ url: \"{hook}\" }}\nsteps:\n  - id: a\n    fail: {{ error: Broke, message: down }}\n"
    );
    let mut dev = Dev::start(&[("alerted.yaml", &wf)], &[]);
    dev.wait_for_line("loaded alerted");
    let id = dev.start_run("alerted").await;
    assert_eq!(dev.finished(&id).await["status"], "failed");
    let start = Instant::now();
    while got.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < DEADLINE,
            "no notification:\n{}",
            dev.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = got.lock().unwrap()[0].clone();
    assert_eq!(sent["kind"], "run.finished");
    assert_eq!(sent["run_id"], id.as_str());
    assert_eq!(sent["error"]["error"], "Broke");
}
