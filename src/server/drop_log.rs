//! Warnings for dropped requests. A dropped request gets no reply, so without a log line a
//! NAS with the wrong shared secret, or an address missing from the client table, just
//! times out and the admin has nothing to go on. But anyone can send UDP from any address,
//! so one line per dropped datagram would let a flood of spoofed packets flood the log.
//!
//! So: the first drop of each kind from each source is logged at once; later ones from
//! the same source at most once per interval, with the number held back since. At most
//! [`MAX_SOURCES`] (source, kind) pairs are itemised at a time; drops beyond that are
//! summed into one line per interval. The counters in [`super::metrics`] count every drop.
//!
//! Drops from addresses a `[[client]]` entry matched (a wrong shared secret, a missing
//! Message-Authenticator) and the server's own overload have [`MAX_SOURCES`] places of
//! their own: a flood from spoofed unknown addresses, which anyone can send, fills only
//! the unknown sources' places, and a configured NAS with the wrong secret is still named.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::radsec::HandshakeCause;
use crate::radius::DecodeError;

/// How often a repeating drop is logged again.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// (source, kind) pairs itemised at once, for unknown sources and again for configured
/// clients: bounds the memory and the log lines per interval.
pub const MAX_SOURCES: usize = 64;
/// How much earlier than [`INTERVAL`] after its last line a held-back count is flushed.
/// The flush runs on a one-interval tick, and an entry whose last line was the previous
/// tick's is due at this one; without the slack, a tick that found `Instant::now()` a few
/// microseconds less late than the previous one left it for the next, two intervals on.
/// Small against the interval, so a source still gets about one line a minute.
pub const FLUSH_SLACK: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropKind {
    UnknownClient,
    /// The address's `[[client]]` entry is for the other transport (UDP or RadSec).
    WrongTransport,
    Malformed,
    NotARequest,
    MissingMessageAuthenticator,
    /// A Status-Server without Message-Authenticator: refused whatever the client's setting.
    StatusServerWithoutMessageAuthenticator,
    BadMessageAuthenticator,
    /// [`DropKind::BadMessageAuthenticator`] over RadSec, where the secret is always "radsec".
    TlsBadMessageAuthenticator,
    ProxyStateWithoutMessageAuthenticator,
    /// EAP-Message without Message-Authenticator: an 802.1X authenticator pointed here.
    EapWithoutMessageAuthenticator,
    /// A retransmit (same source, ID and authenticator) whose bytes differ from the first.
    DuplicateMismatch,
    Overloaded,
    /// A RadSec connection whose TLS handshake failed, and why: each cause is logged apart.
    TlsHandshake(HandshakeCause),
    /// A RadSec client certificate not issued to the client's `radsec_name`.
    TlsCertificateName,
    /// A RadSec connection over `radsec.max_connections`.
    TlsConnectionLimit,
    /// A RadSec connection over `radsec.max_connections_per_address` from its address.
    TlsAddressLimit,
    /// A RadSec connection whose peer stopped reading its replies.
    TlsNotReading,
    /// A RadSec connection closed because no request slot of the server's came free within
    /// half the request deadline (over UDP that is [`DropKind::Overloaded`]).
    TlsOverloaded,
    /// A RadSec connection closed because it kept its own share of request slots full for
    /// half the request deadline: that peer's doing, so it is named.
    TlsConnectionShare,
    /// The reply to a request was decided but the system would not send it.
    ReplyNotSent,
}

impl DropKind {
    /// An overload of this server, not something its source did: one line for every
    /// source, naming none.
    fn about_the_server(self) -> bool {
        matches!(self, DropKind::Overloaded | DropKind::TlsOverloaded)
    }

    /// [`DropKind::of`] for a packet of this code: a Status-Server without
    /// Message-Authenticator is refused by RFC 5997, not by the client's setting, and the
    /// log must not send the admin to a setting that cannot help.
    pub fn of_packet(e: &DecodeError, code: u8) -> DropKind {
        match (e, code) {
            (DecodeError::MissingMessageAuthenticator, 12) => {
                DropKind::StatusServerWithoutMessageAuthenticator
            }
            _ => DropKind::of(e),
        }
    }

