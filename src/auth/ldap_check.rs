//! `radmfa config check --connect`: every LDAP URL on its own, connected and bound as the
//! service account, and `base_dn` read, so an admin sees which server of a list is down or
//! refuses the account, or lacks the base, before a NAS sends anything (a login only says
//! that all of them failed). A reload tries new settings the same way before it uses them
//! (`first_to_bind`, the bind only).

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
                result,
                base,
            });
        }
        out
    }

    /// A reload's check of new `[ldap]` settings before they replace the running ones: the
    /// URLs in their order until one connects and takes the service account's bind, as
    /// `check_servers` does each. Bounded by `connect_timeout + op_timeout` per URL. `Err`:
    /// each URL's failure, for the log.
    pub async fn first_to_bind(&self) -> Result<(), String> {
        let mut failures = Vec::new();
        for (idx, url) in self.settings.urls.iter().enumerate() {
            match self.check_one(idx, None).await {
                Ok(_) => return Ok(()),
                Err(e) => failures.push(format!("{url}: {e}")),
            }
        }
        Err(failures.join("; "))
    }

    /// The URL at `idx`, connected and bound as the service account: how long that took.
    /// With `base`, `base_dn` is read then, and why it could not be is put there.
    async fn check_one(
        &self,
        idx: usize,
        base: Option<&mut Option<String>>,
    ) -> Result<Duration, String> {
        let t0 = Instant::now();
        let mut ldap = match self.connect_one(idx).await {
            Ok(ldap) => ldap,
            Err(e @ ConnectFailure::Timeout) => {
                return Err(match self.handshake_unanswered(idx).await {
                    Some(hint) => format!("{e} {hint}"),
                    None => e.to_string(),
                })
            }
            Err(e) => return Err(e.to_string()),
        };
        if !self.settings.bind_dn.is_empty() {
            let password = self
                .settings
                .bind_password
                .expose_str()
                .ok_or("the bind password is not UTF-8")?;
            let bind = ldap.simple_bind(&self.settings.bind_dn, password);
            let res = timeout(self.settings.op_timeout, bind)
                .await
                .map_err(|_| "service bind timed out".to_string())?
                .map_err(|e| self.port_hinted(idx, format!("service bind: {e}")))?;
            if res.rc != 0 {
                return Err(format!("service bind as {}: {res}", self.settings.bind_dn));
            }
        }
        let took = t0.elapsed();
        if let Some(base) = base {
            *base = self.read_base(idx, &mut ldap).await.err();
        }
        let _ = ldap.unbind().await;
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
