//! Whether a failover between `[ldap] urls` can finish within the request deadline.
//!
//! When a directory server hangs, a login waits `timeout_ms` on it, then asks the next URL,
//! usually from cold: a new connection and its service bind, the search, a second
//! connection and the user's bind, about five round trips (more with TLS). At a branch
//! office 150 ms from its second DC that is 1.5 s, and with the defaults (timeout_ms 2000,
//! request_deadline_ms 4000 less 500 ms for the audit record) every login of a red team's
//! test ran past the deadline while the far DC had already accepted the password.
//!
//! The round trip is the network's, so the file alone can only catch the setting that
//! leaves the next server less than its own connect may take; `config check --connect`
//! times each server's connect and bind and says how much `timeout_ms` may be.

use std::time::Duration;

use crate::auth::ServerCheck;
use crate::config::{Config, Primary};
use crate::pipeline::audit_reserve;

/// A login from cold takes about this many times a connect-and-service-bind: two
/// connections (each a TCP and, with TLS, a handshake), a service bind, a search and a
/// user bind. Measured: plain 5 round trips against 2 (2.5), LDAPS 2.3 s against about 1,
/// StartTLS 3.1 s against about 1.4.
const COLD_LOGIN_PER_CONNECT: f64 = 2.5;
/// Kept spare on top of the estimate: round trips vary, and a loaded DC answers slower.
const MARGIN: f64 = 0.2;

/// The time a login has to decide, for the LDAP clients with the shortest deadline: the
/// deadline and that window. None without an LDAP client.
fn window(cfg: &Config) -> Option<(Duration, Duration)> {
    let deadline = cfg
        .clients
        .iter()
        .filter(|c| c.primary == Primary::Ldap)
        .map(|c| c.factors.request_deadline(cfg.server.request_deadline))
        .min()?;
    Some((deadline, deadline - audit_reserve(deadline)))
}

/// What the file alone shows: with several URLs, `timeout_ms` and `connect_timeout_ms`
/// together beyond what a login has to decide.
pub fn file_warning(cfg: &Config) -> Option<String> {
    let l = cfg.ldap.as_ref().filter(|l| l.urls.len() > 1)?;
    let (deadline, window) = window(cfg)?;
    // Each beyond the window alone has its own warning (review.rs).
    if l.op_timeout >= window || l.connect_timeout >= window {
        return None;
    }
    if l.op_timeout + l.connect_timeout <= window {
        return None;
    }
    let room = window - l.connect_timeout;
    Some(format!(
        "ldap: timeout_ms = {} and connect_timeout_ms = {} add up to more than the {} ms a \
         login has to decide (request_deadline_ms {} less {} ms kept for its audit record): \
         when a server hangs, the next URL is asked with less time left than its own connect \
         may take, and a login there from cold (a connect, the service bind, the search, a \
         second connect and the user's bind) cannot finish; lower timeout_ms to about {} ms \
         less five round trips to your slowest directory server (`config check --connect` \
         measures them), or raise request_deadline_ms, if your NAS waits longer",
        l.op_timeout.as_millis(),
        l.connect_timeout.as_millis(),
        window.as_millis(),
        deadline.as_millis(),
        (deadline - window).as_millis(),
        room.as_millis(),
    ))
}

