//! Records to items and back: key attributes, index attributes, and the record's fields
//! as top-level attributes beside them.

use super::{
    ACTIVE_PK, ACTIVE_SK, ALL_PK, ALL_SK, Item, PK, QUEUED_PK, QUEUED_SK, RETENTION, SHARDS, SK,
    TIMER_PK, TIMER_SK, TTL, WF_PK, WF_SK,
};
use aws_sdk_dynamodb::types::AttributeValue;
use braid_engine::model::{RunRecord, RunStatus, StepKey, StepRecord, Timestamp};
use braid_ports::{PortError, PortResult, Record};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Fields holding user data. They are stored as JSON text rather than as DynamoDB maps:
/// DynamoDB normalises numbers (`1.0` reads back as `1`) and bounds them (38 digits,
/// magnitudes 1e-130..1e126), which would change what a step returned. No expression
/// ever looks inside them.
/// A signal's data is kept as JSON text, as a step's output is.
pub(super) const SIGNAL_OPAQUE: &[&str] = &["data"];
pub(super) const RUN_OPAQUE: &[&str] = &["params", "trigger", "output"];
pub(super) const STEP_OPAQUE: &[&str] = &["output", "item", "items"];

/// Attributes that belong to the table, not to the record.
const TABLE_ATTRS: &[&str] = &[
    PK, SK, WF_PK, WF_SK, ALL_PK, ALL_SK, ACTIVE_PK, ACTIVE_SK, TIMER_PK, TIMER_SK, QUEUED_PK,
    QUEUED_SK, TTL,
];

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn run_pk(run_id: &str) -> String {
    format!("RUN#{run_id}")
}

pub(super) const RUN_SK: &str = "RUN";

/// Top-level steps sort before nothing in particular here; iterations sort by index
/// after their step thanks to the fixed-width index.
pub(super) fn step_sk(key: &StepKey) -> String {
    match key.index {
        Some(i) => format!("STEP#{}#{i:010}", key.step),
        None => format!("STEP#{}", key.step),
    }
}

pub(super) fn wf_pk(workflow: &str) -> String {
    format!("WF#{workflow}")
}

/// The `queued_runs` partition of a workflow's queued runs.
pub(super) fn queued_pk(workflow: &str) -> String {
    format!("QUEUED#{workflow}")
}

/// The item counting the slots a workflow's runs hold.
pub(super) fn slots_pk(workflow: &str) -> String {
    format!("SLOTS#{workflow}")
}

/// The sort key of a run's signal `name`, in the run's partition.
pub(super) fn signal_sk(name: &str) -> String {
    format!("SIGNAL#{name}")
}

pub(super) fn idem_pk(workflow: &str, key: &str) -> String {
    format!("IDEM#{workflow}#{key}")
}

/// The shard of a run in the `all_runs` and `active_runs` indexes: FNV-1a of the id, so
/// it never changes between processes or releases.
pub fn shard(run_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in run_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % SHARDS
}

