//! [`SqsQueue`]: the work queue on an SQS standard queue.
//!
//! # Batches
//! SQS takes at most 10 entries per SendMessageBatch and DeleteMessageBatch call, so
//! both are cut into chunks of 10, sent concurrently. A batch call can succeed while
//! some of its entries fail: failed sends are reported as one [`PortError::Backend`]
//! naming them, after every chunk was tried. The caller then sends the whole batch again;
//! the messages that did go through arrive twice, which every handler tolerates since
//! the queue is at-least-once anyway.
//!
//! # Receiving without waiting long
//! A receive long-polls for at most a second and then drains with short polls
//! until it has `max` messages or a poll comes back empty. Waiting longer would hold
//! received messages in the caller's hands while their visibility timeout runs; a
//! consumer that finds the queue empty simply asks again.
//!
//! # Acknowledging
//! Unknown and stale receipts are ignored, as the port requires: SQS reports them as
//! `ReceiptHandleIsInvalid` entries, which are dropped; any other failed entry is an
//! error. Duplicate receipts are sent once (SQS refuses a batch with duplicates).

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};
use braid_ports::{Outgoing, PortError, PortResult, Received, WorkQueue};
use futures::future::join_all;
use std::collections::BTreeSet;
use std::time::Duration;

/// The most entries SQS takes per batch call, and the most messages per receive.
const BATCH: usize = 10;
/// The longest delay SQS accepts (the same limit as the embedded queue's).
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// The longest visibility timeout SQS accepts.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// How long the first poll of a receive may wait for a message.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The per-entry error code of an unknown or stale receipt.
const INVALID_RECEIPT: &str = "ReceiptHandleIsInvalid";

/// A work queue on one SQS standard queue; see the [module docs](self). Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    /// The queue at `url` (as returned by CreateQueue / GetQueueUrl).
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn backend(&self, action: &str, e: impl std::error::Error) -> PortError {
        PortError::backend_msg(format!(
            "sqs {action} on {}: {}",
            self.url,
            DisplayErrorContext(e)
        ))
    }

    /// Sends one chunk of at most [`BATCH`] messages; the entries SQS refused, if any.
    async fn send_chunk(&self, chunk: &[Outgoing]) -> PortResult<Vec<BatchResultErrorEntry>> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .delay_seconds(whole_seconds(m.delay))
                    .build()
                    .map_err(|e| self.backend("SendMessageBatch", e))
            })
            .collect::<PortResult<Vec<_>>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.backend("SendMessageBatch", e))?;
        Ok(out.failed)
    }

    /// Deletes one chunk of at most [`BATCH`] distinct receipts.
    async fn delete_chunk(&self, chunk: &[&String]) -> PortResult<()> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt.as_str())
                    .build()
                    .map_err(|e| self.backend("DeleteMessageBatch", e))
            })
            .collect::<PortResult<Vec<_>>>()?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.backend("DeleteMessageBatch", e))?;
        let failed: Vec<String> = out
            .failed
            .iter()
            .filter(|f| f.code() != INVALID_RECEIPT)
            .map(failure)
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(PortError::backend_msg(format!(
                "sqs DeleteMessageBatch on {}: {} of {} deletes failed: {}",
                self.url,
                failed.len(),
                chunk.len(),
                failed.join(", ")
            )))
        }
    }

    /// One ReceiveMessage call: up to `max` (≤ [`BATCH`]) messages.
    async fn receive_once(
        &self,
        max: usize,
        visibility: i32,
        wait: Duration,
    ) -> PortResult<Vec<Received>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, BATCH) as i32)
            .visibility_timeout(visibility)
            .wait_time_seconds(whole_seconds(wait))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| self.backend("ReceiveMessage", e))?;
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                match (m.receipt_handle, m.body) {
                    (Some(receipt), Some(body)) => Ok(Received {
                        receipt,
                        body,
                        receive_count,
                    }),
                    _ => Err(PortError::backend_msg(format!(
                        "sqs ReceiveMessage on {}: a message without receipt or body",
                        self.url
                    ))),
                }
            })
            .collect()
    }
}

#[async_trait]
impl WorkQueue for SqsQueue {
    async fn send(&self, messages: Vec<Outgoing>) -> PortResult<()> {
        if let Some(m) = messages.iter().find(|m| m.delay > MAX_DELAY) {
            return Err(PortError::backend_msg(format!(
                "sqs queue {}: delay {:?} is over the 15 minutes SQS allows",
                self.url, m.delay
            )));
        }
        let sent = join_all(messages.chunks(BATCH).map(|c| self.send_chunk(c))).await;
        let mut failed = Vec::new();
        for (chunk, result) in messages.chunks(BATCH).zip(sent) {
            for entry in result? {
                let body = entry.id().parse::<usize>().ok().and_then(|i| chunk.get(i));
                failed.push(format!(
                    "{} ({})",
                    body.map_or_else(|| "?".to_owned(), |m| excerpt(&m.body)),
                    failure(&entry)
                ));
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        Err(PortError::backend_msg(format!(
            "sqs SendMessageBatch on {}: {} of {} messages not sent: {}",
            self.url,
            failed.len(),
            messages.len(),
            failed.join("; ")
        )))
    }

    async fn receive(&self, max: usize, visibility: Duration) -> PortResult<Vec<Received>> {
        let visibility = whole_seconds(visibility.min(MAX_VISIBILITY));
        let mut got = Vec::new();
        let mut wait = FIRST_WAIT;
        while got.len() < max {
            let batch = self.receive_once(max - got.len(), visibility, wait).await?;
            if batch.is_empty() {
                break;
            }
            got.extend(batch);
            // Later polls only drain what is already there: a long wait now would eat
            // into the visibility timeout of the messages already received.
            wait = Duration::ZERO;
        }
        Ok(got)
    }

    async fn ack(&self, receipts: &[String]) -> PortResult<()> {
        let distinct: Vec<&String> = receipts
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        join_all(distinct.chunks(BATCH).map(|c| self.delete_chunk(c)))
            .await
            .into_iter()
            .collect()
    }
}

/// A duration as SQS takes it: whole seconds, rounded up so a message is never due or
/// visible earlier than asked.
fn whole_seconds(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// A failed batch entry as `Code: message`.
fn failure(entry: &BatchResultErrorEntry) -> String {
    format!("{}: {}", entry.code(), entry.message().unwrap_or(""))
}

/// The start of a message body, to name it in an error.
fn excerpt(body: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut out: String = body.chars().take(MAX_CHARS).collect();
    if body.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2_500)), 3);
        assert_eq!(whole_seconds(MAX_DELAY), 900);
    }

    #[test]
    fn long_bodies_are_cut_in_error_messages() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(100);
        assert_eq!(excerpt(&long).chars().count(), 81);
    }
}
