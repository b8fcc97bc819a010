//! What Lambda functions answer, read the same way by every Lambda runner (the embedded
//! backend's and the AWS one), so a function error fails an attempt alike everywhere.

use braid_ports::TaskError;
use serde::Deserialize;
use serde_json::Value;

/// The error document a Lambda function answers with: `{"errorType", "errorMessage"}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDocument {
    error_type: Option<String>,
    error_message: Option<String>,
}

/// The function's error document, if `body` is one.
pub fn error_document(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let doc: ErrorDocument = serde_json::from_slice(body).ok()?;
    if doc.error_type.is_none() && doc.error_message.is_none() {
        return None;
    }
    Some((doc.error_type, doc.error_message))
}

/// A function error: the attempt fails with the function's error type and message, and
/// may be retried (Lambda's own retry policy treats function errors as retryable).
pub fn function_error(body: &[u8], fallback_type: &str) -> TaskError {
    match error_document(body) {
        Some((error_type, message)) => TaskError::retryable(
            error_type
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| fallback_type.to_string()),
            message.unwrap_or_default(),
        ),
        None => TaskError::retryable(fallback_type, excerpt(body)),
    }
}

/// The start of a body, for error messages.
pub fn excerpt(body: &[u8]) -> String {
    const MAX_CHARS: usize = 300;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out: String = text.chars().take(MAX_CHARS).collect();
    if text.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

/// A function's answer as a step sees it: JSON when it is JSON, `null` when empty,
/// text otherwise.
pub fn payload_value(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_errors_keep_the_function_error_type() {
        let e = function_error(br#"{"errorType":"Flaky","errorMessage":"try again"}"#, "x");
        assert_eq!(e, TaskError::retryable("Flaky", "try again"));
        let e = function_error(b"boom", "Unhandled");
        assert_eq!(e, TaskError::retryable("Unhandled", "boom"));
    }
}
