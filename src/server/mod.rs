//! The front end: receive (UDP here, TLS in `radsec`), find the client, drop retransmits,
//! verify, run the pipeline under a permit and a deadline, send the reply. One bad packet
//! never stops the server.

pub mod cert_dates;
pub mod clients;
pub(crate) mod cut_line;
pub mod dedup;
pub mod drop_log;
pub mod metrics;
pub mod metrics_http;
pub mod metrics_process;
pub mod radsec;
mod radsec_anchors;
mod radsec_reload;
pub(crate) mod radsec_slots;
mod udp_source;
mod upstream_checks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn, Instrument};

use crate::app::AppState;
use crate::config::ClientConfig;
use crate::pipeline::{self, RequestContext};
use crate::radius::crypto::HEADER_LEN;
use crate::radius::{self, DecodeError, RequestKind, MAX_PACKET};
use dedup::{DuplicateCache, RequestKey, Seen};
use drop_log::DropKind;
use metrics::Metrics;

/// Binds every listen address. IPv6 sockets are IPv6-only so `0.0.0.0:1812` and `[::]:1812`
/// can be bound side by side.
///
/// The IPv6 wildcard (`[::]`, in the default list) is left out, with a warning, on a host
/// whose kernel has no IPv6 (booted with `ipv6.disable=1`: the socket cannot even be
/// made) when another address is bound: nothing could reach it there, and the default
/// configuration must still start. Any other failure stops the start.
pub fn bind(addrs: &[SocketAddr]) -> std::io::Result<Vec<UdpSocket>> {
    let mut out = Vec::new();
    for addr in addrs {
        match bind_one(addr) {
            Ok(s) => out.push(s),
            Err(e) if no_ipv6_here(addr, &e) && addrs.len() > 1 => {
                tracing::warn!(%addr, "this host has no IPv6 ({e}); not listening on {addr}");
            }
            Err(e) => return Err(e),
        }
    }
    if out.is_empty() {
        return Err(std::io::Error::other(
            "none of server.listen's addresses could be bound",
        ));
    }
    Ok(out)
}

/// Whether binding `addr` failed because the kernel has no IPv6 at all.
pub(crate) fn no_ipv6_here(addr: &SocketAddr, e: &std::io::Error) -> bool {
    addr.is_ipv6()
        && addr.ip().is_unspecified()
        && e.raw_os_error() == Some(nix::libc::EAFNOSUPPORT)
}

/// What to do about a failed bind, for its error: the OS's words alone ("Permission
/// denied", "Cannot assign requested address") leave the admin to guess.
pub(crate) fn bind_hint(addr: &SocketAddr, e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::PermissionDenied if addr.port() < 1024 => {
            " (a port under 1024 needs root or CAP_NET_BIND_SERVICE: in conf/radmfa.service, \
             CapabilityBoundingSet= and AmbientCapabilities= CAP_NET_BIND_SERVICE)"
        }
        ErrorKind::AddrNotAvailable => {
            " (no interface of this host has that address: on a VRRP backup, whose virtual \
             address is elsewhere, listen on 0.0.0.0 or [::] (replies leave from the address \
             each request came to) or set net.ipv4.ip_nonlocal_bind; an IPv6 address may \
             still be in duplicate address detection just after boot)"
        }
        ErrorKind::AddrInUse => {
            " (another process listens there, or another radmfa: `ss -lunp` and `ss -ltnp` \
             name it)"
        }
        _ => "",
    }
}

fn bind_one(addr: &SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    // Bursts of NAS traffic must not be lost in a small kernel buffer.
    let _ = sock.set_recv_buffer_size(4 << 20);
    sock.set_nonblocking(true)?;
    udp_source::enable(&sock, addr)?;
    sock.bind(&(*addr).into()).map_err(|e| {
        let hint = bind_hint(addr, &e);
        std::io::Error::new(e.kind(), format!("binding udp {addr}: {e}{hint}"))
    })?;
    UdpSocket::from_std(sock.into())
}

#[cfg(test)]
mod bind_tests {
    use super::*;

