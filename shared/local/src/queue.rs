//! [`SqliteQueue`]: the work queue in an SQLite file, with SQS standard-queue semantics.
//!
//! # Storage
//! One table, `queue_message`, holds the messages of every named queue in the file (a
//! `queue` column), so the local runtime keeps its "ready" and "result" queues next to
//! each other and next to its state. A message is a row with the time it becomes visible
//! (`visible_at`, Unix milliseconds from the injected [`Clock`]), its receive count and
//! the token of its latest receive. Sending inserts rows, receiving moves `visible_at`
//! forward by the visibility timeout and draws a new token, acknowledging deletes the row
//! when the token still matches. Messages received too often move to `queue_dead_letter`.
//!
//! # Durability and speed
//! The file runs in WAL mode with `synchronous=NORMAL`: a power loss can lose the last
//! few commits but never corrupts the file, which is acceptable for a local runner whose
//! messages are only wake-ups (the state store is the truth and its sweeper re-sends lost
//! ones). Every call is one transaction, whatever its batch size: fsync per transaction,
//! not per message, is what makes batches fast.
//!
//! # Waiting without spinning
//! [`SqliteQueue::wait_visible`] sleeps until a message may be visible: until the earliest
//! hidden or delayed message is due ([`SqliteQueue::next_visible_at`]), or until a `send`
//! to the same queue in this process pokes the queue's [`Notify`] — shared by every
//! `SqliteQueue` of this process opened on the same file and queue name.

use crate::fault::Fault;
use async_trait::async_trait;
use braid_engine::model::Timestamp;
use braid_ports::{Clock, Outgoing, PortError, PortResult, Received, WorkQueue};
use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Deliveries of one message before it is moved to the dead letters, unless set with
/// [`SqliteQueue::with_max_receives`] (a typical SQS redrive policy's `maxReceiveCount`).
pub const DEFAULT_MAX_RECEIVES: u32 = braid_ports::MAX_RECEIVES;

/// The longest delay SQS accepts; longer ones are refused here too, so that a workflow
/// that runs locally does not fail once deployed.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_message (
    id            INTEGER PRIMARY KEY,
    queue         TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       INTEGER,
    sent_at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_message_due ON queue_message (queue, visible_at);
CREATE TABLE IF NOT EXISTS queue_dead_letter (
    id            INTEGER PRIMARY KEY,
    queue         TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    receive_count INTEGER NOT NULL,
    sent_at       INTEGER NOT NULL,
    dead_at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_dead_letter_queue ON queue_dead_letter (queue, id);
";

/// A message that was received too often and will not be delivered again.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub body: String,
    /// How many times it was delivered.
    pub receive_count: u32,
    pub sent_at: Timestamp,
    /// When a receive found it over the limit and moved it here.
    pub dead_at: Timestamp,
}

/// A durable work queue in an SQLite file; see the [module docs](self).
///
/// Blocking: rusqlite is synchronous, so the connection sits in a `std::sync::Mutex` and
/// each call holds it for one short transaction, never across an `.await`. At these
/// sizes (tens of microseconds per call) handing the work to `spawn_blocking` would cost
/// more than it saves.
pub struct SqliteQueue {
    conn: Mutex<Connection>,
    path: PathBuf,
    queue: String,
    clock: Arc<dyn Clock>,
    max_receives: u32,
    notify: Arc<Notify>,
    /// Where a failure that retrying cannot cure (a full disk) is noted for the runtime.
    fault: Fault,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue")
            .field("path", &self.path)
            .field("queue", &self.queue)
            .field("max_receives", &self.max_receives)
            .finish_non_exhaustive()
    }
}

