//! The workflow language as users meet it: what is accepted, what the checked
//! [`Workflow`] holds, and what every mistake reports, and where.

use super::*;
use serde_json::json;
use std::time::Duration;

fn ok(text: &str) -> Workflow {
    parse("t.yaml", text).unwrap_or_else(|e| panic!("expected a valid workflow, got:\n{e}"))
}

/// Every diagnostic as `line:col: message`.
fn problems(text: &str) -> Vec<String> {
    match parse("t.yaml", text) {
        Ok(_) => panic!("expected problems, the workflow is valid:\n{text}"),
        Err(e) => e
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.pos, d.message))
            .collect(),
    }
}

/// The only diagnostic of a file with exactly one problem.
fn problem(text: &str) -> String {
    let all = problems(text);
    assert_eq!(all.len(), 1, "expected exactly one problem, got {all:#?}");
    all.into_iter().next().unwrap()
}

fn assert_has(all: &[String], expected: &str) {
    assert!(
        all.iter().any(|p| p.contains(expected)),
        "no problem contains `{expected}`; got {all:#?}"
    );
}

// ---- what is accepted, and what the checked workflow holds ----

#[test]
fn minimal_workflow_has_one_step_with_default_retry_and_no_timeout() {
    let wf = ok("name: hello\nsteps:\n  - id: say\n    pass: hi\n");
    assert_eq!(wf.name, "hello");
    assert_eq!(wf.steps.len(), 1);
    let step = &wf.steps[0];
    assert_eq!(step.id, "say");
    assert_eq!(step.retry, RetryPolicy::default());
    assert_eq!(step.retry.attempts, 1);
    assert_eq!(step.retry.backoff, Duration::from_secs(1));
    assert_eq!(step.retry.factor, 2.0);
    assert_eq!(step.timeout, None);
    assert!(matches!(&step.kind, StepKind::Pass { value } if value == &json!("hi")));
    assert_eq!(step.pos, Pos { line: 3, column: 9 });
}

#[test]
fn defaults_apply_to_every_step_and_a_step_overrides_only_what_it_sets() {
    let wf = ok(r#"
name: defaults
defaults:
  retry: { attempts: 3, backoff: 2s, factor: 3, max_backoff: 1m, jitter: true }
  timeout: 5m
steps:
  - id: plain
    pass: 1
  - id: custom
    pass: 2
    retry: { attempts: 5 }
    timeout: 30s
"#);
    let plain = wf.step("plain").unwrap();
    assert_eq!(
        plain.retry,
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_secs(2),
            factor: 3.0,
            max_backoff: Some(Duration::from_secs(60)),
            jitter: true,
        }
    );
    assert_eq!(plain.timeout, Some(Duration::from_secs(300)));
    let custom = wf.step("custom").unwrap();
    assert_eq!(custom.retry.attempts, 5);
    assert_eq!(
        custom.retry.backoff,
        Duration::from_secs(2),
        "kept from defaults"
    );
    assert!(custom.retry.jitter, "kept from defaults");
    assert_eq!(custom.timeout, Some(Duration::from_secs(30)));
}

