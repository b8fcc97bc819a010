//! A run's attempts in time order (`braid logs`, `GET /runs/{id}/logs`): each start
//! and end, with its error and the retry it led to (see [`braid_engine::timeline`]).

use super::api::failure;
use super::{HandlerError, HandlerResult, Handlers};
use crate::ApiResponse;
use braid_engine::model::RunId;
use braid_engine::timeline::{self, Entry, What};
use braid_lang::StepKind;
use braid_ports::Invocation;
use serde_json::json;
use std::collections::HashMap;

impl Handlers {
    /// The timeline of run `run_id`, of step `step` and its iterations only when given
    /// (a step its workflow lacks is invalid), with what its `lambda` steps' functions
    /// wrote while they ran, where the backend keeps that.
    pub async fn logs(&self, run_id: &RunId, step: Option<&str>) -> HandlerResult<Vec<Entry>> {
        let run = self.ports.store.get_run(run_id).await?;
        let wf = self.workflow(&run).await?;
        let mut records = self.ports.store.list_steps(run_id).await?;
        if let Some(s) = step {
            if wf.step(s).is_none() {
                return Err(HandlerError::Invalid(format!(
                    "workflow `{}` has no step `{s}`",
                    wf.name
                )));
            }
            records.retain(|r| r.key.step == s);
        }
        let entries = timeline::timeline(&records);
        let mut output = Vec::new();
        for started in entries.iter().filter(|e| e.what == What::Started) {
            let step_id = started.step.split('[').next().unwrap_or_default();
            let calls_function = wf
                .step(step_id)
                .is_some_and(|s| matches!(s.kind, StepKind::Lambda { .. }));
            if !calls_function {
                continue;
            }
            let call = Invocation::new(run_id.to_string(), &started.step, started.attempt);
            for line in self.ports.output.lines(&call, started.at).await? {
                output.push(Entry {
                    at: line.at,
                    step: started.step.clone(),
                    attempt: started.attempt,
                    what: What::Output {
                        stream: line.stream,
                        text: line.text,
                    },
                });
            }
        }
        Ok(timeline::with_output(entries, output))
    }

    /// `GET /runs/{id}/logs[?step=S]`: `{"run_id", "status", "entries"}`.
    pub(super) async fn api_logs(
        &self,
        run_id: &RunId,
        query: &HashMap<String, String>,
    ) -> ApiResponse {
        let entries = match self
            .logs(run_id, query.get("step").map(String::as_str))
            .await
        {
            Ok(e) => e,
            Err(e) => return failure(e),
        };
        match self.ports.store.get_run(run_id).await {
            Ok(run) => ApiResponse::ok(
                200,
                json!({"run_id": run.id, "status": run.status, "entries": entries}),
            ),
            Err(e) => failure(e.into()),
        }
    }
}
