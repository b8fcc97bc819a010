//! The AWS backend's configuration, read from the environment in one place.
//!
//! | variable | what it names |
//! |---|---|
//! | `BRAID_TABLE` | the DynamoDB table holding definitions, runs and steps |
//! | `BRAID_READY_QUEUE_URL` | the SQS queue of "ready" messages (step dispatcher) |
//! | `BRAID_RESULT_QUEUE_URL` | the SQS queue of "result" messages (step completer) |
//! | `BRAID_EVENT_QUEUE_URL` | the SQS queue of lifecycle events (notifier) |
//! | `BRAID_BUCKET` | the S3 bucket for payloads over the inline limit |
//! | `BRAID_EVENT_BUS` | the EventBridge bus lifecycle events are published on |
//!
//! The SDK itself reads credentials, region and endpoint (`AWS_ENDPOINT_URL`, used to
//! point at an emulator) from the environment as usual.

use std::collections::HashMap;

/// The resources of one Braid stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    pub table: String,
    pub ready_queue_url: String,
    pub result_queue_url: String,
    pub event_queue_url: String,
    pub bucket: String,
    pub event_bus: String,
}

/// A variable the configuration needs is not set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("missing configuration: set {0}")]
pub struct MissingConfig(pub String);

impl AwsConfig {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<Self, MissingConfig> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// The configuration from `vars` (the environment's names); every missing name is
    /// listed at once.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, MissingConfig> {
        let mut missing = Vec::new();
        let mut get = |name: &str| match vars.get(name).filter(|v| !v.is_empty()) {
            Some(v) => v.clone(),
            None => {
                missing.push(name.to_string());
                String::new()
            }
        };
        let cfg = AwsConfig {
            table: get("BRAID_TABLE"),
            ready_queue_url: get("BRAID_READY_QUEUE_URL"),
            result_queue_url: get("BRAID_RESULT_QUEUE_URL"),
            event_queue_url: get("BRAID_EVENT_QUEUE_URL"),
            bucket: get("BRAID_BUCKET"),
            event_bus: get("BRAID_EVENT_BUS"),
        };
        if missing.is_empty() {
            Ok(cfg)
        } else {
            Err(MissingConfig(missing.join(", ")))
        }
    }

    /// The event bus alone, for the notifier, which uses nothing else of the stack.
    pub fn event_bus_from_env() -> Result<String, MissingConfig> {
        Self::event_bus_from_vars(&std::env::vars().collect())
    }

    /// The event bus from `vars` (the environment's names).
    pub fn event_bus_from_vars(vars: &HashMap<String, String>) -> Result<String, MissingConfig> {
        vars.get("BRAID_EVENT_BUS")
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| MissingConfig("BRAID_EVENT_BUS".to_string()))
    }

    /// The environment that [`AwsConfig::from_env`] reads back.
    pub fn to_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BRAID_TABLE", self.table.clone()),
            ("BRAID_READY_QUEUE_URL", self.ready_queue_url.clone()),
            ("BRAID_RESULT_QUEUE_URL", self.result_queue_url.clone()),
            ("BRAID_EVENT_QUEUE_URL", self.event_queue_url.clone()),
            ("BRAID_BUCKET", self.bucket.clone()),
            ("BRAID_EVENT_BUS", self.event_bus.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let vars = HashMap::from([("BRAID_TABLE".to_string(), "t".to_string())]);
        let err = AwsConfig::from_vars(&vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing configuration: set BRAID_READY_QUEUE_URL, BRAID_RESULT_QUEUE_URL, \
             BRAID_EVENT_QUEUE_URL, BRAID_BUCKET, BRAID_EVENT_BUS"
        );
    }

    #[test]
    fn the_notifier_needs_the_event_bus_alone() {
        let vars = HashMap::from([("BRAID_EVENT_BUS".to_string(), "braid-bus".to_string())]);
        assert_eq!(AwsConfig::event_bus_from_vars(&vars).unwrap(), "braid-bus");
        let empty = HashMap::from([("BRAID_EVENT_BUS".to_string(), String::new())]);
        assert_eq!(
            AwsConfig::event_bus_from_vars(&empty)
                .unwrap_err()
                .to_string(),
            "missing configuration: set BRAID_EVENT_BUS"
        );
    }

    #[test]
    fn configuration_round_trips_through_the_environment() {
        let cfg = AwsConfig {
            table: "t".into(),
            ready_queue_url: "r".into(),
            result_queue_url: "s".into(),
            event_queue_url: "e".into(),
            bucket: "b".into(),
            event_bus: "bus".into(),
        };
        let vars = cfg
            .to_vars()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(AwsConfig::from_vars(&vars).unwrap(), cfg);
    }
}
