//! The password checked by another RADIUS server (`[upstream]`, clients with
//! `primary = "upstream"`): an Access-Request with the user's name and password, answered
//! Accept or Reject. This is how the product radmfa replaces worked with NPS as its "RADIUS
//! target", and how an older OTP or RADIUS server stays the password authority.
//!
//! Each check uses a UDP socket of its own, connected to the server: the kernel then delivers
//! only that server's datagrams to it, and no identifier space is shared between requests.
//! Servers are tried in order; one that did not answer is tried last for `dead_time`, so a
//! dead primary costs one timeout per `dead_time`, not one per login, and none at all with
//! `status_check` (`server::upstream_checks` asks it between logins).

use std::net::SocketAddr;

use rand::Rng;
use tokio::net::UdpSocket;

pub use super::upstream_health::Health;
use super::upstream_health::StatusAnswer;
use super::AuthError;
use crate::config::upstream::{StatusCheck, UpstreamConfig, UpstreamHost, UpstreamServer};
use crate::radius::client::{parse_reply, status_server, AccessRequestBuilder};
use crate::radius::crypto::verify_reply_lenient;
use crate::radius::reply_attr::ReplyAttr;
use crate::radius::MAX_PACKET;
use crate::secret::Secret;

const ACCESS_ACCEPT: u8 = 2;
const ACCESS_REJECT: u8 = 3;
const ACCESS_CHALLENGE: u8 = 11;
/// RFC 2865 §5.2: User-Password carries at most 128 octets.
const MAX_PASSWORD: usize = 128;
/// RFC 2865 §5: an attribute's value is at most 253 octets.
const MAX_VALUE: usize = 253;

/// What the upstream server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// With the attributes `pass_through` names, in the order they came.
    Accept(Vec<ReplyAttr>),
    Reject,
    /// An answer that is neither (an Access-Challenge: an OTP server asking a user for a
    /// next code or a new PIN; an unknown code), and why: refused as a Reject is. Taken for
    /// an outage, it left `no_reply` clients' NAS boxes waiting, counting radmfa dead, and
    /// each retransmit sent the password upstream again.
    Refused(String),
}

/// The request attributes passed on from the NAS, so the upstream server's policies can
/// tell one NAS and one kind of access from another: NAS-IP-Address, NAS-Port,
/// Called-Station-Id, Calling-Station-Id, NAS-Port-Type, NAS-Port-Id, NAS-IPv6-Address.
pub const FORWARDED: &[u8] = &[4, 5, 30, 31, 61, 87, 95];

/// One password check to send.
pub struct Check<'a> {
    /// As the NAS sent it (octets: RFC 2865 does not promise UTF-8), at most 253 of them.
    pub user_name: &'a [u8],
    pub password: &'a Secret,
    /// NAS-Identifier when `[upstream] nas_identifier` is not set.
    pub nas_identifier: &'a str,
    /// (type, value) from the NAS's request, of the [`FORWARDED`] types.
    pub forwarded: Vec<(u8, Vec<u8>)>,
    /// Where the login keeps track of the check, if it may be cut short meanwhile.
    pub progress: Option<&'a Progress>,
}

/// Where a login's check stands: the servers that failed it and the one it waits on. A
/// login whose request deadline runs out meanwhile is dropped mid-wait, with no error of
/// its own; this is what its reason and `radmfa_backend_failures_total{backend="upstream"}`
/// go by (the pipeline reads it then), rather than a bare "deadline exceeded".
#[derive(Default)]
pub struct Progress {
    waiting: std::sync::Mutex<Option<Waiting>>,
    /// Servers the password went to that gave no answer (or none yet): see
    /// [`Progress::password_unanswered`].
    unanswered: std::sync::atomic::AtomicU32,
}

struct Waiting {
    /// "upstream", or "upstream branch".
    label: String,
    failures: Vec<String>,
    server: String,
    since: std::time::Instant,
    /// When the first server was asked.
    started: std::time::Instant,
}

impl Progress {
    fn set(&self, w: Option<Waiting>) {
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = w;
    }

