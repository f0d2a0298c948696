//! The shipped systemd unit (`conf/radmfa.service`): systemd's own checker accepts it and
//! rates its sandbox, and its command line, run as an unprivileged service user the way the
//! unit runs it, keeps serving logins while root runs admin commands on the same store —
//! the set-up the README gives admins.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::peers::{now, totp};
use common::radmfa::{bin, cli_on, write_config, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

/// `nobody`: stands in for the unit's `radmfa` user; it owns nothing else here.
const SERVICE_UID: u32 = 65534;

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/radmfa.service");
    std::fs::read_to_string(path).unwrap()
}

/// The value of `Key=` in the unit (the last one, as systemd reads it).
fn setting(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .map(|v| v.trim().to_string())
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn systemd_analyze(args: &[&str]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze is missing: run scripts/install-deps.sh (Debian package systemd)")
}

#[test]
fn the_unit_verifies_and_is_sandboxed() {
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart's program exists; point it at the binary under test.
    let unit = unit_text().replace("/usr/local/bin/radmfa", bin().to_str().unwrap());
    let path = dir.path().join("radmfa.service");
    std::fs::write(&path, unit).unwrap();
    let out = systemd_analyze(&["verify", path.to_str().unwrap()]);
    // verify exits 0 on unknown keys and misplaced settings; it names the file in a warning.
    let ours: Vec<&str> = std::str::from_utf8(&out.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.contains("radmfa.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}",
        text(&out)
    );
    // Exposure on systemd's 0–10 scale, given as tenths: fails above 2.0 ("OK" is below 4).
    let out = systemd_analyze(&[
        "security",
        "--offline=true",
        "--threshold=20",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "sandbox exposure: {}", text(&out));
}

/// A directory laid out as on a host: config 0640 root:service group, state directory 0700
/// owned by the service user (what StateDirectory= makes).
struct Host {
    /// Holds the config and state directory; removed when the test ends.
    _dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
    /// A copy of the binary, where the service user can reach it: a clone under /root
    /// (mode 0700) keeps `target/` out of its reach, as /usr/local/bin is not.
    bin: PathBuf,
}

impl Host {
    fn new(ldap_url: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&state, Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
        let config = write_config(dir.path(), &Options::new(ldap_url));
        let toml = std::fs::read_to_string(&config)
            .unwrap()
            .replace("path = \"radmfa.db\"", "path = \"state/radmfa.db\"")
            .replace(
                "key_file = \"radmfa.key\"",
                "key_file = \"state/radmfa.key\"",
            );
        std::fs::write(&config, toml).unwrap();
        std::os::unix::fs::chown(&config, Some(0), Some(SERVICE_UID)).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        let bin_copy = dir.path().join("radmfa");
        std::fs::copy(bin(), &bin_copy).unwrap();
        std::fs::set_permissions(&bin_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A process another test thread forked while the copy was open for writing holds
        // that descriptor until it execs, and running the copy meanwhile fails with
        // ETXTBSY (rust-lang/rust#114554): run it once, trying again briefly, first.
        for tries in 0.. {
            match Command::new(&bin_copy).arg("--version").output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                done => {
                    assert!(done.unwrap().status.success());
                    break;
                }
            }
        }
        Host {
            _dir: dir,
            config,
            state,
            bin: bin_copy,
        }
    }

    /// The unit's ExecStart, with this host's binary and config, as the service user.
    fn start_service(&self) -> Server {
        // The server's own temp dir stays empty: the host's files live in `self.dir`.
        Server::spawn(
            tempfile::tempdir().unwrap(),
            self.config.clone(),
            self.as_service(),
        )
    }

    /// The unit's ExecStart as the unit runs it: as the service user, with its umask.
    fn as_service(&self) -> Command {
        let mut cmd = self.exec_start();
        cmd.uid(SERVICE_UID).gid(SERVICE_UID);
        // The unit's UMask=; std drops root's supplementary groups with the uid.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o077);
                Ok(())
            });
        }
        cmd
    }

    /// An admin command run as the service user (`sudo -u radmfa radmfa ...`).
    fn command_as_service(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.uid(SERVICE_UID).gid(SERVICE_UID);
        cmd
    }

    /// The same command line run by root from a shell, as an admin debugging would.
    fn start_as_root(&self) -> Server {
        Server::spawn(
            tempfile::tempdir().unwrap(),
            self.config.clone(),
            self.exec_start(),
        )
    }

    /// The unit's ExecStart with this host's binary and config.
    fn exec_start(&self) -> Command {
        let unit = unit_text();
        let exec = setting(&unit, "ExecStart").expect("ExecStart");
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/local/bin/radmfa"), "{exec}");
        let args: Vec<String> = words
            .map(|w| w.replace("/etc/radmfa/radmfa.toml", self.config.to_str().unwrap()))
            .collect();
        assert!(args.iter().any(|a| a == "serve"), "{exec}");
        let mut cmd = Command::new(&self.bin);
        cmd.args(&args);
        cmd
    }
}

