//! `braid audit [--workflow W] [--since T]`: who deployed, undeployed, started,
//! cancelled, retried, forked, approved, rejected, signalled, paused or resumed what,
//! and when — in the local state or a deployed stack, oldest first.

use super::Exit;
use super::local::tokio;
use super::report::Format;
use super::target::{Target, TargetArgs};
use braid_engine::model::{AuditEntry, Timestamp};
use braid_handlers::{MAX_AUDIT_LIMIT, parse_since};
use braid_ports::AuditFilter;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only actions on this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only actions at or after this instant (2026-12-07T09:00:00Z) or date (2026-12-07).
    #[arg(long, value_parser = since)]
    pub since: Option<Timestamp>,
    /// At most this many: the latest ones.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=MAX_AUDIT_LIMIT as i64))]
    pub limit: u16,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub target: TargetArgs,
}

fn since(s: &str) -> Result<Timestamp, String> {
    parse_since(s).ok_or_else(|| {
        format!("`{s}` is not an instant (2026-12-07T09:00:00Z) or a date (2026-12-07)")
    })
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let filter = AuditFilter {
        workflow: args.workflow.clone(),
        since: args.since,
        limit: usize::from(args.limit),
    };
    let entries = tokio()?.block_on(async {
        let target = Target::read(&args.target).await?;
        anyhow::Ok(target.handlers().audit_trail(&filter).await?)
    })?;
    match args.output {
        Format::Json => println!("{}", serde_json::json!(entries)),
        Format::Text => {
            println!(
                "{:<20}  {:<9} {:<24} {:<26}  ACTOR",
                "AT", "ACTION", "WORKFLOW", "RUN"
            );
            for e in &entries {
                println!("{}", line(e));
            }
        }
    }
    Ok(Exit::Success)
}

/// One entry as a line: when, what, on which workflow and run, by whom, and what
/// else it said (`step gate`, `not needed`).
fn line(e: &AuditEntry) -> String {
    let run = e.run_id.as_ref().map_or("-".to_string(), |r| r.to_string());
    let mut more: Vec<String> = Vec::new();
    if let Some(step) = &e.step {
        more.push(format!("step {step}"));
    }
    if let Some(d) = &e.detail {
        more.push(d.clone());
    }
    let more = match more.is_empty() {
        true => String::new(),
        false => format!("  ({})", more.join("; ")),
    };
    format!(
        "{:<20}  {:<9} {:<24} {:<26}  {}{more}",
        e.at.format("%Y-%m-%d %H:%M:%S"),
        e.action.as_str(),
        e.workflow,
        run,
        e.actor
    )
}
