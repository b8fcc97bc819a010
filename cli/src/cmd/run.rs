//! `braid run FILE`: run a workflow locally to the end and print the result.
//!
//! It prints the run's id before the first step runs, takes the state folder over
//! (refused while another process drives it; see `braid_local::owner`), and stops at
//! once on Ctrl-C or SIGTERM (exit 130) or when the state cannot be written (exit 1),
//! saying how to continue the run: `braid continue RUN`.

use super::backend::{self, Backend, RunRequest};
use super::interrupt::Interrupts;
use super::local::{DEFAULT_STATE, StateArgs, function_map, open_with_api, take_over, tokio};
use super::progress::Progress;
use super::report::{self, Format};
use super::{Exit, read_file};
use anyhow::Context;
use braid_engine::model::{Definition, RunId, RunStatus};
use braid_handlers::{HandlerError, Handlers, StartRequest, Started, definition};
use braid_local::runtime::LocalRuntime;
use serde_json::Value;
use std::path::{Path, PathBuf};

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
    match input {
        Some(text) => parse_json_arg("--input", text),
        None => Ok(Value::Object(Default::default())),
    }
}

/// Parses the value of option `flag`: inline JSON or `@file`; errors name either.
pub fn parse_json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    let (source, body) = match text.strip_prefix('@') {
        Some(path) => (format!("{flag} file `{path}`"), read_file(path.as_ref())?),
        None => (flag.to_string(), text.to_string()),
    };
    serde_json::from_str(&body).with_context(|| format!("{source} is not valid JSON"))
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let name = args.file.display().to_string();
    let source = read_file(&args.file)?;
    let (def, wf) = definition(&name, &source)?;
    let input = parse_input(args.input.as_deref())?;
    let functions = function_map(args.functions.as_deref(), Some(&args.file));
    let state = &args.state.state;
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
    if let Some(problem) = unreachable_function(&wf, functions.as_deref())? {
        eprintln!("error: {problem}");
        return Ok(Exit::Invalid);
    }
    tokio()?.block_on(async {
        let mut interrupts = Interrupts::catch()?;
        // Tasks that report back need somewhere to call: the API on a loopback port
        // for as long as the run is driven.
        let api = match wf.steps.iter().any(|s| s.callback.is_some()) {
            true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await?),
            false => None,
        };
        let api_url = match &api {
            Some(l) => Some(format!("http://{}", l.local_addr()?)),
            None => None,
        };
        let rt = open_with_api(state, functions.clone(), api_url)?;
        take_over(&rt, state, "braid run").await?;
        let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(listener) = api {
            tokio::spawn(super::dev::server::serve(
                listener,
                rt.handlers().clone(),
                async move {
                    let _ = api_stopped.await;
                },
            ));
        }
        let _stop_api_on_return = stop_api;
        let started =
            match start_announced(rt.handlers(), def, input, args.idempotency_key.clone()).await? {
                Ok(started) => started,
                Err(exit) => return Ok(exit),
            };
        let id = &started.run.id;
        let driving = Driving {
            state,
            functions: functions.as_deref(),
            format: args.output,
        };
        let steps = wf.steps.iter().map(|s| s.id.clone()).collect();
        driving.to_end(&rt, id, steps, &mut interrupts).await
    })
}

/// The first `lambda` step naming (literally) a function nothing here can invoke, and
/// why: such a run could only fail when the step is reached.
fn unreachable_function(
    wf: &braid_lang::Workflow,
    functions: Option<&std::path::Path>,
) -> anyhow::Result<Option<String>> {
    use braid_local::lambda::{FunctionMap, LambdaRunner};
    let named: Vec<(&str, &str)> = wf
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            braid_lang::StepKind::Lambda { function } if !function.contains("{{") => {
                Some((s.id.as_str(), function.as_str()))
            }
            _ => None,
        })
        .collect();
    if named.is_empty() {
        return Ok(None);
    }
    let map = match functions {
        Some(path) => FunctionMap::load(path)?,
        None => FunctionMap::default(),
    };
    let runner = LambdaRunner::from_env(map)?;
    Ok(named.into_iter().find_map(|(step, function)| {
        runner
            .unroutable(function)
            .map(|why| format!("step `{step}`: {why}"))
    }))
}

