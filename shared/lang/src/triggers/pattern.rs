//! EventBridge event patterns: checking them when a workflow is loaded, and matching
//! events against them.
//!
//! An `event` trigger's value is an EventBridge event pattern. Authors write them as
//! they would for an EventBridge rule, and a workflow must start on the same events
//! whichever backend matches them, so the semantics follow EventBridge's content
//! filtering. [`EventPattern::compile`] rejects what EventBridge rejects, with an error
//! naming the path of the offending part, so a mistake shows up when the file is
//! checked rather than as a trigger that silently never fires.
//!
//! # Semantics
//! - A pattern is a map. Every field in it must match (AND). A field's value is either
//!   a nested map, which descends into the event, or a non-empty list of matchers, any
//!   of which may match (OR). `"$or": [pattern, pattern, ...]` at any level matches
//!   when any of its alternatives matches at that level.
//! - The event values a list is tested against are the *leaf* values at its path:
//!   strings, numbers, booleans and `null`. An array in the event offers each of its
//!   elements (arrays of arrays are flattened); an object there offers none. So a
//!   pattern matches an array when any element matches.
//! - Where a nested map meets an array of objects, it must match within one element:
//!   `{employees: {first: [Anna], last: [Jones]}}` does not match Anna Smith next to
//!   Peter Jones.
//! - Matchers: exact values (numbers compare by value, so `5` matches `5.0`), `prefix`,
//!   `suffix` (both also with `{equals-ignore-case: ..}`), `equals-ignore-case`,
//!   `wildcard`, `anything-but`, `numeric`, `exists`, `cidr`.
//!
//! # Choices where EventBridge's documentation is silent
//! - `anything-but` matches a present leaf value that its inner values or matcher do
//!   not match, whatever the value's type: `{anything-but: 100}` matches `"abc"` and
//!   `{anything-but: {prefix: a}}` matches `5`. A missing field never matches it.
//! - `null` is a value: `{exists: true}` matches a field holding `null`.
//! - `numeric` compares 64-bit floats and does not enforce EventBridge's ±5e9 range.
//! - `"$or"` is always the operator: a `$or` whose value is not a list of two or more
//!   maps is rejected rather than read as a field named `$or`.
//! - A `cidr` without `/bits` is a single address; host bits after the prefix are ignored.
//! - Case-insensitive matchers compare Unicode lowercase forms.

use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::net::IpAddr;

#[cfg(test)]
mod tests;

/// The matcher names a matcher map may use, for messages.
const MATCHERS: &str =
    "prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists, cidr";

const NUMERIC_SHAPE: &str = "`numeric` needs pairs of an operator (<, <=, =, >, >=) and a number, \
     e.g. [\">\", 0, \"<=\", 5]";

/// Why a pattern was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", at(.path))]
pub struct PatternError {
    /// Dotted path of the offending part inside the pattern, e.g. `detail.price` or
    /// `$or[1].state`; empty for the pattern as a whole.
    pub path: String,
    /// What was wrong and what is allowed.
    pub message: String,
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("at `{path}`: ")
    }
}

fn fail<T>(path: &str, message: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError {
        path: path.to_string(),
        message: message.into(),
    })
}

/// A checked event pattern, ready to match events.
#[derive(Debug, Clone)]
pub struct EventPattern {
    root: Fields,
}

impl EventPattern {
    /// Checks `pattern` and prepares it for matching; the error names the path of the
    /// first part that EventBridge would not accept.
    pub fn compile(pattern: &Value) -> Result<EventPattern, PatternError> {
        Ok(EventPattern {
            root: fields(pattern, "")?,
        })
    }

    /// Whether `event` (usually a JSON object) matches this pattern.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches_at(Some(event))
    }
}

/// A map of the pattern: every field must match.
#[derive(Debug, Clone)]
struct Fields(Vec<Field>);

#[derive(Debug, Clone)]
enum Field {
    /// A list of matchers, tested against the leaf values at `name`.
    Leaf { name: String, any_of: Vec<Matcher> },
    /// A nested map, matched against the object(s) at `name`.
    Nested { name: String, fields: Fields },
    /// `$or`: alternatives matched at the same level.
    Or(Vec<Fields>),
}

