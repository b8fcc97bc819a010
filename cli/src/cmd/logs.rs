//! `braid logs RUN [--step S] [--follow]`: every attempt of a run's steps in time
//! order — start, end, how long, outcome, error, when the retry was due, and the lines
//! a locally launched function wrote meanwhile — from the local state or a deployed
//! stack. `--follow` prints lines as they come until the run ends.

use super::Exit;
use super::interrupt::Interrupts;
use super::local::tokio;
use super::report::Format;
use super::target::{Target, TargetArgs};
use super::waits::refused;
use braid_engine::timeline::{Entry, Stream, What};
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (or a unique prefix of it).
    #[arg(value_name = "RUN")]
    pub run_id: String,
    /// Only this step (and its iterations).
    #[arg(long, value_name = "STEP")]
    pub step: Option<String>,
    /// Keep printing lines as they come until the run ends.
    #[arg(long, short)]
    pub follow: bool,
    /// `text`: a line each; `json`: a JSON object each (JSON Lines).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// How often `--follow` looks at the run.
const POLL: Duration = Duration::from_millis(500);

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    tokio()?.block_on(async {
        let mut interrupts = Interrupts::catch()?;
        let target = Target::open(&args.target).await?;
        let handlers = target.handlers();
        let id = match refused(handlers.resolve_run(&args.run_id).await)? {
            Ok(id) => id,
            Err(exit) => return Ok(exit),
        };
        let mut printed = HashSet::new();
        loop {
            // The run first: lines read after it ended are all there are.
            let over = handlers.run_record(&id).await?.status.is_final();
            let entries = match refused(handlers.logs(&id, args.step.as_deref()).await)? {
                Ok(e) => e,
                Err(exit) => return Ok(exit),
            };
            for e in entries {
                let line = match args.output {
                    Format::Text => text(&e),
                    Format::Json => serde_json::to_string(&e)?,
                };
                if printed.insert(line.clone()) {
                    println!("{line}");
                }
            }
            if !args.follow || over {
                return Ok(Exit::Success);
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = interrupts.next() => return Ok(Exit::Interrupted),
            }
        }
    })
}

/// `2026-12-06T21:00:01.456Z  call  attempt 1  failed after 1.3s: http.500: boom; retry at 21:00:03`
fn text(e: &Entry) -> String {
    let at = e.at.format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let attempt = match e.attempt {
        0 => String::new(),
        n => format!("attempt {n}  "),
    };
    let what = match &e.what {
        What::Started => "started".to_string(),
        What::Output { stream, text } => {
            let stream = match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            };
            format!("{stream}| {text}")
        }
        What::Waiting { until } => match until {
            Some(t) => format!("waiting until {}", t.format("%Y-%m-%dT%H:%M:%SZ")),
            None => "waiting".to_string(),
        },
        What::Ended {
            status,
            took_ms,
            error,
            retry_at,
        } => {
            let took = took_ms
                .map(|ms| format!(" after {:.1}s", ms as f64 / 1000.0))
                .unwrap_or_default();
            let error = error
                .as_ref()
                .map(|e| format!(": {}: {}", e.error, e.message))
                .unwrap_or_default();
            let retry = retry_at
                .map(|t| format!("; retry at {}", t.format("%H:%M:%S")))
                .unwrap_or_default();
            format!("{status}{took}{error}{retry}")
        }
    };
    format!("{at}  {}  {attempt}{what}", e.step)
}
