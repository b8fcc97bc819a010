//! The run's output, and a `for_each` step's output.

use crate::model::StepStatus;
use braid_lang::expr::{ExprError, Renderer, Scope};
use braid_lang::{Reads, Workflow};
use serde_json::{Map, Value};

/// What the run output needs: what the `output` template reads, or the leaf steps'
/// outputs when there is no template.
pub fn reads(wf: &Workflow) -> Reads {
    match &wf.output {
        Some(template) => Reads::of_value(template),
        None => Reads {
            steps: wf.leaves().map(|s| s.id.clone()).collect(),
            ..Reads::default()
        },
    }
}

/// The run output: the rendered `output` template, or a map of leaf step id to output
/// (null for a leaf that produced none). `scope` holds the steps [`reads`] names.
pub fn run_output(wf: &Workflow, renderer: &Renderer, scope: &Scope) -> Result<Value, ExprError> {
    match &wf.output {
        Some(template) => renderer.render(template, scope),
        None => {
            let mut out = Map::new();
            for leaf in wf.leaves() {
                let v = scope
                    .steps
                    .get(&leaf.id)
                    .and_then(|s| s.get("output"))
                    .cloned()
                    .unwrap_or(Value::Null);
                out.insert(leaf.id.clone(), v);
            }
            Ok(Value::Object(out))
        }
    }
}

/// A `for_each` step's output: iteration outputs in item order (null where an
/// iteration produced none), and the step's status: failed if any iteration failed,
/// else cancelled if any did not run to the end (fail fast stopped it), else succeeded.
pub fn fan_in(
    iterations: impl IntoIterator<Item = (StepStatus, Option<Value>)>,
) -> (StepStatus, Value) {
    let mut failed = false;
    let mut stopped = false;
    let mut list = Vec::new();
    for (s, out) in iterations {
        failed |= s == StepStatus::Failed;
        stopped |= !matches!(s, StepStatus::Succeeded | StepStatus::Failed);
        list.push(out.unwrap_or(Value::Null));
    }
    let status = if failed {
        StepStatus::Failed
    } else if stopped {
        StepStatus::Cancelled
    } else {
        StepStatus::Succeeded
    };
    (status, Value::Array(list))
}
