//! Conformance suites for the ports, one module per port: public async checks that any
//! adapter must pass, run against the embedded adapter in its own tests and against the
//! AWS adapter through the emulator.
//!
//! Each check is a function named after the behaviour it asserts; it panics with a
//! message when the adapter breaks the port's contract. An adapter's test module calls
//! every check of its port, one `#[tokio::test]` each, on a fresh adapter.

pub mod payloads;
pub mod queue;
