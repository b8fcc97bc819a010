//! Events from outside, read from the shapes their sources deliver, each with the
//! `trigger` data a run sees and the key that makes its delivery idempotent.
//!
//! Sources deliver at least once, sometimes through two paths (an S3 upload arrives both
//! as an S3 event notification and as an EventBridge event): the key names the real-world
//! event, not the delivery, so every copy starts the same one run.

use serde_json::{Value, json};

/// An object created in a bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// S3's per-key ordering token: two writes of one key differ in it.
    pub sequencer: Option<String>,
    pub time: Option<String>,
}

/// A message from a user's SQS queue.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsMessage {
    /// The queue's ARN (`eventSourceARN`), URL or name.
    pub queue: String,
    pub message_id: String,
    pub body: String,
    pub attributes: Value,
}

/// An event that may start runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    S3(S3Object),
    /// An EventBridge event, the whole envelope (`id`, `source`, `detail-type`, `detail`…).
    Event(Value),
    Sqs(SqsMessage),
}

impl Incoming {
    /// An EventBridge event: an S3 Object Created event becomes [`Incoming::S3`], so it
    /// fires `s3` triggers (and keys like its S3 notification twin); any event also
    /// fires matching `event` triggers (see [`super::route`]).
    pub fn from_eventbridge(event: Value) -> Self {
        match S3Object::from_eventbridge(&event) {
            Some(obj) => Incoming::S3(obj),
            None => Incoming::Event(event),
        }
    }

    /// What the run sees as `trigger`.
    pub fn trigger_data(&self) -> Value {
        match self {
            Incoming::S3(o) => json!({
                "kind": "s3",
                "bucket": o.bucket,
                "key": o.key,
                "size": o.size,
                "etag": o.etag,
                "version_id": o.version_id,
                "sequencer": o.sequencer,
                "time": o.time,
            }),
            Incoming::Event(e) => {
                let mut data = e.clone();
                if let Some(m) = data.as_object_mut() {
                    m.insert("kind".into(), json!("event"));
                }
                data
            }
            Incoming::Sqs(m) => json!({
                "kind": "sqs",
                "queue": m.queue,
                "message_id": m.message_id,
                // A JSON body is given parsed, anything else as text.
                "body": serde_json::from_str::<Value>(&m.body)
                    .unwrap_or_else(|_| Value::String(m.body.clone())),
                "attributes": m.attributes,
            }),
        }
    }

    /// The idempotency key of the real-world event (per workflow: the store scopes keys
    /// by workflow).
    pub fn idempotency_key(&self) -> String {
        match self {
            Incoming::S3(o) => {
                let version = o
                    .version_id
                    .as_deref()
                    .filter(|v| !v.is_empty() && *v != "null")
                    .or(o.sequencer.as_deref())
                    .or(o.etag.as_deref())
                    .unwrap_or("");
                format!("s3:{}/{}@{version}", o.bucket, o.key)
            }
            Incoming::Event(e) => format!("event:{}", e["id"].as_str().unwrap_or_default()),
            Incoming::Sqs(m) => format!("sqs:{}", m.message_id),
        }
    }
}

impl S3Object {
    /// Reads an EventBridge `Object Created` event from `aws.s3`; `None` for any other.
    pub fn from_eventbridge(event: &Value) -> Option<Self> {
        if event["source"] != "aws.s3" || event["detail-type"] != "Object Created" {
            return None;
        }
        let d = &event["detail"];
        Some(S3Object {
            bucket: d["bucket"]["name"].as_str()?.to_string(),
            key: d["object"]["key"].as_str()?.to_string(),
            size: d["object"]["size"].as_u64(),
            etag: text(&d["object"]["etag"]),
            version_id: text(&d["object"]["version-id"]),
            sequencer: text(&d["object"]["sequencer"]),
            time: text(&event["time"]),
        })
    }

