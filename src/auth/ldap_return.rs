//! Going back to a directory server listed earlier once it answers again.
//!
//! After a failover, logins stay on the server that answered (`LdapAuth::url_order`): a
//! server that failed is not first again when its hold-off ends, because one that takes
//! connections and never answers would then cost a login its timeout every time. But the
//! order in `urls` is the admin's (the site's own domain controller before the remote one),
//! and a failover to the remote one lasted until it failed too, or until a restart. So
//! while a later URL is the preferred one, every [`PROBE_EVERY`] one connection asks the
//! URLs listed before it, in order, for the root DSE (anonymous, a base search with no
//! attributes: no bind, so nothing counts towards a service account's lockout), in the
//! background and within the usual timeouts. The first that answers is preferred again;
//! idle connections to the others are closed, and those in use are closed when they come
//! back, so new logins go to it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, Scope};
use tokio::time::timeout;

/// How often the URLs before the preferred one are asked whether they answer again: the
/// hold-off a failed URL gets, so a server is asked no sooner than logins would ask it.
pub(super) const PROBE_EVERY: Duration = super::ldap::FAILED_URL_HOLDOFF;

const NONE: usize = usize::MAX;

pub(super) struct ReturnProbe {
    /// When the next probe may start.
    next_at: Mutex<Option<Instant>>,
    running: AtomicBool,
    /// A URL listed before the preferred one that answered the last probe, or [`NONE`].
    answered: AtomicUsize,
}

/// What a probe needs, copied: it runs in a task of its own.
pub(super) struct ProbeTargets {
    /// The URLs listed before the preferred one, with their indexes, in order.
    pub urls: Vec<(usize, String)>,
    pub settings: LdapConnSettings,
    pub connect_timeout: Duration,
    pub op_timeout: Duration,
}

impl ReturnProbe {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(ReturnProbe {
            next_at: Mutex::new(None),
            running: AtomicBool::new(false),
            answered: AtomicUsize::new(NONE),
        })
    }

    /// A URL listed earlier that answered a probe since the last call, taken.
    pub(super) fn take_answered(&self) -> Option<usize> {
        match self.answered.swap(NONE, Ordering::Relaxed) {
            NONE => None,
            idx => Some(idx),
        }
    }

    /// Starts a probe if none runs and the last started [`PROBE_EVERY`] ago or more;
    /// `targets` is called only then, and nothing starts when it names no URL (each one
    /// listed earlier is still held off after its failure).
    pub(super) fn maybe_start(self: &Arc<Self>, targets: impl FnOnce() -> ProbeTargets) {
        let now = Instant::now();
        let mut next = self.next_at.lock().expect("probe lock");
        if next.is_some_and(|at| now < at) || self.running.load(Ordering::Relaxed) {
            return;
        }
        let t = targets();
        if t.urls.is_empty() {
            return;
        }
        *next = Some(now + PROBE_EVERY);
        drop(next);
        self.running.store(true, Ordering::Relaxed);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            for (idx, url) in &t.urls {
                if answers(url, &t).await {
                    me.answered.store(*idx, Ordering::Relaxed);
                    break;
                }
            }
            me.running.store(false, Ordering::Relaxed);
        });
    }
}

/// Whether `url` takes a connection and answers a root DSE search in time. Any LDAP answer
/// but busy, unavailable and unwilling counts (a directory may refuse anonymous reads of
/// it): the server is up and answering.
async fn answers(url: &str, t: &ProbeTargets) -> bool {
    let connect = LdapConnAsync::with_settings(t.settings.clone(), url);
    let Ok(Ok((conn, mut ldap))) = timeout(t.connect_timeout, connect).await else {
        return false;
    };
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(error = %e, "LDAP probe connection ended");
        }
    });
    let search =
        ldap.with_timeout(t.op_timeout)
            .search("", Scope::Base, "(objectClass=*)", vec!["1.1"]);
    // Busy, unavailable or unwilling (51 to 53) is a server that would pass logins over.
    let answered = matches!(
        timeout(t.op_timeout, search).await,
        Ok(Ok(ldap3::SearchResult(_, res))) if !(51..=53).contains(&res.rc)
    );
    let _ = timeout(t.op_timeout, ldap.unbind()).await;
    answered
}
