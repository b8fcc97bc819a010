//! EventBridge patterns as a workflow author meets them: what matches, what does not,
//! and what every malformed pattern reports.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn pattern(p: Value) -> EventPattern {
    EventPattern::compile(&p).unwrap_or_else(|e| panic!("expected a valid pattern {p}, got: {e}"))
}

fn matches(p: Value, event: Value) -> bool {
    pattern(p).matches(&event)
}

/// The error for `p`, which must be rejected.
fn rejected(p: Value) -> PatternError {
    match EventPattern::compile(&p) {
        Ok(_) => panic!("expected {p} to be rejected"),
        Err(e) => e,
    }
}

/// `p` is rejected at `path` with a message containing `words`.
fn assert_rejected(p: Value, path: &str, words: &str) {
    let e = rejected(p.clone());
    assert_eq!(e.path, path, "path for {p}: {e}");
    assert!(
        e.message.contains(words),
        "message for {p} lacks `{words}`: {}",
        e.message
    );
}

// ---- structure: AND, OR, nesting, arrays ----

#[test]
fn exact_strings_match_only_the_same_string() {
    let p = json!({ "source": ["acme.orders"] });
    assert!(matches(p.clone(), json!({ "source": "acme.orders" })));
    assert!(!matches(p.clone(), json!({ "source": "acme.Orders" })));
    assert!(!matches(p, json!({ "source": "acme.orders.x" })));
}

#[test]
fn numbers_match_by_value_so_5_matches_5_0() {
    assert!(matches(json!({ "n": [5] }), json!({ "n": 5.0 })));
    assert!(matches(json!({ "n": [5.0] }), json!({ "n": 5 })));
    assert!(matches(json!({ "n": [3.018e2] }), json!({ "n": 301.8 })));
    assert!(!matches(json!({ "n": [5] }), json!({ "n": 6 })));
}

#[test]
fn long_integer_ids_stay_distinct() {
    let p = json!({ "account": [123_456_789_012_345_678_u64] });
    assert!(matches(
        p.clone(),
        json!({ "account": 123_456_789_012_345_678_u64 })
    ));
    assert!(!matches(
        p,
        json!({ "account": 123_456_789_012_345_679_u64 })
    ));
}

#[test]
fn a_number_does_not_match_a_string_of_digits_and_back() {
    assert!(!matches(json!({ "n": [5] }), json!({ "n": "5" })));
    assert!(!matches(json!({ "n": ["5"] }), json!({ "n": 5 })));
}

#[test]
fn null_and_booleans_match_exactly() {
    assert!(matches(json!({ "x": [null] }), json!({ "x": null })));
    assert!(!matches(json!({ "x": [null] }), json!({ "x": "null" })));
    assert!(!matches(json!({ "x": [null] }), json!({})));
    assert!(matches(json!({ "x": [true] }), json!({ "x": true })));
    assert!(!matches(json!({ "x": [true] }), json!({ "x": false })));
    assert!(!matches(json!({ "x": [false] }), json!({ "x": 0 })));
}

#[test]
fn values_in_a_list_are_alternatives() {
    let p = json!({ "state": ["initializing", "running"] });
    assert!(matches(p.clone(), json!({ "state": "running" })));
    assert!(matches(p.clone(), json!({ "state": "initializing" })));
    assert!(!matches(p, json!({ "state": "stopped" })));
}

#[test]
fn every_field_of_the_pattern_must_match() {
    let p = json!({ "source": ["aws.ec2"], "detail-type": ["State change"] });
    assert!(matches(
        p.clone(),
        json!({ "source": "aws.ec2", "detail-type": "State change", "other": 1 })
    ));
    assert!(!matches(
        p.clone(),
        json!({ "source": "aws.ec2", "detail-type": "Other" })
    ));
    assert!(!matches(p, json!({ "source": "aws.ec2" })));
}

#[test]
fn nested_maps_descend_into_the_event() {
    let p = json!({ "detail": { "state": ["running"], "vm": { "size": ["large"] } } });
    assert!(matches(
        p.clone(),
        json!({ "detail": { "state": "running", "vm": { "size": "large" } } })
    ));
    assert!(!matches(
        p.clone(),
        json!({ "detail": { "state": "running", "vm": { "size": "small" } } })
    ));
    assert!(!matches(p.clone(), json!({ "detail": "running" })));
    assert!(!matches(p, json!({ "state": "running" })));
}

