//! What changed in a folder since the last look, by polling: files created or rewritten
//! (their modification time or size changed) and files removed. Both the workflows
//! folder and the buckets folder are watched with it.
//!
//! A file is reported once it has held still for one poll (the same modification time
//! and size twice in a row), so a file still being written is not picked up half
//! written. Names starting with `.` (editor swap files, partial downloads) are ignored,
//! and so are symbolic links to folders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What a file looked like at a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub modified: SystemTime,
    pub len: u64,
}

/// What changed since the previous poll; paths relative to the watched folder.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Files new or rewritten since they were last reported, sorted by path.
    pub changed: Vec<(PathBuf, Stamp)>,
    /// Files reported before and gone now, sorted by path.
    pub removed: Vec<PathBuf>,
}

/// A folder watched by polling.
#[derive(Debug)]
pub struct FolderWatch {
    root: PathBuf,
    /// Also the files in subfolders, at any depth.
    recursive: bool,
    /// Files as last reported (or taken as seen).
    reported: HashMap<PathBuf, Stamp>,
    /// Files seen changed at the last poll, reported when they are the same at the next.
    settling: HashMap<PathBuf, Stamp>,
}

impl FolderWatch {
    pub fn new(root: impl Into<PathBuf>, recursive: bool) -> Self {
        FolderWatch {
            root: root.into(),
            recursive,
            reported: HashMap::new(),
            settling: HashMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The files there now, taken as seen: later polls report only what changes after.
    pub fn baseline(&mut self) -> Vec<(PathBuf, Stamp)> {
        let mut now: Vec<(PathBuf, Stamp)> = self.scan().into_iter().collect();
        now.sort_by(|a, b| a.0.cmp(&b.0));
        self.reported = now.iter().cloned().collect();
        self.settling.clear();
        now
    }

    /// Forgets that `path` was reported: it is reported again at the next polls (for
    /// a change that could not be acted on).
    pub fn forget(&mut self, path: &Path) {
        self.reported.remove(path);
    }

    /// Looks at the folder again. A missing folder has no files.
    pub fn poll(&mut self) -> Changes {
        let now = self.scan();
        let mut changes = Changes::default();
        let mut settling = HashMap::new();
        for (path, stamp) in &now {
            if self.reported.get(path) == Some(stamp) {
                continue;
            }
            if self.settling.get(path) == Some(stamp) {
                self.reported.insert(path.clone(), *stamp);
                changes.changed.push((path.clone(), *stamp));
            } else {
                settling.insert(path.clone(), *stamp);
            }
        }
        self.settling = settling;
        self.reported.retain(|path, _| {
            let kept = now.contains_key(path);
            if !kept {
                changes.removed.push(path.clone());
            }
            kept
        });
        changes.changed.sort_by(|a, b| a.0.cmp(&b.0));
        changes.removed.sort();
        changes
    }

    /// Every file under the root with its stamp, by relative path.
    fn scan(&self) -> HashMap<PathBuf, Stamp> {
        let mut out = HashMap::new();
        let mut folders = vec![PathBuf::new()];
        while let Some(rel) = folders.pop() {
            let Ok(entries) = std::fs::read_dir(self.root.join(&rel)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let path = rel.join(&name);
                if kind.is_dir() {
                    if self.recursive {
                        folders.push(path);
                    }
                    continue;
                }
                // Follows a symbolic link to a file; one to a folder is left alone.
                let Ok(meta) = entry.path().metadata() else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let stamp = Stamp {
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    len: meta.len(),
                };
                out.insert(path, stamp);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }

    fn names(c: &Changes) -> Vec<String> {
        c.changed
            .iter()
            .map(|(p, _)| p.to_string_lossy().replace('\\', "/"))
            .collect()
    }

    #[test]
    fn reports_new_and_rewritten_files_once_they_hold_still() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "old.txt", "a");
        let mut w = FolderWatch::new(dir.path(), true);
        assert_eq!(w.baseline().len(), 1);
        assert_eq!(w.poll(), Changes::default());

        write(dir.path(), "in/new.txt", "b");
        write(dir.path(), ".swap", "x");
        assert!(
            w.poll().changed.is_empty(),
            "a file is reported once settled"
        );
        assert_eq!(names(&w.poll()), ["in/new.txt"]);
        assert!(w.poll().changed.is_empty(), "and only once");

        // A rewrite with another size is a change, however fast it comes.
        write(dir.path(), "old.txt", "longer");
        w.poll();
        assert_eq!(names(&w.poll()), ["old.txt"]);

        std::fs::remove_file(dir.path().join("old.txt")).unwrap();
        assert_eq!(w.poll().removed, [PathBuf::from("old.txt")]);
    }

    #[test]
    fn a_file_still_changing_waits() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = FolderWatch::new(dir.path(), false);
        w.baseline();
        write(dir.path(), "f.yaml", "1");
        assert!(w.poll().changed.is_empty());
        write(dir.path(), "f.yaml", "12");
        assert!(
            w.poll().changed.is_empty(),
            "changed again since the last poll"
        );
        assert_eq!(names(&w.poll()), ["f.yaml"]);
        // Forgotten: reported again.
        w.forget(Path::new("f.yaml"));
        w.poll();
        assert_eq!(names(&w.poll()), ["f.yaml"]);
    }

    #[test]
    fn subfolders_only_when_recursive_and_a_missing_folder_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "sub/a.yaml", "1");
        write(dir.path(), "b.yaml", "1");
        let mut w = FolderWatch::new(dir.path(), false);
        let base: Vec<_> = w.baseline().into_iter().map(|(p, _)| p).collect();
        assert_eq!(base, [PathBuf::from("b.yaml")]);
        let mut gone = FolderWatch::new(dir.path().join("nope"), true);
        assert!(gone.baseline().is_empty());
        assert_eq!(gone.poll(), Changes::default());
    }
}
