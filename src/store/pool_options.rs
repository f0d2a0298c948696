//! The sqlx pool options every connection pool of radmfa's starts from: with no idle
//! timeout and no maximum lifetime, so that sqlx starts no maintenance task.
//!
//! sqlx 0.8.6 (the newest 0.8 release) has a race in its pool (sqlx issue #3645, fixed
//! upstream by pull request #4289, in no 0.8 release): a connection released while another
//! task takes one can take the pool's idle count below zero for an instant, where it wraps
//! to `usize::MAX`. The maintenance task, which sqlx starts when `idle_timeout` or
//! `max_lifetime` is set (both are, by default), takes that count as the bound of a loop
//! that never awaits, and spins a core at 100 % for ever. Here it hung
//! `radmfa user enroll-totp` at exit (the runtime waits for its tasks) for more than eight
//! minutes in a test run; in `serve` it would take a runtime worker for good.
//!
//! Without the task nothing closes an idle connection on a timer. That costs little: a
//! SQLite pool holds a few handles on one file, and a PostgreSQL pool at most its size per
//! node, each pinged before use once it has sat idle a while (`store::postgres::connect`),
//! and closed when it fails.

use sqlx::pool::PoolOptions;
use sqlx::Database;

/// `PoolOptions::new()` without the idle timeout and the lifetime that start sqlx's
/// maintenance task (see the module's comment).
/// The one place that may call `PoolOptions::new` (clippy.toml's `disallowed-methods`).
#[allow(clippy::disallowed_methods)]
pub fn without_reaper<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new().idle_timeout(None).max_lifetime(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_starts_the_maintenance_task() {
        let options = without_reaper::<sqlx::Sqlite>();
        assert_eq!(options.get_idle_timeout(), None);
        assert_eq!(options.get_max_lifetime(), None);
        // The other condition sqlx starts it for.
        assert_eq!(options.get_min_connections(), 0);
    }
}
