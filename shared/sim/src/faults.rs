//! The adversary's settings for one seed: how often the queue drops, duplicates,
//! delays and holds back messages, how often the store fails, when the disk is full
//! and how many times the process crashes. Drawn from the seed, so a seed replays
//! the same mix; [`FaultPlan::none`] is the fault-free reference.

use std::time::Duration;

/// The windows a held-back message is kept beyond: each internal time window of the
/// handlers (a couple of seconds, the sweeper's `stale_after`, the queue's longest
/// delay, the default lease and the ready queue's visibility timeout), plus a little.
pub fn backlog_windows() -> [Duration; 5] {
    let s = Duration::from_secs;
    [
        s(2) + Duration::from_millis(1),
        s(61),
        s(15 * 60 + 1),
        s(15 * 60 + 31),
        s(16 * 60 + 1),
    ]
}

/// How hostile the world is to one simulated process.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Chance that a sent message is lost.
    pub drop: f64,
    /// Chance that a sent message is delivered twice.
    pub duplicate: f64,
    /// Chance that a message is delayed by up to [`FaultPlan::max_jitter`] (reordering).
    pub jitter: f64,
    pub max_jitter: Duration,
    /// Chance that a message is held back longer than one of [`backlog_windows`].
    pub backlog: f64,
    /// Chance that a store, queue or payload call fails before its effect (a throttle).
    pub error: f64,
    /// Chance that a write fails after its effect (the caller cannot tell it happened).
    pub error_after: f64,
    /// Chance that a port call waits a moment first, so other handlers run in between.
    pub pause: f64,
    /// Virtual times (from the start) during which every write fails: a full disk.
    pub disk_full: Option<(Duration, Duration)>,
    /// How many times the process crashes, each at a port call drawn from the calls a
    /// fault-free run makes.
    pub crashes: u32,
}

impl FaultPlan {
    /// No fault at all: the reference run.
    pub fn none() -> Self {
        FaultPlan {
            drop: 0.0,
            duplicate: 0.0,
            jitter: 0.0,
            max_jitter: Duration::ZERO,
            backlog: 0.0,
            error: 0.0,
            error_after: 0.0,
            pause: 0.0,
            disk_full: None,
            crashes: 0,
        }
    }

    /// A mix drawn from `rng`: most seeds have a few kinds of fault at modest rates,
    /// so that a run still ends and what goes wrong can be told apart.
    pub fn draw(rng: &mut fastrand::Rng) -> Self {
        let mut p = |max: f64| if rng.bool() { rng.f64() * max } else { 0.0 };
        let drop = p(0.15);
        let duplicate = p(0.3);
        let jitter = p(0.5);
        let backlog = p(0.1);
        let error = p(0.1);
        let error_after = p(0.05);
        let pause = p(0.3);
        let disk_full = (rng.u8(..) < 40).then(|| {
            let start = Duration::from_millis(rng.u64(0..600_000));
            let len = Duration::from_millis(rng.u64(1_000..120_000));
            (start, start + len)
        });
        let crashes = [0, 0, 1, 1, 2, 3][rng.usize(..6)];
        FaultPlan {
            drop,
            duplicate,
            jitter,
            max_jitter: Duration::from_millis(rng.u64(1..10_000)),
            backlog,
            error,
            error_after,
            pause,
            disk_full,
            crashes,
        }
    }

    pub fn is_none(&self) -> bool {
        *self == FaultPlan::none()
    }
}
