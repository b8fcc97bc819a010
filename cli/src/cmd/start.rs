//! `braid start WORKFLOW --stack NAME`: start a run of a registered workflow's current
//! definition in a deployed stack. The run is written and its first steps queued; the
//! stack's functions run it from there, so this returns at once with the run id.

use super::Exit;
use super::local::tokio;
use super::report::Format;
use super::run::parse_input;
use super::stack::StackArgs;
use braid_handlers::{HandlerError, StartBody};
use braid_ports::PortError;
use serde_json::{Value, json};

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
    /// `text`: the run id alone (for scripts); `json`: `{"run_id", "status", "existing"}`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub stack: StackArgs,
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let body = StartBody {
        workflow: args.workflow.clone(),
        input: parse_input(args.input.as_deref())?,
        idempotency_key: args.idempotency_key.clone(),
    };
    tokio()?.block_on(async {
        let handlers = args.stack.handlers().await?;
        let started = match handlers.start_named(body, Value::Null).await {
            Ok(s) => s,
            // Bad input, or a workflow never deployed: the caller's to fix.
            Err(HandlerError::Invalid(msg) | HandlerError::Port(PortError::NotFound(msg))) => {
                eprintln!("error: {msg}");
                return Ok(Exit::Invalid);
            }
            Err(e) => return Err(e.into()),
        };
        let run = &started.run;
        match args.output {
            Format::Text => {
                if started.existing {
                    eprintln!("the idempotency key was used before: this is the run it started");
                }
                println!("{}", run.id);
            }
            Format::Json => println!(
                "{}",
                json!({"run_id": run.id, "status": run.status, "existing": started.existing})
            ),
        }
        Ok(Exit::Success)
    })
}
