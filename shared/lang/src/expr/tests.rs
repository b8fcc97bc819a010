use super::*;
use serde_json::json;

fn scope() -> Scope {
    let mut s = Scope {
        params: json!({"n": 5, "name": "acme"}),
        ..Scope::default()
    };
    s.add_step("split", "succeeded", json!({"chunks": [1, 2, 3]}));
    s.add_step("big-day", "skipped", Value::Null);
    s
}

#[test]
fn single_expression_keeps_its_json_type() {
    let r = Renderer::default();
    let out = r
        .render(
            &json!({"a": "{{ params.n * 2 }}", "b": "{{ steps.split.output.chunks }}", "c": "{{ params.n > 3 }}"}),
            &scope(),
        )
        .unwrap();
    assert_eq!(out, json!({"a": 10, "b": [1, 2, 3], "c": true}));
}

#[test]
fn mixed_text_renders_to_a_string() {
    let r = Renderer::default();
    let out = r
        .render(&json!("hello {{ params.name }}!"), &scope())
        .unwrap();
    assert_eq!(out, json!("hello acme!"));
}

#[test]
fn undefined_names_are_errors() {
    let r = Renderer::default();
    assert!(r.render(&json!("{{ nosuch }}"), &scope()).is_err());
    assert!(
        r.render(&json!("{{ steps.split.output.nosuch }}"), &scope())
            .is_err()
    );
    assert!(r.render(&json!("x {{ nosuch.field }}"), &scope()).is_err());
}

#[test]
fn length_and_subscripts_work_as_in_jinja() {
    let r = Renderer::default();
    let out = r
        .render(
            &json!([
                "{{ steps.split.output.chunks | length }}",
                "{{ steps['big-day'].status }}"
            ]),
            &scope(),
        )
        .unwrap();
    assert_eq!(out, json!([3, "skipped"]));
}

#[test]
fn secrets_resolve_through_the_resolver_and_missing_ones_fail() {
    let r = Renderer::new(Arc::new(|n| (n == "k").then(|| "s3cr3t".to_string())));
    assert_eq!(
        r.render(&json!("{{ secret('k') }}"), &scope()).unwrap(),
        json!("s3cr3t")
    );
    let err = r
        .render(&json!("{{ secret('other') }}"), &scope())
        .unwrap_err();
    assert!(err.message.contains("other"), "{err}");
}

#[test]
fn errors_do_not_leak_variable_values() {
    let r = Renderer::default();
    let mut s = scope();
    s.params = json!({"token": "hunter2"});
    let err = r.render(&json!("{{ params.token + 1 }}"), &s).unwrap_err();
    assert!(!err.message.contains("hunter2"), "{err}");
}

#[test]
fn shapes_are_classified() {
    assert_eq!(shape("plain"), Shape::Literal);
    assert_eq!(shape("{{ a.b }}"), Shape::Single("a.b"));
    assert_eq!(shape(" {{a}} "), Shape::Single("a"));
    assert_eq!(shape("{{ a }}-{{ b }}"), Shape::Mixed);
}

#[test]
fn step_references_are_found_with_dots_and_subscripts() {
    let refs = step_refs("{{ steps.a.output + steps['big-day'].output + xsteps.b + steps.c_1 }}");
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["a", "big-day", "c_1"]
    );
}

#[test]
fn syntax_errors_are_reported() {
    assert!(check("{{ a + }}").is_err());
    assert!(check("x {{ a + }}").is_err());
    assert!(check("{{ steps.a.output }}").is_ok());
}

#[test]
fn when_and_for_each_helpers() {
    let r = Renderer::default();
    assert!(r.truthy("{{ params.n > 3 }}", &scope()).unwrap());
    assert!(!r.truthy("{{ params.n > 30 }}", &scope()).unwrap());
    assert_eq!(
        r.list("{{ steps.split.output.chunks }}", &scope())
            .unwrap()
            .len(),
        3
    );
    assert!(r.list("{{ params.n }}", &scope()).is_err());
}

#[test]
fn root_names_are_the_variables_an_expression_reads() {
    let names = root_names("{{ params.n + steps['a'].output | length + item }}");
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["item", "params", "steps"]
    );
    let names = root_names("{% for x in params.list %}{{ x }}{% endfor %}");
    assert_eq!(names.into_iter().collect::<Vec<_>>(), vec!["params"]);
    assert!(root_names("no braces").is_empty());
}

#[test]
fn attribute_references_are_found_for_any_root() {
    let refs = attr_refs(
        "{{ params.bucket ~ params['the-key'] ~ myparams.x }}",
        "params",
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["bucket", "the-key"]
    );
}
