//! Local buckets: each subfolder of the buckets folder is a bucket named after it, and
//! a file created (or rewritten with new content) at `BUCKET/KEY` is an S3 upload that
//! fires the matching `s3` triggers, with the trigger data S3 would give.
//!
//! Files there when `braid dev` starts are taken as already uploaded. Nothing is kept
//! between runs of `braid dev`: an upload seen twice starts one run per workflow, by the
//! upload's idempotency key (bucket, key and sequencer).

use super::watch::{FolderWatch, Stamp};
use braid_handlers::Handlers;
use braid_lang::triggers::incoming::{Incoming, S3Object};
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The watched buckets folder.
#[derive(Debug)]
pub struct Buckets {
    watch: FolderWatch,
    /// The content hash of each file last seen, by path relative to the buckets folder:
    /// a rewrite with the same content is no new upload.
    etags: HashMap<PathBuf, String>,
}

/// An upload seen, not yet handed to the triggers.
#[derive(Debug)]
pub struct Upload {
    path: PathBuf,
    pub object: S3Object,
}

impl Buckets {
    pub fn new(dir: &Path) -> Self {
        Buckets {
            watch: FolderWatch::new(dir, true),
            etags: HashMap::new(),
        }
    }

    /// Takes the files there now as already uploaded. Reads every file (blocking).
    pub fn baseline(&mut self) {
        for (rel, _) in self.watch.baseline() {
            if let Some(etag) = content_hash(&self.watch.root().join(&rel)) {
                self.etags.insert(rel, etag);
            }
        }
    }

    /// The uploads since the last poll (blocking: new files are read to hash them).
    pub fn poll(&mut self) -> Vec<Upload> {
        let changes = self.watch.poll();
        for rel in &changes.removed {
            self.etags.remove(rel);
        }
        let mut out = Vec::new();
        for (rel, stamp) in changes.changed {
            let Some((bucket, key)) = bucket_and_key(&rel) else {
                continue;
            };
            let Some(etag) = content_hash(&self.watch.root().join(&rel)) else {
                // Gone or unreadable: look again at its next change.
                self.watch.forget(&rel);
                continue;
            };
            if self.etags.get(&rel) == Some(&etag) {
                continue;
            }
            out.push(Upload {
                object: s3_object(bucket, key, stamp, etag),
                path: rel,
            });
        }
        out
    }

    /// Starts the runs an upload triggers and reports what did not start. A failing
    /// store leaves the upload to be handed over again at the next poll.
    pub async fn fire(&mut self, upload: Upload, handlers: &Handlers) {
        let o = &upload.object;
        let name = format!("{}/{}", o.bucket, o.key);
        match handlers
            .start_triggered(&Incoming::S3(upload.object.clone()))
            .await
        {
            Ok(runs) => {
                if runs.is_empty() {
                    eprintln!("{name}: no s3 trigger matches");
                }
                for r in runs {
                    if let Err(why) = r.outcome {
                        eprintln!("{name}: workflow `{}` not started: {why}", r.workflow);
                    }
                }
                let etag = o.etag.clone().unwrap_or_default();
                self.etags.insert(upload.path, etag);
            }
            Err(e) => {
                eprintln!("{name}: could not start its runs: {e}; trying again");
                self.watch.forget(&upload.path);
            }
        }
    }
}

/// The bucket (the first folder) and the key (the rest, with forward slashes) of a
/// path relative to the buckets folder; none for a file outside any bucket folder or
/// with a name that is not UTF-8.
fn bucket_and_key(rel: &Path) -> Option<(String, String)> {
    let mut parts = rel.iter().map(|p| p.to_str());
    let bucket = parts.next()??.to_string();
    let key: Vec<&str> = parts.collect::<Option<_>>()?;
    (!key.is_empty()).then(|| (bucket, key.join("/")))
}

/// The S3 object a file stands for. Its sequencer changes at every write (modification
/// time in nanoseconds and size), as S3's does.
fn s3_object(bucket: String, key: String, stamp: Stamp, etag: String) -> S3Object {
    let nanos = stamp
        .modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let time: DateTime<Utc> = stamp.modified.into();
    S3Object {
        bucket,
        key,
        size: Some(stamp.len),
        etag: Some(etag),
        version_id: None,
        sequencer: Some(format!("{nanos:X}{:08X}", stamp.len)),
        time: Some(time.to_rfc3339_opts(SecondsFormat::Millis, true)),
    }
}

/// Hex of the first 16 bytes of the content's SHA-256 (as long as an S3 ETag); none
/// when the file cannot be read.
fn content_hash(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(hex::encode(&hasher.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_is_the_first_folder_and_key_the_rest_with_forward_slashes() {
        let rel: PathBuf = ["orders", "incoming", "a b.csv"].iter().collect();
        assert_eq!(
            bucket_and_key(&rel),
            Some(("orders".into(), "incoming/a b.csv".into()))
        );
        assert_eq!(bucket_and_key(Path::new("loose.txt")), None);
    }

    #[test]
    fn uploads_are_new_files_and_rewrites_with_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = dir.path().join("b");
        std::fs::create_dir_all(bucket.join("in")).unwrap();
        std::fs::write(bucket.join("old.txt"), "old").unwrap();
        let mut b = Buckets::new(dir.path());
        b.baseline();
        let settle = |b: &mut Buckets| {
            let mut all = b.poll();
            all.extend(b.poll());
            all
        };
        assert!(
            settle(&mut b).is_empty(),
            "files there at start are not uploads"
        );

        std::fs::write(bucket.join("in/new.csv"), "1,2").unwrap();
        let ups = settle(&mut b);
        assert_eq!(ups.len(), 1);
        let o = &ups[0].object;
        assert_eq!((o.bucket.as_str(), o.key.as_str()), ("b", "in/new.csv"));
        assert_eq!(o.size, Some(3));
        assert_eq!(o.etag.as_deref().map(str::len), Some(32));
        let first_sequencer = o.sequencer.clone();
        for u in ups {
            b.etags.insert(u.path, u.object.etag.unwrap());
        }

        // The same content written again is no upload; new content is.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(bucket.join("in/new.csv"), "1,2").unwrap();
        assert!(settle(&mut b).is_empty());
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(bucket.join("in/new.csv"), "3,4").unwrap();
        let ups = settle(&mut b);
        assert_eq!(ups.len(), 1);
        assert_ne!(ups[0].object.sequencer, first_sequencer);
    }
}
