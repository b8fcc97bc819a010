//! The embedded backend: the ports' adapters for one process on a laptop — an SQLite
//! file and a folder.

pub mod queue;