/// Starts an ad-hoc run of `definition` through `handlers` and says so on stderr, its
/// id before any step runs (either backend); `Err(exit)` when the definition or the
/// input is refused, said on stderr too.
pub async fn start_announced(
    handlers: &Handlers,
    definition: Definition,
    input: Value,
    idempotency_key: Option<String>,
) -> anyhow::Result<Result<Started, Exit>> {
    let workflow = definition.workflow.clone();
    let request = StartRequest {
        definition,
        input,
        trigger: Value::Null,
        idempotency_key,
        queue: false,
    };
    let started = match handlers.start(request).await {
        Ok(s) => s,
        // Bad input, or a key used before with another input.
        Err(
            HandlerError::Invalid(msg) | HandlerError::Port(braid_ports::PortError::Conflict(msg)),
        ) => {
            eprintln!("error: {msg}");
            return Ok(Err(Exit::Invalid));
        }
        Err(e) => return Err(e.into()),
    };
    let id = &started.run.id;
    if started.existing {
        eprintln!("run {id} of `{workflow}` (its idempotency key was used before)");
    } else {
        eprintln!("run {id} of `{workflow}` started");
    }
    Ok(Ok(started))
}

/// Driving one run to its end in this process, as `braid run` and `braid continue` do.
pub struct Driving<'a> {
    pub state: &'a Path,
    pub functions: Option<&'a Path>,
    pub format: Format,
}

impl Driving<'_> {
    /// Drives every run of the state until `id` is final, then prints it; `steps`, its
    /// workflow's step ids in file order, for the progress lines.
    ///
    /// An interrupt stops at once, without waiting for what is in flight: nothing is
    /// half-written (each write is one transaction, and a task dropped mid-way is run
    /// again), and the next process that drives the state takes the run over. So does a
    /// state that cannot be written.
    pub async fn to_end(
        &self,
        rt: &LocalRuntime,
        id: &RunId,
        steps: Vec<String>,
        interrupts: &mut Interrupts,
    ) -> anyhow::Result<Exit> {
        let progress = Progress::start(
            rt.handlers().clone(),
            id,
            steps,
            self.state_flag(),
            self.format == Format::Text,
            rt.events(),
        );
        let result = tokio::select! {
            r = rt.run_to_end(id) => Some(r),
            () = interrupts.next() => None,
        };
        progress.stop().await;
        let run = match result {
            Some(Ok(run)) => run,
            None => {
                eprintln!("interrupted: run {id} is not finished (nothing half-written is left)");
                eprintln!("continue it with: {}", self.continue_command(id));
                return Ok(Exit::Interrupted);
            }
            Some(Err(e)) => {
                eprintln!("error: {e}");
                eprintln!(
                    "run {id} is not finished; once that is fixed, continue it with: {}",
                    self.continue_command(id)
                );
                return Ok(Exit::RunFailed);
            }
        };
        let view = rt.handlers().run_view(&run.id).await?;
        match self.format {
            Format::Text => print!("{}", report::summary(&view)),
            Format::Json => println!("{}", report::json(&view)),
        }
        Ok(if view.status == RunStatus::Succeeded {
            Exit::Success
        } else {
            Exit::RunFailed
        })
    }

    /// `--state PATH` when the state is not the default one, for the commands printed.
    fn state_flag(&self) -> String {
        if self.state == Path::new(DEFAULT_STATE) {
            String::new()
        } else {
            format!(" --state {}", quoted(self.state))
        }
    }

    /// The command that goes on with run `id` where this one stopped.
    fn continue_command(&self, id: &RunId) -> String {
        let mut cmd = format!("braid continue {id} --state {}", quoted(self.state));
        if let Some(f) = self.functions {
            cmd.push_str(&format!(" --functions {}", quoted(f)));
        }
        cmd
    }
}

/// A path as a shell word: quoted when it holds anything but plain characters.
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:@,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
