//! Audit records written inside requests, inserted many to a statement.
//!
//! Why: every request writes one audit record, and for many it is the only write (a wrong
//! password, an unknown user, a directory fault, a deadline). On its own that record paid for
//! a whole transaction — a connection, `BEGIN`, the `INSERT`, `COMMIT` and its WAL flush,
//! four round trips — and inside a request's transaction it still cost a round trip and a
//! single-row insert. Under a password-spraying burst those are most of the requests. Here
//! one task collects whatever records are waiting and inserts them with one multi-row
//! `INSERT` (one commit, one flush); each request waits for its own row's outcome before its
//! reply, as it waited for its transaction's commit before. A record arriving while a batch
//! runs goes into the next one, so batches grow with the load and no time is spent waiting
//! for company.
//!
//! A request with a transaction of its own open (it used a code, consumed a State) commits
//! it before handing in its record (`request_tx.rs`), so a record is only written once what
//! it describes is on disk. Records written outside requests (admin commands, the callback
//! server) are inserted on their own, as before. Hand-written: sqlx has no batching of
//! statements from different callers.
//!
//! The batches go through a connection of their own (a pool of one, made as the serving
//! pool's connections are), not the serving pool: when every pooled connection is held up
//! (slow statements, a lock, a burst of logins), a request whose only write is its record
//! (a wrong password, an unknown name) would otherwise wait for the pool, time out and lose
//! its record, and a login whose own writes had committed would be refused for it. A batch
//! borrows an idle serving connection only when its own cannot be opened
//! (`Pools::connection`): the database's `max_connections` taken up by the serving pools.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder};
use tokio::sync::{mpsc, oneshot};

use crate::store::{AuditRecord, StoreError};

/// The longest a batch's `INSERT` may take, whatever the request deadlines: a healthy
/// database answers in milliseconds, and the default deadline is 4 s.
const MAX_BATCH_WAIT: Duration = Duration::from_secs(5);

/// Most records in one `INSERT` of the batching task.
const MAX_BATCH: usize = 256;

/// Bind parameters of one record in [`insert_records`]'s `INSERT`.
const PARAMS_PER_RECORD: usize = 18;

/// Most records one [`insert_records`] call may take: PostgreSQL's protocol counts a
/// statement's parameters in 16 bits, and sqlx refuses more than 65,535.
pub(super) const RECORDS_PER_INSERT: usize = u16::MAX as usize / PARAMS_PER_RECORD;

const INSERT: &str = "INSERT INTO audit (time, username, first_name, last_name, email, phone, \
     token_serial, mode, result, reason, server_name, server_ip, client_ip, nas_name, \
     latency_ms, actor, nas_ip, nas_identifier) ";

struct Job {
    record: AuditRecord,
    done: oneshot::Sender<Result<i64, StoreError>>,
}

/// Hands audit records to the batching task, started on first use in the runtime of its
/// caller (and again if that runtime has gone: a store may outlive the runtime that first
/// used it, as in tests).
pub(super) struct AuditBatcher {
    /// The batches' own connection (`own`, see the module's comment), and the serving pool,
    /// whose idle connections a batch borrows when its own cannot be opened
    /// ([`Pools::connection`]).
    pools: Pools,
    queue: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    /// How long one batch's `INSERT` may take: the longest request deadline, after which
    /// no request waits for it any more.
    limit: Duration,
}

impl std::fmt::Debug for AuditBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditBatcher")
    }
}

impl AuditBatcher {
    /// `pool`: the batches' own pool of one connection. `longest_request`: the longest
    /// request deadline of any client. The limit is that, but at most [`MAX_BATCH_WAIT`]:
    /// one client holding calls makes it 50 s, and every login on the node would queue
    /// behind a dead connection that long.
    pub(super) fn new(pool: PgPool, serving: PgPool, longest_request: Duration) -> Self {
        AuditBatcher {
            pools: Pools {
                own: pool,
                serving,
                own_failed: Default::default(),
                reopening: Default::default(),
            },
            queue: Mutex::default(),
            limit: batch_limit(longest_request),
        }
    }

