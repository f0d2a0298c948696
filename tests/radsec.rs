//! RadSec (RADIUS over TLS, RFC 6614) with a peer nobody here wrote: radclient speaks UDP to
//! radsecproxy, which forwards over mutual TLS to radmfa's `[radsec]` listener, as a NAS
//! behind a RadSec proxy (or a RadSec-capable NAS) would.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::peers::{now, radclient, require, totp};
use common::pki::Pki;
use common::radmfa::{Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

const PROXY_SECRET: &str = "proxy-side-secret-1234";

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
        let bin = require("radsecproxy", "radsecproxy");
        let udp_port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(
            &conf,
            format!(
                r#"ListenUDP 127.0.0.1:{udp_port}
LogLevel 4
LogDestination file://{log}
tls default {{
    CACertificateFile {ca}
    CertificateFile {cert}
    CertificateKeyFile {key}
}}
client 127.0.0.1 {{
    type udp
    secret {PROXY_SECRET}
}}
server radmfa {{
    host 127.0.0.1
    port {radsec_port}
    type tls
    secret radsec
}}
realm * {{
    server radmfa
}}
"#,
                log = dir.join(format!("{name}.log")).display(),
                ca = ca.display(),
                cert = cert.display(),
                key = key.display(),
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .args(["-f", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting radsecproxy");
        std::thread::sleep(Duration::from_millis(500));
        Proxy { child, udp_port }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.udp_port)
    }
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
    let mut o = Options::new(&slapd.url);
    o.clients.clear();
    o.extra = format!(
        r#"
[radsec]
listen = ["127.0.0.1:0"]
cert_file = {:?}
key_file = {:?}
ca_file = {:?}

[[client]]
name = "local"
address = "127.0.0.1"
secret = "{SECRET}"
radsec_name = "{radsec_name}"
"#,
        pki.server_cert, pki.server_key, pki.ca
    );
    Server::start(&o)
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
        .env_remove("RADMFA_SECRET")
        .output()
        .unwrap()
}

#[test]
fn a_login_through_radsecproxy_over_mutual_tls() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let rogue = Pki::make(pki_dir.path(), "rogue");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    // The client certificate is issued to nas.example.org (tests/common/pki.rs).
    let srv = start(&slapd, &good, "nas.example.org");
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
    let log = srv.log();
    assert!(
        log.contains("its RadSec (TLS) handshake failed"),
        "no handshake failure logged:\n{log}"
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

#[test]
fn a_key_file_without_a_key_stops_the_start_and_names_the_key() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new("ldap://127.0.0.1:1");
    // The certificate where the key should be: it parses as PEM, but holds no key.
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
}

#[test]
fn a_certificate_not_issued_to_the_clients_radsec_name_gets_no_answer() {
    let pki_dir = tempfile::tempdir().unwrap();
    let good = Pki::make(pki_dir.path(), "good");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    // A certificate from the right CA, but issued to nas.example.org.
    let srv = start(&slapd, &good, "vpn1.example.org");
    let port = radsec_port(&srv);
    let out = our_client(port, &good, &good.ca, &["status", "--timeout", "2"]);
    assert!(!out.status.success(), "answered: {out:?}");
    let log = srv.log();
    assert!(
        log.contains("not issued to this [[client]] entry's radsec_name"),
        "{log}"
    );
}
