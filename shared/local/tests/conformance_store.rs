//! The state store conformance suite against the embedded SQLite adapter.

use braid_local::store::SqliteStore;
use std::sync::Arc;

#[tokio::test]
async fn sqlite_store_passes_the_state_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("state.db")).unwrap());
    braid_ports::testkit::store::run_all(store).await;
}

#[tokio::test]
async fn sqlite_store_keeps_runs_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    braid_ports::testkit::store::created_run_and_steps_read_back(
        &SqliteStore::open(&path).unwrap(),
    )
    .await;
    let reopened = SqliteStore::open(&path).unwrap();
    let runs = braid_ports::StateStore::list_runs(&reopened, &Default::default())
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
}
