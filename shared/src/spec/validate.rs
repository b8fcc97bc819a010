//! Meaning checks: everything a syntactically correct file can still get wrong.
//! Every check runs, so one pass reports every problem.

use super::decl::*;
use super::duration::parse_duration;
use super::error::Collector;
use super::located::{At, Pos};
use super::model::*;
use super::schedule::Schedule;
use crate::expr;
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// Run statuses a `notify` entry may name.
pub const NOTIFY_STATUSES: &[&str] = &["started", "succeeded", "failed", "cancelled", "timed_out"];

struct Ctx<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    diags: &'a mut Collector,
}

impl Ctx<'_> {
    fn err(&mut self, pos: Pos, msg: impl Into<String>) {
        self.diags.push(pos, msg);
    }

    fn duration(&mut self, d: &At<String>, field: &str) -> Option<Duration> {
        match parse_duration(&d.value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(d.pos, format!("{field}: {e}"));
                None
            }
        }
    }

    /// Position of `needle` at or after `from`, so an expression error points at the
    /// expression itself rather than at the start of the field that holds it.
    fn locate(&self, from: Pos, needle: &str) -> Pos {
        if !from.is_known() {
            return from;
        }
        let Some(&line_start) = self.line_starts.get(from.line as usize - 1) else {
            return from;
        };
        let start = self.text[line_start..]
            .char_indices()
            .nth(from.column.saturating_sub(1) as usize)
            .map_or(self.text.len(), |(i, _)| line_start + i);
        let Some(off) = self.text[start..].find(needle) else {
            return from;
        };
        let at = start + off;
        let line = self.line_starts.partition_point(|&s| s <= at);
        let col = self.text[self.line_starts[line - 1]..at].chars().count() + 1;
        Pos {
            line: line as u32,
            column: col as u32,
        }
    }

    /// Checks every expression in a value; returns the step ids it reads.
    fn expressions(&mut self, v: &Value, pos: Pos, field: &str) -> BTreeSet<String> {
        let mut refs = BTreeSet::new();
        let mut problems = Vec::new();
        expr::for_each_string(v, &mut |s| match expr::check(s) {
            Ok(r) => refs.extend(r),
            Err(e) => problems.push((s.to_string(), e.message)),
        });
        for (s, msg) in problems {
            let needle = s.split("{{").nth(1).map_or(s.as_str(), str::trim);
            let at = self.locate(pos, needle.split("}}").next().unwrap_or(needle).trim());
            self.err(
                at,
                format!("{field}: expression `{}` does not parse: {msg}", s.trim()),
            );
        }
        refs
    }
}

fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn valid_step_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

fn type_matches(kind: ParamType, v: &Value) -> bool {
    match kind {
        ParamType::String => v.is_string(),
        ParamType::Number => v.is_number(),
        ParamType::Integer => v.is_i64() || v.is_u64(),
        ParamType::Boolean => v.is_boolean(),
        ParamType::Object => v.is_object(),
        ParamType::Array => v.is_array(),
    }
}

/// The JSON type name of a parameter type, for messages.
pub fn param_type_name(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "string",
        ParamType::Number => "number",
        ParamType::Integer => "integer",
        ParamType::Boolean => "boolean",
        ParamType::Object => "object",
        ParamType::Array => "array",
    }
}

/// Whether a value fits a parameter's declared type.
pub fn param_accepts(p: &Param, v: &Value) -> bool {
    p.kind.is_none_or(|k| type_matches(k, v))
}

