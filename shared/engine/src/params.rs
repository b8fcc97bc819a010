//! Run input against declared params: defaults, required, types.

use braid_lang::Workflow;
use braid_lang::expr::json_type;
use serde_json::{Map, Value};

/// The params of a run: declared defaults filled in, every value checked.
///
/// Input keys that are not declared are errors: a typo in a param name must not pass
/// silently. Every problem is reported.
pub fn resolve(wf: &Workflow, input: &Value) -> Result<Value, Vec<String>> {
    let empty = Map::new();
    let given = match input {
        Value::Null => &empty,
        Value::Object(m) => m,
        other => {
            return Err(vec![format!(
                "the run input must be a JSON object, got {}",
                json_type(other)
            )]);
        }
    };
    let mut problems = Vec::new();
    for key in given.keys() {
        if !wf.params.contains_key(key) {
            let known: Vec<&str> = wf.params.keys().map(String::as_str).collect();
            problems.push(if known.is_empty() {
                format!(
                    "input `{key}` is not a param of workflow `{}` (it declares none)",
                    wf.name
                )
            } else {
                format!(
                    "input `{key}` is not a param of workflow `{}`; params: {}",
                    wf.name,
                    known.join(", ")
                )
            });
        }
    }
    let mut out = Map::new();
    for (name, p) in &wf.params {
        let value = match (given.get(name), &p.default) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) if p.required => {
                problems.push(format!("param `{name}` is required"));
                continue;
            }
            (None, None) => Value::Null,
        };
        if !value.is_null() && !braid_lang::param_accepts(p, &value) {
            problems.push(format!(
                "param `{name}` must be of type {}, got {}",
                p.kind.map(braid_lang::param_type_name).unwrap_or("any"),
                json_type(&value)
            ));
        }
        out.insert(name.clone(), value);
    }
    if problems.is_empty() {
        Ok(Value::Object(out))
    } else {
        Err(problems)
    }
}
