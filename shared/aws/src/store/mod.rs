//! The state store in one DynamoDB table.
//!
//! # Items
//!
//! | item | `pk` | `sk` | holds |
//! |---|---|---|---|
//! | definition | `WF#<workflow>` | `V#<version>` | the [`Definition`]; never expires |
//! | current definition | `REGISTRY` | `<workflow>` | a copy of the current [`Definition`]: the registry |
//! | run | `RUN#<id>` | `RUN` | the [`RunRecord`], plus the three index key pairs |
//! | step | `RUN#<id>` | `STEP#<step>` | the [`StepRecord`] |
//! | iteration | `RUN#<id>` | `STEP#<step>#<index, 10 digits>` | the [`StepRecord`] |
//! | idempotency key | `IDEM#<workflow>#<key>` | `IDEM` | `run_id` of the run it started |
//! | marker | `MARKER` | `<name>` | `value`: the sweep cursor, schedules' progress |
//! | slots | `SLOTS#<workflow>` | `SLOTS` | `held`: slots its runs hold (`concurrency`) |
//!
//! A record's fields are top-level attributes (mapped with serde_dynamo), so conditions
//! and updates can name `status`, `attempt`, `satisfied`, `fan_out.ended`,
//! `failing`… Fields holding user data (`params`, `trigger`, `output`,
//! `item`) are JSON text, which keeps them exactly as written (DynamoDB would normalise
//! their numbers). Step ids are `[a-z0-9_-]`, so `#` separates key parts unambiguously
//! and a step's iterations share the prefix `STEP#<step>#`.
//!
//! Run, step and idempotency items get `expires_at` (epoch seconds, the table's TTL
//! attribute): a run and its idempotency key once the run is final, [`RETENTION`]
//! after it finished; a step with its final write, [`STEP_MARGIN`] later still after
//! it ended — and the run's own expiry, stamped as the run ends, where that is later.
//!
//! A record over [`braid_ports::MAX_RECORD_BYTES`] of JSON is refused before it is
//! sent, as the embedded store refuses it; what DynamoDB itself refuses as invalid
//! (`ValidationException`, a transaction cancelled for a `ValidationError`) is
//! [`PortError::Refused`] too: a request that can never succeed is never retried.
//!
//! # Indexes (`active_runs` and `queued_runs` project every attribute; the others only keys)
//!
//! - `by_workflow` (`gsi1pk = WF#<workflow>`, `gsi1sk = <run id>`): a workflow's runs,
//!   newest first (run ids are ULIDs, which sort by time). Keys only, like `all_runs`:
//!   a run's writes after its start never rewrite a listing index, and a listing reads
//!   the runs it names by key.
//! - `all_runs` (`gsi2pk = RUNS#<shard>`, `gsi2sk = <run id>`): every run, newest first.
//!   A single partition key would put every run start on one hot partition; runs are
//!   spread over [`SHARDS`] keys and a listing merges one query per shard.
//! - `active_runs` (`gsi3pk = ACTIVE#<shard>`, `gsi3sk = <run id>`): sparse — the
//!   attributes are removed when a run finishes — so the sweeper reads only the runs
//!   that may need repair, oldest first, without a Scan.
//! - `queued_runs` (`gsi5pk = QUEUED#<workflow>`, `gsi5sk = <run id>`): sparse — a run
//!   waiting for a concurrency slot, until admitted — so admission finds the oldest.
//! - `timers` (`gsi4pk = TIMER#<shard of the run>`, `gsi4sk = <epoch ms, 13 digits>`),
//!   keys only, on run and step items: sparse — present while the record has a timer
//!   ([`RunRecord::timer`], [`StepRecord::timer`]) and removed by the write that ends
//!   it — so the tick finds what is due with one query per shard.
//!
//! # Concurrency
//!
//! Every transition is a conditional write (or a transaction of them), so the guard and
//! the write are one atomic step as in the SQLite adapter. Reads that decide a write are
//! strongly consistent; index queries are eventually consistent, which listings and the
//! sweeper tolerate (the sweeper comes back next tick).

mod codec;
mod expr;

pub use codec::shard;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update,
};
use braid_engine::model::{
    AuditEntry, CancelRequest, Definition, ErrorInfo, MAX_NOTICES, NoticeLog, RunId, RunRecord,
    RunStatus, Signal, SlaMiss, StepId, StepKey, StepRecord, StepStatus, Timestamp,
};
use braid_ports::{
    AuditFilter, Created, Finalized, Guard, PortError, PortResult, RunFilter, StateStore,
};
use codec::{
    RUN_OPAQUE, RUN_SK, SIGNAL_OPAQUE, STEP_OPAQUE, decode, encode, expiry, idem_pk, n, queued_pk,
    run_id_of, run_item, run_pk, s, signal_sk, slots_pk, step_item, step_sk, timer_attrs,
    timer_key, wf_pk,
};
use expr::{Expr, backend, cancelled_on_conditions, condition_failed};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;

/// One DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// The table's TTL attribute (epoch seconds).
pub const TTL: &str = "expires_at";
/// Index of a workflow's runs, and its key attributes.
pub const BY_WORKFLOW: &str = "by_workflow";
pub const WF_PK: &str = "gsi1pk";
pub const WF_SK: &str = "gsi1sk";
/// Index of all runs, and its key attributes.
pub const ALL_RUNS: &str = "all_runs";
pub const ALL_PK: &str = "gsi2pk";
pub const ALL_SK: &str = "gsi2sk";
/// Sparse index of the runs not final, and its key attributes.
pub const ACTIVE_RUNS: &str = "active_runs";
pub const ACTIVE_PK: &str = "gsi3pk";
pub const ACTIVE_SK: &str = "gsi3sk";
/// Sparse index of run and step items with a timer, and its key attributes.
pub const TIMERS: &str = "timers";
pub const TIMER_PK: &str = "gsi4pk";
pub const TIMER_SK: &str = "gsi4sk";
/// Sparse index of queued runs by workflow, oldest first, and its key attributes.
pub const QUEUED_RUNS: &str = "queued_runs";
pub const QUEUED_PK: &str = "gsi5pk";
pub const QUEUED_SK: &str = "gsi5sk";
/// How many partition keys `all_runs`, `active_runs` and `timers` spread runs over.
pub const SHARDS: u32 = 8;
/// How long a final run's records are kept.
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);
/// How much longer than [`RETENTION`] a step's record is kept after the step ended, so
/// that in a run lasting less than this the run's records go together.
pub const STEP_MARGIN: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Independent writes in flight at once (iterations, orphan-safe steps, TTL stamps).
const PARALLEL_WRITES: usize = 16;

/// The partition of current definitions, one item per workflow (sort key: its name).
const REGISTRY_PK: &str = "REGISTRY";
const IDEM_SK: &str = "IDEM";
const MARKER_PK: &str = "MARKER";
/// The audit trail's partitions: one a month (`AUDIT#2026-12`), entries sorted by time.
const AUDIT_PK: &str = "AUDIT#";
const SLOTS_SK: &str = "SLOTS";
const ACTIVE: [RunStatus; 2] = [RunStatus::Queued, RunStatus::Running];

/// DynamoDB-backed [`StateStore`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

