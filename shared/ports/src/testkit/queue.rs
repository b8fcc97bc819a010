//! Conformance checks for [`WorkQueue`] adapters.
//!
//! Each check expects a fresh, empty queue. Checks that need time to pass take
//! `advance`, which must make at least the given duration pass for the queue: advance a
//! [`crate::ManualClock`] for an embedded queue, sleep for real against SQS or an
//! emulator (a blocking sleep is fine in a test).
//!
//! The checks ask only for what an SQS standard queue gives: no order, visibility and
//! delays in whole seconds, at most 10 messages per receive, and receives that may come
//! back empty or short while messages wait (so they receive several times before
//! concluding anything is missing). Checks that expect nothing receive once right after
//! a receive with a 2 s visibility timeout, so an adapter's `receive` should not wait
//! long (≈1 s at most) when the queue is empty. Unknown and stale receipts must be
//! ignored by `ack` (an SQS adapter swallows `ReceiptHandleIsInvalid`).

use crate::{Outgoing, Received, WorkQueue};
use std::collections::BTreeSet;
use std::time::Duration;

/// Visibility timeout of the checks that wait for a redelivery.
const VISIBILITY: Duration = Duration::from_secs(2);
/// Enough time for a message hidden or delayed by [`VISIBILITY`] to be visible again.
const PAST_VISIBILITY: Duration = Duration::from_secs(3);
/// Visibility timeout of the checks that must see no redelivery.
const LONG_VISIBILITY: Duration = Duration::from_secs(60);
/// Empty receives in a row after which a wanted message counts as missing.
const EMPTY_RECEIVES: usize = 5;
/// The most messages SQS returns per receive.
const RECEIVE_MAX: usize = 10;

fn message(body: &str, delay: Duration) -> Outgoing {
    Outgoing {
        body: body.to_owned(),
        delay,
    }
}

/// Receives until `want` messages came, or [`EMPTY_RECEIVES`] receives in a row were
/// empty.
async fn receive_some<Q: WorkQueue + ?Sized>(
    queue: &Q,
    want: usize,
    visibility: Duration,
) -> Vec<Received> {
    let mut got = Vec::new();
    let mut empty = 0;
    while got.len() < want && empty < EMPTY_RECEIVES {
        let batch = queue
            .receive(RECEIVE_MAX, visibility)
            .await
            .expect("receive");
        assert!(
            batch.len() <= RECEIVE_MAX,
            "receive(max = {RECEIVE_MAX}) returned {} messages",
            batch.len()
        );
        if batch.is_empty() {
            empty += 1;
        } else {
            empty = 0;
        }
        got.extend(batch);
    }
    got
}

/// Receives `tries` times and asserts nothing came.
async fn assert_nothing_visible<Q: WorkQueue + ?Sized>(queue: &Q, tries: usize, why: &str) {
    for _ in 0..tries {
        let got = queue
            .receive(RECEIVE_MAX, LONG_VISIBILITY)
            .await
            .expect("receive");
        let bodies: Vec<_> = got.iter().map(|m| m.body.as_str()).collect();
        assert!(bodies.is_empty(), "{why}, but received {bodies:?}");
    }
}

/// A sent message is received once with its body intact and `receive_count` 1, and an
/// ack removes it. Sending nothing is fine.
pub async fn sent_message_is_received_and_acked<Q: WorkQueue + ?Sized>(queue: &Q) {
    let body = r#"{"run":"01hx","step":"déjà-vu ✓","attempt":1}"#;
    queue.send(Vec::new()).await.expect("send nothing");
    queue
        .send(vec![message(body, Duration::ZERO)])
        .await
        .expect("send");
    let got = receive_some(queue, 1, LONG_VISIBILITY).await;
    assert_eq!(got.len(), 1, "one message sent, received {got:?}");
    assert_eq!(got[0].body, body);
    assert_eq!(got[0].receive_count, 1);
    queue.ack(&[got[0].receipt.clone()]).await.expect("ack");
    assert_nothing_visible(queue, 2, "the only message was acked").await;
}

/// A received message stays hidden for the visibility timeout and, unacknowledged, is
/// delivered again afterwards with `receive_count` 2 and a new receipt.
pub async fn unacked_message_is_redelivered_after_visibility<Q: WorkQueue + ?Sized>(
    queue: &Q,
    advance: impl Fn(Duration),
) {
    queue
        .send(vec![message("redeliver-me", Duration::ZERO)])
        .await
        .expect("send");
    let first = receive_some(queue, 1, VISIBILITY).await;
    assert_eq!(first.len(), 1, "one message sent, received {first:?}");
    assert_eq!(first[0].receive_count, 1);
    assert_nothing_visible(queue, 1, "the message is within its visibility timeout").await;

    advance(PAST_VISIBILITY);
    let second = receive_some(queue, 1, VISIBILITY).await;
    assert_eq!(
        second.len(),
        1,
        "the unacked message should come back: {second:?}"
    );
    assert_eq!(second[0].body, "redeliver-me");
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(
        second[0].receipt, first[0].receipt,
        "each receive has its own receipt"
    );

    queue.ack(&[second[0].receipt.clone()]).await.expect("ack");
    advance(PAST_VISIBILITY);
    assert_nothing_visible(queue, 2, "the redelivered message was acked").await;
}

