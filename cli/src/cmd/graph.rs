//! `braid graph FILE [--format mermaid|dot]`: the DAG as picture source.
//!
//! Rendering is pure ([`mermaid`], [`dot`]) so it is tested without running the binary.
//! Every `needs` edge is drawn from the needed step to the step that needs it; a node
//! shows the step id and kind, and marks `for_each` and `when` steps.

use super::{Exit, load_workflow};
use braid_lang::{Step, Workflow};
use std::collections::HashSet;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workflow file (YAML or JSON).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Picture language to print.
    #[arg(long, value_enum, default_value_t = Format::Mermaid)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Mermaid flowchart (renders on GitHub and in many editors).
    Mermaid,
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
}

pub fn run(args: &Args) -> anyhow::Result<Exit> {
    let wf = load_workflow(&args.file)?;
    let text = match args.format {
        Format::Mermaid => mermaid(&wf),
        Format::Dot => dot(&wf),
    };
    print!("{text}");
    Ok(Exit::Success)
}

/// What a node says below the id: the kind, then the markers.
fn caption(step: &Step) -> String {
    let mut parts = vec![step.kind.name()];
    if step.for_each.is_some() {
        parts.push("for_each");
    }
    if step.when.is_some() {
        parts.push("when");
    }
    parts.join(" · ")
}

/// Mermaid node ids for every step, in step order.
///
/// Step ids may hold `-`, which Mermaid reads as part of an arrow, and may be words
/// Mermaid reserves (`end`), so nodes get a safe id (`s_` + the id with `-` as `_`) and
/// the real id goes in the quoted label. Ids that would clash get a numeric suffix.
fn mermaid_ids(wf: &Workflow) -> Vec<String> {
    let mut taken = HashSet::new();
    wf.steps
        .iter()
        .map(|s| {
            let base = format!("s_{}", s.id.replace('-', "_"));
            let mut id = base.clone();
            let mut n = 2;
            while !taken.insert(id.clone()) {
                id = format!("{base}_{n}");
                n += 1;
            }
            id
        })
        .collect()
}

/// Escapes text for a double-quoted Mermaid label.
fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// The workflow as a Mermaid flowchart.
pub fn mermaid(wf: &Workflow) -> String {
    let ids = mermaid_ids(wf);
    let node = |id: &str| {
        wf.steps
            .iter()
            .position(|s| s.id == id)
            .map(|i| ids[i].as_str())
    };
    let mut out = String::new();
    let _ = writeln!(out, "---\ntitle: {}\n---", mermaid_text(&wf.name));
    out.push_str("flowchart TD\n");
    for (step, id) in wf.steps.iter().zip(&ids) {
        let label = format!(
            "{}<br/>{}",
            mermaid_text(&step.id),
            mermaid_text(&caption(step))
        );
        // A subroutine box for fan-out, a hexagon for a conditional step.
        let (open, close) = match (step.for_each.is_some(), step.when.is_some()) {
            (true, _) => ("[[", "]]"),
            (false, true) => ("{{", "}}"),
            (false, false) => ("[", "]"),
        };
        let _ = writeln!(out, "    {id}{open}\"{label}\"{close}");
    }
    for step in &wf.steps {
        for need in &step.needs {
            if let (Some(from), Some(to)) = (node(need), node(&step.id)) {
                let _ = writeln!(out, "    {from} --> {to}");
            }
        }
    }
    out
}

