//! Building expressions with placeholders, and mapping SDK errors to port errors.

use super::Item;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;
use braid_ports::PortError;
use std::collections::HashMap;

/// Names and values of one request's expressions. Every attribute name goes through a
/// placeholder (`status` and `key` are reserved words); DynamoDB rejects unused
/// placeholders, so only what an expression mentions is added.
#[derive(Default)]
pub(super) struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// `#name` for an attribute; `a.b` gives a nested path `#a.#b`.
    pub fn name(&mut self, path: &str) -> String {
        path.split('.')
            .map(|part| {
                let ph = format!("#{part}");
                self.names.insert(ph.clone(), part.to_string());
                ph
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    pub fn value(&mut self, v: AttributeValue) -> String {
        let ph = format!(":v{}", self.values.len());
        self.values.insert(ph.clone(), v);
        ph
    }

    /// `SET` clauses writing every attribute of `item` (the key excluded).
    pub fn set_all(&mut self, item: &Item, key: &[&str]) -> Vec<String> {
        let mut attrs: Vec<_> = item
            .iter()
            .filter(|(k, _)| !key.contains(&k.as_str()))
            .collect();
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        attrs
            .into_iter()
            .map(|(k, v)| format!("{} = {}", self.name(k), self.value(v.clone())))
            .collect()
    }

    pub fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// The port error for a failed request, with the SDK's full context: refused for good
/// when DynamoDB says the request is invalid (an item over 400 KB, an attribute or
/// key it cannot hold: `ValidationException`, or a transaction cancelled for a
/// `ValidationError`) — the same request would fail the same way forever — else a
/// retryable backend error.
pub(super) fn backend<E>(e: E) -> PortError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let refused = e.code() == Some("ValidationException");
    let text = DisplayErrorContext(e).to_string();
    if refused {
        PortError::Refused(text)
    } else {
        PortError::backend_msg(text)
    }
}

/// Whether a single-item write failed on its condition.
pub(super) fn condition_failed<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// Which items of a cancelled transaction failed their condition, when that is the only
/// reason it was cancelled. Any other reason (a `TransactionConflict` with a concurrent
/// writer, throttling, validation) is a backend error: retrying may succeed, so it must
/// never be taken for a false guard.
pub(super) fn cancelled_on_conditions<R>(
    e: SdkError<TransactWriteItemsError, R>,
) -> Result<Vec<usize>, PortError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let Some(TransactWriteItemsError::TransactionCanceledException(c)) = e.as_service_error() {
        let mut failed = Vec::new();
        let mut other = false;
        for (i, r) in c.cancellation_reasons().iter().enumerate() {
            match r.code() {
                None | Some("None") | Some("") => {}
                Some("ConditionalCheckFailed") => failed.push(i),
                Some("ValidationError") => {
                    return Err(PortError::Refused(format!(
                        "item {i} of the transaction: {}",
                        r.message().unwrap_or("ValidationError")
                    )));
                }
                Some(_) => other = true,
            }
        }
        if !other && !failed.is_empty() {
            return Ok(failed);
        }
    }
    Err(backend(e))
}
