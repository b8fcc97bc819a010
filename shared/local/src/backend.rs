//! The embedded backend assembled: every port wired to its local adapter under one
//! state folder, ready for the handlers and the local runtime.
//!
//! ```text
//! .braid/
//!   state.db      runs, steps and definitions (SQLite, WAL)
//!   ready.db      the "ready" work queue
//!   results.db    the "result" work queue
//!   notices.db    events that call for notifications, until they are sent
//!   payloads/     values over the inline limit
//!   output/       what launched functions wrote, per attempt (`braid logs`)
//!   secrets.toml  webhook and other secrets (written by the user; optional)
//!   approval-links.key  the approval links' key when `braid dev` made it (0600)
//! ```
//!
//! Each SQLite file has one writer at a time; a second connection that finds the file
//! locked backs off for milliseconds. One file per writer keeps the hot path free of
//! that wait (measured: about twice the steps per second of a shared file).
//!
//! A process that drives runs also holds `owner.lock` there (see [`crate::owner`]).
//! One that only reads ([`LocalOptions::read_only`]) opens `state.db` read-only and
//! nothing else: it creates no file and takes no lock.
//!
//! # Environment
//! - `BRAID_TEST_STATE_MAX_PAGES`: caps `state.db` at this many pages (SQLite's
//!   `max_page_count`), so that a write beyond fails as on a full disk. For tests: it
//!   is how the suite makes a disk full without privileges (root ignores file modes).

use super::events::{EventHub, NoticeQueue, Tee};
use super::fault::Fault;
use super::lambda::{FunctionMap, LambdaConfigError, LambdaRunner};
use super::metrics::PromMetrics;
use super::output::FolderOutput;
use super::payloads::FolderPayloads;
use super::queue::SqliteQueue;
use super::read_only::NoQueue;
use super::runtime::{LocalRuntime, RuntimeSettings};
use super::store::SqliteStore;
use braid_handlers::{Handlers, Ports, Settings, StepEvents, TaskRunners};
use braid_ports::env_secrets::{EnvSecrets, env_secrets};
use braid_ports::{Clock, NullSink, PortError, SystemClock, TraceSink, UlidIds, WorkQueue};
use braid_runners::http::HttpRunner;
use std::path::PathBuf;
use std::sync::Arc;

/// The folder of launched functions' output, in the state folder.
const OUTPUT_DIR: &str = "output";

/// Where the embedded backend keeps its state and how it runs.
#[derive(Clone)]
pub struct LocalOptions {
    pub state_dir: PathBuf,
    /// The function map for `lambda` steps (see [`super::lambda::FunctionMap`]).
    pub functions: Option<PathBuf>,
    pub settings: Settings,
    pub runtime: RuntimeSettings,
    pub clock: Arc<dyn Clock>,
    /// Shared by the adapters and the runtime: a failure of the state that retrying
    /// cannot cure, noted by the first to meet it (see [`Fault`]).
    pub fault: Fault,
    /// The most pages `state.db` may grow to (see the module docs' environment).
    pub max_state_pages: Option<u32>,
    /// Only read the state: `state.db` read-only, no queue, no task runner, nothing
    /// created, so that a folder the user may not write can still be read.
    pub read_only: bool,
    /// Where the handlers publish lifecycle events; subscribe to see them.
    pub events: EventHub,
    /// Where runs and attempts are counted (`braid dev`'s `GET /metrics`).
    pub metrics: Arc<PromMetrics>,
    /// Where the spans of runs and attempts go (an OTLP exporter when configured).
    pub traces: Arc<dyn TraceSink>,
}

