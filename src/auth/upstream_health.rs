//! What radmfa learns about its upstream servers between logins, kept by the application
//! across reloads and keyed by the server's name in the file: which stopped answering
//! (asked last until their dead time is over), per group, since a server may drop one
//! group's requests (another secret) and answer another's; and the address each DNS name
//! resolved to.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::upstream::{UpstreamConfig, UpstreamHost, UpstreamServer};

/// How long a name's address is used before it is looked up again. getaddrinfo gives no
/// TTL; a minute follows a moved server soon enough and costs one lookup per minute.
pub const NAME_REFRESH: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Health {
    /// Per group, servers whose last request went unanswered.
    dead_until: Mutex<HashMap<String, HashMap<String, Dead>>>,
    /// Per group, when a login last found none of its servers answering, until one answers
    /// again (a login or a status check).
    unanswered_login: Mutex<HashMap<String, Instant>>,
    names: Mutex<HashMap<String, Resolved>>,
    /// Names never resolved yet whose lookup a login has started, and when. The others fail
    /// at once meanwhile: each lookup holds a blocking thread until the resolver answers,
    /// even after its login gave up, so with the resolver down every login starting its own
    /// would pile threads up (and delay other blocking work, such as app-password hashes).
    first_lookups: Mutex<HashMap<String, Instant>>,
}

/// A server that did not answer.
struct Dead {
    /// When it goes back to its place.
    until: Instant,
    /// When a login (not a status check) last went unanswered by it: a Status-Server
    /// answer does not outweigh that for the group's dead time (see
    /// [`Health::status_server_answered`]).
    login_failed: Option<Instant>,
    /// Whether the log said that it answers Status-Server but not logins, since that login.
    noted: bool,
    /// Whether a status check went unanswered since that login: the server was down, not
    /// answering Status-Server while dropping logins, and its next answer is its return.
    check_silent: bool,
}

/// What a Status-Server answer from a server marked as not answering comes to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StatusAnswer {
    /// Back in its place.
    Back,
    /// It was not marked (a reload, a login's answer meanwhile).
    WasAnswering,
    /// A login went unanswered by it less than the dead time ago: it stays at the back
    /// for that much longer. `first`: the first such answer since that login.
    LoginsUnanswered { for_: Duration, first: bool },
}

struct Resolved {
    addr: SocketAddr,
    fresh_until: Instant,
    /// When a login started looking the name up again; the others use `addr` meanwhile.
    /// A time, not a flag: that login may be cancelled (its deadline) mid-lookup, and the
    /// next one after its wait must try again.
    refreshing_since: Option<Instant>,
}

