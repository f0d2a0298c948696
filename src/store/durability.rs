//! One wait for durability per request instead of one per write.
//!
//! A login writes several times: the TOTP step it used, the challenge it closed, its audit
//! record. Waiting for each write's commit (and its fsync) before making the next puts two or
//! three commits in a row on every login. But nothing leaves the process between those
//! writes — what anybody outside sees is the reply — so the reply is what has to wait, once,
//! for all of them.
//!
//! Inside [`deferred`], the SQLite store's group-commit writer answers a write as soon as it
//! has run inside its transaction (the result is final: writes run one after another on the
//! one writer connection, so the next check-and-update sees it) and hands this module a
//! ticket for the transaction's commit. [`deferred`] waits for every ticket before it
//! returns, and a commit that failed fails the request (fail closed: the caller must not send
//! an Accept or a Challenge). Code about to act outside the process mid-request (send an SMS,
//! place a call) calls [`settle`] first.
//!
//! The PostgreSQL store has no shared writer; inside a scope it runs the request's writes in
//! one transaction of the request's own (see `postgres::request_tx`), opened at the first
//! write and committed by [`settle`]: one commit per request instead of one per write. That
//! transaction holds its row locks until then, so a request that is about to wait for
//! another writer (a callback resolving a call) settles first.
//!
//! Outside a scope (admin commands, the callback server, tasks spawned from a request) every
//! write waits for its own commit, as before. Hand-written: this is the store's own commit
//! protocol.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::StoreError;

/// A transaction's commit outcome: `Ok` once it is on disk.
pub(super) type Ticket = oneshot::Receiver<Result<(), String>>;

/// Commits (or fails) a store's open per-request transaction.
pub(super) type Finish =
    fn(Arc<dyn Any + Send + Sync>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A store's open per-request transaction and how to finish it.
struct Open {
    state: Arc<dyn Any + Send + Sync>,
    finish: Finish,
}

#[derive(Default)]
struct Scope {
    tickets: Vec<Ticket>,
    open: Option<Open>,
}

tokio::task_local! {
    static PENDING: RefCell<Scope>;
}

/// Runs `f` with deferred durability, then waits until every write it made is committed.
/// The second value is `Err` if any of them is not on disk.
///
/// Built from combinators rather than as an `async` block: a block that awaits a future it
/// captured holds it twice (the capture and the awaited copy), and this wraps every request,
/// so the whole request's future would be twice its size, copied and allocated per request.
pub fn deferred<F: Future>(f: F) -> impl Future<Output = (F::Output, Result<(), StoreError>)> {
    PENDING.scope(
        RefCell::new(Scope::default()),
        f.then(|out| settle().map(move |durable| (out, durable))),
    )
}

/// Waits for the commits of every write made so far in this scope (nothing outside one).
pub async fn settle() -> Result<(), StoreError> {
    let (tickets, open) = PENDING
        .try_with(|p| {
            let mut p = p.borrow_mut();
            (std::mem::take(&mut p.tickets), p.open.take())
        })
        .unwrap_or_default();
    let mut outcome = Ok(());
    if let Some(open) = open {
        if let Err(e) = (open.finish)(open.state).await {
            outcome = Err(StoreError::Commit(e));
        }
    }
    for ticket in tickets {
        let commit = ticket
            .await
            .unwrap_or_else(|_| Err("the store's writer stopped before committing".into()));
        if let Err(e) = commit {
            outcome = Err(StoreError::Commit(e));
        }
    }
    outcome
}

/// Is the current task inside [`deferred`]?
pub(super) fn active() -> bool {
    PENDING.try_with(|_| ()).is_ok()
}

/// Hands in the commit ticket of a write made inside [`deferred`] (dropped outside one).
pub(super) fn hand_in(ticket: Ticket) {
    let _ = PENDING.try_with(|p| p.borrow_mut().tickets.push(ticket));
}

/// The scope's open per-request transaction state of type `T`, if there is one.
pub(super) fn open_state<T: Any + Send + Sync>() -> Option<Arc<T>> {
    PENDING
        .try_with(|p| {
            let p = p.borrow();
            p.open
                .as_ref()
                .and_then(|open| open.state.clone().downcast::<T>().ok())
        })
        .ok()
        .flatten()
}

/// The scope's open per-request transaction state of type `T`, made by `make` (with the
/// function that [`settle`] calls to finish it) if there is none yet. `None` outside a scope
/// — and if another kind of state is open (two stores in one request, which nothing does):
/// the caller then commits on its own, which is always safe.
pub(super) fn open_or_insert<T: Any + Send + Sync>(
    make: impl FnOnce() -> (Arc<T>, Finish),
) -> Option<Arc<T>> {
    PENDING
        .try_with(|p| {
            let mut p = p.borrow_mut();
            match &p.open {
                Some(open) => open.state.clone().downcast::<T>().ok(),
                None => {
                    let (state, finish) = make();
                    p.open = Some(Open {
                        state: state.clone(),
                        finish,
                    });
                    Some(state)
                }
            }
        })
        .ok()
        .flatten()
}
