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
        let wait = pool
            .options()
            .get_acquire_timeout()
            .max(super::connect::CONNECT_FLOOR);
        let size = pool.options().get_max_connections();
        runtime.spawn(async move {
            match super::connect::direct_cause(&options, wait).await {
                Err(cause) => tracing::warn!(
                    error = %cause,
                    "the store's pool has no connection to the database, and a direct \
                     connection fails too: logins that need the store are refused until it \
                     answers"
                ),
                Ok(()) => tracing::warn!(
                    "the store's pool had no free connection within {} ms, yet the database \
                     takes a direct connection: all {size} of store.pool_size were busy \
                     (raise it, or look for slow statements or locks)",
                    wait.as_millis()
                ),
            }
        });
    }
}
