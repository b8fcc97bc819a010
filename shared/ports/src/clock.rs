//! Time and identifiers are ports too, so tests and simulations control them.

use braid_engine::model::{RunId, Timestamp};
use std::sync::Mutex;
use std::time::Duration;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += chrono::Duration::from_std(by).expect("duration in range");
    }

    pub fn set(&self, to: Timestamp) {
        *self.0.lock().expect("clock lock") = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("clock lock")
    }
}

/// Makes run ids: sortable by creation time.
pub trait Ids: Send + Sync {
    fn run_id(&self, now: Timestamp) -> RunId;
}

/// ULID run ids (lowercase, 26 characters).
#[derive(Debug, Default, Clone, Copy)]
pub struct UlidIds;

impl Ids for UlidIds {
    fn run_id(&self, now: Timestamp) -> RunId {
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        RunId::new(
            ulid::Ulid::from_parts(ms, fastrand::u128(..))
                .to_string()
                .to_lowercase(),
        )
    }
}
