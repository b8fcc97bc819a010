//! The stack's resources made on the emulator from the template, uniquely named per
//! test, and the backend's clients over them (counting every request).

use crate::requests::RequestCounter;
use crate::template::{Template, sub_name};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, SseSpecification, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use braid_aws::backend::{AwsClients, settings_from_vars};
use braid_aws::config::AwsConfig;
use serde_json::Value;
use std::collections::HashMap;

/// The emulator's endpoint; the suite refuses to run without one.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("set AWS_ENDPOINT_URL to an AWS emulator (./scripts/test starts one)")
    })
}

/// The SDK configuration for the emulator (dummy credentials unless set).
pub async fn sdk() -> aws_config::SdkConfig {
    endpoint();
    let var = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.to_string());
    let creds = aws_sdk_dynamodb::config::Credentials::new(
        var("AWS_ACCESS_KEY_ID", "test"),
        var("AWS_SECRET_ACCESS_KEY", "test"),
        None,
        None,
        "emulator",
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(var("AWS_REGION", "us-east-1")))
        .credentials_provider(creds)
        .load()
        .await
}

/// One copy of the stack on the emulator.
pub struct Stack {
    pub name: String,
    pub config: AwsConfig,
    /// Queue URLs by logical id (`ReadyQueue`, `ReadyDeadLetterQueue`, …).
    pub queues: HashMap<String, String>,
    pub clients: AwsClients,
    pub requests: RequestCounter,
}

impl Stack {
    /// Makes every table, queue, bucket and bus of the template under a fresh name.
    pub async fn create(tag: &str) -> Stack {
        let sdk = sdk().await;
        let requests = RequestCounter::default();
        let clients = requests.clients(&sdk);
        let template = Template::load();
        // Unique across tests and processes sharing one emulator; lowercase for S3.
        let name = format!(
            "braid-{tag}-{}",
            &ulid::Ulid::generate().to_string().to_lowercase()[16..]
        );
        let mut names: HashMap<String, String> = HashMap::new();

        for id in template.resources_of("AWS::DynamoDB::Table") {
            let table = format!("{name}-{}", id.to_lowercase());
            create_table(
                &clients.dynamodb,
                &table,
                &template.resource(&id)["Properties"],
            )
            .await;
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
            let qname = sub_name(&props["QueueName"], &name);
            let mut req = clients.sqs.create_queue().queue_name(&qname);
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
                    .expect("a redrive policy targets a queue of the stack");
                let policy = serde_json::json!({
                    "deadLetterTargetArn": arns.get(dlq).expect("dead-letter queue made first"),
                    "maxReceiveCount": redrive["maxReceiveCount"],
                });
                req = req.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
            }
            let url = req.send().await.expect("create queue").queue_url.unwrap();
            let arn = clients
                .sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .expect("queue attributes")
                .attributes
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .expect("queue arn");
            arns.insert(id.clone(), arn);
            names.insert(id.clone(), url.clone());
            queues.insert(id, url);
        }

        for id in template.resources_of("AWS::S3::Bucket") {
            let bucket = format!("{name}-{}", id.to_lowercase());
            clients
                .s3
                .create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .expect("create bucket");
            names.insert(id, bucket);
        }

        for id in template.resources_of("AWS::Events::EventBus") {
            let props = &template.resource(&id)["Properties"];
            let bus = sub_name(&props["Name"], &name);
            clients
                .eventbridge
                .create_event_bus()
                .name(&bus)
                .send()
                .await
                .expect("create event bus");
            names.insert(id, bus);
        }

        // The functions' environment, resolved as CloudFormation would resolve it, read
        // back by the same code the functions use.
        let vars: HashMap<String, String> = template
            .function_environment()
            .into_iter()
            .map(|(var, id)| {
                // A resource made here, or a parameter at its default.
                let value = names
                    .get(&id)
                    .cloned()
                    .or_else(|| template.parameter_default(&id))
                    .unwrap_or_else(|| panic!("{var} refers to `{id}`, not made here"));
                (var, value)
            })
            .collect();
        let config = AwsConfig::from_vars(&vars).expect("the template sets every variable");
        settings_from_vars(&vars).expect("the template's settings are valid");
        Stack {
            name,
            config,
            queues,
            clients,
            requests,
        }
    }

    /// The backend's ports over this stack, as the functions build them.
    pub fn ports(&self) -> braid_handlers::Ports {
        braid_aws::backend::aws_ports(&self.config, &self.clients).expect("ports")
    }

    /// Messages waiting in queue `logical_id` (approximate, as SQS counts).
    pub async fn depth(&self, logical_id: &str) -> u64 {
        let attrs = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(self.queue(logical_id))
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        attrs
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    pub fn queue(&self, logical_id: &str) -> &str {
        self.queues
            .get(logical_id)
            .unwrap_or_else(|| panic!("no queue `{logical_id}`"))
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn key_schema(v: &Value) -> Vec<KeySchemaElement> {
    v.as_array()
        .expect("KeySchema is a list")
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(k["AttributeName"].as_str().unwrap())
                .key_type(KeyType::from(k["KeyType"].as_str().unwrap()))
                .build()
                .unwrap()
        })
        .collect()
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, props: &Value) {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(
            props["BillingMode"].as_str().expect("BillingMode"),
        ))
        .set_key_schema(Some(key_schema(&props["KeySchema"])))
        .sse_specification(
            SseSpecification::builder()
                .enabled(props["SSESpecification"]["SSEEnabled"] == true)
                .build(),
        );
    for a in props["AttributeDefinitions"]
        .as_array()
        .expect("attributes")
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap())
                .attribute_type(ScalarAttributeType::from(
                    a["AttributeType"].as_str().unwrap(),
                ))
                .build()
                .unwrap(),
        );
    }
    for g in props["GlobalSecondaryIndexes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(g["IndexName"].as_str().unwrap())
                .set_key_schema(Some(key_schema(&g["KeySchema"])))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            g["Projection"]["ProjectionType"].as_str().unwrap(),
                        ))
                        .build(),
                )
                .build()
                .unwrap(),
        );
    }
    req.send().await.expect("create table");
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
                    .unwrap(),
            )
            .send()
            .await
            .expect("enable TTL");
    }
}
