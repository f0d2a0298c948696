//! The admin CLI as an admin uses it: enroll, list, show, reset, delete, unlock, audit,
//! config check — against a real store file, no server needed.

#[path = "cli/check_ldap.rs"]
mod check_ldap;
mod common;
#[path = "cli/secret_files.rs"]
mod secret_files;

use common::radmfa::{bin, write_config, Options};
use std::path::Path;
use std::process::{Command, Output};

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &Options::new("ldap://127.0.0.1:1"));
    (dir, cfg)
}

/// `radmfa serve` for a config it must refuse to start on. Under `timeout`: a server that
/// starts anyway is stopped after 20 s, and the test fails on its status (124).
fn serve_until_it_stops(cfg: &std::path::Path) -> Output {
    Command::new("timeout")
        .args(["20", bin().to_str().unwrap(), "--config"])
        .arg(cfg)
        .arg("serve")
        .output()
        .unwrap()
}

/// The config file's text, which must hold `line`: the harness's line a test replaces.
fn text_holding(cfg: &std::path::Path, line: &str) -> String {
    let text = std::fs::read_to_string(cfg).unwrap();
    assert!(
        text.contains(line),
        "no {line:?} in the harness's config:
{text}"
    );
    text
}

fn run(cfg: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// An app password logs in without a code: `user show` must not call its holder a user
/// "without second-factor state", and shows it (never the password itself).
#[test]
fn user_show_lists_app_passwords() {
    let (_d, cfg) = setup();
    let (ok, pw, err) = run(
        &cfg,
        &["user", "app-password", "add", "carol", "--label", "mail"],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = run(&cfg, &["user", "show", "carol"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("app password: #") && out.contains("mail"),
        "{out}"
    );
    // Of the lockout's threshold: "failures: 0" beside a lock read as a contradiction.
    assert!(
        out.contains("failures: 0 of 5 (consecutive wrong codes"),
        "{out}"
    );
    assert!(
        !out.contains(pw.trim()),
        "the password itself is never shown"
    );
    let (ok, out, _) = run(&cfg, &["user", "show", "carol", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["app_passwords"][0]["label"], "mail", "{v}");
    // Labels reach other admins' terminals: control characters are refused, and what is
    // left that reorders or hides text is escaped in the JSON too.
    let (ok, _, err) = run(
        &cfg,
        &[
            "user",
            "app-password",
            "add",
            "carol",
            "--label",
            "a\u{9b}2J",
        ],
    );
    assert!(!ok && err.contains("control characters"), "{err}");
    let (ok, _, err) = run(
        &cfg,
        &[
            "user",
            "app-password",
            "add",
            "carol",
            "--label",
            "tpecca\u{202e}",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, _) = run(&cfg, &["user", "app-password", "list", "carol", "--json"]);
    assert!(
        ok && out.contains("tpecca\\u202e") && !out.contains('\u{202e}'),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v[1]["label"], "tpecca\u{202e}",
        "the same JSON to a parser: {v}"
    );
}

/// Commands that only read do not make a store where there is none: a mistyped
/// `store.path` would otherwise get a new database and key and answer "no users".
/// Nor do commands that take away: pointed at a mistyped path, they would answer "0
/// deleted" from a new empty store while the real one kept what was to go.
#[test]
fn reading_commands_do_not_create_a_store() {
    let (d, cfg) = setup();
    let csv = d.path().join("t.csv");
    std::fs::write(
        &csv,
        "serial,key,type,user\nT-1,3132333435363738393031323334353637383930,totp,\n",
    )
    .unwrap();
    for args in [
        &["user", "list"][..],
        &["user", "show", "alice"],
        &["token", "list"],
        &["token", "show", "T-1"],
        &["audit"],
        &["user", "app-password", "delete-all", "alice"],
        &["user", "set-phone", "alice", "none"],
        &["user", "forget", "alice"],
        &["user", "bypass", "alice", "--cancel"],
        &["user", "reset", "alice"],
        &["user", "unlock", "alice"],
        &["user", "delete", "alice"],
        &["token", "disable", "T-1"],
        // Not an empty new database backed up as a success (a nightly job's typo).
        &["db", "backup", d.path().join("b.db").to_str().unwrap()],
    ] {
        let (ok, _, err) = run(&cfg, args);
        assert!(
            !ok && err.contains("store.path") && err.contains("no database there"),
            "{args:?}: {err}"
        );
    }
    // A dry run of an import checks the vendor's file before the first start: it goes
    // ahead, says there is no store (a mistyped store.path shows there), and makes none.
    let (ok, out, err) = run(
        &cfg,
        &["token", "import", csv.to_str().unwrap(), "--dry-run"],
    );
    assert!(ok && out.contains("there is no store yet"), "{out}{err}");
    assert!(!d.path().join("radmfa.db").exists(), "no database made");
    assert!(!d.path().join("radmfa.key").exists(), "no key made");
    // A command that writes makes them, as at a first enrollment.
    assert!(run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]).0);
    let (ok, out, err) = run(&cfg, &["user", "list"]);
    assert!(ok && out.contains("alice"), "{out}{err}");
    assert_eq!(out.lines().last(), Some("1 user(s)"), "{out}");
}

/// `user list` says why a user without a token is listed, and shows what a helpdesk scanning
/// the list must not miss: a fraud block, a waiting bypass, app passwords. Those rows read
/// "0 tokens, 0 failures, not locked", as if the user were there for nothing.
#[test]
fn user_list_shows_what_else_is_held_of_each_user() {
    let (_d, cfg) = setup();
    assert!(run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]).0);
    assert!(run(&cfg, &["user", "bypass", "bob"]).0);
    let (ok, _, err) = run(
        &cfg,
        &["user", "app-password", "add", "carol", "--label", "mail"],
    );
    assert!(ok, "{err}");
    assert!(run(&cfg, &["user", "set-method", "dave", "sms"]).0);
    let (ok, out, err) = run(&cfg, &["user", "list"]);
    assert!(ok, "{out}{err}");
    let row = |u: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{u} ")))
            .unwrap_or_else(|| panic!("{u} not listed: {out}"))
            .to_string()
    };
    assert!(out.lines().next().unwrap().ends_with("ALSO"), "{out}");
    assert!(row("alice").ends_with(" -"), "{out}");
    assert!(row("bob").contains("bypass until 20"), "{out}");
    assert!(row("carol").contains("1 app password(s)"), "{out}");
    assert!(row("dave").contains("method sms"), "{out}");
    let (ok, out, err) = run(&cfg, &["user", "list", "--json"]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let carol = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"] == "carol")
        .unwrap();
    assert_eq!(carol["app_passwords"], 1, "{out}");
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["user"] == "bob" && r["bypass_until"].is_i64()));
}

/// `user list` prints a page at a time (at 30,000 users the whole list held at once took
/// 85 MB, 119 MB with `--json`): more users than a page, each once and in order, the count
/// at the end, and `--json` still one array laid out as before.
#[test]
fn user_list_prints_every_user_across_pages() {
    let (d, cfg) = setup();
    // A store with a token in stock only: nobody to list.
    let stock = d.path().join("stock.csv");
    std::fs::write(&stock, "STOCK1,MFRGGZDFMZTWQ2LK,30\n").unwrap();
    let (ok, out, err) = run(&cfg, &["token", "import", stock.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let (ok, out, _) = run(&cfg, &["user", "list", "--json"]);
    assert!(ok && out == "[]\n", "{out:?}");
    let n = 1_201;
    let csv: String = (0..n)
        .map(|i| {
            // A seed of its own for each (a seed shared by two tokens is refused).
            let b32 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
            let tail: String = (0..4).map(|k| b32[(i >> (5 * k)) & 31] as char).collect();
            format!("S{i:05},JBSWY3DPEHPK{tail},30,user{i:05}\n")
        })
        .collect();
    let file = d.path().join("many.csv");
    std::fs::write(&file, csv).unwrap();
    let (ok, out, err) = run(&cfg, &["token", "import", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(&cfg, &["user", "list"]);
    assert!(ok, "{err}");
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("user"))
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!("user{i:05}")).collect();
    assert_eq!(names, want);
    assert_eq!(out.lines().last(), Some("1201 user(s)"));
    let (ok, out, err) = run(&cfg, &["user", "list", "--json"]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), n);
    assert_eq!(rows[1200]["user"], "user01200");
    assert_eq!(rows[0]["tokens"], 1);
    assert_eq!(
        out,
        format!("{}\n", serde_json::to_string_pretty(&rows).unwrap())
    );
}

/// An admin command that meets the store held by another writer for longer than the busy
/// timeout (a large `token import --replace`, a `sqlite3` shell in a transaction) says what
/// "database is locked" means here and what to do; it was the bare words (review).
#[test]
fn a_command_meeting_a_held_store_says_what_to_do() {
    let (d, cfg) = setup();
    assert!(run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]).0);
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (ok, out, err) = run(&cfg, &["user", "bypass", "alice"]);
    db.execute_batch("ROLLBACK").unwrap();
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("database is locked")
            && err.contains("another writer held the store for more than 5 s")
            && err.contains("try again once it is done"),
        "{err}"
    );
}

/// A `--cancel` that read the bypass, then waited for the store while a login used it: it
/// said "bypass cancelled", and its record followed the use (review). Now it cancels only
/// the bypass it read, and says it was used. The login is played by the test: inside the
/// transaction that held the store, it takes the bypass and records its use.
#[test]
fn a_cancel_after_a_login_used_the_bypass_says_so() {
    let (d, cfg) = setup();
    let (ok, out, err) = run(&cfg, &["user", "bypass", "alice", "--for", "2m"]);
    assert!(ok, "{out}{err}");
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let cancel = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["user", "bypass", "alice", "--cancel"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It reads the bypass (reads do not wait in WAL mode), then waits for the write lock.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    db.execute_batch(
        "UPDATE user_profile SET bypass_until = NULL WHERE user = 'alice'; \
         INSERT INTO audit (time, user, mode, result, reason, server_name, nas_name, \
         latency_ms) VALUES (CAST(strftime('%s','now') AS INTEGER), 'alice', 'bypass', \
         'accept', 'one-time bypass set by an admin; used', 'test-node', 'vpn', 3); \
         COMMIT",
    )
    .unwrap();
    let out = cancel.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{err}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("its bypass was used already, by a login at") && err.contains("through vpn"),
        "{err}"
    );
    let (_, out, _) = run(&cfg, &["audit", "--user", "alice", "--json"]);
    assert!(!out.contains("cancelled"), "a cancel recorded: {out}");
    // The login's own record not written yet (it follows the take, on its own): the cancel
    // says a login took it, not "check the spelling" (review).
    let (ok, out, err) = run(&cfg, &["user", "bypass", "alice", "--for", "2m"]);
    assert!(ok, "{out}{err}");
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let cancel = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["user", "bypass", "alice", "--cancel"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    db.execute_batch("UPDATE user_profile SET bypass_until = NULL WHERE user = 'alice'; COMMIT")
        .unwrap();
    let out = cancel.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("its bypass was used by a login while this cancel waited"),
        "{err}"
    );
}

/// Two admins granting a bypass to one user at the same moment: the grant that waited for
/// the store while the other one's was made said "it replaces the bypass that waited until"
/// the one from before, which the other grant had replaced (red team). It grants over the
/// bypass it read only, reads again when that changed, and names the one it replaced. The
/// other admin is played by the test, inside the transaction that held the store.
#[test]
fn a_grant_made_while_another_admin_granted_names_the_one_it_replaced() {
    let (d, cfg) = setup();
    let (ok, out, err) = run(&cfg, &["user", "bypass", "alice", "--for", "2m"]);
    assert!(ok, "{out}{err}");
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    let first: i64 = db
        .query_row(
            "SELECT bypass_until FROM user_profile WHERE user = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let grant = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["user", "bypass", "alice", "--for", "3h"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It reads the bypass (reads do not wait in WAL mode), then waits for the write lock;
    // meanwhile the other admin's grant, an hour from the first one's end, is made.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let other = first + 3600;
    db.execute_batch(&format!(
        "UPDATE user_profile SET bypass_until = {other} WHERE user = 'alice'; COMMIT"
    ))
    .unwrap();
    let out = grant.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    let noted: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("note: it replaces the bypass that waited until"))
        .collect();
    assert_eq!(noted.len(), 1, "{said}");
    let stored: i64 = db
        .query_row(
            "SELECT bypass_until FROM user_profile WHERE user = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored > other, "the 3h grant stands: {stored} {other}");
    // The note names the other admin's end, not the first grant's.
    assert!(
        noted[0].ends_with(&radmfa::clock::fmt_time(other)) && first != other,
        "{said}"
    );
}

/// Revocations given a name with nothing to revoke (most often mistyped: the real user keeps
/// what was to go) exit 1 and say so, and no audit record claims them; as `user reset`.
/// They exited 0 with "0 deleted", so a runbook checking the exit code reported done.
#[test]
fn revocations_of_nothing_under_a_name_fail_and_are_not_audited() {
    let (d, cfg) = setup();
    assert!(run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]).0);
    for args in [
        &["user", "app-password", "delete-all", "alcie"][..],
        &["user", "bypass", "alcie", "--cancel"],
        &["user", "set-phone", "alcie", "none"],
        &["user", "set-method", "alcie", "none"],
        // Not revocations, but the same typo: "0 forgotten" or an empty table and success
        // read as done (or as "has none").
        &["user", "forget", "alcie"],
        &["user", "app-password", "list", "alcie"],
        &["user", "app-password", "list", "alcie", "--json"],
    ] {
        let (ok, out, err) = run(&cfg, args);
        assert!(
            !ok && err.contains("check the spelling"),
            "{args:?}: {out}{err}"
        );
    }
    // One JSON object per line: none. Yet alice's one (her enrollment) is found: the empty
    // answer is for the misspelt name, not from a filter that finds nobody.
    let (ok, out, _) = run(&cfg, &["audit", "--user", "alcie", "--json"]);
    assert!(ok && out.trim().is_empty(), "{out}");
    let (ok, out, err) = run(&cfg, &["audit", "--user", "alice", "--json"]);
    let users: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["user"].clone())
        .collect();
    assert!(ok && users == [serde_json::json!("alice")], "{out}{err}");
    // With something there, they work as before; a known user with nothing remembered or
    // no app passwords is no typo.
    let (ok, out, err) = run(&cfg, &["user", "forget", "alice"]);
    assert!(
        ok && out.contains("0 remembered login(s) forgotten"),
        "{out}{err}"
    );
    let (ok, out, err) = run(&cfg, &["user", "app-password", "list", "alice", "--json"]);
    assert!(ok && out.trim() == "[]", "{out}{err}");
    assert!(run(&cfg, &["user", "app-password", "add", "alice"]).0);
    assert!(run(&cfg, &["user", "app-password", "delete-all", "alice"]).0);
    assert!(run(&cfg, &["user", "bypass", "alice", "--for", "1h"]).0);
    assert!(run(&cfg, &["user", "bypass", "alice", "--cancel"]).0);
    assert!(run(&cfg, &["user", "set-phone", "alice", "+15550100123"]).0);
    assert!(run(&cfg, &["user", "set-phone", "alice", "none"]).0);
    // A bypass for a user a fraud report blocked is granted, and said to wait behind the
    // block (logins check the block first).
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    db.execute(
        "UPDATE user_profile SET blocked_at = 1, blocked_reason = 'fraud' WHERE user = 'alice'",
        [],
    )
    .unwrap();
    drop(db);
    let (ok, out, err) = run(&cfg, &["user", "bypass", "alice", "--for", "1h"]);
    assert!(
        ok && out.contains("is blocked") && out.contains("user unblock alice"),
        "{out}{err}"
    );
    // A second bypass says what it replaces; a bare number (seconds, where minutes were
    // likely meant) is refused.
    let (ok, out, err) = run(&cfg, &["user", "bypass", "alice", "--for", "2h"]);
    assert!(
        ok && out.contains("it replaces the bypass that waited until"),
        "{out}{err}"
    );
    let (ok, _, err) = run(&cfg, &["user", "bypass", "alice", "--for", "5"]);
    assert!(!ok && err.contains("give a unit"), "{err}");
    let (ok, out, _) = run(&cfg, &["user", "bypass", "alice", "--cancel"]);
    assert!(ok && !out.contains("is blocked"), "{out}");
    let (ok, _, err) = run(&cfg, &["user", "set-method", "alice", "totp"]);
    assert!(ok && !err.contains("note:"), "{err}");
    // Stored, but said to change nothing yet: this config has no [sms] section.
    let (ok, out, err) = run(&cfg, &["user", "set-method", "alice", "sms"]);
    assert!(
        ok && out.contains("default method sms") && err.contains("no [sms] section"),
        "{out}{err}"
    );
    assert!(run(&cfg, &["user", "set-method", "alice", "none"]).0);
    // No number stored (it comes from the directory, or an earlier run removed it and then
    // failed): "none" still ends what hangs on the phone, here a remembered login.
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    db.execute(
        "INSERT INTO remembered_logins (user, nas, station, mode, verified_at, expires_at) \
         VALUES ('alice', 'vpn', '', 'sms', 1, 4000000000)",
        [],
    )
    .unwrap();
    let (ok, out, err) = run(&cfg, &["user", "set-phone", "alice", "none"]);
    assert!(
        ok && out.contains("1 remembered login(s) forgotten"),
        "{out}{err}"
    );
    let left: i64 = db
        .query_row("SELECT COUNT(*) FROM remembered_logins", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    drop(db);
    let (_, audit, _) = run(
        &cfg,
        &[
            "audit",
            "--user",
            "alice",
            "--result",
            "set-phone",
            "--json",
        ],
    );
    assert!(
        audit
            .lines()
            .next()
            .is_some_and(|l| l.contains("no stored number; 1 remembered")),
        "{audit}"
    );
    let (ok, _, err) = run(&cfg, &["user", "set-phone", "alice", "none"]);
    assert!(
        !ok && err.contains("check the spelling"),
        "then nothing is left: {err}"
    );
}

