//! Group commit for the SQLite store.
//!
//! SQLite has one writer at a time, and with `synchronous=FULL` every commit waits for an
//! fsync of the WAL. When each login's writes (TOTP step, challenge, audit record) commit on
//! their own, logins queue behind each other's fsyncs: profiled at ~750 logins/s on a disk
//! whose fsync takes 0.5 ms, whatever the CPU could do.
//!
//! So the hot-path writes go through one writer thread: it takes every write that is
//! waiting, runs them one after another inside a single `BEGIN IMMEDIATE` transaction,
//! commits once, and only then answers each caller. Durability is unchanged — nobody hears
//! "done" before the commit (and its fsync) — but one fsync now covers a whole batch, and
//! batches grow by themselves with the load (while one batch commits, the next one queues).
//!
//! The thread has its own rusqlite connection to the same file and runs each write as plain
//! synchronous calls. Through sqlx, every statement is a round trip to the connection's
//! worker thread (two thread wake-ups); profiled, those hand-offs were half of radmfa's CPU
//! and made the single writer the bottleneck. Here a whole batch costs one wake-up.
//!
//! Each write stays atomic and checked on its own: the writes of a batch run strictly one
//! after another, each single-statement check-and-update sees the effect of the ones before
//! it, and a write made of several statements wraps them in a savepoint so its failure
//! undoes only itself. `BEGIN IMMEDIATE` takes the database's write lock for the whole batch,
//! so other connections and processes on the same file (the admin commands) stay correct
//! too. If the commit fails, every caller of the batch gets the error: a write that may not
//! be on disk is never reported as done (fail closed).
//!
//! Hand-written: neither sqlx nor rusqlite has group commit, and a generic batching crate
//! could not run the batch inside one SQLite transaction.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{AuditRecord, StoreError};

/// Most writes in one transaction: bounds how long the write lock is held for other
/// processes, and how long the first write of a big batch waits for the last.
const MAX_BATCH: usize = 512;
/// Writes waiting for the writer. A full queue makes callers wait (backpressure), it never
/// drops a write.
const QUEUE: usize = 4096;

/// Called once the batch's commit is known: `Ok` if it is on disk.
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write: given the batch's connection inside its transaction (or why the batch could
/// not start), it runs and returns what to tell its caller after the commit.
type SingleJob = Box<dyn FnOnce(Result<&mut Connection, String>) -> Finish + Send>;

enum Job {
    /// A write of its own: one or more statements.
    Single(SingleJob),
    /// An audit record. Every request writes one, so a batch's records go into the database
    /// together, as one multi-row INSERT.
    Audit(Box<AuditRecord>, oneshot::Sender<Result<i64, StoreError>>),
}

#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Transactions committed so far (each covering one or more writes).
    commits: Arc<AtomicU64>,
    /// Writes in those transactions.
    writes: Arc<AtomicU64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Single(_) => "Job::Single",
            Job::Audit(..) => "Job::Audit",
        })
    }
}

impl Writer {
    /// Opens the writer's own connection to the database at `path` (schema already migrated)
    /// and starts its thread. The thread ends when the last `Writer` clone is dropped.
    pub(super) fn start(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(sqlite_err)?;
        conn.busy_timeout(busy_timeout).map_err(sqlite_err)?;
        // The same settings as the sqlx pool: an acknowledged write survives a power cut.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(sqlite_err)?;
        let (jobs, rx) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let counters = (commits.clone(), writes.clone());
        std::thread::Builder::new()
            .name("radmfa-store-writer".into())
            .spawn(move || run(conn, rx, counters))
            .map_err(|e| StoreError::Commit(format!("cannot start the store writer: {e}")))?;
        Ok(Writer {
            jobs,
            commits,
            writes,
        })
    }

    /// (writes, commits) so far: how well group commit is batching.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.commits.load(Ordering::Relaxed),
        )
    }

    /// Runs `f` in the next batch and returns its result once the batch is committed.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: SingleJob = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => f(conn),
                Err(e) => Err(StoreError::Commit(e)),
            };
            Box::new(move |commit: Result<(), String>| {
                let answer = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Commit(e)),
                };
                // The caller may be gone (request deadline); the write stands anyway.
                let _ = tx.send(answer);
            })
        });
        self.jobs.send(Job::Single(job)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Appends an audit record in the next batch; its id once committed.
    pub(super) async fn append_audit(&self, record: AuditRecord) -> Result<i64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Audit(Box::new(record), tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

fn gone() -> StoreError {
    StoreError::Commit("the store's writer has stopped".into())
}

pub(super) fn sqlite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e.to_string())
}

