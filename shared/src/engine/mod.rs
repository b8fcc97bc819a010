//! The engine: pure decisions over run and step records. No I/O, no clock reads —
//! time and randomness are inputs — so every rule of SPEC §2 is tested as a function.
//!
//! The handlers load records, ask the engine what follows, and carry the answer out
//! through the ports with guarded writes. The decisions:
//! - [`params`]: check the run input against the declared params;
//! - [`start`]: the records of a new run and the steps that start with it;
//! - [`verdict`]: what an attempt's outcome means (final, retry, fan-out);
//! - [`retry`]: the wait before the next attempt;
//! - [`gates`]: when a step may start, and what a final step means for the run;
//! - [`output`]: the run's output;
//! - [`reconcile`]: what a sweep of a run must repair;
//! - [`records`]: a run's records, with the steps not written yet.

pub mod gates;
pub mod output;
pub mod params;
pub mod reconcile;
pub mod records;
pub mod retry;
pub mod start;
pub mod verdict;

#[cfg(test)]
mod tests;
