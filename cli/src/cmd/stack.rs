//! Which deployed stack a command operates: `--stack NAME` looks up the resources in the
//! CloudFormation stack's outputs; the per-resource flags name them directly, and win over
//! the outputs (for a stack deployed without CloudFormation, or one resource elsewhere).
//!
//! The CLI works on the stack's resources with the caller's AWS credentials through the
//! SDK, the same adapters the functions use; credentials, region and endpoint
//! (`AWS_ENDPOINT_URL` for an emulator) come from the environment as the SDK reads them.

use super::invoke_scope::InvokeScope;
use anyhow::{Context, bail};
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};
use braid_aws::backend::{AwsClients, aws_handlers, aws_ports};
use braid_aws::config::AwsConfig;
use braid_aws::logs::CloudWatchOutput;
use braid_aws::sdk::sdk_from_env;
use braid_handlers::Handlers;
use std::collections::HashMap;
use std::sync::Arc;

/// `--stack` and the per-resource flags.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Deployed stack")]
pub struct StackArgs {
    /// The deployed CloudFormation stack to operate (its outputs name the resources).
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// The DynamoDB table (instead of the stack's `TableName` output).
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// The "ready" queue (instead of the stack's `ReadyQueueUrl` output).
    #[arg(long, value_name = "URL")]
    pub ready_queue_url: Option<String>,
    /// The "result" queue (instead of the stack's `ResultQueueUrl` output).
    #[arg(long, value_name = "URL")]
    pub result_queue_url: Option<String>,
    /// The lifecycle event queue (instead of the stack's `EventQueueUrl` output).
    #[arg(long, value_name = "URL")]
    pub event_queue_url: Option<String>,
    /// The payload bucket (instead of the stack's `PayloadBucketName` output).
    #[arg(long, value_name = "NAME")]
    pub bucket: Option<String>,
    /// The EventBridge bus (instead of the stack's `EventBusName` output).
    #[arg(long, value_name = "NAME")]
    pub event_bus: Option<String>,
}

/// Each resource: its flag's value, the flag, and the stack output naming it.
type Resource<'a> = (&'a Option<String>, &'static str, &'static str);

impl StackArgs {
    /// Whether a stack was named at all (else `runs` and `show` read the local state).
    pub fn is_set(&self) -> bool {
        self.stack.is_some() || self.resources().iter().any(|(v, _, _)| v.is_some())
    }

    fn resources(&self) -> [Resource<'_>; 6] {
        [
            (&self.table, "--table", "TableName"),
            (&self.ready_queue_url, "--ready-queue-url", "ReadyQueueUrl"),
            (
                &self.result_queue_url,
                "--result-queue-url",
                "ResultQueueUrl",
            ),
            (&self.event_queue_url, "--event-queue-url", "EventQueueUrl"),
            (&self.bucket, "--bucket", "PayloadBucketName"),
            (&self.event_bus, "--event-bus", "EventBusName"),
        ]
    }

    /// Where the runs live, for messages: the stack, else the table.
    pub fn place(&self) -> String {
        match (&self.stack, &self.table) {
            (Some(stack), _) => format!("stack `{stack}`"),
            (None, Some(table)) => format!("table `{table}`"),
            (None, None) => "the stack".into(),
        }
    }