    /// Only the IPv6 wildcard, and only for a kernel without IPv6, is left out.
    #[test]
    fn only_the_ipv6_wildcard_on_a_host_without_ipv6_is_skippable() {
        let none = std::io::Error::from_raw_os_error(nix::libc::EAFNOSUPPORT);
        let wildcard: SocketAddr = "[::]:1812".parse().unwrap();
        assert!(no_ipv6_here(&wildcard, &none));
        let one: SocketAddr = "[2001:db8::1]:1812".parse().unwrap();
        assert!(!no_ipv6_here(&one, &none), "an address asked for by name");
        let v4: SocketAddr = "0.0.0.0:1812".parse().unwrap();
        assert!(!no_ipv6_here(&v4, &none));
        let in_use = std::io::Error::from_raw_os_error(nix::libc::EADDRINUSE);
        assert!(
            !no_ipv6_here(&wildcard, &in_use),
            "a port in use stops the start"
        );
    }
}

/// Bound RadSec listeners and their TLS configuration (`radsec::acceptor`).
pub struct RadsecListeners {
    pub listeners: Vec<tokio::net::TcpListener>,
    pub acceptors: Arc<radsec::Acceptors>,
}

/// Set once the shutdown grace is over and the requests still in flight are abandoned:
/// what their dropped tasks would log as they go (an LDAP operation "cut short by the
/// request deadline", after "store closed") is not their cause.
static ABANDONED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process abandoned its requests in flight at the end of a shutdown.
pub fn abandoned() -> bool {
    ABANDONED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Serves until `shutdown` is cancelled, then lets in-flight requests finish within the
/// configured grace period.
pub async fn run(
    app: Arc<AppState>,
    sockets: Vec<UdpSocket>,
    radsec: Option<RadsecListeners>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    // One bound for both transports: max_in_flight is the server's, not the port's.
    let permits = Arc::new(Semaphore::new(app.config().server.max_in_flight));
    if let Some(RadsecListeners {
        listeners,
        acceptors,
    }) = radsec
    {
        // Set before any request is served, then kept up to date every minute.
        let (served, unusable) = acceptors.served();
        cert_dates::set_gauges(&app.metrics, &served, unusable.is_some());
        tokio::spawn(cert_dates::watch_dates(
            app.clone(),
            acceptors.clone(),
            shutdown.clone(),
        ));
        let cfg = acceptors.config();
        let shared = radsec::Shared {
            slots: radsec_slots::Slots::new(cfg.max_connections, cfg.max_connections_per_address),
            idle: cfg.idle_timeout,
            acceptors,
            permits: permits.clone(),
        };
        for listener in listeners {
            tracker.spawn(radsec::accept_loop(
                app.clone(),
                listener,
                shared.clone(),
                tracker.clone(),
                shutdown.clone(),
            ));
        }
    }
    for sock in sockets {
        let sock = Arc::new(sock);
        if let Ok(addr) = sock.local_addr() {
            info!(%addr, "radmfa listening on udp {addr}");
        }
        tracker.spawn(recv_loop(
            app.clone(),
            sock,
            permits.clone(),
            tracker.clone(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(upstream_checks::run(app.clone(), shutdown.clone()));
    shutdown.cancelled().await;
    tracker.close();
    info!("shutting down: waiting for requests in flight");
    let waited = tokio::time::timeout(app.config().server.shutdown_grace, tracker.wait()).await;
    // The last lines must not be lost to a queue still full from a reader that stalled.
    crate::telemetry::stopping(std::time::Duration::from_secs(2));
    if waited.is_err() {
        // The requests holding an in-flight permit: those past their duplicate check,
        // waiting on a backend. Their tasks are dropped with the runtime, unanswered.
        let abandoned = app
            .config()
            .server
            .max_in_flight
            .saturating_sub(permits.available_permits());
        ABANDONED.store(true, std::sync::atomic::Ordering::Relaxed);
        warn!(
            abandoned,
            "shutdown grace period over; abandoning {abandoned} request(s) still in flight: \
             they get no reply and no audit record (server.shutdown_grace_ms is shorter \
             than they were allowed to take)"
        );
    }
    let counters: Vec<String> = app
        .metrics
        .snapshot()
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    info!(counters = %counters.join(" "), "stopped");
}

async fn recv_loop(
    app: Arc<AppState>,
    sock: Arc<UdpSocket>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let bound = sock.local_addr().ok();
    let wildcard = bound.is_some_and(|a| a.ip().is_unspecified());
    // One byte more than the maximum, so an over-long datagram is seen as such.
    let mut buf = vec![0u8; MAX_PACKET + 1];
    loop {
        let (len, src, dst) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = udp_source::recv(&sock, wildcard, &mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    // ICMP errors surface here on some systems; never stop serving for them.
                    debug!(error = %e, "recv_from");
                    continue;
                }
            },
        };
        Metrics::inc(&app.metrics.received);
        // RFC 2865 §3: a request from a client without a shared secret MUST be silently
        // discarded. An entry for RadSec only has none for UDP.
        let Some(client) = app.client_for(src.ip(), false) else {
            Metrics::inc(&app.metrics.unknown_client);
            warn_drop(&app, DropKind::UnknownClient, src, None);
            continue;
        };
        if !client.transport.udp() {
            Metrics::inc(&app.metrics.unknown_client);
            warn_drop(&app, DropKind::WrongTransport, src, Some(&client.name));
            continue;
        }
        // On a wildcard socket, the address the NAS sent to: the reply leaves from it, and
        // the audit record names it.
        let local = match (dst, bound) {
            (Some(d), Some(b)) => Some(SocketAddr::new(d.ip, b.port())),
            _ => bound,
        };
        let reply_to = ReplyTo::Udp(UdpReply {
            sock: sock.clone(),
            from: dst,
        });
        // Verified before the duplicate check, as a RadSec reader does: a forged copy of a
        // request (its ID and Request Authenticator, a wrong Message-Authenticator) sent
        // just ahead of it took the request's in-flight entry, and the real one was
        // dropped as "a retransmit with other contents" (red team), the log blaming the
        // NAS. A few µs of HMAC-MD5 here; the request's own task did the same before. A
        // panic in it (none is known: the decoder is fuzzed) ends this datagram, not the
        // listener, as it ended only the request's task there.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            verify(&app, &reply_to, &client, src, &buf[..len])
        }));
        let Ok(Some(req)) = checked else {
            continue;
        };
        let at = Arrival {
            client,
            src,
            local,
            reply_to: &reply_to,
            verified: Some(req),
        };
        dispatch(&app, &permits, &tracker, at, &buf[..len]).await;
    }
}

