use super::PortResult;
use async_trait::async_trait;
use std::time::Duration;

/// Deliveries after which a message that keeps failing is given up on and its run
/// failed with the reason; the SQS queues' `maxReceiveCount` is the same, so the message
/// then moves to the dead-letter queue. A run is never left stuck on a poison message.
/// Part of the queue's contract, so the embedded queue and the handlers share it.
pub const MAX_RECEIVES: u32 = 5;

/// A message to send, visible after `delay`.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub body: String,
    pub delay: Duration,
}

/// A received message; `receipt` acknowledges it.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub receipt: String,
    pub body: String,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
}

/// At-least-once messages with delay (SQS; embedded: a table in the local database).
///
/// A received message is hidden for the visibility timeout; unless acknowledged, it is
/// delivered again afterwards. After the queue's maximum receive count, a message goes
/// to the queue's dead-letter store instead.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Sends messages; `Outgoing::delay` may be up to 15 minutes.
    async fn send(&self, messages: Vec<Outgoing>) -> PortResult<()>;
    /// Up to `max` visible messages, hidden for `visibility` once received.
    async fn receive(&self, max: usize, visibility: Duration) -> PortResult<Vec<Received>>;
    /// Deletes received messages; unknown or stale receipts are ignored.
    async fn ack(&self, receipts: &[String]) -> PortResult<()>;
}
