//! Meaning checks: everything a well-shaped file can still get wrong.
//! Every check runs, so one pass reports every problem, each naming the step and field.

use super::decl::*;
use super::duration::parse_duration;
use super::error::Collector;
use super::located::{At, Pos};
use super::model::*;
use super::needs::Needs;
use super::schedule::{Schedule, parse_timezone};
use crate::expr;
use crate::triggers::pattern::EventPattern;
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// What a workflow's `notify` entry may name: its run's statuses, `waiting` for any
/// step that starts to wait for a person or a system, `retrying` for any step whose
/// attempt failed and will be tried again, and `sla_missed` for any of its `sla`.
pub const RUN_NOTIFY_STATUSES: &[&str] = &[
    "started",
    "succeeded",
    "failed",
    "cancelled",
    "timed_out",
    "waiting",
    "retrying",
    "sla_missed",
];

/// What a step's `notify` entry may name: the step's final statuses, `waiting`,
/// `retrying`, and `sla_missed` for the step's own entry in the workflow's `sla`.
pub const STEP_NOTIFY_STATUSES: &[&str] = &[
    "succeeded",
    "failed",
    "cancelled",
    "waiting",
    "retrying",
    "sla_missed",
];

/// Variables an expression may read.
const SCOPE: &[&str] = &[
    "params", "trigger", "steps", "item", "index", "run", "callback",
];

/// Functions an expression may call: Braid's `secret` and minijinja's global functions.
const FUNCTIONS: &[&str] = &["secret", "range", "dict", "namespace"];

/// Whether a field is rendered once per `for_each` item, so it sees `item` and `index`.
#[derive(Clone, Copy)]
enum Item {
    Bound,
    /// Not bound; the text says why.
    Unbound(&'static str),
}

const NOT_A_FOR_EACH_STEP: Item =
    Item::Unbound("only the fields of a `for_each` step see `item` and `index`");
const ONCE_PER_STEP: Item = Item::Unbound(
    "`when` and `for_each` are evaluated once for the whole step, before there is an item",
);
const RUN_LEVEL: Item =
    Item::Unbound("only the fields of a `for_each` step see `item` and `index`");

struct Ctx<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    diags: &'a mut Collector,
    /// Declared param names, to check `params.X`.
    params: Vec<String>,
    /// Every step id: to check a reference to one, and to recognise `steps.big-day`
    /// (which Jinja reads as a subtraction).
    step_ids: HashSet<String>,
    /// Whether the step whose expressions are read has a `callback` (`callback.url`).
    callback_bound: bool,
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

    /// A time limit of work a step does inside the step dispatcher (its `timeout`, an
    /// HTTP call's): a duration no longer than [`MAX_STEP_TIMEOUT`], or an error naming
    /// the field and the limit. A longer one could never be honoured on AWS.
    fn step_timeout(&mut self, d: &At<String>, field: &str) -> Option<Duration> {
        let v = self.duration(d, field)?;
        if v > MAX_STEP_TIMEOUT {
            self.err(
                d.pos,
                format!(
                    "{field}: `{}` is longer than a step can run: at most {} (a step's task runs in the step dispatcher, a Lambda function that runs at most 15 minutes and needs the rest to record the outcome); split the work, or start it and wait for it",
                    d.value,
                    crate::format_duration(MAX_STEP_TIMEOUT)
                ),
            );
            return None;
        }
        Some(v)
    }

    /// Byte offset of a position in the text.
    fn offset(&self, pos: Pos) -> Option<usize> {
        let line_start = *self.line_starts.get((pos.line as usize).checked_sub(1)?)?;
        Some(
            self.text[line_start..]
                .char_indices()
                .nth(pos.column.saturating_sub(1) as usize)
                .map_or(self.text.len(), |(i, _)| line_start + i),
        )
    }

    fn pos_at(&self, offset: usize) -> Pos {
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let col = self.text[self.line_starts[line - 1]..offset]
            .chars()
            .count()
            + 1;
        Pos {
            line: line as u32,
            column: col as u32,
        }
    }

