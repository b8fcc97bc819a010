//! Live progress while a run goes: a line per step on a terminal (a bar for
//! `for_each`), or one line per finished step when stderr is not a terminal — told
//! from the `step.finished` events the handlers publish, so in the order the steps
//! ended, each once, the last ones included; and, either way, once per waiting step,
//! what it waits for and the command that ends the wait.

use super::report::status_mark;
use braid_engine::model::{EventKind, LifecycleEvent, RunId, StepStatus};
use braid_handlers::Handlers;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// Watches `run_id` in the store until the returned handle is stopped.
pub struct Progress {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// `flags`: what the printed commands need to reach this run (`--state PATH`),
    /// with a leading space; empty when they need nothing. Without `show_steps`, only
    /// the waits are told (the result goes to stdout as JSON, stderr stays quiet).
    /// `events`: what the handlers publish, subscribed before the run can end.
    pub fn start(
        handlers: Arc<Handlers>,
        run_id: &RunId,
        step_order: Vec<String>,
        flags: String,
        show_steps: bool,
        mut events: broadcast::Receiver<LifecycleEvent>,
    ) -> Self {
        let run_id = run_id.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let tty = show_steps && std::io::stderr().is_terminal();
            let multi = MultiProgress::with_draw_target(if tty {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            });
            let style =
                ProgressStyle::with_template("{prefix} {msg} {bar:30.cyan/blue} {pos}/{len}")
                    .expect("template");
            let line = ProgressStyle::with_template("{prefix} {msg}").expect("template");
            let bars: HashMap<String, ProgressBar> = step_order
                .iter()
                .map(|id| {
                    let bar = multi.add(ProgressBar::new(0).with_style(line.clone()));
                    bar.set_prefix(status_mark(StepStatus::Pending));
                    bar.set_message(id.clone());
                    (id.clone(), bar)
                })
                .collect();
            let mut ends = StepEnds::new(&run_id, &step_order);
            let print_ends = !tty && show_steps;
            // (step, attempt) already announced as waiting.
            let mut announced: HashSet<(String, u32)> = HashSet::new();
            loop {
                if let Ok(steps) = handlers.step_records(&run_id).await {
                    let waiting: Vec<(String, u32)> = steps
                        .iter()
                        .filter(|r| r.key.index.is_none() && r.status == StepStatus::Waiting)
                        .map(|r| (r.key.step.to_string(), r.attempt))
                        .filter(|w| !announced.contains(w))
                        .collect();
                    if !waiting.is_empty()
                        && let Ok(view) = handlers.run_view(&run_id).await
                    {
                        for (id, attempt) in waiting {
                            let Some(detail) = view.steps.get(&id).and_then(|s| s.waiting.as_ref())
                            else {
                                continue;
                            };
                            let line = waiting_line(&id, detail, &flags);
                            if tty {
                                let _ = multi.println(line);
                            } else {
                                eprintln!("{line}");
                            }
                            announced.insert((id, attempt));
                        }
                    }
                    for rec in steps.iter().filter(|r| r.key.index.is_none()) {
                        let Some(bar) = bars.get(rec.key.step.as_str()) else {
                            continue;
                        };
                        bar.set_prefix(status_mark(rec.status));
                        let label = format!("{} {}", rec.key.step, rec.status);
                        if let Some(f) = rec.fan_out {
                            let done = steps
                                .iter()
                                .filter(|r| r.key.step == rec.key.step && r.key.index.is_some())
                                .filter(|r| r.status.is_final())
                                .count();
                            bar.set_style(style.clone());
                            bar.set_length(u64::from(f.total));
                            bar.set_position(done as u64);
                        }
                        bar.set_message(label);
                    }
                }
                let tick = tokio::time::sleep(Duration::from_millis(100));
                tokio::pin!(tick);
                loop {
                    tokio::select! {
                        () = &mut tick => break,
                        _ = stopped.changed() => {
                            // The run is over: its last ends were published before.
                            loop {
                                match events.try_recv() {
                                    Ok(e) => ends.take(&e, print_ends),
                                    Err(TryRecvError::Lagged(n)) => ends.missed(n, print_ends),
                                    Err(_) => break,
                                }
                            }
                            for bar in bars.values() {
                                bar.finish_and_clear();
                            }
                            let _ = multi.clear();
                            return;
                        }
                        e = events.recv() => match e {
                            Ok(e) => ends.take(&e, print_ends),
                            Err(RecvError::Lagged(n)) => ends.missed(n, print_ends),
                            // No hub: the handlers publish elsewhere.
                            Err(RecvError::Closed) => {
                                let _ = stopped.changed().await;
                                break;
                            }
                        },
                    }
                }
            }
        });
        Progress { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The end lines of one run's top-level steps, from its `step.finished` events.
struct StepEnds {
    run_id: String,
    steps: HashSet<String>,
    /// Each (step, status, when) told, so that an event published twice is told once.
    told: HashSet<(String, String, String)>,
}

impl StepEnds {
    fn new(run_id: &RunId, steps: &[String]) -> Self {
        StepEnds {
            run_id: run_id.to_string(),
            steps: steps.iter().cloned().collect(),
            told: HashSet::new(),
        }
    }

    /// The line for `e` if it is a new end of one of the run's steps.
    fn line(&mut self, e: &LifecycleEvent) -> Option<String> {
        let step = e.step.as_ref()?;
        if e.kind != EventKind::StepFinished
            || e.run_id.as_str() != self.run_id
            || !self.steps.contains(step)
        {
            return None;
        }
        let status: StepStatus = serde_json::from_value(Value::String(e.status.clone())).ok()?;
        let first = self
            .told
            .insert((step.clone(), e.status.clone(), e.at.to_rfc3339()));
        first.then(|| format!("{} {step} {status}", status_mark(status)))
    }

    fn take(&mut self, e: &LifecycleEvent, print: bool) {
        if let Some(line) = self.line(e)
            && print
        {
            eprintln!("{line}");
        }
    }

    /// Says that `n` events went by unread (the process fell far behind).
    fn missed(&self, n: u64, print: bool) {
        if print {
            eprintln!("({n} progress events were missed; `braid logs` has every step)");
        }
    }
}

/// What step `id` waits for and how to end the wait, from its waiting detail (see
/// the run view); `flags` appended to each command.
fn waiting_line(id: &str, detail: &Value, flags: &str) -> String {
    let text = |k: &str| detail[k].as_str().unwrap_or_default().to_string();
    match detail["for"].as_str() {
        Some("approval") => {
            let message = detail["message"]
                .as_str()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            format!(
                "step {id} waits for approval{message}: {}{flags}  (or: {}{flags})",
                text("approve"),
                text("reject")
            )
        }
        Some("signal") => format!(
            "step {id} waits for signal {}: {}{flags}",
            text("name"),
            text("send")
        ),
        other => format!("step {id} waits for {}", other.unwrap_or("something")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_waiting_line_names_the_command_that_ends_the_wait() {
        let approval = json!({"for": "approval", "message": "Ship it?",
            "approve": "braid approve R gate", "reject": "braid reject R gate"});
        assert_eq!(
            waiting_line("gate", &approval, " --state s"),
            "step gate waits for approval (Ship it?): braid approve R gate --state s  (or: braid reject R gate --state s)"
        );
        let signal = json!({"for": "signal", "name": "smoke-passed",
            "send": "braid signal R smoke-passed --data JSON"});
        assert_eq!(
            waiting_line("smoke", &signal, ""),
            "step smoke waits for signal smoke-passed: braid signal R smoke-passed --data JSON"
        );
    }
}
