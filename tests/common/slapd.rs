//! A throwaway OpenLDAP `slapd` for integration tests.
//!
//! Each [`Slapd`] lives in its own temporary directory (config, mdb database, log, TLS
//! material) and listens on a free port of 127.0.0.1. It is killed and its directory removed
//! on drop. The data survives [`Slapd::stop`] / [`Slapd::restart`], which keep the port.
//!
//! Needs the `slapd` package (slapd, slapadd and the schema files); TLS also needs the
//! `openssl` command. A missing program is a panic, never a skipped test.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

pub const BASE_DN: &str = "dc=example,dc=org";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
/// The rootdn password; tests/common/radmfa.rs and conf/demo.toml assume "adminpw".
pub const ADMIN_PASSWORD: &str = "adminpw";
/// A non-root service account for searches (ACLs apply to it, unlike the rootdn).
pub const SERVICE_DN: &str = "cn=radmfa,ou=services,dc=example,dc=org";
pub const SERVICE_PASSWORD: &str = "service-secret";

const INSTALL_HINT: &str =
    "install the OpenLDAP server: `apt-get install -y slapd ldap-utils` (Debian/Ubuntu)";

/// A user entry (`inetOrgPerson` under `ou=people`). Empty optional fields are left out.
#[derive(Debug, Clone)]
pub struct LdapUser {
    pub uid: String,
    pub password: String,
    pub cn: String,
    pub given_name: String,
    pub sn: String,
    pub mail: String,
    pub mobile: String,
    /// The `userPassword` value to store instead of a salted SHA-1 of `password`, e.g.
    /// [`slow_crypt`]'s.
    pub password_hash: Option<String>,
}

impl LdapUser {
    /// `uid` with the given password and names/mail/mobile derived from the uid.
    pub fn new(uid: &str, password: &str) -> Self {
        let given = capitalize(uid);
        LdapUser {
            uid: uid.into(),
            password: password.into(),
            cn: format!("{given} Example"),
            given_name: given,
            sn: "Example".into(),
            mail: format!("{uid}@example.org"),
            mobile: "+15550100".into(),
            password_hash: None,
        }
    }

    pub fn dn(&self) -> String {
        format!("uid={},{PEOPLE_DN}", self.uid)
    }

    /// `n` users `user00000`, `user00001`, ... with password `pw-user00000`, ...
    /// (SSHA is computed in-process, so thousands are quick).
    pub fn generate(n: usize) -> Vec<LdapUser> {
        (0..n)
            .map(|i| {
                let uid = format!("user{i:05}");
                let mut u = LdapUser::new(&uid, &format!("pw-{uid}"));
                u.mobile = format!("+1555{i:07}");
                u
            })
            .collect()
    }
}

/// LDIF for `ou=groups` and one groupOfNames per `(cn, member uids)`, for
/// [`SlapdOptions::extra_ldif`]. A groupOfNames needs a member, so an empty list gets the
/// base DN as its one member.
pub fn groups_ldif(groups: &[(&str, &[&str])]) -> String {
    let mut l = format!("dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n\n");
    for (cn, uids) in groups {
        l.push_str(&format!(
            "dn: {}\nobjectClass: groupOfNames\ncn: {cn}\n",
            group_dn(cn)
        ));
        if uids.is_empty() {
            l.push_str(&format!("member: {BASE_DN}\n"));
        }
        for uid in *uids {
            l.push_str(&format!("member: uid={uid},{PEOPLE_DN}\n"));
        }
        l.push('\n');
    }
    l
}

