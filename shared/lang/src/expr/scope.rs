//! The names an expression can see.

use minijinja::Value as JValue;
use serde_json::{Map, Value, json};

/// Everything in scope for one evaluation: `params`, `trigger`, `steps.<id>.output` and
/// `.status`, `item`, `index`, `run.*`.
///
/// Only the steps a field references need to be present: the dispatcher loads just those.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub params: Value,
    pub trigger: Value,
    pub run: Value,
    pub steps: Map<String, Value>,
    pub item: Option<(Value, usize)>,
    /// For a task with a `callback`: `{token, url}`.
    pub callback: Option<Value>,
}

impl Scope {
    /// Sets the `run` object.
    pub fn with_run(mut self, id: &str, workflow: &str, started_at: &str) -> Self {
        self.run = json!({ "id": id, "workflow": workflow, "started_at": started_at });
        self
    }

    /// Adds a finished step's status and output.
    pub fn add_step(&mut self, id: &str, status: &str, output: Value) {
        self.steps.insert(
            id.to_string(),
            json!({ "status": status, "output": output }),
        );
    }

    pub(crate) fn to_context(&self) -> JValue {
        let mut m = Map::new();
        m.insert("params".into(), self.params.clone());
        m.insert("trigger".into(), self.trigger.clone());
        m.insert("run".into(), self.run.clone());
        m.insert("steps".into(), Value::Object(self.steps.clone()));
        if let Some((item, index)) = &self.item {
            m.insert("item".into(), item.clone());
            m.insert("index".into(), json!(index));
        }
        if let Some(c) = &self.callback {
            m.insert("callback".into(), c.clone());
        }
        JValue::from(minijinja::value::Serde(Value::Object(m)))
    }
}
