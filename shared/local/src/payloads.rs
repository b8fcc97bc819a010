//! [`FolderPayloads`]: the payload store as files in a folder, one file per key.
//!
//! A key is a relative path of `/`-separated segments (`runs/<run>/steps/<step>/output`),
//! stored at that path under the folder, so payloads are easy to look at. Keys that could
//! leave the folder or name it ambiguously (empty, absolute, `..`, `.`, empty segments,
//! backslashes, NUL) are refused with [`PortError::Conflict`].
//!
//! Unlike S3, a key cannot also be a "folder" of other keys: with `a/b` stored, putting
//! `a` fails with [`PortError::Conflict`] (and getting `a` is [`PortError::NotFound`]).
//! Braid's keys end in a fixed leaf name, so they never collide that way.
//!
//! Writes are atomic: the bytes go to a temporary file next to the target, which is then
//! renamed over it, so a reader sees the old or the new payload, never half of one. By
//! default the file (and then its folder) is fsynced before and after the rename, so a
//! payload is on disk before the state that refers to it is committed.
//!
//! Nothing in the folder expires (nor does the state that names it), so renewing a
//! run's payloads as it ends ([`PayloadStore::renew`]) only sets their modification
//! time to now, as S3 restarts their lifecycle clock: a cleanup by age (`find -mtime`)
//! keeps them as long as the run is recent.
//!
//! File I/O runs on tokio's blocking pool: payloads can be megabytes.

use crate::fault::Fault;
use async_trait::async_trait;
use braid_engine::model::Timestamp;
use braid_ports::{PayloadStore, PortError, PortResult};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Temporary files start with this, in the target's folder.
const TEMP_PREFIX: &str = ".braid-tmp-";

/// Payloads as files under a root folder; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct FolderPayloads {
    root: PathBuf,
    fsync: bool,
    /// Where a write failure that retrying cannot cure (a full disk) is noted.
    fault: Fault,
}

impl FolderPayloads {
    /// Keeps payloads under `root`, creating the folder if needed.
    pub fn open(root: &Path) -> PortResult<Self> {
        fs::create_dir_all(root)
            .map_err(|e| PortError::backend_in(format!("payload folder {}", root.display()), e))?;
        Ok(FolderPayloads {
            root: root.to_path_buf(),
            fsync: true,
            fault: Fault::new(),
        })
    }

    /// The payloads under `root`, for reading only: the folder is not created (a
    /// state whose values were all small has none, and reads find nothing).
    pub fn reading(root: &Path) -> Self {
        FolderPayloads {
            root: root.to_path_buf(),
            fsync: true,
            fault: Fault::new(),
        }
    }

    /// Notes write failures that retrying cannot cure (a full disk) in `fault`, shared
    /// with the runtime.
    #[must_use]
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }

    /// Whether writes are fsynced (default `true`). Without it a power loss may lose
    /// recent payloads, though it never leaves a half-written one in place on common
    /// Linux file systems.
    #[must_use]
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// The folder payloads live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key`, or why `key` is refused.
    pub fn path_of(&self, key: &str) -> PortResult<PathBuf> {
        let invalid =
            |why: &str| PortError::Conflict(format!("invalid payload key {key:?}: {why}"));
        if key.is_empty() {
            return Err(invalid("it is empty"));
        }
        if key.contains(['\\', '\0']) {
            return Err(invalid("backslashes and NUL are not allowed"));
        }
        let mut path = self.root.clone();
        for segment in key.split('/') {
            match segment {
                "" => {
                    return Err(invalid(
                        "segments must not be empty (no leading, trailing or double `/`)",
                    ));
                }
                "." | ".." => return Err(invalid("`.` and `..` segments are not allowed")),
                s if s.starts_with(TEMP_PREFIX) => {
                    return Err(invalid("segments must not start with `.braid-tmp-`"));
                }
                s => path.push(s),
            }
        }
        Ok(path)
    }
}

#[async_trait]
impl PayloadStore for FolderPayloads {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> PortResult<()> {
        let path = self.path_of(key)?;
        let fsync = self.fsync;
        let key = key.to_owned();
        let out = blocking(move || {
            write_atomically(&path, &bytes, fsync).map_err(|e| put_error(&key, e))
        })
        .await;
        if let Err(e) = &out {
            self.fault.note(&self.root, e);
        }
        out
    }

    async fn get(&self, key: &str) -> PortResult<Vec<u8>> {
        let path = self.path_of(key)?;
        let key = key.to_owned();
        blocking(move || {
            fs::read(&path).map_err(|e| match e.kind() {
                // A key that is only a "folder" of other keys, or under a key, is absent.
                ErrorKind::NotFound | ErrorKind::IsADirectory | ErrorKind::NotADirectory => {
                    PortError::NotFound(format!("payload {key}"))
                }
                _ => PortError::backend_in(format!("payload {key}: read {}", path.display()), e),
            })
        })
        .await
    }

    async fn renew(&self, prefix: &str, before: Timestamp) -> PortResult<usize> {
        let dir = self.path_of(prefix.trim_end_matches('/'))?;
        let before = std::time::SystemTime::from(before);
        let prefix = prefix.to_owned();
        blocking(move || {
            renew_files(&dir, before)
                .map_err(|e| PortError::backend_in(format!("payloads {prefix}: renew"), e))
        })
        .await
    }
}

