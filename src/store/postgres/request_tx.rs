//! Where the PostgreSQL store's writes run: inside a request (a `store::durability` scope) in
//! one transaction of the request's own, else each on a pooled connection as its own
//! autocommit statement.
//!
//! Why: every autocommit write is a commit, and a commit waits for the WAL flush. A login
//! writes two or three times (the TOTP step, the challenge, the audit record), so it waited
//! for two or three flushes in a row. In one transaction it waits for one, before the reply
//! (the same promise as the SQLite store's deferred writes: no reply leaves before the
//! request's writes are on disk, and a failed commit turns it into a Reject). The transaction
//! is committed when the request writes its audit record, which then goes into a shared
//! multi-row insert (`audit_batch.rs`), or else when the request settles.
//!
//! Semantics kept: each check-and-update is still one statement whose result is final — a
//! racing node's statement on the same row waits for our row lock and then re-checks its
//! `WHERE` against our committed row (READ COMMITTED), so a TOTP step or a State still works
//! exactly once. The row locks are held until the request's commit, so the request settles
//! before waiting on another writer (see `pipeline::oob::await_call`). A write made of
//! several statements runs in a savepoint, so its failure undoes only itself.
//!
//! A failed statement aborts a PostgreSQL transaction, which can only be rolled back: the
//! request's earlier writes go with it, later writes start a fresh transaction (its audit
//! record goes into the shared insert), and the request is told its writes were lost (it is
//! rejected, fail closed).
//! A statement cancelled mid-flight (request deadline) leaves us unsure whether it failed;
//! before the next write or the commit, a probe finds out — `COMMIT` on an aborted
//! transaction "succeeds" as a rollback, which must never pass for a commit.
//!
//! Hand-written: sqlx has transactions but nothing that spans a request's calls.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::PgStore;
use crate::store::{durability, StoreError};

/// A request's transaction, shared by its writes through the durability scope.
#[derive(Default)]
pub(super) struct RequestTx {
    tx: Option<Transaction<'static, Postgres>>,
    /// A statement was started and its outcome not seen (its caller was cancelled).
    unsure: bool,
    /// A statement failed, and the writes before it were rolled back.
    lost: bool,
}

impl RequestTx {
    /// After a statement was cancelled mid-flight, finds out whether it failed: then the
    /// transaction is aborted — nothing more runs in it, and `COMMIT` would quietly roll it
    /// back, which must never pass for a commit — so it is dropped (rolled back) and the
    /// request's writes are marked lost.
    async fn check_cancelled(&mut self) {
        if !std::mem::take(&mut self.unsure) {
            return;
        }
        if let Some(tx) = self.tx.as_mut() {
            if sqlx::query("SELECT 1").execute(&mut **tx).await.is_err() {
                self.tx = None;
                self.lost = true;
            }
        }
    }
}

/// The connection a write (or, inside a request, a read: `PgStore::reader`) runs on.
pub(super) enum WriteConn {
    Pooled(PoolConnection<Postgres>),
    Scoped(OwnedMutexGuard<RequestTx>),
}

impl PgStore {
    /// The connection for a write: the request's transaction (opened here on its first
    /// write) inside a durability scope, else a pooled connection.
    pub(super) async fn writer(&self) -> Result<WriteConn, StoreError> {
        let shared = durability::open_or_insert(|| {
            let state: Arc<Mutex<RequestTx>> = Arc::default();
            (state, finish as durability::Finish)
        });
        let Some(shared) = shared else {
            return Ok(WriteConn::Pooled(
                self.pool
                    .acquire()
                    .await
                    .map_err(|e| self.noted(e.into()))?,
            ));
        };
        let mut guard = shared.lock_owned().await;
        // If an earlier write was cancelled and failed, this one needs a new transaction.
        guard.check_cancelled().await;
        if guard.tx.is_none() {
            guard.tx = Some(self.pool.begin().await.map_err(|e| self.noted(e.into()))?);
        }
        Ok(WriteConn::Scoped(guard))
    }
}

impl PgStore {
    /// The connection for a read: the request's transaction while it has one open, else a
    /// pooled connection. A read on the pool while the request's transaction holds another
    /// connection took two at once: `pool_size` requests answering prompts together (each
    /// takes its attempt, a write, then reads the lockout) each held one and waited for a
    /// second until the acquire timeout, and with `pool_size = 1` every answer did. In the
    /// transaction the read also sees the request's own writes, as a read on SQLite does.
    pub(super) async fn reader(&self) -> Result<WriteConn, StoreError> {
        if let Some(shared) = durability::open_state::<Mutex<RequestTx>>() {
            let mut guard = shared.lock_owned().await;
            guard.check_cancelled().await;
            if guard.tx.is_some() {
                return Ok(WriteConn::Scoped(guard));
            }
        }
        Ok(WriteConn::Pooled(
            self.pool
                .acquire()
                .await
                .map_err(|e| self.noted(e.into()))?,
        ))
    }
}

impl PgStore {
    /// Inside a request scope, readies it for an audit record that goes into a shared batch
    /// (`audit_batch.rs`): commits the request's open transaction now, so that the record is
    /// written only once what it describes is on disk. `Ok(false)` outside a scope (the
    /// record is written on its own); `Err` if the request's writes did not commit — then no
    /// record is written, and the request is rejected, as when the record shared their
    /// failed commit.
    pub(super) async fn audit_after_request_writes(&self) -> Result<bool, StoreError> {
        if !durability::active() {
            return Ok(false);
        }
        if let Some(shared) = durability::open_state::<Mutex<RequestTx>>() {
            let mut g = shared.lock().await;
            // A cancelled write that failed rolled the transaction back; the request saw
            // that write fail, so its verdict is already a Reject, and its record is written.
            g.check_cancelled().await;
            if let Some(tx) = g.tx.take() {
                // Marked lost until the commit is known to be done: if this future is dropped
                // (the request's deadline) during the commit, the transaction rolls back, and
                // `finish` must not then report the request's writes as on disk.
                let was_lost = std::mem::replace(&mut g.lost, true);
                if let Err(e) = tx.commit().await {
                    return Err(StoreError::Commit(e.to_string()));
                }
                g.lost = was_lost;
            }
        }
        Ok(true)
    }
}

impl WriteConn {
    /// The connection for the next statement; hand its result to [`WriteConn::done`].
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        match self {
            WriteConn::Pooled(c) => c,
            WriteConn::Scoped(g) => {
                g.unsure = true;
                g.tx.as_mut().expect("writer() opened the transaction")
            }
        }
    }

    /// Notes a statement's outcome (and passes it on): a failure inside a request's
    /// transaction rolls it back.
    pub(super) fn done<T>(&mut self, r: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let WriteConn::Scoped(g) = self {
            g.unsure = false;
            if r.is_err() {
                // Aborted: nothing more can run in it. Dropping it rolls it back.
                g.tx = None;
                g.lost = true;
            }
        }
        r
    }
}

/// Commits the request's transaction; `Err` if any of its writes is not on disk.
fn finish(
    state: Arc<dyn Any + Send + Sync>,
) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
    Box::pin(async move {
        let shared = state
            .downcast::<Mutex<RequestTx>>()
            .map_err(|_| "not a PostgreSQL request transaction".to_string())?;
        let mut g = shared.lock().await;
        g.check_cancelled().await;
        if let Some(tx) = g.tx.take() {
            tx.commit().await.map_err(|e| e.to_string())?;
        }
        if g.lost {
            return Err(
                "a write of this request failed, and its earlier writes were rolled back".into(),
            );
        }
        Ok(())
    })
}
