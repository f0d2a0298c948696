//! `[metrics] listen`: the Prometheus endpoint of a running server, read by Prometheus's own
//! Python client parser after real logins, a reject, a request with the wrong shared secret
//! and one from an unknown address.

mod common;

use std::process::Command;

use common::peers::{now, prometheus_parse as parse, totp};
use common::radmfa::{bin, http_get, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

fn client(srv: &Server, secret: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("client")
        .args(args)
        .args(["--server", &srv.addr.to_string(), "--retries", "0"])
        .args(["--timeout", "3"])
        .env("RADMFA_SECRET", secret)
        .output()
        .unwrap()
}

#[test]
fn prometheus_reads_the_counters_of_real_traffic() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let mut o = Options::new(&slapd.url);
    o.ldap_timeout_ms = 1000;
    o.extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let srv = Server::start(&o);
    let addr = srv.metrics_addr();
    // The start-up line gives the URL Prometheus scrapes, not one that answers 404.
    assert!(
        srv.log_shows(&format!("metrics.listen: serving http://{addr}/metrics")),
        "{}",
        srv.log()
    );

    let (status, headers, body) = http_get(addr, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    let before = parse(&body);
    assert_eq!(
        before["radmfa_replies_total{client=local,code=accept}"],
        0.0
    );
    // Which build, beside the version every build of the release shares.
    let build = radmfa::VERSION
        .split_once(" (")
        .and_then(|(_, b)| b.strip_suffix(')'))
        .unwrap();
    assert_eq!(
        before[&format!(
            "radmfa_build_info{{build={build},version={}}}",
            env!("CARGO_PKG_VERSION")
        )],
        1.0
    );
    // Exported from the start (an alert on it needs the series), at 0 on loopback.
    assert_eq!(before["radmfa_replies_not_sent_total{}"], 0.0);

    // Traffic: one challenge login (challenge, then accept), one wrong password, one
    // Status-Server signed with the wrong secret, one datagram from an unknown address.
    let seed = srv.enroll("alice", &[]);
    let code = totp(&seed, now(), &[]);
    let out = client(
        &srv,
        SECRET,
        &["login", "alice", "--password", "alice-pw", "--code", &code],
    );
    assert!(out.status.success(), "{out:?}");
    let out = client(&srv, SECRET, &["login", "alice", "--password", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = client(&srv, "not-the-shared-secret", &["status"]);
    assert!(!out.status.success(), "{out:?}");
    let stranger = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
    stranger.send_to(&[1, 9, 0, 20], srv.addr).unwrap();
    // The server counts the last datagram asynchronously; wait for it to show.
    let mut m = std::collections::BTreeMap::new();
    for _ in 0..50 {
        m = parse(&http_get(addr, "/metrics").2);
        if m["radmfa_requests_dropped_total{reason=unknown_client}"] >= 1.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let expect = [
        ("radmfa_datagrams_received_total{}", 5.0),
        ("radmfa_replies_total{client=local,code=challenge}", 1.0),
        ("radmfa_replies_total{client=local,code=accept}", 1.0),
        ("radmfa_replies_total{client=local,code=reject}", 1.0),
        (
            "radmfa_requests_dropped_total{reason=bad_message_authenticator}",
            1.0,
        ),
        ("radmfa_requests_dropped_total{reason=unknown_client}", 1.0),
        ("radmfa_requests_dropped_total{reason=overloaded}", 0.0),
        ("radmfa_status_server_total{}", 0.0),
        ("radmfa_requests_in_flight{}", 0.0),
        // The three answered Access-Requests, each well within the 4 s deadline.
        ("radmfa_request_duration_seconds_count{}", 3.0),
        ("radmfa_request_duration_seconds_bucket{le=5}", 3.0),
        ("radmfa_request_duration_seconds_bucket{le=+Inf}", 3.0),
    ];
    for (name, value) in expect {
        assert_eq!(m.get(name), Some(&value), "{name} in {m:#?}");
    }
    let sum = m["radmfa_request_duration_seconds_sum{}"];
    assert!(sum > 0.0 && sum < 12.0, "latency sum {sum}");

    assert_eq!(m["radmfa_backend_failures_total{backend=directory}"], 0.0);
    let answering = format!("radmfa_ldap_answering{{url={}}}", slapd.url);
    assert_eq!(m.get(&answering), Some(&1.0), "{m:#?}");

    // The directory goes away: the login is refused and counted as a directory failure,
    // and the server's gauge says which one stopped answering.
    drop(slapd);
    let out = client(&srv, SECRET, &["login", "alice", "--password", "alice-pw"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let m = parse(&http_get(addr, "/metrics").2);
    assert_eq!(m["radmfa_backend_failures_total{backend=directory}"], 1.0);
    assert_eq!(m[&answering], 0.0);
    assert_eq!(m["radmfa_backend_failures_total{backend=store}"], 0.0);
    assert_eq!(m["radmfa_replies_total{client=local,code=reject}"], 2.0);

    let (status, _, _) = http_get(addr, "/other");
    assert!(status.contains(" 404 "), "{status}");
}

/// The HTTP listeners (metrics here; the provider callbacks share the code) must not be
/// taken by connections that send nothing: sixteen at most from one address, the head of a
/// request within 10 s, and a scrape from elsewhere still answered meanwhile. The one
/// closed over the address's share is counted and warned of: a load balancer in front
/// meets the same share, and its lost callbacks must show.
#[test]
fn idle_connections_cannot_take_the_http_listener() {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let mut o = Options::new(&slapd.url);
    o.extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let srv = Server::start(&o);
    let addr = srv.metrics_addr();
    let from = |ip: &str| -> TcpStream {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let local: SocketAddr = format!("{ip}:0").parse().unwrap();
        s.bind(&local.into()).unwrap();
        s.connect(&addr.into()).unwrap();
        let s: TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s
    };
    // Closed by the server: EOF or a reset, within `within`.
    let closed_within = |s: &mut TcpStream, within: Duration| {
        let t = Instant::now();
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => continue, // a 408 or the like before closing
            }
        }
        let took = t.elapsed();
        assert!(took < within, "closed after {took:?}");
        took
    };

    let mut held: Vec<TcpStream> = (0..16).map(|_| from("127.0.0.2")).collect();
    held[0]
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut seventeenth = from("127.0.0.2");
    closed_within(&mut seventeenth, Duration::from_secs(2));
    let (status, _, body) = http_get(addr, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    let m = parse(&body);
    let refused = |listener: &str, reason: &str| {
        m[&format!("radmfa_http_connections_refused_total{{listener={listener},reason={reason}}}")]
    };
    assert_eq!(refused("metrics", "address_limit"), 1.0, "{body}");
    assert_eq!(refused("metrics", "connection_limit"), 0.0);
    assert_eq!(refused("callbacks", "address_limit"), 0.0);
    assert!(
        srv.log_shows("metrics.listen: closed a connection from 127.0.0.2: 16 connections"),
        "{}",
        srv.log()
    );
    // The half-sent head and the silent ones are closed after the header-read timeout.
    let took = closed_within(&mut held[0], Duration::from_secs(13));
    assert!(
        took > Duration::from_secs(5),
        "not before the timeout: {took:?}"
    );
    closed_within(&mut held[1], Duration::from_secs(3));
    // Their slots are free again.
    let mut again = from("127.0.0.2");
    again
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    again.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

/// `radmfa_backends_answering`: 0 on a node started while its directory is down, 1 once the
/// directory is back (the scrape itself probes, so no RADIUS traffic is needed), 0 again
/// after a login met the directory down.
#[test]
fn the_backends_gauge_follows_the_directory() {
    let mut slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    slapd.stop();
    let mut o = Options::new(&slapd.url);
    o.ldap_timeout_ms = 1000;
    o.extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let srv = Server::start(&o);
    let addr = srv.metrics_addr();
    let gauge = || parse(&http_get(addr, "/metrics").2)["radmfa_backends_answering{}"];
    // `/health` says the same to an HTTP health check: 503 while failing, 200 once not.
    let health = || http_get(addr, "/health");
    assert_eq!(gauge(), 0.0, "{}", srv.log());
    let (status, _, body) = health();
    assert!(
        status.contains(" 503 ") && body.starts_with("failing"),
        "{status}{body}"
    );
    slapd.restart();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while gauge() != 1.0 {
        assert!(std::time::Instant::now() < until, "{}", srv.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (status, _, body) = health();
    assert!(
        status.contains(" 200 ") && body.starts_with("ok"),
        "{status}{body}"
    );
    slapd.stop();
    let out = client(&srv, SECRET, &["login", "alice", "--password", "alice-pw"]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(gauge(), 0.0, "{}", srv.log());
    assert!(health().0.contains(" 503 "), "{}", srv.log());
}

/// `radmfa_duplicate_cache_entries` and `radmfa_challenges_open`: a password answered with
/// a prompt leaves one of each. The open challenge is counted in the store by the
/// once-a-minute housekeeping, which runs at once at a start: so a restart shows it.
#[test]
fn the_duplicate_cache_and_the_open_challenges_are_gauged() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let mut o = Options::new(&slapd.url);
    o.extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let mut srv = Server::start(&o);
    srv.enroll("alice", &[]);
    let gauges = |srv: &Server| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let p = parse(&http_get(srv.metrics_addr(), "/metrics").2);
            if let Some(open) = p.get("radmfa_challenges_open{}") {
                return (p["radmfa_duplicate_cache_entries{}"], *open);
            }
            assert!(std::time::Instant::now() < until, "{}", srv.log());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    assert_eq!(gauges(&srv), (0.0, 0.0));
    let (raw, _) = radmfa::radius::client::AccessRequestBuilder::new(1, "alice")
        .password(b"alice-pw")
        .build(SECRET.as_bytes());
    let sock = srv.udp();
    sock.send(&raw).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(buf[..n][0], 11, "an Access-Challenge");
    assert_eq!(
        gauges(&srv).0,
        1.0,
        "the answered request, kept for retransmits"
    );
    srv.stop();
    srv.restart();
    assert_eq!(gauges(&srv), (0.0, 1.0), "{}", srv.log());
}

/// `[::]:P` for one HTTP listener beside `0.0.0.0:P` for the other: both start, each
/// family reaching its own (IPv6 listeners are IPv6-only, as the RADIUS sockets are; the
/// metrics listener took IPv4 too, so this file passed `config check` and failed the
/// start with "address in use").
#[test]
fn an_ipv6_wildcard_http_listener_leaves_ipv4_to_the_other() {
    let port = {
        // A port free on both families, released just before the start.
        let v4 = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
            .expect("IPv6 on this host");
        v6.set_only_v6(true).unwrap();
        let any: std::net::SocketAddr = format!("[::]:{port}").parse().unwrap();
        v6.bind(&any.into()).expect("the port free on IPv6 too");
        port
    };
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let mut o = Options::new(&slapd.url);
    o.extra.push_str(&format!(
        "\n[metrics]\nlisten = \"[::]:{port}\"\n\
         [callbacks]\nlisten = \"0.0.0.0:{port}\"\npublic_url = \"https://radmfa.example.org\"\n"
    ));
    let srv = Server::start(&o);
    let v6: std::net::SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let v4: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, _, body) = http_get(v6, "/metrics");
    assert!(status.contains(" 200 "), "{status}\n{}", srv.log());
    assert!(body.contains("radmfa_build_info"), "{body}");
    // IPv4 reaches the callbacks listener, which serves no /metrics.
    let (status, _, body) = http_get(v4, "/metrics");
    assert!(status.contains(" 404 "), "{status}\n{body}");
}