    /// Whether the password went to a server that gave no answer: sent, and neither
    /// answered nor refused by the host ("port unreachable"). Such a server may be slow
    /// rather than down (FreeRADIUS's reject_delay, NPS under load), and have counted the
    /// try towards the account's lockout: a `no_reply` client's retransmits of the request
    /// then get silence rather than the password sent again (`pipeline::answer`).
    pub fn password_unanswered(&self) -> bool {
        self.unanswered.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    /// What the login waits on, when it waits on upstream servers ("the upstream RADIUS
    /// servers (127.0.0.1:1812: no reply ...; 127.0.0.1:1813 asked 1200 ms before, no
    /// answer yet)"), and whether they had a fair wait, as [`CutOff`] judges it (the
    /// login's time did not all go elsewhere, a slow store before the check).
    pub fn waiting(&self) -> Option<(String, bool)> {
        let guard = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let w = guard.as_ref()?;
        let mut said = w.failures.clone();
        said.push(format!(
            "{} asked {} ms before, no answer yet",
            w.server,
            w.since.elapsed().as_millis()
        ));
        let fair = w.started.elapsed() >= FAIR_WAIT;
        Some((
            format!("the {} RADIUS servers ({})", w.label, said.join("; ")),
            fair,
        ))
    }
}

/// Asks the servers in turn until one answers Accept or Reject, and says which one did. No
/// answer from any of them, or an Access-Challenge (radmfa does not relay the upstream's own
/// prompts), is an error: the request is rejected, never accepted.
pub async fn check<'a>(
    cfg: &'a UpstreamConfig,
    health: &Health,
    c: &Check<'_>,
) -> Result<(Answer, &'a UpstreamServer), AuthError> {
    // The NAS's User-Name attribute carried it, so it fits; the check keeps a made-up or
    // missing one from reaching the packet builder, whose limits are assertions.
    if c.user_name.is_empty() || c.user_name.len() > MAX_VALUE {
        return Err(AuthError::Upstream(format!(
            "the user name is empty or longer than the {MAX_VALUE} octets RADIUS can carry"
        )));
    }
    if c.password.len() > MAX_PASSWORD {
        return Err(AuthError::Upstream(format!(
            "the password is longer than the {MAX_PASSWORD} octets RADIUS can carry"
        )));
    }
    let asked = ask_in_turn(cfg, health, c).await;
    // Not on a drop: a login cut short by its deadline is dropped here, and its progress
    // is what says so.
    if let Some(p) = c.progress {
        p.set(None);
    }
    asked
}

async fn ask_in_turn<'a>(
    cfg: &'a UpstreamConfig,
    health: &Health,
    c: &Check<'_>,
) -> Result<(Answer, &'a UpstreamServer), AuthError> {
    let mut failures = Vec::new();
    let started = std::time::Instant::now();
    for server in health.order(&cfg.group, &cfg.servers, cfg.timeout) {
        if let Some(p) = c.progress {
            p.set(Some(Waiting {
                label: cfg.label(),
                failures: failures.clone(),
                server: server.to_string(),
                since: std::time::Instant::now(),
                started,
            }));
        }
        // Only the first server asked can have eaten the login's time: a later one got what
        // the silent ones before it left, perhaps a few milliseconds, and marking it would
        // leave no server unmarked to fail over to.
        let waiting = CutOff {
            cfg,
            health,
            server,
            armed: failures.is_empty(),
            asked_at: std::time::Instant::now(),
            done: false,
        };
        let asked = ask(cfg, health, server, c).await;
        waiting.disarm();
        match asked {
            Ok(answer) => {
                if health.mark(&cfg.group, server, None) {
                    tracing::info!(group = %cfg.group, %server, "upstream RADIUS server answers again");
                }
                return Ok((once_each(cfg, server, answer), server));
            }
            Err(why) => {
                if health.mark(&cfg.group, server, Some(cfg.dead_time)) {
                    tracing::warn!(
                        group = %cfg.group,
                        %server,
                        "upstream RADIUS server did not answer: {why}; asked after the \
                         others for the next {} s",
                        cfg.dead_time.as_secs()
                    );
                } else {
                    tracing::debug!(
                        group = %cfg.group,
                        %server,
                        "upstream RADIUS server still not answering: {why}"
                    );
                }
                failures.push(format!("{server}: {why}"));
            }
        }
    }
    health.login_unanswered(&cfg.group);
    // "no upstream server answered", or "no upstream branch server answered".
    Err(AuthError::Upstream(format!(
        "no {} server answered ({})",
        cfg.label(),
        failures.join("; ")
    )))
}

