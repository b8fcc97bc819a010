//! The state store in an SQLite database file.
//!
//! Records are stored as JSON bodies next to the few columns that guards and listings
//! need. Every port operation is one `BEGIN IMMEDIATE` transaction, so a guard is
//! checked and its write applied with no other writer in between — the same guarantee
//! DynamoDB's conditional writes give the AWS adapter.
//!
//! A record whose JSON is over [`braid_ports::MAX_RECORD_BYTES`] is refused
//! ([`PortError::Refused`]), as DynamoDB refuses an item over 400 KB: what cannot be
//! recorded on AWS cannot be recorded here either, and fails the same way.

use crate::fault::Fault;
use async_trait::async_trait;
use braid_engine::model::{
    AuditEntry, CancelRequest, Definition, ErrorInfo, MAX_NOTICES, NoticeLog, RunId, RunRecord,
    RunStatus, Signal, SlaMiss, StepId, StepKey, StepRecord, StepStatus, Timestamp,
};
use braid_ports::{
    AuditFilter, Created, Finalized, Guard, PortError, PortResult, Record, RunFilter, StateStore,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// SQLite-backed [`StateStore`].
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Where a failure that retrying cannot cure (a full disk) is noted for the runtime.
    fault: Fault,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS definitions (
    workflow TEXT NOT NULL, version TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (workflow, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS current_definitions (
    workflow TEXT PRIMARY KEY, version TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS markers (
    name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL,
    idempotency_key TEXT, active INTEGER NOT NULL, body TEXT NOT NULL,
    timer INTEGER) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS runs_idempotency ON runs(workflow, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs(workflow, id);
CREATE INDEX IF NOT EXISTS runs_active ON runs(active, id);
CREATE TABLE IF NOT EXISTS signals (
    run_id TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (run_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step TEXT NOT NULL, idx INTEGER NOT NULL,
    status TEXT NOT NULL, attempt INTEGER NOT NULL, body TEXT NOT NULL,
    timer INTEGER,
    PRIMARY KEY (run_id, step, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, workflow TEXT NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_at ON audit(at);
";

/// Columns added after the first release, for files made before them: (table, column).
const ADDED_COLUMNS: &[(&str, &str)] = &[("runs", "timer INTEGER"), ("steps", "timer INTEGER")];

/// Indexes over added columns, made once the columns exist.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS runs_timer ON runs(timer) WHERE timer IS NOT NULL;
CREATE INDEX IF NOT EXISTS steps_timer ON steps(timer, run_id) WHERE timer IS NOT NULL;
";

/// Adds the columns a file made by an older release lacks. Their rows get no timer,
/// which only means the tick finds them by its sweep instead of by their timers.
fn migrate(conn: &Connection) -> PortResult<()> {
    for (table, column) in ADDED_COLUMNS {
        let name = column.split(' ').next().unwrap_or(column);
        let has: bool = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = '{name}'"
            ))
            .and_then(|mut st| st.exists([]))
            .map_err(db)?;
        if !has {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column}"))
                .map_err(db)?;
        }
    }
    conn.execute_batch(INDEXES).map_err(db)
}

/// The URI that opens the database file at the absolute `path` as immutable (no
/// locks, no WAL): every byte a URI path gives a meaning, and every one outside
/// printable ASCII, escaped as `%XX`.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' => uri.push_str(&format!("%{b:02x}")),
            b' '..=b'~' => uri.push(char::from(b)),
            _ => uri.push_str(&format!("%{b:02x}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// A timer as the `timer` column holds it: epoch milliseconds.
fn timer_ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.timestamp_millis())
}

/// Top-level steps are stored with index -1, so they sort before their iterations.
fn idx(key: &StepKey) -> i64 {
    key.index.map_or(-1, i64::from)
}

/// A record as stored: its JSON, refused over the limit DynamoDB's items have
/// ([`braid_ports::MAX_RECORD_BYTES`]) so that what fails on AWS fails here too.
fn enc<T: Record>(v: &T) -> PortResult<String> {
    let json = serde_json::to_string(v).map_err(PortError::backend)?;
    braid_ports::check_record_size(v, json.len())?;
    Ok(json)
}

fn dec<T: serde::de::DeserializeOwned>(s: &str) -> PortResult<T> {
    serde_json::from_str(s).map_err(|e| PortError::backend_in("corrupt record", e))
}

fn db(e: rusqlite::Error) -> PortError {
    PortError::backend(e)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    ///
    /// WAL with `synchronous=NORMAL`: a power loss may drop the last commits but never
    /// corrupts the file, and the sweeper repairs a run whichever commits survived.
    pub fn open(path: &Path) -> PortResult<Self> {
        Self::open_with(path, Fault::new(), None)
    }

    /// [`SqliteStore::open`], noting incurable failures in `fault`; `max_pages` caps
    /// the database's size (SQLite's `max_page_count`), a write beyond it failing as on
    /// a full disk — how the tests make a disk full, as root too.
    pub fn open_with(path: &Path, fault: Fault, max_pages: Option<u32>) -> PortResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(PortError::backend)?;
        }
        let conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        migrate(&conn)?;
        if let Some(pages) = max_pages {
            conn.pragma_update(None, "max_page_count", pages)
                .map_err(db)?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            fault,
        })
    }

    /// Opens the database at `path` for reading only: nothing is created, migrated or
    /// written, so a state folder the user may not write can still be listed and shown,
    /// beside a process that drives it or not. Writes fail.
    ///
    /// With a `-wal` file there, a connection may be writing: the file is read through
    /// the WAL, as a writer's snapshots. Without one no connection is open, and the file
    /// is read as immutable: SQLite would otherwise create `-wal` and `-shm` files to
    /// read it (and fail in a read-only folder), and leave them behind.
    pub fn open_read_only(path: &Path) -> PortResult<Self> {
        use rusqlite::OpenFlags;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if Path::new(&wal).exists() {
            Connection::open_with_flags(path, flags)
        } else {
            let uri = immutable_uri(&path.canonicalize().map_err(PortError::backend)?);
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
        }
        .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            fault: Fault::new(),
        })
    }

    /// Notes `out`'s failure in the fault cell when retrying cannot cure it.
    fn noted<T>(&self, out: PortResult<T>) -> PortResult<T> {
        if let Err(e) = &out {
            self.fault.note(&self.path, e);
        }
        out
    }

    /// Reads need no write lock: a single statement sees one consistent snapshot.
    fn with_read<T>(&self, f: impl FnOnce(&Connection) -> PortResult<T>) -> PortResult<T> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| PortError::backend_msg("store lock poisoned"))?;
        self.noted(f(&conn))
    }

    fn with_tx<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> PortResult<T>) -> PortResult<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| PortError::backend_msg("store lock poisoned"))?;
        let out = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)
            .and_then(|tx| {
                let out = f(&tx)?;
                tx.commit().map_err(db)?;
                Ok(out)
            });
        self.noted(out)
    }
}

