//! `braid dev`: one local process that behaves like the deployed stack — the HTTP API
//! (runs, webhooks), the tick (schedules, timers, the sweeper), local buckets for `s3`
//! triggers — over the workflow files of a folder, reloaded when they change.
//!
//! - [`workflows`]: the workflows folder, registered and reloaded;
//! - [`buckets`]: local buckets firing `s3` triggers;
//! - [`watch`]: what changed in a folder since the last look (both folders poll it);
//! - [`server`]: the HTTP API;
//! - [`log`]: a line per run started and finished;
//! - [`engine`]: what drives the runs: the embedded backend, or the AWS adapters on an
//!   emulator (`--backend aws`).
//!
//! Everything runs on one thread: the runtime loop (the one `braid run` drives), the
//! server and the folder watcher; only reading and checking a workflow file runs on a
//! blocking thread, so a big one does not hold up the others. Ctrl-C (or SIGTERM)
//! stops taking work, lets the messages and requests in flight finish and exits; a
//! second one exits at once.
//!
//! It owns the state folder while it runs (a second driver is refused; `braid runs`,
//! `show` and `deploy` work beside it) and takes over at start the runs an earlier
//! process left unfinished (see `braid_local::takeover`). A state that cannot be
//! written stops it with the error (exit 1).

mod buckets;
mod engine;
mod log;
pub(super) mod server;
mod watch;
mod workflows;

use super::Exit;
use super::backend::Backend;
use super::interrupt::Interrupts;
use super::local::{StateArgs, function_map_in, tokio};
use anyhow::Context;
use braid_handlers::Handlers;
use braid_local::backend;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch as flag;

/// How often the folders are looked at. A change is acted on once the file held still
/// for one look, so within two.
const POLL_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder of workflow files (`*.yaml`, `*.yml`, `*.json`), reloaded on change.
    #[arg(long, value_name = "DIR", default_value = "workflows")]
    pub workflows: PathBuf,
    /// The local buckets: each subfolder is a bucket named after it, and a file created
    /// at BUCKET/KEY fires the matching `s3` triggers. Default: `buckets` in the state
    /// folder (`.braid/buckets`), like its `secrets.toml`.
    #[arg(long, value_name = "DIR")]
    pub buckets: Option<PathBuf>,
    /// Where the HTTP API listens. Routes other than /hooks/ and /callbacks/ answer
    /// only on the loopback interface.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Shorthand for `--listen 127.0.0.1:PORT`.
    #[arg(long, value_name = "PORT", conflicts_with = "listen")]
    pub port: Option<u16>,
    /// Where `lambda` steps run (default: `BRAID_FUNCTIONS`, else `functions.yaml` in
    /// the workflows folder, which is then not loaded as a workflow).
    #[arg(long, value_name = "FILE")]
    pub functions: Option<PathBuf>,
    /// What runs the workflows: the embedded backend, or the AWS adapters on the
    /// emulator at AWS_ENDPOINT_URL (LocalStack, moto).
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    pub backend: Backend,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let functions = function_map_in(args.functions.as_deref(), Some(&args.workflows));
    let listen = match args.port {
        Some(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        None => args.listen,
    };
    tokio()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let interrupts = Interrupts::catch()?;
        let base_url = format!("http://{addr}");
        let engine = engine::Engine::open(
            args.backend,
            &args.state.state,
            functions.clone(),
            &base_url,
        )
        .await?;
        let handlers = engine.handlers();
        eprintln!(
            "braid dev: API on {base_url} ({})",
            engine.place(&args.state.state)
        );

        let buckets_dir = args
            .buckets
            .clone()
            .unwrap_or_else(|| args.state.state.join("buckets"));
        let served = workflows::Served {
            base_url: base_url.clone(),
            buckets: buckets_dir.clone(),
            secrets: args.state.state.join(backend::SECRETS_FILE),
        };
        let mut folder =
            workflows::WorkflowFolder::new(&args.workflows, functions.as_deref(), served);
        folder.load_all(&handlers).await;
        std::fs::create_dir_all(&buckets_dir).with_context(|| {
            format!(
                "cannot create the buckets folder `{}`",
                buckets_dir.display()
            )
        })?;
        let mut buckets = buckets::Buckets::new(&buckets_dir);
        let buckets = tokio::task::spawn_blocking(move || {
            buckets.baseline();
            buckets
        })
        .await?;
        eprintln!(
            "watching `{}` for workflow files and `{}` for uploads; Ctrl-C stops",
            args.workflows.display(),
            buckets_dir.display()
        );

        let (stop_tx, stop_rx) = flag::channel(false);
        let server = tokio::spawn(server::serve(
            listener,
            handlers.clone(),
            stopped(stop_rx.clone()),
        ));
        let watcher = tokio::spawn(watch_folders(
            folder,
            buckets,
            handlers.clone(),
            stop_rx.clone(),
        ));
        tokio::spawn(signals(interrupts, stop_tx.clone()));

        let served = engine.serve(stopped(stop_rx)).await;
        // However the runtime stopped, the watcher and the server stop with it.
        let _ = stop_tx.send(true);
        let _ = watcher.await;
        match tokio::time::timeout(Duration::from_secs(10), server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("the HTTP server failed: {e}"),
            Ok(Err(e)) => eprintln!("the HTTP server failed: {e}"),
            Err(_) => eprintln!("the HTTP server did not close in time"),
        }
        if let Err(e) = served {
            eprintln!("error: {e}");
            eprintln!(
                "braid dev stopped; the runs it drove go on at the next start once that is fixed"
            );
            return Ok(Exit::RunFailed);
        }
        say_unfinished(&handlers, &args.state.state).await;
        eprintln!("braid dev stopped");
        Ok(Exit::Success)
    })
}