impl LocalOptions {
    /// Defaults with state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        LocalOptions {
            state_dir: state_dir.into(),
            functions: None,
            // Every step's end is published: in one process it costs nothing, and
            // progress lines are told from it.
            settings: Settings {
                step_events: StepEvents::All,
                ..Settings::default()
            },
            runtime: RuntimeSettings::default(),
            clock: Arc::new(SystemClock),
            fault: Fault::new(),
            max_state_pages: std::env::var(MAX_PAGES_ENV)
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            read_only: false,
            events: EventHub::default(),
            metrics: Arc::default(),
            traces: Arc::new(braid_ports::NoTraces),
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

/// See the module docs' environment.
const MAX_PAGES_ENV: &str = "BRAID_TEST_STATE_MAX_PAGES";

/// The webhook secrets file inside the state folder (see [`EnvSecrets`]).
pub const SECRETS_FILE: &str = "secrets.toml";

/// The name of the database file inside the state folder.
pub const DB_FILE: &str = "state.db";

/// The queues' files inside the state folder, with their names: "ready", "result", and
/// the events that call for notifications.
pub const QUEUES: [(&str, &str); 3] = [
    ("ready.db", "ready"),
    ("results.db", "results"),
    ("notices.db", "notices"),
];

/// Builds the ports of the embedded backend.
pub fn local_ports(opts: &LocalOptions) -> Result<Ports, LocalError> {
    let dir = &opts.state_dir;
    let state = |source| LocalError::State {
        dir: dir.clone(),
        source,
    };
    let db = dir.join(DB_FILE);
    let secrets = Arc::new(EnvSecrets::with_file(dir.join(SECRETS_FILE)).with_key_files(dir));
    if opts.read_only {
        return Ok(Ports {
            store: Arc::new(SqliteStore::open_read_only(&db).map_err(state)?),
            ready: Arc::new(NoQueue),
            results: Arc::new(NoQueue),
            payloads: Arc::new(FolderPayloads::reading(&dir.join("payloads"))),
            events: Arc::new(NullSink),
            tasks: None,
            output: Arc::new(FolderOutput::new(dir.join(OUTPUT_DIR), opts.clock.clone())),
            notices: None,
            metrics: Arc::new(braid_ports::NoMetrics),
            traces: Arc::new(braid_ports::NoTraces),
            secrets,
            clock: opts.clock.clone(),
            ids: Arc::new(UlidIds),
        });
    }
    let map = match &opts.functions {
        Some(path) => FunctionMap::load(path)?,
        None => FunctionMap::default(),
    };
    let output = FolderOutput::new(dir.join(OUTPUT_DIR), opts.clock.clone());
    let fault = &opts.fault;
    let queue = |file: &str, name: &str| {
        SqliteQueue::open(&dir.join(file), name, opts.clock.clone())
            .map(|q| q.with_fault(fault.clone()))
            .map_err(state)
    };
    let notices: Arc<dyn WorkQueue> = Arc::new(queue(QUEUES[2].0, QUEUES[2].1)?);
    Ok(Ports {
        store: Arc::new(
            SqliteStore::open_with(&db, fault.clone(), opts.max_state_pages).map_err(state)?,
        ),
        ready: Arc::new(queue(QUEUES[0].0, QUEUES[0].1)?),
        results: Arc::new(queue(QUEUES[1].0, QUEUES[1].1)?),
        payloads: Arc::new(
            FolderPayloads::open(&dir.join("payloads"))
                .map_err(state)?
                .with_fault(fault.clone()),
        ),
        events: Arc::new(Tee {
            hub: opts.events.clone(),
            other: Arc::new(NoticeQueue(notices.clone())),
        }),
        tasks: Some(TaskRunners {
            http: Arc::new(HttpRunner::new().map_err(|e| LocalError::Http(e.to_string()))?),
            lambda: Arc::new(LambdaRunner::from_env(map)?.with_output(output.clone())),
        }),
        output: Arc::new(output),
        notices: Some(notices),
        metrics: opts.metrics.clone(),
        traces: opts.traces.clone(),
        secrets,
        clock: opts.clock.clone(),
        ids: Arc::new(UlidIds),
    })
}

/// The handlers and the runtime over `ports`.
pub fn local_runtime(ports: Ports, opts: &LocalOptions) -> LocalRuntime {
    let handlers = Handlers::new(ports, opts.settings.clone(), env_secrets());
    LocalRuntime::new(
        Arc::new(handlers),
        opts.runtime.clone(),
        opts.fault.clone(),
        opts.events.clone(),
    )
}

/// Opens the embedded backend in `opts.state_dir`.
pub fn open(opts: &LocalOptions) -> Result<LocalRuntime, LocalError> {
    Ok(local_runtime(local_ports(opts)?, opts))
}