/// An Accept with the first of each single-valued attribute only (RFC 2865 §5.44: 0-1 in
/// an Accept; Session-Timeout, Service-Type): passed on twice, the NAS would pick one by its
/// own rule, a 7200 s session or a 60 s one. The first, as radmfa keeps the first of the
/// admin's own; the log says what was left out, once in a while per server and attribute
/// (a setting of the upstream server, not of one login).
fn once_each(cfg: &UpstreamConfig, server: &UpstreamServer, answer: Answer) -> Answer {
    let Answer::Accept(attrs) = answer else {
        return answer;
    };
    let mut kept: Vec<ReplyAttr> = Vec::with_capacity(attrs.len());
    for a in attrs {
        if !a.well_formed() {
            let name = a.name();
            crate::warn_once!(
                &format!("upstream {} {server} malformed {name}", cfg.group),
                group = %cfg.group,
                %server,
                "upstream RADIUS server's Access-Accept carries {name} with a value of {} \
                 octet(s), which that attribute cannot have: not passed to the NAS",
                a.data_len()
            );
            continue;
        }
        if a.single() && kept.iter().any(|k| k.key() == a.key()) {
            let name = a.name();
            crate::warn_once!(
                &format!("upstream {} {server} repeats {name}", cfg.group),
                group = %cfg.group,
                %server,
                "upstream RADIUS server's Access-Accept carries {name} more than once, which \
                 an Accept may carry once (RFC 2865): only the first is passed to the NAS"
            );
            continue;
        }
        kept.push(a);
    }
    Answer::Accept(kept)
}

/// A wait after which a silent server has had its chance, whatever its `timeout_ms`.
const FAIR_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Marks `server` as not answering if the login is cut off (its request deadline) while
/// waiting for it, when it was the first server this login asked: a server whose
/// `timeout_ms` outlasts the time a login has to decide never reaches its own timeout, so
/// without this it would stay first, every login would wait on it until cut off, and no
/// login would reach the next server. Only if it was waited on for a fair while (its
/// resend, half its `timeout_ms`, or [`FAIR_WAIT`] if that is sooner): a login whose time
/// went elsewhere (a stalled store read before the password check) gave it no chance, and
/// marking a healthy server would send the admin after the wrong component.
struct CutOff<'a> {
    cfg: &'a UpstreamConfig,
    health: &'a Health,
    server: &'a UpstreamServer,
    armed: bool,
    asked_at: std::time::Instant,
    /// The ask ended (answered or not) rather than being dropped by the login's deadline.
    done: bool,
}

impl CutOff<'_> {
    fn disarm(mut self) {
        self.armed = false;
        self.done = true;
    }
}

impl Drop for CutOff<'_> {
    fn drop(&mut self) {
        let fair = self.asked_at.elapsed() >= (self.cfg.timeout / 2).min(FAIR_WAIT);
        // Cut off mid-ask after a fair wait (here, or a server before this one ran out its
        // own timeout): no server answered this login, which Status-Server of no-reply
        // clients follows, as it does a check that ran through every server. Not a login
        // whose time went elsewhere (a slow store) and reached its server with none left:
        // the group would stay silent for its dead time with nothing to clear it.
        if !self.done && (fair || !self.armed) {
            self.health.login_unanswered(&self.cfg.group);
        }
        if self.armed
            && fair
            && self
                .health
                .mark(&self.cfg.group, self.server, Some(self.cfg.dead_time))
        {
            tracing::warn!(
                group = %self.cfg.group,
                server = %self.server,
                "upstream RADIUS server did not answer before the login's deadline; asked \
                 after the others for the next {} s",
                self.cfg.dead_time.as_secs()
            );
        }
    }
}

/// `config check --connect`: asks `server` about a made-up user with a random password. A
/// verified Access-Reject shows the server is reached, knows radmfa's address and secret,
/// and signs as required; the error says what went wrong otherwise.
pub async fn probe(
    cfg: &UpstreamConfig,
    health: &Health,
    server: &UpstreamServer,
    nas_identifier: &str,
) -> Result<Answer, String> {
    ask_made_up(cfg, health, server, nas_identifier, "radmfa-config-check").await
}

/// A login's check about a made-up user (`user_name`, see [`made_up_name`]) with a random
/// password: the same servers in the same order, failing over and marking them as a login
/// does, so it takes what a refusal of a name takes, and fails when such a login would.
/// True when a server accepted it.
pub async fn imitate(
    cfg: &UpstreamConfig,
    health: &Health,
    nas_identifier: &str,
    user_name: &[u8],
    forwarded: Vec<(u8, Vec<u8>)>,
    progress: &Progress,
) -> Result<bool, AuthError> {
    let password: String = (0..24)
        .map(|_| char::from(rand::thread_rng().gen_range(b'a'..=b'z')))
        .collect();
    let made_up = Check {
        user_name,
        password: &Secret::from(password),
        nas_identifier,
        forwarded,
        progress: Some(progress),
    };
    let (answer, _) = check(cfg, health, &made_up).await?;
    Ok(matches!(answer, Answer::Accept(_)))
}