#[derive(Debug, Clone)]
enum Matcher {
    /// A string, number, boolean or null.
    Exact(Value),
    /// With `ignore_case`, `text` is already lowercase.
    Prefix {
        text: String,
        ignore_case: bool,
    },
    Suffix {
        text: String,
        ignore_case: bool,
    },
    /// Lowercase.
    EqualsIgnoreCase(String),
    Wildcard(Vec<Glob>),
    Numeric(Range),
    Cidr {
        net: IpAddr,
        bits: u8,
    },
    Exists(bool),
    /// Matches a present value none of these match.
    AnythingBut(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Glob {
    Star,
    Char(char),
}

/// Bounds as (value, inclusive).
#[derive(Debug, Clone)]
struct Range {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

// ---- compiling ----

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn fields(v: &Value, path: &str) -> Result<Fields, PatternError> {
    let Value::Object(map) = v else {
        return fail(
            path,
            format!(
                "a pattern must be a map of field names to lists of values, e.g. {{source: [acme.orders]}}; got {}",
                kind(v)
            ),
        );
    };
    if map.is_empty() {
        return fail(
            path,
            "a map in a pattern needs at least one field; an empty map is not allowed",
        );
    }
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        let path = child(path, key);
        out.push(match value {
            _ if key == "$or" => Field::Or(alternatives(value, &path)?),
            Value::Object(_) => Field::Nested {
                name: key.clone(),
                fields: fields(value, &path)?,
            },
            Value::Array(items) => Field::Leaf {
                name: key.clone(),
                any_of: matchers(items, &path)?,
            },
            other => {
                return fail(
                    &path,
                    format!(
                        "a field must hold a list of values or matchers, e.g. [\"a\", {{prefix: \"b\"}}], \
                         or a map of nested fields; got {}",
                        kind(other)
                    ),
                );
            }
        });
    }
    Ok(Fields(out))
}

fn alternatives(v: &Value, path: &str) -> Result<Vec<Fields>, PatternError> {
    match v {
        Value::Array(items) if items.len() >= 2 => items
            .iter()
            .enumerate()
            .map(|(i, item)| fields(item, &format!("{path}[{i}]")))
            .collect(),
        _ => fail(
            path,
            "`$or` needs a list of at least two patterns (maps), e.g. [{a: [1]}, {b: [2]}]",
        ),
    }
}

fn matchers(items: &[Value], path: &str) -> Result<Vec<Matcher>, PatternError> {
    if items.is_empty() {
        return fail(
            path,
            "an empty list matches nothing; list at least one value or matcher",
        );
    }
    items
        .iter()
        .map(|item| match item {
            Value::Object(m) => matcher(m, path),
            Value::Array(_) => fail(
                path,
                "a list of values cannot hold another list; use strings, numbers, true, false, null or matcher maps",
            ),
            scalar => Ok(Matcher::Exact(scalar.clone())),
        })
        .collect()
}

/// The only entry of a one-entry map.
fn single(m: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut it = m.iter();
    match (it.next(), it.next()) {
        (Some((k, v)), None) => Some((k.as_str(), v)),
        _ => None,
    }
}

fn matcher(m: &Map<String, Value>, path: &str) -> Result<Matcher, PatternError> {
    let Some((name, value)) = single(m) else {
        return fail(
            path,
            format!("a matcher is a map with exactly one key, one of: {MATCHERS}"),
        );
    };
    match name {
        "prefix" | "suffix" => {
            let (text, ignore_case) = match value {
                Value::String(s) => (s.clone(), false),
                Value::Object(inner) => match single(inner) {
                    Some(("equals-ignore-case", Value::String(s))) => (s.to_lowercase(), true),
                    _ => {
                        return fail(
                            path,
                            format!("`{name}` needs a string, or {{equals-ignore-case: string}}"),
                        );
                    }
                },
                _ => {
                    return fail(
                        path,
                        format!("`{name}` needs a string, or {{equals-ignore-case: string}}"),
                    );
                }
            };
            Ok(if name == "prefix" {
                Matcher::Prefix { text, ignore_case }
            } else {
                Matcher::Suffix { text, ignore_case }
            })
        }
        "equals-ignore-case" => match value {
            Value::String(s) => Ok(Matcher::EqualsIgnoreCase(s.to_lowercase())),
            _ => fail(path, "`equals-ignore-case` needs a string"),
        },
        "wildcard" => match value {
            Value::String(s) => Ok(Matcher::Wildcard(glob(s, path)?)),
            _ => fail(
                path,
                "`wildcard` needs a string, where * matches any run of characters",
            ),
        },
        "numeric" => numeric(value, path).map(Matcher::Numeric),
        "exists" => match value {
            Value::Bool(b) => Ok(Matcher::Exists(*b)),
            _ => fail(
                path,
                "`exists` needs true (the field is present) or false (it is absent)",
            ),
        },
        "cidr" => match value.as_str().and_then(cidr) {
            Some((net, bits)) => Ok(Matcher::Cidr { net, bits }),
            None => fail(
                path,
                "`cidr` needs an IP range such as 10.0.0.0/24 or 2001:db8::/32",
            ),
        },
        "anything-but" => anything_but(value, path).map(Matcher::AnythingBut),
        other => fail(
            path,
            format!("unknown matcher `{other}`; expected one of: {MATCHERS}"),
        ),
    }
}

fn anything_but(v: &Value, path: &str) -> Result<Vec<Matcher>, PatternError> {
    const SHAPE: &str = "`anything-but` needs a string, a number, a list of only strings or only numbers, \
         or a map with one of prefix, suffix, equals-ignore-case, wildcard";
    match v {
        Value::String(_) | Value::Number(_) => Ok(vec![Matcher::Exact(v.clone())]),
        Value::Array(items) => {
            let strings = items.iter().all(Value::is_string);
            let numbers = items.iter().all(Value::is_number);
            if items.is_empty() || !(strings || numbers) {
                return fail(path, SHAPE);
            }
            Ok(items.iter().cloned().map(Matcher::Exact).collect())
        }
        Value::Object(m) => match single(m) {
            Some((name @ ("prefix" | "suffix"), Value::String(s))) if s.is_empty() => fail(
                path,
                format!("`anything-but` `{name}` needs a non-empty string"),
            ),
            Some((name @ ("prefix" | "suffix"), Value::String(s))) => {
                let text = s.clone();
                Ok(vec![if name == "prefix" {
                    Matcher::Prefix {
                        text,
                        ignore_case: false,
                    }
                } else {
                    Matcher::Suffix {
                        text,
                        ignore_case: false,
                    }
                }])
            }
            Some(("equals-ignore-case", Value::String(s))) => {
                Ok(vec![Matcher::EqualsIgnoreCase(s.to_lowercase())])
            }
            Some(("equals-ignore-case", Value::Array(items)))
                if !items.is_empty() && items.iter().all(Value::is_string) =>
            {
                Ok(items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| Matcher::EqualsIgnoreCase(s.to_lowercase()))
                    .collect())
            }
            Some(("wildcard", Value::String(s))) => Ok(vec![Matcher::Wildcard(glob(s, path)?)]),
            _ => fail(path, SHAPE),
        },
        _ => fail(path, SHAPE),
    }
}

/// Parses a wildcard: `*` is any run of characters, `\*` a star, `\\` a backslash.
fn glob(s: &str, path: &str) -> Result<Vec<Glob>, PatternError> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' if out.last() == Some(&Glob::Star) => {
                return fail(
                    path,
                    "`wildcard` cannot have two * in a row; one * already matches any run of characters",
                );
            }
            '*' => out.push(Glob::Star),
            '\\' => match chars.next() {
                Some(e @ ('*' | '\\')) => out.push(Glob::Char(e)),
                _ => {
                    return fail(
                        path,
                        "in `wildcard`, a backslash may only escape * or a backslash (\\* is a literal star)",
                    );
                }
            },
            c => out.push(Glob::Char(c)),
        }
    }
    Ok(out)
}