/// Where a request's reply goes: back over UDP, or to a RadSec connection's writer.
#[derive(Clone)]
pub(crate) enum ReplyTo {
    Udp(UdpReply),
    Tls(radsec::TlsReplies),
}

/// The socket a UDP request came in on, and the address it was sent to when the socket is
/// a wildcard one (`udp_source`).
#[derive(Clone)]
pub(crate) struct UdpReply {
    sock: Arc<UdpSocket>,
    from: Option<udp_source::Destination>,
}

impl ReplyTo {
    async fn send(&self, app: &AppState, bytes: &Arc<[u8]>, to: SocketAddr, nas: &str) {
        match self {
            ReplyTo::Udp(u) => {
                if let Err(e) = udp_source::send(&u.sock, bytes, to, u.from).await {
                    Metrics::inc(&app.metrics.replies_not_sent);
                    // Rate-limited like drops: a route gone or a firewall rule would
                    // otherwise log a line per reply, at the NAS's request rate.
                    debug!(error = %e, "sending reply");
                    if let Some(w) =
                        app.drops
                            .record(DropKind::ReplyNotSent, to.ip(), Some(nas), Instant::now())
                    {
                        w.log(Some(&e));
                    }
                }
            }
            // The connection may be gone; the NAS then asks again on a new one.
            ReplyTo::Tls(replies) => replies.send(bytes),
        }
    }