    /// Opens the batches' own connection now, while the database has room: it is best made
    /// before a burst fills `max_connections`. A failure here is no failure of the store: a
    /// batch opens it later, or borrows (`Pools::connection`).
    pub(super) async fn open_own(&self) {
        let _ = self.pools.own.acquire().await;
    }

    /// The batches' own pool, for closing it with the store.
    pub(super) fn pool(&self) -> &PgPool {
        &self.pools.own
    }

    /// Whether a batch could insert now, where a batch would (`Pools::connection`): a record inserted
    /// in a transaction that is rolled back (never seen; it may use up a sequence number,
    /// as any rolled-back insert does). A table locked by someone else, a full disk, a
    /// trigger refusing rows, a lost connection fail it; waiting for a lock is cut at a
    /// second.
    pub(super) async fn writable(&self) -> Result<(), StoreError> {
        let probe = AuditRecord {
            user: "radmfa-health-probe".into(),
            mode: "none".into(),
            result: "reject".into(),
            ..Default::default()
        };
        let check = async {
            // Where a batch would write it (`Pools::connection`).
            let mut conn = self.pools.connection().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("SET LOCAL lock_timeout = '1s'")
                .execute(&mut *tx)
                .await?;
            insert_records(&mut *tx, std::iter::once(&probe)).await?;
            tx.rollback().await
        };
        match tokio::time::timeout(self.limit, check).await {
            Ok(r) => r.map_err(|e| StoreError::AuditNotWritten(e.to_string())),
            Err(_) => Err(StoreError::AuditNotWritten(format!(
                "no answer to a trial audit insert within {:?}",
                self.limit
            ))),
        }
    }

    /// Inserts `record` in the next batch; `Ok(id)` once it is committed.
    pub(super) async fn insert(&self, record: &AuditRecord) -> Result<i64, StoreError> {
        let (done, outcome) = oneshot::channel();
        let job = Job {
            record: record.clone(),
            done,
        };
        self.enqueue(job);
        outcome.await.unwrap_or_else(|_| {
            Err(StoreError::AuditNotWritten(
                "the audit writer stopped before committing".into(),
            ))
        })
    }

    fn enqueue(&self, mut job: Job) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = queue.as_ref() {
            match q.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(j)) => job = j,
            }
        }
        // Unbounded, yet never longer than the requests in flight (`server.max_in_flight`):
        // each sender waits for its record's answer before it can send another.
        let (q, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(self.pools.clone(), rx, self.limit));
        // A fresh channel's receiver is alive: this send cannot fail.
        let _ = q.send(job);
        *queue = Some(q);
    }
}

/// How long one batch's `INSERT` may take: the longest request deadline, at most
/// [`MAX_BATCH_WAIT`].
fn batch_limit(longest_request: Duration) -> Duration {
    longest_request.min(MAX_BATCH_WAIT)
}

/// The batches' own pool, and the serving pool they may borrow an idle connection from.
#[derive(Clone)]
struct Pools {
    own: PgPool,
    serving: PgPool,
    /// The batches' own connection could not be opened, the last time it was tried.
    own_failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// A try to open it is under way in the background.
    reopening: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Pools {
    /// A connection for a batch: the batches' own, opened if need be; where that cannot be
    /// opened, one the serving pool holds idle. After a database restart, a burst of logins
    /// refilled the serving pools of every node before any batch asked for its own
    /// connection; with `max_connections` taken up that way, the batch could never open
    /// one, and every login on the node was refused for its audit record for good, while
    /// the node held idle connections it could have written it on. Only an idle one is
    /// borrowed, without waiting: a serving pool busy with slow requests does not hold the
    /// records up (the reason the batches have their own connection). While borrowing, the
    /// own connection is tried again in the background, one try at a time.
    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<Postgres>, sqlx::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(c) = self.own.try_acquire() {
            return Ok(c);
        }
        if self.own_failed.load(Relaxed) {
            if let Some(c) = self.serving.try_acquire() {
                self.reopen_in_background();
                return Ok(c);
            }
        }
        match self.own.acquire().await {
            Ok(c) => {
                self.own_failed.store(false, Relaxed);
                Ok(c)
            }
            Err(e) => {
                self.own_failed.store(true, Relaxed);
                self.serving.try_acquire().ok_or(e)
            }
        }
    }

