//! `braid runs`: the runs in the local state or a deployed stack, newest first.

use super::Exit;
use super::local::tokio;
use super::report::Format;
use super::target::{Target, TargetArgs};
use braid_engine::model::RunStatus;
use braid_ports::RunFilter;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only runs of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only runs with this status (queued, running, succeeded, failed, cancelled, timed_out).
    #[arg(long, value_parser = parse_status)]
    pub status: Option<RunStatus>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub target: TargetArgs,
}

fn parse_status(s: &str) -> Result<RunStatus, String> {
    RunStatus::parse(s).ok_or_else(|| format!("unknown status `{s}`: expected queued, running, succeeded, failed, cancelled or timed_out"))
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let filter = RunFilter {
        workflow: args.workflow.clone(),
        status: args.status,
        limit: args.limit,
    };
    let runs = tokio()?.block_on(async {
        let target = Target::read(&args.target).await?;
        anyhow::Ok(target.handlers().list_runs(&filter).await?)
    })?;
    match args.output {
        Format::Json => {
            let list: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "run_id": r.id, "workflow": r.workflow, "status": r.status,
                        "started_at": r.created_at, "finished_at": r.finished_at,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(list));
        }
        Format::Text => {
            println!(
                "{:<26}  {:<24} {:<10} {:<20} DURATION",
                "RUN", "WORKFLOW", "STATUS", "STARTED"
            );
            for r in &runs {
                let took = r
                    .finished_at
                    .map(|f| {
                        format!(
                            "{:.1}s",
                            (f - r.created_at).num_milliseconds() as f64 / 1000.0
                        )
                    })
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<26}  {:<24} {:<10} {:<20} {took}",
                    r.id,
                    r.workflow,
                    r.status.as_str(),
                    r.created_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
        }
    }
    Ok(Exit::Success)
}
