use super::PortResult;
use async_trait::async_trait;

/// Bytes by key: large step inputs and outputs (S3; embedded: a folder).
#[async_trait]
pub trait PayloadStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing what was there.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()>;
    /// The bytes under `key`; [`super::PortError::NotFound`] when there are none.
    async fn get(&self, key: &str) -> PortResult<Vec<u8>>;
}
