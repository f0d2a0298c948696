//! A log that cannot be written: `radmfa serve` with stderr on a full disk (/dev/full
//! answers every write with ENOSPC), or into a pipe whose reader went away (EPIPE, a log
//! shipper that died). The lines are lost and counted; logins are answered and audited as
//! before. tracing-subscriber's own complaint about the failed write used to panic the
//! task that logged: no reply, no audit record, yet the code used.

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
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let listen: &'static str = Box::leak(format!("127.0.0.1:{port}").into_boxed_str());
        let mut o = Options::new(&slapd.url);
        o.listen = listen;
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
    let mut lines = BufReader::new(piped.unwrap());
    let mut line = String::new();
    while !line.contains("listening on udp") {
        line.clear();
        assert!(
            lines.read_line(&mut line).unwrap() > 0,
            "radmfa's log ended before it listened"
        );
    }
    drop(lines);
    logins_answered_and_audited(srv, &users[0]);
}