    pub fn of(e: &DecodeError) -> DropKind {
        match e {
            DecodeError::NotARequest(_) => DropKind::NotARequest,
            DecodeError::MissingMessageAuthenticator => DropKind::MissingMessageAuthenticator,
            // Two Message-Authenticators is a malformed packet, not a wrong secret: the log
            // must not send the admin to compare shared secrets.
            DecodeError::BadMessageAuthenticator => DropKind::BadMessageAuthenticator,
            DecodeError::ProxyStateWithoutMessageAuthenticator => {
                DropKind::ProxyStateWithoutMessageAuthenticator
            }
            DecodeError::EapWithoutMessageAuthenticator => DropKind::EapWithoutMessageAuthenticator,
            _ => DropKind::Malformed,
        }
    }

    /// What to do about a drop from `src`, where that names the source: an unknown client's
    /// line is the admin's first sight of a NAS they set up and forgot to list, and "ignored
    /// (RFC 2865)" alone read as the end of it. Empty for the other kinds.
    fn advice(self, src: &IpAddr) -> String {
        match self {
            DropKind::UnknownClient => {
                format!("; add a [[client]] entry with address = \"{src}\" if this NAS is yours")
            }
            _ => String::new(),
        }
    }

    /// What it means and what to do about it, for the admin reading the log.
    fn explain(self) -> &'static str {
        match self {
            DropKind::UnknownClient => {
                "no [[client]] entry matches this address; requests from unknown clients are \
                 ignored (RFC 2865)"
            }
            DropKind::WrongTransport => {
                "the [[client]] entry for this address does not take this transport: its \
                 transport key says which (\"udp\", \"radsec\" or \"both\"); without one, an \
                 entry with radsec_name is for RadSec only and one without for UDP only"
            }
            DropKind::Malformed => "not a well-formed RADIUS packet",
            DropKind::NotARequest => {
                "radmfa answers only Access-Request and Status-Server on this port"
            }
            DropKind::MissingMessageAuthenticator => {
                "no Message-Authenticator, and this client has require_message_authenticator \
                 = true (BlastRADIUS, CVE-2024-3596); turn it on at the NAS, or, if the NAS \
                 cannot send it, turn the setting off for an entry of that NAS's own address \
                 (not for a range, where every host in it could then send unsigned requests)"
            }
            DropKind::StatusServerWithoutMessageAuthenticator => {
                "a Status-Server without Message-Authenticator, which RFC 5997 requires \
                 whatever require_message_authenticator says; set the monitor that sends it \
                 to sign its probes (radclient: add Message-Authenticator = 0x00)"
            }
            DropKind::BadMessageAuthenticator => {
                "its Message-Authenticator does not verify: the NAS and this [[client]] \
                 entry have different shared secrets"
            }
            DropKind::TlsBadMessageAuthenticator => {
                "its Message-Authenticator does not verify: over RadSec the NAS must sign with \
                 the shared secret \"radsec\" (RFC 6614 section 2.3), whatever this [[client]] \
                 entry's secret is; set the NAS's (or its proxy's) RadSec secret to radsec"
            }
            DropKind::ProxyStateWithoutMessageAuthenticator => {
                "Proxy-State without Message-Authenticator, the BlastRADIUS attack pattern \
                 (CVE-2024-3596), refused even with require_message_authenticator = false; \
                 a RADIUS proxy (NPS forwarding for RD Gateway or VPNs) adds Proxy-State, so \
                 set it to send Message-Authenticator"
            }
            DropKind::EapWithoutMessageAuthenticator => {
                "EAP-Message without Message-Authenticator (RFC 3579 requires it); radmfa \
                 does not do EAP (802.1X, WPA-Enterprise): send only PAP logins here"
            }
            DropKind::DuplicateMismatch => {
                "it has the ID and Request Authenticator of a request still being answered \
                 or answered in the last server.duplicate_window_secs, but different \
                 contents; a NAS must send a retransmit unchanged"
            }
            DropKind::Overloaded => {
                "server.max_in_flight requests are already being processed; the NAS will \
                 retransmit"
            }
            DropKind::TlsCertificateName => {
                "its RadSec certificate is from radsec.ca_file but not issued to this \
                 [[client]] entry's radsec_name: none of its DNS subjectAltNames is that name \
                 (its subject CN is not matched, nor is a wildcard)"
            }
            DropKind::TlsConnectionLimit => {
                "radsec.max_connections RadSec connections are already open, so this one was \
                 closed; a NAS needs one or a few: look for one that leaks connections, or \
                 raise the limit"
            }
            DropKind::TlsAddressLimit => {
                "radsec.max_connections_per_address RadSec connections from this address are \
                 already open, so this one was closed; a NAS needs one or a few: look for \
                 one that leaks connections, or raise the limit"
            }
            DropKind::TlsOverloaded => {
                "server.max_in_flight requests were being processed for half the request \
                 deadline, so this RadSec connection was closed; the NAS sends again on a new \
                 connection or to another server"
            }
            DropKind::TlsConnectionShare => {
                "this RadSec connection kept its own share of requests in flight (half of \
                 server.max_in_flight, at most 256) for half the request deadline, so it was \
                 closed; a NAS or proxy sending this much should spread its requests over \
                 more connections (raising server.max_in_flight helps only below 512, where \
                 the share is under its 256 cap)"
            }
            DropKind::TlsNotReading => {
                "its RadSec connection stopped reading replies (256 unread, or one unwritten \
                 for 10 s), so it was closed and its unsent replies dropped; the NAS resends \
                 on a new connection"
            }
            DropKind::ReplyNotSent => {
                "its reply could not be sent: the system refused the datagram (no route to the \
                 NAS, a local firewall rule, or the send buffer full under load); the NAS \
                 will retransmit"
            }
            DropKind::TlsHandshake(cause) => cause.explain(),
        }
    }
}

