//! Closing an sqlx pool so that no connection outlives the call.

use std::time::{Duration, Instant};

/// Closes `pool` and waits until it holds no connection, for at most a second.
///
/// sqlx's `Pool::close` can return with a connection still open: one on its way back to the
/// pool (a spawned task) when close began is either closed by that task a little later or
/// queued as idle after close's last look at the idle queue (measured on SQLite: one admin
/// command in five). Such a connection is then cut when the process exits: SQLite's last
/// close does not happen where it should (it checkpoints and removes the -wal and -shm
/// files), and PostgreSQL logs "connection reset by peer". Closing again closes what was
/// queued since.
pub(super) async fn close_pool<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) {
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        pool.close().await;
        if pool.size() == 0 || Instant::now() > until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
