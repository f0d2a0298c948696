//! RadSec (RADIUS over TLS, RFC 6614) with a peer nobody here wrote: radclient speaks UDP to
//! radsecproxy, which forwards over mutual TLS to radmfa's `[radsec]` listener, as a NAS
//! behind a RadSec proxy (or a RadSec-capable NAS) would.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::peers::{now, python_first_line, radclient, require, totp};
use common::pki::Pki;
use common::postgres::PgCluster;
use common::radmfa::{http_get, Options, Server, SECRET};
use common::slapd::{free_port, LdapUser, Slapd};

const PROXY_SECRET: &str = "proxy-side-secret-1234";
/// The client entry's keys for a test that sends over UDP and RadSec from one address.
const BOTH: &str = "transport = \"both\"";

/// The RadSec port radmfa bound, from its log.
fn radsec_port(srv: &Server) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = srv.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("listening on radsec (tcp) "))
        {
            let addr = line.split("listening on radsec (tcp) ").nth(1).unwrap();
            let addr = addr.split_whitespace().next().unwrap();
            return addr.rsplit(':').next().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no radsec listener:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// radsecproxy in the foreground: UDP in on a free port, TLS out to radmfa with the given
/// client certificate (trusting `ca` for radmfa's certificate).
struct Proxy {
    child: Child,
    udp_port: u16,
}

impl Proxy {
    fn start(
        dir: &Path,
        name: &str,
        radsec_port: u16,
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Proxy {
        Self::start_many(dir, name, &[radsec_port], ca, cert, key)
    }

    /// A proxy with one server per port, tried in this order (radsecproxy sends each request
    /// to the first server that is connected and has lost no request).
    fn start_many(
        dir: &Path,
        name: &str,
        radsec_ports: &[u16],
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Proxy {
        // A port from the suite's register (never handed out twice), and if another
        // socket takes it all the same before radsecproxy binds it, another port.
        for _ in 0..5 {
            if let Some(proxy) = Self::start_on(free_port(), dir, name, radsec_ports, ca, cert, key)
            {
                return proxy;
            }
        }
        panic!("radsecproxy could not bind a UDP port in five tries");
    }

    /// radsecproxy on `udp_port`; `None` if the port was taken before it could bind it.
    #[allow(clippy::too_many_arguments)]
    fn start_on(
        udp_port: u16,
        dir: &Path,
        name: &str,
        radsec_ports: &[u16],
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Option<Proxy> {
        let bin = require("radsecproxy", "radsecproxy");
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(
            &conf,
            format!(
                r#"ListenUDP 127.0.0.1:{udp_port}
LogLevel 4
tls default {{
    CACertificateFile {ca}
    CertificateFile {cert}
    CertificateKeyFile {key}
}}
client 127.0.0.1 {{
    type udp
    secret {PROXY_SECRET}
}}
{servers}realm * {{
{realm}}}
"#,
                servers = radsec_ports
                    .iter()
                    .enumerate()
                    .map(|(i, port)| format!(
                        "server radmfa{i} {{\n    host 127.0.0.1\n    port {port}\n    type tls\n    secret radsec\n}}\n"
                    ))
                    .collect::<String>(),
                realm = (0..radsec_ports.len())
                    .map(|i| format!("    server radmfa{i}\n    accountingServer radmfa{i}\n"))
                    .collect::<String>(),
                ca = ca.display(),
                cert = cert.display(),
                key = key.display(),
            ),
        )
        .unwrap();
        // In the foreground (-f) radsecproxy logs to stderr, whatever LogDestination says.
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let mut child = Command::new(bin)
            .args(["-f", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting radsecproxy");
        // Ready once its UDP port is bound: radclient sends once (-r 1), so a request that
        // came before would go unanswered. Watched in /proc, since binding the port to test
        // it could take it from radsecproxy.
        // Its own socket, not any on that port: one of a test's outgoing sockets there
        // looked ready, and radclient's request then went to it.
        let until = Instant::now() + Duration::from_secs(10);
        while !udp_bound_by(udp_port, child.id()) {
            let log = || std::fs::read_to_string(dir.join(format!("{name}.log")));
            if let Some(status) = child.try_wait().unwrap() {
                let log = log().unwrap_or_default();
                if log.contains("in use") {
                    return None;
                }
                panic!("radsecproxy exited ({status}): {log}");
            }
            assert!(
                Instant::now() < until,
                "radsecproxy not listening: {:?}",
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Proxy { child, udp_port })
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.udp_port)
    }
}

/// Whether process `pid` holds a socket bound to this UDP port on 127.0.0.1 (its inode,
/// from /proc/net/udp, among the process's open files).
fn udp_bound_by(port: u16, pid: u32) -> bool {
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = std::fs::read_to_string("/proc/net/udp")
        .expect("reading /proc/net/udp")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.get(1) == Some(&local.as_str())).then(|| cols.get(9).map(|i| i.to_string()))?
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            inodes.iter().any(|i| target == format!("socket:[{i}]"))
        })
    })
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// radmfa with [radsec] on a free port and one client, 127.0.0.1, whose certificate must
/// be issued to `radsec_name`.
fn start(slapd: &Slapd, pki: &Pki, radsec_name: &str) -> Server {
    start_with(slapd, pki, radsec_name, "", 4000)
}

/// [`start`], with lines added to `[radsec]` and the given request deadline.
fn start_with(
    slapd: &Slapd,
    pki: &Pki,
    radsec_name: &str,
    radsec: &str,
    deadline_ms: u64,
) -> Server {
    start_opts(
        Options::new(&slapd.url),
        pki,
        radsec_name,
        radsec,
        deadline_ms,
    )
}

/// [`start_with`] from `o` (its LDAP URLs, `[server]` extras).
fn start_opts(o: Options, pki: &Pki, radsec_name: &str, radsec: &str, deadline_ms: u64) -> Server {
    start_client_opts(o, pki, radsec_name, radsec, deadline_ms, "")
}

/// [`start_opts`], with lines added to the client's entry.
fn start_client_opts(
    o: Options,
    pki: &Pki,
    radsec_name: &str,
    radsec: &str,
    deadline_ms: u64,
    client: &str,
) -> Server {
    let (dir, config) = radsec_config(o, pki, radsec_name, radsec, deadline_ms, client);
    Server::start_with(dir, config)
}

/// The config [`start_client_opts`] starts radmfa with, in a new directory.
fn radsec_config(
    mut o: Options,
    pki: &Pki,
    radsec_name: &str,
    radsec: &str,
    deadline_ms: u64,
    client: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    o.clients.clear();
    // `radsec` may name its own listen addresses (before any other section it opens).
    let own_section = radsec.split("\n[").next().unwrap_or_default();
    let listen = if own_section.contains("listen =") {
        ""
    } else {
        r#"listen = ["127.0.0.1:0"]"#
    };
    // An empty name: an entry without radsec_name (for UDP unless `client` says otherwise).
    let radsec_name = if radsec_name.is_empty() {
        String::new()
    } else {
        format!("radsec_name = {radsec_name:?}")
    };
    o.extra = format!(
        r#"
[radsec]
{listen}
cert_file = {:?}
key_file = {:?}
ca_file = {:?}
{radsec}

[[client]]
name = "local"
address = "127.0.0.1"
secret = "{SECRET}"
{radsec_name}
{client}
"#,
        pki.server_cert, pki.server_key, pki.ca
    );
    let dir = tempfile::tempdir().unwrap();
    let config = common::radmfa::write_config(dir.path(), &o);
    let text = std::fs::read_to_string(&config).unwrap();
    let deadline = "request_deadline_ms = 4000";
    assert!(
        text.contains(deadline),
        "the harness's [server] changed:\n{text}"
    );
    let text = text.replace(deadline, &format!("request_deadline_ms = {deadline_ms}"));
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

/// A RadSec node named `name` on the PostgreSQL database `url`, with a copy of `key` (the
/// first node's key file) if given, as an operator sets up a second node.
fn pg_radsec_node(slapd: &Slapd, pki: &Pki, url: &str, name: &str, key: Option<&Path>) -> Server {
    let o = Options::new(&slapd.url);
    let (dir, config) = radsec_config(o, pki, "nas.example.org", "", 4000, "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, common::radmfa::on_postgres(&text, url, Some(name))).unwrap();
    if let Some(key) = key {
        std::fs::copy(key, dir.path().join("radmfa.key")).unwrap();
    }
    Server::start_with(dir, config)
}

/// The client's RadSec files that hold no certificate (a key file given for the
/// certificate, a CRL for the CA) are named as such, before any connection: they were
/// read as "peer sent no certificates" and the server's "UnknownIssuer".
#[test]
fn client_radsec_files_without_a_certificate_are_named() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make(pki_dir.path(), "files");
    let out = our_client(9, &pki, &pki.client_key, &["status", "--timeout", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--radsec-ca: no certificate in"),
        "{err}"
    );
    // And an admin's first try at one NAS over both transports, two entries for one
    // address, is told of transport = "both".
    let o = Options::new("ldap://127.0.0.1:1");
    let udp_too = format!(
        "\n[[client]]\nname = \"local-udp\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n"
    );
    let (_dir, config) = radsec_config(o, &pki, "nas.example.org", "", 4000, &udp_too);
    let out = Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("transport = \"both\""),
        "{err}"
    );
}

fn our_client(port: u16, pki: &Pki, ca: &Path, args: &[&str]) -> std::process::Output {
    Command::new(common::radmfa::bin())
        .arg("client")
        .args(args)
        .args(["--server", &format!("127.0.0.1:{port}")])
        .arg("--radsec-cert")
        .arg(&pki.client_cert)
        .arg("--radsec-key")
        .arg(&pki.client_key)
        .arg("--radsec-ca")
        .arg(ca)
        // A NAS's UDP secret left in the environment (as the docs suggest for UDP checks)
        // is not RadSec's: the client signs with "radsec" all the same. It signed with this
        // one, and the server closed the connection.
        .env("RADMFA_SECRET", "a-udp-nas-secret")
        .output()
        .unwrap()
}

/// A `radsec_name` written fully qualified, with the root's dot ("nas.example.org."), is
/// the name its certificate carries without one: it was taken as written and matched no
/// certificate, so the NAS was refused with a config `config check` called fine.
#[test]
fn a_radsec_name_with_the_roots_dot_matches_its_certificate() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make_with_sans(
        pki_dir.path(),
        "named",
        "DNS:radmfa.example.org",
        "DNS:nas.example.org",
    );
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start(&slapd, &pki, "nas.example.org.");
    let port = radsec_port(&srv);
    let status = [
        "status",
        "--timeout",
        "2",
        "--radsec-server-name",
        "radmfa.example.org",
    ];
    let out = our_client(port, &pki, &pki.ca, &status);
    assert!(out.status.success(), "{out:?}\n{}", srv.log());
}

/// A server certificate issued to a DNS name only, as most are: `client status` checks it
/// against --radsec-server-name, and without one says to give it (the address is not in
/// the certificate) instead of leaving the admin with no way to test.
#[test]
fn the_client_checks_a_server_certificate_by_its_dns_name() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make_with_sans(
        pki_dir.path(),
        "named",
        "DNS:radmfa.example.org",
        "DNS:nas.example.org",
    );
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start(&slapd, &pki, "nas.example.org");
    let port = radsec_port(&srv);
    let out = our_client(port, &pki, &pki.ca, &["status", "--timeout", "2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--radsec-server-name"),
        "{err}"
    );
    let name = ["status", "--timeout", "2", "--radsec-server-name"];
    let out = our_client(
        port,
        &pki,
        &pki.ca,
        &[&name[..], &["radmfa.example.org"]].concat(),
    );
    assert!(out.status.success(), "{out:?}\n{}", srv.log());
    let out = our_client(
        port,
        &pki,
        &pki.ca,
        &[&name[..], &["other.example.org"]].concat(),
    );
    assert!(
        !out.status.success(),
        "a name the certificate lacks: {out:?}"
    );
}

#[test]
fn a_login_through_radsecproxy_over_mutual_tls() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let rogue = Pki::make(pki_dir.path(), "rogue");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    // The client certificate is issued to nas.example.org (tests/common/pki.rs). On the
    // wildcard address, as by default: the audit record names the address the proxy
    // connected to.
    let srv = start_with(
        &slapd,
        &good,
        "nas.example.org",
        r#"listen = ["0.0.0.0:0"]"#,
        4000,
    );
    let port = radsec_port(&srv);
    let seed = srv.enroll("alice", &[]);

    let proxy = Proxy::start(
        pki_dir.path(),
        "good",
        port,
        &good.ca,
        &good.client_cert,
        &good.client_key,
    );
    let r = radclient(
        &proxy.addr(),
        PROXY_SECRET,
        "User-Name = alice, User-Password = alice-pw, Message-Authenticator = 0x00",
    );
    assert_eq!(
        r.code,
        "Access-Challenge",
        "{}\nradmfa:\n{}\nradsecproxy:\n{}",
        r.output,
        srv.log(),
        std::fs::read_to_string(pki_dir.path().join("good.log")).unwrap_or_default()
    );
    let state = r.state.expect("State in the challenge");
    // So that the next step's code, used below, stays in the window (see its doc).
    common::peers::clear_of_step_boundary(5);
    let code = totp(&seed, now(), &[]);
    let r = radclient(
        &proxy.addr(),
        PROXY_SECRET,
        &format!(
            "User-Name = alice, User-Password = {code}, State = {state}, Message-Authenticator = 0x00"
        ),
    );
    assert_eq!(r.code, "Access-Accept", "{}\n{}", r.output, srv.log());
    let audit = srv.audit_json("alice");
    assert_eq!(audit[0]["result"], "accept");
    assert_eq!(audit[0]["nas_name"], "local", "{:?}", audit[0]);
    assert_eq!(audit[0]["server_ip"], "127.0.0.1", "{:?}", audit[0]);
    let records = audit.len();
    drop(proxy);

    // A client certificate from another CA gets no TLS session, so no answer.
    let proxy = Proxy::start(
        pki_dir.path(),
        "rogue",
        port,
        &good.ca,
        &rogue.client_cert,
        &rogue.client_key,
    );
    let r = radclient(
        &proxy.addr(),
        PROXY_SECRET,
        "User-Name = alice, User-Password = alice-pw, Message-Authenticator = 0x00",
    );
    assert_eq!(r.code, "none", "{}", r.output);
    assert!(
        srv.log_shows("its RadSec (TLS) handshake failed"),
        "no handshake failure logged:\n{}",
        srv.log()
    );
    assert_eq!(
        srv.audit_json("alice").len(),
        records,
        "the rogue request reached the pipeline"
    );

    // radmfa's own client speaks RadSec too, for an admin checking the deployment.
    let client = |pki: &Pki, args: &[&str]| our_client(port, pki, &good.ca, args);
    let out = client(&good, &["status"]);
    assert!(out.status.success(), "{out:?}");
    let next = totp(&seed, now() + 30, &[]);
    let login = ["login", "alice", "--password", "alice-pw", "--code", &next];
    let out = client(&good, &login);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{}", srv.log());
    assert!(
        text.contains("Access-Challenge") && text.contains("Access-Accept"),
        "{text}"
    );
    let out = client(&rogue, &["status"]);
    assert!(
        !out.status.success(),
        "a rogue certificate got an answer: {out:?}"
    );
}

