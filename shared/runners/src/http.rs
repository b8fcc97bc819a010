//! The runner for `http` steps.
//!
//! The step's output is `{"status": 200, "headers": {...}, "body": ...}`:
//! - `headers` maps each lowercase header name to its value (repeated headers are joined
//!   with `, `);
//! - `body` is parsed JSON when the response says it is JSON (`application/json`,
//!   `*/*+json`) and parses, or when it is an object or array that parses whatever its
//!   content type; an empty body is `null`; anything else is text (invalid UTF-8 is
//!   replaced with U+FFFD).
//!
//! # Errors
//!
//! A failed attempt is a [`TaskError`] named after what went wrong:
//!
//! | error | when | retryable |
//! |---|---|---|
//! | `http.status_<code>` (e.g. `http.status_503`) | the status is not in `expect` (default: any 2xx) | for 5xx, 408 and 429 |
//! | `http.timeout` | no complete response within the timeout (default 30s) | yes |
//! | `http.connect` | the connection could not be made (refused, DNS, TLS) | yes |
//! | `http.transport` | the connection broke while sending or receiving | yes |
//! | `http.redirect` | too many redirects | no |
//! | `http.invalid_request` | a bad method, URL or header, or both `json` and `body` | no |
//! | `runner.unsupported_task` | the task is not an HTTP task | no |
//!
//! Messages name the method and the URL without its query string or credentials, which
//! may carry secrets.

use super::error_chain;
use async_trait::async_trait;
use braid_ports::{Task, TaskError, TaskRunner};
use indexmap::IndexMap;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Method, StatusCode, Url, redirect};
use serde_json::{Map, Value, json};
use std::time::{Duration, SystemTime};

/// The request time limit when the step sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a response body an error message quotes.
const BODY_EXCERPT_CHARS: usize = 300;

const USER_AGENT: &str = concat!("braid/", env!("CARGO_PKG_VERSION"));

/// Runs [`Task::Http`] tasks. Cheap to clone: clones share connection pools.
#[derive(Clone, Debug)]
pub struct HttpRunner {
    /// Follows up to 10 redirects.
    client: Client,
    /// Never follows redirects: used when the step expects a 3xx status, which it could
    /// not otherwise see.
    no_redirects: Client,
}

impl HttpRunner {
    /// A runner with its own connection pools.
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(HttpRunner {
            client: Client::builder().user_agent(USER_AGENT).build()?,
            no_redirects: Client::builder()
                .user_agent(USER_AGENT)
                .redirect(redirect::Policy::none())
                .build()?,
        })
    }

    /// Sends one request and classifies the outcome.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        method: &str,
        url: &str,
        headers: &IndexMap<String, String>,
        json: Option<&Value>,
        body: Option<&str>,
        timeout: Option<Duration>,
        expect: Option<&[u16]>,
    ) -> Result<Value, TaskError> {
        let method = Method::from_bytes(method.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| invalid(format!("`{method}` is not an HTTP method")))?;
        let parsed = Url::parse(url).map_err(|e| invalid(format!("bad URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "bad URL: the scheme must be http or https, not `{}`",
                parsed.scheme()
            )));
        }
        let what = format!("{method} {}", redacted(&parsed));
        let header_map = header_map(headers)?;

        let expects_redirect = expect.is_some_and(|e| e.iter().any(|s| (300..400).contains(s)));
        let client = if expects_redirect {
            &self.no_redirects
        } else {
            &self.client
        };
        let mut request = client
            .request(method, parsed)
            .headers(header_map)
            .timeout(timeout.unwrap_or(DEFAULT_TIMEOUT));
        request = match (json, body) {
            (Some(_), Some(_)) => return Err(invalid("set either `json` or `body`, not both")),
            // `json` sets `content-type: application/json` unless a header already did.
            (Some(value), None) => request.json(value),
            (None, Some(text)) => request.body(text.to_string()),
            (None, None) => request,
        };

        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&what, e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let headers = headers_json(response.headers());
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(&what, e))?;
        let body = body_json(content_type.as_deref(), &bytes);

        let ok = match expect {
            Some(codes) => codes.contains(&status.as_u16()),
            None => status.is_success(),
        };
        if !ok {
            let mut error = status_error(&what, status, expect, &body);
            error.retry_after = retry_after.filter(|_| error.retryable);
            return Err(error);
        }
        Ok(json!({ "status": status.as_u16(), "headers": headers, "body": body }))
    }
}

#[async_trait]
impl TaskRunner for HttpRunner {
    async fn run(&self, task: &Task) -> Result<Value, TaskError> {
        match task {
            Task::Http {
                method,
                url,
                headers,
                json,
                body,
                timeout,
                expect,
            } => {
                self.call(
                    method,
                    url,
                    headers,
                    json.as_ref(),
                    body.as_deref(),
                    *timeout,
                    expect.as_deref(),
                )
                .await
            }
            Task::Lambda { .. } => Err(TaskError::fatal(
                "runner.unsupported_task",
                "the HTTP runner cannot run a lambda task",
            )),
        }
    }
}