/// The body column of the one row `sql` selects, if any; statements are cached, as
/// every message runs the same few.
fn one_body(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> PortResult<Option<String>> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.query_row(args, |r| r.get(0)).optional())
        .map_err(db)
}

/// Stores `def` as a version of its workflow (the same version twice is one).
fn insert_version(conn: &Connection, def: &Definition) -> PortResult<()> {
    exec(
        conn,
        "INSERT OR IGNORE INTO definitions (workflow, version, body) VALUES (?1, ?2, ?3)",
        params![def.workflow, def.version, enc(def)?],
    )?;
    Ok(())
}

/// Runs a cached write statement.
fn exec(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> PortResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute(args))
        .map_err(db)
}

fn read_run(tx: &Connection, id: &str) -> PortResult<RunRecord> {
    let body: Option<String> = one_body(tx, "SELECT body FROM runs WHERE id = ?1", [id])?;
    dec(&body.ok_or_else(|| PortError::NotFound(format!("run {id}")))?)
}

fn write_run(tx: &Connection, run: &RunRecord) -> PortResult<()> {
    exec(
        tx,
        "UPDATE runs SET status = ?2, active = ?3, body = ?4, timer = ?5 WHERE id = ?1",
        params![
            run.id.as_str(),
            run.status.as_str(),
            !run.status.is_final(),
            enc(run)?,
            timer_ms(run.timer())
        ],
    )?;
    Ok(())
}

