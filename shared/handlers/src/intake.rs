//! Intake: validate the input, create the run and its steps atomically (guarded by the
//! idempotency key), then wake the root steps.

use super::api::StartBody;
use super::audit::Target;
use super::{HandlerError, HandlerResult, Handlers};
use braid_engine::model::{
    AuditAction, Definition, LifecycleEvent, ParentRef, RunRecord, RunStatus, Timestamp,
};
use braid_engine::start::RunPlan;
use braid_engine::{params, start};
use braid_lang::Workflow;
use braid_ports::{Created, PortError};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The longest idempotency key kept as given, in bytes, on both backends: on AWS the
/// key is part of a DynamoDB key attribute (which holds 2048 bytes, the workflow's
/// name and a prefix included), while the embedded store would take any length. A
/// longer key (an S3 trigger's bucket, object key and sequencer can reach it) is
/// kept as `sha256:<hex digest>` instead: the same key still finds the same run.
pub const MAX_IDEMPOTENCY_KEY: usize = 1024;

/// `key`, or its digest when it is over [`MAX_IDEMPOTENCY_KEY`].
fn bounded_key(key: String) -> String {
    use sha2::{Digest, Sha256};
    if key.len() <= MAX_IDEMPOTENCY_KEY {
        return key;
    }
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An explicit start (CLI, API) or a trigger's start.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub definition: Definition,
    pub input: Value,
    /// The event that started the run (`trigger` in expressions).
    pub trigger: Value,
    /// A start with a key that was used before returns the run it started.
    pub idempotency_key: Option<String>,
    /// Wait for a slot even if the workflow sets no `concurrency` (a schedule's
    /// `overlap: queue`): as if it set 1.
    pub queue: bool,
}

/// The run a start created or found.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub run: RunRecord,
    /// True when the idempotency key was used before and no run was created.
    pub existing: bool,
}

/// Where a started run's definition stands in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Registry {
    /// It was read from the registry (a start by name, a trigger): nothing to write.
    Current,
    /// It comes from a file, for an ad-hoc run: registered when its workflow is not
    /// yet; else kept as a version only, so trying out an edited copy never changes
    /// what the registered workflow's triggers start.
    AdHoc,
}

impl Handlers {
    /// Starts a run of the current definition of a registered workflow for `by` (an
    /// explicit start by name: `POST /runs`, a direct invoke, `braid start`).
    pub async fn start_named(
        &self,
        body: StartBody,
        trigger: Value,
        by: &str,
    ) -> HandlerResult<Started> {
        let definition = match self.ports.store.current_definition(&body.workflow).await {
            Ok(d) => d,
            Err(PortError::NotFound(_)) => {
                return Err(HandlerError::Port(PortError::NotFound(format!(
                    "workflow `{}` is not registered (braid deploy FILE registers it)",
                    body.workflow
                ))));
            }
            Err(e) => return Err(e.into()),
        };
        let req = StartRequest {
            definition,
            input: body.input,
            trigger,
            idempotency_key: body.idempotency_key,
            queue: false,
        };
        let started = self.start_as(req, Registry::Current, None).await?;
        if !started.existing {
            let target = Target {
                workflow: &started.run.workflow,
                run_id: Some(&started.run.id),
                ..Target::default()
            };
            self.audit_action(AuditAction::Start, by, target).await;
        }
        Ok(started)
    }

    /// The params run `run` was started with.
    pub(super) async fn params_of(&self, run: &RunRecord) -> HandlerResult<Value> {
        match &run.params_ref {
            Some(d) => self.load(d).await,
            None => Ok(run.params.clone()),
        }
    }

    /// Makes `def` its workflow's current definition. Starting the current version
    /// again (`braid run` of an unchanged file) reads instead of writing: one read
    /// against two writes of the whole definition.
    /// A definition whose `workflow` steps would make it call itself is refused.
    pub async fn register(&self, def: &Definition) -> HandlerResult<()> {
        self.register_with(def, || self.parse_cached(def))
            .await
            .map(|_| ())
    }

    /// [`Handlers::register`] for `by` (`braid deploy`), noted in the audit trail
    /// when it changed the current version.
    pub async fn deploy(&self, def: &Definition, by: &str) -> HandlerResult<()> {
        if self.register_with(def, || self.parse_cached(def)).await? {
            self.audit_deploy(def, by).await;
        }
        Ok(())
    }

    /// [`Handlers::deploy`] of a definition already parsed into `wf`, as
    /// [`crate::definition`] gives it: a big file is not parsed a second time on the
    /// caller's thread, and its runs find it parsed.
    pub async fn deploy_parsed(
        &self,
        def: &Definition,
        wf: Arc<Workflow>,
        by: &str,
    ) -> HandlerResult<()> {
        if self.register_with(def, || Ok(wf.clone())).await? {
            self.audit_deploy(def, by).await;
        }
        self.keep_parsed(def, wf);
        Ok(())
    }

    async fn audit_deploy(&self, def: &Definition, by: &str) {
        let detail = format!("version {}", def.version);
        let target = Target {
            workflow: &def.workflow,
            detail: Some(&detail),
            ..Target::default()
        };
        self.audit_action(AuditAction::Deploy, by, target).await;
    }

