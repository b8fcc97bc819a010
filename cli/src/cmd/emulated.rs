//! The AWS backend on an emulator (`--backend aws`, feature `aws`): the stack
//! [`CLI_STACK`] made on the emulator at `AWS_ENDPOINT_URL` from the built-in template
//! when missing, and the five functions' handlers driven in this process by
//! `braid-emulated`, the code the end-to-end suite tests the AWS backend with.
//!
//! `lambda` steps run where the function map says (`--functions`, `BRAID_FUNCTIONS`,
//! `functions.yaml`), as on the embedded backend: an emulator without Docker runs no
//! Lambda function. A function the map does not name (with no `default_endpoint`) is
//! invoked through the Lambda API at the emulator, as the step dispatcher does on AWS.

use super::Exit;
use super::backend::RunRequest;
use super::local::tokio;
use super::progress::Progress;
use super::report::{self, Format};
use super::run::start_announced;
use anyhow::Context;
use async_trait::async_trait;
use braid_aws::backend::AwsClients;
use braid_emulated::driver::Driver;
use braid_emulated::sdk::emulator_sdk;
use braid_emulated::stack::{CLI_STACK, Stack};
use braid_engine::model::RunStatus;
use braid_handlers::{Handlers, Settings, StepEvents};
use braid_local::events::{EventHub, Tee};
use braid_local::lambda::{FunctionMap, LambdaRunner};
use braid_local::metrics::PromMetrics;
use braid_ports::env_secrets::env_secrets;
use braid_ports::{EventSink, Task, TaskError, TaskRunner};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// The stack on the emulator and the handlers over it.
pub struct Emulated {
    pub stack: Stack,
    pub handlers: Arc<Handlers>,
    /// What the handlers publish, also sent to this process's subscribers (every
    /// step's end: progress lines are told from them).
    pub events: EventHub,
}

impl Emulated {
    /// Makes (or finds) the stack on the emulator; `lambda` steps run where the
    /// function map `functions` says, else through the emulator's Lambda API. The
    /// handlers publish their lifecycle events through what `events` makes of the
    /// stack's sink (`braid dev` prints them as they go).
    pub async fn open(
        functions: Option<&Path>,
        events: impl FnOnce(Arc<dyn EventSink>) -> Arc<dyn EventSink>,
    ) -> anyhow::Result<Emulated> {
        let sdk = emulator_sdk().await?;
        let endpoint = sdk.endpoint_url().unwrap_or("AWS_ENDPOINT_URL").to_string();
        let stack = Stack::ensure(CLI_STACK, AwsClients::new(&sdk))
            .await
            .with_context(|| format!("cannot make stack `{CLI_STACK}` on {endpoint}"))?;
        let mut ports = stack.ports()?;
        if let Some(path) = functions {
            let map = FunctionMap::load(path)?;
            let tasks = ports
                .tasks
                .as_mut()
                .context("the AWS backend's ports run no tasks")?;
            tasks.lambda = Arc::new(MappedFirst {
                local: LambdaRunner::new(map.clone())?,
                map,
                aws: tasks.lambda.clone(),
            });
        }
        // Counted as `braid dev` serves them (`GET /metrics`), traced like local runs.
        ports.metrics = Arc::new(PromMetrics::default());
        ports.traces = crate::cmd::local::traces_from_env()?;
        let hub = EventHub::default();
        ports.events = events(Arc::new(Tee {
            hub: hub.clone(),
            other: ports.events.clone(),
        }));
        let settings = Settings {
            step_events: StepEvents::All,
            ..stack.settings.clone()
        };
        let handlers = Handlers::new(ports, settings, env_secrets());
        Ok(Emulated {
            stack,
            handlers: Arc::new(handlers),
            events: hub,
        })
    }

    /// A driver of the stack's functions over these handlers.
    pub fn driver(&self) -> Driver<'_> {
        Driver::new(&self.stack, self.handlers.clone())
    }
}

/// `lambda` tasks: the function map's functions where it says, the others through
/// the Lambda API.
struct MappedFirst {
    map: FunctionMap,
    local: LambdaRunner,
    aws: Arc<dyn TaskRunner>,
}

#[async_trait]
impl TaskRunner for MappedFirst {
    async fn run(&self, task: &Task) -> Result<Value, TaskError> {
        match task {
            Task::Lambda { function, .. }
                if self.map.target(function).is_some() || self.map.default_endpoint.is_some() =>
            {
                self.local.run(task).await
            }
            _ => self.aws.run(task).await,
        }
    }
}

/// `braid run FILE --backend aws`: starts the run on the emulated stack, drives it to
/// its end and prints it as the embedded backend's runs print.
pub fn run(request: RunRequest) -> anyhow::Result<Exit> {
    tokio()?.block_on(async {
        let emulated = Emulated::open(request.functions.as_deref(), |sink| sink).await?;
        let key = request.idempotency_key;
        let started =
            match start_announced(&emulated.handlers, request.definition, request.input, key)
                .await?
            {
                Ok(started) => started,
                Err(exit) => return Ok(exit),
            };
        let progress = Progress::start(
            emulated.handlers.clone(),
            &started.run.id,
            request.step_order,
            String::new(),
            request.output == Format::Text,
            emulated.events.subscribe(),
        );
        // No limit: the run's own timeouts end it, through the tick.
        let result = emulated.driver().run_to_end(&started.run.id, None).await;
        progress.stop().await;
        let run = result?;
        let view = emulated.handlers.run_view(&run.id).await?;
        match request.output {
            Format::Text => print!("{}", report::summary(&view)),
            Format::Json => println!("{}", report::json(&view)),
        }
        Ok(if view.status == RunStatus::Succeeded {
            Exit::Success
        } else {
            Exit::RunFailed
        })
    })
}