/// Whether another attempt may get a different answer: the server is failing (5xx),
/// the request timed out (408) or was throttled (429).
pub fn status_is_retryable(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

fn invalid(message: impl Into<String>) -> TaskError {
    TaskError::fatal("http.invalid_request", message)
}

fn header_map(headers: &IndexMap<String, String>) -> Result<HeaderMap, TaskError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("`{name}` is not a valid header name")))?;
        // The value is not quoted: it may be a secret.
        let value = HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("the value of header `{name}` is not valid")))?;
        map.append(header, value);
    }
    Ok(map)
}

/// The URL without credentials, query or fragment.
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

fn transport_error(what: &str, e: reqwest::Error) -> TaskError {
    // The URL in reqwest's message may carry secrets in its query string.
    let e = e.without_url();
    let detail = error_chain(&e);
    if e.is_timeout() {
        TaskError::retryable("http.timeout", format!("{what}: timed out ({detail})"))
    } else if e.is_connect() {
        TaskError::retryable(
            "http.connect",
            format!("{what}: could not connect: {detail}"),
        )
    } else if e.is_redirect() {
        TaskError::fatal("http.redirect", format!("{what}: {detail}"))
    } else if e.is_builder() {
        invalid(format!("{what}: {detail}"))
    } else {
        TaskError::retryable("http.transport", format!("{what}: {detail}"))
    }
}

fn status_error(what: &str, status: StatusCode, expect: Option<&[u16]>, body: &Value) -> TaskError {
    let code = status.as_u16();
    let reason = status
        .canonical_reason()
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let expected = match expect {
        Some(codes) => {
            let list: Vec<String> = codes.iter().map(u16::to_string).collect();
            format!("expected {}", list.join(", "))
        }
        None => "expected a 2xx status".to_string(),
    };
    let mut message = format!("{what} returned {code}{reason} ({expected})");
    let excerpt = match body {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if !excerpt.trim().is_empty() {
        message.push_str(": ");
        message.extend(excerpt.trim().chars().take(BODY_EXCERPT_CHARS));
        if excerpt.trim().chars().count() > BODY_EXCERPT_CHARS {
            message.push('…');
        }
    }
    TaskError {
        error: format!("http.status_{code}"),
        message,
        retryable: status_is_retryable(code),
        retry_after: None,
    }
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date (none once
/// past). A value that is neither is ignored.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out.insert(name.as_str().to_string(), Value::String(values.join(", ")));
    }
    Value::Object(out)
}

/// Whether a content type names JSON: `application/json`, `application/problem+json`…
pub fn is_json_content_type(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || mime == "text/json" || mime.ends_with("+json")
}

/// The response body as a step sees it (see the module docs).
pub fn body_json(content_type: Option<&str>, bytes: &[u8]) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    let declared_json = content_type.is_some_and(is_json_content_type);
    let looks_structured = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    if (declared_json || looks_structured)
        && let Ok(value) = serde_json::from_slice(bytes)
    {
        return value;
    }
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("application/problem+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/jsonp"));
    }

    #[test]
    fn bodies_are_parsed_when_they_are_json() {
        assert_eq!(body_json(Some("application/json"), b"42"), json!(42));
        assert_eq!(body_json(Some("text/plain"), b"42"), json!("42"));
        assert_eq!(body_json(None, br#" {"a": 1}"#), json!({"a": 1}));
        assert_eq!(body_json(Some("text/plain"), b"[1, 2]"), json!([1, 2]));
        assert_eq!(
            body_json(Some("application/json"), b"{oops"),
            json!("{oops")
        );
        assert_eq!(body_json(Some("application/json"), b""), Value::Null);
        assert_eq!(body_json(None, b"hello"), json!("hello"));
    }

    #[test]
    fn urls_in_messages_lose_credentials_and_query() {
        let url = Url::parse("https://user:pw@example.com/a/b?token=s3cret#x").unwrap();
        assert_eq!(redacted(&url), "https://example.com/a/b");
    }

    #[test]
    fn server_errors_timeouts_and_throttling_are_retryable() {
        for code in [500, 502, 503, 504, 408, 429] {
            assert!(status_is_retryable(code), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422, 200, 301] {
            assert!(!status_is_retryable(code), "{code}");
        }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&h)
        };
        assert_eq!(with("7"), Some(Duration::from_secs(7)));
        assert_eq!(with(" 0 "), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let wait = with(&later).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        assert_eq!(with("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn status_errors_quote_a_short_body_excerpt() {
        let long = "x".repeat(1000);
        let e = status_error(
            "GET http://h/",
            StatusCode::NOT_FOUND,
            None,
            &Value::String(long),
        );
        assert_eq!(e.error, "http.status_404");
        assert!(!e.retryable);
        assert!(
            e.message
                .starts_with("GET http://h/ returned 404 Not Found (expected a 2xx status): xxx")
        );
        assert!(e.message.chars().count() < 400);
    }
}