/// The `timers` index attributes of an item of run `run_id` whose timer is `at`. The
/// sort key is epoch milliseconds, zero-padded so that text order is time order.
pub(super) fn timer_attrs(run_id: &str, at: Timestamp) -> [(&'static str, AttributeValue); 2] {
    [
        (TIMER_PK, s(format!("TIMER#{}", shard(run_id)))),
        (TIMER_SK, s(timer_key(at))),
    ]
}

/// A timer as the `timers` index sorts it.
pub(super) fn timer_key(at: Timestamp) -> String {
    format!("{:013}", at.timestamp_millis().max(0))
}

/// The run id in a run, step or iteration item's partition key.
pub(super) fn run_id_of(pk: &str) -> Option<&str> {
    pk.strip_prefix("RUN#")
}

/// A new step or iteration item: the record, its key and, when it has a timer, its
/// `timers` index attributes.
pub(super) fn step_item(rec: &StepRecord) -> PortResult<Item> {
    let mut item = encode(rec, STEP_OPAQUE)?;
    item.insert(PK.into(), s(run_pk(&rec.run_id)));
    item.insert(SK.into(), s(step_sk(&rec.key)));
    if let Some(at) = rec.timer() {
        item.extend(timer_attrs(&rec.run_id, at).map(|(k, v)| (k.to_string(), v)));
    }
    Ok(item)
}

/// Epoch seconds at which a record of a run finished at `finished` may be deleted.
pub(super) fn expiry(finished: Timestamp) -> i64 {
    finished.timestamp() + RETENTION.as_secs() as i64
}

fn corrupt(e: impl std::fmt::Display) -> PortError {
    PortError::backend_msg(format!("corrupt record: {e}"))
}

/// The record's fields as attributes, the `opaque` ones as JSON text. A record over
/// [`braid_ports::MAX_RECORD_BYTES`] is refused here, as the embedded store refuses
/// it, rather than by DynamoDB at a slightly different size.
pub(super) fn encode<T: Record>(rec: &T, opaque: &[&str]) -> PortResult<Item> {
    let mut v = serde_json::to_value(rec).map_err(PortError::backend)?;
    let len = serde_json::to_vec(&v).map_err(PortError::backend)?.len();
    braid_ports::check_record_size(rec, len)?;
    if let Some(obj) = v.as_object_mut() {
        for f in opaque {
            if let Some(x) = obj.get_mut(*f).filter(|x| !x.is_null()) {
                *x = Value::String(x.to_string());
            }
        }
    }
    serde_dynamo::aws_sdk_dynamodb_1::to_item(v).map_err(PortError::backend)
}

/// The record an item holds, ignoring the table's own attributes.
pub(super) fn decode<T: DeserializeOwned>(mut item: Item, opaque: &[&str]) -> PortResult<T> {
    for a in TABLE_ATTRS {
        item.remove(*a);
    }
    let mut v: Value = serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(corrupt)?;
    if let Some(obj) = v.as_object_mut() {
        for f in opaque {
            if let Some(x) = obj.get_mut(*f)
                && let Value::String(text) = x
            {
                *x = serde_json::from_str(text).map_err(corrupt)?;
            }
        }
    }
    serde_json::from_value(v).map_err(corrupt)
}

/// The run's item: the record plus its key, its index attributes and, once final, its
/// expiry. The `active_runs` attributes are present only while the run is not final.
pub(super) fn run_item(run: &RunRecord) -> PortResult<Item> {
    let mut item = encode(run, RUN_OPAQUE)?;
    let shard = shard(&run.id);
    item.insert(PK.into(), s(run_pk(&run.id)));
    item.insert(SK.into(), s(RUN_SK));
    item.insert(WF_PK.into(), s(wf_pk(&run.workflow)));
    item.insert(WF_SK.into(), s(&run.id));
    item.insert(ALL_PK.into(), s(format!("RUNS#{shard}")));
    item.insert(ALL_SK.into(), s(&run.id));
    if run.status.is_final() {
        let finished = run.finished_at.unwrap_or(run.created_at);
        item.insert(TTL.into(), n(expiry(finished)));
    } else {
        item.insert(ACTIVE_PK.into(), s(format!("ACTIVE#{shard}")));
        item.insert(ACTIVE_SK.into(), s(&run.id));
    }
    if let Some(at) = run.timer() {
        item.extend(timer_attrs(&run.id, at).map(|(k, v)| (k.to_string(), v)));
    }
    if run.status == RunStatus::Queued {
        item.insert(QUEUED_PK.into(), s(queued_pk(&run.workflow)));
        item.insert(QUEUED_SK.into(), s(&run.id));
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_engine::model::{Data, StepRecord, StepStatus};
    use serde_json::json;

    #[test]
    fn user_data_round_trips_exactly() {
        let mut rec = StepRecord::new("r", StepKey::iteration("f", 3), StepStatus::Pending);
        rec.output = Some(Data::Inline(json!({"x": 1.0, "big": 1e300, "s": "1"})));
        rec.item = Some(Data::Inline(json!("text")));
        rec.satisfied = vec!["a".into()];
        let item = encode(&rec, STEP_OPAQUE).unwrap();
        assert!(matches!(item["status"], AttributeValue::S(ref v) if v == "pending"));
        assert!(matches!(item["satisfied"], AttributeValue::L(_)));
        let back: StepRecord = decode(item, STEP_OPAQUE).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn timer_keys_sort_in_time_order() {
        let t = |ms| chrono::DateTime::from_timestamp_millis(ms).unwrap();
        assert!(timer_key(t(999)) < timer_key(t(1_000)));
        assert!(timer_key(t(1_700_000_000_000)) < timer_key(t(1_700_000_000_001)));
    }

    #[test]
    fn only_records_with_a_timer_are_in_the_timers_index() {
        let mut rec = StepRecord::new("r", StepKey::step("a"), StepStatus::Pending);
        rec.due_at = Some(chrono::Utc::now());
        assert!(!step_item(&rec).unwrap().contains_key(TIMER_PK));
        rec.status = StepStatus::Ready;
        assert!(!step_item(&rec).unwrap().contains_key(TIMER_PK));
        rec.status = StepStatus::Retrying;
        let item = step_item(&rec).unwrap();
        assert!(matches!(&item[TIMER_PK], AttributeValue::S(v) if v.starts_with("TIMER#")));
        let back: StepRecord = decode(item, STEP_OPAQUE).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(shard("01jabc"), shard("01jabc"));
        assert!((0..200).all(|i| shard(&format!("run-{i}")) < SHARDS));
    }

    #[test]
    fn iteration_keys_sort_by_index() {
        assert!(step_sk(&StepKey::iteration("f", 9)) < step_sk(&StepKey::iteration("f", 10)));
    }
}
