//! An example Lambda function for Braid's example workflows and tests.
//!
//! The input is a JSON object `{"op": NAME, ...}`:
//!
//! | op | input | output |
//! |---|---|---|
//! | `echo` | anything | the input, unchanged |
//! | `split` | `{"items": [...], "size": n}` | `{"chunks": [[...], ...]}` (chunks of at most `n`) |
//! | `price` | `{"chunk": [numbers]}` | `{"total": sum, "count": n}` |
//! | `sum` | `{"values": [numbers]}` | `{"total": sum}` |
//! | `flaky` | `{"key": "k", "fail_times": n}` | fails with `Flaky` the first `n` calls for `k` in this process, then `{"key", "attempts"}` |
//! | `fail` | `{"error"?: TYPE, "message"?: TEXT}` | always fails (error type `Fail` unless given) |
//! | `sleep` | `{"ms": n}` | `{"slept_ms": n}` after sleeping |
//! | `exit` | `{"code"?: n}` | ends the process (a crash, as seen by the runtime) |
//! | `report-back` | `{"result": v, "after_ms"?: n, "callback": {"url"}}` | `{"accepted": true}` at once; `after_ms` later (default 100) it posts `{"output": v}` to the callback URL, as a long job reports its end |
//!
//! Errors reach the Lambda runtime as a [`Diagnostic`] whose `errorType` is the
//! [`OpError`] variant's name, so callers can tell them apart.
//!
//! # Layout
//! - this file: the ops over JSON ([`Worker::handle`]);
//! - `main.rs`: the Lambda runtime around them.

use lambda_runtime::Diagnostic;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    BadInput(String),
    #[error(
        "unknown op `{0}`; expected one of echo, split, price, sum, flaky, fail, sleep, exit, report-back"
    )]
    UnknownOp(String),
    #[error("key `{key}` failed on purpose (attempt {attempt} of {fail_times} planned failures)")]
    Flaky {
        key: String,
        attempt: u64,
        fail_times: u64,
    },
    /// The `fail` op: the caller picks the error type and message.
    #[error("{message}")]
    Requested { error_type: String, message: String },
}

impl OpError {
    /// The `errorType` the function reports.
    pub fn error_type(&self) -> &str {
        match self {
            OpError::BadInput(_) => "BadInput",
            OpError::UnknownOp(_) => "UnknownOp",
            OpError::Flaky { .. } => "Flaky",
            OpError::Requested { error_type, .. } => error_type,
        }
    }
}

impl From<OpError> for Diagnostic {
    fn from(e: OpError) -> Diagnostic {
        Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// The handler and the state it keeps while the process stays warm.
#[derive(Debug, Default)]
pub struct Worker {
    /// Calls seen so far per `flaky` key.
    flaky_calls: Mutex<HashMap<String, u64>>,
}

impl Worker {
    /// Runs one invocation.
    pub async fn handle(&self, input: Value) -> Result<Value, OpError> {
        let op = input
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| OpError::BadInput("the input needs a string field `op`".into()))?;
        match op {
            "echo" => Ok(input),
            "split" => split(&input),
            "price" => {
                let chunk = numbers(&input, "chunk")?;
                Ok(json!({ "total": total(&chunk), "count": chunk.len() }))
            }
            "sum" => Ok(json!({ "total": total(&numbers(&input, "values")?) })),
            "flaky" => self.flaky(&input),
            "fail" => Err(OpError::Requested {
                error_type: optional_str(&input, "error")?.unwrap_or("Fail").to_string(),
                message: optional_str(&input, "message")?
                    .unwrap_or("failed on purpose")
                    .to_string(),
            }),
            "sleep" => {
                let ms = unsigned(&input, "ms")?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!({ "slept_ms": ms }))
            }
            "report-back" => report_back(&input),
            "exit" => {
                let code = input.get("code").and_then(Value::as_i64).unwrap_or(1);
                std::process::exit(i32::try_from(code).unwrap_or(1));
            }
            other => Err(OpError::UnknownOp(other.to_string())),
        }
    }

    fn flaky(&self, input: &Value) -> Result<Value, OpError> {
        let key = optional_str(input, "key")?
            .ok_or_else(|| OpError::BadInput("`flaky` needs a string field `key`".into()))?;
        let fail_times = unsigned(input, "fail_times")?;
        // The lock is never held across an await, and a poisoned map is still usable:
        // counters only grow.
        let mut calls = self
            .flaky_calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let attempt = calls.entry(key.to_string()).or_insert(0);
        *attempt += 1;
        if *attempt <= fail_times {
            return Err(OpError::Flaky {
                key: key.to_string(),
                attempt: *attempt,
                fail_times,
            });
        }
        Ok(json!({ "key": key, "attempts": *attempt }))
    }
}

fn split(input: &Value) -> Result<Value, OpError> {
    let items = input
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| OpError::BadInput("`split` needs a list field `items`".into()))?;
    let size = usize::try_from(unsigned(input, "size")?).unwrap_or(usize::MAX);
    if size == 0 {
        return Err(OpError::BadInput("`size` must be at least 1".into()));
    }
    let chunks: Vec<Value> = items
        .chunks(size)
        .map(|c| Value::Array(c.to_vec()))
        .collect();
    Ok(json!({ "chunks": chunks }))
}

