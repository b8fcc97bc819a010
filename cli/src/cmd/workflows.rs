//! `braid workflows`: the registered workflows — name, current version and what starts
//! each (its triggers, with a schedule's next instant) — in the local state or a
//! deployed stack.

use super::Exit;
use super::local::tokio;
use super::report::Format;
use super::target::{Target, TargetArgs};
use braid_engine::model::Definition;
use braid_lang::decl::{CatchupPolicy, OverlapPolicy, SignatureScheme};
use braid_lang::{Cadence, TriggerSource, Workflow, format_duration};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `text`: a block per workflow, a line per trigger; `json`: an array of objects.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let (registered, place) = tokio()?.block_on(async {
        let target = Target::read(&args.target).await?;
        let mut registered = Vec::new();
        for (def, wf) in target.handlers().registered().await? {
            let paused = target.handlers().schedules_paused(&def.workflow).await?;
            registered.push((def, wf, paused));
        }
        anyhow::Ok((registered, target.place().to_string()))
    })?;
    let now = Utc::now();
    match args.output {
        Format::Json => {
            let list: Vec<Value> = registered
                .iter()
                .map(|(def, wf, paused)| describe(def, wf, *paused, now))
                .collect();
            println!("{}", Value::Array(list));
        }
        Format::Text => {
            if registered.is_empty() {
                eprintln!("no workflow is registered in {place}");
            }
            for (def, wf, paused) in &registered {
                let note = if *paused { "  (schedules paused)" } else { "" };
                println!("{}  version {}{note}", def.workflow, def.version);
                if let Some(d) = &wf.description {
                    println!("  {}", d.trim());
                }
                if wf.triggers.is_empty() {
                    println!("  no triggers: started explicitly only");
                }
                for t in &wf.triggers {
                    let next = if *paused { None } else { Some(now) };
                    println!("  {}", trigger_line(&t.source, next));
                }
            }
        }
    }
    Ok(Exit::Success)
}

/// An instant as printed: RFC 3339 in UTC, to the second.
pub fn show_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One trigger in a short line: `schedule 0 2 * * * Europe/Paris — next ...`,
/// `s3 acme-orders incoming/*.csv`, `event {...}`, `webhook /hooks/orders (...)`,
/// `sqs orders-in`. A schedule's next instant is the first after `now`; with `None`
/// its schedules are paused.
pub fn trigger_line(source: &TriggerSource, now: Option<DateTime<Utc>>) -> String {
    match source {
        TriggerSource::Schedule { schedule, .. } => {
            let zone = match schedule.cadence {
                Cadence::Cron(_) => format!(" {}", schedule.timezone.name()),
                Cadence::Rate(_) => String::new(),
            };
            let next = match now {
                None => "paused".to_string(),
                Some(now) => schedule.next_after(now).map_or_else(
                    || "never again".to_string(),
                    |t| format!("next {}", show_instant(t)),
                ),
            };
            format!("schedule {}{zone} — {next}", schedule.expression)
        }
        TriggerSource::S3 {
            bucket,
            prefix,
            suffix,
        } => format!(
            "s3 {bucket} {}*{}",
            prefix.as_deref().unwrap_or(""),
            suffix.as_deref().unwrap_or("")
        ),
        TriggerSource::Event { pattern } => format!("event {pattern}"),
        TriggerSource::Webhook {
            path,
            secret,
            signature,
        } => format!(
            "webhook /hooks/{path} (signature {}, secret {secret})",
            scheme_name(*signature)
        ),
        TriggerSource::Sqs { queue } => format!("sqs {queue}"),
    }
}

/// A registered workflow as a JSON object: the same facts as the text.
fn describe(def: &Definition, wf: &Workflow, paused: bool, now: DateTime<Utc>) -> Value {
    let triggers: Vec<Value> = wf
        .triggers
        .iter()
        .map(|t| trigger_json(&t.source, (!paused).then_some(now)))
        .collect();
    json!({
        "workflow": def.workflow,
        "version": def.version,
        "description": wf.description,
        "schedules_paused": paused,
        "triggers": triggers,
    })
}