fn numeric(v: &Value, path: &str) -> Result<Range, PatternError> {
    let Some(items) = v.as_array() else {
        return fail(path, NUMERIC_SHAPE);
    };
    let mut pairs = Vec::new();
    for pair in items.chunks(2) {
        match pair {
            [Value::String(op), Value::Number(n)] => match (op.as_str(), n.as_f64()) {
                (op @ ("<" | "<=" | "=" | ">" | ">="), Some(n)) => pairs.push((op, n)),
                _ => return fail(path, NUMERIC_SHAPE),
            },
            _ => return fail(path, NUMERIC_SHAPE),
        }
    }
    let lower = |op: &str, n: f64| match op {
        ">" => Some((n, false)),
        ">=" => Some((n, true)),
        _ => None,
    };
    let upper = |op: &str, n: f64| match op {
        "<" => Some((n, false)),
        "<=" => Some((n, true)),
        _ => None,
    };
    match pairs.as_slice() {
        [("=", n)] => Ok(Range {
            lower: Some((*n, true)),
            upper: Some((*n, true)),
        }),
        [(op, n)] => Ok(Range {
            lower: lower(op, *n),
            upper: upper(op, *n),
        }),
        [(lo, a), (hi, b)] => match (lower(lo, *a), upper(hi, *b)) {
            (Some(_), Some(_)) if a >= b => fail(
                path,
                format!("in `numeric`, the lower bound ({a}) must be below the upper bound ({b})"),
            ),
            (Some(l), Some(u)) => Ok(Range {
                lower: Some(l),
                upper: Some(u),
            }),
            _ => fail(
                path,
                "`numeric` with two comparisons needs a lower bound (> or >=) first and an upper \
                 bound (< or <=) second, e.g. [\">\", 0, \"<=\", 5]",
            ),
        },
        _ => fail(path, NUMERIC_SHAPE),
    }
}

