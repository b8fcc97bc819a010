//! What `lambda` steps' functions logged while they ran attempts, read back from
//! CloudWatch Logs (`braid logs --stack`): the [`FunctionOutput`] of a stack.
//!
//! The step dispatcher logs every invocation it makes — `invoked a function`, with the
//! attempt ([`invocation_mark`]), the function and the request id Lambda gave it. An
//! attempt's lines are then found in three reads, all from a minute before the
//! attempt's start to twenty after it:
//! 1. the dispatcher's line for the attempt, in the dispatcher's log group: the
//!    function and the request id;
//! 2. the lines naming that request id in the function's log group
//!    (`/aws/lambda/<name>`): Lambda's `START`, `END` and `REPORT` lines, and every
//!    line of a function logging JSON. They tell the log stream (one execution
//!    environment, which runs one invocation at a time) and when the invocation began
//!    and ended;
//! 3. every line of that stream between those two instants, whatever its format.
//!
//! Nothing is found for a function logging elsewhere than its default log group, or
//! for lines past the group's retention: `braid logs` then shows the attempts alone.

use crate::lambda::invocation_mark;
use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;
use braid_engine::model::Timestamp;
use braid_engine::timeline::Stream;
use braid_ports::{FunctionOutput, Invocation, OutputLine, PortError, PortResult};
use chrono::{DateTime, Duration};
use serde_json::Value;

/// The most lines read for one attempt.
const MAX_LINES: usize = 10_000;

/// How far around an attempt's start its lines are looked for: before, for clocks
/// apart; after, for the longest a function runs (15 minutes) and then some.
const BEFORE: Duration = Duration::minutes(1);
const AFTER: Duration = Duration::minutes(20);

/// Reads functions' lines from CloudWatch Logs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CloudWatchOutput {
    client: Client,
    /// The step dispatcher's log group.
    dispatcher: String,
}

impl CloudWatchOutput {
    pub fn new(client: Client, dispatcher_log_group: impl Into<String>) -> Self {
        CloudWatchOutput {
            client,
            dispatcher: dispatcher_log_group.into(),
        }
    }

    /// The events of `group` (of `stream` only, when given) matching `pattern` between
    /// `from` and `to` (inclusive), oldest first; none when the group does not exist.
    async fn events(
        &self,
        group: &str,
        stream: Option<&str>,
        pattern: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> PortResult<Vec<FilteredLogEvent>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .filter_log_events()
                .log_group_name(group)
                .set_log_stream_names(stream.map(|s| vec![s.to_string()]))
                .filter_pattern(pattern)
                .start_time(from.timestamp_millis())
                .end_time(to.timestamp_millis())
                .set_next_token(token)
                .send()
                .await;
            let page = match page {
                Ok(p) => p,
                Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(out),
                Err(e) => {
                    return Err(PortError::Backend {
                        message: format!(
                            "cannot read log group `{group}`: {}",
                            DisplayErrorContext(&e)
                        ),
                        source: Some(Box::new(e)),
                    });
                }
            };
            out.extend(page.events().iter().cloned());
            token = page.next_token().map(str::to_string);
            if token.is_none() || out.len() >= MAX_LINES {
                break;
            }
        }
        out.sort_by_key(|e| e.timestamp().unwrap_or_default());
        out.truncate(MAX_LINES);
        Ok(out)
    }
}

#[async_trait]
impl FunctionOutput for CloudWatchOutput {
    async fn lines(&self, call: &Invocation, started: Timestamp) -> PortResult<Vec<OutputLine>> {
        let (from, to) = (started - BEFORE, started + AFTER);
        let mark = quoted(&invocation_mark(call));
        let logged = self.events(&self.dispatcher, None, &mark, from, to).await?;
        let Some((function, request_id)) = logged
            .iter()
            .find_map(|e| invoked(e.message().unwrap_or_default()))
        else {
            return Ok(Vec::new());
        };
        let group = format!("/aws/lambda/{}", function_name(&function));
        let marked = self
            .events(&group, None, &quoted(&request_id), from, to)
            .await?;
        let Some(stream) = marked.first().and_then(|e| e.log_stream_name()) else {
            return Ok(Vec::new());
        };
        let times = marked
            .iter()
            .filter(|e| e.log_stream_name() == Some(stream))
            .filter_map(FilteredLogEvent::timestamp);
        let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
            return Ok(Vec::new());
        };
        let (first, last) = (millis(first), millis(last));
        let lines = self.events(&group, Some(stream), "", first, last).await?;
        Ok(lines
            .iter()
            .map(|e| OutputLine {
                at: e.timestamp().map_or(first, millis),
                stream: Stream::Stdout,
                text: e.message().unwrap_or_default().trim_end().to_string(),
            })
            .collect())
    }
}

/// A CloudWatch Logs filter pattern matching `text` as it is.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\\\""))
}

fn millis(ms: i64) -> Timestamp {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The function and request id of the dispatcher's `invoked a function` line: a JSON
/// log line's fields, or a text line's `function=... request_id=...`.
fn invoked(message: &str) -> Option<(String, String)> {
    if let Ok(line) = serde_json::from_str::<Value>(message.trim()) {
        let fields = &line["fields"];
        return Some((
            fields["function"].as_str()?.to_string(),
            fields["request_id"].as_str()?.to_string(),
        ));
    }
    let value = |key: &str| {
        message
            .split_whitespace()
            .find_map(|word| word.strip_prefix(key))
            .map(|v| v.trim_matches('"').to_string())
    };
    Some((value("function=")?, value("request_id=")?))
}

/// The name of the function `function` (a name, `name:qualifier`, or an ARN) names:
/// its log group's.
fn function_name(function: &str) -> &str {
    // arn:partition:lambda:region:account:function:name[:qualifier], or the partial
    // account:function:name[:qualifier]; else name[:qualifier].
    let named = match function.split_once(":function:") {
        Some((_, rest)) => rest,
        None => function,
    };
    named.split(':').next().unwrap_or(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatchers_line_names_the_function_and_request_id_in_json_or_text() {
        let json = r#"{"level":"INFO","fields":{"message":"invoked a function","invocation":"[r s attempt 1]","function":"braid-orders","request_id":"abc-1"},"spans":[]}"#;
        let want = Some(("braid-orders".to_string(), "abc-1".to_string()));
        assert_eq!(invoked(json), want);
        let text = "INFO dispatch{run=r}: invoked a function invocation=[r s attempt 1] function=\"braid-orders\" request_id=\"abc-1\"";
        assert_eq!(invoked(text), want);
        assert_eq!(invoked("something else"), None);
    }

    #[test]
    fn a_functions_log_group_is_named_by_its_bare_name() {
        assert_eq!(function_name("braid-orders"), "braid-orders");
        assert_eq!(function_name("braid-orders:live"), "braid-orders");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:braid-orders:7"),
            "braid-orders"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:braid-orders"),
            "braid-orders"
        );
        assert_eq!(
            function_name("123456789012:function:braid-orders:live"),
            "braid-orders"
        );
    }

    #[test]
    fn attempts_are_marked_apart() {
        let one = invocation_mark(&Invocation::new("r", "s", 1));
        let ten = invocation_mark(&Invocation::new("r", "s", 10));
        assert!(!ten.contains(&one));
        assert_eq!(quoted("a \"b\""), "\"a \\\"b\\\"\"");
    }
}
