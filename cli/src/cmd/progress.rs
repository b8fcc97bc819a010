//! Live progress while a run goes: a line per step on a terminal (a bar for
//! `for_each`), or one line per finished step when stderr is not a terminal.

use super::report::status_mark;
use braid_engine::model::{RunId, StepStatus};
use braid_handlers::Handlers;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

/// Watches `run_id` in the store until the returned handle is stopped.
pub struct Progress {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(handlers: Arc<Handlers>, run_id: &RunId, step_order: Vec<String>) -> Self {
        let run_id = run_id.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let tty = std::io::stderr().is_terminal();
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
            let mut printed: HashMap<String, StepStatus> = HashMap::new();
            loop {
                if let Ok(steps) = handlers.step_records(&run_id).await {
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
                        if !tty
                            && rec.status.is_final()
                            && printed.get(rec.key.step.as_str()) != Some(&rec.status)
                        {
                            eprintln!(
                                "{} {} {}",
                                status_mark(rec.status),
                                rec.key.step,
                                rec.status
                            );
                            printed.insert(rec.key.step.to_string(), rec.status);
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.changed() => break,
                }
            }
            for bar in bars.values() {
                bar.finish_and_clear();
            }
            let _ = multi.clear();
        });
        Progress { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
