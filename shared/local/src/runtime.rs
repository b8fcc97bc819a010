//! The local runtime: drives the handlers message by message, the way SQS event source
//! mappings and the one-minute schedule drive the Lambda functions — receive a batch,
//! hand each message to its handler, acknowledge the ones handled, leave the others
//! for redelivery — plus a tick every second. There is no other execution path: it
//! drives until one run is final ([`LocalRuntime::run_to_end`], `braid run`) or until
//! told to stop ([`LocalRuntime::serve`], `braid dev`).
//!
//! Both stop with an error, within a pass, once an adapter notes that the state cannot
//! be written ([`Fault`]: a full disk, a read-only file): retrying would only log and
//! re-send forever. What they leave is finished by the next process that takes the
//! state over ([`crate::takeover`]), which also has this runtime sweep every active
//! run once, a moment after it started, as if nothing were in flight.

use crate::events::EventHub;
use crate::fault::Fault;
use crate::owner::Owner;
use crate::takeover;
use braid_engine::model::{LifecycleEvent, RunId, RunRecord};
use braid_handlers::{Delivery, HandlerError, Handlers, NotifierMessage};
use braid_ports::{PortError, Received};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How often the result queue and the run's status are looked at when nothing happens.
const POLL_RARE: Duration = Duration::from_millis(5);

/// How the runtime paces itself.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Tasks (HTTP calls, Lambda invocations) running at once.
    pub concurrency: usize,
    /// Messages taken per receive.
    pub batch: usize,
    /// How often the sweeper runs.
    pub tick_every: Duration,
    /// Longest idle pause between polls.
    pub idle_poll: Duration,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            concurrency: 64,
            batch: 256,
            tick_every: Duration::from_secs(1),
            idle_poll: Duration::from_millis(20),
        }
    }
}

/// Runs the handlers over the work queues in one process.
pub struct LocalRuntime {
    handlers: Arc<Handlers>,
    settings: RuntimeSettings,
    /// Where the adapters note that the state cannot be written.
    fault: Fault,
    /// Ownership of the state folder, once taken ([`takeover::take_over`]).
    owner: Mutex<Option<Owner>>,
    /// When the sweep of a takeover is due, until it ran.
    recovery: Mutex<Vec<RunId>>,
    /// Where its handlers publish lifecycle events.
    events: EventHub,
}

impl LocalRuntime {
    /// The runtime over `handlers`; `fault` is the cell its adapters note incurable
    /// failures in (a fresh one when they note none).
    /// `events`: the hub its handlers publish to.
    pub fn new(
        handlers: Arc<Handlers>,
        settings: RuntimeSettings,
        fault: Fault,
        events: EventHub,
    ) -> Self {
        LocalRuntime {
            handlers,
            settings,
            fault,
            owner: Mutex::new(None),
            recovery: Mutex::new(Vec::new()),
            events,
        }
    }

