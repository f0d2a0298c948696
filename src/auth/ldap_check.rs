//! `radmfa config check --connect`: every LDAP URL on its own, connected and bound as the
//! service account, and `base_dn` read, so an admin sees which server of a list is down or
//! refuses the account, or lacks the base, before a NAS sends anything (a login only says
//! that all of them failed). `serve` makes the same check at start, in the background, and
//! warns (`warn_at_start`); a reload tries new settings the same way before it uses them
//! (`first_to_bind`, until one server passes).

use std::time::{Duration, Instant};

use ldap3::{Ldap, Scope, SearchOptions};
use tokio::time::timeout;

use super::ldap::{ConnectFailure, LdapAuth};

/// One URL's result: how long connect and service bind took, or what went wrong.
pub struct ServerCheck {
    pub url: String,
    pub result: Result<Duration, String>,
    /// Why `base_dn` could not be read once bound, if it could not.
    pub base: Option<String>,
}

/// Why a URL failed its check.
struct Failed {
    said: String,
    /// The directory refused the service account's bind.
    refused: bool,
}

impl From<String> for Failed {
    fn from(said: String) -> Self {
        Failed {
            said,
            refused: false,
        }
    }
}

impl LdapAuth {
    /// Connects to each URL in turn (not the failover order: every one of them), binds as
    /// the service account, if one is configured, and reads `base_dn`.
    pub async fn check_servers(&self) -> Vec<ServerCheck> {
        let mut out = Vec::new();
        for (idx, url) in self.settings.urls.iter().enumerate() {
            let mut base = None;
            let result = self.check_one(idx, Some(&mut base)).await;
            out.push(ServerCheck {
                url: url.clone(),
                result: result.map_err(|f| f.said),
                base,
            });
        }
        out
    }

    /// A reload's check of new `[ldap]` settings before they replace the running ones: the
    /// URLs in their order until one connects, takes the service account's bind and reads
    /// `base_dn`, as `check_servers` does each. Bounded by `connect_timeout + op_timeout`
    /// per URL. `Ok`: the failures of the URLs before the one that passed, to warn of (as
    /// the start does); `Err`: each URL's failure, for the log.
    /// The base is read too: a mistyped `base_dn` bound fine, was applied, and every login
    /// then found nobody, with the reload logged as a success.
    pub async fn first_to_bind(&self) -> Result<Vec<String>, String> {
        let mut failures = Vec::new();
        for (idx, url) in self.settings.urls.iter().enumerate() {
            let mut base = None;
            match self.check_one(idx, Some(&mut base)).await {
                Ok(_) => match base {
                    None => return Ok(failures),
                    Some(why) => failures.push(format!("{url}: connected and bound, but {why}")),
                },
                Err(e) => failures.push(format!("{url}: {}", e.said)),
            }
        }
        Err(failures.join("; "))
    }

    /// `serve`'s check at start, as [`Self::check_servers`] makes it, a warning for each URL
    /// that fails: a wrong bind_password, a server not listening or a wrong CA file was
    /// first heard of at the first login, while a reload with the same settings was refused
    /// with its reason. A warning only: the directory may come up later, and the logins
    /// then work. Made on the serving `LdapAuth`, so a refused bind holds the logins' binds
    /// off as their own refusal would; and it stops there: every server of the directory
    /// would refuse it too, and each refused bind counts towards the account's lockout.
    pub(super) async fn check_at_start(&self) {
        let mut usable = 0;
        for (idx, url) in self.settings.urls.iter().enumerate() {
            let mut base = None;
            match self.check_one(idx, Some(&mut base)).await {
                Ok(_) => match base {
                    Some(why) => tracing::warn!(%url, "ldap {url}: connected and bound, but {why}"),
                    None => usable += 1,
                },
                Err(Failed { said, refused }) => {
                    tracing::warn!(%url, "ldap {url}: {said}; logins that need it fail until \
                        this is put right (serving anyway: the directory may come up later)");
                    if refused {
                        break;
                    }
                }
            }
        }
        // One line whatever the outcome: the journal shows the directory was checked.
        tracing::info!(
            "ldap: start-up check done: {usable} of {} server(s) connected, bound and read \
             base_dn",
            self.settings.urls.len()
        );
    }

