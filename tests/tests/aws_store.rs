//! The state store conformance suite, and checks of DynamoDB's own limits, against
//! the DynamoDB adapter on an AWS emulator (`AWS_ENDPOINT_URL`), each on a table made
//! from the stack's template.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use braid_aws::store::{self as ds, DynamoStore};
use braid_e2e::stack::TestStack;
use braid_engine::model::{
    ErrorInfo, FanOut, RunRecord, RunStatus, StepKey, StepRecord, StepStatus,
};
use braid_ports::{Created, Guard, StateStore};
use std::sync::Arc;

/// A fresh copy of the stack's table, made from the template.
async fn table() -> (Client, String) {
    let stack = TestStack::create("store").await;
    (stack.clients.dynamodb.clone(), stack.config.table.clone())
}

async fn store() -> DynamoStore {
    let (client, table) = table().await;
    DynamoStore::new(client, table)
}

fn run(id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        workflow: "big".into(),
        version: "v1".into(),
        status: RunStatus::Running,
        params: serde_json::json!({"ratio": 1.0}),
        trigger: serde_json::Value::Null,
        params_ref: None,
        trigger_ref: None,
        created_at: chrono::Utc::now(),
        finished_at: None,
        deadline: None,
        failing: false,
        output: None,
        error: None,
        idempotency_key: None,
        limit: None,
        slot: false,
        closing: false,
        parent: None,
        cancel: None,
        redrives: Vec::new(),
        forked_from: None,
        notices: Vec::new(),
        sla_due: None,
        sla_missed: Vec::new(),
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
    braid_ports::testkit::store::run_all(Arc::new(store().await)).await;
}