#[test]
fn a_field_holding_a_map_is_not_a_value() {
    assert!(!matches(
        json!({ "detail": ["x"] }),
        json!({ "detail": { "x": 1 } })
    ));
}

#[test]
fn an_array_in_the_event_matches_when_any_element_matches() {
    let p = json!({ "resources": ["arn:b"] });
    assert!(matches(
        p.clone(),
        json!({ "resources": ["arn:a", "arn:b"] })
    ));
    assert!(matches(
        p.clone(),
        json!({ "resources": [["arn:a"], ["arn:b"]] })
    ));
    assert!(!matches(p.clone(), json!({ "resources": ["arn:a"] })));
    assert!(!matches(p, json!({ "resources": [] })));
}

#[test]
fn a_nested_map_over_an_array_of_objects_matches_within_one_element() {
    let event = json!({ "employees": [
        { "first": "John", "last": "Doe" },
        { "first": "Anna", "last": "Smith" },
        { "first": "Peter", "last": "Jones" }
    ]});
    assert!(matches(
        json!({ "employees": { "first": ["Anna"] } }),
        event.clone()
    ));
    assert!(matches(
        json!({ "employees": { "first": ["Anna"], "last": ["Smith"] } }),
        event.clone()
    ));
    assert!(!matches(
        json!({ "employees": { "first": ["Anna"], "last": ["Jones"] } }),
        event
    ));
}

#[test]
fn or_matches_when_any_alternative_matches() {
    let p = json!({
        "source": ["aws.cloudwatch"],
        "$or": [
            { "metricName": ["CPUUtilization"] },
            { "namespace": ["AWS/EC2"], "metricType": ["MetricType"] }
        ]
    });
    assert!(matches(
        p.clone(),
        json!({ "source": "aws.cloudwatch", "metricName": "CPUUtilization" })
    ));
    assert!(matches(
        p.clone(),
        json!({ "source": "aws.cloudwatch", "namespace": "AWS/EC2", "metricType": "MetricType" })
    ));
    assert!(!matches(
        p.clone(),
        json!({ "source": "aws.cloudwatch", "namespace": "AWS/EC2" })
    ));
    assert!(!matches(
        p,
        json!({ "source": "aws.s3", "metricName": "CPUUtilization" })
    ));
}

#[test]
fn or_works_inside_nested_maps_and_inside_another_or() {
    let p = json!({
        "detail": {
            "$or": [
                { "a": [1] },
                { "b": [2], "$or": [{ "c": [3] }, { "d": [4] }] }
            ]
        }
    });
    assert!(matches(p.clone(), json!({ "detail": { "a": 1 } })));
    assert!(matches(p.clone(), json!({ "detail": { "b": 2, "d": 4 } })));
    assert!(!matches(p.clone(), json!({ "detail": { "b": 2 } })));
    assert!(!matches(p, json!({ "a": 1 })));
}

// ---- matchers ----

#[test]
fn prefix_matches_the_start_of_a_string() {
    let p = json!({ "time": [{ "prefix": "2017-10-02" }] });
    assert!(matches(
        p.clone(),
        json!({ "time": "2017-10-02T18:43:48Z" })
    ));
    assert!(!matches(
        p.clone(),
        json!({ "time": "2017-10-03T18:43:48Z" })
    ));
    assert!(!matches(p, json!({ "time": "x2017-10-02" })));
}

#[test]
fn prefix_ignoring_case_matches_any_casing() {
    let p = json!({ "service": [{ "prefix": { "equals-ignore-case": "EventB" } }] });
    assert!(matches(p.clone(), json!({ "service": "eventbridge" })));
    assert!(matches(p.clone(), json!({ "service": "EVENTBRIDGE" })));
    assert!(!matches(p, json!({ "service": "bridge" })));
}

