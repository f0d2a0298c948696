//! The accept loop of the HTTP listeners (provider callbacks, metrics). The callbacks one
//! must be reachable from the provider, so from the internet: whoever finds it can open
//! connections. `axum::serve` sets no timer, so hyper's header-read timeout is off, idle
//! keep-alive connections never close, and every connection is taken until the process runs
//! out of file descriptors — and then LDAP, the store and RadSec cannot open theirs either.
//! Here: at most [`MAX_CONNECTIONS`] at once and [`MAX_PER_ADDRESS`] from one address (more
//! are closed at once; an IPv6 /64 counts as one address, 127.0.0.1 and ::1 — a reverse
//! proxy in front — as none), [`HEADER_READ_TIMEOUT`] to send a request's head,
//! [`REQUEST_TIMEOUT`] for its body and answer, and [`CONNECTION_LIFETIME`] for a connection
//! in all. A connection closed for a cap is counted (`radmfa_http_connections_refused_total`)
//! and warned of: a load balancer in front that is not on loopback has one address's share,
//! and the callbacks it loses are a caller's keypress.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::server::metrics::{HttpListener, HttpRefusal};

pub const MAX_CONNECTIONS: usize = 256;
/// Twilio posts from a pool of addresses; one address needs only a few at once.
pub const MAX_PER_ADDRESS: usize = 16;
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// From a request's head to its answer: reading the body (a callback's form is a few hundred
/// bytes) and the handler (a store write). Without it a body sent a byte at a time held its
/// slot for the whole connection lifetime, and a few dozen such connections took them all.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The read buffer a connection's request head may fill (hyper's floor is 8 KiB + 1).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A callback or a scrape is one short request; a kept-alive connection reconnects after.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Time a request in progress gets to finish when the lifetime ends or the server stops.
const FINISH_GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `stop`; `which` names the listener in logs and in
/// `app`'s metrics.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    stop: CancellationToken,
    which: HttpListener,
    app: Arc<AppState>,
) {
    let refused = move |why| app.metrics.count_http_refusal(which, why);
    serve_with(
        listener,
        router,
        stop,
        which.key(),
        REQUEST_TIMEOUT,
        refused,
    )
    .await
}

/// [`serve`], with `refused` told of each connection closed on arrival.
async fn serve_with(
    listener: TcpListener,
    router: axum::Router,
    stop: CancellationToken,
    key: &'static str,
    request_timeout: Duration,
    refused: impl Fn(HttpRefusal),
) {
    let router = router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(request_timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => axum::http::StatusCode::REQUEST_TIMEOUT.into_response(),
            }
        },
    ));
    let slots = Slots::new(MAX_CONNECTIONS, MAX_PER_ADDRESS);
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: wait rather than spin.
                    tracing::warn!(error = %e, "{key}: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = match slots.take(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                refused(why);
                warn_refused(key, peer, why);
                continue; // `stream` is dropped: closed
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                // hyper lets a request head grow to ~400 KiB; a Twilio callback's or a
                // scrape's is well under 8 KiB, and 256 connections at the default would
                // hold ~100 MiB.
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let done = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => None,
                _ = stop.cancelled() => None,
            };
            if done.is_none() {
                // Lets a request in progress finish, then closes.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(FINISH_GRACE, conn).await;
            }
            log_end(key, peer, done);
        });
    }
}

/// A warning for a connection closed at a cap, at most one per listener and cap every
/// [`crate::log_once::EVERY`] (the rest at debug): a flood from many addresses must not flood
/// the log, and the counter has every one.
fn warn_refused(key: &str, peer: SocketAddr, why: HttpRefusal) {
    let ip = peer.ip().to_canonical();
    match why {
        HttpRefusal::AddressLimit => crate::warn_once!(
            &format!("{key} address_limit"),
            %peer,
            "{key}: closed a connection from {ip}: {MAX_PER_ADDRESS} connections from that \
             address (or its IPv6 /64) are open already. A load balancer or reverse proxy \
             in front that is not on 127.0.0.1 or ::1 counts as one address: connect it \
             through loopback, or keep its connections to each node under {MAX_PER_ADDRESS} \
             (docs/ha.md). radmfa_http_connections_refused_total counts every such close; \
             the next ones are logged at debug level for 5 minutes"
        ),
        HttpRefusal::ConnectionLimit => crate::warn_once!(
            &format!("{key} connection_limit"),
            %peer,
            "{key}: closed a connection from {ip}: all {MAX_CONNECTIONS} connection slots \
             are taken (an idle one is held for up to {}s). \
             radmfa_http_connections_refused_total counts every such close; the next ones \
             are logged at debug level for 5 minutes",
            CONNECTION_LIFETIME.as_secs()
        ),
    }
}

fn log_end(key: &str, peer: SocketAddr, done: Option<hyper::Result<()>>) {
    if let Some(Err(e)) = done {
        tracing::debug!(%peer, error = %e, "{key}: connection ended");
    }
}

/// Connection slots: a total, and a share per source address.
struct Slots {
    all: Arc<Semaphore>,
    per_address: usize,
    by_address: Shares,
}

/// Connections open per source (see [`source`]).
type Shares = Arc<Mutex<HashMap<IpAddr, usize>>>;

impl Slots {
    fn new(max: usize, per_address: usize) -> Self {
        Slots {
            all: Arc::new(Semaphore::new(max)),
            per_address,
            by_address: Arc::default(),
        }
    }

