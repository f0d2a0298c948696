//! One request at a time over UDP, its reply verified: shared by the fault and timing tests.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use radmfa::radius::client::{parse_reply, AccessRequestBuilder};
use radmfa::radius::crypto::verify_reply;

use crate::common::radmfa::SECRET;

pub fn socket_from(ip: &str, server: SocketAddr, timeout_ms: u64) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(timeout_ms)))
        .unwrap();
    s
}

/// A verified reply: code, attributes in order, round-trip time.
pub type Answer = (u8, Vec<(u8, Vec<u8>)>, Duration);

/// Sends one request and returns the verified reply, or `None` on timeout.
pub fn ask(sock: &UdpSocket, b: AccessRequestBuilder) -> Option<Answer> {
    let (raw, auth) = b.build(SECRET.as_bytes());
    let t0 = Instant::now();
    sock.send(&raw).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).ok()?;
        if buf[1] != raw[1] {
            continue; // a late reply to an earlier request
        }
        verify_reply(&buf[..n], &auth, SECRET.as_bytes()).expect("reply verifies");
        let r = parse_reply(&buf[..n]).unwrap();
        return Some((r.code, r.attributes, t0.elapsed()));
    }
}
