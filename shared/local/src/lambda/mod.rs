//! Lambda steps on the embedded backend: no AWS account needed.
//!
//! A [`LambdaRunner`] routes each function name, as the [`FunctionMap`] says, to:
//! - a [`RuntimeApiRunner`]: the function's own binary, launched locally and fed
//!   invocations through the Lambda Runtime API that the runner serves itself; or
//! - an [`InvokeApiRunner`]: any endpoint serving the Lambda Invoke API
//!   (`cargo lambda watch`, LocalStack).
//!
//! # Errors
//!
//! A function error fails the attempt with the function's own `errorType` and
//! `errorMessage` (e.g. `Flaky`), retryable as in Lambda. Other failures are named
//! `lambda.*`:
//!
//! | error | when | retryable |
//! |---|---|---|
//! | `lambda.unknown_function` | the name is not mapped, or the Invoke API does not know it | no |
//! | `lambda.spawn` | the function's command cannot be started | no |
//! | `lambda.init_error` | the function reported an initialisation error | yes |
//! | `lambda.init_timeout` | a launched function did not ask for work within `init_timeout` | yes |
//! | `lambda.crash` | a launched function exited before answering | yes |
//! | `lambda.timeout` | no answer within the function's `timeout` | yes |
//! | `lambda.connect` | the Invoke API endpoint cannot be reached | yes |
//! | `lambda.transport` | the connection to the Invoke API broke | yes |
//! | `lambda.status_<code>` | the Invoke API answered with another error status | for 5xx, 408 and 429 |
//! | `lambda.runtime_api` | the local Runtime API could not be served | yes |
//! | `lambda.streaming_response` | a launched function streamed its response (unsupported locally) | no |
//! | `Function.ResponseSizeTooLarge` | a launched function answered with more than 6 MB, Lambda's limit | no |
//! | `lambda.invalid_endpoint` | the endpoint URL cannot take a path | no |
//! | `runner.unsupported_task` | the task is not a Lambda task | no |

mod functions;
mod invoke_api;
mod runtime_api;

pub use functions::{
    ENDPOINT_ENV, EndpointSpec, FunctionMap, FunctionTarget, LambdaConfigError, LambdaRunner,
};
pub use invoke_api::InvokeApiRunner;
pub use runtime_api::{ProcessSpec, RuntimeApiRunner};

// Shared with the AWS runner, so both backends read function errors alike.
use braid_runners::lambda::{error_document, excerpt, function_error, payload_value};

/// The function name inside an ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`
/// or the partial `ACCOUNT:function:NAME`), with its qualifier; a plain name as is.
fn split_function_name(function: &str) -> (&str, Option<&str>) {
    let parts: Vec<&str> = function.split(':').collect();
    match parts.iter().position(|p| *p == "function") {
        Some(i) if i + 1 < parts.len() => (parts[i + 1], parts.get(i + 2).copied()),
        _ => (function, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arns_name_their_function() {
        assert_eq!(split_function_name("orders"), ("orders", None));
        assert_eq!(
            split_function_name("arn:aws:lambda:eu-west-1:123456789012:function:orders"),
            ("orders", None)
        );
        assert_eq!(
            split_function_name("arn:aws:lambda:eu-west-1:123456789012:function:orders:live"),
            ("orders", Some("live"))
        );
        assert_eq!(
            split_function_name("123456789012:function:orders"),
            ("orders", None)
        );
    }

    #[test]
    fn payloads_are_json_when_they_parse() {
        assert_eq!(payload_value(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(payload_value(b""), serde_json::Value::Null);
        assert_eq!(payload_value(b"plain"), json!("plain"));
    }
}
