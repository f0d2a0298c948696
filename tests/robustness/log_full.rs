//! A log that cannot be written: `radmfa serve` with stderr on a full disk (/dev/full
//! answers every write with ENOSPC), or into a pipe whose reader went away (EPIPE, a log
//! shipper that died). The lines are lost and counted; logins are answered and audited as
//! before. tracing-subscriber's own complaint about the failed write used to panic the
//! task that logged: no reply, no audit record, yet the code used. And a real disk that
//! fills under the log and empties again: the line it cut off is not glued to the next.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::ports::free_port;
use crate::common::radmfa::{bin, cli_on, http_get, write_config, Options, SECRET};
use crate::common::slapd::{LdapUser, Slapd};
use crate::udp::{ask, socket_from};
use radmfa::radius::client::{status_server, AccessRequestBuilder};

/// A `radmfa serve` whose stderr the test chose; killed if the test ends before its stop.
struct Serving {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    /// Starts radmfa on fixed ports (its log may say nothing), stderr as `stderr` says.
    fn start(slapd: &Slapd, stderr: Stdio) -> (Serving, Option<std::process::ChildStderr>) {
        Serving::start_at(slapd, stderr, "info")
    }

    /// [`Serving::start`] at a log level.
    fn start_at(
        slapd: &Slapd,
        stderr: Stdio,
        level: &'static str,
    ) -> (Serving, Option<std::process::ChildStderr>) {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let listen: &'static str = Box::leak(format!("127.0.0.1:{port}").into_boxed_str());
        let mut o = Options::new(&slapd.url);
        o.listen = listen;
        o.log_level = level;
        o.extra = format!("\n[metrics]\nlisten = \"{metrics}\"\n");
        let config = write_config(dir.path(), &o);
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let piped = child.stderr.take();
        let serving = Serving {
            child,
            addr: listen.parse().unwrap(),
            metrics,
            config,
            _dir: dir,
        };
        (serving, piped)
    }

    /// Waits until Status-Server is answered.
    fn until_answering(&mut self) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "radmfa ended: {:?}",
                self.child.try_wait()
            );
            sock.send_to(&status_server(1, SECRET.as_bytes()).0, self.addr)
                .unwrap();
            if sock.recv(&mut buf).is_ok() {
                return;
            }
        }
        panic!("radmfa did not answer Status-Server within 20 s");
    }

    fn lines_lost(&self) -> u64 {
        let (status, _, body) = http_get(self.metrics, "/metrics");
        assert!(status.contains("200"), "{status}");
        body.lines()
            .find_map(|l| l.strip_prefix("radmfa_log_lines_lost_total "))
            .unwrap_or_else(|| panic!("no radmfa_log_lines_lost_total in\n{body}"))
            .parse()
            .unwrap()
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("radmfa did not stop within 10 s of SIGTERM");
    }
}

/// Reads radmfa's log from its piped stderr up to the line that says it listens; the rest
/// is left in the pipe.
fn read_until_listening(piped: std::process::ChildStderr) -> BufReader<std::process::ChildStderr> {
    let mut lines = BufReader::new(piped);
    let mut line = String::new();
    while !line.contains("listening on udp") {
        line.clear();
        assert!(
            lines.read_line(&mut line).unwrap() > 0,
            "radmfa's log ended before it listened"
        );
    }
    lines
}

/// A good login is accepted and audited, a wrong password refused, every line of theirs
/// counted lost, and the server stops cleanly.
fn logins_answered_and_audited(mut srv: Serving, user: &LdapUser) {
    srv.until_answering();
    let enrolled = cli_on(
        &srv.config,
        &["user", "enroll-totp", &user.uid, "--uri-only", "--force"],
    );
    assert!(enrolled.status.success(), "{enrolled:?}");
    let uri = String::from_utf8(enrolled.stdout).unwrap();
    let seed = uri
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap()
        .to_string();
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    assert!(
        super::full_login(&sock, &user.uid, &user.password, &seed, 0),
        "a good login was not accepted"
    );
    let wrong = ask(
        &sock,
        AccessRequestBuilder::new(3, &user.uid).password(b"not-the-password"),
    );
    assert_eq!(wrong.map(|a| a.0), Some(3), "a wrong password not rejected");

    let audit = cli_on(&srv.config, &["audit", "--user", &user.uid, "--json"]);
    assert!(audit.status.success(), "{audit:?}");
    let results: Vec<String> = String::from_utf8(audit.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["result"].to_string())
        .collect();
    // Newest first: the wrong password, the accept, the challenge, the enrollment.
    assert_eq!(
        results,
        ["\"reject\"", "\"accept\"", "\"challenge\"", "\"enroll\""],
        "audit records"
    );
    // One audit line per request at least, besides the start's lines.
    let lost = srv.lines_lost();
    assert!(lost >= 3, "{lost} log lines counted lost");
    let stopped = srv.stop();
    assert!(stopped.success(), "radmfa stopped with {stopped:?}");
}

