//! Runs the real `radmfa` binary as a subprocess with a generated config, the way an admin
//! would, and talks to it over loopback UDP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SECRET: &str = "test-shared-secret-0123";

/// One `[[client]]` entry of the generated config.
#[derive(Clone, Debug)]
pub struct Nas {
    pub name: &'static str,
    pub address: &'static str,
    pub otp_mode: &'static str,
    pub require_ma: bool,
    pub no_factor: &'static str,
    pub delimiter: &'static str,
    pub on_backend_failure: &'static str,
    /// More keys for the entry, as written in the file (`challenge_echo = false`).
    pub keys: &'static str,
}

impl Nas {
    pub fn challenge(name: &'static str, address: &'static str) -> Self {
        Nas {
            name,
            address,
            otp_mode: "challenge",
            require_ma: true,
            no_factor: "reject",
            delimiter: ",",
            on_backend_failure: "reject",
            keys: "",
        }
    }
}

pub struct Options {
    pub ldap_urls: Vec<String>,
    pub clients: Vec<Nas>,
    /// Extra TOML appended (e.g. a [challenge] section).
    pub extra: String,
    pub log_level: &'static str,
    pub ldap_timeout_ms: u64,
    pub listen: &'static str,
    /// Extra keys for `[server]` (e.g. `duplicate_window_secs = 1`).
    pub server_extra: String,
    /// Extra keys for `[ldap]` (e.g. `entry_cache_seconds = 300`).
    pub ldap_extra: String,
    /// `[server] request_deadline_ms`.
    pub request_deadline_ms: u64,
}

impl Options {
    pub fn new(ldap_url: &str) -> Self {
        Options {
            ldap_urls: vec![ldap_url.to_string()],
            clients: vec![Nas::challenge("local", "127.0.0.1")],
            extra: String::new(),
            log_level: "info",
            ldap_timeout_ms: 1000,
            listen: "127.0.0.1:0",
            server_extra: String::new(),
            ldap_extra: String::new(),
            request_deadline_ms: 4000,
        }
    }
}

pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// Ends (disconnects) when the log reader has read the last of the server's output.
    log_done: std::sync::mpsc::Receiver<()>,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_radmfa"))
}

