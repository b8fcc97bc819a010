//! What drives `braid dev`'s runs: the embedded backend's runtime loop, or, with
//! `--backend aws`, the five functions' handlers over the stack on an emulator
//! (feature `aws`). The server, the folder watcher and the buckets work on the
//! handlers alone, the same for both.

use super::log::Logged;
use crate::cmd::backend::Backend;
use crate::cmd::local::take_over;
use anyhow::Context;
use braid_handlers::{HandlerError, Handlers};
use braid_local::backend::{self, LocalOptions};
use braid_local::link_key;
use braid_local::runtime::LocalRuntime;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Longest pause of the runtime loop when there is nothing to do: a request's first
/// step starts within it.
const IDLE_POLL: Duration = Duration::from_millis(50);

pub enum Engine {
    Local(LocalRuntime),
    #[cfg(feature = "aws")]
    Aws(Box<crate::cmd::emulated::Emulated>),
}

impl Engine {
    /// The backend `backend` names; the local one over `state`.
    /// `base_url` is where the API is served, for approval links.
    pub async fn open(
        backend: Backend,
        state: &Path,
        functions: Option<PathBuf>,
        base_url: &str,
    ) -> anyhow::Result<Engine> {
        match backend {
            Backend::Embedded => {
                let rt = open_local(state, functions, base_url).await?;
                take_over(&rt, state, "braid dev").await?;
                Ok(Engine::Local(rt))
            }
            #[cfg(feature = "aws")]
            Backend::Aws => {
                let emulated = crate::cmd::emulated::Emulated::open(functions.as_deref(), |sink| {
                    Arc::new(Logged(sink))
                })
                .await?;
                Ok(Engine::Aws(Box::new(emulated)))
            }
            #[cfg(not(feature = "aws"))]
            Backend::Aws => Err(crate::cmd::backend::not_built()),
        }
    }

    pub fn handlers(&self) -> Arc<Handlers> {
        match self {
            Engine::Local(rt) => rt.handlers().clone(),
            #[cfg(feature = "aws")]
            Engine::Aws(e) => e.handlers.clone(),
        }
    }

    /// Where runs live, for the banner.
    pub fn place(&self, state: &Path) -> String {
        match self {
            Engine::Local(_) => format!("state in `{}`", state.display()),
            #[cfg(feature = "aws")]
            Engine::Aws(e) => format!("stack `{}` on the AWS emulator", e.stack.name),
        }
    }

    /// Drives runs until `stop` resolves, or until the local state cannot be
    /// written.
    pub async fn serve(&self, stop: impl Future<Output = ()>) -> Result<(), HandlerError> {
        match self {
            Engine::Local(rt) => rt.serve(stop).await,
            #[cfg(feature = "aws")]
            Engine::Aws(e) => {
                e.driver().serve(stop).await;
                Ok(())
            }
        }
    }
}

/// The embedded backend, paced for a long-lived process, its lifecycle events
/// printed, its waiting approvals with links to `base_url` (the key made if need be).
async fn open_local(
    state: &Path,
    functions: Option<PathBuf>,
    base_url: &str,
) -> anyhow::Result<LocalRuntime> {
    let mut opts = LocalOptions::new(state);
    opts.functions = functions;
    opts.runtime.idle_poll = IDLE_POLL;
    opts.settings.api_base_url = Some(base_url.to_string());
    opts.traces = crate::cmd::local::traces_from_env()?;
    let mut ports = backend::local_ports(&opts)
        .with_context(|| format!("cannot open the local state in `{}`", state.display()))?;
    link_key::ensure(&*ports.secrets, state)
        .await
        .context("cannot make the approval links' key")?;
    // Printed, and still handed on: the notifications they call for are sent.
    ports.events = Arc::new(Logged(ports.events.clone()));
    Ok(backend::local_runtime(ports, &opts))
}
