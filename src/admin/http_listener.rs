//! The accept loop of the HTTP listeners (provider callbacks, metrics). The callbacks one
//! must be reachable from the provider, so from the internet: whoever finds it can open
//! connections. `axum::serve` sets no timer, so hyper's header-read timeout is off, idle
//! keep-alive connections never close, and every connection is taken until the process runs
//! out of file descriptors — and then LDAP, the store and RadSec cannot open theirs either.
//! Here: at most [`MAX_CONNECTIONS`] at once and [`MAX_PER_ADDRESS`] from one address (more
//! are closed at once; an IPv6 /64 counts as one address, 127.0.0.1 and ::1 — a reverse
//! proxy in front — as none), [`HEADER_READ_TIMEOUT`] to send a request's head,
//! [`REQUEST_TIMEOUT`] for its body and answer, and [`CONNECTION_LIFETIME`] for a connection
//! in all; [`HEADER_READ_TIMEOUT`] also closes a kept-alive connection idle that long
//! between requests. With every slot taken, a newcomer gets the slot of a connection
//! waiting for a request (see `http_slots`). A connection closed for a cap is counted
//! (`radmfa_http_connections_refused_total`) and warned of: a load balancer in front that
//! is not on loopback has one address's share, and the callbacks it loses are a caller's
//! keypress.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::http_slots::{Busy, Slots};
use crate::app::AppState;
use crate::callbacks::MAX_BODY;
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
    let slots = Slots::new(MAX_CONNECTIONS, MAX_PER_ADDRESS);
    serve_with(
        listener,
        router,
        stop,
        which.key(),
        Limits {
            request_timeout: REQUEST_TIMEOUT,
            lifetime: CONNECTION_LIFETIME,
            slots,
        },
        refused,
    )
    .await
}

/// What [`serve_with`] allows a connection (tests make them short).
struct Limits {
    request_timeout: Duration,
    lifetime: Duration,
    slots: Arc<Slots>,
}

/// [`serve`], with `refused` told of each connection closed on arrival.
async fn serve_with(
    listener: TcpListener,
    router: axum::Router,
    stop: CancellationToken,
    key: &'static str,
    limits: Limits,
    refused: impl Fn(HttpRefusal),
) {
    let Limits {
        request_timeout,
        lifetime,
        slots,
    } = limits;
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
        let (taken, cut) = slots.take(peer.ip()).await;
        if cut {
            // The waiting connection closed for this one, counted as RadSec counts a
            // handshake cut short.
            refused(HttpRefusal::ConnectionLimit);
            warn_refused(key, peer, HttpRefusal::ConnectionLimit);
        }
        let slot = match taken {
            Ok(slot) => Arc::new(slot),
            Err(why) => {
                refused(why);
                warn_refused(key, peer, why);
                continue; // `stream` is dropped: closed
            }
        };
        let inner = TowerToHyperService::new(router.clone());
        let in_request = slot.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (slot, inner) = (in_request.clone(), inner.clone());
            let answer = async move {
                // The body is read while the connection still waits in line: a head and
                // then a body that trickles in has asked for nothing yet, and would
                // otherwise hold a slot no newcomer can take for the whole timeout.
                let (parts, body) = req.into_parts();
                let body = match Limited::new(body, MAX_BODY).collect().await {
                    Ok(body) => body.to_bytes(),
                    Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                        return Ok(StatusCode::PAYLOAD_TOO_LARGE.into_response());
                    }
                    Err(_) => return Ok(StatusCode::BAD_REQUEST.into_response()),
                };
                // Out of the line while the request is answered; unless it was cut a
                // moment ago, for a newcomer that is waiting on its slot.
                let Some(_busy) = Busy::of(&slot) else {
                    return Ok(StatusCode::SERVICE_UNAVAILABLE.into_response());
                };
                let req = hyper::Request::from_parts(parts, axum::body::Body::from(body));
                hyper::service::Service::call(&inner, req).await
            };
            async move {
                match tokio::time::timeout(request_timeout, answer).await {
                    Ok(answer) => answer,
                    Err(_) => Ok::<_, Infallible>(StatusCode::REQUEST_TIMEOUT.into_response()),
                }
            }
        });
        let stop = stop.clone();
        tokio::spawn(async move {
            slot.waiting();
            let close = slot.close.clone();
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
                // Cut for a newcomer while it waited for a request: closed at once.
                _ = close.cancelled() => return,
                _ = tokio::time::sleep(lifetime) => None,
                _ = stop.cancelled() => None,
            };
            if done.is_none() {
                // Lets a request in progress finish, then closes; a connection still
                // waiting (for a body, say) may be cut meanwhile, and goes at once: the
                // newcomer it was cut for is waiting on its slot.
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = tokio::time::timeout(FINISH_GRACE, conn) => {}
                    _ = close.cancelled() => return,
                }
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
            "{key}: all {MAX_CONNECTIONS} connection slots were taken when {ip} connected: \
             one waiting for a request was closed to make room (the oldest of the address \
             with the most waiting), or, with every slot in a request or {ip} at its own \
             share, the newcomer was. radmfa_http_connections_refused_total counts every \
             such close; the next ones are logged at debug level for 5 minutes"
        ),
    }
}

