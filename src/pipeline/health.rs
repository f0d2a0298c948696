//! Whether this node's backends (directory, store) answer, for the Status-Server of a
//! client with `on_backend_failure = "no_reply"`. Such a NAS or proxy moves to another
//! node when this one stays silent; if Status-Server still said "alive" while every login
//! went unanswered, a proxy that checks with Status-Server (radsecproxy, FreeRADIUS) would
//! bring the node back at once and fail over again, login after login.
//!
//! A request that meets a directory or store failure, or runs out of time, marks the node
//! failing. Only a probe clears that: while failing, a Status-Server runs one (a directory
//! search for a name nobody has, then a store write and delete of an already expired
//! challenge, since most store failures are failed writes, and a check that the audit
//! table takes records), at most one per
//! [`PROBE_EVERY`] on the whole node. Requests do not clear it: many are decided without
//! touching the backend that failed (no User-Name, a follow-up round that reads only the
//! store), and one that started before the outage may end after it. A failure recorded
//! while a probe runs stands (the generation counts failures).
//!
//! A node starts unproven, as if failing: its first Status-Server runs a probe. Otherwise a
//! node started while its directory is down would say "alive" until a login failed there.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::app::AppState;
use crate::store::PendingChallenge;

/// For a client whose passwords go to upstream RADIUS servers (`primary = "upstream"`):
/// false while a login found none of its group's servers answering, for the group's
/// `dead_time_secs` at most or until one answers (a login, or a status check). Bounded, so
/// that a proxy that stopped sending logins here sends one again: without status checks
/// (or with checks the servers ignore, Status-Server to NPS) a login is the only way to
/// find a server back, and a node silent until then would stay out for good.
pub fn upstream_answering(app: &AppState, ctx: &super::RequestContext) -> bool {
    let crate::config::Primary::Upstream(group) = &ctx.client.primary else {
        return true;
    };
    let config = app.config();
    let Some(g) = config.upstream_group(group) else {
        return true;
    };
    !app.upstream_health.logins_unanswered(&g.group, g.dead_time)
}

/// The least time between two probes.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// A probe that takes longer than this counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct BackendHealth {
    state: Mutex<State>,
}

impl BackendHealth {
    /// A node's health at start: unknown until a probe has found the backends answering.
    pub fn unproven() -> Self {
        let h = BackendHealth::default();
        h.lock().failing = true;
        h
    }
}

#[derive(Default)]
struct State {
    failing: bool,
    /// The log said the node is failing (a node unproven since its start, or since a
    /// reload, was not said to be): only then is its way back "again".
    warned: bool,
    /// Failures recorded so far: a probe clears only the failures it saw.
    generation: u64,
    last_probe: Option<Instant>,
}

impl BackendHealth {
    /// A request met a failure, `what` (said in the log: "a login met a store failure").
    pub fn failed(&self, what: &str) {
        let mut s = self.lock();
        // Said once as it happens, as the way back is ("answer again"): until then the
        // node looks down to proxies that check it with Status-Server.
        if !s.failing {
            tracing::warn!(
                "{what}: Status-Server from no_reply clients goes unanswered until a probe \
                 finds this node's directory (if it has one) and store answering"
            );
            s.warned = true;
        }
        s.failing = true;
        s.generation += 1;
    }

    /// Backends not yet proven (new directory settings from a reload), as at start: no
    /// failure to warn of, and the next Status-Server probes them.
    pub fn prove_again(&self) {
        let mut s = self.lock();
        s.failing = true;
        s.generation += 1;
        // Probed at the next check, not up to PROBE_EVERY later: meanwhile /health said
        // "failing: … (the log says which)" and Status-Server went unanswered, with
        // nothing failed and nothing in the log.
        s.last_probe = None;
    }

    pub fn is_failing(&self) -> bool {
        self.lock().failing
    }

    /// The generation to probe against, when no probe ran in the last [`PROBE_EVERY`].
    fn take_probe(&self, now: Instant) -> Option<u64> {
        let mut s = self.lock();
        if s.last_probe
            .is_some_and(|t| now.duration_since(t) < PROBE_EVERY)
        {
            return None;
        }
        s.last_probe = Some(now);
        Some(s.generation)
    }