fn read_step(tx: &Connection, run_id: &str, key: &StepKey) -> PortResult<Option<StepRecord>> {
    let body: Option<String> = one_body(
        tx,
        "SELECT body FROM steps WHERE run_id = ?1 AND step = ?2 AND idx = ?3",
        params![run_id, key.step.as_str(), idx(key)],
    )?;
    body.map(|b| dec(&b)).transpose()
}

fn write_step(tx: &Connection, rec: &StepRecord) -> PortResult<()> {
    exec(
        tx,
        "INSERT INTO steps (run_id, step, idx, status, attempt, body, timer)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (run_id, step, idx) DO UPDATE SET status = ?4, attempt = ?5, body = ?6, timer = ?7",
        params![
            rec.run_id.as_str(),
            rec.key.step.as_str(),
            idx(&rec.key),
            rec.status.as_str(),
            rec.attempt,
            enc(rec)?,
            timer_ms(rec.timer())
        ],
    )?;
    Ok(())
}

/// Whether `guard` holds for the record `new` replaces (an absent step is
/// pending, see [`Guard::admits_absent`]).
fn guarded(tx: &Connection, guard: &Guard, new: &StepRecord) -> PortResult<bool> {
    match read_step(tx, &new.run_id, &new.key)? {
        Some(cur) => Ok(guard.holds(&cur)),
        None if guard.admits_absent() => Ok(true),
        None => Err(PortError::NotFound(format!(
            "step {} of run {}",
            new.key, new.run_id
        ))),
    }
}