impl SqliteQueue {
    /// Opens (creating if needed, with its folder) the queue named `queue` in the SQLite
    /// file at `path`.
    ///
    /// Several queues, and several handles on one queue, may share a file; each handle
    /// has its own connection. Times come from `clock`.
    pub fn open(path: &Path, queue: &str, clock: Arc<dyn Clock>) -> PortResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(PortError::backend)?;
        }
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(PortError::backend_msg(format!(
                "sqlite queue: {} cannot use WAL journaling (got {mode})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        // The file exists now, so the canonical path names it whichever way it was opened.
        let path = path.canonicalize().map_err(PortError::backend)?;
        let notify = shared_notify(&path, queue);
        Ok(SqliteQueue {
            conn: Mutex::new(conn),
            path,
            queue: queue.to_owned(),
            clock,
            max_receives: DEFAULT_MAX_RECEIVES,
            notify,
            fault: Fault::new(),
        })
    }

    /// Moves a message to the dead letters instead of delivering it a `n + 1`-th time
    /// (at least 1; default [`DEFAULT_MAX_RECEIVES`]).
    #[must_use]
    pub fn with_max_receives(mut self, n: u32) -> Self {
        self.max_receives = n.max(1);
        self
    }

    /// Notes failures that retrying cannot cure (a full disk) in `fault`, shared with
    /// the runtime that drives this queue.
    #[must_use]
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }

    fn noted<T>(&self, out: PortResult<T>) -> PortResult<T> {
        if let Err(e) = &out {
            self.fault.note(&self.path, e);
        }
        out
    }

    /// Makes every message received and not yet acknowledged visible now, and returns
    /// their bodies. A process that takes over the state from one that stopped (see
    /// [`crate::takeover`]) calls it before it receives anything: what the stopped
    /// process had received will never be acknowledged, and need not wait out its
    /// visibility timeout. Each keeps its receive count, so it is handled as delivered
    /// again (a dispatch resumes the attempt it may have claimed); the old receipts no
    /// longer acknowledge it. Delayed messages never received keep their due time.
    pub fn release_received(&self) -> PortResult<Vec<String>> {
        let now = to_ms(self.clock.now());
        let conn = self.lock();
        let out = conn
            .prepare(
                "UPDATE queue_message SET visible_at = ?2, receipt = NULL
                 WHERE queue = ?1 AND receive_count > 0 AND visible_at > ?2
                 RETURNING body",
            )
            .and_then(|mut st| {
                st.query_map(params![self.queue, now], |row| row.get(0))?
                    .collect::<Result<Vec<String>, _>>()
            })
            .map_err(db);
        drop(conn);
        self.noted(out)
    }

    /// The queue's name in its file.
    pub fn name(&self) -> &str {
        &self.queue
    }

    /// When the earliest message of this queue becomes visible — possibly in the past,
    /// meaning one is visible now; `None` when the queue holds no message at all.
    pub fn next_visible_at(&self) -> PortResult<Option<Timestamp>> {
        let conn = self.lock();
        let ms: Option<i64> = conn
            .prepare_cached("SELECT MIN(visible_at) FROM queue_message WHERE queue = ?1")
            .and_then(|mut s| s.query_row([&self.queue], |row| row.get(0)))
            .map_err(db)?;
        Ok(ms.map(from_ms))
    }

    /// Returns when a message may be visible: at once if one is, otherwise at the
    /// earliest of a `send` to this queue in this process, the time the earliest hidden or
    /// delayed message is due, and `max_wait`.
    ///
    /// It may return with nothing to receive (another consumer was faster, a delayed
    /// message was sent, or a dead letter was due): callers loop `receive`/`wait_visible`.
    /// Sends from other processes are not seen until the next due time or `max_wait`,
    /// which therefore bounds their latency. Sleeping uses tokio's timer with due times
    /// from the injected clock, so with a [`braid_ports::ManualClock`] only `max_wait`
    /// and sends end the wait.
    pub async fn wait_visible(&self, max_wait: Duration) -> PortResult<()> {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before looking at the table, so a send that commits between the look
        // and the sleep still wakes us (`notify_waiters` only wakes registered waiters).
        notified.as_mut().enable();
        let now = self.clock.now();
        let sleep_for = match self.next_visible_at()? {
            Some(at) if at <= now => return Ok(()),
            Some(at) => (at - now).to_std().unwrap_or_default().min(max_wait),
            None => max_wait,
        };
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(sleep_for) => {}
        }
        Ok(())
    }

    /// The [`Notify`] that every `send` to this queue in this process pokes with
    /// `notify_waiters`, for callers that build their own wait loop. Call
    /// `Notified::enable` before checking the queue, or a send in between is missed.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// The messages of this queue that were received too often, oldest first.
    pub fn dead_letters(&self) -> PortResult<Vec<DeadLetter>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT body, receive_count, sent_at, dead_at FROM queue_dead_letter
                 WHERE queue = ?1 ORDER BY id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([&self.queue], |row| {
                Ok(DeadLetter {
                    body: row.get(0)?,
                    receive_count: row.get(1)?,
                    sent_at: from_ms(row.get(2)?),
                    dead_at: from_ms(row.get(3)?),
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock dropped its transaction, which rolled back: the
        // connection is still consistent.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl WorkQueue for SqliteQueue {
    async fn send(&self, messages: Vec<Outgoing>) -> PortResult<()> {
        let out = self.send_now(messages);
        self.noted(out)
    }

    async fn receive(&self, max: usize, visibility: Duration) -> PortResult<Vec<Received>> {
        let out = self.receive_now(max, visibility);
        self.noted(out)
    }

    async fn ack(&self, receipts: &[String]) -> PortResult<()> {
        let out = self.ack_now(receipts);
        self.noted(out)
    }
}

/// The port's operations, each one transaction.
impl SqliteQueue {
    fn send_now(&self, messages: Vec<Outgoing>) -> PortResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        if let Some(m) = messages.iter().find(|m| m.delay > MAX_DELAY) {
            return Err(PortError::backend_msg(format!(
                "queue {}: delay {:?} is over the 15 minutes SQS allows",
                self.queue, m.delay
            )));
        }
        let now = to_ms(self.clock.now());
        {
            let mut conn = self.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO queue_message (queue, body, visible_at, sent_at)
                         VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(db)?;
                for m in &messages {
                    let visible_at = now.saturating_add(duration_ms(m.delay));
                    insert
                        .execute(params![self.queue, m.body, visible_at, now])
                        .map_err(db)?;
                }
            }
            tx.commit().map_err(db)?;
        }
        // After the commit, so that a woken receiver finds the messages.
        self.notify.notify_waiters();
        Ok(())
    }

    fn receive_now(&self, max: usize, visibility: Duration) -> PortResult<Vec<Received>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = to_ms(self.clock.now());
        let hidden_until = now.saturating_add(duration_ms(visibility));
        let mut received: Vec<Received> = Vec::new();
        let mut taken: Vec<i64> = Vec::new();
        let mut conn = self.lock();
        // IMMEDIATE takes the write lock up front: a deferred transaction that reads and
        // then writes can fail with SQLITE_BUSY without waiting for busy_timeout.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        {
            let mut select = tx
                .prepare_cached(
                    "SELECT id, body, receive_count FROM queue_message
                     WHERE queue = ?1 AND visible_at <= ?2
                     ORDER BY visible_at, id LIMIT ?3",
                )
                .map_err(db)?;
            let mut deliver = tx
                .prepare_cached(
                    "UPDATE queue_message SET visible_at = ?2, receive_count = ?3, receipt = ?4
                     WHERE id = ?1",
                )
                .map_err(db)?;
            let mut bury = tx
                .prepare_cached(
                    "INSERT INTO queue_dead_letter (queue, body, receive_count, sent_at, dead_at)
                     SELECT queue, body, receive_count, sent_at, ?2 FROM queue_message
                     WHERE id = ?1",
                )
                .map_err(db)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM queue_message WHERE id = ?1")
                .map_err(db)?;
            loop {
                let want = i64::try_from(max - received.len()).unwrap_or(i64::MAX);
                let batch = select
                    .query_map(params![self.queue, now, want], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, u32>(2)?,
                        ))
                    })
                    .map_err(db)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db)?;
                let mut buried = false;
                for (id, body, count) in batch {
                    if taken.contains(&id) {
                        // Only with a zero visibility timeout: already in this answer.
                        continue;
                    }
                    if count >= self.max_receives {
                        bury.execute(params![id, now]).map_err(db)?;
                        delete.execute([id]).map_err(db)?;
                        buried = true;
                        continue;
                    }
                    let token = fastrand::u64(..);
                    deliver
                        .execute(params![id, hidden_until, count + 1, token.cast_signed()])
                        .map_err(db)?;
                    taken.push(id);
                    received.push(Received {
                        receipt: format!("{id}.{token:016x}"),
                        body,
                        receive_count: count + 1,
                    });
                }
                // Dead letters left room in the answer: look again. Otherwise every visible
                // message that fits was taken.
                if !buried || received.len() >= max {
                    break;
                }
            }
        }
        tx.commit().map_err(db)?;
        Ok(received)
    }

    fn ack_now(&self, receipts: &[String]) -> PortResult<()> {
        // A receipt is `<row id>.<token of that receive>`; anything else cannot name a
        // message and is ignored, like a stale receipt whose token was replaced.
        let parsed: Vec<(i64, i64)> = receipts.iter().filter_map(|r| parse_receipt(r)).collect();
        if parsed.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        {
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM queue_message WHERE id = ?1 AND receipt = ?2 AND queue = ?3",
                )
                .map_err(db)?;
            for (id, token) in parsed {
                delete.execute(params![id, token, self.queue]).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }
}