#[test]
fn a_log_on_a_full_disk_loses_its_lines_not_the_logins() {
    let users = LdapUser::generate(1);
    let slapd = Slapd::start(&users);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (srv, _) = Serving::start(&slapd, Stdio::from(full));
    logins_answered_and_audited(srv, &users[0]);
}

#[test]
fn a_log_pipe_whose_reader_left_loses_its_lines_not_the_logins() {
    let users = LdapUser::generate(1);
    let slapd = Slapd::start(&users);
    let (srv, piped) = Serving::start(&slapd, Stdio::piped());
    // Read until it serves, then close the pipe's only reader, as a log shipper that died.
    let lines = read_until_listening(piped.unwrap());
    drop(lines);
    logins_answered_and_audited(srv, &users[0]);
}

/// A 1 MiB tmpfs (mounted as root, unmounted when dropped) holding the log, which a file of
/// zeros can fill and its removal empty.
struct LogDisk {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl LogDisk {
    fn mount() -> LogDisk {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&mount)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount (this test mounts a tmpfs, as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LogDisk { _dir: dir, mount }
    }

    /// Takes every free byte (the log file's last block keeps what room it has).
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.mount.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.mount.join("filler")).unwrap();
    }
}

impl Drop for LogDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// `radmfa serve >>/var/log/radmfa.log 2>&1` on a disk that fills up: the requests are
/// answered and their lines counted lost, the last line that fitted in part is cut off, and
/// once there is room the next line starts on a line of its own.
#[test]
fn a_log_disk_that_fills_and_empties_keeps_its_lines_whole() {
    let users = LdapUser::generate(1);
    let slapd = Slapd::start(&users);
    let disk = LogDisk::mount();
    let path = disk.mount.join("serve.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let (mut srv, _) = Serving::start(&slapd, Stdio::from(log));
    srv.until_answering();
    disk.fill();
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    let wrong = |id: u8| {
        ask(
            &sock,
            AccessRequestBuilder::new(id, &users[0].uid).password(b"not-the-password"),
        )
        .map(|a| a.0)
    };
    // Each audit line is some 300 bytes: the file's last block is full within 14.
    for id in 0..30 {
        assert_eq!(wrong(id), Some(3), "request {id} on a full log disk");
    }
    let lost = srv.lines_lost();
    assert!(lost >= 16, "{lost} log lines counted lost");
    disk.free();
    assert_eq!(wrong(30), Some(3), "once the disk has room");
    // The log's thread writes the line, perhaps a moment after the reply went.
    let last_is_the_requests = |text: &str| {
        let last = text.lines().last().unwrap_or_default();
        last.contains("radmfa::audit: auth") && last.contains("result=reject")
    };
    let until = Instant::now() + Duration::from_secs(3);
    let mut text = String::new();
    while Instant::now() < until {
        text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
        if last_is_the_requests(&text) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        last_is_the_requests(&text),
        "the last request's line is not the log's last:\n{text}"
    );
    // Each line is one event: a timestamp and level at its start and nowhere else. One
    // line may be the cut-off start of an event (the disk filled mid-line), with no level
    // if it was cut before it: on a line of its own, not glued to the next event.
    let mut cut = 0;
    for line in text.lines() {
        let events: usize = ["Z  INFO ", "Z  WARN ", "Z ERROR "]
            .iter()
            .map(|level| line.matches(level).count())
            .sum();
        // "2026-12-06T09:40:41.123456Z  INFO ": a timestamp, then the line's one level.
        let stamp = &line[..line.find(' ').unwrap_or(line.len())];
        let b = stamp.as_bytes();
        let stamped = b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && stamp.ends_with('Z');
        let level_first = stamped
            && ["Z  INFO ", "Z  WARN ", "Z ERROR "]
                .iter()
                .any(|level| line[stamp.len() - 1..].starts_with(level));
        if !(stamped && events == 1 && level_first) {
            // Cut off before its level, alone on its line: a line glued to the next holds
            // the next one's level.
            cut += 1;
            assert!(events == 0, "a line cut off and glued to the next: {line}");
        }
    }
    assert!(cut <= 1, "{cut} lines cut off:\n{text}");
    assert!(srv.stop().success());
}

/// A log reader that is there and does not read (a hung log shipper, journald stalled,
/// Ctrl-S on a terminal): the pipe fills, and its writes block rather than fail. The
/// lines were written on the request's own worker, so every login and Status-Server
/// stopped after a couple of hundred requests (red team: 221 of 500). Now the lines wait
/// in a bounded queue and the overflow is dropped and counted; logins go on.
#[test]
fn a_log_pipe_nobody_reads_loses_its_lines_not_the_logins() {
    let users = LdapUser::generate(1);
    let slapd = Slapd::start(&users);
    let (mut srv, piped) = Serving::start(&slapd, Stdio::piped());
    let mut lines = read_until_listening(piped.unwrap());
    srv.until_answering();
    // Held open and not read from here on. Each refusal logs a line of some 200 bytes: a
    // 64 KiB pipe is full after a few hundred, and the queue's 8,192 lines after that.
    let addr = srv.addr;
    let senders: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let sock = socket_from("127.0.0.1", addr, 3000);
                for i in 0..2500u32 {
                    let r = ask(
                        &sock,
                        AccessRequestBuilder::new(i as u8, &format!("nobody-{t}-{i}"))
                            .password(b"pw"),
                    );
                    assert_eq!(
                        r.map(|a| a.0),
                        Some(3),
                        "request {i} of sender {t} not refused within 3 s: the log's pipe \
                         stopped it"
                    );
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("a sender");
    }
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    let (status, _) = status_server(9, SECRET.as_bytes());
    sock.send(&status).unwrap();
    let mut buf = [0u8; 4096];
    assert!(sock.recv(&mut buf).is_ok(), "no answer to Status-Server");
    let lost = srv.lines_lost();
    assert!(lost > 0, "no line counted lost with the pipe full");
    // The reader comes back just after the stop begins: the server's lines flow again, and
    // it stops cleanly, its last lines drained, not left in the queue. The stop's own last
    // lines come while the queue is still full from the stall: they wait for room, where
    // they were dropped (the test failed so under load, when the stop outran the reader).
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut lines, &mut rest);
        rest
    });
    let stopped = srv.stop();
    assert!(stopped.success(), "radmfa stopped with {stopped:?}");
    let rest = reader.join().unwrap();
    assert!(
        rest.contains("nobody-"),
        "{}",
        &rest[..rest.len().min(2000)]
    );
    assert!(
        rest.lines()
            .any(|l| l.contains("stopped") && l.contains("counters")),
        "no stop line with its counters: {}",
        &rest[rest.len().saturating_sub(2000)..]
    );
}

