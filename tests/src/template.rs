//! The SAM template as data: the resource properties the emulator stack is made from.
//! The template uses only long-form intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`), so a
//! plain YAML reader takes it (`scripts/check-infra` keeps it that way).

use serde_json::Value;
use std::path::{Path, PathBuf};

/// `infra/template.yaml`, parsed.
#[derive(Debug, Clone)]
pub struct Template(pub Value);

impl Template {
    pub fn path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
    }

    pub fn load() -> Template {
        let path = Self::path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Template(
            serde_saphyr::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not plain YAML: {e}", path.display())),
        )
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
            .expect("Resources is a map")
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The functions' environment (`Globals.Function.Environment.Variables`): variable
    /// name to the logical id it refers to.
    pub fn function_environment(&self) -> Vec<(String, String)> {
        self.0["Globals"]["Function"]["Environment"]["Variables"]
            .as_object()
            .expect("the functions' environment is set in Globals")
            .iter()
            .map(|(name, v)| {
                let id = v["Ref"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} is not a Ref to a resource or parameter"));
                (name.clone(), id.to_string())
            })
            .collect()
    }
}

impl Template {
    /// The default of parameter `name`, as text.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        match &self.0["Parameters"][name]["Default"] {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Resolves `Fn::Sub` of `${AWS::StackName}` (the only substitution names use).
pub fn sub_name(v: &Value, stack: &str) -> String {
    let text = v["Fn::Sub"]
        .as_str()
        .or_else(|| v.as_str())
        .unwrap_or_else(|| panic!("a name is a string or Fn::Sub: {v}"));
    text.replace("${AWS::StackName}", stack)
}