    /// A packet failed verification: over UDP it is dropped and that is all; a RadSec
    /// connection is closed when the packet is broken or forged (RFC 6613 §2.6.4).
    fn discarded(&self, e: &DecodeError) {
        match (self, e) {
            (ReplyTo::Udp(_), _) => {}
            // An unsupported code (say, accounting sent to the authentication server) is
            // not a broken stream; the connection may stay open, and keeps serving logins.
            // Nor is a well-formed request refused only by policy for lacking a
            // Message-Authenticator: a proxy carries many NASes' logins on one connection,
            // and closing it for one NAS's packet would lose the replies of every login in
            // flight on it (their codes or States already used), again and again. The same
            // for a verified request with an empty State: that NAS's attribute, passed on.
            (
                ReplyTo::Tls(_),
                DecodeError::NotARequest(_)
                | DecodeError::MissingMessageAuthenticator
                | DecodeError::ProxyStateWithoutMessageAuthenticator
                | DecodeError::EapWithoutMessageAuthenticator
                | DecodeError::EmptyState,
            ) => {}
            (ReplyTo::Tls(r), e) => r.conn.discarded(e.label()),
        }
    }
}

/// One packet from a known client, whichever the transport.
pub(crate) struct Arrival<'a> {
    pub client: Arc<ClientConfig>,
    pub src: SocketAddr,
    pub local: Option<SocketAddr>,
    pub reply_to: &'a ReplyTo,
    /// The packet decoded and verified already ([`verify`], by a RadSec connection's
    /// reader); `None` to have its task do it.
    pub verified: Option<radius::Request>,
}

/// Duplicate check, a permit, then the request on a task of its own.
pub(crate) async fn dispatch(
    app: &Arc<AppState>,
    permits: &Arc<Semaphore>,
    tracker: &TaskTracker,
    at: Arrival<'_>,
    raw: &[u8],
) {
    // The request's deadline counts from here, its arrival: the NAS's timeout started then.
    dispatch_from(Instant::now(), app, permits, tracker, at, raw).await
}

