//! Braid's engine: run and step records, queue messages, and the pure decisions over
//! them. No I/O, no clock reads —
//! time and randomness are inputs — so every rule of SPEC §2 is tested as a function.
//!
//! The handlers load records, ask the engine what follows, and carry the answer out
//! through the ports with guarded writes. The decisions:
//! - [`lifecycle`]: what an event does to a step — the step state machine, its
//!   transition table, and the guard of each write ([`guard`]);
//! - [`params`]: check the run input against the declared params;
//! - [`start`]: the records of a new run and the steps that start with it;
//! - [`verdict`]: what an attempt's outcome means (final, retry, fan-out);
//! - [`retry`]: the wait before the next attempt;
//! - [`gates`]: when a step may start, and what a final step means for the run;
//! - [`output`]: the run's output;
//! - [`reconcile`]: what a sweep of a run must repair;
//! - [`redrive`]: what retrying a run in place runs again;
//! - [`records`]: a run's records, with the steps not written yet;
//! - [`timeline`]: a run's attempts in time order (`braid logs`);
//! - [`notify`]: which `notify` entries an event calls for, and the messages;
//! - [`sla`]: which SLAs a run or its steps missed;
//! - [`trace`]: the ids of a run's trace and its attempts' spans, and which writes
//!   end an attempt.
//!
//! # Layout
//! - [`model`]: the records (runs, steps, fan-outs), the queue messages, lifecycle events;
//! - [`ids`]: the ids that cross layers ([`ids::RunId`], [`ids::StepId`]);
//! - one module per decision, as listed above.
//!
//! Depends on the language ([`braid_lang`]) alone: no async runtime, no I/O crate.

pub mod gates;
pub mod guard;
pub mod ids;
pub mod lifecycle;
pub mod model;
pub mod notify;
pub mod output;
pub mod params;
pub mod reconcile;
pub mod records;
pub mod redrive;
pub mod retry;
pub mod sla;
pub mod start;
pub mod timeline;
pub mod trace;
pub mod verdict;

#[cfg(test)]
mod tests;