/// `SET` and `REMOVE` clauses as one update expression.
fn update_expression(sets: &[String], removes: &[String]) -> String {
    let mut out = String::new();
    if !sets.is_empty() {
        out = format!("SET {}", sets.join(", "));
    }
    if !removes.is_empty() {
        out += &format!(" REMOVE {}", removes.join(", "));
    }
    out
}

/// Clauses that keep an item's `timers` attributes in step with its record's timer:
/// set while there is one, removed when there is none and `had_one` says the item may
/// still carry it (a removal names the index, and an index write is billed).
fn timer_clauses(
    x: &mut Expr,
    run_id: &str,
    timer: Option<Timestamp>,
    had_one: bool,
    sets: &mut Vec<String>,
    removes: &mut Vec<String>,
) {
    match timer {
        Some(at) => {
            for (attr, v) in timer_attrs(run_id, at) {
                sets.push(format!("{} = {}", x.name(attr), x.value(v)));
            }
        }
        None if had_one => removes.extend([x.name(TIMER_PK), x.name(TIMER_SK)]),
        None => {}
    }
}

/// Whether a step written under `guard` may carry a timer now: only a retrying or
/// waiting one does (see [`StepRecord::timer`]).
fn may_have_timer(guard: &Guard) -> bool {
    guard
        .statuses
        .iter()
        .any(|st| matches!(st, StepStatus::Retrying | StepStatus::Waiting))
}

fn step_not_found(run_id: &str, key: &StepKey) -> PortError {
    PortError::NotFound(format!("step {key} of run {run_id}"))
}

fn build_err(e: impl std::fmt::Display) -> PortError {
    PortError::backend_msg(format!("invalid request: {e}"))
}

/// `#status IN (…)` for the given statuses.
fn status_in(x: &mut Expr, statuses: impl IntoIterator<Item = &'static str>) -> String {
    let vals: Vec<String> = statuses.into_iter().map(|st| x.value(s(st))).collect();
    format!("{} IN ({})", x.name("status"), vals.join(", "))
}