/// One log line's worth: a drop to report, and how many like it were held back.
#[derive(Debug, PartialEq, Eq)]
pub enum Warning {
    Itemised {
        kind: DropKind,
        src: IpAddr,
        nas: Option<String>,
        held_back: u64,
    },
    /// Drops from sources beyond [`MAX_SOURCES`], summed.
    Others { count: u64, from: Pool },
}

/// Which places a drop takes: see the module comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// No `[[client]]` entry matched the source.
    Unknown,
    /// A `[[client]]` entry matched it (or the drop is the server's overload).
    Clients,
}

impl Pool {
    fn of(kind: DropKind, nas: Option<&str>) -> Pool {
        if nas.is_some() || kind.about_the_server() {
            Pool::Clients
        } else {
            Pool::Unknown
        }
    }
}

/// Whom a drop came from, for its line: the client's name and address, or the address;
/// `anyone` for an overload, which is about this server, not the source.
fn source(kind: DropKind, src: &IpAddr, nas: Option<&str>, anyone: &str) -> String {
    match nas {
        Some(nas) => format!("client {nas:?} ({src})"),
        None if kind.about_the_server() => anyone.to_string(),
        None => src.to_string(),
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Itemised {
                kind,
                src,
                nas,
                held_back,
            } => {
                let who = source(*kind, src, nas.as_deref(), "a client");
                write!(
                    f,
                    "dropped a request from {who}: {}{}",
                    kind.explain(),
                    kind.advice(src)
                )?;
                if *held_back > 0 {
                    write!(f, " ({held_back} more like it since the last warning)")?;
                }
                Ok(())
            }
            Warning::Others {
                count,
                from: Pool::Unknown,
            } => write!(
                f,
                "dropped {count} more request(s) from other addresses no [[client]] entry \
                 matches ({MAX_SOURCES} such addresses are named at a time; \
                 radmfa_requests_dropped_total counts them all)"
            ),
            Warning::Others {
                count,
                from: Pool::Clients,
            } => write!(
                f,
                "dropped {count} more request(s) from other addresses of [[client]] entries \
                 ({MAX_SOURCES} such addresses and kinds are named at a time; \
                 radmfa_requests_dropped_total counts them all by kind)"
            ),
        }
    }
}

