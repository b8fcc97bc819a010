//! The wait before the next attempt.

use braid_lang::RetryPolicy;
use std::time::Duration;

/// Wait before attempt `failed_attempt + 1`: `min(backoff × factor^(n-1), max_backoff)`,
/// scaled by `random` in `[0, 1)` when the policy asks for full jitter.
pub fn delay(policy: &RetryPolicy, failed_attempt: u32, random: f64) -> Duration {
    let exp = failed_attempt.saturating_sub(1).min(63) as i32;
    let base = policy.backoff.as_secs_f64() * policy.factor.powi(exp);
    let capped = match policy.max_backoff {
        Some(max) => base.min(max.as_secs_f64()),
        None => base,
    };
    let capped = if capped.is_finite() {
        capped.clamp(0.0, 365.0 * 86_400.0)
    } else {
        365.0 * 86_400.0
    };
    let secs = if policy.jitter {
        capped * random.clamp(0.0, 1.0)
    } else {
        capped
    };
    Duration::from_secs_f64(secs)
}

/// Whether attempt `attempt` may be followed by another.
pub fn has_attempts_left(policy: &RetryPolicy, attempt: u32) -> bool {
    attempt < policy.attempts
}
