//! A bounded login load over raw UDP while PostgreSQL is stopped and started again.
//!
//! A request sent after `pg_ctl stop` returned and answered before `pg_ctl start` was called
//! cannot have reached a running database, so it must not be accepted. One sent during the
//! outage but answered after the restart began may legitimately succeed: radmfa waits up to
//! `store.connect_timeout_ms` for a connection, and the database may be back within that
//! wait. Those are counted apart ("straddling").

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use radmfa::radius::client::{parse_reply, AccessRequestBuilder};
use radmfa::radius::crypto::verify_reply;

use super::common::postgres::PgCluster;
use super::common::radmfa::{Server, SECRET};
use super::Pair;

const ACCEPT: u8 = 2;
const REJECT: u8 = 3;
const CHALLENGE: u8 = 11;
const STATE: u8 = 24;
/// Load threads (each with its own sockets, one request at a time).
const WORKERS: usize = 6;
/// Users whose challenge is issued before the stop and answered only while the database
/// is down (must fail) and again after the restart (must succeed: nothing was consumed).
const PENDING: usize = 8;
/// Users kept for fresh logins after the restart.
const FRESH: usize = 4;

#[derive(Debug, Default)]
pub struct Report {
    pub requests: usize,
    pub accepted_before: usize,
    pub sent_while_down: usize,
    /// Sent while down, answered (or given up on) after the restart began.
    pub straddling: usize,
    pub accepted_while_down: usize,
    pub rejected_while_down: usize,
    pub unanswered_while_down: usize,
    /// Any other reply code while down (none expected).
    pub other_while_down: Vec<u8>,
    pub slowest_while_down: Duration,
    pub accepted_after: usize,
    /// Round-1 Access-Challenges for requests sent after the restart: the load recovered.
    pub challenged_after: usize,
    pub invalid_replies: usize,
    pub pending: usize,
    pub pending_accepted_after: usize,
    pub fresh_logins_after_ok: bool,
}

struct Sample {
    sent: Instant,
    latency: Duration,
    /// Reply code, None when no (valid) reply came.
    code: Option<u8>,
}

/// One UDP "NAS" talking to one node.
struct Nas {
    sock: UdpSocket,
    id: u8,
}

impl Nas {
    fn new(srv: &Server) -> Nas {
        Nas::at(srv.addr)
    }

    fn at(addr: std::net::SocketAddr) -> Nas {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Nas { sock, id: 0 }
    }

    /// Sends one request and waits up to 6 s for its reply. Returns the sample, the verified
    /// reply's State (if any), and whether an unverifiable reply came.
    fn ask(
        &mut self,
        user: &str,
        pw: &str,
        state: Option<&[u8]>,
    ) -> (Sample, Option<Vec<u8>>, bool) {
        self.id = self.id.wrapping_add(1);
        let mut b = AccessRequestBuilder::new(self.id, user).password(pw.as_bytes());
        if let Some(s) = state {
            b = b.state(s);
        }
        let (pkt, auth) = b.build(SECRET.as_bytes());
        let sent = Instant::now();
        self.sock.send(&pkt).unwrap();
        let mut buf = [0u8; 4096];
        while sent.elapsed() < Duration::from_secs(6) {
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            let reply = &buf[..n];
            // A late reply to an earlier, timed-out request: not ours.
            if n < 2 || reply[1] != self.id {
                continue;
            }
            let latency = sent.elapsed();
            if verify_reply(reply, &auth, SECRET.as_bytes()).is_err() {
                return (
                    Sample {
                        sent,
                        latency,
                        code: None,
                    },
                    None,
                    true,
                );
            }
            let parsed = parse_reply(reply).unwrap();
            let st = parsed
                .attributes
                .iter()
                .find(|(t, _)| *t == STATE)
                .map(|(_, v)| v.clone());
            let code = Some(parsed.code);
            return (
                Sample {
                    sent,
                    latency,
                    code,
                },
                st,
                false,
            );
        }
        let latency = sent.elapsed();
        (
            Sample {
                sent,
                latency,
                code: None,
            },
            None,
            false,
        )
    }
}

/// The current TOTP code of a Base32 seed (SHA1, 6 digits, 30 s: the enrollment defaults).
fn code(seed_b32: &str) -> String {
    let seed = data_encoding::BASE32_NOPAD
        .decode(seed_b32.trim_end_matches('=').as_bytes())
        .expect("base32 seed");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 0, 30, seed).generate(now)
}

fn pw(user: &str) -> String {
    format!("pw-{user}")
}

