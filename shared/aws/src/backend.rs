//! The AWS backend assembled: every port wired to its AWS adapter for one stack, ready
//! for the handlers. The functions build this once per container.
//!
//! Every handler reads and writes the stack's own resources ([`StackClients`]: the
//! table, the queues, the payload bucket); on top of those, the step dispatcher adds
//! its task runners ([`crate::lambda::task_runners`]) and trigger intake its webhook
//! secrets ([`crate::secrets::AwsSecrets`]), so each function links only the clients
//! it calls.
//!
//! Lifecycle events go from the handlers straight to the event bus when they call for
//! no notification, else to the event queue, whose notifier function sends the
//! notifications and then puts the event on the bus ([`BusFirst`]); an event the bus
//! does not take goes to the queue too. A handler's write never fails with
//! EventBridge.

use crate::config::{AwsConfig, MissingConfig};
use crate::event_bus::{BusFirst, EventBridgeSink};
use crate::events::QueueSink;
use crate::payloads::S3Payloads;
use crate::queue::SqsQueue;
use crate::store::DynamoStore;
use aws_config::SdkConfig;
use braid_handlers::{Handlers, Ports, Settings};
use braid_ports::env_secrets::{EnvSecrets, env_secrets};
use braid_ports::{NoOutput, SystemClock, UlidIds};
use std::collections::HashMap;
use std::sync::Arc;

/// Why the backend could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Config(#[from] MissingConfig),
    #[error("{0}")]
    Setting(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Where offloaded payloads live in the bucket.
pub const PAYLOAD_PREFIX: &str = "payloads/";

/// The clients of the stack's own resources, which every handler uses: the table,
/// the queues and the payload bucket. Built once per process.
#[derive(Debug, Clone)]
pub struct StackClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
}

impl StackClients {
    /// Clients from one SDK configuration. S3 uses path-style addressing when an
    /// endpoint is set (emulators serve buckets on one host, not as subdomains).
    pub fn new(sdk: &SdkConfig) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        StackClients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            eventbridge: aws_sdk_eventbridge::Client::new(sdk),
        }
    }
}

/// The ports of the stack `cfg` names, as every function has them: no task runners
/// (the step dispatcher adds its own) and secrets from the environment only (trigger
/// intake adds Parameter Store and Secrets Manager).
pub fn stack_ports(cfg: &AwsConfig, clients: &StackClients) -> Ports {
    let queue = |url: &str| Arc::new(SqsQueue::new(clients.sqs.clone(), url));
    Ports {
        store: Arc::new(DynamoStore::new(clients.dynamodb.clone(), &cfg.table)),
        ready: queue(&cfg.ready_queue_url),
        results: queue(&cfg.result_queue_url),
        payloads: Arc::new(S3Payloads::new(
            clients.s3.clone(),
            &cfg.bucket,
            PAYLOAD_PREFIX,
        )),
        events: Arc::new(BusFirst::new(
            EventBridgeSink::new(clients.eventbridge.clone(), &cfg.event_bus),
            Arc::new(QueueSink::new(queue(&cfg.event_queue_url))),
        )),
        tasks: None,
        output: Arc::new(NoOutput),
        notices: None,
        metrics: Arc::new(braid_ports::NoMetrics),
        traces: Arc::new(braid_ports::NoTraces),
        secrets: Arc::new(EnvSecrets::env_only()),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidIds),
    }
}

/// Every client of the stack, for a process that does all the functions' work: the
/// CLI operating a stack and the end-to-end tests.
#[cfg(all(feature = "lambda", feature = "secrets"))]
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub secrets_manager: aws_sdk_secretsmanager::Client,
}

#[cfg(all(feature = "lambda", feature = "secrets"))]
impl AwsClients {
    /// Clients from one SDK configuration (see [`StackClients::new`]).
    pub fn new(sdk: &SdkConfig) -> Self {
        let stack = StackClients::new(sdk);
        AwsClients {
            dynamodb: stack.dynamodb,
            sqs: stack.sqs,
            s3: stack.s3,
            eventbridge: stack.eventbridge,
            lambda: aws_sdk_lambda::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            secrets_manager: aws_sdk_secretsmanager::Client::new(sdk),
        }
    }

    /// The clients of the stack's own resources.
    pub fn stack(&self) -> StackClients {
        StackClients {
            dynamodb: self.dynamodb.clone(),
            sqs: self.sqs.clone(),
            s3: self.s3.clone(),
            eventbridge: self.eventbridge.clone(),
        }
    }
}