/// Of two received messages, the acked one never comes back and the other one does.
pub async fn acked_message_never_comes_back<Q: WorkQueue + ?Sized>(
    queue: &Q,
    advance: impl Fn(Duration),
) {
    queue
        .send(vec![
            message("acked", Duration::ZERO),
            message("not-acked", Duration::ZERO),
        ])
        .await
        .expect("send");
    let got = receive_some(queue, 2, VISIBILITY).await;
    assert_eq!(got.len(), 2, "two messages sent, received {got:?}");
    let acked: Vec<String> = got
        .iter()
        .filter(|m| m.body == "acked")
        .map(|m| m.receipt.clone())
        .collect();
    assert_eq!(acked.len(), 1, "received {got:?}");
    queue.ack(&acked).await.expect("ack");

    advance(PAST_VISIBILITY);
    let again = receive_some(queue, 1, LONG_VISIBILITY).await;
    let bodies: Vec<_> = again.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["not-acked"], "only the unacked message comes back");
    assert_eq!(again[0].receive_count, 2);
    queue.ack(&[again[0].receipt.clone()]).await.expect("ack");
    assert_nothing_visible(queue, 2, "both messages were acked").await;
}

/// Acking with a receipt from an earlier receive, an unknown receipt or no receipt at
/// all succeeds, and the current receipt still acks the message.
pub async fn stale_receipt_ack_is_harmless<Q: WorkQueue + ?Sized>(
    queue: &Q,
    advance: impl Fn(Duration),
) {
    queue
        .send(vec![message("twice-received", Duration::ZERO)])
        .await
        .expect("send");
    let first = receive_some(queue, 1, VISIBILITY).await;
    assert_eq!(first.len(), 1, "one message sent, received {first:?}");
    advance(PAST_VISIBILITY);
    let second = receive_some(queue, 1, VISIBILITY).await;
    assert_eq!(
        second.len(),
        1,
        "the unacked message should come back: {second:?}"
    );
    assert_eq!(second[0].receive_count, 2);

    queue
        .ack(&[first[0].receipt.clone()])
        .await
        .expect("a stale receipt is ignored");
    queue
        .ack(&["not-a-receipt".to_owned()])
        .await
        .expect("an unknown receipt is ignored");
    queue.ack(&[]).await.expect("acking nothing");
    queue
        .ack(&[second[0].receipt.clone()])
        .await
        .expect("the current receipt acks");

    advance(PAST_VISIBILITY);
    assert_nothing_visible(queue, 2, "the message was acked with its current receipt").await;
}

/// A message sent with a delay is not received before the delay is over, and is
/// received (for the first time) after it; undelayed messages are not held back.
pub async fn delayed_message_is_invisible_until_due<Q: WorkQueue + ?Sized>(
    queue: &Q,
    advance: impl Fn(Duration),
) {
    queue
        .send(vec![
            message("later", VISIBILITY),
            message("now", Duration::ZERO),
        ])
        .await
        .expect("send");
    let now = receive_some(queue, 1, LONG_VISIBILITY).await;
    let bodies: Vec<_> = now.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["now"], "only the undelayed message is visible");
    assert_nothing_visible(queue, 1, "the delayed message is not due").await;

    advance(PAST_VISIBILITY);
    let later = receive_some(queue, 1, LONG_VISIBILITY).await;
    let bodies: Vec<_> = later.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["later"], "the delayed message is due");
    assert_eq!(later[0].receive_count, 1);
}

/// 100 messages sent in one call are all received, each exactly once, over several
/// receives of at most 10, acking as they come.
pub async fn batch_of_100_is_received_exactly_once<Q: WorkQueue + ?Sized>(queue: &Q) {
    let sent: BTreeSet<String> = (0..100).map(|i| format!("message-{i:03}")).collect();
    queue
        .send(
            sent.iter()
                .map(|body| message(body, Duration::ZERO))
                .collect(),
        )
        .await
        .expect("send 100");

    let mut received = BTreeSet::new();
    let mut empty = 0;
    while received.len() < sent.len() && empty < EMPTY_RECEIVES {
        let batch = queue
            .receive(RECEIVE_MAX, LONG_VISIBILITY)
            .await
            .expect("receive");
        assert!(
            batch.len() <= RECEIVE_MAX,
            "receive returned {}",
            batch.len()
        );
        empty = if batch.is_empty() { empty + 1 } else { 0 };
        for m in &batch {
            assert_eq!(m.receive_count, 1, "{} was received before", m.body);
            assert!(received.insert(m.body.clone()), "{} received twice", m.body);
        }
        let receipts: Vec<String> = batch.into_iter().map(|m| m.receipt).collect();
        queue.ack(&receipts).await.expect("ack");
    }
    let missing: Vec<_> = sent.difference(&received).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    assert_eq!(received, sent);
    assert_nothing_visible(queue, 2, "all 100 messages were acked").await;
}
