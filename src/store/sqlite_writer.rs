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

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

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
type Job = Box<dyn FnOnce(Result<&mut Connection, String>) -> Finish + Send>;

#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Transactions committed so far (each covering one or more writes).
    commits: Arc<AtomicU64>,
    /// Writes in those transactions.
    writes: Arc<AtomicU64>,
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
        let job: Job = Box::new(move |conn| {
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
        self.jobs.send(job).await.map_err(|_| gone())?;
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
            job(Err(e.clone()))(Err(e.clone()));
        }
        return false;
    }
    let mut finishers: Vec<Finish> = Vec::with_capacity(batch.len());
    let mut panicked = false;
    for job in batch.drain(..) {
        if panicked {
            let why = "an earlier write of its batch failed; batch rolled back".to_string();
            finishers.push(job(Err(why)));
            continue;
        }
        // A bug in one write must not take the writer (and with it every later login) down:
        // the panicking write's caller sees its channel close, the batch is rolled back, and
        // the thread goes on with the next batch.
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(&mut *conn)))) {
            Ok(finish) => finishers.push(finish),
            Err(_) => {
                tracing::error!("a store write panicked; its batch is rolled back");
                panicked = true;
            }
        }
    }
    let commit = if panicked {
        Err("a write of this batch panicked; batch rolled back".to_string())
    } else {
        conn.execute_batch("COMMIT").map_err(|e| e.to_string())
    };
    if let Err(e) = &commit {
        tracing::warn!(error = %e, writes = finishers.len(), "store write batch failed to commit");
        // Leave no transaction open for the next batch.
        let _ = conn.execute_batch("ROLLBACK");
    }
    for finish in finishers {
        finish(commit.clone());
    }
    commit.is_ok()
}
