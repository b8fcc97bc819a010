//! `braid run FILE --backend aws` from the command line: the built `braid` binary runs
//! every example on the stack it makes on the emulator, and each ends as it does on
//! the embedded backend (`braid run FILE`).

use braid_e2e::examples::{self, Example};
use braid_e2e::stack::endpoint;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

/// `braid run FILE --output json --input INPUT` with `extra` arguments.
fn braid_run(file: &str, input: &Value, functions: &Path, extra: &[&str]) -> Output {
    Command::new(examples::braid_binary())
        .arg("run")
        .arg(examples::examples_dir().join(file))
        .args(["--output", "json", "--input", &input.to_string()])
        .arg("--functions")
        .arg(functions)
        .args(extra)
        .output()
        .expect("braid runs")
}

/// The run's JSON object on stdout, or a panic with what braid said.
fn run_json(file: &str, backend: &str, out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{file} on the {backend} backend printed no JSON ({e}); exit {:?}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// What must agree between backends: the run's status, output and error, each step's
/// status and output (attempt counts may differ: flaky steps are flaky), with the run's
/// own id (which outputs may mention) written as `RUN`.
fn outcome(run: &Value) -> Value {
    let steps: serde_json::Map<String, Value> = run["steps"]
        .as_object()
        .expect("the run's steps")
        .iter()
        .map(|(id, s)| {
            let mut output = s["output"].clone();
            // An HTTP step's `date` header says when it was answered, not what.
            if let Some(headers) = output.get_mut("headers").and_then(Value::as_object_mut) {
                headers.remove("date");
            }
            (id.clone(), json!({"status": s["status"], "output": output}))
        })
        .collect();
    let o = json!({
        "status": run["status"],
        "output": run["output"],
        "error": run["error"],
        "steps": steps,
    });
    let id = run["run_id"].as_str().expect("a run id");
    serde_json::from_str(&o.to_string().replace(id, "RUN")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_ends_the_same_through_braid_run_on_either_backend() {
    endpoint();
    let base_url = examples::http_service().await;
    let dir = tempfile::tempdir().unwrap();
    let functions = examples::worker_function_map(dir.path());
    let state = dir.path().join("state").display().to_string();
    for example in examples::all() {
        let file = example.file;
        let input = examples::input_for(&example, &base_url);
        let local = braid_run(file, &input, &functions, &["--state", &state]);
        let aws = braid_run(file, &input, &functions, &["--backend", "aws"]);
        let (local_run, aws_run) = (
            run_json(file, "embedded", &local),
            run_json(file, "aws", &aws),
        );
        assert!(
            ["succeeded", "failed"].contains(&local_run["status"].as_str().unwrap_or("")),
            "{file}: {local_run}"
        );
        assert_eq!(
            outcome(&aws_run),
            outcome(&local_run),
            "{file} differs between backends"
        );
        assert_eq!(aws.status.code(), local.status.code(), "{file}: exit codes");
    }
}

#[test]
fn the_aws_backend_refuses_to_run_without_an_emulator_endpoint() {
    let Example { file, .. } = examples::all()
        .into_iter()
        .find(|e| e.file == "hello.yaml")
        .expect("hello.yaml is an example");
    let out = Command::new(examples::braid_binary())
        .arg("run")
        .arg(examples::examples_dir().join(file))
        .args(["--backend", "aws"])
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("braid runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.starts_with(
            "error: AWS_ENDPOINT_URL is not set: the AWS backend runs on an AWS API emulator only"
        ),
        "{stderr}"
    );
}
