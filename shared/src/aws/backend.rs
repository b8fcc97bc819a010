//! The AWS backend assembled: every port wired to its AWS adapter for one stack, ready
//! for the handlers. The functions build this once per container.
//!
//! Lifecycle events go from the handlers to the event queue ([`QueueSink`]), and the
//! notifier function forwards them to the event bus: a handler's write never waits on
//! (nor fails with) EventBridge.

use super::config::{AwsConfig, MissingConfig};
use super::events::{EventBridgeSink, QueueSink};
use super::lambda::AwsLambdaRunner;
use super::payloads::S3Payloads;
use super::queue::SqsQueue;
use super::secrets::AwsSecrets;
use super::store::DynamoStore;
use crate::handlers::{Handlers, Ports, Settings};
use crate::ports::{SystemClock, UlidIds};
use crate::runners::http::HttpRunner;
use crate::secrets::env_secrets;
use aws_config::SdkConfig;
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

/// One client per AWS service the backend talks to, built once per process.
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

impl AwsClients {
    /// Clients from one SDK configuration. S3 uses path-style addressing when an
    /// endpoint is set (emulators serve buckets on one host, not as subdomains).
    pub fn new(sdk: &SdkConfig) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            eventbridge: aws_sdk_eventbridge::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            secrets_manager: aws_sdk_secretsmanager::Client::new(sdk),
        }
    }
}

/// The ports of the stack `cfg` names.
pub fn aws_ports(cfg: &AwsConfig, clients: &AwsClients) -> Result<Ports, BackendError> {
    let queue = |url: &str| Arc::new(SqsQueue::new(clients.sqs.clone(), url));
    Ok(Ports {
        store: Arc::new(DynamoStore::new(clients.dynamodb.clone(), &cfg.table)),
        ready: queue(&cfg.ready_queue_url),
        results: queue(&cfg.result_queue_url),
        payloads: Arc::new(S3Payloads::new(
            clients.s3.clone(),
            &cfg.bucket,
            PAYLOAD_PREFIX,
        )),
        events: Arc::new(QueueSink::new(queue(&cfg.event_queue_url))),
        http: Arc::new(HttpRunner::new().map_err(|e| BackendError::Http(e.to_string()))?),
        lambda: Arc::new(AwsLambdaRunner::new(clients.lambda.clone())),
        secrets: Arc::new(AwsSecrets::new(
            clients.ssm.clone(),
            clients.secrets_manager.clone(),
        )),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidIds),
    })
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
/// template's `StepEvents` parameter).
pub fn settings_from_vars(vars: &HashMap<String, String>) -> Result<Settings, BackendError> {
    let mut settings = Settings::default();
    if let Some(v) = vars.get("BRAID_STEP_EVENTS").filter(|v| !v.is_empty()) {
        settings.step_events = v
            .parse()
            .map_err(|e| BackendError::Setting(format!("BRAID_STEP_EVENTS: {e}")))?;
    }
    Ok(settings)
}

/// The SDK configuration from the environment (credentials, region, endpoint).
pub async fn sdk_from_env() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The handlers, configured from the environment.
pub async fn handlers_from_env() -> Result<Handlers, BackendError> {
    let clients = AwsClients::new(&sdk_from_env().await);
    let settings = settings_from_vars(&std::env::vars().collect())?;
    Ok(aws_handlers_with(
        aws_ports(&AwsConfig::from_env()?, &clients)?,
        settings,
    ))
}

/// The stack's event bus, configured from the environment (the notifier's sink).
pub async fn event_bus_from_env() -> Result<EventBridgeSink, BackendError> {
    let cfg = AwsConfig::from_env()?;
    let sdk = sdk_from_env().await;
    Ok(EventBridgeSink::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        &cfg.event_bus,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::StepEvents;

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
}
