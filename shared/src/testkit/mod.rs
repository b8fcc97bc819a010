//! Conformance suites: one per port, run against every adapter.

pub mod store;
pub mod faults;