/// Exit status: 1 for a refusal (nothing changed, the reason said), 2 for an error.
#[test]
fn refusals_exit_1_and_errors_exit_2() {
    let (_d, cfg) = setup();
    let code = |args: &[&str]| {
        Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(
        code(&["user", "enroll-totp", "alice", "--uri-only"]),
        Some(0)
    );
    // Already enrolled: refused.
    assert_eq!(
        code(&["user", "enroll-totp", "alice", "--uri-only"]),
        Some(1)
    );
    assert_eq!(code(&["token", "show", "NO-SUCH"]), Some(1));
    // A backup onto a file that exists: refused, found deep in the command.
    let taken = cfg.with_file_name("taken.db");
    std::fs::write(&taken, b"not empty").unwrap();
    assert_eq!(code(&["db", "backup", taken.to_str().unwrap()]), Some(1));
    // The store's own -wal (empty or absent, so it passed as a new file: the backup went
    // into it, was reported and audited, and SQLite took the file over) and a directory
    // that is not there: refused, each said as what it is.
    let d = cfg.parent().unwrap();
    for (target, said) in [
        (d.join("radmfa.db-wal"), "the store's write-ahead log"),
        (d.join("radmfa.key"), "the store's seed key file"),
        (
            d.join("no-such-dir").join("b.db"),
            "no-such-dir does not exist; create it first",
        ),
    ] {
        let out = Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .args(["db", "backup", target.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{target:?}: {err}");
        assert!(err.contains(said), "{target:?}: {err}");
    }
    let (ok, out, _) = run(&cfg, &["audit", "--result", "backup", "--json"]);
    assert!(
        ok && out.trim().is_empty(),
        "a refused backup was audited: {out}"
    );
    // A bad option value: an error.
    assert_eq!(
        code(&["user", "enroll-totp", "bob", "--digits", "9"]),
        Some(2)
    );
}

/// A database whose key file is gone is not given a new key by whichever command runs
/// first: everything enrolled after would be sealed with a key no backup has.
#[test]
fn a_database_without_its_key_file_is_refused_not_rekeyed() {
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let key = d.path().join("radmfa.key");
    std::fs::remove_file(&key).unwrap();
    let backup = d.path().join("b.db");
    let backup_arg = backup.to_str().unwrap();
    for args in [
        &["user", "list"][..],
        &["user", "enroll-totp", "bob"][..],
        &["db", "migrate"][..],
        // No copy is made that its audit record could not tell of.
        &["db", "backup", backup_arg][..],
    ] {
        let (ok, _, err) = run(&cfg, args);
        assert!(!ok, "{args:?}");
        assert!(!backup.exists(), "{args:?} left a backup behind");
        assert!(
            err.contains("store.key_file") && err.contains("is missing") && err.contains("backup"),
            "{err}"
        );
        assert!(!key.exists(), "{args:?} made a new key file");
    }
    // A command that only reads or removes says plainly why it makes no key, and where the
    // key comes from.
    let (_, _, err) = run(&cfg, &["user", "list"]);
    assert!(
        err.contains("does not create a key file")
            && err.contains("restore the key file from its backup"),
        "{err}"
    );
    // A fresh install (no database yet) still gets both, at its first enrollment.
    std::fs::remove_file(d.path().join("radmfa.db")).unwrap();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    assert!(key.exists());
}

/// `config check --connect`, step 4 of a restore: a key file whose database is not at
/// `store.path` (the backup put somewhere else) fails the check; `serve` and every command
/// that opens the store refuse it too (`serve` started an empty database beside it, and
/// every enrollment was gone without a word). With neither there, a fresh install, it is
/// fine.
#[test]
fn config_check_connect_fails_a_key_file_without_its_database() {
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let db = d.path().join("radmfa.db");
    std::fs::rename(&db, d.path().join("moved-away.db")).unwrap();
    let (ok, out, _) = run(&cfg, &["config", "check", "--connect"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("FAIL store: ") && out.contains("does not exist, but its key file"),
        "{out}"
    );
    assert!(!db.exists(), "the check made a database");
    let out = serve_until_it_stops(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("does not exist, but its key file") && err.contains("not at store.path"),
        "{err}"
    );
    for args in [
        &["user", "enroll-totp", "bob", "--uri-only"][..],
        &["db", "migrate"][..],
    ] {
        let (ok, _, err) = run(&cfg, args);
        assert!(
            !ok && err.contains("does not exist, but its key file"),
            "{args:?}: {err}"
        );
    }
    assert!(!db.exists(), "a database was made");
    // An empty file where the database should be (a `touch` before a restore, a copy that
    // failed): no database either. A reading command wrote the schema into it, and `serve`
    // started an empty store beside the real one's key.
    std::fs::write(&db, b"").unwrap();
    // The key put back after it with a plain copy (newer than the empty file): refused all
    // the same (a rule by the files' times let this start an empty store).
    let key = d.path().join("radmfa.key");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&key, std::fs::read(&key).unwrap()).unwrap();
    for args in [
        &["user", "list"][..],
        &["user", "enroll-totp", "bob", "--uri-only"],
    ] {
        let (ok, _, err) = run(&cfg, args);
        assert!(
            !ok && (err.contains("is an empty file, but its key file")
                || err.contains("no database there")),
            "{args:?}: {err}"
        );
    }
    let out = serve_until_it_stops(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is an empty file, but its key file"), "{err}");
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "the empty file was written"
    );
    std::fs::remove_file(&db).unwrap();
    std::fs::remove_file(d.path().join("radmfa.key")).unwrap();
    let (_, out, _) = run(&cfg, &["config", "check", "--connect"]);
    assert!(
        out.contains("ok   store: ") && out.contains("does not exist yet"),
        "{out}"
    );
}

/// Two commands setting a new store up at once (an installer's import beside the first
/// start): each finds the other's empty database file and key, a first start under way,
/// and goes on with it. An empty file next to an older key is refused (the test above),
/// and this one was too, as a key file without its database, in 8 runs of 15.
#[test]
fn two_commands_setting_a_store_up_at_once_both_work() {
    for round in 0..8 {
        let (d, cfg) = setup();
        let runs: Vec<_> = ["alice", "bob"]
            .into_iter()
            .map(|user| {
                std::process::Command::new(common::radmfa::bin())
                    .arg("--config")
                    .arg(&cfg)
                    .args(["user", "enroll-totp", user, "--uri-only"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for run in runs {
            let out = run.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (ok, out, err) = run(&cfg, &["user", "list"]);
        assert!(
            ok && out.contains("alice") && out.contains("bob"),
            "{out}{err}"
        );
        drop(d);
    }
}

/// `user set-phone` where `[phone] sources` leaves the store out keeps the number, and says
/// that texts and calls will not use it: "phone set" alone promised texts that never came.
#[test]
fn set_phone_says_when_the_sources_leave_the_store_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new("ldap://127.0.0.1:1");
    o.extra = "[phone]\nsources = [\"mobile\"]\n".into();
    let cfg = write_config(dir.path(), &o);
    let (ok, out, err) = run(
        &cfg,
        &["user", "set-phone", "alice", "+15550100123", "--force"],
    );
    assert!(
        ok && out.contains("phone set to +15550100123"),
        "{out}{err}"
    );
    assert!(
        err.contains("[phone] sources does not list \"store\""),
        "{err}"
    );
    let (_d2, cfg2) = setup();
    let (ok, _, err) = run(
        &cfg2,
        &["user", "set-phone", "alice", "+15550100123", "--force"],
    );
    assert!(ok && !err.contains("does not list"), "{err}");
}

/// `db migrate` on an empty file (a failed copy, with no key file yet) says it made a new,
/// empty store there, as it does where no file was: it said "schema set up".
#[test]
fn db_migrate_on_an_empty_file_says_it_made_a_new_store() {
    let (d, cfg) = setup();
    std::fs::write(d.path().join("radmfa.db"), b"").unwrap();
    let (ok, out, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("no database was there; made a new, empty one"),
        "{out}"
    );
}

/// The first command to set a store up, run by root before the service's first start
/// (`user enroll-totp` as the README's setup does), gives the database and the key file
/// to the owner of their directory, the service's user: left root's 0600, the service
/// could open neither and refused to start, once for each. In a root-owned directory they
/// stay root's.
#[test]
fn a_store_root_sets_up_belongs_to_its_directorys_owner() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let (d, cfg) = setup();
    let store = d.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::os::unix::fs::chown(&store, Some(65534), Some(65534)).unwrap();
    let sqlite = "[store]\npath = \"radmfa.db\"\nkey_file = \"radmfa.key\"\n";
    let text = text_holding(&cfg, sqlite).replace(
        sqlite,
        "[store]\npath = \"store/radmfa.db\"\nkey_file = \"store/radmfa.key\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "carol", "--uri-only"]);
    assert!(ok, "{err}");
    for name in ["radmfa.db", "radmfa.key"] {
        let m = std::fs::metadata(store.join(name)).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o777),
            (65534, 65534, 0o600),
            "{name}"
        );
    }
    // The service's user opens it: the seed unseals.
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = Command::new(bin())
        .uid(65534)
        .gid(65534)
        .arg("--config")
        .arg(&cfg)
        .args(["user", "show", "carol"])
        .output()
        .expect("run as nobody (the suite runs as root, as CI does)");
    assert!(out.status.success(), "{out:?}");
    // Root's own directory: root's files, as before.
    let (d2, cfg2) = setup();
    let (ok, _, err) = run(&cfg2, &["user", "enroll-totp", "carol", "--uri-only"]);
    assert!(ok, "{err}");
    for name in ["radmfa.db", "radmfa.key"] {
        assert_eq!(
            std::fs::metadata(d2.path().join(name)).unwrap().uid(),
            0,
            "{name}"
        );
    }
}

/// `config check --connect` of a new release, run before it is installed (as the upgrade
/// notes advise), does not migrate the store the running release uses: it says the schema
/// is behind and reads no further. It migrated, and older releases then refused the store.
#[test]
fn config_check_connect_does_not_migrate_an_older_store() {
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    // The newest migration taken off the books, as a release without it left the store.
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    let newest: i64 = db
        .query_row("SELECT MAX(version) FROM _sqlx_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute(
        "CREATE TABLE kept AS SELECT * FROM _sqlx_migrations WHERE version = ?1",
        [newest],
    )
    .unwrap();
    db.execute("DELETE FROM _sqlx_migrations WHERE version = ?1", [newest])
        .unwrap();
    let count = |db: &rusqlite::Connection| -> i64 {
        db.query_row("SELECT COUNT(*) FROM _sqlx_migrations", [], |r| r.get(0))
            .unwrap()
    };
    let before = count(&db);
    drop(db);
    for args in [
        &["config", "check", "--connect"][..],
        &["config", "check", "--connect", "--user", "alice"],
    ] {
        let (_, out, err) = run(&cfg, args);
        let says = format!(
            "ok   store: reached; its schema is at version {} and this release's at {newest}",
            newest - 1
        );
        assert!(out.contains(&says), "{args:?}: {out}{err}");
        let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
        assert_eq!(count(&db), before, "{args:?} migrated the store");
    }
    // A wrong key file is still found (from the key the database recorded), unmigrated.
    let key = d.path().join("radmfa.key");
    let right = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    radmfa::store::KeyFile::load_or_create(&key).unwrap();
    let (ok, out, _) = run(&cfg, &["config", "check", "--connect"]);
    assert!(
        !ok && out.contains("FAIL store: store.key_file") && out.contains("is not the key"),
        "{out}"
    );
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    assert_eq!(
        count(&db),
        before,
        "the wrong key's check migrated the store"
    );
    drop(db);
    std::fs::write(&key, right).unwrap();
    // Its books put back (the migration's change is still there): current, so opened.
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    db.execute_batch("INSERT INTO _sqlx_migrations SELECT * FROM kept; DROP TABLE kept")
        .unwrap();
    drop(db);
    let (_, out, _) = run(&cfg, &["config", "check", "--connect"]);
    assert!(out.contains("ok   store: opened"), "{out}");
}

/// `config check --connect` closes the store it opened, with --user or without. Without
/// --user it was left to the process's exit, which could come before the store's writer
/// had closed: then SQLite's -wal and -shm were left behind, the WAL not checkpointed (a
/// race; tests/cluster.rs checks the PostgreSQL side without one).
#[test]
fn config_check_connect_closes_the_store() {
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let wal = d.path().join("radmfa.db-wal");
    assert!(!wal.exists(), "an admin command left the WAL");
    for args in [
        &["config", "check", "--connect"][..],
        &["config", "check", "--connect", "--user", "alice"],
    ] {
        // The directory of setup() is unreachable: the check fails, the store still opens.
        let (_, out, _) = run(&cfg, args);
        assert!(out.contains("ok   store: opened"), "{out}");
        let open: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with("-wal") || n.ends_with("-shm"))
            .collect();
        assert!(open.is_empty(), "{args:?} left the store open: {open:?}");
    }
}

/// A failover must fit in the request deadline: `timeout_ms` on a server that hangs, then a
/// login from cold on the next one. `config check` says when the file alone leaves too
/// little (timeout_ms and connect_timeout_ms beyond the time a login has), and `--connect`
/// times each server and says what timeout_ms would fit: here the second server is 400 ms
/// away each way (a branch office's far DC), and the measured warning comes only then.
#[test]
fn config_check_says_whether_a_failover_fits_in_the_deadline() {
    let slapd = common::slapd::Slapd::start(&[common::slapd::LdapUser::new("alice", "pw")]);
    let far = common::wan_relay::WanRelay::start(slapd.port);
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new(&slapd.url);
    o.ldap_urls.push(far.url.clone());
    o.ldap_timeout_ms = 2000;
    let cfg = write_config(dir.path(), &o);
    let (_, out, err) = run(&cfg, &["config", "check", "--connect"]);
    let file_warning = "ldap: timeout_ms = 2000 and connect_timeout_ms = 2000 add up to more \
                        than the 3500 ms a login has to decide";
    assert!(out.contains(file_warning), "{out}{err}");
    assert!(!out.contains("to connect and bind"), "{out}{err}");

    far.delay(std::time::Duration::from_millis(400));
    let (_, out, err) = run(&cfg, &["config", "check", "--connect"]);
    let measured = out
        .lines()
        .find(|l| l.starts_with(&format!("WARN ldap: {} took ", far.url)))
        .unwrap_or_else(|| panic!("no measured warning: {out}{err}"));
    assert!(
        measured.contains("to connect and bind, so a login from cold there takes about")
            && measured.contains("lower timeout_ms to about"),
        "{measured}"
    );
}

/// A name that `[ldap] enabled_filter` leaves out (a disabled account) is refused by every
/// login as an unknown user, and audited so: `config check --user` says why.
#[test]
fn config_check_names_an_account_the_enabled_filter_leaves_out() {
    let slapd = common::slapd::Slapd::start(&[
        common::slapd::LdapUser::new("alice", "pw"),
        common::slapd::LdapUser::new("carol", "pw"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new(&slapd.url);
    o.ldap_extra = "enabled_filter = \"(!(uid=carol))\"".into();
    let cfg = write_config(dir.path(), &o);
    let (_, out, err) = run(&cfg, &["config", "check", "--connect", "--user", "carol"]);
    assert!(
        out.contains("uid=carol,") && out.contains("left out by [ldap] enabled_filter"),
        "{out}{err}"
    );
    let (_, out, _) = run(&cfg, &["config", "check", "--connect", "--user", "nobody"]);
    assert!(out.contains("user nobody: not found"), "{out}");
    let (_, out, _) = run(&cfg, &["config", "check", "--connect", "--user", "alice"]);
    assert!(out.contains("user alice: uid=alice,"), "{out}");
}

/// `config check` reads the key file as `serve` will: one the group may read (0640, the
/// mode the other secret files get) passed the check and stopped the next start.
#[test]
fn config_check_refuses_a_key_file_serve_would_refuse() {
    use std::os::unix::fs::PermissionsExt;
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let key = d.path().join("radmfa.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, out, err) = run(&cfg, &["config", "check"]);
    assert!(!ok, "{out}");
    assert!(err.contains("store.key_file"), "{err}");
    // What `serve` and the admin commands say names it once, not "key file K: key file K:".
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "bob", "--uri-only"]);
    assert!(!ok);
    let twice = format!("key file {k}: key file {k}", k = key.display());
    assert!(
        err.contains("store.key_file") && !err.contains(&twice),
        "{err}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, out, err) = run(&cfg, &["config", "check"]);
    assert!(ok, "{out}{err}");
}

/// A listen address that cannot be bound stops the start with what to do about it, not
/// the OS's words alone.
#[test]
fn a_listen_address_that_cannot_be_bound_says_why() {
    let (_d, cfg) = setup();
    let ours = "listen = [\"127.0.0.1:0\"]";
    let good = text_holding(&cfg, ours);
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for (listen, hint) in [
        // TEST-NET-1: on no interface here.
        (
            "192.0.2.1:1812".to_string(),
            "no interface of this host has that address",
        ),
        (format!("127.0.0.1:{port}"), "another process listens there"),
    ] {
        std::fs::write(
            &cfg,
            good.replace(ours, &format!("listen = [\"{listen}\"]")),
        )
        .unwrap();
        let serve = serve_until_it_stops(&cfg);
        let err = String::from_utf8_lossy(&serve.stderr);
        let code = serve.status.code();
        assert!(code.is_some_and(|c| c != 0 && c != 124), "{code:?}: {err}");
        assert!(
            err.contains(&format!("binding udp {listen}")) && err.contains(hint),
            "{err}"
        );
    }
}

/// A key file that is not the database's (regenerated, or a backup's database restored beside
/// today's key) stops the server and every command at once, naming the key, and is left as it
/// is: before the key check the server started and failed each login whose seed it could not
/// open.
#[test]
fn a_key_file_that_is_not_the_databases_stops_everything() {
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let key = d.path().join("radmfa.key");
    let right = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    radmfa::store::KeyFile::load_or_create(&key).unwrap();
    let wrong = std::fs::read(&key).unwrap();
    assert_ne!(right, wrong);
    let serve = serve_until_it_stops(&cfg);
    let serve_err = String::from_utf8_lossy(&serve.stderr).to_string();
    let code = serve.status.code();
    assert!(
        code.is_some_and(|c| c != 0 && c != 124),
        "serve {code:?}: {serve_err}"
    );
    for (args, err) in [
        (&["user", "list"][..], run(&cfg, &["user", "list"]).2),
        (&["db", "migrate"][..], run(&cfg, &["db", "migrate"]).2),
        (&["serve"][..], serve_err),
    ] {
        assert!(
            err.contains(&format!("store.key_file {}: is not the key", key.display())),
            "{args:?}: {err}"
        );
    }
    let (ok, _, _) = run(&cfg, &["user", "enroll-totp", "bob", "--uri-only"]);
    assert!(!ok, "nothing is sealed with the wrong key");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        wrong,
        "the key file is left alone"
    );
    // The right key back: everything works again.
    std::fs::write(&key, &right).unwrap();
    let (ok, out, err) = run(&cfg, &["user", "list"]);
    assert!(ok && out.contains("alice"), "{out}{err}");
}

/// A PostgreSQL store that cannot be reached says why: sqlx's pool retried in silence and
/// reported only "pool timed out while waiting for an open connection", the same for a
/// stopped database, a wrong port and a wrong password.
#[test]
fn an_unreachable_postgres_store_says_why() {
    let (_d, cfg) = setup();
    let sqlite = "path = \"radmfa.db\"";
    let text = text_holding(&cfg, sqlite);
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let pg = "type = \"postgres\"\nurl = \"postgres://radmfa@127.0.0.1:1/radmfa\"\n\
              connect_timeout_ms = 300";
    std::fs::write(&cfg, text.replace(sqlite, pg)).unwrap();
    // The store's own line, found by what each command puts before the store's error: the
    // reason must be on it. `config check` also reports the LDAP URL (port 1, refused too),
    // so "connection refused" anywhere in the output would not show the store said why.
    for (args, store_line) in [
        (
            &["db", "migrate"][..],
            "radmfa: migrating the PostgreSQL store (store.url): ",
        ),
        (&["config", "check", "--connect"][..], "FAIL store: "),
    ] {
        let (ok, out, err) = run(&cfg, args);
        assert!(!ok, "{args:?}: {out}");
        let said = format!("{out}{err}");
        let line = said
            .lines()
            .find(|l| l.starts_with(store_line))
            .unwrap_or_else(|| panic!("{args:?}: no line {store_line:?} in:\n{said}"));
        // The direct connection's error that `why_no_connection` reports in place of the
        // pool's timeout.
        assert!(
            line.to_lowercase()
                .contains("error communicating with database: connection refused"),
            "{args:?}: {said}"
        );
        assert!(!said.contains("pool timed out"), "{args:?}: {said}");
    }
    // With the URL kept in a file, as docs/ha.md advises, the messages name that key: an
    // admin sent to store.url would not find it in their config.
    use std::os::unix::fs::PermissionsExt;
    let url_file = cfg.with_file_name("pg-url");
    std::fs::write(&url_file, "postgres://radmfa@127.0.0.1:1/radmfa\n").unwrap();
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let inline = "url = \"postgres://radmfa@127.0.0.1:1/radmfa\"";
    let text = text_holding(&cfg, inline);
    std::fs::write(&cfg, text.replace(inline, "url_file = \"pg-url\"")).unwrap();
    let named = format!("store.url_file {}", url_file.display());
    for args in [&["db", "migrate"][..], &["config", "check", "--connect"]] {
        let (ok, out, err) = run(&cfg, args);
        let said = format!("{out}{err}");
        assert!(!ok && said.contains(&named), "{args:?}: {said}");
        assert!(
            !said.contains("store.url:") && !said.contains("(store.url)"),
            "{said}"
        );
    }
    // White space an editor left after the URL is not part of it: it was read into the
    // last parameter, and the error said `sslmode` takes one of disable, … of a file that
    // said `sslmode=disable`.
    std::fs::write(
        &url_file,
        "postgres://radmfa@127.0.0.1:1/radmfa?sslmode=disable \t\n",
    )
    .unwrap();
    let (_, out, err) = run(&cfg, &["config", "check", "--connect"]);
    let said = format!("{out}{err}");
    assert!(
        said.to_lowercase().contains("connection refused") && !said.contains("takes one of"),
        "{said}"
    );
}

/// A typo in store.path must not copy a new, empty database to PostgreSQL and report
/// success: the nodes switched over would know no token.
#[test]
fn migrate_to_postgres_refuses_a_database_that_is_not_there() {
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let typo = cfg.with_file_name("typo.toml");
    assert!(text.contains("path = \"radmfa.db\""), "{text}");
    std::fs::write(
        &typo,
        text.replace("path = \"radmfa.db\"", "path = \"radmfa.bd\""),
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("--config")
        .arg(&typo)
        .args(["store", "migrate-to-postgres"])
        .env("RADMFA_PG_URL", "postgres://radmfa@127.0.0.1:1/radmfa")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("radmfa.bd: no database there to copy from"),
        "{err}"
    );
    assert!(
        !d.path().join("radmfa.bd").exists(),
        "a new database was made"
    );
}

/// What is wrong with the destination is said by the name the admin gave it (`--to`, or
/// the RADMFA_PG_URL variable), with a hint for a password that needs percent-encoding and
/// the host and port that refused, never the password.
#[test]
fn migrate_to_postgres_names_what_is_wrong_with_the_destination() {
    let (_d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let migrate = |args: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(bin());
        cmd.arg("--config")
            .arg(&cfg)
            .args(["store", "migrate-to-postgres"])
            .args(args)
            .env_remove("RADMFA_PG_URL");
        if let Some(url) = env {
            cmd.env("RADMFA_PG_URL", url);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = migrate(&[], Some("postgres://radmfa:pa#ss@127.0.0.1:1/radmfa"));
    assert!(
        err.starts_with("radmfa: RADMFA_PG_URL: is not a valid connection URL")
            && err.contains("must be percent-encoded")
            && !err.contains("pa#ss"),
        "{err}"
    );
    let err = migrate(
        &[
            "--to",
            "postgres://radmfa:pw@127.0.0.1:1/radmfa?sslmode=bogus",
        ],
        None,
    );
    assert!(
        err.starts_with("radmfa: --to: the parameter \"sslmode\" takes one of disable,"),
        "{err}"
    );
    let err = migrate(
        &["--to", "postgres://radmfa:s3cret-pw@127.0.0.1:1/radmfa"],
        None,
    );
    assert!(
        err.contains("opening the destination (database radmfa on 127.0.0.1:1 as radmfa)")
            && !err.contains("s3cret-pw"),
        "{err}"
    );
}

#[test]
fn enroll_prints_uri_qr_and_secret_once() {
    let (_d, cfg) = setup();
    let (ok, out, err) = run(&cfg, &["user", "enroll-totp", "Alice"]);
    assert!(ok, "{err}");
    assert!(out.contains("otpauth://totp/radmfa:alice?secret="), "{out}");
    assert!(out.contains("issuer=radmfa&algorithm=SHA1&digits=6&period=30"));
    assert!(out.contains('█') || out.contains('▀'), "QR code drawn");
    assert!(out.contains("Secret: "));
    // A second enrollment needs --force.
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice"]);
    assert!(!ok);
    assert!(err.contains("--force"), "{err}");
    let (ok, out, err) = run(
        &cfg,
        &[
            "user",
            "enroll-totp",
            "alice",
            "--force",
            "--uri-only",
            "--algorithm",
            "sha256",
            "--digits",
            "8",
            "--period",
            "60",
        ],
    );
    assert!(ok);
    assert!(
        out.trim().ends_with("algorithm=SHA256&digits=8&period=60"),
        "{out}"
    );
    // --uri-only: stdout the URI alone; the serial, for `token show`, on stderr.
    assert_eq!(out.lines().count(), 1, "{out}");
    let serial = err
        .lines()
        .find_map(|l| l.strip_prefix("serial: "))
        .unwrap_or_else(|| panic!("no serial: {err}"));
    let (ok, shown, _) = run(&cfg, &["token", "show", serial]);
    assert!(
        ok && shown.contains("alice") && shown.contains("SHA256"),
        "{shown}"
    );
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "bob", "--digits", "5"]);
    assert!(!ok && err.contains("--digits"), "{err}");
}

/// The serials of `user`'s tokens, from `token list --json`.
fn serials_of(cfg: &Path, user: &str) -> Vec<String> {
    let (ok, out, err) = run(cfg, &["token", "list", "--user", user, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t["serial"].as_str().unwrap().to_string())
        .collect()
}

/// `enroll-totp --verify` stores when the code matches, minutes after it looked for a token:
/// an enrollment that went through meanwhile must not be joined by a second token. It was:
/// both exited 0 and carol held two.
#[test]
fn enroll_verify_refuses_a_token_stored_while_it_waited() {
    use std::io::{BufRead, BufReader, Write};
    let (_d, cfg) = setup();
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["user", "enroll-totp", "carol", "--verify", "--no-qr"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let seed = loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "no secret shown");
        if let Some(s) = line.strip_prefix("Secret: ") {
            break s.trim().to_string();
        }
    };
    // At the code prompt: another enrollment of carol goes through.
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "carol", "--uri-only"]);
    assert!(ok, "{err}");
    let first = serials_of(&cfg, "carol");
    assert_eq!(first.len(), 1);
    let code = common::peers::totp(&seed, common::peers::now(), &[]);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{code}").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("carol got a token meanwhile ({})", first[0]))
            && err.contains("nothing stored")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(serials_of(&cfg, "carol"), first, "no second token");
}

/// A directory whose entry for alice is also named asmith (a second `uid`), and bob's
/// entry with one name.
fn alice_also_named_asmith() -> common::slapd::Slapd {
    use common::slapd::{LdapUser, Slapd, SlapdOptions};
    Slapd::start_with(
        &[LdapUser::new("bob", "bob-pw")],
        SlapdOptions {
            extra_ldif: "dn: uid=alice,ou=people,dc=example,dc=org\n\
                         objectClass: inetOrgPerson\nuid: alice\nuid: asmith\n\
                         cn: Alice Smith\nsn: Smith\nuserPassword: alice-pw\n\n"
                .into(),
            ..Default::default()
        },
    )
}

/// A directory entry with two names (`uid: alice`, `uid: asmith`): logins under either pass,
/// each with its own tokens. Enrolling "the new phone" under the other name left the lost
/// one working under the first; without --force it is refused, naming what the other name
/// holds. A directory that cannot be asked leaves the names unchecked, as before.
#[test]
fn enrolling_under_another_name_of_an_entry_that_holds_tokens_is_refused() {
    let mut slapd = alice_also_named_asmith();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &Options::new(&slapd.url));
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let alices = serials_of(&cfg, "alice");
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "asmith", "--uri-only"]);
    assert!(!ok, "enrolled beside alice's token: {err}");
    assert!(
        err.contains("also named alice")
            && err.contains(&alices[0])
            && err.contains("radmfa user reset alice")
            && err.contains("--force"),
        "{err}"
    );
    assert!(serials_of(&cfg, "asmith").is_empty());
    // bob's entry has one name: nothing changes for him.
    assert!(run(&cfg, &["user", "enroll-totp", "bob", "--uri-only"]).0);
    // The way the refusal gives: the old token taken away, then the new one.
    assert!(run(&cfg, &["user", "reset", "alice"]).0);
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "asmith", "--uri-only"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(!ok && err.contains("also named asmith"), "{err}");
    // Or on purpose, both.
    let (ok, _, err) = run(
        &cfg,
        &["user", "enroll-totp", "alice", "--uri-only", "--force"],
    );
    assert!(ok, "{err}");
    // A directory that cannot be asked: said, and done, as for any name.
    assert!(run(&cfg, &["user", "reset", "alice"]).0);
    slapd.stop();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(
        ok && err.contains("alice: not checked against the directory"),
        "{err}"
    );
}

/// `token assign` and `token import` to another name of an entry whose first name holds
/// tokens: a hardware token for the lost phone given under asmith left alice's app code
/// passing beside it. Assign refuses without --force, naming what the other name holds;
/// an import goes on, with a warning per owner.
#[test]
fn assigning_or_importing_under_another_name_of_an_entry_with_tokens_is_said() {
    let slapd = alice_also_named_asmith();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &Options::new(&slapd.url));
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let alices = serials_of(&cfg, "alice");
    let stock = dir.path().join("stock.csv");
    std::fs::write(
        &stock,
        "serial,key,type,user\n\
         HW-1,3132333435363738393031323334353637383930,hotp,\n\
         HW-2,3132333435363738393031323334353637383931,hotp,\n",
    )
    .unwrap();
    assert!(run(&cfg, &["token", "import", stock.to_str().unwrap()]).0);
    let (ok, _, err) = run(&cfg, &["token", "assign", "HW-1", "asmith"]);
    assert!(!ok, "assigned beside alice's token: {err}");
    assert!(
        err.contains("also named alice")
            && err.contains(&alices[0])
            && err.contains("Nothing assigned")
            && err.contains("radmfa user reset alice")
            && err.contains("--force"),
        "{err}"
    );
    assert!(serials_of(&cfg, "asmith").is_empty());
    // bob's entry has one name: assigned as before. And on purpose, with --force.
    assert!(run(&cfg, &["token", "assign", "HW-1", "bob"]).0);
    let (ok, _, err) = run(&cfg, &["token", "assign", "HW-2", "asmith", "--force"]);
    assert!(ok, "{err}");
    // Not in silence: --force also takes tokens from their holders, and may be given for
    // that alone.
    assert!(
        err.contains("warning: asmith: the directory entry is also named alice")
            && err.contains(&alices[0]),
        "{err}"
    );
    assert_eq!(serials_of(&cfg, "asmith"), vec!["HW-2".to_string()]);
    // An import naming asmith as an owner: imported, with a warning naming alice's token.
    let owned = dir.path().join("owned.csv");
    std::fs::write(
        &owned,
        "serial,key,type,user\n\
         HW-3,3132333435363738393031323334353637383932,hotp,asmith\n\
         HW-4,3132333435363738393031323334353637383933,hotp,bob\n",
    )
    .unwrap();
    let (ok, _, err) = run(&cfg, &["token", "import", owned.to_str().unwrap()]);
    assert!(ok, "{err}");
    let warned: Vec<&str> = err.lines().filter(|l| l.contains("also named")).collect();
    assert!(
        warned.len() == 1
            && warned[0].starts_with("warning: asmith:")
            && warned[0].contains(&alices[0])
            && warned[0].contains("radmfa user reset alice"),
        "{err}"
    );
    assert!(serials_of(&cfg, "asmith").contains(&"HW-3".to_string()));
    // A disabled token under the other name lets no one in: nothing to refuse for.
    assert!(run(&cfg, &["user", "reset", "asmith"]).0);
    assert!(run(&cfg, &["token", "disable", &alices[0]]).0);
    let (ok, _, err) = run(&cfg, &["token", "assign", "HW-3", "asmith"]);
    assert!(ok, "{err}");
    // Moving the other name's only token to this one: nothing is left there to keep
    // working, so nothing to warn of (it named the very token being moved).
    let (ok, _, err) = run(&cfg, &["token", "assign", "HW-3", "alice", "--force"]);
    assert!(ok && !err.contains("also named"), "{err}");
}

