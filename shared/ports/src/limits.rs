//! The largest record a state store takes, the same on every backend.
//!
//! DynamoDB refuses an item over 400 KB, its keys and index attributes included; the
//! embedded store has no such limit of its own. Both adapters refuse a record whose
//! JSON is over [`MAX_RECORD_BYTES`] before writing it, with
//! [`PortError::Refused`](super::PortError::Refused), so a record too big fails alike
//! on every backend, and never as a retryable error. The handlers keep records far
//! below it: params, trigger data, items and outputs over their inline limit are kept
//! by reference in the payload store, and error messages are bounded.

use super::{PortError, PortResult};
use braid_engine::model::{Definition, RunRecord, StepRecord};

/// The largest record (run, step, definition) a state store takes, as bytes of JSON:
/// DynamoDB's 400 KB item limit less a margin for the keys, index and TTL attributes
/// an item adds to its record.
pub const MAX_RECORD_BYTES: usize = 390 * 1024;

/// A record the state stores write, named for error messages.
pub trait Record: serde::Serialize {
    /// What the record is, in an error message: `run R`, `step S of run R`, ...
    fn describe(&self) -> String;
}

impl Record for braid_engine::model::AuditEntry {
    fn describe(&self) -> String {
        format!(
            "audit entry of {} on {}",
            self.action.as_str(),
            self.workflow
        )
    }
}

impl Record for RunRecord {
    fn describe(&self) -> String {
        format!("run {}", self.id)
    }
}

impl Record for StepRecord {
    fn describe(&self) -> String {
        format!("step {} of run {}", self.key, self.run_id)
    }
}

impl Record for braid_engine::model::Signal {
    fn describe(&self) -> String {
        format!("signal {} ({})", self.name, self.id)
    }
}

impl Record for Definition {
    fn describe(&self) -> String {
        format!("definition {}@{}", self.workflow, self.version)
    }
}

/// [`PortError::Refused`] when `record`, `json_len` bytes as JSON, is over
/// [`MAX_RECORD_BYTES`].
pub fn check_record_size(record: &impl Record, json_len: usize) -> PortResult<()> {
    if json_len > MAX_RECORD_BYTES {
        return Err(PortError::Refused(format!(
            "{} is {json_len} bytes of JSON, over the {MAX_RECORD_BYTES}-byte limit of a stored record",
            record.describe()
        )));
    }
    Ok(())
}
