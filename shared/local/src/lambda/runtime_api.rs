//! Runs a Lambda function's own binary locally, under the Lambda Runtime API.
//!
//! Each execution environment is a child process plus a small HTTP server on
//! `127.0.0.1:<port>` that speaks the Runtime API (`/2018-06-01/runtime/...`) to it, the
//! way Lambda's own runtime interface does:
//!
//! - `GET  /2018-06-01/runtime/invocation/next` long-polls for the next invocation and
//!   answers with the payload and the `Lambda-Runtime-Aws-Request-Id`,
//!   `Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Invoked-Function-Arn` and
//!   `Lambda-Runtime-Trace-Id` headers;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` answer it;
//! - `POST /2018-06-01/runtime/init/error` reports a failed start.
//!
//! The process gets `AWS_LAMBDA_RUNTIME_API` and the variables `lambda_runtime` reads
//! (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`,
//! `AWS_LAMBDA_FUNCTION_VERSION`, `AWS_LAMBDA_LOG_GROUP_NAME`,
//! `AWS_LAMBDA_LOG_STREAM_NAME`, `AWS_LAMBDA_INITIALIZATION_TYPE`) on top of Braid's own
//! environment and the function's `env`. Its stdout lines are logged at INFO and its
//! stderr lines at WARN (target `braid::function`), so they never mix with Braid's
//! stdout; given an [`OutputFile`], they are also kept for that invocation (see
//! [`crate::output`]). Lines a process writes after answering still go to the last
//! invocation's file, as late lines reach the same log stream on Lambda.
//!
//! Like Lambda, environments start on first use and stay warm: state a function keeps
//! in memory survives from one invocation to the next. One environment runs one
//! invocation at a time; up to `concurrency` environments run side by side. An
//! environment whose process exits, crashes, times out or fails to start is thrown away
//! (its process killed) and the next invocation starts a fresh one. Dropping the runner
//! kills every process it started.

use super::{excerpt, function_error, payload_value};
use crate::output::OutputFile;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use braid_engine::timeline::Stream;
use braid_lang::format_duration;
use braid_ports::TaskError;
use indexmap::IndexMap;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};

/// How long an invocation may run when the function map sets no `timeout`: Lambda's
/// maximum. The step's own `timeout` applies on top.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long a started process may take to ask for its first invocation when the map
/// sets no `init_timeout`: Lambda's init phase limit.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` when the map sets no `memory`: Lambda's default.
pub const DEFAULT_MEMORY_MB: u32 = 128;

/// The largest response Lambda accepts from a synchronous invocation.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// How many stderr lines a crash report quotes.
const STDERR_TAIL_LINES: usize = 10;

/// How to launch a function and what it may use.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSpec {
    /// The program: a path, or a bare name looked up in `PATH`.
    pub command: PathBuf,
    pub args: Vec<String>,
    /// Set on top of Braid's own environment and the Lambda variables.
    pub env: IndexMap<String, String>,
    /// The most one invocation may take, counted from when the function picks it up.
    pub timeout: Duration,
    /// The most a new process may take to pick up its first invocation.
    pub init_timeout: Duration,
    pub memory_mb: u32,
    /// How many processes may run invocations side by side (at least 1).
    pub concurrency: usize,
}

impl ProcessSpec {
    /// Runs `command` with no arguments and the defaults above, one process at a time.
    pub fn new(command: impl Into<PathBuf>) -> Self {
        ProcessSpec {
            command: command.into(),
            args: Vec::new(),
            env: IndexMap::new(),
            timeout: DEFAULT_TIMEOUT,
            init_timeout: DEFAULT_INIT_TIMEOUT,
            memory_mb: DEFAULT_MEMORY_MB,
            concurrency: 1,
        }
    }
}

/// Runs one function's invocations on locally launched processes (see the module docs).
///
/// Routing invocations by function name is [`super::LambdaRunner`]'s job.
pub struct RuntimeApiRunner {
    name: String,
    arn: String,
    spec: ProcessSpec,
    /// One permit per environment that may exist at once.
    slots: Semaphore,
    /// Warm environments waiting for work. The most recently used is reused first, so
    /// a function called one call at a time always lands on the same warm process.
    idle: Mutex<Vec<Environment>>,
}