/// [`dispatch`] for a request that arrived at `received` (a RadSec resend worked out
/// after waiting for its first copy: its peer's timeout started when it came).
async fn dispatch_from(
    received: Instant,
    app: &Arc<AppState>,
    permits: &Arc<Semaphore>,
    tracker: &TaskTracker,
    at: Arrival<'_>,
    raw: &[u8],
) {
    let Arrival {
        client,
        src,
        local,
        reply_to,
        verified,
    } = at;
    // A RadSec peer resends only on a new connection (RFC 6613 §2.6.1), from a new port:
    // its requests are known by the peer's address alone, or the resend of a login whose
    // connection broke would be worked out a second time (a second bind, a State already
    // used). UDP keeps the port: a NAS's ports are separate request streams.
    let over_tls = matches!(reply_to, ReplyTo::Tls(_));
    let dedup_src = if over_tls {
        SocketAddr::new(src.ip(), 0)
    } else {
        src
    };
    let Some(key) = RequestKey::of(dedup_src, raw) else {
        Metrics::inc(&app.metrics.malformed);
        warn_drop(app, DropKind::Malformed, src, Some(&client.name));
        reply_to.discarded(&DecodeError::TooShort(raw.len()));
        return;
    };
    // RFC 2865 §3: "Octets outside the range of the Length field MUST be treated as padding
    // and ignored on reception." So a retransmit padded differently is the same request.
    let declared = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
    let raw = &raw[..declared.clamp(HEADER_LEN, raw.len())];
    // Where this copy was sent: a copy of a request in flight sent to another of radmfa's
    // addresses is answered from that one (`Seen::AttachedElsewhere`).
    let path = if over_tls { None } else { local };
    match app.dedup.begin_at(key, raw, path) {
        Seen::New => {}
        Seen::Replay(bytes) => {
            Metrics::inc(&app.metrics.duplicate_replayed);
            reply_to.send(app, &bytes, src, &client.name).await;
            return;
        }
        Seen::AttachedElsewhere(nth) if !over_tls => {
            Metrics::inc(&app.metrics.duplicate_in_flight);
            if nth <= dedup::MAX_ATTACHED_COPIES {
                let deadline = client
                    .factors
                    .request_deadline(app.config().server.request_deadline);
                tracker.spawn(udp_copy_when_answered(
                    app.clone(),
                    key,
                    reply_to.clone(),
                    client.name.clone(),
                    deadline + Duration::from_secs(1),
                ));
            }
            return;
        }
        Seen::Attached(nth) | Seen::AttachedElsewhere(nth) => {
            Metrics::inc(&app.metrics.duplicate_in_flight);
            // A RadSec resend comes on a new connection (the first one broke): the reply
            // goes out on the first one, so this one waits for it and sends its own copy.
            // As many waiters as UDP gets copies: a peer streaming copies of one request
            // does not get a task (and a poll of the cache's lock) for each.
            let waits = nth <= dedup::MAX_ATTACHED_COPIES;
            if let (ReplyTo::Tls(replies), true) = (reply_to, waits) {
                let deadline = client
                    .factors
                    .request_deadline(app.config().server.request_deadline);
                let resend = Resend {
                    received,
                    app: app.clone(),
                    permits: permits.clone(),
                    tracker: tracker.clone(),
                    client: client.clone(),
                    src,
                    local,
                    replies: replies.clone(),
                    raw: raw.to_vec(),
                };
                tracker.spawn(resend_when_answered(
                    resend,
                    key,
                    deadline + Duration::from_secs(1),
                ));
            }
            return;
        }
        Seen::Silent => return,
        Seen::Mismatch => {
            Metrics::inc(&app.metrics.duplicate_mismatch);
            warn_drop(app, DropKind::DuplicateMismatch, src, Some(&client.name));
            return;
        }
    }
    // Over TCP the NAS does not retransmit on the same connection: a request is not dropped
    // for want of a slot but waits, for half its deadline (which counts from the arrival; a
    // slot that comes later leaves the request too little of it).
    let wait_until = || {
        let deadline = client
            .factors
            .request_deadline(app.config().server.request_deadline);
        tokio::time::Instant::from_std(received) + deadline / 2
    };
    // Over TLS, first one of the connection's own slots, so that no one connection takes
    // every request slot.
    let own = match reply_to {
        ReplyTo::Tls(replies) => match replies.conn.own_slot(wait_until()).await {
            Some(p) => Some(p),
            None => {
                app.dedup.abandon(key);
                return;
            }
        },
        ReplyTo::Udp(_) => None,
    };
    let permit = match (permits.clone().try_acquire_owned(), reply_to) {
        (Ok(permit), _) => permit,
        (Err(_), ReplyTo::Udp(_)) => {
            // Full: drop rather than queue without bound; the NAS retransmits. The line is
            // about this server, but its fields name the client it came from (known by now):
            // `nas=""` beside a client's address read as a stranger's.
            Metrics::inc(&app.metrics.overloaded);
            warn_drop(app, DropKind::Overloaded, src, Some(&client.name));
            app.dedup.abandon(key);
            return;
        }
        (Err(_), ReplyTo::Tls(replies)) => {
            match replies.conn.wait_for_slot(permits, wait_until()).await {
                Some(permit) => permit,
                None => {
                    // Counted as overloaded there when the wait timed out only.
                    app.dedup.abandon(key);
                    return;
                }
            }
        }
    };
    let raw = raw.to_vec();
    let ctx = RequestContext {
        client,
        src,
        local,
        received,
        over_tls: matches!(reply_to, ReplyTo::Tls(_)),
        primary: app.primary(),
        store_failure_counted: Default::default(),
        deadline_counted: Default::default(),
        withheld: Default::default(),
        binds_out: Default::default(),
        upstream: Default::default(),
        notes: Default::default(),
        audit_line: Default::default(),
    };
    let app = app.clone();
    let reply_to = reply_to.clone();
    let span = tracing::info_span!(
        "request",
        nas = ctx.client.name.as_str(),
        %src,
        id = key.id,
        user = tracing::field::Empty
    );
    tracker.spawn(
        async move {
            let _permit = permit;
            let _own = own;
            let _in_flight = app.metrics.start_request();
            serve_one(&app, &reply_to, ctx, key, &raw, verified).await;
        }
        .instrument(span),
    );
}