    /// Registers `def`, parsed by `parsed` only when it is not current already;
    /// whether it was not.
    async fn register_with(
        &self,
        def: &Definition,
        parsed: impl FnOnce() -> HandlerResult<Arc<Workflow>>,
    ) -> HandlerResult<bool> {
        match self.ports.store.current_definition(&def.workflow).await {
            Ok(current) if current.version == def.version => Ok(false),
            Ok(_) | Err(PortError::NotFound(_)) => {
                self.check_no_cycle(&*parsed()?).await?;
                self.ports.store.put_definition(def).await?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps the definition of an ad-hoc run: registers it when its workflow is not
    /// registered, else stores its version beside the registered one.
    async fn keep_ad_hoc(&self, def: &Definition) -> HandlerResult<()> {
        match self.ports.store.current_definition(&def.workflow).await {
            Ok(current) if current.version == def.version => Ok(()),
            Ok(_) => Ok(self.ports.store.put_version(def).await?),
            Err(PortError::NotFound(_)) => self.register(def).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Takes `workflow` out of the registry: its triggers stop at once (its webhook
    /// path answers 404, its schedules, events and uploads start nothing) and it can
    /// no longer be started by name; runs in flight finish on the version they started
    /// with, and its history stays readable. Not registered: not found.
    /// `by` is noted in the audit trail.
    pub async fn undeploy(&self, workflow: &str, by: &str) -> HandlerResult<()> {
        if !self.ports.store.remove_definition(workflow).await? {
            return Err(
                PortError::NotFound(format!("workflow `{workflow}` is not registered")).into(),
            );
        }
        let target = Target {
            workflow,
            ..Target::default()
        };
        self.audit_action(AuditAction::Undeploy, by, target).await;
        Ok(())
    }

    /// Starts an ad-hoc run of a definition from a file, registered only when its
    /// workflow is not yet (see [`Registry::AdHoc`]). Bad input is rejected before
    /// anything is written.
    pub async fn start(&self, req: StartRequest) -> HandlerResult<Started> {
        self.start_as(req, Registry::AdHoc, None).await
    }

    /// Starts a run; `registry` says whether its definition is to be registered.
    /// `parent` is the step of another run that starts this one as its child.
    pub(super) async fn start_as(
        &self,
        req: StartRequest,
        registry: Registry,
        parent: Option<ParentRef>,
    ) -> HandlerResult<Started> {
        let wf = self.parse_cached(&req.definition)?;
        let params = params::resolve(&wf, &req.input).map_err(|problems| {
            HandlerError::Invalid(format!(
                "invalid input for workflow `{}`: {}",
                wf.name,
                problems.join("; ")
            ))
        })?;
        if req
            .idempotency_key
            .as_deref()
            .is_some_and(|k| k.trim().is_empty())
        {
            return Err(HandlerError::Invalid(
                "the idempotency key is empty; give a key, or none".into(),
            ));
        }
        let now = self.now();
        if registry == Registry::AdHoc {
            self.keep_ad_hoc(&req.definition).await?;
        }
        let asked = params.clone();
        let mut plan = start::plan(
            &wf,
            start::StartInfo {
                run_id: self.ports.ids.run_id(now),
                version: req.definition.version.clone(),
                params,
                trigger: req.trigger,
                idempotency_key: req.idempotency_key.map(bounded_key),
                limit: wf.concurrency.or(req.queue.then_some(1)),
            },
            now,
        );
        plan.run.parent = parent;
        self.keep_input(&mut plan.run).await?;
        if let Created::Existing(run) = self.ports.store.create_run(&plan.run, &plan.steps).await? {
            // A key names one start: the same key with another input is a mistake to
            // report, not a start to answer with a run of other input. (A child's key
            // names its parent's attempt, whose input is the attempt's to render.)
            if plan.run.parent.is_none() && self.params_of(&run).await? != asked {
                return Err(PortError::Conflict(format!(
                    "idempotency key `{}` was used by run {} of `{}` with another input",
                    run.idempotency_key.as_deref().unwrap_or_default(),
                    run.id,
                    run.workflow
                ))
                .into());
            }
            return Ok(Started {
                run: *run,
                existing: true,
            });
        }
        Ok(Started {
            run: self.launch(plan, now).await?,
            existing: false,
        })
    }

    /// What follows a new run's records being stored: a queued run waits its turn,
    /// another is sent its first steps and announced. Returns the run as it then is.
    pub(super) async fn launch(&self, plan: RunPlan, now: Timestamp) -> HandlerResult<RunRecord> {
        if plan.run.status == RunStatus::Queued {
            // Behind the runs queued before it: admission goes oldest first.
            self.admit(&plan.run.workflow).await?;
            return Ok(self.ports.store.get_run(&plan.run.id).await?);
        }
        // The records are durable: from here a lost message is re-sent by the sweeper.
        self.send_now(
            plan.dispatch
                .into_iter()
                .map(|m| (m, Duration::ZERO))
                .collect(),
        )
        .await?;
        self.publish(&plan.run, vec![LifecycleEvent::run_started(&plan.run, now)])
            .await;
        Ok(plan.run)
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_IDEMPOTENCY_KEY, bounded_key};

    #[test]
    fn a_key_too_long_for_a_store_key_is_kept_as_its_digest() {
        assert_eq!(bounded_key("k1".into()), "k1");
        let long = "k".repeat(MAX_IDEMPOTENCY_KEY + 1);
        let kept = bounded_key(long.clone());
        assert!(
            kept.starts_with("sha256:") && kept.len() == 7 + 64,
            "{kept}"
        );
        assert_eq!(bounded_key(long), kept, "the same key finds the same run");
        assert_ne!(bounded_key("j".repeat(MAX_IDEMPOTENCY_KEY + 1)), kept);
    }
}
