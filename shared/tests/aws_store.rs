//! The state store conformance suite, and checks of DynamoDB's own limits, against
//! the DynamoDB adapter on an AWS emulator (`AWS_ENDPOINT_URL`).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use braid::aws::store::{self as ds, DynamoStore};
use braid::model::{FanOut, RunRecord, RunStatus, StepKey, StepRecord, StepStatus};
use braid::ports::{Created, Guard, StateStore};
use std::sync::Arc;

async fn client() -> Client {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "set AWS_ENDPOINT_URL to an AWS emulator (./scripts/test starts one)"
    );
    let cfg = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Client::new(&cfg)
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

fn gsi(name: &str, pk: &str, sk: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash))
        .key_schema(key(sk, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .unwrap()
}

/// Creates a fresh table with the stack's schema and returns its name.
async fn create_table(client: &Client) -> String {
    let name = format!(
        "braid-test-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let mut req = client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(ds::PK, KeyType::Hash))
        .key_schema(key(ds::SK, KeyType::Range))
        .global_secondary_indexes(gsi(ds::BY_WORKFLOW, ds::WF_PK, ds::WF_SK))
        .global_secondary_indexes(gsi(ds::ALL_RUNS, ds::ALL_PK, ds::ALL_SK))
        .global_secondary_indexes(gsi(ds::ACTIVE_RUNS, ds::ACTIVE_PK, ds::ACTIVE_SK));
    for attr in [
        ds::PK,
        ds::SK,
        ds::WF_PK,
        ds::WF_SK,
        ds::ALL_PK,
        ds::ALL_SK,
        ds::ACTIVE_PK,
        ds::ACTIVE_SK,
    ] {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        );
    }
    req.send().await.expect("create table");
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(ds::TTL)
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enable TTL");
    name
}

async fn store() -> DynamoStore {
    let client = client().await;
    let table = create_table(&client).await;
    DynamoStore::new(client, table)
}

fn run(id: &str, open: u32) -> RunRecord {
    RunRecord {
        id: id.to_string(),
        workflow: "big".into(),
        version: "v1".into(),
        status: RunStatus::Running,
        params: serde_json::json!({"ratio": 1.0}),
        trigger: serde_json::Value::Null,
        created_at: chrono::Utc::now(),
        finished_at: None,
        deadline: None,
        failing: false,
        open_steps: open,
        output: None,
        error: None,
        idempotency_key: None,
    }
}

fn fresh(tag: &str) -> String {
    format!(
        "{tag}-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    )
}

#[tokio::test]
async fn dynamo_store_passes_the_conformance_suite() {
    braid::testkit::store::run_all(Arc::new(store().await)).await;
}

#[tokio::test]
async fn a_run_with_more_steps_than_a_transaction_holds_is_created_intact() {
    let store = store().await;
    let r = run(&fresh("wide"), 150);
    let steps: Vec<StepRecord> = (0..150)
        .map(|i| {
            StepRecord::new(
                &r.id,
                StepKey::step(&format!("s{i:03}")),
                StepStatus::Pending,
            )
        })
        .collect();
    assert_eq!(store.create_run(&r, &steps).await.unwrap(), Created::New);
    assert_eq!(store.get_run(&r.id).await.unwrap(), r);
    let listed = store.list_steps(&r.id).await.unwrap();
    assert_eq!(listed, steps);
    // A retry of the same start finds the run and changes nothing.
    assert!(store.create_run(&r, &steps).await.is_err());
}

#[tokio::test]
async fn a_thousand_iterations_expand_and_launch_in_chunks() {
    let store = store().await;
    let r = run(&fresh("fan"), 1);
    let f = StepRecord::new(&r.id, StepKey::step("f"), StepStatus::Running);
    store
        .create_run(&r, std::slice::from_ref(&f))
        .await
        .unwrap();
    let parent = StepRecord {
        fan_out: Some(FanOut {
            total: 1000,
            ..FanOut::default()
        }),
        ..f.clone()
    };
    let iterations: Vec<StepRecord> = (0..1000)
        .map(|i| StepRecord::new(&r.id, StepKey::iteration("f", i), StepStatus::Pending))
        .collect();
    let guard = Guard::status(&[StepStatus::Running]);
    assert!(store.expand(&guard, &parent, &iterations).await.unwrap());
    let listed = store.list_iterations(&r.id, "f").await.unwrap();
    assert_eq!(listed.len(), 1000);
    assert!(
        listed
            .iter()
            .enumerate()
            .all(|(i, it)| it.key.index == Some(i as u32))
    );
    let now = chrono::Utc::now();
    let launched = store.launch_iterations(&r.id, "f", 250, now).await.unwrap();
    assert_eq!(launched, (0..250).collect::<Vec<u32>>());
    let p = store.get_step(&r.id, &StepKey::step("f")).await.unwrap();
    assert_eq!(p.fan_out.unwrap().launched, 250);
    let it = store
        .get_step(&r.id, &StepKey::iteration("f", 249))
        .await
        .unwrap();
    assert_eq!((it.status, it.due_at), (StepStatus::Ready, Some(now)));
    let next = store
        .get_step(&r.id, &StepKey::iteration("f", 250))
        .await
        .unwrap();
    assert_eq!(next.status, StepStatus::Pending);
}

#[tokio::test]
async fn finished_runs_leave_the_active_index_and_expire() {
    let store = store().await;
    let mut r = run(&fresh("ttl"), 1);
    r.idempotency_key = Some("k".into());
    let a = StepRecord::new(&r.id, StepKey::step("a"), StepStatus::Ready);
    store
        .create_run(&r, std::slice::from_ref(&a))
        .await
        .unwrap();
    let active = store.active_runs(None, 100).await.unwrap();
    assert_eq!(
        active.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [r.id.as_str()]
    );
    let done = RunRecord {
        status: RunStatus::Succeeded,
        finished_at: Some(chrono::Utc::now()),
        ..r.clone()
    };
    assert!(store.finish_run(&done).await.unwrap());
    assert!(store.active_runs(None, 100).await.unwrap().is_empty());
    let all = store.list_runs(&Default::default()).await.unwrap();
    assert_eq!(all[0].status, RunStatus::Succeeded);
}
