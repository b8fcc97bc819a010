//! The stack's resources made on the emulator from the template, and the backend's
//! ports over them.
//!
//! Making a stack is idempotent: a resource that exists already (made by an earlier
//! `braid run --backend aws` on the same emulator) is taken as it is, so every run
//! under one stack name shares one table, one set of queues, one bucket and one bus,
//! like the runs of a deployed stack.

use crate::template::{Template, sub_name};
use crate::{EmulatorError, EmulatorResult};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, SseSpecification, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use braid_aws::backend::{AwsClients, settings_from_vars};
use braid_aws::config::AwsConfig;
use braid_handlers::Settings;
use serde_json::Value;
use std::collections::HashMap;

/// The stack name `braid run --backend aws` and `braid dev --backend aws` use.
pub const CLI_STACK: &str = "braid-emulated";

/// One copy of the stack on the emulator.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub config: AwsConfig,
    /// The functions' settings, as the template's parameter defaults give them.
    pub settings: Settings,
    /// Queue URLs by logical id (`ReadyQueue`, `ReadyDeadLetterQueue`, …).
    pub queues: HashMap<String, String>,
    pub clients: AwsClients,
}

impl Stack {
    /// Makes every table, queue, bucket and bus of the built-in template under `name`
    /// (lowercase: it prefixes the bucket's name), taking those that exist already.
    pub async fn ensure(name: &str, clients: AwsClients) -> EmulatorResult<Stack> {
        let template = Template::embedded();
        let bad = EmulatorError::Template;
        let mut names: HashMap<String, String> = HashMap::new();

        for id in template.resources_of("AWS::DynamoDB::Table") {
            let table = format!("{name}-{}", id.to_lowercase());
            ensure_table(
                &clients.dynamodb,
                &table,
                &template.resource(&id)["Properties"],
            )
            .await?;
            names.insert(id, table);
        }

        // Dead-letter queues first: the others' redrive policies name them.
        let mut queue_ids = template.resources_of("AWS::SQS::Queue");
        queue_ids
            .sort_by_key(|id| template.resource(id)["Properties"]["RedrivePolicy"].is_object());
        let mut queues = HashMap::new();
        let mut arns = HashMap::new();
        for id in queue_ids {
            let props = &template.resource(&id)["Properties"];
            let qname = sub_name(&props["QueueName"], name).map_err(bad)?;
            let url = ensure_queue(&clients.sqs, &qname, props, &arns).await?;
            arns.insert(id.clone(), queue_arn(&clients.sqs, &url).await?);
            names.insert(id.clone(), url.clone());
            queues.insert(id, url);
        }

        for id in template.resources_of("AWS::S3::Bucket") {
            let bucket = format!("{name}-{}", id.to_lowercase());
            let made = clients.s3.create_bucket().bucket(&bucket).send().await;
            if let Err(e) = made
                && !matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                )
            {
                return Err(EmulatorError::aws(format!("create bucket `{bucket}`"), &e));
            }
            names.insert(id, bucket);
        }

        for id in template.resources_of("AWS::Events::EventBus") {
            let props = &template.resource(&id)["Properties"];
            let bus = sub_name(&props["Name"], name).map_err(bad)?;
            let made = clients
                .eventbridge
                .create_event_bus()
                .name(&bus)
                .send()
                .await;
            if let Err(e) = made
                && e.code() != Some("ResourceAlreadyExistsException")
            {
                return Err(EmulatorError::aws(format!("create event bus `{bus}`"), &e));
            }
            names.insert(id, bus);
        }

        // The functions' environment, resolved as CloudFormation would resolve it, read
        // back by the same code the functions use.
        let mut vars = HashMap::new();
        for (var, id) in template.function_environment().map_err(bad)? {
            // A resource made here, or a parameter at its default.
            let value = names
                .get(&id)
                .cloned()
                .or_else(|| template.parameter_default(&id))
                .ok_or_else(|| bad(format!("sets {var} to `{id}`, which is not made here")))?;
            vars.insert(var, value);
        }
        Ok(Stack {
            name: name.to_string(),
            config: AwsConfig::from_vars(&vars)
                .map_err(|e| bad(format!("leaves a variable unset: {e}")))?,
            settings: settings_from_vars(&vars)?,
            queues,
            clients,
        })
    }

    /// The backend's ports over this stack with every adapter, as the functions build
    /// them.
    pub fn ports(&self) -> EmulatorResult<braid_handlers::Ports> {
        Ok(braid_aws::backend::aws_ports(&self.config, &self.clients)?)
    }

    /// Messages waiting in queue `logical_id` (approximate, as SQS counts).
    pub async fn depth(&self, logical_id: &str) -> EmulatorResult<u64> {
        let attrs = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(self.queue(logical_id))
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| EmulatorError::aws(format!("read the depth of {logical_id}"), &e))?
            .attributes
            .unwrap_or_default();
        Ok(attrs
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// The URL of queue `logical_id`, one the template declares.
    pub fn queue(&self, logical_id: &str) -> &str {
        self.queues
            .get(logical_id)
            .unwrap_or_else(|| panic!("the template declares no queue `{logical_id}`"))
    }
}