#[test]
fn list_show_reset_delete_and_audit() {
    let (_d, cfg) = setup();
    let (ok, uri, _) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok);
    let seed = uri
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("secret in the URI")
        .to_string();
    assert!(seed.len() >= 16, "{uri}");
    assert!(run(&cfg, &["user", "enroll-totp", "bob", "--uri-only"]).0);

    let (ok, out, _) = run(&cfg, &["user", "list", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    let (ok, out, _) = run(&cfg, &["user", "show", "ALICE", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(v["tokens"][0]["type"], "totp");
    assert!(!out.contains("secret"), "show never prints the seed");
    assert!(!out.contains(&seed), "show never prints the seed");
    let (_, text, _) = run(&cfg, &["user", "show", "alice"]);
    assert!(text.contains("TOTP-") && !text.contains(&seed), "{text}");

    let (ok, out, _) = run(&cfg, &["user", "reset", "alice"]);
    assert!(ok && out.contains("1 app token(s) deleted"), "{out}");
    let (ok, _, _) = run(&cfg, &["user", "show", "alice"]);
    assert!(!ok, "no tokens left after reset");
    // After a reset the user can enroll again without --force.
    assert!(run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]).0);

    let (ok, _, _) = run(&cfg, &["user", "delete", "bob"]);
    assert!(ok);
    let (ok, _, _) = run(&cfg, &["user", "delete", "bob"]);
    assert!(!ok, "deleting a missing user fails");
    let (_, out, _) = run(&cfg, &["audit", "--result", "delete", "--json"]);
    assert_eq!(
        out.lines().count(),
        1,
        "no record of a deletion that did not happen"
    );
    // A mistyped name: said so, nothing recorded as reset (the real user keeps the factor).
    let (ok, _, err) = run(&cfg, &["user", "reset", "alcie"]);
    assert!(!ok && err.contains("nothing to reset"), "{err}");

    let (ok, out, _) = run(&cfg, &["user", "unlock", "alice"]);
    assert!(ok && out.contains("was not locked"), "{out}");

    let (ok, out, _) = run(&cfg, &["audit", "--user", "alice", "--json"]);
    assert!(ok);
    let results: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["result"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        results,
        ["unlock", "enroll", "reset", "delete-token", "enroll"],
        "newest first"
    );
    let (_, out, _) = run(&cfg, &["audit", "--result", "reset", "--json"]);
    assert_eq!(out.lines().count(), 1);
    // A window back to front (until the epoch, or an hour ago until two hours ago) is
    // refused: it read as "no records".
    for until in ["0", "2h"] {
        let (ok, out, err) = run(&cfg, &["audit", "--since", "1h", "--until", until]);
        assert!(
            !ok && out.is_empty() && err.contains("is not before --until"),
            "{out}{err}"
        );
    }
    // A name longer than any fixed column would be.
    assert!(
        run(
            &cfg,
            &[
                "user",
                "enroll-totp",
                "a-rather-long-user-name.x",
                "--uri-only"
            ]
        )
        .0
    );
    let (ok, out, _) = run(&cfg, &["audit", "--since", "1h"]);
    assert!(ok && out.starts_with("TIME"), "{out}");
    // Every row's columns start where the header's do, up to NAS (MS is right-aligned).
    let header = out.lines().next().unwrap();
    let starts: Vec<usize> = ["USER", "RESULT", "MODE", "TOKEN", "NAS"]
        .iter()
        .map(|h| header.find(h).unwrap())
        .collect();
    for row in out.lines().skip(1) {
        for &p in &starts {
            let (before, at) = (row.as_bytes()[p - 1], row.as_bytes()[p]);
            assert!(
                before == b' ' && at != b' ',
                "column at {p} out of line:\n{out}"
            );
        }
    }
    let (ok, _, err) = run(&cfg, &["audit", "--since", "yesterday"]);
    assert!(!ok && err.contains("--since"), "{err}");
}

/// Every token change is audited with the serial in `token_serial` (docs/tokens.md): a
/// reset or delete writes one record per token it takes away, saying what became of it,
/// besides its own; the enrollment's record names its token there too.
#[test]
fn reset_and_delete_audit_each_token_taken_away_by_serial() {
    let (d, cfg) = setup();
    let csv = d.path().join("hw.csv");
    std::fs::write(
        &csv,
        "serial,key,type,user\n\
         HW-A,3132333435363738393031323334353637383930,hotp,alice\n\
         HW-B,3132333435363738393031323334353637383931,hotp,bob\n",
    )
    .unwrap();
    let (ok, _, err) = run(&cfg, &["token", "import", csv.to_str().unwrap()]);
    assert!(ok, "{err}");
    let mut seeds = Vec::new();
    for user in ["alice", "bob"] {
        let (ok, _, err) = run(
            &cfg,
            &["user", "enroll-totp", user, "--uri-only", "--force"],
        );
        assert!(ok, "{err}");
        let (_, out, _) = run(
            &cfg,
            &["audit", "--user", user, "--result", "enroll", "--json"],
        );
        let rec: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let serial = rec["token_serial"]
            .as_str()
            .expect("enroll names its token");
        // 56 random bits in hex, so a large site's serials do not repeat.
        assert!(
            serial.len() == 19
                && serial.starts_with("TOTP-")
                && serial[5..].chars().all(|c| c.is_ascii_hexdigit()),
            "{rec}"
        );
        seeds.push(serial.to_string());
    }
    let (ok, _, err) = run(&cfg, &["user", "reset", "alice"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&cfg, &["user", "delete", "bob"]);
    assert!(ok, "{err}");
    for (user, command, seed, hw) in [
        ("alice", "reset", &seeds[0], "HW-A"),
        ("bob", "delete", &seeds[1], "HW-B"),
    ] {
        let (_, out, _) = run(&cfg, &["audit", "--user", user, "--json"]);
        let records: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let of = |serial: &str, result: &str| {
            records
                .iter()
                .find(|r| r["token_serial"] == serial && r["result"] == result)
                .unwrap_or_else(|| panic!("no {result} record of {serial} in {records:#?}"))
                .clone()
        };
        let deleted = of(seed, "delete-token");
        let reason = deleted["reason"].as_str().unwrap();
        assert!(
            reason.contains("deleted (an app seed)") && reason.contains(command),
            "{deleted}"
        );
        let returned = of(hw, "unassign");
        let reason = returned["reason"].as_str().unwrap();
        assert!(
            reason.contains("returned to stock (an imported token)") && reason.contains(command),
            "{returned}"
        );
        // The command's own record stays.
        assert!(
            records.iter().any(|r| r["result"] == command),
            "{records:#?}"
        );
    }
}

/// A command that gives a user something looks the name up in the directory as a login
/// does: a typo (`user bypass alcie`) is refused, not answered "done" while the real user
/// still gets a prompt. The command's flag goes ahead for a name the directory lacks; a
/// directory that cannot be asked is said, and the command goes ahead.
#[test]
fn granting_to_a_name_the_directory_does_not_have_is_refused() {
    let mut slapd = common::slapd::Slapd::start(&[common::slapd::LdapUser::new("alice", "pw")]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &Options::new(&slapd.url));
    let csv = dir.path().join("hw.csv");
    std::fs::write(
        &csv,
        "serial,key,type,user\nHW-1,3132333435363738393031323334353637383930,hotp,\n",
    )
    .unwrap();
    assert!(run(&cfg, &["token", "import", csv.to_str().unwrap()]).0);
    let grants = |user: &'static str| -> Vec<(Vec<&'static str>, &'static str)> {
        vec![
            (
                vec!["user", "enroll-totp", user, "--uri-only"],
                "--not-in-directory",
            ),
            (vec!["token", "assign", "HW-1", user], "--not-in-directory"),
            (vec!["user", "bypass", user, "--for", "5m"], "--force"),
            (vec!["user", "app-password", "add", user], "--force"),
            (vec!["user", "set-phone", user, "+15550100123"], "--force"),
            (vec!["user", "set-method", user, "sms"], "--force"),
        ]
    };
    for (args, flag) in grants("ghost") {
        let (ok, out, err) = run(&cfg, &args);
        assert!(
            !ok,
            "{args:?} was done for a name the directory lacks: {out}"
        );
        assert!(
            err.contains("ghost: not in the directory") && err.contains(flag),
            "{args:?}: {err}"
        );
    }
    let (_, out, _) = run(&cfg, &["audit", "--user", "ghost", "--json"]);
    assert_eq!(out.trim(), "", "nothing done, nothing audited");
    // A name copied with its domain, which strip_domains leaves on: the refusal says so.
    let (ok, _, err) = run(
        &cfg,
        &["user", "set-phone", "alice@example.org", "+15550100123"],
    );
    assert!(
        !ok && err.contains("the name keeps its domain") && err.contains("strip_domains"),
        "{err}"
    );
    // The same commands for a user the directory has; for the name it lacks, with the flag.
    for (args, _) in grants("alice") {
        let (ok, _, err) = run(&cfg, &args);
        assert!(ok && !err.contains("directory"), "{args:?}: {err}");
    }
    run(&cfg, &["token", "unassign", "HW-1"]);
    for (mut args, flag) in grants("ghost") {
        args.push(flag);
        let (ok, _, err) = run(&cfg, &args);
        assert!(ok, "{args:?}: {err}");
    }
    // Taking away is not checked: a leaver's name is gone from the directory first.
    assert!(run(&cfg, &["user", "reset", "ghost"]).0);
    // A directory that cannot be asked: said, and done.
    slapd.stop();
    let (ok, _, err) = run(&cfg, &["user", "bypass", "nobody", "--for", "5m"]);
    assert!(
        ok && err.contains("nobody: not checked against the directory"),
        "{err}"
    );
}

/// An import's owners are looked up as `token assign`'s user is, but only warned about: an
/// export from the old system names leavers too. A misspelt owner (or a wrong `--map`)
/// is named, in a dry run as in the import, so the real user is not left at a code prompt.
#[test]
fn an_import_names_owners_the_directory_does_not_have() {
    let mut slapd = common::slapd::Slapd::start(&[common::slapd::LdapUser::new("alice", "pw")]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &Options::new(&slapd.url));
    let csv = dir.path().join("hw.csv");
    let key = "3132333435363738393031323334353637383930";
    std::fs::write(
        &csv,
        format!(
            "serial,key,type,user\nHW-1,{key},hotp,alice\nHW-2,{key}04,hotp,alcie\n\
             HW-3,{key}01,hotp,ghost\nHW-4,{key}02,hotp,\n"
        ),
    )
    .unwrap();
    // A dry run is an installation's first step too: no store is made for it.
    let (ok, out, err) = run(
        &cfg,
        &["token", "import", csv.to_str().unwrap(), "--dry-run"],
    );
    assert!(
        ok && out.contains("would import 4 token(s)") && out.contains("no store yet"),
        "{out}{err}"
    );
    assert!(err.contains("2 of the 3 owner(s)"), "{err}");
    assert!(!dir.path().join("radmfa.db").exists() && !dir.path().join("radmfa.key").exists());
    let (ok, out, err) = run(&cfg, &["token", "import", csv.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("2 of the 3 owner(s) are not in the directory")
            && err.contains("alcie, ghost.")
            && !err.contains("alice,"),
        "{err}"
    );
    let (_, out, _) = run(&cfg, &["token", "show", "HW-2"]);
    assert!(
        out.contains("alcie"),
        "imported under the name the file gave: {out}"
    );
    // A dry run says it too; owners all in the directory: nothing said.
    let ok_csv = dir.path().join("more.csv");
    for (owner, said) in [("bob", true), ("alice", false)] {
        let row = format!("serial,key,type,user\nHW-5,{key}03,hotp,{owner}\n");
        std::fs::write(&ok_csv, row).unwrap();
        let (ok, out, err) = run(
            &cfg,
            &["token", "import", ok_csv.to_str().unwrap(), "--dry-run"],
        );
        assert!(ok && out.contains("dry run"), "{out}{err}");
        assert_eq!(
            err.contains("1 of the 1 owner(s) are not in the directory"),
            said,
            "{owner}: {err}"
        );
    }
    // A directory that cannot be asked: said, and the import goes ahead.
    slapd.stop();
    let (ok, _, err) = run(&cfg, &["token", "import", ok_csv.to_str().unwrap()]);
    assert!(
        ok && err.contains("owners not checked against the directory"),
        "{err}"
    );
}

/// `config check --connect --user` for a user who cannot log in (no token, no number, the
/// clients `no_factor = "reject"`) says so, naming the clients, instead of only "ok" lines.
#[test]
fn config_check_warns_of_a_user_every_reject_client_would_refuse() {
    use common::radmfa::Nas;
    use common::slapd::{LdapUser, Slapd};
    let slapd = Slapd::start(&[LdapUser::new("alice", "pw"), LdapUser::new("bob", "pw")]);
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new(&slapd.url);
    o.clients = vec![
        Nas::challenge("vpn", "127.0.0.1"),
        Nas::challenge("wifi", "127.0.0.2"),
        Nas {
            no_factor: "allow",
            ..Nas::challenge("lab", "127.0.0.3")
        },
    ];
    let cfg = write_config(dir.path(), &o);
    // The store is there (config check --connect makes none).
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let check = |user| run(&cfg, &["config", "check", "--connect", "--user", user]);
    let (ok, out, err) = check("bob");
    assert!(ok, "a warning, not a failure: {out}{err}");
    let warns: Vec<&str> = out.lines().filter(|l| l.starts_with("WARN")).collect();
    assert_eq!(warns.len(), 1, "{out}");
    assert!(
        warns[0].starts_with("WARN user bob: would be refused on client(s) \"vpn\", \"wifi\": ")
            && warns[0].contains("no_factor = \"reject\"")
            && warns[0].contains("user enroll-totp"),
        "{out}"
    );
    // With a token (and for alice, who has one) nothing to warn of.
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "bob", "--uri-only"]);
    assert!(ok, "{err}");
    for user in ["alice", "bob"] {
        let (ok, out, err) = check(user);
        assert!(ok && !out.contains("WARN"), "{out}{err}");
    }
}