fn query_bodies<T: serde::de::DeserializeOwned>(
    tx: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> PortResult<Vec<T>> {
    let mut stmt = tx.prepare_cached(sql).map_err(db)?;
    let rows = stmt
        .query_map(args, |r| r.get::<_, String>(0))
        .map_err(db)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(dec(&row.map_err(db)?)?);
    }
    Ok(out)
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn put_definition(&self, def: &Definition) -> PortResult<()> {
        self.with_tx(|tx| {
            insert_version(tx, def)?;
            exec(
                tx,
                "INSERT OR REPLACE INTO current_definitions (workflow, version) VALUES (?1, ?2)",
                params![def.workflow, def.version],
            )?;
            Ok(())
        })
    }

    async fn put_version(&self, def: &Definition) -> PortResult<()> {
        self.with_tx(|tx| insert_version(tx, def))
    }

    async fn current_definition(&self, workflow: &str) -> PortResult<Definition> {
        self.with_read(|tx| {
            let body: Option<String> = one_body(
                tx,
                "SELECT d.body FROM current_definitions c JOIN definitions d
                   ON d.workflow = c.workflow AND d.version = c.version WHERE c.workflow = ?1",
                params![workflow],
            )?;
            dec(&body.ok_or_else(|| PortError::NotFound(format!("workflow {workflow}")))?)
        })
    }

    async fn current_definitions(&self) -> PortResult<Vec<Definition>> {
        self.with_read(|tx| {
            query_bodies(
                tx,
                "SELECT d.body FROM current_definitions c JOIN definitions d
                   ON d.workflow = c.workflow AND d.version = c.version ORDER BY c.workflow",
                [],
            )
        })
    }

    async fn remove_definition(&self, workflow: &str) -> PortResult<bool> {
        self.with_tx(|tx| {
            let removed = exec(
                tx,
                "DELETE FROM current_definitions WHERE workflow = ?1",
                [workflow],
            )?;
            Ok(removed > 0)
        })
    }

    async fn marker(&self, name: &str) -> PortResult<Option<String>> {
        self.with_read(|tx| one_body(tx, "SELECT value FROM markers WHERE name = ?1", [name]))
    }

    async fn set_marker(&self, name: &str, value: Option<&str>) -> PortResult<()> {
        self.with_tx(|tx| {
            match value {
                Some(v) => exec(
                    tx,
                    "INSERT OR REPLACE INTO markers (name, value) VALUES (?1, ?2)",
                    params![name, v],
                )?,
                None => exec(tx, "DELETE FROM markers WHERE name = ?1", [name])?,
            };
            Ok(())
        })
    }

    async fn get_definition(&self, workflow: &str, version: &str) -> PortResult<Definition> {
        self.with_read(|tx| {
            let body: Option<String> = one_body(
                tx,
                "SELECT body FROM definitions WHERE workflow = ?1 AND version = ?2",
                params![workflow, version],
            )?;
            dec(&body
                .ok_or_else(|| PortError::NotFound(format!("definition {workflow}@{version}")))?)
        })
    }

    async fn create_run(&self, run: &RunRecord, steps: &[StepRecord]) -> PortResult<Created> {
        self.with_tx(|tx| {
            if let Some(key) = &run.idempotency_key {
                let existing: Option<String> = one_body(
                    tx,
                    "SELECT body FROM runs WHERE workflow = ?1 AND idempotency_key = ?2",
                    params![run.workflow, key],
                )?;
                if let Some(body) = existing {
                    return Ok(Created::Existing(Box::new(dec(&body)?)));
                }
            }
            let inserted = exec(
                tx,
                "INSERT OR IGNORE INTO runs (id, workflow, status, idempotency_key, active, body, timer)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    run.id.as_str(),
                    run.workflow,
                    run.status.as_str(),
                    run.idempotency_key,
                    !run.status.is_final(),
                    enc(run)?,
                    timer_ms(run.timer())
                ],
            )?;
            if inserted == 0 {
                return Err(PortError::Conflict(format!("run {} exists", run.id)));
            }
            for s in steps {
                write_step(tx, s)?;
            }
            Ok(Created::New)
        })
    }

    async fn get_run(&self, run_id: &RunId) -> PortResult<RunRecord> {
        self.with_read(|tx| read_run(tx, run_id))
    }

    async fn list_runs(&self, filter: &RunFilter) -> PortResult<Vec<RunRecord>> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit } as i64;
        self.with_read(|tx| {
            query_bodies(
                tx,
                "SELECT body FROM runs WHERE (?1 IS NULL OR workflow = ?1) AND (?2 IS NULL OR status = ?2)
                 ORDER BY id DESC LIMIT ?3",
                params![filter.workflow, filter.status.map(RunStatus::as_str), limit],
            )
        })
    }

    async fn runs_with_prefix(&self, prefix: &str, limit: usize) -> PortResult<Vec<RunId>> {
        // Run ids are ULIDs (letters and digits): no LIKE wildcard (`%`, `_`) is in
        // one, so a prefix with one is no run's.
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Ok(Vec::new());
        }
        self.with_read(|tx| {
            let mut st = tx
                .prepare_cached("SELECT id FROM runs WHERE id LIKE ?1 || '%' ORDER BY id LIMIT ?2")
                .map_err(db)?;
            st.query_map(params![prefix, limit as i64], |r| r.get::<_, String>(0))
                .map_err(db)?
                .map(|r| r.map(RunId::from).map_err(db))
                .collect()
        })
    }

    async fn active_runs(&self, after: Option<&RunId>, limit: usize) -> PortResult<Vec<RunRecord>> {
        self.with_read(|tx| {
            query_bodies(
                tx,
                "SELECT body FROM runs WHERE active = 1 AND id > ?1 ORDER BY id LIMIT ?2",
                params![after.map_or("", RunId::as_str), limit as i64],
            )
        })
    }

    async fn due_runs(&self, before: Timestamp, limit: usize) -> PortResult<Vec<RunId>> {
        self.with_read(|tx| {
            let mut st = tx
                .prepare_cached(
                    "SELECT run_id FROM (
                         SELECT run_id, timer FROM steps WHERE timer IS NOT NULL AND timer <= ?1
                         UNION ALL
                         SELECT id, timer FROM runs WHERE timer IS NOT NULL AND timer <= ?1)
                     GROUP BY run_id ORDER BY MIN(timer) LIMIT ?2",
                )
                .map_err(db)?;
            let ids = st
                .query_map(params![before.timestamp_millis(), limit as i64], |r| {
                    r.get::<_, String>(0).map(RunId::from)
                })
                .and_then(|rows| rows.collect())
                .map_err(db)?;
            Ok(ids)
        })
    }

    async fn get_step(&self, run_id: &RunId, key: &StepKey) -> PortResult<StepRecord> {
        self.with_read(|tx| {
            read_step(tx, run_id, key)?
                .ok_or_else(|| PortError::NotFound(format!("step {key} of run {run_id}")))
        })
    }

    async fn list_steps(&self, run_id: &RunId) -> PortResult<Vec<StepRecord>> {
        self.with_read(|tx| {
            query_bodies(
                tx,
                "SELECT body FROM steps WHERE run_id = ?1 ORDER BY idx, step",
                [run_id.as_str()],
            )
        })
    }

    async fn list_iterations(&self, run_id: &RunId, step: &StepId) -> PortResult<Vec<StepRecord>> {
        self.with_read(|tx| {
            query_bodies(
                tx,
                "SELECT body FROM steps WHERE run_id = ?1 AND step = ?2 AND idx >= 0 ORDER BY idx",
                params![run_id.as_str(), step.as_str()],
            )
        })
    }

    async fn update_step(&self, guard: &Guard, new: &StepRecord) -> PortResult<bool> {
        debug_assert!(
            !new.status.is_final(),
            "final writes go through finalize_step"
        );
        self.with_tx(|tx| {
            if !guarded(tx, guard, new)? {
                return Ok(false);
            }
            write_step(tx, new)?;
            Ok(true)
        })
    }

    async fn finalize_step(
        &self,
        guard: &Guard,
        new: &StepRecord,
        fail_run: Option<&ErrorInfo>,
    ) -> PortResult<Option<Finalized>> {
        debug_assert!(new.status.is_final());
        self.with_tx(|tx| {
            if !guarded(tx, guard, new)? {
                return Ok(None);
            }
            write_step(tx, new)?;
            let mut run = read_run(tx, &new.run_id)?;
            let fails = fail_run.filter(|_| !run.failing && !run.status.is_final());
            if let Some(error) = fails {
                run.failing = true;
                run.error = Some(error.clone());
            }
            if fails.is_some() {
                write_run(tx, &run)?;
            }
            let parent = match new.key.index {
                Some(_) if new.status == StepStatus::Failed => {
                    let pkey = StepKey::step(&new.key.step);
                    let mut parent = read_step(tx, &new.run_id, &pkey)?.ok_or_else(|| {
                        PortError::NotFound(format!("step {pkey} of run {}", new.run_id))
                    })?;
                    parent.fan_out.get_or_insert_with(Default::default).failed += 1;
                    write_step(tx, &parent)?;
                    Some(parent)
                }
                _ => None,
            };
            Ok(Some(Finalized { run, parent }))
        })
    }

    async fn satisfy(
        &self,
        run_id: &RunId,
        dependent: &StepId,
        dep: &StepId,
        needs: &[String],
        now: Timestamp,
    ) -> PortResult<Option<StepRecord>> {
        self.with_tx(|tx| {
            let key = StepKey::step(dependent);
            // A step not written yet is pending.
            let mut rec = read_step(tx, run_id, &key)?
                .unwrap_or_else(|| StepRecord::new(run_id, key, StepStatus::Pending));
            let added = !rec.satisfied.iter().any(|d| d == dep);
            if added {
                rec.satisfied.push(dep.to_string());
            }
            let ready = rec.status == StepStatus::Pending
                && needs.iter().all(|n| rec.satisfied.contains(n));
            if ready {
                rec.status = StepStatus::Ready;
                rec.due_at = Some(now);
            }
            if added || ready {
                write_step(tx, &rec)?;
            }
            Ok(ready.then_some(rec))
        })
    }

    async fn end_lane(&self, run_id: &RunId, step: &StepId) -> PortResult<Option<StepRecord>> {
        self.with_tx(|tx| {
            let pkey = StepKey::step(step);
            let Some(mut parent) = read_step(tx, run_id, &pkey)? else {
                return Err(PortError::NotFound(format!("step {pkey} of run {run_id}")));
            };
            let Some(f) = parent
                .fan_out
                .as_mut()
                .filter(|_| parent.status == StepStatus::Running)
            else {
                return Ok(None);
            };
            f.ended += 1;
            write_step(tx, &parent)?;
            Ok(Some(parent))
        })
    }

    async fn finish_run(&self, run: &RunRecord) -> PortResult<bool> {
        self.with_tx(|tx| {
            let cur = read_run(tx, &run.id)?;
            // A run that a step failed since it was read does not end succeeded.
            if cur.status.is_final() || (cur.failing && run.status == RunStatus::Succeeded) {
                return Ok(false);
            }
            write_run(tx, run)?;
            Ok(true)
        })
    }

    async fn close_run(&self, run: &RunRecord) -> PortResult<()> {
        self.with_tx(|tx| {
            let cur = read_run(tx, &run.id)?;
            if cur.closing {
                write_run(
                    tx,
                    &RunRecord {
                        closing: false,
                        ..cur
                    },
                )?;
            }
            Ok(())
        })
    }

    async fn request_cancel(
        &self,
        run_id: &RunId,
        cancel: &CancelRequest,
    ) -> PortResult<Option<RunRecord>> {
        self.with_tx(|tx| {
            let cur = read_run(tx, run_id)?;
            if cur.status != RunStatus::Running || cur.failing || cur.cancel.is_some() {
                return Ok(None);
            }
            let asked = RunRecord {
                failing: true,
                error: Some(cancel.error()),
                cancel: Some(cancel.clone()),
                ..cur
            };
            write_run(tx, &asked)?;
            Ok(Some(asked))
        })
    }

    async fn note_notice(&self, run_id: &RunId, log: &NoticeLog) -> PortResult<bool> {
        self.with_tx(|tx| {
            let mut run = read_run(tx, run_id)?;
            if run.notices.len() >= MAX_NOTICES {
                return Ok(false);
            }
            run.notices.push(log.clone());
            write_run(tx, &run)?;
            Ok(true)
        })
    }

    async fn note_sla_missed(
        &self,
        was: &RunRecord,
        missed: &[SlaMiss],
        next: Option<Timestamp>,
    ) -> PortResult<bool> {
        self.with_tx(|tx| {
            let mut run = read_run(tx, &was.id)?;
            if run.status != was.status || run.sla_due != was.sla_due {
                return Ok(false);
            }
            run.sla_missed.extend_from_slice(missed);
            run.sla_due = next;
            write_run(tx, &run)?;
            Ok(true)
        })
    }

    async fn note_audit(&self, entry: &AuditEntry) -> PortResult<()> {
        let body = serde_json::to_string(entry).map_err(PortError::backend)?;
        self.with_tx(|tx| {
            exec(
                tx,
                "INSERT INTO audit (at, workflow, body) VALUES (?1, ?2, ?3)",
                params![entry.at.timestamp_millis(), entry.workflow, body],
            )
            .map(|_| ())
        })
    }

    async fn audit(&self, filter: &AuditFilter) -> PortResult<Vec<AuditEntry>> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit } as i64;
        let since = timer_ms(filter.since);
        let mut latest: Vec<AuditEntry> = self.with_read(|tx| {
            // A state made before the audit trail, opened read-only, has no table.
            let has: bool = tx
                .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'")
                .and_then(|mut st| st.exists([]))
                .map_err(db)?;
            if !has {
                return Ok(Vec::new());
            }
            query_bodies(
                tx,
                "SELECT body FROM audit WHERE (?1 IS NULL OR workflow = ?1) AND (?2 IS NULL OR at >= ?2)
                 ORDER BY at DESC, seq DESC LIMIT ?3",
                params![filter.workflow, since, limit],
            )
        })?;
        latest.reverse();
        Ok(latest)
    }

    async fn reopen_run(&self, was: &RunRecord, run: &RunRecord) -> PortResult<bool> {
        self.with_tx(|tx| {
            let cur = read_run(tx, &run.id)?;
            let unchanged = cur.status == was.status
                && cur.finished_at == was.finished_at
                && cur.redrives.len() == was.redrives.len()
                && !cur.closing;
            if !unchanged {
                return Ok(false);
            }
            if let Some(limit) = run.limit
                && held_slots(tx, &run.workflow)? >= i64::from(limit)
            {
                return Ok(false);
            }
            write_run(tx, run)?;
            Ok(true)
        })
    }

    async fn delete_iterations(
        &self,
        run_id: &RunId,
        step: &StepId,
        keep: &[u32],
    ) -> PortResult<()> {
        let keep = serde_json::to_string(keep).expect("indexes serialize");
        self.with_tx(|tx| {
            exec(
                tx,
                "DELETE FROM steps WHERE run_id = ?1 AND step = ?2 AND idx >= 0 \
                 AND idx NOT IN (SELECT value FROM json_each(?3))",
                params![run_id.as_str(), step.as_str(), keep],
            )
            .map(|_| ())
        })
    }

    async fn put_signal(&self, run_id: &RunId, signal: &Signal) -> PortResult<Signal> {
        let body = enc(signal)?;
        self.with_tx(|tx| {
            exec(
                tx,
                "INSERT OR IGNORE INTO signals (run_id, name, body) VALUES (?1, ?2, ?3)",
                params![run_id.as_str(), signal.name, body],
            )?;
            let kept: Option<String> = one_body(
                tx,
                "SELECT body FROM signals WHERE run_id = ?1 AND name = ?2",
                params![run_id.as_str(), signal.name],
            )?;
            dec(&kept.expect("just written"))
        })
    }

    async fn get_signal(&self, run_id: &RunId, name: &str) -> PortResult<Option<Signal>> {
        self.with_read(|tx| {
            one_body(
                tx,
                "SELECT body FROM signals WHERE run_id = ?1 AND name = ?2",
                params![run_id.as_str(), name],
            )?
            .map(|b| dec(&b))
            .transpose()
        })
    }

    async fn queued_runs(&self, workflow: &str, limit: usize) -> PortResult<Vec<RunRecord>> {
        self.with_read(|tx| {
            query_bodies(
                tx,
                "SELECT body FROM runs WHERE workflow = ?1 AND status = 'queued' ORDER BY id LIMIT ?2",
                params![workflow, limit as i64],
            )
        })
    }

    /// The slots held are counted, not kept in a counter: the transaction sees every
    /// run of the workflow as it is.
    async fn take_slot(&self, run: &RunRecord, limit: u32) -> PortResult<bool> {
        self.with_tx(|tx| {
            if read_run(tx, &run.id)?.status != RunStatus::Queued {
                return Ok(false);
            }
            if held_slots(tx, &run.workflow)? >= i64::from(limit) {
                return Ok(false);
            }
            write_run(tx, run)?;
            Ok(true)
        })
    }
}