pub(super) fn validate(decl: WorkflowDecl, text: &str, diags: &mut Collector) -> Workflow {
    let mut line_starts = vec![0];
    line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    let mut cx = Ctx {
        text,
        line_starts,
        diags,
    };

    if !valid_name(&decl.name) {
        cx.err(
            decl.name.pos,
            format!(
                "workflow name `{}` is invalid: use lowercase letters, digits and dashes, starting with a letter or digit, at most 63 characters",
                decl.name.value
            ),
        );
    }

    let params = params(&mut cx, decl.params);
    let triggers = decl
        .triggers
        .into_iter()
        .filter_map(|t| trigger(&mut cx, t))
        .collect();
    let (default_retry, default_timeout) = match &decl.defaults {
        Some(d) => (
            d.retry
                .as_ref()
                .map(|r| retry(&mut cx, r, &RetryPolicy::default())),
            d.timeout
                .as_ref()
                .and_then(|t| cx.duration(t, "defaults.timeout")),
        ),
        None => (None, None),
    };
    let timeout = decl
        .timeout
        .as_ref()
        .and_then(|t| cx.duration(t, "timeout"));
    if let Some(c) = &decl.concurrency
        && c.value == 0
    {
        cx.err(c.pos, "concurrency must be at least 1");
    }
    let output = decl.output.map(|o| {
        let refs = cx.expressions(&o.value, o.pos, "output");
        for r in refs {
            if !decl.steps.iter().any(|s| s.id.value == r) {
                let at = cx.locate(o.pos, &r);
                cx.err(
                    at,
                    format!("output reads `steps.{r}`, but there is no step `{r}`"),
                );
            }
        }
        o.value
    });
    let notify = decl
        .notify
        .into_iter()
        .filter_map(|n| notify(&mut cx, n))
        .collect();

    let defaults = RetryPolicy::default();
    let default_retry = default_retry.unwrap_or(defaults);
    let steps: Vec<Step> = decl
        .steps
        .iter()
        .filter_map(|s| step(&mut cx, s, &default_retry, default_timeout))
        .collect();
    if decl.steps.is_empty() {
        cx.err(
            Pos::default(),
            "the workflow has no steps; add at least one under `steps`",
        );
    }
    graph(&mut cx, &decl.steps, &steps);

    Workflow {
        name: decl.name.value,
        description: decl.description,
        params,
        triggers,
        timeout,
        concurrency: decl.concurrency.map(|c| c.value),
        output,
        notify,
        steps,
    }
}

fn params(cx: &mut Ctx, decls: IndexMap<String, At<ParamDecl>>) -> IndexMap<String, Param> {
    let mut out = IndexMap::new();
    for (name, p) in decls {
        let ok_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok_name {
            cx.err(
                p.pos,
                format!("param `{name}`: names must be letters, digits and `_`, not starting with a digit"),
            );
        }
        if let (Some(kind), Some(d)) = (p.kind, &p.default)
            && !type_matches(kind, d)
        {
            cx.err(
                p.pos,
                format!(
                    "param `{name}`: default {} is not of type {}",
                    d,
                    param_type_name(kind)
                ),
            );
        }
        if p.required && p.default.is_some() {
            cx.err(
                p.pos,
                format!("param `{name}`: a required param cannot have a default; drop one of them"),
            );
        }
        out.insert(
            name,
            Param {
                kind: p.value.kind,
                default: p.value.default,
                required: p.value.required,
            },
        );
    }
    out
}

