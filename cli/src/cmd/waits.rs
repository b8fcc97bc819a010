//! `braid approve|reject RUN STEP`, `braid signal RUN NAME` and `braid cancel RUN`: end
//! a step's wait, or a run, in the local state (a `braid run` or `braid dev` driving it
//! goes on from there) or in a deployed stack.

use super::Exit;
use super::local::tokio;
use super::run::parse_json_arg;
use super::target::{Target, TargetArgs};
use braid_handlers::{Decision, HandlerError, SignalRequest};
use braid_ports::PortError;

#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    /// The run id.
    #[arg(value_name = "RUN")]
    pub run_id: String,
    /// The approval step: `id`, or `id[i]` for an iteration of a `for_each`.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// Why, recorded with the decision (a rejection's error says it).
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Who decides (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, clap::Args)]
pub struct SignalArgs {
    /// The run id.
    #[arg(value_name = "RUN")]
    pub run_id: String,
    /// The signal's name, as a `signal` step names it.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The signal's data (the waiting step's output): JSON, or `@path` to a JSON file.
    #[arg(long, value_name = "JSON|@FILE")]
    pub data: Option<String>,
    /// The sender's id for this signal: sending again with it changes nothing.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Who sends it (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The run id.
    #[arg(value_name = "RUN")]
    pub run_id: String,
    /// Why, recorded as the run's error.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Who cancels (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `braid cancel`: what has not started is cancelled at once, attempts in flight end
/// and are recorded, then the run is `cancelled`.
pub fn cancel(args: &CancelArgs) -> anyhow::Result<Exit> {
    tokio()?.block_on(async {
        let target = Target::open(&args.target).await?;
        let by = target.actor(args.by.as_deref()).await?;
        let cancelled = target.handlers().resolve_run(&args.run_id).await;
        let cancelled = match cancelled {
            Ok(id) => {
                target
                    .handlers()
                    .cancel_run(&id, &by, args.reason.as_deref())
                    .await
            }
            Err(e) => Err(e),
        };
        // The spans of what it ended (a run over at once) go before the process does.
        target.handlers().ports().traces.flush().await;
        match refused(cancelled)? {
            Ok(run) if run.status.is_final() => {
                println!("run {} {}", run.id, run.status);
                Ok(Exit::Success)
            }
            Ok(run) => {
                println!(
                    "run {} is being cancelled: it ends once its steps in flight are recorded",
                    run.id
                );
                Ok(Exit::Success)
            }
            Err(exit) => Ok(exit),
        }
    })
}

/// `braid approve` (`approve`) or `braid reject`.
pub fn decide(args: &DecideArgs, approve: bool) -> anyhow::Result<Exit> {
    tokio()?.block_on(async {
        let target = Target::open(&args.target).await?;
        let decision = Decision {
            approve,
            by: target.actor(args.by.as_deref()).await?,
            comment: args.comment.clone(),
        };
        let decided = target.handlers().resolve_run(&args.run_id).await;
        let decided = match decided {
            Ok(id) => target.handlers().decide(&id, &args.step, &decision).await,
            Err(e) => Err(e),
        };
        target.handlers().ports().traces.flush().await;
        match refused(decided)? {
            Ok(step) => {
                let verb = if approve { "approved" } else { "rejected" };
                println!(
                    "step {} of run {} {verb}: {}",
                    args.step, args.run_id, step.status
                );
                Ok(Exit::Success)
            }
            Err(exit) => Ok(exit),
        }
    })
}

/// `braid signal`.
pub fn signal(args: &SignalArgs) -> anyhow::Result<Exit> {
    let data = match &args.data {
        Some(text) => parse_json_arg("--data", text)?,
        None => serde_json::Value::Null,
    };
    tokio()?.block_on(async {
        let target = Target::open(&args.target).await?;
        let request = SignalRequest {
            name: args.name.clone(),
            data,
            id: args.id.clone(),
            by: target.actor(args.by.as_deref()).await?,
        };
        let sent = target.handlers().resolve_run(&args.run_id).await;
        let sent = match sent {
            Ok(id) => target.handlers().signal(&id, request).await,
            Err(e) => Err(e),
        };
        target.handlers().ports().traces.flush().await;
        match refused(sent)? {
            Ok(sent) => {
                let ended = if sent.ended.is_empty() {
                    "no step waits for it yet; the step takes it when reached".to_string()
                } else {
                    format!("ended {}", sent.ended.join(", "))
                };
                println!(
                    "signal {} sent to run {} (id {}): {ended}",
                    sent.name, sent.run_id, sent.id
                );
                Ok(Exit::Success)
            }
            Err(exit) => Ok(exit),
        }
    })
}

/// The caller's mistakes (bad input, unknown run or step, nothing waiting) said on
/// stderr as exit 2; anything else is an error.
pub(super) fn refused<T>(r: Result<T, HandlerError>) -> anyhow::Result<Result<T, Exit>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(
            HandlerError::Invalid(msg)
            | HandlerError::Forbidden(msg)
            | HandlerError::Port(PortError::NotFound(msg) | PortError::Conflict(msg)),
        ) => {
            eprintln!("error: {msg}");
            Ok(Err(Exit::Invalid))
        }
        Err(e) => Err(e.into()),
    }
}
