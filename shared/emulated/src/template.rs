//! The SAM template as data: the resource properties the emulated stack is made from.
//! The template uses only long-form intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`), so a
//! plain YAML reader takes it (`scripts/check-infra` keeps it that way).
//!
//! It is built into the binary, so `braid run --backend aws` works from any folder and
//! always makes the stack of the version it was built from.

use serde_json::Value;
use std::sync::OnceLock;

/// `infra/template.yaml`'s text.
pub const TEMPLATE_YAML: &str = include_str!("../../../infra/template.yaml");

/// `infra/template.yaml`, parsed.
#[derive(Debug, Clone)]
pub struct Template(pub Value);

impl Template {
    /// Parses a template's text.
    pub fn parse(text: &str) -> Result<Template, String> {
        serde_saphyr::from_str(text)
            .map(Template)
            .map_err(|e| format!("is not plain YAML: {e}"))
    }

    /// The built-in template, parsed once. Its text is fixed at build time and
    /// parsed by this crate's tests, so a failure here is a build that was never
    /// tested.
    pub fn embedded() -> &'static Template {
        static PARSED: OnceLock<Template> = OnceLock::new();
        PARSED.get_or_init(|| {
            Template::parse(TEMPLATE_YAML)
                .unwrap_or_else(|e| panic!("the built-in infra/template.yaml {e}"))
        })
    }

    /// A resource by logical id.
    pub fn resource(&self, id: &str) -> &Value {
        let r = &self.0["Resources"][id];
        assert!(r.is_object(), "the template has no resource `{id}`");
        r
    }

    /// The logical ids of every resource of `kind` (e.g. `AWS::SQS::Queue`).
    pub fn resources_of(&self, kind: &str) -> Vec<String> {
        self.0["Resources"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, r)| r["Type"] == kind)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The functions' environment (`Globals.Function.Environment.Variables`): variable
    /// name to the logical id it refers to. A value made from the stack's own name
    /// (`Fn::Sub` over pseudo parameters only, e.g. the metrics namespace) names
    /// nothing the emulated stack makes, and is left out.
    pub fn function_environment(&self) -> Result<Vec<(String, String)>, String> {
        self.0["Globals"]["Function"]["Environment"]["Variables"]
            .as_object()
            .ok_or("sets no functions' environment in Globals")?
            .iter()
            .filter_map(
                |(name, v)| match (v["Ref"].as_str(), v["Fn::Sub"].as_str()) {
                    (Some(id), _) => Some(Ok((name.clone(), id.to_string()))),
                    (None, Some(text)) if only_pseudo_parameters(text) => None,
                    _ => Some(Err(format!(
                        "sets {name}, which is not a Ref to a resource or parameter"
                    ))),
                },
            )
            .collect()
    }

    /// The default of parameter `name`, as text.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        match &self.0["Parameters"][name]["Default"] {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// The memory size the template gives `function`, in MB: its own (a number or a
    /// parameter's default), else the global one, else Lambda's default.
    pub fn memory_mb(&self, function: &str) -> f64 {
        let own = &self.resource(function)["Properties"]["MemorySize"];
        let own = match own["Ref"].as_str() {
            Some(param) => &self.0["Parameters"][param]["Default"],
            None => own,
        };
        own.as_f64()
            .or_else(|| self.0["Globals"]["Function"]["MemorySize"].as_f64())
            .unwrap_or(128.0)
    }
}

/// Resolves `Fn::Sub` of `${AWS::StackName}` (the only substitution names use).
pub fn sub_name(v: &Value, stack: &str) -> Result<String, String> {
    let text = v["Fn::Sub"]
        .as_str()
        .or_else(|| v.as_str())
        .ok_or_else(|| format!("names a resource with {v}, not a string or Fn::Sub"))?;
    Ok(text.replace("${AWS::StackName}", stack))
}

/// Whether every `${...}` of `text` is a pseudo parameter (`AWS::StackName`, ...).
fn only_pseudo_parameters(text: &str) -> bool {
    text.split("${")
        .skip(1)
        .all(|rest| rest.starts_with("AWS::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_template_names_what_the_stack_needs() {
        let t = Template::embedded();
        assert_eq!(t.resources_of("AWS::DynamoDB::Table").len(), 1);
        assert!(t.resources_of("AWS::SQS::Queue").len() >= 3);
        assert_eq!(t.resources_of("AWS::S3::Bucket").len(), 1);
        assert_eq!(t.resources_of("AWS::Events::EventBus").len(), 1);
        let env = t.function_environment().unwrap();
        assert!(env.iter().any(|(var, _)| var == "BRAID_TABLE"), "{env:?}");
        assert!(t.memory_mb("StepDispatcherFunction") >= 128.0);
    }

    #[test]
    fn names_substitute_the_stack_name() {
        let v = serde_json::json!({"Fn::Sub": "${AWS::StackName}-ready"});
        assert_eq!(sub_name(&v, "s").unwrap(), "s-ready");
        assert!(sub_name(&serde_json::json!(3), "s").is_err());
    }
}
