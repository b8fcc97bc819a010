//! `braid pause WORKFLOW` / `braid resume WORKFLOW`: stop and restart a registered
//! workflow's schedules, in the local state or a deployed stack. Instants that pass
//! while paused start nothing, and are not caught up on resume.

use super::Exit;
use super::local::tokio;
use super::target::{Target, TargetArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The registered workflow.
    #[arg(value_name = "WORKFLOW")]
    pub workflow: String,
    /// Who pauses or resumes, for the audit trail (default: the OS user; refused on a stack).
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub fn run(args: &Args, paused: bool) -> anyhow::Result<Exit> {
    tokio()?.block_on(async {
        let target = Target::open(&args.target).await?;
        let by = target.actor(args.by.as_deref()).await?;
        match target
            .handlers()
            .pause_schedules(&args.workflow, paused, &by)
            .await
        {
            Ok(()) => {}
            Err(braid_handlers::HandlerError::Invalid(why)) => {
                eprintln!("error: {why}");
                return Ok(Exit::Invalid);
            }
            Err(e) => return Err(e.into()),
        }
        println!(
            "{} the schedules of {} in {}",
            if paused { "paused" } else { "resumed" },
            args.workflow,
            target.place()
        );
        Ok(Exit::Success)
    })
}