/// Says which runs stopping left unfinished and how to finish them: they are not
/// lost (their state is recorded), but nothing drives them until a braid process does.
async fn say_unfinished(handlers: &braid_handlers::Handlers, state: &std::path::Path) {
    let mut open = Vec::new();
    use braid_engine::model::RunStatus;
    for status in [RunStatus::Running, RunStatus::Queued] {
        let filter = braid_ports::RunFilter {
            status: Some(status),
            limit: 1000,
            ..Default::default()
        };
        if let Ok(runs) = handlers.list_runs(&filter).await {
            open.extend(runs.into_iter().map(|r| (r.id, r.workflow)));
        }
    }
    if open.is_empty() {
        return;
    }
    eprintln!(
        "{} run(s) not finished; `braid dev` on `{}` again goes on with them, or `braid continue RUN` finishes one:",
        open.len(),
        state.display()
    );
    for (id, workflow) in open.iter().take(20) {
        eprintln!("  {id} of {workflow}");
    }
    if open.len() > 20 {
        eprintln!(
            "  … and {} more (braid runs --status running)",
            open.len() - 20
        );
    }
}

/// Resolves when `stop` turns true.
async fn stopped(mut stop: flag::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Polls the workflows folder, then the buckets, until stopped.
async fn watch_folders(
    mut folder: workflows::WorkflowFolder,
    mut buckets: buckets::Buckets,
    handlers: Arc<Handlers>,
    mut stop: flag::Receiver<bool>,
) {
    let mut every = tokio::time::interval(POLL_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = every.tick() => {}
        }
        folder.poll(&handlers).await;
        let polled = tokio::task::spawn_blocking(move || {
            let uploads = buckets.poll();
            (buckets, uploads)
        })
        .await;
        let uploads = match polled {
            Ok((b, uploads)) => {
                buckets = b;
                uploads
            }
            Err(e) => {
                eprintln!("watching the buckets failed: {e}");
                return;
            }
        };
        for upload in uploads {
            buckets.fire(upload, &handlers).await;
        }
    }
}

/// The first Ctrl-C or SIGTERM stops; the next one exits at once.
async fn signals(mut interrupts: Interrupts, stop: flag::Sender<bool>) {
    interrupts.next().await;
    eprintln!("stopping: finishing the work in flight (Ctrl-C again to quit at once)");
    let _ = stop.send(true);
    interrupts.next().await;
    eprintln!("quitting: what was in flight goes on at the next start");
    std::process::exit(130);
}
