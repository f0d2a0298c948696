//! Whether this node's backends (directory, store) answer, for the Status-Server of a
//! client with `on_backend_failure = "no_reply"`. Such a NAS or proxy moves to another
//! node when this one stays silent; if Status-Server still said "alive" while every login
//! went unanswered, a proxy that checks with Status-Server (radsecproxy, FreeRADIUS) would
//! bring the node back at once and fail over again, login after login.
//!
//! A failed request marks the backends failing; a request decided without a fault marks
//! them answering. While they are failing, a Status-Server runs a probe (a directory
//! search for a name nobody has, a store read), at most one per [`PROBE_EVERY`] on the
//! whole node: without it a node no NAS sends logins to any more could never come back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::app::AppState;

/// The least time between two probes.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// A probe that takes longer than this counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct BackendHealth {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    failing: bool,
    last_probe: Option<Instant>,
}

impl BackendHealth {
    pub fn failed(&self) {
        self.lock().failing = true;
    }

    pub fn answered(&self) {
        let mut s = self.lock();
        if s.failing {
            s.failing = false;
        }
    }

    pub fn is_failing(&self) -> bool {
        self.lock().failing
    }

    /// True, and the probe slot taken, when no probe ran in the last [`PROBE_EVERY`].
    fn take_probe(&self, now: Instant) -> bool {
        let mut s = self.lock();
        if s.last_probe
            .is_some_and(|t| now.duration_since(t) < PROBE_EVERY)
        {
            return false;
        }
        s.last_probe = Some(now);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether a Status-Server should be answered: yes while the backends answer; while they
/// fail, only once a probe finds them answering again.
pub async fn answering(app: &AppState) -> bool {
    let health = &app.backend_health;
    if !health.is_failing() {
        return true;
    }
    if !health.take_probe(Instant::now()) {
        return false;
    }
    let probe = async {
        // A search must answer (found or not), not fail.
        let directory = app.primary().lookup("radmfa-health-probe").await.is_ok();
        let store = app
            .store
            .challenge(&[0u8; 32], app.clock.now())
            .await
            .is_ok();
        directory && store
    };
    let ok = tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .unwrap_or(false);
    if ok {
        health.answered();
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_probe_per_interval_and_any_answer_clears_the_failure() {
        let h = BackendHealth::default();
        assert!(!h.is_failing());
        h.failed();
        assert!(h.is_failing());
        let t0 = Instant::now();
        assert!(h.take_probe(t0));
        assert!(!h.take_probe(t0 + PROBE_EVERY / 2));
        assert!(h.take_probe(t0 + PROBE_EVERY));
        h.answered();
        assert!(!h.is_failing());
    }
}
