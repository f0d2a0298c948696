//! Store failures said once a minute, not once a login. During an outage every request
//! meets the same error: at a few hundred logins a second, a line each (its audit record
//! not written, its writes not committed) passed journald's default 10,000 lines per 30 s,
//! and journald then drops lines, the one that says why among them (the pool's diagnosis).
//! The first failure of a kind is an ERROR at once; the next ones of that kind within
//! [`EVERY`] go to debug, and the first after it is an ERROR again, saying how many were not
//! shown. The metrics
//! (`radmfa_backend_failures_total{backend="store"}`) and the audit lines still count each.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The least time between two ERROR lines of one kind.
pub const EVERY: Duration = Duration::from_secs(60);

/// Kinds remembered at once; more are forgotten (all of them: a store failing in that many
/// ways at once says so anyway).
const MAX_KINDS: usize = 32;

/// Per kind of error (its text without digits: durations and counts vary, the kind does
/// not): when it was last an ERROR, and how many like it were held back since. A new kind
/// (a full disk after a failover's timeouts) is an ERROR at once.
#[derive(Default)]
pub struct Throttle {
    state: Mutex<Option<HashMap<String, (Instant, u64)>>>,
}

impl Throttle {
    pub const fn new() -> Self {
        Throttle {
            state: Mutex::new(None),
        }
    }

    /// At `now`, for an error of `kind`: `Some(n)` when a line is due, `n` the lines of
    /// that kind held back since its last one; `None` when this one is held back.
    fn due(&self, kind: &str, now: Instant) -> Option<u64> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let seen = guard.get_or_insert_with(HashMap::new);
        if let Some((last, held_back)) = seen.get_mut(kind) {
            if now.duration_since(*last) < EVERY {
                *held_back += 1;
                return None;
            }
            *last = now;
            return Some(std::mem::take(held_back));
        }
        if seen.len() >= MAX_KINDS {
            seen.clear();
        }
        seen.insert(kind.to_string(), (now, 0));
        Some(0)
    }

    /// Whether a line of `what` for `error` is due now: `Some(n)`, `n` the lines of that
    /// kind held back since the last one; `None` while the last is under a minute old.
    pub fn due_now(&self, what: &str, error: &str) -> Option<u64> {
        let kind: String = format!("{what}: {error}")
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        self.due(&kind, Instant::now())
    }

    /// An ERROR line of `what`, or a debug one while the last ERROR of the same kind is
    /// under a minute old.
    pub fn error(&self, what: &str, error: &dyn Display) {
        let text = error.to_string();
        match self.due_now(what, &text) {
            Some(0) => tracing::error!(error = %text, "{what}"),
            Some(held_back) => tracing::error!(
                error = %text,
                held_back,
                "{what} (and {held_back} more like it since the last such line, at debug \
                 level)"
            ),
            None => tracing::debug!(error = %text, "{what}"),
        }
    }
}

/// Audit records not written.
pub static AUDIT: Throttle = Throttle::new();
/// A request's store writes not committed (or not within its deadline).
pub static COMMIT: Throttle = Throttle::new();
/// The SQLite store's write batches that failed to start or commit (`sqlite_writer`).
pub static BATCH: Throttle = Throttle::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_minute_per_kind_with_the_count_held_back() {
        let t = Throttle::new();
        let t0 = Instant::now();
        assert_eq!(t.due("a", t0), Some(0));
        assert_eq!(t.due("a", t0 + Duration::from_secs(1)), None);
        // Another kind of failure is said at once.
        assert_eq!(t.due("b", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(t.due("a", t0 + Duration::from_secs(59)), None);
        assert_eq!(t.due("a", t0 + EVERY), Some(2));
        assert_eq!(t.due("a", t0 + EVERY + Duration::from_secs(1)), None);
        assert_eq!(t.due("a", t0 + 3 * EVERY), Some(1));
    }
}