impl std::fmt::Debug for RuntimeApiRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApiRunner")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl RuntimeApiRunner {
    /// A runner for the function `name`. Nothing starts until the first invocation.
    pub fn new(name: impl Into<String>, spec: ProcessSpec) -> Self {
        let name = name.into();
        let concurrency = spec.concurrency.max(1);
        RuntimeApiRunner {
            arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{name}"),
            name,
            spec,
            slots: Semaphore::new(concurrency),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    /// Invokes the function synchronously and returns its response; the process's
    /// output lines go to `output` meanwhile, when given.
    ///
    /// Cancel-safe: dropping the future mid-invocation kills the process that was
    /// running it (its state is unknown), as Lambda does after a timeout.
    pub async fn invoke(
        &self,
        payload: &Value,
        output: Option<OutputFile>,
        client_context: Option<String>,
    ) -> Result<Value, TaskError> {
        let _slot = self.slots.acquire().await.map_err(|_| {
            TaskError::retryable("lambda.runtime_api", "the runner is shutting down")
        })?;
        let mut env = match self.take_idle() {
            Some(env) => env,
            None => self.start().await?,
        };
        *lock(&env.output) = output;
        let result = env
            .invoke(&self.name, &self.spec, payload, client_context)
            .await;
        if env.reusable {
            self.lock_idle().push(env);
        }
        result
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Environment>> {
        // The list stays consistent even if a holder panicked: pushes and pops only.
        lock(&self.idle)
    }

    /// A warm environment whose process is still alive, if any.
    fn take_idle(&self) -> Option<Environment> {
        let mut idle = self.lock_idle();
        while let Some(mut env) = idle.pop() {
            match env.child.try_wait() {
                Ok(None) => return Some(env),
                Ok(Some(status)) => {
                    tracing::warn!(function = %self.name, %status, "the function's process exited while idle; starting a new one");
                }
                Err(e) => {
                    tracing::warn!(function = %self.name, error = %e, "cannot check the function's process; starting a new one");
                }
            }
        }
        None
    }

    /// Opens a Runtime API port and launches the function against it.
    async fn start(&self) -> Result<Environment, TaskError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| self.api_error(e))?;
        let port = listener.local_addr().map_err(|e| self.api_error(e))?.port();

        // Capacity 1: the runner hands over one invocation at a time.
        let (invocations, next) = mpsc::channel(1);
        let (events_tx, events) = mpsc::unbounded_channel();
        let api = Arc::new(RuntimeApi {
            arn: self.arn.clone(),
            timeout: self.spec.timeout,
            next: tokio::sync::Mutex::new(next),
            current: Mutex::new(None),
            events: events_tx,
        });
        let function = self.name.clone();
        let server = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router(api)).await {
                tracing::warn!(%function, error = %e, "the local Runtime API stopped");
            }
        }));

        let mut command = Command::new(&self.spec.command);
        command
            .args(&self.spec.args)
            // The runtime must run one invocation at a time in each environment.
            .env_remove("AWS_LAMBDA_MAX_CONCURRENCY")
            .envs(lambda_env(&self.name, &self.spec))
            .envs(&self.spec.env)
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            TaskError::fatal(
                "lambda.spawn",
                format!(
                    "cannot start function `{}`: `{}`: {e}; build it first or fix its `command`",
                    self.name,
                    self.spec.command.display()
                ),
            )
        })?;
        tracing::debug!(function = %self.name, pid = child.id(), port, "started a function process");

        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let output = Arc::new(Mutex::new(None));
        let mut log_readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            log_readers.push(forward_lines(
                stdout,
                self.name.clone(),
                output.clone(),
                None,
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            log_readers.push(forward_lines(
                stderr,
                self.name.clone(),
                output.clone(),
                Some(stderr_tail.clone()),
            ));
        }
        Ok(Environment {
            child,
            invocations,
            events,
            stderr_tail,
            output,
            log_readers,
            reusable: true,
            _server: server,
        })
    }

    fn api_error(&self, e: std::io::Error) -> TaskError {
        TaskError::retryable(
            "lambda.runtime_api",
            format!(
                "cannot serve the Runtime API for function `{}`: {e}",
                self.name
            ),
        )
    }
}

