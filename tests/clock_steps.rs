//! State stamped while a clock ran ahead (this node's before an NTP step back, a VM resumed,
//! another node's), or written by a node of another release: the real radmfa binary and
//! slapd, pyrad as the NAS, oathtool's codes. The rows are written into the database as
//! such a clock or node would have written them.

mod common;

use common::oob_env::client;
use common::peers::{now, pyrad, FreshCodes};
use common::radmfa::{migrated, write_config, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

const PW: &str = "alice-pw";
const STATION_A: &str = "203.0.113.5";
const STATION_B: &str = "198.51.100.7";
const DAY: i64 = 86_400;

fn code_of(v: &serde_json::Value) -> &str {
    v["code"].as_str().unwrap()
}

fn send(srv: &Server, station: &str, password: &str, state: Option<&str>) -> serde_json::Value {
    let mut args = vec![
        "--user",
        "alice",
        "--password",
        password,
        "--calling-station-id",
        station,
    ];
    if let Some(s) = state {
        args.extend(["--state", s]);
    }
    pyrad(srv.port(), SECRET, &args)
}

/// A config (one client that remembers second factors for 10 minutes) and its database,
/// made before the server starts so that rows can be put in first.
fn prepared(slapd: &Slapd) -> (tempfile::TempDir, std::path::PathBuf, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    o.extra = client("local", "127.0.0.1", "remember_second_factor_secs = 600");
    let config = write_config(dir.path(), &o);
    let db = migrated(dir.path(), &config);
    (dir, config, db)
}

/// A remembered login written by a clock a day ahead would last that day, not its 10
/// minutes: it is not used, and the user gets the prompt. One written by a right clock
/// still spares the code.
#[test]
fn a_remembered_login_stamped_ahead_of_the_clock_is_not_used() {
    let slapd = Slapd::start(&[LdapUser::new("alice", PW)]);
    let (dir, config, db) = prepared(&slapd);
    let t = now();
    for (station, verified_at) in [(STATION_A, t + DAY), (STATION_B, t - 10)] {
        db.execute(
            "INSERT INTO remembered_logins (user, nas, station, mode, verified_at, expires_at) \
             VALUES ('alice', 'local', ?1, 'totp', ?2, ?3)",
            rusqlite::params![station, verified_at, verified_at + 600],
        )
        .unwrap();
    }
    let srv = Server::start_with(dir, config);
    srv.enroll("alice", &[]);
    let sound = send(&srv, STATION_B, PW, None);
    assert_eq!(code_of(&sound), "Access-Accept", "{sound}\n{}", srv.log());
    let ahead = send(&srv, STATION_A, PW, None);
    assert_eq!(
        code_of(&ahead),
        "Access-Challenge",
        "{ahead}\n{}",
        srv.log()
    );
    assert!(
        srv.log_shows("a remembered login is stamped ahead of this server's clock"),
        "{}",
        srv.log()
    );
    // Forgotten, not only passed over: left, it was used again once the clock caught up
    // with its stamp, for its whole period. The user's other rows go with it.
    let left: i64 = db
        .query_row(
            "SELECT count(*) FROM remembered_logins WHERE user = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "{}", srv.log());
}

/// A one-time bypass set by a clock a day ahead would wait that day, not its 5 minutes
/// (past `--for`'s own 24 hours): it is not used, and the user gets the prompt. One set by
/// a right clock still lets the password alone in.
#[test]
fn a_bypass_set_ahead_of_the_clock_is_not_used() {
    let slapd = Slapd::start(&[LdapUser::new("alice", PW)]);
    let (dir, config, db) = prepared(&slapd);
    let set_bypass = |until: i64| {
        db.execute(
            "INSERT INTO user_profile (user, bypass_until) VALUES ('alice', ?1) \
             ON CONFLICT (user) DO UPDATE SET bypass_until = excluded.bypass_until",
            [until],
        )
        .unwrap();
    };
    let bypass_left = || -> Option<i64> {
        db.query_row(
            "SELECT bypass_until FROM user_profile WHERE user = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    set_bypass(now() + DAY + 300);
    let srv = Server::start_with(dir, config);
    srv.enroll("alice", &[]);
    // The admin sees it, and can cancel it: hidden from `user show` and refused by
    // `--cancel` as "expired" (of a time tomorrow), it stayed for nodes of an older
    // release, which take it.
    let shown = srv.cli(&["user", "show", "alice"]);
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(
        shown.contains("bypass:") && shown.contains("ends more than 24 h from now"),
        "{shown}"
    );
    let cancelled = srv.cli(&["user", "bypass", "alice", "--cancel"]);
    assert!(cancelled.status.success(), "{cancelled:?}");
    assert_eq!(bypass_left(), None);
    // A login that finds one: not let in, and the bypass is taken away, so it does not
    // wake once its end comes within a day. Its grant's record is stamped by the clock
    // that ran ahead, as `user bypass` on that host writes it.
    set_bypass(now() + DAY + 300);
    db.execute(
        "INSERT INTO audit (time, user, mode, result, reason, server_name, latency_ms, actor) \
         VALUES (?1, 'alice', 'admin', 'bypass', 'until tomorrow', 'admin-host', 0, 'root')",
        [now() + DAY],
    )
    .unwrap();
    let ahead = send(&srv, STATION_A, PW, None);
    assert_eq!(
        code_of(&ahead),
        "Access-Challenge",
        "{ahead}\n{}",
        srv.log()
    );
    assert_eq!(bypass_left(), None, "{}", srv.log());
    assert!(
        srv.log_shows("a one-time bypass ends more than 24 hours from now"),
        "{}",
        srv.log()
    );
    // Recorded, so the admin is told where it went ("check the spelling" before).
    let records = srv.audit_json("alice");
    assert!(
        records.iter().any(|r| r["result"] == "bypass"
            && r["reason"]
                .as_str()
                .is_some_and(|w| w.starts_with("taken away at a login"))),
        "{records:?}"
    );
    let cancelled = srv.cli(&["user", "bypass", "alice", "--cancel"]);
    let said = String::from_utf8_lossy(&cancelled.stderr).to_string();
    assert!(
        !cancelled.status.success() && said.contains("its bypass was taken away at a login"),
        "{said}"
    );
    set_bypass(now() + 300);
    let sound = send(&srv, STATION_A, PW, None);
    assert_eq!(code_of(&sound), "Access-Accept", "{sound}\n{}", srv.log());
    // (The grant stamped a day ahead sorts first by time.)
    let used = srv.audit_json("alice");
    assert!(
        used.iter()
            .any(|r| r["mode"] == "bypass" && r["result"] == "accept"),
        "{used:?}"
    );
}

/// A prompt issued by a clock an hour ahead would take its answer for an hour more: it is
/// over, and the answer is refused with a reason that names the clock.
#[test]
fn a_prompt_stamped_ahead_of_the_clock_is_over() {
    let slapd = Slapd::start(&[LdapUser::new("alice", PW)]);
    let (dir, config, db) = prepared(&slapd);
    let srv = Server::start_with(dir, config);
    let codes = FreshCodes::new(srv.enroll("alice", &[]));
    let r1 = send(&srv, STATION_A, PW, None);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let moved = db
        .execute(
            "UPDATE challenges SET created_at = created_at + 3600, \
             expires_at = expires_at + 3600 WHERE user = 'alice'",
            [],
        )
        .unwrap();
    assert_eq!(moved, 1);
    let state = r1["state"].as_str().unwrap();
    let r2 = send(&srv, STATION_A, &codes.next(), Some(state));
    assert_eq!(code_of(&r2), "Access-Reject", "{r2}\n{}", srv.log());
    let rec = &srv.audit_json("alice")[0];
    let reason = rec["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("ahead of this server's clock"), "{rec}");
    // Over for good: the same State with the next code is refused as unknown.
    let again = send(&srv, STATION_A, &codes.next(), Some(state));
    assert_eq!(code_of(&again), "Access-Reject", "{again}");
}

/// A prompt whose stored context this release cannot read (a node of a newer release wrote
/// a method it does not know) is over: read as an empty context, it was a plain code
/// prompt, with no SMS or call to check against, no address list, no groups to look at
/// again, and the right code let the login in.
#[test]
fn a_prompt_whose_context_cannot_be_read_is_over() {
    let slapd = Slapd::start(&[LdapUser::new("alice", PW)]);
    let (dir, config, db) = prepared(&slapd);
    let srv = Server::start_with(dir, config);
    let seed = srv.enroll("alice", &[]);
    let r1 = send(&srv, STATION_A, PW, None);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let changed = db
        .execute(
            "UPDATE challenges SET context = '{\"method\":\"carrier-pigeon\"}' \
             WHERE user = 'alice'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let state = r1["state"].as_str().unwrap();
    let code = common::peers::totp(&seed, now(), &[]);
    let r2 = send(&srv, STATION_A, &code, Some(state));
    assert_eq!(code_of(&r2), "Access-Reject", "{r2}\n{}", srv.log());
    let rec = &srv.audit_json("alice")[0];
    let reason = rec["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("stored context could not be read"), "{rec}");
}

/// A server started with its clock behind the newest audit record says so: every right
/// code would be refused as wrong, and counted toward the lockout, with nothing else to
/// tell the admin why.
#[test]
fn a_clock_behind_the_audit_trail_is_warned_of_at_start() {
    let slapd = Slapd::start(&[LdapUser::new("alice", PW)]);
    let (dir, config, db) = prepared(&slapd);
    db.execute(
        "INSERT INTO audit (time, user, mode, result, server_name, latency_ms) \
         VALUES (?1, 'alice', 'totp', 'accept', 'other-node', 3)",
        [now() + DAY],
    )
    .unwrap();
    let srv = Server::start_with(dir, config);
    assert!(
        srv.log_shows("ahead of this server's clock: this clock is behind"),
        "{}",
        srv.log()
    );
    assert!(srv.log().contains("other-node"), "{}", srv.log());
}
