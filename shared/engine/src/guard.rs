//! The condition a step write depends on.

use crate::model::{StepRecord, StepStatus, Timestamp};

/// The condition a step write depends on: the record's current status is one of
/// `statuses` and, when given, its attempt is `attempt` and its lease is `lease`.
///
/// Every step transition is guarded, which is what makes duplicate and late messages
/// harmless: a second claim or a stale result finds the guard false and changes nothing.
/// The lifecycle ([`crate::lifecycle`]) decides each write together with its guard.
#[derive(Clone, Debug, PartialEq)]
pub struct Guard {
    pub statuses: Vec<StepStatus>,
    pub attempt: Option<u32>,
    /// The lease the record holds: taking over a running attempt (renewing its lease)
    /// is one compare-and-set, so of two copies of a message resuming it, one does.
    pub lease: Option<Timestamp>,
}

impl Guard {
    pub fn status(statuses: &[StepStatus]) -> Self {
        Guard {
            statuses: statuses.to_vec(),
            attempt: None,
            lease: None,
        }
    }

    pub fn at(statuses: &[StepStatus], attempt: u32) -> Self {
        Guard {
            statuses: statuses.to_vec(),
            attempt: Some(attempt),
            lease: None,
        }
    }

    /// The guard of a write replacing `rec` as it was read, lease and all.
    pub fn unchanged(rec: &StepRecord) -> Self {
        Guard {
            statuses: vec![rec.status],
            attempt: Some(rec.attempt),
            lease: rec.lease_until,
        }
    }

    /// Whether the guard holds for a step with no record yet, which is pending (at
    /// attempt 0, or for an iteration at its fan-out's [`crate::model::FanOut::base`]):
    /// the write creates it. A step's record is written when it first
    /// changes — a run is created with its root steps' records only, a fan-out with
    /// its own ([`crate::model::FanOut::iteration`]) — and only the handlers, which
    /// know the workflow, write with a guard admitting pending.
    pub fn admits_absent(&self) -> bool {
        self.statuses.contains(&StepStatus::Pending) && self.lease.is_none()
    }

    pub fn holds(&self, rec: &StepRecord) -> bool {
        self.statuses.contains(&rec.status)
            && self.attempt.is_none_or(|a| a == rec.attempt)
            && self.lease.is_none_or(|l| rec.lease_until == Some(l))
    }
}
