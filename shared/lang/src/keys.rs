//! Shape checks over the whole file at once, driven by the generated JSON Schema: unknown
//! keys (with a "did you mean" hint), missing required keys, values of the wrong type and
//! values outside an enumeration.
//!
//! serde stops at the first problem and words it for programmers; people fixing a file
//! want all of them, each naming the step and field. So the file is first read into a
//! position-carrying tree and walked against the schema of [`super::decl::WorkflowDecl`]:
//! the same schema `braid schema` prints, so what is accepted has one source of truth.
//! A file that passes this walk deserializes into the declaration types.

use super::error::Collector;
use super::located::At;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// A parsed YAML/JSON document with the position of every key and value.
#[derive(Debug)]
pub(crate) enum Node {
    Map(Vec<(At<String>, At<Node>)>),
    Seq(Vec<At<Node>>),
    /// A string, number, boolean or null.
    Scalar(Value),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Node, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<At<KeyText>>()? {
                    let v = m.next_value::<At<Node>>()?;
                    out.push((At::new(k.value.0, k.pos), v));
                }
                Ok(Node::Map(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Node, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<At<Node>>()? {
                    out.push(v);
                }
                Ok(Node::Seq(out))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Scalar(Value::from(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Scalar(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Scalar(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Scalar(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Scalar(Value::from(v)))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
        }
        d.deserialize_any(V)
    }
}

/// A map key of any scalar type, kept as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// What a top-level value is, for "a workflow file must be a map".
pub(crate) fn describe_top(node: &Node) -> &'static str {
    match node {
        Node::Map(_) => "a map",
        Node::Seq(_) => "a list",
        Node::Scalar(Value::Null) => "empty",
        Node::Scalar(_) => "a single value",
    }
}

/// Reports every problem of shape in `node`, the whole file, against `root`, its schema.
pub(crate) fn check_shape(node: &At<Node>, root: &Value, out: &mut Collector) {
    let mut problems = Vec::new();
    walk(node, root, root, &mut Vec::new(), &mut problems);
    for (pos, message) in problems {
        out.push(pos, message);
    }
}

/// One step of the way from the top of the file to a value.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
    /// An entry of the top-level `steps`: its id when it has one, else its position.
    Step(Option<String>, usize),
}

/// Where a key sits, for "unknown key ... in X" and "missing key ... in X".
fn place(path: &[Seg]) -> String {
    match split_at_step(path) {
        Some((step, [])) => format!("in {step}"),
        Some((step, rest)) => format!("in `{}` of {step}", dotted(rest)),
        None if path.is_empty() => "at the top level".into(),
        None => format!("in `{}`", dotted(path)),
    }
}

/// The name of a value, for "X must be ...".
fn field(path: &[Seg]) -> String {
    match split_at_step(path) {
        Some((step, [])) => step,
        Some((step, rest)) => format!("`{}` of {step}", dotted(rest)),
        None if path.is_empty() => "the workflow".into(),
        None => format!("`{}`", dotted(path)),
    }
}

fn split_at_step(path: &[Seg]) -> Option<(String, &[Seg])> {
    let i = path.iter().position(|s| matches!(s, Seg::Step(..)))?;
    let name = match &path[i] {
        Seg::Step(Some(id), _) => format!("step `{id}`"),
        Seg::Step(None, n) => format!("step #{}", n + 1),
        _ => unreachable!("position found a step"),
    };
    Some((name, &path[i + 1..]))
}

fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Step(..) => {}
        }
    }
    out
}

fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    let mut s = schema;
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => match r
                .strip_prefix("#/$defs/")
                .and_then(|n| root.get("$defs")?.get(n))
            {
                Some(target) => s = target,
                None => return s,
            },
            None => return s,
        }
    }
    s
}

fn union(s: &Value) -> Option<&Vec<Value>> {
    ["anyOf", "oneOf"]
        .iter()
        .find_map(|k| s.get(*k).and_then(Value::as_array))
}