/// Is this a UNIQUE or PRIMARY KEY violation?
pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, (commits, writes): Counters) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let written = batch.len() as u64;
        if run_batch(&mut conn, &mut batch) {
            commits.fetch_add(1, Ordering::Relaxed);
            writes.fetch_add(written, Ordering::Relaxed);
        }
    }
}

type Counters = (Arc<AtomicU64>, Arc<AtomicU64>);

/// Runs and commits one batch and answers its callers; true if it committed.
fn run_batch(conn: &mut Connection, batch: &mut Vec<Job>) -> bool {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Nothing ran; every caller hears why.
        tracing::warn!(error = %e, "store write batch could not start");
        let e = e.to_string();
        for job in batch.drain(..) {
            match job {
                Job::Single(job) => job(Err(e.clone()))(Err(e.clone())),
                Job::Audit(_, tx) => {
                    let _ = tx.send(Err(StoreError::Commit(e.clone())));
                }
            }
        }
        return false;
    }
    let mut finishers = Vec::with_capacity(batch.len());
    let mut records = Vec::new();
    let mut answers = Vec::new();
    for job in batch.drain(..) {
        match job {
            Job::Single(job) => finishers.push(job(Ok(&mut *conn))),
            Job::Audit(record, answer) => {
                records.push(*record);
                answers.push(answer);
            }
        }
    }
    let first_id = if records.is_empty() {
        Ok(0)
    } else {
        insert_audits(conn, &records)
    };
    let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
    if let Err(e) = &commit {
        tracing::warn!(error = %e, writes = finishers.len() + answers.len(),
            "store write batch failed to commit");
        // Leave no transaction open for the next batch.
        let _ = conn.execute_batch("ROLLBACK");
    }
    for finish in finishers {
        finish(commit.clone());
    }
    for (i, answer) in answers.into_iter().enumerate() {
        let result = match (&commit, &first_id) {
            (Ok(()), Ok(first)) => Ok(first + i as i64),
            (Err(e), _) => Err(StoreError::Commit(e.clone())),
            (Ok(()), Err(e)) => Err(StoreError::Commit(format!("audit insert: {e}"))),
        };
        let _ = answer.send(result);
    }
    commit.is_ok()
}

/// Inserts `records` with one multi-row INSERT per 512 rows (15 values each, well below
/// SQLite's 32,766 bound parameters) and returns the first new id. The ids are consecutive:
/// rows of one statement get ids one after another from the table's maximum, under the
/// write lock this transaction holds.
fn insert_audits(conn: &Connection, records: &[AuditRecord]) -> Result<i64, rusqlite::Error> {
    const COLUMNS: usize = 15;
    let mut first = None;
    for chunk in records.chunks(512) {
        let mut sql = String::from(
            "INSERT INTO audit (time, user, first_name, last_name, email, phone, token_serial, \
             mode, result, reason, server_name, server_ip, client_ip, nas_name, latency_ms) \
             VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            let base = i * COLUMNS;
            let marks: Vec<String> = (1..=COLUMNS).map(|c| format!("?{}", base + c)).collect();
            sql.push('(');
            sql.push_str(&marks.join(","));
            sql.push(')');
        }
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * COLUMNS);
        for r in chunk {
            values.extend_from_slice(&[
                &r.time,
                &r.user,
                &r.first_name,
                &r.last_name,
                &r.email,
                &r.phone,
                &r.token_serial,
                &r.mode,
                &r.result,
                &r.reason,
                &r.server_name,
                &r.server_ip,
                &r.client_ip,
                &r.nas_name,
                &r.latency_ms,
            ]);
        }
        conn.prepare_cached(&sql)?.execute(values.as_slice())?;
        let last = conn.last_insert_rowid();
        first.get_or_insert(last - chunk.len() as i64 + 1);
    }
    Ok(first.unwrap_or(0))
}
