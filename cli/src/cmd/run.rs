//! `braid run FILE`: run a workflow locally to the end and print the result.

use super::backend::{self, Backend, RunRequest};
use super::local::{StateArgs, function_map, open, tokio};
use super::progress::Progress;
use super::report::{self, Format};
use super::{Exit, read_file};
use anyhow::Context;
use braid_engine::model::RunStatus;
use braid_handlers::{HandlerError, StartRequest, definition};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow file (YAML or JSON).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The run input: a JSON object, or `@path` to a JSON file.
    #[arg(long, value_name = "JSON|@FILE")]
    pub input: Option<String>,
    /// `text`: progress and a summary table; `json`: one JSON object on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Where `lambda` steps run (default: `BRAID_FUNCTIONS`, else `functions.yaml`
    /// beside the workflow file).
    #[arg(long, value_name = "FILE")]
    pub functions: Option<PathBuf>,
    /// An idempotency key: running again with the same key shows the first run.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Where the run goes: the embedded backend, or the AWS adapters on the emulator
    /// at AWS_ENDPOINT_URL (LocalStack, moto).
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    pub backend: Backend,
    #[command(flatten)]
    pub state: StateArgs,
}

/// Parses `--input`: inline JSON or `@file`.
pub fn parse_input(input: Option<&str>) -> anyhow::Result<Value> {
    let Some(text) = input else {
        return Ok(Value::Object(Default::default()));
    };
    let (source, body) = match text.strip_prefix('@') {
        Some(path) => (format!("input file `{path}`"), read_file(path.as_ref())?),
        None => ("--input".to_string(), text.to_string()),
    };
    serde_json::from_str(&body).with_context(|| format!("{source} is not valid JSON"))
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let name = args.file.display().to_string();
    let source = read_file(&args.file)?;
    let (def, wf) = definition(&name, &source)?;
    let input = parse_input(args.input.as_deref())?;
    let functions = function_map(args.functions.as_deref(), Some(&args.file));
    if args.backend == Backend::Aws {
        return backend::run_on_aws(RunRequest {
            definition: def,
            step_order: wf.steps.iter().map(|s| s.id.clone()).collect(),
            input,
            idempotency_key: args.idempotency_key.clone(),
            functions,
            output: args.output,
        });
    }
    tokio()?.block_on(async {
        let rt = open(&args.state.state, functions)?;
        let started = match rt
            .handlers()
            .start(StartRequest {
                definition: def,
                input,
                trigger: Value::Null,
                idempotency_key: args.idempotency_key.clone(),
                queue: false,
            })
            .await
        {
            Ok(s) => s,
            Err(HandlerError::Invalid(msg)) => {
                eprintln!("error: {msg}");
                return Ok(Exit::Invalid);
            }
            Err(e) => return Err(e.into()),
        };
        let progress = (args.output == Format::Text).then(|| {
            Progress::start(
                rt.handlers().clone(),
                &started.run.id,
                wf.steps.iter().map(|s| s.id.clone()).collect(),
            )
        });
        let result = rt.run_to_end(&started.run.id).await;
        if let Some(p) = progress {
            p.stop().await;
        }
        let run = result?;
        let view = rt.handlers().run_view(&run.id).await?;
        match args.output {
            Format::Text => print!("{}", report::summary(&view)),
            Format::Json => println!("{}", report::json(&view)),
        }
        Ok(if view.status == RunStatus::Succeeded {
            Exit::Success
        } else {
            Exit::RunFailed
        })
    })
}
