//! Group commit for the SQLite store.
//!
//! SQLite has one writer at a time, and with `synchronous=FULL` every commit waits for an
//! fsync of the WAL. When each login's writes (TOTP step, challenge, audit record) commit on
//! their own, logins queue behind each other's fsyncs: profiled at ~750 logins/s on a disk
//! whose fsync takes 0.5 ms, whatever the CPU could do.
//!
//! So the hot-path writes go through one writer thread: it opens a `BEGIN IMMEDIATE`
//! transaction, runs the writes one after another as they arrive, commits once, and only
//! then answers each caller. Durability is unchanged — nobody hears "done" before the
//! commit (and its fsync) — but one fsync covers a whole batch. Batches grow by themselves
//! with the load (while one batch commits, the next one queues), and under load (the last
//! batch carried more than one write) the transaction also stays open for [`LINGER`] to
//! take in the writes that arrive meanwhile. A lone write on an idle server commits at
//! once. Measured (BENCHMARKS.md), the linger cut radmfa's CPU per request by 10-20 % on
//! the LDAP-bound workloads, because commits (fsync, WAL writes, the readers' page caches
//! emptied by each commit) were a third of its CPU.
//!
//! Inside a request, a write's caller hears its result as soon as it has run, and the
//! request waits for the commits once, before its reply (see `store::durability`): a
//! login's writes no longer wait for one commit each.
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
//! be on disk is never reported as done (fail closed). So does a write that panics (a bug):
//! what it left half-done cannot be told apart, so its whole batch is rolled back and every
//! caller in it gets an error, never a success.
//!
//! Hand-written: neither sqlx nor rusqlite has group commit, and a generic batching crate
//! could not run the batch inside one SQLite transaction.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::{durability, StoreError};

/// Most writes in one transaction: bounds how long the write lock is held for other
/// processes, and how long the first write of a big batch waits for the last.
const MAX_BATCH: usize = 512;
/// Writes waiting for the writer. A full queue makes callers wait (backpressure), it never
/// drops a write.
const QUEUE: usize = 4096;
/// Under load, how long a transaction stays open for more writes before it commits.
const LINGER: Duration = Duration::from_micros(500);
/// How often a lingering transaction looks for new writes.
const POLL: Duration = Duration::from_micros(100);

/// Called once the batch's commit is known: `Ok` if it is on disk.
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write: given the batch's connection inside its transaction (or why the batch could
/// not start), it runs and returns what to tell its caller after the commit.
type Job = Box<dyn FnOnce(Result<&mut Connection, String>) -> Finish + Send>;

/// A write in the queue, holding its place in the queue's bound until it has run.
struct Queued {
    job: Job,
    _room: OwnedSemaphorePermit,
}

