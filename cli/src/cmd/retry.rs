//! `braid retry RUN [--from STEP]`: retry a run that failed, was cancelled or timed
//! out, in place — steps that succeeded keep their outputs, the others (and `--from`)
//! run again with everything downstream of them (see `braid_engine::redrive`). With
//! `--new [--input JSON]`, fork a new run that starts so instead, leaving the run as
//! it was. In the local state or a deployed stack; with `--wait`, as `braid start
//! --wait`.

use super::Exit;
use super::interrupt::Interrupts;
use super::local::{function_map, tokio};
use super::report::Format;
use super::run::parse_json_arg;
use super::start::{Waiting, watch_hint};
use super::target::{Target, TargetArgs};
use super::waits::refused;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (or a unique prefix of it).
    #[arg(value_name = "RUN")]
    pub run_id: String,
    /// Run this step again too, with everything downstream of it.
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Fork a new run that starts with the outputs of the steps that succeeded,
    /// leaving this one as it was.
    #[arg(long)]
    pub new: bool,
    /// The new run's input (with `--new`): a JSON object, or `@path` to a JSON file.
    #[arg(long, value_name = "JSON|@FILE", requires = "new")]
    pub input: Option<String>,
    /// Who retries (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    /// Wait for the run's end and print it as `braid run` does (locally, drive it).
    #[arg(long)]
    pub wait: bool,
    /// Where `lambda` steps run when this command drives the run (`--wait`, locally).
    #[arg(long, value_name = "FILE")]
    pub functions: Option<PathBuf>,
    /// With `--wait`, how the run is printed.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let input = match &args.input {
        Some(text) => Some(parse_json_arg("--input", text)?),
        None => None,
    };
    let functions = function_map(args.functions.as_deref(), None);
    tokio()?.block_on(async {
        let mut interrupts = Interrupts::catch()?;
        let target = Target::open_with(&args.target, functions.clone()).await?;
        let by = target.actor(args.by.as_deref()).await?;
        let handlers = target.handlers();
        let from = args.from.as_deref();
        let retried = match handlers.resolve_run(&args.run_id).await {
            Ok(id) if args.new => handlers
                .fork_run(&id, &by, from, input.clone())
                .await
                .map(|started| started.run),
            Ok(id) => handlers.retry_run(&id, &by, from).await,
            Err(e) => Err(e),
        };
        let run = match refused(retried)? {
            Ok(run) => run,
            Err(exit) => return Ok(exit),
        };
        let (what, steps) = match (&run.forked_from, run.redrives.last()) {
            (Some(f), _) => (format!("forked from run {}", f.run), &f.steps),
            (None, Some(r)) => ("retried".to_string(), &r.steps),
            (None, None) => ("retried".to_string(), &Vec::new()),
        };
        eprintln!(
            "run {} of `{}` {what}: {} run again",
            run.id,
            run.workflow,
            steps.join(", ")
        );
        if !args.wait {
            println!("{}", run.id);
            if target.is_local() {
                eprintln!("{}", watch_hint(&run.id, target.place()));
            }
            return Ok(Exit::Success);
        }
        let waiting = Waiting {
            target: &target,
            state: &args.target.state.state,
            functions: functions.as_deref(),
            format: args.output,
            command: "braid retry --wait",
        };
        waiting.to_end(&run.id, &mut interrupts).await
    })
}
