//! Conformance suites for the ports, one module per port: public async checks that any
//! adapter must pass, run against the embedded adapter in its own tests and against the
//! AWS adapter through the emulator. Also fault injection for crash-safety tests.
//!
//! Each check is a function named after the behaviour it asserts; it panics with a
//! message when the adapter breaks the port's contract.

pub mod events;
pub mod faults;
pub mod payloads;
pub mod queue;
pub mod store;
