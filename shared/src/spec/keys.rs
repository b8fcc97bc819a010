//! Unknown-key detection over the whole file at once, driven by the generated JSON Schema.
//!
//! serde stops at the first unknown key; people fixing a file want all of them, each with
//! a "did you mean" hint. So the file is first read into a position-carrying tree and
//! walked against the schema of [`super::decl::WorkflowDecl`]: the same schema `braid
//! schema` prints, so the accepted keys have one source of truth.

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
    Scalar,
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
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
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

/// Reports every key of `node` that `schema` does not allow.
pub(crate) fn check_keys(node: &At<Node>, root: &Value, out: &mut Collector) {
    walk(node, root, root, "the workflow", out);
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

fn admits(schema: &Value, root: &Value, kind: &str) -> bool {
    let s = resolve(schema, root);
    match s.get("type") {
        Some(Value::String(t)) => t == kind,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == kind),
        _ => s.get("properties").is_some() && kind == "object",
    }
}

fn walk(node: &At<Node>, schema: &Value, root: &Value, context: &str, out: &mut Collector) {
    let s = resolve(schema, root);
    let kind = match &node.value {
        Node::Map(_) => "object",
        Node::Seq(_) => "array",
        Node::Scalar => return,
    };
    for union in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = s.get(union) {
            if let Some(b) = branches.iter().find(|b| admits(b, root, kind)) {
                walk(node, b, root, context, out);
            }
            return;
        }
    }
    match &node.value {
        Node::Map(entries) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            for (key, value) in entries {
                if let Some(sub) = props.and_then(|p| p.get(&key.value)) {
                    walk(value, sub, root, &key.value, out);
                } else if let Some(extra @ Value::Object(_)) = additional {
                    walk(value, extra, root, &key.value, out);
                } else if additional == Some(&Value::Bool(false)) {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    out.push(key.pos, unknown_key_message(&key.value, context, &known));
                }
            }
        }
        Node::Seq(items) => {
            if let Some(item_schema) = s.get("items") {
                for item in items {
                    walk(item, item_schema, root, context, out);
                }
            }
        }
        Node::Scalar => {}
    }
}

fn unknown_key_message(key: &str, context: &str, known: &[&str]) -> String {
    let nearest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2 || k.starts_with(key) || key.starts_with(k))
        .min();
    let place = if context == "the workflow" {
        "at the top level".to_string()
    } else {
        format!("in `{context}`")
    };
    match nearest {
        Some((_, k)) => format!("unknown key `{key}` {place}; did you mean `{k}`?"),
        None => format!(
            "unknown key `{key}` {place}; expected one of: {}",
            known.join(", ")
        ),
    }
}
