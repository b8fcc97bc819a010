//! Expressions: `{{ ... }}` inside strings, evaluated with minijinja (Jinja semantics).
//!
//! A string that is exactly one `{{ expr }}` yields the expression's JSON value with its
//! type kept; a string with text around the braces renders to a string; a string without
//! braces is left alone. Errors never include the values of variables (they may hold
//! secrets or huge outputs): messages are built from the error kind and detail only.

mod scope;

pub use scope::Scope;

use minijinja::{Environment, UndefinedBehavior, Value as JValue};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

/// How a string field uses expressions.
#[derive(Debug, PartialEq, Eq)]
pub enum Shape<'a> {
    /// No `{{` at all: the string is used as written.
    Literal,
    /// Exactly one `{{ expr }}` and nothing else: the value keeps its JSON type.
    Single(&'a str),
    /// Text and expressions mixed: renders to a string.
    Mixed,
}

/// Classifies a string field.
pub fn shape(s: &str) -> Shape<'_> {
    let t = s.trim();
    if !s.contains("{{") && !s.contains("{%") {
        return Shape::Literal;
    }
    if let Some(inner) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}"))
        && !inner.contains("{{")
        && !inner.contains("}}")
    {
        return Shape::Single(inner.trim());
    }
    Shape::Mixed
}

/// An expression problem, without any variable values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub message: String,
}

fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.kind().to_string();
    if let Some(d) = e.detail() {
        msg.push_str(": ");
        msg.push_str(d);
    }
    msg
}

/// Resolves `secret(name)` at render time; absent during validation.
pub type SecretResolver = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

fn base_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// The shared environment used to check syntax (no secrets needed to parse).
fn syntax_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(base_env)
}

/// Checks that a string's expressions parse; returns the step ids they reference.
pub fn check(s: &str) -> Result<BTreeSet<String>, ExprError> {
    let env = syntax_env();
    match shape(s) {
        Shape::Literal => return Ok(BTreeSet::new()),
        Shape::Single(e) => {
            env.compile_expression(e).map_err(|e| ExprError {
                message: describe(&e),
            })?;
        }
        Shape::Mixed => {
            env.template_from_str(s).map_err(|e| ExprError {
                message: describe(&e),
            })?;
        }
    }
    // The engine looks a filter up only when it renders; a name it lacks is found here.
    if let Some(name) = filter_names(s).into_iter().find(|n| !is_filter(n)) {
        return Err(ExprError {
            message: format!("unknown filter `{name}`"),
        });
    }
    Ok(step_refs(s))
}

/// Whether the expression engine has a filter `name` (cached per name).
fn is_filter(name: &str) -> bool {
    static KNOWN: OnceLock<std::sync::Mutex<std::collections::HashMap<String, bool>>> =
        OnceLock::new();
    let known = KNOWN.get_or_init(Default::default);
    if let Some(k) = known.lock().unwrap().get(name) {
        return *k;
    }
    let probe = syntax_env()
        .compile_expression(&format!("none | {name}"))
        .map(|e| e.eval(()));
    let found = !matches!(probe, Ok(Err(e)) if e.kind() == minijinja::ErrorKind::UnknownFilter);
    known.lock().unwrap().insert(name.to_string(), found);
    found
}

/// The filter names used in the expressions of `s` (`| name`), outside string
/// literals.
fn filter_names(s: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let code: Vec<&str> = match shape(s) {
        Shape::Literal => return names,
        Shape::Single(e) => vec![e],
        Shape::Mixed => s
            .split("{{")
            .skip(1)
            .filter_map(|r| r.split_once("}}").map(|(e, _)| e))
            .chain(
                s.split("{%")
                    .skip(1)
                    .filter_map(|r| r.split_once("%}").map(|(e, _)| e)),
            )
            .collect(),
    };
    for e in code {
        let chars: Vec<char> = e.chars().collect();
        let mut i = 0;
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            match quote {
                Some(_) if c == '\\' => i += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '\'' || c == '"' => quote = Some(c),
                None if c == '|' => {
                    let rest: String = chars[i + 1..].iter().collect();
                    let name: String = rest
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        names.insert(name);
                    }
                }
                None => {}
            }
            i += 1;
        }
    }
    names
}

/// Step ids named as `steps.X` or `steps['X']` in a string.
pub fn step_refs(s: &str) -> BTreeSet<String> {
    attr_refs(s, "steps")
}

