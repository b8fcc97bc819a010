//! Triggers: what starts a run besides an explicit start — matching an incoming event
//! (S3 object, EventBridge event, signed webhook, SQS message, scheduled instant) to the
//! workflows that declared it, checking it, and turning it into a start.
//!
//! Everything here is pure: the handlers feed it events and the time, and act on what
//! it decides.

pub mod incoming;
pub mod pattern;
pub mod route;
pub mod schedule;
pub mod signature;
