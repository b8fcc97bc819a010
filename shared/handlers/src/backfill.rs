//! Backfill: runs for the scheduled instants of a past (or future) range, as if the
//! scheduler had fired each of them (`braid backfill WORKFLOW --from --to`).
//!
//! A backfilled instant starts exactly the run the tick would have started — the same
//! idempotency key and `trigger` data (`Handlers::start_scheduled`) — so an instant
//! the scheduler already fired, or an earlier backfill already started, gives back the
//! run that exists rather than a second one. Overlap and catch-up policies are the
//! tick's business and do not apply: the caller paces the runs itself.

use super::intake::Started;
use super::{HandlerError, HandlerResult, Handlers};
use braid_engine::model::Definition;
use braid_lang::triggers::schedule::backfill_instants;
use braid_lang::{Schedule, TriggerSource, Workflow};
use braid_ports::PortError;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use std::collections::BTreeSet;

/// The most instants one backfill plans: a mistyped year would otherwise start a flood
/// of runs.
pub const MAX_BACKFILL_INSTANTS: usize = 10_000;

impl Handlers {
    /// The instants a backfill of `workflow` (its current definition) from `from` to
    /// `to`, both included, starts a run for: every instant of each of its schedule
    /// triggers, oldest first, an instant two schedules share once.
    ///
    /// `Invalid` for an inverted range, a workflow without a schedule, or more than
    /// [`MAX_BACKFILL_INSTANTS`] instants; `NotFound` for a workflow not registered.
    pub async fn backfill_plan(
        &self,
        workflow: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> HandlerResult<Vec<DateTime<Utc>>> {
        let def = match self.ports.store.current_definition(workflow).await {
            Ok(d) => d,
            Err(PortError::NotFound(_)) => {
                return Err(HandlerError::Port(PortError::NotFound(format!(
                    "workflow `{workflow}` is not registered"
                ))));
            }
            Err(e) => return Err(e.into()),
        };
        self.backfill_plan_of(&def, from, to)
    }

    /// [`Handlers::backfill_plan`] for a given definition.
    pub fn backfill_plan_of(
        &self,
        def: &Definition,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> HandlerResult<Vec<DateTime<Utc>>> {
        let wf = self.parse_cached(def)?;
        let schedules: Vec<&Schedule> = schedules(&wf).map(|(_, s)| s).collect();
        if schedules.is_empty() {
            return Err(HandlerError::Invalid(format!(
                "workflow `{}` has no schedule trigger: there is nothing to backfill",
                wf.name
            )));
        }
        let mut all = BTreeSet::new();
        for schedule in schedules {
            let instants = backfill_instants(schedule, from, to, MAX_BACKFILL_INSTANTS)
                .map_err(HandlerError::Invalid)?;
            all.extend(instants);
        }
        if all.len() > MAX_BACKFILL_INSTANTS {
            let show = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
            return Err(HandlerError::Invalid(format!(
                "the schedules of `{}` fire {} times from {} to {}, more than the limit of {MAX_BACKFILL_INSTANTS}: narrow --from/--to",
                wf.name,
                all.len(),
                show(from),
                show(to)
            )));
        }
        Ok(all.into_iter().collect())
    }

    /// Starts the run of `def` for the scheduled `instant`, exactly as the scheduler
    /// starts it, through the first schedule trigger that fires at `instant` (the one
    /// the tick would start it through). Returns the existing run, with `existing` set,
    /// when the instant was started before.
    ///
    /// `Invalid` when no schedule of `def` fires at `instant`, or when the trigger
    /// gives no valid input.
    pub async fn backfill_start(
        &self,
        def: &Definition,
        instant: DateTime<Utc>,
    ) -> HandlerResult<Started> {
        let wf = self.parse_cached(def)?;
        let Some((trigger, schedule)) = schedules(&wf).find(|(_, s)| fires_at(s, instant)) else {
            return Err(HandlerError::Invalid(format!(
                "{} is not a scheduled instant of workflow `{}`",
                instant.to_rfc3339_opts(SecondsFormat::Secs, true),
                wf.name
            )));
        };
        match self
            .start_scheduled(def, &wf.triggers[trigger], schedule, instant, false)
            .await?
        {
            Ok(started) => Ok(started),
            Err(e) => Err(HandlerError::Invalid(e)),
        }
    }
}

/// The schedule triggers of `wf`, with their positions.
fn schedules(wf: &Workflow) -> impl Iterator<Item = (usize, &Schedule)> {
    wf.triggers
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match &t.source {
            TriggerSource::Schedule { schedule, .. } => Some((i, schedule)),
            _ => None,
        })
}

/// Whether `instant` is one of the instants of `schedule`.
fn fires_at(schedule: &Schedule, instant: DateTime<Utc>) -> bool {
    instant
        .checked_sub_signed(TimeDelta::nanoseconds(1))
        .and_then(|before| schedule.next_after(before))
        == Some(instant)
}