fn trigger(cx: &mut Ctx, t: At<TriggerDecl>) -> Option<Trigger> {
    let pos = t.pos;
    let TriggerDecl {
        schedule,
        s3,
        event,
        webhook,
        sqs,
        params,
    } = t.value;
    let kinds = [
        schedule.is_some(),
        s3.is_some(),
        event.is_some(),
        webhook.is_some(),
        sqs.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if kinds != 1 {
        cx.err(
            pos,
            format!(
                "a trigger needs exactly one of schedule, s3, event, webhook, sqs; this one has {kinds}"
            ),
        );
        return None;
    }
    if let Some(p) = &params {
        cx.expressions(&p.value, p.pos, "trigger params");
    }
    let source = if let Some(s) = schedule {
        let (cron, tz, catchup, window, overlap) = match s.value {
            ScheduleDecl::Short(c) => (c, None, None, None, None),
            ScheduleDecl::Full(f) => (f.cron, f.timezone, f.catchup, f.catchup_window, f.overlap),
        };
        let schedule = match Schedule::parse(&cron, tz.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                cx.err(s.pos, e);
                return None;
            }
        };
        let window = match window {
            Some(w) => cx.duration(&At::new(w, s.pos), "catchup_window")?,
            None => Duration::from_secs(86_400),
        };
        TriggerSource::Schedule {
            schedule,
            catchup: catchup.unwrap_or(CatchupPolicy::None),
            catchup_window: window,
            overlap: overlap.unwrap_or(OverlapPolicy::Allow),
        }
    } else if let Some(s) = s3 {
        if s.bucket.is_empty() {
            cx.err(s.pos, "s3 trigger: `bucket` must not be empty");
        }
        TriggerSource::S3 {
            bucket: s.value.bucket,
            prefix: s.value.prefix,
            suffix: s.value.suffix,
        }
    } else if let Some(e) = event {
        if !e.value.is_object() {
            cx.err(
                e.pos,
                "event trigger: the pattern must be a map, e.g. `{ source: [acme.orders] }`",
            );
            return None;
        }
        TriggerSource::Event { pattern: e.value }
    } else if let Some(w) = webhook {
        let path_ok = !w.path.is_empty()
            && w.path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_/".contains(c));
        if !path_ok {
            cx.err(
                w.pos,
                format!(
                    "webhook trigger: path `{}` may use letters, digits, `-`, `_` and `/`",
                    w.path
                ),
            );
        }
        if w.secret.contains("{{") || w.secret.len() > 128 {
            cx.err(
                w.pos,
                "webhook trigger: `secret` is the name of a secret (e.g. `orders-hook`), not the secret itself",
            );
        }
        TriggerSource::Webhook {
            path: w.value.path,
            secret: w.value.secret,
            signature: w.value.signature.unwrap_or(SignatureScheme::Braid),
        }
    } else {
        let q = sqs.expect("one kind is set");
        TriggerSource::Sqs {
            queue: q.value.queue,
        }
    };
    Some(Trigger {
        source,
        params: params.map(|p| p.value),
    })
}

fn notify(cx: &mut Ctx, n: At<NotifyDecl>) -> Option<Notify> {
    for s in &n.on {
        if !NOTIFY_STATUSES.contains(&s.value.as_str()) {
            cx.err(
                s.pos,
                format!(
                    "notify: unknown status `{}`; expected one of: {}",
                    s.value,
                    NOTIFY_STATUSES.join(", ")
                ),
            );
        }
    }
    let on = n.on.iter().map(|s| s.value.clone()).collect();
    let target = match (&n.slack, &n.webhook) {
        (Some(s), None) => {
            cx.expressions(
                &Value::String(s.webhook_url.value.clone()),
                s.webhook_url.pos,
                "notify.slack.webhook_url",
            );
            NotifyTarget::Slack {
                webhook_url: s.webhook_url.value.clone(),
            }
        }
        (None, Some(w)) => {
            cx.expressions(
                &Value::String(w.url.value.clone()),
                w.url.pos,
                "notify.webhook.url",
            );
            NotifyTarget::Webhook {
                url: w.url.value.clone(),
                secret: w.secret.clone(),
            }
        }
        _ => {
            cx.err(
                n.pos,
                "a notify entry needs exactly one of `slack` or `webhook`",
            );
            return None;
        }
    };
    Some(Notify { on, target })
}

fn retry(cx: &mut Ctx, r: &At<RetryDecl>, base: &RetryPolicy) -> RetryPolicy {
    let mut p = base.clone();
    if let Some(a) = r.attempts {
        if a == 0 {
            cx.err(
                r.pos,
                "retry.attempts counts every try and must be at least 1",
            );
        }
        p.attempts = a.max(1);
    }
    if let Some(b) = &r.backoff
        && let Some(d) = cx.duration(b, "retry.backoff")
    {
        p.backoff = d;
    }
    if let Some(f) = r.factor {
        if !(f.is_finite() && f >= 1.0) {
            cx.err(
                r.pos,
                format!("retry.factor must be a number of at least 1, got {f}"),
            );
        }
        p.factor = f;
    }
    if let Some(m) = &r.max_backoff
        && let Some(d) = cx.duration(m, "retry.max_backoff")
    {
        p.max_backoff = Some(d);
    }
    if let Some(j) = r.jitter {
        p.jitter = j;
    }
    p
}