#[tokio::test]
async fn a_run_with_more_steps_than_a_transaction_holds_is_created_intact() {
    let store = store().await;
    let r = run(&fresh("wide"));
    let steps: Vec<StepRecord> = (0..150)
        .map(|i| {
            StepRecord::new(
                &r.id,
                StepKey::step(format!("s{i:03}")),
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
async fn iterations_list_in_index_order_whatever_order_they_were_written_in() {
    let store = store().await;
    let r = run(&fresh("fan"));
    let f = StepRecord::new(&r.id, StepKey::step("f"), StepStatus::Running);
    store
        .create_run(&r, std::slice::from_ref(&f))
        .await
        .unwrap();
    let fan_out = FanOut {
        total: 120,
        lanes: 120,
        ..FanOut::default()
    };
    // Written from the last down, across the indexes' changes of width (9 → 10, 99 → 100).
    let first_write = Guard::at(&[StepStatus::Pending], 0);
    futures::future::try_join_all((0..120).rev().map(|i| {
        let claimed = StepRecord {
            status: StepStatus::Running,
            attempt: 1,
            ..fan_out.iteration(&r.id, "f", i)
        };
        let (store, guard) = (&store, &first_write);
        async move { store.update_step(guard, &claimed).await }
    }))
    .await
    .unwrap();
    let listed = store.list_iterations(&r.id, &"f".into()).await.unwrap();
    assert_eq!(listed.len(), 120);
    assert!(
        listed
            .iter()
            .enumerate()
            .all(|(i, it)| it.key.index == Some(i as u32))
    );
}

/// The raw item under `pk`/`sk`, to look at the table's own attributes.
async fn raw(client: &Client, table: &str, pk: &str, sk: &str) -> ds::Item {
    client
        .get_item()
        .table_name(table)
        .key(ds::PK, AttributeValue::S(pk.into()))
        .key(ds::SK, AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("item exists")
}

#[tokio::test]
async fn finished_runs_leave_the_active_index_and_expire() {
    let (client, table) = table().await;
    let store = DynamoStore::new(client.clone(), table.clone());
    let mut r = run(&fresh("ttl"));
    r.idempotency_key = Some("k".into());
    let a = StepRecord::new(&r.id, StepKey::step("a"), StepStatus::Ready);
    store
        .create_run(&r, std::slice::from_ref(&a))
        .await
        .unwrap();
    let run_pk = format!("RUN#{}", r.id);
    assert!(
        !raw(&client, &table, &run_pk, "RUN")
            .await
            .contains_key(ds::TTL)
    );
    let active = store.active_runs(None, 100).await.unwrap();
    assert_eq!(
        active.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [r.id.as_str()]
    );
    let claimed = StepRecord {
        status: StepStatus::Running,
        attempt: 1,
        ..a.clone()
    };
    assert!(
        store
            .update_step(&Guard::at(&[StepStatus::Ready], 0), &claimed)
            .await
            .unwrap()
    );
    let finished_at = chrono::Utc::now();
    let done = RunRecord {
        status: RunStatus::Cancelled,
        finished_at: Some(finished_at),
        ..r.clone()
    };
    assert!(store.finish_run(&done).await.unwrap());
    // The expiry is stamped when what follows the run's end is done.
    store.close_run(&done).await.unwrap();
    assert!(store.active_runs(None, 100).await.unwrap().is_empty());
    let all = store.list_runs(&Default::default()).await.unwrap();
    assert_eq!(all[0].status, RunStatus::Cancelled);
    let expected = (finished_at.timestamp() + ds::RETENTION.as_secs() as i64).to_string();
    let ttl = |item: &ds::Item| match item.get(ds::TTL) {
        Some(AttributeValue::N(n)) => n.clone(),
        other => panic!("no expiry: {other:?}"),
    };
    let run_item = raw(&client, &table, &run_pk, "RUN").await;
    assert_eq!(ttl(&run_item), expected);
    assert!(!run_item.contains_key(ds::ACTIVE_PK) && !run_item.contains_key(ds::ACTIVE_SK));
    assert_eq!(
        ttl(&raw(&client, &table, "IDEM#big#k", "IDEM").await),
        expected
    );
    // The attempt still running reports after the run was cancelled: its record keeps
    // the expiry.
    let late = StepRecord {
        status: StepStatus::Succeeded,
        ..claimed.clone()
    };
    store
        .finalize_step(&Guard::at(&[StepStatus::Running], 1), &late, None)
        .await
        .unwrap()
        .expect("the late result is recorded");
    assert_eq!(
        ttl(&raw(&client, &table, &run_pk, "STEP#a").await),
        expected
    );
}

#[tokio::test]
async fn concurrent_releases_make_a_dependent_ready_once() {
    let store = Arc::new(store().await);
    let r = run(&fresh("join"));
    let j = StepRecord::new(&r.id, StepKey::step("j"), StepStatus::Pending);
    store.create_run(&r, &[j]).await.unwrap();
    let needs: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
    let mut tasks = Vec::new();
    for dep in needs.clone() {
        let (store, id, needs) = (store.clone(), r.id.clone(), needs.clone());
        tasks.push(tokio::spawn(async move {
            // Every release is delivered twice.
            let mut ready = 0;
            for _ in 0..2 {
                let got = store
                    .satisfy(
                        &id,
                        &"j".into(),
                        &dep.as_str().into(),
                        &needs,
                        chrono::Utc::now(),
                    )
                    .await;
                ready += usize::from(got.unwrap().is_some());
            }
            ready
        }));
    }
    let mut ready = 0;
    for t in tasks {
        ready += t.await.unwrap();
    }
    assert_eq!(ready, 1, "exactly one release makes the dependent ready");
    let j = store.get_step(&r.id, &StepKey::step("j")).await.unwrap();
    let mut satisfied = j.satisfied.clone();
    satisfied.sort();
    assert_eq!((j.status, satisfied), (StepStatus::Ready, needs));
}

#[tokio::test]
async fn a_failing_iteration_turns_on_fail_fast_once() {
    let store = store().await;
    let r = run(&fresh("itfail"));
    let f = StepRecord {
        fan_out: Some(FanOut {
            total: 2,
            lanes: 2,
            ..FanOut::default()
        }),
        ..StepRecord::new(&r.id, StepKey::step("f"), StepStatus::Running)
    };
    let its: Vec<StepRecord> = (0..2)
        .map(|i| StepRecord::new(&r.id, StepKey::iteration("f", i), StepStatus::Ready))
        .collect();
    let mut steps = vec![f];
    steps.extend(its.iter().cloned());
    store.create_run(&r, &steps).await.unwrap();
    for (i, msg) in ["first", "second"].into_iter().enumerate() {
        let err = ErrorInfo::new("boom", msg);
        let failed = StepRecord {
            status: StepStatus::Failed,
            error: Some(err.clone()),
            ..its[i].clone()
        };
        let fin = store
            .finalize_step(&Guard::status(&[StepStatus::Ready]), &failed, Some(&err))
            .await
            .unwrap()
            .expect("recorded");
        assert!(fin.run.failing);
        assert_eq!(fin.run.error.unwrap().message, "first");
        let fan = fin.parent.unwrap().fan_out.unwrap();
        assert_eq!(fan.failed, i as u32 + 1);
    }
}

/// In a run that lasts long after some of its steps ended, finishing the run stamps
/// those steps with the run's expiry, so its records go together.
#[tokio::test]
async fn steps_of_a_long_run_expire_with_the_run() {
    let (client, table) = table().await;
    let store = DynamoStore::new(client.clone(), table.clone());
    let r = run(&fresh("long"));
    let early = StepRecord::new(&r.id, StepKey::step("early"), StepStatus::Ready);
    let late = StepRecord::new(&r.id, StepKey::step("late"), StepStatus::Ready);
    store
        .create_run(&r, &[early.clone(), late.clone()])
        .await
        .unwrap();
    let now = chrono::Utc::now();
    for (rec, ended) in [(&early, now - chrono::Duration::days(60)), (&late, now)] {
        let done = StepRecord {
            status: StepStatus::Succeeded,
            finished_at: Some(ended),
            ..rec.clone()
        };
        store
            .finalize_step(&Guard::status(&[StepStatus::Ready]), &done, None)
            .await
            .unwrap()
            .expect("recorded");
    }
    let done = RunRecord {
        status: RunStatus::Succeeded,
        finished_at: Some(now),
        ..r.clone()
    };
    assert!(store.finish_run(&done).await.unwrap());
    store.close_run(&done).await.unwrap();
    let ttl = |item: ds::Item| match item.get(ds::TTL) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().unwrap(),
        other => panic!("no expiry: {other:?}"),
    };
    let pk = format!("RUN#{}", r.id);
    let run_expiry = ttl(raw(&client, &table, &pk, "RUN").await);
    assert_eq!(
        ttl(raw(&client, &table, &pk, "STEP#early").await),
        run_expiry
    );
    assert!(
        ttl(raw(&client, &table, &pk, "STEP#late").await) > run_expiry,
        "a step ending with the run keeps its own, later expiry"
    );
}

/// What DynamoDB itself refuses (here an item over 400 KB that is not a record, which
/// the port's own size check does not see) is a permanent error, not a retryable one:
/// retrying the same write would fail the same way forever.
#[tokio::test]
async fn dynamodb_validation_errors_are_permanent() {
    let store = store().await;
    let e = store
        .set_marker(&fresh("marker"), Some(&"x".repeat(500 * 1024)))
        .await
        .expect_err("DynamoDB refuses an item over 400 KB");
    assert!(e.is_permanent(), "{e}");
}