#[test]
fn suffix_matches_the_end_of_a_string() {
    let p = json!({ "file": [{ "suffix": ".png" }] });
    assert!(matches(p.clone(), json!({ "file": "cat.png" })));
    assert!(!matches(p.clone(), json!({ "file": "cat.PNG" })));
    assert!(!matches(p, json!({ "file": "cat.png.txt" })));
}

#[test]
fn suffix_ignoring_case_matches_any_casing() {
    let p = json!({ "file": [{ "suffix": { "equals-ignore-case": ".png" } }] });
    assert!(matches(p.clone(), json!({ "file": "cat.PNG" })));
    assert!(matches(p.clone(), json!({ "file": "cat.Png" })));
    assert!(!matches(p, json!({ "file": "cat.jpg" })));
}

#[test]
fn string_matchers_ignore_values_that_are_not_strings() {
    for m in [
        json!({ "prefix": "5" }),
        json!({ "suffix": "5" }),
        json!({ "equals-ignore-case": "5" }),
        json!({ "wildcard": "*" }),
        json!({ "cidr": "10.0.0.0/8" }),
    ] {
        assert!(
            !matches(json!({ "n": [m.clone()] }), json!({ "n": 5 })),
            "{m}"
        );
        assert!(
            !matches(json!({ "n": [m.clone()] }), json!({ "n": null })),
            "{m}"
        );
    }
}

#[test]
fn equals_ignore_case_matches_the_whole_string_in_any_casing() {
    let p = json!({ "name": [{ "equals-ignore-case": "alice" }] });
    assert!(matches(p.clone(), json!({ "name": "Alice" })));
    assert!(matches(p.clone(), json!({ "name": "ALICE" })));
    assert!(!matches(p, json!({ "name": "Alice B" })));
}

#[test]
fn wildcard_star_matches_any_run_of_characters() {
    let p = json!({ "path": [{ "wildcard": "dir/*/file*.png" }] });
    assert!(matches(p.clone(), json!({ "path": "dir/a/b/file1.png" })));
    assert!(matches(p.clone(), json!({ "path": "dir//file.png" })));
    assert!(!matches(p.clone(), json!({ "path": "dir/a/file1.jpg" })));
    assert!(!matches(p, json!({ "path": "xdir/a/file.png" })));
    assert!(matches(
        json!({ "s": [{ "wildcard": "*" }] }),
        json!({ "s": "" })
    ));
    assert!(matches(
        json!({ "s": [{ "wildcard": "a*a*a" }] }),
        json!({ "s": "aaaa" })
    ));
    assert!(!matches(
        json!({ "s": [{ "wildcard": "a*ab" }] }),
        json!({ "s": "aaba" })
    ));
    assert!(matches(
        json!({ "s": [{ "wildcard": "héllo*" }] }),
        json!({ "s": "héllo wörld" })
    ));
}

#[test]
fn wildcard_escapes_a_literal_star_and_backslash() {
    let star = json!({ "s": [{ "wildcard": "a\\*b" }] });
    assert!(matches(star.clone(), json!({ "s": "a*b" })));
    assert!(!matches(star, json!({ "s": "axb" })));
    let slash = json!({ "s": [{ "wildcard": "a\\\\*" }] });
    assert!(matches(slash.clone(), json!({ "s": "a\\bc" })));
    assert!(!matches(slash, json!({ "s": "abc" })));
    // A literal star next to a wildcard star is not two stars in a row.
    assert!(matches(
        json!({ "s": [{ "wildcard": "\\**" }] }),
        json!({ "s": "*rest" })
    ));
}

#[test]
fn anything_but_a_value_or_list_matches_every_other_value() {
    let one = json!({ "state": [{ "anything-but": "initializing" }] });
    assert!(matches(one.clone(), json!({ "state": "running" })));
    assert!(!matches(one, json!({ "state": "initializing" })));
    let list = json!({ "state": [{ "anything-but": ["stopped", "overloaded"] }] });
    assert!(matches(list.clone(), json!({ "state": "running" })));
    assert!(!matches(list, json!({ "state": "stopped" })));
}

