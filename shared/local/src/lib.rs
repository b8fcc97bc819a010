//! Braid's embedded backend: the ports' adapters for one process on a laptop — SQLite
//! files and a folder — and the runtime that drives the handlers over them. No AWS
//! SDK: `braid run` and `braid dev` build without it.
//!
//! # Layout
//! - [`store`]: the state store (SQLite);
//! - [`queue`]: the work queues (SQLite);
//! - [`read_only`]: no queues, for a process that only reads the state;
//! - [`payloads`]: the payload store (a folder);
//! - [`lambda`]: `lambda` steps without AWS (Invoke API endpoints, local binaries);
//! - [`output`]: what launched functions wrote, per attempt (`braid logs`);
//! - [`runtime`]: the message loop;
//! - [`events`]: lifecycle events to subscribers in the same process;
//! - [`metrics`]: metrics kept in memory, in the Prometheus text format;
//! - [`fault`]: a state that cannot be written stops the loop;
//! - [`owner`]: the one process that drives a state folder (an OS file lock);
//! - [`takeover`]: what it does with the runs an earlier process left;
//! - [`backend`]: all of it wired under one state folder;
//! - [`link_key`]: the approval links' key, made when none is set.

pub mod backend;
pub mod events;
pub mod fault;
pub mod lambda;
pub mod link_key;
pub mod metrics;
pub mod output;
pub mod owner;
pub mod payloads;
pub mod queue;
pub mod read_only;
pub mod runtime;
pub mod store;
pub mod takeover;
