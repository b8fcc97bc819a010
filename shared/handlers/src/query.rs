//! What tools read and register, through the handlers rather than the ports: the
//! CLI lists runs and follows a run's steps with these (and registers definitions
//! with [`Handlers::register`]), so
//! it depends on no port and works the same over either backend.

use super::{HandlerResult, Handlers, Ports};
use braid_engine::model::{Definition, RunId, RunRecord, StepRecord};
use braid_ports::RunFilter;

impl Handlers {
    /// The adapters, for the runtime that drives these handlers (the local message
    /// loop) and for tests; tools go through the functions below.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The current definition of `workflow`.
    pub async fn current_definition(&self, workflow: &str) -> HandlerResult<Definition> {
        Ok(self.ports.store.current_definition(workflow).await?)
    }

    /// The runs `filter` selects, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> HandlerResult<Vec<RunRecord>> {
        Ok(self.ports.store.list_runs(filter).await?)
    }

    /// The run `given` names: its whole id, or a prefix of exactly one run's id (as git
    /// takes a commit's). None: not found; several: invalid, naming a few.
    pub async fn resolve_run(&self, given: &str) -> HandlerResult<RunId> {
        let id = RunId::from(given);
        match self.ports.store.get_run(&id).await {
            Ok(_) => return Ok(id),
            Err(braid_ports::PortError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut found = self.ports.store.runs_with_prefix(given, 3).await?;
        match found.len() {
            0 => Err(braid_ports::PortError::NotFound(format!("no run `{given}`")).into()),
            1 => Ok(found.remove(0)),
            _ => Err(super::HandlerError::Invalid(format!(
                "`{given}` begins the ids of more than one run ({}, …): give more of it",
                found
                    .iter()
                    .take(2)
                    .map(RunId::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The record of run `run_id`.
    pub async fn run_record(&self, run_id: &RunId) -> HandlerResult<RunRecord> {
        Ok(self.ports.store.get_run(run_id).await?)
    }

    /// The step records of run `run_id` written so far (a step not written yet is
    /// pending).
    pub async fn step_records(&self, run_id: &RunId) -> HandlerResult<Vec<StepRecord>> {
        Ok(self.ports.store.list_steps(run_id).await?)
    }

    /// Whether webhook secret `name` is set where this backend looks for it.
    pub async fn secret_is_set(&self, name: &str) -> HandlerResult<bool> {
        Ok(self.ports.secrets.secret(name).await?.is_some())
    }
}
