//! The payload store decorator: the real payload folder behind the fault gate.
//!
//! The folder does its file I/O on tokio's blocking pool, on another thread, which
//! would let the order of events depend on the operating system's scheduling; here
//! each call is waited for on the simulation's thread instead, so a seed replays
//! exactly (and virtual time cannot move while a file is written).

use crate::world::World;
use async_trait::async_trait;
use braid_ports::{PayloadStore, PortResult};
use std::sync::Arc;

/// A [`PayloadStore`] that fails, pauses and crashes as its [`World`] says.
pub struct FaultyPayloads {
    inner: Arc<dyn PayloadStore>,
    world: Arc<World>,
}

impl FaultyPayloads {
    pub fn new(inner: Arc<dyn PayloadStore>, world: Arc<World>) -> Self {
        FaultyPayloads { inner, world }
    }
}

#[async_trait]
impl PayloadStore for FaultyPayloads {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()> {
        let fail_after = self.world.enter("payload_put", true).await?;
        futures::executor::block_on(self.inner.put(key, bytes))?;
        if fail_after {
            return Err(self.world.failed_after("payload_put"));
        }
        Ok(())
    }

    async fn renew(
        &self,
        prefix: &str,
        before: braid_engine::model::Timestamp,
    ) -> PortResult<usize> {
        self.world.enter("payload_renew", true).await?;
        futures::executor::block_on(self.inner.renew(prefix, before))
    }

    async fn get(&self, key: &str) -> PortResult<Vec<u8>> {
        self.world.enter("payload_get", false).await?;
        futures::executor::block_on(self.inner.get(key))
    }
}