async fn serve_one(
    app: &AppState,
    reply_to: &ReplyTo,
    ctx: RequestContext,
    key: RequestKey,
    raw: &[u8],
    verified: Option<radius::Request>,
) {
    // Until it answers, the request holds an in-flight entry that swallows its
    // retransmits; if it never gets to answer (a panic, a cancelled task), the entry goes.
    let mut pending = PendingEntry {
        dedup: &app.dedup,
        key,
        settled: false,
    };
    let secret = ctx.client.secret.expose();
    // Verified already by a RadSec connection's reader (see [`verify`]); a UDP request here.
    let req = match verified {
        Some(req) => req,
        None => match verify(app, reply_to, &ctx.client, ctx.src, raw) {
            Some(req) => req,
            None => return,
        },
    };
    let Some(reply) = pipeline::handle(app, &ctx, &req).await else {
        // A backend failed and this client wants no reply: its NAS asks its next server.
        // The in-flight entry goes (unsettled), so a retransmit is tried afresh, unless a
        // decision was made and withheld (its writes may be on disk): then its
        // retransmits get the same silence for the duplicate window, and are not decided
        // (and counted) again.
        if ctx.withheld.load(std::sync::atomic::Ordering::Relaxed) {
            app.dedup.finish(key, None);
            pending.settled = true;
        }
        return;
    };
    let reply = reply.with_echo(ctx.client.challenge.echo);
    let bytes = radius::encode_reply(&req, &reply, secret);
    if bytes.is_empty() {
        // Not expected (encode_reply keeps within RADIUS's limits); no reply beats an empty
        // datagram, and nothing is cached, so the NAS's retransmit is served afresh.
        error!("no reply sent: it could not be encoded");
        return;
    }
    let bytes: Arc<[u8]> = Arc::from(bytes);
    pending.settled = true;
    // A Status-Server answer changes nothing and costs less to compute again than to keep:
    // not caching it keeps a health-check flood (or a monitoring system polling hard) from
    // filling the duplicate cache and the memory behind it.
    if req.kind == RequestKind::StatusServer {
        // Kept only for copies that wait for it: a RadSec resend on another connection, a
        // UDP copy sent to another of radmfa's addresses.
        app.dedup.forget_unless_attached(key, bytes.clone());
    } else {
        app.dedup.finish(key, Some(bytes.clone()));
    }
    // One reply, however many retransmits attached while it was worked out, as FreeRADIUS
    // answers: a copy per retransmit reached pam_radius_auth (`retry=`) after it had read
    // the first and sent its next round, which it took for a wrong answer and gave up on,
    // while radmfa used the code and audited an Accept. A retransmit after the reply gets
    // the cached one. (Over TLS a resend on another connection gets its copy there, from
    // `resend_when_answered`.)
    reply_to.send(app, &bytes, ctx.src, &ctx.client.name).await;
    if req.kind != RequestKind::StatusServer {
        app.metrics.latency.observe(ctx.received.elapsed());
    }
}

/// Decodes and verifies the request `raw` from `client`. One that fails is dealt with here:
/// counted, logged, refused if RadSec carried accounting or CoA, and its RadSec connection
/// closed when it is broken or forged (RFC 6613 §2.6.4); then `None`.
///
/// A RadSec connection's reader calls this before it reads the next packet: had the
/// request's own task done it, the packets the peer sent behind a forged one (in the same
/// write, say) would already be read and worked out, a login's State and code used up and
/// audited for a reply nobody gets, by the time the connection closed.
pub(crate) fn verify(
    app: &AppState,
    reply_to: &ReplyTo,
    client: &ClientConfig,
    src: SocketAddr,
    raw: &[u8],
) -> Option<radius::Request> {
    let secret = client.secret.expose();
    let over_tls = matches!(reply_to, ReplyTo::Tls(_));
    match radius::decode_request_over(raw, secret, client.require_message_authenticator, over_tls) {
        Ok(r) => Some(r),
        Err(e) => {
            refuse(app, reply_to, client, src, raw, &e);
            None
        }
    }
}