#[test]
fn anything_but_numbers_compare_by_value() {
    let p = json!({ "x": [{ "anything-but": [100, 200] }] });
    assert!(matches(p.clone(), json!({ "x": 101 })));
    assert!(!matches(p.clone(), json!({ "x": 100.0 })));
    assert!(!matches(
        json!({ "x": [{ "anything-but": 123 }] }),
        json!({ "x": 123 })
    ));
    // Values of another type are "anything but" a number.
    assert!(matches(p, json!({ "x": "100" })));
}

#[test]
fn anything_but_prefix_suffix_ignore_case_and_wildcard_negate_them() {
    let prefix = json!({ "r": [{ "anything-but": { "prefix": "us-" } }] });
    assert!(matches(prefix.clone(), json!({ "r": "eu-west-1" })));
    assert!(!matches(prefix, json!({ "r": "us-east-1" })));

    let suffix = json!({ "f": [{ "anything-but": { "suffix": ".png" } }] });
    assert!(matches(suffix.clone(), json!({ "f": "a.jpg" })));
    assert!(!matches(suffix, json!({ "f": "a.png" })));

    let case = json!({ "s": [{ "anything-but": { "equals-ignore-case": ["Stopped", "x"] } }] });
    assert!(matches(case.clone(), json!({ "s": "running" })));
    assert!(!matches(case, json!({ "s": "STOPPED" })));
    let case_one = json!({ "s": [{ "anything-but": { "equals-ignore-case": "init" } }] });
    assert!(!matches(case_one, json!({ "s": "INIT" })));

    let wild = json!({ "p": [{ "anything-but": { "wildcard": "*/lib/*" } }] });
    assert!(matches(wild.clone(), json!({ "p": "/usr/bin/x" })));
    assert!(!matches(wild, json!({ "p": "/usr/lib/x" })));
}

#[test]
fn anything_but_never_matches_a_missing_field() {
    let p = json!({ "state": [{ "anything-but": "initializing" }] });
    assert!(!matches(p.clone(), json!({})));
    assert!(!matches(p.clone(), json!({ "state": [] })));
    assert!(!matches(p, json!({ "state": { "nested": "x" } })));
}

#[test]
fn anything_but_on_an_array_matches_when_some_element_differs() {
    let p = json!({ "s": [{ "anything-but": "a" }] });
    assert!(matches(p.clone(), json!({ "s": ["a", "b"] })));
    assert!(!matches(p, json!({ "s": ["a", "a"] })));
}

#[test]
fn numeric_ranges_and_equality() {
    let range = json!({ "c": [{ "numeric": [">", 0, "<=", 5] }] });
    assert!(!matches(range.clone(), json!({ "c": 0 })));
    assert!(matches(range.clone(), json!({ "c": 0.1 })));
    assert!(matches(range.clone(), json!({ "c": 5 })));
    assert!(!matches(range, json!({ "c": 5.01 })));

    let closed = json!({ "c": [{ "numeric": [">=", -1, "<", 1] }] });
    assert!(matches(closed.clone(), json!({ "c": -1 })));
    assert!(!matches(closed, json!({ "c": 1 })));

    assert!(matches(
        json!({ "d": [{ "numeric": ["<", 10] }] }),
        json!({ "d": 9.99 })
    ));
    assert!(!matches(
        json!({ "d": [{ "numeric": ["<", 10] }] }),
        json!({ "d": 10 })
    ));
    assert!(matches(
        json!({ "d": [{ "numeric": ["<=", 10] }] }),
        json!({ "d": 10 })
    ));
    assert!(matches(
        json!({ "d": [{ "numeric": [">", 10] }] }),
        json!({ "d": 11 })
    ));
    assert!(matches(
        json!({ "d": [{ "numeric": [">=", 10] }] }),
        json!({ "d": 10 })
    ));
    assert!(matches(
        json!({ "x": [{ "numeric": ["=", 3.018e2] }] }),
        json!({ "x": 301.8 })
    ));
}

#[test]
fn numeric_ignores_values_that_are_not_numbers() {
    let p = json!({ "c": [{ "numeric": [">", 0] }] });
    assert!(!matches(p.clone(), json!({ "c": "5" })));
    assert!(!matches(p.clone(), json!({ "c": true })));
    assert!(matches(p, json!({ "c": ["x", 3] })));
}

