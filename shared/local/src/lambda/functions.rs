//! The function map: where each Lambda function runs locally, and the runner that
//! follows it.
//!
//! ```yaml
//! functions:
//!   # Launch the binary under the Lambda Runtime API (kept warm between invocations).
//!   braid-example-worker:
//!     command: target/debug/braid-example-worker   # relative to this file's folder
//!     args: []
//!     env: { RUST_LOG: info }
//!     timeout: 30s          # per invocation (default 15m, Lambda's maximum)
//!     init_timeout: 10s     # to start and ask for work (default 10s)
//!     memory: 256           # AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 128)
//!     concurrency: 4        # processes running side by side (default 1)
//!   # Send it to a Lambda Invoke API (cargo lambda watch, LocalStack).
//!   orders-price: { endpoint: "http://127.0.0.1:9000", timeout: 1m }
//! # Optional: every other function goes to this Invoke API.
//! default_endpoint: "http://127.0.0.1:9000"
//! ```
//!
//! A `command` with a folder in it (`target/debug/x`, `./x`) is resolved against the map
//! file's folder; a bare name (`python3`) is looked up in `PATH`. Unknown keys, a
//! function with both or neither of `command` and `endpoint`, and bad values are
//! errors that name the file, line and column.
//!
//! The environment variable [`ENDPOINT_ENV`] (`BRAID_LAMBDA_ENDPOINT`), read by
//! [`LambdaRunner::from_env`], sets the default endpoint and overrides the file's
//! `default_endpoint`. A step may name a function by ARN: the map is searched for the
//! ARN as written, then for the function name inside it.

use super::invoke_api::{self, InvokeApiRunner};
use super::runtime_api::{ProcessSpec, RuntimeApiRunner};
use super::split_function_name;
use crate::output::FolderOutput;
use async_trait::async_trait;
use braid_lang::{At, Pos, parse_duration};
use braid_ports::{Invocation, Task, TaskError, TaskRunner, lambda_client_context};
use indexmap::IndexMap;
use reqwest::{Client, Url};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable naming the default Lambda Invoke API endpoint.
pub const ENDPOINT_ENV: &str = "BRAID_LAMBDA_ENDPOINT";

/// A Lambda Invoke API endpoint and the time limit of each invocation on it.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointSpec {
    pub url: Url,
    pub timeout: Duration,
}

impl EndpointSpec {
    /// An endpoint with the default time limit.
    pub fn new(url: Url) -> Self {
        EndpointSpec {
            url,
            timeout: invoke_api::DEFAULT_TIMEOUT,
        }
    }
}

/// Where one function runs.
#[derive(Clone, Debug, PartialEq)]
pub enum FunctionTarget {
    /// A local binary under the Runtime API.
    Process(ProcessSpec),
    /// A Lambda Invoke API endpoint.
    Endpoint(EndpointSpec),
}

/// Where each function runs (see the module docs for the file format).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FunctionMap {
    pub functions: IndexMap<String, FunctionTarget>,
    /// Where functions not in `functions` go.
    pub default_endpoint: Option<EndpointSpec>,
    /// The file the map was read from, if any; named in messages.
    pub source: Option<PathBuf>,
}

/// A function map or the Lambda settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LambdaConfigError {
    #[error("cannot read the function map {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", located(.file, .pos, .message))]
    Invalid {
        file: String,
        pos: Pos,
        message: String,
    },
    #[error("{ENDPOINT_ENV} must be an http(s) URL such as http://127.0.0.1:9000, not `{value}`")]
    BadEnvironment { value: String },
    #[error("cannot set up the HTTP client for Lambda invocations: {0}")]
    Client(#[from] reqwest::Error),
}

