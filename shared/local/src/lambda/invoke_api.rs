//! Invokes functions through the Lambda Invoke API
//! (`POST {endpoint}/2015-03-31/functions/{name}/invocations`), as served by
//! `cargo lambda watch` and LocalStack.
//!
//! A function error is recognised both the way Lambda reports it (`200` with an
//! `X-Amz-Function-Error` header and the error document as body) and the way
//! `cargo lambda watch` does (an error status whose body is the function's
//! `{"errorType", "errorMessage"}`). Requests are not signed: local endpoints do not
//! check signatures.

use super::{error_document, excerpt, function_error, payload_value, split_function_name};
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use braid_ports::TaskError;
use braid_runners::error_chain;
use braid_runners::http::status_is_retryable;
use reqwest::{Client, Url};
use serde_json::Value;
use std::time::Duration;

/// How long an invocation may take when nothing else is said: Lambda's maximum.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Invokes functions on one Invoke API endpoint. Cheap to clone.
#[derive(Clone, Debug)]
pub struct InvokeApiRunner {
    client: Client,
    endpoint: Url,
    timeout: Duration,
}

impl InvokeApiRunner {
    /// A runner for `endpoint` (e.g. `http://127.0.0.1:9000`), sharing `client`'s
    /// connection pool.
    pub fn new(client: Client, endpoint: Url) -> Self {
        InvokeApiRunner {
            client,
            endpoint,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the time limit of each invocation.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Invokes `function` (a name or an ARN) synchronously and returns its response;
    /// `client_context` (JSON) goes base64-encoded in `X-Amz-Client-Context`, as the
    /// Invoke API takes it.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &Value,
        client_context: Option<&str>,
    ) -> Result<Value, TaskError> {
        let (name, qualifier) = split_function_name(function);
        let url = self.invocation_url(name, qualifier)?;
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-amz-invocation-type", "RequestResponse");
        if let Some(context) = client_context {
            request = request.header("x-amz-client-context", BASE64_STANDARD.encode(context));
        }
        let response = request
            .body(payload.to_string())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(function, e))?;
        let status = response.status();
        let function_error_header = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(function, e))?;

        if let Some(kind) = function_error_header {
            return Err(function_error(&body, &kind));
        }
        if status.is_success() {
            return Ok(payload_value(&body));
        }
        // `cargo lambda watch` answers a function error with a 500 carrying the
        // function's error document.
        if status.is_server_error() && error_document(&body).is_some() {
            return Err(function_error(&body, "Unhandled"));
        }
        let code = status.as_u16();
        let detail = excerpt(&body);
        if code == 404 {
            return Err(TaskError::fatal(
                "lambda.unknown_function",
                format!(
                    "the Lambda Invoke API at {} has no function `{name}`: {detail}",
                    self.endpoint
                ),
            ));
        }
        let message = format!(
            "the Lambda Invoke API at {} answered {status} for function `{function}`: {detail}",
            self.endpoint
        );
        Err(TaskError {
            error: format!("lambda.status_{code}"),
            message,
            retryable: status_is_retryable(code),
            retry_after: None,
        })
    }

    fn invocation_url(&self, name: &str, qualifier: Option<&str>) -> Result<Url, TaskError> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|_| {
                TaskError::fatal(
                    "lambda.invalid_endpoint",
                    format!("`{}` cannot be a Lambda Invoke API endpoint", self.endpoint),
                )
            })?
            .pop_if_empty()
            .extend(["2015-03-31", "functions", name, "invocations"]);
        if let Some(q) = qualifier {
            url.query_pairs_mut().append_pair("Qualifier", q);
        }
        Ok(url)
    }

    fn transport_error(&self, function: &str, e: reqwest::Error) -> TaskError {
        let e = e.without_url();
        let detail = error_chain(&e);
        let endpoint = &self.endpoint;
        if e.is_timeout() {
            TaskError::retryable(
                "lambda.timeout",
                format!("function `{function}` at {endpoint} did not answer in time ({detail})"),
            )
        } else if e.is_connect() {
            TaskError::retryable(
                "lambda.connect",
                format!(
                    "cannot reach the Lambda Invoke API at {endpoint} (is `cargo lambda watch` or LocalStack running?): {detail}"
                ),
            )
        } else {
            TaskError::retryable(
                "lambda.transport",
                format!("invoking function `{function}` at {endpoint}: {detail}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(endpoint: &str) -> InvokeApiRunner {
        InvokeApiRunner::new(Client::new(), Url::parse(endpoint).unwrap())
    }

    #[test]
    fn invocation_urls_follow_the_invoke_api() {
        let url = runner("http://127.0.0.1:9000")
            .invocation_url("orders", None)
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9000/2015-03-31/functions/orders/invocations"
        );
        let url = runner("http://localhost:4566/prefix/")
            .invocation_url("orders", Some("live"))
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://localhost:4566/prefix/2015-03-31/functions/orders/invocations?Qualifier=live"
        );
    }
}