#[test]
fn exists_true_needs_a_value_at_the_leaf() {
    let p = json!({ "detail": { "c": [{ "exists": true }] } });
    assert!(matches(p.clone(), json!({ "detail": { "c": 1 } })));
    assert!(matches(p.clone(), json!({ "detail": { "c": null } })));
    assert!(matches(p.clone(), json!({ "detail": { "c": ["x"] } })));
    assert!(!matches(p.clone(), json!({ "detail": {} })));
    assert!(!matches(
        p.clone(),
        json!({ "detail": { "c": { "c1": 100 } } })
    ));
    assert!(!matches(p, json!({ "detail": { "c": [] } })));
}

#[test]
fn exists_false_matches_a_missing_field_or_one_that_is_not_a_leaf() {
    let p = json!({ "detail": { "c": [{ "exists": false }] } });
    assert!(matches(
        p.clone(),
        json!({ "detail": { "state": "running" } })
    ));
    assert!(matches(
        p.clone(),
        json!({ "detail": { "c": { "c1": 100 } } })
    ));
    assert!(!matches(p.clone(), json!({ "detail": { "c": 0 } })));
    assert!(!matches(p, json!({ "detail": { "c": null } })));
}

#[test]
fn exists_false_matches_when_the_parent_is_missing_too() {
    let p = json!({ "detail": { "c": [{ "exists": false }] } });
    assert!(matches(p.clone(), json!({ "source": "x" })));
    assert!(matches(p, json!({ "detail": "not a map" })));
}

#[test]
fn exists_combines_with_other_matchers_as_alternatives() {
    let p = json!({ "c": [{ "exists": false }, "x"] });
    assert!(matches(p.clone(), json!({})));
    assert!(matches(p.clone(), json!({ "c": "x" })));
    assert!(!matches(p, json!({ "c": "y" })));
}

#[test]
fn cidr_matches_addresses_inside_the_range() {
    let v4 = json!({ "ip": [{ "cidr": "10.0.0.0/24" }] });
    assert!(matches(v4.clone(), json!({ "ip": "10.0.0.33" })));
    assert!(matches(v4.clone(), json!({ "ip": "10.0.0.255" })));
    assert!(!matches(v4.clone(), json!({ "ip": "10.0.1.1" })));
    assert!(!matches(v4.clone(), json!({ "ip": "not an address" })));
    assert!(!matches(v4, json!({ "ip": "::1" })));

    let v6 = json!({ "ip": [{ "cidr": "2001:db8::/32" }] });
    assert!(matches(v6.clone(), json!({ "ip": "2001:db8:1::5" })));
    assert!(!matches(v6, json!({ "ip": "2001:db9::5" })));

    assert!(matches(
        json!({ "ip": [{ "cidr": "0.0.0.0/0" }] }),
        json!({ "ip": "192.168.1.1" })
    ));
    let host = json!({ "ip": [{ "cidr": "192.168.1.7" }] });
    assert!(matches(host.clone(), json!({ "ip": "192.168.1.7" })));
    assert!(!matches(host, json!({ "ip": "192.168.1.8" })));
}

// ---- what is rejected, and where ----

#[test]
fn a_pattern_that_is_not_a_map_or_is_empty_is_rejected() {
    assert_rejected(json!(["a"]), "", "a pattern must be a map");
    assert_rejected(json!({}), "", "at least one field");
    assert_rejected(json!({ "detail": {} }), "detail", "at least one field");
}

#[test]
fn a_field_that_is_not_a_list_or_map_is_rejected() {
    assert_rejected(
        json!({ "detail": { "state": "running" } }),
        "detail.state",
        "must hold a list of values or matchers",
    );
    assert_rejected(json!({ "n": 5 }), "n", "got a number");
}

#[test]
fn an_empty_or_nested_list_is_rejected() {
    assert_rejected(json!({ "detail": { "s": [] } }), "detail.s", "empty list");
    assert_rejected(json!({ "s": [["a"]] }), "s", "cannot hold another list");
}

