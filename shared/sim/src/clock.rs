//! Virtual time and ids: the [`Clock`] port read from tokio's paused clock, so the
//! handlers' sleeps and timeouts, the queue's visibility times and the timestamps the
//! store keeps all move together — and only when every task is waiting.

use braid_engine::model::{RunId, Timestamp};
use braid_ports::{Clock, Ids};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The Clock port over tokio's (paused) time, from a fixed start instant.
#[derive(Debug)]
pub struct VirtualClock {
    base: Timestamp,
    start: Instant,
}

impl VirtualClock {
    /// A clock reading `base` now; must be made inside the simulation's runtime.
    pub fn new(base: Timestamp) -> Self {
        VirtualClock {
            base,
            start: Instant::now(),
        }
    }

    /// Virtual time since the simulation started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The current virtual timestamp.
    pub fn now_ts(&self) -> Timestamp {
        self.now()
    }

    /// The tokio instant `at` after the start.
    pub fn instant(&self, at: Duration) -> Instant {
        self.start + at
    }

    /// The virtual time since the start of timestamp `t` (zero before the start).
    pub fn since_start(&self, t: Timestamp) -> Duration {
        (t - self.base).to_std().unwrap_or_default()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        self.base + chrono::Duration::from_std(self.elapsed()).expect("virtual time in range")
    }
}

/// Run ids from a counter: sortable like ULIDs, and the same in every replay.
#[derive(Debug, Default)]
pub struct SeqIds(AtomicU64);

impl Ids for SeqIds {
    fn run_id(&self, _now: Timestamp) -> RunId {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        RunId::new(format!("run-{n:06}"))
    }
}