    /// Reads one record of an S3 event notification (`Records[]`). `Ok(None)` for a
    /// record that is not an object creation (a removal, a test event); an error says
    /// which field is missing.
    pub fn from_notification(record: &Value) -> Result<Option<Self>, String> {
        let name = record["eventName"]
            .as_str()
            .ok_or("an S3 notification record needs `eventName`")?;
        if !name.starts_with("ObjectCreated:") {
            return Ok(None);
        }
        let s3 = &record["s3"];
        let bucket = s3["bucket"]["name"]
            .as_str()
            .ok_or("an S3 notification record needs `s3.bucket.name`")?;
        let raw_key = s3["object"]["key"]
            .as_str()
            .ok_or("an S3 notification record needs `s3.object.key`")?;
        // Notification keys are URL-encoded (a space is `+`); EventBridge's are not.
        let key = url_decode(raw_key)
            .ok_or_else(|| format!("the object key `{raw_key}` is not valid URL encoding"))?;
        Ok(Some(S3Object {
            bucket: bucket.to_string(),
            key,
            size: s3["object"]["size"].as_u64(),
            etag: text(&s3["object"]["eTag"]),
            version_id: text(&s3["object"]["versionId"]),
            sequencer: text(&s3["object"]["sequencer"]),
            time: text(&record["eventTime"]),
        }))
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Decodes `application/x-www-form-urlencoded` text; `None` when it is not valid UTF-8
/// once decoded or has a bad `%` escape.
pub fn url_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

/// The queue name in a queue ARN, URL or bare name.
pub fn queue_name(queue: &str) -> &str {
    queue.rsplit([':', '/']).next().unwrap_or(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eventbridge_upload() -> Value {
        json!({
            "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created", "source": "aws.s3",
            "account": "111122223333", "time": "2026-11-25T10:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:s3:::acme-orders"],
            "detail": {
                "version": "0", "bucket": {"name": "acme-orders"},
                "object": {"key": "incoming/day 1.csv", "size": 5, "etag": "b1946ac9",
                           "sequencer": "00617F08299329D189"},
                "request-id": "N4N7GDK58NMKJ12R", "reason": "PutObject"
            }
        })
    }

    fn notification_upload() -> Value {
        json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-25T10:00:00.000Z", "eventName": "ObjectCreated:Put",
            "s3": {
                "bucket": {"name": "acme-orders", "arn": "arn:aws:s3:::acme-orders"},
                "object": {"key": "incoming/day+1.csv", "size": 5, "eTag": "b1946ac9",
                           "sequencer": "00617F08299329D189"}
            }
        })
    }

    #[test]
    fn an_upload_keys_alike_through_eventbridge_and_notifications() {
        let a = Incoming::from_eventbridge(eventbridge_upload());
        let b = Incoming::S3(
            S3Object::from_notification(&notification_upload())
                .unwrap()
                .unwrap(),
        );
        assert_eq!(a.idempotency_key(), b.idempotency_key());
        assert_eq!(a.trigger_data()["key"], "incoming/day 1.csv");
        assert_eq!(b.trigger_data()["key"], "incoming/day 1.csv");
    }

    #[test]
    fn two_writes_of_one_key_are_two_events() {
        let mut second = notification_upload();
        second["s3"]["object"]["sequencer"] = json!("00617F0829932A0000");
        let key = |r: &Value| {
            Incoming::S3(S3Object::from_notification(r).unwrap().unwrap()).idempotency_key()
        };
        assert_ne!(key(&notification_upload()), key(&second));
    }

    #[test]
    fn removals_and_test_events_start_nothing() {
        let mut removed = notification_upload();
        removed["eventName"] = json!("ObjectRemoved:Delete");
        assert_eq!(S3Object::from_notification(&removed), Ok(None));
        let err = S3Object::from_notification(&json!({"Event": "s3:TestEvent"})).unwrap_err();
        assert!(err.contains("eventName"), "{err}");
    }

    #[test]
    fn a_record_without_its_bucket_is_rejected_by_name() {
        let mut r = notification_upload();
        r["s3"]["bucket"] = json!({});
        let err = S3Object::from_notification(&r).unwrap_err();
        assert!(err.contains("s3.bucket.name"), "{err}");
    }

    #[test]
    fn other_eventbridge_events_stay_events() {
        let e = json!({"id": "e-1", "source": "acme.orders", "detail-type": "OrderBatchReady",
                       "detail": {"n": 3}});
        let inc = Incoming::from_eventbridge(e);
        assert_eq!(inc.idempotency_key(), "event:e-1");
        assert_eq!(inc.trigger_data()["detail"]["n"], 3);
        assert_eq!(inc.trigger_data()["kind"], "event");
    }

    #[test]
    fn sqs_bodies_are_parsed_when_json() {
        let m = |body: &str| {
            Incoming::Sqs(SqsMessage {
                queue: "arn:aws:sqs:us-east-1:1:orders".into(),
                message_id: "m-1".into(),
                body: body.into(),
                attributes: json!({}),
            })
        };
        assert_eq!(m(r#"{"a":1}"#).trigger_data()["body"]["a"], 1);
        assert_eq!(m("plain").trigger_data()["body"], "plain");
        assert_eq!(m("x").idempotency_key(), "sqs:m-1");
    }

    #[test]
    fn url_decoding_handles_plus_escapes_and_rejects_bad_ones() {
        assert_eq!(url_decode("a+b%2Fc%C3%A9").as_deref(), Some("a b/cé"));
        assert_eq!(url_decode("bad%zz"), None);
        assert_eq!(url_decode("cut%4"), None);
    }

    #[test]
    fn queue_names_come_from_arns_urls_and_names() {
        assert_eq!(queue_name("arn:aws:sqs:us-east-1:1:orders"), "orders");
        assert_eq!(
            queue_name("https://sqs.us-east-1.amazonaws.com/1/orders"),
            "orders"
        );
        assert_eq!(queue_name("orders"), "orders");
    }
}