/// `user show` gives an HOTP token's counter, not the period it does not have ("0 s").
#[test]
fn user_show_gives_an_hotp_tokens_counter() {
    let (d, cfg) = setup();
    let csv = d.path().join("hw.csv");
    std::fs::write(
        &csv,
        "serial,key,type,user,counter\n\
         HW0001,3132333435363738393031323334353637383930,hotp,alice,7\n",
    )
    .unwrap();
    let (ok, _, err) = run(&cfg, &["token", "import", csv.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        &cfg,
        &["user", "enroll-totp", "alice", "--uri-only", "--force"],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = run(&cfg, &["user", "show", "alice"]);
    assert!(ok, "{err}");
    let line = |serial: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(serial))
            .unwrap_or_else(|| panic!("no {serial} in {out}"))
            .to_string()
    };
    let hw = line("HW0001");
    assert!(
        hw.contains("hotp SHA1 6 digits, counter 7, enabled"),
        "{hw}"
    );
    assert!(line("TOTP-").contains("6 digits, 30 s, enabled"), "{out}");
    let (_, out, _) = run(&cfg, &["user", "show", "alice", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tokens"][0]["counter"], 7, "{v}");
    assert!(v["tokens"][1]["counter"].is_null(), "{v}");
}

#[test]
fn config_check_reports_valid_and_invalid_files() {
    let (d, cfg) = setup();
    let (ok, out, _) = run(&cfg, &["config", "check"]);
    assert!(ok && out.contains(": ok"), "{out}");
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = [\"nowhere\"]\n").unwrap();
    let (ok, _, err) = run(&bad, &["config", "check"]);
    assert!(!ok);
    assert!(err.contains("server.listen[0]"), "the bad key named: {err}");
    // An IPv4-mapped address passed the check, then failed the start ("Invalid argument"):
    // radmfa's IPv6 sockets are IPv6-only.
    let ours = "listen = [\"127.0.0.1:0\"]";
    let good = text_holding(&cfg, ours);
    for (key, text) in [
        (
            "server.listen[1]",
            good.replace(
                ours,
                "listen = [\"127.0.0.1:0\", \"[::ffff:127.0.0.1]:1645\"]",
            ),
        ),
        (
            "metrics.listen",
            format!("{good}\n[metrics]\nlisten = \"[::ffff:127.0.0.1]:9812\"\n"),
        ),
    ] {
        std::fs::write(&bad, &text).unwrap();
        let (ok, _, err) = run(&bad, &["config", "check"]);
        assert!(!ok, "{text}");
        assert!(
            err.contains(key) && err.contains("IPv4-mapped") && err.contains("\"127.0.0.1:"),
            "{err}"
        );
    }
    // Multicast and broadcast addresses passed the check; RADIUS cannot be served there.
    for (key, text, kind) in [
        (
            "server.listen[1]",
            good.replace(ours, "listen = [\"127.0.0.1:0\", \"224.0.0.1:1812\"]"),
            "multicast",
        ),
        (
            "server.listen[0]",
            good.replace(ours, "listen = [\"[ff02::1]:1812\"]"),
            "multicast",
        ),
        (
            "metrics.listen",
            format!("{good}\n[metrics]\nlisten = \"255.255.255.255:9812\"\n"),
            "broadcast",
        ),
    ] {
        std::fs::write(&bad, &text).unwrap();
        let (ok, _, err) = run(&bad, &["config", "check"]);
        assert!(!ok, "{text}");
        assert!(err.contains(key) && err.contains(kind), "{err}");
    }
    // A client that needs the directory, and no [ldap].
    std::fs::write(
        &bad,
        "[[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"0123456789abcdef\"\n",
    )
    .unwrap();
    let (ok, _, err) = run(&bad, &["config", "check"]);
    assert!(!ok);
    assert!(
        err.contains("client[0].primary") && err.contains("no [ldap] section"),
        "missing [ldap] named: {err}"
    );
}

/// Every kind of config error names the file once and says its cause once: a missing
/// file, an unknown key, a value out of bounds, a file every account may change.
#[test]
fn config_errors_name_the_file_and_the_cause_once() {
    use std::os::unix::fs::PermissionsExt;
    let (d, cfg) = setup();
    let once = |err: &str, what: &str, path: &Path| {
        let path = path.display().to_string();
        assert_eq!(err.matches(&path).count(), 1, "{path} once: {err}");
        assert_eq!(err.matches(what).count(), 1, "{what:?} once: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    };
    let missing = d.path().join("missing.toml");
    let (ok, _, err) = run(&missing, &["user", "list"]);
    assert!(!ok);
    once(&err, "No such file or directory", &missing);
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nmax_inflight = 3\n").unwrap();
    let (ok, _, err) = run(&bad, &["config", "check"]);
    assert!(!ok);
    once(&err, "server.max_inflight", &bad);
    std::fs::write(&bad, "[server]\nmax_in_flight = 0\n").unwrap();
    let (ok, _, err) = run(&bad, &["config", "check"]);
    assert!(!ok);
    once(&err, "server.max_in_flight: must be between", &bad);
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (ok, _, err) = run(&cfg, &["user", "list"]);
    assert!(!ok);
    once(&err, "can be changed by every account", &cfg);
}

/// `config check` lists what each NAS gets and warns about every setting that lets a login
/// in on less than both factors; the sample configs, installed as the README says (mode
/// 0640), draw no warning but their placeholders to fill in (the RD Gateway's
/// enabled_filter, the Twilio account, each NAS's shared secret), and the PostgreSQL URL (it holds the password) is never
/// printed. Readable by every account, a file that holds secrets itself is warned about.
#[test]
fn config_check_summarises_clients_and_warns_about_weakened_settings() {
    use std::os::unix::fs::PermissionsExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let installed = tempfile::tempdir().unwrap();
    // The demo's config too: scripts/demo.sh runs a private copy of it (mode 0600).
    for sample in ["conf/radmfa.toml", "conf/ha-node.toml", "conf/demo.toml"] {
        let f = installed
            .path()
            .join(Path::new(sample).file_name().unwrap());
        std::fs::copy(root.join(sample), &f).unwrap();
        let demo = sample == "conf/demo.toml";
        for mode in [0o640, 0o644] {
            if demo && mode == 0o644 {
                continue;
            }
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let (ok, out, err) = run(&f, &["config", "check"]);
            assert!(ok, "{sample}: {err}");
            assert!(!out.contains("change-me"), "{sample}:\n{out}");
            // The full sample's RD Gateway client needs an enabled_filter, which depends on
            // the directory (its comments give Active Directory's, FreeIPA's, OpenLDAP's):
            // said once, and nothing else.
            let rdg = "no enabled_filter beside second_factor_only client(s) \"rd-gateway\"";
            let expected = usize::from(sample == "conf/radmfa.toml");
            assert_eq!(out.matches(rdg).count(), expected, "{sample}:\n{out}");
            // So are its placeholder Twilio credentials, which fail every SMS and call.
            let twilio = "account_sid or auth_token is still the sample config's placeholder";
            assert_eq!(out.matches(twilio).count(), expected, "{sample}:\n{out}");
            // And each NAS's sample shared secret, which is published with radmfa (the
            // demo's are used on loopback only, so they are not).
            let sample_secret = "shared secret is the one in radmfa's example configs";
            let nases = match sample {
                "conf/radmfa.toml" => 3,
                "conf/ha-node.toml" => 1,
                _ => 0,
            };
            assert_eq!(
                out.matches(sample_secret).count(),
                nases,
                "{sample}:\n{out}"
            );
            let warnings: Vec<&str> = out
                .lines()
                .filter(|l| {
                    l.contains("warning")
                        && !l.contains(rdg)
                        && !l.contains(twilio)
                        && !l.contains(sample_secret)
                })
                .collect();
            if mode == 0o640 {
                assert!(warnings.is_empty(), "{sample}:\n{out}");
            } else {
                // Both samples write a client's secret into the file.
                assert_eq!(warnings.len(), 1, "{sample}:\n{out}");
                assert!(
                    warnings[0].contains("is readable by every account on this host (mode 644)")
                        && warnings[0].contains("client[0].secret"),
                    "{sample}:\n{out}"
                );
            }
        }
    }
    let (ok, out, _) = run(&root.join("conf/radmfa.toml"), &["config", "check"]);
    assert!(ok);
    assert!(
        out.contains(
            "client \"rd-gateway\": 192.0.2.20; second factor only (no password); voice \
             (calls held, 50 s)"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "client \"wifi-controllers\": 198.51.100.0/24; password and code in one field; totp\n"
        ),
        "{out}"
    );
    // The same inline client given texts and calls: it cannot prompt, and says so rather
    // than listing them as if its users could use them.
    let sample = std::fs::read_to_string(root.join("conf/radmfa.toml")).unwrap();
    let wifi_methods = "\nmethods = [\"totp\"]\n";
    assert_eq!(sample.matches(wifi_methods).count(), 1);
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("inline-sms.toml");
    std::fs::write(&f, sample.replace(wifi_methods, "\n")).unwrap();
    let (ok, out, err) = run(&f, &["config", "check"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "client \"wifi-controllers\": 198.51.100.0/24; password and code in one field; \
             totp, sms (unusable: an inline client shows no prompt), voice (unusable: an \
             inline client shows no prompt; use voice_mode = \"hold\")\n"
        ),
        "{out}"
    );

    // An SMS provider whose timeout takes the whole time a login has to decide.
    let d = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(root.join("conf/radmfa.toml")).unwrap();
    let twilio_timeout = "\ntimeout_ms = 2500                           # 100 to 10000\n";
    assert_eq!(sample.matches(twilio_timeout).count(), 1);
    for (timeout, warned) in [(2500, false), (3500, true)] {
        let f = d.path().join("slow.toml");
        let text = sample.replace(twilio_timeout, &format!("\ntimeout_ms = {timeout}\n"));
        std::fs::write(&f, text).unwrap();
        let (ok, out, err) = run(&f, &["config", "check"]);
        assert!(ok, "{err}");
        assert_eq!(
            out.contains(
                "warning: client \"vpn\": the SMS or call goes out before the \
                 Access-Challenge, and the provider's timeout_ms (3500 ms) is not less than \
                 the 3500 ms"
            ),
            warned,
            "{timeout}:\n{out}"
        );
    }

    // A call answered at the last ring, with no time left to press # within its lifetime.
    let ring = "\nring_timeout_secs = 30                      # 5 to 120\n";
    assert_eq!(sample.matches(ring).count(), 1);
    for (secs, warned) in [(100, false), (101, true)] {
        let f = d.path().join("late-ring.toml");
        let text = sample.replace(ring, &format!("\nring_timeout_secs = {secs}\n"));
        std::fs::write(&f, text).unwrap();
        let (ok, out, err) = run(&f, &["config", "check"]);
        assert!(ok, "{err}");
        assert_eq!(
            out.contains(
                "warning: voice: call_lifetime_secs = 120 leaves a call answered at the last \
                 ring (ring_timeout_secs = 101)"
            ),
            warned,
            "{secs}:\n{out}"
        );
    }
    // The same for a held login's budget (the sample's RD Gateway: 50 s, just enough for
    // 30 s of ringing).
    for (secs, warned) in [(30, false), (31, true)] {
        let f = d.path().join("late-ring-held.toml");
        let text = sample.replace(ring, &format!("\nring_timeout_secs = {secs}\n"));
        std::fs::write(&f, text).unwrap();
        let (ok, out, err) = run(&f, &["config", "check"]);
        assert!(ok, "{err}");
        assert_eq!(
            out.contains(
                "warning: client \"rd-gateway\": voice_budget_secs = 50 refuses a held login"
            ),
            warned,
            "{secs}:\n{out}"
        );
    }

    // A lockout threshold too high to protect the codes.
    let d = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(root.join("conf/radmfa.toml")).unwrap();
    for (threshold, warned) in ["5", "20", "21", "1000000"]
        .into_iter()
        .zip([false, false, true, true])
    {
        let text = sample.replacen("threshold = 5 ", &format!("threshold = {threshold} "), 1);
        assert!(
            sample.contains("\nthreshold = 5 "),
            "the sample config's threshold line changed"
        );
        let f = d.path().join("lockout.toml");
        std::fs::write(&f, text).unwrap();
        let (ok, out, err) = run(&f, &["config", "check"]);
        assert!(ok, "{err}");
        assert_eq!(
            out.contains(&format!("warning: lockout: threshold = {threshold}:")),
            warned,
            "{threshold}:\n{out}"
        );
    }

    // PostgreSQL across a network without verify-full: readable and impersonable on the path.
    let d = tempfile::tempdir().unwrap();
    let node = std::fs::read_to_string(root.join("conf/ha-node.toml")).unwrap();
    // require and verify-ca: sqlx checks no certificate under require, and verify-ca is
    // meant to check no name (though sqlx 0.8.6 checks it), so they are warned about too.
    for (mode, warning) in [
        ("sslmode = \"verify-full\"", None),
        ("", Some("sslmode Prefer to db.example.org")),
        (
            "sslmode = \"require\"",
            Some("sslmode Require to db.example.org"),
        ),
        (
            "sslmode = \"verify-ca\"",
            Some("sslmode VerifyCa to db.example.org"),
        ),
    ] {
        let text = node.replace("sslmode = \"verify-full\"", mode);
        let f = d.path().join("node.toml");
        std::fs::write(&f, text).unwrap();
        let (ok, out, err) = run(&f, &["config", "check"]);
        assert!(ok, "{err}");
        let said = out
            .lines()
            .filter(|l| l.starts_with("warning: store: sslmode"));
        assert_eq!(
            said.map(|l| l.to_string()).collect::<Vec<_>>().len(),
            usize::from(warning.is_some()),
            "{mode:?}:\n{out}"
        );
        if let Some(w) = warning {
            assert!(
                out.contains(&format!("warning: store: {w}")),
                "{mode:?}:\n{out}"
            );
        }
        assert!(!out.contains("change-me"), "{out}");
    }

    let (d, cfg) = setup();
    let weak = format!(
        "{}\n[[client]]\nname = \"legacy\"\naddress = \"10.0.0.0/8\"\n\
         secret = \"0123456789abcdef\"\nrequire_message_authenticator = false\n\
         no_factor = \"allow\"\nprovider_failure = \"allow\"\napp_passwords = true\n\
         exempt_networks = [\"10.0.0.0/8\", \"192.0.2.0/24\"]\n\
         remember_second_factor_secs = 600\nprimary = \"upstream\"\n\n\
         [upstream]\nservers = [\"192.0.2.50:1812\", \"192.0.2.51:1812\"]\n\
         timeout_ms = 1900\nsecret = \"testing123\"\n\
         require_message_authenticator = false\npass_through = [\"Class\"]\n\n\
         [metrics]\nlisten = \"0.0.0.0:9812\"\n\n\
         [[client]]\nname = \"anyone\"\naddress = \"0.0.0.0/0\"\n\
         secret = \"0123456789abcdef\"\n\n\
         [[client]]\nname = \"halves\"\naddress = [\"0.0.0.0/1\", \"128.0.0.0/1\", \"fd00::/8\"]\n\
         secret = \"another-long-random-secret-1\"\n",
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("(uid={user})", "(|(uid={user})(mail={user}))")
    );
    let weak_cfg = d.path().join("weak.toml");
    std::fs::write(&weak_cfg, weak).unwrap();
    // Installed as the README says: the file's mode is not what this part is about.
    std::fs::set_permissions(&weak_cfg, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, out, err) = run(&weak_cfg, &["config", "check"]);
    assert!(ok, "weakened settings are valid: {err}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning:")).collect();
    for needle in [
        "require_message_authenticator = false",
        "no_factor = \"allow\"",
        "provider_failure = \"allow\"",
        "app_passwords = true",
        "logins from 10.0.0.0/8 need the password alone (that is a very wide network)",
        "logins from 192.0.2.0/24 need the password alone",
        "remember_second_factor_secs = 600",
        "app_passwords = true without [ldap] enabled_filter",
    ] {
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("warning: client \"legacy\"") && w.contains(needle)),
            "no warning with {needle:?}:\n{out}"
        );
    }
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("warning: upstream: require_message_authenticator = false")),
        "{out}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "warning: upstream: 2 server(s) x timeout_ms 1900 = 3800 ms, not less than the \
             3500 ms a login has to decide (the request deadline of 4000 ms less 500 ms kept \
             for its audit record)"
        )),
        "{out}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "warning: ldap: user_filter \"(|(uid={user})(mail={user}))\" finds a user by more \
             than one name"
        )),
        "{out}"
    );
    for needle in [
        "warning: client \"anyone\": address 0.0.0.0/0: every address on the internet",
        "warning: metrics: listen = 0.0.0.0:9812 is reachable from other hosts: keep the port \
         where only your monitoring reaches it (radmfa_lockouts_total rises only after a right \
         password",
        "warning: client \"anyone\": the same shared secret as \"legacy\"",
        "warning: client \"halves\": address 0.0.0.0/1: a network wider than a /8",
        "warning: client \"halves\": address 128.0.0.0/1: a network wider than a /8",
        // IPv6's threshold is its own, and the message names it.
        "warning: client \"halves\": address fd00::/8: a network wider than a /16 may use",
        "warning: upstream: shared secret",
        "warning: client \"legacy\": app_passwords = true with an upstream server whose \
         attributes are passed through",
        "warning: client \"legacy\": require_message_authenticator = false on a range \
         (10.0.0.0/8)",
        // The harness stops its servers quicker than a request may take.
        "warning: server: shutdown_grace_ms = 2000 is shorter than \
         server.request_deadline_ms = 4000",
    ] {
        assert!(
            warnings.iter().any(|w| w.starts_with(needle)),
            "no {needle:?}:\n{out}"
        );
    }
    // The test listens on IPv4 loopback alone, which no NAS in 10/8 or 128/1 reaches (0/1
    // and 0/0 hold 127/8), and none in fd00::/8.
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "warning: client \"halves\": address fd00::/8: server.listen has no IPv6 address"
        )),
        "{out}"
    );
    for net in [
        "\"legacy\": address 10.0.0.0/8",
        "\"halves\": address 128.0.0.0/1",
    ] {
        let needle = format!("warning: client {net}: server.listen has only loopback");
        assert!(warnings.iter().any(|w| w.starts_with(&needle)), "{out}");
    }
    assert_eq!(warnings.len(), 25, "{out}");
    for line in [
        "upstream: 192.0.2.50:1812, 192.0.2.51:1812 (1900 ms each; passes on Class)",
        "client \"legacy\": 10.0.0.0/8; password, then a prompt (password checked upstream)",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
}