pub fn restart_under_load(nodes: &Pair, pg: &PgCluster, seeds: &[(String, String)]) -> Report {
    assert!(seeds.len() > PENDING + FRESH + WORKERS);
    let (pending, rest) = seeds.split_at(PENDING);
    let (fresh, load_users) = rest.split_at(FRESH);

    // Challenges issued (alternately by A and B) and left open across the outage.
    let mut open = Vec::new();
    for (i, (user, seed)) in pending.iter().enumerate() {
        let srv = if i % 2 == 0 { &nodes.a } else { &nodes.b };
        let (s, state, _) = Nas::new(srv).ask(user, &pw(user), None);
        assert_eq!(s.code, Some(CHALLENGE), "pending challenge for {user}");
        open.push((user.clone(), seed.clone(), state.unwrap()));
    }

    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let invalid = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let (addr_a, addr_b) = (nodes.a.addr, nodes.b.addr);
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let users: Vec<(String, String)> = load_users
            .iter()
            .skip(w)
            .step_by(WORKERS)
            .cloned()
            .collect();
        let (samples, invalid, stop) = (samples.clone(), invalid.clone(), stop.clone());
        workers.push(thread::spawn(move || {
            let mut a = Nas::at(addr_a);
            let mut b = Nas::at(addr_b);
            let mut i = 0usize;
            // Bounded: the main thread stops the load after about ten seconds.
            while !stop.load(Ordering::Relaxed) && i < 100_000 {
                let (user, seed) = &users[i % users.len()];
                // Round 1 on one node, round 2 on the other, switching every login.
                let (first, second) = if i.is_multiple_of(2) {
                    (&mut a, &mut b)
                } else {
                    (&mut b, &mut a)
                };
                let (s1, state, bad1) = first.ask(user, &pw(user), None);
                let challenged = s1.code == Some(CHALLENGE);
                let mut got = vec![s1];
                let mut bad = bad1;
                if let (true, Some(state)) = (challenged, state) {
                    let (s2, _, bad2) = second.ask(user, &code(seed), Some(&state));
                    got.push(s2);
                    bad |= bad2;
                }
                samples.lock().unwrap().extend(got);
                *invalid.lock().unwrap() += bad as usize;
                i += 1;
            }
        }));
    }

    thread::sleep(Duration::from_millis(2500));
    pg.stop();
    let down_from = Instant::now();
    // While down: answer the open challenges with valid codes, the case that must never turn
    // into an Accept; one thread per challenge, each trying for four seconds. All are joined
    // before the restart.
    let until = Instant::now() + Duration::from_millis(4000);
    let answering: Vec<_> = open
        .iter()
        .enumerate()
        .map(|(i, (user, seed, state))| {
            let (user, seed, state) = (user.clone(), seed.clone(), state.clone());
            let samples = samples.clone();
            let addr = if i % 2 == 0 { addr_b } else { addr_a };
            thread::spawn(move || {
                let mut nas = Nas::at(addr);
                while Instant::now() < until {
                    let (s, _, _) = nas.ask(&user, &code(&seed), Some(&state));
                    samples.lock().unwrap().push(s);
                }
            })
        })
        .collect();
    for t in answering {
        t.join().unwrap();
    }
    let down_until = Instant::now();
    pg.start_again();
    thread::sleep(Duration::from_millis(3000));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }

    let mut r = Report {
        pending: open.len(),
        invalid_replies: *invalid.lock().unwrap(),
        ..Default::default()
    };
    for s in samples.lock().unwrap().iter() {
        r.requests += 1;
        if s.sent < down_from {
            r.accepted_before += (s.code == Some(ACCEPT)) as usize;
        } else if s.sent < down_until && s.sent + s.latency >= down_until {
            r.straddling += 1;
        } else if s.sent < down_until {
            r.sent_while_down += 1;
            r.slowest_while_down = r.slowest_while_down.max(s.latency);
            match s.code {
                Some(ACCEPT) => r.accepted_while_down += 1,
                Some(REJECT) => r.rejected_while_down += 1,
                None => r.unanswered_while_down += 1,
                Some(other) => r.other_while_down.push(other),
            }
        } else {
            r.accepted_after += (s.code == Some(ACCEPT)) as usize;
            r.challenged_after += (s.code == Some(CHALLENGE)) as usize;
        }
    }

    // After the restart: the open challenges were not consumed by the failed attempts.
    for (i, (user, seed, state)) in open.iter().enumerate() {
        let srv = if i % 2 == 0 { &nodes.a } else { &nodes.b };
        let (s, _, _) = Nas::new(srv).ask(user, &code(seed), Some(state));
        r.pending_accepted_after += (s.code == Some(ACCEPT)) as usize;
    }
    // And fresh logins work on both nodes, in both directions.
    r.fresh_logins_after_ok = fresh.iter().enumerate().all(|(i, (user, seed))| {
        let (first, second) = if i % 2 == 0 {
            (&nodes.a, &nodes.b)
        } else {
            (&nodes.b, &nodes.a)
        };
        super::full_login(first, second, user, &pw(user), seed)
    });
    r
}