/// Sets the modification time of every payload file under `dir` modified before
/// `before` to now; returns how many.
fn renew_files(dir: &Path, before: std::time::SystemTime) -> std::io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut renewed = 0;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            renewed += renew_files(&path, before)?;
        } else if kind.is_file()
            && !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && entry.metadata()?.modified()? < before
        {
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_modified(std::time::SystemTime::now())?;
            renewed += 1;
        }
    }
    Ok(renewed)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> PortResult<T> + Send + 'static,
) -> PortResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PortError::backend_in("payload I/O task", e))?
}

fn put_error(key: &str, e: std::io::Error) -> PortError {
    match e.kind() {
        // The key is a "folder" of other keys, or one of its folders is a key.
        ErrorKind::IsADirectory
        | ErrorKind::NotADirectory
        | ErrorKind::DirectoryNotEmpty
        | ErrorKind::AlreadyExists => PortError::Conflict(format!(
            "payload {key}: a key cannot also be a folder of other keys ({e})"
        )),
        _ => PortError::backend_in(format!("payload {key}: write"), e),
    }
}

fn write_atomically(path: &Path, bytes: &[u8], fsync: bool) -> std::io::Result<()> {
    let dir = path.parent().expect("a key path is under the root");
    fs::create_dir_all(dir)?;
    let name = path.file_name().expect("a key path ends in a segment");
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{:016x}-{}",
        fastrand::u64(..),
        name.to_string_lossy()
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        if fsync {
            file.sync_all()?;
        }
        drop(file);
        // Fails with IsADirectory when the key is a folder of other keys.
        fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Makes the rename durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_ports::testkit::payloads as suite;
    use tempfile::TempDir;

    fn fixture() -> (TempDir, FolderPayloads) {
        let dir = TempDir::new().expect("temp dir");
        let store = FolderPayloads::open(&dir.path().join("payloads")).expect("open");
        (dir, store)
    }

    // The port's conformance suite.

    #[tokio::test]
    async fn put_then_get_round_trips() {
        let (_dir, store) = fixture();
        suite::put_then_get_round_trips(&store).await;
    }

    #[tokio::test]
    async fn put_overwrites() {
        let (_dir, store) = fixture();
        suite::put_overwrites(&store).await;
    }

    #[tokio::test]
    async fn missing_key_is_not_found() {
        let (_dir, store) = fixture();
        suite::missing_key_is_not_found(&store).await;
    }

    #[tokio::test]
    async fn large_payload_is_intact() {
        let (_dir, store) = fixture();
        suite::large_payload_is_intact(&store).await;
    }

    #[tokio::test]
    async fn keys_with_slashes_are_distinct() {
        let (_dir, store) = fixture();
        suite::keys_with_slashes_are_distinct(&store).await;
    }

    #[tokio::test]
    async fn renew_keeps_older_payloads_under_the_prefix() {
        let (_dir, store) = fixture();
        suite::renew_keeps_older_payloads_under_the_prefix(&store).await;
    }

    #[tokio::test]
    async fn unfsynced_store_passes_the_suite_too() {
        let (_dir, store) = fixture();
        let store = store.with_fsync(false);
        suite::put_then_get_round_trips(&store).await;
        suite::put_overwrites(&store).await;
    }

    // What only the folder store does.

    #[tokio::test]
    async fn keys_that_could_escape_or_mislead_are_refused() {
        let (_dir, store) = fixture();
        for key in [
            "",
            "/etc/passwd",
            "../outside",
            "a/../../outside",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
            ".braid-tmp-0-x",
        ] {
            let put = store.put(key, b"x".to_vec()).await;
            assert!(
                matches!(put, Err(PortError::Conflict(_))),
                "put {key:?}: {put:?}"
            );
            let get = store.get(key).await;
            assert!(
                matches!(get, Err(PortError::Conflict(_))),
                "get {key:?}: {get:?}"
            );
        }
        assert!(!store.root().parent().unwrap().join("outside").exists());
    }

    #[tokio::test]
    async fn key_maps_to_its_relative_path() {
        let (_dir, store) = fixture();
        store.put("runs/r1/input", b"{}".to_vec()).await.unwrap();
        let file = store.root().join("runs").join("r1").join("input");
        assert_eq!(fs::read(file).unwrap(), b"{}");
        assert_eq!(
            store.path_of("runs/r1/input").unwrap(),
            store.root().join("runs/r1/input")
        );
    }

    #[tokio::test]
    async fn a_key_cannot_also_be_a_folder_of_keys() {
        let (_dir, store) = fixture();
        store.put("a/b", b"1".to_vec()).await.unwrap();
        let over_folder = store.put("a", b"2".to_vec()).await;
        assert!(
            matches!(over_folder, Err(PortError::Conflict(_))),
            "{over_folder:?}"
        );
        let under_file = store.put("a/b/c", b"3".to_vec()).await;
        assert!(
            matches!(under_file, Err(PortError::Conflict(_))),
            "{under_file:?}"
        );
        assert!(matches!(
            store.get("a/b/c").await,
            Err(PortError::NotFound(_))
        ));
        assert_eq!(store.get("a/b").await.unwrap(), b"1");
    }

    #[tokio::test]
    async fn writes_leave_no_temporary_files() {
        let (_dir, store) = fixture();
        store.put("k", b"1".to_vec()).await.unwrap();
        store.put("k", b"2".to_vec()).await.unwrap();
        let names: Vec<_> = fs::read_dir(store.root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["k"]);
    }
}