/// Node A goes away in the middle of a login behind radsecproxy (the RadSec proxy of eduroam
/// and many NAS sites): A sent the challenge, then stopped for an upgrade or crashed.
/// radsecproxy sees A's connection close and sends the code to node B, which finishes the
/// login from the challenge A stored in PostgreSQL.
#[test]
fn radsecproxy_moves_to_node_b_when_node_a_stops_and_b_finishes_the_login() {
    failover_through_radsecproxy(|mut a| {
        let status = a.stop();
        assert!(status.success(), "node A: {status}");
    });
}

#[test]
fn radsecproxy_moves_to_node_b_when_node_a_is_killed_and_b_finishes_the_login() {
    failover_through_radsecproxy(drop); // Child::kill: SIGKILL
}

fn failover_through_radsecproxy(end_node_a: impl FnOnce(Server)) {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let pg = PgCluster::start();
    let url = pg.url();
    let a = pg_radsec_node(&slapd, &pki, &url, "node-a", None);
    let b = pg_radsec_node(
        &slapd,
        &pki,
        &url,
        "node-b",
        Some(&a.dir.path().join("radmfa.key")),
    );
    let seed = a.enroll("alice", &[]);
    let ports = [radsec_port(&a), radsec_port(&b)];
    let proxy = Proxy::start_many(
        pki_dir.path(),
        "ha",
        &ports,
        &pki.ca,
        &pki.client_cert,
        &pki.client_key,
    );
    let proxy_log = || std::fs::read_to_string(pki_dir.path().join("ha.log")).unwrap_or_default();
    let login = |attrs: String| {
        radclient(
            &proxy.addr(),
            PROXY_SECRET,
            &format!("User-Name = alice, {attrs}, Message-Authenticator = 0x00"),
        )
    };

    // So that the code used below stays in the window (see its doc).
    common::peers::clear_of_step_boundary(5);
    let r = login("User-Password = alice-pw".into());
    assert_eq!(r.code, "Access-Challenge", "{}\n{}", r.output, proxy_log());
    let state = r.state.expect("State in the challenge");
    let audit = a.audit_json("alice");
    assert_eq!(audit[0]["result"], "challenge", "{:?}", audit[0]);
    assert_eq!(
        audit[0]["server_name"], "node-a",
        "round 1 went to B: {:?}",
        audit[0]
    );

    end_node_a(a);
    let until = Instant::now() + Duration::from_secs(10);
    while !proxy_log().contains("connection to server radmfa0 lost") {
        assert!(
            Instant::now() < until,
            "radsecproxy did not see node A's connection close:\n{}",
            proxy_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let code = totp(&seed, now(), &[]);
    let r = login(format!("User-Password = {code}, State = {state}"));
    assert_eq!(
        r.code,
        "Access-Accept",
        "{}\nnode B:\n{}\nradsecproxy:\n{}",
        r.output,
        b.log(),
        proxy_log()
    );
    let audit = b.audit_json("alice");
    assert_eq!(audit[0]["result"], "accept", "{:?}", audit[0]);
    assert_eq!(audit[0]["server_name"], "node-b", "{:?}", audit[0]);
}

#[test]
fn a_key_file_without_a_key_stops_the_start_and_names_the_key() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new("ldap://127.0.0.1:1");
    // The certificate where the key should be: it parses as PEM, but holds no key (kept
    // private, as a key file must be).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&good.server_cert, std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    o.extra = format!(
        "\n[radsec]\nlisten = [\"127.0.0.1:0\"]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n",
        good.server_cert, good.server_cert, good.ca
    );
    let config = common::radmfa::write_config(dir.path(), &o);
    let out = Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a key: {err}");
    assert!(err.contains("radsec.key_file: no private key in"), "{err}");
    // `config check` says the same before anyone restarts the service.
    let out = Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "config check passed: {err}");
    assert!(err.contains("radsec.key_file: no private key in"), "{err}");
    // A key protected by a passphrase is said to be one: it read as "no private key".
    let locked = pki_dir.path().join("locked-key.pem");
    let made = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-passout", "pass:secret-words", "-in"])
        .arg(&good.server_key)
        .arg("-out")
        .arg(&locked)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    o.extra = format!(
        "\n[radsec]\nlisten = [\"127.0.0.1:0\"]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n",
        good.server_cert, locked, good.ca
    );
    let config = common::radmfa::write_config(dir.path(), &o);
    let out = Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("holds a passphrase-protected key"),
        "{err}"
    );
    // An RSA key under 2048 bits is said to be too small: ring's "failed to parse private
    // key" sent the admin looking for a damaged file.
    let (small_key, small_cert) = (
        pki_dir.path().join("k1024.pem"),
        pki_dir.path().join("c1024.pem"),
    );
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=radsec.test", "-keyout"])
        .arg(&small_key)
        .arg("-out")
        .arg(&small_cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&small_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    o.extra = format!(
        "\n[radsec]\nlisten = [\"127.0.0.1:0\"]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n",
        small_cert, small_key, good.ca
    );
    let config = common::radmfa::write_config(dir.path(), &o);
    let out = Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is a 1024-bit RSA key") && err.contains("2048"),
        "{err}"
    );
}

