//! radmfa on several addresses at once, as a NAS sees it: the real binary and slapd, raw UDP
//! as a NAS failing over between two of radmfa's ports with the same bytes.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::ports::free_port;
use common::radmfa::{http_get, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};
use radmfa::radius::client::{parse_reply, AccessRequestBuilder};

/// A NAS that lists two of radmfa's ports (1812 and 1645, a virtual address and the node's
/// own) sends its retransmit to the second while the first copy is still being worked out.
/// Each copy is answered from the port it went to: a NAS drops a reply from another source
/// than it asked, and both replies came from the first copy's port.
#[test]
fn a_copy_sent_to_another_port_in_flight_is_answered_from_that_port() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let (p1, p2) = (free_port(), free_port());
    let mut o = Options::new(&slapd.url);
    // Two entries of the `listen` list.
    o.listen = Box::leak(format!("127.0.0.1:{p1}\", \"127.0.0.1:{p2}").into_boxed_str());
    // Frozen below for longer than the default: the first copy must still be in flight.
    o.ldap_timeout_ms = 3000;
    o.extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let srv = Server::start(&o);
    srv.enroll("alice", &[]);
    let nas = UdpSocket::bind("127.0.0.1:0").unwrap();
    nas.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let (pkt, _) = AccessRequestBuilder::new(42, "alice")
        .password(b"alice-pw")
        .build(SECRET.as_bytes());
    let to = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    // Read off the exposition by hand: Prometheus's parser (a Python start per look) is
    // too slow for the login's deadline.
    let joined = || {
        let body = http_get(srv.metrics_addr(), "/metrics").2;
        let line = body
            .lines()
            .find_map(|l| l.strip_prefix("radmfa_duplicates_total{outcome=\"in_flight\"} "));
        line.and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // A scrape proves the directory first: one made while it is frozen would wait for
    // the health probe (2 s) and eat the login's deadline.
    assert_eq!(joined(), 0.0);
    slapd.signal("-STOP");
    nas.send_to(&pkt, to(p1)).unwrap();
    slapd.wait_for_unread_request();
    nas.send_to(&pkt, to(p2)).unwrap();
    // The second copy joined the first while it was in flight (not a replay of its answer,
    // which would come from p2 without the fix too).
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while joined() < 1.0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(joined(), 1.0, "{}", srv.log());
    slapd.signal("-CONT");
    let mut buf = [0u8; 4096];
    let mut from = Vec::new();
    let mut replies = Vec::new();
    for _ in 0..2 {
        let (n, addr) = nas
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{e}; got {from:?}\n{}", srv.log()));
        from.push(addr.port());
        replies.push(buf[..n].to_vec());
    }
    from.sort_unstable();
    let mut want = vec![p1, p2];
    want.sort_unstable();
    assert_eq!(from, want, "one reply from each port\n{}", srv.log());
    assert_eq!(replies[0], replies[1], "the same reply");
    assert_eq!(
        parse_reply(&replies[0]).unwrap().code,
        11,
        "Access-Challenge\n{}",
        srv.log()
    );
    // One login worked out, not two.
    let audit = srv.audit_json("alice");
    let logins = audit.iter().filter(|r| r["result"] == "challenge").count();
    assert_eq!(logins, 1, "{audit:#?}");
}