fn located(file: &str, pos: &Pos, message: &str) -> String {
    if pos.is_known() {
        format!("{file}:{pos}: {message}")
    } else {
        format!("{file}: {message}")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapDecl {
    #[serde(default)]
    functions: IndexMap<String, At<FunctionDecl>>,
    default_endpoint: Option<At<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionDecl {
    command: Option<String>,
    args: Option<Vec<Scalar>>,
    env: Option<IndexMap<String, Scalar>>,
    endpoint: Option<String>,
    timeout: Option<String>,
    init_timeout: Option<String>,
    memory: Option<u32>,
    concurrency: Option<usize>,
}

/// An argument or environment value: YAML may write `8080` or `true` unquoted.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Int(n) => n.to_string(),
            Scalar::Float(x) => x.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

impl FunctionMap {
    /// Reads and checks a function map file.
    pub fn load(path: &Path) -> Result<Self, LambdaConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| LambdaConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Checks a function map's text; `path` names the file in errors and anchors
    /// relative commands.
    pub fn parse(text: &str, path: &Path) -> Result<Self, LambdaConfigError> {
        let file = path.display().to_string();
        let invalid = |pos: Pos, message: String| LambdaConfigError::Invalid {
            file: file.clone(),
            pos,
            message,
        };
        let options = serde_saphyr::options! {
            strict_booleans: true,
            leading_zero_numbers_as_strings: true,
            underscored_numbers_as_strings: true,
        };
        let decl: MapDecl = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let pos = e.location().map(Pos::from).unwrap_or_default();
            invalid(pos, braid_lang::syntax_message(&e))
        })?;

        let folder = path.parent().unwrap_or(Path::new(""));
        let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
        let mut functions = IndexMap::new();
        for (name, decl) in decl.functions {
            if name.trim().is_empty() {
                return Err(invalid(decl.pos, "a function name cannot be empty".into()));
            }
            let target = function_target(&name, decl.value, &folder)
                .map_err(|message| invalid(decl.pos, message))?;
            functions.insert(name, target);
        }
        let default_endpoint = match decl.default_endpoint {
            Some(at) => Some(EndpointSpec::new(parse_endpoint(&at.value).map_err(
                |reason| invalid(at.pos, format!("`default_endpoint`: {reason}")),
            )?)),
            None => None,
        };
        Ok(FunctionMap {
            functions,
            default_endpoint,
            source: Some(path.to_path_buf()),
        })
    }

    /// Where `function` (a name or an ARN) runs: its own entry, else the default
    /// endpoint.
    pub fn target(&self, function: &str) -> Option<&FunctionTarget> {
        self.functions
            .get(function)
            .or_else(|| self.functions.get(split_function_name(function).0))
    }
}

/// Checks one function's entry.
fn function_target(name: &str, d: FunctionDecl, folder: &Path) -> Result<FunctionTarget, String> {
    let timeout = d
        .timeout
        .as_deref()
        .map(|t| positive_duration(name, "timeout", t))
        .transpose()?;
    match (d.command, d.endpoint) {
        (Some(_), Some(_)) => Err(format!(
            "function `{name}` has both `command` and `endpoint`; give one"
        )),
        (None, None) => Err(format!(
            "function `{name}` needs `command` (a local binary) or `endpoint` (a Lambda Invoke API URL)"
        )),
        (None, Some(endpoint)) => {
            let process_only = [
                ("args", d.args.is_some()),
                ("env", d.env.is_some()),
                ("init_timeout", d.init_timeout.is_some()),
                ("memory", d.memory.is_some()),
                ("concurrency", d.concurrency.is_some()),
            ];
            if let Some((key, _)) = process_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "function `{name}`: `{key}` applies to a `command`, not to an `endpoint`"
                ));
            }
            let url = parse_endpoint(&endpoint)
                .map_err(|reason| format!("function `{name}`: `endpoint`: {reason}"))?;
            let mut spec = EndpointSpec::new(url);
            if let Some(t) = timeout {
                spec.timeout = t;
            }
            Ok(FunctionTarget::Endpoint(spec))
        }
        (Some(command), None) => {
            if command.trim().is_empty() {
                return Err(format!("function `{name}`: `command` is empty"));
            }
            let mut spec = ProcessSpec::new(resolve_command(&command, folder));
            spec.args = d
                .args
                .unwrap_or_default()
                .into_iter()
                .map(Scalar::into_string)
                .collect();
            spec.env = d
                .env
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_string()))
                .collect();
            if let Some(t) = timeout {
                spec.timeout = t;
            }
            if let Some(t) = d.init_timeout {
                spec.init_timeout = positive_duration(name, "init_timeout", &t)?;
            }
            if let Some(memory) = d.memory {
                if !(128..=10_240).contains(&memory) {
                    return Err(format!(
                        "function `{name}`: `memory` is in MB, from 128 to 10240 as in Lambda, not {memory}"
                    ));
                }
                spec.memory_mb = memory;
            }
            if let Some(n) = d.concurrency {
                if n == 0 {
                    return Err(format!(
                        "function `{name}`: `concurrency` must be at least 1"
                    ));
                }
                spec.concurrency = n;
            }
            Ok(FunctionTarget::Process(spec))
        }
    }
}

fn positive_duration(name: &str, key: &str, text: &str) -> Result<Duration, String> {
    let d = parse_duration(text).map_err(|e| format!("function `{name}`: `{key}`: {e}"))?;
    if d.is_zero() {
        return Err(format!("function `{name}`: `{key}` must be more than 0"));
    }
    Ok(d)
}

/// A path with a folder in it is relative to the map's folder; a bare name is looked up
/// in `PATH` when the process starts.
fn resolve_command(command: &str, folder: &Path) -> PathBuf {
    let path = Path::new(command);
    if path.is_absolute() || path.components().count() < 2 {
        path.to_path_buf()
    } else {
        folder.join(path)
    }
}

fn parse_endpoint(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(format!(
            "`{text}` is not an http(s) URL such as http://127.0.0.1:9000"
        ));
    }
    Ok(url)
}

