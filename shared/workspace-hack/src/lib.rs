//! Feature pins for the Lambda functions, so SAM's per-function builds compile the
//! dependencies the functions share once.
//!
//! # Layout
//! - `Cargo.toml`: the pins, and why each is there. No code: depending on this crate
//!   is what it does; `./scripts/check-layers` says when a pin is missing.