/// The JSON types a schema accepts; `None` when it accepts any value.
fn kinds_of<'a>(schema: &'a Value, root: &'a Value) -> Option<Vec<&'a str>> {
    let s = resolve(schema, root);
    if let Some(branches) = union(s) {
        let mut out = Vec::new();
        for b in branches {
            for k in kinds_of(b, root)? {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        return Some(out);
    }
    match s.get("type") {
        Some(Value::String(t)) => Some(vec![t.as_str()]),
        Some(Value::Array(ts)) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ if s.get("properties").is_some() => Some(vec!["object"]),
        _ => None,
    }
}

fn kind_of(node: &Node) -> &'static str {
    match node {
        Node::Map(_) => "object",
        Node::Seq(_) => "array",
        Node::Scalar(Value::String(_)) => "string",
        Node::Scalar(Value::Bool(_)) => "boolean",
        Node::Scalar(Value::Number(n)) if n.is_i64() || n.is_u64() => "integer",
        Node::Scalar(Value::Number(_)) => "number",
        Node::Scalar(_) => "null",
    }
}

fn admits(kinds: &[&str], kind: &str) -> bool {
    kinds.contains(&kind) || (kind == "integer" && kinds.contains(&"number"))
}

/// Every value an enumeration (`enum`, or a union of `const`s) allows; empty when the
/// schema is not an enumeration.
fn allowed_values<'a>(schema: &'a Value, root: &'a Value) -> Vec<&'a Value> {
    let s = resolve(schema, root);
    if let Some(branches) = union(s) {
        return branches
            .iter()
            .flat_map(|b| allowed_values(b, root))
            .collect();
    }
    if let Some(c) = s.get("const") {
        return vec![c];
    }
    s.get("enum")
        .and_then(Value::as_array)
        .map(|e| e.iter().collect())
        .unwrap_or_default()
}

type Problems = Vec<(super::located::Pos, String)>;

fn walk(node: &At<Node>, schema: &Value, root: &Value, path: &mut Vec<Seg>, out: &mut Problems) {
    let s = resolve(schema, root);
    let kind = kind_of(&node.value);
    if let Some(kinds) = kinds_of(s, root)
        && !admits(&kinds, kind)
    {
        out.push((node.pos, wrong_type(path, &kinds, &node.value)));
        return;
    }
    if let Some(branches) = union(s) {
        // Walk the branch of the union that takes this kind of value; a scalar that no
        // branch accepts is reported against the whole enumeration.
        let fitting = branches
            .iter()
            .filter(|b| kinds_of(b, root).is_none_or(|k| admits(&k, kind)));
        let mut first_problems = None;
        for b in fitting {
            let mut attempt = Vec::new();
            walk(node, b, root, path, &mut attempt);
            if attempt.is_empty() {
                return;
            }
            first_problems.get_or_insert(attempt);
        }
        if let Node::Scalar(v) = &node.value {
            let allowed = allowed_values(s, root);
            if !allowed.is_empty() {
                out.push((node.pos, not_allowed(path, v, &allowed)));
                return;
            }
        }
        out.extend(first_problems.unwrap_or_default());
        return;
    }
    match &node.value {
        Node::Scalar(v) => {
            let allowed = allowed_values(s, root);
            if !allowed.is_empty() && !allowed.contains(&v) {
                out.push((node.pos, not_allowed(path, v, &allowed)));
            } else if let Some(problem) = out_of_range(s, v) {
                out.push((node.pos, format!("{} {problem}", field(path))));
            }
        }
        Node::Map(entries) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            // A misspelt required key is one mistake: report the typo, not also the gap.
            let mut suggested = Vec::new();
            for (key, value) in entries {
                path.push(Seg::Key(key.value.clone()));
                let sub = props.and_then(|p| p.get(&key.value));
                match (sub, additional) {
                    (Some(sub), _) | (None, Some(sub @ Value::Object(_))) => {
                        walk(value, sub, root, path, out);
                        path.pop();
                    }
                    (None, Some(Value::Bool(false))) => {
                        path.pop();
                        let known: Vec<&str> = props
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        let (message, suggestion) = unknown_key(&key.value, path, &known);
                        suggested.extend(suggestion);
                        out.push((key.pos, message));
                    }
                    _ => {
                        path.pop();
                    }
                }
            }
            let required = s.get("required").and_then(Value::as_array);
            for name in required.into_iter().flatten().filter_map(Value::as_str) {
                if !entries.iter().any(|(k, _)| k.value == name) && !suggested.contains(&name) {
                    out.push((
                        node.pos,
                        format!("missing required key `{name}` {}", place(path)),
                    ));
                }
            }
        }
        Node::Seq(items) => {
            let Some(item_schema) = s.get("items") else {
                return;
            };
            let step_list = matches!(path.as_slice(), [Seg::Key(k)] if k == "steps");
            for (i, item) in items.iter().enumerate() {
                path.push(if step_list {
                    Seg::Step(step_id(item), i)
                } else {
                    Seg::Index(i)
                });
                walk(item, item_schema, root, path, out);
                path.pop();
            }
        }
    }
}

/// The id of a step entry, when it has a text one, to name the step in messages.
fn step_id(item: &At<Node>) -> Option<String> {
    let Node::Map(entries) = &item.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| k.value == "id")
        .and_then(|(_, v)| match &v.value {
            Node::Scalar(Value::String(s)) => Some(s.clone()),
            _ => None,
        })
}