struct Entry {
    last_warned: Instant,
    held_back: u64,
    nas: Option<String>,
}

/// The places of one [`Pool`].
#[derive(Default)]
struct Table {
    seen: HashMap<(IpAddr, DropKind), Entry>,
    others: u64,
    others_warned: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    unknown: Table,
    clients: Table,
}

impl Inner {
    fn table(&mut self, pool: Pool) -> &mut Table {
        match pool {
            Pool::Unknown => &mut self.unknown,
            Pool::Clients => &mut self.clients,
        }
    }
}

/// Decides which drops get a log line; see the module comment.
#[derive(Default)]
pub struct DropLog {
    inner: Mutex<Inner>,
}

impl DropLog {
    /// Records one drop at `now`; `Some` when it should be logged.
    pub fn record(
        &self,
        kind: DropKind,
        src: IpAddr,
        nas: Option<&str>,
        now: Instant,
    ) -> Option<Warning> {
        // Overload is about this server, not the source: one line for all clients, which
        // names none of them (the first one's name would stand for all).
        let (src, nas) = if kind.about_the_server() {
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), None)
        } else {
            (src, nas)
        };
        let itemised = |held_back| Warning::Itemised {
            kind,
            src,
            nas: nas.map(str::to_string),
            held_back,
        };
        let pool = Pool::of(kind, nas);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = inner.table(pool);
        if let Some(e) = inner.seen.get_mut(&(src, kind)) {
            if now.duration_since(e.last_warned) < INTERVAL {
                e.held_back += 1;
                return None;
            }
            let held_back = std::mem::take(&mut e.held_back);
            e.last_warned = now;
            return Some(itemised(held_back));
        }
        if inner.seen.len() >= MAX_SOURCES {
            // Forget sources quiet for a whole interval (their held-back drops stay counted
            // in the metrics).
            inner
                .seen
                .retain(|_, e| now.duration_since(e.last_warned) < INTERVAL);
        }
        if inner.seen.len() < MAX_SOURCES {
            inner.seen.insert(
                (src, kind),
                Entry {
                    last_warned: now,
                    held_back: 0,
                    nas: nas.map(str::to_string),
                },
            );
            return Some(itemised(0));
        }
        inner.others += 1;
        if inner
            .others_warned
            .is_some_and(|t| now.duration_since(t) < INTERVAL)
        {
            return None;
        }
        inner.others_warned = Some(now);
        Some(Warning::Others {
            count: std::mem::take(&mut inner.others),
            from: pool,
        })
    }

    /// The drops held back whose interval is over, each as its line, now. Without this a
    /// count waited for the next drop of its kind from its source, which may never come (a
    /// burst of spoofed packets, a NAS fixed after it), and the log understated what
    /// happened. Called once an interval.
    pub fn flush(&self, now: Instant) -> Vec<Warning> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for pool in [Pool::Clients, Pool::Unknown] {
            inner.table(pool).flush(now, pool, &mut out);
        }
        out
    }
}

impl Table {
    fn flush(&mut self, now: Instant, pool: Pool, out: &mut Vec<Warning>) {
        let due = |last: Instant| now.duration_since(last) + FLUSH_SLACK >= INTERVAL;
        for ((src, kind), e) in self.seen.iter_mut() {
            if e.held_back > 0 && due(e.last_warned) {
                e.last_warned = now;
                out.push(Warning::Itemised {
                    kind: *kind,
                    src: *src,
                    nas: e.nas.clone(),
                    held_back: std::mem::take(&mut e.held_back),
                });
            }
        }
        if self.others > 0 && self.others_warned.is_none_or(due) {
            self.others_warned = Some(now);
            out.push(Warning::Others {
                count: std::mem::take(&mut self.others),
                from: pool,
            });
        }
    }
}