fn step(
    cx: &mut Ctx,
    s: &At<StepDecl>,
    default_retry: &RetryPolicy,
    default_timeout: Option<Duration>,
) -> Option<Step> {
    let id = s.id.value.clone();
    if !valid_step_id(&id) {
        cx.err(
            s.id.pos,
            format!("step id `{id}` is invalid: use lowercase letters, digits, `-` and `_`, starting with a letter or digit"),
        );
    }
    let mut reads = BTreeSet::new();
    let mut field_exprs = |cx: &mut Ctx, v: &Value, pos: Pos, field: &str| {
        reads.extend(cx.expressions(v, pos, &format!("step `{id}`: {field}")));
    };
    if let Some(w) = &s.when {
        field_exprs(cx, &Value::String(w.value.clone()), w.pos, "when");
    }
    if let Some(f) = &s.for_each {
        field_exprs(cx, &Value::String(f.value.clone()), f.pos, "for_each");
    }
    if let Some(i) = &s.input {
        field_exprs(cx, &i.value, i.pos, "input");
    }
    if let Some(m) = &s.max_parallel {
        if s.for_each.is_none() {
            cx.err(
                m.pos,
                format!("step `{id}`: max_parallel only applies to `for_each` steps"),
            );
        }
        if m.value == 0 {
            cx.err(
                m.pos,
                format!("step `{id}`: max_parallel must be at least 1"),
            );
        }
    }
    let retry = s
        .retry
        .as_ref()
        .map_or_else(|| default_retry.clone(), |r| retry(cx, r, default_retry));
    let timeout = match &s.timeout {
        Some(t) => cx.duration(t, &format!("step `{id}`: timeout")),
        None => default_timeout,
    };

    let mut kinds: Vec<(&str, StepKind)> = Vec::new();
    if let Some(l) = &s.lambda {
        field_exprs(cx, &Value::String(l.value.clone()), l.pos, "lambda");
        kinds.push((
            "lambda",
            StepKind::Lambda {
                function: l.value.clone(),
            },
        ));
    }
    if let Some(h) = &s.http {
        let method = h
            .method
            .clone()
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&method.as_str())
        {
            cx.err(
                h.pos,
                format!("step `{id}`: http.method `{method}` is not an HTTP method"),
            );
        }
        if h.json.is_some() && h.body.is_some() {
            cx.err(
                h.pos,
                format!("step `{id}`: http takes `json` or `body`, not both"),
            );
        }
        field_exprs(
            cx,
            &Value::String(h.url.value.clone()),
            h.url.pos,
            "http.url",
        );
        for v in h.headers.values() {
            field_exprs(cx, &Value::String(v.clone()), h.pos, "http.headers");
        }
        if let Some(j) = &h.json {
            field_exprs(cx, j, h.pos, "http.json");
        }
        if let Some(b) = &h.body {
            field_exprs(cx, &Value::String(b.clone()), h.pos, "http.body");
        }
        if let Some(e) = &h.expect
            && e.iter().any(|c| !(100..=599).contains(c))
        {
            cx.err(
                h.pos,
                format!("step `{id}`: http.expect lists a status outside 100..599"),
            );
        }
        let timeout = h
            .timeout
            .as_ref()
            .and_then(|t| cx.duration(t, &format!("step `{id}`: http.timeout")));
        kinds.push((
            "http",
            StepKind::Http(HttpCall {
                method,
                url: h.url.value.clone(),
                headers: h.headers.clone(),
                json: h.json.clone(),
                body: h.body.clone(),
                timeout,
                expect: h.expect.clone(),
            }),
        ));
    }
    if let Some(p) = &s.pass {
        field_exprs(cx, &p.value, p.pos, "pass");
        kinds.push((
            "pass",
            StepKind::Pass {
                value: p.value.clone(),
            },
        ));
    }
    if let Some(w) = &s.wait {
        let wait = match &w.value {
            WaitDecl::For(d) => cx
                .duration(&At::new(d.clone(), w.pos), &format!("step `{id}`: wait"))
                .map(WaitFor::Duration),
            WaitDecl::Until(u) => {
                let is_expr = u.until.contains("{{");
                if is_expr {
                    field_exprs(cx, &Value::String(u.until.clone()), w.pos, "wait.until");
                } else if chrono::DateTime::parse_from_rfc3339(&u.until).is_err() {
                    cx.err(
                        w.pos,
                        format!(
                            "step `{id}`: wait.until `{}` is not an RFC 3339 timestamp",
                            u.until
                        ),
                    );
                }
                Some(WaitFor::Until(u.until.clone()))
            }
        };
        if let Some(wait) = wait {
            kinds.push(("wait", StepKind::Wait(wait)));
        }
    }
    if let Some(a) = &s.approval {
        let timeout = a
            .timeout
            .as_ref()
            .and_then(|t| cx.duration(t, &format!("step `{id}`: approval.timeout")));
        kinds.push((
            "approval",
            StepKind::Approval {
                message: a.message.clone(),
                timeout,
            },
        ));
    }
    if let Some(sg) = &s.signal {
        let timeout = sg
            .timeout
            .as_ref()
            .and_then(|t| cx.duration(t, &format!("step `{id}`: signal.timeout")));
        kinds.push((
            "signal",
            StepKind::Signal {
                name: sg.name.clone(),
                timeout,
            },
        ));
    }
    if let Some(w) = &s.workflow {
        if !valid_name(&w.value) {
            cx.err(
                w.pos,
                format!("step `{id}`: `{}` is not a valid workflow name", w.value),
            );
        }
        kinds.push((
            "workflow",
            StepKind::Workflow {
                name: w.value.clone(),
            },
        ));
    }
    if let Some(f) = &s.fail {
        field_exprs(cx, &Value::String(f.error.clone()), f.pos, "fail.error");
        if let Some(m) = &f.message {
            field_exprs(cx, &Value::String(m.clone()), f.pos, "fail.message");
        }
        kinds.push((
            "fail",
            StepKind::Fail {
                error: f.error.clone(),
                message: f.message.clone(),
            },
        ));
    }
    if s.input.is_some()
        && !kinds
            .iter()
            .any(|(k, _)| *k == "lambda" || *k == "workflow")
        && kinds.len() == 1
    {
        cx.err(
            s.input.as_ref().map_or(s.pos, |i| i.pos),
            format!("step `{id}`: `input` is for `lambda` and `workflow` steps; a {} step takes its data in its own field", kinds[0].0),
        );
    }
    match kinds.len() {
        1 => {}
        0 => {
            cx.err(
                s.pos,
                format!("step `{id}` has no kind; give exactly one of lambda, http, pass, wait, approval, signal, workflow, fail"),
            );
            return None;
        }
        _ => {
            let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
            cx.err(
                s.pos,
                format!(
                    "step `{id}` has {} kinds ({}); give exactly one",
                    names.len(),
                    names.join(", ")
                ),
            );
            return None;
        }
    }
    let kind = kinds.pop().expect("exactly one kind").1;
    Some(Step {
        id,
        pos: s.id.pos,
        needs: s.needs.iter().map(|n| n.value.clone()).collect(),
        when: s.when.as_ref().map(|w| w.value.clone()),
        for_each: s.for_each.as_ref().map(|f| f.value.clone()),
        max_parallel: s.max_parallel.as_ref().map(|m| m.value),
        retry,
        timeout,
        continue_on_failure: s.continue_on_failure,
        input: s.input.as_ref().map(|i| i.value.clone()),
        kind,
        reads,
    })
}

