//! [`AwsLambdaRunner`]: `lambda` steps on AWS, with a synchronous Invoke.
//!
//! `function` goes to Lambda as written: a name, `name:qualifier` (a version or alias),
//! a partial or a full ARN, all of which Invoke's `FunctionName` takes.
//!
//! # Errors
//!
//! A function error fails the attempt with the function's own `errorType` and
//! `errorMessage`, retryable, read exactly as the embedded backend reads it
//! ([`braid_runners`]), so a step's retry policy decides alike on both backends.
//! Other failures are named `lambda.*`, as on the embedded backend where the cases meet:
//!
//! | error | when | retryable |
//! |---|---|---|
//! | `lambda.unknown_function` | Lambda has no such function, version or alias | no |
//! | `lambda.access_denied` | the caller may not invoke the function | no |
//! | `lambda.invalid_request` | Lambda refuses the request or the payload | no |
//! | `lambda.request_too_large` | the payload is over Lambda's 6 MB | no |
//! | `lambda.throttled` | Lambda throttled the call (after the SDK's own retries) | yes |
//! | `lambda.service` | any other error Lambda answered with | yes |
//! | `lambda.timeout` | no answer in time | yes |
//! | `lambda.transport` | Lambda could not be reached, or the answer broke off | yes |
//! | `runner.unsupported_task` | the task is not a Lambda task | no |

use crate::backend::BackendError;
use async_trait::async_trait;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use braid_handlers::TaskRunners;
use braid_ports::{Invocation, Task, TaskError, TaskRunner, lambda_client_context};
use braid_runners::lambda::{function_error, payload_value};
use serde_json::Value;
use std::sync::Arc;

/// The step dispatcher's task runners: `lambda` steps through the Lambda API, `http`
/// steps with the shared HTTP runner.
pub fn task_runners(client: Client) -> Result<TaskRunners, BackendError> {
    Ok(TaskRunners {
        lambda: Arc::new(AwsLambdaRunner::new(client)),
        ..crate::backend::http_runners()?
    })
}

/// Invokes Lambda functions through the AWS SDK. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AwsLambdaRunner {
    client: Client,
}

impl AwsLambdaRunner {
    pub fn new(client: Client) -> Self {
        AwsLambdaRunner { client }
    }

    /// Invokes `function` synchronously with `payload` for attempt `call` and returns
    /// its JSON response; `client_context` (JSON) goes with it, base64-encoded as the
    /// Invoke API takes it. The invocation is logged with its request id, which is how
    /// `braid logs --stack` finds the function's own lines ([`crate::logs`]).
    pub async fn invoke(
        &self,
        call: &Invocation,
        function: &str,
        payload: &Value,
        client_context: Option<&str>,
    ) -> Result<Value, TaskError> {
        let sent = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::RequestResponse)
            .set_client_context(client_context.map(|c| BASE64_STANDARD.encode(c)))
            .payload(Blob::new(payload.to_string()))
            .send()
            .await;
        let request_id = match &sent {
            Ok(out) => out.request_id(),
            Err(e) => e.request_id(),
        };
        if let Some(request_id) = request_id {
            tracing::info!(
                invocation = %invocation_mark(call),
                function,
                request_id,
                "invoked a function"
            );
        }
        let out = sent.map_err(|e| sdk_error(function, e))?;
        let body = out.payload.map(Blob::into_inner).unwrap_or_default();
        if let Some(kind) = out.function_error {
            return Err(function_error(&body, &kind));
        }
        Ok(payload_value(&body))
    }
}

#[async_trait]
impl TaskRunner for AwsLambdaRunner {
    async fn run(&self, task: &Task) -> Result<Value, TaskError> {
        match task {
            Task::Lambda {
                function,
                payload,
                traceparent,
                invocation,
            } => {
                let context = traceparent.as_deref().map(lambda_client_context);
                self.invoke(invocation, function, payload, context.as_deref())
                    .await
            }
            Task::Http { .. } => Err(TaskError::fatal(
                "runner.unsupported_task",
                "the Lambda runner cannot run an http task",
            )),
        }
    }
}

/// How the dispatcher's log names attempt `call`: bracketed, so that searching for it
/// finds attempt 1 and not attempt 10.
pub fn invocation_mark(call: &Invocation) -> String {
    format!("[{call}]")
}

/// An SDK failure as a task error: what a retry cannot fix is fatal, the rest (throttling,
/// service trouble, timeouts, the network) retryable.
fn sdk_error(function: &str, e: SdkError<InvokeError, HttpResponse>) -> TaskError {
    let detail = DisplayErrorContext(&e).to_string();
    match &e {
        SdkError::ServiceError(service) => service_error(function, service.err(), &detail),
        SdkError::TimeoutError(_) => TaskError::retryable(
            "lambda.timeout",
            format!("function `{function}` did not answer in time: {detail}"),
        ),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => TaskError::retryable(
            "lambda.timeout",
            format!("function `{function}` did not answer in time: {detail}"),
        ),
        SdkError::ConstructionFailure(_) => TaskError::fatal(
            "lambda.invalid_request",
            format!("cannot build the invocation of function `{function}`: {detail}"),
        ),
        _ => TaskError::retryable(
            "lambda.transport",
            format!("invoking function `{function}`: {detail}"),
        ),
    }
}

