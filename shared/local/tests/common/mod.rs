//! A state folder driven by hand, one delivery and one tick at a time, with a manual
//! clock: the harness of the tests of the step lifecycle.

#![allow(dead_code)] // Each test file uses what it needs.

use braid_engine::model::{Definition, DispatchMsg, RunId, RunRecord, StepKey};
use braid_handlers::{Handlers, Ports, StartRequest, definition};
use braid_local::backend::{LocalOptions, local_ports, local_runtime};
use braid_local::runtime::LocalRuntime;
use braid_ports::ManualClock;
use chrono::TimeZone;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A state folder driven by hand: nothing runs unless a test delivers or ticks.
pub struct Bench {
    _dir: tempfile::TempDir,
    pub rt: LocalRuntime,
    pub clock: Arc<ManualClock>,
}

impl Bench {
    pub fn new(wrap: impl FnOnce(&mut Ports)) -> Self {
        Self::with(|_| {}, wrap)
    }

    /// [`Bench::new`] with options of its own (settings, before the ports open).
    pub fn with(options: impl FnOnce(&mut LocalOptions), wrap: impl FnOnce(&mut Ports)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(
            chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let mut opts = LocalOptions::new(dir.path());
        opts.clock = clock.clone();
        options(&mut opts);
        let mut ports = local_ports(&opts).unwrap();
        wrap(&mut ports);
        let rt = local_runtime(ports, &opts);
        Bench {
            _dir: dir,
            rt,
            clock,
        }
    }

    /// The state folder.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn handlers(&self) -> &Handlers {
        self.rt.handlers()
    }

    pub async fn start(&self, yaml: &str) -> RunId {
        let (def, _) = definition("wf.yaml", yaml).unwrap();
        self.start_def(def).await
    }

    pub async fn start_def(&self, def: Definition) -> RunId {
        let started = self
            .handlers()
            .start(StartRequest {
                definition: def,
                input: json!({}),
                trigger: Value::Null,
                idempotency_key: None,
                queue: false,
            })
            .await
            .unwrap();
        started.run.id
    }

    /// Takes every "ready" message visible now off the queue.
    pub async fn take_ready(&self) -> Vec<DispatchMsg> {
        let ready = &self.handlers().ports().ready;
        let got = ready
            .receive(1000, Duration::from_secs(3600))
            .await
            .unwrap();
        let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
        ready.ack(&receipts).await.unwrap();
        got.iter()
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect()
    }

    /// Delivers every "ready" and "result" message visible now, in turn, until none
    /// is left.
    pub async fn deliver_all(&self) {
        loop {
            let msgs = self.take_ready().await;
            let results = self.take_results().await;
            if msgs.is_empty() && results.is_empty() {
                return;
            }
            for m in msgs {
                self.handlers().dispatch(&m).await.unwrap();
            }
            for r in results {
                self.handlers().complete(&r).await.unwrap();
            }
        }
    }

    /// Takes every "result" message visible now off the queue.
    pub async fn take_results(&self) -> Vec<braid_engine::model::ResultMsg> {
        let results = &self.handlers().ports().results;
        let got = results
            .receive(1000, Duration::from_secs(3600))
            .await
            .unwrap();
        let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
        results.ack(&receipts).await.unwrap();
        got.iter()
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect()
    }

    /// Starts a run of `def` that queues for a slot when its workflow is at its limit.
    pub async fn start_queued(&self, def: &Definition) -> RunId {
        let req = StartRequest {
            definition: def.clone(),
            input: json!({}),
            trigger: Value::Null,
            idempotency_key: None,
            queue: true,
        };
        self.handlers().start(req).await.unwrap().run.id
    }

    pub async fn run(&self, id: &RunId) -> RunRecord {
        self.handlers().ports().store.get_run(id).await.unwrap()
    }

    pub async fn step(&self, id: &RunId, key: &StepKey) -> braid_engine::model::StepRecord {
        self.handlers()
            .ports()
            .store
            .get_step(id, key)
            .await
            .unwrap()
    }
}

/// Keeps every lifecycle event published.
#[derive(Default)]
pub struct Events(pub std::sync::Mutex<Vec<braid_engine::model::LifecycleEvent>>);

#[async_trait::async_trait]
impl braid_ports::EventSink for Events {
    async fn publish(
        &self,
        events: &[braid_engine::model::LifecycleEvent],
    ) -> braid_ports::PortResult<()> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

impl Events {
    /// The events of `kind` published so far.
    pub fn of(
        &self,
        kind: braid_engine::model::EventKind,
    ) -> Vec<braid_engine::model::LifecycleEvent> {
        let all = self.0.lock().unwrap();
        all.iter().filter(|e| e.kind == kind).cloned().collect()
    }
}

/// A task runner whose calls wait until the test lets them end.
pub struct Gate {
    pub calls: std::sync::atomic::AtomicUsize,
    pub open: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl braid_ports::TaskRunner for Gate {
    async fn run(&self, _task: &braid_ports::Task) -> Result<Value, braid_ports::TaskError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.open.acquire().await.unwrap().forget();
        Ok(json!("called"))
    }
}

impl Gate {
    /// Waits until a task has started.
    pub async fn started(&self) {
        while self.calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    }
}

impl Bench {
    /// A bench whose HTTP and Lambda tasks wait at `Gate` until let through.
    pub fn gated() -> (Bench, Arc<Gate>) {
        let gate = Arc::new(Gate {
            calls: Default::default(),
            open: tokio::sync::Semaphore::new(0),
        });
        let g = gate.clone();
        let bench = Bench::new(move |p| {
            p.tasks = Some(braid_handlers::TaskRunners {
                http: g.clone(),
                lambda: g,
            })
        });
        (bench, gate)
    }
}
