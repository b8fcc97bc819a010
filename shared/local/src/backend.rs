//! The embedded backend assembled: every port wired to its local adapter under one
//! state folder, ready for the handlers and the local runtime.
//!
//! ```text
//! .braid/
//!   state.db      runs, steps and definitions (SQLite, WAL)
//!   ready.db      the "ready" work queue
//!   results.db    the "result" work queue
//!   payloads/     values over the inline limit
//! ```
//!
//! Each SQLite file has one writer at a time; a second connection that finds the file
//! locked backs off for milliseconds. One file per writer keeps the hot path free of
//! that wait (measured: about twice the steps per second of a shared file).
//!
//! ```text
//! ```

use super::lambda::{FunctionMap, LambdaConfigError, LambdaRunner};
use super::payloads::FolderPayloads;
use super::queue::SqliteQueue;
use super::runtime::{LocalRuntime, RuntimeSettings};
use super::store::SqliteStore;
use braid_handlers::{Handlers, Ports, Settings, TaskRunners};
use braid_ports::env_secrets::{EnvSecrets, env_secrets};
use braid_ports::{Clock, NullSink, PortError, SystemClock, UlidIds};
use braid_runners::http::HttpRunner;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the embedded backend keeps its state and how it runs.
#[derive(Clone)]
pub struct LocalOptions {
    pub state_dir: PathBuf,
    /// The function map for `lambda` steps (see [`super::lambda::FunctionMap`]).
    pub functions: Option<PathBuf>,
    pub settings: Settings,
    pub runtime: RuntimeSettings,
    pub clock: Arc<dyn Clock>,
}

impl LocalOptions {
    /// Defaults with state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        LocalOptions {
            state_dir: state_dir.into(),
            functions: None,
            settings: Settings::default(),
            runtime: RuntimeSettings::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Why the embedded backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot open the state in {dir}: {source}")]
    State { dir: PathBuf, source: PortError },
    #[error(transparent)]
    Functions(#[from] LambdaConfigError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The webhook secrets file inside the state folder (see [`EnvSecrets`]).
pub const SECRETS_FILE: &str = "secrets.toml";

/// The name of the database file inside the state folder.
pub const DB_FILE: &str = "state.db";

/// Builds the ports of the embedded backend.
pub fn local_ports(opts: &LocalOptions) -> Result<Ports, LocalError> {
    let dir = &opts.state_dir;
    let state = |source| LocalError::State {
        dir: dir.clone(),
        source,
    };
    let db = dir.join(DB_FILE);
    let map = match &opts.functions {
        Some(path) => FunctionMap::load(path)?,
        None => FunctionMap::default(),
    };
    Ok(Ports {
        store: Arc::new(SqliteStore::open(&db).map_err(state)?),
        ready: Arc::new(
            SqliteQueue::open(&dir.join("ready.db"), "ready", opts.clock.clone()).map_err(state)?,
        ),
        results: Arc::new(
            SqliteQueue::open(&dir.join("results.db"), "results", opts.clock.clone())
                .map_err(state)?,
        ),
        payloads: Arc::new(FolderPayloads::open(&dir.join("payloads")).map_err(state)?),
        events: Arc::new(NullSink),
        tasks: Some(TaskRunners {
            http: Arc::new(HttpRunner::new().map_err(|e| LocalError::Http(e.to_string()))?),
            lambda: Arc::new(LambdaRunner::from_env(map)?),
        }),
        secrets: Arc::new(EnvSecrets::with_file(dir.join(SECRETS_FILE))),
        clock: opts.clock.clone(),
        ids: Arc::new(UlidIds),
    })
}

/// The handlers and the runtime over `ports`.
pub fn local_runtime(ports: Ports, opts: &LocalOptions) -> LocalRuntime {
    let handlers = Handlers::new(ports, opts.settings.clone(), env_secrets());
    LocalRuntime::new(Arc::new(handlers), opts.runtime.clone())
}

/// Opens the embedded backend in `opts.state_dir`.
pub fn open(opts: &LocalOptions) -> Result<LocalRuntime, LocalError> {
    Ok(local_runtime(local_ports(opts)?, opts))
}