    /// Position of `needle` at or after `from`, so an error points at the expression
    /// itself rather than at the start of the field that holds it.
    fn locate(&self, from: Pos, needle: &str) -> Pos {
        self.locate_before(from, None, needle).unwrap_or(from)
    }

    /// Position of `needle` between `from` and `end` (the end of the text when `None`).
    fn locate_before(&self, from: Pos, end: Option<Pos>, needle: &str) -> Option<Pos> {
        let start = self.offset(from)?;
        let end = end
            .and_then(|e| self.offset(e))
            .unwrap_or(self.text.len())
            .max(start);
        let off = self.text[start..end].find(needle)?;
        Some(self.pos_at(start + off))
    }

    /// Checks every expression in a value: syntax, the names it reads, the params it
    /// reads. Returns the step ids it reads; `field` names the field in messages.
    fn expressions(&mut self, v: &Value, pos: Pos, field: &str, item: Item) -> Reads {
        let mut strings = Vec::new();
        expr::for_each_string(v, &mut |s| strings.push(s));
        let mut refs = BTreeSet::new();
        let mut roots = BTreeSet::new();
        for s in strings {
            if let Err(e) = expr::check(s) {
                let at = self.locate(pos, broken_part(s));
                self.err(
                    at,
                    format!(
                        "{field}: expression `{}` does not parse: {}",
                        s.trim(),
                        e.message
                    ),
                );
                continue;
            }
            // `steps.big-day` parses as `steps.big - day`: report it once, and not the
            // `big` step or the `day` name it seems to read.
            let dashed = self.dashed_step_reads(s);
            let mut misread = BTreeSet::new();
            for id in &dashed {
                let at = self.locate(pos, &format!("steps.{id}"));
                let mut parts = id.split('-');
                let head = parts.next().unwrap_or_default();
                misread.extend(parts.map(str::to_string));
                self.err(
                    at,
                    format!(
                        "{field}: `steps.{id}` reads as `steps.{head}` minus the rest; write `steps['{id}']` for an id with dashes"
                    ),
                );
            }
            refs.extend(
                expr::step_refs(s)
                    .into_iter()
                    .filter(|r| !dashed.iter().any(|d| d.starts_with(&format!("{r}-")))),
            );
            let names = expr::root_names(s);
            roots.extend(names.iter().cloned());
            for name in names {
                if FUNCTIONS.contains(&name.as_str()) || misread.contains(&name) {
                    continue;
                }
                if name == "item" || name == "index" {
                    if let Item::Unbound(why) = item {
                        let at = self.locate(pos, &name);
                        self.err(at, format!("{field}: `{name}` is not set here: {why}"));
                    }
                    continue;
                }
                if name == "callback" && !self.callback_bound {
                    let at = self.locate(pos, &name);
                    self.err(
                        at,
                        format!("{field}: `callback` is set only in a step with a `callback`"),
                    );
                    continue;
                }
                if SCOPE.contains(&name.as_str()) {
                    continue;
                }
                let hint = nearest(&name, SCOPE.iter().chain(FUNCTIONS).copied())
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_else(|| {
                        "; expressions read params, trigger, steps, item, index, run and secret(name)"
                            .into()
                    });
                let at = self.locate(pos, &name);
                self.err(at, format!("{field}: unknown name `{name}`{hint}"));
            }
            for p in expr::attr_refs(s, "params") {
                if self.params.contains(&p) {
                    continue;
                }
                let hint = match nearest(&p, self.params.iter().map(String::as_str)) {
                    Some(n) => format!("; did you mean `{n}`?"),
                    None if self.params.is_empty() => "; declare it under `params`".into(),
                    None => format!(
                        "; declare it under `params` (declared: {})",
                        self.params.join(", ")
                    ),
                };
                let at = self.locate(pos, &p);
                self.err(
                    at,
                    format!("{field}: `params.{p}` is not a declared param{hint}"),
                );
            }
        }
        Reads {
            steps: refs,
            params: roots.contains("params"),
            trigger: roots.contains("trigger"),
        }
    }