/// What the writer thread is handed.
enum Msg {
    Write(Queued),
    /// Commit what has run, close the connection, then answer.
    Stop(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub(super) struct Writer {
    // A std channel: the writer is a plain thread that polls it while a transaction
    // lingers. The semaphore bounds it.
    jobs: Sender<Msg>,
    room: Arc<Semaphore>,
    /// Transactions committed so far (each covering one or more writes).
    commits: Arc<AtomicU64>,
    /// Writes in those transactions.
    writes: Arc<AtomicU64>,
}

impl Writer {
    /// Opens the writer's own connection to the database at `path` (schema already migrated)
    /// and starts its thread. The thread ends on [`Writer::stop`] or when the last `Writer`
    /// clone is dropped.
    pub(super) fn start(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        Self::start_with(path, busy_timeout, writer_died)
    }

    /// [`Writer::start`], calling `died` if the thread ends in a panic.
    fn start_with(path: &Path, busy_timeout: Duration, died: fn()) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(sqlite_err)?;
        // SQLite opens a file it may not write read-only without a word, and every write
        // would fail (`store::writable` refuses the cases it can see before this).
        if conn
            .is_readonly(rusqlite::DatabaseName::Main)
            .map_err(sqlite_err)?
        {
            return Err(StoreError::Sqlite(read_only(path)));
        }
        conn.busy_timeout(busy_timeout).map_err(sqlite_err)?;
        // The same settings as the sqlx pool: an acknowledged write survives a power cut.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA journal_size_limit = {};",
            super::sqlite::WAL_SIZE_LIMIT
        ))
        .map_err(sqlite_err)?;
        let (jobs, rx) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let counters = (commits.clone(), writes.clone());
        std::thread::Builder::new()
            .name("radmfa-store-writer".into())
            .spawn(move || supervised(move || run(conn, rx, counters), died))
            .map_err(|e| StoreError::Commit(format!("cannot start the store writer: {e}")))?;
        Ok(Writer {
            jobs,
            room: Arc::new(Semaphore::new(QUEUE)),
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

    /// Runs `f` in the open or next batch and returns its result once the batch is
    /// committed — or, inside [`durability::deferred`], as soon as it has run, leaving the
    /// wait for the commit to the end of the request.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let run = move |conn: Result<&mut Connection, String>| match conn {
            Ok(conn) => f(conn),
            Err(e) => Err(StoreError::Commit(e)),
        };
        let job: Job = if durability::active() {
            let (committed, ticket) = oneshot::channel::<Result<(), String>>();
            // Handed in before the job is queued: even if this caller is cancelled (request
            // deadline), its request still waits for the write's commit before answering.
            durability::hand_in(ticket);
            Box::new(move |conn| {
                let _ = tx.send(run(conn));
                Box::new(move |commit| {
                    let _ = committed.send(commit);
                })
            })
        } else {
            Box::new(move |conn| {
                let result = run(conn);
                Box::new(move |commit: Result<(), String>| {
                    let answer = match commit {
                        Ok(()) => result,
                        Err(e) => Err(StoreError::Commit(e)),
                    };
                    // The caller may be gone (request deadline); the write stands anyway.
                    let _ = tx.send(answer);
                })
            })
        };
        let room = self
            .room
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| gone())?;
        self.jobs
            .send(Msg::Write(Queued { job, _room: room }))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Commits the writes already queued, closes the connection and ends the thread; later
    /// writes fail with "the store's writer has stopped". Waiting for the close matters at
    /// exit: a connection still closing when the process ends leaves SQLite's -wal without
    /// its -shm (seen in CI), and the last connection to close is the one that checkpoints
    /// and removes both.
    pub(super) async fn stop(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Msg::Stop(done)).is_ok() {
            let _ = closed.await;
        }
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

/// Exit status of a server whose store writer died: EX_SOFTWARE (sysexits.h), an internal
/// error; any non-zero status has systemd's `Restart=on-failure` start it again.
pub const WRITER_DIED: i32 = 70;

/// Runs the writer thread's `body`, and `died` if it ends in a panic.
fn supervised(body: impl FnOnce(), died: fn()) {
    if std::panic::catch_unwind(AssertUnwindSafe(body)).is_err() {
        died();
    }
}

/// The writer thread panicked outside any one write (a write's panic is caught in
/// [`Batch::run`]): a bug in the batching itself, or, before the log's writer stopped
/// panicking, its warning on a full disk. Every later write would fail with "the store's
/// writer has stopped" while the process lived on, answering Status-Server and looking
/// alive, so nothing restarted it. Restarting the thread in place would need a new
/// connection and a new queue under every `Writer` clone, after a batch left half answered;
/// a fresh process is the state known to be good. So the process exits, non-zero, and
/// systemd (conf/radmfa.service: `Restart=on-failure`) starts it again in seconds, NASes
/// retransmitting or asking their next server meanwhile. What the thread committed is on
/// disk; what it did not was never reported as done.
fn writer_died() {
    tracing::error!(
        "the store's writer thread stopped unexpectedly (a panic, above); every login would \
         now be refused, so radmfa exits (status {WRITER_DIED}) to be started again"
    );
    // Out before the exit: serve's lines wait in the log's queue, and exit(3) skips the
    // drain at serve's end (the line that explains the status was lost).
    crate::telemetry::drain(std::time::Duration::from_secs(2));
    std::process::exit(WRITER_DIED);
}

type Counters = (Arc<AtomicU64>, Arc<AtomicU64>);

fn run(mut conn: Connection, rx: Receiver<Msg>, (commits, writes): Counters) {
    let mut under_load = false;
    let mut stop = None;
    while let Ok(msg) = rx.recv() {
        let first = match msg {
            Msg::Write(q) => q,
            Msg::Stop(done) => {
                stop = Some(done);
                break;
            }
        };
        let close_at = Instant::now() + if under_load { LINGER } else { Duration::ZERO };
        let mut batch = Batch::begin(&mut conn);
        batch.run(first);
        // Take in what is queued; under load, keep taking in writes until the window
        // closes. Polled in short sleeps rather than woken per write: a wake-up per write
        // costs more CPU than the commits it saves.
        loop {
            while batch.finishers.len() < MAX_BATCH && stop.is_none() {
                match rx.try_recv() {
                    Ok(Msg::Write(q)) => batch.run(q),
                    Ok(Msg::Stop(done)) => stop = Some(done),
                    Err(_) => break,
                }
            }
            let left = close_at.saturating_duration_since(Instant::now());
            if left.is_zero() || batch.finishers.len() >= MAX_BATCH || stop.is_some() {
                break;
            }
            std::thread::sleep(left.min(POLL));
        }
        let written = batch.finishers.len() as u64;
        under_load = written > 1;
        if batch.commit() {
            commits.fetch_add(1, Ordering::Relaxed);
            writes.fetch_add(written, Ordering::Relaxed);
        }
        if stop.is_some() {
            break;
        }
    }
    // Writes queued after the stop are dropped with the receiver: their callers hear that
    // the writer has stopped, none is reported as done.
    drop(rx);
    drop(conn);
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

/// One transaction being filled: the writes that ran in it wait in `finishers` for its
/// commit.
struct Batch<'c> {
    conn: &'c mut Connection,
    /// Why the transaction could not start; every write of the batch hears it.
    failed: Option<String>,
    panicked: bool,
    finishers: Vec<Finish>,
}

impl<'c> Batch<'c> {
    fn begin(conn: &'c mut Connection) -> Self {
        let failed = conn.execute_batch("BEGIN IMMEDIATE").err().map(|e| {
            let e = e.to_string();
            batch_failed("store write batch could not start", &e, None);
            e
        });
        Batch {
            conn,
            failed,
            panicked: false,
            finishers: Vec::new(),
        }
    }

