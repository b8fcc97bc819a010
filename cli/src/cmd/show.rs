//! `braid show RUN`: one run with its steps, outputs and errors, from the local state
//! or a deployed stack.

use super::Exit;
use super::local::tokio;
use super::report::{self, Format};
use super::target::{Target, TargetArgs};
use braid_handlers::HandlerError;
use braid_ports::PortError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id, as printed by `braid run` and `braid runs`.
    #[arg(value_name = "RUN")]
    pub run_id: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let (view, place) = tokio()?.block_on(async {
        let target = Target::read(&args.target).await?;
        let handlers = target.handlers();
        let view = match handlers.resolve_run(&args.run_id).await {
            Ok(id) => handlers.run_view(&id).await,
            Err(e) => Err(e),
        };
        anyhow::Ok((view, target.place().to_string()))
    })?;
    match view {
        Ok(view) => {
            match args.output {
                Format::Text => print!("{}", report::summary(&view)),
                Format::Json => println!("{}", report::json(&view)),
            }
            Ok(Exit::Success)
        }
        Err(HandlerError::Port(PortError::NotFound(_))) => {
            eprintln!("error: no run `{}` in {place}", args.run_id);
            Ok(Exit::Invalid)
        }
        Err(HandlerError::Invalid(why)) => {
            eprintln!("error: {why}");
            Ok(Exit::Invalid)
        }
        Err(e) => Err(e.into()),
    }
}