    /// A probe that started at `generation` found the backends answering; true if the
    /// log said they were failing.
    fn probed_ok(&self, generation: u64) -> bool {
        let mut s = self.lock();
        if s.generation != generation {
            return false;
        }
        s.failing = false;
        std::mem::take(&mut s.warned)
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
    let Some(generation) = health.take_probe(Instant::now()) else {
        return false;
    };
    let ok = tokio::time::timeout(PROBE_TIMEOUT, probe(app))
        .await
        .unwrap_or(false);
    let warned = ok && health.probed_ok(generation);
    if ok && !health.is_failing() {
        let again = if warned { " again" } else { "" };
        // What this node has: without [ldap] (primary = "upstream" only) no directory.
        let what = if app.config().ldap.is_some() {
            "the directory and the store answer"
        } else {
            "the store answers (no directory: no [ldap])"
        };
        tracing::info!("{what}{again}: Status-Server is answered");
    }
    ok && !health.is_failing()
}

async fn probe(app: &AppState) -> bool {
    // A search must answer (found or not), not fail.
    if app.primary().lookup("radmfa-health-probe").await.is_err() {
        return false;
    }
    // A write and a delete: an expired challenge, under a random State hash, that nothing
    // can ever answer.
    let now = app.clock.now();
    let probe = PendingChallenge {
        state_hash: rand::random::<[u8; 32]>().to_vec(),
        user: String::new(),
        nas: String::new(),
        created_at: now - 1,
        expires_at: now - 1,
        attempts: 0,
        context: "{}".into(),
    };
    // And the audit table: every answered request needs its record, and a table locked
    // or out of reach while challenges still write (PostgreSQL's records go through a
    // connection of their own) left every login failing behind a Status-Server "alive".
    app.store.put_challenge(&probe).await.is_ok()
        && app.store.consume_challenge(&probe.state_hash).await.is_ok()
        && app.store.audit_writable().await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_starts_unproven_until_a_probe() {
        let h = BackendHealth::unproven();
        assert!(h.is_failing());
        let g = h.take_probe(Instant::now()).expect("a first probe at once");
        h.probed_ok(g);
        assert!(!h.is_failing());
    }

    /// "Answer again" only after the log said they did not: a node unproven since its
    /// start whose first probe follows a login's failure had said nothing before.
    #[test]
    fn back_again_only_after_a_warning() {
        let h = BackendHealth::unproven();
        h.failed("a test");
        let g = h.take_probe(Instant::now()).unwrap();
        assert!(!h.probed_ok(g), "never said to fail");
        h.failed("a test");
        let g = h.take_probe(Instant::now() + PROBE_EVERY).unwrap();
        assert!(h.probed_ok(g), "said to fail, then back");
        h.prove_again();
        let g = h.take_probe(Instant::now() + PROBE_EVERY * 2).unwrap();
        assert!(!h.probed_ok(g), "a reload's new settings: nothing said");
    }

    /// A reload's new settings are probed at the next check, even one within PROBE_EVERY
    /// of the last probe: it answered "failing" without probing, with nothing failed.
    #[test]
    fn a_reload_is_probed_at_the_next_check() {
        let h = BackendHealth::unproven();
        let t0 = Instant::now();
        let g = h.take_probe(t0).unwrap();
        h.probed_ok(g);
        h.prove_again();
        assert!(h.is_failing());
        let g = h
            .take_probe(t0 + PROBE_EVERY / 4)
            .expect("probed at once after a reload");
        h.probed_ok(g);
        assert!(!h.is_failing());
    }

    #[test]
    fn one_probe_per_interval_and_a_failure_during_a_probe_stands() {
        let h = BackendHealth::default();
        assert!(!h.is_failing());
        h.failed("a test");
        assert!(h.is_failing());
        let t0 = Instant::now();
        let g = h.take_probe(t0).expect("a first probe");
        assert!(h.take_probe(t0 + PROBE_EVERY / 2).is_none());
        // A failure while the probe ran: its success does not clear it.
        h.failed("a test");
        h.probed_ok(g);
        assert!(h.is_failing());
        let g = h.take_probe(t0 + PROBE_EVERY).expect("the next probe");
        h.probed_ok(g);
        assert!(!h.is_failing());
    }
}