impl Health {
    /// The servers in the order to try them: those not marked dead, then the dead ones. A
    /// server whose dead time is over goes back to its place for this login alone, which
    /// tries it; the logins starting in the next `probe` (the group's timeout) still ask it
    /// last, until that login's answer or silence says whether it is back. Before, every
    /// login of that span waited out its timeout on a server still down (red team: ten
    /// logins in a burst each took a second), and each sent it the password.
    pub(super) fn order<'a>(
        &self,
        group: &str,
        servers: &'a [UpstreamServer],
        probe: Duration,
    ) -> Vec<&'a UpstreamServer> {
        let now = Instant::now();
        let mut all = self.dead_until.lock().unwrap_or_else(|e| e.into_inner());
        let Some(dead) = all.get_mut(group) else {
            return servers.iter().collect();
        };
        let mut probing = Vec::new();
        for s in servers {
            if let Some(d) = dead.get_mut(&s.name).filter(|d| d.until <= now) {
                d.until = now + probe;
                probing.push(s.name.as_str());
            }
        }
        let is_dead = |s: &&UpstreamServer| {
            !probing.contains(&s.name.as_str()) && dead.get(&s.name).is_some_and(|d| d.until > now)
        };
        let (down, up): (Vec<_>, Vec<_>) = servers.iter().partition(is_dead);
        up.into_iter().chain(down).collect()
    }

    /// Records a login's answer (`None`) or silence (`Some(dead time)`); true if that
    /// changes whether the server is answering, which is worth a line in the log (once, not
    /// for every login of an outage).
    pub(super) fn mark(
        &self,
        group: &str,
        server: &UpstreamServer,
        dead_for: Option<Duration>,
    ) -> bool {
        match dead_for {
            Some(d) => self.mark_silent(group, server, d, true),
            None => self.mark_answered(group, server),
        }
    }

    /// A status check that went unanswered: its dead time renewed, so that no login waits
    /// for it while another server answers.
    pub(super) fn check_unanswered(&self, group: &str, server: &UpstreamServer, d: Duration) {
        self.mark_silent(group, server, d, false);
    }

    /// A status check with a made-up user's Access-Request that was answered: the server
    /// answers logins, as a login's answer shows.
    pub(super) fn check_answered(&self, group: &str, server: &UpstreamServer) -> bool {
        self.mark_answered(group, server)
    }

    /// A Status-Server answer. It shows the server is there, not that it answers logins: a
    /// FreeRADIUS whose LDAP back end hangs, or that stopped signing its replies, answers
    /// Status-Server from its own process and drops every login. So it does not outweigh a
    /// login that went unanswered less than `dead_time` ago: without this, the check
    /// following that login put the server back first at once, and every other login
    /// waited out its timeout. After that it is the best news there is, and puts it back.
    pub(super) fn status_server_answered(
        &self,
        group: &str,
        server: &UpstreamServer,
        dead_time: Duration,
    ) -> StatusAnswer {
        let mut all = self.dead_until.lock().unwrap_or_else(|e| e.into_inner());
        let Some(dead) = all.get_mut(group).and_then(|d| d.get_mut(&server.name)) else {
            return StatusAnswer::WasAnswering;
        };
        // Silent to a check since the login: it was down, and this answer is its return.
        let since = dead
            .login_failed
            .filter(|_| !dead.check_silent)
            .map(|t| t.elapsed());
        if let Some(left) = since.and_then(|s| dead_time.checked_sub(s)) {
            if !left.is_zero() {
                // Not renewed: it goes back no later than `dead_time` after the login.
                dead.until = dead.until.max(Instant::now() + left);
                let first = !dead.noted;
                dead.noted = true;
                return StatusAnswer::LoginsUnanswered { for_: left, first };
            }
        }
        drop(all);
        self.mark_answered(group, server);
        StatusAnswer::Back
    }

    fn mark_silent(&self, group: &str, server: &UpstreamServer, d: Duration, login: bool) -> bool {
        let mut all = self.dead_until.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let dead = all.entry(group.to_string()).or_default();
        match dead.get_mut(&server.name) {
            Some(mark) => {
                mark.until = now + d;
                if login {
                    mark.login_failed = Some(now);
                    mark.check_silent = false;
                } else {
                    mark.check_silent = true;
                }
                false
            }
            None => {
                let mark = Dead {
                    until: now + d,
                    login_failed: login.then_some(now),
                    noted: false,
                    check_silent: !login,
                };
                dead.insert(server.name.clone(), mark);
                true
            }
        }
    }

    fn mark_answered(&self, group: &str, server: &UpstreamServer) -> bool {
        let mut all = self.dead_until.lock().unwrap_or_else(|e| e.into_inner());
        self.unanswered_login
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(group);
        all.get_mut(group)
            .is_some_and(|dead| dead.remove(&server.name).is_some())
    }

    /// A login found none of `group`'s servers answering.
    pub(super) fn login_unanswered(&self, group: &str) {
        self.unanswered_login
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(group.to_string(), Instant::now());
    }

    /// Whether a login found none of `group`'s servers answering within the last `within`
    /// and none has answered since (for Status-Server, `pipeline::health`). Bounded in
    /// time: past it, Status-Server says "alive" again and a proxy sends a login, the only
    /// way a group without status checks (or with checks its servers do not answer, such
    /// as Status-Server to NPS) is found back.
    pub fn logins_unanswered(&self, group: &str, within: Duration) -> bool {
        self.unanswered_login
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group)
            .is_some_and(|t| t.elapsed() < within)
    }

    /// Did `server` answer the last time it was asked (or has it not been asked yet)? Unlike
    /// the order, this does not forget a failure when its dead time is over: only an answer
    /// clears it. For `/metrics`.
    pub fn answering(&self, group: &str, server: &UpstreamServer) -> bool {
        !self
            .dead_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group)
            .is_some_and(|dead| dead.contains_key(&server.name))
    }

    /// Forgets servers and groups no longer in `groups` (after a reload): a server put
    /// back later starts as answering, as at start-up, and its name is looked up afresh.
    pub fn retain(&self, groups: &[UpstreamConfig]) {
        let listed = |group: &str, name: &str| {
            groups
                .iter()
                .any(|g| g.group == group && g.servers.iter().any(|s| s.name == name))
        };
        let mut all = self.dead_until.lock().unwrap_or_else(|e| e.into_inner());
        for (group, dead) in all.iter_mut() {
            dead.retain(|name, _| listed(group, name));
        }
        all.retain(|_, dead| !dead.is_empty());
        drop(all);
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, _| {
                groups
                    .iter()
                    .any(|g| g.servers.iter().any(|s| &s.name == name))
            });
    }

    /// Where to send `server`'s requests: its address, or what its name resolved to within
    /// the last [`NAME_REFRESH`]. When that has run out, one login looks the name up again
    /// (within `wait`) while the others go on with the last address; a lookup that fails
    /// keeps the last address, so a resolver outage does not stop logins to a server that
    /// still answers. Only a name never resolved is an error.
    pub async fn address(
        &self,
        server: &UpstreamServer,
        wait: Duration,
    ) -> Result<SocketAddr, String> {
        self.address_with(server, wait, lookup).await
    }

    async fn address_with<F, Fut>(
        &self,
        server: &UpstreamServer,
        wait: Duration,
        look_up: F,
    ) -> Result<SocketAddr, String>
    where
        F: FnOnce(String, u16) -> Fut,
        Fut: Future<Output = Result<SocketAddr, String>>,
    {
        let (host, port) = match &server.host {
            UpstreamHost::Addr(a) => return Ok(*a),
            UpstreamHost::Name(h, p) => (h, *p),
        };
        let stale = {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            match names.get_mut(&server.name) {
                Some(r)
                    if r.fresh_until > Instant::now()
                        || r.refreshing_since.is_some_and(|t| t.elapsed() < wait) =>
                {
                    return Ok(r.addr)
                }
                Some(r) => {
                    r.refreshing_since = Some(Instant::now());
                    Some(r.addr)
                }
                None => None,
            }
        };
        if stale.is_none() {
            let mut first = self.first_lookups.lock().unwrap_or_else(|e| e.into_inner());
            match first.get(&server.name) {
                // A time, as `refreshing_since`: a login cancelled mid-lookup does not stop
                // the next one after its wait.
                Some(t) if t.elapsed() < wait => {
                    return Err(format!(
                        "{host} has not resolved yet (another login is looking it up)"
                    ))
                }
                _ => first.insert(server.name.clone(), Instant::now()),
            };
        }
        let found = match tokio::time::timeout(wait, look_up(host.clone(), port)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer from the resolver within {} ms",
                wait.as_millis()
            )),
        };
        if stale.is_none() {
            self.first_lookups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&server.name);
        }
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        match (found, stale) {
            (Ok(addr), _) => {
                if stale.is_some_and(|old| old != addr) {
                    tracing::info!(server = %server, %addr, "upstream server's name now resolves to another address");
                }
                names.insert(
                    server.name.clone(),
                    Resolved {
                        addr,
                        fresh_until: Instant::now() + NAME_REFRESH,
                        refreshing_since: None,
                    },
                );
                Ok(addr)
            }
            (Err(why), Some(old)) => {
                tracing::warn!(server = %server, %old, "looking the upstream server's name up again failed: {why}; the last address is used");
                names.insert(
                    server.name.clone(),
                    Resolved {
                        addr: old,
                        fresh_until: Instant::now() + NAME_REFRESH,
                        refreshing_since: None,
                    },
                );
                Ok(old)
            }
            (Err(why), None) => Err(format!("{host} does not resolve: {why}")),
        }
    }
}