/// `radmfa-timing-check` with the domain (`CORP\`) or realm (`@corp.example.org`) of the
/// name as the NAS sent it, so that a server routing or refusing by them treats it as it
/// treats that name.
pub fn made_up_name(typed: &[u8]) -> Vec<u8> {
    const NAME: &[u8] = b"radmfa-timing-check";
    let mut out = Vec::new();
    if let Some(i) = typed.iter().position(|&b| b == b'\\') {
        out.extend_from_slice(&typed[..=i]);
    }
    out.extend_from_slice(NAME);
    if let Some(i) = typed.iter().rposition(|&b| b == b'@') {
        out.extend_from_slice(&typed[i..]);
    }
    out.truncate(MAX_VALUE);
    out
}

async fn ask_made_up(
    cfg: &UpstreamConfig,
    health: &Health,
    server: &UpstreamServer,
    nas_identifier: &str,
    user_name: &str,
) -> Result<Answer, NoAnswer> {
    let password: String = (0..24)
        .map(|_| char::from(rand::thread_rng().gen_range(b'a'..=b'z')))
        .collect();
    let check = Check {
        user_name: user_name.as_bytes(),
        password: &Secret::from(password),
        nas_identifier,
        forwarded: Vec::new(),
        progress: None,
    };
    ask(cfg, health, server, &check).await
}

/// `status_check`: is a server that stopped answering back? Records the outcome in
/// `health` (silence renews its dead time; see [`Health::status_server_answered`] for what
/// a Status-Server answer is worth); true when the server takes its place again. Any
/// verified reply to a made-up user's Access-Request counts, even one a login would refuse
/// (an Access-Challenge, say): the server is there and answers logins.
pub async fn status_check(
    cfg: &UpstreamConfig,
    health: &Health,
    server: &UpstreamServer,
    nas_identifier: &str,
) -> bool {
    let outcome = match cfg.status_check {
        None => return false,
        Some(StatusCheck::AccessRequest) => {
            match ask_made_up(cfg, health, server, nas_identifier, "radmfa-status-check").await {
                Ok(_) => Ok(()),
                Err(why) => Err(why),
            }
        }
        Some(StatusCheck::StatusServer) => status_server_probe(cfg, health, server).await,
    };
    match (outcome, cfg.status_check) {
        (Ok(()), Some(StatusCheck::StatusServer)) => status_server_answered(cfg, health, server),
        (Ok(()), _) => health.check_answered(&cfg.group, server),
        (Err(why), _) => {
            health.check_unanswered(&cfg.group, server, cfg.dead_time);
            tracing::debug!(group = %cfg.group, %server, "status check: still not answering: {why}");
            false
        }
    }
}

fn status_server_answered(cfg: &UpstreamConfig, health: &Health, server: &UpstreamServer) -> bool {
    match health.status_server_answered(&cfg.group, server, cfg.dead_time) {
        StatusAnswer::Back => true,
        StatusAnswer::WasAnswering => false,
        StatusAnswer::LoginsUnanswered { for_, first } => {
            let secs = for_.as_secs_f64().ceil();
            if first {
                // Said once per outage: the checks go on every check_interval_secs.
                tracing::warn!(
                    group = %cfg.group,
                    %server,
                    "upstream RADIUS server answers Status-Server but did not answer a login: \
                     still asked after the others for {secs} s (is its back end, such as its \
                     directory, answering? does it sign its replies? does it hold rejects \
                     longer than timeout_ms, as FreeRADIUS's reject_delay does?)"
                );
            } else {
                tracing::debug!(group = %cfg.group, %server, "status check: answers Status-Server, not logins; back in {secs} s at the latest");
            }
            false
        }
    }
}

/// One Status-Server (RFC 5997) exchange with `server`: answered, or why not. Also what
/// `config check --connect` asks when the group has `status_check = "status-server"`.
pub async fn status_server_probe(
    cfg: &UpstreamConfig,
    health: &Health,
    server: &UpstreamServer,
) -> Result<(), String> {
    let identifier: u8 = rand::thread_rng().gen();
    let (packet, authenticator) = status_server(identifier, cfg.secret.expose());
    let sent = Sent {
        packet: &packet,
        identifier,
        authenticator: &authenticator,
        // The Response Authenticator proves the secret; the Message-Authenticator is not
        // required here because this reply decides only where the server goes in the
        // order, never a login, and FreeRADIUS before 3.2.5 answers Status-Server with an
        // unsigned Access-Accept.
        require_signed: false,
        unanswered: None,
    };
    exchange(cfg, health, server, &sent).await.map(|_| ())
}

/// Why a server gave no answer to believe (silence, an unreachable port, a reply that
/// failed its checks): the next server is tried.
type NoAnswer = String;

