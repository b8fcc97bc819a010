//! `braid show RUN`: one run with its steps, outputs and errors.

use super::Exit;
use super::local::{StateArgs, open_readonly, tokio};
use super::report::{self, Format};
use braid::handlers::HandlerError;
use braid::ports::PortError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id, as printed by `braid run` and `braid runs`.
    #[arg(value_name = "RUN")]
    pub run_id: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let rt = open_readonly(&args.state.state)?;
    match tokio()?.block_on(rt.handlers().run_view(&args.run_id)) {
        Ok(view) => {
            match args.output {
                Format::Text => print!("{}", report::summary(&view)),
                Format::Json => println!("{}", report::json(&view)),
            }
            Ok(Exit::Success)
        }
        Err(HandlerError::Port(PortError::NotFound(_))) => {
            eprintln!(
                "error: no run `{}` in `{}`",
                args.run_id,
                args.state.state.display()
            );
            Ok(Exit::Invalid)
        }
        Err(e) => Err(e.into()),
    }
}
