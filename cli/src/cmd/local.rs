//! Options shared by the commands that work on the local state: where it lives and
//! where `lambda` steps run.

use anyhow::Context;
use braid_local::backend::{self, LocalOptions};
use braid_local::runtime::LocalRuntime;
use braid_local::takeover;
use braid_ports::{NoTraces, TraceSink};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the local state lives unless `--state` says otherwise.
pub const DEFAULT_STATE: &str = ".braid";

/// `--state` and `--functions`.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Folder of the local state (database and payloads).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_STATE, global = true)]
    pub state: PathBuf,
}

/// The function map for `lambda` steps: `--functions`, else `BRAID_FUNCTIONS`, else a
/// `functions.yaml` beside the workflow file, if there is one.
pub fn function_map(flag: Option<&Path>, workflow: Option<&Path>) -> Option<PathBuf> {
    function_map_in(flag, workflow.and_then(Path::parent))
}

/// The function map: `--functions`, else `BRAID_FUNCTIONS`, else a `functions.yaml` in
/// `folder`, if there is one.
pub fn function_map_in(flag: Option<&Path>, folder: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("BRAID_FUNCTIONS").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let beside = folder?.join("functions.yaml");
    beside.is_file().then_some(beside)
}

/// Opens the embedded backend.
pub fn open(state: &Path, functions: Option<PathBuf>) -> anyhow::Result<LocalRuntime> {
    open_with_api(state, functions, None)
}

/// Opens the embedded backend for a process that serves the HTTP API at `api_url`
/// (callback URLs and approval links point there).
pub fn open_with_api(
    state: &Path,
    functions: Option<PathBuf>,
    api_url: Option<String>,
) -> anyhow::Result<LocalRuntime> {
    let mut opts = LocalOptions::new(state);
    opts.functions = functions;
    opts.settings.api_base_url = api_url;
    opts.traces = traces_from_env()?;
    backend::open(&opts)
        .with_context(|| format!("cannot open the local state in `{}`", state.display()))
}

/// The OTLP exporter the environment configures (`OTEL_EXPORTER_OTLP_ENDPOINT`), or
/// none.
pub fn traces_from_env() -> anyhow::Result<Arc<dyn TraceSink>> {
    Ok(braid_otel::from_env()
        .map_err(anyhow::Error::msg)?
        .unwrap_or_else(|| Arc::new(NoTraces)))
}

/// Makes this process the one that drives the local state in `state` and takes over the
/// runs an earlier process left unfinished (see `braid_local::takeover`); refused while
/// another live process drives it. `command` names this one to a process refused.
///
/// The driving process also makes the state's signing key if none is set, which
/// callback tokens (and approval links) need.
pub async fn take_over(rt: &LocalRuntime, state: &Path, command: &str) -> anyhow::Result<()> {
    let found = takeover::take_over(rt, state, command).await?;
    braid_local::link_key::ensure(&*rt.handlers().ports().secrets, state)
        .await
        .context("cannot make the state's signing key")?;
    let in_flight = found.messages + found.resumed;
    if in_flight > 0 {
        let by = found
            .previous
            .map(|p| format!(" by braid {p}"))
            .unwrap_or_default();
        eprintln!(
            "taking over {} unfinished run(s) in `{}`: {in_flight} message(s) left in flight{by}",
            found.active_runs,
            state.display()
        );
    }
    Ok(())
}

/// Opens the embedded backend, which must exist already: the commands that work on
/// what earlier runs left (listing, showing, backfilling) refuse to create an empty
/// state.
pub fn open_existing(state: &Path, functions: Option<PathBuf>) -> anyhow::Result<LocalRuntime> {
    must_exist(state)?;
    open(state, functions)
}

/// Opens the existing embedded backend to read it only: no file is created, no lock
/// taken, so listing and showing work on a folder the user may not write, and beside
/// the process that drives it.
pub fn open_read_only(state: &Path) -> anyhow::Result<LocalRuntime> {
    must_exist(state)?;
    let mut opts = LocalOptions::new(state);
    opts.read_only = true;
    backend::open(&opts)
        .with_context(|| format!("cannot read the local state in `{}`", state.display()))
}

fn must_exist(state: &Path) -> anyhow::Result<()> {
    if !state.join(backend::DB_FILE).exists() {
        anyhow::bail!(
            "no local state in `{}`: run a workflow first (braid run FILE)",
            state.display()
        );
    }
    Ok(())
}

/// The tokio runtime for the async commands: one thread. The local runtime's work is
/// short SQLite transactions and waiting on tasks; handing messages between worker
/// threads cost more than it gained (see `braid bench`).
pub fn tokio() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