#[test]
fn unknown_and_malformed_matchers_are_rejected() {
    assert_rejected(
        json!({ "s": [{ "contains": "x" }] }),
        "s",
        "unknown matcher `contains`; expected one of: prefix, suffix",
    );
    assert_rejected(
        json!({ "s": [{ "prefix": "a", "suffix": "b" }] }),
        "s",
        "exactly one key",
    );
    assert_rejected(json!({ "s": [{}] }), "s", "exactly one key");
    assert_rejected(
        json!({ "s": [{ "prefix": 5 }] }),
        "s",
        "`prefix` needs a string",
    );
    assert_rejected(
        json!({ "s": [{ "suffix": { "wildcard": "x" } }] }),
        "s",
        "`suffix` needs a string, or {equals-ignore-case: string}",
    );
    assert_rejected(
        json!({ "s": [{ "equals-ignore-case": ["a"] }] }),
        "s",
        "needs a string",
    );
    assert_rejected(json!({ "s": [{ "exists": "yes" }] }), "s", "true");
    assert_rejected(json!({ "s": [{ "cidr": "10.0.0.0/33" }] }), "s", "IP range");
    assert_rejected(json!({ "s": [{ "cidr": "10.0.0/8" }] }), "s", "IP range");
    assert_rejected(json!({ "s": [{ "cidr": 10 }] }), "s", "IP range");
    assert_rejected(json!({ "s": [{ "wildcard": 1 }] }), "s", "needs a string");
}

#[test]
fn malformed_numeric_lists_are_rejected() {
    let shape = "`numeric` needs pairs of an operator (<, <=, =, >, >=) and a number";
    for bad in [
        json!("> 5"),
        json!([]),
        json!([">"]),
        json!([5, ">"]),
        json!(["!=", 5]),
        json!([">", "5"]),
        json!([">", 0, "<"]),
        json!([">", 0, "<", 5, "<", 6]),
    ] {
        assert_rejected(
            json!({ "detail": { "price": [{ "numeric": bad }] } }),
            "detail.price",
            shape,
        );
    }
    for bad in [
        json!(["<", 5, ">", 0]),
        json!(["=", 5, "<", 6]),
        json!([">", 0, ">", 5]),
    ] {
        assert_rejected(
            json!({ "p": [{ "numeric": bad }] }),
            "p",
            "a lower bound (> or >=) first and an upper bound (< or <=) second",
        );
    }
    assert_rejected(
        json!({ "p": [{ "numeric": [">", 5, "<", 5] }] }),
        "p",
        "the lower bound (5) must be below the upper bound (5)",
    );
}

#[test]
fn wildcard_with_two_stars_in_a_row_or_a_stray_backslash_is_rejected() {
    assert_rejected(
        json!({ "s": [{ "wildcard": "a**b" }] }),
        "s",
        "two * in a row",
    );
    assert_rejected(
        json!({ "s": [{ "anything-but": { "wildcard": "**" } }] }),
        "s",
        "two * in a row",
    );
    assert_rejected(
        json!({ "s": [{ "wildcard": "a\\b" }] }),
        "s",
        "may only escape",
    );
    assert_rejected(
        json!({ "s": [{ "wildcard": "a\\" }] }),
        "s",
        "may only escape",
    );
}

#[test]
fn malformed_anything_but_is_rejected() {
    let shape = "`anything-but` needs a string, a number, a list of only strings or only numbers";
    for bad in [
        json!(true),
        json!(null),
        json!([]),
        json!(["a", 1]),
        json!([null]),
        json!({ "numeric": [">", 1] }),
        json!({ "prefix": "a", "suffix": "b" }),
        json!({ "equals-ignore-case": [] }),
        json!({ "equals-ignore-case": [1] }),
    ] {
        assert_rejected(json!({ "s": [{ "anything-but": bad }] }), "s", shape);
    }
    assert_rejected(
        json!({ "s": [{ "anything-but": { "prefix": "" } }] }),
        "s",
        "`anything-but` `prefix` needs a non-empty string",
    );
}