    /// Ids of steps with dashes that `s` reads as `steps.big-day`: the whole name after
    /// each `steps.` is looked up, rather than every id searched for in every string.
    fn dashed_step_reads(&self, s: &str) -> BTreeSet<String> {
        s.match_indices("steps.")
            .filter_map(|(i, prefix)| {
                let rest = &s[i + prefix.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(rest.len());
                let name = &rest[..end];
                (name.contains('-') && self.step_ids.contains(name)).then(|| name.to_string())
            })
            .collect()
    }

    /// The position of a value inside an untagged enum (whose positions serde loses),
    /// found by its text from the enclosing value's position.
    fn inner_pos(&self, at: &At<String>, outer: Pos) -> Pos {
        if at.pos.is_known() {
            at.pos
        } else {
            self.locate(outer, &at.value)
        }
    }
}

/// The text of the first `{{ ... }}` in `s` that does not parse on its own, so an
/// error points at it rather than at a good expression before it.
fn broken_part(s: &str) -> &str {
    let parts: Vec<&str> = s
        .split("{{")
        .skip(1)
        .map(|p| p.split("}}").next().unwrap_or(p).trim())
        .filter(|p| !p.is_empty())
        .collect();
    parts
        .iter()
        .find(|p| expr::check(&format!("{{{{ {p} }}}}")).is_err())
        .or(parts.first())
        .copied()
        .unwrap_or(s)
}

/// The candidate closest to `word`, if close enough to be a likely typo.
fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min()
        .map(|(_, c)| c)
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

fn valid_param_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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
        params: decl.params.keys().cloned().collect(),
        step_ids: decl.steps.iter().map(|s| s.id.value.clone()).collect(),
        callback_bound: false,
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
                .map(|r| retry(&mut cx, r, &RetryPolicy::default(), "defaults.retry")),
            d.timeout
                .as_ref()
                .and_then(|t| cx.step_timeout(t, "defaults.timeout")),
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
        let refs = cx.expressions(&o.value, o.pos, "output", RUN_LEVEL);
        for r in refs.steps {
            if !cx.step_ids.contains(&r) {
                let at = cx.locate(o.pos, &format!("steps.{r}"));
                let hint = nearest(&r, cx.step_ids.iter().map(String::as_str))
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                cx.err(
                    at,
                    format!("output reads `steps.{r}`, but there is no step `{r}`{hint}"),
                );
            }
        }
        o.value
    });
    let notify = decl
        .notify
        .into_iter()
        .filter_map(|n| notify(&mut cx, &n, RUN_NOTIFY_STATUSES, "notify"))
        .collect();
    let sla = decl.sla.map(|s| sla(&mut cx, s)).unwrap_or_default();

    let default_retry = default_retry.unwrap_or_default();
    let steps: Vec<Step> = decl
        .steps
        .iter()
        .filter_map(|s| step(&mut cx, s, &default_retry, default_timeout))
        .collect();
    if decl.steps.is_empty() {
        cx.err(
            decl.steps.pos,
            "the workflow has no steps; add at least one under `steps`",
        );
    }
    graph(&mut cx, &decl.steps, &steps);

    Workflow::new(Workflow {
        name: decl.name.value,
        description: decl.description,
        params,
        triggers,
        timeout,
        concurrency: decl.concurrency.map(|c| c.value),
        output,
        sla,
        notify,
        steps,
        index: Default::default(),
    })
}

/// The workflow's `sla`: durations that parse, naming steps that exist.
fn sla(cx: &mut Ctx, decl: At<SlaDecl>) -> Sla {
    let run = decl
        .value
        .run
        .as_ref()
        .and_then(|d| cx.duration(d, "sla.run"));
    let mut steps = IndexMap::new();
    for (id, d) in &decl.value.steps {
        let field = format!("sla.steps.{id}");
        if !cx.step_ids.contains(id) {
            let hint = nearest(id, cx.step_ids.iter().map(String::as_str))
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            cx.err(d.pos, format!("{field}: there is no step `{id}`{hint}"));
            continue;
        }
        if let Some(v) = cx.duration(d, &field) {
            steps.insert(id.clone(), v);
        }
    }
    if decl.value.run.is_none() && decl.value.steps.is_empty() {
        cx.err(decl.pos, "sla: name `run`, `steps`, or both");
    }
    Sla { run, steps }
}