/// Runs [`Task::Lambda`] tasks where the [`FunctionMap`] says.
#[derive(Debug)]
pub struct LambdaRunner {
    functions: IndexMap<String, Route>,
    default: Option<InvokeApiRunner>,
    source: Option<PathBuf>,
    /// Where launched functions' output is kept per attempt, if anywhere.
    output: Option<FolderOutput>,
}

#[derive(Debug)]
enum Route {
    Process(RuntimeApiRunner),
    Endpoint(InvokeApiRunner),
}

impl LambdaRunner {
    /// A runner that follows `map` exactly. Starts nothing: processes start on their
    /// first invocation.
    pub fn new(map: FunctionMap) -> Result<Self, LambdaConfigError> {
        let client = Client::builder()
            .user_agent(concat!("braid/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let endpoint = |spec: EndpointSpec| {
            InvokeApiRunner::new(client.clone(), spec.url).with_timeout(spec.timeout)
        };
        let functions = map
            .functions
            .into_iter()
            .map(|(name, target)| {
                let route = match target {
                    FunctionTarget::Process(spec) => {
                        Route::Process(RuntimeApiRunner::new(name.clone(), spec))
                    }
                    FunctionTarget::Endpoint(spec) => Route::Endpoint(endpoint(spec)),
                };
                (name, route)
            })
            .collect();
        Ok(LambdaRunner {
            functions,
            default: map.default_endpoint.map(endpoint),
            source: map.source,
            output: None,
        })
    }

    /// Keeps what launched functions write, per attempt, in `output`.
    pub fn with_output(mut self, output: FolderOutput) -> Self {
        self.output = Some(output);
        self
    }

    /// Like [`LambdaRunner::new`], with the default endpoint taken from
    /// `BRAID_LAMBDA_ENDPOINT` when it is set (it wins over the file's
    /// `default_endpoint`).
    pub fn from_env(mut map: FunctionMap) -> Result<Self, LambdaConfigError> {
        if let Ok(value) = std::env::var(ENDPOINT_ENV)
            && !value.trim().is_empty()
        {
            let url =
                parse_endpoint(&value).map_err(|_| LambdaConfigError::BadEnvironment { value })?;
            map.default_endpoint = Some(EndpointSpec::new(url));
        }
        Self::new(map)
    }

    /// Invokes `function` (a name or an ARN) synchronously where the map says, for
    /// `call` when it is a step's attempt, with `client_context` (JSON) if given.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &Value,
        call: Option<&Invocation>,
        client_context: Option<String>,
    ) -> Result<Value, TaskError> {
        let route = self
            .functions
            .get(function)
            .or_else(|| self.functions.get(split_function_name(function).0));
        match (route, &self.default) {
            (Some(Route::Process(runner)), _) => {
                let output = self.output.as_ref().zip(call).map(|(o, c)| o.file(c));
                runner.invoke(payload, output, client_context).await
            }
            (Some(Route::Endpoint(runner)), _) | (None, Some(runner)) => {
                runner
                    .invoke(function, payload, client_context.as_deref())
                    .await
            }
            (None, None) => Err(self.unknown(function)),
        }
    }

    /// Why `function` (a name or an ARN) cannot be invoked here, if it cannot: no
    /// entry in the map and no default endpoint. Said before a run starts, so that a
    /// misnamed function is refused up front, not when its step is reached.
    pub fn unroutable(&self, function: &str) -> Option<String> {
        let routed = self.functions.contains_key(function)
            || self.functions.contains_key(split_function_name(function).0)
            || self.default.is_some();
        (!routed).then(|| self.unknown(function).message)
    }

    fn unknown(&self, function: &str) -> TaskError {
        let map = match &self.source {
            Some(path) => format!("the function map {}", path.display()),
            None => "a function map".to_string(),
        };
        TaskError::fatal(
            "lambda.unknown_function",
            format!(
                "no local route for Lambda function `{function}`: add it to {map} under \
                 `functions:` with `command:` (a local binary) or `endpoint:` (a Lambda Invoke \
                 API URL), set `default_endpoint:` there, or set {ENDPOINT_ENV} (e.g. \
                 http://127.0.0.1:9000 for `cargo lambda watch`)"
            ),
        )
    }
}

#[async_trait]
impl TaskRunner for LambdaRunner {
    async fn run(&self, task: &Task) -> Result<Value, TaskError> {
        match task {
            Task::Lambda {
                function,
                payload,
                invocation,
                traceparent,
            } => {
                let context = traceparent.as_deref().map(lambda_client_context);
                self.invoke(function, payload, Some(invocation), context)
                    .await
            }
            Task::Http { .. } => Err(TaskError::fatal(
                "runner.unsupported_task",
                "the Lambda runner cannot run an http task",
            )),
        }
    }
}
