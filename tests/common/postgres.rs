//! A throwaway PostgreSQL cluster for integration tests.
//!
//! Each [`PgCluster`] is `initdb`'d into its own temporary directory and listens on a free
//! port of 127.0.0.1 only (never the packaged service, never 5432). It is stopped and its
//! directory removed on drop; [`PgCluster::stop`] / [`PgCluster::start_again`] keep data and
//! port, for restart tests. `initdb` refuses to run as root, so as root every server command
//! runs as the `postgres` user through `runuser` (the recipe in shared/testing.md).
//!
//! Needs the PostgreSQL server binaries (Debian: `postgresql`, found under
//! /usr/lib/postgresql/<version>/bin, or `RADMFA_TEST_PG_BIN`). A missing server is a panic
//! with the install command, never a skipped test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

const INSTALL_HINT: &str = "the PostgreSQL server is not installed: run scripts/install-deps.sh \
                            (Debian package `postgresql`), or point RADMFA_TEST_PG_BIN at the \
                            directory holding initdb, pg_ctl and psql";

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// Extra server options (TLS).
    extra: String,
    /// PEM of the CA that signed the server certificate, when started with TLS.
    pub ca_file: Option<PathBuf>,
    /// The superuser's password over TCP: with `trust` there, any account on the machine
    /// could connect as superuser and run programs as the server's user (`COPY … TO
    /// PROGRAM`) while the tests run.
    password: String,
}

/// The server binaries: `RADMFA_TEST_PG_BIN`, else the newest /usr/lib/postgresql/*/bin.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RADMFA_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

fn is_root() -> bool {
    // The effective uid without libc: /proc/self/status "Uid: real effective …".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

// Below the ephemeral range (ports.rs): a cluster stopped and started again binds its port
// a second time, and meanwhile any outgoing connection could take a port from that range.
use super::ports::free_port;

impl PgCluster {
    /// initdb + start on a free port. Panics (with the server log) if it cannot.
    pub fn start() -> PgCluster {
        Self::start_inner(false)
    }

    /// As [`PgCluster::start`], also serving TLS with a certificate for 127.0.0.1 signed by a
    /// fresh test CA ([`PgCluster::ca_file`]).
    pub fn start_with_tls() -> PgCluster {
        Self::start_inner(true)
    }

    fn start_inner(tls: bool) -> PgCluster {
        let bin = bin_dir();
        assert!(bin.join("initdb").exists(), "{INSTALL_HINT}");
        let dir = tempfile::Builder::new()
            .prefix("radmfa-pg-")
            .tempdir()
            .unwrap();
        if is_root() {
            let st = Command::new("chown")
                .args(["postgres:", &dir.path().display().to_string()])
                .status()
                .expect("chown");
            assert!(st.success(), "chown postgres {}", dir.path().display());
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            port: 0,
            extra: String::new(),
            ca_file: None,
            password: format!("{:032x}", rand::random::<u128>()),
        };
        // Read by initdb, as `postgres` when we are root; gone once it has run.
        let pwfile = cluster.dir.path().join("pwfile");
        std::fs::write(&pwfile, &cluster.password).unwrap();
        if is_root() {
            let st = Command::new("chown")
                .args(["postgres:", &pwfile.display().to_string()])
                .status()
                .expect("chown");
            assert!(st.success(), "chown postgres {}", pwfile.display());
        }
        let out = cluster.server_cmd(
            "initdb",
            &[
                "-D",
                &cluster.data().display().to_string(),
                // The socket sits in the cluster's own 0700 directory; TCP needs the password.
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        std::fs::remove_file(&pwfile).unwrap();
        if tls {
            cluster.make_tls_files();
        }
        // A free port can be taken between our probe and the server's bind: try a few.
        for _ in 0..5 {
            cluster.port = free_port();
            if cluster.try_start() {
                return cluster;
            }
        }
        panic!("PostgreSQL did not start; log:\n{}", cluster.log());
    }

    /// One cluster shared by every test of this binary that runs while another holds it;
    /// stopped when the last holder drops it.
    pub fn shared() -> Arc<PgCluster> {
        static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.upgrade() {
            return c;
        }
        let c = Arc::new(PgCluster::start());
        *slot = Arc::downgrade(&c);
        c
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// URL of database `db` (superuser, with the cluster's password).
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}?sslmode=disable",
            self.password, self.port
        )
    }

    /// URL of the default `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The database name in a URL [`PgCluster::fresh_database`] gave.
    pub fn database_of(url: &str) -> String {
        let last = url.rsplit('/').next().unwrap_or_default();
        last.split('?').next().unwrap_or_default().to_string()
    }

    /// A new, empty database; returns its URL.
    pub fn fresh_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url_for(&name)
    }

    /// Runs SQL with psql; returns its unaligned, tuples-only output. Panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db])
            .args(["-p", &self.port.to_string(), "-c", sql])
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("running psql");
        assert!(out.status.success(), "psql {sql:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An open psql session on `db`, fed statements by [`PsqlSession::run`]: it stays
    /// connected between them, so a transaction can be held open and idle (a stalled node's
    /// connection, seen from the database). Its output is discarded.
    pub fn session(&self, db: &str) -> PsqlSession {
        use std::process::Stdio;
        let child = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db])
            .args(["-p", &self.port.to_string()])
            .env("PGPASSWORD", &self.password)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running psql");
        PsqlSession { child }
    }

    /// `pg_dump` of database `db` (plain SQL), as an operator's backup would hold it.
    pub fn pg_dump(&self, db: &str) -> Vec<u8> {
        let out = Command::new(self.bin.join("pg_dump"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db])
            .args(["-p", &self.port.to_string()])
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("running pg_dump");
        assert!(out.status.success(), "pg_dump: {}", text(&out));
        out.stdout
    }

    /// Fast shutdown (open connections are terminated); data and port are kept.
    pub fn stop(&self) {
        let out = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"]);
        assert!(out.status.success(), "pg_ctl stop: {}", text(&out));
    }

    /// Starts a stopped cluster again on the same port with more server options
    /// (`-c max_connections=2`), which win over the defaults.
    pub fn start_again_with(&mut self, options: &str) {
        self.extra = format!("{} {options}", self.extra);
        self.start_again();
    }

    /// Starts a stopped cluster again on the same port.
    pub fn start_again(&self) {
        assert!(
            self.try_start(),
            "PostgreSQL did not start again; log:\n{}",
            self.log()
        );
    }

    fn try_start(&self) -> bool {
        let opts = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
             -c shared_buffers=32MB {extra}",
            port = self.port,
            dir = self.dir.path().display(),
            extra = self.extra,
        );
        let log = self.dir.path().join("log").display().to_string();
        self.pg_ctl(&["start", "-w", "-t", "30", "-l", &log, "-o", &opts])
            .status
            .success()
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data().display().to_string();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.server_cmd("pg_ctl", &all)
    }

    /// Runs a server program, as `postgres` when we are root.
    fn server_cmd(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new(runuser());
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        // The server's working directory must be readable by the postgres user.
        cmd.args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()))
    }
}