    /// The resources from the flags, each one not given taken from `outputs`; every
    /// resource named by neither is listed at once.
    fn resolve(&self, outputs: &HashMap<String, String>) -> anyhow::Result<AwsConfig> {
        let mut missing = Vec::new();
        let mut take = |(value, flag, output): Resource| {
            value
                .clone()
                .or_else(|| outputs.get(output).cloned())
                .unwrap_or_else(|| {
                    missing.push((flag, output));
                    String::new()
                })
        };
        let [table, ready, result, events, bucket, bus] = self.resources();
        let config = AwsConfig {
            table: take(table),
            ready_queue_url: take(ready),
            result_queue_url: take(result),
            event_queue_url: take(events),
            bucket: take(bucket),
            event_bus: take(bus),
        };
        if missing.is_empty() {
            return Ok(config);
        }
        let list = |f: fn(&(&'static str, &'static str)) -> &'static str| {
            missing.iter().map(f).collect::<Vec<_>>().join(", ")
        };
        match &self.stack {
            Some(stack) => bail!(
                "stack `{stack}` has no output {}: is it a Braid stack? (or pass {})",
                list(|m| m.1),
                list(|m| m.0)
            ),
            None => bail!("no stack named: pass --stack NAME, or {}", list(|m| m.0)),
        }
    }

    /// The handlers over the stack's resources, as the functions build them, and what
    /// its dispatcher may invoke when its outputs say.
    pub async fn open(&self) -> anyhow::Result<(Handlers, Option<InvokeScope>)> {
        let sdk = sdk_from_env().await;
        let all_flags = self.resources().iter().all(|(v, _, _)| v.is_some());
        let outputs = match &self.stack {
            Some(name) if !all_flags => {
                let region = sdk
                    .region()
                    .map_or("the default region".into(), |r| r.to_string());
                let client = aws_sdk_cloudformation::Client::new(&sdk);
                stack_outputs(&client, name, &region).await?
            }
            _ => HashMap::new(),
        };
        let config = self.resolve(&outputs)?;
        let mut ports = aws_ports(&config, &AwsClients::new(&sdk))?;
        ports.traces = crate::cmd::local::traces_from_env()?;
        if let Some(group) = self.dispatcher_log_group(&outputs) {
            let client = aws_sdk_cloudwatchlogs::Client::new(&sdk);
            ports.output = Arc::new(CloudWatchOutput::new(client, group));
        }
        Ok((aws_handlers(ports), InvokeScope::from_outputs(&outputs)))
    }

    /// The step dispatcher's log group (`braid logs`): the stack's output, else the
    /// template's name for it; none for resources named by flags alone.
    fn dispatcher_log_group(&self, outputs: &HashMap<String, String>) -> Option<String> {
        outputs
            .get("StepDispatcherLogGroupName")
            .cloned()
            .or_else(|| {
                Some(format!(
                    "/aws/lambda/{}-step-dispatcher",
                    self.stack.as_ref()?
                ))
            })
    }
}

/// Who the AWS credentials in use are (their IAM principal's ARN), as the audit
/// trail names whoever acts through them.
pub async fn caller_arn() -> anyhow::Result<String> {
    let sdk = sdk_from_env().await;
    let me = aws_sdk_sts::Client::new(&sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .context("cannot tell who the AWS credentials are (sts:GetCallerIdentity)")?;
    me.arn()
        .map(str::to_string)
        .context("sts:GetCallerIdentity gave no ARN")
}

/// The outputs of CloudFormation stack `name`, by key.
async fn stack_outputs(
    client: &aws_sdk_cloudformation::Client,
    name: &str,
    region: &str,
) -> anyhow::Result<HashMap<String, String>> {
    let described = client.describe_stacks().stack_name(name).send().await;
    let described = match described {
        Ok(d) => d,
        // CloudFormation answers a missing stack with a `ValidationError`.
        Err(e) if e.code() == Some("ValidationError") => bail!(
            "no stack `{name}` in {region}: {}",
            e.message().unwrap_or("it does not exist")
        ),
        Err(e) => {
            return Err(anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                .with_context(|| format!("cannot describe stack `{name}` in {region}"));
        }
    };
    let stack = described
        .stacks()
        .first()
        .with_context(|| format!("no stack `{name}` in {region}"))?;
    Ok(stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs() -> HashMap<String, String> {
        [
            ("TableName", "t"),
            ("ReadyQueueUrl", "r"),
            ("ResultQueueUrl", "s"),
            ("EventQueueUrl", "e"),
            ("PayloadBucketName", "b"),
            ("EventBusName", "bus"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn a_flag_wins_over_the_stack_output() {
        let args = StackArgs {
            stack: Some("prod".into()),
            bucket: Some("elsewhere".into()),
            ..Default::default()
        };
        let cfg = args.resolve(&outputs()).unwrap();
        assert_eq!(cfg.table, "t");
        assert_eq!(cfg.bucket, "elsewhere");
        assert_eq!(cfg.event_bus, "bus");
    }

    #[test]
    fn every_missing_output_is_named_with_its_flag() {
        let mut partial = outputs();
        partial.remove("TableName");
        partial.remove("EventBusName");
        let args = StackArgs {
            stack: Some("prod".into()),
            ..Default::default()
        };
        let err = args.resolve(&partial).unwrap_err().to_string();
        assert_eq!(
            err,
            "stack `prod` has no output TableName, EventBusName: is it a Braid stack? \
             (or pass --table, --event-bus)"
        );
    }

    #[test]
    fn flags_without_a_stack_must_name_every_resource() {
        let args = StackArgs {
            table: Some("t".into()),
            ..Default::default()
        };
        assert!(args.is_set());
        let err = args.resolve(&HashMap::new()).unwrap_err().to_string();
        assert!(
            err.starts_with("no stack named: pass --stack NAME, or --ready-queue-url,"),
            "{err}"
        );
    }

    #[test]
    fn no_stack_and_no_flag_means_the_local_state() {
        assert!(!StackArgs::default().is_set());
    }
}