/// Quotes text as a DOT string.
fn dot_string(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// The workflow as a Graphviz digraph. Node ids are the step ids, always quoted.
pub fn dot(wf: &Workflow) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_string(&wf.name));
    out.push_str("    rankdir=TB;\n    node [shape=box, fontname=\"Helvetica\"];\n");
    for step in &wf.steps {
        let label = format!("{}\n{}", step.id, caption(step));
        let mut attrs = vec![format!("label={}", dot_string(&label))];
        if step.for_each.is_some() {
            attrs.push("shape=box3d".into());
        }
        if step.when.is_some() {
            attrs.push("style=dashed".into());
        }
        let _ = writeln!(out, "    {} [{}];", dot_string(&step.id), attrs.join(", "));
    }
    for step in &wf.steps {
        for need in &step.needs {
            let _ = writeln!(out, "    {} -> {};", dot_string(need), dot_string(&step.id));
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow() -> Workflow {
        braid_lang::parse(
            "t.yaml",
            r#"
name: graph-test
steps:
  - id: split
    pass: [1, 2]
  - id: price-each
    needs: [split]
    for_each: "{{ steps.split.output }}"
    pass: "{{ item }}"
  - id: big-day
    needs: [price-each]
    when: "{{ steps['price-each'].output | length > 1 }}"
    pass: big
  - id: small_day
    needs: [price-each]
    when: "{{ steps['price-each'].output | length <= 1 }}"
    pass: small
  - id: end
    needs: [big-day, small_day]
    pass: done
"#,
        )
        .unwrap()
    }

    #[test]
    fn mermaid_draws_every_needs_edge() {
        let out = mermaid(&workflow());
        for edge in [
            "s_split --> s_price_each",
            "s_price_each --> s_big_day",
            "s_price_each --> s_small_day",
            "s_big_day --> s_end",
            "s_small_day --> s_end",
        ] {
            assert!(out.contains(edge), "missing `{edge}` in\n{out}");
        }
        assert_eq!(out.matches("-->").count(), 5, "{out}");
    }

    #[test]
    fn mermaid_keeps_dashed_ids_in_quoted_labels_and_out_of_node_ids() {
        let out = mermaid(&workflow());
        assert!(
            out.contains(r#"s_big_day{{"big-day<br/>pass · when"}}"#),
            "{out}"
        );
        assert!(
            out.contains(r#"s_price_each[["price-each<br/>pass · for_each"]]"#),
            "{out}"
        );
        // No node id (the text before a shape or around an arrow) contains a dash.
        for line in out
            .lines()
            .skip_while(|l| !l.starts_with("flowchart"))
            .skip(1)
        {
            let ids = match line.split_once(" --> ") {
                Some((a, b)) => vec![a.trim(), b.trim()],
                None => vec![line.trim().split(['[', '{']).next().unwrap_or_default()],
            };
            for id in ids {
                assert!(
                    id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{id}"
                );
            }
        }
    }

    #[test]
    fn mermaid_ids_that_would_clash_stay_distinct() {
        let wf = braid_lang::parse(
            "t.yaml",
            "name: clash\nsteps:\n  - { id: a-b, pass: 1 }\n  - { id: a_b, pass: 2, needs: [a-b] }\n",
        )
        .unwrap();
        let out = mermaid(&wf);
        assert!(out.contains("s_a_b --> s_a_b_2"), "{out}");
    }

    #[test]
    fn dot_draws_every_needs_edge_with_quoted_ids() {
        let out = dot(&workflow());
        for edge in [
            r#""split" -> "price-each";"#,
            r#""price-each" -> "big-day";"#,
            r#""price-each" -> "small_day";"#,
            r#""big-day" -> "end";"#,
            r#""small_day" -> "end";"#,
        ] {
            assert!(out.contains(edge), "missing `{edge}` in\n{out}");
        }
        assert_eq!(out.matches(" -> ").count(), 5, "{out}");
        assert!(out.starts_with("digraph \"graph-test\" {"), "{out}");
        assert!(out.trim_end().ends_with('}'));
    }

    #[test]
    fn dot_marks_fan_out_and_conditional_steps() {
        let out = dot(&workflow());
        assert!(
            out.contains(r#""price-each" [label="price-each\npass · for_each", shape=box3d];"#),
            "{out}"
        );
        assert!(
            out.contains(r#""big-day" [label="big-day\npass · when", style=dashed];"#),
            "{out}"
        );
    }

    #[test]
    fn dot_strings_escape_quotes_and_backslashes() {
        assert_eq!(dot_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
