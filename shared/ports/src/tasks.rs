use super::Invocation;
use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::Value;
use std::time::Duration;

/// A step's work with every expression rendered.
#[derive(Clone, Debug, PartialEq)]
pub enum Task {
    Http {
        method: String,
        url: String,
        headers: IndexMap<String, String>,
        json: Option<Value>,
        body: Option<String>,
        /// Request time limit (the step's timeout applies on top).
        timeout: Option<Duration>,
        /// Statuses that count as success; `None` means any 2xx.
        expect: Option<Vec<u16>>,
    },
    Lambda {
        function: String,
        payload: Value,
        /// The attempt it is for: a local runner files the function's output under it.
        invocation: Invocation,
        /// The attempt's W3C trace context, passed in the invocation's client context
        /// (`custom.traceparent`).
        traceparent: Option<String>,
    },
}

/// The client context a Lambda invocation carries the W3C `traceparent` in, as JSON
/// (`{"custom": {"traceparent": ...}}`): the Invoke API takes it base64-encoded, the
/// Runtime API hands it to the function as is.
pub fn lambda_client_context(traceparent: &str) -> String {
    serde_json::json!({ "custom": { "traceparent": traceparent } }).to_string()
}

/// Why an attempt failed, and whether another attempt may succeed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{error}: {message}")]
pub struct TaskError {
    pub error: String,
    pub message: String,
    pub retryable: bool,
    /// How long the other side asked to be left alone before the next try (an HTTP
    /// `Retry-After` on a 429 or 503).
    pub retry_after: Option<Duration>,
}

impl TaskError {
    pub fn retryable(error: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError {
            error: error.into(),
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    pub fn fatal(error: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError {
            error: error.into(),
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }
}

/// Carries out tasks of one kind (HTTP via reqwest; Lambda via an Invoke API or a local
/// Runtime API).
#[async_trait]
pub trait TaskRunner: Send + Sync {
    async fn run(&self, task: &Task) -> Result<Value, TaskError>;
}