/// `radmfa --config CONFIG ARGS...`, run to its end, without a server of the harness's.
pub fn cli_on(config: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// The generated config's text with its `[store]` on the PostgreSQL database `url` (the key
/// file stays `radmfa.key` beside the config) and, if given, the node named `name`.
pub fn on_postgres(text: &str, url: &str, name: Option<&str>) -> String {
    let sqlite = "[store]\npath = \"radmfa.db\"\nkey_file = \"radmfa.key\"\n";
    assert!(
        text.contains(sqlite),
        "the harness's [store] changed:\n{text}"
    );
    let text = text.replace(
        sqlite,
        &format!("[store]\ntype = \"postgres\"\nurl = \"{url}\"\nkey_file = \"radmfa.key\"\n"),
    );
    match name {
        Some(name) => {
            assert!(text.contains("name = \"test-node\""), "{text}");
            text.replace("name = \"test-node\"", &format!("name = \"{name}\""))
        }
        None => text,
    }
}

pub fn write_config(dir: &Path, o: &Options) -> PathBuf {
    let urls: Vec<String> = o.ldap_urls.iter().map(|u| format!("{u:?}")).collect();
    let mut toml = format!(
        r#"
[server]
name = "test-node"
listen = ["{listen}"]
log_level = "{level}"
request_deadline_ms = {deadline}
shutdown_grace_ms = 2000
{server_extra}

[store]
path = "radmfa.db"
key_file = "radmfa.key"

[ldap]
urls = [{urls}]
bind_dn = "cn=admin,dc=example,dc=org"
bind_password = "adminpw"
base_dn = "ou=people,dc=example,dc=org"
user_filter = "(uid={{user}})"
connect_timeout_ms = {ct}
timeout_ms = {ct}
{ldap_extra}

[audit]
include_name = true
include_email = true
"#,
        level = o.log_level,
        listen = o.listen,
        urls = urls.join(", "),
        ct = o.ldap_timeout_ms,
        server_extra = o.server_extra,
        deadline = o.request_deadline_ms,
        ldap_extra = o.ldap_extra,
    );
    toml.push_str(&o.extra);
    for c in &o.clients {
        toml.push_str(&format!(
            r#"
[[client]]
name = "{}"
address = "{}"
secret = "{SECRET}"
otp_mode = "{}"
require_message_authenticator = {}
no_factor = "{}"
inline_delimiter = "{}"
on_backend_failure = "{}"
{}
"#,
            c.name,
            c.address,
            c.otp_mode,
            c.require_ma,
            c.no_factor,
            c.delimiter,
            c.on_backend_failure,
            c.keys
        ));
    }
    let path = dir.join("radmfa.toml");
    std::fs::write(&path, toml).unwrap();
    // As an install keeps it (the README's 0640): the secrets written into it are then no
    // cause for radmfa's warning about a file every account can read.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    path
}

impl Server {
    pub fn start(o: &Options) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), o);
        Self::start_with(dir, config)
    }

    pub fn start_with(dir: tempfile::TempDir, config: PathBuf) -> Server {
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(&config).arg("serve");
        Self::spawn(dir, config, cmd)
    }

    /// Starts `cmd` (a `radmfa … serve` command line, set up by the caller: another user,
    /// other arguments) and waits until it listens.
    pub fn spawn(dir: tempfile::TempDir, config: PathBuf, mut cmd: Command) -> Server {
        // The provider stand-ins are on loopback: a proxy in the runner's environment
        // (reqwest honours it, as radmfa means it to in production) would carry the test
        // traffic, tokens and codes off the machine. A test that wants a proxy sets one
        // after this, on `cmd`, and it is kept.
        for var in PROXY_VARS {
            if cmd.get_envs().all(|(k, _)| k != var) {
                cmd.env_remove(var);
            }
        }
        let mut child = cmd
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning radmfa");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        let (done_tx, log_done) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _done = done_tx;
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            let mut sent = false;
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if !sent {
                    if let Some(i) = line.find("listening on udp ") {
                        // Text logs end the address with a space or the line; JSON ones
                        // with the message's closing quote.
                        let addr = line[i + 17..]
                            .split(|c: char| c.is_whitespace() || c == '"')
                            .next()
                            .unwrap_or("");
                        if let Ok(a) = addr.parse::<SocketAddr>() {
                            let _ = tx.send(a);
                            sent = true;
                        }
                    }
                }
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let mut rest = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut rest));
                panic!(
                    "radmfa did not start listening; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        // `serve` checks [ldap] beside its listeners (connect, bind, a read of base_dn):
        // waited for, so that a test that stops slapd or counts its requests right after
        // the start does not meet the check's connection.
        let text = std::fs::read_to_string(&config).unwrap_or_default();
        if text.lines().any(|l| l.trim() == "[ldap]") {
            let until = Instant::now() + Duration::from_secs(15);
            while !log.lock().unwrap().contains("ldap: start-up check done")
                && Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Server {
            child: Some(child),
            dir,
            config,
            addr,
            log,
            log_done,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Runs `radmfa --config <this config> ARGS`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("running radmfa cli")
    }

    /// Enrolls a TOTP token and returns its Base32 seed.
    pub fn enroll(&self, user: &str, extra: &[&str]) -> String {
        let mut args = vec!["user", "enroll-totp", user, "--uri-only", "--force"];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        assert!(out.status.success(), "enroll failed: {out:?}");
        let uri = String::from_utf8(out.stdout).unwrap();
        uri.split("secret=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .expect("secret in otpauth URI")
            .to_string()
    }

    pub fn audit_json(&self, user: &str) -> Vec<serde_json::Value> {
        let out = self.cli(&["audit", "--user", user, "--json", "--limit", "1000"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `user`'s last login was refused because the entry's second factor is enrolled under
    /// its other name `other`.
    pub fn refused_as_another_name(&self, user: &str, other: &str) {
        let rec = &self.audit_json(user)[0];
        let why = format!("the directory entry is also named {other:?}");
        assert!(rec["reason"].as_str().unwrap().starts_with(&why), "{rec}");
    }

    /// The address from the "metrics.listen: serving http://ADDR/" log line.
    pub fn metrics_addr(&self) -> SocketAddr {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("metrics.listen: serving http://"))
            .unwrap_or_else(|| panic!("no metrics listener in the log:\n{log}"));
        let rest = line.split("serving http://").nth(1).unwrap();
        rest.split('/').next().unwrap().parse().unwrap()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("stopped").id()
    }

    /// SIGHUP, then how many reloads have applied a client table, once at least `n` have
    /// (see [`Server::log_lines_at_least`]): a test's `n`-th reload is applied when this
    /// returns `n`.
    pub fn reload(&self, n: usize) -> usize {
        let hup = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
        self.log_lines_at_least(n, |l| l.contains("[[client]] entries from"))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether the log says `user`'s request was left unanswered on purpose
    /// (`on_backend_failure = "no_reply"`), within 5 s: silence, told from a reply the
    /// test's client dropped (pyrad drops a badly signed one and reports a timeout, as for
    /// silence).
    pub fn left_unanswered(&self, user: &str) -> bool {
        let user = format!("user=\"{user}\"");
        self.wait_for_lines(1, |l| {
            l.contains(&user) && l.contains("not answered (on_backend_failure = \\\"no_reply\\\")")
        }) > 0
    }

    /// Whether `needle` shows up in the log within 5 s: a thread copies the log, so it lags
    /// the process, most of all on a busy machine.
    pub fn log_shows(&self, needle: &str) -> bool {
        self.wait_for_lines(1, |l| l.contains(needle)) > 0
    }

    /// How many log lines `matches`, once at least `at_least` do (or 5 s have passed), and
    /// after a further 300 ms for lines still on their way: so that a test asserting "only
    /// one" is not passed by a second line the log thread has not copied yet.
    pub fn log_lines_at_least(&self, at_least: usize, matches: impl Fn(&str) -> bool) -> usize {
        self.wait_for_lines(at_least, &matches);
        std::thread::sleep(Duration::from_millis(300));
        self.log().lines().filter(|l| matches(l)).count()
    }

    /// How many log lines `matches`, once at least `at_least` do or 5 s have passed.
    fn wait_for_lines(&self, at_least: usize, matches: impl Fn(&str) -> bool) -> usize {
        let count = || self.log().lines().filter(|l| matches(l)).count();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let n = count();
            if n >= at_least || std::time::Instant::now() > until {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("already stopped");
        let status = terminate(&mut child, "radmfa");
        // What the server wrote last (shutdown counters, the store's closing line) is in
        // the log once the reader has reached the end of the pipe.
        let _ = self.log_done.recv_timeout(Duration::from_secs(5));
        self.assert_no_panic();
        status
    }

    /// A request task that panics dies in silence as far as its NAS can tell (tokio catches
    /// it, nothing is answered, the server goes on): tests that expect silence would pass.
    /// So every test fails if the server's log shows a panic.
    fn assert_no_panic(&self) {
        let log = self.log();
        if !std::thread::panicking() && log.contains("panicked at") {
            panic!("radmfa panicked; log:\n{log}");
        }
    }

    /// Starts radmfa again on the same config and store once [`Server::stop`]ped (as a
    /// restart would); it listens on a new UDP port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        *self = Server::start_with(dir, self.config.clone());
    }

    /// A UDP socket connected to the server, for raw-byte tests.
    pub fn udp(&self) -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        s
    }
}

/// SIGTERM to `child`, then its exit status; killed (and the test failed) if it is still
/// running after 10 s.
fn terminate(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `radmfa audit --follow ARGS`: its lines (with `--json`, its records), one at a
/// time.
pub struct Follower {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Follower {
    pub fn start(config: &Path, args: &[&str]) -> Follower {
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(config)
            .args(["audit", "--follow"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning radmfa audit --follow");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower {
            child,
            lines,
            stderr,
        }
    }

    /// Whether `needle` shows up on its stderr within `wait`.
    pub fn stderr_shows(&self, needle: &str, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        while !self.stderr.lock().unwrap().contains(needle) {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next line printed, waiting up to 10 s for it.
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("no audit line within 10 s")
    }

    /// The next record printed (with `--json`), waiting up to 10 s for it.
    pub fn next(&self) -> serde_json::Value {
        let line = self.next_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// The next record if one comes within `wait`.
    pub fn next_within(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// SIGTERM, as Ctrl-C would end it; its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        terminate(&mut self.child, "audit --follow")
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = self.log_done.recv_timeout(Duration::from_secs(5));
            self.assert_no_panic();
        }
    }
}

/// The environment variables reqwest takes a proxy from.
pub const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// A plain HTTP/1.0 GET: (status line, headers lower-cased, body). A server that keeps the
/// connection open fails the test after 10 s instead of hanging the run.
/// `packet` sent to `addr` as a NAS sends it: `tries` times from one socket, each after
/// waiting `wait` for a reply; the code of each reply, `None` where none came.
pub fn as_a_nas_resending(
    addr: SocketAddr,
    packet: &[u8],
    tries: usize,
    wait: Duration,
) -> Vec<Option<u8>> {
    let sock = UdpSocket::bind(if addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .unwrap();
    sock.connect(addr).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    (0..tries)
        .map(|_| {
            sock.send(packet).unwrap();
            let mut buf = [0u8; 4096];
            sock.recv(&mut buf)
                .ok()
                .and_then(|n| radmfa::radius::client::parse_reply(&buf[..n]))
                .map(|r| r.code)
        })
        .collect()
}

pub fn http_get(addr: SocketAddr, path: &str) -> (String, String, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.into(), headers.to_lowercase(), body.into())
}

/// The database of the config at `config` in `dir`, made by `radmfa db migrate` before any
/// server starts on it, open for a test to put rows in as a running radmfa would have.
pub fn migrated(dir: &Path, config: &Path) -> rusqlite::Connection {
    let migrate = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(["db", "migrate"])
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{migrate:?}");
    let db = rusqlite::Connection::open(dir.join("radmfa.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db
}

/// radmfa's process id, found by its config path on the command line.
pub fn pid_of(config: &Path) -> u32 {
    let needle = config.to_string_lossy().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&needle) && cmd.contains(" serve") {
            return pid;
        }
    }
    panic!("radmfa process for {needle} not found");
}