/// How many runs of `workflow` hold a slot: counted, not kept in a counter, so the
/// transaction sees every run of the workflow as it is.
fn held_slots(tx: &rusqlite::Transaction<'_>, workflow: &str) -> PortResult<i64> {
    tx.prepare_cached(
        "SELECT COUNT(*) FROM runs WHERE workflow = ?1 AND active = 1
           AND json_extract(body, '$.slot') = 1",
    )
    .and_then(|mut st| st.query_row([workflow], |r| r.get(0)))
    .map_err(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(workflow: &str) -> Definition {
        Definition {
            workflow: workflow.into(),
            version: "v1".into(),
            file: format!("{workflow}.yaml"),
            source: format!("name: {workflow}\nsteps:\n  - id: a\n    pass: 1\n"),
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// SQLite enforces the read-only open itself, so this holds for root as well.
    #[tokio::test]
    async fn a_read_only_store_reads_refuses_writes_and_creates_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let writer = SqliteStore::open(&db).unwrap();
        writer.put_definition(&definition("kept")).await.unwrap();
        drop(writer);
        let before = files(dir.path());
        assert_eq!(
            before,
            ["state.db"],
            "the last connection cleans its WAL up"
        );

        let reader = SqliteStore::open_read_only(&db).unwrap();
        assert_eq!(
            reader.current_definition("kept").await.unwrap().workflow,
            "kept"
        );
        assert!(reader.put_definition(&definition("new")).await.is_err());
        drop(reader);
        assert_eq!(files(dir.path()), before);
    }

    #[tokio::test]
    async fn a_read_only_store_sees_what_a_live_writer_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let writer = SqliteStore::open(&db).unwrap();
        writer.put_definition(&definition("first")).await.unwrap();
        let reader = SqliteStore::open_read_only(&db).unwrap();
        writer.put_definition(&definition("second")).await.unwrap();
        let names: Vec<String> = reader
            .current_definitions()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.workflow)
            .collect();
        assert_eq!(names, ["first", "second"]);
    }

    #[tokio::test]
    async fn a_quiet_database_with_an_awkward_name_is_read_as_immutable() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a ?#% b.db");
        let writer = SqliteStore::open(&db).unwrap();
        writer.put_definition(&definition("only")).await.unwrap();
        drop(writer);
        let reader = SqliteStore::open_read_only(&db).unwrap();
        assert_eq!(
            reader.current_definition("only").await.unwrap().workflow,
            "only"
        );
    }
}
