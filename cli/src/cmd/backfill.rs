//! `braid backfill WORKFLOW --from T1 --to T2`: a run for each scheduled instant of a
//! range, started exactly as the scheduler starts it, at most `--max-parallel` at once.
//!
//! Each instant's run is keyed by the instant, as the scheduler keys it, so an instant
//! already fired (or backfilled) reports the run it has instead of starting another:
//! running a backfill again starts nothing new, and one interrupted is finished by
//! running it again. Locally the runs are driven by the local runtime in this process,
//! as `braid run` drives its run; with `--stack` they are started in the stack, whose
//! functions run them, and watched by polling their status.

use super::Exit;
use super::local::{function_map, take_over, tokio};
use super::target::{Target, TargetArgs};
use super::workflows::show_instant;
use braid_engine::model::{Definition, RunId, RunRecord, RunStatus};
use braid_handlers::{HandlerError, Handlers};
use braid_local::runtime::LocalRuntime;
use braid_ports::PortError;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often run statuses are read: the local store is cheap to ask; a stack's table
/// is asked less often.
const LOCAL_POLL: Duration = Duration::from_millis(100);
#[cfg(feature = "aws")]
const STACK_POLL: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow's name, as registered (by `braid deploy`, or locally by a first
    /// `braid run` of its file).
    #[arg(value_name = "WORKFLOW")]
    pub workflow: String,
    /// Start of the range, included: an RFC 3339 instant (2026-11-01T00:00:00Z) or a
    /// date (2026-11-01, meaning 00:00 UTC).
    #[arg(long, value_name = "T1", value_parser = parse_time)]
    pub from: DateTime<Utc>,
    /// End of the range, included: an RFC 3339 instant, or a date meaning the whole
    /// day (up to its last instant, 23:59:59.999… UTC).
    #[arg(long, value_name = "T2", value_parser = parse_end)]
    pub to: DateTime<Utc>,
    /// Print the instants a backfill would start a run for, and start nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// At most this many of the backfill's runs active at once.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: u32,
    /// Where `lambda` steps run when the runs are driven locally (default:
    /// `BRAID_FUNCTIONS`).
    #[arg(long, value_name = "FILE")]
    pub functions: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `--from`/`--to`: an RFC 3339 instant, or a date meaning its midnight UTC.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "`{s}` is neither an RFC 3339 instant (2026-11-01T00:00:00Z) nor a date (2026-11-01)"
    ))
}

/// `--to`: an RFC 3339 instant, or a date meaning the whole day: its last instant.
pub fn parse_end(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let next = d
            .succ_opt()
            .ok_or_else(|| format!("`{s}` is the last date there is"))?;
        return Ok(
            next.and_time(chrono::NaiveTime::MIN).and_utc() - chrono::TimeDelta::nanoseconds(1)
        );
    }
    parse_time(s)
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let functions = function_map(args.functions.as_deref(), None);
    tokio()?.block_on(async {
        let target = Target::open_with(&args.target, functions).await?;
        let handlers = target.handlers();
        let def = match handlers.current_definition(&args.workflow).await {
            Ok(d) => d,
            Err(HandlerError::Port(PortError::NotFound(_))) => {
                eprintln!(
                    "error: workflow `{}` is not registered in {}",
                    args.workflow,
                    target.place()
                );
                return Ok(Exit::Invalid);
            }
            Err(e) => return Err(e.into()),
        };
        let instants = match handlers.backfill_plan_of(&def, args.from, args.to) {
            Ok(list) => list,
            Err(HandlerError::Invalid(msg)) => {
                eprintln!("error: {msg}");
                return Ok(Exit::Invalid);
            }
            Err(e) => return Err(e.into()),
        };
        let range = format!(
            "from {} to {}",
            show_instant(args.from),
            show_instant(args.to)
        );
        if instants.is_empty() {
            eprintln!(
                "no scheduled instant of `{}` {range}: nothing to backfill",
                def.workflow
            );
            return Ok(Exit::Success);
        }
        if args.dry_run {
            for t in &instants {
                println!("{}", show_instant(*t));
            }
            eprintln!(
                "{} scheduled instant(s) of `{}` {range}; nothing started (dry run)",
                instants.len(),
                def.workflow
            );
            return Ok(Exit::Success);
        }
        let parallel = args.max_parallel as usize;
        let tally = match &target {
            Target::Local(rt, _) => {
                take_over(rt, &args.target.state.state, "braid backfill").await?;
                let (tx, rx) = mpsc::unbounded_channel::<RunId>();
                let watch = async move {
                    let notify = move |id: &RunId| {
                        // The driver ends when this sender is dropped; until then it listens.
                        let _ = tx.send(id.clone());
                    };
                    execute(rt.handlers(), &def, &instants, parallel, LOCAL_POLL, notify).await
                };
                let ((), tally) = tokio::try_join!(drive(rt, rx), watch)?;
                tally
            }
            #[cfg(feature = "aws")]
            Target::Stack(h, ..) => {
                execute(h, &def, &instants, parallel, STACK_POLL, |_| {}).await?
            }
        };
        println!(
            "backfill of `{}` {range}: {}",
            args.workflow,
            tally.summary()
        );
        Ok(if tally.all_succeeded() {
            Exit::Success
        } else {
            Exit::RunFailed
        })
    })
}