    fn reopen_in_background(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.reopening.swap(true, Relaxed) {
            return;
        }
        let pools = self.clone();
        tokio::spawn(async move {
            if pools.own.acquire().await.is_ok() {
                pools.own_failed.store(false, Relaxed);
            }
            pools.reopening.store(false, Relaxed);
        });
    }
}

/// Takes what is waiting, inserts it, answers, repeats until every sender is gone.
async fn run(pools: Pools, mut rx: mpsc::UnboundedReceiver<Job>, limit: Duration) {
    let pool = &pools;
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // Requests that gave up (deadline) no longer wait for an answer, but their records
        // are still written: an audit record describes what was answered, or not.
        let batch = std::mem::take(&mut jobs);
        match insert_once_more_if_cut(pool, &batch, limit).await {
            Ok(ids) => {
                for (job, id) in batch.into_iter().zip(ids) {
                    let _ = job.done.send(Ok(id));
                }
            }
            // The database is out of reach (no connection, connection lost): that holds for
            // every record, including those that queued up while this batch waited for it.
            // Failing them now keeps a request's wait for its record to one connection
            // timeout, as when it wrote the record itself (a login is rejected within two
            // timeouts, see `store.connect_timeout_ms`).
            Err(e) if e.as_database_error().is_none() => {
                // The request's own writes committed before its record was handed in: it is
                // the record alone that is not written, and the error says so.
                let reason = match e {
                    // The wait for a connection is the pool's (store.connect_timeout_ms), not
                    // the batch's limit.
                    sqlx::Error::PoolTimedOut => format!(
                        "no connection to the database for audit records within {} ms \
                         (store.connect_timeout_ms)",
                        pool.own.options().get_acquire_timeout().as_millis()
                    ),
                    e => e.to_string(),
                };
                // Taken before any is answered: drained lazily, a record sent by a request
                // that got its answer here would be failed with the rest.
                let queued: Vec<Job> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
                for job in batch.into_iter().chain(queued) {
                    let _ = job
                        .done
                        .send(Err(StoreError::AuditNotWritten(reason.clone())));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(job) = batch.into_iter().next() {
                    let _ = job.done.send(Err(e.into()));
                }
            }
            // The database refused the statement: one bad record must not fail the others,
            // so each on its own, with its own answer.
            Err(_) => {
                for job in batch {
                    let r = insert_many(pool, std::slice::from_ref(&job), limit)
                        .await
                        .map(|ids| ids[0])
                        .map_err(StoreError::from);
                    let _ = job.done.send(r);
                }
            }
        }
    }
}

/// [`insert_many`], and once more on a fresh connection if the batch's connection was cut
/// under it (the server restarting, an admin's `pg_terminate_backend`, a reset link): the
/// database is up, the records are of requests already answered (a wrong code among them
/// is evidence of guessing), and a lost connection says nothing of them. The failed
/// connection does not come back to the pool (its release check fails), so the second try
/// gets a new one. Not tried again: the database's refusal of the statement (handled record
/// by record by the caller), no connection to be had within `store.connect_timeout_ms`, and
/// no answer within `limit`, which would each only make every queued login wait twice.
///
/// A connection lost after the `INSERT` committed but before its answer arrived would have
/// its records written twice: a duplicate in the audit log is the lesser harm.
async fn insert_once_more_if_cut(
    pool: &Pools,
    jobs: &[Job],
    limit: Duration,
) -> Result<Vec<i64>, sqlx::Error> {
    match insert_many(pool, jobs, limit).await {
        Err(e) if connection_cut(&e) => {
            tracing::info!(
                error = %e,
                records = jobs.len(),
                "the audit writer's database connection was cut; writing the batch again on \
                 a new one"
            );
            insert_many(pool, jobs, limit).await
        }
        done => done,
    }
}