/// The variables Lambda sets for a function and `lambda_runtime` reads.
fn lambda_env(name: &str, spec: &ProcessSpec) -> Vec<(&'static str, String)> {
    let stream = format!(
        "{}/[$LATEST]{:032x}",
        chrono::Utc::now().format("%Y/%m/%d"),
        fastrand::u128(..)
    );
    vec![
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
        // Its output becomes Braid's log lines: no colour codes.
        ("NO_COLOR", "1".to_string()),
    ]
}

/// Logs each line of a process's output and keeps it in the current invocation's
/// file; keeps the last stderr lines (`tail`) for crash reports.
fn forward_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    function: String,
    output: SharedOutput,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end();
            if let Some(file) = lock(&output).as_mut() {
                let stream = match tail {
                    None => Stream::Stdout,
                    Some(_) => Stream::Stderr,
                };
                file.write(stream, line);
            }
            match &tail {
                None => tracing::info!(target: "braid::function", %function, "{line}"),
                Some(tail) => {
                    tracing::warn!(target: "braid::function", %function, "{line}");
                    let mut tail = lock(tail);
                    if tail.len() == STDERR_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.to_string());
                }
            }
        }
    })
}

/// Where an environment's output lines go: the file of the invocation it runs.
type SharedOutput = Arc<Mutex<Option<OutputFile>>>;

/// `m` locked, even if a holder panicked: every value it guards stays whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One execution environment: a process and the Runtime API serving it.
///
/// Dropping it kills the process (`kill_on_drop`), stops the server, and releases a
/// pending `next` poll (its invocation channel closes).
struct Environment {
    child: Child,
    invocations: mpsc::Sender<Invocation>,
    events: mpsc::UnboundedReceiver<Event>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    output: SharedOutput,
    log_readers: Vec<JoinHandle<()>>,
    /// False once the process is in a state no later invocation should inherit.
    reusable: bool,
    _server: AbortOnDrop,
}

/// What ended a wait on an environment.
enum Wake {
    Event(Option<Event>),
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
}

impl Environment {
    async fn invoke(
        &mut self,
        function: &str,
        spec: &ProcessSpec,
        payload: &Value,
        client_context: Option<String>,
    ) -> Result<Value, TaskError> {
        // Until proven otherwise: every early return below leaves the process in an
        // unknown state, and so does a cancelled future.
        self.reusable = false;
        let request_id = request_id();
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload: Bytes::from(payload.to_string()),
            client_context,
        };
        if self.invocations.send(invocation).await.is_err() {
            return Err(TaskError::retryable(
                "lambda.runtime_api",
                format!("the Runtime API for function `{function}` stopped"),
            ));
        }

        // Phase 1: the function asks for work. A warm process is already waiting; a new
        // one has `init_timeout` to get there.
        let pickup = Instant::now() + spec.init_timeout;
        let deadline = loop {
            match self.wait(pickup).await {
                Wake::Event(Some(Event::Started {
                    request_id: id,
                    deadline,
                })) if id == request_id => {
                    break deadline;
                }
                Wake::Event(Some(Event::InitError {
                    error_type,
                    message,
                })) => {
                    return Err(init_error(function, &error_type, &message));
                }
                Wake::Event(Some(_)) => continue,
                Wake::Event(None) => return Err(server_gone(function)),
                Wake::Exited(status) => return Err(self.crashed(function, status).await),
                Wake::TimedOut => {
                    return Err(TaskError::retryable(
                        "lambda.init_timeout",
                        format!(
                            "function `{function}` did not ask for work within {} of starting (its `init_timeout`)",
                            format_duration(spec.init_timeout)
                        ),
                    ));
                }
            }
        };