/// Checks numeric bounds (`minimum`, `maximum`, and the width given by `format`).
fn out_of_range(s: &Value, v: &Value) -> Option<String> {
    let n = v.as_f64()?;
    let min = s.get("minimum").and_then(Value::as_f64);
    let max = match s.get("format").and_then(Value::as_str) {
        Some("uint16") => Some(f64::from(u16::MAX)),
        Some("uint32") => Some(f64::from(u32::MAX)),
        _ => None,
    }
    .or_else(|| s.get("maximum").and_then(Value::as_f64));
    let too_small = min.is_some_and(|m| n < m);
    let too_big = max.is_some_and(|m| n > m);
    (too_small || too_big).then(|| match (min, max) {
        (Some(lo), Some(hi)) => format!("must be between {lo} and {hi}, got {v}"),
        (Some(lo), None) => format!("must be at least {lo}, got {v}"),
        (None, Some(hi)) => format!("must be at most {hi}, got {v}"),
        (None, None) => unreachable!("a bound was crossed"),
    })
}

fn describe_kind(kind: &str) -> &'static str {
    match kind {
        "object" => "a map",
        "array" => "a list",
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "`true` or `false`",
        _ => "empty",
    }
}

fn describe_value(node: &Node) -> String {
    match node {
        Node::Map(_) => "a map".into(),
        Node::Seq(_) => "a list".into(),
        Node::Scalar(Value::Null) => "nothing".into(),
        Node::Scalar(Value::String(s)) => format!("`{}`", shorten(s)),
        Node::Scalar(v) => format!("`{v}`"),
    }
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn wrong_type(path: &[Seg], kinds: &[&str], node: &Node) -> String {
    let mut expected: Vec<&str> = kinds
        .iter()
        .filter(|k| **k != "null" || kinds.len() == 1)
        .map(|k| describe_kind(k))
        .collect();
    expected.dedup();
    let mut msg = format!(
        "{} must be {}, got {}",
        field(path),
        expected.join(" or "),
        describe_value(node)
    );
    if kinds.contains(&"string") && matches!(node, Node::Scalar(Value::Number(_) | Value::Bool(_)))
    {
        msg.push_str("; put it in quotes to make it a string");
    }
    msg
}

fn not_allowed(path: &[Seg], v: &Value, allowed: &[&Value]) -> String {
    let list: Vec<String> = allowed
        .iter()
        .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string))
        .collect();
    let shown = v.as_str().map_or_else(|| v.to_string(), shorten);
    format!(
        "{} must be one of: {}; got `{shown}`",
        field(path),
        list.join(", ")
    )
}

/// Names people reach for from other workflow tools, and the key Braid uses instead.
const FAMILIAR: &[(&str, &str)] = &[
    ("depends_on", "needs"),
    ("depends", "needs"),
    ("dependencies", "needs"),
    ("after", "needs"),
    ("if", "when"),
    ("condition", "when"),
    ("loop", "for_each"),
    ("with_items", "for_each"),
    ("parallelism", "max_parallel"),
    ("continue_on_error", "continue_on_failure"),
    ("args", "input"),
    ("payload", "input"),
    ("function", "lambda"),
    ("sleep", "wait"),
    ("retries", "retry"),
    ("delay", "backoff"),
    ("max_delay", "max_backoff"),
    ("timezone_name", "timezone"),
    ("tz", "timezone"),
];

/// Step keys that belong one level down.
const NESTED: &[(&str, &str)] = &[
    ("attempts", "retry"),
    ("backoff", "retry"),
    ("max_backoff", "retry"),
    ("jitter", "retry"),
    ("url", "http"),
    ("method", "http"),
    ("headers", "http"),
    ("json", "http"),
    ("body", "http"),
    ("expect", "http"),
];

/// The message for an unknown key, and the known key it suggests, if any.
fn unknown_key<'a>(key: &str, path: &[Seg], known: &[&'a str]) -> (String, Option<&'a str>) {
    let place = place(path);
    let familiar = FAMILIAR
        .iter()
        .find(|(from, to)| *from == key && known.contains(to))
        .and_then(|(_, to)| known.iter().find(|k| *k == to).copied());
    let nearest = familiar.or_else(|| {
        known
            .iter()
            .map(|k| (strsim::damerau_levenshtein(key, k), *k))
            .filter(|(d, k)| *d <= 2 || k.starts_with(key) || key.starts_with(k))
            .min()
            .map(|(_, k)| k)
    });
    if let Some(k) = nearest {
        return (
            format!("unknown key `{key}` {place}; did you mean `{k}`?"),
            Some(k),
        );
    }
    if let Some((_, parent)) = NESTED
        .iter()
        .find(|(k, parent)| *k == key && known.contains(parent))
    {
        return (
            format!("unknown key `{key}` {place}; it belongs under `{parent}`"),
            None,
        );
    }
    let message = format!(
        "unknown key `{key}` {place}; expected one of: {}",
        known.join(", ")
    );
    (message, None)
}