/// An address or `address/bits`; the address alone means every bit.
fn cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((addr, bits))
}

// ---- matching ----

impl Fields {
    /// Matches the event value at this map's place: within one of the objects there
    /// (arrays offer each element), or, when there are none, with every field absent.
    fn matches_at(&self, value: Option<&Value>) -> bool {
        let mut objects = Vec::new();
        if let Some(v) = value {
            collect_objects(v, &mut objects);
        }
        if objects.is_empty() {
            self.matches_in(None)
        } else {
            objects.into_iter().any(|o| self.matches_in(Some(o)))
        }
    }

    fn matches_in(&self, object: Option<&Map<String, Value>>) -> bool {
        let get = |name: &str| object.and_then(|o| o.get(name));
        self.0.iter().all(|field| match field {
            Field::Leaf { name, any_of } => {
                let mut leaves = Vec::new();
                if let Some(v) = get(name) {
                    collect_leaves(v, &mut leaves);
                }
                any_of.iter().any(|m| m.matches_leaves(&leaves))
            }
            Field::Nested { name, fields } => fields.matches_at(get(name)),
            Field::Or(alternatives) => alternatives.iter().any(|a| a.matches_in(object)),
        })
    }
}

fn collect_objects<'a>(v: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    match v {
        Value::Object(o) => out.push(o),
        Value::Array(items) => items.iter().for_each(|i| collect_objects(i, out)),
        _ => {}
    }
}

fn collect_leaves<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(_) => {}
        Value::Array(items) => items.iter().for_each(|i| collect_leaves(i, out)),
        leaf => out.push(leaf),
    }
}

impl Matcher {
    /// Whether this matcher accepts the leaf values found at its field's path.
    fn matches_leaves(&self, leaves: &[&Value]) -> bool {
        match self {
            Matcher::Exists(present) => leaves.is_empty() != *present,
            _ => leaves.iter().any(|v| self.matches(v)),
        }
    }

    /// Whether this matcher accepts one leaf value.
    fn matches(&self, v: &Value) -> bool {
        match self {
            Matcher::Exact(Value::Number(a)) => match v {
                Value::Number(b) => same_number(a, b),
                _ => false,
            },
            Matcher::Exact(want) => want == v,
            Matcher::Prefix { text, ignore_case } => {
                string(v, *ignore_case).is_some_and(|s| s.starts_with(text.as_str()))
            }
            Matcher::Suffix { text, ignore_case } => {
                string(v, *ignore_case).is_some_and(|s| s.ends_with(text.as_str()))
            }
            Matcher::EqualsIgnoreCase(text) => {
                string(v, true).is_some_and(|s| s.as_ref() == text.as_str())
            }
            Matcher::Wildcard(glob) => v.as_str().is_some_and(|s| glob_matches(glob, s)),
            Matcher::Numeric(range) => v.as_f64().is_some_and(|n| range.contains(n)),
            Matcher::Cidr { net, bits } => v
                .as_str()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .is_some_and(|ip| in_network(ip, *net, *bits)),
            Matcher::Exists(present) => *present,
            Matcher::AnythingBut(not) => !not.iter().any(|m| m.matches(v)),
        }
    }
}

/// The string, lowercased when case is ignored.
fn string(v: &Value, lowercase: bool) -> Option<Cow<'_, str>> {
    let s = v.as_str()?;
    Some(if lowercase {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    })
}

/// Numbers are equal by value; integers compare exactly, so long IDs stay distinct.
fn same_number(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

impl Range {
    fn contains(&self, n: f64) -> bool {
        let above = match self.lower {
            Some((l, inclusive)) => n > l || (inclusive && n == l),
            None => true,
        };
        let below = match self.upper {
            Some((u, inclusive)) => n < u || (inclusive && n == u),
            None => true,
        };
        above && below
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Whole-string wildcard match: on a mismatch, the last `*` takes one more character.
fn glob_matches(glob: &[Glob], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut g, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        match glob.get(g) {
            Some(Glob::Star) => {
                last_star = Some((g, t));
                g += 1;
            }
            Some(Glob::Char(want)) if *want == c => {
                g += 1;
                t += 1;
            }
            _ => match last_star {
                Some((star, taken)) => {
                    last_star = Some((star, taken + 1));
                    g = star + 1;
                    t = taken + 1;
                }
                None => return false,
            },
        }
    }
    glob.iter().skip(g).all(|x| *x == Glob::Star)
}