#[test]
fn or_with_fewer_than_two_alternatives_is_rejected() {
    let needs = "`$or` needs a list of at least two patterns";
    assert_rejected(json!({ "$or": [{ "a": [1] }] }), "$or", needs);
    assert_rejected(json!({ "$or": [] }), "$or", needs);
    assert_rejected(
        json!({ "detail": { "$or": { "a": [1] } } }),
        "detail.$or",
        needs,
    );
    assert_rejected(
        json!({ "$or": [{ "a": [1] }, ["b"]] }),
        "$or[1]",
        "a pattern must be a map",
    );
    assert_rejected(
        json!({ "detail": { "$or": [{ "a": [1] }, { "b": [{ "numeric": [] }] }] } }),
        "detail.$or[1].b",
        "`numeric` needs pairs",
    );
}

#[test]
fn the_error_names_the_path_then_what_is_wrong() {
    let e = rejected(json!({ "detail": { "price": [{ "numeric": [">", "zero"] }] } }));
    assert_eq!(
        e.to_string(),
        "at `detail.price`: `numeric` needs pairs of an operator (<, <=, =, >, >=) and a number, \
         e.g. [\">\", 0, \"<=\", 5]"
    );
    assert_eq!(
        rejected(json!({})).to_string(),
        "a map in a pattern needs at least one field; an empty map is not allowed"
    );
}

// ---- robustness ----

/// Any JSON, with keys and strings drawn partly from the pattern vocabulary so some
/// generated patterns compile and reach the matcher.
fn any_json() -> impl Strategy<Value = Value> {
    let word = prop_oneof![
        Just("prefix".to_string()),
        Just("suffix".to_string()),
        Just("anything-but".to_string()),
        Just("equals-ignore-case".to_string()),
        Just("wildcard".to_string()),
        Just("numeric".to_string()),
        Just("exists".to_string()),
        Just("cidr".to_string()),
        Just("$or".to_string()),
        Just(">".to_string()),
        Just("<=".to_string()),
        Just("=".to_string()),
        Just("10.0.0.0/8".to_string()),
        Just("a*b\\*".to_string()),
        "[a-c*\\\\]{0,4}",
        ".{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((word.clone(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Well-formed patterns built from every kind of matcher, nested maps and `$or`.
fn valid_pattern() -> impl Strategy<Value = Value> {
    let matcher = prop_oneof![
        Just(json!("a")),
        Just(json!(5)),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!({ "prefix": "a" })),
        Just(json!({ "suffix": { "equals-ignore-case": "B" } })),
        Just(json!({ "equals-ignore-case": "A" })),
        Just(json!({ "wildcard": "*a*c" })),
        Just(json!({ "anything-but": ["a", "b"] })),
        Just(json!({ "anything-but": { "wildcard": "a*" } })),
        Just(json!({ "numeric": [">", 0, "<=", 5] })),
        Just(json!({ "exists": false })),
        Just(json!({ "cidr": "10.0.0.0/8" })),
    ];
    let key = prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(String::from);
    let object = |key: BoxedStrategy<String>, field: BoxedStrategy<Value>| {
        prop::collection::vec((key, field), 1..3)
            .prop_map(|kv| Value::Object(kv.into_iter().collect()))
    };
    let leaf = prop::collection::vec(matcher, 1..3).prop_map(Value::Array);
    let field = leaf.prop_recursive(3, 24, 3, move |inner| {
        let map = object(key.clone().boxed(), inner.boxed());
        prop_oneof![
            map.clone(),
            (map.clone(), map).prop_map(|(x, y)| json!({ "$or": [x, y] })),
        ]
    });
    let top_key = prop_oneof![Just("a"), Just("b")].prop_map(String::from);
    object(top_key.boxed(), field.boxed())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn compiling_and_matching_arbitrary_json_never_panics(p in any_json(), event in any_json()) {
        if let Ok(compiled) = EventPattern::compile(&p) {
            let _ = compiled.matches(&event);
            let _ = compiled.matches(&p);
        }
    }

    #[test]
    fn well_formed_patterns_compile_and_match_any_event(p in valid_pattern(), event in any_json()) {
        let compiled = EventPattern::compile(&p);
        prop_assert!(compiled.is_ok(), "{} rejected: {:?}", p, compiled.err());
        if let Ok(compiled) = compiled {
            let _ = compiled.matches(&event);
        }
    }
}
