//! Taking over a state folder: what a process that becomes its [`Owner`] does with the
//! runs an earlier process left unfinished (it crashed, was killed, or stopped on
//! Ctrl-C with work in flight).
//!
//! Holding the lock proves that no other process drives the state, so nothing it finds
//! in flight is in flight any more. Without that proof the sweeper must wait until a
//! message or a release looks lost (`stale_after`, a minute) and an attempt's lease
//! runs out (its timeout, 15 minutes by default). With it, at once:
//!
//! 1. every message the earlier process had received and not acknowledged becomes
//!    visible ([`SqliteQueue::release_received`]);
//! 2. every attempt recorded `running` with its lease not over is handed a `resume`
//!    message: the lease is live only because its owner was, and a message received
//!    again takes over a live attempt only when it says so (see the step lifecycle,
//!    `braid_engine::lifecycle`) — a released copy of its own message finds it
//!    taken over and changes nothing;
//! 3. on its first pass, the runtime sweeps every active run once as if nothing were
//!    in flight (see [`crate::runtime::LocalRuntime`]): a dependent released in memory
//!    only, a lost wake-up, are repaired then rather than a minute later (each re-send
//!    counted on its step, like any other).
//!
//! Each of these only sends messages that guarded writes judge; a message that turns
//! out not to be needed changes nothing.

use crate::owner::{Owner, OwnerError};
use crate::queue::SqliteQueue;
use crate::runtime::LocalRuntime;
use braid_engine::model::{DispatchMsg, RunId, StepStatus};
use braid_handlers::{HandlerError, HandlerResult, Handlers};
use braid_ports::{Outgoing, PortError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a takeover found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Takeover {
    /// Messages the earlier process had received and not finished, delivered again now.
    pub messages: usize,
    /// Attempts it had claimed with no message left, resumed.
    pub resumed: usize,
    /// Runs not final when the state was taken over.
    pub active_runs: usize,
    /// The process that owned the state before and stopped without letting go.
    pub previous: Option<String>,
}

/// Why the state could not be taken over.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    #[error(transparent)]
    Owner(#[from] OwnerError),
    #[error("cannot take over the local state in `{}`: {source}", dir.display())]
    State { dir: PathBuf, source: HandlerError },
}

/// Makes this process the owner of the state folder `dir` that `rt` runs on (`command`
/// names it to a process refused) and takes over what an earlier one left (see the
/// [module docs](self)). `rt` keeps the ownership for as long as it lives.
///
/// Call it before driving: the runtime must not have received anything yet, or its
/// own messages would be counted as abandoned.
pub async fn take_over(
    rt: &LocalRuntime,
    dir: &Path,
    command: &str,
) -> Result<Takeover, TakeoverError> {
    let owner = Owner::acquire(dir, command)?;
    let state = |source| TakeoverError::State {
        dir: dir.to_path_buf(),
        source,
    };
    let handlers = rt.handlers();
    let clock = handlers.ports().clock.clone();
    let mut messages = 0;
    for (file, queue) in crate::backend::QUEUES {
        let q = SqliteQueue::open(&dir.join(file), queue, clock.clone())
            .map_err(|e| state(e.into()))?;
        let bodies = q.release_received().map_err(|e| state(e.into()))?;
        messages += bodies.len();
    }
    let (resumed, runs) = resume_orphans(handlers).await.map_err(state)?;
    let report = Takeover {
        messages,
        resumed,
        active_runs: runs.len(),
        previous: owner.previous().map(str::to_string),
    };
    rt.adopt(owner, runs);
    Ok(report)
}

/// Sends a `resume` message for every attempt recorded running, its lease not over:
/// the earlier process held it. Returns how many, and the runs active.
async fn resume_orphans(handlers: &Handlers) -> HandlerResult<(usize, Vec<RunId>)> {
    let ports = handlers.ports();
    let now = ports.clock.now();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut active = Vec::new();
    let mut after: Option<RunId> = None;
    let page = handlers.settings.sweep_limit.max(1);
    loop {
        let runs = ports.store.active_runs(after.as_ref(), page).await?;
        for run in &runs {
            if !seen.insert(run.id.clone()) {
                continue;
            }
            active.push(run.id.clone());
            for rec in ports.store.list_steps(&run.id).await? {
                let orphan = rec.status == StepStatus::Running
                    && rec.fan_out.is_none()
                    && rec.lease_until.is_some_and(|l| l > now);
                if orphan {
                    let msg = DispatchMsg {
                        attempt: rec.attempt,
                        resume: true,
                        ..DispatchMsg::first(run.id.clone(), rec.key.clone())
                    };
                    out.push(Outgoing {
                        body: serde_json::to_string(&msg).map_err(PortError::backend)?,
                        delay: Duration::ZERO,
                    });
                }
            }
        }
        if runs.len() < page {
            break;
        }
        after = runs.last().map(|r| r.id.clone());
    }
    let resumed = out.len();
    ports.ready.send(out).await?;
    Ok((resumed, active))
}

/// Sweeps the runs `ids` that were active when the state was taken over, once, as if
/// nothing were in flight — step 3 of the [module docs](self) — with `handlers` whose
/// `stale_after` is zero. Runs this process started since are not its business.
pub(crate) async fn sweep_taken_over(handlers: &Handlers, ids: &[RunId]) -> HandlerResult<usize> {
    let store = &handlers.ports().store;
    let mut repairs = 0;
    for id in ids {
        let run = store.get_run(id).await?;
        if run.status.is_final() {
            continue;
        }
        match handlers.sweep_run(&run).await {
            Ok(n) => repairs += n,
            // Left to the regular tick, which also fails a run that cannot go on.
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "sweeping a run taken over failed; the tick tries again");
            }
        }
    }
    Ok(repairs)
}