async fn ask(
    cfg: &UpstreamConfig,
    health: &Health,
    server: &UpstreamServer,
    c: &Check<'_>,
) -> Result<Answer, NoAnswer> {
    let identifier: u8 = rand::thread_rng().gen();
    let nas_id = cfg.nas_identifier.as_deref().unwrap_or(c.nas_identifier);
    let mut builder = AccessRequestBuilder::with_raw_user(identifier, c.user_name)
        .password(c.password.expose())
        .attribute(32, nas_id.as_bytes());
    for (typ, value) in &c.forwarded {
        builder = builder.attribute(*typ, value);
    }
    let (packet, authenticator) = builder.build(cfg.secret.expose());
    let sent = Sent {
        packet: &packet,
        identifier,
        authenticator: &authenticator,
        require_signed: cfg.require_message_authenticator,
        unanswered: c.progress.map(|p| &p.unanswered),
    };
    decide(cfg, exchange(cfg, health, server, &sent).await?)
}

/// A request to send and what its reply must match.
struct Sent<'a> {
    packet: &'a [u8],
    identifier: u8,
    authenticator: &'a [u8; 16],
    /// Refuse a reply without a Message-Authenticator.
    require_signed: bool,
    /// Counts the request while it is out unanswered ([`Progress::password_unanswered`]).
    unanswered: Option<&'a std::sync::atomic::AtomicU32>,
}

/// Sends the packet to `server` and waits for its verified reply, sending it once more
/// halfway through the wait.
async fn exchange(
    cfg: &UpstreamConfig,
    health: &Health,
    server: &UpstreamServer,
    sent: &Sent<'_>,
) -> Result<crate::radius::client::ParsedReply, NoAnswer> {
    // The lookup is within the server's timeout, not beside it: a login must not wait
    // longer for a server given by name than for one given by address, or a slow resolver
    // doubled each server's share of the NAS's wait.
    let started = tokio::time::Instant::now();
    let addr = health.address(server, cfg.timeout).await?;
    exchange_at(cfg, server, addr, started, sent).await
}

/// [`exchange`] once `server`'s address is known: the wait ends `cfg.timeout` after
/// `started` (before the name's lookup), and the packet goes again halfway through what
/// is left of it.
async fn exchange_at(
    cfg: &UpstreamConfig,
    server: &UpstreamServer,
    addr: SocketAddr,
    started: tokio::time::Instant,
    sent: &Sent<'_>,
) -> Result<crate::radius::client::ParsedReply, NoAnswer> {
    let Sent {
        packet,
        identifier,
        authenticator,
        require_signed,
        unanswered,
    } = *sent;
    // For a name, failures say where it led.
    let (at, from) = match server.host {
        UpstreamHost::Addr(_) => (String::new(), String::new()),
        UpstreamHost::Name(..) => (format!(" at {addr}"), format!(" from {addr}")),
    };
    let io = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            // The ICMP answer of a host where nothing listens on that port.
            format!("port unreachable{at}: nothing listens there")
        } else {
            format!("{e}{at}")
        }
    };
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(addr).await.map_err(io)?;
    socket.send(packet).await.map_err(io)?;
    // Out: unanswered until a reply comes, or the host says nothing listens there. Counted
    // now, not at the timeout, for a login whose deadline drops it mid-wait.
    let out = Unanswered::count(unanswered);

    // One lost datagram must not cost the login: halfway through the wait the same packet
    // goes again (same identifier and authenticator, so the server's duplicate detection
    // answers it once, RFC 5080 §2.2.2).
    let deadline = started + cfg.timeout;
    let now = tokio::time::Instant::now();
    let resend_at = now + deadline.saturating_duration_since(now) / 2;
    let looked_up = now.saturating_duration_since(started);
    let mut resent = false;
    let mut ignored = 0usize;
    let mut why_ignored = "";
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let wake = if resent { deadline } else { resend_at };
        let n = match tokio::time::timeout_at(wake, socket.recv(&mut buf)).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                out.not_received();
                return Err(io(e));
            }
            Ok(r) => r.map_err(io)?,
            Err(_) if !resent => {
                match socket.send(packet).await {
                    // The host's "port unreachable" for the first copy, told at this send.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        out.not_received();
                        return Err(io(e));
                    }
                    r => r.map_err(io)?,
                };
                resent = true;
                continue;
            }
            Err(_) => {
                // It answered, unsigned, every time: not down, and not a secret it does not
                // know. Said first, with the fix, not after "down, or not configured" (the
                // commonest upstream mistake, a FreeRADIUS before 3.2.5 not signing).
                if ignored > 0 && why_ignored == NOT_SIGNED {
                    return Err(format!(
                        "answered {ignored} time(s){from} without Message-Authenticator, and \
                         such replies are refused ({}): make the server sign its replies \
                         (FreeRADIUS before 3.2.5: `update reply {{ &Message-Authenticator := \
                         0x00 }}` in its authorize section)",
                        cfg.key("require_message_authenticator")
                    ));
                }
                // A server also stays silent to a request whose secret or source address
                // it does not know (FreeRADIUS and NPS drop those).
                let mut why = format!(
                    "no reply{from} within {} ms, sent twice (down, or not configured for this \
                     address and secret, or slower: FreeRADIUS holds each reject for its \
                     reject_delay)",
                    cfg.timeout.as_millis()
                );
                // Most of the time went on the name: the resolver is the thing to look at.
                if looked_up >= cfg.timeout / 4 {
                    why.push_str(&format!(
                        "; looking its name up took {} ms of them",
                        looked_up.as_millis()
                    ));
                }
                if ignored > 0 {
                    why.push_str(&format!("; {ignored} reply(s) ignored: {why_ignored}"));
                    // A reply that does not verify is most often a secret that differs.
                    if why_ignored.starts_with("bad ") {
                        why.push_str(" (is the secret the same on both sides?)");
                    }
                }
                return Err(why);
            }
        };
        // A datagram that is not the answer (an old retransmission's, a forgery) is dropped
        // and the wait goes on: it must not end the login either way.
        match verified(cfg, &buf[..n], identifier, authenticator, require_signed) {
            Ok(reply) => {
                out.answered();
                return Ok(reply);
            }
            Err(why) => {
                ignored += 1;
                why_ignored = why;
            }
        }
    }
}