    /// The lifecycle events its handlers publish from now on.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<LifecycleEvent> {
        self.events.subscribe()
    }

    /// Keeps `owner` for as long as the runtime lives and arms the takeover's sweep of
    /// `runs` (those active when it took over), due at its first pass: a task runs
    /// only once claimed, so nothing the earlier owner left unrecorded still runs.
    pub(crate) fn adopt(&self, owner: Owner, runs: Vec<RunId>) {
        *lock(&self.owner) = Some(owner);
        *lock(&self.recovery) = runs;
    }

    /// The takeover's sweep, on the first pass after it: the runs it found active swept
    /// once with no staleness (see [`crate::takeover`]).
    async fn recover_when_due(&self) -> Result<(), HandlerError> {
        let runs = std::mem::take(&mut *lock(&self.recovery));
        if runs.is_empty() {
            return Ok(());
        }
        let settings = braid_handlers::Settings {
            stale_after: Duration::ZERO,
            ..self.handlers.settings.clone()
        };
        let presuming_lost = Handlers::new(
            self.handlers.ports().clone(),
            settings,
            braid_ports::env_secrets::env_secrets(),
        );
        let repairs = takeover::sweep_taken_over(&presuming_lost, &runs).await?;
        tracing::info!(repairs, "swept the runs taken over");
        Ok(())
    }

    /// The error that stops the runtime: the state cannot be written.
    fn faulted(&self) -> Result<(), HandlerError> {
        match self.fault.get() {
            None => Ok(()),
            Some(f) => Err(HandlerError::Port(PortError::Backend {
                message: f.to_string(),
                source: Some(Box::new(f.clone())),
            })),
        }
    }

    pub fn handlers(&self) -> &Arc<Handlers> {
        &self.handlers
    }

    /// Drives every run until `run_id` is final, and returns its record.
    pub async fn run_to_end(&self, run_id: &RunId) -> Result<RunRecord, HandlerError> {
        let mut driver = Driver::new(self);
        let mut never = std::pin::pin!(std::future::pending::<()>());
        loop {
            let pass = match driver.pass().await {
                Ok(pass) => pass,
                // A failure of the state that retrying cannot cure is reported as such,
                // whichever operation met it first.
                Err(e) => {
                    self.faulted()?;
                    return Err(e);
                }
            };
            if pass.quiet {
                let run = self.handlers.ports().store.get_run(run_id).await?;
                if run.status.is_final() {
                    driver.flush().await?;
                    self.handlers.ports().traces.flush().await;
                    return Ok(run);
                }
            }
            if !pass.worked {
                driver.wait(never.as_mut()).await;
            }
        }
    }

    /// Drives every run until `stop` resolves: what `braid dev` does for as long as it
    /// runs. A failing state store or queue is logged and tried again a second later
    /// (nothing is lost: a message not acknowledged is delivered again). Once stopped it
    /// takes no new message, lets the ones in flight finish, acknowledges them and
    /// returns. A state that cannot be written stops it at once, with that error.
    pub async fn serve(&self, stop: impl Future<Output = ()>) -> Result<(), HandlerError> {
        let mut stop = std::pin::pin!(stop);
        let mut driver = Driver::new(self);
        loop {
            match driver.pass().await {
                Ok(pass) if pass.worked => {
                    // Busy: look at `stop` without waiting for it.
                    let stopped = std::future::poll_fn(|cx| {
                        std::task::Poll::Ready(stop.as_mut().poll(cx).is_ready())
                    })
                    .await;
                    if stopped {
                        break;
                    }
                }
                Ok(_) => {
                    if driver.wait(stop.as_mut()).await {
                        break;
                    }
                }
                Err(e) => {
                    self.faulted()?;
                    tracing::warn!(error = %e, "the local runtime failed a pass; trying again in a second");
                    tokio::select! {
                        _ = stop.as_mut() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        driver.finish().await;
        Ok(())
    }
}

/// What one pass of the loop saw.
struct Pass {
    /// Something was received, handled or finished: pass again at once.
    worked: bool,
    /// The result queue was looked at and was empty, and no task is running: the
    /// moment a run the loop waits for may have become final.
    quiet: bool,
}

/// The message loop's state between passes.
struct Driver<'a> {
    rt: &'a LocalRuntime,
    tasks: JoinSet<Handled>,
    next_tick: Instant,
    /// The result queue changes rarely compared with the ready queue: it is looked at
    /// every `POLL_RARE` unless there is news.
    next_rare: Instant,
    idle: Duration,
    /// The last receive came back short.
    drained: bool,
    /// Handled messages are acknowledged in batches: an ack is a write, and a message
    /// redelivered because its ack was late changes nothing.
    acks: Vec<String>,
    /// Notifications being sent, apart from the steps: a slow receiver holds up no
    /// step. Each ends with the receipt to acknowledge, if any.
    notices: JoinSet<Option<String>>,
}

impl<'a> Driver<'a> {
    fn new(rt: &'a LocalRuntime) -> Self {
        Driver {
            rt,
            tasks: JoinSet::new(),
            next_tick: Instant::now(),
            next_rare: Instant::now(),
            idle: Duration::from_millis(1),
            drained: false,
            acks: Vec::new(),
            notices: JoinSet::new(),
        }
    }

    /// Collects finished tasks, acknowledges, receives ready messages into tasks,
    /// delivers results when due and ticks when due.
    async fn pass(&mut self) -> Result<Pass, HandlerError> {
        let rt: &'a LocalRuntime = self.rt;
        let handlers = &rt.handlers;
        let settings = &rt.settings;
        let ports = &handlers.ports();
        rt.faulted()?;
        rt.recover_when_due().await?;
        let mut worked = false;
        while let Some(done) = self.tasks.try_join_next() {
            if let Ok(Handled::Ack(r)) = done {
                self.acks.push(r);
            }
            worked = true;
        }
        if self.acks.len() >= settings.batch
            || (!self.acks.is_empty() && Instant::now() >= self.next_rare)
        {
            self.flush().await?;
        }

        let free = settings
            .concurrency
            .saturating_sub(self.tasks.len())
            .min(settings.batch);
        // A receive that came back short drained the queue: until a task ends (and
        // may have sent more) or the rare poll comes round, asking again finds nothing.
        if free > 0 && (!self.drained || worked || Instant::now() >= self.next_rare) {
            let visibility = handlers.settings.default_lease + Duration::from_secs(60);
            let ready = ports.ready.receive(free, visibility).await?;
            self.drained = ready.len() < free;
            worked |= !ready.is_empty();
            for m in ready {
                let handlers = handlers.clone();
                self.tasks.spawn(async move {
                    let d = handlers.deliver_ready(&m).await;
                    fate(m, d)
                });
            }
        }

        let mut quiet = false;
        if Instant::now() >= self.next_rare {
            let notices = self.notices().await?;
            worked |= notices;
            let results = ports
                .results
                .receive(settings.batch, Duration::from_secs(60))
                .await?;
            let mut handled = Vec::with_capacity(results.len());
            let news = !results.is_empty();
            for m in results {
                let d = handlers.deliver_result(&m).await;
                if let Handled::Ack(r) = fate(m, d) {
                    handled.push(r);
                }
            }
            if !handled.is_empty() {
                ports.results.ack(&handled).await?;
            }
            quiet = !news && !notices && self.tasks.is_empty() && self.notices.is_empty();
            worked |= news;
            if !news {
                self.next_rare = Instant::now() + POLL_RARE;
            }
        }

        if Instant::now() >= self.next_tick {
            handlers.tick().await?;
            self.next_tick = Instant::now() + settings.tick_every;
        }

        if worked {
            self.idle = Duration::from_millis(1);
        }
        Ok(Pass { worked, quiet })
    }

    /// Acknowledges the notifications sent and takes new ones; whether any came or
    /// ended.
    async fn notices(&mut self) -> Result<bool, HandlerError> {
        let handlers = &self.rt.handlers;
        let Some(queue) = handlers.ports().notices.clone() else {
            return Ok(false);
        };
        let mut worked = false;
        let mut acks = Vec::new();
        while let Some(done) = self.notices.try_join_next() {
            acks.extend(done.ok().flatten());
            worked = true;
        }
        if !acks.is_empty() {
            queue.ack(&acks).await?;
        }
        let free = NOTICE_CONCURRENCY.saturating_sub(self.notices.len());
        if free > 0 {
            let got = queue.receive(free, NOTICE_VISIBILITY).await?;
            worked |= !got.is_empty();
            for m in got {
                let handlers = handlers.clone();
                self.notices
                    .spawn(async move { notify(&handlers, m).await });
            }
        }
        Ok(worked)
    }

    /// Waits for a task to finish, the idle pause to pass (each one longer, up to
    /// `idle_poll`) or `stop`; true when `stop` resolved.
    async fn wait<F: Future<Output = ()>>(&mut self, stop: Pin<&mut F>) -> bool {
        tokio::select! {
            _ = stop => return true,
            _ = tokio::time::sleep(self.idle) => {}
            Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                if let Ok(Handled::Ack(r)) = done {
                    self.acks.push(r);
                }
                self.drained = false;
                return false;
            }
        }
        self.idle = (self.idle * 2).min(self.rt.settings.idle_poll);
        false
    }

    /// Acknowledges the handled messages.
    async fn flush(&mut self) -> Result<(), HandlerError> {
        if !self.acks.is_empty() {
            self.rt.handlers.ports().ready.ack(&self.acks).await?;
            self.acks.clear();
        }
        Ok(())
    }

    /// Lets the tasks in flight finish and acknowledges what they handled, and sends
    /// the spans recorded; the notifications being sent are left to the next process
    /// (they are still queued).
    async fn finish(&mut self) {
        while let Some(done) = self.tasks.join_next().await {
            if let Ok(Handled::Ack(r)) = done {
                self.acks.push(r);
            }
        }
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "could not acknowledge the last messages; they will be delivered again");
        }
        self.rt.handlers.ports().traces.flush().await;
    }
}