impl PgCluster {
    /// A CA and a server certificate (SAN IP 127.0.0.1, DNS localhost) made with the openssl
    /// CLI; the key is handed to the server's user, which refuses a key others can read.
    fn make_tls_files(&mut self) {
        let d = self.dir.path();
        let path = |f: &str| d.join(f).display().to_string();
        std::fs::write(
            d.join("san.cnf"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n",
        )
        .unwrap();
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=radmfa test CA",
                "-keyout",
                &path("ca.key"),
                "-out",
                &path("ca.pem"),
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &path("server.key"),
                "-out",
                &path("server.csr"),
            ],
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &path("server.csr"),
                "-CA",
                &path("ca.pem"),
                "-CAkey",
                &path("ca.key"),
                "-CAcreateserial",
                "-extfile",
                &path("san.cnf"),
                "-out",
                &path("server.pem"),
            ],
        ];
        for args in steps {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl (Debian package openssl) is needed for TLS tests");
            assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        if is_root() {
            let st = Command::new("chown")
                .args(["postgres:", &path("server.key"), &path("server.pem")])
                .status()
                .unwrap();
            assert!(st.success());
        }
        self.extra = format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            path("server.pem"),
            path("server.key")
        );
        self.ca_file = Some(d.join("ca.pem"));
    }
}

fn runuser() -> &'static str {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("runuser (util-linux) is needed to run PostgreSQL as root")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// See [`PgCluster::session`]; killed on drop (the server then rolls its transaction back).
pub struct PsqlSession {
    child: std::process::Child,
}

impl PsqlSession {
    /// Sends `sql` (one or more statements, each ended by `;`) without waiting for it to run.
    pub fn run(&mut self, sql: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("psql's stdin");
        stdin.write_all(format!("{sql}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for PsqlSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate: the directory is deleted next, nothing needs to be flushed.
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "30"]);
    }
}
