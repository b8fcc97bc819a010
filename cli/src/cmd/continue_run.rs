//! `braid continue RUN`: drive an unfinished run of the local state to its end — one
//! that `braid run` left on Ctrl-C, a crash or a full disk — and print it as `braid run`
//! would have. It takes the state over like any driver (see `braid_local::takeover`),
//! so what the stopped process had in flight goes on at once.

use super::Exit;
use super::interrupt::Interrupts;
use super::local::{StateArgs, function_map, open_existing, take_over, tokio};
use super::report::{self, Format};
use super::run::Driving;
use braid_engine::model::{RunId, RunStatus};
use braid_handlers::HandlerError;
use braid_ports::PortError;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run's id, as `braid run` printed it (or `braid runs` lists it).
    #[arg(value_name = "RUN")]
    pub run: String,
    /// `text`: progress and a summary table; `json`: one JSON object on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Where `lambda` steps run (default: `BRAID_FUNCTIONS`).
    #[arg(long, value_name = "FILE")]
    pub functions: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let functions = function_map(args.functions.as_deref(), None);
    let state = &args.state.state;
    tokio()?.block_on(async {
        let mut interrupts = Interrupts::catch()?;
        let rt = open_existing(state, functions.clone())?;
        let handlers = rt.handlers();
        let id: RunId = match handlers.resolve_run(&args.run).await {
            Ok(id) => id,
            Err(HandlerError::Port(PortError::NotFound(_))) => {
                eprintln!("error: no run `{}` in `{}`", args.run, state.display());
                return Ok(Exit::Invalid);
            }
            Err(HandlerError::Invalid(why)) => {
                eprintln!("error: {why}");
                return Ok(Exit::Invalid);
            }
            Err(e) => return Err(e.into()),
        };
        let run = handlers.run_record(&id).await?;
        let steps = match handlers.workflow(&run).await {
            Ok(wf) => wf.steps.iter().map(|s| s.id.clone()).collect(),
            Err(_) => Vec::new(),
        };
        if run.status.is_final() {
            // Nothing to drive, so no need to own the state: shown beside any driver.
            eprintln!("run {id} had already ended");
            let view = handlers.run_view(&id).await?;
            match args.output {
                Format::Text => print!("{}", report::summary(&view)),
                Format::Json => println!("{}", report::json(&view)),
            }
            return Ok(if view.status == RunStatus::Succeeded {
                Exit::Success
            } else {
                Exit::RunFailed
            });
        }
        take_over(&rt, state, "braid continue").await?;
        eprintln!("continuing run {id} of `{}`", run.workflow);
        Driving {
            state,
            functions: functions.as_deref(),
            format: args.output,
        }
        .to_end(&rt, &id, steps, &mut interrupts)
        .await
    })
}