/// What zbarimg (an independent decoder) reads in the QR code of enrollment text `out`,
/// rebuilt as an image: black modules on white, as a phone's camera sees the screen.
fn decoded_qr(dir: &Path, out: &str) -> String {
    let txt = dir.join("enroll.txt");
    let pgm = dir.join("qr.pgm");
    std::fs::write(&txt, out).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/qr_text_to_pgm.py");
    let st = Command::new("python3")
        .arg(script)
        .arg(&txt)
        .arg(&pgm)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        std::path::Path::new("/usr/bin/zbarimg").exists(),
        "zbarimg missing: run scripts/install-deps.sh (Debian package zbar-tools)"
    );
    let dec = Command::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(&pgm)
        .output()
        .unwrap();
    String::from_utf8_lossy(&dec.stdout).trim().to_string()
}

fn uri_in(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("URI:"))
        .unwrap_or_else(|| panic!("no URI: {out}"))
        .trim()
        .to_string()
}

/// The QR code drawn must be what a phone's scanner reads, dark modules dark. Into a file or
/// pipe: plain text, a block for a dark module, no escapes. It was drawn for dark terminals
/// only (blocks for light modules): inverted on paper and on a light theme, where zbar read
/// nothing.
#[test]
fn terminal_qr_code_decodes_to_the_uri() {
    let (d, cfg) = setup();
    let (ok, out, err) = run(&cfg, &["user", "enroll-totp", "alice"]);
    assert!(ok, "{err}");
    assert!(!out.contains('\u{1b}'), "escapes into a pipe: {out:?}");
    assert_eq!(decoded_qr(d.path(), &out), uri_in(&out));
}

/// On a terminal (here a pseudo-terminal from script(1)), each line of the code is black on
/// white whatever the theme's colours, and still decodes once the colours are taken off.
#[test]
fn qr_code_on_a_terminal_is_black_on_white() {
    let (d, cfg) = setup();
    let command = format!(
        "{} --config {} user enroll-totp alice",
        bin().display(),
        cfg.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    let qr: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\u{1b}[30;107m"))
        .collect();
    assert!(qr.len() > 10, "no coloured QR code: {text:?}");
    assert!(
        qr.iter()
            .all(|l| l.trim_end_matches('\r').ends_with("\u{1b}[0m")),
        "a line not reset: {text:?}"
    );
    assert_eq!(decoded_qr(d.path(), &text), uri_in(&text));
}

/// store.path a symbolic link made before the first start, its target not there yet: the
/// database is made at the target, private (0600). SQLite made it with the caller's umask
/// (0644: phone numbers and the audit trail readable by every account).
#[cfg(unix)]
#[test]
fn a_store_path_linked_to_a_file_not_there_yet_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let (d, cfg) = setup();
    let real = d.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(real.join("radmfa.db"), d.path().join("radmfa.db")).unwrap();
    let (ok, out, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{out}{err}");
    let mode = std::fs::metadata(real.join("radmfa.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

/// The directories a first command makes for the store and the key are private (0700, as
/// the shipped unit makes /var/lib/radmfa), whatever the caller's umask: made under `umask
/// 000` they were 0777, and any account could delete or swap the database and the seed
/// key; made 0755 before the first start, systemd kept that mode.
#[cfg(unix)]
#[test]
fn store_directories_made_under_a_permissive_umask_are_not_world_writable() {
    use std::os::unix::fs::PermissionsExt;
    let (d, cfg) = setup();
    let text = text_holding(&cfg, "path = \"radmfa.db\"\nkey_file = \"radmfa.key\"");
    std::fs::write(
        &cfg,
        text.replace(
            "path = \"radmfa.db\"\nkey_file = \"radmfa.key\"",
            "path = \"state/db/radmfa.db\"\nkey_file = \"keys/radmfa.key\"",
        ),
    )
    .unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec {} --config {} user enroll-totp alice --uri-only",
            bin().display(),
            cfg.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The directories holding the files private; a parent made on the way 0755, so that
    // the service's account, given the last one, can reach it.
    for (dir, mode) in [("state", 0o755), ("state/db", 0o700), ("keys", 0o700)] {
        let made = std::fs::metadata(d.path().join(dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(made & 0o777, mode, "{dir}: {made:o}");
    }
}

/// What the helpdesk's commands leave behind is said: `user unlock` that forgot wrong
/// codes below the threshold ("was not locked" alone read as nothing changed), a resync
/// whose holder is still locked (the drift's wrong codes locked them; "resynchronised" read
/// as done), an enrollment beside a waiting bypass (the next login takes the bypass, not
/// the new token); and `user show --json` gives an HOTP token no period (it gave 0).
#[test]
fn helpdesk_commands_say_what_they_leave() {
    let (d, cfg) = setup();
    let csv = d.path().join("hw.csv");
    std::fs::write(
        &csv,
        "serial,key,type,user\nHW-1,3132333435363738393031323334353637383930,hotp,bob\n",
    )
    .unwrap();
    let (ok, out, err) = run(&cfg, &["token", "import", csv.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]).0);
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    let now = common::peers::now();
    db.execute(
        "INSERT INTO user_state (user, failures, locked_until) VALUES ('alice', 2, NULL), \
         ('bob', 0, ?1)",
        [now + 600],
    )
    .unwrap();
    drop(db);

    let (ok, out, err) = run(&cfg, &["user", "unlock", "alice"]);
    assert!(
        ok && out.contains("alice: was not locked; 2 wrong code(s) forgotten"),
        "{out}{err}"
    );
    // RFC 4226's codes for counters 3 and 4 of this seed.
    let (ok, out, err) = run(&cfg, &["token", "resync", "HW-1", "969429", "338314"]);
    assert!(ok && out.contains("resynchronised"), "{out}{err}");
    assert!(
        out.contains("note: bob is locked until") && out.contains("radmfa user unlock bob"),
        "{out}"
    );
    let (ok, out, err) = run(&cfg, &["user", "show", "bob", "--json"]);
    assert!(ok, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["tokens"][0]["type"], "hotp", "{shown}");
    assert!(shown["tokens"][0]["period"].is_null(), "{shown}");
    assert_eq!(shown["tokens"][0]["counter"], 5, "{shown}");

    assert!(run(&cfg, &["user", "bypass", "carol", "--for", "1h"]).0);
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "carol", "--uri-only"]);
    assert!(
        ok && err.contains("note: a bypass still waits for carol until")
            && err.contains("radmfa user bypass carol --cancel"),
        "{err}"
    );
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "dave", "--uri-only"]);
    assert!(ok && !err.contains("bypass"), "{err}");
}

/// `db migrate` ahead of an upgrade, with store.path mistyped: it makes a new store, as a
/// first start would, and says so. It said "schema up to date", and the admin believed the
/// real store was ready.
#[test]
fn db_migrate_says_when_it_made_a_new_store() {
    let (d, cfg) = setup();
    let (ok, out, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("no database was there; made a new, empty one")
            && out.contains("check store.path")
            && !out.contains("up to date"),
        "{out}"
    );
    assert!(d.path().join("radmfa.db").exists());
    let (ok, out, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("schema up to date") && !out.contains("no database"),
        "{out}"
    );
    // A database with no tables (what a first start stopped before its schema leaves,
    // beside its key): not "schema set up", which read as the real store migrated.
    let db = d.path().join("radmfa.db");
    std::fs::remove_file(&db).unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    drop(c);
    assert!(std::fs::metadata(&db).unwrap().len() > 0);
    let (ok, out, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("had no tables yet")
            && out.contains("check store.path")
            && !out.contains("schema set up"),
        "{out}"
    );
    let (ok, out, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok && out.contains("schema up to date"), "{out}{err}");
}

/// `db migrate` on a store an older release left (its first ten migrations, run from this
/// release's own files) says from which version to which it brought it; run again, that it
/// was current. `config check --connect` says the schema is behind before, opens it after.
#[test]
fn db_migrate_says_from_which_version_it_migrated() {
    let (d, cfg) = setup();
    let newest = older_store(d.path(), 10);
    let (_, out, _) = run(&cfg, &["config", "check", "--connect"]);
    assert!(
        out.contains(&format!(
            "its schema is at version 10 and this release's at {newest}"
        )),
        "{out}"
    );
    let (ok, out, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("schema migrated from version 10 to {newest}")),
        "{out}"
    );
    let (ok, out, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok && out.contains("schema up to date"), "{out}{err}");
    let (_, out, _) = run(&cfg, &["config", "check", "--connect"]);
    assert!(out.contains("ok   store: opened"), "{out}");
    // A newer release migrated it (the package was rolled back): said, not "up to date".
    let py = std::process::Command::new(common::peers::python())
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"INSERT INTO \
             _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from a newer release', 1, x'00', 0)\"); c.commit()",
        ])
        .arg(d.path().join("radmfa.db"))
        .output()
        .unwrap();
    assert!(py.status.success(), "{py:?}");
    let (ok, out, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "schema version 9999 is newer than this release knows ({newest})"
        )) && !out.contains("up to date"),
        "{out}"
    );
}

