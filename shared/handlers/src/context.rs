//! The expression scope of a step: params, trigger, run, the steps it reads, item.
//! A run's params and trigger data may be kept by reference ([`Handlers::keep_input`]):
//! they are loaded only for the expressions that read them.

use super::{HandlerResult, Handlers};
use braid_engine::model::{Data, RunRecord, StepKey, StepRecord};
use braid_lang::expr::Scope;
use braid_lang::{Reads, Workflow};
use serde_json::{Value, json};

impl Handlers {
    /// A scope holding only what `reads` names: loading every output of a big run, or
    /// a big input, for each expression would be slow, and validation already proved
    /// nothing else is read.
    pub(super) async fn scope(
        &self,
        run: &RunRecord,
        reads: &Reads,
        item: Option<&StepRecord>,
    ) -> HandlerResult<Scope> {
        let mut scope = Scope {
            params: match (reads.params, &run.params_ref) {
                (false, _) => Value::Null,
                (true, Some(d)) => self.load(d).await?,
                (true, None) => run.params.clone(),
            },
            trigger: match (reads.trigger, &run.trigger_ref) {
                (false, _) => Value::Null,
                (true, Some(d)) => self.load(d).await?,
                (true, None) => run.trigger.clone(),
            },
            ..Scope::default()
        }
        .with_run(
            &run.id,
            &run.workflow,
            &run.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        );
        for id in &reads.steps {
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

    /// Keeps a new run's params and trigger data by reference when either is over the
    /// inline limit, as step outputs are: the run's record is read by every step (and
    /// must fit a store item), and most steps read neither. The trigger keeps its
    /// `kind` inline, which `run.started` tells.
    pub(super) async fn keep_input(&self, run: &mut RunRecord) -> HandlerResult<()> {
        let base = format!("runs/{}", run.id);
        let params = std::mem::take(&mut run.params);
        match self
            .store_value(&format!("{base}/params.json"), params)
            .await?
        {
            Data::Inline(v) => run.params = v,
            stored => run.params_ref = Some(stored),
        }
        let kind = run.trigger.get("kind").cloned();
        let trigger = std::mem::take(&mut run.trigger);
        match self
            .store_value(&format!("{base}/trigger.json"), trigger)
            .await?
        {
            Data::Inline(v) => run.trigger = v,
            stored => {
                run.trigger = kind.map_or(Value::Null, |k| json!({ "kind": k }));
                run.trigger_ref = Some(stored);
            }
        }
        Ok(())
    }
}
