//! Backups and restores as an admin makes them (docs/operations.md), mistakes included:
//! a backup put beside a crashed server's WAL, a damaged database, the seed key a first
//! command makes.

mod common;

use common::radmfa::{cli_on, write_config, Options, Server};
use std::path::Path;
use std::process::Output;

/// No directory: the commands and checks here need none, and `serve` starts without one.
const NO_LDAP: &str = "ldap://127.0.0.1:1";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = cli_on(config, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    text(&out)
}

/// What `config check --connect` says (it fails on the directory, which is not there).
fn check(config: &Path) -> String {
    text(&cli_on(config, &["config", "check", "--connect"]))
}

/// `<dir>/radmfa.db<suffix>`.
fn db_file(dir: &Path, suffix: &str) -> std::path::PathBuf {
    dir.join(format!("radmfa.db{suffix}"))
}

/// A store in `dir` that a server had open when it was killed with SIGKILL: alice enrolled
/// before the server, bob while it ran, so bob is only in the -wal it left behind.
fn crashed_store(dir: &Path) -> std::path::PathBuf {
    let cfg = write_config(dir, &Options::new(NO_LDAP));
    ok(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    let srv = Server::start_with(tempfile::tempdir().unwrap(), cfg.clone());
    ok(&cfg, &["user", "enroll-totp", "bob", "--uri-only"]);
    drop(srv); // SIGKILL: the WAL is not merged, the -wal and -shm files stay
    let wal = std::fs::metadata(db_file(dir, "-wal")).map_or(0, |m| m.len());
    assert!(wal > 0, "the killed server left no WAL with content");
    cfg
}

/// Restore step 2 skipped: a `db backup` file copied over `radmfa.db` beside the -wal a
/// killed server left. SQLite would apply that WAL to the backup (it did: "ok store:
/// opened", then "database disk image is malformed" on every login). Every command, the
/// check and `serve` refuse it, name both files, and leave the backup as it was; with them
/// moved away, it opens with what the backup holds.
#[test]
fn a_backup_beside_a_crashed_servers_wal_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &Options::new(NO_LDAP));
    ok(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    let backup = dir.path().join("backup.db");
    ok(&cfg, &["db", "backup", backup.to_str().unwrap()]);
    // The backup's key kept apart (a key file without its database is refused: the store
    // the crash leaves behind gets a key of its own), and put back with the backup, as
    // restore step 3 says.
    std::fs::remove_file(db_file(dir.path(), "")).unwrap();
    let key = dir.path().join("radmfa.key");
    let kept = dir.path().join("backup.key");
    std::fs::rename(&key, &kept).unwrap();
    let cfg = crashed_store(dir.path());
    let db = db_file(dir.path(), "");
    std::fs::copy(&backup, &db).unwrap(); // `cp backup.db radmfa.db`
    std::fs::rename(&kept, &key).unwrap();
    let restored = std::fs::read(&db).unwrap();
    let wal = db_file(dir.path(), "-wal");
    let shm = db_file(dir.path(), "-shm");
    let names_both = |said: &str| {
        said.contains(&wal.display().to_string())
            && said.contains(&shm.display().to_string())
            && said.contains("restore step 2")
    };

    let out = cli_on(&cfg, &["config", "check", "--connect"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("FAIL store:") && names_both(&text(&out)),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("store: opened"), "{}", text(&out));
    // Each a refusal (exit 1, nothing changed), as docs/operations.md says: the reading
    // commands and `db migrate` exited 2, as for a usage error.
    for args in [
        &["user", "list"][..],
        &["user", "show", "alice"],
        &["token", "list"],
        &["audit"],
        &["db", "migrate"],
    ] {
        let out = cli_on(&cfg, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(names_both(&text(&out)), "{args:?}: {}", text(&out));
    }
    let out = std::process::Command::new("timeout")
        .args(["20", common::radmfa::bin().to_str().unwrap(), "--config"])
        .arg(&cfg)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "serve: {}", text(&out));
    assert!(names_both(&text(&out)), "serve: {}", text(&out));
    assert_eq!(
        std::fs::read(&db).unwrap(),
        restored,
        "the backup was changed"
    );
    assert!(wal.exists(), "the WAL was taken away");

    std::fs::rename(&wal, dir.path().join("old.db-wal")).unwrap();
    std::fs::rename(&shm, dir.path().join("old.db-shm")).unwrap();
    let check = check(&cfg);
    assert!(check.contains("ok   store: opened"), "{check}");
    let users = ok(&cfg, &["user", "list"]);
    assert!(users.contains("alice") && !users.contains("bob"), "{users}");
}

/// The normal crash: a WAL-mode store with the -wal its killed server left is recovered
/// as SQLite means it to be, with what was written to it while the server ran.
#[test]
fn a_crashed_servers_own_wal_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crashed_store(dir.path());
    let users = ok(&cfg, &["user", "list"]);
    assert!(users.contains("alice") && users.contains("bob"), "{users}");
    let check = check(&cfg);
    assert!(check.contains("ok   store: opened"), "{check}");
}

