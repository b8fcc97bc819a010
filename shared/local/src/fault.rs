//! [`Fault`]: the local state can no longer be written, and retrying will not change it.
//!
//! A busy database is worth waiting for; a full disk, a read-only file or a failing
//! device is not. The handlers cannot tell the two apart — every store failure is a
//! retryable backend error to them, so they leave the message for redelivery, and the
//! sweeper re-sends what looks lost — and they swallow some failures on purpose (one
//! run's trouble must not stop the sweep of the others). Left alone, a process on a
//! full disk would retry forever, log every second and pile up re-sent messages.
//!
//! So the adapters that know the cause say so: the SQLite store and queues, and the
//! payload folder, note a failure of that kind in the [`Fault`] they share with the
//! runtime, which stops at its next pass and reports it (see
//! [`crate::runtime::LocalRuntime::run_to_end`]). Nothing is lost by stopping: every
//! write is guarded, and the next process that drives the state recovers what this one
//! left (see [`crate::takeover`]).

use braid_ports::PortError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Why the local state cannot be written: the file and what failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot write the local state `{}`: {reason}", path.display())]
pub struct Unwritable {
    pub path: PathBuf,
    pub reason: String,
}

/// The first failure of the local state that retrying cannot cure, shared by the
/// adapters of one backend and its runtime. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Fault(Arc<OnceLock<Unwritable>>);

impl Fault {
    pub fn new() -> Self {
        Self::default()
    }

    /// The failure noted, if any.
    pub fn get(&self) -> Option<&Unwritable> {
        self.0.get()
    }

    /// Notes `e`, an operation on the file at `path`, when it is a failure that
    /// retrying cannot cure; the first one noted is kept.
    pub fn note(&self, path: &Path, e: &PortError) {
        if let Some(reason) = incurable(e) {
            let _ = self.0.set(Unwritable {
                path: path.to_path_buf(),
                reason,
            });
        }
    }
}

/// What makes `e` incurable by waiting, in words, or `None` when a retry may work.
fn incurable(e: &PortError) -> Option<String> {
    let PortError::Backend {
        source: Some(source),
        ..
    } = e
    else {
        return None;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(c) = cause {
        if let Some(reason) = c
            .downcast_ref::<rusqlite::Error>()
            .and_then(incurable_sqlite)
        {
            return Some(reason);
        }
        if let Some(reason) = c.downcast_ref::<std::io::Error>().and_then(incurable_io) {
            return Some(reason);
        }
        cause = c.source();
    }
    None
}

fn incurable_sqlite(e: &rusqlite::Error) -> Option<String> {
    use rusqlite::ErrorCode::{
        CannotOpen, DatabaseCorrupt, DiskFull, NotADatabase, PermissionDenied, ReadOnly,
        SystemIoFailure,
    };
    let what = match e.sqlite_error_code()? {
        DiskFull => "the disk (or the database's size limit) is full",
        ReadOnly => "the database is read-only",
        PermissionDenied => "permission denied",
        SystemIoFailure => "a disk I/O error",
        CannotOpen => "the database file cannot be opened",
        DatabaseCorrupt | NotADatabase => "the database file is damaged",
        _ => return None,
    };
    Some(format!("{what} ({e})"))
}

fn incurable_io(e: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind::{PermissionDenied, QuotaExceeded, ReadOnlyFilesystem, StorageFull};
    let what = match e.kind() {
        StorageFull | QuotaExceeded => "the disk is full",
        ReadOnlyFilesystem => "the file system is read-only",
        PermissionDenied => "permission denied",
        _ => return None,
    };
    Some(format!("{what} ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> PortError {
        PortError::backend(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn a_full_disk_is_noted_with_its_file() {
        let fault = Fault::new();
        fault.note(
            Path::new("/s/state.db"),
            &sqlite(rusqlite::ffi::SQLITE_FULL),
        );
        let got = fault.get().expect("noted");
        assert_eq!(got.path, Path::new("/s/state.db"));
        assert!(got.to_string().contains("full"), "{got}");
        assert!(got.to_string().contains("/s/state.db"), "{got}");
    }

    #[test]
    fn a_busy_database_is_not_a_fault() {
        let fault = Fault::new();
        fault.note(
            Path::new("/s/state.db"),
            &sqlite(rusqlite::ffi::SQLITE_BUSY),
        );
        fault.note(Path::new("/s/state.db"), &PortError::Conflict("x".into()));
        assert!(fault.get().is_none());
    }

    #[test]
    fn the_first_fault_is_kept() {
        let fault = Fault::new();
        let shared = fault.clone();
        fault.note(Path::new("/a"), &sqlite(rusqlite::ffi::SQLITE_READONLY));
        shared.note(Path::new("/b"), &sqlite(rusqlite::ffi::SQLITE_FULL));
        assert_eq!(fault.get().expect("noted").path, Path::new("/a"));
    }

    #[test]
    fn a_full_disk_under_a_payload_is_noted() {
        let fault = Fault::new();
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        fault.note(Path::new("/s/payloads"), &PortError::backend(io));
        assert!(fault.get().is_some());
    }
}