/// A request out at a server, counted in its login's [`Progress`] until it is answered or
/// refused by the host.
struct Unanswered<'a>(Option<&'a std::sync::atomic::AtomicU32>);

impl<'a> Unanswered<'a> {
    fn count(counter: Option<&'a std::sync::atomic::AtomicU32>) -> Self {
        if let Some(c) = counter {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Unanswered(counter)
    }

    fn answered(self) {
        self.not_received()
    }

    /// Uncounted: answered, or the host refused the datagram (nothing checked the password).
    fn not_received(self) {
        if let Some(c) = self.0 {
            c.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A reply refused for want of a Message-Authenticator; the message names the group's key.
const NOT_SIGNED: &str = "no Message-Authenticator";

fn verified(
    cfg: &UpstreamConfig,
    raw: &[u8],
    identifier: u8,
    authenticator: &[u8; 16],
    require_signed: bool,
) -> Result<crate::radius::client::ParsedReply, &'static str> {
    let reply = parse_reply(raw).ok_or("malformed")?;
    if reply.identifier != identifier {
        return Err("another request's identifier");
    }
    // The Response Authenticator always; the Message-Authenticator wherever the server put
    // it (older servers put it last) and, by default, required: without it an attacker on
    // the path could forge an Accept (BlastRADIUS, CVE-2024-3596).
    let signed = verify_reply_lenient(raw, authenticator, cfg.secret.expose())?;
    if require_signed && !signed {
        return Err(NOT_SIGNED);
    }
    Ok(reply)
}

fn decide(
    cfg: &UpstreamConfig,
    reply: crate::radius::client::ParsedReply,
) -> Result<Answer, NoAnswer> {
    match reply.code {
        ACCESS_ACCEPT => Ok(Answer::Accept(
            reply
                .attributes
                .into_iter()
                .filter(|(typ, value)| cfg.pass_through.iter().any(|(_, k)| k.matches(*typ, value)))
                .map(|(typ, value)| ReplyAttr { typ, value })
                .collect(),
        )),
        ACCESS_REJECT => Ok(Answer::Reject),
        ACCESS_CHALLENGE => Ok(Answer::Refused(
            "answered with an Access-Challenge; radmfa does not relay an upstream server's \
             prompts (turn its own second factor off for radmfa)"
                .into(),
        )),
        other => Ok(Answer::Refused(format!("answered with code {other}"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_made_up_name_keeps_the_typed_domain_and_realm() {
        let made = |t: &[u8]| String::from_utf8(made_up_name(t)).unwrap();
        assert_eq!(made(b"alice"), "radmfa-timing-check");
        assert_eq!(made(b"CORP\\alice"), "CORP\\radmfa-timing-check");
        assert_eq!(
            made(b"alice@corp.example.org"),
            "radmfa-timing-check@corp.example.org"
        );
        assert_eq!(made(b""), "radmfa-timing-check");
        let long_realm = [&b"a@"[..], &[b'x'; 300]].concat();
        assert_eq!(made_up_name(&long_realm).len(), MAX_VALUE);
    }

    use super::*;
    use crate::radius::{decode_request, encode_reply, Reply, ReplyCode};

    fn cfg(require: bool) -> UpstreamConfig {
        UpstreamConfig {
            group: "default".into(),
            servers: Vec::new(),
            secret: Secret::from("upstream-secret"),
            timeout: std::time::Duration::from_millis(100),
            dead_time: std::time::Duration::from_secs(30),
            require_message_authenticator: require,
            nas_identifier: None,
            pass_through: vec![(
                "Class".into(),
                crate::radius::reply_attr::AttrKey::Standard(25),
            )],
            status_check: None,
            check_interval: std::time::Duration::from_secs(10),
        }
    }

    /// `verified` with the group's own signing rule, as a login's reply is checked.
    fn as_configured(
        c: &UpstreamConfig,
        raw: &[u8],
        identifier: u8,
        authenticator: &[u8; 16],
    ) -> Result<crate::radius::client::ParsedReply, &'static str> {
        verified(
            c,
            raw,
            identifier,
            authenticator,
            c.require_message_authenticator,
        )
    }

    /// A reply as a server with `secret` would send it to our request.
    fn reply_to(code: ReplyCode, secret: &[u8], attrs: &[&str]) -> (Vec<u8>, [u8; 16]) {
        let (raw, auth) = AccessRequestBuilder::new(9, "alice")
            .password(b"pw")
            .build(secret);
        let req = decode_request(&raw, secret, true).unwrap();
        let mut reply = match code {
            ReplyCode::Accept => Reply::accept(),
            ReplyCode::Reject => Reply::reject(),
            ReplyCode::Challenge => Reply::challenge(b"st".to_vec(), "code?"),
        };
        reply.attributes = attrs.iter().map(|a| ReplyAttr::parse(a).unwrap()).collect();
        (encode_reply(&req, &reply, secret), auth)
    }

    #[test]
    fn only_a_verified_reply_to_this_request_is_believed() {
        let c = cfg(true);
        let (ok, auth) = reply_to(ReplyCode::Accept, b"upstream-secret", &["Class = a"]);
        assert!(as_configured(&c, &ok, 9, &auth).is_ok());
        assert_eq!(
            as_configured(&c, &ok, 10, &auth).unwrap_err(),
            "another request's identifier"
        );
        let (forged, auth2) = reply_to(ReplyCode::Accept, b"another-secret", &[]);
        assert!(as_configured(&c, &forged, 9, &auth2)
            .unwrap_err()
            .starts_with("bad "));
        assert!(as_configured(&c, &ok[..ok.len() - 1], 9, &auth).is_err());
        assert_eq!(as_configured(&c, &[], 9, &auth).unwrap_err(), "malformed");
    }

    #[test]
    fn unsigned_replies_only_when_allowed() {
        // An Access-Accept without Message-Authenticator, Response Authenticator valid.
        let mut raw = vec![2, 9, 0, 20];
        raw.extend([0; 16]);
        let auth = [7u8; 16];
        let mut work = raw.clone();
        work[4..20].copy_from_slice(&auth);
        let ra = crate::radius::crypto::response_authenticator(&work, b"upstream-secret");
        raw[4..20].copy_from_slice(&ra);
        assert_eq!(
            verified(&cfg(true), &raw, 9, &auth, true).unwrap_err(),
            NOT_SIGNED
        );
        assert!(verified(&cfg(false), &raw, 9, &auth, false).is_ok());
    }

    /// A server given by name waits its `timeout` from before the name's lookup: the
    /// lookup's time is taken from the wait, not added to it, and the error says where
    /// the time went. 80 of the 100 ms on the name here, then a server that never answers.
    #[tokio::test]
    async fn a_name_lookup_comes_out_of_the_servers_timeout() {
        let c = cfg(true);
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let server = UpstreamServer {
            name: format!("localhost:{port}"),
            host: UpstreamHost::Name("localhost".into(), port),
        };
        let (packet, authenticator) = AccessRequestBuilder::new(9, "alice")
            .password(b"pw")
            .build(b"upstream-secret");
        let sent = Sent {
            packet: &packet,
            identifier: 9,
            authenticator: &authenticator,
            require_signed: true,
            unanswered: None,
        };
        let started = tokio::time::Instant::now() - std::time::Duration::from_millis(80);
        let t = std::time::Instant::now();
        let why = exchange_at(&c, &server, silent.local_addr().unwrap(), started, &sent)
            .await
            .unwrap_err();
        assert!(
            t.elapsed() < std::time::Duration::from_millis(70),
            "waited {:?} after the lookup",
            t.elapsed()
        );
        assert!(why.contains("looking its name up took 8"), "{why}");
    }

    /// A login cut off before the first server had a fair chance (its time went elsewhere)
    /// does not mark that server; one cut off after waiting past its resend does.
    #[test]
    fn a_server_is_marked_for_a_cut_off_only_after_a_fair_wait() {
        let c = cfg(true);
        let health = Health::default();
        let server = UpstreamServer {
            name: "192.0.2.1:1812".into(),
            host: crate::config::upstream::UpstreamHost::Addr("192.0.2.1:1812".parse().unwrap()),
        };
        let cut = |asked_at| {
            drop(CutOff {
                cfg: &c,
                health: &health,
                server: &server,
                armed: true,
                asked_at,
                done: false,
            })
        };
        // Asked "later" than now: no time waited, however slowly this test runs.
        cut(std::time::Instant::now() + std::time::Duration::from_secs(60));
        assert!(
            health.answering(&c.group, &server),
            "no fair chance, not marked"
        );
        // Nor is the login taken as unanswered by the group (for Status-Server).
        assert!(!health.logins_unanswered(&c.group, c.dead_time));
        cut(std::time::Instant::now() - c.timeout);
        assert!(
            !health.answering(&c.group, &server),
            "waited past its resend: marked"
        );
        assert!(health.logins_unanswered(&c.group, c.dead_time));
        // A timeout longer than the login may wait: a second is chance enough.
        let mut slow = cfg(true);
        slow.timeout = std::time::Duration::from_secs(8);
        let health = Health::default();
        let cut = |asked_at| {
            drop(CutOff {
                cfg: &slow,
                health: &health,
                server: &server,
                armed: true,
                asked_at,
                done: false,
            })
        };
        cut(std::time::Instant::now() + std::time::Duration::from_secs(60));
        assert!(health.answering(&slow.group, &server));
        cut(std::time::Instant::now() - FAIR_WAIT);
        assert!(!health.answering(&slow.group, &server));
    }

    /// What BlastRADIUS protection rests on: a reply whose Response Authenticator checks out
    /// (an MD5 collision forges that) but whose Message-Authenticator does not is refused,
    /// wherever the Message-Authenticator sits; a right one last (older servers) is fine.
    #[test]
    fn a_bad_message_authenticator_under_a_good_response_authenticator_is_refused() {
        use crate::radius::crypto::{message_authenticator, response_authenticator};
        let secret = b"upstream-secret";
        let auth = [7u8; 16];
        // An Access-Accept with a Class and a Message-Authenticator (`first` or last),
        // signed with `ma` (None: the right value), then its Response Authenticator.
        let accept = |first: bool, ma: Option<[u8; 16]>| {
            let class = [25u8, 3, b'a'];
            let ma_attr = [&[80u8, 18][..], &[0u8; 16][..]].concat();
            let attrs = if first {
                [&ma_attr[..], &class[..]].concat()
            } else {
                [&class[..], &ma_attr[..]].concat()
            };
            let mut pkt = vec![2u8, 9];
            pkt.extend(((20 + attrs.len()) as u16).to_be_bytes());
            pkt.extend(auth);
            pkt.extend(&attrs);
            let at = 20 + if first { 2 } else { class.len() + 2 };
            let value = ma.unwrap_or_else(|| message_authenticator(&pkt, secret));
            pkt[at..at + 16].copy_from_slice(&value);
            let ra = response_authenticator(&pkt, secret);
            pkt[4..20].copy_from_slice(&ra);
            pkt
        };
        for first in [true, false] {
            let forged = accept(first, Some([0x41; 16]));
            assert_eq!(
                verified(&cfg(true), &forged, 9, &auth, true).unwrap_err(),
                "bad Message-Authenticator",
                "first: {first}"
            );
            assert!(verified(&cfg(true), &accept(first, None), 9, &auth, true).is_ok());
        }
    }

    #[test]
    fn accept_passes_on_the_named_attributes_and_a_challenge_is_refused() {
        let c = cfg(true);
        let (raw, auth) = reply_to(
            ReplyCode::Accept,
            b"upstream-secret",
            &["Class = policy", "Filter-Id = acl"],
        );
        let reply = as_configured(&c, &raw, 9, &auth).unwrap();
        let Ok(Answer::Accept(attrs)) = decide(&c, reply) else {
            panic!("not an accept");
        };
        assert_eq!(
            attrs,
            vec![ReplyAttr {
                typ: 25,
                value: b"policy".to_vec()
            }]
        );
        let (raw, auth) = reply_to(ReplyCode::Reject, b"upstream-secret", &[]);
        let reply = as_configured(&c, &raw, 9, &auth).unwrap();
        assert!(matches!(decide(&c, reply), Ok(Answer::Reject)));
        let (raw, auth) = reply_to(ReplyCode::Challenge, b"upstream-secret", &[]);
        let reply = as_configured(&c, &raw, 9, &auth).unwrap();
        assert!(matches!(decide(&c, reply), Ok(Answer::Refused(_))));
    }
}