/// A database damaged where no start reads (the audit log's first page) opens and answers
/// `/health`, then fails what reads there. `config check --connect`, which an admin runs
/// after a restore, reads the whole file (SQLite's quick_check) and fails it, saying so.
#[test]
fn config_check_fails_a_damaged_database() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &Options::new(NO_LDAP));
    ok(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    let check = check(&cfg);
    assert!(check.contains("ok   store: opened"), "{check}");
    let backup = dir.path().join("backup.db");
    ok(&cfg, &["db", "backup", backup.to_str().unwrap()]);
    let (root, page_size): (i64, i64) = {
        let c = rusqlite::Connection::open_with_flags(
            &backup,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let root = c
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'audit'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (
            root,
            c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap(),
        )
    };
    assert!(root > 1, "audit's root page is {root}");
    let mut bytes = std::fs::read(&backup).unwrap();
    // The page's type byte: no b-tree page is of type 0xff.
    bytes[((root - 1) * page_size) as usize] = 0xff;
    std::fs::write(db_file(dir.path(), ""), &bytes).unwrap();

    let out = cli_on(&cfg, &["config", "check", "--connect"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("FAIL store: database")
            && said.contains("quick_check finds it damaged")
            && said.contains("restore it from a backup"),
        "{said}"
    );
    assert!(!said.contains("store: opened"), "{said}");
}

/// The first command on a new host makes the seed key: it says so, as `serve` logs it,
/// so that an admin who enrolls or imports before the first start (scripts/demo.sh does)
/// learns that the key must be backed up. The commands after it say nothing of it.
#[test]
fn the_command_that_makes_the_seed_key_says_so() {
    let made =
        |out: &Output| String::from_utf8_lossy(&out.stderr).contains("created a new seed key");
    for first in [
        &["user", "enroll-totp", "alice", "--uri-only"][..],
        &["token", "import", "tokens.csv"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(dir.path(), &Options::new(NO_LDAP));
        std::fs::write(
            dir.path().join("tokens.csv"),
            "serial,key,type,user\nT-1,3132333435363738393031323334353637383930,totp,\n",
        )
        .unwrap();
        let args: Vec<String> = first
            .iter()
            .map(|a| match *a {
                "tokens.csv" => dir.path().join(a).display().to_string(),
                a => a.to_string(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli_on(&cfg, &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let key = dir.path().join("radmfa.key");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            made(&out) && said.contains(&key.display().to_string()) && said.contains("back it up"),
            "{args:?}: {said}"
        );
        let out = cli_on(&cfg, &["user", "enroll-totp", "bob", "--uri-only"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(!made(&out), "said again: {}", text(&out));
    }
}

/// The store's disk full while radmfa serves (a small tmpfs, filled): reading commands still
/// work on the existing store, and `db backup` to another disk says the store's file system
/// is full (the copy needs its audit record there). Every command on an existing store
/// failed with "cannot create database" (a temporary file made at each open), and the
/// backup's refusal read "backup for  is done, but …" (then "… was removed: backup is done,
/// but …", each half saying the other was false).
#[test]
fn on_a_full_store_disk_commands_say_so_and_read_on() {
    use common::small_disk::SmallDisk;
    let disk = SmallDisk::mount(4, None);
    let cfg = write_config(&disk.mount, &Options::new(NO_LDAP));
    ok(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    let srv = Server::start_with(tempfile::tempdir().unwrap(), cfg.clone());
    disk.fill();
    let shown = ok(&cfg, &["user", "show", "alice"]);
    assert!(shown.contains("TOTP-"), "{shown}");
    let elsewhere = tempfile::tempdir().unwrap();
    let backup = elsewhere.path().join("b.db");
    let out = cli_on(&cfg, &["db", "backup", backup.to_str().unwrap()]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "the file system holding {} is full",
            db_file(&disk.mount, "").display()
        )) && !said.contains("for  is")
            && !said.contains("is done"),
        "{said}"
    );
    assert!(!backup.exists(), "a copy without its audit record stayed");
    disk.free();
    ok(&cfg, &["db", "backup", backup.to_str().unwrap()]);
    drop(srv);
}

/// The log, once it holds `needle` (or 15 s have passed: the file is looked at every 10 s).
fn log_once_it_shows(srv: &Server, needle: &str) -> String {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let log = srv.log();
        if log.contains(needle) || std::time::Instant::now() > until {
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A restore made without stopping the server (the file replaced under it), or the file
/// deleted: the server goes on with the file it opened, and what logins change there is
/// lost at its stop, while the admin commands act on the new file. It is said, as an
/// error, within seconds; and said again when the file it opened is back. Before, nothing
/// was.
#[test]
fn a_database_file_replaced_or_deleted_under_the_server_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &Options::new(NO_LDAP));
    ok(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    let path = dir.path().to_path_buf();
    let srv = Server::start_with(dir, cfg.clone());
    let db = db_file(&path, "");
    let away = db_file(&path, ".away");
    std::fs::rename(&db, &away).unwrap();
    let log = log_once_it_shows(&srv, "was deleted while radmfa runs");
    assert!(
        log.contains("ERROR") && log.contains("was deleted while radmfa runs"),
        "{log}"
    );
    // Nor does a connection the server opens now make a new, empty database there (one
    // did: reads through it failed "no such table" beside writes to the deleted file, and
    // the watch said "replaced").
    assert!(
        !db.exists(),
        "a new database at the deleted file's path\n{log}"
    );
    // A copy put there, as a restore by `cp` does.
    std::fs::copy(&away, &db).unwrap();
    let log = log_once_it_shows(&srv, "was replaced while radmfa runs");
    assert!(
        log.contains("Restart radmfa to serve the new file"),
        "{log}"
    );
    std::fs::rename(&away, &db).unwrap();
    let log = log_once_it_shows(&srv, "is the one radmfa opened again");
    assert!(log.contains("is the one radmfa opened again"), "{log}");
}