/// The ports of the stack `cfg` names with every adapter: the step dispatcher's task
/// runners and trigger intake's secrets on top of [`stack_ports`].
#[cfg(all(feature = "lambda", feature = "secrets"))]
pub fn aws_ports(cfg: &AwsConfig, clients: &AwsClients) -> Result<Ports, BackendError> {
    let mut ports = stack_ports(cfg, &clients.stack());
    ports.tasks = Some(crate::lambda::task_runners(clients.lambda.clone())?);
    ports.secrets = Arc::new(crate::secrets::AwsSecrets::new(
        clients.ssm.clone(),
        clients.secrets_manager.clone(),
    ));
    Ok(ports)
}

/// The notifier's task runners: HTTP requests (notifications) only; a `lambda` task
/// is refused.
#[cfg(feature = "http")]
pub fn http_runners() -> Result<braid_handlers::TaskRunners, BackendError> {
    let http = Arc::new(
        braid_runners::http::HttpRunner::new().map_err(|e| BackendError::Http(e.to_string()))?,
    );
    Ok(braid_handlers::TaskRunners {
        http: http.clone(),
        lambda: http,
    })
}

/// Where the notifier puts the notifications it gave up on: the event queue's
/// dead-letter queue (`BRAID_EVENT_DLQ_URL`).
pub fn event_dead_letters_from_env(sdk: &SdkConfig) -> Result<SqsQueue, BackendError> {
    let url = std::env::var("BRAID_EVENT_DLQ_URL")
        .map_err(|_| BackendError::Config(MissingConfig("BRAID_EVENT_DLQ_URL".into())))?;
    Ok(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &url))
}

/// The handlers over `ports`, with the backend's default settings and its secrets.
pub fn aws_handlers(ports: Ports) -> Handlers {
    aws_handlers_with(ports, Settings::default())
}

/// The handlers over `ports` with `settings`, and the backend's secrets.
pub fn aws_handlers_with(ports: Ports, settings: Settings) -> Handlers {
    Handlers::new(ports, settings, env_secrets())
}

/// The settings the stack gives its functions: the defaults, but for the steps whose
/// ends are published (`BRAID_STEP_EVENTS`: `failed`, the default, or `all`; the
/// template's `StepEvents` parameter) and the API's URL approval links point to
/// (`BRAID_API_URL`; none, no links).
pub fn settings_from_vars(vars: &HashMap<String, String>) -> Result<Settings, BackendError> {
    let mut settings = Settings {
        api_base_url: vars.get("BRAID_API_URL").filter(|v| !v.is_empty()).cloned(),
        ..Settings::default()
    };
    if let Some(v) = vars.get("BRAID_STEP_EVENTS").filter(|v| !v.is_empty()) {
        settings.step_events = v
            .parse()
            .map_err(|e| BackendError::Setting(format!("BRAID_STEP_EVENTS: {e}")))?;
    }
    Ok(settings)
}

/// The handlers over `ports`, with the settings the stack gives its functions in the
/// environment (see [`settings_from_vars`]).
pub fn handlers_from_env(ports: Ports) -> Result<Handlers, BackendError> {
    let settings = settings_from_vars(&std::env::vars().collect())?;
    Ok(aws_handlers_with(ports, settings))
}

/// The stack's ports over its own resources ([`stack_ports`]), configured from the
/// environment, as a function has them: metrics go out as EMF lines, spans over OTLP
/// when the stack names an endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`).
pub fn stack_ports_from_env(sdk: &SdkConfig) -> Result<Ports, BackendError> {
    let mut ports = stack_ports(&AwsConfig::from_env()?, &StackClients::new(sdk));
    ports.metrics = Arc::new(crate::metrics::EmfMetrics::from_env());
    if let Some(traces) = braid_otel::from_env().map_err(BackendError::Setting)? {
        ports.traces = traces;
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_handlers::StepEvents;

    #[test]
    fn step_events_are_the_failed_ones_unless_the_stack_says_all() {
        let vars = |v: &str| HashMap::from([("BRAID_STEP_EVENTS".to_string(), v.to_string())]);
        let of = |v: &str| settings_from_vars(&vars(v)).map(|s| s.step_events);
        assert_eq!(
            settings_from_vars(&HashMap::new()).unwrap().step_events,
            StepEvents::Failed
        );
        assert_eq!(of("").unwrap(), StepEvents::Failed);
        assert_eq!(of("all").unwrap(), StepEvents::All);
        assert_eq!(
            of("some").unwrap_err().to_string(),
            "BRAID_STEP_EVENTS: step events must be `failed` or `all`, not `some`"
        );
    }

    #[test]
    fn approval_links_point_to_the_api_url_the_stack_gives() {
        let url = |v: &str| {
            let vars = HashMap::from([("BRAID_API_URL".to_string(), v.to_string())]);
            settings_from_vars(&vars).unwrap().api_base_url
        };
        assert_eq!(
            url("https://abc.example").as_deref(),
            Some("https://abc.example")
        );
        assert_eq!(url(""), None, "trigger intake is given none");
    }
}