/// The store (and its key file) in `dir` as a release with this release's first `n` SQLite
/// migrations left it, run from this release's own files; returns this release's version.
fn older_store(dir: &Path, n: usize) -> usize {
    let db = dir.join("radmfa.db");
    radmfa::store::KeyFile::load_or_create(&dir.join("radmfa.key")).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let files = tempfile::tempdir().unwrap();
        let mut names: Vec<std::path::PathBuf> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
        names.sort();
        for f in &names[..n] {
            std::fs::copy(f, files.path().join(f.file_name().unwrap())).unwrap();
        }
        let older = sqlx::migrate::Migrator::new(files.path()).await.unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true);
        let pool: sqlx::SqlitePool = radmfa::store::pool_options::without_reaper()
            .connect_with(options)
            .await
            .unwrap();
        older.run(&pool).await.unwrap();
        pool.close().await;
    });
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count()
}

/// The schema version of the SQLite store in `dir`, read as it is.
fn schema_version(dir: &Path) -> i64 {
    rusqlite::Connection::open(dir.join("radmfa.db"))
        .unwrap()
        .query_row(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// With an older release still serving its store, a command of the new binary that only
/// reads refuses the store, naming `db migrate`, and leaves it at its version, as `audit`
/// and `config check --connect` do. `user show` migrated it without a word, and the older
/// release's own commands and its restart then refused the store ("migration N was
/// previously applied but is missing"). A command that changes the store migrates it, and
/// says so in `db migrate`'s words.
#[test]
fn reading_commands_leave_an_older_store_alone_and_writing_ones_say_they_migrated_it() {
    let (d, cfg) = setup();
    let newest = older_store(d.path(), 10);
    let tokens = d.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "serial,key,type,user\nHW-1,3132333435363738393031323334353637383930,totp,\n",
    )
    .unwrap();
    let tokens = tokens.to_str().unwrap();
    for args in [
        &["user", "show", "alice"][..],
        &["user", "list"],
        &["user", "app-password", "list", "alice"],
        &["token", "list"],
        &["token", "show", "T1"],
        &["token", "import", tokens, "--dry-run"],
    ] {
        let (ok, out, err) = run(&cfg, args);
        assert!(
            !ok && err.contains(&format!(
                "the store's schema is at version 10, behind this release's {newest}"
            )) && err.contains("radmfa db migrate"),
            "{args:?}: {out}{err}"
        );
        assert_eq!(schema_version(d.path()), 10, "{args:?} migrated the store");
    }
    let (ok, out, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let said = format!(
        "{}: schema migrated from version 10 to {newest}\n",
        d.path().join("radmfa.db").display()
    );
    assert!(err.contains(&said), "{out}{err}");
    assert_eq!(schema_version(d.path()), newest as i64);
    // Current now: read, and changed, with no word of the schema.
    for args in [&["user", "show", "alice"][..], &["user", "unlock", "alice"]] {
        let (ok, out, err) = run(&cfg, args);
        assert!(ok && !err.contains("schema"), "{args:?}: {out}{err}");
    }
}

/// `serve` on a store an older release left logs the migration it made, once, at INFO;
/// on a current store (the restart) it says nothing of it. The start migrated in silence.
#[test]
fn serve_logs_the_migration_it_made() {
    let (d, cfg) = setup();
    let newest = older_store(d.path(), 10);
    let mut server = common::radmfa::Server::start_with(d, cfg);
    let said = format!("store schema migrated from version 10 to {newest}");
    assert!(
        server.log_lines_at_least(1, |l| l.contains(&said) && l.contains("INFO")) == 1,
        "{}",
        server.log()
    );
    server.stop();
    server.restart();
    assert!(server.log_shows("listening on udp"));
    assert!(
        !server.log().contains("schema migrated"),
        "{}",
        server.log()
    );
}

/// `db migrate` on a new host makes the store as a first start would, the directory it is
/// in included: it failed with "key file …: cannot create: No such file or directory" where
/// /var/lib/radmfa was not there yet, though serve and `user enroll-totp` make it.
#[test]
fn db_migrate_makes_the_store_directory_as_a_first_start_would() {
    let (d, cfg) = setup();
    let text = text_holding(&cfg, "path = \"radmfa.db\"")
        .replace("path = \"radmfa.db\"", "path = \"state/radmfa.db\"")
        .replace(
            "key_file = \"radmfa.key\"",
            "key_file = \"state/radmfa.key\"",
        );
    std::fs::write(&cfg, text).unwrap();
    let (ok, out, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("made a new, empty one"), "{out}");
    let state = d.path().join("state");
    assert!(state.join("radmfa.db").is_file() && state.join("radmfa.key").is_file());
    let (ok, out, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok && out.contains("schema up to date"), "{out}{err}");
}

/// A SQLite store every account may read (restored with `cp` under umask 022) is warned
/// about by `config check`, naming store.path: it holds phone numbers and the audit trail.
/// The one radmfa makes is 0600 and gets no warning.
#[test]
fn config_check_warns_of_a_store_every_account_may_read() {
    use std::os::unix::fs::PermissionsExt;
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let db = d.path().join("radmfa.db");
    let (ok, out, err) = run(&cfg, &["config", "check"]);
    assert!(ok && !out.contains("store.path"), "{out}{err}");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out, err) = run(&cfg, &["config", "check"]);
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("warning: store.path")
            && l.contains("mode 644")
            && l.contains("chmod 0600")),
        "{out}"
    );
}

/// `audit --result rejected` (for reject) printed an empty table, read during an incident as
/// "no rejects": it now says the result is not one radmfa records. `--limit 0` meant 100
/// records but every group with --count-by; it was then refused for records, and is now
/// every record, as for groups. Records or groups left off are said on stderr, for the
/// JSON as for the table: an export cut at the default 50 said nothing.
#[test]
fn audit_says_when_a_filter_cannot_match_or_a_limit_means_nothing() {
    let (_d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&cfg, &["audit", "--result", "enrolled", "--json"]);
    assert!(ok, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("--result \"enrolled\" is not a result radmfa records")
            && err.contains("enroll,"),
        "{err}"
    );
    let (ok, out, err) = run(&cfg, &["audit", "--result", "enroll", "--json"]);
    assert!(ok && err.is_empty(), "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "bob", "--uri-only"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&cfg, &["audit", "--count-by", "result", "--limit", "0"]);
    assert!(ok && out.contains("enroll") && err.is_empty(), "{out}{err}");
    // Two records: one shown, the other said on stderr, the JSON left pure.
    let (ok, out, err) = run(&cfg, &["audit", "--json", "--limit", "1"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{out}"
    );
    assert!(
        err.contains("the newest 1 records shown; more match") && err.contains("--limit 0 for all"),
        "{err}"
    );
    let (ok, out, err) = run(&cfg, &["audit", "--limit", "1"]);
    assert!(ok && out.lines().count() == 2, "{out}{err}");
    assert!(err.contains("more match"), "{err}");
    // As many as there are: nothing left off, nothing said.
    let (ok, out, err) = run(&cfg, &["audit", "--json", "--limit", "2"]);
    assert!(
        ok && out.lines().count() == 2 && err.is_empty(),
        "{out}{err}"
    );
    let (ok, out, err) = run(&cfg, &["audit", "--json", "--limit", "0"]);
    assert!(
        ok && out.lines().count() == 2 && err.is_empty(),
        "{out}{err}"
    );
    // A report: the groups left off are said for --json too, on stderr.
    let (ok, out, err) = run(
        &cfg,
        &["audit", "--count-by", "user", "--limit", "1", "--json"],
    );
    assert!(ok && out.lines().count() == 1, "{out}{err}");
    assert!(
        err.contains("(1 more groups, 1 records; raise --limit"),
        "{err}"
    );
    let (ok, out, err) = run(&cfg, &["audit", "--count-by", "user", "--limit", "1"]);
    assert!(ok && out.lines().count() == 2, "{out}{err}");
    assert!(err.contains("(1 more groups, 1 records"), "{err}");
}

/// `--count-by reason` counts causes: two bypasses until different times are one row
/// (`until <time>`), where each made a row of its own; the records keep their times.
#[test]
fn audit_counts_reasons_by_cause() {
    let (_d, cfg) = setup();
    for (user, time) in [("alice", "5m"), ("bob", "10m")] {
        let (ok, _, err) = run(&cfg, &["user", "bypass", user, "--for", time]);
        assert!(ok, "{err}");
    }
    let (ok, out, err) = run(&cfg, &["audit", "--count-by", "reason", "--json"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["key"], "until <time>", "{out}");
    assert_eq!(rows[0]["total"], 2, "{out}");
    let (ok, out, _) = run(&cfg, &["audit", "--json"]);
    assert!(ok && out.matches("\"until 20").count() == 2, "{out}");
}

/// `audit` reads the audit log alone, read-only and without the seed key: an auditor's
/// account given read access to the database (not to its directory, not to the key that
/// unseals every seed) gets its records. It opened the whole store, read-write with the
/// key: "attempt to write a readonly database", or where it could write the directory,
/// serve's advice to give the database to the user radmfa runs as, and -wal and -shm files
/// of the auditor's left behind.
#[test]
fn audit_reads_a_store_it_may_only_read_without_the_key() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (d, cfg) = setup();
    for user in ["alice", "bob"] {
        let (ok, _, err) = run(&cfg, &["user", "enroll-totp", user, "--uri-only"]);
        assert!(ok, "{err}");
    }
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    // The auditor may read the directory, the config and the database; nothing more.
    mode(d.path(), 0o755);
    mode(&cfg, 0o644);
    mode(&d.path().join("radmfa.db"), 0o644);
    mode(&d.path().join("radmfa.key"), 0o600);
    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = files();
    let as_nobody = |args: &[&str]| {
        // Under `timeout`: a --follow that started after all would run until killed.
        let out = Command::new("timeout")
            .uid(65534)
            .gid(65534)
            .arg("20")
            .arg(bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .expect("run as nobody (the suite runs as root, as CI does)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = as_nobody(&["audit", "--json"]);
    assert!(ok && err.is_empty(), "{err}");
    let users: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["user"].to_string())
        .collect();
    assert_eq!(users, ["\"bob\"", "\"alice\""], "{out}");
    let (ok, out, err) = as_nobody(&["audit", "--count-by", "user"]);
    assert!(
        ok && out.contains("alice") && out.contains("bob"),
        "{out}{err}"
    );
    // With no -wal there, nothing has the database open: a report reads the file as it
    // is. --follow, which must see the records to come, says what it needs instead.
    let (ok, _, err) = as_nobody(&["audit", "--follow"]);
    assert!(
        !ok && err.contains("needs its -wal and") && err.contains("-shm files"),
        "{err}"
    );
    assert_eq!(files(), before, "the auditor left files behind");
    // Nor where it may write the directory: a read-only open made -wal and -shm files,
    // owned by the auditor, and left them (a read-only connection cannot checkpoint) for
    // the service to trip over at its next start.
    std::os::unix::fs::chown(d.path(), None, Some(65534)).unwrap();
    mode(d.path(), 0o775);
    let (ok, out, err) = as_nobody(&["audit", "--json"]);
    assert!(ok && out.lines().count() == 2, "{out}{err}");
    let (ok, _, err) = as_nobody(&["audit", "--follow"]);
    assert!(!ok && err.contains("while radmfa runs"), "{err}");
    assert_eq!(files(), before, "the auditor left files behind");
    mode(d.path(), 0o755);
    std::os::unix::fs::chown(d.path(), None, Some(0)).unwrap();
    // No key at all: a report unseals nothing, so needs none (and makes none).
    let key = d.path().join("radmfa.key");
    let away = d.path().join("radmfa.key.away");
    std::fs::rename(&key, &away).unwrap();
    let (ok, out, err) = run(&cfg, &["audit", "--result", "enroll"]);
    assert!(ok && out.contains("alice"), "{out}{err}");
    assert!(!key.exists(), "a key file was made");
    std::fs::rename(&away, &key).unwrap();
}

/// A listing longer than a page (5,000) is read a page at a time, and still gives every
/// record once, newest first, also where several share the second a page ends in.
#[test]
fn a_long_audit_listing_gives_every_record_once_newest_first() {
    let (dir, cfg) = setup();
    let mut db = common::radmfa::migrated(dir.path(), &cfg);
    let t0 = 1_790_000_000_i64;
    let tx = db.transaction().unwrap();
    for i in 0..12_001_i64 {
        // Three records a second: page boundaries fall inside a second.
        tx.execute(
            "INSERT INTO audit (time, user, mode, result, server_name, latency_ms) \
             VALUES (?1, ?2, 'totp', 'accept', 'node', 3)",
            rusqlite::params![t0 + i / 3, format!("user{i:05}")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(db);
    let (ok, out, err) = run(&cfg, &["audit", "--json", "--limit", "12000"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 12_000);
    // Inserted in time order, so newest first is user12000 down to user00001.
    let users: Vec<&str> = rows.iter().map(|r| r["user"].as_str().unwrap()).collect();
    let want: Vec<String> = (1..=12_000).rev().map(|i| format!("user{i:05}")).collect();
    assert!(users == want, "records missing, repeated or out of order");
    // The table: a header, then the records.
    let (ok, out, err) = run(&cfg, &["audit", "--limit", "7000"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7_001, "{}", lines[0]);
    assert!(lines[0].starts_with("TIME") && lines[1].contains("user12000"));
    assert!(lines[7_000].contains("user05001"), "{}", lines[7_000]);
    assert!(
        err.contains("the newest 7000 records shown; more match"),
        "{err}"
    );
    // More than there are: all of them, and the listing ends.
    let (ok, out, err) = run(&cfg, &["audit", "--json", "--limit", "20000"]);
    assert!(
        ok && out.lines().count() == 12_001 && err.is_empty(),
        "{err}"
    );
    // 0: every record, over several pages; and a limit ending on a page's end still
    // looks past it for more.
    let (ok, out, err) = run(&cfg, &["audit", "--json", "--limit", "0"]);
    assert!(
        ok && out.lines().count() == 12_001 && err.is_empty(),
        "{err}"
    );
    let (ok, out, err) = run(&cfg, &["audit", "--json", "--limit", "10000"]);
    assert!(ok && out.lines().count() == 10_000, "{err}");
    assert!(err.contains("the newest 10000 records shown"), "{err}");
}

/// `--until` is exclusive, so consecutive report windows count a record on their boundary
/// once; a day typed as YYYYMMDD is refused, not read as Unix seconds in 1970 (where
/// `--since 20260131` matched every record).
#[test]
fn audit_windows_are_half_open_and_a_yyyymmdd_day_is_refused() {
    let (_d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&cfg, &["audit", "--json"]);
    assert!(ok, "{err}");
    let record: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let t = record["time"].as_i64().unwrap().to_string();
    let count = |args: &[&str]| {
        let (ok, out, err) = run(&cfg, &[&["audit", "--json"], args].concat());
        assert!(ok, "{args:?}: {err}");
        out.lines().count()
    };
    assert_eq!(
        count(&["--until", &t]),
        0,
        "a record at --until is not before it"
    );
    assert_eq!(count(&["--since", &t]), 1, "one at --since is in");
    let (ok, _, err) = run(&cfg, &["audit", "--since", "20260131"]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("--since") && err.contains("reads as the date 2026-01-31"),
        "{err}"
    );
    let (ok, _, err) = run(&cfg, &["audit", "--until", "20260131", "--count-by", "day"]);
    assert!(!ok && err.contains("--until"), "{err}");
}

/// `audit --follow --limit 0` is `tail -n 0 -f`: no earlier record (it printed 100 of
/// them), then each new one. Also where the first record is stamped a month ahead (a
/// clock that ran fast once): read by time it stayed the newest, and every record written
/// after it was printed as new.
#[test]
fn audit_follow_with_limit_0_shows_only_new_records() {
    use std::time::Duration;
    let (d, cfg) = setup();
    for user in ["alice", "bob", "dave", "erin"] {
        let (ok, _, err) = run(&cfg, &["user", "enroll-totp", user, "--uri-only"]);
        assert!(ok, "{err}");
    }
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    let ahead = db
        .execute(
            "UPDATE audit SET time = time + 30 * 86400 WHERE id = (SELECT MIN(id) FROM audit)",
            [],
        )
        .unwrap();
    assert_eq!(ahead, 1);
    drop(db);
    // The last two written, then nothing until something new is.
    let follow = common::radmfa::Follower::start(&cfg, &["--limit", "2"]);
    assert!(follow.next_line().starts_with("TIME"));
    let shown: Vec<String> = (0..2).map(|_| follow.next_line()).collect();
    assert!(
        shown[0].contains("dave") && shown[1].contains("erin"),
        "{shown:?}"
    );
    let old = follow.next_within(Duration::from_millis(2500));
    assert!(old.is_none(), "an earlier record shown as new: {old:?}");
    assert!(follow.stop().success());
    let follow = common::radmfa::Follower::start(&cfg, &["--limit", "0"]);
    // The header comes once the earlier records were read: anything written after is new.
    let header = follow.next_line();
    assert!(header.starts_with("TIME"), "{header}");
    let old = follow.next_within(Duration::from_millis(1500));
    assert!(old.is_none(), "an earlier record shown: {old:?}");
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "carol", "--uri-only"]);
    assert!(ok, "{err}");
    let row = follow.next_line();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1..3], ["carol", "enroll"], "{row}");
    let more = follow.next_within(Duration::from_millis(1500));
    assert!(more.is_none(), "{more:?}");
    assert!(follow.stop().success());
}

/// An enrollment with another hash, length or step, without --verify, is warned about: some
/// apps show SHA1, 6-digit, 30 s codes whatever the URI says, and the token's codes would
/// never match there. Only `config check` said so, and only of [totp] itself.
#[test]
fn enrolling_with_parameters_some_apps_ignore_is_warned_about() {
    let (_d, cfg) = setup();
    // --not-in-directory: the directory (none answers here) is not asked, and warned about.
    let enroll = ["user", "enroll-totp", "--not-in-directory", "--uri-only"];
    let (ok, out, err) = run(&cfg, &[&enroll[..], &["alice"]].concat());
    assert!(ok && out.starts_with("otpauth://"), "{err}");
    assert!(!err.contains("warning"), "{err}");
    for (user, flag, value) in [
        ("bob", "--algorithm", "SHA256"),
        ("carol", "--digits", "8"),
        ("dave", "--period", "60"),
    ] {
        let (ok, out, err) = run(&cfg, &[&enroll[..], &[user, flag, value]].concat());
        assert!(ok && out.starts_with("otpauth://"), "{err}");
        assert!(
            err.starts_with("warning: ")
                && err.contains("Microsoft Authenticator")
                && err.contains("--verify"),
            "{flag}: {err}"
        );
    }
}

#[test]
fn a_disk_that_takes_no_more_is_reported_not_claimed_as_enrolled() {
    // The file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) fails SQLite's WAL writes as a full
    // disk does. The enrollments' commits fail: the command must say so and exit non-zero,
    // never report users as enrolled whose tokens are not on disk. (Through sqlx's
    // fetch_one, the commit happened in a reset whose error was dropped: "enrolled 100
    // users", exit 0, and only the first few stored.)
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{err}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 128; exec "$0" "$@""#)
        .arg(bin())
        .arg("--config")
        .arg(&cfg)
        .args([
            "client",
            "bench-users",
            "--count",
            "100",
            "--enroll",
            "--out",
        ])
        .arg(d.path().join("bench"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "claimed success: {err}");
    assert!(!err.contains("enrolled 100 users"), "{err}");
    assert!(err.contains("disk I/O error"), "{err}");
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    let stored: i64 = db
        .query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0))
        .unwrap();
    assert!(stored < 100, "{stored} tokens: the limit did not bite");
}

/// One admin command on a fresh copy of one migrated store under each of a sweep of
/// file-size limits (RLIMIT_FSIZE as above): somewhere in the sweep the disk runs out before
/// the change, between the change and its audit record, and not at all. Returns, per limit,
/// whether the command succeeded, its stdout and stderr, and `stored` on the store
/// afterwards.
///
/// Every copy starts from the same files: the template's WAL holds twelve unchecked frames
/// (~50 KB; a connection held open while copying keeps them from being checkpointed away),
/// so the command's writes grow the WAL from there, past limits above the 32 KB that the
/// -shm file needs when a process opens the copy first.
fn under_shrinking_disks<T>(
    args: &[&str],
    stored: impl Fn(&rusqlite::Connection) -> T,
) -> Vec<(u32, bool, String, String, T)> {
    under_shrinking_disks_after(&[], args, stored)
}

/// [`under_shrinking_disks`], with `before` run once (on a full disk) first.
fn under_shrinking_disks_after<T>(
    before: &[&str],
    args: &[&str],
    stored: impl Fn(&rusqlite::Connection) -> T,
) -> Vec<(u32, bool, String, String, T)> {
    let (template, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{err}");
    if !before.is_empty() {
        let (ok, _, err) = run(&cfg, before);
        assert!(ok, "{before:?}: {err}");
    }
    let hold = rusqlite::Connection::open(template.path().join("radmfa.db")).unwrap();
    hold.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    hold.execute_batch("PRAGMA wal_autocheckpoint = 0").unwrap();
    for v in 1..=12 {
        hold.execute_batch(&format!("PRAGMA user_version = {v}"))
            .unwrap();
    }
    let mut outcomes = Vec::new();
    for blocks in (64..=240).step_by(2) {
        let d = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(template.path()).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), d.path().join(f.file_name())).unwrap();
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                r#"trap '' XFSZ; ulimit -f {blocks}; exec "$0" "$@""#
            ))
            .arg(bin())
            .arg("--config")
            .arg(d.path().join("radmfa.toml"))
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
        outcomes.push((blocks, out.status.success(), stdout, err, stored(&db)));
    }
    drop(hold);
    let failed = outcomes.iter().filter(|o| !o.1).count();
    assert!(
        failed > 0 && failed < outcomes.len(),
        "{failed} of {} failed: the sweep must span both",
        outcomes.len()
    );
    outcomes
}

#[test]
fn an_enrollment_the_disk_cannot_finish_is_never_left_unexplained() {
    // Each enrollment either succeeds (its secret shown), or stores nothing, or — token
    // stored, audit record not — says so and how to clean up: never a token whose secret
    // nobody saw with only a bare "disk I/O error" to go on.
    let outcomes = under_shrinking_disks(&["user", "enroll-totp", "--uri-only", "alice"], |db| {
        db.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get::<_, i64>(0))
            .unwrap()
    });
    let mut left_behind = 0;
    for (blocks, ok, out, err, stored) in outcomes {
        if ok {
            assert_eq!(stored, 1, "limit {blocks}: enrolled but not stored");
            assert!(
                out.starts_with("otpauth://totp/"),
                "limit {blocks}: enrolled, its secret not shown: {out}"
            );
        } else {
            assert!(err.contains("disk I/O error"), "limit {blocks}: {err}");
            if stored > 0 {
                left_behind += 1;
                assert!(
                    err.contains("run `radmfa user reset alice`"),
                    "limit {blocks}: token left behind unexplained: {err}"
                );
            }
        }
    }
    // A dozen limits of the sweep fall there (the token's commit fits, the record's and the
    // undo's do not); the undo that works is rarer here, and certain in the next test.
    assert!(
        left_behind > 0,
        "no limit fell between the token and its audit record"
    );
}

