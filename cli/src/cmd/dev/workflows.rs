//! The workflows folder: every `*.yaml`, `*.yml` and `*.json` file in it is validated
//! and registered — made its workflow's current definition, what triggers and
//! `POST /runs` start — at start and again whenever it changes. A version is the
//! content's hash: runs already going keep the version they started with.
//!
//! A file is read and validated on a blocking thread: the HTTP API and the tick share
//! the runtime's one thread, and a file of megabytes takes a while to check.

use super::watch::{FolderWatch, Stamp};
use braid_engine::model::Definition;
use braid_handlers::{Handlers, definition};
use braid_lang::{Invalid, Trigger, TriggerSource, Workflow};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files from this size on are said to be loading when their check starts: it takes
/// long enough that a user would wonder why the workflow is not there yet.
const NOTED_SIZE: u64 = 1_000_000;

/// What a file registered last.
#[derive(Debug, Clone)]
struct Loaded {
    workflow: String,
    version: String,
}

/// Where the triggers are served, to tell the user.
#[derive(Debug, Clone)]
pub struct Served {
    /// `http://ADDR` of the API.
    pub base_url: String,
    /// The buckets folder.
    pub buckets: PathBuf,
    /// The webhook secrets file.
    pub secrets: PathBuf,
}

/// The watched workflows folder and what each of its files registered.
#[derive(Debug)]
pub struct WorkflowFolder {
    watch: FolderWatch,
    /// The function map, when it is one of the folder's files: not a workflow.
    function_map: Option<PathBuf>,
    files: HashMap<PathBuf, Loaded>,
    served: Served,
}

impl WorkflowFolder {
    pub fn new(dir: &Path, function_map: Option<&Path>, served: Served) -> Self {
        WorkflowFolder {
            watch: FolderWatch::new(dir, false),
            function_map: function_map.and_then(|p| p.canonicalize().ok()),
            files: HashMap::new(),
            served,
        }
    }

    /// Loads every workflow file there now; returns how many were registered.
    pub async fn load_all(&mut self, handlers: &Handlers) -> usize {
        let dir = self.watch.root().display().to_string();
        if !self.watch.root().is_dir() {
            eprintln!("no workflows folder `{dir}` yet: workflow files put there will be loaded");
        }
        let files = self.watch.baseline();
        let mut loaded = 0;
        for (rel, stamp) in files {
            if self.is_workflow(&rel) && self.load(&rel, stamp, handlers).await {
                loaded += 1;
            }
        }
        if loaded == 0 {
            eprintln!("no workflow loaded from `{dir}`");
        }
        loaded
    }

    /// Registers the files created or changed since the last poll, and undeploys the
    /// workflows whose file was removed (unless another file defines them).
    pub async fn poll(&mut self, handlers: &Handlers) {
        let changes = self.watch.poll();
        for rel in changes.removed {
            let Some(gone) = self.files.remove(&rel) else {
                continue;
            };
            let name = self.watch.root().join(&rel).display().to_string();
            if self.files.values().any(|l| l.workflow == gone.workflow) {
                eprintln!(
                    "{name} was removed; workflow `{}` stays, defined by another file",
                    gone.workflow
                );
                continue;
            }
            match handlers
                .undeploy(&gone.workflow, &crate::cmd::os_user())
                .await
            {
                Ok(()) => eprintln!(
                    "{name} was removed: undeployed {} (its triggers are off; runs going finish)",
                    gone.workflow
                ),
                Err(e) => eprintln!(
                    "{name} was removed, but undeploying {} failed: {e}",
                    gone.workflow
                ),
            }
        }
        for (rel, stamp) in changes.changed {
            if self.is_workflow(&rel) {
                self.load(&rel, stamp, handlers).await;
            }
        }
    }

