//! Reads shared by concurrent callers: the first caller for a key reads, the others
//! asking meanwhile wait for its value instead of reading again. What is kept after
//! the read is the caller's choice ([`SharedReads::forget`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Values by key, each read once by whoever asks first; at most `keep` are held.
#[derive(Debug)]
pub(super) struct SharedReads<V> {
    slots: Mutex<HashMap<String, Arc<OnceCell<V>>>>,
    keep: usize,
}

impl<V: Clone> SharedReads<V> {
    pub(super) fn new(keep: usize) -> Self {
        SharedReads {
            slots: Mutex::new(HashMap::new()),
            keep,
        }
    }

    /// The value for `key`: one read before and kept, one a caller is reading now, or
    /// else `read`'s. A failed read is not kept: the next caller reads again.
    pub(super) async fn get<E>(
        &self,
        key: &str,
        read: impl Future<Output = Result<V, E>>,
    ) -> Result<V, E> {
        let slot = {
            let mut slots = self.slots.lock().unwrap();
            if slots.len() >= self.keep && !slots.contains_key(key) {
                slots.clear();
            }
            slots.entry(key.to_string()).or_default().clone()
        };
        slot.get_or_try_init(|| read).await.cloned()
    }

    /// Drops what is kept for `key`: the next caller reads it again.
    pub(super) fn forget(&self, key: &str) {
        self.slots.lock().unwrap().remove(key);
    }
}
