//! A function's own output, kept per attempt so `braid logs` can print it under that
//! attempt: `<state>/output/<run>/<step>/<attempt>.jsonl`, one [`OutputLine`] per line.
//!
//! The local Runtime API ([`crate::lambda`]) writes it while a launched function runs
//! an invocation; a function behind an Invoke API endpoint writes its output where
//! that endpoint runs it. An attempt keeps at most [`MAX_OUTPUT_BYTES`]; a note says
//! when the rest was dropped. Like the rest of the state folder, nothing expires.

use async_trait::async_trait;
use braid_engine::model::Timestamp;
use braid_engine::timeline::Stream;
use braid_ports::{Clock, FunctionOutput, Invocation, OutputLine, PortError, PortResult};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most output one attempt keeps.
pub const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;

/// The output folder of a state folder.
#[derive(Clone)]
pub struct FolderOutput {
    root: PathBuf,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for FolderOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderOutput")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl FolderOutput {
    /// Output under `root`, stamped by `clock`. Nothing is made until a line comes.
    pub fn new(root: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> Self {
        FolderOutput {
            root: root.into(),
            clock,
        }
    }

    /// Where the lines of `call` go.
    pub fn file(&self, call: &Invocation) -> OutputFile {
        OutputFile {
            path: self.path(call),
            clock: self.clock.clone(),
            file: None,
            written: 0,
        }
    }

    fn path(&self, call: &Invocation) -> PathBuf {
        self.root
            .join(component(&call.run_id))
            .join(component(&call.step))
            .join(format!("{}.jsonl", call.attempt))
    }
}

/// A path component that cannot leave its folder.
fn component(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    if safe.chars().all(|c| c == '.') {
        format!("_{safe}")
    } else {
        safe
    }
}

#[async_trait]
impl FunctionOutput for FolderOutput {
    async fn lines(&self, call: &Invocation, _started: Timestamp) -> PortResult<Vec<OutputLine>> {
        let path = self.path(call);
        tokio::task::spawn_blocking(move || read_lines(&path))
            .await
            .map_err(|e| PortError::backend_msg(format!("reading function output: {e}")))?
    }
}

fn read_lines(path: &Path) -> PortResult<Vec<OutputLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(PortError::backend_msg(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    // A line cut short by a crash mid-write is skipped, not an error.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// One attempt's output file, made on its first line.
pub struct OutputFile {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    file: Option<File>,
    written: u64,
}

impl OutputFile {
    /// Appends `text`, unless the attempt already kept [`MAX_OUTPUT_BYTES`]. Output
    /// that cannot be kept is logged, never an error of the attempt.
    pub fn write(&mut self, stream: Stream, text: &str) {
        if self.written >= MAX_OUTPUT_BYTES {
            return;
        }
        let mut line = OutputLine {
            at: self.clock.now(),
            stream,
            text: text.to_string(),
        };
        if self.written + text.len() as u64 >= MAX_OUTPUT_BYTES {
            line.text = format!(
                "[braid] this attempt wrote more than {} KiB; the rest of its output is not kept",
                MAX_OUTPUT_BYTES / 1024
            );
        }
        let Ok(mut json) = serde_json::to_vec(&line) else {
            return;
        };
        json.push(b'\n');
        match self.append(&json) {
            Ok(()) => self.written += text.len().max(1) as u64,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot keep a function's output");
                // One warning per attempt.
                self.written = MAX_OUTPUT_BYTES;
            }
        }
        if line.text != text {
            self.written = MAX_OUTPUT_BYTES;
        }
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        match &mut self.file {
            Some(f) => f.write_all(bytes),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_ports::SystemClock;

    fn call(step: &str, attempt: u32) -> Invocation {
        Invocation {
            run_id: "01RUN".into(),
            step: step.into(),
            attempt,
        }
    }

    #[tokio::test]
    async fn lines_are_read_back_per_attempt_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let out = FolderOutput::new(dir.path(), Arc::new(SystemClock));
        let mut first = out.file(&call("fetch[2]", 1));
        first.write(Stream::Stdout, "hello");
        first.write(Stream::Stderr, "warn: slow");
        out.file(&call("fetch[2]", 2))
            .write(Stream::Stdout, "again");
        let lines = out
            .lines(&call("fetch[2]", 1), chrono::Utc::now())
            .await
            .unwrap();
        let texts: Vec<_> = lines.iter().map(|l| (l.stream, l.text.as_str())).collect();
        assert_eq!(
            texts,
            [(Stream::Stdout, "hello"), (Stream::Stderr, "warn: slow")]
        );
        assert_eq!(
            out.lines(&call("fetch[2]", 2), chrono::Utc::now())
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            out.lines(&call("other", 1), chrono::Utc::now())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn an_attempt_keeps_at_most_a_mebibyte_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let out = FolderOutput::new(dir.path(), Arc::new(SystemClock));
        let mut file = out.file(&call("noisy", 1));
        let line = "x".repeat(100 * 1024);
        for _ in 0..20 {
            file.write(Stream::Stdout, &line);
        }
        let lines = out
            .lines(&call("noisy", 1), chrono::Utc::now())
            .await
            .unwrap();
        assert_eq!(lines.len(), 11, "ten whole lines and the note");
        assert!(lines[10].text.contains("is not kept"), "{:?}", lines[10]);
    }

    #[test]
    fn a_step_name_cannot_leave_the_output_folder() {
        assert_eq!(component("../etc"), ".._etc");
        assert_eq!(component(".."), "_..");
        assert_eq!(component("a/b"), "a_b");
    }
}