fn params(cx: &mut Ctx, decls: IndexMap<String, At<ParamDecl>>) -> IndexMap<String, Param> {
    let mut out = IndexMap::new();
    for (name, p) in decls {
        if !valid_param_name(&name) {
            cx.err(
                p.pos,
                format!(
                    "param `{name}`: names must be letters, digits and `_`, not starting with a digit"
                ),
            );
        }
        if let (Some(kind), Some(d)) = (p.kind, &p.default)
            && !type_matches(kind, d)
        {
            cx.err(
                d.pos,
                format!(
                    "param `{name}`: the default is {} {}, but the param's type is {}",
                    article(expr::json_type(d)),
                    expr::json_type(d),
                    param_type_name(kind)
                ),
            );
        }
        if let Some(d) = &p.default
            && p.required
        {
            cx.err(
                d.pos,
                format!(
                    "param `{name}`: a required param cannot have a default; drop `required` or the default"
                ),
            );
        }
        out.insert(
            name,
            Param {
                kind: p.value.kind,
                default: p.value.default.map(|d| d.value),
                required: p.value.required,
            },
        );
    }
    out
}

fn article(word: &str) -> &'static str {
    // "an http step": the letter h is said "aitch".
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u' | 'h') => "an",
        _ => "a",
    }
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
    let kinds: Vec<&str> = [
        ("schedule", schedule.is_some()),
        ("s3", s3.is_some()),
        ("event", event.is_some()),
        ("webhook", webhook.is_some()),
        ("sqs", sqs.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| *k)
    .collect();
    if kinds.len() != 1 {
        let has = if kinds.is_empty() {
            "this one has none".to_string()
        } else {
            format!("this one has {}", kinds.join(" and "))
        };
        cx.err(
            pos,
            format!("a trigger needs exactly one of schedule, s3, event, webhook, sqs; {has}"),
        );
        return None;
    }
    if let Some(p) = &params {
        cx.expressions(&p.value, p.pos, "trigger params", RUN_LEVEL);
    }
    let source = if let Some(s) = schedule {
        let (cron, tz, catchup, window, overlap) = match s.value {
            ScheduleDecl::Short(c) => (At::new(c, s.pos), None, None, None, None),
            ScheduleDecl::Full(f) => (f.cron, f.timezone, f.catchup, f.catchup_window, f.overlap),
        };
        let mut ok = true;
        if let Err(e) = Schedule::parse(&cron.value, None) {
            cx.err(cx.inner_pos(&cron, s.pos), e);
            ok = false;
        }
        if let Some(tz) = &tz
            && let Err(e) = parse_timezone(&tz.value)
        {
            cx.err(cx.inner_pos(tz, s.pos), e);
            ok = false;
        }
        let window = match window {
            Some(w) => {
                let w = At::new(w.value.clone(), cx.inner_pos(&w, s.pos));
                cx.duration(&w, "schedule.catchup_window")
            }
            None => Some(Duration::from_secs(86_400)),
        };
        let schedule = Schedule::parse(&cron.value, tz.as_ref().map(|t| t.value.as_str()));
        let (true, Ok(schedule), Some(window)) = (ok, schedule, window) else {
            return None;
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
        if let Err(err) = EventPattern::compile(&e.value) {
            let message = if err.path.is_empty() {
                format!("event trigger: {}", err.message)
            } else {
                format!(
                    "event trigger: pattern field `{}`: {}",
                    err.path, err.message
                )
            };
            cx.err(e.pos, message);
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

/// A `notify` entry that may name `statuses`; `field` names it in messages
/// (`notify`, or `step `x`: notify`).
fn notify(cx: &mut Ctx, n: &At<NotifyDecl>, statuses: &[&str], field: &str) -> Option<Notify> {
    for s in &n.on {
        if !statuses.contains(&s.value.as_str()) {
            let hint = nearest(&s.value, statuses.iter().copied())
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            cx.err(
                s.pos,
                format!(
                    "{field}: unknown status `{}`; {hint}expected one of: {}",
                    s.value,
                    statuses.join(", ")
                ),
            );
        }
    }
    if n.on.is_empty() {
        cx.err(
            n.pos,
            format!("{field}: `on` lists no status, so this notification would never be sent"),
        );
    }
    let on = n.on.iter().map(|s| s.value.clone()).collect();
    let target = match (&n.slack, &n.webhook) {
        (Some(s), None) => slack(cx, s, n.pos, field)?,
        (None, Some(w)) => {
            cx.expressions(
                &Value::String(w.url.value.clone()),
                w.url.pos,
                &format!("{field}.webhook.url"),
                RUN_LEVEL,
            );
            for v in w.headers.values() {
                cx.expressions(
                    &Value::String(v.clone()),
                    w.url.pos,
                    &format!("{field}.webhook.headers"),
                    RUN_LEVEL,
                );
            }
            NotifyTarget::Webhook {
                url: w.url.value.clone(),
                headers: w.headers.clone(),
                secret: w.secret.clone(),
            }
        }
        _ => {
            cx.err(
                n.pos,
                format!("{field}: an entry needs exactly one of `slack` or `webhook`"),
            );
            return None;
        }
    };
    Some(Notify { on, target })
}

/// A `slack` target: an incoming webhook, or a bot token and a channel.
fn slack(cx: &mut Ctx, s: &SlackDecl, pos: Pos, field: &str) -> Option<NotifyTarget> {
    let text = |cx: &mut Ctx, v: &At<String>, name: &str| {
        cx.expressions(
            &Value::String(v.value.clone()),
            v.pos,
            &format!("{field}.slack.{name}"),
            RUN_LEVEL,
        );
        v.value.clone()
    };
    match (&s.webhook_url, &s.token, &s.channel) {
        (Some(url), None, None) => Some(NotifyTarget::Slack {
            webhook_url: text(cx, url, "webhook_url"),
        }),
        (None, Some(token), Some(channel)) => {
            let t = token.value.trim();
            let only_a_secret = t.starts_with("{{")
                && t.ends_with("}}")
                && t.contains("secret(")
                && t.matches("{{").count() == 1;
            if !only_a_secret {
                cx.err(
                    token.pos,
                    format!(
                        "{field}.slack.token: a token written here would be stored with the \
                         workflow and shown with it; use `{{{{ secret('name') }}}}`"
                    ),
                );
            }
            Some(NotifyTarget::SlackBot {
                token: text(cx, token, "token"),
                channel: text(cx, channel, "channel"),
            })
        }
        (None, Some(_), None) => {
            cx.err(
                pos,
                format!("{field}.slack: `token` needs a `channel` to post to"),
            );
            None
        }
        _ => {
            cx.err(
                pos,
                format!(
                    "{field}.slack: set either `webhook_url`, or `token` and `channel`, not both"
                ),
            );
            None
        }
    }
}

/// A retry policy over `base`; `field` names it in messages (`step `x`: retry`).
fn retry(cx: &mut Ctx, r: &At<RetryDecl>, base: &RetryPolicy, field: &str) -> RetryPolicy {
    let mut p = base.clone();
    if let Some(a) = &r.attempts {
        if a.value == 0 {
            cx.err(
                a.pos,
                format!(
                    "{field}.attempts must be at least 1: it counts every try, the first included"
                ),
            );
        }
        p.attempts = a.value.max(1);
    }
    if let Some(b) = &r.backoff
        && let Some(d) = cx.duration(b, &format!("{field}.backoff"))
    {
        p.backoff = d;
    }
    if let Some(f) = &r.factor {
        if !(f.value.is_finite() && f.value >= 1.0) {
            cx.err(
                f.pos,
                format!(
                    "{field}.factor must be a number of at least 1, got {}",
                    f.value
                ),
            );
        }
        p.factor = f.value;
    }
    if let Some(m) = &r.max_backoff
        && let Some(d) = cx.duration(m, &format!("{field}.max_backoff"))
    {
        p.max_backoff = Some(d);
    }
    if let Some(j) = r.jitter {
        p.jitter = j;
    }
    p
}

/// Checks that `when` or `for_each` is one `{{ expression }}`: text around the braces
/// would make it a string, which is always true and never a list.
fn single_expression(cx: &mut Ctx, v: &At<String>, id: &str, key: &str, example: &str) {
    if !matches!(expr::shape(&v.value), expr::Shape::Single(_)) {
        cx.err(
            v.pos,
            format!(
                "step `{id}`: `{key}` must be a single `{{{{ expression }}}}` with nothing around it, e.g. `{example}`"
            ),
        );
    }
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
    let fields = if s.for_each.is_some() {
        Item::Bound
    } else {
        NOT_A_FOR_EACH_STEP
    };
    cx.callback_bound = s.callback.is_some();
    // What `when` and `for_each` read is needed once per step, the rest on every run
    // of its task (each iteration).
    let mut reads = Reads::default();
    let mut task_reads = Reads::default();
    let mut field_exprs = |cx: &mut Ctx, v: &Value, pos: Pos, field: &str, item: Item| {
        let read = cx.expressions(v, pos, &format!("step `{id}`: {field}"), item);
        match field {
            "when" | "for_each" => reads.extend(read),
            _ => task_reads.extend(read),
        }
    };
    if let Some(w) = &s.when {
        single_expression(cx, w, &id, "when", "{{ steps.check.output.ok }}");
        field_exprs(
            cx,
            &Value::String(w.value.clone()),
            w.pos,
            "when",
            ONCE_PER_STEP,
        );
    }
    if let Some(f) = &s.for_each {
        single_expression(cx, f, &id, "for_each", "{{ steps.split.output.chunks }}");
        field_exprs(
            cx,
            &Value::String(f.value.clone()),
            f.pos,
            "for_each",
            ONCE_PER_STEP,
        );
    }
    if let Some(i) = &s.input {
        field_exprs(cx, &i.value, i.pos, "input", fields);
    }
    if let Some(m) = &s.max_parallel {
        if s.for_each.is_none() {
            cx.err(
                m.pos,
                format!("step `{id}`: max_parallel only applies to `for_each` steps; add `for_each` or remove it"),
            );
        }
        if m.value == 0 {
            cx.err(
                m.pos,
                format!("step `{id}`: max_parallel must be at least 1"),
            );
        }
    }
    let retry = s.retry.as_ref().map_or_else(
        || default_retry.clone(),
        |r| retry(cx, r, default_retry, &format!("step `{id}`: retry")),
    );
    let timeout = match &s.timeout {
        // A child run is waited on, not run in the dispatcher: any length will do.
        Some(t) if s.workflow.is_some() => cx.duration(t, &format!("step `{id}`: timeout")),
        Some(t) => cx.step_timeout(t, &format!("step `{id}`: timeout")),
        None => default_timeout,
    };

    let mut kinds: Vec<(&str, StepKind)> = Vec::new();
    if let Some(l) = &s.lambda {
        field_exprs(cx, &Value::String(l.value.clone()), l.pos, "lambda", fields);
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
            .as_ref()
            .map_or_else(|| "GET".into(), |m| m.value.to_ascii_uppercase());
        if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&method.as_str())
        {
            cx.err(
                h.method.as_ref().map_or(h.pos, |m| m.pos),
                format!("step `{id}`: http.method `{method}` is not an HTTP method; use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS"),
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
            fields,
        );
        for v in h.headers.values() {
            field_exprs(cx, &Value::String(v.clone()), h.pos, "http.headers", fields);
        }
        if let Some(j) = &h.json {
            field_exprs(cx, j, h.pos, "http.json", fields);
        }
        if let Some(b) = &h.body {
            field_exprs(cx, &Value::String(b.clone()), h.pos, "http.body", fields);
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
            .and_then(|t| cx.step_timeout(t, &format!("step `{id}`: http.timeout")));
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
        field_exprs(cx, &p.value, p.pos, "pass", fields);
        kinds.push((
            "pass",
            StepKind::Pass {
                value: p.value.clone(),
            },
        ));
    }
    if let Some(w) = &s.wait {
        let wait = match &w.value {
            WaitDecl::For(d) => WaitFor::Duration(
                // A bad duration is reported; the step still has its kind.
                cx.duration(&At::new(d.clone(), w.pos), &format!("step `{id}`: wait"))
                    .unwrap_or_default(),
            ),
            WaitDecl::Until(u) => {
                let until_pos = cx.inner_pos(&u.until, w.pos);
                if u.until.contains("{{") {
                    field_exprs(
                        cx,
                        &Value::String(u.until.value.clone()),
                        until_pos,
                        "wait.until",
                        fields,
                    );
                } else if chrono::DateTime::parse_from_rfc3339(&u.until).is_err() {
                    cx.err(
                        until_pos,
                        format!(
                            "step `{id}`: wait.until `{}` is not an RFC 3339 timestamp such as `2026-01-01T09:00:00Z`",
                            u.until.value
                        ),
                    );
                }
                WaitFor::Until(u.until.value.clone())
            }
        };
        kinds.push(("wait", StepKind::Wait(wait)));
    }
    if let Some(a) = &s.approval {
        if let Some(m) = &a.message {
            field_exprs(
                cx,
                &Value::String(m.clone()),
                a.pos,
                "approval.message",
                fields,
            );
        }
        let timeout = a
            .timeout
            .as_ref()
            .and_then(|t| cx.duration(t, &format!("step `{id}`: approval.timeout")));
        kinds.push((
            "approval",
            StepKind::Approval {
                message: a.message.clone(),
                timeout,
                approvers: approvers(cx, a, &id),
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
        field_exprs(
            cx,
            &Value::String(f.error.clone()),
            f.pos,
            "fail.error",
            fields,
        );
        if let Some(m) = &f.message {
            field_exprs(cx, &Value::String(m.clone()), f.pos, "fail.message", fields);
        }
        kinds.push((
            "fail",
            StepKind::Fail {
                error: f.error.clone(),
                message: f.message.clone(),
            },
        ));
    }
    let callback = s.callback.as_ref().and_then(|c| callback(cx, c, &id));
    if let (Some(c), [(kind, _)]) = (&s.callback, kinds.as_slice())
        && !matches!(*kind, "lambda" | "http")
    {
        cx.err(
            c.pos,
            format!(
                "step `{id}`: `callback` is for `lambda` and `http` steps (a task that reports back); {} {kind} step does not start a task",
                article(kind)
            ),
        );
    }
    if let (Some(input), [(kind, _)]) = (&s.input, kinds.as_slice())
        && !matches!(*kind, "lambda" | "workflow")
    {
        cx.err(
            input.pos,
            format!(
                "step `{id}`: `input` is for `lambda` and `workflow` steps; {} {kind} step takes its data in its own field",
                article(kind)
            ),
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
    let notify = s
        .notify
        .iter()
        .filter_map(|n| notify(cx, n, STEP_NOTIFY_STATUSES, &format!("step `{id}`: notify")))
        .collect();
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
        callback,
        kind,
        notify,
        reads: reads.union(&task_reads),
        task_reads,
    })
}

/// An approval's `approvers`: names or principals, none empty; an empty list (nobody
/// could decide) is refused.
fn approvers(cx: &mut Ctx, a: &At<ApprovalDecl>, id: &str) -> Vec<String> {
    let Some(list) = &a.approvers else {
        return Vec::new();
    };
    if list.value.is_empty() || list.value.iter().any(|n| n.trim().is_empty()) {
        cx.err(
            list.pos,
            format!("step `{id}`: approval.approvers names nobody; list who may decide, or leave it out for anyone"),
        );
    }
    list.value.clone()
}

/// A step's `callback`: its timeout, and a heartbeat no longer than it.
fn callback(cx: &mut Ctx, c: &At<CallbackDecl>, id: &str) -> Option<Callback> {
    let timeout = cx.duration(&c.timeout, &format!("step `{id}`: callback.timeout"));
    let heartbeat = match &c.heartbeat {
        Some(h) => Some(cx.duration(h, &format!("step `{id}`: callback.heartbeat"))?),
        None => None,
    };
    let timeout = timeout?;
    if let (Some(h), Some(at)) = (heartbeat, &c.heartbeat)
        && h > timeout
    {
        cx.err(
            at.pos,
            format!(
                "step `{id}`: callback.heartbeat `{}` is longer than callback.timeout `{}`",
                at.value, c.timeout.value
            ),
        );
        return None;
    }
    Some(Callback { timeout, heartbeat })
}

/// Ids, `needs`, cycles and upstream references.
fn graph(cx: &mut Ctx, decls: &[At<StepDecl>], steps: &[Step]) {
    // Each id's first step, by its place in the file.
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, s) in decls.iter().enumerate() {
        if let Some(&prev) = first.get(s.id.value.as_str()) {
            cx.err(
                s.id.pos,
                format!(
                    "duplicate step id `{}` (first defined at {}); step ids must be unique",
                    s.id.value, decls[prev].id.pos
                ),
            );
        } else {
            first.insert(&s.id.value, i);
        }
    }
    for s in decls {
        let mut seen = BTreeSet::new();
        for n in &s.needs {
            if n.value == s.id.value {
                cx.err(
                    n.pos,
                    format!(
                        "step `{}` needs itself; remove `{}` from its needs",
                        s.id.value, n.value
                    ),
                );
            } else if !first.contains_key(n.value.as_str()) {
                let hint = nearest(&n.value, decls.iter().map(|d| d.id.value.as_str()))
                    .map(|i| format!("; did you mean `{i}`?"))
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

    // The needs graph over known steps; self-needs are reported above, not as cycles.
    let needs = Needs::new(
        decls
            .iter()
            .map(|s| {
                s.needs
                    .iter()
                    .filter(|n| n.value != s.id.value)
                    .filter_map(|n| first.get(n.value.as_str()).copied())
                    .collect()
            })
            .collect(),
    );

    for cycle in needs.cycles() {
        let links: Vec<String> = (0..cycle.len())
            .map(|i| {
                let next = cycle[(i + 1) % cycle.len()];
                format!(
                    "`{}` needs `{}`",
                    decls[cycle[i]].id.value, decls[next].id.value
                )
            })
            .collect();
        // Point at the need that closes the cycle from its first step.
        let from = &decls[cycle[0]];
        let next = &decls[cycle[1 % cycle.len()]].id.value;
        let pos = from
            .needs
            .iter()
            .find(|n| &n.value == next)
            .map_or(from.id.pos, |n| n.pos);
        cx.err(
            pos,
            format!(
                "needs form a cycle: {}; remove one of these needs",
                links.join(", ")
            ),
        );
    }

    // Upstream references: a field may read only steps it (transitively) needs.
    let by_pos: HashMap<Pos, &Step> = steps.iter().map(|s| (s.pos, s)).collect();
    for (i, decl) in decls.iter().enumerate() {
        let Some(step) = by_pos.get(&decl.id.pos) else {
            continue;
        };
        // Search for the reference within this step's text only, and only to report it.
        let end = decls.get(i + 1).map(|d| d.pos);
        let at = |cx: &Ctx, r: &str| {
            [
                format!("steps.{r}"),
                format!("steps['{r}']"),
                format!("steps[\"{r}\"]"),
            ]
            .iter()
            .find_map(|needle| cx.locate_before(decl.pos, end, needle))
            .unwrap_or(decl.pos)
        };
        for r in &step.reads.steps {
            if r == &step.id {
                cx.err(
                    at(cx, r),
                    format!(
                        "step `{}` reads its own output (`steps.{r}`); a step can only read the steps it needs",
                        step.id
                    ),
                );
            } else if let Some(&target) = first.get(r.as_str()) {
                if !needs.reaches(i, target) {
                    cx.err(
                        at(cx, r),
                        format!(
                            "step `{}` reads `steps.{r}`, but `{r}` is not upstream of it; add `{r}` to its needs",
                            step.id
                        ),
                    );
                }
            } else {
                let hint = nearest(r, decls.iter().map(|d| d.id.value.as_str()))
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                cx.err(
                    at(cx, r),
                    format!(
                        "step `{}` reads `steps.{r}`, but there is no step `{r}`{hint}",
                        step.id
                    ),
                );
            }
        }
    }
}