fn log_end(key: &str, peer: SocketAddr, done: Option<hyper::Result<()>>) {
    if let Some(Err(e)) = done {
        tracing::debug!(%peer, error = %e, "{key}: connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /m` answers "ok"; `POST /cb` answers its body's length.
    fn test_router() -> axum::Router {
        axum::Router::new()
            .route("/m", axum::routing::get(|| async { "ok" }))
            .route(
                "/cb",
                axum::routing::post(
                    |body: axum::body::Bytes| async move { body.len().to_string() },
                ),
            )
    }

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
            Limits {
                request_timeout: timeout,
                lifetime: CONNECTION_LIFETIME,
                slots: Slots::new(MAX_CONNECTIONS, MAX_PER_ADDRESS),
            },
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
        let router = test_router();
        let (addr, stop, server) = serving(router, Duration::from_secs(5)).await;
        let filler = "a".repeat(64 * 1024);
        let head = format!("GET /m HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\n\r\n");
        let reply = reply_to(addr, head.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
        // A head of ordinary size is still served.
        let reply = reply_to(addr, GET_M).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        stop.cancel();
        server.await.unwrap();
    }

    /// A body sent slower than the request timeout gets 408, and its connection goes.
    #[tokio::test]
    async fn a_body_that_never_finishes_is_cut_off() {
        let router = test_router();
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

    /// `router` served with `max` connections in all and `per_address` from one, and
    /// what `refused` was told.
    #[allow(clippy::type_complexity)]
    async fn serving_counted(
        router: axum::Router,
        slots: (usize, usize),
    ) -> (
        SocketAddr,
        CancellationToken,
        tokio::task::JoinHandle<()>,
        Arc<std::sync::Mutex<Vec<HttpRefusal>>>,
    ) {
        serving_limited(router, slots, CONNECTION_LIFETIME).await
    }

    /// [`serving_counted`] with connections closed after `lifetime`.
    #[allow(clippy::type_complexity)]
    async fn serving_limited(
        router: axum::Router,
        (max, per_address): (usize, usize),
        lifetime: Duration,
    ) -> (
        SocketAddr,
        CancellationToken,
        tokio::task::JoinHandle<()>,
        Arc<std::sync::Mutex<Vec<HttpRefusal>>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let counted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let c = counted.clone();
        let server = tokio::spawn(serve_with(
            listener,
            router,
            stop.clone(),
            "test",
            Limits {
                request_timeout: REQUEST_TIMEOUT,
                lifetime,
                slots: Slots::new(max, per_address),
            },
            move |why| c.lock().unwrap().push(why),
        ));
        (addr, stop, server, counted)
    }

    /// A connection to `addr` from the loopback address `ip`.
    async fn connect_from(ip: &str, addr: SocketAddr) -> tokio::net::TcpStream {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        s.connect(addr).await.unwrap()
    }

    /// A request for `/m` that closes its connection after the answer.
    const GET_M: &[u8] = b"GET /m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    /// A connection from `ip` that sent a request's head and 2 of its body's 100 octets.
    async fn trickling_from(ip: &str, addr: SocketAddr) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut c = connect_from(ip, addr).await;
        c.write_all(b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
            .await
            .unwrap();
        c
    }

    /// Whether the server closed `c` within 5 s (what it sent before is skipped).
    async fn closed(c: &mut tokio::net::TcpStream) -> bool {
        let mut buf = [0u8; 256];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let read =
                tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(c, &mut buf));
            match read.await {
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Connections that send nothing, from two addresses, hold every slot: a callback
    /// still gets in, in the slot of the oldest of the address holding the most, and a
    /// connection in a request is not cut for it. Before, the callback was refused for as
    /// long as the idle ones kept reconnecting.
    #[tokio::test]
    async fn a_request_gets_the_slot_of_a_connection_that_sends_nothing() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (release, released) = tokio::sync::watch::channel(false);
        let router = axum::Router::new()
            .route("/m", axum::routing::get(|| async { "ok" }))
            .route(
                "/slow",
                axum::routing::get(move || {
                    let mut released = released.clone();
                    async move {
                        let _ = released.wait_for(|r| *r).await;
                        "slow"
                    }
                }),
            );
        let (addr, stop, server, counted) = serving_counted(router, (4, 2)).await;
        let mut slow = connect_from("127.0.0.4", addr).await;
        slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut flood = Vec::new();
        for ip in ["127.0.0.2", "127.0.0.2", "127.0.0.3"] {
            flood.push(connect_from(ip, addr).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let reply = reply_to(addr, GET_M).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(
            closed(&mut flood[0]).await,
            "127.0.0.2's oldest was not cut"
        );
        assert_eq!(*counted.lock().unwrap(), [HttpRefusal::ConnectionLimit]);
        // The request in progress kept its connection, and is answered.
        release.send(true).unwrap();
        let mut answer = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow"),
            "{answer}"
        );
        stop.cancel();
        server.await.unwrap();
    }

    /// Heads whose bodies trickle in hold every slot: a newcomer still gets in, in the slot
    /// of one of them (their requests have asked for nothing until the body is whole).
    #[tokio::test]
    async fn a_request_gets_the_slot_of_one_whose_body_trickles_in() {
        let router = test_router();
        let (addr, stop, server, counted) = serving_counted(router, (3, 2)).await;
        let mut trickling = Vec::new();
        for ip in ["127.0.0.2", "127.0.0.2", "127.0.0.3"] {
            trickling.push(trickling_from(ip, addr).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reply = reply_to(
            addr,
            b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        )
        .await;
        assert!(
            reply.starts_with("HTTP/1.1 200") && reply.ends_with('3'),
            "{reply}"
        );
        assert!(
            closed(&mut trickling[0]).await,
            "127.0.0.2's oldest was not cut"
        );
        assert_eq!(*counted.lock().unwrap(), [HttpRefusal::ConnectionLimit]);
        stop.cancel();
        server.await.unwrap();
    }

    /// A connection past its lifetime, its request's body still coming in, is cut for a
    /// newcomer at once: it waited out its grace before, deaf to the cut, and the newcomer
    /// waiting on its slot was refused.
    #[tokio::test]
    async fn a_connection_in_its_grace_is_cut_for_a_newcomer() {
        let router = test_router();
        let (addr, stop, server, counted) =
            serving_limited(router, (1, 1), Duration::from_millis(300)).await;
        let mut trickling = trickling_from("127.0.0.2", addr).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let reply = tokio::time::timeout(Duration::from_secs(1), reply_to(addr, GET_M))
            .await
            .expect("no answer within 1 s");
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(closed(&mut trickling).await);
        assert_eq!(*counted.lock().unwrap(), [HttpRefusal::ConnectionLimit]);
        stop.cancel();
        server.await.unwrap();
    }

    /// A body over [`MAX_BODY`] is refused (413) before the handler, chunked or not.
    #[tokio::test]
    async fn an_oversized_body_is_refused() {
        let router = test_router();
        let (addr, stop, server) = serving(router, Duration::from_secs(5)).await;
        let big = "a".repeat(MAX_BODY + 1);
        let head = format!(
            "POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
            big.len()
        );
        let reply = reply_to(addr, head.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        let chunked = format!(
            "POST /cb HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
            big.len()
        );
        let reply = reply_to(addr, chunked.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        stop.cancel();
        server.await.unwrap();
    }

    /// A connection over a cap is reported to `refused` (the metric) as it is closed.
    #[tokio::test]
    async fn a_connection_over_the_address_share_is_counted() {
        let router = test_router();
        let (addr, stop, server, counted) =
            serving_counted(router, (MAX_CONNECTIONS, MAX_PER_ADDRESS)).await;
        // From 127.0.0.2, which has a share (only 127.0.0.1 and ::1 have none).
        let from = || connect_from("127.0.0.2", addr);
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