fn owners(dir: &Path) -> Vec<(String, u32, u32)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.uid(),
                m.mode() & 0o777,
            )
        })
        .collect();
    v.sort();
    v
}

fn login(srv: &Server, user: &str, code: &str) -> Output {
    Command::new(bin())
        .args(["client", "login", user, "--password"])
        .arg(format!("{user}-pw"))
        .args(["--code", code, "--server", &srv.addr.to_string()])
        .env("RADMFA_SECRET", SECRET)
        .output()
        .unwrap()
}

#[test]
fn the_service_user_keeps_serving_while_root_runs_admin_commands() {
    let unit = unit_text();
    assert_eq!(
        setting(&unit, "StateDirectoryMode").as_deref(),
        Some("0700")
    );
    assert_eq!(setting(&unit, "UMask").as_deref(), Some("0077"));
    assert!(
        setting(&unit, "User").is_some_and(|u| u != "root"),
        "the unit runs as root"
    );

    let slapd = Slapd::start(&[
        LdapUser::new("alice", "alice-pw"),
        LdapUser::new("bob", "bob-pw"),
    ]);
    let host = Host::new(&slapd.url);
    let state = &host.state;
    let mut srv = host.start_service();
    // First start: the service made its key and database itself, private to it.
    let made: Vec<String> = owners(state).into_iter().map(|(n, _, _)| n).collect();
    assert!(
        made.iter().any(|n| n == "radmfa.db") && made.iter().any(|n| n == "radmfa.key"),
        "{made:?}"
    );
    for (name, uid, mode) in owners(state) {
        assert_eq!(uid, SERVICE_UID, "{name} is owned by uid {uid}");
        assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
    }

    // Root enrolls while the service runs; the service sees it at once.
    let alice = srv.enroll("alice", &[]);
    // So that the next step's code, used below, stays in the window (see its doc).
    common::peers::clear_of_step_boundary(5);
    let out = login(&srv, "alice", &totp(&alice, now(), &[]));
    assert!(out.status.success(), "{}\n{}", text(&out), srv.log());
    // Not dumpable (no core file, no ptrace or /proc/PID/mem by the service's user): the
    // kernel then gives the process's /proc files to root.
    let environ = std::fs::metadata(format!("/proc/{}/environ", srv.pid())).unwrap();
    assert_eq!(environ.uid(), 0, "/proc/PID/environ of a dumpable process");

    // With the service stopped, root's commands open the database themselves and, closing
    // it last, leave nothing behind but what was there.
    assert!(srv.stop().success(), "{}", srv.log());
    let bob = srv.enroll("bob", &[]);
    let out = srv.cli(&["audit", "--user", "alice"]);
    assert!(out.status.success(), "{}", text(&out));
    let names = |files: &[(String, u32, u32)]| -> Vec<String> {
        files.iter().map(|(n, _, _)| n.clone()).collect()
    };
    // (and the lock file a serving radmfa holds, which stays, the service user's).
    let files = owners(state);
    assert_eq!(
        names(&files),
        ["radmfa.db", "radmfa.db.serving", "radmfa.key"],
        "{files:?}"
    );
    let lock = files
        .iter()
        .find(|(n, _, _)| n == "radmfa.db.serving")
        .unwrap();
    assert_eq!((lock.1, lock.2), (SERVICE_UID, 0o600), "{files:?}");

    // Root runs the server by hand and it dies without closing the database: SQLite's -wal
    // and -shm files, made by root, stay behind; so does the lock file, made by root here
    // (as by a migration run before the service ever served): all must be the service's.
    std::fs::remove_file(state.join("radmfa.db.serving")).unwrap();
    let by_hand = host.start_as_root();
    drop(by_hand); // SIGKILL
    let files = owners(state);
    assert!(
        files.iter().any(|(n, _, _)| n.ends_with("-shm")),
        "root's server left no -shm file to test with: {files:?}"
    );
    for (name, uid, _) in &files {
        assert_eq!(
            *uid, SERVICE_UID,
            "root's command left {name} owned by uid {uid}"
        );
    }

    // The service starts again on what root left, and both users log in.
    let srv2 = host.start_service();
    let out = login(&srv2, "bob", &totp(&bob, now(), &[]));
    assert!(out.status.success(), "{}\n{}", text(&out), srv2.log());
    let out = login(&srv2, "alice", &totp(&alice, now() + 30, &[]));
    assert!(out.status.success(), "{}\n{}", text(&out), srv2.log());
}

