//! `braid start WORKFLOW`: start a run of a registered workflow's current definition,
//! in the local state or in a deployed stack (`--stack NAME`). The run is written and
//! its first steps queued, and the run id printed at once; what drives the state runs
//! it (the stack's functions, `braid dev` on the local state). With `--wait` this
//! command waits for the run's end and prints it as `braid run` does — locally it
//! drives the run itself.

use super::Exit;
use super::interrupt::Interrupts;
use super::local::{function_map, take_over, tokio};
use super::report::Format;
use super::run::{Driving, parse_input};
use super::target::{Target, TargetArgs};
use braid_engine::model::RunId;
use braid_handlers::{HandlerError, Handlers, StartBody};
use braid_ports::PortError;
use serde_json::{Value, json};
use std::path::PathBuf;
#[cfg(feature = "aws")]
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow's name, as registered by `braid deploy`.
    #[arg(value_name = "WORKFLOW")]
    pub workflow: String,
    /// The run input: a JSON object, or `@path` to a JSON file.
    #[arg(long, value_name = "JSON|@FILE")]
    pub input: Option<String>,
    /// An idempotency key: starting again with the same key returns the first run.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Wait for the run's end and print it as `braid run` does (locally, drive it).
    #[arg(long)]
    pub wait: bool,
    /// Where `lambda` steps run when this command drives the run (`--wait`, locally).
    #[arg(long, value_name = "FILE")]
    pub functions: Option<PathBuf>,
    /// Without `--wait`, `text`: the run id alone (for scripts); `json`: `{"run_id",
    /// "status", "existing"}`. With `--wait`, as `braid run` prints a run.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Who starts the run, for the audit trail (default: the OS user; refused on a stack).
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// How often a run in a stack is looked at while `--wait` waits for it.
#[cfg(feature = "aws")]
const POLL: Duration = Duration::from_secs(1);

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let body = StartBody {
        workflow: args.workflow.clone(),
        input: parse_input(args.input.as_deref())?,
        idempotency_key: args.idempotency_key.clone(),
    };
    let functions = function_map(args.functions.as_deref(), None);
    tokio()?.block_on(async {
        let mut interrupts = Interrupts::catch()?;
        let target = Target::open_with(&args.target, functions.clone()).await?;
        let handlers = target.handlers();
        let by = target.actor(args.by.as_deref()).await?;
        let started = match handlers.start_named(body, Value::Null, &by).await {
            Ok(s) => s,
            // Bad input, a workflow never deployed, a key used with another input: the
            // caller's to fix.
            Err(
                HandlerError::Invalid(msg)
                | HandlerError::Port(PortError::NotFound(msg) | PortError::Conflict(msg)),
            ) => {
                eprintln!("error: {msg}");
                return Ok(Exit::Invalid);
            }
            Err(e) => return Err(e.into()),
        };
        let run = &started.run;
        if started.existing {
            eprintln!("the idempotency key was used before: this is the run it started");
        }
        if !args.wait {
            match args.output {
                Format::Text => println!("{}", run.id),
                Format::Json => println!(
                    "{}",
                    json!({"run_id": run.id, "status": run.status, "existing": started.existing})
                ),
            }
            if target.is_local() {
                eprintln!("{}", watch_hint(&run.id, target.place()));
            }
            return Ok(Exit::Success);
        }
        eprintln!("run {} of `{}` started", run.id, run.workflow);
        let waiting = Waiting {
            target: &target,
            state: &args.target.state.state,
            functions: functions.as_deref(),
            format: args.output,
            command: "braid start --wait",
        };
        waiting.to_end(&run.id, &mut interrupts).await
    })
}

/// A command's `--wait` for a run's end: locally it drives the run, on a stack it
/// watches it; then it prints the run as `braid run` does.
pub(super) struct Waiting<'a> {
    pub target: &'a Target,
    pub state: &'a std::path::Path,
    pub functions: Option<&'a std::path::Path>,
    pub format: Format,
    /// The command, as named to another process that finds the state driven.
    pub command: &'static str,
}

impl Waiting<'_> {
    pub async fn to_end(&self, id: &RunId, interrupts: &mut Interrupts) -> anyhow::Result<Exit> {
        let handlers = self.target.handlers();
        match self.target {
            Target::Local(rt, _) => {
                take_over(rt, self.state, self.command).await?;
                let steps = step_ids(handlers, id).await;
                Driving {
                    state: self.state,
                    functions: self.functions,
                    format: self.format,
                }
                .to_end(rt, id, steps, interrupts)
                .await
            }
            #[cfg(feature = "aws")]
            Target::Stack(..) => watch(handlers, id, self.format, interrupts).await,
        }
    }
}

/// What drives run `id` of a local state `place` (nothing, unless a braid process).
pub(super) fn watch_hint(id: &RunId, place: &str) -> String {
    format!(
        "run {id} waits for a process driving {place}: `braid dev` there, or `braid continue {id}`"
    )
}

/// The ids of run `id`'s steps, in file order, for the progress lines.
async fn step_ids(handlers: &Handlers, id: &RunId) -> Vec<String> {
    let Ok(run) = handlers.run_record(id).await else {
        return Vec::new();
    };
    match handlers.workflow(&run).await {
        Ok(wf) => wf.steps.iter().map(|s| s.id.clone()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits for run `id` of a stack to end, then prints it; Ctrl-C stops waiting (the run
/// goes on in the stack).
#[cfg(feature = "aws")]
async fn watch(
    handlers: &Handlers,
    id: &RunId,
    format: Format,
    interrupts: &mut Interrupts,
) -> anyhow::Result<Exit> {
    loop {
        if handlers.run_record(id).await?.status.is_final() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = interrupts.next() => {
                eprintln!("interrupted: run {id} goes on in the stack (`braid show {id} --stack …`)");
                return Ok(Exit::Interrupted);
            }
        }
    }
    let view = handlers.run_view(id).await?;
    match format {
        Format::Text => print!("{}", super::report::summary(&view)),
        Format::Json => println!("{}", super::report::json(&view)),
    }
    Ok(
        if view.status == braid_engine::model::RunStatus::Succeeded {
            Exit::Success
        } else {
            Exit::RunFailed
        },
    )
}