/// [`verify`] for a packet that failed with `e`.
fn refuse(
    app: &AppState,
    reply_to: &ReplyTo,
    client: &ClientConfig,
    src: SocketAddr,
    raw: &[u8],
    e: &DecodeError,
) {
    let secret = client.secret.expose();
    if let (ReplyTo::Tls(replies), DecodeError::NotARequest(_)) = (reply_to, e) {
        // RadSec carries accounting and CoA on the same connection, and its client
        // waits for an answer (RFC 6614 §2.5); nothing of this is kept in the duplicate
        // cache.
        match radius::unsupported::refusal(raw, secret) {
            Some(radius::unsupported::Refusal::Reply(bytes)) => {
                Metrics::inc(&app.metrics.radsec_unsupported_refused);
                debug!(
                    code = raw[0],
                    "refused with Error-Cause 406: not served here"
                );
                replies.send(&Arc::from(bytes));
                return;
            }
            // Verified, so no forgery: the connection stays; only the refusal,
            // with its copies of the Proxy-States, would not fit in a packet.
            Some(radius::unsupported::Refusal::TooBig) => {
                Metrics::inc(&app.metrics.radsec_unsupported_refused);
                debug!(
                    code = raw[0],
                    "not served here; its refusal would exceed 4096 octets, none sent"
                );
                return;
            }
            None => {}
        }
        // Accounting or CoA whose authenticator does not verify: forged or broken,
        // and the connection goes as for a forged Access-Request (RFC 6613 §2.6.4).
        if matches!(raw[0], 4 | 40 | 43) {
            count_drop(&app.metrics, e);
            warn_drop(app, drop_kind(e, raw[0], true), src, Some(&client.name));
            replies
                .conn
                .discarded("an accounting or CoA packet that does not verify");
            return;
        }
    }
    count_drop(&app.metrics, e);
    debug!(reason = e.label(), "dropped: failed verification");
    // An empty datagram has no code (a UDP one is verified before anything else looks at
    // it; indexed, it ended the listener's task).
    let code = raw.first().copied().unwrap_or(0);
    let kind = drop_kind(e, code, matches!(reply_to, ReplyTo::Tls(_)));
    // Which code it was, for a packet that is no request: an Accounting-Request is a NAS
    // sending its accounting here, which the kind's text alone does not say.
    let why = matches!(kind, DropKind::Malformed | DropKind::NotARequest).then_some(e);
    warn_drop_because(app, kind, src, Some(&client.name), why);
    reply_to.discarded(e);
}

/// [`DropKind::of_packet`], told apart for RadSec where that sends the admin elsewhere:
/// over TLS the shared secret is "radsec" whatever the entry says, and a log line naming the
/// entry's secret sent the admin to a setting TLS does not use.
fn drop_kind(e: &DecodeError, code: u8, over_tls: bool) -> DropKind {
    match DropKind::of_packet(e, code) {
        DropKind::BadMessageAuthenticator if over_tls => DropKind::TlsBadMessageAuthenticator,
        kind => kind,
    }
}

/// A RadSec resend that came while its first copy was in flight: what it takes to send it
/// its copy of the reply, or to work it out itself.
struct Resend {
    /// When the resend arrived: its deadline counts from then, not from its re-dispatch.
    received: Instant,
    app: Arc<AppState>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    client: Arc<ClientConfig>,
    src: SocketAddr,
    local: Option<SocketAddr>,
    replies: radsec::TlsReplies,
    raw: Vec<u8>,
}

/// Sends a RadSec resend its copy of the reply once the first copy is answered (at most
/// `limit` from now). A poll, not a wake-up: a resend during a login in flight is rare, and
/// it keeps the duplicate cache free of connections. If the first copy ended unanswered
/// (its connection closed as overloaded before it got a request slot; a no_reply client's
/// failure, after which a UDP retransmit is worked out again too; a packet that fails
/// verification is refused by its reader and never gets this far), the resend is worked
/// out itself, on its own connection, its deadline counted from its own arrival: before, it was left unanswered,
/// and its NAS waited a whole timeout more, at the moment the server was busiest.
async fn resend_when_answered(resend: Resend, key: RequestKey, limit: Duration) {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        match resend.app.dedup.peek(key) {
            dedup::Peek::InFlight => continue,
            dedup::Peek::Done(Some(bytes)) => {
                resend.replies.send(&bytes);
                return;
            }
            dedup::Peek::Done(None) => return,
            dedup::Peek::Gone => return redispatch(resend).await,
        }
    }
}

/// Sends a UDP copy that came to another of radmfa's addresses or ports while its first copy
/// was in flight its reply, from the address it came to, once the first copy is answered
/// (at most `limit` from now). If the first ended unanswered, so does this copy: the NAS
/// sends again, and that copy is worked out afresh. A poll, as for RadSec resends: a NAS
/// failing over with the same bytes during a login is rare.
async fn udp_copy_when_answered(
    app: Arc<AppState>,
    key: RequestKey,
    reply_to: ReplyTo,
    nas: String,
    limit: Duration,
) {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        match app.dedup.peek(key) {
            dedup::Peek::InFlight => continue,
            dedup::Peek::Done(Some(bytes)) => {
                // Over UDP the key's source is the NAS's address and port.
                reply_to.send(&app, &bytes, key.src, &nas).await;
                return;
            }
            dedup::Peek::Done(None) | dedup::Peek::Gone => return,
        }
    }
}