/// The step write's condition: the record exists and `guard` holds on it.
/// The condition of a guarded write of a step (an absent step is pending, see
/// [`Guard::admits_absent`]).
fn guard_condition(x: &mut Expr, guard: &Guard) -> PortResult<String> {
    let mut cond = format!(
        "attribute_exists({}) AND {}",
        x.name(PK),
        status_in(x, guard.statuses.iter().map(|st| st.as_str()))
    );
    if let Some(a) = guard.attempt {
        cond += &format!(" AND {} = {}", x.name("attempt"), x.value(n(a)));
    }
    if let Some(lease) = guard.lease {
        let v = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(lease)
            .map_err(PortError::backend)?;
        cond += &format!(" AND {} = {}", x.name("lease_until"), x.value(v));
    }
    if guard.admits_absent() {
        cond = format!("attribute_not_exists({}) OR ({cond})", x.name(PK));
    }
    Ok(cond)
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    async fn get_item(&self, key: Item) -> PortResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item)
    }

    async fn read_run(&self, run_id: &str) -> PortResult<RunRecord> {
        match self.get_item(key(run_pk(run_id), RUN_SK)).await? {
            Some(item) => decode(item, RUN_OPAQUE),
            None => Err(PortError::NotFound(format!("run {run_id}"))),
        }
    }

    async fn read_step(&self, run_id: &str, k: &StepKey) -> PortResult<Option<StepRecord>> {
        self.get_item(key(run_pk(run_id), &step_sk(k)))
            .await?
            .map(|item| decode(item, STEP_OPAQUE))
            .transpose()
    }

    /// The run an idempotency key started, if it was used. The key and its run are
    /// written in one transaction, so a key found names a run that is there.
    async fn run_of_key(&self, workflow: &str, k: &str) -> PortResult<Option<RunRecord>> {
        let Some(idem) = self.get_item(key(idem_pk(workflow, k), IDEM_SK)).await? else {
            return Ok(None);
        };
        match idem.get("run_id") {
            Some(AttributeValue::S(id)) => self.read_run(id).await.map(Some),
            _ => Err(PortError::backend_msg(format!(
                "idempotency key {k} of {workflow} names no run"
            ))),
        }
    }

    /// After a step's guard failed: `NotFound` if the step does not exist, else fine.
    async fn guard_failed(&self, run_id: &str, k: &StepKey) -> PortResult<()> {
        match self.read_step(run_id, k).await? {
            Some(_) => Ok(()),
            None => Err(step_not_found(run_id, k)),
        }
    }

    /// One page of `q` from `start`: its items, and where the next page begins (`None`
    /// after the last).
    async fn page(
        &self,
        q: &QueryFluentBuilder,
        start: Option<Item>,
    ) -> PortResult<(Vec<Item>, Option<Item>)> {
        let page = q
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        let next = page.last_evaluated_key.filter(|k| !k.is_empty());
        Ok((page.items.unwrap_or_default(), next))
    }

    /// Every item `q` returns, following `LastEvaluatedKey`, stopping once `want` are in.
    async fn query(&self, q: QueryFluentBuilder, want: Option<usize>) -> PortResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let (items, next) = self.page(&q, start).await?;
            out.extend(items);
            start = next;
            if start.is_none() || want.is_some_and(|w| out.len() >= w) {
                break;
            }
        }
        if let Some(w) = want {
            out.truncate(w);
        }
        Ok(out)
    }

    /// A query of `index` on key condition `cond` (its names and values in `x`), in pages
    /// of at most `limit` items (and never more than 1000).
    fn index_query(&self, index: &str, cond: String, x: &Expr, limit: usize) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression(cond)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .limit(limit.clamp(1, 1000) as i32)
    }

    /// Runs from one query per shard of `index`, merged in id order.
    async fn query_shards(
        &self,
        index: &str,
        prefix: &str,
        after: Option<&str>,
        status: Option<RunStatus>,
        newest_first: bool,
        limit: usize,
    ) -> PortResult<Vec<RunRecord>> {
        let (pk_attr, sk_attr) = if index == ALL_RUNS {
            (ALL_PK, ALL_SK)
        } else {
            (ACTIVE_PK, ACTIVE_SK)
        };
        let per_shard = futures::stream::iter(0..SHARDS)
            .map(|shard| {
                let mut x = Expr::default();
                let mut cond = format!(
                    "{} = {}",
                    x.name(pk_attr),
                    x.value(s(format!("{prefix}{shard}")))
                );
                if let Some(a) = after {
                    cond += &format!(" AND {} > {}", x.name(sk_attr), x.value(s(a)));
                }
                let q = self
                    .index_query(index, cond, &x, limit)
                    .scan_index_forward(!newest_first);
                self.runs_listed(index, q, status, limit)
            })
            .buffer_unordered(SHARDS as usize)
            .try_collect::<Vec<_>>()
            .await?;
        let mut runs: Vec<RunRecord> = per_shard.into_iter().flatten().collect();
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        if newest_first {
            runs.reverse();
        }
        runs.truncate(limit);
        Ok(runs)
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> PortResult<Result<(), Vec<usize>>> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(e) => cancelled_on_conditions(e).map(Err),
        }
    }

    /// A conditional put; false when the condition failed.
    async fn put_if(&self, item: Item, condition: &str, x: &Expr) -> PortResult<bool> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    /// Puts each step record unless its item exists, in parallel.
    async fn put_steps_new(&self, steps: &[StepRecord]) -> PortResult<()> {
        let items = steps
            .iter()
            .map(step_item)
            .collect::<PortResult<Vec<_>>>()?;
        futures::stream::iter(items)
            .map(|item| self.put_new(item))
            .buffer_unordered(PARALLEL_WRITES)
            .try_collect::<Vec<bool>>()
            .await?;
        Ok(())
    }

    /// Puts `item`, replacing any item with its key.
    async fn put(&self, item: Item) -> PortResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Puts `item` unless an item with its key exists; false if one did.
    async fn put_new(&self, item: Item) -> PortResult<bool> {
        let mut x = Expr::default();
        let cond = format!("attribute_not_exists({})", x.name(PK));
        self.put_if(item, &cond, &x).await
    }

    /// Sends a guarded step write built for a transaction as a single update: true
    /// when it was applied, false when its condition did not hold.
    async fn send_guarded(&self, u: Update) -> PortResult<bool> {
        let res = self
            .client
            .update_item()
            .table_name(u.table_name())
            .set_key(Some(u.key().clone()))
            .update_expression(u.update_expression())
            .set_condition_expression(u.condition_expression().map(str::to_string))
            .set_expression_attribute_names(u.expression_attribute_names().cloned())
            .set_expression_attribute_values(u.expression_attribute_values().cloned())
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    /// An update of the item at `key` for a transaction (or [`Self::send_guarded`]),
    /// its names and values from `x`.
    fn tx_update(
        &self,
        key: Item,
        update: impl Into<String>,
        condition: Option<String>,
        x: &Expr,
    ) -> PortResult<Update> {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update)
            .set_condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .build()
            .map_err(build_err)
    }

    /// A conditional update; `Some(new item)` when applied, `None` when the condition failed.
    async fn update_if(
        &self,
        key: Item,
        update: &str,
        condition: &str,
        x: &Expr,
    ) -> PortResult<Option<Item>> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    /// The guarded write of a step record, as a transaction item.
    ///
    /// An update setting every field rather than a put: a result that lands after the
    /// run finished must keep the `expires_at` that [`StateStore::finish_run`] stamped.
    /// A final write stamps the step's own expiry (unless one is there already),
    /// [`STEP_MARGIN`] beyond a run's: finishing the run then re-writes only the items
    /// that never became final or finished long before it — one write per step saved.
    fn guarded_step_write(&self, guard: &Guard, new: &StepRecord) -> PortResult<Update> {
        let item = encode(new, STEP_OPAQUE)?;
        let mut x = Expr::default();
        let mut sets = x.set_all(&item, &[PK, SK]);
        let mut removes = Vec::new();
        let had_one = may_have_timer(guard);
        timer_clauses(
            &mut x,
            &new.run_id,
            new.timer(),
            had_one,
            &mut sets,
            &mut removes,
        );
        // A final record reopened (its run retried in place) is kept again.
        if !new.status.is_final() && guard.statuses.iter().any(|st| st.is_final()) {
            removes.push(x.name(TTL));
        }
        if new.status.is_final() {
            let finished = new.finished_at.unwrap_or_else(chrono::Utc::now);
            let at = expiry(finished) + STEP_MARGIN.as_secs() as i64;
            let ttl = x.name(TTL);
            sets.push(format!("{ttl} = if_not_exists({ttl}, {})", x.value(n(at))));
        }
        let cond = guard_condition(&mut x, guard)?;
        self.tx_update(
            key(run_pk(&new.run_id), &step_sk(&new.key)),
            update_expression(&sets, &removes),
            Some(cond),
            &x,
        )
    }

    /// The keys of run `run_id`'s items whose sort key starts with `prefix`, read
    /// strongly consistent: only those passing the filter expression `filter` builds
    /// (none when it builds an empty one).
    async fn run_item_keys(
        &self,
        run_id: &str,
        prefix: &str,
        filter: impl FnOnce(&mut Expr) -> String,
    ) -> PortResult<Vec<Item>> {
        let mut x = Expr::default();
        let cond = format!(
            "{} = {} AND begins_with({}, {})",
            x.name(PK),
            x.value(s(run_pk(run_id))),
            x.name(SK),
            x.value(s(prefix))
        );
        let filter = filter(&mut x);
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(cond)
            .set_filter_expression((!filter.is_empty()).then_some(filter))
            .projection_expression(format!("{}, {}", x.name(PK), x.name(SK)))
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .consistent_read(true);
        self.query(q, None).await
    }

    /// Stamps `expires_at` on the run's idempotency item and on the step items that
    /// would otherwise go before the run (those that never became final, and those of
    /// a long run that finished more than [`STEP_MARGIN`] before it: a final write
    /// stamps its own) once the run is final, and takes any step left with a timer out
    /// of the `timers` index (the run is over). Updates only existing items (never
    /// creates one), in parallel.
    async fn expire_run_items(&self, run: &RunRecord, at: i64) -> PortResult<()> {
        let mut keys = self
            .run_item_keys(&run.id, "STEP#", |x| {
                format!(
                    "attribute_not_exists({ttl}) OR {ttl} < {}",
                    x.value(n(at)),
                    ttl = x.name(TTL)
                )
            })
            .await?;
        if let Some(k) = &run.idempotency_key {
            keys.push(key(idem_pk(&run.workflow, k), IDEM_SK));
        }
        futures::stream::iter(keys)
            .map(|k| async move {
                let mut x = Expr::default();
                let update = format!(
                    "SET {} = {} REMOVE {}, {}",
                    x.name(TTL),
                    x.value(n(at)),
                    x.name(TIMER_PK),
                    x.name(TIMER_SK)
                );
                let cond = format!("attribute_exists({})", x.name(PK));
                self.update_if(k, &update, &cond, &x).await.map(|_| ())
            })
            .buffer_unordered(PARALLEL_WRITES)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn put_definition(&self, def: &Definition) -> PortResult<()> {
        // The version item first: the pointer never names a version not stored. Both
        // plain puts — a version is a content hash, so rewriting it writes the same.
        self.put_version(def).await?;
        let mut item = encode(def, &[])?;
        // The registry entry holds a copy, so a start by name costs one read and the
        // registry one query.
        item.insert(PK.into(), s(REGISTRY_PK));
        item.insert(SK.into(), s(&def.workflow));
        self.put(item).await
    }

    async fn get_definition(&self, workflow: &str, version: &str) -> PortResult<Definition> {
        match self
            .get_item(key(wf_pk(workflow), &format!("V#{version}")))
            .await?
        {
            Some(item) => decode(item, &[]),
            None => Err(PortError::NotFound(format!(
                "definition {workflow}@{version}"
            ))),
        }
    }

    async fn put_version(&self, def: &Definition) -> PortResult<()> {
        let mut item = encode(def, &[])?;
        item.insert(PK.into(), s(wf_pk(&def.workflow)));
        item.insert(SK.into(), s(format!("V#{}", def.version)));
        self.put(item).await
    }

    async fn current_definition(&self, workflow: &str) -> PortResult<Definition> {
        match self.get_item(key(REGISTRY_PK.into(), workflow)).await? {
            Some(item) => decode(item, &[]),
            None => Err(PortError::NotFound(format!("workflow {workflow}"))),
        }
    }

    async fn current_definitions(&self) -> PortResult<Vec<Definition>> {
        let mut x = Expr::default();
        let cond = format!("{} = {}", x.name(PK), x.value(s(REGISTRY_PK)));
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(cond)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values());
        self.query(q, None)
            .await?
            .into_iter()
            .map(|item| decode(item, &[]))
            .collect()
    }

    async fn remove_definition(&self, workflow: &str) -> PortResult<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(REGISTRY_PK.into(), workflow)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn marker(&self, name: &str) -> PortResult<Option<String>> {
        let item = self.get_item(key(MARKER_PK.into(), name)).await?;
        Ok(item.and_then(|mut i| match i.remove("value") {
            Some(AttributeValue::S(c)) => Some(c),
            _ => None,
        }))
    }

    async fn set_marker(&self, name: &str, value: Option<&str>) -> PortResult<()> {
        let k = key(MARKER_PK.into(), name);
        match value {
            Some(c) => {
                let mut item = k;
                item.insert("value".into(), s(c));
                self.put(item).await?;
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(k))
                    .send()
                    .await
                    .map_err(backend)?;
            }
        }
        Ok(())
    }

    async fn create_run(&self, run: &RunRecord, steps: &[StepRecord]) -> PortResult<Created> {
        // A key used before is found by a read, before anything is written: a repeated
        // event (the common case for triggers) costs one read.
        if let Some(k) = &run.idempotency_key
            && let Some(existing) = self.run_of_key(&run.workflow, k).await?
        {
            return Ok(Created::Existing(Box::new(existing)));
        }
        // The steps first, each only if absent, then the run (with its key, atomically):
        // single writes cost half of a transaction's. A crash in between leaves steps
        // under a run id that does not exist; nothing reads steps without their run, so
        // they are inert (and a retry of the same run finds them already there, never
        // resetting a step that has moved on).
        self.put_steps_new(steps).await?;
        let run_item = run_item(run)?;
        let Some(k) = &run.idempotency_key else {
            return match self.put_new(run_item).await? {
                true => Ok(Created::New),
                false => Err(PortError::Conflict(format!("run {} exists", run.id))),
            };
        };
        let new_item = |item: Item| -> PortResult<TransactWriteItem> {
            let mut x = Expr::default();
            let cond = format!("attribute_not_exists({})", x.name(PK));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(cond)
                .set_expression_attribute_names(x.names())
                .build()
                .map_err(build_err)?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let mut idem = key(idem_pk(&run.workflow, k), IDEM_SK);
        idem.insert("run_id".into(), s(&run.id));
        // The idempotency item at index 0, the run at 1.
        match self
            .transact(vec![new_item(idem)?, new_item(run_item)?])
            .await?
        {
            Ok(()) => Ok(Created::New),
            // Taken by a start racing this one since the read.
            Err(failed) if failed.contains(&0) => match self.run_of_key(&run.workflow, k).await? {
                Some(existing) => Ok(Created::Existing(Box::new(existing))),
                None => Err(PortError::backend_msg(format!(
                    "idempotency key {k} of {} names no run",
                    run.workflow
                ))),
            },
            Err(_) => Err(PortError::Conflict(format!("run {} exists", run.id))),
        }
    }

    async fn get_run(&self, run_id: &RunId) -> PortResult<RunRecord> {
        self.read_run(run_id).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> PortResult<Vec<RunRecord>> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let Some(wf) = &filter.workflow else {
            return self
                .query_shards(ALL_RUNS, "RUNS#", None, filter.status, true, limit)
                .await;
        };
        let mut x = Expr::default();
        let cond = format!("{} = {}", x.name(WF_PK), x.value(s(wf_pk(wf))));
        let q = self
            .index_query(BY_WORKFLOW, cond, &x, limit)
            .scan_index_forward(false);
        self.runs_listed(BY_WORKFLOW, q, filter.status, limit).await
    }

    /// Each shard of `all_runs`, keys only, from the prefix on.
    async fn runs_with_prefix(&self, prefix: &str, limit: usize) -> PortResult<Vec<RunId>> {
        let per_shard = futures::stream::iter(0..SHARDS)
            .map(|shard| async move {
                let mut x = Expr::default();
                let cond = format!(
                    "{} = {} AND begins_with({}, {})",
                    x.name(ALL_PK),
                    x.value(s(format!("RUNS#{shard}"))),
                    x.name(ALL_SK),
                    x.value(s(prefix))
                );
                let q = self.index_query(ALL_RUNS, cond, &x, limit);
                let items: Vec<Item> = self.query(q, Some(limit)).await?;
                let ids: Vec<RunId> = items
                    .iter()
                    .filter_map(|i| i.get(PK)?.as_s().ok())
                    .filter_map(|pk| run_id_of(pk))
                    .map(RunId::from)
                    .collect();
                Ok::<_, PortError>(ids)
            })
            .buffer_unordered(SHARDS as usize)
            .try_collect::<Vec<_>>()
            .await?;
        let mut ids: Vec<RunId> = per_shard.into_iter().flatten().collect();
        ids.sort();
        ids.truncate(limit);
        Ok(ids)
    }

    async fn active_runs(&self, after: Option<&RunId>, limit: usize) -> PortResult<Vec<RunRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.query_shards(
            ACTIVE_RUNS,
            "ACTIVE#",
            after.map(RunId::as_str),
            None,
            false,
            limit,
        )
        .await
    }

    async fn due_runs(&self, before: Timestamp, limit: usize) -> PortResult<Vec<RunId>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let until = timer_key(before);
        let per_shard = futures::stream::iter(0..SHARDS)
            .map(|shard| {
                let mut x = Expr::default();
                let cond = format!(
                    "{} = {} AND {} <= {}",
                    x.name(TIMER_PK),
                    x.value(s(format!("TIMER#{shard}"))),
                    x.name(TIMER_SK),
                    x.value(s(until.clone()))
                );
                self.query(self.index_query(TIMERS, cond, &x, limit), Some(limit))
            })
            .buffer_unordered(SHARDS as usize)
            .try_collect::<Vec<_>>()
            .await?;
        // (timer, run id) of every item due, earliest first; a run once.
        let mut due: Vec<(String, String)> = per_shard
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let at = item.get(TIMER_SK)?.as_s().ok()?.clone();
                let run = run_id_of(item.get(PK)?.as_s().ok()?)?.to_string();
                Some((at, run))
            })
            .collect();
        due.sort();
        let mut seen = std::collections::HashSet::new();
        Ok(due
            .into_iter()
            .filter_map(|(_, run)| seen.insert(run.clone()).then_some(RunId::new(run)))
            .take(limit)
            .collect())
    }

    async fn get_step(&self, run_id: &RunId, key: &StepKey) -> PortResult<StepRecord> {
        self.read_step(run_id, key)
            .await?
            .ok_or_else(|| step_not_found(run_id, key))
    }

    async fn list_steps(&self, run_id: &RunId) -> PortResult<Vec<StepRecord>> {
        let mut steps = self.steps_with_prefix(run_id, "STEP#").await?;
        // Steps before iterations, as the port says (the sort key interleaves them).
        steps.sort_by(|a, b| {
            (a.key.index.map_or(-1, i64::from), &a.key.step)
                .cmp(&(b.key.index.map_or(-1, i64::from), &b.key.step))
        });
        Ok(steps)
    }

    async fn list_iterations(&self, run_id: &RunId, step: &StepId) -> PortResult<Vec<StepRecord>> {
        self.steps_with_prefix(run_id, &format!("STEP#{step}#"))
            .await
    }

    async fn update_step(&self, guard: &Guard, new: &StepRecord) -> PortResult<bool> {
        debug_assert!(
            !new.status.is_final(),
            "final writes go through finalize_step"
        );
        if guard.statuses.is_empty() {
            self.guard_failed(&new.run_id, &new.key).await?;
            return Ok(false);
        }
        let u = self.guarded_step_write(guard, new)?;
        if self.send_guarded(u).await? {
            return Ok(true);
        }
        self.guard_failed(&new.run_id, &new.key).await?;
        Ok(false)
    }

    async fn finalize_step(
        &self,
        guard: &Guard,
        new: &StepRecord,
        fail_run: Option<&ErrorInfo>,
    ) -> PortResult<Option<Finalized>> {
        debug_assert!(new.status.is_final());
        if guard.statuses.is_empty() {
            self.guard_failed(&new.run_id, &new.key).await?;
            return Ok(None);
        }
        let run_key = key(run_pk(&new.run_id), RUN_SK);
        let parent_key = StepKey::step(&new.key.step);
        // Fail fast must be turned on in the same transaction as the step's final write,
        // or the last step of the run could finish it as succeeded in between. But it
        // applies only to a run not final and not failing yet, and a condition on the
        // run would cancel the whole write when it does not hold. So the run is read
        // first and the write conditioned on what was read: `failing` only turns on and
        // a run only becomes final, so a run seen failing or final stays so and needs no
        // condition; one seen neither is written with the condition that it still is
        // neither, and when another writer got there first, the transaction is redone
        // against the new state (at most once more, since the state cannot go back).
        let mut attempts = 0;
        loop {
            attempts += 1;
            let turn_on = match fail_run {
                Some(_) => {
                    let run = self.read_run(&new.run_id).await?;
                    !run.failing && !run.status.is_final()
                }
                None => false,
            };
            let step_write = self.guarded_step_write(guard, new)?;
            // A write that fails nothing and counts nothing (a top-level step, an
            // iteration that did not fail) is one single-item write: a transaction
            // would cost twice as much.
            let counted = new.key.index.is_some() && new.status == StepStatus::Failed;
            if fail_run.is_none() && !counted {
                if self.send_guarded(step_write).await? {
                    break;
                }
                self.guard_failed(&new.run_id, &new.key).await?;
                return Ok(None);
            }
            let mut tx = vec![TransactWriteItem::builder().update(step_write).build()];
            let mut x = Expr::default();
            let mut sets = Vec::new();
            let mut cond = format!("attribute_exists({})", x.name(PK));
            if let (true, Some(err)) = (turn_on, fail_run) {
                let e = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(err)
                    .map_err(PortError::backend)?;
                sets.push(format!(
                    "{} = {}",
                    x.name("failing"),
                    x.value(AttributeValue::Bool(true))
                ));
                sets.push(format!("{} = {}", x.name("error"), x.value(e)));
                cond += &format!(
                    " AND {} = {} AND {}",
                    x.name("failing"),
                    x.value(AttributeValue::Bool(false)),
                    status_in(&mut x, ACTIVE.map(RunStatus::as_str))
                );
            }
            let run_index = if sets.is_empty() {
                None
            } else {
                let u = self.tx_update(
                    run_key.clone(),
                    format!("SET {}", sets.join(", ")),
                    Some(cond),
                    &x,
                )?;
                tx.push(TransactWriteItem::builder().update(u).build());
                Some(tx.len() - 1)
            };
            if counted {
                // A failed iteration counts towards its parent's fan-out.
                let mut x = Expr::default();
                let failed = x.name("fan_out.failed");
                let update = format!("SET {failed} = {failed} + {}", x.value(n(1)));
                let cond = format!("attribute_exists({})", x.name(PK));
                let u = self.tx_update(
                    key(run_pk(&new.run_id), &step_sk(&parent_key)),
                    update,
                    Some(cond),
                    &x,
                )?;
                tx.push(TransactWriteItem::builder().update(u).build());
            }
            match self.transact(tx).await? {
                Ok(()) => break,
                Err(failed) if failed.contains(&0) => {
                    self.guard_failed(&new.run_id, &new.key).await?;
                    return Ok(None);
                }
                Err(failed)
                    if turn_on && run_index.is_some_and(|i| failed == [i]) && attempts < 3 =>
                {
                    continue;
                }
                Err(failed) if run_index.is_some_and(|i| failed.contains(&i)) => {
                    return Err(PortError::NotFound(format!("run {}", new.run_id)));
                }
                Err(_) => return Err(step_not_found(&new.run_id, &parent_key)),
            }
        }
        let run = self.read_run(&new.run_id).await?;
        let parent = match new.key.index {
            Some(_) if new.status == StepStatus::Failed => Some(
                self.read_step(&new.run_id, &parent_key)
                    .await?
                    .ok_or_else(|| step_not_found(&new.run_id, &parent_key))?,
            ),
            _ => None,
        };
        Ok(Some(Finalized { run, parent }))
    }

    async fn satisfy(
        &self,
        run_id: &RunId,
        dependent: &StepId,
        dep: &StepId,
        needs: &[String],
        now: Timestamp,
    ) -> PortResult<Option<StepRecord>> {
        let k = StepKey::step(dependent);
        let item_key = key(run_pk(run_id), &step_sk(&k));
        // A step not written yet is pending: the write creates it, with the attributes
        // of a fresh record that it does not set itself.
        let fresh = encode(
            &StepRecord::new(run_id, k.clone(), StepStatus::Pending),
            STEP_OPAQUE,
        )?;
        let create_as_fresh = |x: &mut Expr, sets: &mut Vec<String>| {
            let mut attrs: Vec<_> = fresh
                .iter()
                .filter(|(a, _)| !["satisfied", "status", "due_at"].contains(&a.as_str()))
                .collect();
            attrs.sort_by(|a, b| a.0.cmp(b.0));
            for (a, v) in attrs {
                let name = x.name(a);
                sets.push(format!(
                    "{name} = if_not_exists({name}, {})",
                    x.value(v.clone())
                ));
            }
        };
        if needs.len() == 1 && needs[0] == *dep {
            // The only need: recorded and the step made ready in one write.
            let mut x = Expr::default();
            let st = x.name("status");
            let due = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(now)
                .map_err(PortError::backend)?;
            let mut sets = vec![
                format!(
                    "{} = {}",
                    x.name("satisfied"),
                    x.value(AttributeValue::L(vec![s(dep)]))
                ),
                format!("{st} = {}", x.value(s(StepStatus::Ready.as_str()))),
                format!("{} = {}", x.name("due_at"), x.value(due)),
            ];
            create_as_fresh(&mut x, &mut sets);
            let update = update_expression(&sets, &[]);
            let cond = format!(
                "attribute_not_exists({}) OR {st} = {}",
                x.name(PK),
                x.value(s(StepStatus::Pending.as_str()))
            );
            return match self.update_if(item_key, &update, &cond, &x).await? {
                Some(item) => decode(item, STEP_OPAQUE).map(Some),
                None => {
                    self.guard_failed(run_id, &k).await?;
                    Ok(None)
                }
            };
        }
        let mut x = Expr::default();
        let sat = x.name("satisfied");
        let mut sets = vec![format!(
            "{sat} = list_append(if_not_exists({sat}, {}), {})",
            x.value(AttributeValue::L(vec![])),
            x.value(AttributeValue::L(vec![s(dep)]))
        )];
        let st = x.name("status");
        sets.push(format!(
            "{st} = if_not_exists({st}, {})",
            x.value(s(StepStatus::Pending.as_str()))
        ));
        create_as_fresh(&mut x, &mut sets);
        let update = update_expression(&sets, &[]);
        let cond = format!("NOT contains({sat}, {})", x.value(s(dep)));
        let rec: StepRecord = match self.update_if(item_key.clone(), &update, &cond, &x).await? {
            Some(item) => decode(item, STEP_OPAQUE)?,
            // Already satisfied (or missing): still look whether the step can be made
            // ready, so a crash between the two writes is repaired by the duplicate.
            None => self
                .read_step(run_id, &k)
                .await?
                .ok_or_else(|| step_not_found(run_id, &k))?,
        };
        if rec.status != StepStatus::Pending || !needs.iter().all(|d| rec.satisfied.contains(d)) {
            return Ok(None);
        }
        // The promotion is its own conditional write: of the callers that see every need
        // satisfied, exactly one finds the step still pending.
        let mut x = Expr::default();
        let st = x.name("status");
        let due = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(now)
            .map_err(PortError::backend)?;
        // A ready step has no timer (see `StepRecord::timer`): nothing to index.
        let sets = vec![
            format!("{st} = {}", x.value(s(StepStatus::Ready.as_str()))),
            format!("{} = {}", x.name("due_at"), x.value(due)),
        ];
        let update = update_expression(&sets, &[]);
        let cond = format!("{st} = {}", x.value(s(StepStatus::Pending.as_str())));
        self.update_if(item_key, &update, &cond, &x)
            .await?
            .map(|item| decode(item, STEP_OPAQUE))
            .transpose()
    }

    async fn end_lane(&self, run_id: &RunId, step: &StepId) -> PortResult<Option<StepRecord>> {
        let pkey = StepKey::step(step);
        let mut x = Expr::default();
        let ended = x.name("fan_out.ended");
        let update = format!("SET {ended} = {ended} + {}", x.value(n(1)));
        let cond = format!(
            "attribute_exists({}) AND {} = {}",
            x.name("fan_out"),
            x.name("status"),
            x.value(s(StepStatus::Running.as_str()))
        );
        match self
            .update_if(key(run_pk(run_id), &step_sk(&pkey)), &update, &cond, &x)
            .await?
        {
            Some(item) => decode(item, STEP_OPAQUE).map(Some),
            None => {
                self.guard_failed(run_id, &pkey).await?;
                Ok(None)
            }
        }
    }

    async fn finish_run(&self, run: &RunRecord) -> PortResult<bool> {
        let finished = run.finished_at.unwrap_or_else(chrono::Utc::now);
        let at = expiry(finished);
        let rec = encode(run, RUN_OPAQUE)?;
        let mut x = Expr::default();
        let mut sets = Vec::new();
        for f in ["status", "output", "error", "finished_at"] {
            let v = rec.get(f).cloned().unwrap_or(AttributeValue::Null(true));
            sets.push(format!("{} = {}", x.name(f), x.value(v)));
        }
        let closing = AttributeValue::Bool(run.closing);
        sets.push(format!("{} = {}", x.name("closing"), x.value(closing)));
        sets.push(format!("{} = {}", x.name(TTL), x.value(n(at))));
        // A closing run keeps a timer until `close_run`: what follows its end is
        // finished by the tick if this process stops before.
        for (attr, v) in run
            .timer()
            .map(|t| timer_attrs(&run.id, t))
            .into_iter()
            .flatten()
        {
            sets.push(format!("{} = {}", x.name(attr), x.value(v)));
        }
        // Only the index keys the run may carry: naming others costs nothing in the
        // table, but says less precisely what the write does.
        let mut removes = vec![x.name(ACTIVE_PK), x.name(ACTIVE_SK)];
        if run.deadline.is_some() && run.timer().is_none() {
            removes.extend([x.name(TIMER_PK), x.name(TIMER_SK)]);
        }
        if run.limit.is_some() {
            removes.extend([x.name(QUEUED_PK), x.name(QUEUED_SK)]);
        }
        let update = update_expression(&sets, &removes);
        let mut cond = status_in(&mut x, ACTIVE.map(RunStatus::as_str));
        // A run that a step failed since it was read does not end succeeded.
        if run.status == RunStatus::Succeeded {
            cond += &format!(
                " AND {} = {}",
                x.name("failing"),
                x.value(AttributeValue::Bool(false))
            );
        }
        let run_key = key(run_pk(&run.id), RUN_SK);
        let written = if run.slot {
            // The slot is given back in the same transaction as the run ends.
            let u = self.tx_update(run_key, update, Some(cond), &x)?;
            let tx = vec![
                TransactWriteItem::builder().update(u).build(),
                self.slot_change(&run.workflow, -1, None)?,
            ];
            self.transact(tx).await?.is_ok()
        } else {
            self.update_if(run_key, &update, &cond, &x).await?.is_some()
        };
        if !written {
            self.read_run(&run.id).await?;
        }
        Ok(written)
    }

    /// Stamps the expiry on the run's items — not atomic with the run's final write
    /// (a run may have thousands of items) — then drops its closing mark and timer.
    async fn close_run(&self, run: &RunRecord) -> PortResult<()> {
        let finished = run.finished_at.unwrap_or_else(chrono::Utc::now);
        self.expire_run_items(run, expiry(finished)).await?;
        let mut x = Expr::default();
        let update = format!(
            "REMOVE {}, {}, {}",
            x.name("closing"),
            x.name(TIMER_PK),
            x.name(TIMER_SK)
        );
        let cond = format!("attribute_exists({})", x.name(PK));
        self.update_if(key(run_pk(&run.id), RUN_SK), &update, &cond, &x)
            .await?;
        Ok(())
    }

    async fn request_cancel(
        &self,
        run_id: &RunId,
        cancel: &CancelRequest,
    ) -> PortResult<Option<RunRecord>> {
        let mut x = Expr::default();
        let c = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(cancel)
            .map_err(PortError::backend)?;
        let e = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(cancel.error())
            .map_err(PortError::backend)?;
        let update = format!(
            "SET {} = {}, {} = {}, {} = {}",
            x.name("failing"),
            x.value(AttributeValue::Bool(true)),
            x.name("cancel"),
            x.value(c),
            x.name("error"),
            x.value(e)
        );
        let cond = format!(
            "{} = {} AND {} = {} AND attribute_not_exists({})",
            x.name("status"),
            x.value(s(RunStatus::Running.as_str())),
            x.name("failing"),
            x.value(AttributeValue::Bool(false)),
            x.name("cancel")
        );
        self.update_if(key(run_pk(run_id), RUN_SK), &update, &cond, &x)
            .await?
            .map(|item| decode(item, RUN_OPAQUE))
            .transpose()
    }

    /// One update appending to the list, conditioned on its length: no read first.
    async fn note_notice(&self, run_id: &RunId, log: &NoticeLog) -> PortResult<bool> {
        let mut x = Expr::default();
        let entry = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(vec![log])
            .map_err(PortError::backend)?;
        let notices = x.name("notices");
        let update = format!(
            "SET {notices} = list_append(if_not_exists({notices}, {}), {})",
            x.value(AttributeValue::L(Vec::new())),
            x.value(entry)
        );
        let cond = format!(
            "attribute_exists({}) AND (attribute_not_exists({notices}) OR size({notices}) < {})",
            x.name(PK),
            x.value(n(MAX_NOTICES))
        );
        Ok(self
            .update_if(key(run_pk(run_id), RUN_SK), &update, &cond, &x)
            .await?
            .is_some())
    }

    /// Sets `sla_missed`, `sla_due` and the run's timer, conditioned on the status and
    /// `sla_due` as `was` read them (the timer follows from both and the deadline,
    /// which changes only with the status).
    async fn note_sla_missed(
        &self,
        was: &RunRecord,
        missed: &[SlaMiss],
        next: Option<Timestamp>,
    ) -> PortResult<bool> {
        let mut run = was.clone();
        run.sla_missed.extend_from_slice(missed);
        run.sla_due = next;
        let new = encode(&run, RUN_OPAQUE)?;
        let old = encode(was, RUN_OPAQUE)?;
        let mut x = Expr::default();
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        for f in ["sla_missed", "sla_due"] {
            match new.get(f) {
                Some(v) => sets.push(format!("{} = {}", x.name(f), x.value(v.clone()))),
                None => removes.push(x.name(f)),
            }
        }
        let had_one = was.timer().is_some();
        timer_clauses(
            &mut x,
            &run.id,
            run.timer(),
            had_one,
            &mut sets,
            &mut removes,
        );
        let status = x.name("status");
        let mut cond = format!("{status} = {}", x.value(s(was.status.as_str())));
        let due = x.name("sla_due");
        match old.get("sla_due") {
            Some(v) => cond.push_str(&format!(" AND {due} = {}", x.value(v.clone()))),
            None => cond.push_str(&format!(" AND attribute_not_exists({due})")),
        }
        Ok(self
            .update_if(
                key(run_pk(&run.id), RUN_SK),
                &update_expression(&sets, &removes),
                &cond,
                &x,
            )
            .await?
            .is_some())
    }

    /// One item per entry in its month's partition, sorted by time (a random suffix
    /// keeps entries of one millisecond apart), expiring with run records.
    async fn note_audit(&self, entry: &AuditEntry) -> PortResult<()> {
        let mut item = encode(entry, &[])?;
        let month = entry.at.format("%Y-%m");
        item.insert(PK.into(), s(format!("{AUDIT_PK}{month}")));
        let suffix = format!("{:016x}", fastrand::u64(..));
        item.insert(SK.into(), s(format!("{}#{suffix}", timer_key(entry.at))));
        item.insert(TTL.into(), n(expiry(entry.at)));
        self.put(item).await
    }

    /// Month partitions newest first, back to `since` or as far as entries are kept.
    async fn audit(&self, filter: &AuditFilter) -> PortResult<Vec<AuditEntry>> {
        let want = if filter.limit == 0 { 100 } else { filter.limit };
        let now = chrono::Utc::now();
        // Entries expire with run records: nothing is kept from before that.
        let kept = now - chrono::Duration::from_std(RETENTION).unwrap_or_default();
        let oldest = filter.since.map_or(kept, |since| since.max(kept));
        let mut month =
            chrono::Datelike::with_day(&now.date_naive(), 1).unwrap_or(now.date_naive());
        let mut out = Vec::new();
        while out.len() < want && month <= now.date_naive() {
            let key = month.format("%Y-%m").to_string();
            out.extend(self.audit_month(&key, filter, want - out.len()).await?);
            if month <= oldest.date_naive() {
                break;
            }
            month = month - chrono::Months::new(1);
        }
        out.reverse();
        Ok(out)
    }

    /// The run item is replaced whole (its `active_runs` attributes back, its expiry
    /// gone), conditioned on the run as `was` read it: still final with the same end
    /// and retries, and closed. With a concurrency limit, the slot is taken in the
    /// same transaction.
    async fn reopen_run(&self, was: &RunRecord, run: &RunRecord) -> PortResult<bool> {
        let item = run_item(run)?;
        let before = encode(was, RUN_OPAQUE)?;
        let mut x = Expr::default();
        let sets = x.set_all(&item, &[PK, SK]);
        let mut removes = vec![x.name(TTL)];
        if run.timer().is_none() {
            removes.extend([x.name(TIMER_PK), x.name(TIMER_SK)]);
        }
        // `set_all` names only the attributes the new record has.
        for f in ["finished_at", "output", "error", "cancel", "closing"] {
            if !item.contains_key(f) {
                removes.push(x.name(f));
            }
        }
        let finished = before
            .get("finished_at")
            .cloned()
            .unwrap_or(AttributeValue::Null(true));
        let retries = if was.redrives.is_empty() {
            format!("attribute_not_exists({})", x.name("redrives"))
        } else {
            format!(
                "size({}) = {}",
                x.name("redrives"),
                x.value(n(was.redrives.len()))
            )
        };
        let cond = format!(
            "{} = {} AND {} = {} AND {retries} AND (attribute_not_exists({closing}) OR {closing} = {})",
            x.name("status"),
            x.value(s(was.status.as_str())),
            x.name("finished_at"),
            x.value(finished),
            x.value(AttributeValue::Bool(false)),
            closing = x.name("closing"),
        );
        let u = self.tx_update(
            key(run_pk(&run.id), RUN_SK),
            update_expression(&sets, &removes),
            Some(cond),
            &x,
        )?;
        let Some(limit) = run.limit else {
            return self.send_guarded(u).await;
        };
        let tx = vec![
            self.slot_change(&run.workflow, 1, Some(limit))?,
            TransactWriteItem::builder().update(u).build(),
        ];
        Ok(self.transact(tx).await?.is_ok())
    }

    /// Deleted one by one, in parallel: a fan-out's iterations may be many more than a
    /// batch holds, and a delete of an item already gone succeeds.
    async fn delete_iterations(
        &self,
        run_id: &RunId,
        step: &StepId,
        keep: &[u32],
    ) -> PortResult<()> {
        let prefix = format!("STEP#{step}#");
        let keys = self
            .run_item_keys(run_id, &prefix, |_| String::new())
            .await?;
        let kept = |k: &Item| {
            k.get(SK)
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| sk.strip_prefix(&prefix))
                .and_then(|i| i.parse::<u32>().ok())
                .is_some_and(|i| keep.contains(&i))
        };
        futures::stream::iter(keys.into_iter().filter(|k| !kept(k)))
            .map(|k| async move {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(k))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(backend)
            })
            .buffer_unordered(PARALLEL_WRITES)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// A signal is an item beside the run's steps; it expires [`RETENTION`] after it
    /// was sent (kept longer than that unused, it is dropped with its run's records).
    async fn put_signal(&self, run_id: &RunId, signal: &Signal) -> PortResult<Signal> {
        let mut item = encode(signal, SIGNAL_OPAQUE)?;
        item.insert(PK.into(), s(run_pk(run_id)));
        item.insert(SK.into(), s(signal_sk(&signal.name)));
        item.insert(TTL.into(), n(expiry(signal.at)));
        if self.put_new(item).await? {
            return Ok(signal.clone());
        }
        self.get_signal(run_id, &signal.name)
            .await?
            .ok_or_else(|| PortError::backend_msg(format!("signal {} vanished", signal.name)))
    }

    async fn get_signal(&self, run_id: &RunId, name: &str) -> PortResult<Option<Signal>> {
        self.get_item(key(run_pk(run_id), &signal_sk(name)))
            .await?
            .map(|item| decode(item, SIGNAL_OPAQUE))
            .transpose()
    }

    async fn queued_runs(&self, workflow: &str, limit: usize) -> PortResult<Vec<RunRecord>> {
        let mut x = Expr::default();
        let cond = format!(
            "{} = {}",
            x.name(QUEUED_PK),
            x.value(s(queued_pk(workflow)))
        );
        self.query(self.index_query(QUEUED_RUNS, cond, &x, limit), Some(limit))
            .await?
            .into_iter()
            .map(|item| decode(item, RUN_OPAQUE))
            .collect()
    }

    async fn take_slot(&self, run: &RunRecord, limit: u32) -> PortResult<bool> {
        let item = encode(run, RUN_OPAQUE)?;
        let mut x = Expr::default();
        let mut sets = x.set_all(&item, &[PK, SK]);
        let mut removes = vec![x.name(QUEUED_PK), x.name(QUEUED_SK)];
        // A queued run has no deadline yet.
        timer_clauses(&mut x, &run.id, run.timer(), false, &mut sets, &mut removes);
        let cond = format!(
            "{} = {}",
            x.name("status"),
            x.value(s(RunStatus::Queued.as_str()))
        );
        let u = self.tx_update(
            key(run_pk(&run.id), RUN_SK),
            update_expression(&sets, &removes),
            Some(cond),
            &x,
        )?;
        let tx = vec![
            self.slot_change(&run.workflow, 1, Some(limit))?,
            TransactWriteItem::builder().update(u).build(),
        ];
        Ok(self.transact(tx).await?.is_ok())
    }
}