/// The `src` field of a drop's line: none for an overload, which is about this server.
fn src_field(kind: DropKind, src: &IpAddr) -> String {
    if kind.about_the_server() {
        String::new()
    } else {
        src.to_string()
    }
}

impl Warning {
    /// Logs the line for a drop as it comes: the message for people, the kind, source and
    /// client as fields for a SIEM reading the JSON log, and `detail` (what exactly was
    /// wrong) in brackets. A sum of other sources' drops carries no such fields: the packet
    /// that brought the line is one of many, and its source, client and kind would be taken
    /// for all of them.
    pub fn log(&self, detail: Option<&dyn fmt::Display>) {
        let detail = detail.map(|d| format!(" [{d}]")).unwrap_or_default();
        match self {
            Warning::Itemised { kind, src, nas, .. } => tracing::warn!(
                target: "radmfa::drops",
                kind = ?kind,
                src = src_field(*kind, src),
                nas = nas.as_deref().unwrap_or(""),
                "{self}{detail}"
            ),
            Warning::Others { .. } => tracing::warn!(target: "radmfa::drops", "{self}"),
        }
    }

    /// [`Warning::log`] for a line brought by a packet from `src` (client `nas`): an
    /// overload's line names no source in its text (it stands for every client's drops),
    /// but its fields name the client whose request brought it, so a SIEM reading the JSON
    /// sees which NAS lost a request rather than `nas=""`, read as a stranger's (20a2156).
    pub fn log_brought_by(
        &self,
        src: IpAddr,
        nas: Option<&str>,
        detail: Option<&dyn fmt::Display>,
    ) {
        match self {
            Warning::Itemised { kind, .. } if kind.about_the_server() => {
                let detail = detail.map(|d| format!(" [{d}]")).unwrap_or_default();
                tracing::warn!(
                    target: "radmfa::drops",
                    kind = ?kind,
                    src = %src,
                    nas = nas.unwrap_or(""),
                    "{self}{detail}"
                )
            }
            _ => self.log(detail),
        }
    }

