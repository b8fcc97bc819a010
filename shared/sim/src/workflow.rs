//! Random workflows drawn from the whole language the handlers run: needs (a DAG),
//! `when`, `for_each` with `max_parallel`, retries with backoff and jitter, step and
//! run timeouts, `wait` (shorter and longer than the queue's longest delay),
//! `approval` and `signal` steps (with and without a timeout, signal names sometimes
//! shared by several steps), `continue_on_failure`, `pass` and `fail` steps, `lambda`
//! and `http` tasks (some ending by a `callback`, with or without a heartbeat),
//! `workflow` steps starting child workflows — drawn the same way, small, without
//! children of their own, registered before the parent starts — and workflow
//! `concurrency` with several runs, and an `sla` on the run and one of its steps. Each is written as YAML text and parsed by
//! `braid-lang`, so what runs is a real workflow file.

use braid_engine::model::Definition;
use std::fmt::Write;
use std::time::Duration;

/// The function every `lambda` step calls (the simulation's task runner answers).
pub const FUNCTION: &str = "sim-fn";

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Lambda,
    Http,
    Pass,
    Fail,
    /// Waits this many seconds.
    Wait(u64),
    /// Waits for a decision, for good without a timeout (in seconds).
    Approval {
        timeout: Option<u64>,
    },
    /// Waits for signal `name`, for good without a timeout (in seconds).
    Signal {
        name: &'static str,
        timeout: Option<u64>,
    },
    /// Starts a run of child workflow `.0` (an index into [`WorkflowSpec::children`]).
    Child(usize),
}

/// A task's `callback`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallbackSpec {
    pub timeout: u64,
    pub heartbeat: Option<u64>,
}

/// The name of the parent workflow (children are `child0`, `child1`, …).
pub const PARENT: &str = "sim";

/// The names signal steps wait for: few, so that steps share one now and then.
pub const SIGNAL_NAMES: [&str; 2] = ["go", "done"];

impl Kind {
    /// Whether the step calls the task runner.
    pub fn is_task(&self) -> bool {
        matches!(self, Kind::Lambda | Kind::Http)
    }

    /// How long the step waits for its answer before it fails, when it waits for one.
    pub fn answer_timeout(&self) -> Option<Duration> {
        match self {
            Kind::Approval { timeout } | Kind::Signal { timeout, .. } => {
                timeout.map(Duration::from_secs)
            }
            _ => None,
        }
    }

    /// Whether the step waits for a person or a system.
    pub fn is_answered(&self) -> bool {
        matches!(self, Kind::Approval { .. } | Kind::Signal { .. })
    }
}

/// How a dependent reads step `s`'s output: an approval's by its status alone, since
/// its output holds the instant of the decision, which faults move.
fn output_ref(s: &StepSpec) -> String {
    match s.kind {
        Kind::Approval { .. } => format!("{{{{ steps.{}.status }}}}", s.id),
        _ => format!("{{{{ steps.{}.output }}}}", s.id),
    }
}

/// One generated step.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub id: String,
    pub needs: Vec<String>,
    pub kind: Kind,
    pub when: Option<String>,
    pub for_each: Option<String>,
    pub max_parallel: Option<u32>,
    /// `(attempts, backoff, jitter)`.
    pub retry: Option<(u32, &'static str, bool)>,
    pub timeout: Option<Duration>,
    pub continue_on_failure: bool,
    /// For a task: it ends by a callback.
    pub callback: Option<CallbackSpec>,
}

/// One generated workflow and how many runs of it to start.
#[derive(Debug, Clone)]
pub struct WorkflowSpec {
    pub name: String,
    pub yaml: String,
    pub definition: Definition,
    pub steps: Vec<StepSpec>,
    pub runs: u32,
    pub run_timeout: Option<Duration>,
    /// The child workflows its `workflow` steps start.
    pub children: Vec<WorkflowSpec>,
}

impl WorkflowSpec {
    pub fn step(&self, id: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// This workflow or one of its children, by name.
    pub fn workflow(&self, name: &str) -> Option<&WorkflowSpec> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find(|c| c.name == name)
    }

