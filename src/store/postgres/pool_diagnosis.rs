//! Why the serving pool gave a request no connection, said in the log.
//!
//! sqlx's pool retries a failed connection in silence until its acquire timeout, and then
//! says only "pool timed out while waiting for an open connection": a stopped database, a
//! wrong password after a rotation, a failover that left `store.url` on a standby, and a
//! pool too small for the load all looked alike in the log while logins were refused. On a
//! pool timeout one direct connection is tried, in the background (the request is not
//! kept waiting), at most once per [`EVERY`] on the node, and its outcome is logged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::postgres::PgPool;

/// The least time between two diagnoses: one line per outage, not one per login.
const EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(super) struct PoolDiagnosis {
    last: Mutex<Option<Instant>>,
    /// Apart from `last`: a refused login said must not hold back the line of an outage
    /// that follows it, nor the other way round (review).
    last_refused: Mutex<Option<Instant>>,
}

impl PoolDiagnosis {
    /// A request found no connection in the pool: unless one ran lately, finds out why.
    pub(super) fn pool_timed_out(&self, pool: &PgPool) {
        let now = Instant::now();
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| now.duration_since(t) < EVERY) {
                return;
            }
            *last = Some(now);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let options = pool.connect_options();
        // The pool's own wait (store.connect_timeout_ms), said as such; the direct try may
        // wait longer, as long as a start does.
        let acquire = pool.options().get_acquire_timeout();
        let wait = acquire.max(super::connect::CONNECT_FLOOR);
        let size = pool.options().get_max_connections();
        // Busy means every connection the pool may open was open and lent out: with fewer,
        // the pool was waiting on the database for a new one, not on other requests.
        let open = pool.size();
        // A count above the pool's size is sqlx 0.8.6's idle counter wrapped below zero for
        // an instant (sqlx issue #3645, see store::pool_options): none was idle then.
        let idle = pool.num_idle();
        let all_busy = open >= size && (idle == 0 || idle > size as usize);
        runtime.spawn(async move {
            let started = Instant::now();
            match super::connect::direct_cause(&options, wait).await {
                // The server's max_connections reached (SQLSTATE 53300): not an outage. The
                // pool's own wait went on trying to open one more connection, which the
                // server kept refusing (HA red team: "has no connection" was said while
                // this node held connections and answered most logins).
                Err(cause) if too_many_connections(&cause) => tracing::warn!(
                    error = %cause,
                    "the database refuses new connections: its max_connections is reached, \
                     less superuser_reserved_connections for a role that is not a superuser \
                     (by all its clients: every radmfa node's pool_size plus one audit \
                     connection each, and other applications). This node holds {open} of \
                     store.pool_size = {size}; a login that finds none of them free waits \
                     for a new one and is refused. Raise the server's max_connections, or \
                     lower store.pool_size (docs/ha.md, \"Settings\")"
                ),
                Err(cause) => tracing::warn!(
                    error = %cause,
                    "the store's pool has no connection to the database, and a direct \
                     connection fails too: logins that need the store are refused until it \
                     answers"
                ),
                Ok(()) if all_busy => tracing::warn!(
                    "the store's pool had no free connection within {} ms \
                     (store.connect_timeout_ms), yet the database takes a direct connection: \
                     all {size} of store.pool_size were busy (raise it, or look for slow \
                     statements or locks)",
                    acquire.as_millis()
                ),
                Ok(()) => tracing::warn!(
                    "the store's pool got no connection within {} ms \
                     (store.connect_timeout_ms) with {open} of {size} open, and a direct \
                     connection took {} ms: the database, or the network to it, was slow or \
                     out of reach, and answers again (or its connection slots ran out for a \
                     moment: PostgreSQL's log then says \"too many clients\" or \"remaining \
                     connection slots are reserved\")",
                    acquire.as_millis(),
                    started.elapsed().as_millis()
                ),
            }
        });
    }
}

/// The database refused the login of a connection the pool was opening, with the reason
/// it gave. sqlx's pool passes such a refusal straight back, with no pool timeout, so
/// [`PoolDiagnosis::pool_timed_out`] never ran for it: after a rotated password every login
/// that needed the store was refused, and the cause was only in the audit lines (which
/// `radmfa::audit=warn` hides) while the health warning did not name it (review).
pub(super) fn refused_login(e: &sqlx::Error) -> Option<(String, &'static str)> {
    let code = e.as_database_error()?.code()?;
    let why = match code.as_ref() {
        // invalid_password, invalid_authorization_specification (pg_hba.conf refused it,
        // or the role may not log in).
        "28P01" => "the password in store.url is not the role's (was it rotated?)",
        "28000" => {
            "the role in store.url may not log in from here (pg_hba.conf, or the \
                    role's LOGIN right)"
        }
        // invalid_catalog_name: the database in store.url is not there (dropped, renamed).
        "3D000" => "the database named in store.url is not there",
        _ => return None,
    };
    Some((code.into_owned(), why))
}

impl PoolDiagnosis {
    /// A login the database refused to a new connection (see [`refused_login`]): logged
    /// at ERROR, once per [`EVERY`] on the node.
    pub(super) fn login_refused(&self, e: &sqlx::Error) {
        let Some((code, why)) = refused_login(e) else {
            return;
        };
        let now = Instant::now();
        {
            let mut last = self.last_refused.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| now.duration_since(t) < EVERY) {
                return;
            }
            *last = Some(now);
        }
        tracing::error!(
            error = %e,
            "the database refuses this node's new connections (SQLSTATE {code}): {why}. Logins that need a \
             new connection to the store are refused until store.url is put right (a \
             restart applies it; a reload does not)"
        );
    }
}

/// Whether `e` is the server refusing a connection for want of slots (SQLSTATE 53300:
/// "sorry, too many clients already", or "remaining connection slots are reserved for
/// non-replication superuser connections" for a role that is not a superuser).
fn too_many_connections(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "53300")
}
