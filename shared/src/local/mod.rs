//! The embedded backend: everything `braid run` and `braid dev` need on a laptop.

pub mod store;
pub mod runtime;
pub mod backend;
