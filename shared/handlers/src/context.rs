//! The expression scope of a step: params, trigger, run, the steps it reads, item.

use super::{HandlerResult, Handlers};
use braid_engine::model::{RunRecord, StepKey, StepRecord};
use braid_lang::Workflow;
use braid_lang::expr::Scope;
use serde_json::Value;
use std::collections::BTreeSet;

impl Handlers {
    /// A scope holding only the steps in `reads`: loading every output of a big run for
    /// each expression would be slow, and validation already proved nothing else is read.
    pub(super) async fn scope(
        &self,
        run: &RunRecord,
        reads: &BTreeSet<String>,
        item: Option<&StepRecord>,
    ) -> HandlerResult<Scope> {
        let mut scope = Scope {
            params: run.params.clone(),
            trigger: run.trigger.clone(),
            ..Scope::default()
        }
        .with_run(
            &run.id,
            &run.workflow,
            &run.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        );
        for id in reads {
            let rec = self
                .ports
                .store
                .get_step(&run.id, &StepKey::step(id))
                .await?;
            let output = match &rec.output {
                Some(d) => self.load(d).await?,
                None => Value::Null,
            };
            scope.add_step(id, rec.status.as_str(), output);
        }
        if let Some(it) = item {
            let value = self.item_of(it).await?;
            scope.item = Some((value, it.key.index.unwrap_or(0) as usize));
        }
        Ok(scope)
    }

    /// The scope for the run output.
    pub(super) async fn output_scope(
        &self,
        wf: &Workflow,
        run: &RunRecord,
    ) -> HandlerResult<Scope> {
        self.scope(run, &braid_engine::output::reads(wf), None)
            .await
    }
}
