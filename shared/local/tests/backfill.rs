//! Backfill on the embedded backend: the plan is the exact scheduled instants of a
//! range (across DST changes, several schedules merged), bad requests are refused with
//! a reason, and a backfilled instant is the very run the scheduler starts for it.

use braid_engine::model::Definition;
use braid_handlers::{HandlerError, Handlers, definition};
use braid_local::backend::{LocalOptions, open};
use braid_local::runtime::LocalRuntime;
use braid_ports::{ManualClock, PortError};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;

const NIGHTLY: &str = r#"
name: nightly
params:
  day: { type: string, required: true }
triggers:
  - schedule: { cron: "0 2 * * *", timezone: Europe/Paris }
    params: { day: "{{ trigger.scheduled_at }}" }
steps:
  - id: a
    pass: { day: "{{ params.day }}" }
"#;

/// Two schedules that meet at midnight UTC in summer (02:00 in Paris) but not in winter.
const TWICE: &str = r#"
name: twice
triggers:
  - schedule: { cron: "0 2 * * *", timezone: Europe/Paris }
  - schedule: "0 0 * * *"
  - s3: { bucket: b }
steps:
  - id: a
    pass: 1
"#;

const UNSCHEDULED: &str = r#"
name: unscheduled
triggers:
  - s3: { bucket: b }
steps:
  - id: a
    pass: 1
"#;

const MINUTELY: &str = r#"
name: minutely
triggers:
  - schedule: "* * * * *"
steps:
  - id: a
    pass: 1
"#;

struct Env {
    _dir: tempfile::TempDir,
    rt: LocalRuntime,
    clock: Arc<ManualClock>,
}

impl Env {
    fn handlers(&self) -> &Handlers {
        self.rt.handlers()
    }

    async fn register(&self, yaml: &str) -> Definition {
        let (def, _) = definition("wf.yaml", yaml).unwrap();
        self.handlers()
            .ports()
            .store
            .put_definition(&def)
            .await
            .unwrap();
        def
    }
}

async fn env(start: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at(start)));
    let mut opts = LocalOptions::new(dir.path());
    opts.clock = clock.clone();
    let rt = open(&opts).unwrap();
    let e = Env {
        _dir: dir,
        rt,
        clock,
    };
    for wf in [NIGHTLY, TWICE, UNSCHEDULED, MINUTELY] {
        e.register(wf).await;
    }
    e
}

fn at(instant: &str) -> DateTime<Utc> {
    instant.parse().unwrap()
}

fn instants(list: &[&str]) -> Vec<DateTime<Utc>> {
    list.iter().map(|i| at(i)).collect()
}