fn parse_receipt(receipt: &str) -> Option<(i64, i64)> {
    let (id, token) = receipt.split_once('.')?;
    let id = id.parse().ok()?;
    let token = u64::from_str_radix(token, 16).ok()?;
    Some((id, token.cast_signed()))
}

/// One [`Notify`] per file and queue name in this process, so that a send through one
/// handle wakes the waiters of every other handle on the same queue.
fn shared_notify(path: &Path, queue: &str) -> Arc<Notify> {
    type Registry = Mutex<HashMap<(PathBuf, String), Weak<Notify>>>;
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    let mut registry = REGISTRY
        .get_or_init(Registry::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let key = (path.to_path_buf(), queue.to_owned());
    if let Some(notify) = registry.get(&key).and_then(Weak::upgrade) {
        return notify;
    }
    registry.retain(|_, weak| weak.strong_count() > 0);
    let notify = Arc::new(Notify::new());
    registry.insert(key, Arc::downgrade(&notify));
    notify
}

fn db(e: rusqlite::Error) -> PortError {
    PortError::backend_in("sqlite queue", e)
}

fn to_ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_ports::ManualClock;
    use braid_ports::testkit::queue as suite;
    use tempfile::TempDir;

    struct Fixture {
        dir: TempDir,
        clock: Arc<ManualClock>,
        queue: SqliteQueue,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = TempDir::new().expect("temp dir");
            let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .expect("start time")
                .to_utc();
            let clock = Arc::new(ManualClock::new(start));
            let path = dir.path().join(".braid").join("braid.db");
            let queue = SqliteQueue::open(&path, "ready", clock.clone()).expect("open queue");
            Fixture { dir, clock, queue }
        }

        fn advance(&self) -> impl Fn(Duration) + use<> {
            let clock = Arc::clone(&self.clock);
            move |by| clock.advance(by)
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join(".braid").join("braid.db")
        }

        fn sibling(&self, queue: &str) -> SqliteQueue {
            SqliteQueue::open(&self.path(), queue, self.clock.clone()).expect("open queue")
        }
    }

    fn one(body: &str) -> Vec<Outgoing> {
        vec![Outgoing {
            body: body.to_owned(),
            delay: Duration::ZERO,
        }]
    }

    const VIS: Duration = Duration::from_secs(30);

    // The port's conformance suite.

    #[tokio::test]
    async fn sent_message_is_received_and_acked() {
        let f = Fixture::new();
        suite::sent_message_is_received_and_acked(&f.queue).await;
    }

    #[tokio::test]
    async fn unacked_message_is_redelivered_after_visibility() {
        let f = Fixture::new();
        suite::unacked_message_is_redelivered_after_visibility(&f.queue, f.advance()).await;
    }

    #[tokio::test]
    async fn acked_message_never_comes_back() {
        let f = Fixture::new();
        suite::acked_message_never_comes_back(&f.queue, f.advance()).await;
    }

    #[tokio::test]
    async fn stale_receipt_ack_is_harmless() {
        let f = Fixture::new();
        suite::stale_receipt_ack_is_harmless(&f.queue, f.advance()).await;
    }

    #[tokio::test]
    async fn delayed_message_is_invisible_until_due() {
        let f = Fixture::new();
        suite::delayed_message_is_invisible_until_due(&f.queue, f.advance()).await;
    }

    #[tokio::test]
    async fn batch_of_100_is_received_exactly_once() {
        let f = Fixture::new();
        suite::batch_of_100_is_received_exactly_once(&f.queue).await;
    }

    // What only the embedded queue promises.

    #[tokio::test]
    async fn message_received_too_often_moves_to_dead_letters() {
        let f = Fixture::new();
        let queue = f.sibling("poison").with_max_receives(2);
        let advance = f.advance();
        queue.send(one("poison")).await.unwrap();
        for count in 1..=2 {
            let got = queue.receive(10, VIS).await.unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].receive_count, count);
            advance(VIS);
        }
        assert!(queue.receive(10, VIS).await.unwrap().is_empty());
        let dead = queue.dead_letters().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, "poison");
        assert_eq!(dead[0].receive_count, 2);
        assert_eq!(dead[0].dead_at, f.clock.now());
        assert_eq!(queue.next_visible_at().unwrap(), None);
        assert!(f.queue.dead_letters().unwrap().is_empty(), "per queue");
    }

    #[tokio::test]
    async fn dead_letters_leave_room_for_live_messages_in_one_receive() {
        let f = Fixture::new();
        let queue = f.sibling("mixed").with_max_receives(1);
        queue.send(one("first")).await.unwrap();
        queue.receive(10, Duration::ZERO).await.unwrap();
        queue.send(one("second")).await.unwrap();
        let got = queue.receive(1, VIS).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, "second");
        assert_eq!(queue.dead_letters().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn zero_visibility_never_delivers_a_message_twice_in_one_receive() {
        let f = Fixture::new();
        f.queue.send(one("a")).await.unwrap();
        let got = f.queue.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 1);
        let again = f.queue.receive(10, VIS).await.unwrap();
        assert_eq!(again.len(), 1, "visible again at once");
        assert_eq!(again[0].receive_count, 2);
    }

    #[tokio::test]
    async fn stale_receipt_does_not_delete_the_redelivered_message() {
        let f = Fixture::new();
        f.queue.send(one("a")).await.unwrap();
        let first = f.queue.receive(10, VIS).await.unwrap().remove(0);
        f.clock.advance(VIS);
        let second = f.queue.receive(10, VIS).await.unwrap().remove(0);
        f.queue.ack(&[first.receipt]).await.unwrap();
        f.clock.advance(VIS);
        let third = f.queue.receive(10, VIS).await.unwrap();
        assert_eq!(third.len(), 1, "still there");
        assert_eq!(third[0].receive_count, 3);
        f.queue.ack(&[second.receipt]).await.unwrap();
        assert!(f.queue.next_visible_at().unwrap().is_some(), "stale again");
    }

    #[tokio::test]
    async fn queues_in_one_file_are_separate() {
        let f = Fixture::new();
        let results = f.sibling("result");
        f.queue.send(one("step")).await.unwrap();
        results.send(one("outcome")).await.unwrap();
        let got = results.receive(10, VIS).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, "outcome");
        // A receipt from one queue does not ack on another.
        f.queue.ack(&[got[0].receipt.clone()]).await.unwrap();
        f.clock.advance(VIS);
        assert_eq!(results.receive(10, VIS).await.unwrap()[0].receive_count, 2);
        assert_eq!(f.queue.receive(10, VIS).await.unwrap()[0].body, "step");
    }

    #[tokio::test]
    async fn messages_survive_reopening_the_file() {
        let f = Fixture::new();
        f.queue.send(one("kept")).await.unwrap();
        let received = f.queue.receive(10, VIS).await.unwrap();
        let path = f.path();
        drop(f.queue);
        let reopened = SqliteQueue::open(&path, "ready", f.clock.clone()).expect("reopen");
        assert!(
            reopened.receive(10, VIS).await.unwrap().is_empty(),
            "still hidden"
        );
        f.clock.advance(VIS);
        let again = reopened.receive(10, VIS).await.unwrap();
        assert_eq!(again[0].body, "kept");
        assert_eq!(again[0].receive_count, 2);
        assert_ne!(again[0].receipt, received[0].receipt);
    }

    #[tokio::test]
    async fn released_messages_are_visible_at_once_and_count_as_redelivered() {
        let f = Fixture::new();
        f.queue.send(one("taken")).await.unwrap();
        let stale = f.queue.receive(10, VIS).await.unwrap().remove(0);
        let later = Outgoing {
            body: "delayed".into(),
            delay: Duration::from_secs(60),
        };
        f.queue.send(vec![later]).await.unwrap();
        assert_eq!(f.queue.release_received().unwrap(), ["taken"]);
        // The old receipt acknowledges nothing now.
        f.queue.ack(&[stale.receipt]).await.unwrap();
        let again = f.queue.receive(10, VIS).await.unwrap();
        assert_eq!(again.len(), 1, "the delayed message keeps its due time");
        assert_eq!(again[0].body, "taken");
        assert_eq!(again[0].receive_count, 2);
    }

    #[tokio::test]
    async fn order_is_visibility_time_then_sending() {
        let f = Fixture::new();
        let later = Outgoing {
            body: "delayed".into(),
            delay: Duration::from_secs(5),
        };
        f.queue.send(vec![later]).await.unwrap();
        f.queue.send(one("first")).await.unwrap();
        f.queue.send(one("second")).await.unwrap();
        f.clock.advance(Duration::from_secs(10));
        f.queue.send(one("third")).await.unwrap();
        let bodies: Vec<_> = f
            .queue
            .receive(10, VIS)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(bodies, ["first", "second", "delayed", "third"]);
    }

    #[tokio::test]
    async fn receive_returns_at_most_max() {
        let f = Fixture::new();
        let batch = (0..5).map(|i| one(&i.to_string()).remove(0)).collect();
        f.queue.send(batch).await.unwrap();
        assert_eq!(f.queue.receive(3, VIS).await.unwrap().len(), 3);
        assert_eq!(f.queue.receive(3, VIS).await.unwrap().len(), 2);
        assert!(f.queue.receive(0, VIS).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn delay_over_fifteen_minutes_is_refused() {
        let f = Fixture::new();
        let too_late = Outgoing {
            body: "x".into(),
            delay: MAX_DELAY + Duration::from_secs(1),
        };
        let err = f.queue.send(vec![too_late]).await.unwrap_err();
        assert!(err.to_string().contains("15 minutes"), "{err}");
        assert_eq!(f.queue.next_visible_at().unwrap(), None);
    }

    #[tokio::test]
    async fn next_visible_at_is_the_earliest_due_time() {
        let f = Fixture::new();
        let now = f.clock.now();
        assert_eq!(f.queue.next_visible_at().unwrap(), None);
        let delayed = |secs| Outgoing {
            body: "x".into(),
            delay: Duration::from_secs(secs),
        };
        f.queue.send(vec![delayed(60), delayed(20)]).await.unwrap();
        assert_eq!(
            f.queue.next_visible_at().unwrap(),
            Some(now + chrono::Duration::seconds(20))
        );
        f.clock.advance(Duration::from_secs(20));
        f.queue.receive(10, Duration::from_secs(90)).await.unwrap();
        assert_eq!(
            f.queue.next_visible_at().unwrap(),
            Some(now + chrono::Duration::seconds(60))
        );
    }

    #[tokio::test]
    async fn wait_visible_wakes_on_a_send_through_another_handle() {
        let f = Fixture::new();
        let other = f.sibling("ready");
        let waiter = tokio::spawn(async move {
            let started = std::time::Instant::now();
            f.queue.wait_visible(Duration::from_secs(30)).await.unwrap();
            (started.elapsed(), f)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        other.send(one("wake")).await.unwrap();
        let (waited, _f) = waiter.await.unwrap();
        assert!(waited < Duration::from_secs(10), "woken by the send");
    }

    #[tokio::test]
    async fn wait_visible_returns_at_once_when_a_message_is_visible() {
        let f = Fixture::new();
        f.queue.send(one("here")).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            f.queue.wait_visible(Duration::from_secs(60)),
        )
        .await
        .expect("no wait")
        .unwrap();
    }

    #[tokio::test]
    async fn wait_visible_sleeps_until_the_earliest_due_time() {
        let f = Fixture::new();
        let delayed = Outgoing {
            body: "x".into(),
            delay: Duration::from_millis(300),
        };
        f.queue.send(vec![delayed]).await.unwrap();
        let started = std::time::Instant::now();
        f.queue.wait_visible(Duration::from_secs(60)).await.unwrap();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert!(waited < Duration::from_secs(30), "{waited:?}");
    }

    #[tokio::test]
    async fn wait_visible_on_an_empty_queue_is_bounded_by_max_wait() {
        let f = Fixture::new();
        let started = std::time::Instant::now();
        f.queue
            .wait_visible(Duration::from_millis(200))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150));
    }
}