#[test]
fn params_keep_their_types_defaults_and_required_flags_in_order() {
    let wf = ok(r#"
name: params
params:
  date: { type: string, default: "2026-01-01" }
  bucket: { type: string, required: true }
  limit: { type: integer, default: 10 }
  anything: {}
steps:
  - id: s
    pass: "{{ params.date }} {{ params.bucket }} {{ params.limit }} {{ params.anything }}"
"#);
    let names: Vec<&str> = wf.params.keys().map(String::as_str).collect();
    assert_eq!(names, ["date", "bucket", "limit", "anything"]);
    let date = &wf.params["date"];
    assert_eq!(date.kind, Some(decl::ParamType::String));
    assert_eq!(date.default, Some(json!("2026-01-01")));
    assert!(!date.required);
    assert!(wf.params["bucket"].required);
    assert_eq!(wf.params["bucket"].default, None);
    assert_eq!(wf.params["limit"].default, Some(json!(10)));
    assert_eq!(wf.params["anything"].kind, None);
}

#[test]
fn triggers_of_every_kind_are_parsed() {
    let wf = ok(r#"
name: triggers
triggers:
  - schedule: "0 2 * * *"
  - schedule: { cron: "30 6 * * 1-5", timezone: Europe/Paris, catchup: latest, catchup_window: 6h, overlap: skip }
  - schedule: "rate(15 minutes)"
  - s3: { bucket: acme-orders, prefix: incoming/, suffix: .csv }
  - event: { source: [acme.orders], detail-type: [OrderBatchReady] }
  - webhook: { path: orders, secret: orders-hook, signature: github }
  - sqs: { queue: orders-queue }
    params: { order: "{{ trigger.body }}" }
steps:
  - id: s
    pass: "{{ trigger }}"
"#);
    assert_eq!(wf.triggers.len(), 7);
    let TriggerSource::Schedule {
        schedule,
        catchup,
        overlap,
        ..
    } = &wf.triggers[0].source
    else {
        panic!("a schedule")
    };
    assert_eq!(schedule.timezone, chrono_tz::Tz::UTC);
    assert_eq!(*catchup, decl::CatchupPolicy::None);
    assert_eq!(*overlap, decl::OverlapPolicy::Allow);
    let TriggerSource::Schedule {
        schedule,
        catchup,
        catchup_window,
        overlap,
    } = &wf.triggers[1].source
    else {
        panic!("a schedule")
    };
    assert_eq!(schedule.timezone, chrono_tz::Europe::Paris);
    assert_eq!(*catchup, decl::CatchupPolicy::Latest);
    assert_eq!(*catchup_window, Duration::from_secs(6 * 3600));
    assert_eq!(*overlap, decl::OverlapPolicy::Skip);
    assert!(matches!(
        &wf.triggers[2].source,
        TriggerSource::Schedule { schedule, .. } if matches!(schedule.cadence, Cadence::Rate(d) if d == Duration::from_secs(900))
    ));
    assert!(matches!(
        &wf.triggers[3].source,
        TriggerSource::S3 { bucket, prefix: Some(p), suffix: Some(s) }
            if bucket == "acme-orders" && p == "incoming/" && s == ".csv"
    ));
    assert!(matches!(
        &wf.triggers[4].source,
        TriggerSource::Event { pattern } if pattern["detail-type"] == json!(["OrderBatchReady"])
    ));
    assert!(matches!(
        &wf.triggers[5].source,
        TriggerSource::Webhook { path, secret, signature: decl::SignatureScheme::Github }
            if path == "orders" && secret == "orders-hook"
    ));
    assert!(
        matches!(&wf.triggers[6].source, TriggerSource::Sqs { queue } if queue == "orders-queue")
    );
    assert_eq!(
        wf.triggers[6].params,
        Some(json!({"order": "{{ trigger.body }}"}))
    );
}

#[test]
fn every_step_kind_is_built() {
    let wf = ok(r#"
name: kinds
steps:
  - id: call
    lambda: braid-example-worker
    input: { op: echo }
  - id: fetch
    http: { url: "https://example.com", method: post, headers: { X-Id: "1" }, json: { a: 1 }, timeout: 10s, expect: [200, 201] }
  - id: nap
    wait: 1h30m
  - id: until
    wait: { until: "2026-01-01T09:00:00Z" }
  - id: ok
    approval: { message: Ship it?, timeout: 24h }
  - id: ping
    signal: { name: go, timeout: 1h }
  - id: child
    workflow: other-flow
    input: { x: 1 }
  - id: stop
    fail: { error: Bad, message: nope }
"#);
    let kinds: Vec<&str> = wf.steps.iter().map(|s| s.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "lambda", "http", "wait", "wait", "approval", "signal", "workflow", "fail"
        ]
    );
    let StepKind::Http(call) = &wf.step("fetch").unwrap().kind else {
        panic!("http")
    };
    assert_eq!(call.method, "POST", "methods are uppercased");
    assert_eq!(call.timeout, Some(Duration::from_secs(10)));
    assert_eq!(call.expect, Some(vec![200, 201]));
    assert!(matches!(
        wf.step("nap").unwrap().kind,
        StepKind::Wait(WaitFor::Duration(d)) if d == Duration::from_secs(5400)
    ));
    assert!(matches!(
        &wf.step("until").unwrap().kind,
        StepKind::Wait(WaitFor::Until(t)) if t == "2026-01-01T09:00:00Z"
    ));
    assert_eq!(wf.step("child").unwrap().input, Some(json!({"x": 1})));
}

#[test]
fn http_method_defaults_to_get() {
    let wf = ok("name: h\nsteps:\n  - id: get\n    http: { url: \"https://example.com\" }\n");
    assert!(matches!(&wf.steps[0].kind, StepKind::Http(c) if c.method == "GET"));
}

#[test]
fn a_step_records_the_steps_its_fields_read() {
    let wf = ok(r#"
name: reads
steps:
  - id: a
    pass: 1
  - id: big-day
    pass: 2
  - id: c
    needs: [a, big-day]
    when: "{{ steps.a.output > 0 }}"
    pass: { x: "{{ steps['big-day'].output }}" }
"#);
    let c = wf.step("c").unwrap();
    assert_eq!(c.reads.steps.iter().collect::<Vec<_>>(), ["a", "big-day"]);
    assert_eq!(
        c.task_reads.steps.iter().collect::<Vec<_>>(),
        ["big-day"],
        "`when` is read once per step, not per run of its task"
    );
    assert_eq!(c.needs, ["a", "big-day"]);
}

#[test]
fn a_step_records_whether_its_fields_read_params_and_trigger() {
    let wf = ok(r#"
name: reads
params:
  list: { type: array }
steps:
  - id: each
    for_each: "{{ params.list }}"
    pass: "{{ item }}"
  - id: hook
    pass: { who: "{{ trigger.body.user }}", n: "{{ params['list'] | length }}" }
"#);
    let each = wf.step("each").unwrap();
    assert!(each.reads.params && !each.reads.trigger);
    assert!(
        !each.task_reads.params && !each.task_reads.trigger,
        "an iteration reads its item, not the run's input"
    );
    let hook = wf.step("hook").unwrap();
    assert!(hook.task_reads.params && hook.task_reads.trigger);
}

#[test]
fn complementary_whens_can_rejoin_and_roots_and_leaves_are_known() {
    let wf = ok(r#"
name: branches
params:
  n: { type: integer, default: 3 }
steps:
  - id: check
    pass: "{{ params.n > 2 }}"
  - id: big
    needs: [check]
    when: "{{ steps.check.output }}"
    pass: big
  - id: small
    needs: [check]
    when: "{{ not steps.check.output }}"
    pass: small
  - id: join
    needs: [big, small]
    pass: "{{ steps.big.status }} {{ steps.small.status }}"
"#);
    assert_eq!(
        wf.steps
            .iter()
            .filter(|s| s.needs.is_empty())
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["check"]
    );
    assert_eq!(
        wf.leaves().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["join"]
    );
    assert_eq!(
        wf.dependents("check")
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["big", "small"]
    );
}

#[test]
fn a_for_each_step_sees_item_and_index_in_its_fields() {
    let wf = ok(r#"
name: fan-out
steps:
  - id: list
    pass: [1, 2, 3]
  - id: each
    needs: [list]
    for_each: "{{ steps.list.output }}"
    max_parallel: 2
    continue_on_failure: true
    lambda: braid-example-worker
    input: { value: "{{ item }}", position: "{{ index }}" }
"#);
    let each = wf.step("each").unwrap();
    assert_eq!(each.for_each.as_deref(), Some("{{ steps.list.output }}"));
    assert_eq!(each.max_parallel, Some(2));
    assert!(each.continue_on_failure);
}

#[test]
fn json_files_are_accepted() {
    let wf = ok(r#"{
  "name": "from-json",
  "params": { "who": { "type": "string", "default": "world" } },
  "steps": [
    { "id": "greet", "pass": "hello {{ params.who }}" },
    { "id": "done", "needs": ["greet"], "pass": { "said": "{{ steps.greet.output }}" } }
  ]
}"#);
    assert_eq!(wf.name, "from-json");
    assert_eq!(wf.steps[1].needs, ["greet"]);
}

#[test]
fn json_files_report_positions_too() {
    let p =
        problem("{\n  \"name\": \"j\",\n  \"steps\": [\n    { \"id\": \"a\", \"pas\": 1 }\n  ]\n}");
    assert!(p.starts_with("4:18: unknown key `pas` in step `a`"), "{p}");
}

#[test]
fn run_level_settings_are_kept() {
    let wf = ok(r#"
name: run-level
description: Does things.
timeout: 2h
concurrency: 1
output: "{{ steps.last.output }}"
notify:
  - on: [failed, timed_out]
    slack: { webhook_url: "{{ secret('slack-url') }}" }
  - on: [succeeded]
    webhook: { url: "https://example.com/hooks/braid", secret: hook-key }
steps:
  - id: last
    pass: done
"#);
    assert_eq!(wf.description.as_deref(), Some("Does things."));
    assert_eq!(wf.timeout, Some(Duration::from_secs(7200)));
    assert_eq!(wf.concurrency, Some(1));
    assert_eq!(wf.output, Some(json!("{{ steps.last.output }}")));
    assert_eq!(wf.notify.len(), 2);
    assert_eq!(wf.notify[0].on, ["failed", "timed_out"]);
    assert!(matches!(&wf.notify[0].target, NotifyTarget::Slack { .. }));
    assert!(matches!(
        &wf.notify[1].target,
        NotifyTarget::Webhook { secret: Some(s), .. } if s == "hook-key"
    ));
}

#[test]
fn slack_takes_a_webhook_or_a_bot_token_from_a_secret_and_a_channel() {
    let wf = ok(r##"
name: bot
notify:
  - on: [failed]
    slack: { token: "{{ secret('slack-bot') }}", channel: "#ops" }
steps:
  - id: a
    pass: 1
"##);
    assert!(matches!(
        &wf.notify[0].target,
        NotifyTarget::SlackBot { channel, .. } if channel == "#ops"
    ));
    assert_eq!(wf.notify[0].target.kind(), "slack");
    let head = "name: x\nnotify:\n  - on: [failed]\n    slack: ";
    let tail = "\nsteps:\n  - id: a\n    pass: 1\n";
    let bad = |slack: &str| problem(&format!("{head}{slack}{tail}"));
    assert_eq!(
        bad("{ token: \"xoxb-123\", channel: C1 }"),
        "4:21: notify.slack.token: a token written here would be stored with the workflow and shown with it; use `{{ secret('name') }}`"
    );
    assert!(
        bad("{ token: \"xoxb-1 {{ secret('b') }}\", channel: C1 }")
            .contains("a token written here")
    );
    assert_eq!(
        bad("{ token: \"{{ secret('b') }}\" }"),
        "3:5: notify.slack: `token` needs a `channel` to post to"
    );
    assert_eq!(
        bad("{ webhook_url: \"https://x\", token: \"{{ secret('b') }}\", channel: C1 }"),
        "3:5: notify.slack: set either `webhook_url`, or `token` and `channel`, not both"
    );
    assert_eq!(
        bad("{}"),
        "3:5: notify.slack: set either `webhook_url`, or `token` and `channel`, not both"
    );
}

#[test]
fn a_step_carries_its_own_notify_with_step_statuses_only() {
    let wf = ok(r#"
name: steps-notify
steps:
  - id: deploy
    pass: 1
    notify:
      - on: [failed, waiting]
        webhook:
          url: "https://example.com/hook"
          headers: { X-Team: "{{ secret('team') }}" }
"#);
    let n = &wf.step("deploy").unwrap().notify;
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].on, ["failed", "waiting"]);
    assert!(matches!(
        &n[0].target,
        NotifyTarget::Webhook { headers, .. } if headers["X-Team"] == "{{ secret('team') }}"
    ));
    let p = problem(
        "name: x\nsteps:\n  - id: a\n    pass: 1\n    notify:\n      - on: [started]\n        slack: { webhook_url: \"https://x\" }\n",
    );
    assert_eq!(
        p,
        "6:14: step `a`: notify: unknown status `started`; expected one of: succeeded, failed, cancelled, waiting, retrying, sla_missed"
    );
}

// ---- unknown keys and shapes ----

#[test]
fn unknown_key_suggests_nearest_known_key() {
    let p = problem("name: x\nsteps:\n  - id: b\n    neds: [a]\n    pass: 1\n");
    assert_eq!(
        p,
        "4:5: unknown key `neds` in step `b`; did you mean `needs`?"
    );
}

#[test]
fn every_unknown_key_is_reported_at_once() {
    let all = problems(
        r#"
name: x
desciption: typo at the top
defaults:
  retyr: { attempts: 2 }
steps:
  - id: a
    pass: 1
    retry: { atempts: 2 }
    http: { url: "https://x", methd: GET }
"#,
    );
    assert_eq!(
        all,
        [
            "3:1: unknown key `desciption` at the top level; did you mean `description`?",
            "5:3: unknown key `retyr` in `defaults`; did you mean `retry`?",
            "9:14: unknown key `atempts` in `retry` of step `a`; did you mean `attempts`?",
            "10:31: unknown key `methd` in `http` of step `a`; did you mean `method`?",
        ]
    );
}

#[test]
fn keys_from_other_tools_point_to_the_braid_key() {
    let all = problems(
        "name: x\nsteps:\n  - id: a\n    depends_on: [b]\n    if: \"{{ true }}\"\n    pass: 1\n",
    );
    assert_eq!(
        all,
        [
            "4:5: unknown key `depends_on` in step `a`; did you mean `needs`?",
            "5:5: unknown key `if` in step `a`; did you mean `when`?",
        ]
    );
}

#[test]
fn a_retry_setting_written_on_the_step_is_pointed_under_retry() {
    let p = problem("name: x\nsteps:\n  - id: a\n    attempts: 3\n    pass: 1\n");
    assert_eq!(
        p,
        "4:5: unknown key `attempts` in step `a`; it belongs under `retry`"
    );
}

#[test]
fn a_key_with_no_close_match_lists_the_known_keys() {
    let p = problem("name: x\nsteps:\n  - id: a\n    pass: 1\n    retry: { zzz: 1 }\n");
    assert!(
        p.ends_with("expected one of: attempts, backoff, factor, max_backoff, jitter"),
        "{p}"
    );
}

#[test]
fn a_misspelt_required_key_is_one_problem() {
    let p = problem("name: x\nsteps:\n  - id: a\n    http: { ur: \"https://x\" }\n");
    assert_eq!(
        p,
        "4:13: unknown key `ur` in `http` of step `a`; did you mean `url`?"
    );
}

#[test]
fn a_step_without_id_is_reported_at_the_step() {
    let p = problem("name: x\nsteps:\n  - pass: 1\n");
    assert_eq!(p, "3:5: missing required key `id` in step #1");
}

#[test]
fn a_workflow_without_name_is_reported() {
    let p = problem("steps:\n  - id: a\n    pass: 1\n");
    assert_eq!(p, "1:1: missing required key `name` at the top level");
}

#[test]
fn a_value_of_the_wrong_type_names_the_field_and_the_value() {
    let all = problems(
        "name: x\nsteps:\n  - id: a\n    needs: b\n    pass: 1\n    max_parallel: lots\n    continue_on_failure: yes\n",
    );
    assert_eq!(
        all,
        [
            "4:12: `needs` of step `a` must be a list, got `b`",
            "6:19: `max_parallel` of step `a` must be a whole number, got `lots`",
            "7:26: `continue_on_failure` of step `a` must be `true` or `false`, got `yes`",
        ]
    );
}

#[test]
fn a_number_where_text_is_expected_suggests_quotes() {
    let p = problem("name: x\nsteps:\n  - id: a\n    lambda: 42\n");
    assert_eq!(
        p,
        "4:13: `lambda` of step `a` must be a string, got `42`; put it in quotes to make it a string"
    );
}

#[test]
fn a_value_outside_an_enumeration_lists_the_allowed_ones() {
    let all = problems(
        "name: x\nparams:\n  p: { type: text }\ntriggers:\n  - webhook: { path: p, secret: s, signature: gitlab }\nsteps:\n  - id: a\n    pass: 1\n",
    );
    assert_eq!(
        all,
        [
            "3:14: `params.p.type` must be one of: string, number, integer, boolean, object, array; got `text`",
            "5:47: `triggers[0].webhook.signature` must be one of: braid, github, stripe; got `gitlab`",
        ]
    );
}

#[test]
fn negative_counts_are_out_of_range() {
    let p = problem("name: x\nconcurrency: -1\nsteps:\n  - id: a\n    pass: 1\n");
    assert!(
        p.starts_with("2:14: `concurrency` must be between 0 and"),
        "{p}"
    );
}

#[test]
fn a_list_is_not_a_workflow() {
    let p = problem("- id: a\n  pass: 1\n");
    assert_eq!(
        p,
        "1:1: a workflow file must be a map with `name` and `steps`, not a list"
    );
}

#[test]
fn an_empty_file_says_so() {
    let p = problem("# nothing yet\n");
    assert!(
        p.ends_with("the file is empty; a workflow is a map with `name` and `steps`"),
        "{p}"
    );
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let p = problem("name: x\nsteps:\n  - id: a\n    pass: [1, 2\n");
    assert!(p.starts_with("4:11: invalid YAML:"), "{p}");
}

#[test]
fn duplicate_yaml_keys_are_rejected() {
    let p = problem("name: x\nsteps:\n  - id: a\n    pass: 1\n    pass: 2\n");
    assert!(p.starts_with("5:5: invalid YAML: duplicate"), "{p}");
}

// ---- ids, needs and the graph ----

#[test]
fn bad_workflow_name_and_step_id_are_rejected() {
    let all = problems("name: Orders_Nightly\nsteps:\n  - id: Split\n    pass: 1\n");
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(
        all[0].starts_with("1:7: workflow name `Orders_Nightly` is invalid"),
        "{all:#?}"
    );
    assert!(
        all[1].starts_with("3:9: step id `Split` is invalid"),
        "{all:#?}"
    );
}

#[test]
fn duplicate_ids_point_at_the_second_and_name_the_first() {
    let p = problem("name: x\nsteps:\n  - id: a\n    pass: 1\n  - id: a\n    pass: 2\n");
    assert_eq!(
        p,
        "5:9: duplicate step id `a` (first defined at 3:9); step ids must be unique"
    );
}

#[test]
fn needs_naming_an_unknown_step_suggests_the_nearest() {
    let p = problem(
        "name: x\nsteps:\n  - id: split\n    pass: 1\n  - id: b\n    needs: [splt]\n    pass: 2\n",
    );
    assert_eq!(
        p,
        "6:13: step `b` needs `splt`, but there is no such step; did you mean `split`?"
    );
}

#[test]
fn a_step_that_needs_itself_is_one_problem_not_also_a_cycle() {
    let p = problem("name: x\nsteps:\n  - id: a\n    needs: [a]\n    pass: 1\n");
    assert_eq!(p, "4:13: step `a` needs itself; remove `a` from its needs");
}

#[test]
fn cycle_names_every_step_on_it() {
    let p = problem(
        "name: x\nsteps:\n  - id: a\n    needs: [c]\n    pass: 1\n  - id: b\n    needs: [a]\n    pass: 2\n  - id: c\n    needs: [b]\n    pass: 3\n",
    );
    assert_eq!(
        p,
        "4:13: needs form a cycle: `a` needs `c`, `c` needs `b`, `b` needs `a`; remove one of these needs"
    );
}

#[test]
fn separate_cycles_are_each_reported_once() {
    let all = problems(
        "name: x\nsteps:\n  - { id: a, needs: [b], pass: 1 }\n  - { id: b, needs: [a], pass: 1 }\n  - { id: c, needs: [d], pass: 1 }\n  - { id: d, needs: [c], pass: 1 }\n",
    );
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_has(&all, "`a` needs `b`, `b` needs `a`");
    assert_has(&all, "`c` needs `d`, `d` needs `c`");
}

#[test]
fn step_with_no_kind_is_rejected() {
    let p = problem("name: x\nsteps:\n  - id: a\n    needs: []\n");
    assert_eq!(
        p,
        "3:5: step `a` has no kind; give exactly one of lambda, http, pass, wait, approval, signal, workflow, fail"
    );
}

#[test]
fn step_with_two_kinds_is_rejected() {
    let p = problem("name: x\nsteps:\n  - id: a\n    lambda: f\n    pass: 1\n");
    assert_eq!(
        p,
        "3:5: step `a` has 2 kinds (lambda, pass); give exactly one"
    );
}

#[test]
fn a_workflow_without_steps_is_rejected() {
    let p = problem("name: x\nsteps: []\n");
    assert_eq!(
        p,
        "2:8: the workflow has no steps; add at least one under `steps`"
    );
}

#[test]
fn input_on_a_step_that_takes_no_input_is_rejected() {
    let p = problem(
        "name: x\nsteps:\n  - id: a\n    http: { url: \"https://x\" }\n    input: { a: 1 }\n",
    );
    assert_eq!(
        p,
        "5:12: step `a`: `input` is for `lambda` and `workflow` steps; an http step takes its data in its own field"
    );
}

#[test]
fn max_parallel_without_for_each_is_rejected() {
    let p = problem("name: x\nsteps:\n  - id: a\n    max_parallel: 3\n    pass: 1\n");
    assert!(
        p.starts_with("4:19: step `a`: max_parallel only applies to `for_each` steps"),
        "{p}"
    );
}

// ---- durations, schedules, notify ----

#[test]
fn bad_durations_name_the_field() {
    let all = problems(
        r#"
name: x
timeout: 2 hours
defaults:
  timeout: 5
steps:
  - id: a
    timeout: soon
    retry: { backoff: 1x, max_backoff: 2m }
    wait: 10
"#,
    );
    // Shape problems come first: a duration written as a number is not text at all.
    assert_eq!(
        all,
        [
            "5:12: `defaults.timeout` must be a string, got `5`; put it in quotes to make it a string",
            "10:11: `wait` of step `a` must be a string or a map, got `10`; put it in quotes to make it a string",
        ]
    );
    // Once the shape is right, the durations themselves are checked.
    let all = problems(
        "name: x\ntimeout: 2 hours\nsteps:\n  - id: a\n    timeout: soon\n    retry: { backoff: 1x }\n    wait: \"10\"\n",
    );
    assert_eq!(
        all,
        [
            "2:10: timeout: bad duration `2 hours`: unknown unit `hours`; write `2h` (units: ms, s, m, h, d)",
            "5:14: step `a`: timeout: bad duration `soon`: expected a number then a unit (ms, s, m, h, d), e.g. `30s`",
            "6:23: step `a`: retry.backoff: bad duration `1x`: unknown unit `x` (units: ms, s, m, h, d)",
            "7:11: step `a`: wait: bad duration `10`: missing unit; write e.g. `10s` (units: ms, s, m, h, d)",
        ]
    );
}

#[test]
fn retry_values_out_of_range_name_the_step() {
    let all = problems(
        "name: x\nsteps:\n  - id: a\n    retry: { attempts: 0, factor: 0.5 }\n    pass: 1\n",
    );
    assert_eq!(
        all,
        [
            "4:24: step `a`: retry.attempts must be at least 1: it counts every try, the first included",
            "4:35: step `a`: retry.factor must be a number of at least 1, got 0.5",
        ]
    );
}

#[test]
fn bad_cron_timezone_and_rate_are_rejected_where_they_are_written() {
    let all = problems(
        r#"
name: x
triggers:
  - schedule: "0 25 * * *"
  - schedule: { cron: "0 2 * * *", timezone: Mars/Olympus }
  - schedule: "rate(5 weeks)"
  - schedule: "every day"
steps:
  - id: a
    pass: 1
"#,
    );
    assert_eq!(
        all,
        [
            "4:15: bad cron `0 25 * * *`: the hour field is `25`, but hour must be between 0 and 23",
            "5:46: unknown time zone `Mars/Olympus`: use an IANA name such as `Europe/Paris` or `UTC`",
            "6:15: bad rate `rate(5 weeks)`: unit must be minutes, hours or days",
            "7:15: bad cron `every day`: expected 5 fields (minute hour day-of-month month day-of-week) or `rate(N unit)`",
        ]
    );
}

#[test]
fn a_bad_event_pattern_is_rejected_naming_the_path_inside_it() {
    let p = problem(
        r#"
name: x
triggers:
  - event: { source: [acme.orders], detail: { price: [{ numeric: [">", zero] }] } }
steps:
  - id: a
    pass: 1
"#,
    );
    assert_eq!(
        p,
        "4:12: event trigger: pattern field `detail.price`: `numeric` needs pairs of an operator \
         (<, <=, =, >, >=) and a number, e.g. [\">\", 0, \"<=\", 5]"
    );
}

#[test]
fn a_trigger_with_two_sources_is_rejected() {
    let p = problem(
        "name: x\ntriggers:\n  - schedule: \"0 2 * * *\"\n    sqs: { queue: q }\nsteps:\n  - id: a\n    pass: 1\n",
    );
    assert_eq!(
        p,
        "3:5: a trigger needs exactly one of schedule, s3, event, webhook, sqs; this one has schedule and sqs"
    );
}

#[test]
fn notify_with_an_unknown_status_suggests_the_nearest() {
    let p = problem(
        "name: x\nnotify:\n  - on: [failed, faild]\n    webhook: { url: \"https://x\" }\nsteps:\n  - id: a\n    pass: 1\n",
    );
    assert_eq!(
        p,
        "3:18: notify: unknown status `faild`; did you mean `failed`? expected one of: started, succeeded, failed, cancelled, timed_out, waiting, retrying, sla_missed"
    );
}

// ---- params ----

#[test]
fn bad_param_declarations_are_rejected_at_the_default() {
    let all = problems(
        r#"
name: x
params:
  count: { type: integer, default: "ten" }
  bucket: { type: string, required: true, default: b }
  2fast: { type: string }
steps:
  - id: a
    pass: 1
"#,
    );
    assert_eq!(
        all,
        [
            "4:36: param `count`: the default is a string, but the param's type is integer",
            "5:52: param `bucket`: a required param cannot have a default; drop `required` or the default",
            "6:10: param `2fast`: names must be letters, digits and `_`, not starting with a digit",
        ]
    );
}

// ---- expressions ----

#[test]
fn expression_syntax_errors_point_inside_the_braces() {
    let p = problem("name: x\nsteps:\n  - id: a\n    pass: { v: \"{{ 1 + }}\" }\n");
    assert_eq!(
        p,
        "4:20: step `a`: pass: expression `{{ 1 + }}` does not parse: syntax error: unexpected end of input, expected expression"
    );
}

#[test]
fn expressions_are_checked_in_every_field() {
    let all = problems(
        r#"
name: x
output: "{{ ) }}"
steps:
  - id: a
    pass: 1
  - id: b
    needs: [a]
    when: "{{ steps.a.output == }}"
    for_each: "{{ [1, 2 }}"
    http: { url: "https://x/{{ item | }}" }
"#,
    );
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(all[0].starts_with("3:13: output: expression"), "{all:#?}");
    assert!(
        all[1].starts_with("9:15: step `b`: when: expression"),
        "{all:#?}"
    );
    assert!(
        all[2].starts_with("10:19: step `b`: for_each: expression"),
        "{all:#?}"
    );
    assert!(
        all[3].starts_with("11:32: step `b`: http.url: expression"),
        "{all:#?}"
    );
}

#[test]
fn reference_to_a_step_that_is_not_upstream_is_rejected() {
    let p = problem(
        "name: x\nsteps:\n  - id: a\n    pass: 1\n  - id: b\n    pass: \"{{ steps.a.output }}\"\n",
    );
    assert_eq!(
        p,
        "6:15: step `b` reads `steps.a`, but `a` is not upstream of it; add `a` to its needs"
    );
}

#[test]
fn reference_to_a_step_upstream_through_another_is_accepted() {
    ok(
        "name: x\nsteps:\n  - id: a\n    pass: 1\n  - id: b\n    needs: [a]\n    pass: 2\n  - id: c\n    needs: [b]\n    pass: \"{{ steps.a.output }}\"\n",
    );
}

#[test]
fn reference_to_an_unknown_step_is_rejected_with_a_hint() {
    let p = problem(
        "name: x\nsteps:\n  - id: split\n    pass: 1\n  - id: b\n    needs: [split]\n    pass: \"{{ steps.spilt.output }}\"\n",
    );
    assert_eq!(
        p,
        "7:15: step `b` reads `steps.spilt`, but there is no step `spilt`; did you mean `split`?"
    );
}

#[test]
fn a_step_reading_its_own_output_is_rejected() {
    let p = problem("name: x\nsteps:\n  - id: a\n    pass: \"{{ steps.a.output }}\"\n");
    assert!(p.starts_with("4:15: step `a` reads its own output"), "{p}");
}

#[test]
fn a_dashed_id_read_with_a_dot_is_explained() {
    let p = problem(
        "name: x\nsteps:\n  - id: big-day\n    pass: 1\n  - id: b\n    needs: [big-day]\n    pass: \"{{ steps.big-day.output }}\"\n",
    );
    assert_eq!(
        p,
        "7:15: step `b`: pass: `steps.big-day` reads as `steps.big` minus the rest; write `steps['big-day']` for an id with dashes"
    );
}

#[test]
fn a_dashed_read_names_the_whole_id_not_a_shorter_one_it_starts_with() {
    let p = problem(
        "name: x\nsteps:\n  - id: big-day\n    pass: 1\n  - id: big-day-2\n    pass: 2\n  - id: b\n    needs: [big-day, big-day-2]\n    pass: \"{{ steps.big-day-2.output }}\"\n",
    );
    assert_eq!(
        p,
        "9:15: step `b`: pass: `steps.big-day-2` reads as `steps.big` minus the rest; write `steps['big-day-2']` for an id with dashes"
    );
}

#[test]
fn unknown_names_and_undeclared_params_are_rejected() {
    let all = problems(
        r#"
name: x
params:
  bucket: { type: string }
steps:
  - id: a
    pass: "{{ parms.bucket }} {{ params.buckt }} {{ secret('k') }} {{ run.id }}"
"#,
    );
    assert_eq!(
        all,
        [
            "7:15: step `a`: pass: unknown name `parms`; did you mean `params`?",
            "7:41: step `a`: pass: `params.buckt` is not a declared param; did you mean `bucket`?",
        ]
    );
}

#[test]
fn item_is_only_set_in_the_fields_of_a_for_each_step() {
    let all = problems(
        r#"
name: x
steps:
  - id: a
    pass: "{{ item }}"
  - id: b
    for_each: "{{ [item] }}"
    when: "{{ index > 0 }}"
    pass: "{{ item }}"
"#,
    );
    assert_eq!(
        all,
        [
            "5:15: step `a`: pass: `item` is not set here: only the fields of a `for_each` step see `item` and `index`",
            "7:20: step `b`: for_each: `item` is not set here: `when` and `for_each` are evaluated once for the whole step, before there is an item",
            "8:15: step `b`: when: `index` is not set here: `when` and `for_each` are evaluated once for the whole step, before there is an item",
        ]
    );
}

#[test]
fn when_with_text_around_the_braces_is_rejected() {
    let p = problem("name: x\nsteps:\n  - id: a\n    when: \"{{ 1 > 2 }} maybe\"\n    pass: 1\n");
    assert!(
        p.starts_with("4:11: step `a`: `when` must be a single `{{ expression }}`"),
        "{p}"
    );
}

// ---- how problems are shown ----

#[test]
fn problems_display_as_file_line_column_message_sorted_by_position() {
    let err = parse(
        "flows/x.yaml",
        "name: x\nsteps:\n  - id: b\n    needs: [zz]\n    pass: 1\n  - id: b\n    pass: 2\n",
    )
    .unwrap_err();
    assert_eq!(err.file, "flows/x.yaml");
    assert_eq!(
        err.to_string(),
        "flows/x.yaml:4:13: step `b` needs `zz`, but there is no such step\n\
         flows/x.yaml:6:9: duplicate step id `b` (first defined at 3:9); step ids must be unique"
    );
}

#[test]
fn the_schema_lists_every_step_kind_and_rejects_unknown_keys() {
    let schema = json_schema();
    let step = &schema["$defs"]["StepDecl"];
    for kind in [
        "lambda", "http", "pass", "wait", "approval", "signal", "workflow", "fail",
    ] {
        assert!(
            step["properties"].get(kind).is_some(),
            "no `{kind}` in the schema"
        );
    }
    assert_eq!(step["additionalProperties"], json!(false));
    assert_eq!(schema["required"], json!(["name", "steps"]));
}

// ---- limits the backends share ----

#[test]
fn a_step_timeout_longer_than_the_dispatcher_runs_is_refused_naming_the_limit() {
    let p = problem(
        r#"
name: slow
steps:
  - id: crunch
    http: { url: "https://example.com" }
    timeout: 20m
"#,
    );
    assert!(
        p.starts_with(
            "6:14: step `crunch`: timeout: `20m` is longer than a step can run: at most 14m"
        ),
        "{p}"
    );
    assert!(p.contains("15 minutes"), "{p}");
    let p = problem("name: slow\ndefaults: { timeout: 1h }\nsteps:\n  - id: a\n    pass: 1\n");
    assert!(
        p.starts_with("2:22: defaults.timeout: `1h` is longer than a step can run"),
        "{p}"
    );
    let p =
        problem("name: slow\nsteps:\n  - id: a\n    http: { url: \"https://x\", timeout: 1h }\n");
    assert!(p.contains("step `a`: http.timeout: `1h` is longer"), "{p}");
    let wf = ok("name: fits\nsteps:\n  - id: a\n    pass: 1\n    timeout: 14m\n");
    assert_eq!(wf.steps[0].timeout, Some(MAX_STEP_TIMEOUT));
}

#[test]
fn an_enormous_timeout_is_refused_not_overflowed() {
    let p = problem("name: huge\nsteps:\n  - id: a\n    pass: 1\n    timeout: 100000000d\n");
    assert!(
        p.contains("`100000000d` is longer than a step can run"),
        "{p}"
    );
}

#[test]
fn a_task_with_a_callback_knows_its_timeout_heartbeat_and_callback_url() {
    let wf = ok(r#"
name: t
steps:
  - id: deploy
    http:
      url: "https://deploy.example/start"
      json: { report_to: "{{ callback.url }}" }
    callback: { timeout: 2h, heartbeat: 5m }
"#);
    let c = wf.steps[0].callback.expect("a callback");
    assert_eq!(c.timeout, Duration::from_secs(7200));
    assert_eq!(c.heartbeat, Some(Duration::from_secs(300)));
}

#[test]
fn callbacks_belong_to_tasks_and_heartbeats_fit_their_timeout() {
    let p = problems(
        r#"
name: t
steps:
  - id: a
    pass: "{{ callback.url }}"
    callback: { timeout: 1h }
  - id: b
    lambda: f
    callback: { timeout: 1m, heartbeat: 5m }
  - id: c
    pass: "{{ callback.token }}"
"#,
    );
    assert!(
        p.iter()
            .any(|m| m.contains("step `a`: `callback` is for `lambda` and `http` steps")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("callback.heartbeat `5m` is longer than callback.timeout `1m`")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("`callback` is set only in a step with a `callback`")),
        "{p:?}"
    );
}

#[test]
fn approvers_name_someone() {
    let wf = ok("name: t\nsteps:\n  - id: a\n    approval: { approvers: [ana, bo] }\n");
    assert!(
        matches!(&wf.steps[0].kind, StepKind::Approval { approvers, .. } if approvers == &["ana", "bo"])
    );
    let p = problems("name: t\nsteps:\n  - id: a\n    approval: { approvers: [] }\n");
    assert!(
        p.iter()
            .any(|m| m.contains("approval.approvers names nobody")),
        "{p:?}"
    );
}

#[test]
fn an_unknown_filter_is_refused_where_it_is_written() {
    let p = problems(
        "name: t\nsteps:\n  - id: a\n    pass: \"{{ [1, 2] | nosuchfilter }}\"\n  - id: b\n    pass: \"total {{ [1] | sum }} and {{ 'a | not a filter' | upper }}\"\n",
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("unknown filter `nosuchfilter`"), "{p:?}");
    assert!(p[0].starts_with("4:"), "names the line: {p:?}");
}

#[test]
fn an_sla_names_the_run_and_steps_with_durations() {
    let wf = ok(r#"
name: nightly
sla: { run: 30m, steps: { report: 5m } }
steps:
  - id: report
    pass: 1
"#);
    assert_eq!(wf.sla.run, Some(Duration::from_secs(1800)));
    assert_eq!(wf.sla.steps["report"], Duration::from_secs(300));
    assert_eq!(
        problem("name: x\nsla: { steps: { reprot: 5m } }\nsteps:\n  - id: report\n    pass: 1\n"),
        "2:25: sla.steps.reprot: there is no step `reprot`; did you mean `report`?"
    );
    assert_eq!(
        problem("name: x\nsla: { run: soon }\nsteps:\n  - id: a\n    pass: 1\n"),
        "2:13: sla.run: bad duration `soon`: expected a number then a unit (ms, s, m, h, d), e.g. `30s`"
    );
    assert_eq!(
        problem("name: x\nsla: {}\nsteps:\n  - id: a\n    pass: 1\n"),
        "2:6: sla: name `run`, `steps`, or both"
    );
}