#[tokio::test]
async fn a_daily_paris_schedule_backfills_its_exact_instants_across_the_autumn_change() {
    let e = env("2026-12-01T00:00:00Z").await;
    // 02:00 in Paris is 00:00Z in summer time and 01:00Z in winter time; on the night
    // of the change (25 October) 02:00 happens twice and fires the first time only.
    // Both ends are included.
    let plan = e
        .handlers()
        .backfill_plan(
            "nightly",
            at("2026-10-23T00:00:00Z"),
            at("2026-10-27T01:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(
        plan,
        instants(&[
            "2026-10-23T00:00:00Z",
            "2026-10-24T00:00:00Z",
            "2026-10-25T00:00:00Z",
            "2026-10-26T01:00:00Z",
            "2026-10-27T01:00:00Z",
        ])
    );
}

#[tokio::test]
async fn the_skipped_spring_hour_still_gets_its_run_just_after_the_gap() {
    let e = env("2026-12-01T00:00:00Z").await;
    // 29 March 2026: the clock jumps from 02:00 to 03:00, so that night's run is at
    // 03:00 summer time, 01:00Z.
    let plan = e
        .handlers()
        .backfill_plan(
            "nightly",
            at("2026-03-28T00:00:00Z"),
            at("2026-03-30T23:59:59Z"),
        )
        .await
        .unwrap();
    assert_eq!(
        plan,
        instants(&[
            "2026-03-28T01:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:00:00Z",
        ])
    );
}

#[tokio::test]
async fn several_schedules_are_merged_sorted_and_deduplicated() {
    let e = env("2026-12-01T00:00:00Z").await;
    let plan = e
        .handlers()
        .backfill_plan(
            "twice",
            at("2026-10-24T00:00:00Z"),
            at("2026-10-26T23:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(
        plan,
        instants(&[
            "2026-10-24T00:00:00Z",
            "2026-10-25T00:00:00Z",
            "2026-10-26T00:00:00Z",
            "2026-10-26T01:00:00Z",
        ])
    );
}

#[tokio::test]
async fn bad_backfills_are_refused_with_the_reason() {
    let e = env("2026-12-01T00:00:00Z").await;
    let h = e.handlers();
    let (from, to) = (at("2026-11-01T00:00:00Z"), at("2026-11-09T00:00:00Z"));

    let inverted = h.backfill_plan("nightly", to, from).await.unwrap_err();
    assert!(
        matches!(&inverted, HandlerError::Invalid(m) if m.contains("is after")),
        "{inverted:?}"
    );

    let unscheduled = h.backfill_plan("unscheduled", from, to).await.unwrap_err();
    assert!(
        matches!(&unscheduled, HandlerError::Invalid(m)
            if m == "workflow `unscheduled` has no schedule trigger: there is nothing to backfill"),
        "{unscheduled:?}"
    );

    let unknown = h.backfill_plan("nope", from, to).await.unwrap_err();
    assert!(
        matches!(&unknown, HandlerError::Port(PortError::NotFound(m))
            if m == "workflow `nope` is not registered"),
        "{unknown:?}"
    );

    // Eight days of a minutely schedule: 11,521 instants, over the limit of 10,000.
    let flood = h.backfill_plan("minutely", from, to).await.unwrap_err();
    assert!(
        matches!(&flood, HandlerError::Invalid(m) if m.contains("11521 times") && m.contains("10000")),
        "{flood:?}"
    );

    // An empty range is no error: nothing to do.
    let quiet = h
        .backfill_plan(
            "nightly",
            at("2026-11-01T02:00:00Z"),
            at("2026-11-01T03:00:00Z"),
        )
        .await
        .unwrap();
    assert!(quiet.is_empty());
}

#[tokio::test]
async fn a_backfilled_instant_is_the_run_the_scheduler_starts_for_it() {
    // Registered on the evening of 24 October; the tick sees 02:00 Paris (00:00Z) come.
    let e = env("2026-10-24T22:00:00Z").await;
    let h = e.handlers();
    let def = h.ports().store.current_definition("nightly").await.unwrap();
    assert!(h.fire_schedules().await.unwrap().is_empty());
    e.clock.set(at("2026-10-25T00:00:30Z"));
    let fired: Vec<_> = h
        .fire_schedules()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.workflow == "nightly")
        .collect();
    assert_eq!(fired.len(), 1);
    let by_scheduler = fired[0].outcome.clone().unwrap().run;

    // Backfilling the night the scheduler fired finds its run.
    let again = h
        .backfill_start(&def, at("2026-10-25T00:00:00Z"))
        .await
        .unwrap();
    assert!(again.existing);
    assert_eq!(again.run.id, by_scheduler.id);

    // A night before registration starts a run with the scheduler's trigger data and
    // key; backfilling it again finds that run.
    let earlier = h
        .backfill_start(&def, at("2026-10-24T00:00:00Z"))
        .await
        .unwrap();
    assert!(!earlier.existing);
    assert_eq!(
        earlier.run.trigger,
        json!({
            "kind": "schedule",
            "scheduled_at": "2026-10-24T00:00:00+00:00",
            "expression": "0 2 * * *",
            "timezone": "Europe/Paris",
        })
    );
    assert_eq!(
        earlier.run.idempotency_key.as_deref(),
        Some("schedule:2026-10-24T00:00:00+00:00")
    );
    assert_eq!(earlier.run.params["day"], "2026-10-24T00:00:00+00:00");
    assert_eq!(
        by_scheduler.trigger["scheduled_at"],
        "2026-10-25T00:00:00+00:00"
    );
    let twice = h
        .backfill_start(&def, at("2026-10-24T00:00:00Z"))
        .await
        .unwrap();
    assert!(twice.existing);
    assert_eq!(twice.run.id, earlier.run.id);

    // An instant the schedule never fires at is refused.
    let off = h
        .backfill_start(&def, at("2026-10-24T00:30:00Z"))
        .await
        .unwrap_err();
    assert!(
        matches!(&off, HandlerError::Invalid(m)
            if m == "2026-10-24T00:30:00Z is not a scheduled instant of workflow `nightly`"),
        "{off:?}"
    );
}