/// Both ends of an enrollment whose audit record fails, made certain with triggers where
/// the sweep above meets them only if a limit falls just so: the token taken back and said
/// so; or, when it cannot be taken back either, left behind with how to clean it up. In
/// neither is its secret shown.
#[test]
fn an_enrollment_whose_audit_record_fails_is_undone_or_explained() {
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{err}");
    let sql = |text: &str| {
        rusqlite::Connection::open(d.path().join("radmfa.db"))
            .unwrap()
            .execute_batch(text)
            .unwrap()
    };
    let tokens = || {
        rusqlite::Connection::open(d.path().join("radmfa.db"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let enroll = ["user", "enroll-totp", "--uri-only", "alice"];

    sql("CREATE TRIGGER no_audit BEFORE INSERT ON audit \
           BEGIN SELECT RAISE(ABORT, 'test: no audit'); END;");
    let (ok, out, err) = run(&cfg, &enroll);
    assert!(!ok, "claimed success: {out}{err}");
    assert!(err.contains("enrollment of alice undone"), "{err}");
    assert!(
        !out.contains("otpauth://"),
        "secret of a token taken back: {out}"
    );
    assert_eq!(tokens(), 0, "{err}");

    sql("CREATE TRIGGER no_token_deletes BEFORE DELETE ON tokens \
           BEGIN SELECT RAISE(ABORT, 'test: tokens stay'); END;");
    let (ok, out, err) = run(&cfg, &enroll);
    assert!(!ok, "claimed success: {out}{err}");
    assert!(
        err.contains("run `radmfa user reset alice`") && !err.contains("undone"),
        "{err}"
    );
    assert!(
        !out.contains("otpauth://"),
        "secret of a token left behind: {out}"
    );
    assert_eq!(tokens(), 1, "{err}");
}

/// A bypass whose audit record fails is not granted, and one granted (and audited) earlier
/// still waits. Taking the new one back used to clear the column, so the earlier bypass the
/// admin had told the user about was gone too; now the two are one transaction.
#[test]
fn a_bypass_whose_audit_record_fails_leaves_the_earlier_one() {
    let until = |db: &rusqlite::Connection| {
        db.query_row(
            "SELECT bypass_until - CAST(strftime('%s','now') AS INTEGER) FROM user_profile \
             WHERE user = 'alice'",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .unwrap()
    };
    let outcomes = under_shrinking_disks_after(
        &["user", "bypass", "alice", "--for", "2h"],
        &["user", "bypass", "alice", "--for", "5m"],
        until,
    );
    let mut kept = 0;
    for (blocks, ok, _, err, left) in outcomes {
        let left = left.unwrap_or_else(|| panic!("limit {blocks}: no bypass left: {err}"));
        // Seconds still to wait: about 300 for the new one, about 7200 for the earlier.
        let new = (250..=300).contains(&left);
        let earlier = (7000..=7200).contains(&left);
        // The bypass and its record are one transaction: granted with its record, or not
        // at all, the earlier one left waiting and said so.
        if ok {
            assert!(new, "limit {blocks}: granted, but {left} s left");
        } else {
            assert!(earlier, "limit {blocks}: failed, but {left} s left: {err}");
            assert!(
                err.contains("is not changed; the one granted earlier, until"),
                "limit {blocks}: {err}"
            );
            kept += 1;
        }
    }
    assert!(kept > 0, "no limit failed the grant");
}

#[test]
fn an_admin_change_whose_audit_record_fails_is_reported_as_made() {
    // A change that cannot be taken back (here the phone number) but whose audit record did
    // not reach the disk: the error must say the change stands, not leave the admin to read
    // "disk I/O error" as "nothing happened".
    let outcomes = under_shrinking_disks(&["user", "set-phone", "alice", "+4915112345678"], |db| {
        db.query_row(
            "SELECT COUNT(*) FROM user_profile WHERE phone IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    });
    let mut half_done = 0;
    for (blocks, ok, _, err, stored) in outcomes {
        match (ok, stored) {
            (true, 1) => {}
            (false, 0) => assert!(err.contains("disk I/O error"), "limit {blocks}: {err}"),
            (false, 1) => {
                half_done += 1;
                // Said either way: the change alone, or with the step after it that failed.
                let stands = err.contains("set-phone for alice is done, but its audit record")
                    || (err.contains("phone set to +4915112345678 for alice, but")
                        && err.contains("its audit record could not be written either"));
                assert!(
                    stands,
                    "limit {blocks}: the change stands, the error does not say so: {err}"
                );
            }
            _ => panic!("limit {blocks}: ok {ok}, stored {stored}: {err}"),
        }
    }
    assert!(
        half_done > 0,
        "no limit fell between the change and its audit record"
    );
}

/// A reset that stops part-way, whose audit record then fails too: the error says it
/// stopped part-way (and that the record is missing), never that the reset "is done" —
/// the app password it did not get to still lets the user in without a second factor.
#[test]
fn a_reset_stopped_part_way_is_not_reported_done_when_its_audit_fails_too() {
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "carol", "--uri-only"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&cfg, &["user", "app-password", "add", "carol"]);
    assert!(ok, "{err}");
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER no_app_password_deletes BEFORE DELETE ON app_passwords \
           BEGIN SELECT RAISE(ABORT, 'test: app passwords stay'); END; \
         CREATE TRIGGER no_audit BEFORE INSERT ON audit \
           BEGIN SELECT RAISE(ABORT, 'test: no audit'); END;",
    )
    .unwrap();
    drop(db);
    let (ok, out, err) = run(&cfg, &["user", "reset", "carol"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("stopped part-way") && err.contains("could not be written either"),
        "{err}"
    );
    assert!(!err.contains("is done, but"), "{err}");
}

#[test]
fn an_import_the_disk_cannot_take_imports_all_or_nothing() {
    // 200 tokens in one file: at every limit of the sweep the store holds all of them or
    // none, and a failure says which.
    let csv = std::env::temp_dir().join(format!("radmfa-sweep-{}.csv", std::process::id()));
    let mut text = String::from("serial,secret,interval\n");
    for i in 0..200 {
        // A seed each: one seed under two serials is refused.
        text.push_str(&format!(
            "SWEEP-{i:03},{},30\n",
            data_encoding::BASE32_NOPAD.encode(format!("sweep-seed-{i:09}").as_bytes())
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let outcomes = under_shrinking_disks(&["token", "import", csv.to_str().unwrap()], |db| {
        db.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get::<_, i64>(0))
            .unwrap()
    });
    std::fs::remove_file(&csv).unwrap();
    for (blocks, ok, _, err, stored) in outcomes {
        match (ok, stored) {
            (true, 200) => {}
            (false, 0) => assert!(err.contains("disk I/O error"), "limit {blocks}: {err}"),
            (false, 200) => assert!(
                err.contains("import is done, but its audit record"),
                "limit {blocks}: imported, the error does not say so: {err}"
            ),
            _ => panic!("limit {blocks}: ok {ok}, {stored} of 200 stored: {err}"),
        }
    }
}

/// A name that stores something (a phone, a bypass, a method, an app password) must be one
/// a login could carry: no control characters (terminal escapes for whoever lists users
/// later), none empty, none over RADIUS's 253 bytes. Nothing is stored for a refused one.
#[test]
fn commands_that_store_under_a_user_name_refuse_unusable_names() {
    let (_d, cfg) = setup();
    // Someone enrolled, so the store exists and the list below can show it unchanged.
    assert!(run(&cfg, &["user", "enroll-totp", "zed", "--uri-only"]).0);
    let long = "a".repeat(254);
    for name in ["al\u{1b}[2Kice", "", "  ", long.as_str()] {
        for args in [
            vec!["user", "set-phone", name, "+4915112345678"],
            vec!["user", "bypass", name],
            vec!["user", "set-method", name, "sms"],
            vec!["user", "app-password", "add", name],
        ] {
            let (ok, _, err) = run(&cfg, &args);
            assert!(!ok, "{args:?} was accepted");
            assert!(err.contains("control characters"), "{args:?}: {err}");
        }
    }
    let (ok, out, _) = run(&cfg, &["user", "list", "--json"]);
    assert!(ok);
    let v = serde_json::from_str::<serde_json::Value>(&out).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["zed"], "nothing stored for a refused name");
}

/// Every admin record names who ran the command: the account, and under sudo the person
/// who ran sudo. Login records name no actor.
#[test]
fn admin_records_name_who_ran_the_command() {
    let (_d, cfg) = setup();
    let me = Command::new("id").arg("-un").output().unwrap();
    let me = String::from_utf8(me.stdout).unwrap().trim().to_string();
    assert!(!me.is_empty());
    let out = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["user", "bypass", "alice"])
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["user", "set-method", "alice", "sms"])
        .env("SUDO_USER", "helpdesk-bob")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (ok, out, _) = run(&cfg, &["audit", "--user", "alice", "--json"]);
    assert!(ok);
    let actors: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["actor"].clone())
        .collect();
    // Newest first.
    assert_eq!(
        actors,
        vec![
            serde_json::json!(format!("{me} via sudo from helpdesk-bob")),
            serde_json::json!(me)
        ]
    );
    let (ok, out, _) = run(&cfg, &["audit", "--user", "alice"]);
    assert!(
        ok && out.contains(&format!("(by {me} via sudo from helpdesk-bob)")),
        "{out}"
    );
}

/// Wrong codes below the lockout threshold are state a reset takes away too: a user whose
/// only trace is two wrong codes is reset (not "nothing to reset"), the count goes to 0,
/// and the audit record says what was forgotten.
#[test]
fn reset_forgets_wrong_codes_below_the_threshold() {
    let (_d, cfg) = setup();
    let config = radmfa::config::Config::load(&cfg).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let failures = |store: &std::sync::Arc<dyn radmfa::store::Store>| {
        rt.block_on(store.user_status("carol")).unwrap().failures
    };
    {
        let store = rt.block_on(radmfa::app::open_store(&config.store)).unwrap();
        for _ in 0..2 {
            rt.block_on(store.record_failure("carol", 5, 1_800_000_000, 300))
                .unwrap();
        }
        assert_eq!(failures(&store), 2);
    }
    let (ok, out, err) = run(&cfg, &["user", "reset", "carol"]);
    assert!(
        ok && out.contains("2 wrong code(s) forgotten"),
        "{out}{err}"
    );
    let store = rt.block_on(radmfa::app::open_store(&config.store)).unwrap();
    assert_eq!(failures(&store), 0);
    let (_, out, _) = run(&cfg, &["audit", "--user", "carol", "--json"]);
    assert!(
        out.contains("\"reset\"") && out.contains("2 wrong code(s) forgotten"),
        "{out}"
    );
    // Nothing left now: a second reset says so.
    let (ok, _, err) = run(&cfg, &["user", "reset", "carol"]);
    assert!(!ok && err.contains("nothing to reset"), "{err}");
}

/// `audit --mode`: the records of one way of deciding (here the admin's own), and a mode
/// radmfa does not record is warned about rather than read as "none happened".
#[test]
fn audit_filters_by_mode() {
    let (_d, cfg) = setup();
    assert!(run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]).0);
    let (ok, out, err) = run(&cfg, &["audit", "--mode", "admin", "--json"]);
    assert!(
        ok && out.contains("\"enroll\"") && err.is_empty(),
        "{out}{err}"
    );
    let (ok, out, _) = run(&cfg, &["audit", "--mode", "bypass", "--json"]);
    assert!(ok && out.trim().is_empty(), "{out}");
    let (ok, _, err) = run(&cfg, &["audit", "--mode", "by-pass"]);
    assert!(ok && err.contains("is not a mode radmfa records"), "{err}");
}

/// `audit --token SERIAL`: one token's trail (its enrollment here), not another user's.
#[test]
fn audit_filters_by_token() {
    let (_d, cfg) = setup();
    for user in ["alice", "bob"] {
        assert!(run(&cfg, &["user", "enroll-totp", user, "--uri-only"]).0);
    }
    let (ok, out, err) = run(&cfg, &["audit", "--user", "alice", "--json"]);
    assert!(ok, "{err}");
    let rec: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let serial = rec["token_serial"]
        .as_str()
        .expect("the enrollment names its token");
    let (ok, out, err) = run(&cfg, &["audit", "--token", serial, "--json"]);
    assert!(ok, "{err}");
    let users: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["user"].to_string())
        .collect();
    assert_eq!(users, ["\"alice\""], "{out}");
    let (ok, out, _) = run(&cfg, &["audit", "--token", "NO-SUCH-TOKEN", "--json"]);
    assert!(ok && out.trim().is_empty(), "{out}");
}

/// Processes that open a database behind by a migration at the same moment (the service
/// restarting while an admin runs a command) all succeed, and so do processes that create
/// one from nothing at once (every migration due): sqlx's SQLite migrator takes no lock, both
/// applied the same migration, and the second failed.
#[test]
fn processes_migrating_one_database_at_once_all_succeed() {
    let (d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    // Version 13 rebuilds a table, so it may run again (an ADD COLUMN, as 14's, may not):
    // the one made due again below.
    let rerun: i64 = db
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE description = 'send event slot'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rerun, 13);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let four_at_once = |cfg: &std::path::Path, what: &str| {
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(bin())
                    .arg("--config")
                    .arg(cfg)
                    .args(["db", "migrate"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{what}: {out:?}");
        }
    };
    for round in 0..6 {
        // A migration (a table rebuild, which may run again) is due once more.
        db.execute("DELETE FROM _sqlx_migrations WHERE version = ?1", [rerun])
            .unwrap();
        four_at_once(&cfg, &format!("round {round}"));
        // A database (and key file) made from nothing by all four.
        let fresh = d.path().join(format!("fresh{round}.toml"));
        let fresh_text = text
            .replace(
                "path = \"radmfa.db\"",
                &format!("path = \"fresh{round}.db\""),
            )
            .replace(
                "key_file = \"radmfa.key\"",
                &format!("key_file = \"fresh{round}.key\""),
            );
        assert_ne!(fresh_text, text);
        std::fs::write(&fresh, fresh_text).unwrap();
        four_at_once(&fresh, &format!("fresh database, round {round}"));
    }
    let (ok, out, err) = run(&cfg, &["user", "show", "alice"]);
    assert!(ok && out.contains("TOTP-"), "{out}{err}");
}

/// The secret of a new token that cannot be shown (stdout a full disk, a closed pipe) is no
/// token anyone has: the enrollment is taken back and says so. It panicked after storing
/// the token, which then stood with its secret lost.
#[test]
fn an_enrollment_whose_secret_cannot_be_shown_is_taken_back() {
    let (dir, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["db", "migrate"]);
    assert!(ok, "{err}");
    for args in [
        &["user", "enroll-totp", "--uri-only", "alice"][..],
        &["user", "enroll-totp", "--no-qr", "alice"][..],
    ] {
        let out = Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("enrollment of alice undone"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        let db = rusqlite::Connection::open(dir.path().join("radmfa.db")).unwrap();
        let tokens: i64 = db
            .query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tokens, 0, "{args:?}: a token whose secret nobody saw");
    }
    // And one that can be shown is enrolled, as ever.
    let (ok, out, err) = run(&cfg, &["user", "enroll-totp", "--uri-only", "alice"]);
    assert!(ok && out.starts_with("otpauth://totp/"), "{out}{err}");
}

/// An app password, like a token's secret, is shown once: one that cannot be shown is taken
/// back. It was stored, then `println!` panicked on the full disk.
#[test]
fn an_app_password_that_cannot_be_shown_is_taken_back() {
    let (dir, cfg) = setup();
    let out = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["user", "app-password", "add", "carol"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("app password for carol undone"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let db = rusqlite::Connection::open(dir.path().join("radmfa.db")).unwrap();
    let left: i64 = db
        .query_row("SELECT COUNT(*) FROM app_passwords", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "an app password nobody saw");
}

/// Output read by a pipe whose reader has gone (`radmfa user list | head -1`) ends the
/// command quietly by SIGPIPE, as it ends other Unix tools (never status 0: `config check
/// --connect` prints before it has checked anything); a full disk is one line and status 2.
/// Both were a panic (status 101, "failed printing to stdout", a backtrace).
#[test]
fn output_nobody_reads_ends_the_command_without_a_panic() {
    let (_dir, cfg) = setup();
    for user in ["alice", "bob", "carol"] {
        let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "--uri-only", user]);
        assert!(ok, "{err}");
    }
    for args in [
        &["user", "list"][..],
        &["token", "list", "--json"][..],
        &["audit", "--limit", "300"][..],
    ] {
        // A pipe whose read end is closed before the command starts: its first write
        // fails with EPIPE, however fast it is. Close-on-exec, so that no child another
        // test spawns meanwhile inherits the read end and keeps the pipe open (the write
        // would then fill a buffer nobody reads instead of failing).
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        drop(read);
        let out = Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .stdout(std::process::Stdio::from(write))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(13),
            "{args:?}: {:?} {err}",
            out.status
        );
        assert!(err.is_empty(), "{args:?}: {err}");
        let out = Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("writing to standard output") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// One token whose seed no longer opens (a damaged row; here its ciphertext has a flipped
/// byte) must not stop the admin commands that would find and remove it: `token list`,
/// `token show`, `user show` and imports work and name it BROKEN, it cannot be handed out,
/// turned on or resynchronised, and `token delete` removes it.
#[test]
fn a_token_whose_seed_does_not_open_is_shown_and_can_be_deleted() {
    let (d, cfg) = setup();
    assert!(run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]).0);
    assert!(run(&cfg, &["user", "enroll-totp", "bob", "--uri-only"]).0);
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    let serial: String = db
        .query_row("SELECT serial FROM tokens WHERE user = 'alice'", [], |r| {
            r.get(0)
        })
        .unwrap();
    drop(db);
    break_seed(d.path(), &serial);

    let (ok, out, err) = run(&cfg, &["token", "list"]);
    assert!(ok, "{err}");
    let line = out.lines().find(|l| l.starts_with(&serial)).expect(&out);
    assert!(line.contains("BROKEN") && line.contains("alice"), "{out}");
    assert!(out.contains("bob") && out.contains("2 token(s)"), "{out}");
    assert!(err.contains("1 token(s) BROKEN"), "{err}");
    // A check of the deployment says so too (it passed over it).
    let (_, out, _) = run(&cfg, &["config", "check", "--connect"]);
    assert!(
        out.contains(&format!(
            "WARN store: 1 token(s) BROKEN, their seed does not open ({serial})"
        )),
        "{out}"
    );
    // Nor is a bypass granted that the token would refuse anyway.
    let (ok, _, err) = run(&cfg, &["user", "bypass", "alice", "--force"]);
    assert!(
        !ok && err.contains(&format!(
            "alice: holds token {serial}, whose seed does not open"
        )) && err.contains("nothing granted"),
        "{err}"
    );

    let (ok, out, err) = run(&cfg, &["token", "show", &serial, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["seed_unreadable"]
            .as_str()
            .is_some_and(|s| s.contains(&serial)),
        "{v}"
    );
    let (ok, out, err) = run(&cfg, &["user", "show", "alice"]);
    assert!(ok && out.contains("BROKEN"), "{out}{err}");
    let (ok, out, err) = run(&cfg, &["user", "show", "bob"]);
    assert!(
        ok && !out.contains("BROKEN") && out.contains("enabled"),
        "{out}{err}"
    );

    // An import of other tokens reads every stored one first.
    let csv = d.path().join("more.csv");
    std::fs::write(
        &csv,
        "serial,secret,interval\nMORE-1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,30\n",
    )
    .unwrap();
    let (ok, out, err) = run(&cfg, &["token", "import", csv.to_str().unwrap()]);
    assert!(ok, "{out}{err}");

    let refused = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("does not open"), "{args:?}: {err}");
    };
    refused(&["token", "resync", &serial, "123456", "234567"]);
    // An app's token is repaired by enrolling again; not with --force beside it, though:
    // the user's logins fail on the broken one whatever else they hold.
    let out = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["user", "enroll-totp", "alice", "--force", "--uri-only"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&serial) && err.contains("BROKEN") && err.contains("enroll its user again"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing enrolled");
    assert!(run(&cfg, &["token", "disable", &serial]).0);
    refused(&["token", "enable", &serial]);

    let (ok, _, err) = run(&cfg, &["token", "delete", &serial, "--force"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&cfg, &["token", "list"]);
    assert!(
        ok && !out.contains("BROKEN") && !err.contains("BROKEN"),
        "{out}{err}"
    );
    assert!(!out.contains(&serial), "{out}");
}

/// Flips the last byte of `serial`'s sealed seed in the store under `dir`.
fn break_seed(dir: &Path, serial: &str) {
    let db = rusqlite::Connection::open(dir.join("radmfa.db")).unwrap();
    let mut sealed: Vec<u8> = db
        .query_row(
            "SELECT secret FROM tokens WHERE serial = ?1",
            [serial],
            |r| r.get(0),
        )
        .unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    db.execute(
        "UPDATE tokens SET secret = ?1 WHERE serial = ?2",
        rusqlite::params![sealed, serial],
    )
    .unwrap();
}

/// The vendor's file of carol's HOTP token HW-1 (counter 0), imported; its path.
fn carols_hardware_token(dir: &Path, cfg: &Path) -> std::path::PathBuf {
    let csv = dir.join("vendor.csv");
    std::fs::write(
        &csv,
        "serial,secret,type,counter,user\nHW-1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,hotp,0,carol\n",
    )
    .unwrap();
    let (ok, out, err) = run(cfg, &["token", "import", csv.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    csv
}

/// A serial changed by hand in SQL makes its token BROKEN (the serial is sealed with the
/// seed). Importing the vendor's file again brings the old serial back beside it, which
/// does not repair it: the import says the owner still holds a BROKEN token that refuses
/// every login of theirs, and how to be rid of it.
#[test]
fn an_import_beside_a_broken_token_of_its_owner_warns() {
    let (d, cfg) = setup();
    let csv = carols_hardware_token(d.path(), &cfg);
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    db.execute(
        "UPDATE tokens SET serial = 'HW-1X' WHERE serial = 'HW-1'",
        [],
    )
    .unwrap();
    drop(db);
    let (_, out, _) = run(&cfg, &["token", "list"]);
    let line = out.lines().find(|l| l.starts_with("HW-1X")).expect(&out);
    assert!(line.contains("BROKEN"), "{out}");
    let import = || {
        run(
            &cfg,
            &["token", "import", "--replace", csv.to_str().unwrap()],
        )
    };
    let (ok, out, err) = import();
    assert!(ok, "{out}{err}");
    assert!(
        err.contains(
            "warning: carol also holds BROKEN token HW-1X, which refuses every login of \
             theirs, this import's token too, until `radmfa token delete HW-1X --force`"
        ),
        "{err}"
    );
    assert!(run(&cfg, &["token", "delete", "HW-1X", "--force"]).0);
    let (ok, out, err) = import();
    assert!(ok && !err.contains("BROKEN"), "{out}{err}");
}

/// A BROKEN hardware token imported again from the vendor's file with --replace: the seed
/// is the file's again, and the HOTP counter stays where logins had moved it (the file's 0
/// would make used codes valid again); the import says so.
#[test]
fn a_broken_token_reimported_keeps_its_counter() {
    let (d, cfg) = setup();
    let csv = carols_hardware_token(d.path(), &cfg);
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    db.execute("UPDATE tokens SET counter = 40 WHERE serial = 'HW-1'", [])
        .unwrap();
    drop(db);
    break_seed(d.path(), "HW-1");
    // What the commands say to do is the re-import, not delete and import (which would
    // start the counter at the file's 0).
    for args in [
        &["token", "resync", "HW-1", "123456", "234567"][..],
        &["token", "list"],
    ] {
        let (_, _, err) = run(&cfg, args);
        assert!(
            err.contains("token import --replace") && !err.contains("token delete"),
            "{args:?}: {err}"
        );
    }
    let (ok, out, err) = run(
        &cfg,
        &["token", "import", "--replace", csv.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("note: HW-1: was BROKEN"), "{out}");
    let (ok, out, err) = run(&cfg, &["token", "show", "HW-1", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&v["counter"], &v["seed_unreadable"], &v["user"]),
        (
            &serde_json::json!(40),
            &serde_json::Value::Null,
            &serde_json::json!("carol")
        ),
        "{v}"
    );
}

/// A running `audit --follow` holds the database as other commands do: the copy refuses to
/// start, as docs/ha.md says. Reading the audit log without the store proper, it had
/// dropped the lock, and a copy went ahead with the follower left on a file nothing writes.
#[test]
fn a_running_audit_follow_keeps_a_migration_out() {
    let (_d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let db = cfg.with_file_name("radmfa.db");
    // Killed when dropped, a failed assertion included.
    let follow = common::radmfa::Follower::start(&cfg, &[]);
    // Probing takes the lock for an instant, which a --follow starting just then would
    // find taken: it is given time to start first.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        match radmfa::store::serving_lock::migrating(&db) {
            Err(e) => break e,
            Ok(lock) => drop(lock),
        }
        assert!(
            std::time::Instant::now() < until,
            "--follow never took the lock: {}",
            follow.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(follow.stop().success());
    assert_eq!(refused.kind(), std::io::ErrorKind::WouldBlock, "{refused}");
    assert!(refused.to_string().contains("audit"), "{refused}");
    radmfa::store::serving_lock::migrating(&db).expect("free once --follow ended");
}

/// An admin command during `store migrate-to-postgres` (an offboarding script's `user
/// delete`, a lost token disabled) is refused, saying why: its change would miss the copy's
/// snapshot and be undone at the cutover. Once the copy is over, it runs. And the other
/// way round: a copy does not start while a command uses the database.
#[test]
fn admin_commands_are_refused_while_a_migration_copies_the_database() {
    let (_d, cfg) = setup();
    let (ok, _, err) = run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(ok, "{err}");
    let db = cfg.with_file_name("radmfa.db");
    let copying = radmfa::store::serving_lock::migrating(&db).expect("no one uses it");
    let status = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["user", "delete", "alice"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(1), "a refusal: {err}");
    assert!(
        err.contains("migrate-to-postgres` is copying this database"),
        "{err}"
    );
    drop(copying);
    let (ok, out, _) = run(&cfg, &["user", "show", "alice"]);
    assert!(
        ok && out.contains("alice"),
        "the refused delete changed nothing: {out}"
    );
    let (ok, _, err) = run(&cfg, &["user", "delete", "alice"]);
    assert!(ok, "{err}");
    // A command holding the database: the copy refuses to start.
    let using = radmfa::store::serving_lock::command(&db).unwrap();
    let refused = radmfa::store::serving_lock::migrating(&db)
        .err()
        .expect("refused while a command runs");
    assert!(refused.to_string().contains("admin command"), "{refused}");
    drop(using);
}

/// `user forget --all` (an incident): every user's remembered logins go, in one `forget`
/// record under no user that gives the counts. A name and --all, or neither, is refused.
#[test]
fn forget_all_forgets_every_users_remembered_logins() {
    let (d, cfg) = setup();
    assert!(run(&cfg, &["user", "enroll-totp", "alice", "--uri-only"]).0);
    let db = rusqlite::Connection::open(d.path().join("radmfa.db")).unwrap();
    for (user, nas, station) in [
        ("alice", "vpn", "203.0.113.5"),
        ("alice", "vpn", "203.0.113.6"),
        ("bob", "wifi", "198.51.100.7"),
    ] {
        db.execute(
            "INSERT INTO remembered_logins (user, nas, station, mode, verified_at, expires_at) \
             VALUES (?1, ?2, ?3, 'totp', 1, 4000000000)",
            rusqlite::params![user, nas, station],
        )
        .unwrap();
    }
    let (ok, out, err) = run(&cfg, &["user", "forget", "--all"]);
    assert!(
        ok && out.contains("3 remembered login(s) of 2 user(s) forgotten"),
        "{out}{err}"
    );
    let left: i64 = db
        .query_row("SELECT COUNT(*) FROM remembered_logins", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    let (ok, audit, err) = run(&cfg, &["audit", "--result", "forget", "--json"]);
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(ok && records.len() == 1, "{audit}{err}");
    assert_eq!(records[0]["user"], "", "{audit}");
    assert_eq!(
        records[0]["reason"], "every user's: 3 remembered login(s) of 2 user(s) forgotten",
        "{audit}"
    );
    for args in [
        &["user", "forget"][..],
        &["user", "forget", "alice", "--all"],
    ] {
        let (ok, _, err) = run(&cfg, args);
        assert!(!ok && err.contains("error:"), "{args:?}: {err}");
    }
}

/// Every `user` command checks the name the same way before doing anything: `unlock` took
/// a name with an ESC in it (printed raw to the terminal, and audited) and a 3,000-character
/// one; `enroll-totp --not-in-directory` took a right-to-left override and turned a newline
/// into a space. Names no login could send are refused, say why, and leave no audit row.
#[test]
fn every_user_command_refuses_names_no_login_could_send() {
    let (_d, cfg) = setup();
    let long = "u".repeat(3000);
    for args in [
        vec!["user", "unlock", "evil\u{1b}[31mX"],
        vec!["user", "show", "x\u{1b}[31m"],
        vec!["user", "forget", "evil\u{1b}]0;owned\u{7}"],
        vec!["user", "unlock", &long],
        vec!["user", "enroll-totp", "bob\nfake", "--not-in-directory"],
    ] {
        let (ok, out, err) = run(&cfg, &args);
        assert!(!ok, "{args:?}: {out}{err}");
        assert!(
            err.contains("user name") && err.contains("control characters"),
            "{args:?}: {err}"
        );
        assert!(!out.contains('\u{1b}') && !err.contains('\u{1b}'), "{err}");
    }
    for name in ["\u{202e}evil", "alice\u{34F}", "\u{feff}alice"] {
        let (ok, _, err) = run(&cfg, &["user", "enroll-totp", name, "--not-in-directory"]);
        assert!(!ok, "{name:?}: {err}");
        assert!(err.contains("invisible formatting characters"), "{err}");
        // Escaped once, as a control character is: `"\u{202e}evil"`, not `"\\u{202e}evil"`.
        assert!(!err.contains(r"\\u{"), "escaped twice: {err}");
        // A script's first line from a file saved with a byte order mark: said so.
        assert_eq!(
            err.contains("byte order mark"),
            name.starts_with('\u{feff}'),
            "{err}"
        );
    }
    let (_, out, _) = run(&cfg, &["audit", "--json", "--limit", "10"]);
    assert!(!out.contains("unlock") && !out.contains("enroll"), "{out}");
    // A joiner Persian names are spelt with is a name logins take: so does enroll.
    let (ok, out, err) = run(
        &cfg,
        &["user", "enroll-totp", "mi\u{200C}na", "--not-in-directory"],
    );
    assert!(ok, "{out}{err}");
}

/// `set-phone` refusing a number too short counts what it made of what was typed, and says
/// where the default country code was added: `"0"` with 49 said "has 2 digits".
#[test]
fn set_phone_says_the_default_country_code_was_added_to_a_short_number() {
    let (_d, cfg) = setup();
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(!text.contains("[phone]"), "{text}");
    std::fs::write(
        &cfg,
        format!("{text}\n[phone]\ndefault_country_code = \"49\"\n"),
    )
    .unwrap();
    let (ok, _, err) = run(&cfg, &["user", "set-phone", "alice", "0"]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("\"0\" gives 2 digits with the default country code 49 added"),
        "{err}"
    );
    // Written in full, the digits are the ones typed.
    let (ok, _, err) = run(&cfg, &["user", "set-phone", "alice", "+49 171"]);
    assert!(!ok, "{err}");
    assert!(err.contains("\"+49 171\" has 5 digits"), "{err}");
}

/// A command a message suggests works pasted into a shell as printed, for a name with a
/// space or a quote in it: `radmfa user reset jean paul` named two users (clap refused
/// 'paul'), and o'brien opened a quote.
#[test]
fn a_suggested_command_is_quoted_for_the_shell() {
    let (_d, cfg) = setup();
    for name in ["jean paul", "o'brien"] {
        assert!(run(&cfg, &["user", "enroll-totp", name, "--uri-only"]).0);
        let (ok, _, err) = run(&cfg, &["user", "enroll-totp", name, "--uri-only"]);
        assert!(!ok, "{err}");
        let command = err
            .split('`')
            .nth(1)
            .filter(|c| c.starts_with("radmfa user reset "))
            .unwrap_or_else(|| panic!("no suggested reset in {err}"));
        // Pasted into a shell, with this test's binary and config for `radmfa`.
        let pasted = command.replacen(
            "radmfa",
            &format!("{} --config {}", bin().display(), cfg.display()),
            1,
        );
        let out = Command::new("sh").args(["-c", &pasted]).output().unwrap();
        assert!(
            out.status.success(),
            "{pasted}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // It reset that user: a new enrollment goes through without --force.
        assert!(
            run(&cfg, &["user", "enroll-totp", name, "--uri-only"]).0,
            "{name}"
        );
    }
}