/// An empty RUST_LOG (`Environment=RUST_LOG=` in a drop-in, `docker -e RUST_LOG=`) is no
/// filter: the configured level stands. Taken as a filter of no directives, it turned every
/// line off, the start's and the audit's included.
/// A log reader that never reads again: the stop still ends within seconds. Lines logged
/// after the stop's drain (at debug, each LDAP connection's end) were written directly,
/// behind the log thread's write that waited on the full pipe, and the process never
/// ended (review: still running 30 s after SIGTERM, until the reader read).
#[test]
fn a_stop_ends_with_a_log_reader_that_never_reads_again() {
    let users = LdapUser::generate(20);
    let slapd = Slapd::start(&users);
    let (mut srv, piped) = Serving::start_at(&slapd, Stdio::piped(), "debug");
    // Held open, never read after the listening line.
    let held = read_until_listening(piped.unwrap());
    srv.until_answering();
    let addr = srv.addr;
    // Many at once, as a NAS pair under a login storm: many directory connections open,
    // each to end, and say so, at the stop.
    let senders: Vec<_> = (0..40)
        .map(|t| {
            std::thread::spawn(move || {
                let sock = socket_from("127.0.0.1", addr, 5000);
                for i in 0..150u32 {
                    // Wrong passwords of real users: binds as them, over connections of
                    // their own, each logging its end at debug.
                    let user = format!("user{:05}", (i + t) % 20);
                    let r = ask(
                        &sock,
                        AccessRequestBuilder::new(i as u8, &user).password(b"wrong"),
                    );
                    assert_eq!(r.map(|a| a.0), Some(3), "request {i} of sender {t}");
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("a sender");
    }
    assert!(srv.lines_lost() > 0, "the pipe never filled");
    let t = Instant::now();
    // Panics past 10 s.
    let stopped = srv.stop();
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "the stop took {:?}",
        t.elapsed()
    );
    assert!(stopped.success(), "radmfa stopped with {stopped:?}");
    drop(held);
}

#[test]
fn an_empty_rust_log_leaves_the_configured_level() {
    let users = LdapUser::generate(1);
    let slapd = Slapd::start(&users);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &Options::new(&slapd.url));
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("listening on udp") {
                let _ = tx.send(line);
            }
        }
    });
    let listening = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        listening.is_ok(),
        "no \"listening on udp\" line in 20 s with RUST_LOG set empty"
    );
}