fn numbers(input: &Value, field: &str) -> Result<Vec<Value>, OpError> {
    let list = input
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| OpError::BadInput(format!("the input needs a list field `{field}`")))?;
    for (i, v) in list.iter().enumerate() {
        if !v.is_number() {
            return Err(OpError::BadInput(format!(
                "`{field}[{i}]` is {v}, not a number"
            )));
        }
    }
    Ok(list.clone())
}

/// Sums numbers, staying an integer while every value is one.
fn total(values: &[Value]) -> Value {
    let ints: Option<Vec<i64>> = values.iter().map(Value::as_i64).collect();
    if let Some(ints) = ints
        && let Some(sum) = ints.iter().try_fold(0i64, |acc, v| acc.checked_add(*v))
    {
        return json!(sum);
    }
    json!(values.iter().filter_map(Value::as_f64).sum::<f64>())
}

fn unsigned(input: &Value, field: &str) -> Result<u64, OpError> {
    input
        .get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| OpError::BadInput(format!("the input needs a whole number field `{field}`")))
}

fn optional_str<'a>(input: &'a Value, field: &str) -> Result<Option<&'a str>, OpError> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(OpError::BadInput(format!(
            "`{field}` must be a string, not {other}"
        ))),
    }
}

/// Accepts a job that reports its result to the step's callback URL later, from a
/// task of its own: the invocation ends at once, the step waits for the callback.
fn report_back(input: &Value) -> Result<Value, OpError> {
    let url = input["callback"]["url"]
        .as_str()
        .ok_or_else(|| {
            OpError::BadInput(
                "`report-back` needs `callback.url`: give the step a `callback`".into(),
            )
        })?
        .to_string();
    let after = Duration::from_millis(input.get("after_ms").and_then(Value::as_u64).unwrap_or(100));
    let body = json!({ "output": input.get("result").cloned().unwrap_or(Value::Null) });
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let sent = reqwest::Client::new().post(&url).json(&body).send().await;
        if let Err(e) = sent.and_then(reqwest::Response::error_for_status) {
            eprintln!("report-back: posting the result failed: {e}");
        }
    });
    Ok(json!({ "accepted": true }))
}

/// Builds an `{"op": ..}` input; handy in tests and examples.
pub fn op(name: &str, fields: Value) -> Value {
    let mut map = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    map.insert("op".into(), json!(name));
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(input: Value) -> Result<Value, OpError> {
        Worker::default().handle(input).await
    }

    #[tokio::test]
    async fn echo_returns_its_input() {
        let input = op("echo", json!({"x": [1, 2]}));
        assert_eq!(run(input.clone()).await.unwrap(), input);
    }

    #[tokio::test]
    async fn split_makes_chunks_of_the_given_size() {
        let out = run(op("split", json!({"items": [1, 2, 3, 4, 5], "size": 2})))
            .await
            .unwrap();
        assert_eq!(out, json!({"chunks": [[1, 2], [3, 4], [5]]}));
    }

    #[tokio::test]
    async fn split_rejects_a_zero_size() {
        let err = run(op("split", json!({"items": [1], "size": 0})))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "BadInput");
    }

    #[tokio::test]
    async fn price_totals_and_counts_a_chunk() {
        let out = run(op("price", json!({"chunk": [1, 2, 3.5]})))
            .await
            .unwrap();
        assert_eq!(out, json!({"total": 6.5, "count": 3}));
        let out = run(op("price", json!({"chunk": [10, 20]}))).await.unwrap();
        assert_eq!(out, json!({"total": 30, "count": 2}));
    }

    #[tokio::test]
    async fn sum_adds_values_and_rejects_non_numbers() {
        assert_eq!(
            run(op("sum", json!({"values": [1, 2, 3]}))).await.unwrap(),
            json!({"total": 6})
        );
        let err = run(op("sum", json!({"values": [1, "x"]})))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("values[1]"), "{err}");
    }

    #[tokio::test]
    async fn flaky_fails_the_planned_number_of_times_per_key() {
        let worker = Worker::default();
        let input = op("flaky", json!({"key": "a", "fail_times": 2}));
        for _ in 0..2 {
            let err = worker.handle(input.clone()).await.unwrap_err();
            assert_eq!(err.error_type(), "Flaky");
        }
        assert_eq!(
            worker.handle(input).await.unwrap(),
            json!({"key": "a", "attempts": 3})
        );
        // Another key has its own count.
        let other = op("flaky", json!({"key": "b", "fail_times": 1}));
        assert!(worker.handle(other).await.is_err());
    }

    #[tokio::test]
    async fn fail_uses_the_requested_error_type() {
        let err = run(op("fail", json!({}))).await.unwrap_err();
        assert_eq!(err.error_type(), "Fail");
        let err = run(op("fail", json!({"error": "Boom", "message": "no"})))
            .await
            .unwrap_err();
        let diag = Diagnostic::from(err);
        assert_eq!(diag.error_type, "Boom");
        assert_eq!(diag.error_message, "no");
    }

    #[tokio::test]
    async fn sleep_reports_how_long_it_slept() {
        let out = run(op("sleep", json!({"ms": 5}))).await.unwrap();
        assert_eq!(out, json!({"slept_ms": 5}));
    }

    #[tokio::test]
    async fn unknown_and_missing_ops_are_errors() {
        let err = run(op("nope", json!({}))).await.unwrap_err();
        assert_eq!(err.error_type(), "UnknownOp");
        let err = run(json!({"x": 1})).await.unwrap_err();
        assert_eq!(err.error_type(), "BadInput");
    }
}