/// Whether `e` says the connection ended, not that the database refused the statement:
/// SQLSTATE class 08 (connection exception), 57P01/57P02/57P03 (terminated by an admin, a
/// crash of another backend, a server starting or stopping), or an I/O error other than
/// [`insert_many`]'s own timeout.
fn connection_cut(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || CUT_OFF.contains(&code.as_ref())),
        sqlx::Error::Io(io) => io.kind() != std::io::ErrorKind::TimedOut,
        _ => false,
    }
}

/// admin_shutdown, crash_shutdown, cannot_connect_now.
const CUT_OFF: &[&str] = &["57P01", "57P02", "57P03"];

/// One `INSERT` of all `jobs`' records, autocommitted; their ids, in `jobs`' order.
///
/// Within `limit`: a connection whose server stopped answering without closing it (a
/// host lost in a failover, a cut link) would otherwise hold this task, and every login's
/// record queued behind it, until TCP gave up (up to 15 minutes on Linux), while new
/// connections to the promoted server worked. Past the limit the connection is taken out
/// of the pool and dropped (returned, sqlx would ping it without a limit, keeping its
/// slot), and the batch fails as for a lost connection.
async fn insert_many(pool: &Pools, jobs: &[Job], limit: Duration) -> Result<Vec<i64>, sqlx::Error> {
    let mut conn = pool.connection().await?;
    let insert = insert_records(&mut *conn, jobs.iter().map(|j| &j.record));
    match tokio::time::timeout(limit, insert).await {
        Ok(done) => done,
        Err(_) => {
            drop(conn.detach());
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer to the audit insert within {limit:?}"),
            )))
        }
    }
}

/// One `INSERT` of `records` on `db` (the pool, or a request's transaction); their ids, in
/// order.
pub(super) async fn insert_records<'a, 'e, E>(
    db: E,
    records: impl ExactSizeIterator<Item = &'a AuditRecord>,
) -> Result<Vec<i64>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let n = records.len();
    debug_assert!(n <= RECORDS_PER_INSERT, "{n} audit records in one INSERT");
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(INSERT);
    q.push_values(records, |mut b, r| {
        b.push_bind(r.time)
            .push_bind(&r.user)
            .push_bind(&r.first_name)
            .push_bind(&r.last_name)
            .push_bind(&r.email)
            .push_bind(&r.phone)
            .push_bind(&r.token_serial)
            .push_bind(&r.mode)
            .push_bind(&r.result)
            .push_bind(&r.reason)
            .push_bind(&r.server_name)
            .push_bind(&r.server_ip)
            .push_bind(&r.client_ip)
            .push_bind(&r.nas_name)
            .push_bind(r.latency_ms)
            .push_bind(&r.actor)
            .push_bind(&r.nas_ip)
            .push_bind(&r.nas_identifier);
    });
    q.push(" RETURNING id");
    let mut ids: Vec<i64> = q.build_query_scalar().fetch_all(db).await?;
    // The ids come from one sequence in the order the VALUES rows are inserted, which is
    // their order in the statement; sorting makes that explicit instead of trusting the
    // order of RETURNING.
    ids.sort_unstable();
    if ids.len() != n {
        return Err(sqlx::Error::Protocol(format!(
            "audit insert returned {} ids for {n} records",
            ids.len()
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One client holding calls (a 50 s budget) must not make a dead connection hold every
    /// login's record that long; a short deadline stays the limit.
    #[test]
    fn records_per_insert_counts_every_column() {
        let columns = INSERT.split_once('(').unwrap().1.matches(',').count() + 1;
        assert_eq!(columns, PARAMS_PER_RECORD);
        const { assert!(RECORDS_PER_INSERT * PARAMS_PER_RECORD <= 65_535) };
    }

    #[test]
    fn a_batch_waits_at_most_the_cap() {
        assert_eq!(batch_limit(Duration::from_secs(50)), MAX_BATCH_WAIT);
        assert_eq!(
            batch_limit(Duration::from_millis(800)),
            Duration::from_millis(800)
        );
    }
}