/// Drives the local runtime while runs are pending: each run id received is driven to
/// its end (driving every run in the state meanwhile). Ends when the sender is dropped
/// and every run received has ended.
async fn drive(
    rt: &LocalRuntime,
    mut started: mpsc::UnboundedReceiver<RunId>,
) -> anyhow::Result<()> {
    let mut pending = VecDeque::new();
    loop {
        while let Ok(id) = started.try_recv() {
            pending.push_back(id);
        }
        let id = match pending.pop_front() {
            Some(id) => id,
            None => match started.recv().await {
                Some(id) => id,
                None => return Ok(()),
            },
        };
        rt.run_to_end(&id).await?;
    }
}

/// What became of the backfill's instants.
#[derive(Debug, Default)]
struct Tally {
    /// Final runs by status.
    by_status: BTreeMap<&'static str, usize>,
    /// Instants whose run could not start (the trigger gave no valid input).
    not_started: usize,
    /// Runs this backfill started.
    started: usize,
    /// Runs found: started before by the scheduler or an earlier backfill.
    existing: usize,
}

impl Tally {
    fn finished(&mut self, status: RunStatus) {
        *self.by_status.entry(status.as_str()).or_default() += 1;
    }

    fn all_succeeded(&self) -> bool {
        self.not_started == 0
            && self
                .by_status
                .keys()
                .all(|s| *s == RunStatus::Succeeded.as_str())
    }

    fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .by_status
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        if self.not_started > 0 {
            parts.push(format!("{} not started", self.not_started));
        }
        format!(
            "{}; {} run(s) started, {} existing",
            parts.join(", "),
            self.started,
            self.existing
        )
    }
}

/// One line of progress: the instant, the run and what happened to it.
fn progress(instant: DateTime<Utc>, run_id: &str, what: &str) {
    println!("{}  {run_id}  {what}", show_instant(instant));
}

/// A final run's status, with how long it took.
fn outcome(run: &RunRecord) -> String {
    match run.finished_at {
        Some(f) => format!(
            "{} in {:.1}s",
            run.status,
            (f - run.created_at).num_milliseconds() as f64 / 1000.0
        ),
        None => run.status.to_string(),
    }
}

/// Starts (or finds) the run of each instant, oldest first, keeping at most `parallel`
/// active, and waits for every one to end. `on_start` hears of each run to wait for.
async fn execute(
    handlers: &Handlers,
    def: &Definition,
    instants: &[DateTime<Utc>],
    parallel: usize,
    poll: Duration,
    mut on_start: impl FnMut(&RunId),
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut queue = instants.iter().copied();
    let mut active: Vec<(DateTime<Utc>, RunId)> = Vec::new();
    loop {
        while active.len() < parallel {
            let Some(instant) = queue.next() else { break };
            let started = match handlers.backfill_start(def, instant).await {
                Ok(s) => s,
                Err(HandlerError::Invalid(msg)) => {
                    progress(instant, "-", &format!("not started: {msg}"));
                    tally.not_started += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let run = started.run;
            if started.existing {
                tally.existing += 1;
            } else {
                tally.started += 1;
            }
            if run.status.is_final() {
                progress(
                    instant,
                    &run.id,
                    &format!("{} (started before)", outcome(&run)),
                );
                tally.finished(run.status);
                continue;
            }
            let what = if started.existing {
                format!("{} (started before)", run.status)
            } else {
                "started".to_string()
            };
            progress(instant, &run.id, &what);
            on_start(&run.id);
            active.push((instant, run.id));
        }
        if active.is_empty() {
            return Ok(tally);
        }
        tokio::time::sleep(poll).await;
        for (instant, id) in std::mem::take(&mut active) {
            let run = handlers.run_record(&id).await?;
            if run.status.is_final() {
                progress(instant, &id, &outcome(&run));
                tally.finished(run.status);
            } else {
                active.push((instant, id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_instants_or_dates_at_midnight_utc() {
        assert_eq!(
            parse_time("2026-11-01").unwrap(),
            "2026-11-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_time("2026-11-01T02:00:00+01:00").unwrap(),
            "2026-11-01T01:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn a_date_as_the_end_means_the_whole_day() {
        let end = parse_end("2026-11-07").unwrap();
        assert!(end > "2026-11-07T23:59:59Z".parse::<DateTime<Utc>>().unwrap());
        assert!(end < "2026-11-08T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(
            parse_end("2026-11-07T06:00:00Z").unwrap(),
            "2026-11-07T06:00:00Z".parse::<DateTime<Utc>>().unwrap(),
            "an instant is itself"
        );
    }

    #[test]
    fn only_success_everywhere_is_success() {
        let mut t = Tally::default();
        t.finished(RunStatus::Succeeded);
        assert!(t.all_succeeded());
        t.finished(RunStatus::TimedOut);
        assert!(!t.all_succeeded());
    }
}