/// Attribute names read from the variable `root`, as `root.X`, `root['X']` or
/// `root["X"]`, in a string: e.g. the params a field reads.
///
/// A text scan rather than minijinja's `undeclared_variables`, which stops at subscripts
/// and so misses `steps['big-day']`.
pub fn attr_refs(s: &str, root: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(off) = s[i..].find(root) {
        let start = i + off;
        let before_ok = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        };
        let mut j = start + root.len();
        if before_ok && j < bytes.len() {
            if bytes[j] == b'.' {
                j += 1;
                let id_start = j;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                if j > id_start {
                    out.insert(s[id_start..j].to_string());
                }
            } else if bytes[j] == b'[' && j + 1 < bytes.len() {
                let q = bytes[j + 1];
                if q == b'\'' || q == b'"' {
                    let id_start = j + 2;
                    if let Some(end) = s[id_start..].find(q as char) {
                        out.insert(s[id_start..id_start + end].to_string());
                        j = id_start + end;
                    }
                }
            }
        }
        i = j.max(start + 1);
    }
    out
}

/// The top-level names a string's expressions read (`params`, `steps`, `item`, ...),
/// excluding names the template itself binds (`{% for x in ... %}`). Empty when the
/// string has no expression or does not parse.
pub fn root_names(s: &str) -> BTreeSet<String> {
    let env = syntax_env();
    let names = match shape(s) {
        Shape::Literal => return BTreeSet::new(),
        Shape::Single(e) => env
            .compile_expression(e)
            .map(|e| e.undeclared_variables(false)),
        Shape::Mixed => env
            .template_from_str(s)
            .map(|t| t.undeclared_variables(false)),
    };
    names.map(|n| n.into_iter().collect()).unwrap_or_default()
}

/// Calls `f` on every string inside a JSON value (keys excluded), depth first.
pub fn for_each_string<'a>(v: &'a Value, f: &mut impl FnMut(&'a str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| for_each_string(x, f)),
        Value::Object(m) => m.values().for_each(|x| for_each_string(x, f)),
        _ => {}
    }
}

/// Evaluates expressions against a [`Scope`].
#[derive(Clone)]
pub struct Renderer {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderer")
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new(Arc::new(|_| None))
    }
}

impl Renderer {
    /// A renderer whose `secret(name)` asks `secrets`.
    pub fn new(secrets: SecretResolver) -> Self {
        let mut env = base_env();
        env.add_function(
            "secret",
            move |name: String| -> Result<String, minijinja::Error> {
                secrets(&name).ok_or_else(|| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("secret `{name}` is not set"),
                    )
                })
            },
        );
        Renderer { env: Arc::new(env) }
    }

    /// Renders every string in `v`, keeping JSON types for single-expression strings.
    pub fn render(&self, v: &Value, scope: &Scope) -> Result<Value, ExprError> {
        let ctx = scope.to_context();
        self.render_with(v, &ctx)
    }

    fn render_with(&self, v: &Value, ctx: &JValue) -> Result<Value, ExprError> {
        Ok(match v {
            Value::String(s) => self.render_str_with(s, ctx)?,
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.render_with(x, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => {
                let mut out = serde_json::Map::with_capacity(m.len());
                for (k, x) in m {
                    out.insert(k.clone(), self.render_with(x, ctx)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    fn render_str_with(&self, s: &str, ctx: &JValue) -> Result<Value, ExprError> {
        match shape(s) {
            Shape::Literal => Ok(Value::String(s.to_string())),
            Shape::Single(e) => {
                let expr = self.env.compile_expression(e).map_err(|e| ExprError {
                    message: describe(&e),
                })?;
                let out = expr.eval(ctx.clone()).map_err(|e| ExprError {
                    message: describe(&e),
                })?;
                if out.is_undefined() {
                    return Err(ExprError {
                        message: "undefined value".to_string(),
                    });
                }
                serde_json::to_value(&out).map_err(|e| ExprError {
                    message: format!("value cannot be turned into JSON: {e}"),
                })
            }
            Shape::Mixed => self
                .env
                .render_str(s, ctx.clone())
                .map(Value::String)
                .map_err(|e| ExprError {
                    message: describe(&e),
                }),
        }
    }

    /// Renders a string that must yield a boolean (`when`); Jinja truthiness applies.
    pub fn truthy(&self, s: &str, scope: &Scope) -> Result<bool, ExprError> {
        let v = self.render_str_with(s, &scope.to_context())?;
        Ok(match v {
            Value::Null => false,
            Value::Bool(b) => b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(s) => !s.is_empty() && s != "false" && s != "False",
            Value::Array(a) => !a.is_empty(),
            Value::Object(m) => !m.is_empty(),
        })
    }

    /// Renders a string that must yield a list (`for_each`).
    pub fn list(&self, s: &str, scope: &Scope) -> Result<Vec<Value>, ExprError> {
        match self.render_str_with(s, &scope.to_context())? {
            Value::Array(a) => Ok(a),
            other => Err(ExprError {
                message: format!("expected a list, got {}", json_type(&other)),
            }),
        }
    }
}

/// The JSON type name of a value, for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
