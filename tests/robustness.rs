//! Fault tests against the real binary and a real slapd: hostile datagrams on the wire, a
//! stalled directory, `kill -9` under load, and a full disk. User enumeration by timing is
//! in `tests/timing.rs`, a binary of its own, so that these do not load the machine while
//! it measures.

mod common;

#[path = "robustness/faults.rs"]
mod faults;
#[path = "robustness/frozen_store.rs"]
mod frozen_store;
#[path = "robustness/log_full.rs"]
mod log_full;
#[path = "robustness/udp.rs"]
mod udp;
#[path = "robustness/wire.rs"]
mod wire;
/// The fuzz bodies, for `resign_with` (signed mutations sent to a live server).
#[allow(dead_code)]
mod bodies {
    include!("../fuzz/common/bodies.rs");
}

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::frozen::signal;
use common::peers::now;
use common::radmfa::{pid_of, write_config, Nas, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};
use radmfa::client::users::decode_seed;
use radmfa::mfa::otp::totp_code;
use radmfa::radius::client::{parse_reply, status_server, AccessRequestBuilder};
use radmfa::radius::crypto::verify_reply;
use radmfa::radius::decode_request;
use radmfa::store::OtpAlgorithm;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use udp::{ask, socket_from};

const PW: &str = "alice-Secret-pw";

fn code(secs: i64, seed: &str, offset: i64) -> String {
    let seed = decode_seed(seed).unwrap();
    totp_code(&seed, OtpAlgorithm::Sha1, 6, 30, secs / 30 + offset)
}

/// Round 1 + round 2 with the current code; true on Access-Accept.
fn full_login(sock: &UdpSocket, user: &str, pw: &str, seed: &str, offset: i64) -> bool {
    let Some((11, attrs, _)) = ask(
        sock,
        AccessRequestBuilder::new(1, user).password(pw.as_bytes()),
    ) else {
        return false;
    };
    let state = attrs.iter().find(|a| a.0 == 24).unwrap().1.clone();
    let c = code(now(), seed, offset);
    matches!(
        ask(
            sock,
            AccessRequestBuilder::new(2, user)
                .password(c.as_bytes())
                .state(&state)
        ),
        Some((2, _, _))
    )
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Stops `srv` and reads the counters from its shutdown line (`stopped counters=a=1 b=2`,
/// non-zero counters only: a missing one is 0).
fn shutdown_counters(srv: &mut Server) -> std::collections::HashMap<String, usize> {
    srv.stop();
    assert!(srv.log_shows("stopped counters="), "{}", srv.log());
    let log = srv.log();
    let line = log
        .lines()
        .find(|l| l.contains("stopped counters="))
        .unwrap();
    line.split("counters=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.trim_matches('"').parse().ok()?))
        })
        .collect()
}

fn counter(counters: &std::collections::HashMap<String, usize>, name: &str) -> usize {
    counters.get(name).copied().unwrap_or(0)
}
