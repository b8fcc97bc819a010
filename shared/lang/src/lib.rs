//! Braid's workflow language: everything pure about a workflow definition (SPEC §1).
//!
//! [`parse`] reads YAML or JSON text into [`decl`] types (syntax), reports every unknown
//! key at once (`keys`), then `validate` checks meaning (ids, needs, cycles, kinds,
//! durations, cron, expressions, upstream references) and builds a [`Workflow`].
//! Nothing here does I/O: no clock reads, no network, no files; a crate of its own so
//! that the engine and the tools (`braid validate`, `braid graph`, `braid schema`)
//! share it and nothing heavier.
//!
//! # Layout
//! - the crate root: [`parse`], [`json_schema`], the checked model ([`Workflow`],
//!   [`Step`], [`StepKind`], [`Trigger`]), durations ([`parse_duration`]) and errors
//!   with their positions ([`Invalid`], [`Diagnostic`], [`Pos`]);
//! - [`decl`]: the file's syntax as serde types (and so the JSON Schema);
//! - [`expr`]: `{{ ... }}` expressions (minijinja): parsing, rendering, references;
//! - [`triggers`]: matching incoming events and schedules to the workflows they start —
//!   event keys, routing, EventBridge patterns, webhook signatures, schedule planning.

pub mod decl;
mod duration;
mod error;
pub mod expr;
mod keys;
mod located;
mod model;
mod needs;
mod schedule;
pub mod triggers;
mod validate;

pub use duration::{format_duration, parse_duration};
pub use error::{Diagnostic, Invalid};
pub use located::{At, Pos};
pub use model::*;
pub use schedule::{Cadence, Schedule};
pub use validate::{param_accepts, param_type_name};

use error::Collector;

/// The JSON Schema of the workflow file, generated from the Rust types.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(decl::WorkflowDecl);
    serde_json::to_value(schema).expect("a schema is always JSON")
}

/// Parses and validates a workflow file's text. `file` names the file in errors.
pub fn parse(file: &str, text: &str) -> Result<Workflow, Invalid> {
    let mut diags = Collector::default();
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
    };
    match serde_saphyr::from_str_with_options::<At<keys::Node>>(text, options.clone()) {
        Ok(tree) => {
            if !matches!(tree.value, keys::Node::Map(_)) {
                let got = keys::describe_top(&tree.value);
                let message = if got == "empty" {
                    "the file is empty; a workflow is a map with `name` and `steps`".to_string()
                } else {
                    format!("a workflow file must be a map with `name` and `steps`, not {got}")
                };
                diags.push(tree.pos, message);
                return Err(diags.finish(file).unwrap_err());
            }
            keys::check_shape(&tree, &json_schema(), &mut diags);
        }
        Err(e) => {
            diags.push(
                error_pos(&e),
                format!("invalid YAML: {}", syntax_message(&e)),
            );
            return Err(diags.finish(file).unwrap_err());
        }
    }
    if !diags.items.is_empty() {
        return Err(diags.finish(file).unwrap_err());
    }
    let decl: decl::WorkflowDecl = match serde_saphyr::from_str_with_options(text, options) {
        Ok(d) => d,
        Err(e) => {
            diags.push(error_pos(&e), syntax_message(&e));
            return Err(diags.finish(file).unwrap_err());
        }
    };
    let wf = validate::validate(decl, text, &mut diags);
    diags.finish(file)?;
    Ok(wf)
}

fn error_pos(e: &serde_saphyr::Error) -> Pos {
    e.location().map(Pos::from).unwrap_or_default()
}

/// The error text without serde-saphyr's own location or source snippet: the position is
/// printed once, by [`Invalid`]'s `Display`.
pub fn syntax_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::MessageFormatter;
    let text = serde_saphyr::UserMessageFormatter.format_message(e.without_snippet());
    let mut msg = text.lines().next().unwrap_or_default().trim();
    // Some messages carry their own "error: line X column Y: " prefix.
    if let Some(rest) = msg.strip_prefix("error: ") {
        msg = rest;
    }
    if msg.starts_with("line ")
        && let Some((_, rest)) = msg.split_once(": ")
    {
        msg = rest;
    }
    msg.to_string()
}

#[cfg(test)]
mod tests;