/// What `config check --connect` measured: `servers`, each URL's connect and service
/// bind. With several URLs, whether `timeout_ms` on a server that hangs leaves enough for a
/// login from cold on the slowest of the others.
pub fn measured_warning(cfg: &Config, servers: &[ServerCheck]) -> Option<String> {
    let l = cfg.ldap.as_ref().filter(|l| l.urls.len() > 1)?;
    let (deadline, window) = window(cfg)?;
    let (url, took) = servers
        .iter()
        .filter_map(|s| s.result.as_ref().ok().map(|t| (&s.url, *t)))
        .max_by_key(|(_, t)| *t)?;
    let cold = took.mul_f64(COLD_LOGIN_PER_CONNECT);
    let needs = cold.mul_f64(1.0 + MARGIN);
    // What a server that hangs costs before the next is asked: timeout_ms, and half of it
    // again when the search went out on a pooled connection that sat idle (as between a
    // branch office's sporadic logins), which is asked again on a new one first
    // (`LdapAuth::fresh_patience`).
    let hung = l.op_timeout + l.op_timeout / 2;
    if hung + needs <= window {
        return None;
    }
    let what = format!(
        "ldap: {url} took {} ms to connect and bind, so a login from cold there takes about \
         {} ms; after timeout_ms = {} on a server that hangs, and half of it again when the \
         pooled connection the search went out on sat idle, that does not fit in the {} ms \
         a login has to decide (request_deadline_ms {} less {} ms kept for its audit record), \
         and logins are refused while the next server would have let them in",
        took.as_millis(),
        cold.as_millis(),
        l.op_timeout.as_millis(),
        window.as_millis(),
        deadline.as_millis(),
        (deadline - window).as_millis(),
    );
    // Rounded down to 100 ms; timeout_ms is at least 100. It costs 1.5 times itself.
    let room = (window.saturating_sub(needs).as_millis() * 2 / 3) / 100 * 100;
    Some(if room >= 100 {
        format!(
            "{what}: lower timeout_ms to about {room} ms, or raise request_deadline_ms, if \
             your NAS waits longer"
        )
    } else {
        format!(
            "{what}: raise request_deadline_ms (to at least {} ms with timeout_ms as it is), \
             and the NAS's RADIUS timeout with it",
            (hung + needs + (deadline - window)).as_millis() / 100 * 100 + 100
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRANCH: &str = r#"
[server]
request_deadline_ms = 4000
[ldap]
urls = ["ldap://dc1.example.org", "ldap://dc2.example.org"]
bind_dn = "cn=admin"
bind_password = "pw"
base_dn = "dc=example,dc=org"
starttls = true
[[client]]
name = "nas"
address = "127.0.0.1"
secret = "0123456789abcdef"
"#;

    fn config(extra_ldap: &str) -> Config {
        let text = BRANCH.replace(
            "starttls = true\n",
            &format!("starttls = true\n{extra_ldap}"),
        );
        Config::parse(&text, std::path::Path::new("radmfa.toml")).unwrap()
    }

    fn checks(ms: &[u64]) -> Vec<ServerCheck> {
        ms.iter()
            .enumerate()
            .map(|(i, ms)| ServerCheck {
                url: format!("ldap://dc{}.example.org", i + 1),
                result: Ok(Duration::from_millis(*ms)),
                base: None,
            })
            .collect()
    }

    #[test]
    fn the_defaults_fit_on_a_lan_and_not_150_ms_away() {
        let cfg = config("");
        assert_eq!(file_warning(&cfg), None);
        assert_eq!(measured_warning(&cfg, &checks(&[3, 4])), None);
        // The red team's far DC: 300 ms round trips, 600 ms to connect and bind.
        let w = measured_warning(&cfg, &checks(&[3, 600])).unwrap();
        assert!(w.contains("ldap://dc2.example.org took 600 ms"), "{w}");
        assert!(w.contains("lower timeout_ms to about 1100 ms"), "{w}");
        // 250 ms to connect and bind: 2,000 ms on the hung server fit, but not the 1,000
        // more its idle connection's retry takes (review of the idle path).
        let w = measured_warning(&cfg, &checks(&[3, 250])).unwrap();
        assert!(
            w.contains("and half of it again when the pooled connection"),
            "{w}"
        );
        // Where they found 20 of 20 logins let in.
        let cfg = config("timeout_ms = 1000\n");
        assert_eq!(measured_warning(&cfg, &checks(&[3, 600])), None);
    }

    #[test]
    fn too_far_for_any_timeout_asks_for_a_longer_deadline() {
        let cfg = config("");
        let w = measured_warning(&cfg, &checks(&[3, 1300])).unwrap();
        assert!(w.contains("raise request_deadline_ms (to at least"), "{w}");
    }

    #[test]
    fn the_file_alone_catches_a_timeout_that_leaves_less_than_a_connect() {
        let cfg = config("timeout_ms = 2500\nconnect_timeout_ms = 1500\n");
        let w = file_warning(&cfg).unwrap();
        assert!(
            w.contains("lower timeout_ms to about 2000 ms less five"),
            "{w}"
        );
    }

    #[test]
    fn one_url_has_no_failover_to_fit() {
        let text = BRANCH.replace(", \"ldap://dc2.example.org\"", "");
        let cfg = Config::parse(&text, std::path::Path::new("radmfa.toml")).unwrap();
        assert_eq!(measured_warning(&cfg, &checks(&[600])), None);
        let cfg = Config::parse(
            &text.replace("starttls = true\n", "starttls = true\ntimeout_ms = 3000\n"),
            std::path::Path::new("radmfa.toml"),
        )
        .unwrap();
        assert_eq!(file_warning(&cfg), None);
    }
}