/// [`dispatch`] for a resend whose first copy was given up. Its type is spelt out (a boxed
/// `Send` future): `dispatch` spawns [`resend_when_answered`], which awaits this, and the
/// compiler cannot prove an opaque future `Send` through such a loop.
fn redispatch(resend: Resend) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let reply_to = ReplyTo::Tls(resend.replies.clone());
        let at = Arrival {
            client: resend.client.clone(),
            src: resend.src,
            local: resend.local,
            reply_to: &reply_to,
            verified: None,
        };
        dispatch_from(
            resend.received,
            &resend.app,
            &resend.permits,
            &resend.tracker,
            at,
            &resend.raw,
        )
        .await;
    })
}

/// A request's in-flight duplicate entry; dropped unsettled, it is abandoned.
struct PendingEntry<'a> {
    dedup: &'a DuplicateCache,
    key: RequestKey,
    settled: bool,
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.dedup.abandon(self.key);
        }
    }
}

fn count_drop(m: &Metrics, e: &DecodeError) {
    let c = match e {
        DecodeError::NotARequest(_) => &m.not_a_request,
        DecodeError::MissingMessageAuthenticator => &m.missing_message_authenticator,
        DecodeError::BadMessageAuthenticator => &m.bad_message_authenticator,
        DecodeError::ProxyStateWithoutMessageAuthenticator => {
            &m.proxy_state_without_message_authenticator
        }
        DecodeError::EapWithoutMessageAuthenticator => &m.eap_without_message_authenticator,
        _ => &m.malformed,
    };
    Metrics::inc(c);
}

/// A warning for a dropped request, unless [`drop_log`] holds it back (see there).
fn warn_drop(app: &AppState, kind: DropKind, src: SocketAddr, nas: Option<&str>) {
    warn_drop_because(app, kind, src, nas, None)
}

/// [`warn_drop`], with what exactly was wrong in brackets: "not a well-formed RADIUS
/// packet" alone does not say which attribute to look for in a capture.
fn warn_drop_because(
    app: &AppState,
    kind: DropKind,
    src: SocketAddr,
    nas: Option<&str>,
    why: Option<&DecodeError>,
) {
    if let Some(w) = app.drops.record(kind, src.ip(), nas, Instant::now()) {
        w.log_brought_by(src.ip(), nas, why.map(|why| why as &dyn std::fmt::Display));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An 802.1X authenticator sent here by mistake is counted as such, not as malformed.
    #[test]
    fn eap_without_message_authenticator_has_its_own_counter() {
        let m = Metrics::default();
        count_drop(&m, &DecodeError::EapWithoutMessageAuthenticator);
        assert_eq!(m.get("eap_without_message_authenticator"), 1);
        assert_eq!(m.get("malformed"), 0);
    }

    /// A request task that dies before answering (a panic here) takes its in-flight entry
    /// with it, so the NAS's retransmit starts the request afresh instead of being swallowed.
    #[test]
    fn a_request_that_never_answers_leaves_no_in_flight_entry() {
        let cache = DuplicateCache::new(Duration::from_secs(30));
        let key = RequestKey::of("127.0.0.1:5000".parse().unwrap(), &[1u8; 20]).unwrap();
        assert_eq!(cache.begin(key, b"x"), Seen::New);
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _pending = PendingEntry {
                dedup: &cache,
                key,
                settled: false,
            };
            panic!("the request failed");
        }));
        assert!(died.is_err());
        assert!(cache.is_empty());
        // Settled: the entry stays for `finish` to cache the reply.
        assert_eq!(cache.begin(key, b"x"), Seen::New);
        drop(PendingEntry {
            dedup: &cache,
            key,
            settled: true,
        });
        assert_eq!(cache.begin(key, b"x"), Seen::Attached(1));
    }
}