/// The first address getaddrinfo gives for the name (A or AAAA, in the system's order), as
/// FreeRADIUS does for a home server. List each server by name for failover.
async fn lookup(host: String, port: u16) -> Result<SocketAddr, String> {
    let mut addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    addrs.next().ok_or_else(|| "no address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(name: &str, port: u16) -> UpstreamServer {
        let a: SocketAddr = ([127, 0, 0, 1], port).into();
        UpstreamServer {
            name: name.into(),
            host: UpstreamHost::Addr(a),
        }
    }

    fn named(host: &str) -> UpstreamServer {
        UpstreamServer {
            name: format!("{host}:1812"),
            host: UpstreamHost::Name(host.into(), 1812),
        }
    }

    fn group(name: &str, servers: &[UpstreamServer]) -> UpstreamConfig {
        UpstreamConfig {
            group: name.into(),
            servers: servers.to_vec(),
            secret: crate::secret::Secret::from("s"),
            timeout: Duration::from_secs(1),
            dead_time: Duration::from_secs(30),
            require_message_authenticator: true,
            nas_identifier: None,
            pass_through: Vec::new(),
            status_check: None,
            check_interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn servers_a_reload_removed_are_forgotten() {
        let (a, b) = (addr("127.0.0.1:1", 1), addr("127.0.0.1:2", 2));
        let h = Health::default();
        let dead = Some(Duration::from_secs(60));
        h.mark("default", &a, dead);
        h.mark("default", &b, dead);
        h.mark("branch", &a, dead);
        // b left [upstream]; the branch group is gone.
        h.retain(&[group("default", std::slice::from_ref(&a))]);
        assert!(!h.answering("default", &a), "still listed, still silent");
        assert!(h.answering("default", &b));
        assert!(h.answering("branch", &a));
        assert!(h.dead_until.lock().unwrap().get("branch").is_none());
    }

    #[tokio::test]
    async fn names_a_reload_removed_are_looked_up_afresh() {
        let (n, other) = (named("nps1.example"), named("nps2.example"));
        let h = Health::default();
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let wait = Duration::from_secs(1);
        for s in [&n, &other] {
            h.address_with(s, wait, |_, _| async move { Ok(at(1)) })
                .await
                .unwrap();
        }
        h.retain(&[group("default", std::slice::from_ref(&other))]);
        assert_eq!(h.names.lock().unwrap().len(), 1);
        assert!(h.names.lock().unwrap().contains_key(&other.name));
    }

    #[test]
    fn dead_servers_go_last_until_their_time_is_up() {
        let (a, b) = (addr("127.0.0.1:1", 1), addr("127.0.0.1:2", 2));
        let both = [a.clone(), b.clone()];
        let names =
            |v: Vec<&UpstreamServer>| v.iter().map(|s| s.name.clone()).collect::<Vec<String>>();
        let (ab, ba) = (
            [a.name.clone(), b.name.clone()],
            [b.name.clone(), a.name.clone()],
        );
        let h = Health::default();
        let g = "default";
        assert_eq!(names(h.order(g, &both, PROBE)), ab);
        assert!(
            h.mark(g, &a, Some(Duration::from_secs(60))),
            "stopped answering"
        );
        assert!(
            !h.mark(g, &a, Some(Duration::from_secs(60))),
            "still silent"
        );
        assert_eq!(names(h.order(g, &both, PROBE)), ba);
        assert!(!h.answering(g, &a) && h.answering(g, &b));
        // Another group's view of the same server is its own.
        assert_eq!(names(h.order("branch", &both, PROBE)), ab);
        assert!(h.answering("branch", &a));
        h.mark(g, &a, Some(Duration::ZERO));
        assert_eq!(
            names(h.order(g, &both, PROBE)),
            ab,
            "expired: this login tries it"
        );
        assert!(!h.answering(g, &a), "until it answers");
        // The others meanwhile do not wait for it too; past the probe's time, one does.
        assert_eq!(
            names(h.order(g, &both, PROBE)),
            ba,
            "another login meanwhile"
        );
        std::thread::sleep(PROBE);
        assert_eq!(names(h.order(g, &both, PROBE)), ab, "the probe's time over");
        assert_eq!(names(h.order(g, &both, PROBE)), ba);
        h.mark(g, &b, Some(Duration::from_secs(60)));
        assert!(h.mark(g, &b, None), "answers again");
        assert!(!h.mark(g, &b, None), "was answering");
        assert!(!h.mark("branch", &b, None), "never marked in that group");
        std::thread::sleep(PROBE);
        assert_eq!(names(h.order(g, &both, PROBE)), ab, "answered again");
    }

    /// The time one login gets to try a server whose dead time is over.
    const PROBE: Duration = Duration::from_millis(50);

    #[test]
    fn a_status_server_answer_does_not_outweigh_a_login_it_left_unanswered() {
        let (a, b) = (addr("127.0.0.1:1", 1), addr("127.0.0.1:2", 2));
        let (h, g, dead_time) = (Health::default(), "default", Duration::from_secs(30));
        h.mark(g, &a, Some(dead_time));
        h.login_unanswered(g);
        let kept = |h: &Health| match h.status_server_answered(g, &a, dead_time) {
            StatusAnswer::LoginsUnanswered { for_, first } => {
                assert!(for_ <= dead_time && for_ > Duration::from_secs(29));
                first
            }
            other => panic!("{other:?}"),
        };
        assert!(kept(&h), "the first such answer");
        assert!(!kept(&h), "said once");
        assert!(!h.answering(g, &a));
        assert_eq!(h.order(g, &[a.clone(), b.clone()], PROBE)[0].name, b.name);
        assert!(
            h.logins_unanswered(g, dead_time),
            "nor does it clear the group's"
        );
        // A dead time after that login, the answer puts it back.
        let back_then = Instant::now() - dead_time;
        h.dead_until
            .lock()
            .unwrap()
            .get_mut(g)
            .unwrap()
            .get_mut(&a.name)
            .unwrap()
            .login_failed = Some(back_then);
        assert_eq!(
            h.status_server_answered(g, &a, dead_time),
            StatusAnswer::Back
        );
        assert!(h.answering(g, &a) && !h.logins_unanswered(g, dead_time));
        assert_eq!(
            h.status_server_answered(g, &a, dead_time),
            StatusAnswer::WasAnswering
        );
        // Marked by checks alone (no login asked it since it was back): it is back at once.
        h.check_unanswered(g, &b, dead_time);
        assert_eq!(
            h.status_server_answered(g, &b, dead_time),
            StatusAnswer::Back
        );
        // A check left unanswered after the login says the server was down, not answering
        // Status-Server while dropping logins: its next answer is its return, within the
        // dead time (it was held back for all of it, and a no_reply NAS probing with
        // Status-Server sent no login to clear it).
        h.mark(g, &a, Some(dead_time));
        h.check_unanswered(g, &a, dead_time);
        assert_eq!(
            h.status_server_answered(g, &a, dead_time),
            StatusAnswer::Back
        );
        // But a login left unanswered after that check counts again.
        h.mark(g, &a, Some(dead_time));
        h.check_unanswered(g, &a, dead_time);
        h.mark(g, &a, Some(dead_time));
        assert!(matches!(
            h.status_server_answered(g, &a, dead_time),
            StatusAnswer::LoginsUnanswered { .. }
        ));
    }

    fn never(_: String, _: u16) -> std::future::Ready<Result<SocketAddr, String>> {
        panic!("looked up while fresh")
    }

    fn at(last: u8) -> SocketAddr {
        ([10, 0, 0, last], 1812).into()
    }

    #[tokio::test]
    async fn names_are_looked_up_once_a_minute_and_a_failed_lookup_keeps_the_last_address() {
        let h = Health::default();
        let nps = named("nps1.corp.example");
        let wait = Duration::from_secs(1);

        let e = h
            .address_with(&nps, wait, |_, _| async { Err("NXDOMAIN".to_string()) })
            .await
            .unwrap_err();
        assert_eq!(e, "nps1.corp.example does not resolve: NXDOMAIN");
        // While one login looks a name up for the first time, the others do not start
        // lookups of their own; one whose wait is over (its login cancelled) may.
        let looking = |h: &Health, ago: Duration| {
            h.first_lookups
                .lock()
                .unwrap()
                .insert(nps.name.clone(), Instant::now() - ago);
        };
        looking(&h, Duration::ZERO);
        let e = h.address_with(&nps, wait, never).await.unwrap_err();
        assert!(e.contains("another login is looking it up"), "{e}");
        looking(&h, wait);
        let got = h
            .address_with(&nps, wait, |host, port| async move {
                assert_eq!((host.as_str(), port), ("nps1.corp.example", 1812));
                Ok(at(5))
            })
            .await;
        assert_eq!(got, Ok(at(5)));
        assert_eq!(h.address_with(&nps, wait, never).await, Ok(at(5)), "cached");

        // Out of date: the next lookup fails, and the last address stays in use.
        let expire = |h: &Health| {
            h.names
                .lock()
                .unwrap()
                .get_mut(&nps.name)
                .unwrap()
                .fresh_until = Instant::now();
        };
        expire(&h);
        let got = h
            .address_with(&nps, wait, |_, _| async { Err("SERVFAIL".to_string()) })
            .await;
        assert_eq!(got, Ok(at(5)));
        assert_eq!(
            h.address_with(&nps, wait, never).await,
            Ok(at(5)),
            "kept a while"
        );

        // A resolver that does not answer in time counts as failing.
        expire(&h);
        let got = h
            .address_with(&nps, Duration::from_millis(20), |_, _| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(at(9))
            })
            .await;
        assert_eq!(got, Ok(at(5)));

        // The server moved: followed.
        expire(&h);
        let got = h.address_with(&nps, wait, |_, _| async { Ok(at(6)) }).await;
        assert_eq!(got, Ok(at(6)));

        // While one login looks the name up, the others use the last address; if that
        // login never finishes (cancelled by its deadline), the next one after its wait
        // looks again.
        expire(&h);
        let started = |h: &Health, ago: Duration| {
            h.names
                .lock()
                .unwrap()
                .get_mut(&nps.name)
                .unwrap()
                .refreshing_since = Some(Instant::now() - ago);
        };
        started(&h, Duration::ZERO);
        assert_eq!(h.address_with(&nps, wait, never).await, Ok(at(6)));
        started(&h, wait);
        let got = h.address_with(&nps, wait, |_, _| async { Ok(at(7)) }).await;
        assert_eq!(got, Ok(at(7)));

        // An address is used as it is.
        let lit = addr("127.0.0.1:7", 7);
        assert_eq!(
            h.address_with(&lit, wait, never).await,
            Ok(([127, 0, 0, 1], 7).into())
        );
    }

    #[tokio::test]
    async fn localhost_resolves_through_the_system() {
        let h = Health::default();
        let a = h
            .address(&named("localhost"), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(a.ip().is_loopback() && a.port() == 1812, "{a}");
    }
}
