//! Free ports for the test peers, below the ephemeral range.

use std::fs;
use std::net::TcpListener;

/// A port that was free a moment ago, for TCP and UDP alike, and never handed out before in
/// this test process: tests run in parallel, and two that got the same port would share it
/// silently where a server binds with SO_REUSEADDR (FreeRADIUS's UDP listeners do: one
/// test's upstream server once answered for another's).
///
/// Below the kernel's ephemeral range where it can: a port from that range (what binding
/// port 0 gives) can be taken, between this probe and the server's bind, by any process's
/// outgoing connection (radmfa's to slapd, say), and the server then failed to start with
/// "Address already in use".
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let ephemeral_from = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(0);
    let mut tries = 0;
    loop {
        tries += 1;
        let port = if ephemeral_from > 12_000 && tries < 200 {
            rand::Rng::gen_range(&mut rand::thread_rng(), 10_000..ephemeral_from)
        } else {
            TcpListener::bind("127.0.0.1:0")
                .expect("bind 127.0.0.1:0")
                .local_addr()
                .unwrap()
                .port()
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && GIVEN.lock().unwrap().insert(port)
        {
            return port;
        }
    }
}