    /// The line for a drop held back and flushed: what it was, and that no drop
    /// came since to carry the count.
    pub fn log_flushed(&self) {
        match self {
            Warning::Itemised {
                kind,
                src,
                nas,
                held_back,
            } => {
                let who = source(*kind, src, nas.as_deref(), "clients");
                tracing::warn!(
                    target: "radmfa::drops",
                    kind = ?kind,
                    src = src_field(*kind, src),
                    nas = nas.as_deref().unwrap_or(""),
                    "dropped {held_back} more request(s) from {who} since the last warning: {}{}",
                    kind.explain(),
                    kind.advice(src)
                )
            }
            Warning::Others { .. } => tracing::warn!(target: "radmfa::drops", "{self}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_message_authenticators_are_malformed_not_a_wrong_secret() {
        assert_eq!(
            DropKind::of(&DecodeError::DuplicateMessageAuthenticator),
            DropKind::Malformed
        );
        assert_eq!(
            DropKind::of(&DecodeError::BadMessageAuthenticator),
            DropKind::BadMessageAuthenticator
        );
        // An unsigned Status-Server is not blamed on the client's setting.
        let probe = DropKind::of_packet(&DecodeError::MissingMessageAuthenticator, 12);
        assert_eq!(probe, DropKind::StatusServerWithoutMessageAuthenticator);
        assert!(probe.explain().contains("RFC 5997"));
        assert_eq!(
            DropKind::of_packet(&DecodeError::MissingMessageAuthenticator, 1),
            DropKind::MissingMessageAuthenticator
        );
        // An 802.1X authenticator sent here by mistake is told so, not "malformed".
        let eap = DropKind::of(&DecodeError::EapWithoutMessageAuthenticator);
        assert_eq!(eap, DropKind::EapWithoutMessageAuthenticator);
        assert!(eap.explain().contains("EAP"));
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    /// An unknown client's line says what to add if the NAS is the admin's, with its
    /// address; other kinds' lines add nothing.
    #[test]
    fn an_unknown_clients_line_says_how_to_add_it() {
        let w = Warning::Itemised {
            kind: DropKind::UnknownClient,
            src: ip(9),
            nas: None,
            held_back: 0,
        };
        assert_eq!(
            w.to_string(),
            "dropped a request from 192.0.2.9: no [[client]] entry matches this address; \
             requests from unknown clients are ignored (RFC 2865); add a [[client]] entry with \
             address = \"192.0.2.9\" if this NAS is yours"
        );
        assert_eq!(DropKind::Malformed.advice(&ip(9)), "");
    }

    #[test]
    fn first_drop_is_logged_then_one_line_per_interval_with_the_count() {
        let log = DropLog::default();
        let t0 = Instant::now();
        let bad = DropKind::BadMessageAuthenticator;
        let w = log.record(bad, ip(1), Some("vpn"), t0).unwrap();
        assert_eq!(
            w.to_string(),
            "dropped a request from client \"vpn\" (192.0.2.1): its Message-Authenticator \
             does not verify: the NAS and this [[client]] entry have different shared secrets"
        );
        for i in 1..=40 {
            assert_eq!(
                log.record(bad, ip(1), Some("vpn"), t0 + i * INTERVAL / 50),
                None
            );
        }
        // Another kind or another source is news of its own.
        assert!(log
            .record(DropKind::UnknownClient, ip(1), None, t0)
            .is_some());
        assert!(log.record(bad, ip(2), Some("vpn"), t0).is_some());
        let w = log.record(bad, ip(1), Some("vpn"), t0 + INTERVAL).unwrap();
        assert!(
            w.to_string()
                .ends_with("(40 more like it since the last warning)"),
            "{w}"
        );
        assert_eq!(log.record(bad, ip(1), Some("vpn"), t0 + INTERVAL), None);
    }

    /// Drops held back are told once their interval is over, without waiting for another
    /// drop from the same source (which may never come).
    #[test]
    fn held_back_drops_are_flushed_after_the_interval() {
        let log = DropLog::default();
        let t0 = Instant::now();
        let bad = DropKind::BadMessageAuthenticator;
        assert!(log.record(bad, ip(1), Some("vpn"), t0).is_some());
        assert!(log
            .record(DropKind::UnknownClient, ip(3), None, t0)
            .is_some());
        for _ in 0..5 {
            assert_eq!(log.record(bad, ip(1), Some("vpn"), t0), None);
        }
        assert_eq!(log.flush(t0 + INTERVAL / 2), vec![]);
        assert_eq!(
            log.flush(t0 + INTERVAL),
            vec![Warning::Itemised {
                kind: bad,
                src: ip(1),
                nas: Some("vpn".into()),
                held_back: 5
            }],
            "only what was held back, with its client's name"
        );
        assert_eq!(log.flush(t0 + 3 * INTERVAL), vec![], "told once");
        // Summed drops beyond the cap are flushed too.
        let src = |i: u32| IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
        let t1 = t0 + 3 * INTERVAL;
        for i in 0..(MAX_SOURCES as u32 + 3) {
            log.record(DropKind::UnknownClient, src(i), None, t1);
        }
        assert_eq!(
            log.flush(t1 + INTERVAL),
            vec![Warning::Others {
                count: 2,
                from: Pool::Unknown
            }]
        );
    }

    #[test]
    fn a_spoofed_flood_is_itemised_up_to_the_cap_then_summed() {
        let log = DropLog::default();
        let t0 = Instant::now();
        let src = |i: u32| IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
        let lines = (0..10_000u32)
            .filter_map(|i| log.record(DropKind::UnknownClient, src(i), None, t0))
            .collect::<Vec<_>>();
        // MAX_SOURCES itemised lines and one sum (of the first drop beyond the cap).
        assert_eq!(lines.len(), MAX_SOURCES + 1, "{lines:?}");
        assert_eq!(
            lines[MAX_SOURCES],
            Warning::Others {
                count: 1,
                from: Pool::Unknown
            }
        );
        // A minute on: the itemised sources are forgotten, new ones get lines again, and
        // the drops summed meanwhile are reported.
        let later = t0 + INTERVAL;
        let w = log.record(DropKind::UnknownClient, src(20_000), None, later);
        assert!(matches!(w, Some(Warning::Itemised { .. })), "{w:?}");
        for i in 0..(MAX_SOURCES as u32 - 1) {
            let w = log.record(DropKind::UnknownClient, src(30_000 + i), None, later);
            assert!(matches!(w, Some(Warning::Itemised { .. })), "{w:?}");
        }
        let held = 10_000 - MAX_SOURCES as u64 - 1;
        let w = log.record(DropKind::UnknownClient, src(40_000), None, later);
        assert_eq!(
            w,
            Some(Warning::Others {
                count: held + 1,
                from: Pool::Unknown
            })
        );
    }

    /// A flood from spoofed unknown addresses fills the unknown sources' places, and a
    /// configured client's drops keep places of their own: the NAS with the wrong secret is
    /// named at once, and its held-back count flushed, beside the flood's sum. The red team
    /// filled all 64 shared places from 46 spoofed addresses, and 300 drops from client
    /// "vpn" went into "more from other sources".
    #[test]
    fn an_unknown_flood_cannot_hide_a_configured_client() {
        let log = DropLog::default();
        let t0 = Instant::now();
        let spoofed = |i: u32| IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
        for i in 0..(2 * MAX_SOURCES as u32) {
            log.record(DropKind::UnknownClient, spoofed(i), None, t0);
        }
        let vpn = IpAddr::from([127, 0, 0, 1]);
        let bad = DropKind::BadMessageAuthenticator;
        let w = log.record(bad, vpn, Some("vpn"), t0).unwrap();
        assert!(
            w.to_string()
                .starts_with("dropped a request from client \"vpn\" (127.0.0.1)"),
            "{w}"
        );
        // So is the server's overload, which is no source's.
        let w = log.record(DropKind::Overloaded, spoofed(1), None, t0);
        assert!(matches!(w, Some(Warning::Itemised { .. })), "{w:?}");
        for _ in 0..299 {
            assert_eq!(log.record(bad, vpn, Some("vpn"), t0), None);
        }
        let flushed = log.flush(t0 + INTERVAL);
        assert_eq!(
            flushed,
            vec![
                Warning::Itemised {
                    kind: bad,
                    src: vpn,
                    nas: Some("vpn".into()),
                    held_back: 299
                },
                Warning::Others {
                    count: MAX_SOURCES as u64 - 1,
                    from: Pool::Unknown
                }
            ]
        );
    }

    /// A configured client's places have a cap of their own too (a `[[client]]` entry for
    /// a network matches many addresses), and their sum says whose they are.
    #[test]
    fn configured_clients_past_their_cap_are_summed_as_such() {
        let log = DropLog::default();
        let t0 = Instant::now();
        let branch = |i: u32| IpAddr::from((0x0a01_0000u32 + i).to_be_bytes());
        let bad = DropKind::BadMessageAuthenticator;
        for i in 0..MAX_SOURCES as u32 {
            let w = log.record(bad, branch(i), Some("branches"), t0);
            assert!(matches!(w, Some(Warning::Itemised { .. })), "{w:?}");
        }
        let w = log.record(bad, branch(1000), Some("branches"), t0).unwrap();
        assert_eq!(
            w,
            Warning::Others {
                count: 1,
                from: Pool::Clients
            }
        );
        assert!(
            w.to_string().contains("addresses of [[client]] entries"),
            "{w}"
        );
    }

    /// The flush runs on a one-interval tick: an entry last told at one tick is due at the
    /// next even when that tick's `now` comes a little less late than the last one's. It
    /// waited a second interval (03:15:45.151019, then 03:17:45.150602).
    #[test]
    fn a_tick_a_little_early_still_flushes() {
        let log = DropLog::default();
        let t0 = Instant::now();
        let bad = DropKind::BadMessageAuthenticator;
        assert!(log.record(bad, ip(1), Some("vpn"), t0).is_some());
        assert_eq!(log.record(bad, ip(1), Some("vpn"), t0), None);
        let tick = t0 + INTERVAL + Duration::from_millis(1);
        assert_eq!(log.flush(tick).len(), 1);
        for _ in 0..3 {
            assert_eq!(log.record(bad, ip(1), Some("vpn"), tick), None);
        }
        let next = tick + INTERVAL - Duration::from_micros(417);
        assert_eq!(
            log.flush(next),
            vec![Warning::Itemised {
                kind: bad,
                src: ip(1),
                nas: Some("vpn".into()),
                held_back: 3
            }]
        );
        // Not much earlier, though: about one line a minute.
        assert!(log.record(bad, ip(1), Some("vpn"), next).is_none());
        assert_eq!(log.flush(next + INTERVAL / 2), vec![]);
    }

    /// What [`Warning::log`] writes, as JSON lines.
    fn logged(w: &Warning) -> String {
        crate::telemetry::captured(true, || w.log(Some(&"why")))
    }

    /// The sum of other sources' drops is logged without the fields of the packet that
    /// brought it (it carried kind=, src= and nas= of that one, as if all were its).
    #[test]
    fn the_sum_carries_no_one_packets_fields() {
        let line = logged(&Warning::Others {
            count: 1277,
            from: Pool::Unknown,
        });
        assert!(line.contains("dropped 1277 more request(s)"), "{line}");
        for field in ["\"kind\"", "\"src\"", "\"nas\""] {
            assert!(!line.contains(field), "{line}");
        }
        let line = logged(&Warning::Itemised {
            kind: DropKind::BadMessageAuthenticator,
            src: ip(1),
            nas: Some("vpn".into()),
            held_back: 0,
        });
        for field in [
            "\"kind\":\"BadMessageAuthenticator\"",
            "\"src\":\"192.0.2.1\"",
            "\"nas\":\"vpn\"",
            "[why]",
        ] {
            assert!(line.contains(field), "{field}: {line}");
        }
    }

    #[test]
    fn overload_is_one_line_whatever_the_source() {
        let log = DropLog::default();
        let t0 = Instant::now();
        let w = log.record(DropKind::Overloaded, ip(1), None, t0).unwrap();
        assert_eq!(
            w.to_string(),
            "dropped a request from a client: server.max_in_flight requests are already \
             being processed; the NAS will retransmit"
        );
        assert_eq!(
            log.record(DropKind::Overloaded, ip(2), Some("vpn"), t0),
            None
        );
        let later = t0 + INTERVAL;
        let w = log.record(DropKind::TlsOverloaded, ip(3), Some("vpn"), later);
        assert!(
            w.unwrap()
                .to_string()
                .starts_with("dropped a request from a client: server.max_in_flight"),
            "a RadSec connection closed for the server's overload names no one client"
        );
        assert_eq!(
            log.record(DropKind::TlsOverloaded, ip(4), Some("vpn2"), later),
            None
        );
    }

    /// A RadSec connection that kept its own share full is that peer's doing: named, and
    /// told apart from the server's overload, which sends the admin to other causes.
    #[test]
    fn a_connection_over_its_share_is_named() {
        let log = DropLog::default();
        let t0 = Instant::now();
        let w = log
            .record(DropKind::TlsConnectionShare, ip(5), Some("proxy"), t0)
            .unwrap();
        let line = w.to_string();
        assert!(line.contains("client \"proxy\" (192.0.2.5)"), "{line}");
        assert!(
            line.contains("its own share of requests in flight"),
            "{line}"
        );
        assert!(!line.contains("already being processed"), "{line}");
        assert!(log
            .record(DropKind::TlsConnectionShare, ip(6), Some("other"), t0)
            .is_some());
    }
}