/// How many notifications are sent at once.
const NOTICE_CONCURRENCY: usize = 8;

/// How long a notification taken off the queue is hidden from another taker: longer
/// than all its tries take.
const NOTICE_VISIBILITY: Duration = Duration::from_secs(120);

/// Sends the notifications of message `m`; the receipt to acknowledge it with, unless
/// it should come again. One given up on is recorded on its run (`braid show`) and
/// logged: locally that is the dead-letter queue.
async fn notify(handlers: &Handlers, m: Received) -> Option<String> {
    let msg = match NotifierMessage::decode(&m.body) {
        Ok(msg) => msg,
        Err(e) => {
            tracing::error!(error = %e, "not a notifier message; set aside");
            return Some(m.receipt);
        }
    };
    match handlers.notify(&msg).await {
        Ok(_) => Some(m.receipt),
        Err(e) if e.is_retryable() && m.receive_count < braid_handlers::MAX_RECEIVES => {
            tracing::warn!(error = %e, "sending notifications failed; they will be tried again");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "notifications given up on");
            Some(m.receipt)
        }
    }
}

/// A message's fate: handled, given up on or malformed, it is acknowledged — locally
/// the reason is in the run's error or the log, not in a dead-letter queue.
fn fate(m: Received, d: Delivery) -> Handled {
    match d {
        Delivery::Done | Delivery::GaveUp | Delivery::Malformed(_) => Handled::Ack(m.receipt),
        Delivery::Retry => Handled::Retry,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What became of one message.
enum Handled {
    Ack(String),
    Retry,
}