impl DynamoStore {
    /// A transaction item moving a workflow's held slots by `by`; taking one (with
    /// `below`) only while fewer than `below` are held.
    fn slot_change(
        &self,
        workflow: &str,
        by: i64,
        below: Option<u32>,
    ) -> PortResult<TransactWriteItem> {
        let mut x = Expr::default();
        let held = x.name("held");
        let update = format!(
            "SET {held} = if_not_exists({held}, {}) + {}",
            x.value(n(0)),
            x.value(n(by))
        );
        let cond = below.map(|limit| {
            format!(
                "attribute_not_exists({held}) OR {held} < {}",
                x.value(n(limit))
            )
        });
        let u = self.tx_update(key(slots_pk(workflow), SLOTS_SK), update, cond, &x)?;
        Ok(TransactWriteItem::builder().update(u).build())
    }

    /// Up to `limit` runs (with `status`, if given) that query `q` of `index` names,
    /// in its order. The listing indexes hold keys only (a run's changes never rewrite
    /// them), so their runs are read by key; `active_runs` holds whole runs.
    async fn runs_listed(
        &self,
        index: &str,
        q: QueryFluentBuilder,
        status: Option<RunStatus>,
        limit: usize,
    ) -> PortResult<Vec<RunRecord>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let (items, next) = self.page(&q, start).await?;
            let runs = if index == ACTIVE_RUNS {
                items
                    .into_iter()
                    .map(|item| decode(item, RUN_OPAQUE))
                    .collect::<PortResult<Vec<RunRecord>>>()?
            } else {
                self.runs_by_key(&items).await?
            };
            out.extend(
                runs.into_iter()
                    .filter(|r| status.is_none_or(|st| r.status == st)),
            );
            start = next;
            if start.is_none() || out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The runs whose keys `listed` (index items) hold, in that order; one gone since
    /// is left out.
    async fn runs_by_key(&self, listed: &[Item]) -> PortResult<Vec<RunRecord>> {
        let keys: Vec<Item> = listed
            .iter()
            .filter_map(|i| Some(key(i.get(PK)?.as_s().ok()?.clone(), RUN_SK)))
            .collect();
        let mut found: HashMap<RunId, RunRecord> = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut wanted = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .build()
                    .map_err(PortError::backend)?,
            );
            while let Some(k) = wanted.take() {
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, k)
                    .send()
                    .await
                    .map_err(backend)?;
                for item in got
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let run: RunRecord = decode(item, RUN_OPAQUE)?;
                    found.insert(run.id.clone(), run);
                }
                wanted = got
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
        }
        Ok(keys
            .iter()
            .filter_map(|k| {
                let pk = k.get(PK)?.as_s().ok()?;
                found.remove(pk.strip_prefix("RUN#")?)
            })
            .collect())
    }

    /// The step items of a run whose sort key starts with `prefix`, in key order.
    /// The latest audit entries of `month` (its partition) at or after `since`, at
    /// most `want`, newest first.
    async fn audit_month(
        &self,
        month: &str,
        filter: &AuditFilter,
        want: usize,
    ) -> PortResult<Vec<AuditEntry>> {
        let mut x = Expr::default();
        let mut cond = format!(
            "{} = {}",
            x.name(PK),
            x.value(s(format!("{AUDIT_PK}{month}")))
        );
        if let Some(since) = filter.since {
            cond += &format!(" AND {} >= {}", x.name(SK), x.value(s(timer_key(since))));
        }
        let filter_expr = filter
            .workflow
            .as_ref()
            .map(|w| format!("{} = {}", x.name("workflow"), x.value(s(w))));
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(cond)
            .set_filter_expression(filter_expr)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .scan_index_forward(false);
        self.query(q, Some(want))
            .await?
            .into_iter()
            .map(|item| decode(item, &[]))
            .collect()
    }

    async fn steps_with_prefix(&self, run_id: &str, prefix: &str) -> PortResult<Vec<StepRecord>> {
        let mut x = Expr::default();
        let cond = format!(
            "{} = {} AND begins_with({}, {})",
            x.name(PK),
            x.value(s(run_pk(run_id))),
            x.name(SK),
            x.value(s(prefix))
        );
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(cond)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .consistent_read(true);
        self.query(q, None)
            .await?
            .into_iter()
            .map(|item| decode(item, STEP_OPAQUE))
            .collect()
    }
}