/// The service's start, which must end on its own: one that is still running after a
/// while (serving) is killed and fails the test.
fn refused_start(host: &Host) -> Output {
    let mut child = host
        .as_service()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("the service started and kept running:\n{}", text(&out));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A database that is a link into a directory the service's account may not enter (a
/// restore left under a 0700 directory of root's, linked into place): `config check` run
/// as root warns, naming the closed directory; it passed. And the service's own commands
/// say permission denied, where they said "no database there" of a file that is there.
#[test]
fn a_database_linked_into_a_closed_directory_is_named() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let host = Host::new(&slapd.url);
    let mut srv = host.start_service();
    assert!(srv.stop().success(), "{}", srv.log());
    let db = host.state.join("radmfa.db");
    let closed = host.state.parent().unwrap().join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::rename(&db, closed.join("radmfa.db")).unwrap();
    std::os::unix::fs::symlink(closed.join("radmfa.db"), &db).unwrap();
    let out = cli_on(&host.config, &["config", "check", "--connect"]);
    let said = text(&out);
    assert!(
        said.contains("cannot enter the directory")
            && said.contains(&closed.display().to_string())
            && said.contains("presumably nobody (uid 65534)"),
        "{said}"
    );
    let out = host.command_as_service(&["user", "list"]).output().unwrap();
    let said = text(&out);
    assert!(
        !out.status.success()
            && said.contains("permission denied to the user radmfa runs as")
            && !said.contains("no database there"),
        "{said}"
    );
}

/// A store the service user cannot write (a backup restored by root, the chown forgotten)
/// is refused at start, and by `config check --connect` run as root, each naming
/// store.path, the service user and the chown that fixes it. SQLite opened the file
/// read-only, the server started, and every login was refused with "attempt to write a
/// readonly database" and no audit record.
#[test]
fn a_store_the_service_user_cannot_write_is_refused_at_start() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let host = Host::new(&slapd.url);
    let mut srv = host.start_service();
    assert!(srv.stop().success(), "{}", srv.log());
    let db = host.state.join("radmfa.db");
    let chown = format!("chown nobody {}", db.display());
    let says = |out: &Output, what: &str| {
        let said = text(out);
        for needle in [
            format!("store.path {}", db.display()),
            what.into(),
            chown.clone(),
        ] {
            assert!(said.contains(&needle), "{needle:?} in {said}");
        }
    };
    let named = |out: &Output, what: &str| {
        assert!(!out.status.success(), "{}", text(out));
        says(out, what);
    };

    // The restore: root's copy, readable by all, writable by root alone.
    std::os::unix::fs::chown(&db, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = refused_start(&host);
    named(
        &out,
        "the user radmfa runs as, nobody (uid 65534), cannot read and write",
    );
    // Run as root, the check can only presume whom the service runs as (the directory's
    // owner): a warning, as a radmfa that does run as root would work.
    let out = cli_on(&host.config, &["config", "check", "--connect"]);
    says(&out, "WARN store: store.path");
    says(&out, "presumably nobody (uid 65534)");
    says(&out, "if radmfa serve runs as root, ignore this");

    // The directory root's, the database the service user's but not its -wal (root's
    // server left it): presumed from the database's owner, and warned of too.
    let mode = std::fs::metadata(&host.state).unwrap().permissions();
    std::os::unix::fs::chown(&host.state, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&host.state, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&db, Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
    let out = cli_on(&host.config, &["config", "check", "--connect"]);
    let said = text(&out);
    assert!(
        said.contains("WARN store: store.path")
            && said.contains("presumably nobody (uid 65534)")
            && said.contains("cannot create files in the directory"),
        "{said}"
    );
    std::os::unix::fs::chown(&host.state, Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
    std::fs::set_permissions(&host.state, mode).unwrap();
    std::os::unix::fs::chown(&db, Some(0), Some(0)).unwrap();

    // Root's own, 0600: SQLite said "unable to open database file".
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = refused_start(&host);
    named(&out, "permission denied; owner root, mode 0600");

    // A key file root copied in (scp -p from another node) stays root's: the refusal says
    // whom it must belong to, not "Permission denied" alone.
    std::os::unix::fs::chown(&db, Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
    let key = host.state.join("radmfa.key");
    std::os::unix::fs::chown(&key, Some(0), Some(0)).unwrap();
    let said = text(&refused_start(&host));
    assert!(
        said.contains(
            "radmfa runs as nobody (uid 65534). If this is radmfa serve, that account must own it"
        ),
        "{said}"
    );
    // And a check run as root, which may read it, warns of it: it passed before.
    let said = text(&cli_on(&host.config, &["config", "check", "--connect"]));
    assert!(
        said.contains(&format!("WARN store: store.key_file {}", key.display()))
            && said.contains("presumably nobody (uid 65534)")
            && said.contains(&format!("chown nobody {}", key.display())),
        "{said}"
    );
    std::os::unix::fs::chown(&key, Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();

    // Given back to the service user, it serves again.
    let out = cli_on(&host.config, &["config", "check", "--connect"]);
    assert!(text(&out).contains("store: opened"), "{}", text(&out));
    let mut srv = host.start_service();
    assert!(srv.stop().success(), "{}", srv.log());
}
