//! A TCP relay that misbehaves as a WAN link and its middleboxes do, between radmfa and a
//! real slapd: it delays what it forwards (each way), resets a connection after the server
//! answered a request (the answer never arrives), and forgets connections that sat idle (a
//! firewall dropping their state without a word: nothing is forwarded on them again, and
//! nothing says so).
//!
//! One thread per connection, both sockets non-blocking, so that a reset closes the only
//! handle to the client's socket (with SO_LINGER 0: the kernel sends RST, not FIN).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Faults {
    /// A client→server chunk holding this is forwarded, and the server's answer to it
    /// replaced by a reset of the client's connection; once per arming.
    reset_after_answer: Option<Vec<u8>>,
    /// Connections idle longer than this forward nothing from then on.
    forget_idle_after: Option<Duration>,
    /// Each chunk is forwarded this long after it arrived (the link's one-way delay).
    delay: Duration,
    /// A client→server chunk holding this is forwarded that much later (a directory slow
    /// to answer one kind of request: a bind, by its DN).
    delay_holding: Option<(Vec<u8>, Duration)>,
}

#[derive(Default)]
struct Shared {
    faults: Mutex<Faults>,
    accepted: AtomicUsize,
    resets: AtomicUsize,
    forgotten: AtomicUsize,
    stop: AtomicBool,
}

pub struct WanRelay {
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl WanRelay {
    /// Relays 127.0.0.1:`upstream_port` on a free port of 127.0.0.1.
    pub fn start(upstream_port: u16) -> WanRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                accepting.accepted.fetch_add(1, Ordering::SeqCst);
                let shared = accepting.clone();
                std::thread::spawn(move || relay(client, server, &shared));
            }
        });
        WanRelay {
            url: format!("ldap://{addr}"),
            addr,
            shared,
        }
    }

    /// The next client request holding `needle` reaches the server, and the server's answer
    /// to it is replaced by a reset (an LDAP BindRequest carries its DN as is).
    pub fn reset_after_answer(&self, needle: &[u8]) {
        self.shared.faults.lock().unwrap().reset_after_answer = Some(needle.to_vec());
    }

    /// Connections idle longer than `after` are forgotten: what is sent on them afterwards,
    /// either way, is dropped.
    pub fn forget_idle_after(&self, after: Duration) {
        self.shared.faults.lock().unwrap().forget_idle_after = Some(after);
    }

    /// What is forwarded from now on, either way, goes `one_way` later.
    pub fn delay(&self, one_way: Duration) {
        self.shared.faults.lock().unwrap().delay = one_way;
    }

    /// Client requests holding `needle` reach the server `by` later (an LDAP BindRequest
    /// carries its DN as is, so a user's binds are slow and their searches not).
    pub fn delay_holding(&self, needle: &[u8], by: Duration) {
        self.shared.faults.lock().unwrap().delay_holding = Some((needle.to_vec(), by));
    }

    /// Connections relayed so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections reset after an answer.
    pub fn resets(&self) -> usize {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// Connections forgotten for being idle.
    pub fn forgotten(&self) -> usize {
        self.shared.forgotten.load(Ordering::SeqCst)
    }
}

impl Drop for WanRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

/// Copies both ways until either side closes, with the faults armed in `shared`.
fn relay(mut client: TcpStream, mut server: TcpStream, shared: &Shared) {
    client.set_nonblocking(true).unwrap();
    server.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16384];
    let mut last_traffic = Instant::now();
    let mut forgotten = false;
    let mut reset_on_answer = false;
    // Chunks on their way, each with when it is due: to the server, to the client.
    let mut queued: [VecDeque<(Instant, Vec<u8>)>; 2] = Default::default();
    while !shared.stop.load(Ordering::SeqCst) {
        let mut moved = false;
        for (to_server, q) in queued.iter_mut().enumerate() {
            let dst = if to_server == 0 {
                &mut server
            } else {
                &mut client
            };
            while q.front().is_some_and(|(due, _)| *due <= Instant::now()) {
                let (_, data) = q.pop_front().unwrap();
                if write_all(dst, &data).is_err() {
                    return close(&client, &server);
                }
            }
        }
        for from_client in [true, false] {
            let src = if from_client {
                &mut client
            } else {
                &mut server
            };
            let n = match src.read(&mut buf) {
                // The client closed: what it sent before is still delivered (as TCP
                // delivers what was written before a FIN), on time.
                Ok(0) if from_client => {
                    while let Some((due, data)) = queued[0].pop_front() {
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        if write_all(&mut server, &data).is_err() {
                            break;
                        }
                    }
                    return close(&client, &server);
                }
                Ok(0) => return close(&client, &server),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(_) => return close(&client, &server),
            };
            moved = true;
            let idle = last_traffic.elapsed();
            last_traffic = Instant::now();
            let faults = shared.faults.lock().unwrap();
            if !forgotten && faults.forget_idle_after.is_some_and(|after| idle > after) {
                forgotten = true;
                shared.forgotten.fetch_add(1, Ordering::SeqCst);
            }
            if forgotten {
                continue; // swallowed: the connection stays open, and silent
            }
            if !from_client && reset_on_answer {
                drop(faults);
                shared.resets.fetch_add(1, Ordering::SeqCst);
                let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                drop(client); // RST
                let _ = server.shutdown(Shutdown::Both);
                return;
            }
            let needle = faults.reset_after_answer.as_deref();
            let chunk = &buf[..n];
            let holds = |x: &[u8]| chunk.windows(x.len()).any(|w| w == x);
            let slow = match &faults.delay_holding {
                Some((x, by)) if from_client && holds(x) => *by,
                _ => Duration::ZERO,
            };
            let due = Instant::now() + faults.delay + slow;
            if from_client && needle.is_some_and(|x| chunk.windows(x.len()).any(|w| w == x)) {
                drop(faults);
                shared.faults.lock().unwrap().reset_after_answer = None;
                reset_on_answer = true;
            } else {
                drop(faults);
            }
            // In order behind what is queued that way.
            queued[usize::from(!from_client)].push_back((due, chunk.to_vec()));
        }
        if !moved {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// `write_all` on a non-blocking socket.
fn write_all(dst: &mut TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match dst.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn close(client: &TcpStream, server: &TcpStream) {
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}