/// Ids, `needs`, cycles and upstream references.
fn graph(cx: &mut Ctx, decls: &[At<StepDecl>], steps: &[Step]) {
    let mut first: HashMap<&str, Pos> = HashMap::new();
    for s in decls {
        if let Some(prev) = first.get(s.id.value.as_str()) {
            cx.err(
                s.id.pos,
                format!(
                    "duplicate step id `{}` (first defined at {prev})",
                    s.id.value
                ),
            );
        } else {
            first.insert(&s.id.value, s.id.pos);
        }
    }
    let ids: Vec<&str> = first.keys().copied().collect();
    for s in decls {
        let mut seen = BTreeSet::new();
        for n in &s.needs {
            if n.value == s.id.value {
                cx.err(n.pos, format!("step `{}` needs itself", s.id.value));
            } else if !first.contains_key(n.value.as_str()) {
                let hint = ids
                    .iter()
                    .map(|i| (strsim::damerau_levenshtein(i, &n.value), *i))
                    .filter(|(d, _)| *d <= 2)
                    .min()
                    .map(|(_, i)| format!("; did you mean `{i}`?"))
                    .unwrap_or_default();
                cx.err(
                    n.pos,
                    format!(
                        "step `{}` needs `{}`, but there is no such step{hint}",
                        s.id.value, n.value
                    ),
                );
            } else if !seen.insert(n.value.as_str()) {
                cx.err(
                    n.pos,
                    format!("step `{}` lists `{}` twice in needs", s.id.value, n.value),
                );
            }
        }
    }

    // Cycles: depth-first search; a back edge names the whole cycle.
    let needs: HashMap<&str, Vec<&str>> = decls
        .iter()
        .map(|s| {
            (
                s.id.value.as_str(),
                s.needs
                    .iter()
                    .map(|n| n.value.as_str())
                    .filter(|n| first.contains_key(n))
                    .collect(),
            )
        })
        .collect();
    let mut state: HashMap<&str, u8> = HashMap::new();
    let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
    for s in decls {
        let mut stack: Vec<&str> = Vec::new();
        find_cycles(
            s.id.value.as_str(),
            &needs,
            &mut state,
            &mut stack,
            &mut |cycle| {
                let mut key = cycle.to_vec();
                key.sort_unstable();
                if reported.insert(key) {
                    let mut names: Vec<&str> = cycle.to_vec();
                    names.push(cycle[0]);
                    let pos = first.get(cycle[0]).copied().unwrap_or_default();
                    cx.err(pos, format!("steps form a cycle: {}", names.join(" → ")));
                }
            },
        );
    }
    if !reported.is_empty() {
        return;
    }

    // Upstream references: a field may read only steps it (transitively) needs.
    let mut upstream: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    fn ancestors<'a>(
        id: &'a str,
        needs: &HashMap<&'a str, Vec<&'a str>>,
        memo: &mut HashMap<&'a str, BTreeSet<&'a str>>,
    ) -> BTreeSet<&'a str> {
        if let Some(a) = memo.get(id) {
            return a.clone();
        }
        let mut out = BTreeSet::new();
        for n in needs.get(id).into_iter().flatten() {
            out.insert(*n);
            out.extend(ancestors(n, needs, memo));
        }
        memo.insert(id, out.clone());
        out
    }
    for step in steps.iter() {
        let Some(decl) = decls.iter().find(|d| d.id.value == step.id) else {
            continue;
        };
        let up = ancestors(decl.id.value.as_str(), &needs, &mut upstream);
        for r in &step.reads {
            if r == &step.id {
                cx.err(
                    decl.pos,
                    format!("step `{}` reads its own output (`steps.{r}`)", step.id),
                );
            } else if !first.contains_key(r.as_str()) {
                let at = cx.locate(decl.pos, &format!("steps.{r}"));
                cx.err(
                    at,
                    format!(
                        "step `{}` reads `steps.{r}`, but there is no step `{r}`",
                        step.id
                    ),
                );
            } else if !up.contains(r.as_str()) {
                let at = cx.locate(decl.pos, &format!("steps.{r}"));
                cx.err(
                    at,
                    format!(
                        "step `{}` reads `steps.{r}`, but `{r}` is not upstream of it; add `{r}` to its needs",
                        step.id
                    ),
                );
            }
        }
    }
}

fn find_cycles<'a>(
    id: &'a str,
    needs: &HashMap<&'a str, Vec<&'a str>>,
    state: &mut HashMap<&'a str, u8>,
    stack: &mut Vec<&'a str>,
    report: &mut impl FnMut(&[&'a str]),
) {
    match state.get(id) {
        Some(2) => return,
        Some(1) => {
            if let Some(i) = stack.iter().position(|s| *s == id) {
                report(&stack[i..]);
            }
            return;
        }
        _ => {}
    }
    state.insert(id, 1);
    stack.push(id);
    for n in needs.get(id).into_iter().flatten() {
        find_cycles(n, needs, state, stack, report);
    }
    stack.pop();
    state.insert(id, 2);
}