/// Keys radmfa's TLS (ring) cannot use are named as such: a P-521 server key matches its
/// certificate, yet "do not form a usable pair" sent the admin comparing moduli; and a CA
/// with an RSA-1024 key passed `config check`, then every NAS it issued was refused at its
/// handshake.
#[test]
fn keys_tls_cannot_use_are_named() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new("ldap://127.0.0.1:1");
    let new_pair = |name: &str, newkey: &[&str]| {
        let (key, cert) = (
            pki_dir.path().join(format!("k-{name}.pem")),
            pki_dir.path().join(format!("c-{name}.pem")),
        );
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey"])
            .args(newkey)
            .args([
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=radsec.test",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        (key, cert)
    };
    let section = |cert: &std::path::Path, key: &std::path::Path, ca: &std::path::Path| {
        format!(
            "\n[radsec]\nlisten = [\"127.0.0.1:0\"]\ncert_file = {cert:?}\nkey_file = {key:?}\nca_file = {ca:?}\n"
        )
    };
    let check = |o: &Options| {
        let config = common::radmfa::write_config(dir.path(), o);
        let out = Command::new(common::radmfa::bin())
            .arg("--config")
            .arg(&config)
            .args(["config", "check"])
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    let (p521_key, p521_cert) = new_pair("p521", &["ec", "-pkeyopt", "ec_paramgen_curve:P-521"]);
    o.extra = section(&p521_cert, &p521_key, &good.ca);
    let (passed, err) = check(&o);
    assert!(
        !passed
            && err.contains("is an ECDSA P-521 key")
            && err.contains("P-256")
            && !err.contains("usable pair"),
        "{err}"
    );
    let out = Command::new(common::radmfa::bin())
        .args(["client", "login", "alice", "--server", "127.0.0.1:2083"])
        .args(["--password", "pw", "--radsec-cert"])
        .arg(&p521_cert)
        .arg("--radsec-key")
        .arg(&p521_key)
        .arg("--radsec-ca")
        .arg(&good.ca)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--radsec-key") && err.contains("P-521 key"),
        "{err}"
    );
    // An RSA key over 4096 bits: ring signs with none (it verifies up to 8192).
    let (big_key, big_cert) = new_pair("rsa5120", &["rsa:5120"]);
    o.extra = section(&big_cert, &big_key, &good.ca);
    let (passed, err) = check(&o);
    assert!(
        !passed && err.contains("is a 5120-bit RSA key") && err.contains("4096"),
        "{err}"
    );
    // A CA with a key ring cannot verify with: warned of, naming the CA.
    let (_, weak_ca) = new_pair("rsa1024", &["rsa:1024"]);
    let both = pki_dir.path().join("both-cas.pem");
    std::fs::write(
        &both,
        [
            std::fs::read(&good.ca).unwrap(),
            std::fs::read(&weak_ca).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    o.extra = section(&good.server_cert, &good.server_key, &both);
    let (_, said) = check(&o);
    let warned: Vec<_> = said
        .lines()
        .filter(|l| l.contains("radsec.ca_file: the CA"))
        .collect();
    assert!(
        warned.len() == 1
            && warned[0].contains("CN=radsec.test")
            && warned[0].contains("a 1024-bit RSA key"),
        "{said}"
    );
    // The good CA alone: no such warning.
    o.extra = section(&good.server_cert, &good.server_key, &good.ca);
    let (_, said) = check(&o);
    assert!(!said.contains("radsec.ca_file: the CA"), "{said}");
}

/// A client certificate from the right CA with `san` gets no answer from an entry that
/// pins `radsec_name`, and the log says why.
fn refused_for_its_name(san: &str, radsec_name: &str) {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make_with_client_san(pki_dir.path(), "pki", san);
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start(&slapd, &pki, radsec_name);
    let port = radsec_port(&srv);
    let out = our_client(port, &pki, &pki.ca, &["status", "--timeout", "2"]);
    assert!(!out.status.success(), "answered: {out:?}");
    // The client says what a silent close most often is ("early eof" alone, before).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("its log says which"), "{err}");
    assert!(
        srv.log_shows("not issued to this [[client]] entry's radsec_name"),
        "{}",
        srv.log()
    );
}

/// A `[[client]]` entry is for one transport: with radsec_name for RadSec only (its secret,
/// which TLS does not use, is no key to UDP), without it for UDP only (turning `[radsec]` on
/// does not let any certificate from its CA in from the entry's addresses), and for both
/// when it says so. Before, every entry took both.
#[test]
fn a_client_entry_is_for_its_transport_only() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make(pki_dir.path(), "pki");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let udp = |srv: &Server| {
        radclient(
            &format!("127.0.0.1:{}", srv.port()),
            SECRET,
            "User-Name = alice, User-Password = alice-pw, Message-Authenticator = 0x00",
        )
    };
    let tls = |srv: &Server| {
        our_client(
            radsec_port(srv),
            &pki,
            &pki.ca,
            &["status", "--timeout", "2"],
        )
    };
    let wrong = "does not take this transport";

    let radsec_only = start(&slapd, &pki, "nas.example.org");
    radsec_only.enroll("alice", &[]);
    assert!(tls(&radsec_only).status.success(), "{}", radsec_only.log());
    let r = udp(&radsec_only);
    assert_eq!(r.code, "none", "{}", r.output);
    assert!(radsec_only.log_shows(wrong), "{}", radsec_only.log());

    let udp_only = start(&slapd, &pki, "");
    udp_only.enroll("alice", &[]);
    let r = udp(&udp_only);
    assert_eq!(
        r.code,
        "Access-Challenge",
        "{}\n{}",
        r.output,
        udp_only.log()
    );
    let out = tls(&udp_only);
    assert!(!out.status.success(), "answered over TLS: {out:?}");
    assert!(udp_only.log_shows(wrong), "{}", udp_only.log());

    let both = start_client_opts(
        Options::new(&slapd.url),
        &pki,
        "nas.example.org",
        "",
        4000,
        BOTH,
    );
    both.enroll("alice", &[]);
    assert!(tls(&both).status.success(), "{}", both.log());
    let r = udp(&both);
    assert_eq!(r.code, "Access-Challenge", "{}\n{}", r.output, both.log());
}

#[test]
fn a_certificate_not_issued_to_the_clients_radsec_name_gets_no_answer() {
    // A certificate from the right CA, but issued to nas.example.org.
    refused_for_its_name("DNS:nas.example.org", "vpn1.example.org");
}

/// A wildcard certificate (`*.example.org`) from the right CA does not pass for the one
/// name an entry pins: `radsec_name` means that certificate, not any that a web server of
/// that name could use. webpki's name check, made for servers, accepted it.
#[test]
fn a_wildcard_certificate_does_not_pass_for_the_clients_radsec_name() {
    refused_for_its_name("DNS:*.example.org", "nas.example.org");
}

/// A Python TLS peer: connects to the RadSec port (argv 1) trusting the CA argv 2 for the
/// server, with the client certificate and key argv 3 and 4 if given; prints "refused: why"
/// if its side saw the handshake fail, else "closed" once the server closes.
const TRY_TLS: &str = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
if len(sys.argv) > 3:
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
try:
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
    s.settimeout(2)
    print("closed" if not s.recv(1) else "data")
except (OSError, ssl.SSLError) as e:
    print("refused: %s" % e)
"#;

/// [`TRY_TLS`] against `srv`, trusting `ca`, presenting the client certificate and key
/// `client` if given: what the peer printed.
fn try_tls(srv: &Server, ca: &Path, client: Option<(&Path, &Path)>) -> String {
    let mut cmd = Command::new(common::peers::python());
    cmd.args(["-c", TRY_TLS, &radsec_port(srv).to_string()])
        .arg(ca);
    if let Some((cert, key)) = client {
        cmd.arg(cert).arg(key);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The first log line that `matches`, waited for up to 5 s.
fn log_line(srv: &Server, matches: impl Fn(&str) -> bool) -> String {
    let t = Instant::now();
    loop {
        if let Some(l) = srv.log().lines().find(|l| matches(l)) {
            return l.to_string();
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A NAS that does not trust radmfa's server certificate ends the handshake with a fatal
/// alert. The log says the NAS refused radmfa's certificate and names the alert and
/// radsec.cert_file: it blamed the NAS's certificate (none, not from ca_file, revoked), and
/// the admin looked at the wrong host.
#[test]
fn a_nas_refusing_radmfas_certificate_is_told_apart_from_a_refused_nas() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let other = Pki::make(pki_dir.path(), "other");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start(&slapd, &good, "nas.example.org");
    // The NAS's certificate is good; the CA it trusts for the server is not radmfa's.
    let said = try_tls(&srv, &other.ca, Some((&good.client_cert, &good.client_key)));
    assert!(said.starts_with("refused"), "{said}");
    let line = log_line(&srv, |l| {
        l.contains("radmfa::drops") && l.contains("UnknownCA")
    });
    assert!(
        line.contains("the NAS refused radmfa's side of it with a fatal alert"),
        "{line}"
    );
    assert!(
        line.contains("the NAS does not trust the CA that issued radsec.cert_file"),
        "{line}"
    );
    assert!(!line.contains("client certificate"), "{line}");
}

/// Each cause of refused handshakes from one source gets its first line: the rate limit
/// was per source, so after a port probe's line, a NAS's certificate from the wrong CA, or
/// none, was only a count a minute later, under the probe's cause.
#[test]
fn each_cause_of_a_failed_handshake_from_one_source_is_logged() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let other = Pki::make(pki_dir.path(), "other");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start(&slapd, &good, "nas.example.org");
    // A port probe: connects and closes.
    drop(std::net::TcpStream::connect(("127.0.0.1", radsec_port(&srv))).unwrap());
    let probe = "the connection closed before it was done";
    assert!(srv.log_shows(probe), "{}", srv.log());
    let wrong_ca = "is not signed by a CA in radsec.ca_file";
    let none = "presented no client certificate";
    for _ in 0..2 {
        try_tls(
            &srv,
            &good.ca,
            Some((&other.client_cert, &other.client_key)),
        );
        try_tls(&srv, &good.ca, None);
    }
    let drops =
        |needle: &'static str| move |l: &str| l.contains("radmfa::drops") && l.contains(needle);
    assert_eq!(
        srv.log_lines_at_least(1, drops(wrong_ca)),
        1,
        "{}",
        srv.log()
    );
    assert_eq!(srv.log_lines_at_least(1, drops(none)), 1, "{}", srv.log());
    assert_eq!(srv.log_lines_at_least(1, drops(probe)), 1, "{}", srv.log());
    let line = log_line(&srv, drops(wrong_ca));
    assert!(
        line.contains("UnknownIssuer"),
        "its own cause in brackets: {line}"
    );
}

/// `radmfa_radsec_handshake_failures_total` says why: a port probe, a NAS's certificate
/// refused (the wrong CA, none) and a NAS refusing radmfa's each count under their own
/// reason. They were one number, and an alert on it could not tell a scan from trouble.
#[test]
fn failed_handshakes_are_counted_by_reason() {
    let (pki_dir, good, _slapd, srv) = alice_with_metrics(4000);
    let other = Pki::make(pki_dir.path(), "other");
    drop(std::net::TcpStream::connect(("127.0.0.1", radsec_port(&srv))).unwrap());
    try_tls(
        &srv,
        &good.ca,
        Some((&other.client_cert, &other.client_key)),
    );
    try_tls(&srv, &good.ca, None);
    try_tls(&srv, &other.ca, Some((&good.client_cert, &good.client_key)));
    let want = [
        "radmfa_radsec_handshake_failures_total{reason=\"closed\"} 1\n",
        "radmfa_radsec_handshake_failures_total{reason=\"client_certificate\"} 2\n",
        "radmfa_radsec_handshake_failures_total{reason=\"peer_refused\"} 1\n",
        "radmfa_radsec_handshake_failures_total{reason=\"timeout\"} 0\n",
    ];
    let t = Instant::now();
    loop {
        let body = http_get(srv.metrics_addr(), "/metrics").2;
        if want.iter().all(|w| body.contains(w)) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client certificate from `pki`'s CA with the subject CN `cn` and no subjectAltName, in
/// `dir`: its certificate and key.
fn cn_only_client(pki: &Pki, dir: &Path, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
               extendedKeyUsage=clientAuth\n";
    std::fs::write(dir.join("cn-only.ext"), ext).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let (ca, ca_key) = (pki.ca.to_str().unwrap(), pki.ca_key.to_str().unwrap());
    let subj = format!("/CN={cn}");
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "cn-only-key.pem",
        "-out",
        "cn-only.csr",
        "-subj",
        &subj,
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "cn-only.csr",
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "cn-only.ext",
        "-out",
        "cn-only.pem",
    ]);
    (dir.join("cn-only.pem"), dir.join("cn-only-key.pem"))
}

/// A certificate's serial as `openssl x509 -serial` prints it.
fn serial_of(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("serial=")
        .expect("a serial")
        .to_string()
}

/// A certificate with CN=nas1.test and no subjectAltName, refused for radsec_name
/// "nas1.test": the line says what it carries, no DNS subjectAltName and a CN that is not
/// matched, and its serial. It said only "not issued to radsec_name", and the admin, who
/// saw CN=nas1.test on the certificate, took the message for wrong.
#[test]
fn a_certificate_refused_for_its_name_is_described() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let (cert, key) = cn_only_client(&good, pki_dir.path(), "nas1.test");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start(&slapd, &good, "nas1.test");
    try_tls(&srv, &good.ca, Some((&cert, &key)));
    let line = log_line(&srv, |l| {
        l.contains("not issued to this [[client]] entry's radsec_name")
    });
    let serial = serial_of(&cert);
    assert!(
        line.contains(&format!(
            "certificate serial {serial}, no DNS subjectAltName"
        )),
        "{line}"
    );
    assert!(
        line.contains("its subject CN \"nas1.test\" is not matched"),
        "{line}"
    );
}

/// `openssl s_client` holding a RadSec connection open (its stdin stays open).
struct Holder(Child);

impl Holder {
    /// Connects with `pki`'s client certificate; returns once the handshake is done.
    fn connect(port: u16, pki: &Pki) -> Holder {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(require("openssl", "openssl"))
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(&pki.client_cert)
            .arg("-key")
            .arg(&pki.client_key)
            .arg("-CAfile")
            .arg(&pki.ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        // s_client prints the session once the handshake is complete.
        let done = out
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("Verify return code"));
        assert!(done, "s_client did not complete a handshake");
        Holder(child)
    }

    /// Whether the server closed the connection (s_client exits then) within `within`.
    fn closed_within(&mut self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.0.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Any host in a client's address range can open RadSec connections, so they are bounded:
/// `max_connections` at once (more are closed on arrival), and one silent for
/// `idle_timeout_secs` is closed, freeing its slot.
#[test]
fn connections_are_capped_and_idle_ones_closed() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let radsec =
        "max_connections = 2\nidle_timeout_secs = 3\n\n[metrics]\nlisten = \"127.0.0.1:0\"";
    let srv = start_with(&slapd, &good, "nas.example.org", radsec, 1500);
    let port = radsec_port(&srv);
    let metric = |name: &str| -> u64 {
        let body = http_get(srv.metrics_addr(), "/metrics").2;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
            .trim()
            .parse()
            .unwrap()
    };

    // The server certificate (valid for 2 days from now) and when it expires.
    let expiry = metric("radmfa_radsec_certificate_expiry_timestamp_seconds") as i64;
    let in_2_days = now() + 2 * 86_400;
    assert!(
        (in_2_days - 600..=in_2_days).contains(&expiry),
        "{expiry} is not in 2 days ({in_2_days})"
    );

    let opened = Instant::now();
    let mut held = [Holder::connect(port, &good), Holder::connect(port, &good)];
    assert_eq!(metric("radmfa_radsec_connections"), 2);
    // A third connection is closed before any TLS: no answer.
    let out = our_client(port, &good, &good.ca, &["status", "--timeout", "1"]);
    assert!(!out.status.success(), "a third connection got an answer");
    let limit = "radmfa_radsec_closed_total{reason=\"connection_limit\"}";
    assert_eq!(metric(limit), 1);
    assert!(
        srv.log_shows("radsec.max_connections RadSec connections are already open"),
        "{}",
        srv.log()
    );
    // Idle for 3 s: both closed by radmfa, not before.
    for h in &mut held {
        assert!(
            h.closed_within(Duration::from_secs(6)),
            "an idle connection stayed open"
        );
    }
    assert!(
        opened.elapsed() >= Duration::from_secs(3),
        "closed after {:?}, before the idle timeout",
        opened.elapsed()
    );
    assert!(
        srv.log_shows("radsec: closing the connection, idle for 3 s"),
        "{}",
        srv.log()
    );
    assert_eq!(metric("radmfa_radsec_closed_total{reason=\"idle\"}"), 2);
    // Their slots are free again (given back just after the TLS session's end).
    let until = Instant::now() + Duration::from_secs(3);
    while metric("radmfa_radsec_connections") != 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric("radmfa_radsec_connections"), 0);
    let out = our_client(port, &good, &good.ca, &["status", "--timeout", "2"]);
    assert!(out.status.success(), "{out:?}\n{}", srv.log());
}

/// Sends Status-Server requests over RadSec as fast as it can and never reads a reply,
/// with a small receive buffer; prints how many it sent and whether the server closed the
/// connection (within 30 s), then holds the socket until stdin closes. The server's socket
/// buffer takes about 120,000 replies before its writes wait: about 5 s here on an idle
/// machine, and more than 10 s (the bound before) with other tests beside it.
const NOT_READING: &str = r#"
import hashlib, hmac, os, socket, ssl, struct, sys, time
port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.connect(("127.0.0.1", port))
s = ctx.wrap_socket(raw)
s.settimeout(2)
def status(i):
    auth = os.urandom(16)
    head = struct.pack("!BBH", 12, i, 38) + auth
    ma = b"\x50\x12" + bytes(16)
    mac = hmac.new(b"radsec", head + ma, hashlib.md5).digest()
    return head + b"\x50\x12" + mac
packets = [status(i) for i in range(256)]
sent, start, how = 0, time.time(), "open"
try:
    while time.time() - start < 30:
        s.sendall(b"".join(packets))
        sent += 256
except (OSError, ssl.SSLError):
    how = "closed"
print(sent, how, flush=True)
sys.stdin.read()
"#;

/// A RadSec peer that sends requests but stops reading replies must not tie up the
/// server: radmfa closes its connection, and UDP clients are answered all along.
#[test]
fn a_peer_that_stops_reading_is_disconnected_and_udp_goes_on() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let o = Options::new(&slapd.url);
    let srv = start_client_opts(o, &good, "nas.example.org", "", 4000, BOTH);
    let port = radsec_port(&srv);

    let port = port.to_string();
    let args = [
        port.as_ref(),
        good.client_cert.as_os_str(),
        good.client_key.as_os_str(),
    ];
    let (mut flood, line) =
        python_first_line(NOT_READING, &[&args[..], &[good.ca.as_os_str()]].concat());
    eprintln!("not-reading peer: {line}");
    // The peer still holds its socket, unread replies and all. UDP is served meanwhile: no
    // request is left waiting to write its reply, holding an in-flight permit.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 4096];
    for id in 0..3u8 {
        let (status, _) = radmfa::radius::client::status_server(id, SECRET.as_bytes());
        udp.send_to(&status, srv.addr).unwrap();
        let (n, _) = udp
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no UDP reply while the peer stalls ({e}); {line}"));
        assert_eq!(
            (buf[0], buf[1]),
            (2, id),
            "Status-Server answered with Access-Accept"
        );
        assert!(n >= 20);
    }
    assert!(
        line.ends_with("closed"),
        "radmfa kept the connection: {line}"
    );
    assert!(
        srv.log_shows("its RadSec connection stopped reading replies"),
        "{}",
        srv.log()
    );
    drop(flood.stdin.take());
    assert!(flood.wait().unwrap().success());
}

/// A crl_file with no CRL from a CA in ca_file (here: the other CA's file, copied by
/// mistake) refuses every NAS under that CA, as revocation fails closed. `config check` and
/// the server say so, naming both mismatches, and the refused handshake says what to add,
/// not only webpki's "UnknownRevocationStatus".
#[test]
fn a_crl_file_without_the_ca_s_crl_is_named() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let other = Pki::make(pki_dir.path(), "other");
    let crl = pki_dir.path().join("clients.crl");
    other.write_crl(&crl, &[]);
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start_with(
        &slapd,
        &good,
        "nas.example.org",
        &format!("crl_file = {crl:?}"),
        4000,
    );
    let out = srv.cli(&["config", "check"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("holds no CRL from CA") && text.contains("is from no CA in ca_file"),
        "{text}"
    );
    let port = radsec_port(&srv);
    let out = our_client(port, &good, &good.ca, &["status", "--timeout", "2"]);
    assert!(!out.status.success(), "answered without its CA's CRL");
    let t = Instant::now();
    while !srv.log().lines().any(|l| {
        l.contains("handshake failed") && l.contains("holds no CRL from the CA that issued")
    }) {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(srv.log_shows("holds no CRL from CA"), "{}", srv.log());
    // With the right CA's CRL, nothing is said.
    good.write_crl(&crl, &[]);
    let out = srv.cli(&["config", "check"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && !text.contains("CRL"), "{text}");
}

/// An issuing CA listed in ca_file beside its root (as the "the NAS does not send the
/// intermediate CA" hint leads an admin to do), then revoked by the root's CRL, vouches for
/// no NAS certificate any more. Every ca_file certificate was a trust anchor, so a NAS's
/// path ended at the issuing CA and the root's CRL was never asked about it.
#[test]
fn an_issuing_ca_in_ca_file_revoked_by_its_root_vouches_for_no_nas() {
    let pki_dir = tempfile::tempdir().unwrap();
    let d = pki_dir.path();
    let root = Pki::make(d, "root");
    let issuing = root.issuing_ca(d, "issuing");
    // ca_file: the root and the issuing CA; crl_file: both CAs' CRLs.
    let bundle = d.join("ca-bundle.pem");
    let cat = |parts: &[&Path], out: &Path| {
        let text: String = parts
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, out).unwrap();
    };
    cat(&[&root.ca, &issuing.ca], &bundle);
    let (root_crl, issuing_crl, crl) =
        (d.join("root.crl"), d.join("issuing.crl"), d.join("all.crl"));
    root.write_crl(&root_crl, &[]);
    issuing.write_crl(&issuing_crl, &[]);
    cat(&[&root_crl, &issuing_crl], &crl);
    let server = Pki {
        ca: bundle,
        ca_key: root.ca_key.clone(),
        server_cert: root.server_cert.clone(),
        server_key: root.server_key.clone(),
        client_cert: issuing.client_cert.clone(),
        client_key: issuing.client_key.clone(),
    };
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let radsec = format!("crl_file = {crl:?}");
    let srv = start_with(&slapd, &server, "nas.example.org", &radsec, 4000);
    let port = radsec_port(&srv);
    let status = || our_client(port, &server, &root.ca, &["status", "--timeout", "2"]);
    let out = status();
    assert!(out.status.success(), "{out:?}\n{}", srv.log());
    // The root revokes the issuing CA: its NAS certificate gets no session.
    root.write_crl(&root_crl, &[&issuing.ca]);
    cat(&[&root_crl, &issuing_crl], &crl);
    let t = Instant::now();
    while status().status.success() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "a NAS certificate of a revoked issuing CA still gets answers:\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(srv.log_shows("Revoked"), "{}", srv.log());
}

/// With `crl_file`, a revoked client certificate gets no session. The file is watched: a
/// new CRL applies to the next connection, without a restart.
#[test]
fn a_revoked_certificate_is_refused_once_the_new_crl_is_in_place() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let crl = pki_dir.path().join("clients.crl");
    good.write_crl(&crl, &[]);
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let radsec = format!("crl_file = {crl:?}");
    let srv = start_with(&slapd, &good, "nas.example.org", &radsec, 4000);
    let port = radsec_port(&srv);
    let status = || our_client(port, &good, &good.ca, &["status", "--timeout", "2"]);
    let out = status();
    assert!(
        out.status.success(),
        "not revoked yet: {out:?}\n{}",
        srv.log()
    );
    // A connection opened before the revocation.
    let (mut held, said) = hold_from(port, &good, "127.0.0.1");
    assert_eq!(said, "up", "{}", srv.log());

    good.write_crl(&crl, &[&good.client_cert]);
    let out = status();
    assert!(!out.status.success(), "a revoked certificate got an answer");
    // The client says what the server's alert means, not the radsec_name hint for a bare
    // close (red team: every alert got that hint).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused this client certificate as revoked")
            && !err.contains("its log says which"),
        "{err}"
    );
    // The open connection keeps its session until a reload, which checks it again.
    assert!(!srv.log().contains("no longer verifies"), "{}", srv.log());
    let hup = Command::new("kill")
        .args(["-HUP", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // The line names the certificate, by the serial the CRL lists.
    let closed = format!(
        "its client certificate no longer verifies (invalid peer certificate: Revoked; \
         certificate serial {}",
        serial_of(&good.client_cert)
    );
    let t = Instant::now();
    while !srv.log().contains(&closed) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the revoked connection was not closed at the reload:\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = held.kill();
    let _ = held.wait();
    assert!(
        srv.log_shows("radsec: certificate, key, CA or CRL file changed; reloaded"),
        "{}",
        srv.log()
    );
    assert!(
        srv.log_shows("its RadSec (TLS) handshake failed"),
        "{}",
        srv.log()
    );
    assert!(
        srv.log()
            .lines()
            .any(|l| l.contains("its RadSec (TLS) handshake failed") && l.contains("Revoked")),
        "the handshake failure names the revocation:\n{}",
        srv.log()
    );

    // A CRL file caught half-written cannot be used: the last good configuration (with the
    // revocation) stays.
    std::fs::write(&crl, "-----BEGIN X509 CRL-----\nMIIB\n").unwrap();
    let out = status();
    assert!(!out.status.success(), "answered after a broken CRL file");
    assert!(
        srv.log_shows("keeping the previous TLS configuration"),
        "{}",
        srv.log()
    );

    // A CRL that lifts the revocation, but writable by every account: refused, and the
    // revocation stays. Once `chmod o-w`, it is taken (a chmod moves neither the file's
    // modification time nor its length).
    use std::os::unix::fs::PermissionsExt as _;
    good.write_crl(&crl, &[]);
    std::fs::set_permissions(&crl, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = status();
    assert!(!out.status.success(), "answered with an open CRL file");
    assert!(
        srv.log_shows("radsec.crl_file: ") && srv.log_shows("can be changed by every account"),
        "{}",
        srv.log()
    );
    std::fs::set_permissions(&crl, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = status();
    assert!(
        out.status.success(),
        "the CRL was not taken after its chmod: {out:?}\n{}",
        srv.log()
    );
}

/// `radmfa config check` on the `[radsec]` of `pki` (with `radsec` lines added): its output.
fn radsec_config_check(pki: &Pki, radsec: &str) -> String {
    let o = Options::new("ldap://127.0.0.1:1");
    let (_dir, config) = radsec_config(o, pki, "nas.example.org", radsec, 4000, "");
    let out = Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A server certificate about to expire is warned about by `config check` (and so in the
/// journal at start and at each reload) while there is time to renew it; one valid for
/// longer than 30 days is not, and its notAfter is what the gauge reports.
#[test]
fn config_check_warns_of_a_radsec_certificate_about_to_expire() {
    let pki_dir = tempfile::tempdir().unwrap();
    let long = Pki::make_with_server_days(pki_dir.path(), "long", 400);
    let out = radsec_config_check(&long, "");
    assert!(!out.contains("warning: radsec:"), "{out}");

    let short = Pki::make_with_server_days(pki_dir.path(), "short", 1);
    let out = radsec_config_check(&short, "");
    let line = out
        .lines()
        .find(|l| l.starts_with("warning: radsec: cert_file "))
        .unwrap_or_else(|| panic!("no warning for the server certificate:\n{out}"));
    assert!(
        line.contains(&format!(
            "cert_file {} expires on ",
            short.server_cert.display()
        )) && line.contains("(in 1 day)")
            && line
                .contains("every NAS that checks it will refuse the TLS handshake once it expires"),
        "{line}"
    );
    // The CA in ca_file (valid for 2 days) too.
    assert!(
        out.lines()
            .any(|l| l.starts_with("warning: radsec: ca_file ")
                && l.contains("CA certificate \"CN=short test CA\" expires on ")
                && l.contains("(in 2 days)")),
        "{out}"
    );
}

/// A CRL past its nextUpdate is warned about: radmfa enforces nextUpdate, so until a new one
/// is published no client certificate under that CA gets a session, as the warning says.
#[test]
fn an_out_of_date_crl_is_warned_about_and_refuses_every_client() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make_with_server_days(pki_dir.path(), "good", 400);
    let crl = pki_dir.path().join("clients.crl");
    pki.write_crl(&crl, &[]);
    let radsec = format!("crl_file = {crl:?}");
    let out = radsec_config_check(&pki, &radsec);
    assert!(!out.contains("warning: radsec:"), "a current CRL:\n{out}");

    pki.write_crl_dated(
        &crl,
        &[],
        &[
            "-crl_lastupdate",
            "20200101000000Z",
            "-crl_nextupdate",
            "20200102000000Z",
        ],
    );
    let out = radsec_config_check(&pki, &radsec);
    assert!(
        out.contains(&format!(
            "warning: radsec: crl_file {}: the CRL from \"CN=good test CA\" is out of date \
             since 2020-01-02T00:00:00Z: publish a new one; until then radmfa refuses every \
             client certificate under that CA",
            crl.display()
        )),
        "{out}"
    );

    // What the warning says happens: the handshake fails, on nextUpdate.
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start_with(&slapd, &pki, "nas.example.org", &radsec, 4000);
    assert!(srv.log_shows("is out of date since"), "{}", srv.log());
    let port = radsec_port(&srv);
    let out = our_client(port, &pki, &pki.ca, &["status", "--timeout", "2"]);
    assert!(!out.status.success(), "answered with an expired CRL");
    // Waited for: the server logs the refusal after the client has its answer, and under
    // load read at once, the line was not there yet.
    assert!(
        srv.log_lines_at_least(1, |l| l.contains("its RadSec (TLS) handshake failed")
            && l.contains("revocation list expired"))
            >= 1,
        "the handshake failure names the expired CRL:\n{}",
        srv.log()
    );
}

/// openssl's date form (`20200102000000Z`) of Unix time `t`.
fn openssl_date(t: i64) -> String {
    radmfa::clock::fmt_time(t).replace(['-', ':', 'T'], "")
}

/// A CRL in the last quarter of its life is warned about before it goes out of date, by
/// `config check` and by the running server, which reads the files again every minute (a
/// server runs for months): the CRL replaced on disk shows in the log and in the
/// nextUpdate gauge without a reload.
#[test]
fn a_crl_near_its_next_update_is_warned_about_ahead_and_watched() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make_with_server_days(pki_dir.path(), "good", 400);
    let crl = pki_dir.path().join("clients.crl");
    let dated = |this: i64, next: i64| {
        pki.write_crl_dated(
            &crl,
            &[],
            &[
                "-crl_lastupdate",
                &openssl_date(this),
                "-crl_nextupdate",
                &openssl_date(next),
            ],
        )
    };
    let t = now();
    // A week-long CRL six days and 21 hours old: 3 hours left.
    let next = t + 3 * 3_600 - 60;
    dated(next - 7 * 86_400, next);
    let radsec = format!("crl_file = {crl:?}\n\n[metrics]\nlisten = \"127.0.0.1:0\"");
    let out = radsec_config_check(&pki, &radsec);
    let ahead = format!(
        "warning: radsec: crl_file {}: the CRL from \"CN=good test CA\" goes out of date on {} \
         (in 3 hours): publish a new one before then",
        crl.display(),
        radmfa::clock::fmt_time(next)
    );
    assert!(out.contains(&ahead), "{out}");

    // Fresh, with a week to go: nothing to say.
    let week = t + 7 * 86_400;
    dated(t - 60, week);
    let out = radsec_config_check(&pki, &radsec);
    assert!(!out.contains("warning: radsec:"), "a fresh CRL:\n{out}");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start_with(&slapd, &pki, "nas.example.org", &radsec, 4000);
    let gauge = || {
        let body = http_get(srv.metrics_addr(), "/metrics").2;
        common::peers::prometheus_parse(&body)["radmfa_radsec_crl_next_update_timestamp_seconds{}"]
            as i64
    };
    assert_eq!(gauge(), week);
    assert!(!srv.log().contains("goes out of date"), "{}", srv.log());

    // The publishing job stalls and the file left in place nears its end: the running
    // server says so within a minute, and the gauge follows the file, with no reload.
    dated(next - 7 * 86_400, next);
    let until = Instant::now() + Duration::from_secs(75);
    while !srv.log().contains("goes out of date") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = srv.log();
    let line = log
        .lines()
        .find(|l| l.contains("goes out of date"))
        .unwrap_or_else(|| panic!("no warning within 75 s:\n{log}"));
    assert!(
        line.contains("WARN") && line.contains("(in 3 hours)"),
        "{line}"
    );
    assert_eq!(gauge(), next);
    // Once a day, not every minute: `cert_dates::DateWatch`'s unit test (waiting here for
    // a second tick would cost another minute).
}

/// A renewed certificate that cannot be used (here its key landed readable by everyone)
/// leaves the old one served: the expiry gauge keeps showing the served certificate's date,
/// not the file's, `radmfa_radsec_files_unusable` says so, and the log says why — so the
/// alert on the expiry still fires before every NAS's handshake fails.
#[test]
fn a_renewed_certificate_that_cannot_be_used_does_not_move_the_gauge() {
    use std::os::unix::fs::PermissionsExt as _;
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make(pki_dir.path(), "good");
    let renewed_dir = tempfile::tempdir().unwrap();
    let renewed = Pki::make_with_server_days(renewed_dir.path(), "renewed", 400);
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let radsec = "\n[metrics]\nlisten = \"127.0.0.1:0\"";
    let srv = start_with(&slapd, &pki, "nas.example.org", radsec, 4000);
    let metric = |name: &str| {
        let body = http_get(srv.metrics_addr(), "/metrics").2;
        common::peers::prometheus_parse(&body)[&format!("{name}{{}}")] as i64
    };
    let served = metric("radmfa_radsec_certificate_expiry_timestamp_seconds");
    let in_2_days = now() + 2 * 86_400;
    assert!((in_2_days - 600..=in_2_days).contains(&served), "{served}");
    assert_eq!(metric("radmfa_radsec_files_unusable"), 0);

    // Status-Server over a new connection, answered (with the old certificate).
    let status = || {
        let out = our_client(
            radsec_port(&srv),
            &pki,
            &pki.ca,
            &["status", "--timeout", "2"],
        );
        assert!(out.status.success(), "{out:?}");
    };
    std::fs::copy(&renewed.server_cert, &pki.server_cert).unwrap();
    std::fs::copy(&renewed.server_key, &pki.server_key).unwrap();
    std::fs::set_permissions(&pki.server_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A new connection finds the change: the gauge says so then, as the log does, not at
    // the next minute's check.
    status();
    let until = Instant::now() + Duration::from_secs(3);
    while metric("radmfa_radsec_files_unusable") == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        metric("radmfa_radsec_files_unusable"),
        1,
        "not seen within 3 s of the connection that found it:\n{}",
        srv.log()
    );
    assert_eq!(
        metric("radmfa_radsec_certificate_expiry_timestamp_seconds"),
        served,
        "the gauge shows the file on disk, not the certificate served"
    );
    assert!(
        srv.log_shows("changed but cannot be used") && srv.log_shows("radsec.key_file"),
        "{}",
        srv.log()
    );
    // Said once when found, not a second time by the daily reminder in the same minute.
    std::thread::sleep(Duration::from_secs(1));
    let log = srv.log();
    assert_eq!(
        log.matches("changed but cannot be used").count(),
        1,
        "{log}"
    );
    // Still serving with the old certificate.
    status();
}

/// `radmfa client load` over RadSec: two-round logins of real users, every reply verified,
/// on connections kept across both rounds.
#[test]
fn the_load_generator_speaks_radsec() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let users = LdapUser::generate(12);
    let slapd = Slapd::start(&users);
    let srv = start(&slapd, &good, "nas.example.org");
    let port = radsec_port(&srv);
    let csv: String = users
        .iter()
        .map(|u| format!("{},{},{}\n", u.uid, u.password, srv.enroll(&u.uid, &[])))
        .collect();
    let file = srv.dir.path().join("users.csv");
    std::fs::write(&file, csv).unwrap();
    let out = our_client(
        port,
        &good,
        &good.ca,
        &[
            "load",
            "--users",
            file.to_str().unwrap(),
            "--flow",
            "two-round",
            "-n",
            "12",
            "-p",
            "3",
            "--json",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        srv.log()
    );
    let phases: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(phases.len(), 2, "{text}");
    for (p, name) in phases.iter().zip(["round1", "round2"]) {
        assert_eq!(p["phase"], name, "{text}");
        assert_eq!(p["expected"], 12, "{text}");
        assert_eq!(p["forged"], 0, "{text}");
    }
    let audit = srv.audit_json("user00011");
    assert!(audit.iter().any(|a| a["result"] == "accept"), "{audit:?}");
    // Three connections, opened once: the server saw no more (the log lags a little).
    let ups = || srv.log().matches("radsec: connection up").count();
    let until = Instant::now() + Duration::from_secs(5);
    while ups() < 3 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ups(), 3, "{}", srv.log());
    // The default -p (100) against the server's default per-address limit (16): the run
    // stops at the 17th connection and names the limit, not the certificate's name (red
    // team: it gave the hint for a certificate matching no entry).
    let out = our_client(
        port,
        &good,
        &good.ca,
        &["load", "--flow", "status", "-n", "200"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("opening connection 17 of -p 100 (16 opened")
            && err.contains("max_connections_per_address")
            && err.contains("give -p 16 or less")
            && !err.contains("its log says which"),
        "{err}"
    );
}

/// Holds a RadSec connection from a given source address: prints "up" once the handshake
/// is done (then waits for stdin to close) or "closed" if the server would not have it.
const HOLD_FROM: &str = r#"
import socket, ssl, sys
port, cert, key, ca, source = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
raw = socket.socket()
raw.bind((source, 0))
raw.connect(("127.0.0.1", port))
try:
    s = ctx.wrap_socket(raw)
    s.settimeout(1)
    try:
        s.recv(1)  # TLS 1.3: a refused client certificate shows here, or EOF
        print("closed", flush=True)
        sys.exit(0)
    except socket.timeout:
        pass
except (OSError, ssl.SSLError):
    print("closed", flush=True)
    sys.exit(0)
print("up", flush=True)
sys.stdin.read()
"#;

fn hold_from(port: u16, pki: &Pki, source: &str) -> (Child, String) {
    let port = port.to_string();
    let args = [
        port.as_ref(),
        pki.client_cert.as_os_str(),
        pki.client_key.as_os_str(),
    ];
    let args = [&args[..], &[pki.ca.as_os_str(), source.as_ref()]].concat();
    python_first_line(HOLD_FROM, &args)
}

/// `max_connections_per_address`: one host of a client's range cannot take every slot; the
/// NAS beside it still gets one, up to `max_connections` in all.
#[test]
fn one_address_cannot_take_every_slot() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let radsec = "max_connections = 3\nmax_connections_per_address = 2\n\n[[client]]\n\
                  name = \"second\"\naddress = \"127.0.0.2\"\ntransport = \"radsec\"\n\n\
                  [metrics]\nlisten = \"127.0.0.1:0\"\n";
    let srv = start_with(&slapd, &good, "nas.example.org", radsec, 4000);
    let port = radsec_port(&srv);

    let _held = [Holder::connect(port, &good), Holder::connect(port, &good)];
    let out = our_client(port, &good, &good.ca, &["status", "--timeout", "1"]);
    assert!(!out.status.success(), "a third connection from 127.0.0.1");
    assert!(
        srv.log_shows("radsec.max_connections_per_address RadSec connections from this address"),
        "{}",
        srv.log()
    );
    let (mut second, state) = hold_from(port, &good, "127.0.0.2");
    assert_eq!(
        state,
        "up",
        "the NAS at 127.0.0.2 got no slot\n{}",
        srv.log()
    );
    let (mut fourth, state) = hold_from(port, &good, "127.0.0.2");
    assert_eq!(
        state, "closed",
        "a fourth connection beyond max_connections = 3"
    );
    assert!(
        srv.log_shows("radsec.max_connections RadSec connections are already open"),
        "{}",
        srv.log()
    );
    // A host at its own share when every slot is taken too is refused for its share: it
    // would be with slots free (it was counted as the total's).
    let out = our_client(port, &good, &good.ca, &["status", "--timeout", "1"]);
    assert!(!out.status.success(), "a fifth connection, from 127.0.0.1");
    let body = http_get(srv.metrics_addr(), "/metrics").2;
    for (reason, n) in [("address_limit", 2), ("connection_limit", 1)] {
        let line = format!("radmfa_radsec_closed_total{{reason=\"{reason}\"}} {n}\n");
        assert!(body.contains(&line), "{line}{body}");
    }
    for c in [&mut second, &mut fourth] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Opens `n` TCP connections to `port` from `source` and sends nothing (no TLS ClientHello):
/// prints "up", then holds them until stdin closes.
const SILENT_FROM: &str = r#"
import select, socket, sys
port, source, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    socks.append(s)
print("up", flush=True)
sys.stdin.read()
"#;

/// Connections that finish no handshake (no certificate shown) give their slots up when
/// every slot is taken: two hosts of a RadSec entry's range, each at its per-address share
/// of silent connections, filled max_connections, and the NAS could not reconnect.
/// Connections past their handshake are never given up (`one_address_cannot_take_every_slot`).
#[test]
fn silent_connections_give_their_slots_up_to_a_nas() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let radsec = "max_connections = 4\nmax_connections_per_address = 2\n\n[[client]]\n\
                  name = \"wide\"\naddress = \"127.0.0.2/31\"\ntransport = \"radsec\"\n\
                  \n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let srv = start_with(&slapd, &good, "nas.example.org", radsec, 4000);
    let port = radsec_port(&srv).to_string();
    let before = sockets_of(srv.pid());
    let mut holders = Vec::new();
    for source in ["127.0.0.2", "127.0.0.3"] {
        let (child, said) = common::peers::python_first_line(SILENT_FROM, &[&port, source, "2"]);
        assert_eq!(said, "up");
        holders.push(child);
    }
    // All four slots are held by connections in their handshake, once the server has
    // accepted them.
    let t = Instant::now();
    while sockets_of(srv.pid()) < before + 4 {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = our_client(
        radsec_port(&srv),
        &good,
        &good.ca,
        &["status", "--timeout", "3"],
    );
    assert!(
        out.status.success(),
        "the NAS got no slot: {out:?}\n{}",
        srv.log()
    );
    assert!(
        srv.log_shows("cut short: every connection slot was taken"),
        "{}",
        srv.log()
    );
    // Counted as closed for the limit: an alert on it fires during such a flood.
    let body = http_get(srv.metrics_addr(), "/metrics").2;
    let closed = body
        .lines()
        .find_map(|l| l.strip_prefix("radmfa_radsec_closed_total{reason=\"connection_limit\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(closed.is_some_and(|n| n >= 1.0), "{closed:?}: {body}");
    // And not as a failed handshake: that metric means certificate or CA trouble.
    assert!(
        body.lines()
            .filter(|l| l.starts_with("radmfa_radsec_handshake_failures_total{"))
            .all(|l| l.ends_with(" 0")),
        "{body}"
    );
    for mut h in holders {
        drop(h.stdin.take());
        let _ = h.kill();
        let _ = h.wait();
    }
}

/// Times `needle` shows in the log, waiting up to 5 s for it to reach `n`.
fn log_count(srv: &Server, needle: &str, n: usize) -> usize {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = srv.log().matches(needle).count();
        if seen >= n || Instant::now() > until {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGHUP applies to RadSec connections already open, not only to new ones: a renamed
/// entry shows on the next request of the same connection, and a connection whose
/// certificate no longer matches `radsec_name`, or whose address lost its entry, is closed
/// at once — idle or not — instead of serving on until it reconnects.
#[test]
fn a_reload_applies_to_open_radsec_connections() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let metrics = "\n[metrics]\nlisten = \"127.0.0.1:0\"";
    let srv = start_with(&slapd, &good, "nas.example.org", metrics, 4000);
    let port = radsec_port(&srv);
    let original = std::fs::read_to_string(&srv.config).unwrap();
    let mut reloads = 0;
    let mut reload = |text: &str| {
        std::fs::write(&srv.config, text).unwrap();
        let ok = Command::new("kill")
            .args(["-HUP", &srv.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        reloads += 1;
        let done = log_count(&srv, "[[client]] entries from", reloads);
        assert_eq!(done, reloads, "reload {reloads} not done:\n{}", srv.log());
    };
    let closed_by_reload = || -> u64 {
        let body = http_get(srv.metrics_addr(), "/metrics").2;
        let name = "radmfa_radsec_closed_total{reason=\"reload\"} ";
        body.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
            .trim()
            .parse()
            .unwrap()
    };
    let start_proxy = |name: &str| {
        Proxy::start(
            pki_dir.path(),
            name,
            port,
            &good.ca,
            &good.client_cert,
            &good.client_key,
        )
    };
    let ask = |proxy: &Proxy| {
        radclient(
            &proxy.addr(),
            PROXY_SECRET,
            "User-Name = nobody, User-Password = pw, Message-Authenticator = 0x00",
        )
        .code
    };
    let proxy = start_proxy("good");
    assert_eq!(ask(&proxy), "Access-Reject", "{}", srv.log());
    let mut idle = Holder::connect(port, &good);
    let up = "radsec: connection up";
    assert_eq!(log_count(&srv, up, 2), 2, "{}", srv.log());
    // Each names the certificate that connected, and the TLS version.
    assert!(
        srv.log()
            .lines()
            .filter(|l| l.contains(up))
            .all(|l| l.contains("tls=TLSv1_") && l.contains("cert=serial ")),
        "{}",
        srv.log()
    );

    // Renamed: the proxy's open connection carries on under the new name.
    let renamed = original.replace("name = \"local\"", "name = \"local-renamed\"");
    assert_ne!(renamed, original);
    reload(&renamed);
    assert_eq!(ask(&proxy), "Access-Reject", "{}", srv.log());
    let audit = srv.audit_json("nobody");
    assert_eq!(audit[0]["nas_name"], "local-renamed", "{:?}", audit[0]);
    // Both connections take the new name, the idle one too (once each).
    let renamed_line = "now serves as \"local-renamed\" (reload)";
    assert_eq!(log_count(&srv, renamed_line, 2), 2, "{}", srv.log());
    assert_eq!(
        srv.log().matches(up).count(),
        2,
        "reconnected:\n{}",
        srv.log()
    );
    assert!(!idle.closed_within(Duration::from_millis(500)));
    assert_eq!(closed_by_reload(), 0);

    // A radsec_name the certificate does not match: both connections are closed, the idle
    // one too, well before the idle timeout (600 s).
    let other_name = renamed.replace("nas.example.org", "other-nas.example.org");
    reload(&other_name);
    assert!(
        idle.closed_within(Duration::from_secs(3)),
        "the idle connection stayed open:\n{}",
        srv.log()
    );
    assert!(
        srv.log_shows("closing the connection after a reload: its certificate is not issued"),
        "{}",
        srv.log()
    );
    assert_eq!(closed_by_reload(), 2, "{}", srv.log());
    let log = srv.log();
    let closing: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("closing the connection after a reload"))
        .collect();
    assert_eq!(closing.len(), 2, "{log}");
    assert!(
        closing.iter().all(|l| l.contains("nas=\"local-renamed\"")),
        "named as accepted, not as renamed:\n{log}"
    );
    assert_eq!(ask(&proxy), "none");
    drop(proxy);

    // Back to the right name: a new proxy (radsecproxy backs off before reconnecting) is
    // answered. Then the address loses its entry: the open connections are closed, and
    // nothing more is answered.
    reload(&renamed);
    let proxy = start_proxy("good-again");
    assert_eq!(ask(&proxy), "Access-Reject", "{}", srv.log());
    let mut idle = Holder::connect(port, &good);

    // The entry turns UDP-only: its RadSec connections are closed as for a lost entry,
    // and the address is served over UDP with the entry's secret.
    let udp_only = renamed.replace("radsec_name = \"nas.example.org\"", "transport = \"udp\"");
    assert_ne!(udp_only, renamed);
    reload(&udp_only);
    assert!(idle.closed_within(Duration::from_secs(3)), "{}", srv.log());
    assert!(
        srv.log_shows("entry is for UDP only now (transport)"),
        "{}",
        srv.log()
    );
    assert_eq!(closed_by_reload(), 4, "{}", srv.log());
    assert_eq!(ask(&proxy), "none");
    let over_udp = radclient(
        &format!("127.0.0.1:{}", srv.port()),
        SECRET,
        "User-Name = nobody, User-Password = pw, Message-Authenticator = 0x00",
    );
    assert_eq!(over_udp.code, "Access-Reject", "{}", srv.log());
    drop(proxy);

    reload(&renamed);
    let proxy = start_proxy("good-third");
    assert_eq!(ask(&proxy), "Access-Reject", "{}", srv.log());
    let mut idle = Holder::connect(port, &good);
    let gone = renamed.replace("address = \"127.0.0.1\"", "address = \"127.0.0.9\"");
    assert_ne!(gone, renamed);
    reload(&gone);
    assert!(idle.closed_within(Duration::from_secs(3)), "{}", srv.log());
    assert!(
        srv.log_shows("after a reload: no [[client]] entry covers its address any more"),
        "{}",
        srv.log()
    );
    assert_eq!(closed_by_reload(), 6, "{}", srv.log());
    assert_eq!(ask(&proxy), "none");
}

/// Runs the Python RadSec peer `script` (argv: port, client certificate, key, CA) against
/// `srv` with `pki`'s client certificate; what it printed.
fn radsec_script(script: &str, srv: &Server, pki: &Pki) -> String {
    let out = Command::new(common::peers::python())
        .args(["-c", script, &radsec_port(srv).to_string()])
        .arg(&pki.client_cert)
        .arg(&pki.client_key)
        .arg(&pki.ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`radsec_script`] for a script that prints one line and then holds its connection until
/// stdin closes: the running peer and that line.
fn radsec_peer(script: &str, srv: &Server, pki: &Pki) -> (Child, String) {
    let port = radsec_port(srv).to_string();
    let args = [
        port.as_ref(),
        pki.client_cert.as_os_str(),
        pki.client_key.as_os_str(),
        pki.ca.as_os_str(),
    ];
    python_first_line(script, &args)
}

/// radmfa with RadSec and `/metrics`, alice in the directory, the given request deadline;
/// the PKI's directory, the PKI, slapd and the server.
fn alice_with_metrics(deadline_ms: u64) -> (tempfile::TempDir, Pki, Slapd, Server) {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start_with(
        &slapd,
        &good,
        "nas.example.org",
        "\n[metrics]\nlisten = \"127.0.0.1:0\"",
        deadline_ms,
    );
    (pki_dir, good, slapd, srv)
}

/// RadSec carries accounting on the login connection, and its client waits for an answer:
/// radmfa does no accounting, so it answers Accounting-Request with an Accounting-Response
/// carrying Error-Cause 406 (RFC 6614 §2.5), which radsecproxy passes back to radclient, and
/// the connection goes on serving logins.
#[test]
fn accounting_over_radsec_is_refused_with_error_cause_406() {
    let (pki_dir, good, _slapd, srv) = alice_with_metrics(4000);
    let proxy = Proxy::start(
        pki_dir.path(),
        "good",
        radsec_port(&srv),
        &good.ca,
        &good.client_cert,
        &good.client_key,
    );
    let bin = require("radclient", "freeradius-utils");
    let mut child = Command::new(bin)
        .args([
            "-x",
            "-r",
            "1",
            "-t",
            "3",
            &proxy.addr(),
            "acct",
            PROXY_SECRET,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"User-Name = alice, Acct-Status-Type = Start, Acct-Session-Id = s1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let proxy_log = || std::fs::read_to_string(pki_dir.path().join("good.log")).unwrap_or_default();
    assert!(
        said.contains("Received Accounting-Response"),
        "{said}\nradmfa:\n{}\nradsecproxy:\n{}",
        srv.log(),
        proxy_log()
    );
    assert!(
        said.contains("Error-Cause = Unsupported-Extension"),
        "{said}\nradsecproxy:\n{}",
        proxy_log()
    );
    let body = http_get(srv.metrics_addr(), "/metrics").2;
    assert!(
        body.contains("radmfa_radsec_unsupported_refused_total 1"),
        "{body}"
    );
    // The same connection still serves a login.
    let r = radclient(
        &proxy.addr(),
        PROXY_SECRET,
        "User-Name = alice, User-Password = wrong, Message-Authenticator = 0x00",
    );
    assert_eq!(r.code, "Access-Reject", "{}\n{}", r.output, srv.log());
    // On the same connection: none was closed, and radsecproxy opened no second one.
    let body = http_get(srv.metrics_addr(), "/metrics").2;
    assert!(
        body.contains("radmfa_radsec_closed_total{reason=\"discarded\"} 0"),
        "{body}"
    );
    assert_eq!(
        srv.log().matches("radsec: connection up").count(),
        1,
        "{}",
        srv.log()
    );
}

/// Over TCP, "silently discard" is discard and close (RFC 6613 §2.6.4) for a packet that is
/// broken or forged. Sends an Accounting-Request (not served, not a broken stream), a
/// Status-Server, an Access-Request without Message-Authenticator (refused by this client's
/// policy, and well-formed), a signed Access-Request with an empty State (one NAS's bad
/// attribute, which a proxy passes on: the stream is fine), a Status-Server, then a
/// Status-Server with a wrong Message-Authenticator; prints what happened after each.
const DISCARDS: &str = r#"
import hashlib, hmac, os, socket, ssl, struct, sys
port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
s.settimeout(3)
def packet(code, i, spoil=False):
    head = struct.pack("!BBH", code, i, 38) + os.urandom(16)
    mac = hmac.new(b"radsec", head + b"\x50\x12" + bytes(16), hashlib.md5).digest()
    if spoil:
        mac = bytes([mac[0] ^ 0xff]) + mac[1:]
    return head + b"\x50\x12" + mac
def signed(code, i, attrs):
    head = struct.pack("!BBH", code, i, 38 + len(attrs)) + os.urandom(16)
    mac = hmac.new(b"radsec", head + b"\x50\x12" + bytes(16) + attrs, hashlib.md5).digest()
    return head + b"\x50\x12" + mac + attrs
def send(b):
    try:
        s.sendall(b)
    except (OSError, ssl.SSLError):
        pass
def answer():
    try:
        data = s.recv(4096)
        return "closed" if not data else "reply %d" % data[0]
    except socket.timeout:
        return "silent"
    except (OSError, ssl.SSLError):
        return "closed"
send(packet(2, 1) + packet(12, 2))
print(answer())
s.settimeout(1)
send(struct.pack("!BBH", 1, 3, 27) + os.urandom(16) + b"\x01\x07alice")
print(answer())
send(signed(1, 6, b"\x18\x02\x01\x07alice"))
print(answer())
s.settimeout(3)
send(packet(12, 4))
print(answer())
send(packet(12, 5, spoil=True))
print(answer(), flush=True)
"#;

/// An older proxy adds Proxy-State and signs nothing (FreeRADIUS before 3.2.5). Over UDP
/// that is the BlastRADIUS pattern and is dropped whatever the client's setting; over
/// RadSec no one but the peer can add a Proxy-State, so a client that does not require
/// Message-Authenticator is answered (here: Reject, no password), with its Proxy-State.
/// It was dropped, the connection kept, and every login through that proxy timed out.
#[test]
fn an_unsigned_request_with_proxy_state_over_radsec_is_answered_where_allowed() {
    // DISCARDS's connection, then one unsigned Access-Request with a Proxy-State.
    let connect = &DISCARDS[..DISCARDS.find("s.settimeout(3)").unwrap()];
    let unsigned = format!("{connect}{UNSIGNED}");
    const UNSIGNED: &str = r#"
s.settimeout(2)
attrs = b"\x01\x07alice" + b"\x21\x06hop1"
s.sendall(struct.pack("!BBH", 1, 9, 20 + len(attrs)) + os.urandom(16) + attrs)
try:
    data = s.recv(4096)
    print("reply %d %s" % (data[0], "proxy-state" if b"\x21\x06hop1" in data else "-"))
except socket.timeout:
    print("silent")
"#;
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start_client_opts(
        Options::new(&slapd.url),
        &good,
        "nas.example.org",
        "",
        4000,
        "require_message_authenticator = false",
    );
    assert_eq!(
        radsec_script(&unsigned, &srv, &good).trim(),
        "reply 3 proxy-state",
        "{}",
        srv.log()
    );
    // A client that requires Message-Authenticator still drops it.
    let strict = start(&slapd, &good, "nas.example.org");
    assert_eq!(radsec_script(&unsigned, &strict, &good).trim(), "silent");
}

#[test]
fn a_packet_that_fails_verification_closes_its_radsec_connection() {
    let (_pki_dir, good, _slapd, srv) = alice_with_metrics(1500);
    let said = radsec_script(DISCARDS, &srv, &good);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(
        lines,
        ["reply 2", "silent", "silent", "reply 2", "closed"],
        "a reply code sent as a request, a request without Message-Authenticator and one \
         with an empty State dropped and the connection kept; a bad Message-Authenticator \
         closes it\n{}",
        srv.log()
    );
    assert!(
        srv.log_shows("closing the connection after a packet that failed verification"),
        "{}",
        srv.log()
    );
    let body = http_get(srv.metrics_addr(), "/metrics").2;
    assert!(
        body.contains("radmfa_radsec_closed_total{reason=\"discarded\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("reason=\"missing_message_authenticator\"} 1"),
        "{body}"
    );
    assert!(body.contains("reason=\"malformed\"} 1"), "{body}");
}

/// A NAS that signs its RadSec requests with the [[client]] entry's secret is told to use
/// "radsec" (RFC 6614 section 2.3): the log said the NAS and the entry had different shared
/// secrets, and sent the admin to a setting TLS does not use.
#[test]
fn a_wrong_secret_over_radsec_is_told_to_be_radsec() {
    let (_pki_dir, good, _slapd, srv) = alice_with_metrics(1500);
    let connect = &DISCARDS[..DISCARDS.find("send(packet(2, 1)").unwrap()];
    let script = format!(
        r#"{connect}
head = struct.pack("!BBH", 12, 7, 38) + os.urandom(16)
mac = hmac.new(b"{SECRET}", head + b"\x50\x12" + bytes(16), hashlib.md5).digest()
send(head + b"\x50\x12" + mac)
s.settimeout(3)
print(answer(), flush=True)
"#
    );
    assert_eq!(radsec_script(&script, &srv, &good).trim(), "closed");
    let line = log_line(&srv, |l| {
        l.contains("radmfa::drops") && l.contains("Message-Authenticator does not verify")
    });
    assert!(
        line.contains("over RadSec the NAS must sign with the shared secret \"radsec\""),
        "{line}"
    );
    assert!(!line.contains("different shared secrets"), "{line}");
}

/// A Length outside 20..4096 loses the stream's framing: the connection is closed, and
/// counted among the closes as a packet that failed verification (it was in none).
#[test]
fn a_packet_whose_length_breaks_the_framing_closes_its_radsec_connection() {
    let (_pki_dir, good, _slapd, srv) = alice_with_metrics(1500);
    let connect = &DISCARDS[..DISCARDS.find("send(packet(2, 1)").unwrap()];
    let script = format!(
        "{connect}send(packet(12, 1))\nprint(answer())\n\
         send(struct.pack(\"!BBH\", 1, 2, 5) + os.urandom(16))\nprint(answer(), flush=True)\n"
    );
    let said = radsec_script(&script, &srv, &good);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines, ["reply 2", "closed"], "{}", srv.log());
    assert!(
        srv.log_shows("a Length of 5, outside 20..4096: the framing is lost"),
        "{}",
        srv.log()
    );
    let body = http_get(srv.metrics_addr(), "/metrics").2;
    assert!(
        body.contains("radmfa_radsec_closed_total{reason=\"discarded\"} 1\n"),
        "{body}"
    );
    assert!(body.contains("reason=\"malformed\"} 1"), "{body}");
}

/// A forged Access-Request for alice and, in the same write, a good one: the forged one
/// closes the connection, and the good one behind it must not be worked out (before, it
/// was: its login audited, a challenge's State and code used up, for a reply the NAS never
/// got). Then a good request on a new connection, which is.
const GOOD_BEHIND_A_FORGED_LOGIN: &str = r#"
def login(i, spoil=False):
    auth = os.urandom(16)
    pad = hashlib.md5(b"radsec" + auth).digest()
    hidden = bytes(a ^ b for a, b in zip(b"alice-pw".ljust(16, b"\0"), pad))
    attrs = b"\x01\x07alice" + bytes([2, 18]) + hidden
    head = struct.pack("!BBH", 1, i, 38 + len(attrs)) + auth
    mac = hmac.new(b"radsec", head + b"\x50\x12" + bytes(16) + attrs, hashlib.md5).digest()
    if spoil:
        mac = bytes([mac[0] ^ 0xff]) + mac[1:]
    return head + b"\x50\x12" + mac + attrs
send(login(1, spoil=True) + login(2))
print(answer())
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
s.settimeout(5)
send(login(3))
print(answer(), flush=True)
"#;

#[test]
fn nothing_behind_a_packet_that_fails_verification_is_worked_out() {
    let (_pki_dir, good, _slapd, srv) = alice_with_metrics(3000);
    let connect = &DISCARDS[..DISCARDS.find("send(packet(2, 1)").unwrap()];
    let said = radsec_script(
        &format!("{connect}{GOOD_BEHIND_A_FORGED_LOGIN}"),
        &srv,
        &good,
    );
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 2, "{said}\n{}", srv.log());
    assert_eq!(lines[0], "closed", "{}", srv.log());
    assert!(lines[1].starts_with("reply "), "{said}\n{}", srv.log());
    // The good request behind the forged one would have been audited a few ms after it.
    std::thread::sleep(Duration::from_millis(500));
    let audit = srv.audit_json("alice");
    assert_eq!(
        audit.len(),
        1,
        "only the new connection's login: {audit:#?}\n{}",
        srv.log()
    );
    let body = http_get(srv.metrics_addr(), "/metrics").2;
    assert!(
        body.contains("radmfa_datagrams_received_total 2\n"),
        "{body}"
    );
}

/// A Length shorter than the packet: the packet fails verification and closes the
/// connection, and the rest of it is not read as a packet of its own (it was, and counted
/// a second time as received and malformed).
#[test]
fn the_rest_of_a_packet_whose_length_is_short_is_not_read_as_another() {
    let (_pki_dir, good, _slapd, srv) = alice_with_metrics(1500);
    let connect = &DISCARDS[..DISCARDS.find("send(packet(2, 1)").unwrap()];
    let script = format!(
        "{connect}p = bytearray(signed(12, 1, b\"\\x01\\x07alice\"))\n\
         p[2:4] = struct.pack(\"!H\", len(p) - 10)\nsend(bytes(p))\nprint(answer(), flush=True)\n"
    );
    let said = radsec_script(&script, &srv, &good);
    assert_eq!(said.trim(), "closed", "{}", srv.log());
    let body = http_get(srv.metrics_addr(), "/metrics").2;
    assert!(
        body.contains("radmfa_datagrams_received_total 1\n"),
        "{body}"
    );
    assert!(body.contains("reason=\"malformed\"} 1\n"), "{body}");
    assert!(
        body.contains("radmfa_radsec_closed_total{reason=\"discarded\"} 1\n"),
        "{body}"
    );
}

/// A peer that sends part of a packet and then nothing more is idle too: closed after
/// `idle_timeout_secs`, said in the log and counted as idle (it was closed silently).
#[test]
fn a_peer_that_stalls_in_the_middle_of_a_packet_is_closed_as_idle() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let radsec = "idle_timeout_secs = 2\n\n[metrics]\nlisten = \"127.0.0.1:0\"";
    let srv = start_with(&slapd, &good, "nas.example.org", radsec, 1500);
    let connect = &DISCARDS[..DISCARDS.find("send(packet(2, 1)").unwrap()];
    let script = format!(
        "{connect}s.settimeout(8)\nsend(packet(12, 1)[:10])\nprint(answer(), flush=True)\n"
    );
    let t = Instant::now();
    let said = radsec_script(&script, &srv, &good);
    assert_eq!(said.trim(), "closed", "{}", srv.log());
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        srv.log_shows("closing the connection, idle for 2 s, in the middle of a packet"),
        "{}",
        srv.log()
    );
    let body = http_get(srv.metrics_addr(), "/metrics").2;
    assert!(
        body.contains("radmfa_radsec_closed_total{reason=\"idle\"} 1\n"),
        "{body}"
    );
}

/// A host that opens a connection and says nothing does not hold up a stop: SIGTERM ends
/// radmfa at once, and no request is said to be abandoned (it waited the whole grace
/// period, 5 s, and said so).
#[test]
fn a_connection_in_its_handshake_does_not_hold_up_a_stop() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let mut srv = start(&slapd, &good, "nas.example.org");
    let before = sockets_of(srv.pid());
    let silent = std::net::TcpStream::connect(("127.0.0.1", radsec_port(&srv))).unwrap();
    let t = Instant::now();
    while sockets_of(srv.pid()) < before + 1 {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let status = srv.stop();
    let took = t.elapsed();
    assert!(status.success(), "{status:?}\n{}", srv.log());
    assert!(
        took < Duration::from_secs(3),
        "took {took:?}\n{}",
        srv.log()
    );
    assert!(!srv.log().contains("abandoning"), "{}", srv.log());
    drop(silent);
}

/// An Accounting-Request whose Request Authenticator does not verify (forged, or signed
/// with another secret) closes the connection, as a forged Access-Request does; before, it
/// was dropped and the connection kept.
#[test]
fn a_forged_accounting_request_closes_its_radsec_connection() {
    let (_pki_dir, good, _slapd, srv) = alice_with_metrics(1500);
    let script = DISCARDS.replace(
        &DISCARDS[DISCARDS.find("send(packet(2, 1)").unwrap()..],
        "send(packet(4, 1))\nprint(answer())\n",
    );
    let said = radsec_script(&script, &srv, &good);
    assert_eq!(said.trim(), "closed", "{}", srv.log());
    assert!(
        srv.log_shows("an accounting or CoA packet that does not verify"),
        "{}",
        srv.log()
    );
}

/// A verified Accounting-Request whose Proxy-States leave no room for the Error-Cause of its
/// refusal gets no answer, but it is no forgery: the connection stays and serves the next
/// request.
#[test]
fn an_accounting_request_too_big_to_refuse_keeps_its_radsec_connection() {
    let (_pki_dir, good, _slapd, srv) = alice_with_metrics(1500);
    let script = DISCARDS.replace(
        &DISCARDS[DISCARDS.find("send(packet(2, 1)").unwrap()..],
        TOO_BIG_TO_REFUSE,
    );
    let said = radsec_script(&script, &srv, &good);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines, ["silent", "reply 2"], "{}", srv.log());
    let body = http_get(srv.metrics_addr(), "/metrics").2;
    assert!(
        body.contains("radmfa_radsec_unsupported_refused_total 1"),
        "{body}"
    );
    assert!(
        body.contains("radmfa_radsec_closed_total{reason=\"discarded\"} 0\n"),
        "{body}"
    );
}

/// A 4096-octet Accounting-Request of Proxy-States only (signed as RFC 2866 §3 says): its
/// refusal would be six octets longer. Then a Status-Server on the same connection.
const TOO_BIG_TO_REFUSE: &str = r#"
ps = b"".join(b"\x21\xff" + bytes([65 + n]) * 253 for n in range(15)) + b"\x21\xfb" + b"z" * 249
head = struct.pack("!BBH", 4, 9, 20 + len(ps))
assert 20 + len(ps) == 4096
send(head + hashlib.md5(head + bytes(16) + ps + b"radsec").digest() + ps)
s.settimeout(1.5)
print(answer())
s.settimeout(3)
send(packet(12, 10))
print(answer(), flush=True)
"#;

/// A Status-Server with a wrong Message-Authenticator (which closes the connection) and, in
/// the same write, the header of a second packet whose body never comes. Prints "closed"
/// once radmfa has closed the session, then holds the socket until stdin closes.
const HALF_PACKET_BEHIND_A_BAD_ONE: &str = r#"
import hashlib, hmac, os, socket, ssl, struct, sys
port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
head = struct.pack("!BBH", 12, 1, 38) + os.urandom(16)
mac = bytearray(hmac.new(b"radsec", head + b"\x50\x12" + bytes(16), hashlib.md5).digest())
mac[0] ^= 0xff
s.sendall(head + b"\x50\x12" + bytes(mac) + struct.pack("!BBH", 12, 2, 4096))
s.settimeout(10)
try:
    while s.recv(4096):
        pass
except (OSError, ssl.SSLError):
    pass
print("closed", flush=True)
sys.stdin.read()
"#;

/// Sockets the process holds open.
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

/// A connection closed while its reader waits for the rest of a packet lets go of its
/// socket at once: a reader left waiting (for the idle time, 10 minutes by default) would
/// hold the socket and the TLS session outside the connection caps.
#[test]
fn a_closed_connection_does_not_wait_for_the_rest_of_a_packet() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = start(&slapd, &good, "nas.example.org");
    let before = sockets_of(srv.pid());
    let (mut peer, line) = radsec_peer(HALF_PACKET_BEHIND_A_BAD_ONE, &srv, &good);
    assert_eq!(line, "closed", "{}", srv.log());
    // The peer still holds its end open; radmfa must not.
    let t = Instant::now();
    let mut now_open = sockets_of(srv.pid());
    while now_open > before && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        now_open = sockets_of(srv.pid());
    }
    drop(peer.stdin.take());
    let _ = peer.wait();
    // At most as many as before: another socket (an idle directory connection) may close
    // meanwhile, which made an equality fail once (5 against 6).
    assert!(
        now_open <= before,
        "radmfa still holds the closed connection's socket: {now_open} against {before}"
    );
    assert!(
        srv.log_shows("closing the connection after a packet that failed verification"),
        "{}",
        srv.log()
    );
}

/// Sends one Access-Request for alice (password given) on a connection, prints the reply's
/// code and closes the connection; then sends the very same octets on a new connection, as
/// a peer resending a request whose connection closed, and prints that reply's code.
const SAME_REQUEST_ON_TWO_CONNECTIONS: &str = r#"
import hashlib, hmac, os, socket, ssl, struct, sys
port, cert, key, ca, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
user, auth = b"alice", os.urandom(16)
padded = pw.encode().ljust(16, b"\0")
hidden = bytes(a ^ b for a, b in zip(padded, hashlib.md5(b"radsec" + auth).digest()))
attrs = bytes([1, 2 + len(user)]) + user + bytes([2, 18]) + hidden
head = struct.pack("!BBH", 1, 7, 20 + 18 + len(attrs)) + auth
mac = hmac.new(b"radsec", head + b"\x50\x12" + bytes(16) + attrs, hashlib.md5).digest()
request = head + b"\x50\x12" + mac + attrs
drop_first = len(sys.argv) > 6 and sys.argv[6] == "drop-first"
for i in range(2):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
    s.settimeout(12)
    s.sendall(request)
    if drop_first and i == 0:
        # The connection breaks while the login is worked out; the resend goes on a new one.
        import time
        time.sleep(0.3)
        s.close()
        print("dropped", flush=True)
        continue
    reply = s.recv(4096)
    print(reply.hex() if reply else "closed", flush=True)
    s.close()
"#;

/// radmfa with RadSec, alice in the directory and `client` (factor keys for the RadSec
/// client, with the stand-in's delivery sections); then alice's one request sent on two
/// connections (`SAME_REQUEST_ON_TWO_CONNECTIONS` with `extra` arguments). The server (to
/// read its log and audit), its PKI directory and slapd (to keep them alive), and the
/// script's output lines.
fn same_request_twice(
    client: &str,
    extra: &[&str],
) -> (Server, tempfile::TempDir, Slapd, Vec<String>) {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = common::oob_env::directory();
    let srv = start_client_opts(
        Options::new(&slapd.url),
        &good,
        "nas.example.org",
        "",
        4000,
        client,
    );
    let out = Command::new(common::peers::python())
        .args([
            "-c",
            SAME_REQUEST_ON_TWO_CONNECTIONS,
            &radsec_port(&srv).to_string(),
        ])
        .arg(&good.client_cert)
        .arg(&good.client_key)
        .arg(&good.ca)
        .arg(common::oob_env::ALICE_PW)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}\n{}", srv.log());
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (srv, pki_dir, slapd, lines)
}

/// A peer that resends a request on a new connection (its first one closed) gets the same
/// reply without a second SMS or a second run of the login: the new connection's port must
/// not make it a new request.
#[test]
fn a_request_resent_on_a_new_connection_sends_no_second_sms() {
    use common::oob_env::delivery;
    use common::provider_standin::Standin;
    let standin = Standin::start();
    let sms = format!("methods = [\"sms\"]\n{}", delivery(&standin, ""));
    let (srv, _pki, _slapd, replies) = same_request_twice(&sms, &[]);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies[0].starts_with("0b"),
        "a challenge: {replies:?}\n{}",
        srv.log()
    );
    // The resend is answered from the duplicate cache: the same bytes (the same State), and
    // the login was worked out once (one audit record, one SMS).
    assert_eq!(
        replies[0], replies[1],
        "the same reply on the new connection"
    );
    let sent = standin.sms();
    assert_eq!(sent.len(), 1, "one SMS for one request: {sent:?}");
    assert_eq!(
        srv.audit_json("alice").len(),
        1,
        "{:#?}",
        srv.audit_json("alice")
    );
}

/// The same, with the first connection closed while the login is still being worked out (a
/// held phone call): the resend on the new connection joins it and gets its reply there.
#[test]
fn a_request_resent_while_its_login_runs_is_answered_on_the_new_connection() {
    use common::oob_env::{delivery, DIRECTORY_MOBILE};
    use common::provider_standin::{Script, Standin};
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", std::time::Duration::from_millis(1500)),
    );
    let held = format!(
        "methods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 10\n{}",
        delivery(&standin, "")
    );
    let (srv, _pki, _slapd, lines) = same_request_twice(&held, &["drop-first"]);
    assert_eq!(
        lines.first().map(String::as_str),
        Some("dropped"),
        "{lines:?}"
    );
    assert!(
        lines.get(1).is_some_and(|l| l.starts_with("02")),
        "an Access-Accept on the new connection: {lines:?}\n{}",
        srv.log()
    );
    assert_eq!(standin.calls().len(), 1, "one call for one login");
    assert_eq!(srv.audit_json("alice").len(), 1);
}

/// Sends an Access-Request for alice, then a Status-Server, on one connection; prints the
/// identifier of each reply as it comes (for 8 s at most).
const TWO_ON_ONE: &str = r#"
import hashlib, hmac, os, socket, ssl, struct, sys, time
port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
def signed(code, i, attrs):
    auth = os.urandom(16)
    body = b"\x50\x12" + bytes(16) + attrs
    head = struct.pack("!BBH", code, i, 20 + len(body)) + auth
    mac = hmac.new(b"radsec", head + body, hashlib.md5).digest()
    return head + b"\x50\x12" + mac + attrs, auth
user = b"alice"
req, auth = signed(1, 1, b"")
pw = b"alice-pw".ljust(16, b"\0")
key = hashlib.md5(b"radsec" + auth).digest()
hidden = bytes(a ^ b for a, b in zip(pw, key))
attrs = bytes([1, 2 + len(user)]) + user + bytes([2, 18]) + hidden
head = struct.pack("!BBH", 1, 1, 20 + 18 + len(attrs)) + auth
mac = hmac.new(b"radsec", head + b"\x50\x12" + bytes(16) + attrs, hashlib.md5).digest()
s.sendall(head + b"\x50\x12" + mac + attrs + signed(12, 2, b"")[0])
s.settimeout(8)
buf, start = b"", time.time()
try:
    while time.time() - start < 8:
        data = s.recv(4096)
        if not data:
            print("closed", flush=True)
            break
        buf += data
        while len(buf) >= 4 and len(buf) >= struct.unpack("!H", buf[2:4])[0]:
            n = struct.unpack("!H", buf[2:4])[0]
            print("reply to", buf[1], flush=True)
            if buf[1] == 2:
                sys.exit(0)
            buf = buf[n:]
except socket.timeout:
    print("silent", flush=True)
"#;

/// With every request slot taken, a UDP request is dropped (the NAS retransmits); a RadSec
/// NAS never retransmits on the same connection, so its request waits for a slot instead
/// of never being answered.
#[test]
fn a_radsec_request_waits_for_a_free_slot_rather_than_being_dropped() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    // A directory that accepts connections and never answers: alice's login holds the one
    // request slot until the LDAP timeout.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = Options::new(&format!("ldap://{}", mute.local_addr().unwrap()));
    o.ldap_timeout_ms = 1000;
    o.server_extra = "max_in_flight = 1".into();
    let srv = start_opts(o, &good, "nas.example.org", "", 4000);
    let said = radsec_script(TWO_ON_ONE, &srv, &good);
    assert!(
        said.lines().any(|l| l == "reply to 2"),
        "the Status-Server behind the held login was never answered: {said}\n{}",
        srv.log()
    );
    drop(mute);
}

/// Sends 4 Access-Requests for alice on one connection at once, prints "sent", then holds
/// the connection until stdin closes.
const FOUR_AT_ONCE: &str = r#"
import hashlib, hmac, os, socket, ssl, struct, sys
port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
def request(i):
    user, auth = b"alice", os.urandom(16)
    pw = b"alice-pw".ljust(16, b"\0")
    hidden = bytes(a ^ b for a, b in zip(pw, hashlib.md5(b"radsec" + auth).digest()))
    attrs = bytes([1, 2 + len(user)]) + user + bytes([2, 18]) + hidden
    head = struct.pack("!BBH", 1, i, 20 + 18 + len(attrs)) + auth
    mac = hmac.new(b"radsec", head + b"\x50\x12" + bytes(16) + attrs, hashlib.md5).digest()
    return head + b"\x50\x12" + mac + attrs
s.sendall(b"".join(request(i) for i in range(1, 5)))
print("sent", flush=True)
sys.stdin.read()
"#;

/// One RadSec connection cannot take every request slot: with `max_in_flight = 4` and a
/// directory that never answers, four logins sent at once on one connection hold two slots
/// (the connection's share), and a UDP NAS's request is still served. The third waits for
/// one of the connection's slots half its deadline (2 s), then the connection is closed as
/// overloaded.
#[test]
fn one_radsec_connection_leaves_request_slots_for_udp() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = Options::new(&format!("ldap://{}", mute.local_addr().unwrap()));
    o.ldap_timeout_ms = 3000;
    o.server_extra = "max_in_flight = 4".into();
    let srv = start_client_opts(o, &good, "nas.example.org", "", 4000, BOTH);
    let (mut peer, line) = radsec_peer(FOUR_AT_ONCE, &srv, &good);
    assert_eq!(line, "sent");
    std::thread::sleep(Duration::from_millis(300)); // the four reach radmfa
    let udp = srv.udp();
    let (raw, _) = radmfa::radius::client::status_server(9, SECRET.as_bytes());
    udp.send(&raw).unwrap();
    let mut buf = [0u8; 4096];
    let answered = udp.recv(&mut buf);
    let closed = srv.log_shows("RadSec connection kept its own share of requests in flight");
    drop(peer.stdin.take());
    let _ = peer.wait();
    drop(mute);
    assert!(
        answered.is_ok(),
        "a UDP Status-Server found no free slot: {answered:?}\n{}",
        srv.log()
    );
    assert_eq!(buf[0], 2, "Access-Accept");
    assert!(closed, "not closed as overloaded:\n{}", srv.log());
}

/// Sends 3 Access-Requests for alice on connection A, then (0.5 s later) the third again
/// on a new connection B, as a peer resends one whose connection stalled; prints B's reply
/// code and how long after the resend it came, or "silent" after 10 s.
/// (After FOUR_AT_ONCE's connection `s`, connection A here, and its `request`.)
const THIRD_RESENT_ON_ANOTHER_CONNECTION: &str = r#"
import time
third = request(3)
s.sendall(request(1) + request(2) + third)
time.sleep(0.5)
b = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
b.sendall(third)
sent = time.time()
b.settimeout(10)
try:
    data = b.recv(4096)
    print("reply %d" % data[0] if data else "closed", flush=True)
    print("after %.2f" % (time.time() - sent), flush=True)
except socket.timeout:
    print("silent", flush=True)
"#;

/// A resend on a new connection joins its first copy in flight; when that copy is given up
/// unanswered (it waited half its deadline for one of its connection's request slots, and
/// that connection was closed as overloaded), the resend is worked out itself and answered
/// on its own connection, within its deadline counted from its own arrival (not from when
/// the first copy was given up). It was left unanswered: the peer waited a whole timeout
/// more.
#[test]
fn a_resend_whose_first_copy_was_given_up_is_answered() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    // A directory that never answers: the first two logins hold A's two request slots (its
    // share of max_in_flight = 4) until their deadline (4 s; the LDAP timeout is longer),
    // longer than the third waits for one (half the deadline); every login ends in a Reject
    // when its verdict is due, 3.5 s after it arrived.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = Options::new(&format!("ldap://{}", mute.local_addr().unwrap()));
    o.ldap_timeout_ms = 10_000;
    o.server_extra = "max_in_flight = 4".into();
    let srv = start_opts(o, &good, "nas.example.org", "", 4000);
    let connect = &FOUR_AT_ONCE[..FOUR_AT_ONCE.find("s.sendall").unwrap()];
    let script = format!("{connect}{THIRD_RESENT_ON_ANOTHER_CONNECTION}");
    let said = radsec_script(&script, &srv, &good);
    drop(mute);
    assert!(
        srv.log_shows("RadSec connection kept its own share of requests in flight"),
        "connection A was not closed as overloaded:\n{}",
        srv.log()
    );
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.first(), Some(&"reply 3"), "{said}\n{}", srv.log());
    // 3.5 s after the resend's arrival; counted from the re-dispatch (2 s after the first
    // copy), it came about 5 s after.
    let after: f64 = lines[1].strip_prefix("after ").unwrap().parse().unwrap();
    assert!(
        after < 4.2,
        "answered {after} s after the resend\n{}",
        srv.log()
    );
}

