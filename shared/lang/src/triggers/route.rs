//! Which workflows an incoming event starts, and with what input.

use super::incoming::{Incoming, queue_name};
use super::pattern::EventPattern;
use crate::expr::{Renderer, Scope};
use crate::{Trigger, TriggerSource, Workflow};
use serde_json::Value;

/// A workflow that an event starts: the workflow and which of its triggers matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub workflow: String,
    /// Index into the workflow's `triggers`.
    pub trigger: usize,
}

/// The workflows among `workflows` that `incoming` starts, each once (its first
/// matching trigger), in the order given.
///
/// An S3 upload fires `s3` triggers on its bucket, prefix and suffix; it also fires
/// `event` triggers whose pattern matches the EventBridge event it came in, when it came
/// through EventBridge — see [`Incoming::from_eventbridge`], which keeps that envelope
/// out, so only `s3` triggers see uploads: one way to say "on upload", one run.
pub fn route<'a>(
    workflows: impl IntoIterator<Item = &'a Workflow>,
    incoming: &Incoming,
) -> Vec<Match> {
    workflows
        .into_iter()
        .filter_map(|wf| {
            let trigger = wf
                .triggers
                .iter()
                .position(|t| matches(&t.source, incoming))?;
            Some(Match {
                workflow: wf.name.clone(),
                trigger,
            })
        })
        .collect()
}

fn matches(source: &TriggerSource, incoming: &Incoming) -> bool {
    match (source, incoming) {
        (
            TriggerSource::S3 {
                bucket,
                prefix,
                suffix,
            },
            Incoming::S3(o),
        ) => {
            *bucket == o.bucket
                && prefix.as_deref().is_none_or(|p| o.key.starts_with(p))
                && suffix.as_deref().is_none_or(|s| o.key.ends_with(s))
        }
        // The pattern was checked when the workflow was deployed; one that no longer
        // compiles (a newer rule) matches nothing rather than everything.
        (TriggerSource::Event { pattern }, Incoming::Event(e)) => {
            EventPattern::compile(pattern).is_ok_and(|p| p.matches(e))
        }
        (TriggerSource::Sqs { queue }, Incoming::Sqs(m)) => {
            queue_name(queue) == queue_name(&m.queue)
        }
        _ => false,
    }
}

/// The workflow and trigger serving webhook `path`, if any.
pub fn webhook<'a>(
    workflows: impl IntoIterator<Item = &'a Workflow>,
    path: &str,
) -> Option<(&'a Workflow, usize)> {
    workflows.into_iter().find_map(|wf| {
        wf.triggers
            .iter()
            .position(|t| matches!(&t.source, TriggerSource::Webhook { path: p, .. } if p == path))
            .map(|i| (wf, i))
    })
}

/// The run input a trigger gives: its `params` rendered over the event's `trigger`
/// data, or no input (the params' defaults) when it declares none.
pub fn input(trigger: &Trigger, data: &Value, renderer: &Renderer) -> Result<Value, String> {
    let Some(params) = &trigger.params else {
        return Ok(Value::Null);
    };
    let scope = Scope {
        trigger: data.clone(),
        ..Scope::default()
    };
    renderer
        .render(params, &scope)
        .map_err(|e| format!("the trigger's params: {}", e.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::incoming::{S3Object, SqsMessage};
    use serde_json::json;

    fn workflow(yaml: &str) -> Workflow {
        crate::parse("wf.yaml", yaml).expect("valid workflow")
    }

    fn upload(bucket: &str, key: &str) -> Incoming {
        Incoming::S3(S3Object {
            bucket: bucket.into(),
            key: key.into(),
            size: Some(1),
            etag: None,
            version_id: None,
            sequencer: Some("01".into()),
            time: None,
        })
    }

    const ORDERS: &str = r#"
name: orders
params:
  key: { type: string, required: true }
triggers:
  - s3: { bucket: acme-orders, prefix: incoming/, suffix: .csv }
    params: { key: "{{ trigger.key }}" }
  - event: { source: [acme.orders], detail-type: [OrderBatchReady] }
    params: { key: "{{ trigger.detail.key }}" }
  - sqs: { queue: "arn:aws:sqs:us-east-1:111122223333:orders-in" }
    params: { key: "{{ trigger.body.key }}" }
  - webhook: { path: orders, secret: orders-hook }
steps:
  - id: a
    pass: {}
"#;

    #[test]
    fn s3_triggers_filter_on_bucket_prefix_and_suffix() {
        let wf = workflow(ORDERS);
        let m = route([&wf], &upload("acme-orders", "incoming/d1.csv"));
        assert_eq!(
            m,
            [Match {
                workflow: "orders".into(),
                trigger: 0
            }]
        );
        for (bucket, key) in [
            ("other", "incoming/d1.csv"),
            ("acme-orders", "archive/d1.csv"),
            ("acme-orders", "incoming/d1.json"),
        ] {
            assert!(
                route([&wf], &upload(bucket, key)).is_empty(),
                "{bucket}/{key}"
            );
        }
    }

    #[test]
    fn event_triggers_match_their_pattern_only() {
        let wf = workflow(ORDERS);
        let ev = |dt: &str| {
            Incoming::Event(
                json!({"id": "1", "source": "acme.orders", "detail-type": dt,
                                   "detail": {"key": "k"}}),
            )
        };
        assert_eq!(route([&wf], &ev("OrderBatchReady"))[0].trigger, 1);
        assert!(route([&wf], &ev("Other")).is_empty());
    }

    #[test]
    fn sqs_triggers_match_the_queue_by_name_arn_or_url() {
        let wf = workflow(ORDERS);
        let msg = |queue: &str| {
            Incoming::Sqs(SqsMessage {
                queue: queue.into(),
                message_id: "m".into(),
                body: "{}".into(),
                attributes: json!({}),
            })
        };
        assert_eq!(
            route([&wf], &msg("arn:aws:sqs:us-east-1:111122223333:orders-in"))[0].trigger,
            2
        );
        assert!(route([&wf], &msg("arn:aws:sqs:us-east-1:111122223333:other")).is_empty());
    }

    #[test]
    fn webhooks_are_found_by_path() {
        let wf = workflow(ORDERS);
        assert_eq!(
            webhook([&wf], "orders").map(|(w, i)| (&w.name, i)),
            Some((&wf.name, 3))
        );
        assert!(webhook([&wf], "nope").is_none());
    }

    #[test]
    fn trigger_params_render_over_the_event() {
        let wf = workflow(ORDERS);
        let inc = upload("acme-orders", "incoming/d1.csv");
        let got = input(&wf.triggers[0], &inc.trigger_data(), &Renderer::default()).unwrap();
        assert_eq!(got, json!({"key": "incoming/d1.csv"}));
        let none = input(&wf.triggers[3], &json!({}), &Renderer::default()).unwrap();
        assert_eq!(none, Value::Null);
    }

    #[test]
    fn a_param_the_event_lacks_is_a_clear_error() {
        let wf = workflow(ORDERS);
        let err = input(
            &wf.triggers[1],
            &json!({"detail": {}}),
            &Renderer::default(),
        )
        .unwrap_err();
        assert!(err.contains("params"), "{err}");
    }
}
