//! Going back to a directory server listed earlier once it answers again.
//!
//! After a failover, logins stay on the server that answered (`LdapAuth::url_order`): a
//! server that failed is not first again when its hold-off ends, because one that takes
//! connections and never answers would then cost a login its timeout every time. But the
//! order in `urls` is the admin's (the site's own domain controller before the remote one),
//! and a failover to the remote one lasted until it failed too, or until a restart. So
//! while a later URL is the preferred one, every [`PROBE_EVERY`] one connection asks the
//! URLs listed before it, in order and in the background, what a login asks: the service
//! account's bind (when there is one) and a read of `base_dn`, within the usual timeouts.
//! A root DSE read was not enough: a server whose directory hangs (a proxy whose remote is
//! down, a back end that never answers) still answers that from its own process, was
//! brought back every probe, and failed the login that found it back each time.
//!
//! The first that answers is preferred again; connections to the others are closed as they
//! come back, so new logins go to it. A server that fails again within
//! [`HELD_FOR_AT_LEAST`] of being brought back is probed half as often each time, up to
//! [`LONGEST_INTERVAL`]; one that held longer resets that. A service bind the probed server
//! refuses stops the probes for [`LONGEST_INTERVAL`]: each refused bind counts towards the
//! account's lockout (`ldap_service_hold`), and logins on the server in use still work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, Scope};
use tokio::time::timeout;

use crate::secret::Secret;

/// How often the URLs before the preferred one are asked whether they answer again, at
/// first: the hold-off a failed URL gets, so a server is asked no sooner than logins would.
pub(super) const PROBE_EVERY: Duration = super::ldap::FAILED_URL_HOLDOFF;
/// The longest wait between probes (after flaps, or a refused service bind).
pub(super) const LONGEST_INTERVAL: Duration = Duration::from_secs(600);
/// A server brought back that fails sooner than this was not back: probed less often.
pub(super) const HELD_FOR_AT_LEAST: Duration = Duration::from_secs(60);
/// A probe's answer older than this is not acted on: the server may have failed since (a
/// quiet night's first login would otherwise be sent to it).
const ANSWER_FRESH_FOR: Duration = PROBE_EVERY;
/// How soon to look again when every URL listed earlier is still held off.
const RECHECK_HELD: Duration = Duration::from_secs(1);

pub(super) struct ReturnProbe {
    state: Mutex<ProbeState>,
    running: AtomicBool,
}

struct ProbeState {
    /// When the next probe may start.
    next_at: Option<Instant>,
    /// The wait between probes now.
    interval: Duration,
    /// A URL listed before the preferred one that answered the last probe, and when.
    answered: Option<(usize, Instant)>,
    /// The URL last brought back, and when.
    restored: Option<(usize, Instant)>,
}

/// What a probe needs, copied: it runs in a task of its own.
pub(super) struct ProbeTargets {
    /// The URLs listed before the preferred one, with their indexes, in order.
    pub urls: Vec<(usize, String)>,
    pub settings: LdapConnSettings,
    pub connect_timeout: Duration,
    pub op_timeout: Duration,
    /// The service account (empty: anonymous searches, as logins make them).
    pub bind_dn: String,
    pub bind_password: Secret,
    pub base_dn: String,
}

enum Probed {
    Answers,
    NoAnswer,
    /// The service bind was refused (48 to 50): the directory's word on the account.
    ServiceRefused,
}

impl ReturnProbe {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(ReturnProbe {
            state: Mutex::new(ProbeState {
                next_at: None,
                interval: PROBE_EVERY,
                answered: None,
                restored: None,
            }),
            running: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProbeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A URL listed earlier that answered a probe lately, taken.
    pub(super) fn take_answered(&self) -> Option<usize> {
        let (idx, at) = self.lock().answered.take()?;
        (at.elapsed() < ANSWER_FRESH_FOR).then_some(idx)
    }

    /// `idx` was brought back now.
    pub(super) fn restored(&self, idx: usize) {
        self.lock().restored = Some((idx, Instant::now()));
    }

    /// `idx` failed: if it was brought back less than [`HELD_FOR_AT_LEAST`] ago, the
    /// probes slow down; if it held longer, they are back to [`PROBE_EVERY`].
    pub(super) fn failed(&self, idx: usize) {
        let mut s = self.lock();
        let Some((restored, at)) = s.restored else {
            return;
        };
        if restored != idx {
            return;
        }
        s.restored = None;
        s.interval = if at.elapsed() < HELD_FOR_AT_LEAST {
            (s.interval * 2).min(LONGEST_INTERVAL)
        } else {
            PROBE_EVERY
        };
    }

    /// Starts a probe if none runs and one is due; `targets` is called only then, and
    /// nothing starts when it names no URL (each one listed earlier is still held off after
    /// its failure).
    pub(super) fn maybe_start(self: &Arc<Self>, targets: impl FnOnce() -> ProbeTargets) {
        let now = Instant::now();
        let mut s = self.lock();
        if s.next_at.is_some_and(|at| now < at) || self.running.load(Ordering::Relaxed) {
            return;
        }
        let t = targets();
        if t.urls.is_empty() {
            s.next_at = Some(now + RECHECK_HELD);
            return;
        }
        s.next_at = Some(now + s.interval);
        drop(s);
        self.running.store(true, Ordering::Relaxed);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            for (idx, url) in &t.urls {
                match answers(url, &t).await {
                    Probed::Answers => {
                        me.lock().answered = Some((*idx, Instant::now()));
                        break;
                    }
                    Probed::NoAnswer => {}
                    Probed::ServiceRefused => {
                        tracing::warn!(%url, bind_dn = %t.bind_dn,
                            "LDAP server listed earlier refuses the service account's bind; \
                             not asked again for 10 minutes (each refused bind counts \
                             towards the account's lockout)");
                        me.lock().next_at = Some(Instant::now() + LONGEST_INTERVAL);
                        break;
                    }
                }
            }
            me.running.store(false, Ordering::Relaxed);
        });
    }
}

/// Whether `url` does what a login needs, in time: the service bind (if any) and a read of
/// `base_dn` (a base search, no attributes). Busy, unavailable and unwilling (51 to 53)
/// are no answer: logins would pass such a server over.
async fn answers(url: &str, t: &ProbeTargets) -> Probed {
    let connect = LdapConnAsync::with_settings(t.settings.clone(), url);
    let Ok(Ok((conn, mut ldap))) = timeout(t.connect_timeout, connect).await else {
        return Probed::NoAnswer;
    };
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(error = %e, "LDAP probe connection ended");
        }
    });
    let probed = async {
        if !t.bind_dn.is_empty() {
            let Some(password) = t.bind_password.expose_str() else {
                return Probed::NoAnswer;
            };
            let bind = ldap.simple_bind(&t.bind_dn, password);
            match timeout(t.op_timeout, bind).await {
                Ok(Ok(res)) if res.rc == 0 => {}
                Ok(Ok(res)) if (48..=50).contains(&res.rc) => return Probed::ServiceRefused,
                _ => return Probed::NoAnswer,
            }
        }
        let search = ldap.with_timeout(t.op_timeout).search(
            &t.base_dn,
            Scope::Base,
            "(objectClass=*)",
            vec!["1.1"],
        );
        match timeout(t.op_timeout, search).await {
            Ok(Ok(ldap3::SearchResult(_, res))) if res.rc == 0 => Probed::Answers,
            _ => Probed::NoAnswer,
        }
    }
    .await;
    let _ = timeout(t.op_timeout, ldap.unbind()).await;
    probed
}