fn trigger_json(source: &TriggerSource, now: Option<DateTime<Utc>>) -> Value {
    match source {
        TriggerSource::Schedule {
            schedule,
            catchup,
            catchup_window,
            overlap,
        } => json!({
            "kind": "schedule",
            "expression": schedule.expression,
            "timezone": schedule.timezone.name(),
            "catchup": catchup_name(*catchup),
            "catchup_window": format_duration(*catchup_window),
            "overlap": overlap_name(*overlap),
            "next": now.and_then(|now| schedule.next_after(now)).map(show_instant),
        }),
        TriggerSource::S3 {
            bucket,
            prefix,
            suffix,
        } => json!({"kind": "s3", "bucket": bucket, "prefix": prefix, "suffix": suffix}),
        TriggerSource::Event { pattern } => json!({"kind": "event", "pattern": pattern}),
        TriggerSource::Webhook {
            path,
            secret,
            signature,
        } => json!({
            "kind": "webhook",
            "path": path,
            "url_path": format!("/hooks/{path}"),
            "signature": scheme_name(*signature),
            "secret": secret,
        }),
        TriggerSource::Sqs { queue } => json!({"kind": "sqs", "queue": queue}),
    }
}

fn scheme_name(s: SignatureScheme) -> &'static str {
    match s {
        SignatureScheme::Braid => "braid",
        SignatureScheme::Github => "github",
        SignatureScheme::Stripe => "stripe",
    }
}

fn catchup_name(c: CatchupPolicy) -> &'static str {
    match c {
        CatchupPolicy::None => "none",
        CatchupPolicy::Latest => "latest",
        CatchupPolicy::All => "all",
    }
}

fn overlap_name(o: OverlapPolicy) -> &'static str {
    match o {
        OverlapPolicy::Skip => "skip",
        OverlapPolicy::Queue => "queue",
        OverlapPolicy::Allow => "allow",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_lang::Schedule;
    use std::time::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_schedule_line_names_its_zone_and_next_instant() {
        let source = TriggerSource::Schedule {
            schedule: Schedule::parse("0 2 * * *", Some("Europe/Paris")).unwrap(),
            catchup: CatchupPolicy::None,
            catchup_window: Duration::from_secs(86_400),
            overlap: OverlapPolicy::Skip,
        };
        assert_eq!(
            trigger_line(&source, Some(at("2026-11-25T12:00:00Z"))),
            "schedule 0 2 * * * Europe/Paris — next 2026-11-26T01:00:00Z"
        );
        let json = trigger_json(&source, Some(at("2026-11-25T12:00:00Z")));
        assert_eq!(json["next"], "2026-11-26T01:00:00Z");
        assert_eq!(json["catchup"], "none");
    }

    #[test]
    fn a_paused_schedule_shows_no_next_instant() {
        let source = TriggerSource::Schedule {
            schedule: Schedule::parse("0 2 * * *", None).unwrap(),
            catchup: CatchupPolicy::None,
            catchup_window: Duration::from_secs(86_400),
            overlap: OverlapPolicy::Skip,
        };
        assert_eq!(
            trigger_line(&source, None),
            "schedule 0 2 * * * UTC — paused"
        );
        assert_eq!(trigger_json(&source, None)["next"], Value::Null);
    }

    #[test]
    fn other_triggers_fit_one_line() {
        let now = at("2026-11-25T12:00:00Z");
        let s3 = TriggerSource::S3 {
            bucket: "acme-orders".into(),
            prefix: Some("incoming/".into()),
            suffix: Some(".csv".into()),
        };
        assert_eq!(
            trigger_line(&s3, Some(now)),
            "s3 acme-orders incoming/*.csv"
        );
        let hook = TriggerSource::Webhook {
            path: "orders".into(),
            secret: "orders-hook".into(),
            signature: SignatureScheme::Braid,
        };
        assert_eq!(
            trigger_line(&hook, Some(now)),
            "webhook /hooks/orders (signature braid, secret orders-hook)"
        );
        let sqs = TriggerSource::Sqs {
            queue: "orders-in".into(),
        };
        assert_eq!(trigger_line(&sqs, Some(now)), "sqs orders-in");
        let event = TriggerSource::Event {
            pattern: json!({"source": ["acme.orders"]}),
        };
        assert_eq!(
            trigger_line(&event, Some(now)),
            r#"event {"source":["acme.orders"]}"#
        );
    }
}