/// Creates queue `name` with the template's attributes; one made earlier is taken as
/// it is, whatever its attributes.
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    props: &Value,
    arns: &HashMap<String, String>,
) -> EmulatorResult<String> {
    let mut req = sqs.create_queue().queue_name(name);
    for (key, attr) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        (
            "MessageRetentionPeriod",
            QueueAttributeName::MessageRetentionPeriod,
        ),
        (
            "SqsManagedSseEnabled",
            QueueAttributeName::SqsManagedSseEnabled,
        ),
    ] {
        if let Some(v) = props.get(key) {
            req = req.attributes(attr, scalar(v));
        }
    }
    if let Some(redrive) = props.get("RedrivePolicy") {
        let dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            .as_str()
            .and_then(|id| arns.get(id))
            .ok_or_else(|| {
                EmulatorError::Template(format!(
                    "gives queue `{name}` a redrive policy to no queue of the stack"
                ))
            })?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq,
            "maxReceiveCount": redrive["maxReceiveCount"],
        });
        req = req.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let url = match req.send().await {
        Ok(made) => made.queue_url,
        // SQS returns an existing queue's URL when the attributes agree, and this
        // error when they do not (a stack made by another version of the template).
        Err(e) if e.code() == Some("QueueAlreadyExists") => {
            sqs.get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| EmulatorError::aws(format!("find queue `{name}`"), &e))?
                .queue_url
        }
        Err(e) => return Err(EmulatorError::aws(format!("create queue `{name}`"), &e)),
    };
    url.ok_or_else(|| EmulatorError::Aws {
        action: format!("create queue `{name}`"),
        detail: "the answer has no queue URL".into(),
    })
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> EmulatorResult<String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| EmulatorError::aws(format!("read the ARN of queue {url}"), &e))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| EmulatorError::Aws {
            action: format!("read the ARN of queue {url}"),
            detail: "the answer has no QueueArn".into(),
        })
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn text<'a>(v: &'a Value, what: &str) -> EmulatorResult<&'a str> {
    v.as_str()
        .ok_or_else(|| EmulatorError::Template(format!("gives the table no {what}")))
}

fn key_schema(v: &Value) -> EmulatorResult<Vec<KeySchemaElement>> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(text(&k["AttributeName"], "key attribute name")?)
                .key_type(KeyType::from(text(&k["KeyType"], "key type")?))
                .build()
                .map_err(|e| EmulatorError::Template(format!("has a bad key schema: {e}")))
        })
        .collect()
}

/// Creates table `name` as `props` (the template's properties) say; one made earlier
/// is taken as it is.
async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    props: &Value,
) -> EmulatorResult<()> {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(text(
            &props["BillingMode"],
            "BillingMode",
        )?))
        .set_key_schema(Some(key_schema(&props["KeySchema"])?))
        .sse_specification(
            SseSpecification::builder()
                .enabled(props["SSESpecification"]["SSEEnabled"] == true)
                .build(),
        );
    for a in props["AttributeDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(text(&a["AttributeName"], "attribute name")?)
                .attribute_type(ScalarAttributeType::from(text(
                    &a["AttributeType"],
                    "attribute type",
                )?))
                .build()
                .map_err(|e| EmulatorError::Template(format!("has a bad attribute: {e}")))?,
        );
    }
    for g in props["GlobalSecondaryIndexes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(text(&g["IndexName"], "index name")?)
                .set_key_schema(Some(key_schema(&g["KeySchema"])?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(text(
                            &g["Projection"]["ProjectionType"],
                            "index projection",
                        )?))
                        .build(),
                )
                .build()
                .map_err(|e| EmulatorError::Template(format!("has a bad index: {e}")))?,
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(EmulatorError::aws(format!("create table `{name}`"), &e)),
    }
    let ttl = &props["TimeToLiveSpecification"];
    if let Some(attribute) = ttl["AttributeName"].as_str() {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(ttl["Enabled"] == true)
                    .build()
                    .map_err(|e| EmulatorError::Template(format!("has a bad TTL: {e}")))?,
            )
            .send()
            .await
            .map_err(|e| EmulatorError::aws(format!("enable TTL on table `{name}`"), &e))?;
    }
    Ok(())
}
