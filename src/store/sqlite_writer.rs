//! Group commit for the SQLite store.
//!
//! SQLite has one writer at a time, and with `synchronous=FULL` every commit waits for an
//! fsync of the WAL. When each login's writes (TOTP step, challenge, audit record) commit on
//! their own, logins queue behind each other's fsyncs: profiled at ~750 logins/s on a disk
//! whose fsync takes 0.5 ms, whatever the CPU could do.
//!
//! So the hot-path writes go through one writer task: it takes every write that is waiting,
//! runs them one after another inside a single `BEGIN IMMEDIATE` transaction, commits once,
//! and only then answers each caller. Durability is unchanged — nobody hears "done" before
//! the commit (and its fsync) — but one fsync now covers a whole batch, and batches grow by
//! themselves with the load (while one batch commits, the next one queues).
//!
//! Each write stays atomic and checked on its own: the writes of a batch run strictly one
//! after another, each single-statement check-and-update sees the effect of the ones before
//! it, and a write made of several statements wraps them in a savepoint (`conn.begin()`
//! inside the batch's transaction) so its failure undoes only itself. `BEGIN IMMEDIATE` takes
//! the database's write lock for the whole batch, so other processes on the same file (the
//! admin commands) stay correct too. If the commit fails, every caller of the batch gets the
//! error: a write that may not be on disk is never reported as done (fail closed).
//!
//! Hand-written: sqlx has no group commit, and a generic batching crate could not run the
//! batch inside one SQLite transaction.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{AuditRecord, StoreError};

/// Most writes in one transaction: bounds how long the write lock is held for other
/// processes, and how long the first write of a big batch waits for the last.
const MAX_BATCH: usize = 512;
/// Writes waiting for the writer. A full queue makes callers wait (backpressure), it never
/// drops a write.
const QUEUE: usize = 4096;

type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;
/// Called once the batch's commit is known: `Ok` if it is on disk.
type Finish = Box<dyn FnOnce(Result<(), Arc<sqlx::Error>>) + Send>;
/// A write: given the batch's connection (or why the batch could not start), it runs and
/// returns what to tell its caller after the commit.
type SingleJob = Box<
    dyn for<'c> FnOnce(Result<&'c mut SqliteConnection, Arc<sqlx::Error>>) -> BoxFuture<'c, Finish>
        + Send,
>;

enum Job {
    /// A write of its own: one or more statements.
    Single(SingleJob),
    /// An audit record. Every request writes one, so a batch's records go into the database
    /// together, as one multi-row INSERT (one round trip instead of one per request).
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

impl Writer {
    /// Starts the writer task on the current tokio runtime. It ends when the last `Writer`
    /// clone is dropped.
    pub(super) fn start(pool: SqlitePool) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(pool, rx, commits.clone(), writes.clone()));
        Writer {
            jobs,
            commits,
            writes,
        }
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
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: SingleJob = Box::new(move |conn| {
            Box::pin(async move {
                let result = match conn {
                    Ok(conn) => f(conn).await,
                    Err(e) => Err(StoreError::Commit(e.to_string())),
                };
                Box::new(move |commit: Result<(), Arc<sqlx::Error>>| {
                    let answer = match commit {
                        Ok(()) => result,
                        Err(e) => Err(StoreError::Commit(e.to_string())),
                    };
                    // The caller may be gone (request deadline); the write stands anyway.
                    let _ = tx.send(answer);
                }) as Finish
            })
        });
        let gone = || StoreError::Commit("the store's writer has stopped".into());
        self.jobs.send(Job::Single(job)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Appends an audit record in the next batch; its id once committed.
    pub(super) async fn append_audit(&self, record: AuditRecord) -> Result<i64, StoreError> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Commit("the store's writer has stopped".into());
        self.jobs
            .send(Job::Audit(Box::new(record), tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

async fn run(
    pool: SqlitePool,
    mut rx: mpsc::Receiver<Job>,
    commits: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Err(e) = run_batch(&pool, &mut batch, (&commits, &writes)).await {
            // No connection or no transaction: nothing ran; every caller hears why.
            tracing::warn!(error = %e, "store write batch could not start");
            let e = Arc::new(e);
            for job in batch.drain(..) {
                match job {
                    Job::Single(job) => {
                        let finish = job(Err(e.clone())).await;
                        finish(Err(e.clone()));
                    }
                    Job::Audit(_, tx) => {
                        let _ = tx.send(Err(StoreError::Commit(e.to_string())));
                    }
                }
            }
        }
    }
}

/// Runs and commits one batch and answers its callers. `Err` means it never started and the
/// jobs are still in `batch`.
async fn run_batch(
    pool: &SqlitePool,
    batch: &mut Vec<Job>,
    (commits, writes): (&AtomicU64, &AtomicU64),
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    let mut finishers = Vec::with_capacity(batch.len());
    let mut records = Vec::new();
    let mut answers = Vec::new();
    for job in batch.drain(..) {
        match job {
            Job::Single(job) => finishers.push(job(Ok(&mut *tx)).await),
            Job::Audit(record, answer) => {
                records.push(*record);
                answers.push(answer);
            }
        }
    }
    let first_id = if records.is_empty() {
        Ok(0)
    } else {
        super::sqlite::insert_audits(&mut tx, &records).await
    };
    let commit = tx.commit().await.map_err(Arc::new);
    let written = finishers.len() + answers.len();
    for (i, answer) in answers.into_iter().enumerate() {
        let result = match (&commit, &first_id) {
            (Ok(()), Ok(first)) => Ok(first + i as i64),
            (Err(e), _) => Err(StoreError::Commit(e.to_string())),
            (Ok(()), Err(e)) => Err(StoreError::Commit(format!("audit insert: {e}"))),
        };
        let _ = answer.send(result);
    }
    match &commit {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
            writes.fetch_add(written as u64, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(error = %e, writes = finishers.len(), "store write batch failed to commit")
        }
    }
    for finish in finishers {
        finish(commit.clone());
    }
    Ok(())
}
