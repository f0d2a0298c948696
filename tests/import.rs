//! `radmfa token import` and the token inventory commands as an admin runs them, against a
//! real store file (no server needed): CSV at scale, bad rows named by line, encrypted PSKC
//! files written by python-pskc refused with the wrong key, hostile XML refused quickly.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::peers::{make_pskc, totp};
use common::radmfa::{bin, write_config, Options};

struct Admin {
    dir: tempfile::TempDir,
    cfg: PathBuf,
}

impl Admin {
    fn new() -> Admin {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(dir.path(), &Options::new("ldap://127.0.0.1:1"));
        Admin { dir, cfg }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs the CLI with stdin closed (never a terminal, so never a prompt).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        self.run_with_env(args, &[])
    }

    /// [`Admin::run`] with these variables in its environment.
    fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let out: Output = Command::new(bin())
            .arg("--config")
            .arg(&self.cfg)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn import(&self, file: &Path, extra: &[&str]) -> (bool, String, String) {
        let mut args = vec!["token", "import", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn tokens(&self) -> Vec<serde_json::Value> {
        let (ok, out, err) = self.run(&["token", "list", "--json"]);
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

fn b32(seed: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(seed)
}

/// A serial from a file holding a right-to-left override (which reorders the rest of its
/// line on a terminal, and went raw into the log at a resync) is refused, naming its line,
/// and nothing is imported; as is an owner holding an invisible character, whose logins
/// would all be refused. (Such serials stored before are still shown escaped: unit tests
/// of `admin::printable`.)
#[test]
fn serials_and_owners_with_invisible_characters_are_refused() {
    let a = Admin::new();
    let seed = b32(&[7u8; 20]);
    for (name, line) in [
        (
            "rlo.csv",
            format!("SN-0,{seed},30,bob\nSN\u{202e}1,{seed},30,alice\n"),
        ),
        (
            "cgj.csv",
            format!("SN-0,{seed},30,bob\nSN-1,{seed},30,ali\u{34f}ce\n"),
        ),
    ] {
        let file = a.write(name, &line);
        let (ok, out, err) = a.import(&file, &[]);
        assert!(!ok, "{name}: {out}{err}");
        assert!(
            err.contains("line 2") && err.contains("control or invisible characters"),
            "{name}: {err}"
        );
        assert!(
            !err.contains('\u{202e}') && !err.contains('\u{34f}'),
            "{err}"
        );
        assert!(a.tokens().is_empty(), "{name}: imported");
    }
}

#[test]
fn csv_of_10000_tokens_imports_in_seconds() {
    let a = Admin::new();
    let mut csv = String::from("serial,secret,interval,user\n");
    let mut seeds = Vec::new();
    for i in 0..10_000 {
        let seed: [u8; 20] = rand::random();
        let user = if i % 2 == 0 {
            format!("user{i}")
        } else {
            String::new()
        };
        csv.push_str(&format!("SN-{i:05},{},30,{user}\n", b32(&seed)));
        seeds.push(seed);
    }
    let file = a.write("10k.csv", &csv);
    let t = Instant::now();
    let (ok, out, err) = a.import(&file, &[]);
    let took = t.elapsed();
    assert!(ok, "{err}");
    println!(
        "imported 10,000 CSV tokens in {took:?} (radmfa says: {})",
        out.trim()
    );
    assert!(
        out.contains("imported 10000 token(s) (5000 assigned, 5000 in stock"),
        "{out}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let (ok, out, _) = a.run(&["audit", "--json", "--limit", "20000"]);
    assert!(ok);
    let assigns = out
        .lines()
        .filter(|l| l.contains("\"result\":\"assign\""))
        .count();
    assert_eq!(assigns, 5000, "one audit row per token given to a user");
    let tokens = a.tokens();
    assert_eq!(tokens.len(), 10_000);
    assert_eq!(tokens[0]["serial"], "SN-00000");
    assert_eq!(tokens[0]["user"], "user0");
    assert_eq!(tokens[1]["user"], serde_json::Value::Null);
    // The seeds arrived intact: two consecutive oathtool codes resynchronise the token.
    let now = common::peers::now();
    let seed = b32(&seeds[7777]);
    let (c1, c2) = (totp(&seed, now, &[]), totp(&seed, now + 30, &[]));
    let (ok, out, err) = a.run(&["token", "resync", "SN-07777", &c1, &c2]);
    assert!(ok, "{out}{err}");
    // And importing the same file again is refused whole: every serial exists.
    let (ok, _, err) = a.import(&file, &[]);
    assert!(!ok);
    // With no valid token left, --skip-invalid is not offered: it would import nothing.
    assert!(
        err.contains(
            "10000 problem(s); nothing was imported (fix them; no token in the file is valid)"
        ),
        "{}",
        &err[err.len().saturating_sub(300)..]
    );
}

#[test]
fn bad_base32_key_is_refused_naming_its_line() {
    let a = Admin::new();
    let mut csv = String::new();
    for i in 1..=100 {
        let key = if i == 57 {
            "GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ".to_string()
        } else {
            b32(&rand::random::<[u8; 20]>())
        };
        csv.push_str(&format!("HW{i},{key},30\n"));
    }
    let file = a.write("bad.csv", &csv);
    let (ok, _, err) = a.import(&file, &[]);
    assert!(!ok);
    assert!(err.contains("line 57: secret is not valid Base32"), "{err}");
    assert!(
        err.contains("nothing was imported (fix them, or use --skip-invalid to import the 99 valid token(s))"),
        "{err}"
    );
    assert!(a.tokens().is_empty(), "all or nothing");
    // --dry-run with --skip-invalid: says what would happen, stores nothing.
    let (ok, out, _) = a.import(&file, &["--skip-invalid", "--dry-run"]);
    assert!(ok);
    assert!(
        out.contains("would import 99 token(s)") && out.contains("1 invalid skipped"),
        "{out}"
    );
    assert!(a.tokens().is_empty());
    // --skip-invalid: the 99 good ones.
    let (ok, out, err) = a.import(&file, &["--skip-invalid"]);
    assert!(ok, "{err}");
    assert!(out.contains("imported 99 token(s)"), "{out}");
    assert!(
        err.contains("line 57"),
        "the skipped row is still reported: {err}"
    );
    assert_eq!(a.tokens().len(), 99);
}

#[test]
fn duplicates_replace_and_mapping_file() {
    let a = Admin::new();
    let seed = b32(b"12345678901234567890");
    let f = a.write(
        "t.csv",
        // A seed per serial: one seed under two serials is refused (tests below).
        &format!(
            "serial,secret,interval\nA1,{seed},30\nA2,{},60\n",
            b32(b"12345678901234567891")
        ),
    );
    let map = a.write("map.csv", "# serial,user\nA1,Alice\n");
    let (ok, out, err) = a.import(&f, &["--map", map.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("2 token(s) (1 assigned, 1 in stock"), "{out}");
    assert_eq!(a.tokens()[0]["user"], "alice");
    // The assignment is audited under its owner, naming the token.
    let (ok, out, _) = a.run(&["audit", "--user", "alice", "--json"]);
    assert!(ok);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r["result"] == "assign" && r["token_serial"] == "A1"),
        "{out}"
    );
    // The same serials again: refused, naming line and serial.
    let (ok, _, err) = a.import(&f, &[]);
    assert!(!ok);
    assert!(
        err.contains("line 2: serial A1 is already in the inventory"),
        "{err}"
    );
    // --replace overwrites and keeps the owner: the summary and the import's audit record
    // count A1 as alice's still, though the file names no owner for it.
    let (ok, out, err) = a.import(&f, &["--replace"]);
    assert!(ok, "{err}");
    let summary = "2 token(s) (1 assigned, 1 in stock, 2 replacing)";
    assert!(out.contains(summary), "{out}");
    assert_eq!(a.tokens()[0]["user"], "alice");
    let (ok, out, _) = a.run(&["audit", "--json", "--limit", "20"]);
    assert!(ok);
    let imports: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["result"] == "import")
        .collect();
    assert!(
        imports
            .iter()
            .any(|r| r["reason"].as_str().unwrap_or("").contains(summary)),
        "{out}"
    );
    // Given to someone else by the file: audited per token under the new owner, naming
    // the previous one.
    // Only with --force: as with `token assign`, a token someone holds is not moved by a
    // mistyped line.
    let to_bob = a.write("bob.csv", "A1,bob\n");
    let (ok, _, err) = a.import(&f, &["--replace", "--map", to_bob.to_str().unwrap()]);
    assert!(
        !ok && err.contains("serial A1 is held by alice; the file gives it to bob"),
        "{err}"
    );
    assert_eq!(a.tokens()[0]["user"], "alice", "nothing imported");
    let (ok, _, err) = a.import(
        &f,
        &["--replace", "--force", "--map", to_bob.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert_eq!(a.tokens()[0]["user"], "bob");
    let (ok, out, _) = a.run(&["audit", "--json", "--limit", "20"]);
    assert!(ok);
    assert!(
        out.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .any(|r| r["result"] == "replace"
                && r["user"] == "bob"
                && r["token_serial"] == "A1"
                && r["reason"].as_str().unwrap_or("").contains("(was alice's)")),
        "{out}"
    );
    // And alice's own history says she lost it.
    let (ok, out, _) = a.run(&["audit", "--json", "--user", "alice"]);
    assert!(ok);
    assert!(
        out.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .any(|r| r["result"] == "unassign"
                && r["token_serial"] == "A1"
                && r["reason"].as_str().unwrap_or("").contains("given to bob")),
        "{out}"
    );
    // A list pasted twice: rows the same in every field are one token, imported once;
    // their notes are capped as problems are.
    let list: String = (0..60)
        .map(|i| {
            format!(
                "P{i:02},{},30\n",
                b32(format!("pasted-seed-{i:08}").as_bytes())
            )
        })
        .collect();
    let pasted = a.write("pasted.csv", &list.repeat(2));
    let (ok, out, err) = a.import(&pasted, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("imported 60 token(s)"), "{out}");
    assert!(
        err.contains("note: line 61: serial P00 is the same as at line 1 in every field"),
        "{err}"
    );
    assert!(err.contains("note: … and 10 more"), "{err}");
    // A serial twice in one file, with two time steps.
    let b1 = b32(b"seed-of-B1-in-a-file");
    let twice = a.write("twice.csv", &format!("B1,{b1},30\nB1,{b1},60\n"));
    let (ok, _, err) = a.import(&twice, &[]);
    assert!(
        !ok && err.contains("line 2: serial B1 appears again (first at line 1)"),
        "{err}"
    );
    // Not even with --skip-invalid: which of the two seeds is right is not known.
    let (ok, _, err) = a.import(&twice, &["--skip-invalid"]);
    assert!(
        !ok && err.contains("no valid token to import (0 token(s)"),
        "a run that stored nothing does not succeed: {err}"
    );
    assert!(
        err.contains("line 1: serial B1 appears again at line 2"),
        "{err}"
    );
    assert!(!a.tokens().iter().any(|t| t["serial"] == "B1"));
    // The same when one of the two rows is not valid: the valid one may not be the token
    // meant, so it is not imported with --skip-invalid either; other serials are.
    let one_bad = a.write(
        "one-bad.csv",
        &format!(
            "C1,not*base32,30\nC1,{},30\nC2,{},30\n",
            b32(b"seed-of-C1-in-a-file"),
            b32(b"seed-of-C2-in-a-file")
        ),
    );
    let (ok, out, err) = a.import(&one_bad, &["--skip-invalid"]);
    assert!(ok, "{err}");
    assert!(out.contains("1 token(s)"), "{out}");
    assert!(
        err.contains("line 2: serial C1 appears again at line 1"),
        "{err}"
    );
    assert!(!a.tokens().iter().any(|t| t["serial"] == "C1"));
    assert!(a.tokens().iter().any(|t| t["serial"] == "C2"));
    // A map file saved by a spreadsheet starts with a byte order mark.
    let bom_map = a.write("bom-map.csv", "\u{feff}A2,carol\n");
    let (ok, _, err) = a.import(
        &f,
        &["--replace", "--force", "--map", bom_map.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(
        a.tokens()
            .iter()
            .any(|t| t["serial"] == "A2" && t["user"] == "carol"),
        "{:?}",
        a.tokens()
    );
    // A map line naming a serial the file lacks.
    let bad_map = a.write("bad-map.csv", "ZZ,bob\n");
    let (ok, _, err) = a.import(&f, &["--replace", "--map", bad_map.to_str().unwrap()]);
    assert!(
        !ok && err.contains("map line 1: serial ZZ is not in the import file"),
        "{err}"
    );
    // Skipped, the stale map line is no invalid token: the file's tokens were all valid.
    let (ok, out, err) = a.import(
        &f,
        &[
            "--replace",
            "--skip-invalid",
            "--map",
            bad_map.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("0 invalid skipped")
            && out.contains("1 map line(s) naming no serial in the file"),
        "{out}"
    );
}

/// A replacing import's per-token records (`replace`, and `unassign` under a previous
/// owner) go in the import's own transaction: a store that refuses them refuses the import,
/// and the tokens keep their seeds. Written one commit each after the tokens were, a kill
/// midway left 20,000 tokens replaced with 1,524 records, and 50,000 took minutes.
#[test]
fn replaced_tokens_and_their_records_are_stored_together() {
    let a = Admin::new();
    let file = |name: &str, seed: &str| {
        let rows: String = (0..40)
            .map(|i| {
                let key = b32(format!("{seed}-seed-{i:08}").as_bytes());
                format!("R{i:02},{key},30,user{i}\n")
            })
            .collect();
        a.write(name, &rows)
    };
    let (ok, _, err) = a.import(&file("first.csv", "first"), &[]);
    assert!(ok, "{err}");
    let second = file("second.csv", "second");
    let db = rusqlite::Connection::open(a.path("radmfa.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_replace_records BEFORE INSERT ON audit \
         WHEN NEW.result = 'replace' BEGIN SELECT RAISE(ABORT, 'refused by a test'); END;",
    )
    .unwrap();
    let (ok, out, err) = a.import(&second, &["--replace"]);
    assert!(!ok, "{out}");
    assert!(err.contains("nothing was imported"), "{err}");
    // The first file's seed is still R07's: its codes resynchronise it.
    let now = common::peers::now();
    let seed = b32(b"first-seed-00000007");
    let (c1, c2) = (totp(&seed, now, &[]), totp(&seed, now + 30, &[]));
    let (ok, out, err) = a.run(&["token", "resync", "R07", &c1, &c2]);
    assert!(ok, "{out}{err}");
    db.execute_batch("DROP TRIGGER refuse_replace_records")
        .unwrap();
    let (ok, out, err) = a.import(&second, &["--replace"]);
    assert!(ok, "{err}");
    assert!(out.contains("40 replacing"), "{out}");
    let (ok, out, _) = a.run(&["audit", "--json", "--result", "replace", "--limit", "100"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 40, "{out}");
}

/// One seed under two serials (a file imported twice under other serials, a demo file's
/// RFC key): whoever holds one token could log in as the other's owner. Refused wherever
/// the other serial is, naming it, and nothing imported; with --skip-invalid the others go
/// in. The seed is in no message.
#[test]
fn one_seed_under_two_serials_is_refused() {
    let a = Admin::new();
    let shared = b32(b"one-seed-two-serials");
    let f = a.write(
        "shared.csv",
        &format!(
            "S1,{shared},30\nS2,{shared},30\nS3,{},30\n",
            b32(b"a seed of its own...")
        ),
    );
    let (ok, _, err) = a.import(&f, &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("line 1: serial S1 has the same seed as serial S2 at line 2")
            && err.contains("line 2: serial S2 has the same seed as serial S1 at line 1"),
        "{err}"
    );
    assert!(!err.contains(&shared), "{err}");
    assert!(a.tokens().is_empty());
    let (ok, out, err) = a.import(&f, &["--skip-invalid"]);
    assert!(ok && out.contains("1 token(s)"), "{out}{err}");
    // A later file giving a stored token's seed to a new serial.
    let again = a.write(
        "again.csv",
        &format!("S9,{},30\n", b32(b"a seed of its own...")),
    );
    let (ok, _, err) = a.import(&again, &[]);
    assert!(
        !ok && err.contains("line 1: serial S9 has the same seed as serial S3 in the store"),
        "{err}"
    );
    // Re-importing S3 itself with --replace is not a second holder.
    let (ok, _, err) = a.import(&f, &["--replace", "--skip-invalid"]);
    assert!(ok, "{err}");
    // Nor does --replace move S3's seed to another serial (a "corrected" file with the
    // serials swapped): S3's used codes and disabled flag stay with S3, and under the new
    // serial they worked again. Nothing of that file goes in.
    assert!(a.run(&["token", "disable", "S3"]).0);
    let swapped = a.write(
        "swapped.csv",
        &format!(
            "S3,{},30\nS10,{},30\n",
            b32(b"S3's corrected seed.."),
            b32(b"a seed of its own...")
        ),
    );
    let (ok, _, err) = a.import(&swapped, &["--replace"]);
    assert!(
        !ok && err.contains(
            "line 2: serial S10 has the same seed as serial S3 in the store, which this file \
             replaces"
        ),
        "{err}"
    );
    assert!(
        !a.tokens().iter().any(|t| t["serial"] == "S10"),
        "{:?}",
        a.tokens()
    );
}

#[test]
fn held_tokens_move_only_with_force_and_app_seeds_never() {
    let a = Admin::new();
    let seed = hex::encode(b"12345678901234567890");
    let f = a.write("o.csv", &format!("T-1,{seed},totp,6,30,carol\n"));
    assert!(a.import(&f, &[]).0);
    // A hardware token someone holds: a typo must not take it from them.
    let (ok, _, err) = a.run(&["token", "assign", "T-1", "dave"]);
    assert!(
        !ok && err.contains("held by carol") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(a.tokens()[0]["user"], "carol");
    let (ok, out, err) = a.run(&["token", "assign", "T-1", "dave", "--force"]);
    assert!(ok, "{err}");
    assert!(out.contains("assigned to dave"), "{out}");
    assert_eq!(a.tokens()[0]["user"], "dave");
    // carol's own history (audit --user) says it was taken from her.
    let (ok, out, _) = a.run(&["audit", "--json", "--user", "carol"]);
    assert!(
        ok && out.contains("\"result\":\"unassign\"")
            && out.contains("taken by token assign --force"),
        "{out}"
    );

    // A disabled token in stock is not given out by an import's owner column without
    // --force, as `token assign` refuses it: it stays disabled, so its new holder's every
    // login would be refused with nothing said.
    let lost = hex::encode(b"a disabled stock seed");
    assert!(
        a.import(
            &a.write("lost.csv", &format!("LOST-1,{lost},totp,6,30\n")),
            &[]
        )
        .0
    );
    assert!(a.run(&["token", "disable", "LOST-1"]).0);
    let give = a.write("give.csv", &format!("LOST-1,{lost},totp,6,30,alice\n"));
    let (ok, _, err) = a.import(&give, &["--replace"]);
    assert!(
        !ok && err.contains("serial LOST-1 is disabled") && err.contains("--force"),
        "{err}"
    );
    let lost_now = a.tokens().into_iter().find(|t| t["serial"] == "LOST-1");
    assert!(lost_now.expect("LOST-1")["user"].is_null());
    let (ok, _, err) = a.import(&give, &["--replace", "--force"]);
    assert!(ok, "{err}");

    // An app seed lives on its user's phone: never handed on, never back to stock.
    let (ok, _, err) = a.run(&["user", "enroll-totp", "erin", "--uri-only"]);
    assert!(ok, "{err}");
    let app = a
        .tokens()
        .into_iter()
        .find(|t| t["user"] == "erin")
        .expect("erin's token")["serial"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        vec!["token", "assign", app.as_str(), "mallory", "--force"],
        vec!["token", "unassign", app.as_str()],
    ] {
        let (ok, _, err) = a.run(&args);
        assert!(
            !ok && err.contains("authenticator-app seed enrolled for erin"),
            "{args:?}: {err}"
        );
    }
    let erin = a.tokens().into_iter().find(|t| t["serial"] == app.as_str());
    assert_eq!(erin.expect("still there")["user"], "erin");
    // Nor replaced by an import, whoever the file names.
    let over = a.write("over.csv", &format!("{app},{seed},totp,6,30,mallory\n"));
    let (ok, _, err) = a.import(&over, &["--replace", "--force"]);
    assert!(
        !ok && err.contains(&format!(
            "serial {app} is an authenticator-app seed enrolled for erin"
        )),
        "{err}"
    );
    // With a good row beside it and --skip-invalid: the good one is imported, the refused
    // one is not counted as replacing anything.
    let mixed = a.write(
        "mixed.csv",
        &format!(
            "{app},{},totp,6,30,mallory\nNEW-1,{},totp,6,30\n",
            hex::encode(b"a seed for the app's"),
            hex::encode(b"a seed for NEW-1 now")
        ),
    );
    let (ok, out, err) = a.import(&mixed, &["--replace", "--skip-invalid"]);
    assert!(
        ok && out.contains("0 replacing") && out.contains("1 invalid skipped"),
        "{out}{err}"
    );
    // Giving it back to its own user is not refused as a move: it changes nothing, and says
    // so (exit 1, nothing audited).
    let (ok, _, err) = a.run(&["token", "assign", app.as_str(), "erin"]);
    assert!(
        !ok && err.contains("already held by erin; nothing done"),
        "{err}"
    );
    // Deleting a token someone holds takes --force: a mistyped serial must not silently
    // take a colleague's.
    let (ok, _, err) = a.run(&["token", "delete", app.as_str()]);
    assert!(
        !ok && err.contains("held by erin") && err.contains("--force"),
        "{err}"
    );
    assert!(a.run(&["token", "delete", app.as_str(), "--force"]).0);
}

/// `token assign` of a disabled or expired token is refused, naming its state, unless
/// --force: it was handed out silently ("EN0001: assigned to dave", exit 0), and its new
/// holder's next login told "Your second factor has expired".
#[test]
fn a_disabled_or_expired_token_is_assigned_only_with_force() {
    let a = Admin::new();
    let f = a.write(
        "en.csv",
        &format!("EN0001,{},hotp,6,0\n", hex::encode(b"12345678901234567890")),
    );
    assert!(a.import(&f, &[]).0);
    assert!(a.run(&["token", "disable", "EN0001"]).0);
    let (ok, out, err) = a.run(&["token", "assign", "EN0001", "dave"]);
    assert!(
        !ok && err.contains("EN0001: disabled")
            && err.contains("radmfa token enable EN0001")
            && err.contains("--force")
            && !out.contains("assigned"),
        "{out}{err}"
    );
    let owner = |serial: &str| {
        a.tokens()
            .into_iter()
            .find(|t| t["serial"] == serial)
            .unwrap()["user"]
            .clone()
    };
    assert_eq!(owner("EN0001"), serde_json::Value::Null);
    let (ok, out, err) = a.run(&["token", "assign", "EN0001", "dave", "--force"]);
    assert!(ok && out.contains("EN0001: assigned to dave"), "{out}{err}");

    // Expired: past its PSKC ExpiryDate (imported a moment before it).
    let pskc = a.path("ex.pskcxml");
    let expiry = common::peers::now() + 2;
    let tokens = serde_json::json!([
        {"serial": "EX0001", "secret_hex": hex::encode(b"09876543210987654321"),
         "type": "totp", "digits": 6, "period": 30, "expiry_date": expiry},
    ]);
    make_pskc(&pskc, &tokens, &[]);
    let (ok, _, err) = a.import(&pskc, &[]);
    assert!(ok, "{err}");
    while common::peers::now() <= expiry {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, _, err) = a.run(&["token", "assign", "EX0001", "dave"]);
    assert!(
        !ok && err.contains("EX0001: expired (valid until ") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(owner("EX0001"), serde_json::Value::Null);
    assert!(a.run(&["token", "assign", "EX0001", "dave", "--force"]).0);
    assert_eq!(owner("EX0001"), "dave");
}

#[test]
fn inventory_commands_and_their_audit() {
    let a = Admin::new();
    let seed = hex::encode(b"12345678901234567890");
    let f = a.write(
        "o.csv",
        &format!(
            "H-1,{seed},hotp,6,0\nT-1,{},totp,8,60,carol\n",
            hex::encode(b"09876543210987654321")
        ),
    );
    assert!(a.import(&f, &[]).0);
    let (ok, out, _) = a.run(&["token", "list"]);
    assert!(ok);
    assert!(
        out.contains("H-1") && out.contains("(stock)") && out.contains("carol"),
        "{out}"
    );
    let (ok, out, _) = a.run(&["token", "list", "--unassigned", "--json"]);
    assert!(ok && out.contains("H-1") && !out.contains("T-1"), "{out}");
    assert!(a.run(&["token", "assign", "H-1", "Bob"]).0);
    let (ok, out, _) = a.run(&["token", "show", "H-1", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["user"].as_str(),
            v["type"].as_str(),
            v["counter"].as_u64()
        ),
        (Some("bob"), Some("hotp"), Some(0))
    );
    assert!(
        !out.contains(&seed) && !out.contains(&b32(b"12345678901234567890")),
        "no secret shown"
    );
    let (ok, out, _) = a.run(&["token", "show", "T-1"]);
    assert!(ok && out.contains("period:") && out.contains("60"), "{out}");
    assert!(a.run(&["token", "disable", "H-1"]).0);
    assert_eq!(a.tokens()[0]["enabled"], false);
    assert!(a.run(&["token", "enable", "H-1"]).0);
    assert_eq!(a.tokens()[0]["enabled"], true);
    assert!(a.run(&["token", "unassign", "H-1"]).0);
    assert_eq!(a.tokens()[0]["user"], serde_json::Value::Null);
    // What would change nothing is said, exits 1 and is not audited (below: one record of
    // each). A stock token was "returned to stock" under user "" before.
    for (args, said) in [
        (["token", "unassign", "H-1"], "already in stock"),
        (["token", "enable", "H-1"], "already enabled"),
    ] {
        let (ok, _, err) = a.run(&args);
        assert!(!ok && err.contains(said), "{args:?}: {err}");
    }
    assert!(a.run(&["token", "disable", "H-1"]).0);
    let (ok, _, err) = a.run(&["token", "disable", "H-1"]);
    assert!(!ok && err.contains("already disabled"), "{err}");
    assert!(a.run(&["token", "delete", "H-1"]).0);
    let (ok, _, err) = a.run(&["token", "delete", "H-1"]);
    assert!(!ok && err.contains("no such token"));
    assert_eq!(a.tokens().len(), 1);
    // Users see their imported tokens too.
    let (ok, out, _) = a.run(&["user", "show", "carol"]);
    assert!(ok && out.contains("T-1"), "{out}");
    let (ok, out, _) = a.run(&["audit", "--json", "--limit", "50"]);
    assert!(ok);
    let results: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["token_serial"] == "H-1")
        .map(|r| {
            format!(
                "{}:{}",
                r["result"].as_str().unwrap(),
                r["user"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "assign:bob",
        "disable:bob",
        "enable:bob",
        "unassign:bob",
        "disable:",
        "delete-token:",
    ] {
        assert_eq!(
            results.iter().filter(|r| *r == want).count(),
            1,
            "{want} not once in {results:?}"
        );
    }
    assert_eq!(results.len(), 6, "{results:?}");
    assert!(out.contains("\"result\":\"import\""), "{out}");
}

#[test]
fn encrypted_pskc_with_wrong_key_or_passphrase_imports_nothing() {
    let a = Admin::new();
    let tokens = serde_json::json!([
        {"serial": "P-1", "secret_hex": "3132333435363738393031323334353637383930", "type": "totp", "digits": 6, "period": 30},
        {"serial": "P-2", "secret_hex": "3039383736353433323130393837363534333231", "type": "hotp", "digits": 6, "counter": 0},
    ]);
    let key = "000102030405060708090a0b0c0d0e0f";
    let cbc = a.path("cbc.pskcxml");
    make_pskc(&cbc, &tokens, &["--protection", "aes128-cbc", "--key", key]);
    let pb = a.path("pbkdf2.pskcxml");
    make_pskc(
        &pb,
        &tokens,
        &["--protection", "pbkdf2", "--passphrase", "correct horse"],
    );
    let good_key = a.write("good.key", &format!("{key}\n"));
    let bad_key = a.write("bad.key", "000102030405060708090a0b0c0d0e0e\n");
    let bad_pass = a.write("bad.pass", "wrong horse\n");

    let (ok, _, err) = a.import(&cbc, &["--key-file", bad_key.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("wrong key or passphrase"), "{err}");
    // Written with the usual umask, the key file is open to every account: said.
    assert!(
        err.contains("is readable by every account on this host"),
        "{err}"
    );
    let (_, _, err) = a.import(&cbc, &["--key", "000102030405060708090a0b0c0d0e0e"]);
    assert!(err.contains("visible to other accounts"), "{err}");
    let (ok, _, err) = a.import(&pb, &["--passphrase-file", bad_pass.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("wrong key or passphrase"), "{err}");
    // No key, and no terminal to ask on: says which flag to use.
    let (ok, _, err) = a.import(&cbc, &[]);
    assert!(!ok && err.contains("--key-file"), "{err}");
    let (ok, _, err) = a.import(&pb, &[]);
    assert!(!ok && err.contains("--passphrase-file"), "{err}");
    assert!(a.tokens().is_empty());
    // A key given for a file that turns out not encrypted: perhaps not the file expected.
    let plain = a.path("plain.pskcxml");
    make_pskc(&plain, &tokens, &[]);
    let (ok, _, err) = a.import(&plain, &["--key-file", good_key.to_str().unwrap()]);
    assert!(!ok && err.contains("has no encrypted values"), "{err}");
    assert!(a.tokens().is_empty());
    // The same for a CSV file in its place (detected as CSV: no leading '<'), by flag or
    // by the environment: the key was silently ignored and the seeds in it imported.
    let swapped = a.write(
        "tokens.pskcxml",
        "SN1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,30\n",
    );
    let (ok, _, err) = a.import(&swapped, &["--key-file", good_key.to_str().unwrap()]);
    assert!(!ok && err.contains("has no encrypted values"), "{err}");
    let (ok, _, err) = a.run_with_env(
        &["token", "import", swapped.to_str().unwrap()],
        &[("RADMFA_IMPORT_PASSPHRASE", "correct horse")],
    );
    assert!(!ok && err.contains("has no encrypted values"), "{err}");
    assert!(a.tokens().is_empty());

    // One altered value under the right key: that key's MAC fails, nothing is imported.
    let text = std::fs::read_to_string(&cbc).unwrap();
    let marker = "<pskc:ValueMAC>";
    let i = text.rfind(marker).unwrap() + marker.len();
    let mut altered = text.clone();
    let c = if &text[i..i + 1] == "A" { "B" } else { "A" };
    altered.replace_range(i..i + 1, c);
    let tampered = a.write("tampered.pskcxml", &altered);
    let (ok, _, err) = a.import(&tampered, &["--key-file", good_key.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("KeyPackage 2") && err.contains("ValueMAC does not match"),
        "{err}"
    );
    assert!(a.tokens().is_empty());

    // The right key and passphrase (the latter through the environment) work.
    let (ok, out, err) = a.import(&cbc, &["--key-file", good_key.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("imported 2 token(s)"), "{out}");
    let import_with = |file: &Path, extra: &[&str], env: (&str, &str)| {
        let mut args = vec!["token", "import", file.to_str().unwrap(), "--replace"];
        args.extend_from_slice(extra);
        a.run_with_env(&args, &[env])
    };
    let (ok, _, err) = import_with(&pb, &[], ("RADMFA_IMPORT_PASSPHRASE", "correct horse"));
    assert!(ok, "{err}");
    // A file named on the command line wins over a variable left in the environment.
    let good_pass = a.write("good.pass", "correct horse\n");
    let pass_file = ["--passphrase-file", good_pass.to_str().unwrap()];
    let left = ("RADMFA_IMPORT_PASSPHRASE", "left from another import");
    let (ok, _, err) = import_with(&pb, &pass_file, left);
    assert!(ok, "{err}");
    // Nor does a variable of the other kind: a passphrase file named for a pre-shared-key
    // file is refused as the wrong kind, not set aside for the key in the environment.
    let (ok, _, err) = import_with(&cbc, &pass_file, ("RADMFA_IMPORT_KEY", key));
    assert!(!ok && err.contains("pre-shared key"), "{err}");
    // Both on the command line: refused, not one silently chosen.
    let (ok, _, err) = a.import(
        &cbc,
        &["--key", key, "--key-file", good_key.to_str().unwrap()],
    );
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}

/// Counter, TimeInterval and TimeDrift encrypted by python-pskc, which writes the shortest
/// unsigned big-endian bytes: 200 is the one byte C8. Read as signed it was -56: the HOTP
/// token was refused with a counter of -56, and the TOTP drift stored as -56 unnoticed.
#[test]
fn encrypted_integers_from_python_pskc_read_as_it_wrote_them() {
    let a = Admin::new();
    let seed = "3132333435363738393031323334353637383930";
    let tokens = serde_json::json!([
        {"serial": "E-1", "secret_hex": seed, "type": "hotp", "digits": 6, "counter": 200},
        {"serial": "E-2", "secret_hex": "3039383736353433323130393837363534333231", "type": "totp", "digits": 6, "period": 30,
         "time_drift": 200},
    ]);
    let key = "000102030405060708090a0b0c0d0e0f";
    let file = a.path("integers.pskcxml");
    let fields = "secret,counter,time_interval,time_drift";
    let args = [
        "--protection",
        "aes128-cbc",
        "--key",
        key,
        "--fields",
        fields,
    ];
    make_pskc(&file, &tokens, &args);
    assert!(!std::fs::read_to_string(&file)
        .unwrap()
        .contains("PlainValue"));
    let key_file = a.write("k.hex", key);
    let (ok, out, err) = a.import(&file, &["--key-file", key_file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let t = a.tokens();
    let by = |s: &str| t.iter().find(|t| t["serial"] == s).unwrap().clone();
    assert_eq!(by("E-1")["counter"], 200, "{t:?}");
    assert_eq!(
        (by("E-2")["drift"].clone(), by("E-2")["period"].clone()),
        (200.into(), 30.into())
    );
}

/// python-pskc makes an HMAC-SHA224 MAC key 28 bytes, a length an altered file could
/// carry (4 bytes of CBC padding), which radmfa refuses. With the right key the message
/// said "wrong key or passphrase"; it names the MAC key and SHA-224.
/// What python-pskc's `pskc2csv` writes (its default columns `serial, secret, algorithm,
/// response_length, time_interval`: the secret in hex, the algorithm a PSKC URI naming the
/// token's type) imports as it stands, and the seeds arrive intact; with its `counter`
/// column, an HOTP token keeps its counter. Before, the import said only "unknown column (a
/// 15-character value, not shown)".
#[test]
fn a_pskc2csv_export_imports_as_python_pskc_wrote_it() {
    const HEX: &str = "3132333435363738393031323334353637383930";
    // ABCDEFGHIJKLMNOPQRST: one seed per token.
    const HEX2: &str = "4142434445464748494a4b4c4d4e4f5051525354";
    let tokens = serde_json::json!([
        {"serial": "P-1", "secret_hex": HEX, "type": "totp", "digits": 6, "period": 30},
        {"serial": "P-2", "secret_hex": HEX2, "type": "hotp", "digits": 8, "counter": 5},
    ]);
    let pskc2csv = common::peers::python().with_file_name("pskc2csv");
    for columns in [
        None,
        Some("serial,secret,algorithm,response_length,counter"),
    ] {
        let a = Admin::new();
        let xml = a.path("plain.pskcxml");
        make_pskc(&xml, &tokens, &[]);
        let csv = a.path("export.csv");
        let mut cmd = Command::new(&pskc2csv);
        cmd.arg(&xml).arg("-o").arg(&csv);
        if let Some(c) = columns {
            cmd.args(["-c", c]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "pskc2csv: {out:?}");
        let (ok, out, err) = a.import(&csv, &[]);
        assert!(ok, "{columns:?}: {out}{err}");
        let list = a.tokens();
        let by = |serial: &str| list.iter().find(|t| t["serial"] == serial).unwrap().clone();
        assert_eq!(list.len(), 2, "{list:?}");
        let (p1, p2) = (by("P-1"), by("P-2"));
        assert_eq!(
            (&p1["type"], &p1["digits"], &p1["period"]),
            (&"totp".into(), &6.into(), &30.into()),
            "{p1}"
        );
        assert_eq!(
            (&p2["type"], &p2["digits"]),
            (&"hotp".into(), &8.into()),
            "{p2}"
        );
        // Its counter comes along where the export has the column (pskc2csv's default
        // columns leave it out: 0).
        let counter = if columns.is_some() { 5 } else { 0 };
        assert_eq!(p2["counter"], counter, "{p2}");
        // The seeds: two consecutive oathtool codes resynchronise each token.
        let now = common::peers::now();
        let seed = b32(b"12345678901234567890");
        let (c1, c2) = (totp(&seed, now, &[]), totp(&seed, now + 30, &[]));
        let (ok, out, err) = a.run(&["token", "resync", "P-1", &c1, &c2]);
        assert!(ok, "{columns:?}: {out}{err}");
        let hotp = |counter: u32| {
            let o = Command::new("oathtool")
                .args(["--hotp", "-d", "8", "-c", &counter.to_string(), HEX2])
                .output()
                .unwrap();
            String::from_utf8(o.stdout).unwrap().trim().to_string()
        };
        let (ok, out, err) = a.run(&["token", "resync", "P-2", &hotp(7), &hotp(8)]);
        assert!(ok, "{columns:?}: {out}{err}");
    }

    // A column radmfa does not read is named, with its place; a hex secret under a header
    // that makes it Base32 is told how to import.
    let a = Admin::new();
    let f = a.write(
        "email.csv",
        &format!("serial,secret,Email Address\nE-1,{HEX},e@example.org\n"),
    );
    let (ok, _, err) = a.import(&f, &[]);
    assert!(!ok);
    assert!(
        err.contains("unknown column \"Email Address\" (column 3) in the header"),
        "{err}"
    );
    let f = a.write("hex.csv", &format!("serial,secret\nH-1,{HEX}\n"));
    let (ok, _, err) = a.import(&f, &[]);
    assert!(!ok);
    assert!(
        err.contains(
            "it is valid hex: if the file's secrets are hex, import with --key-encoding hex"
        ) && !err.contains(HEX),
        "{err}"
    );
    let (ok, out, err) = a.import(&f, &["--key-encoding", "hex"]);
    assert!(ok, "{out}{err}");
    assert!(a.tokens().iter().all(|t| t["serial"] != "E-1"));
}

#[test]
fn a_python_pskc_hmac_sha224_file_is_refused_naming_it() {
    let a = Admin::new();
    let tokens = serde_json::json!([
        {"serial": "M-1", "secret_hex": "3132333435363738393031323334353637383930", "type": "totp", "digits": 6, "period": 30},
    ]);
    let key = "000102030405060708090a0b0c0d0e0f";
    let file = a.path("sha224.pskcxml");
    let args = [
        "--protection",
        "aes128-cbc",
        "--key",
        key,
        "--mac",
        "hmac-sha224",
    ];
    make_pskc(&file, &tokens, &args);
    let key_file = a.write("k.hex", key);
    let (ok, _, err) = a.import(&file, &["--key-file", key_file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("the MAC key is 28 bytes, HMAC-SHA224's length") && !err.contains("wrong key"),
        "{err}"
    );
    assert!(a.tokens().is_empty());
    // Key wrap checks its own integrity: the same 28-byte MAC key, wrapped, is no CBC risk,
    // and the file imports.
    let file = a.path("sha224-kw.pskcxml");
    make_pskc(
        &file,
        &tokens,
        &[
            "--protection",
            "kw-aes128",
            "--key",
            key,
            "--mac",
            "hmac-sha224",
        ],
    );
    assert!(std::fs::read_to_string(&file).unwrap().contains("MACKey"));
    let (ok, out, err) = a.import(&file, &["--key-file", key_file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert_eq!(a.tokens().len(), 1);
}

/// python-pskc writes a PBKDF2 PRF other than HMAC-SHA1 as the `<PRF>` element's text,
/// not its Algorithm attribute. Taken as no PRF (HMAC-SHA1), the right passphrase failed
/// as "wrong key or passphrase".
#[test]
fn a_python_pskc_pbkdf2_file_with_an_hmac_sha256_prf_imports() {
    let a = Admin::new();
    let tokens = serde_json::json!([
        {"serial": "F-1", "secret_hex": "3132333435363738393031323334353637383930", "type": "totp", "digits": 6, "period": 30},
    ]);
    let file = a.path("prf.pskcxml");
    let args = [
        "--protection",
        "pbkdf2",
        "--passphrase",
        "correct horse",
        "--prf",
        "hmac-sha256",
    ];
    make_pskc(&file, &tokens, &args);
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("hmac-sha256</PRF>"));
    let pass = a.write("pass", "correct horse\n");
    let (ok, out, err) = a.import(&file, &["--passphrase-file", pass.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert_eq!(a.tokens().len(), 1);
}

#[test]
fn hostile_xml_is_refused_quickly() {
    let a = Admin::new();
    let n = 100_000;
    let cases = [
        ("deep.xml", format!("<KeyContainer>{}{}</KeyContainer>", "<a>".repeat(n), "</a>".repeat(n)), "deep"),
        (
            "laughs.xml",
            r#"<?xml version="1.0"?><!DOCTYPE k [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><KeyContainer>&c;</KeyContainer>"#.to_string(),
            "DTD",
        ),
        (
            "xxe.xml",
            r#"<?xml version="1.0"?><!DOCTYPE k [<!ENTITY x SYSTEM "file:///etc/passwd">]><KeyContainer><KeyPackage><Key Id="1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><Data><Secret><PlainValue>&x;</PlainValue></Secret></Data></Key></KeyPackage></KeyContainer>"#.to_string(),
            "DTD",
        ),
        ("huge.xml", format!("<KeyContainer>{}</KeyContainer>", " ".repeat(65 * 1024 * 1024)), "limit"),
        // One package of many keys and no DeviceInfo: looked up once per package, not once
        // per key (which scanned every key for each, quadratic).
        (
            "many-keys.xml",
            format!(
                "<KeyContainer><KeyPackage>{}</KeyPackage></KeyContainer>",
                (0..100_000)
                    .map(|i| format!(r#"<Key Id="k{i}" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"/>"#))
                    .collect::<String>()
            ),
            "100000 problem(s)",
        ),
        // Attributes are compared with each other by the parser (quadratic): 200,000 on one
        // tag would take minutes.
        (
            "attrs.xml",
            format!(
                "<KeyContainer {}/>",
                (0..200_000).map(|i| format!("a{i}=\"\" ")).collect::<String>()
            ),
            "more than 64 attributes",
        ),
        // Every key repeats an element: its line was found by counting from the file's
        // start each time (quadratic; 40,000 took 42 s).
        (
            "repeats.xml",
            format!(
                "<KeyContainer>{}</KeyContainer>",
                (0..100_000)
                    .map(|i| format!(r#"<KeyPackage><Key Id="k{i}" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><Data/><Data/></Key></KeyPackage>"#))
                    .collect::<String>()
            ),
            "more than one <Data>",
        ),
        // Namespaces declared on every level: an element that declares one copies every
        // one in scope (quadratic in them); leaves below made it minutes.
        (
            "namespaces.xml",
            {
                let level = |l: usize| {
                    (0..64)
                        .map(|k| format!(r#" xmlns:p{l}_{k}="u""#))
                        .collect::<String>()
                };
                let open: String = (0..31).map(|l| format!("<a{}>", level(l))).collect();
                let close: String = (0..31).map(|_| "</a>").collect();
                let leaves = r#"<b xmlns:z="u"/>"#.repeat(20_000);
                format!("<KeyContainer>{open}{leaves}{close}</KeyContainer>")
            },
            "namespace declarations in scope",
        ),
    ];
    for (name, text, expect) in cases {
        let f = a.write(name, &text);
        let t = Instant::now();
        let (ok, _, err) = a.import(&f, &[]);
        let took = t.elapsed();
        eprintln!("{name}: refused in {took:?}");
        assert!(!ok, "{name} accepted");
        assert!(err.contains(expect), "{name}: {err}");
        // Each case's quadratic cost took from 42 s (at 40,000 repeats; 100,000 here) to
        // minutes; linear, the largest take 2-4 s in a debug build on a quiet 2-core
        // machine. 5 s, then 15 s, were too close on a busy one (16 s with CPU hogs and
        // another test binary beside it); 60 s still tells the two apart.
        assert!(took < Duration::from_secs(60), "{name} took {took:?}");
    }
    assert!(a.tokens().is_empty());
}

/// The size limit holds for a file whose length is not known in advance (a pipe, a device):
/// reading stops at the limit. `/dev/zero` never ends; before the limit was counted while
/// reading, its reported length of 0 let it be read until memory ran out.
#[test]
fn an_endless_file_is_cut_off_at_the_size_limit() {
    let a = Admin::new();
    // `token import ARGS` with at most 4 GB of memory; its failure's stderr.
    let import_failing = |args: &str| {
        let script = format!(
            "ulimit -v 4000000; exec timeout 60 {} --config {} token import {args}",
            bin().display(),
            a.cfg.display()
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = import_failing("/dev/zero --format csv");
    assert!(err.contains("more than the 67108864-byte limit"), "{err}");
    assert!(a.tokens().is_empty());
    // The files given beside it are cut off too: a map at the same limit, a key or a
    // passphrase file at 64 KiB (before, each was read whole: /dev/zero filled the memory).
    // RFC 6030's figure 3: a plain file; the key options are read before it is parsed.
    let pskc = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rfc6030/figure3.pskcxml");
    let csv = a.dir.path().join("one.csv");
    std::fs::write(&csv, "SN1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,30\n").unwrap();
    for (file, option, limit) in [
        (&csv, "--map", "67108864"),
        (&pskc, "--key-file", "65536"),
        (&pskc, "--passphrase-file", "65536"),
    ] {
        let err = import_failing(&format!("{} {option} /dev/zero", file.display()));
        assert!(
            err.contains(&format!("/dev/zero: more than the {limit}-byte limit")),
            "{option}: {err}"
        );
    }
    assert!(a.tokens().is_empty());
}

/// A file of nothing but bad rows: every one of them was held as a problem (64 MiB of
/// "x" lines is 33 million, gigabytes). Reading stops after 10,000 problems, the first are
/// listed, and nothing is imported (with --skip-invalid too: the rest was never read).
#[test]
fn a_file_of_bad_rows_stops_at_the_problem_limit() {
    let a = Admin::new();
    let b32 = b32(&[7u8; 20]);
    let file = a.write(
        "bad.csv",
        &format!("SN1,{b32},30\n{}", "x\n".repeat(100_000)),
    );
    for extra in [&[][..], &["--skip-invalid"]] {
        let started = Instant::now();
        let (ok, _, err) = a.import(&file, extra);
        assert!(!ok, "{extra:?}");
        assert!(
            err.contains(
                "more than 10,000 problems: reading stopped at line 10002; nothing was imported"
            ),
            "{extra:?}: {}",
            &err[err.len().saturating_sub(400)..]
        );
        assert!(
            err.contains("error: line 2 to line 10001 (10000 in all): secret is empty"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    assert!(a.tokens().is_empty());
}

/// A file of the pre-RFC 6030 draft format (`<Device>`, no `<KeyPackage>`, as older
/// ActivIdentity exports): the admin is told what it is, not "no valid token" with no
/// reason.
#[test]
fn a_pre_rfc_draft_pskc_file_is_named() {
    let a = Admin::new();
    let f = a.write(
        "draft.pskcxml",
        "<?xml version=\"1.0\"?>\n<KeyContainer xmlns=\"urn:ietf:params:xml:ns:keyprov:container:1.0\">\n\
         <Device><DeviceId><SerialNo>D1</SerialNo></DeviceId>\n\
         <Key KeyAlgorithm=\"http://www.ietf.org/keyprov/pskc#hotp\" KeyId=\"D1\">\n\
         <Data Name=\"SECRET\"><Value>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</Value></Data>\n\
         </Key></Device>\n</KeyContainer>\n",
    );
    let (ok, _, err) = a.import(&f, &[]);
    assert!(!ok);
    assert!(
        err.contains("no <KeyPackage> elements, but <Device> elements (the first on line 3)")
            && err.contains("pre-RFC 6030 draft format"),
        "{err}"
    );
    assert!(!err.contains("no valid token"), "{err}");
    assert!(a.tokens().is_empty());
}

/// The files in `examples/tokens/` import as their comments say, each into a store of its
/// own and all three into one (a newcomer trying them one after the other met "has the
/// same seed as serial DEMO-AZ-0001 in the store": the files shared the RFC test key).
#[test]
fn example_token_files_import() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tokens");
    let expect = [
        ("azure-mfa-server.csv", 3, 2),
        ("oath.csv", 3, 2),
        ("entra.csv", 2, 2),
    ];
    let mut seen: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    seen.sort();
    let mut listed: Vec<String> = expect.iter().map(|(f, _, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(seen, listed, "every example file is checked here");
    for (file, tokens, assigned) in expect {
        let a = Admin::new();
        let (ok, out, err) = a.import(&dir.join(file), &[]);
        assert!(ok, "{file}: {err}");
        assert!(out.contains(&format!("{tokens} token(s)")), "{file}: {out}");
        let stored = a.tokens();
        assert_eq!(stored.len(), tokens, "{file}");
        let owned = stored.iter().filter(|t| !t["user"].is_null()).count();
        assert_eq!(owned, assigned, "{file}: {stored:?}");
        // Owners named by UPN (bob@example.org) where the directory is searched by uid: no
        // login would find their tokens, and the import says so.
        let domain_owners = stored
            .iter()
            .filter(|t| t["user"].as_str().is_some_and(|u| u.contains('@')))
            .count();
        assert_eq!(
            err.contains("go to names with a domain"),
            domain_owners > 0,
            "{file}: {err}"
        );
        if domain_owners > 0 {
            assert!(
                err.contains(&format!(
                    "{domain_owners} token(s) go to names with a domain"
                )) && err.contains("strip_domains")
                    && err.contains("(uid={user})"),
                "{file}: {err}"
            );
        }
    }
    let all = Admin::new();
    for (file, _, _) in expect {
        let (ok, _, err) = all.import(&dir.join(file), &[]);
        assert!(ok, "{file} after the others: {err}");
    }
    assert_eq!(all.tokens().len(), 8);
    // With the domain listed in strip_domains the owners are the names users log in with:
    // no warning, but a note that the part before the @ decides (in Active Directory a
    // UPN's prefix may be another account's sAMAccountName).
    let a = Admin::new();
    let mut text = std::fs::read_to_string(&a.cfg).unwrap();
    text.push_str("\n[users]\nstrip_domains = [\"example.org\"]\n");
    std::fs::write(&a.cfg, text).unwrap();
    let (ok, _, err) = a.import(&dir.join("entra.csv"), &[]);
    assert!(ok && !err.contains("with a domain"), "{err}");
    assert!(
        err.contains("note: 2 owner(s) are named by UPN (alice@example.org, …)")
            && err.contains("--map"),
        "{err}"
    );
    let owners: Vec<String> = a
        .tokens()
        .iter()
        .map(|t| t["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(owners, ["alice", "bob"]);
}

/// A passphrase or hex key file saved with a byte-order mark (PowerShell 5, old Notepad)
/// and Windows line ends is read as what was typed, as the config's secret files are. The
/// mark was taken for part of the passphrase, and the import failed as a wrong key.
#[test]
fn key_and_passphrase_files_with_a_byte_order_mark() {
    let a = Admin::new();
    let fixture = |n: u32| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/rfc6030/figure{n}.pskcxml"))
    };
    let pass = a.write("pass", "\u{feff}qwerty\r\n");
    let (ok, out, err) = a.import(&fixture(7), &["--passphrase-file", pass.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let key = a.write("key", "\u{feff}12345678901234567890123456789012\r\n");
    let (ok, out, err) = a.import(
        &fixture(6),
        &[
            "--key-file",
            key.to_str().unwrap(),
            "--replace",
            "--dry-run",
        ],
    );
    assert!(ok, "{out}{err}");
}

/// What a spreadsheet does to an export, named: a serial it wrote back in scientific
/// notation (its digits lost) and a column radmfa does not read (listing the ones it
/// does). Nothing is imported either way.
#[test]
fn a_spreadsheets_marks_on_a_file_are_named() {
    let a = Admin::new();
    let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let rewritten = a.write(
        "excel.csv",
        &format!("serial,secret,interval\r\n1.00001E+11,{seed},30\r\n"),
    );
    let (ok, _, err) = a.import(&rewritten, &[]);
    assert!(
        !ok && err.contains("line 2: serial \"1.00001E+11\" is a number a spreadsheet rewrote"),
        "{err}"
    );
    let extra = a.write(
        "dated.csv",
        &format!("serial,secret,start date\nGALT0001,{seed},2026-01-01\n"),
    );
    let (ok, _, err) = a.import(&extra, &[]);
    assert!(
        !ok && err.contains(
            "unknown column \"start date\" (column 3) in the header (the columns read: serial"
        ),
        "{err}"
    );
    assert!(a.tokens().is_empty());
}

/// One PSKC key package, plain: `serial` (with no SerialNo, the Key's Id), `algorithm`'s
/// last URI segment, `seed` as the secret, `user` its owner.
fn key_package(serial: Option<&str>, id: &str, algorithm: &str, seed: &[u8], user: &str) -> String {
    let device = match serial {
        Some(s) => format!(
            "<DeviceInfo><Manufacturer>Acme</Manufacturer><Model>FOB-1</Model>\
             <SerialNo>{s}</SerialNo></DeviceInfo>"
        ),
        None => String::new(),
    };
    let secret = data_encoding::BASE64.encode(seed);
    format!(
        "<KeyPackage>{device}<Key Id=\"{id}\" \
         Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:{algorithm}\">\
         <Data><Secret><PlainValue>{secret}</PlainValue></Secret>\
         <TimeInterval><PlainValue>30</PlainValue></TimeInterval></Data>\
         <UserId>{user}</UserId></Key></KeyPackage>\n"
    )
}

fn container(packages: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<KeyContainer Version=\"1.0\" \
         xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\">\n{packages}</KeyContainer>\n"
    )
}

/// What an admin reads about a PSKC file's keys: a refused key named with its serial, the
/// refusal audited (`import-refused`), a key left out said on the last line, a serial taken
/// from the Key Id noted, the keys `--skip-invalid` left out named in the import's record,
/// and an imported fob shown as imported, with its make, by `user show`.
#[test]
fn a_pskc_files_keys_are_named_by_serial_and_what_was_left_out_is_said() {
    let a = Admin::new();
    let packages = [
        key_package(
            Some("FOB-1"),
            "k1",
            "totp",
            b"a seed of fob one!!!",
            "alice",
        ),
        key_package(Some("PIN-1"), "k2", "pin", b"1234", "alice"),
        key_package(Some("BAD-1"), "k3", "totp", b"short", "bob"),
        key_package(None, "ID-4", "totp", b"a seed of key four!!", "carol"),
    ]
    .concat();
    let file = a.write("fobs.pskcxml", &container(&packages));
    let (ok, _, err) = a.import(&file, &[]);
    assert!(!ok);
    assert!(
        err.contains("error: KeyPackage 3 (line 5, serial BAD-1): secret is 5 bytes"),
        "{err}"
    );
    let (ok, out, _) = a.run(&["audit", "--json", "--result", "import-refused"]);
    assert!(ok);
    assert!(
        out.contains("refused: 1 problem(s): KeyPackage 3 (line 5, serial BAD-1)"),
        "{out}"
    );
    // A dry run stores nothing, its refusal's record neither.
    let (ok, _, _) = a.import(&file, &["--dry-run"]);
    assert!(!ok);
    let (_, again, _) = a.run(&["audit", "--json", "--result", "import-refused"]);
    assert_eq!(again.lines().count(), 1, "{again}");
    // --skip-invalid with no valid key at all: refused, and its record names the keys it
    // skipped as the other records do (it said only how many).
    let bad_only = a.write(
        "bad-only.pskcxml",
        &container(&key_package(Some("BAD-2"), "k9", "totp", b"short", "bob")),
    );
    let (ok, _, _) = a.import(&bad_only, &["--skip-invalid"]);
    assert!(!ok);
    let (_, refused, _) = a.run(&["audit", "--json", "--result", "import-refused"]);
    assert!(
        refused.contains("no valid token (") && refused.contains("skipped: KeyPackage 1"),
        "{refused}"
    );

    let (ok, out, err) = a.import(&file, &["--skip-invalid"]);
    assert!(ok, "{err}");
    assert!(
        out.trim_end()
            .ends_with("1 key(s) left out (not HOTP or TOTP): see the notes above"),
        "{out}"
    );
    assert!(
        err.contains(
            "note: KeyPackage 4 (line 6, serial ID-4): no DeviceInfo/SerialNo: the serial is \
             the Key's Id attribute"
        ),
        "{err}"
    );
    let (ok, out, _) = a.run(&["audit", "--json", "--result", "import"]);
    assert!(ok);
    assert!(
        out.contains("skipped: KeyPackage 3 (line 5, serial BAD-1)"),
        "{out}"
    );
    let (ok, out, _) = a.run(&["user", "show", "alice"]);
    assert!(ok);
    let line = out.lines().find(|l| l.contains("FOB-1")).unwrap();
    assert!(
        line.contains(", imported 20") && line.ends_with(" (Acme FOB-1)"),
        "{out}"
    );
    let (ok, out, _) = a.run(&["user", "show", "carol"]);
    assert!(ok);
    let line = out.lines().find(|l| l.contains("ID-4")).unwrap();
    assert!(
        line.contains(", imported 20") && !line.contains('('),
        "{out}"
    );
}

/// `token list --serial PREFIX --limit N`: a part of a large inventory, in serial order.
#[test]
fn token_list_takes_a_serial_prefix_and_a_limit() {
    let a = Admin::new();
    let rows: String = ["A-1", "A-2", "A-3", "B-1", "a-9"]
        .iter()
        .map(|s| format!("{s},{},30\n", b32(format!("seed of {s} 0123").as_bytes())))
        .collect();
    let (ok, _, err) = a.import(&a.write("abc.csv", &rows), &[]);
    assert!(ok, "{err}");
    let serials = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["token", "list", "--json"];
        all.extend_from_slice(args);
        let (ok, out, err) = a.run(&all);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["serial"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(serials(&["--serial", "A-"]), ["A-1", "A-2", "A-3"]);
    assert_eq!(serials(&["--serial", "A-", "--limit", "2"]), ["A-1", "A-2"]);
    assert_eq!(serials(&["--limit", "1"]), ["A-1"]);
    assert!(serials(&["--serial", "Z"]).is_empty());
    // --limit 0 would list nothing (audit's --limit 0 lists everything): refused.
    let (ok, _, err) = a.run(&["token", "list", "--limit", "0"]);
    assert!(!ok && err.contains("0 is not in 1.."), "{err}");
    let (ok, out, _) = a.run(&["token", "list", "--serial", "a-"]);
    assert!(ok);
    assert!(
        out.contains("a-9") && out.ends_with("1 token(s)\n"),
        "{out}"
    );
    // Cut at --limit: said, as "2 token(s)" read as all there were. Not when all fit.
    let (ok, out, _) = a.run(&["token", "list", "--serial", "A-", "--limit", "2"]);
    assert!(
        ok && out.ends_with("2 token(s) shown, the first by serial; more match (raise --limit)\n"),
        "{out}"
    );
    let (ok, out, _) = a.run(&["token", "list", "--serial", "A-", "--limit", "3"]);
    assert!(ok && out.ends_with("\n3 token(s)\n"), "{out}");
}

/// The script docs/tokens.md gives for a PSKC file over 64 MiB: its parts, each with the
/// file's header, import with the file's own key.
#[test]
fn an_encrypted_pskc_file_split_as_the_docs_say_imports_part_by_part() {
    let a = Admin::new();
    let tokens: Vec<serde_json::Value> = (0..25)
        .map(|i| {
            serde_json::json!({"serial": format!("SP-{i:02}"), "type": "totp", "digits": 6,
                "period": 30, "secret_hex": hex::encode(format!("split-seed-{i:09}"))})
        })
        .collect();
    let key = "000102030405060708090a0b0c0d0e0f";
    let file = a.path("big.pskcxml");
    make_pskc(
        &file,
        &serde_json::Value::Array(tokens),
        &["--protection", "aes128-cbc", "--key", key],
    );
    let docs = include_str!("../docs/tokens.md");
    let script = docs
        .split_once("```python\n# split-pskc.py")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(body, _)| format!("# split-pskc.py{body}"))
        .expect("the split script in docs/tokens.md");
    let script_path = a.write("split-pskc.py", &script);
    let out = Command::new(common::peers::python())
        .arg(&script_path)
        .arg(&file)
        .arg("10")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_file = a.write("k.hex", key);
    for part in 1..=3 {
        let part = a.path(&format!("big.pskcxml.part{part}.xml"));
        let (ok, out, err) = a.import(&part, &["--key-file", key_file.to_str().unwrap()]);
        assert!(ok, "{}: {err}", part.display());
        assert!(out.contains("imported"), "{out}");
    }
    assert!(!a.path("big.pskcxml.part4.xml").exists());
    assert_eq!(a.tokens().len(), 25);
}

/// A wrong key for a large encrypted file is told from its header, before the file's
/// 100,000 or so key packages are parsed (15 s for 51 MB, to say the key was wrong).
#[test]
fn a_wrong_key_is_told_before_a_large_file_is_parsed() {
    let a = Admin::new();
    let tokens = serde_json::json!([
        {"serial": "W-1", "secret_hex": "3132333435363738393031323334353637383930", "type": "totp", "digits": 6, "period": 30},
    ]);
    let small = a.path("one.pskcxml");
    make_pskc(
        &small,
        &tokens,
        &[
            "--protection",
            "aes128-cbc",
            "--key",
            "000102030405060708090a0b0c0d0e0f",
        ],
    );
    let text = std::fs::read_to_string(&small).unwrap();
    let start = text.find("<pskc:KeyPackage").unwrap();
    let end = text.rfind("</pskc:KeyContainer>").unwrap();
    let copies = (60 << 20) / (end - start);
    let big = format!(
        "{}{}{}",
        &text[..start],
        text[start..end].repeat(copies),
        &text[end..]
    );
    let file = a.write("big.pskcxml", &big);
    let wrong = a.write("wrong.key", "000102030405060708090a0b0c0d0e0e\n");
    let t = Instant::now();
    let (ok, _, err) = a.import(&file, &["--key-file", wrong.to_str().unwrap()]);
    let took = t.elapsed();
    assert!(!ok && err.contains("wrong key or passphrase"), "{err}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

/// A file over the size limit is refused with what to do about it.
#[test]
fn a_file_over_the_limit_is_refused_with_how_to_split_it() {
    let a = Admin::new();
    let file = a.path("huge.csv");
    std::fs::write(&file, vec![b'x'; (64 << 20) + 1]).unwrap();
    let (ok, _, err) = a.import(&file, &[]);
    assert!(!ok);
    assert!(
        err.contains("more than the 67108864-byte limit")
            && err.contains("split it into parts")
            && err.contains("\"Files over 64 MiB\""),
        "{err}"
    );
}

/// A PSKC `UserId` that is a DN gives the token to the name cut from its first value, and
/// that name's directory entry must be the one the DN names. From Active Directory the DN
/// starts with a CN, which is no login name there: `CN=jsmith,OU=Contractors,…` (John's
/// entry) gave the token to `jsmith`, someone else's account, with no word (red team). Now
/// such a key is refused naming both entries, `--skip-invalid` leaves it out, and `--map`
/// gives it its owner; a DN spelt otherwise (case, spaces) that names the entry is fine.
#[test]
fn a_pskc_owner_dn_must_name_the_entry_it_gives_the_token_to() {
    use common::slapd::{LdapUser, Slapd};
    let slapd = Slapd::start(&[
        LdapUser::new("jsmith", "jsmith-Secret-pw"),
        LdapUser::new("bob", "bob-Secret-pw"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &Options::new(&slapd.url));
    let a = Admin { dir, cfg };
    let tokens = serde_json::json!([
        {"serial": "DN-1", "secret_hex": hex::encode(b"seed of the first fob"), "type": "totp",
         "digits": 6, "period": 30, "user": "CN=jsmith,OU=Contractors,DC=other,DC=corp"},
        {"serial": "DN-2", "secret_hex": hex::encode(b"seed of the second fob"), "type": "totp",
         "digits": 6, "period": 30, "user": "UID=bob, OU=People,DC=Example,DC=org"},
    ]);
    let file = a.path("dn.pskcxml");
    make_pskc(&file, &tokens, &[]);
    let (ok, _, err) = a.import(&file, &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains(
            "UserId CN=jsmith,OU=Contractors,DC=other,DC=corp gives the token to jsmith, whose \
             directory entry is uid=jsmith,ou=people,dc=example,dc=org: not the entry the \
             file names"
        ) && err.contains("nothing was imported"),
        "{err}"
    );
    assert!(!err.contains("DN-2"), "{err}");
    assert!(a.tokens().is_empty());
    let (ok, _, err) = a.import(&file, &["--skip-invalid"]);
    assert!(ok, "{err}");
    let owners = |a: &Admin| -> Vec<(String, serde_json::Value)> {
        a.tokens()
            .iter()
            .map(|t| (t["serial"].as_str().unwrap().to_string(), t["user"].clone()))
            .collect()
    };
    assert_eq!(
        owners(&a),
        [("DN-2".to_string(), serde_json::json!("bob"))],
        "{err}"
    );
    // The admin says whose it is (DN-2, already in, is skipped).
    let map = a.write("map.csv", "DN-1,jsmith\n");
    let (ok, _, err) = a.import(&file, &["--map", map.to_str().unwrap(), "--skip-invalid"]);
    assert!(ok && !err.contains("not the entry the file names"), "{err}");
    assert!(
        owners(&a).contains(&("DN-1".to_string(), serde_json::json!("jsmith"))),
        "{:?}",
        owners(&a)
    );
}

/// With no directory to ask, a key whose owner the file names by DN is refused as one that
/// names another entry is (with --map or --skip-invalid as the ways out): it was stored
/// with the directory down, and refused with it up.
#[test]
fn pskc_owners_named_by_dn_are_refused_when_the_directory_cannot_check_them() {
    let a = Admin::new();
    let tokens = serde_json::json!([
        {"serial": "DN-9", "secret_hex": hex::encode(b"seed of the ninth fob"), "type": "totp",
         "digits": 6, "period": 30, "user": "CN=jsmith,OU=Contractors,DC=other,DC=corp"},
        {"serial": "DN-8", "secret_hex": hex::encode(b"seed of the eight fob"), "type": "totp",
         "digits": 6, "period": 30, "user": "jdoe"},
    ]);
    let file = a.path("dn.pskcxml");
    make_pskc(&file, &tokens, &[]);
    let (ok, _, err) = a.import(&file, &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("owners not checked against the directory")
            && err.contains(
                "UserId CN=jsmith,OU=Contractors,DC=other,DC=corp names its owner by DN, which \
                 could not be compared with the directory entry of jsmith"
            )
            && err.contains("nothing was imported"),
        "{err}"
    );
    assert!(a.tokens().is_empty());
    let (ok, _, err) = a.import(&file, &["--skip-invalid"]);
    assert!(ok, "{err}");
    let serials: Vec<String> = a
        .tokens()
        .iter()
        .map(|t| t["serial"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(serials, ["DN-8"]);
}
