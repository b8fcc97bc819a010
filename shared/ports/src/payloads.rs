use super::PortResult;
use async_trait::async_trait;
use braid_engine::model::Timestamp;

/// Bytes by key: large step inputs and outputs (S3; embedded: a folder).
#[async_trait]
pub trait PayloadStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing what was there.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()>;
    /// The bytes under `key`; [`super::PortError::NotFound`] when there are none.
    async fn get(&self, key: &str) -> PortResult<Vec<u8>>;
    /// Makes every payload under `prefix` last written before `before` count as
    /// written now, its bytes unchanged; returns how many. Payloads expire a fixed time
    /// after they were written (the bucket's lifecycle rule), while the records naming
    /// them expire after their run ends: renewing a long run's old payloads as it ends
    /// keeps them as long as its records.
    async fn renew(&self, prefix: &str, before: Timestamp) -> PortResult<usize>;
}