/// An error Lambda answered with. Access denied has no modeled variant for Invoke, so
/// it is recognised by its code.
fn service_error(function: &str, err: &InvokeError, detail: &str) -> TaskError {
    let fatal = |error: &str, what: &str| {
        TaskError::fatal(error, format!("function `{function}`: {what}: {detail}"))
    };
    match err {
        InvokeError::ResourceNotFoundException(_) => fatal(
            "lambda.unknown_function",
            "no such function, version or alias",
        ),
        InvokeError::RequestTooLargeException(_)
        | InvokeError::SerializedRequestEntityTooLargeException(_) => fatal(
            "lambda.request_too_large",
            "the payload is over Lambda's limit",
        ),
        InvokeError::InvalidRequestContentException(_)
        | InvokeError::InvalidParameterValueException(_) => {
            fatal("lambda.invalid_request", "Lambda refused the request")
        }
        InvokeError::Ec2AccessDeniedException(_) | InvokeError::KmsAccessDeniedException(_) => {
            fatal("lambda.access_denied", "access denied")
        }
        e if e.code().is_some_and(|c| c.contains("AccessDenied")) => {
            fatal("lambda.access_denied", "access denied")
        }
        InvokeError::TooManyRequestsException(_) => TaskError::retryable(
            "lambda.throttled",
            format!("function `{function}` was throttled: {detail}"),
        ),
        _ => TaskError::retryable(
            "lambda.service",
            format!("invoking function `{function}`: {detail}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_lambda::error::ErrorMetadata;
    use aws_sdk_lambda::operation::invoke::InvokeOutput;
    use aws_sdk_lambda::types::error::{ResourceNotFoundException, TooManyRequestsException};
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use serde_json::json;

    fn runner(rule: &Rule) -> AwsLambdaRunner {
        AwsLambdaRunner::new(mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [rule]))
    }

    fn task(function: &str) -> Task {
        Task::Lambda {
            function: function.into(),
            payload: json!({"order": 7}),
            invocation: braid_ports::Invocation::new("run", "step", 1),
            traceparent: None,
        }
    }

    #[tokio::test]
    async fn response_is_the_step_output() {
        let rule = mock!(Client::invoke)
            .match_requests(|req| {
                req.function_name() == Some("orders:live")
                    && req.invocation_type() == Some(&InvocationType::RequestResponse)
                    && req.payload().map(|p| p.as_ref()) == Some(br#"{"order":7}"#.as_slice())
            })
            .then_output(|| {
                InvokeOutput::builder()
                    .status_code(200)
                    .payload(Blob::new(r#"{"total": 42}"#))
                    .build()
            });
        let out = runner(&rule).run(&task("orders:live")).await.unwrap();
        assert_eq!(out, json!({"total": 42}));
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn empty_response_is_null_and_text_is_a_string_as_locally() {
        let empty =
            mock!(Client::invoke).then_output(|| InvokeOutput::builder().status_code(200).build());
        assert_eq!(runner(&empty).run(&task("f")).await.unwrap(), Value::Null);

        let text = mock!(Client::invoke).then_output(|| {
            InvokeOutput::builder()
                .status_code(200)
                .payload(Blob::new("done"))
                .build()
        });
        assert_eq!(
            runner(&text).run(&task("f")).await.unwrap(),
            Value::String("done".into())
        );
    }

    #[tokio::test]
    async fn function_error_fails_the_attempt_with_its_own_type() {
        let rule = mock!(Client::invoke).then_output(|| {
            InvokeOutput::builder()
                .status_code(200)
                .function_error("Unhandled")
                .payload(Blob::new(
                    r#"{"errorType":"Flaky","errorMessage":"try again"}"#,
                ))
                .build()
        });
        let err = runner(&rule).run(&task("orders")).await.unwrap_err();
        assert_eq!(err, TaskError::retryable("Flaky", "try again"));
    }

    #[tokio::test]
    async fn throttling_is_retryable() {
        let rule = mock!(Client::invoke).then_error(|| {
            InvokeError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("Rate exceeded")
                    .build(),
            )
        });
        let err = runner(&rule).run(&task("orders")).await.unwrap_err();
        assert_eq!(err.error, "lambda.throttled");
        assert!(err.retryable);
    }

    #[tokio::test]
    async fn unknown_function_is_fatal_and_named() {
        let rule = mock!(Client::invoke).then_error(|| {
            InvokeError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Function not found")
                    .build(),
            )
        });
        let function = "arn:aws:lambda:eu-west-1:123456789012:function:nope";
        let err = runner(&rule).run(&task(function)).await.unwrap_err();
        assert_eq!(err.error, "lambda.unknown_function");
        assert!(!err.retryable);
        assert!(err.message.contains(function), "{}", err.message);
    }

    #[tokio::test]
    async fn access_denied_is_fatal() {
        let rule = mock!(Client::invoke).then_error(|| {
            InvokeError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not authorized to perform lambda:InvokeFunction")
                    .build(),
            )
        });
        let err = runner(&rule).run(&task("orders")).await.unwrap_err();
        assert_eq!(err.error, "lambda.access_denied");
        assert!(!err.retryable);
        assert!(err.message.contains("`orders`"), "{}", err.message);
    }

    #[tokio::test]
    async fn other_service_errors_are_retryable() {
        let rule = mock!(Client::invoke).then_error(|| {
            InvokeError::ServiceException(
                aws_sdk_lambda::types::error::ServiceException::builder().build(),
            )
        });
        let err = runner(&rule).run(&task("orders")).await.unwrap_err();
        assert_eq!(err.error, "lambda.service");
        assert!(err.retryable);
    }
}