    /// The signal names its steps wait for, each once, in order.
    pub fn signal_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .steps
            .iter()
            .filter_map(|s| match s.kind {
                Kind::Signal { name, .. } => Some(name),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Draws a workflow of at most `max_steps` steps, with its children.
pub fn generate(rng: &mut fastrand::Rng, max_steps: usize) -> WorkflowSpec {
    let children: Vec<WorkflowSpec> = (0..rng.usize(0..=2))
        .map(|i| draw(rng, &format!("child{i}"), 3, 0))
        .collect();
    let mut spec = draw(rng, PARENT, max_steps, children.len());
    spec.children = children;
    spec
}

/// Draws workflow `name` of at most `max_steps` steps, whose `workflow` steps start
/// one of `children` children (none when 0). A child has one run and always an
/// output template: its parent's step output is compared, and an approval's leaf
/// output would hold the instant of its decision.
fn draw(rng: &mut fastrand::Rng, name: &str, max_steps: usize, children: usize) -> WorkflowSpec {
    let child = name != PARENT;
    let n = rng.usize(1..=max_steps.max(1));
    let mut steps: Vec<StepSpec> = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("s{i}");
        let mut needs: Vec<String> = Vec::new();
        if i > 0 {
            for _ in 0..rng.usize(0..=2) {
                let need = format!("s{}", rng.usize(0..i));
                if !needs.contains(&need) {
                    needs.push(need);
                }
            }
        }
        let kind = match rng.u8(..27) {
            24.. if children > 0 => Kind::Child(rng.usize(..children)),
            0..=7 => Kind::Lambda,
            8..=10 => Kind::Http,
            11..=14 => Kind::Pass,
            15..=16 => Kind::Fail,
            17..=19 => Kind::Wait([2, 75, 16 * 60][rng.usize(..3)]),
            20..=21 | 24.. => Kind::Approval {
                timeout: answer_timeout(rng),
            },
            _ => Kind::Signal {
                name: SIGNAL_NAMES[rng.usize(..SIGNAL_NAMES.len())],
                timeout: answer_timeout(rng),
            },
        };
        let lambda_need = needs
            .iter()
            .find(|n| {
                steps
                    .iter()
                    .any(|s| &&s.id == n && s.kind == Kind::Lambda && s.for_each.is_none())
            })
            .cloned();
        let fans_out = matches!(
            kind,
            Kind::Lambda | Kind::Http | Kind::Pass | Kind::Child(_)
        );
        let for_each = (fans_out && rng.u8(..4) == 0).then(|| match &lambda_need {
            Some(x) if rng.bool() => format!(
                "{{{{ steps.{x}.output.items if steps.{x}.status == 'succeeded' else [] }}}}"
            ),
            _ => "{{ params.items }}".to_string(),
        });
        let when = match rng.u8(..10) {
            0 => Some("{{ params.flag }}".to_string()),
            1 => Some("{{ not params.flag }}".to_string()),
            2 if !needs.is_empty() => Some(format!(
                "{{{{ steps.{}.status == 'succeeded' }}}}",
                needs[rng.usize(..needs.len())]
            )),
            // A `fail` step mostly runs under a condition, else most runs would fail.
            _ if kind == Kind::Fail && rng.bool() => Some("{{ not params.flag }}".to_string()),
            _ => None,
        };
        // An approval with retries: a rejection or a timeout must not use them.
        let retried = kind.is_task() || matches!(kind, Kind::Approval { .. } | Kind::Child(_));
        let retry = (retried && rng.bool()).then(|| {
            (
                rng.u32(2..=4),
                ["1s", "10s", "2m"][rng.usize(..3)],
                rng.bool(),
            )
        });
        let timeout = (kind.is_task() && rng.u8(..3) == 0)
            .then(|| [2, 30, 90].map(Duration::from_secs)[rng.usize(..3)]);
        let callback = (kind.is_task() && rng.u8(..3) == 0).then(|| CallbackSpec {
            timeout: [300, 1200][rng.usize(..2)],
            heartbeat: [None, Some(60), Some(120)][rng.usize(..3)],
        });
        steps.push(StepSpec {
            id,
            needs,
            kind,
            when,
            max_parallel: for_each
                .as_ref()
                .and_then(|_| (rng.bool()).then(|| rng.u32(1..=3))),
            for_each,
            retry,
            timeout,
            continue_on_failure: rng.u8(..6) == 0,
            callback,
        });
    }
    let flag = rng.u8(..4) != 0;
    let items: Vec<u32> = (0..rng.u32(0..=4)).collect();
    let run_timeout = (!child && rng.u8(..8) == 0).then(|| Duration::from_secs(3 * 3600));
    let (concurrency, runs) = if !child && rng.u8(..4) == 0 {
        (Some(rng.u32(1..=2)), rng.u32(2..=3))
    } else {
        (None, 1)
    };
    let output = child || rng.bool();
    // Shorter and longer than the tick's period and than typical runs.
    const SLA_SECS: [u64; 3] = [30, 600, 7200];
    let sla = (!child && rng.u8(..3) == 0).then(|| {
        let run = SLA_SECS[rng.usize(..3)];
        let step = rng.bool().then(|| {
            let id = steps[rng.usize(..steps.len())].id.clone();
            (id, SLA_SECS[rng.usize(..3)])
        });
        (run, step)
    });
    let head = Head {
        name,
        flag,
        items: &items,
        run_timeout,
        concurrency,
        output,
        sla: sla.clone(),
    };
    let yaml = to_yaml(&steps, &head);
    let (definition, _) = braid_handlers::definition(&format!("{name}.yaml"), &yaml)
        .unwrap_or_else(|e| panic!("the generator wrote an invalid workflow: {e}\n{yaml}"));
    WorkflowSpec {
        name: name.to_string(),
        yaml,
        definition,
        steps,
        runs,
        run_timeout,
        children: Vec::new(),
    }
}

/// A workflow's fields other than its steps.
struct Head<'a> {
    name: &'a str,
    flag: bool,
    items: &'a [u32],
    run_timeout: Option<Duration>,
    concurrency: Option<u32>,
    output: bool,
    /// The run's SLA and maybe one step's, in seconds.
    sla: Option<(u64, Option<(String, u64)>)>,
}

/// The workflow file.
fn to_yaml(steps: &[StepSpec], head: &Head<'_>) -> String {
    let Head {
        name,
        flag,
        items,
        run_timeout,
        concurrency,
        output,
        ref sla,
    } = *head;
    let mut y = String::new();
    let items: Vec<String> = items.iter().map(u32::to_string).collect();
    let _ = writeln!(y, "name: {name}");
    let _ = writeln!(y, "params:");
    let _ = writeln!(y, "  flag: {{ type: boolean, default: {flag} }}");
    let _ = writeln!(
        y,
        "  items: {{ type: array, default: [{}] }}",
        items.join(", ")
    );
    if let Some(t) = run_timeout {
        let _ = writeln!(y, "timeout: {}s", t.as_secs());
    }
    if let Some(c) = concurrency {
        let _ = writeln!(y, "concurrency: {c}");
    }
    match sla {
        Some((run, Some((step, secs)))) => {
            let _ = writeln!(y, "sla: {{ run: {run}s, steps: {{ {step}: {secs}s }} }}");
        }
        Some((run, None)) => {
            let _ = writeln!(y, "sla: {{ run: {run}s }}");
        }
        None => {}
    }
    if output && let Some(last) = steps.last() {
        let _ = writeln!(y, "output: \"{}\"", output_ref(last));
    }
    let _ = writeln!(y, "steps:");
    for s in steps {
        let _ = writeln!(y, "  - id: {}", s.id);
        if !s.needs.is_empty() {
            let _ = writeln!(y, "    needs: [{}]", s.needs.join(", "));
        }
        if let Some(w) = &s.when {
            let _ = writeln!(y, "    when: \"{w}\"");
        }
        if let Some(f) = &s.for_each {
            let _ = writeln!(y, "    for_each: \"{f}\"");
        }
        if let Some(m) = s.max_parallel {
            let _ = writeln!(y, "    max_parallel: {m}");
        }
        if let Some((attempts, backoff, jitter)) = s.retry {
            let _ = writeln!(
                y,
                "    retry: {{ attempts: {attempts}, backoff: {backoff}, factor: 2, jitter: {jitter} }}"
            );
        }
        if let Some(t) = s.timeout {
            let _ = writeln!(y, "    timeout: {}s", t.as_secs());
        }
        if s.continue_on_failure {
            let _ = writeln!(y, "    continue_on_failure: true");
        }
        if let Some(c) = s.callback {
            let beat = c
                .heartbeat
                .map(|h| format!(", heartbeat: {h}s"))
                .unwrap_or_default();
            let _ = writeln!(y, "    callback: {{ timeout: {}s{beat} }}", c.timeout);
        }
        let each = s.for_each.is_some();
        match &s.kind {
            Kind::Lambda => {
                let _ = writeln!(y, "    lambda: {FUNCTION}");
                let _ = writeln!(y, "    input: {}", task_input(name, steps, s, each));
            }
            Kind::Http => {
                let _ = writeln!(y, "    http:");
                let _ = writeln!(y, "      method: POST");
                let _ = writeln!(y, "      url: \"https://sim.invalid/{}\"", s.id);
                let _ = writeln!(y, "      json: {}", task_input(name, steps, s, each));
            }
            Kind::Pass => {
                let deps: Vec<String> = s
                    .needs
                    .iter()
                    .map(|n| format!("{n}: \"{{{{ steps.{n}.status }}}}\""))
                    .collect();
                let item = if each { ", item: \"{{ item }}\"" } else { "" };
                let _ = writeln!(
                    y,
                    "    pass: {{ from: {}, deps: {{ {} }}{item} }}",
                    s.id,
                    deps.join(", ")
                );
            }
            Kind::Fail => {
                let _ = writeln!(
                    y,
                    "    fail: {{ error: SimFail, message: \"step {} fails\" }}",
                    s.id
                );
            }
            Kind::Wait(d) => {
                let _ = writeln!(y, "    wait: {d}s");
            }
            Kind::Approval { timeout } => {
                let _ = writeln!(
                    y,
                    "    approval: {{ message: \"May {} go on?\"{} }}",
                    s.id,
                    timeout_field(*timeout)
                );
            }
            Kind::Signal { name, timeout } => {
                let _ = writeln!(
                    y,
                    "    signal: {{ name: {name}{} }}",
                    timeout_field(*timeout)
                );
            }
            Kind::Child(i) => {
                let _ = writeln!(y, "    workflow: child{i}");
                let _ = writeln!(y, "    input: {{ flag: \"{{{{ params.flag }}}}\" }}");
            }
        }
    }
    y
}

/// An answered step's timeout: shorter or longer than the queue's longest delay, or none.
fn answer_timeout(rng: &mut fastrand::Rng) -> Option<u64> {
    [None, Some(90), Some(20 * 60)][rng.usize(..3)]
}

/// `, timeout: Ns` when there is one.
fn timeout_field(timeout: Option<u64>) -> String {
    timeout
        .map(|t| format!(", timeout: {t}s"))
        .unwrap_or_default()
}

/// A task's input: who it is (workflow, step, run: for the simulated runner) and its
/// needs' outputs.
fn task_input(workflow: &str, steps: &[StepSpec], s: &StepSpec, each: bool) -> String {
    let deps: Vec<String> = s
        .needs
        .iter()
        .filter_map(|n| steps.iter().find(|d| &d.id == n))
        .map(|d| format!("{}: \"{}\"", d.id, output_ref(d)))
        .collect();
    let each = if each {
        ", index: \"{{ index }}\", item: \"{{ item }}\""
    } else {
        ""
    };
    format!(
        "{{ wf: {workflow}, step: {}, run: \"{{{{ run.id }}}}\"{each}, deps: {{ {} }} }}",
        s.id,
        deps.join(", ")
    )
}
