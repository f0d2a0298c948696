//! Free ports for the test peers, below the ephemeral range.

use std::fs;
use std::net::TcpListener;

/// A port that was free a moment ago, for TCP and UDP alike, and never handed out before in
/// this test process nor to another test process still running: tests run in parallel,
/// and so do test binaries (scripts/run-tests.py), and two that got the same port would
/// share it silently where a server binds with SO_REUSEADDR (FreeRADIUS's UDP listeners
/// do: one test's upstream server once answered for another's), or the second server
/// would fail to start.
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
            && claimed_across_processes(port)
        {
            return port;
        }
    }
}

/// Takes `port` for this process's lifetime against every other test process: an exclusive
/// `flock` on a file named for it, held until this process exits (the kernel releases it
/// then, however the process ends). False if another running process holds it.
fn claimed_across_processes(port: u16) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let dir = std::env::temp_dir().join("radmfa-test-ports");
    let _ = fs::create_dir_all(&dir);
    let Ok(file) = fs::File::create(dir.join(port.to_string())) else {
        // No shared folder to claim in: this process's own record still holds.
        return true;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            // Kept (and so locked) until the process exits.
            std::mem::forget(lock);
            true
        }
        Err(_) => false,
    }
}