    fn is_workflow(&self, rel: &Path) -> bool {
        let by_name = rel
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["yaml", "yml", "json"].contains(&e.to_ascii_lowercase().as_str()));
        by_name
            && self.function_map.as_ref().is_none_or(|map| {
                self.watch.root().join(rel).canonicalize().ok().as_ref() != Some(map)
            })
    }

    /// Validates and registers one file; true when it was registered. Problems are
    /// printed; an invalid file leaves what it registered before as it was.
    async fn load(&mut self, rel: &Path, stamp: Stamp, handlers: &Handlers) -> bool {
        let path = self.watch.root().join(rel);
        let name = path.display().to_string();
        let before = self.files.get(rel).cloned();
        if stamp.len >= NOTED_SIZE {
            eprintln!("loading {name} ({:.1} MB)…", stamp.len as f64 / 1_000_000.0);
        }
        let (def, wf) = match read_and_check(path, name.clone()).await {
            Ok(Ok(d)) => d,
            Err(e) => {
                eprintln!("cannot read `{name}`: {e}");
                return false;
            }
            Ok(Err(invalid)) => {
                eprintln!("{invalid}");
                match before {
                    Some(b) => eprintln!(
                        "{name} is invalid: workflow `{}` stays at version {}",
                        b.workflow, b.version
                    ),
                    None => eprintln!("{name} is invalid: skipped"),
                }
                return false;
            }
        };
        if before
            .as_ref()
            .is_some_and(|b| b.workflow == def.workflow && b.version == def.version)
        {
            return true;
        }
        if let Err(e) = handlers
            .deploy_parsed(&def, wf.clone(), &crate::cmd::os_user())
            .await
        {
            eprintln!("cannot register `{name}`: {e}; trying again at its next change");
            self.watch.forget(rel);
            return false;
        }
        let other = self
            .files
            .iter()
            .find(|(f, l)| f.as_path() != rel && l.workflow == def.workflow)
            .map(|(f, _)| self.watch.root().join(f).display().to_string());
        if let Some(other) = other {
            eprintln!(
                "warning: {name} and {other} both define workflow `{}`; the one loaded last ({name}) is current",
                def.workflow
            );
        }
        if before.is_some() {
            eprintln!(
                "reloaded {} from {name} (version {}): new runs use it, runs already going keep theirs",
                def.workflow, def.version
            );
        } else {
            eprintln!(
                "loaded {} from {name} (version {})",
                def.workflow, def.version
            );
        }
        for line in self.triggers(handlers, &wf).await {
            eprintln!("  {line}");
        }
        self.files.insert(
            rel.to_path_buf(),
            Loaded {
                workflow: def.workflow,
                version: def.version,
            },
        );
        true
    }

    /// One line per trigger: what fires it here.
    async fn triggers(&self, handlers: &Handlers, wf: &Workflow) -> Vec<String> {
        if wf.triggers.is_empty() {
            return vec!["no triggers: start it with POST /runs".into()];
        }
        let mut out = Vec::new();
        for t in &wf.triggers {
            let mut line = describe(t, &self.served);
            if let TriggerSource::Webhook { secret, .. } = &t.source
                && matches!(handlers.secret_is_set(secret).await, Ok(false))
            {
                line.push_str(&format!(
                    " — secret `{secret}` is not set: set {} or add `{secret} = \"...\"` to {}",
                    braid_ports::env_secrets::secret_env_name(secret),
                    self.served.secrets.display()
                ));
            }
            out.push(line);
        }
        out
    }
}

/// Reads and validates the file at `path` (`name` in messages) on a blocking thread,
/// so the runtime's thread goes on serving meanwhile.
async fn read_and_check(
    path: PathBuf,
    name: String,
) -> std::io::Result<Result<(Definition, Arc<Workflow>), Invalid>> {
    tokio::task::spawn_blocking(move || {
        let source = std::fs::read_to_string(&path)?;
        Ok(definition(&name, &source).map(|(def, wf)| (def, Arc::new(wf))))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// What fires a trigger under `braid dev`.
fn describe(trigger: &Trigger, served: &Served) -> String {
    match &trigger.source {
        TriggerSource::Schedule { schedule, .. } => format!(
            "schedule \"{}\" ({})",
            schedule.expression,
            schedule.timezone.name()
        ),
        TriggerSource::S3 {
            bucket,
            prefix,
            suffix,
        } => {
            let mut line = format!(
                "s3: files created under {}/{bucket}/{}",
                served.buckets.display(),
                prefix.as_deref().unwrap_or("")
            );
            if let Some(s) = suffix {
                line.push_str(&format!(" ending in `{s}`"));
            }
            line
        }
        TriggerSource::Webhook {
            path, signature, ..
        } => format!(
            "webhook: POST {}/hooks/{path} ({} signature)",
            served.base_url,
            format!("{signature:?}").to_ascii_lowercase()
        ),
        TriggerSource::Event { pattern } => {
            format!("event {pattern}: not fired by braid dev (no local event bus)")
        }
        TriggerSource::Sqs { queue } => {
            format!("sqs {queue}: not fired by braid dev (no local queue)")
        }
    }
}
