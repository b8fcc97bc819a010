//! [`Owner`]: the one process that drives a state folder, marked by an OS file lock.
//!
//! A process that drives runs (`braid run`, `braid dev`, a local `braid backfill`)
//! holds an exclusive lock on `owner.lock` in the state folder for as long as it lives;
//! the file says which process it is (`pid` and command). The operating system drops
//! the lock when the process ends, however it ends — `kill -9` included — so a lock
//! that can be taken means nobody drives the state now: whatever a process before left
//! in flight is abandoned, and the new owner takes it over at once (see
//! [`crate::takeover`]) instead of waiting for it to look lost.
//!
//! A second driver is refused ([`Held`], naming the holder) rather than made to wait:
//! the holder is usually `braid dev`, which never ends by itself, and a refusal says
//! what to do. Commands that only read or register (`braid runs`, `show`, `deploy`)
//! take no lock and work beside the owner: SQLite serializes their writes.
//!
//! The file is opened close-on-exec (Rust's default), so a function binary the owner
//! launched does not keep the lock alive after the owner died.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name in the state folder.
pub const LOCK_FILE: &str = "owner.lock";

/// The state folder is driven by another live process.
#[derive(Debug, thiserror::Error)]
#[error(
    "the local state in `{}` is driven by another braid process ({holder}); stop it, or use another folder with --state",
    dir.display()
)]
pub struct Held {
    pub dir: PathBuf,
    /// `pid N (COMMAND)` as the holder wrote it, or `pid unknown` when it wrote nothing.
    pub holder: String,
}

/// Why ownership could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error(transparent)]
    Held(#[from] Held),
    #[error("cannot lock `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Ownership of a state folder; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct Owner {
    file: File,
    /// Who held the folder before, as its file said, when that process stopped
    /// without letting go cleanly.
    previous: Option<String>,
}

impl Owner {
    /// Takes ownership of the state folder `dir` (created if missing) for this process,
    /// `command` naming it for whoever is refused; fails with [`Held`] at once when a
    /// live process owns it.
    pub fn acquire(dir: &Path, command: &str) -> Result<Owner, OwnerError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| OwnerError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file)
                    .unwrap_or_else(|| "pid unknown: it is starting".to_string());
                return Err(Held {
                    dir: dir.to_path_buf(),
                    holder,
                }
                .into());
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let previous = read_holder(&mut file);
        let me = format!("pid {} ({command})", std::process::id());
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        Ok(Owner { file, previous })
    }

    /// The process that owned the folder before and stopped without letting go (it
    /// crashed or was killed), as its lock file named it.
    pub fn previous(&self) -> Option<&str> {
        self.previous.as_deref()
    }
}

impl Drop for Owner {
    /// A clean exit empties the file, so the next owner knows nobody was cut short.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn read_holder(file: &mut File) -> Option<String> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = Owner::acquire(dir.path(), "braid dev").unwrap();
        let err = Owner::acquire(dir.path(), "braid run").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {} (braid dev)", std::process::id())),
            "{text}"
        );
        assert!(text.contains("--state"), "{text}");
        drop(first);
        let again = Owner::acquire(dir.path(), "braid run").unwrap();
        assert_eq!(again.previous(), None, "a clean release leaves no holder");
    }

    #[test]
    fn an_owner_that_stopped_without_letting_go_is_named() {
        let dir = tempfile::tempdir().unwrap();
        // What a killed process leaves: its line in the file, no lock.
        std::fs::write(dir.path().join(LOCK_FILE), "pid 4242 (braid run)").unwrap();
        let owner = Owner::acquire(dir.path(), "braid dev").unwrap();
        assert_eq!(owner.previous(), Some("pid 4242 (braid run)"));
    }
}