        // Phase 2: the function answers before its deadline.
        loop {
            match self.wait(deadline).await {
                Wake::Event(Some(Event::Response {
                    request_id: id,
                    body,
                })) if id == request_id => {
                    self.reusable = true;
                    return Ok(payload_value(&body));
                }
                Wake::Event(Some(Event::Error {
                    request_id: id,
                    error,
                })) if id == request_id => {
                    // A handled function error leaves the runtime ready for the next one.
                    self.reusable = true;
                    return Err(error);
                }
                Wake::Event(Some(Event::InitError {
                    error_type,
                    message,
                })) => {
                    return Err(init_error(function, &error_type, &message));
                }
                Wake::Event(Some(_)) => continue,
                Wake::Event(None) => return Err(server_gone(function)),
                Wake::Exited(status) => return Err(self.crashed(function, status).await),
                Wake::TimedOut => {
                    return Err(TaskError::retryable(
                        "lambda.timeout",
                        format!(
                            "function `{function}` did not finish within {} (its `timeout`); its process was stopped",
                            format_duration(spec.timeout)
                        ),
                    ));
                }
            }
        }
    }

    /// Waits for the next event from the Runtime API, the process's exit or `until`.
    async fn wait(&mut self, until: Instant) -> Wake {
        tokio::select! {
            // An answer sent just before the process exited still counts.
            biased;
            event = self.events.recv() => Wake::Event(event),
            status = self.child.wait() => Wake::Exited(status),
            _ = sleep_until(until) => Wake::TimedOut,
        }
    }

    /// The error for a process that exited without answering, quoting its last stderr
    /// lines (a panic message, usually).
    async fn crashed(&mut self, function: &str, status: std::io::Result<ExitStatus>) -> TaskError {
        // Let the log readers drain what the process wrote before it died.
        for reader in self.log_readers.drain(..) {
            let _ = timeout(Duration::from_millis(500), reader).await;
        }
        let status = match status {
            Ok(s) => s.to_string(),
            Err(e) => format!("an unknown status ({e})"),
        };
        let tail: Vec<String> = lock(&self.stderr_tail).iter().cloned().collect();
        let mut message = format!("function `{function}` exited ({status}) before answering");
        if !tail.is_empty() {
            message.push_str("; its last stderr lines: ");
            message.push_str(&tail.join(" | "));
        }
        TaskError::retryable("lambda.crash", message)
    }
}

fn init_error(function: &str, error_type: &str, message: &str) -> TaskError {
    TaskError::retryable(
        "lambda.init_error",
        format!("function `{function}` failed to start: {error_type}: {message}"),
    )
}

fn server_gone(function: &str) -> TaskError {
    TaskError::retryable(
        "lambda.runtime_api",
        format!("the Runtime API for function `{function}` stopped"),
    )
}

/// A Lambda-style request id (a random UUID).
fn request_id() -> String {
    let n = fastrand::u128(..);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An X-Ray style trace header for one invocation.
fn trace_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!(
        "Root=1-{secs:08x}-{:024x};Parent={:016x};Sampled=0",
        fastrand::u128(..) >> 32,
        fastrand::u64(..)
    )
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ---------------------------------------------------------------------------------------
// The Runtime API server.

/// An invocation handed to the server, waiting for the function to ask for it.
struct Invocation {
    request_id: String,
    payload: Bytes,
    /// JSON, handed on in `Lambda-Runtime-Client-Context`.
    client_context: Option<String>,
}

/// What the server tells the environment.
enum Event {
    /// The function took the invocation; it must answer before `deadline`.
    Started {
        request_id: String,
        deadline: Instant,
    },
    Response {
        request_id: String,
        body: Bytes,
    },
    Error {
        request_id: String,
        error: TaskError,
    },
    InitError {
        error_type: String,
        message: String,
    },
}

struct RuntimeApi {
    arn: String,
    timeout: Duration,
    /// The invocation channel, behind an async lock so that one poll waits at a time.
    next: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    /// The request id handed out and not yet answered.
    current: Mutex<Option<String>>,
    events: mpsc::UnboundedSender<Event>,
}

impl RuntimeApi {
    /// Whether `id` is the invocation in flight; if so it is answered from now on.
    fn settle(&self, id: &str) -> bool {
        let mut current = lock(&self.current);
        if current.as_deref() == Some(id) {
            *current = None;
            true
        } else {
            false
        }
    }

    fn send(&self, event: Event) {
        // The environment may be gone (cancelled invocation); nobody is left to tell.
        let _ = self.events.send(event);
    }
}

fn router(api: Arc<RuntimeApi>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
        .route("/2018-06-01/runtime/init/error", post(init_failed))
        // Responses over Lambda's limit are refused by `respond`, with a reason.
        .layer(DefaultBodyLimit::disable())
        .with_state(api)
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    let invocation = api.next.lock().await.recv().await;
    let Some(invocation) = invocation else {
        // The environment is being dropped; its process is about to be killed.
        return api_error(StatusCode::GONE, "ShuttingDown", "the runner stopped");
    };
    let deadline = Instant::now() + api.timeout;
    let deadline_ms = (SystemTime::now() + api.timeout)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    *lock(&api.current) = Some(invocation.request_id.clone());
    api.send(Event::Started {
        request_id: invocation.request_id.clone(),
        deadline,
    });
    let mut headers = HeaderMap::new();
    let pairs = [
        ("lambda-runtime-aws-request-id", invocation.request_id),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", api.arn.clone()),
        ("lambda-runtime-trace-id", trace_id()),
    ];
    let context = invocation
        .client_context
        .map(|c| ("lambda-runtime-client-context", c));
    for (name, value) in pairs.into_iter().chain(context) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, invocation.payload).into_response()
}

