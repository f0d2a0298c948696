//! `radmfa config check --connect`: every LDAP URL on its own, connected and bound as the
//! service account, so an admin sees which server of a list is down or refuses the account
//! before a NAS sends anything (a login only says that all of them failed). A reload tries
//! new settings the same way before it uses them (`first_to_bind`).

use std::time::{Duration, Instant};

use tokio::time::timeout;

use super::ldap::LdapAuth;

/// One URL's result: how long connect and service bind took, or what went wrong.
pub struct ServerCheck {
    pub url: String,
    pub result: Result<Duration, String>,
}

impl LdapAuth {
    /// Connects to each URL in turn (not the failover order: every one of them) and binds
    /// as the service account, if one is configured.
    pub async fn check_servers(&self) -> Vec<ServerCheck> {
        let mut out = Vec::new();
        for (idx, url) in self.settings.urls.iter().enumerate() {
            out.push(ServerCheck {
                url: url.clone(),
                result: self.check_one(idx).await,
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
            match self.check_one(idx).await {
                Ok(_) => return Ok(()),
                Err(e) => failures.push(format!("{url}: {e}")),
            }
        }
        Err(failures.join("; "))
    }

    /// The URL at `idx`, connected and bound as the service account: how long that took.
    async fn check_one(&self, idx: usize) -> Result<Duration, String> {
        let t0 = Instant::now();
        let mut ldap = self.connect_one(idx).await.map_err(|e| e.to_string())?;
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
                .map_err(|e| format!("service bind: {e}"))?;
            if res.rc != 0 {
                return Err(format!("service bind as {}: {res}", self.settings.bind_dn));
            }
        }
        let _ = ldap.unbind().await;
        Ok(t0.elapsed())
    }
}