/// Over RadSec too, a client with `on_backend_failure = "no_reply"` gets no Status-Server
/// answer while the node's directory is down (here from the node's start, before any login
/// failed), and one once a probe finds it back.
#[test]
fn radsec_status_server_follows_the_backends_for_no_reply_clients() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let mut slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    slapd.stop();
    let mut o = Options::new(&slapd.url);
    o.ldap_timeout_ms = 1000;
    let no_reply = "on_backend_failure = \"no_reply\"";
    let srv = start_client_opts(o, &good, "nas.example.org", "", 4000, no_reply);
    let port = radsec_port(&srv);
    let status = || {
        let args = ["status", "--timeout", "2", "--retries", "0"];
        our_client(port, &good, &good.ca, &args)
    };
    let out = status();
    assert!(
        !out.status.success(),
        "answered while the directory is down: {out:?}\n{}",
        srv.log()
    );
    slapd.restart();
    let until = Instant::now() + Duration::from_secs(15);
    while !status().status.success() {
        assert!(
            Instant::now() < until,
            "not answered after the directory came up:\n{}",
            srv.log()
        );
    }
}

/// `client login` over RadSec to a server that completes the handshake and never answers
/// (`openssl s_server`, a real TLS peer that reads and says nothing): TCP has no
/// retransmits, so the client waits as long as UDP's attempts would, timeout × (retries
/// + 1), and then says so; neither the first timeout alone nor forever.
#[test]
fn client_login_over_radsec_waits_timeout_times_attempts_then_says_so() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make(pki_dir.path(), "quiet");
    let port = free_port();
    let mut server = Command::new(require("openssl", "openssl"))
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("-cert")
        .arg(&pki.server_cert)
        .arg("-key")
        .arg(&pki.server_key)
        .arg("-CAfile")
        .arg(&pki.ca)
        .args(["-Verify", "1"])
        // Its stdin is what it would send: held open and empty, it answers nothing.
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let listening = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < listening, "s_server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let login = ["login", "alice", "--password", "pw"];
    let tuned = ["--timeout", "0.5", "--retries", "3"];
    let started = Instant::now();
    let out = our_client(port, &pki, &pki.ca, &[&login[..], &tuned[..]].concat());
    let took = started.elapsed();
    server.kill().ok();
    server.wait().ok();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("no reply over RadSec within 2s"), "{text}");
    assert!(
        took >= Duration::from_millis(1900),
        "gave up after {took:?}, before 0.5 s × 4: {text}"
    );
}