    /// A slot for a connection from `ip`, or which cap refuses it (the total first).
    fn take(&self, ip: IpAddr) -> Result<Slot, HttpRefusal> {
        let permit =
            (self.all.clone().try_acquire_owned()).map_err(|_| HttpRefusal::ConnectionLimit)?;
        let Some(source) = source(ip) else {
            return Ok(Slot {
                _permit: permit,
                by_address: None,
            });
        };
        let mut by = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        let n = by.entry(source).or_default();
        if *n >= self.per_address {
            return Err(HttpRefusal::AddressLimit);
        }
        *n += 1;
        Ok(Slot {
            _permit: permit,
            by_address: Some((self.by_address.clone(), source)),
        })
    }
}

/// Whose share a connection from `ip` takes: an IPv4 address; an IPv6 /64 (one host is
/// usually given a whole /64, and could otherwise take a share per address in it); none
/// for 127.0.0.1 and ::1, where a TLS reverse proxy on the same host (the documented setup)
/// connects from with every callback (it has only the total).
fn source(ip: IpAddr) -> Option<IpAddr> {
    let ip = ip.to_canonical();
    if ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST) {
        return None;
    }
    Some(crate::server::radsec_slots::address_share(ip))
}

struct Slot {
    _permit: OwnedSemaphorePermit,
    by_address: Option<(Shares, IpAddr)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some((by_address, source)) = &self.by_address else {
            return;
        };
        let mut by = by_address.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by.get_mut(source) {
            *n -= 1;
            if *n == 0 {
                by.remove(source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `router` served on a fresh loopback port with `timeout` per request.
    async fn serving(
        router: axum::Router,
        timeout: Duration,
    ) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve_with(
            listener,
            router,
            stop.clone(),
            "test",
            timeout,
            |_| {},
        ));
        (addr, stop, server)
    }

    /// `request` sent on a new connection, and everything until the server closes it
    /// (within 5 s, or the test fails).
    async fn reply_to(addr: SocketAddr, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        // The server may close before taking all of an oversized head: its reply counts.
        let _ = c.write_all(request).await;
        let mut reply = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut reply)).await;
        assert!(read.is_ok(), "still open after 5 s");
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// A request head past [`MAX_HEAD_BYTES`] is refused (431) instead of growing the
    /// connection's buffer to hyper's ~400 KiB.
    #[tokio::test]
    async fn an_oversized_request_head_is_refused() {
        let router = axum::Router::new().route("/m", axum::routing::get(|| async { "ok" }));
        let (addr, stop, server) = serving(router, Duration::from_secs(5)).await;
        let filler = "a".repeat(64 * 1024);
        let head = format!("GET /m HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\n\r\n");
        let reply = reply_to(addr, head.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
        // A head of ordinary size is still served.
        let reply = reply_to(
            addr,
            b"GET /m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        stop.cancel();
        server.await.unwrap();
    }

    /// A body sent slower than the request timeout gets 408, and its connection goes.
    #[tokio::test]
    async fn a_body_that_never_finishes_is_cut_off() {
        let router = axum::Router::new().route(
            "/cb",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        let (addr, stop, server) = serving(router, Duration::from_millis(300)).await;
        let reply = reply_to(
            addr,
            b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
        // A whole body in time is served.
        let reply = reply_to(
            addr,
            b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        )
        .await;
        assert!(
            reply.starts_with("HTTP/1.1 200") && reply.ends_with('3'),
            "{reply}"
        );
        stop.cancel();
        server.await.unwrap();
    }

    /// Each refusal says which cap it met: the metric's `reason` and the warning follow it.
    #[test]
    fn slots_cap_the_total_and_each_address() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert_eq!(
            slots.take(a).err(),
            Some(HttpRefusal::AddressLimit),
            "a's share is used up"
        );
        let _b1 = slots.take(b).unwrap();
        assert_eq!(
            slots.take(b).err(),
            Some(HttpRefusal::ConnectionLimit),
            "all taken"
        );
        drop(a1);
        assert!(slots.take(a).is_ok(), "a slot given back is free again");
        assert_eq!(slots.by_address.lock().unwrap().get(&a), Some(&1));
    }

    #[test]
    fn localhost_has_only_the_total_and_ipv6_shares_go_by_64() {
        let slots = Slots::new(5, 1);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let _l1 = slots.take(lo).unwrap();
        let _l2 = slots.take(lo).unwrap();
        let other_loopback: IpAddr = "127.0.0.2".parse().unwrap();
        let _o = slots.take(other_loopback).unwrap();
        assert_eq!(
            slots.take(other_loopback).err(),
            Some(HttpRefusal::AddressLimit),
            "only 127.0.0.1 and ::1"
        );
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _x = slots.take(x).unwrap();
        assert_eq!(
            slots.take(y).err(),
            Some(HttpRefusal::AddressLimit),
            "the same /64"
        );
        let _z = slots.take(z).unwrap();
        assert_eq!(
            slots.take(lo).err(),
            Some(HttpRefusal::ConnectionLimit),
            "the total still holds"
        );
    }

    /// A connection over a cap is reported to `refused` (the metric) as it is closed.
    #[tokio::test]
    async fn a_connection_over_the_address_share_is_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let counted = Arc::new(Mutex::new(Vec::new()));
        let c = counted.clone();
        let router = axum::Router::new().route("/m", axum::routing::get(|| async { "ok" }));
        let server = tokio::spawn(serve_with(
            listener,
            router,
            stop.clone(),
            "test",
            REQUEST_TIMEOUT,
            move |why| c.lock().unwrap().push(why),
        ));
        // From 127.0.0.2, which has a share (only 127.0.0.1 and ::1 have none).
        let from = || async {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            s.connect(addr).await.unwrap()
        };
        let mut held = Vec::new();
        for _ in 0..MAX_PER_ADDRESS {
            held.push(from().await);
        }
        let mut over = from().await;
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut over, &mut buf),
        )
        .await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
        assert_eq!(*counted.lock().unwrap(), [HttpRefusal::AddressLimit]);
        stop.cancel();
        server.await.unwrap();
    }
}