    fn run(&mut self, queued: Queued) {
        let Queued { job, _room } = queued;
        if let Some(e) = &self.failed {
            self.finishers.push(job(Err(e.clone())));
            return;
        }
        if self.panicked {
            let why = "an earlier write of its batch failed; batch rolled back".to_string();
            self.finishers.push(job(Err(why)));
            return;
        }
        // A bug in one write must not take the writer (and with it every later login) down:
        // the panicking write's caller sees its channel close, the batch is rolled back, and
        // the thread goes on with the next batch.
        let conn = &mut *self.conn;
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(conn)))) {
            Ok(finish) => self.finishers.push(finish),
            Err(_) => {
                tracing::error!("a store write panicked; its batch is rolled back");
                self.panicked = true;
            }
        }
    }

    /// Commits and answers every write of the batch; true if it committed.
    fn commit(self) -> bool {
        let commit = if let Some(e) = self.failed {
            Err(e)
        } else if self.panicked {
            Err("a write of this batch panicked; batch rolled back".to_string())
        } else {
            self.conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        };
        if let Err(e) = &commit {
            batch_failed(
                "store write batch failed to commit",
                e,
                Some(self.finishers.len()),
            );
            // Leave no transaction open for the next batch.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        for finish in self.finishers {
            finish(commit.clone());
        }
        commit.is_ok()
    }
}

/// A batch that failed, said once a minute per kind of error, not once a batch: on a full
/// disk every batch fails, and at 20 rejects a second that was 1,200 warnings a minute
/// beside the requests' own (rate-limited) lines. The first is a warning at once, the next
/// ones within the minute go to debug, and the first after it says how many were held
/// back (`pipeline::fault_log`).
fn batch_failed(what: &str, error: &str, writes: Option<usize>) {
    let writes = writes.map(|n| n as u64);
    match crate::pipeline::fault_log::BATCH.due_now(what, error) {
        Some(0) => tracing::warn!(error, writes, "{what}"),
        Some(held_back) => tracing::warn!(
            error,
            writes,
            held_back,
            "{what} (and {held_back} more like it since the last such line, at debug level)"
        ),
        None => tracing::debug!(error, writes, "{what}"),
    }
}

/// What to say of a database SQLite opened read-only.
fn read_only(path: &Path) -> String {
    #[cfg(unix)]
    let who = format!(" ({})", super::writable::runs_as());
    #[cfg(not(unix))]
    let who = String::new();
    format!(
        "{} opened read-only (a read-only filesystem or mount, or a file this user may \
         not write): every login would fail; give it to the user radmfa runs as{who}",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::{Job, Msg, Queued, Writer};

    /// A panic outside any one write (here in what runs after the commit) ends the writer
    /// thread; it is reported (`writer_died` in a server, which exits), not left unseen.
    #[tokio::test]
    async fn a_writer_thread_that_panics_is_reported_dead() {
        static DIED: AtomicBool = AtomicBool::new(false);
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::start_with(&dir.path().join("w.db"), Duration::from_secs(1), || {
            DIED.store(true, Ordering::SeqCst)
        })
        .unwrap();
        w.write(|_| Ok(())).await.unwrap();
        assert!(!DIED.load(Ordering::SeqCst), "reported dead while working");
        let room = w.room.clone().acquire_owned().await.unwrap();
        let job: Job = Box::new(|_| Box::new(|_| panic!("a bug after the commit")));
        w.jobs
            .send(Msg::Write(Queued { job, _room: room }))
            .unwrap();
        for _ in 0..500 {
            if DIED.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            DIED.load(Ordering::SeqCst),
            "the writer's death went unseen"
        );
        assert!(w.write(|_| Ok(())).await.is_err());
    }
}