async fn respond(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !api.settle(&id) {
        return unknown_request(&id);
    }
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
    if streaming {
        let message = "streaming responses are not supported by Braid's local runner";
        api.send(Event::Error {
            request_id: id,
            error: TaskError::fatal("lambda.streaming_response", message),
        });
        return api_error(StatusCode::BAD_REQUEST, "UnsupportedResponseMode", message);
    }
    if body.len() > MAX_RESPONSE_BYTES {
        let message = format!(
            "response payload size ({} bytes) exceeded the maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)",
            body.len()
        );
        api.send(Event::Error {
            request_id: id,
            error: TaskError::fatal("Function.ResponseSizeTooLarge", message.clone()),
        });
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &message,
        );
    }
    api.send(Event::Response {
        request_id: id,
        body,
    });
    accepted()
}

async fn fail(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !api.settle(&id) {
        return unknown_request(&id);
    }
    let fallback = error_type_header(&headers).unwrap_or_else(|| "Unhandled".to_string());
    api.send(Event::Error {
        request_id: id,
        error: function_error(&body, &fallback),
    });
    accepted()
}

async fn init_failed(
    State(api): State<Arc<RuntimeApi>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fallback = error_type_header(&headers).unwrap_or_else(|| "Runtime.InitError".to_string());
    let error = function_error(&body, &fallback);
    let message = if error.message.is_empty() {
        excerpt(&body)
    } else {
        error.message
    };
    api.send(Event::InitError {
        error_type: error.error,
        message,
    });
    accepted()
}

fn error_type_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum_json(json!({"status": "OK"}))).into_response()
}

fn unknown_request(id: &str) -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        &format!("no invocation `{id}` is waiting for an answer"),
    )
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum_json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}

/// A JSON body without axum's `json` feature.
fn axum_json(value: Value) -> ([(header::HeaderName, HeaderValue); 1], String) {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        value.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_uuids() {
        let id = request_id();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12]);
        assert_ne!(id, request_id());
    }

    #[test]
    fn trace_ids_have_the_x_ray_shape() {
        let t = trace_id();
        assert!(t.starts_with("Root=1-"), "{t}");
        assert!(t.contains(";Parent="), "{t}");
    }

    #[test]
    fn the_lambda_variables_name_the_function() {
        let env = lambda_env("orders", &ProcessSpec::new("x"));
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("AWS_LAMBDA_FUNCTION_NAME").as_deref(), Some("orders"));
        assert_eq!(
            get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").as_deref(),
            Some("128")
        );
        assert_eq!(
            get("AWS_LAMBDA_FUNCTION_VERSION").as_deref(),
            Some("$LATEST")
        );
        assert_eq!(
            get("AWS_LAMBDA_LOG_GROUP_NAME").as_deref(),
            Some("/aws/lambda/orders")
        );
    }
}
