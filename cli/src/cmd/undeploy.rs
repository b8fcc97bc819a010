//! `braid undeploy WORKFLOW [--state DIR | --stack NAME]`: take a registered workflow
//! out of the registry. Its triggers stop at once and it can no longer be started by
//! name; runs in flight finish on the version they started with, and its runs stay
//! listed. `braid deploy` registers it again.

use super::Exit;
use super::local::tokio;
use super::target::{Target, TargetArgs};
use braid_handlers::HandlerError;
use braid_ports::PortError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The registered workflow.
    #[arg(value_name = "WORKFLOW")]
    pub workflow: String,
    /// Who undeploys, for the audit trail (default: the OS user; refused on a stack).
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    tokio()?.block_on(async {
        let target = Target::open(&args.target).await?;
        let by = target.actor(args.by.as_deref()).await?;
        match target.handlers().undeploy(&args.workflow, &by).await {
            Ok(()) => {
                println!(
                    "undeployed {} from {}: its triggers are off; runs already going finish",
                    args.workflow,
                    target.place()
                );
                Ok(Exit::Success)
            }
            Err(HandlerError::Port(PortError::NotFound(why))) => {
                eprintln!("error: {why} in {}", target.place());
                Ok(Exit::Invalid)
            }
            Err(e) => Err(e.into()),
        }
    })
}