/// The DN of a group made by [`groups_ldif`].
pub fn group_dn(cn: &str) -> String {
    format!("cn={cn},ou=groups,{BASE_DN}")
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Options for [`Slapd::start_with`].
#[derive(Debug, Clone, Default)]
pub struct SlapdOptions {
    /// Also listen on `ldaps://` and accept StartTLS, with a fresh self-signed CA.
    pub tls: bool,
    /// Extra LDIF appended after the generated entries.
    pub extra_ldif: String,
    /// Load the ppolicy overlay, with `cn=default,ou=policies,…` as the default policy (the
    /// caller's `extra_ldif` makes that entry).
    pub ppolicy: bool,
    /// Load `tests/fixtures/ldap/ad-like.schema`: Active Directory's `accountExpires`, on
    /// the auxiliary class `radmfaTestAdUser`.
    pub ad_like_schema: bool,
    /// With `tls`: the server certificate's subjectAltName (openssl syntax, e.g.
    /// `DNS:dc.example.invalid`) instead of `IP:127.0.0.1,DNS:localhost`. Still signed by
    /// [`TlsFiles::ca_file`], so a client trusting that CA sees only a name mismatch.
    pub tls_server_san: Option<String>,
    /// `access to …` rules (slapd.conf syntax, one per item) before the defaults (passwords
    /// for binds only, everything else readable by all): an ACL that hides an attribute
    /// from the service account, say.
    pub access: Vec<String>,
}

/// Files of the test CA and server certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM of the CA that signed the server certificate (SAN: IP 127.0.0.1, DNS localhost,
    /// unless [`SlapdOptions::tls_server_san`] says otherwise).
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub struct Slapd {
    /// `ldap://127.0.0.1:<port>`
    pub url: String,
    pub port: u16,
    /// `ldaps://127.0.0.1:<ldaps_port>` when started with TLS.
    pub ldaps_url: Option<String>,
    pub ldaps_port: Option<u16>,
    pub tls: Option<TlsFiles>,
    pub base_dn: String,
    pub people_dn: String,
    pub admin_dn: String,
    pub admin_password: String,
    pub service_dn: String,
    pub service_password: String,
    dir: tempfile::TempDir,
    slapd_bin: PathBuf,
    child: Option<Child>,
}

impl Slapd {
    /// Start a server holding `users` (plain LDAP only).
    pub fn start(users: &[LdapUser]) -> Slapd {
        Slapd::start_with(users, SlapdOptions::default())
    }

    pub fn start_with(users: &[LdapUser], opts: SlapdOptions) -> Slapd {
        let slapd_bin = find_program(
            "slapd",
            &[
                "/usr/sbin",
                "/usr/local/sbin",
                "/usr/libexec",
                "/usr/local/libexec",
            ],
        )
        .unwrap_or_else(|| panic!("`slapd` not found; {INSTALL_HINT}"));
        let slapadd_bin = find_program("slapadd", &["/usr/sbin", "/usr/local/sbin"])
            .unwrap_or_else(|| panic!("`slapadd` not found; {INSTALL_HINT}"));
        let schema_dir = [
            "/etc/ldap/schema",
            "/etc/openldap/schema",
            "/usr/local/etc/openldap/schema",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("core.schema").exists())
        .unwrap_or_else(|| panic!("OpenLDAP schema files (core.schema) not found; {INSTALL_HINT}"));

        let dir = tempfile::Builder::new()
            .prefix("radmfa-slapd-")
            .tempdir()
            .expect("create temp dir for slapd");
        let data_dir = dir.path().join("data");
        fs::create_dir(&data_dir).expect("create slapd data dir");

        assert!(
            opts.tls || opts.tls_server_san.is_none(),
            "SlapdOptions::tls_server_san needs tls: true"
        );
        let tls = opts
            .tls
            .then(|| make_tls_files(dir.path(), opts.tls_server_san.as_deref()));
        let conf = slapd_conf(dir.path(), &schema_dir, &data_dir, tls.as_ref(), &opts);
        let conf_path = dir.path().join("slapd.conf");
        fs::write(&conf_path, conf).expect("write slapd.conf");

        let mut ldif = base_ldif();
        for u in users {
            user_ldif(&mut ldif, u);
        }
        ldif.push_str(&opts.extra_ldif);
        let ldif_path = dir.path().join("data.ldif");
        fs::write(&ldif_path, ldif).expect("write LDIF");
        let out = Command::new(&slapadd_bin)
            .arg("-q")
            .arg("-f")
            .arg(&conf_path)
            .arg("-l")
            .arg(&ldif_path)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", slapadd_bin.display()));
        assert!(
            out.status.success(),
            "slapadd failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let port = free_port();
        let ldaps_port = tls.as_ref().map(|_| free_port());
        let mut slapd = Slapd {
            url: format!("ldap://127.0.0.1:{port}"),
            port,
            ldaps_url: ldaps_port.map(|p| format!("ldaps://127.0.0.1:{p}")),
            ldaps_port,
            tls,
            base_dn: BASE_DN.into(),
            people_dn: PEOPLE_DN.into(),
            admin_dn: ADMIN_DN.into(),
            admin_password: ADMIN_PASSWORD.into(),
            service_dn: SERVICE_DN.into(),
            service_password: SERVICE_PASSWORD.into(),
            dir,
            slapd_bin,
            child: None,
        };
        slapd.spawn();
        slapd
    }

    /// The temporary directory (config, data, `slapd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kill the server (SIGKILL: clients see their connections drop). Data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Belt and braces: a pid in the pidfile that is not our child (should not happen).
        let pidfile = self.dir.path().join("slapd.pid");
        if let Ok(pid) = fs::read_to_string(&pidfile) {
            let pid = pid.trim();
            if !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").arg("-9").arg(pid).status();
            }
            let _ = fs::remove_file(&pidfile);
        }
    }

    /// Start again on the same port(s) with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "slapd already running");
        let mut listeners = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(p) = self.ldaps_port {
            write!(listeners, " ldaps://127.0.0.1:{p}/").unwrap();
        }
        let log_path = self.dir.path().join("slapd.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open slapd.log");
        let deadline = Instant::now() + Duration::from_secs(15);
        // The port may still be held for a moment right after a stop; retry the bind.
        loop {
            let child = Command::new(&self.slapd_bin)
                .arg("-f")
                .arg(self.dir.path().join("slapd.conf"))
                .arg("-h")
                .arg(&listeners)
                // A debug level keeps slapd in the foreground, so we own the process;
                // "stats" (256) logs every operation, which `bind_count` reads.
                .arg("-d")
                .arg("256")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log fd"))
                .stderr(log.try_clone().expect("dup log fd"))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("starting {}: {e}; {INSTALL_HINT}", self.slapd_bin.display())
                });
            self.child = Some(child);
            match self.wait_ready(deadline) {
                Ok(()) => return,
                Err(true) if Instant::now() < deadline && port_was_busy(&log_path) => {
                    self.child = None;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(_) => {
                    self.stop();
                    panic!(
                        "slapd did not come up on {listeners}; log:\n{}",
                        read_tail(&log_path)
                    );
                }
            }
        }
    }

    /// `Err(true)`: slapd exited; `Err(false)`: still not listening at the deadline.
    fn wait_ready(&mut self, deadline: Instant) -> Result<(), bool> {
        let mut ports = vec![self.port];
        ports.extend(self.ldaps_port);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_status)) = child.try_wait() {
                    return Err(true);
                }
            }
            let all_up = ports.iter().all(|&p| {
                let addr: SocketAddr = ([127, 0, 0, 1], p).into();
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            });
            if all_up {
                // Whoever answered must be our slapd: one that found the port taken (the
                // connect above reached the other listener) exits at once.
                std::thread::sleep(Duration::from_millis(50));
                if let Some(child) = self.child.as_mut() {
                    if let Ok(Some(_status)) = child.try_wait() {
                        return Err(true);
                    }
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An ldap-utils tool (`ldapwhoami`, `ldapmodify`, ...) bound to this server as the admin.
    fn as_admin(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.args([
            "-x",
            "-H",
            &self.url,
            "-D",
            &self.admin_dn,
            "-w",
            &self.admin_password,
        ]);
        c
    }

    /// Run `ldapwhoami` as the admin (requires ldap-utils); handy when debugging a test.
    pub fn whoami(&self) -> String {
        let out = self
            .as_admin("ldapwhoami")
            .output()
            .expect("ldapwhoami (package ldap-utils)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Lines of slapd's stats log (every operation since it was first started) that
    /// `matches` takes. Give slapd a moment after the client is done: it writes a line from
    /// its own thread as it processes the request.
    fn stats_count(&self, matches: impl Fn(&str) -> bool) -> u64 {
        let log = fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default();
        log.lines().filter(|l| matches(l)).count() as u64
    }

    /// TCP connections that carried at least one LDAP operation, read from the stats log
    /// (`conn=N op=M ...` lines). The harness's readiness probes connect without any
    /// operation and are not counted.
    pub fn connections_used(&self) -> usize {
        let log = fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default();
        let conns: std::collections::HashSet<&str> = log
            .lines()
            .filter_map(|l| {
                let conn = l.split_whitespace().find(|w| w.starts_with("conn="))?;
                l.contains(" op=").then_some(conn)
            })
            .collect();
        conns.len()
    }

    /// Sends `sig` ("-STOP", "-CONT") to slapd: frozen, it keeps its connections open and
    /// answers nothing (a paused VM, a hung process).
    #[allow(dead_code)] // not every test binary freezes the directory
    pub fn signal(&self, sig: &str) {
        let pid = fs::read_to_string(self.dir.path().join("slapd.pid")).expect("slapd.pid");
        super::frozen::signal(pid.trim().parse().expect("slapd.pid"), sig);
    }

    /// Waits (up to 10 s) until a request to this slapd sits unread in its socket: with
    /// slapd stopped (SIGSTOP), proof that a login has reached the directory and waits on
    /// it. A fixed sleep proved nothing on a loaded machine: the login could arrive later.
    pub fn wait_for_unread_request(&self) {
        self.wait_for_unread_requests(1);
    }

    /// [`Slapd::wait_for_unread_request`] for `n` connections at once (`n` logins waiting).
    pub fn wait_for_unread_requests(&self, n: usize) {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok());
        let port = port.expect("a port in the URL");
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let waiting: usize = ["/proc/net/tcp", "/proc/net/tcp6"]
                .iter()
                .map(|f| {
                    let table = fs::read_to_string(f).unwrap_or_default();
                    table
                        .lines()
                        .skip(1)
                        .filter(|l| {
                            let cols: Vec<&str> = l.split_whitespace().collect();
                            let local_port = cols
                                .get(1)
                                .and_then(|a| a.rsplit(':').next())
                                .and_then(|p| u16::from_str_radix(p, 16).ok());
                            let rx_queue = cols
                                .get(4)
                                .and_then(|q| q.split(':').nth(1))
                                .and_then(|q| u64::from_str_radix(q, 16).ok());
                            // Not the listening socket (state 0A), whose queue counts
                            // connections not yet accepted, not requests.
                            local_port == Some(port)
                                && cols.get(3) != Some(&"0A")
                                && rx_queue.is_some_and(|q| q > 0)
                        })
                        .count()
                })
                .sum();
            if waiting >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < until,
                "{waiting} of {n} requests reached slapd on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Binds slapd has received for any DN but the service account's (an anonymous one
    /// too, whose DN is empty).
    pub fn binds_but_the_service_accounts(&self) -> u64 {
        let service = format!(
            " bind dn=\"{}\" method=",
            self.service_dn.to_ascii_lowercase()
        );
        self.stats_count(|l| {
            let l = l.to_ascii_lowercase();
            // One line per bind request ("method="; slapd logs the outcome as "mech=").
            l.contains(" bind dn=\"") && l.contains(" method=") && !l.contains(&service)
        })
    }

    /// Simple binds slapd has received for `dn` (successful or not).
    pub fn bind_count(&self, dn: &str) -> u64 {
        let needle = format!(" bind dn=\"{}\" method=", dn.to_ascii_lowercase());
        self.stats_count(|l| l.to_ascii_lowercase().contains(&needle))
    }

    /// Applies an LDIF change (add, modify, modrdn, delete) as the admin with `ldapmodify`
    /// (ldap-utils), as an administrator would. Panics with ldapmodify's message on failure.
    pub fn modify(&self, ldif: &str) {
        use std::io::Write as _;
        let mut child = self
            .as_admin("ldapmodify")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ldapmodify (package ldap-utils)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapmodify failed: {}\n{ldif}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Searches slapd has received whose line contains `needle` (e.g. `uid=alice)`).
    pub fn search_count(&self, needle: &str) -> u64 {
        self.stats_count(|l| l.contains(" SRCH base=") && l.contains(needle))
    }

    /// The tail of slapd's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        read_tail(&self.dir.path().join("slapd.log"))
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        // `dir` (TempDir) removes the directory after this.
    }
}

/// slapd gave up because a listener port was still taken (right after a stop).
fn port_was_busy(log_path: &Path) -> bool {
    let tail = read_tail(log_path);
    let last = tail.lines().rev().take(10).collect::<Vec<_>>().join("\n");
    last.contains("Address already in use") || last.contains("errno=98")
}

fn read_tail(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let start = s.len().saturating_sub(4000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub use super::ports::free_port;

/// `{SSHA}` hash as slappasswd makes it: base64(sha1(password ‖ salt) ‖ salt).
/// `password` as a SHA-512 crypt with `rounds` rounds (`{CRYPT}$6$rounds=…`), which slapd
/// checks through crypt(3): every bind, right password or wrong, then costs slapd that
/// many rounds — a directory whose binds take milliseconds, as a real one's can. Made with
/// perl (always there: Debian's perl-base is essential), whose crypt is the same glibc's.
pub fn slow_crypt(password: &str, rounds: u32) -> String {
    let salt: String = (0..8)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let out = std::process::Command::new("perl")
        .args(["-e", "print crypt($ARGV[0], $ARGV[1])", password])
        .arg(format!("$6$rounds={rounds}${salt}$"))
        .output()
        .expect("perl");
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$6$rounds="), "crypt gave {hash:?}");
    format!("{{CRYPT}}{hash}")
}

pub fn ssha(password: &str) -> String {
    let salt: [u8; 8] = rand::random();
    let mut h = Sha1::new();
    h.update(password.as_bytes());
    h.update(salt);
    let mut raw = h.finalize().to_vec();
    raw.extend_from_slice(&salt);
    format!("{{SSHA}}{}", data_encoding::BASE64.encode(&raw))
}

fn slapd_conf(
    dir: &Path,
    schema_dir: &Path,
    data_dir: &Path,
    tls: Option<&TlsFiles>,
    opts: &SlapdOptions,
) -> String {
    let (ppolicy, ad_like_schema) = (opts.ppolicy, opts.ad_like_schema);
    let mut c = String::new();
    for schema in ["core", "cosine", "inetorgperson", "nis"] {
        writeln!(c, "include {}/{schema}.schema", schema_dir.display()).unwrap();
    }
    if ad_like_schema {
        let ad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap/ad-like.schema");
        writeln!(c, "include {}", ad.display()).unwrap();
    }
    writeln!(c, "pidfile {}/slapd.pid", dir.display()).unwrap();
    writeln!(c, "argsfile {}/slapd.args", dir.display()).unwrap();
    // back_mdb is a loadable module on Debian; built in elsewhere.
    if let Some(module_dir) = [
        "/usr/lib/ldap",
        "/usr/lib64/openldap",
        "/usr/lib/openldap",
        "/usr/local/libexec/openldap",
    ]
    .iter()
    .find(|d| {
        Path::new(d).join("back_mdb.so").exists() || Path::new(d).join("back_mdb.la").exists()
    }) {
        writeln!(c, "modulepath {module_dir}").unwrap();
        writeln!(c, "moduleload back_mdb").unwrap();
        if ppolicy {
            writeln!(c, "moduleload ppolicy").unwrap();
        }
    }
    if let Some(t) = tls {
        writeln!(c, "TLSCACertificateFile {}", t.ca_file.display()).unwrap();
        writeln!(c, "TLSCertificateFile {}", t.cert_file.display()).unwrap();
        writeln!(c, "TLSCertificateKeyFile {}", t.key_file.display()).unwrap();
    }
    writeln!(c, "database mdb").unwrap();
    writeln!(c, "maxsize 268435456").unwrap();
    writeln!(c, "suffix \"{BASE_DN}\"").unwrap();
    writeln!(c, "rootdn \"{ADMIN_DN}\"").unwrap();
    writeln!(c, "rootpw {}", ssha(ADMIN_PASSWORD)).unwrap();
    writeln!(c, "directory {}", data_dir.display()).unwrap();
    writeln!(c, "index objectClass eq").unwrap();
    writeln!(c, "index uid,mail eq").unwrap();
    if ppolicy {
        writeln!(c, "overlay ppolicy").unwrap();
        writeln!(c, "ppolicy_default \"cn=default,ou=policies,{BASE_DN}\"").unwrap();
        // A locked account's bind then says so in the control (else a bare 49).
        writeln!(c, "ppolicy_use_lockout").unwrap();
    }
    // slapd applies the first `access to` whose target matches: the test's own first.
    for rule in &opts.access {
        writeln!(c, "{rule}").unwrap();
    }
    writeln!(
        c,
        "access to attrs=userPassword by self write by anonymous auth by * none"
    )
    .unwrap();
    writeln!(c, "access to * by * read").unwrap();
    c
}

/// One LDIF attribute line, base64-encoded when the value is not plain SAFE-STRING.
fn ldif_attr(out: &mut String, attr: &str, value: &str) {
    let safe = !value.is_empty()
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    if safe {
        writeln!(out, "{attr}: {value}").unwrap();
    } else {
        writeln!(
            out,
            "{attr}:: {}",
            data_encoding::BASE64.encode(value.as_bytes())
        )
        .unwrap();
    }
}

fn base_ldif() -> String {
    let mut l = String::new();
    writeln!(
        l,
        "dn: {BASE_DN}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n"
    )
    .unwrap();
    writeln!(
        l,
        "dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n"
    )
    .unwrap();
    writeln!(
        l,
        "dn: ou=services,{BASE_DN}\nobjectClass: organizationalUnit\nou: services\n"
    )
    .unwrap();
    writeln!(
        l,
        "dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: radmfa\nuserPassword: {}\n",
        ssha(SERVICE_PASSWORD)
    )
    .unwrap();
    l
}

fn user_ldif(l: &mut String, u: &LdapUser) {
    ldif_attr(l, "dn", &u.dn());
    l.push_str("objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n");
    ldif_attr(l, "uid", &u.uid);
    ldif_attr(l, "cn", &u.cn);
    ldif_attr(l, "sn", &u.sn);
    ldif_attr(l, "displayName", &u.cn);
    for (attr, v) in [
        ("givenName", &u.given_name),
        ("mail", &u.mail),
        ("mobile", &u.mobile),
    ] {
        if !v.is_empty() {
            ldif_attr(l, attr, v);
        }
    }
    if let Some(hash) = &u.password_hash {
        ldif_attr(l, "userPassword", hash);
    } else if !u.password.is_empty() {
        ldif_attr(l, "userPassword", &ssha(&u.password));
    }
    l.push('\n');
}

/// A CA and a server certificate for 127.0.0.1/localhost (or for `server_san`), made with
/// the `openssl` CLI.
fn make_tls_files(dir: &Path, server_san: Option<&str>) -> TlsFiles {
    let pki = super::pki::Pki::make_with_sans(
        dir,
        "slapd",
        server_san.unwrap_or("IP:127.0.0.1,DNS:localhost"),
        "DNS:nas.example.org",
    );
    TlsFiles {
        ca_file: pki.ca,
        cert_file: pki.server_cert,
        key_file: pki.server_key,
    }
}