    /// The URL at `idx`, connected and bound as the service account: how long that took.
    /// With `base`, `base_dn` is read then, and why it could not be is put there.
    async fn check_one(
        &self,
        idx: usize,
        base: Option<&mut Option<String>>,
    ) -> Result<Duration, Failed> {
        let t0 = Instant::now();
        let mut ldap = match self.connect_one(idx).await {
            Ok(ldap) => ldap,
            Err(e @ ConnectFailure::Timeout) => {
                return Err(Failed::from(match self.handshake_unanswered(idx).await {
                    Some(hint) => format!("{e} {hint}"),
                    None => e.to_string(),
                }))
            }
            Err(e) => return Err(Failed::from(e.to_string())),
        };
        if !self.settings.bind_dn.is_empty() {
            let password = self
                .settings
                .bind_password
                .expose_str()
                .ok_or_else(|| Failed::from("the bind password is not UTF-8".to_string()))?;
            // In turn with the logins' service binds, and not while a refusal holds them
            // off (see `ldap_service_hold`): the start's check runs beside the first logins.
            let turn = self.service_hold.turn().await;
            self.service_hold
                .check(Instant::now())
                .map_err(|held| Failed {
                    said: format!("service bind as {}: {held}", self.settings.bind_dn),
                    refused: true,
                })?;
            let bind = timeout(
                self.settings.op_timeout,
                ldap.ldap.simple_bind(&self.settings.bind_dn, password),
            );
            tokio::pin!(bind);
            // A bind that hangs gives its turn up, as a login's does.
            let answer = match timeout(super::ldap_service_hold::TURN_PATIENCE, &mut bind).await {
                Ok(answer) => answer,
                Err(_) => {
                    drop(turn);
                    bind.await
                }
            };
            let res = answer
                .map_err(|_| Failed::from("service bind timed out".to_string()))?
                .map_err(|e| Failed::from(self.port_hinted(idx, format!("service bind: {e}"))))?;
            if res.rc != 0 {
                // The account refused, as `connect_any` tells it: not this server's trouble.
                let refused = matches!(res.rc, 48..=50)
                    || (res.rc == 53 && super::ldap::speaks_of_the_account(&res.text));
                if refused {
                    let reason = format!("{}: {res}", self.settings.bind_dn);
                    self.service_hold.refused(Instant::now(), reason);
                }
                return Err(Failed {
                    said: format!("service bind as {}: {res}", self.settings.bind_dn),
                    refused,
                });
            }
            self.service_hold.bound();
        }
        let took = t0.elapsed();
        if let Some(base) = base {
            *base = self.read_base(idx, &mut ldap.ldap).await.err();
        }
        let _ = ldap.ldap.unbind().await;
        Ok(took)
    }

    /// `base_dn` read on `ldap` (scope base): bound and connected, yet a base that is not
    /// there (or hidden from the account) fails every login as surely as a wrong password.
    async fn read_base(&self, idx: usize, ldap: &mut Ldap) -> Result<(), String> {
        let base = &self.settings.base_dn;
        let search = ldap
            .with_search_options(SearchOptions::new().sizelimit(1))
            .with_timeout(self.settings.op_timeout)
            .search(base, Scope::Base, "(objectClass=*)", vec!["1.1"]);
        let res = timeout(self.settings.op_timeout, search)
            .await
            .map_err(|_| format!("reading [ldap] base_dn {base:?} timed out"))?
            .map_err(|e| self.port_hinted(idx, format!("reading [ldap] base_dn {base:?}: {e}")))?
            .1;
        match res.rc {
            0 => Ok(()),
            32 => Err(super::ldap_hints::base_dn_missing(&self.settings, &res)),
            _ => Err(format!("reading [ldap] base_dn {base:?}: {res}")),
        }
    }
}
