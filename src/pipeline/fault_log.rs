//! Store failures said once a minute, not once a login. During an outage every request
//! meets the same error: at a few hundred logins a second, a line each (its audit record
//! not written, its writes not committed) passed journald's default 10,000 lines per 30 s,
//! and journald then drops lines, the one that says why among them (the pool's diagnosis).
//! The first failure is an ERROR at once; the next ones within [`EVERY`] go to debug, and
//! the first after it is an ERROR again, saying how many were not shown. The metrics
//! (`radmfa_backend_failures_total{backend="store"}`) and the audit lines still count each.

use std::fmt::Display;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The least time between two ERROR lines of one kind.
pub const EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Throttle {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub const fn new() -> Self {
        Throttle {
            state: Mutex::new(State {
                last: None,
                held_back: 0,
            }),
        }
    }

    /// At `now`: `Some(n)` when a line is due, `n` the lines held back since the last one;
    /// `None` when this one is held back.
    fn due(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.last.is_some_and(|t| now.duration_since(t) < EVERY) {
            s.held_back += 1;
            return None;
        }
        s.last = Some(now);
        Some(std::mem::take(&mut s.held_back))
    }

    /// An ERROR line of `what`, or a debug one while the last ERROR is under a minute old.
    pub fn error(&self, what: &str, error: &dyn Display) {
        match self.due(Instant::now()) {
            Some(0) => tracing::error!(error = %error, "{what}"),
            Some(held_back) => tracing::error!(
                error = %error,
                held_back,
                "{what} (and {held_back} more like it in the last minute, at debug level)"
            ),
            None => tracing::debug!(error = %error, "{what}"),
        }
    }
}

/// Audit records not written.
pub static AUDIT: Throttle = Throttle::new();
/// A request's store writes not committed (or not within its deadline).
pub static COMMIT: Throttle = Throttle::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_minute_with_the_count_held_back() {
        let t = Throttle::new();
        let t0 = Instant::now();
        assert_eq!(t.due(t0), Some(0));
        assert_eq!(t.due(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.due(t0 + Duration::from_secs(59)), None);
        assert_eq!(t.due(t0 + EVERY), Some(2));
        assert_eq!(t.due(t0 + EVERY + Duration::from_secs(1)), None);
        assert_eq!(t.due(t0 + 3 * EVERY), Some(1));
    }
}
