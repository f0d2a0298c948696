//! End to end: the real `radmfa` binary against a real slapd, spoken to by real RADIUS
//! clients (pyrad with enforce_ma, FreeRADIUS's radclient) with codes from oathtool, plus raw
//! UDP for byte-level checks.

mod common;
#[path = "server/ldap_at_start.rs"]
mod ldap_at_start;

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use common::peers::{assert_same_reply, now, pyrad, radclient, reveals, totp};
use common::radmfa::{as_a_nas_resending, Follower, Nas, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};
use radmfa::radius::client::{parse_reply, AccessRequestBuilder};
use radmfa::radius::crypto::verify_reply;

const ALICE_PW: &str = "alice-Secret-pw";

fn directory() -> Slapd {
    Slapd::start(&[
        LdapUser::new("alice", ALICE_PW),
        LdapUser::new("bob", "bob-Secret-pw"),
        LdapUser::new("carol", "carol-Secret-pw"),
    ])
}

fn start(slapd: &Slapd, f: impl FnOnce(&mut Options)) -> Server {
    let mut o = Options::new(&slapd.url);
    f(&mut o);
    Server::start(&o)
}

/// One client, from 127.0.0.1, whose users without a second factor log in on the password
/// (`no_factor = "allow"`).
fn allow_password_only(o: &mut Options) {
    o.clients = vec![Nas {
        no_factor: "allow",
        ..Nas::challenge("allow", "127.0.0.1")
    }];
}

/// A NAS behind a proxy (NPS forwarding for RD Gateway) that sends both NAS-Identifier and
/// NAS-IP-Address: the record keeps both, since the source address is the proxy's.
#[test]
fn a_nas_that_sends_its_name_and_address_is_recorded_with_both() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    srv.enroll("alice", &[]);
    let r = pyrad(
        srv.port(),
        SECRET,
        &[
            "--user",
            "alice",
            "--password",
            ALICE_PW,
            "--nas-ip-address",
            "10.1.1.1",
            "--nas-identifier",
            "RDG01",
        ],
    );
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(
        (rec["nas_ip"].as_str(), rec["nas_identifier"].as_str()),
        (Some("127.0.0.1"), Some("RDG01 (10.1.1.1)")),
        "{rec}"
    );
}

/// A State answered through another client entry (one NAS's IPv6 address, the other proxy
/// of a pair, each with an entry of its own) is refused, saying which entry issued it and
/// what to do, and is not burned: the same answer through the first entry still logs in.
#[test]
fn a_state_answered_through_another_client_entry_says_which() {
    let slapd = Slapd::start(&[LdapUser::new("alice", ALICE_PW)]);
    let srv = start(&slapd, |o| {
        o.clients = vec![
            Nas::challenge("proxy1", "127.0.0.1"),
            Nas::challenge("proxy2", "127.0.0.2"),
        ];
    });
    let seed = srv.enroll("alice", &[]);
    // A NAS behind a proxy names itself: the record keeps that beside the source address.
    let r1 = pyrad(
        srv.port(),
        SECRET,
        &[
            "--user",
            "alice",
            "--password",
            ALICE_PW,
            "--nas-ipv6-address",
            "2001:db8::44",
        ],
    );
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(
        (rec["nas_ip"].as_str(), rec["nas_identifier"].as_str()),
        (Some("127.0.0.1"), Some("2001:db8::44")),
        "{rec}"
    );
    let state = r1["state"].as_str().expect("a challenge").to_string();
    let code = totp(&seed, now(), &[]);
    let other = pyrad(
        srv.port(),
        SECRET,
        &[
            "--bind",
            "127.0.0.2",
            "--user",
            "alice",
            "--password",
            &code,
            "--state",
            &state,
        ],
    );
    assert_eq!(code_of(&other), "Access-Reject", "{other}");
    assert_eq!(
        other["messages"][0], "The code prompt has expired. Please log in again.",
        "{other}"
    );
    let reason = srv.audit_json("alice")[0]["reason"].clone();
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r.contains("issued through client \"proxy1\"")
                && r.contains("one [[client]] entry listing them all")),
        "{reason}"
    );
    let done = py_code(&srv, "alice", &code, &state);
    assert_eq!(code_of(&done), "Access-Accept", "{done}");
}

/// The default test config with `line` added after the line `after` (to set a key inside
/// a section the harness writes), in a directory of its own; for `Server::start_with`.
fn config_with(slapd: &Slapd, after: &str, line: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = common::radmfa::write_config(dir.path(), &Options::new(&slapd.url));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(after), "{after:?} not in the test config");
    std::fs::write(
        &config,
        text.replacen(after, &format!("{after}\n{line}"), 1),
    )
    .unwrap();
    (dir, config)
}

/// pyrad round 1 with the password; returns the reply.
fn py_password(srv: &Server, user: &str, pw: &str) -> serde_json::Value {
    pyrad(srv.port(), SECRET, &["--user", user, "--password", pw])
}

fn py_code(srv: &Server, user: &str, code: &str, state: &str) -> serde_json::Value {
    pyrad(
        srv.port(),
        SECRET,
        &["--user", user, "--password", code, "--state", state],
    )
}

fn code_of(v: &serde_json::Value) -> &str {
    v["code"].as_str().unwrap()
}

#[test]
fn challenge_flow_with_pyrad() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let seed = srv.enroll("alice", &[]);
    // The start says which release, file, store, directory and clients it serves, that
    // it made the seed key (the first start), and that the audit table grows for ever
    // (`[audit] keep_days = 0`, the default).
    for says in [
        "created a new seed key in ",
        &format!("radmfa {} serving ", radmfa::VERSION),
        "store:  SQLite ",
        &format!("ldap:   {}", slapd.url),
        "client \"",
        "audit records are kept forever ([audit] keep_days = 0)",
    ] {
        assert!(srv.log_shows(says), "{says}:\n{}", srv.log());
    }

    // Right password → Access-Challenge with a State and a prompt; MA is the first attribute.
    let r1 = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    assert_eq!(r1["first_attribute"], 80, "Message-Authenticator first");
    let state = r1["state"].as_str().expect("State").to_string();
    assert!(state.len() >= 32, "State of at least 16 bytes: {state}");
    assert!(!r1["messages"].as_array().unwrap().is_empty());

    // Right code → Accept.
    let code = totp(&seed, now(), &[]);
    let r2 = py_code(&srv, "alice", &code, &state);
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    assert_eq!(r2["first_attribute"], 80);

    // The State is single-use, even with a fresh valid code (the next step's).
    let next = totp(&seed, now() + 30, &[]);
    let r3 = py_code(&srv, "alice", &next, &state);
    assert_eq!(code_of(&r3), "Access-Reject", "reused State: {r3}");

    // The same code in a new login → Reject (replay).
    let r4 = py_password(&srv, "alice", ALICE_PW);
    let s4 = r4["state"].as_str().unwrap().to_string();
    let r5 = py_code(&srv, "alice", &code, &s4);
    assert_eq!(code_of(&r5), "Access-Reject", "replayed code: {r5}");

    // Wrong password → Reject, no challenge.
    let r6 = py_password(&srv, "alice", "wrong-password");
    assert_eq!(code_of(&r6), "Access-Reject", "{r6}");
    assert!(r6["state"].is_null());

    // Right password + wrong code → Reject.
    let r7 = py_password(&srv, "alice", ALICE_PW);
    let s7 = r7["state"].as_str().unwrap().to_string();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r8 = py_code(&srv, "alice", wrong, &s7);
    assert_eq!(code_of(&r8), "Access-Reject", "{r8}");

    // A State issued to alice does not work for bob, even with a good code of his own, and
    // is not burned by the attempt: alice still finishes with it.
    let bob_seed = srv.enroll("bob", &[]);
    let r9 = py_password(&srv, "alice", ALICE_PW);
    let s9 = r9["state"].as_str().unwrap().to_string();
    let r10 = py_code(&srv, "bob", &totp(&bob_seed, now(), &[]), &s9);
    assert_eq!(code_of(&r10), "Access-Reject", "{r10}");
    assert_eq!(
        srv.audit_json("bob")[0]["reason"],
        "State was issued to another user"
    );
    let r11 = py_code(&srv, "alice", &totp(&seed, now() + 30, &[]), &s9);
    assert_eq!(code_of(&r11), "Access-Accept", "{r11}");

    // The audit has one record per request, with the token serial on the accept.
    let audit = srv.audit_json("alice");
    let accepts: Vec<_> = audit.iter().filter(|r| r["result"] == "accept").collect();
    assert_eq!(accepts.len(), 2, "{audit:#?}");
    assert_eq!(accepts[0]["mode"], "totp");
    assert!(accepts[0]["token_serial"]
        .as_str()
        .unwrap()
        .starts_with("TOTP-"));
    assert_eq!(accepts[0]["email"], "alice@example.org");
    assert_eq!(accepts[0]["server_name"], "test-node");
    assert_eq!(accepts[0]["nas_name"], "local");
}

/// A two-round login with radclient: the password gets a challenge, the current code with
/// its State an Accept. Returns the State and the code, for what a test does with them next.
fn radclient_login(host: &str, user: &str, pw: &str, seed: &str) -> (String, String) {
    let r1 = radclient(
        host,
        SECRET,
        &format!("User-Name = \"{user}\", User-Password = \"{pw}\", Message-Authenticator = 0x00"),
    );
    assert_eq!(r1.code, "Access-Challenge", "{}", r1.output);
    let state = r1.state.clone().expect("State in radclient output");
    let code = totp(seed, now(), &[]);
    let r2 = radclient(
        host,
        SECRET,
        &format!(
            "User-Name = \"{user}\", User-Password = \"{code}\", State = {state}, \
             Message-Authenticator = 0x00"
        ),
    );
    assert_eq!(r2.code, "Access-Accept", "{}", r2.output);
    (state, code)
}

#[test]
fn challenge_flow_with_radclient() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let seed = srv.enroll("alice", &[]);
    let host = srv.addr.to_string();
    let ask = |attrs: String| radclient(&host, SECRET, &attrs);

    let (state, code) = radclient_login(&host, "alice", ALICE_PW, &seed);

    let r3 = ask(format!(
        "User-Name = \"alice\", User-Password = \"{code}\", State = {state}, Message-Authenticator = 0x00"
    ));
    assert_eq!(r3.code, "Access-Reject", "reused State: {}", r3.output);
    // Refused for the State, not only for the code it carried (which is used too).
    assert!(
        srv.audit_json("alice")
            .iter()
            .any(|r| r["reason"] == "unknown, used or expired State"),
        "{}",
        srv.log()
    );

    let r4 =
        ask("User-Name = \"alice\", User-Password = \"nope\", Message-Authenticator = 0x00".into());
    assert_eq!(r4.code, "Access-Reject", "{}", r4.output);
    assert!(r4.state.is_none());

    let r5 = ask(format!(
        "User-Name = \"alice\", User-Password = \"{ALICE_PW}\", Message-Authenticator = 0x00"
    ));
    let s5 = r5.state.unwrap();
    let r6 = ask(format!(
        "User-Name = \"alice\", User-Password = \"{code}\", State = {s5}, Message-Authenticator = 0x00"
    ));
    assert_eq!(r6.code, "Access-Reject", "replayed code: {}", r6.output);

    // The log went to a pipe, as under systemd: plain text, no terminal colour codes.
    let log = srv.log();
    assert!(
        !log.contains('\x1b'),
        "escape codes in a log that is not a terminal:\n{log:?}"
    );
    assert!(log.contains("user=\"alice\""), "{log}");
}

/// `ldaps://` without `ca_file` trusts the system store, read by radmfa: a file in it that
/// cannot be read (a damaged file in the certificate directory) is left out with a
/// warning, and the rest still verify the directory; with no usable CA at all, radmfa
/// refuses to start and says to set `ca_file`. (ldap3 alone would throw the whole store
/// away for one bad file, and every login would fail as "unknown issuer".)
#[test]
fn ldaps_without_ca_file_uses_the_system_store_and_survives_a_bad_file() {
    use common::slapd::SlapdOptions;
    let slapd = Slapd::start_with(
        &[LdapUser::new("alice", ALICE_PW)],
        SlapdOptions {
            tls: true,
            ..Default::default()
        },
    );
    let ca = slapd.tls.as_ref().unwrap().ca_file.clone();
    let certs = tempfile::tempdir().unwrap();
    std::fs::copy(&ca, certs.path().join("directory-ca.pem")).unwrap();
    std::fs::write(
        certs.path().join("damaged.pem"),
        "-----BEGIN CERTIFICATE-----\n!!!! not base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let start = |cert_dir: &std::path::Path| {
        let dir = tempfile::tempdir().unwrap();
        let config = common::radmfa::write_config(
            dir.path(),
            &Options::new(slapd.ldaps_url.as_ref().unwrap()),
        );
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_radmfa"));
        cmd.arg("--config")
            .arg(&config)
            .arg("serve")
            .env_remove("SSL_CERT_FILE")
            .env("SSL_CERT_DIR", cert_dir);
        (dir, config, cmd)
    };
    let (dir, config, cmd) = start(certs.path());
    let srv = Server::spawn(dir, config, cmd);
    srv.enroll("alice", &[]);
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    assert!(
        srv.log()
            .contains("a system CA certificate could not be read"),
        "{}",
        srv.log()
    );
    // No usable CA at all: a clear refusal at start, not a failure per login.
    let empty = tempfile::tempdir().unwrap();
    let (_dir, _config, mut cmd) = start(empty.path());
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a radmfa that started after all would serve until killed.
    let until = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("radmfa started without a usable CA");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("no trusted CA certificate") && said.contains("ca_file"),
        "{said}"
    );
}

/// A user name is the caller's text: in the plain-text log it is quoted and escaped, so a
/// name made to look like more fields (`x result=accept`) cannot pass for an accept to a
/// grep or a SIEM that reads the log line by line.
#[test]
fn a_user_name_cannot_forge_fields_in_the_text_log() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let r = radclient(
        &srv.addr.to_string(),
        SECRET,
        "User-Name = \"x result=accept mode=totp\", User-Password = \"wrong\", \
         Message-Authenticator = 0x00",
    );
    assert_eq!(r.code, "Access-Reject", "{}", r.output);
    // The log reaches the test through a pipe: waited for, not read at once.
    assert!(
        srv.log_shows("user=\"x result=accept mode=totp\" result=reject"),
        "{}",
        srv.log()
    );
    let log = srv.log();
    assert!(
        !log.contains("user=x result=accept"),
        "an unquoted user name:\n{log}"
    );
}

/// The client's name is quoted in the text log as every other string field is: a name
/// with a space ("RD Gateway") split under a logfmt parser, `nas=RD Gateway` read as
/// `nas=RD` and a stray `Gateway`, in the audit line and in the request span alike.
#[test]
fn a_client_name_is_quoted_in_the_text_log() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.clients = vec![Nas::challenge("RD Gateway", "127.0.0.1")];
    });
    let r = py_password(&srv, "alice", "wrong");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(
        srv.log_shows("user=\"alice\" result=reject"),
        "{}",
        srv.log()
    );
    let log = srv.log();
    let audit = log
        .lines()
        .find(|l| l.contains("user=\"alice\" result=reject"))
        .unwrap();
    assert!(
        audit.contains("request{nas=\"RD Gateway\"") && audit.contains(" nas=\"RD Gateway\" "),
        "the span's and the line's nas unquoted:\n{audit}"
    );
    assert!(!log.contains("nas=RD Gateway"), "an unquoted name:\n{log}");
}

/// A NAS that does not send State back (F5 FirePass does this) turns the answer to our
/// prompt into a fresh login whose password is the code. It cannot be accepted, but the
/// audit reason says what happened, so the admin knows to switch that client to inline.
#[test]
fn answer_without_state_is_refused_and_explained() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let seed = srv.enroll("alice", &[]);
    srv.enroll("bob", &[]);
    let host = srv.addr.to_string();
    let ask = |user: &str, pw: &str| {
        radclient(
            &host,
            SECRET,
            &format!(
                "User-Name = \"{user}\", User-Password = \"{pw}\", Message-Authenticator = 0x00"
            ),
        )
    };
    const HINT: &str = "the NAS may not send State back";

    let r1 = ask("alice", ALICE_PW);
    assert_eq!(r1.code, "Access-Challenge", "{}", r1.output);
    let code = totp(&seed, now(), &[]);
    let r2 = ask("alice", &code);
    assert_eq!(
        r2.code, "Access-Reject",
        "a code without State: {}",
        r2.output
    );
    // bob has no open prompt: his digits are just a wrong password, with no hint.
    let r3 = ask("bob", "123456");
    assert_eq!(r3.code, "Access-Reject", "{}", r3.output);

    let reason = |user: &str| -> Vec<String> {
        srv.audit_json(user)
            .iter()
            .filter(|r| r["result"] == "reject")
            .map(|r| r["reason"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let alice = reason("alice");
    assert_eq!(alice.len(), 1, "{alice:?}");
    assert!(
        alice[0].starts_with("bad password") && alice[0].contains(HINT),
        "{alice:?}"
    );
    assert!(
        !alice[0].contains(&code),
        "the code is in the audit: {alice:?}"
    );
    let bob = reason("bob");
    assert_eq!(bob.len(), 1, "{bob:?}");
    assert!(!bob[0].contains(HINT), "{bob:?}");
    let log = srv.log();
    assert!(
        log.contains(HINT),
        "the log line carries the reason:\n{log}"
    );

    // The prompt is still open and still answers with its State.
    let state = r1.state.expect("State");
    let r4 = radclient(
        &host,
        SECRET,
        &format!(
            "User-Name = \"alice\", User-Password = \"{code}\", State = {state}, \
             Message-Authenticator = 0x00"
        ),
    );
    assert_eq!(r4.code, "Access-Accept", "{}", r4.output);
}

/// `[audit] keep_days`: at start (and then once a minute) the server deletes older
/// records, a backlog in batches, and keeps the rest.
#[test]
fn audit_records_older_than_keep_days_are_deleted() {
    let slapd = directory();
    let (dir, config) = config_with(&slapd, "include_email = true", "keep_days = 1");
    // An admin command creates the database; then a backlog is written into it as an older
    // radmfa would have: 4,500 records three days old (over two batches), one 12 hours old.
    let out = std::process::Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(&config)
        .args(["user", "enroll-totp", "alice", "--uri-only"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let script = r#"
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
now = int(time.time())
row = "INSERT INTO audit (time, user, mode, result, server_name, latency_ms) VALUES (?, ?, 'totp', 'accept', 'old-node', 3)"
db.executemany(row, [(now - 3 * 86400 + i, "olduser") for i in range(4500)])
db.execute(row, (now - 12 * 3600, "recentuser"))
db.commit()
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir.path().join("radmfa.db"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let srv = Server::start_with(dir, config);
    assert!(
        srv.log_shows("old audit records deleted"),
        "no purge in the log:\n{}",
        srv.log()
    );
    let log = srv.log();
    assert!(log.contains("deleted=4500"), "{log}");
    // A backlog (more than a batch) is said when its deletion starts, before the count.
    let start = log.find("deleting a backlog of audit records past [audit] keep_days = 1");
    assert!(
        start.is_some_and(|s| s < log.find("deleted=4500").unwrap()),
        "{log}"
    );
    assert!(!log.contains("audit records are kept forever"), "{log}");
    assert!(srv.audit_json("olduser").is_empty(), "old records left");
    assert_eq!(
        srv.audit_json("recentuser").len(),
        1,
        "a recent record went"
    );
    // The enrollment's own audit record (just now) stays too.
    assert!(!srv.audit_json("alice").is_empty());
}

/// `radmfa audit --count-by`: the report's counts agree with the records themselves.
#[test]
fn audit_report_counts_match_the_records() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let seed = srv.enroll("alice", &[]);
    srv.enroll("bob", &[]);
    for _ in 0..2 {
        let r1 = py_password(&srv, "alice", ALICE_PW);
        let state = r1["state"].as_str().unwrap().to_string();
        let r2 = py_code(&srv, "alice", &totp(&seed, now(), &[]), &state);
        assert!(
            matches!(code_of(&r2), "Access-Accept" | "Access-Reject"),
            "{r2}"
        );
    }
    for _ in 0..3 {
        let r = py_password(&srv, "bob", "wrong-password");
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
    }

    let out = srv.cli(&["audit", "--count-by", "user", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for user in ["alice", "bob"] {
        let records = srv.audit_json(user);
        let line = lines
            .iter()
            .find(|l| l["key"] == user)
            .unwrap_or_else(|| panic!("{user} missing from {lines:?}"));
        assert_eq!(line["total"], records.len(), "{user}: {line}");
        for result in ["accept", "reject", "challenge", "enroll"] {
            let n = records.iter().filter(|r| r["result"] == result).count();
            let got = line["results"][result].as_u64().unwrap_or(0) as usize;
            assert_eq!(got, n, "{user} {result}: {line} vs {records:#?}");
        }
    }
    assert_eq!(lines[0]["key"], "alice", "the busiest first: {lines:?}");

    // --nas finds the client's records whatever case its name is typed in (the config
    // holds one client per name, case aside); a name no client has is said, not just an
    // empty report.
    let logins = lines
        .iter()
        .map(|l| l["total"].as_u64().unwrap())
        .sum::<u64>()
        - srv
            .audit_json("alice")
            .iter()
            .chain(srv.audit_json("bob").iter())
            .filter(|r| r["nas_name"].is_null())
            .count() as u64;
    for typed in ["local", "LoCaL"] {
        let out = srv.cli(&["audit", "--nas", typed, "--limit", "0", "--json"]);
        let found = String::from_utf8(out.stdout).unwrap();
        assert_eq!(found.lines().count() as u64, logins, "{typed}: {found}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = srv.cli(&["audit", "--nas", "lcoal", "--limit", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && err.contains("--nas \"lcoal\" is no [[client]] name in the config (local)"),
        "{err}"
    );
    // The client renamed in case only: its records, written under the old spelling, are
    // still found under either.
    let renamed = srv.dir.path().join("renamed.toml");
    let text = std::fs::read_to_string(&srv.config).unwrap();
    assert!(text.contains("name = \"local\""), "{text}");
    std::fs::write(
        &renamed,
        text.replace("name = \"local\"", "name = \"Local\""),
    )
    .unwrap();
    for typed in ["local", "Local"] {
        let out = common::radmfa::cli_on(
            &renamed,
            &["audit", "--nas", typed, "--limit", "0", "--json"],
        );
        let found = String::from_utf8(out.stdout).unwrap();
        assert_eq!(found.lines().count() as u64, logins, "{typed}: {found}");
    }

    // The text form, by reason, rejects only: bob's three wrong passwords on one line.
    let out = srv.cli(&["audit", "--count-by", "reason", "--result", "reject"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("TOTAL") && header.ends_with("REASON"),
        "{text}"
    );
    let bad = text
        .lines()
        .find(|l| l.ends_with("bad password"))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = bad.split_whitespace().collect();
    assert_eq!(&cols[..5], ["3", "0", "3", "0", "0"], "{text}");

    // By day: everything happened today (UTC).
    let out = srv.cli(&["audit", "--count-by", "day", "--json"]);
    let days = String::from_utf8(out.stdout).unwrap();
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert_eq!(days.lines().count(), 1, "{days}");
    assert!(days.contains(&today), "{days}");

    // A User-Name with terminal escapes (erase the line, move up) reaches the admin's
    // terminal as visible text, in the table and in the report, never as an escape.
    let sneaky = "eve\u{1b}[2K\u{1b}[1A";
    let r = py_password(&srv, sneaky, "wrong-password");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    for args in [
        &["audit", "--limit", "5"][..],
        &["audit", "--count-by", "user"][..],
        &["user", "list"][..],
    ] {
        let out = srv.cli(args);
        assert!(out.status.success(), "{out:?}");
        assert!(!out.stdout.contains(&0x1b), "{args:?}: {out:?}");
    }
    let out = String::from_utf8(srv.cli(&["audit", "--limit", "5"]).stdout).unwrap();
    assert!(out.contains("eve\\u{1b}[2k"), "{out}");
}

/// `radmfa audit --follow`: an admin on the phone with a user watches that user's logins
/// as they are answered, then stops it with SIGTERM (or Ctrl-C).
#[test]
fn audit_follow_shows_logins_as_they_are_answered() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let seed = srv.enroll("alice", &[]);
    let follow = Follower::start(&srv.config, &["--json", "--user", "alice"]);
    // And as a table, as an admin would watch it.
    let table = Follower::start(&srv.config, &["--user", "alice"]);
    // First what is there already: the enrollment.
    assert_eq!(follow.next()["result"], "enroll");
    let header = table.next_line();
    assert!(
        header.starts_with("TIME") && header.ends_with("REASON"),
        "{header}"
    );
    assert!(table.next_line().contains(" enroll "));

    let r1 = py_password(&srv, "alice", ALICE_PW);
    let state = r1["state"].as_str().unwrap().to_string();
    let r2 = py_code(&srv, "alice", &totp(&seed, now(), &[]), &state);
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    let challenge = follow.next();
    assert_eq!(
        (&challenge["user"], &challenge["result"]),
        (&"alice".into(), &"challenge".into())
    );
    assert_eq!(follow.next()["result"], "accept");
    // Another user's login is not shown; alice's next one is.
    assert_eq!(code_of(&py_password(&srv, "bob", "wrong")), "Access-Reject");
    assert_eq!(
        code_of(&py_password(&srv, "alice", "wrong")),
        "Access-Reject"
    );
    let reject = follow.next();
    assert_eq!(
        (&reject["user"], &reject["result"]),
        (&"alice".into(), &"reject".into())
    );
    for result in ["challenge", "accept", "reject"] {
        let row = table.next_line();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1..3], ["alice", result], "{row}");
    }
    let extra = follow.next_within(Duration::from_millis(1500));
    assert!(
        extra.is_none(),
        "a record shown twice or bob's shown: {extra:?}"
    );
    for f in [follow, table] {
        let status = f.stop();
        assert!(status.success(), "{status}");
    }
}

/// `radmfa audit --follow | head -n 2` in a real shell ends when head has its two lines,
/// as `tail -f | head` does, not at the next record (none comes here), and cleanly.
#[test]
fn audit_follow_into_head_ends_with_head() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    srv.enroll("alice", &[]);
    let pipeline = format!(
        "set -o pipefail; '{}' --config '{}' audit --follow --user alice | head -n 2",
        common::radmfa::bin().display(),
        srv.config.display()
    );
    // Its own process group, so that a failure stops radmfa too, not only bash.
    let mut child = std::process::Command::new("bash")
        .args(["-c", &pipeline])
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(8) {
            let group = format!("-{}", child.id());
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &group])
                .status();
            panic!("audit --follow | head still running after head ended");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(status.success(), "both ends exit 0: {status}");
    assert!(
        text.starts_with("TIME") && text.lines().nth(1).unwrap().contains(" enroll "),
        "{text}"
    );
}

/// `radmfa user enroll-totp --verify`, typed at as a helpdesk would: the token is stored
/// only once a code from the app matches, and that code is then used up; without a match
/// (three wrong codes, or Enter) nothing is stored.
#[test]
fn enroll_with_verify_stores_the_token_only_after_a_matching_code() {
    use std::io::{BufRead, BufReader, Write};
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let enroll = |user: &str| {
        let mut child = std::process::Command::new(common::radmfa::bin())
            .arg("--config")
            .arg(&srv.config)
            .args(["user", "enroll-totp", user, "--verify", "--no-qr"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut secret = String::new();
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 {
            if let Some(s) = line.strip_prefix("Secret: ") {
                secret = s.trim().to_string();
                break;
            }
            line.clear();
        }
        assert!(!secret.is_empty(), "no secret shown");
        (child, out, secret)
    };
    let finish = |mut child: std::process::Child, mut out: BufReader<std::process::ChildStdout>| {
        // Nothing more will be typed: a prompt asking again sees the end, not a wait.
        drop(child.stdin.take());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        (child.wait().unwrap(), rest, err)
    };

    // alice: a wrong code, then the right one.
    let (mut child, out, seed) = enroll("alice");
    let code = totp(&seed, now(), &[]);
    let wrong = totp(&seed, now() + 3600, &[]);
    let stdin = child.stdin.as_mut().unwrap();
    writeln!(stdin, "{wrong}").unwrap();
    // Typed as the app shows it, in two groups.
    writeln!(stdin, "{} {}", &code[..3], &code[3..]).unwrap();
    let (status, said, err) = finish(child, out);
    assert!(status.success(), "{status}: {err}");
    assert!(said.contains("Verified: token TOTP-"), "{said}");
    assert!(err.contains("does not match"), "{err}");
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["result"], "enroll");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .ends_with("verified with a code from the app"),
        "{rec}"
    );
    // The code that verified the token is used: it cannot log in; the next one can.
    let r1 = py_password(&srv, "alice", ALICE_PW);
    let state = r1["state"].as_str().unwrap().to_string();
    assert_eq!(
        code_of(&py_code(&srv, "alice", &code, &state)),
        "Access-Reject"
    );
    let r1 = py_password(&srv, "alice", ALICE_PW);
    let state = r1["state"].as_str().unwrap().to_string();
    let next = totp(&seed, now() + 30, &[]);
    assert_eq!(
        code_of(&py_code(&srv, "alice", &next, &state)),
        "Access-Accept"
    );

    // bob: three wrong codes; then Enter at once. Nothing stored either time.
    for answers in [vec!["111111", "222222", "333333"], vec![""]] {
        let (mut child, out, _) = enroll("bob");
        let stdin = child.stdin.as_mut().unwrap();
        for a in &answers {
            writeln!(stdin, "{a}").unwrap();
        }
        let (status, _, err) = finish(child, out);
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(err.contains("nothing was stored"), "{err}");
        let show = srv.cli(&["user", "show", "bob"]);
        assert!(!show.status.success(), "bob has a token: {show:?}");
    }
    assert!(srv.audit_json("bob").is_empty(), "no enroll record for bob");
}

/// `strip_domains` in its older place, `[ldap]` (tests/upstream.rs gives it in `[users]`):
/// CORP\alice and alice@corp.example.org are alice, at login and in admin commands; a
/// domain not listed is part of the name (nobody), answered as any unknown user is.
#[test]
fn listed_domains_are_taken_off_user_names() {
    let slapd = directory();
    let (dir, config) = config_with(
        &slapd,
        "user_filter = \"(uid={user})\"",
        "strip_domains = [\"CORP\", \"corp.example.org\"]",
    );
    let srv = Server::start_with(dir, config);
    // Enrolled under the domain form: the same user as plain alice.
    let seed = srv.enroll("CORP\\Alice", &[]);
    let show = srv.cli(&["user", "show", "alice", "--json"]);
    assert!(show.status.success(), "{show:?}");
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("TOTP-"),
        "no token for alice: {show:?}"
    );

    // Each login a later time step (a step once used is refused), all three within the
    // window of ±1 step around the server's clock: the previous, the current, the next.
    // Six pyrad runs take a few seconds; a step boundary among them would put a code out
    // of the window (the previous step's two steps back, or, after a late code taught the
    // server a drift of -1, the next step's two ahead).
    common::peers::clear_of_step_boundary(10);
    for (typed, offset) in [
        ("CORP\\alice", -30),
        ("alice@Corp.Example.Org", 0),
        ("alice", 30),
    ] {
        let r1 = py_password(&srv, typed, ALICE_PW);
        assert_eq!(code_of(&r1), "Access-Challenge", "{typed}: {r1}");
        let state = r1["state"].as_str().unwrap().to_string();
        let r2 = py_code(&srv, typed, &totp(&seed, now() + offset, &[]), &state);
        assert_eq!(code_of(&r2), "Access-Accept", "{typed}: {r2}");
    }
    let accepts = srv
        .audit_json("alice")
        .iter()
        .filter(|r| r["result"] == "accept")
        .count();
    assert_eq!(accepts, 3, "all three logins are alice's");
    // Admin commands take the name as typed too.
    let out = srv.cli(&["token", "list", "--user", "CORP\\alice", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["user"], "alice", "{listed}");
    // One listed domain comes off, as at login (CORP\CORP\alice logs in as corp\alice),
    // a name the directory does not have: refused under it, given with --force.
    let out = srv.cli(&["user", "app-password", "add", "CORP\\CORP\\alice"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("corp\\alice: not in the directory"),
        "{out:?}"
    );
    let out = srv.cli(&[
        "user",
        "app-password",
        "add",
        "CORP\\CORP\\alice",
        "--force",
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(said.contains("for corp\\alice."), "{said}");

    // Another domain: not alice; the same reply as a user the directory lacks.
    let other = py_password(&srv, "OTHER\\alice", ALICE_PW);
    let nobody = py_password(&srv, "nobody", ALICE_PW);
    assert_eq!(code_of(&other), "Access-Reject", "{other}");
    assert_same_reply(&other, &nobody);
    let audit = srv.audit_json("OTHER\\alice");
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["user"], "other\\alice");
    assert_eq!(audit[0]["reason"], "unknown user", "{audit:#?}");
}

/// A value a listed domain is taken off is not a name of its entry: carl's mail is
/// alice@example.org (a UPN prefix that is another account's name, as AD allows), which
/// logs in as alice. So alice's token does not make carl "also named" alice, and carl is
/// refused for having no factor of his own, not sent to log in as alice.
#[test]
fn a_stripped_name_of_another_account_is_not_an_other_name() {
    use common::slapd::SlapdOptions;
    let slapd = Slapd::start_with(
        &[LdapUser::new("alice", ALICE_PW)],
        SlapdOptions {
            extra_ldif: "dn: uid=carl,ou=people,dc=example,dc=org\n\
                         objectClass: inetOrgPerson\nuid: carl\ncn: Carl\nsn: C\n\
                         mail: alice@example.org\nuserPassword: carl-Secret-pw\n\n"
                .into(),
            ..Default::default()
        },
    );
    let (dir, config) = config_with(
        &slapd,
        "user_filter = \"(uid={user})\"",
        "strip_domains = [\"example.org\"]",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "user_filter = \"(uid={user})\"",
            "user_filter = \"(|(uid={user})(mail={user}))\"",
        ),
    )
    .unwrap();
    let srv = Server::start_with(dir, config);
    srv.enroll("alice", &[]);
    let r = py_password(&srv, "carl", "carl-Secret-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(
        srv.audit_json("carl")[0]["reason"],
        "no second factor enrolled",
        "{}",
        srv.log()
    );
}

/// Names of an entry the directory keeps apart: `uid` listed twice in one entry (slapadd
/// keeps the values apart, and slapd sends the attribute twice), and a tagged `uid;lang-en`
/// that `(uid=…)` matches too. Each is a name of the entry, so a login under the other
/// name is refused on a client with `no_factor = "allow"`, not let in on the password alone
/// (before, ldap3 kept only the last `uid` listed, and radmfa read no tagged one). And a
/// name the directory matches by a rule radmfa does not follow (slapd folds a fullwidth
/// letter) is answered as an unknown one, not let in under a name the entry does not have.
/// And the entry's names (givenName, sn) are cut to 256 characters where they are shown.
#[test]
fn names_the_directory_keeps_apart_are_names_of_the_entry() {
    use common::slapd::SlapdOptions;
    // dave wrote himself names of 100,000 characters (OpenLDAP ACLs often let users edit
    // givenName and sn): his audit records hold 256 of each, not the whole.
    let dave = LdapUser {
        given_name: "D".repeat(100_000),
        sn: "é".repeat(100_000),
        ..LdapUser::new("dave", "dave-Secret-pw")
    };
    let slapd = Slapd::start_with(
        &[dave],
        SlapdOptions {
            extra_ldif: "dn: uid=carol,ou=people,dc=example,dc=org\n\
                         objectClass: inetOrgPerson\nuid: carol\ncn: Carol\nsn: C\n\
                         userPassword: carol-Secret-pw\nuid: carol.x\n\n\
                         dn: uid=hank,ou=people,dc=example,dc=org\n\
                         objectClass: inetOrgPerson\nuid: hank\nuid;lang-en: hank.x\n\
                         cn: Hank\nsn: H\nuserPassword: hank-Secret-pw\n\n"
                .into(),
            ..Default::default()
        },
    );
    let srv = start(&slapd, allow_password_only);
    srv.enroll("carol", &[]);
    srv.enroll("hank.x", &[]);
    for (user, pw, enrolled) in [
        ("carol.x", "carol-Secret-pw", "carol"),
        ("hank", "hank-Secret-pw", "hank.x"),
    ] {
        let r = py_password(&srv, user, pw);
        assert_eq!(code_of(&r), "Access-Reject", "{user}: {r}");
        let reason = srv.audit_json(user)[0]["reason"].clone();
        assert!(
            reason
                .as_str()
                .is_some_and(|r| r.contains(&format!("also named {enrolled:?}"))),
            "{user}: {reason}\n{}",
            srv.log()
        );
    }
    for (user, pw) in [("carol", "carol-Secret-pw"), ("hank.x", "hank-Secret-pw")] {
        let r = py_password(&srv, user, pw);
        assert_eq!(code_of(&r), "Access-Challenge", "{user}: {r}");
    }
    // dave has no second factor: the password alone lets him in, under his name only.
    assert_eq!(
        code_of(&py_password(&srv, "dave", "dave-Secret-pw")),
        "Access-Accept"
    );
    let accepted = &srv.audit_json("dave")[0];
    for (field, letter) in [("first_name", 'D'), ("last_name", 'é')] {
        let shown = accepted[field].as_str().unwrap_or_default();
        // Compared by length first: a failure would otherwise print 100,000 characters.
        assert_eq!(shown.chars().count(), 256, "{field}");
        assert!(shown.chars().all(|c| c == letter), "{field}");
    }
    // Twice: each login is audited, and the log says it once (a spray of such names
    // flooded it).
    for _ in 0..2 {
        let r = py_password(&srv, "\u{ff44}ave", "dave-Secret-pw");
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
    }
    let audit = srv.audit_json("\u{ff44}ave");
    assert_eq!(audit.len(), 2, "{audit:#?}");
    assert!(
        audit.iter().all(|a| a["reason"] == "unknown user"),
        "{audit:#?}"
    );
    let log = srv.log();
    let said = log
        .lines()
        .filter(|l| l.contains("LDAP entry found for a name it does not have"))
        .count();
    assert_eq!(said, 1, "{log}");
}

/// A service account the directory refuses (its password changed in the directory and not
/// in radmfa) is not bound again for every request: each refused bind counts towards the
/// account's lockout in Active Directory, and each logged an ERROR. The requests meanwhile
/// are refused at once, and the audit says why and for how long.
#[test]
fn a_refused_service_account_is_not_bound_again_for_every_request() {
    let slapd = directory();
    let dir = tempfile::tempdir().unwrap();
    let config = common::radmfa::write_config(dir.path(), &Options::new(&slapd.url));
    let text = std::fs::read_to_string(&config).unwrap();
    let right = "bind_password = \"adminpw\"";
    assert!(text.contains(right), "{text}");
    std::fs::write(&config, text.replace(right, "bind_password = \"rotated\"")).unwrap();
    let srv = Server::start_with(dir, config);
    // The start's check binds once, is refused, and holds the logins' binds off for the
    // first hold (5 s): the logins below come after it, on an empty pool.
    assert!(
        srv.log_shows("service bind as cn=admin,dc=example,dc=org: rc=49"),
        "{}",
        srv.log()
    );
    std::thread::sleep(Duration::from_millis(5_500));
    assert_eq!(slapd.bind_count("cn=admin,dc=example,dc=org"), 1);
    // Eight logins at once on an empty pool: each wants a fresh connection, and before the
    // binds took turns each bound (and was refused) before the first refusal was known.
    use radmfa::radius::client::{parse_reply, AccessRequestBuilder};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(srv.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for id in 0..8u8 {
        let (raw, _) = AccessRequestBuilder::new(id, "alice")
            .password(ALICE_PW.as_bytes())
            .build(SECRET.as_bytes());
        sock.send(&raw).unwrap();
    }
    let mut buf = [0u8; 4096];
    for _ in 0..8 {
        let n = sock.recv(&mut buf).expect("every login answered");
        assert_eq!(parse_reply(&buf[..n]).unwrap().code, 3, "Access-Reject");
    }
    for _ in 0..2 {
        let r = py_password(&srv, "alice", ALICE_PW);
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
    }
    let refused = |l: &str| l.contains("LDAP service account bind refused");
    assert_eq!(srv.log_lines_at_least(1, refused), 1, "{}", srv.log());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(slapd.bind_count("cn=admin,dc=example,dc=org"), 2);
    let audit = srv.audit_json("alice");
    assert_eq!(audit.len(), 10, "{audit:#?}");
    let reasons: Vec<&str> = audit.iter().filter_map(|r| r["reason"].as_str()).collect();
    let held = reasons
        .iter()
        .filter(|r| r.contains("invalidCredentials") && r.contains("not tried again for"))
        .count();
    assert_eq!(held, 9, "{reasons:?}");
    assert!(!srv.log().contains("rotated"), "the password is logged");
}

/// `radmfa user bypass`: the next login with the right password needs no code, once, on a
/// prompting client and on an inline one (the password alone); a wrong password does not
/// use it up; --cancel takes it back.
#[test]
fn one_time_bypass_lets_one_login_in_without_a_code() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.clients.push(Nas {
            otp_mode: "inline",
            ..Nas::challenge("inline-nas", "127.0.0.2")
        });
    });
    srv.enroll("alice", &[]);
    let bypass = |args: &[&str]| {
        let mut all = vec!["user", "bypass", "alice"];
        all.extend_from_slice(args);
        let out = srv.cli(&all);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let inline = |pw: &str| {
        pyrad(
            srv.port(),
            SECRET,
            &["--bind", "127.0.0.2", "--user", "alice", "--password", pw],
        )
    };

    assert!(bypass(&["--for", "2m"]).contains("needs no second factor (once)"));
    let show = srv.cli(&["user", "show", "alice"]);
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("bypass:   until"),
        "{show:?}"
    );
    let wrong = py_password(&srv, "alice", "wrong-password");
    assert_eq!(code_of(&wrong), "Access-Reject", "{wrong}");
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Accept", "no prompt with a bypass: {r}");
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(
        (rec["mode"].as_str(), rec["result"].as_str()),
        (Some("bypass"), Some("accept"))
    );
    let again = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&again), "Access-Challenge", "once only: {again}");
    // Cancelled after its use: the use is the news, not "check the spelling".
    let out = srv.cli(&["user", "bypass", "alice", "--cancel"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("its bypass was used already, by a login at")
            && err.contains("through local")
            && !err.contains("spelling"),
        "{err}"
    );

    // Inline: the password alone, which is otherwise refused for want of a code.
    assert_eq!(code_of(&inline(ALICE_PW)), "Access-Reject");
    bypass(&[]);
    assert_eq!(code_of(&inline(ALICE_PW)), "Access-Accept");
    assert_eq!(code_of(&inline(ALICE_PW)), "Access-Reject", "once only");

    // Cancelled before use.
    bypass(&["--for", "5m"]);
    assert!(bypass(&["--cancel"]).contains("bypass cancelled"));
    // Cancelled again: said so, not the earlier bypass's use as news.
    let out = srv.cli(&["user", "bypass", "alice", "--cancel"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("its bypass was cancelled already, at") && !err.contains("used"),
        "{err}"
    );
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    let admin: Vec<String> = srv
        .audit_json("alice")
        .iter()
        .filter(|r| r["result"] == "bypass")
        .map(|r| r["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(admin.len(), 4, "three set, one cancelled: {admin:?}");
    assert_eq!(admin[0], "cancelled");
}

/// Logins that race for one bypass: one gets in, and those that lost (they passed the
/// look at the bypass before the winner used it) are refused and audited under mode
/// "bypass", so `audit --mode bypass` shows the race. They were audited under "none".
#[test]
fn the_losers_of_a_bypass_race_are_audited_as_bypass_logins() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    srv.enroll("alice", &[]);
    for _round in 0..10 {
        let out = srv.cli(&["user", "bypass", "alice", "--for", "5m"]);
        assert!(out.status.success(), "{out:?}");
        let at_once = std::sync::Arc::new(std::sync::Barrier::new(12));
        let logins: Vec<_> = (0..12u8)
            .map(|id| {
                let (sock, at_once) = (srv.udp(), at_once.clone());
                std::thread::spawn(move || {
                    let (pkt, _) = AccessRequestBuilder::new(id, "alice")
                        .password(ALICE_PW.as_bytes())
                        .build(SECRET.as_bytes());
                    at_once.wait();
                    sock.send(&pkt).unwrap();
                    let mut buf = [0u8; 4096];
                    let n = sock.recv(&mut buf).expect("a reply");
                    parse_reply(&buf[..n]).unwrap().code
                })
            })
            .collect();
        let codes: Vec<u8> = logins.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(codes.iter().filter(|&&c| c == 2).count(), 1, "{codes:?}");
        let records = srv.audit_json("alice");
        let lost: Vec<_> = records
            .iter()
            .filter(|r| {
                r["reason"]
                    .as_str()
                    .is_some_and(|why| why.starts_with("one-time bypass already used"))
            })
            .collect();
        if !lost.is_empty() {
            assert!(lost.iter().all(|r| r["mode"] == "bypass"), "{lost:?}");
            return;
        }
    }
    panic!("no login lost a bypass race in 10 rounds of 12 at once");
}

/// A waiting bypass is for a login that needs a second factor: one that `no_factor =
/// "allow"` lets in on the password anyway (bob has no factor) is audited primary-only and
/// leaves it waiting, so his next login on a client that asks for a factor still gets in.
/// It was spent there, and that next login was refused "no second factor enrolled".
#[test]
fn a_bypass_is_not_spent_on_a_login_that_needs_no_second_factor() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.clients.push(Nas {
            no_factor: "allow",
            ..Nas::challenge("legacy", "127.0.0.2")
        });
    });
    let out = srv.cli(&["user", "bypass", "bob", "--for", "5m"]);
    assert!(out.status.success(), "{out:?}");
    let r = pyrad(
        srv.port(),
        SECRET,
        &[
            "--bind",
            "127.0.0.2",
            "--user",
            "bob",
            "--password",
            "bob-Secret-pw",
        ],
    );
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    let rec = &srv.audit_json("bob")[0];
    assert_eq!(
        (rec["mode"].as_str(), rec["result"].as_str()),
        (Some("primary-only"), Some("accept")),
        "{rec}"
    );
    let show = srv.cli(&["user", "show", "bob"]);
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("bypass:   until"),
        "still waiting: {show:?}"
    );
    // The client that asks for a factor: the bypass lets him in, once.
    let r = py_password(&srv, "bob", "bob-Secret-pw");
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(srv.audit_json("bob")[0]["mode"], "bypass");
    let r = py_password(&srv, "bob", "bob-Secret-pw");
    assert_eq!(code_of(&r), "Access-Reject", "used: {r}");
}

/// On an inline client, a password that holds the delimiter and is sent alone (a bypass
/// waiting) is the password: the field is split only where digits follow the last
/// delimiter. It was split into "pa" and the "code" "ss-word", and the bind with "pa"
/// failed (and counted against the directory's lockout).
#[test]
fn an_inline_password_holding_the_delimiter_is_not_split_without_a_code_after_it() {
    let slapd = Slapd::start(&[LdapUser::new("carl", "pa,ss-word")]);
    let srv = start(&slapd, |o| {
        o.clients = vec![Nas {
            otp_mode: "inline",
            ..Nas::challenge("inline-nas", "127.0.0.1")
        }];
    });
    let seed = srv.enroll("carl", &[]);
    let inline = |pw: &str| pyrad(srv.port(), SECRET, &["--user", "carl", "--password", pw]);
    let out = srv.cli(&["user", "bypass", "carl"]);
    assert!(out.status.success(), "{out:?}");
    let r = inline("pa,ss-word");
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(srv.audit_json("carl")[0]["mode"], "bypass");
    // With a code after it, the same password splits at the last delimiter as before.
    let code = totp(&seed, now(), &[]);
    let r = inline(&format!("pa,ss-word,{code}"));
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
}

#[test]
fn expired_state_is_rejected() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.extra = "\n[challenge]\ntimeout_secs = 2\n".into();
    });
    let seed = srv.enroll("alice", &[]);
    let r1 = py_password(&srv, "alice", ALICE_PW);
    let state = r1["state"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(3100));
    let r2 = py_code(&srv, "alice", &totp(&seed, now(), &[]), &state);
    assert_eq!(code_of(&r2), "Access-Reject", "{r2}");
    assert_eq!(
        r2["messages"][0],
        "The code prompt has expired. Please log in again."
    );
    // The server still holds the expired prompt (housekeeping deletes it a minute later):
    // the audit says it expired, not that the State may be unknown or used.
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["reason"]
            .as_str()
            .is_some_and(|s| s.starts_with("challenge expired: the code prompt closed")),
        "{rec}"
    );
    // A State never issued is not said to have expired.
    let r3 = py_code(&srv, "alice", &totp(&seed, now(), &[]), "00112233");
    assert_eq!(code_of(&r3), "Access-Reject", "{r3}");
    assert_eq!(
        srv.audit_json("alice")[0]["reason"],
        "unknown, used or expired State"
    );
}

#[test]
fn inline_flow_with_radclient() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.clients = vec![Nas {
            otp_mode: "inline",
            ..Nas::challenge("inline-nas", "127.0.0.1")
        }];
    });
    let seed = srv.enroll("alice", &[]);
    let host = srv.addr.to_string();
    let login = |pw: &str| {
        radclient(
            &host,
            SECRET,
            &format!(
                "User-Name = \"alice\", User-Password = \"{pw}\", Message-Authenticator = 0x00"
            ),
        )
    };
    let t = now();
    let code = totp(&seed, t, &[]);
    let next = totp(&seed, t + 30, &[]);
    let wrong = if code == "123456" { "654321" } else { "123456" };
    assert_eq!(login(&format!("wrong-pw,{code}")).code, "Access-Reject");
    assert_eq!(login(&format!("{ALICE_PW},{wrong}")).code, "Access-Reject");
    assert_eq!(
        login(ALICE_PW).code,
        "Access-Reject",
        "password without code"
    );
    let ok = login(&format!("{ALICE_PW},{code}"));
    assert_eq!(ok.code, "Access-Accept", "{}", ok.output);
    assert_eq!(
        login(&format!("{ALICE_PW},{code}")).code,
        "Access-Reject",
        "replay"
    );
    assert_eq!(login(&format!("{ALICE_PW},{next}")).code, "Access-Accept");
}

/// OpenVPN's static challenge (`static-challenge "Code" 0` in the client's config): password
/// and code arrive together as SCRV1:<base64>:<base64>, which a RADIUS plugin on the
/// OpenVPN server passes on unchanged. Taken apart in either otp_mode.
#[test]
fn openvpn_static_challenge_answers_log_in() {
    use data_encoding::BASE64;
    let slapd = directory();
    for mode in ["challenge", "inline"] {
        let srv = start(&slapd, |o| {
            o.clients = vec![Nas {
                otp_mode: mode,
                ..Nas::challenge("openvpn", "127.0.0.1")
            }];
        });
        let seed = srv.enroll("alice", &[]);
        let host = srv.addr.to_string();
        let login = |pw: &str, code: &str| {
            let field = format!(
                "SCRV1:{}:{}",
                BASE64.encode(pw.as_bytes()),
                BASE64.encode(code.as_bytes())
            );
            radclient(
                &host,
                SECRET,
                &format!(
                    "User-Name = \"alice\", User-Password = \"{field}\", \
                     Message-Authenticator = 0x00"
                ),
            )
            .code
        };
        let code = totp(&seed, now(), &[]);
        let wrong = if code == "123456" { "654321" } else { "123456" };
        assert_eq!(login("wrong-pw", &code), "Access-Reject", "{mode}");
        assert_eq!(login(ALICE_PW, wrong), "Access-Reject", "{mode}");
        assert_eq!(login(ALICE_PW, &code), "Access-Accept", "{mode}");
        assert_eq!(login(ALICE_PW, &code), "Access-Reject", "{mode}: replay");
        // No code typed: a challenge client asks for it, an inline one has none to check.
        let expected = match mode {
            "challenge" => "Access-Challenge",
            _ => "Access-Reject",
        };
        assert_eq!(login(ALICE_PW, ""), expected, "{mode}");
        // A password that is a NUL (base64 "AA=="), which some servers read as empty: refused
        // before any check.
        assert_eq!(login("\0", &code), "Access-Reject", "{mode}");
        let audit = srv.audit_json("alice");
        assert_eq!(audit[0]["reason"], "bad password", "{mode}: {:?}", audit[0]);
        assert!(
            audit
                .iter()
                .any(|r| r["result"] == "accept" && r["mode"] == "totp"),
            "{mode}: {audit:#?}"
        );
        // A mangled field (the code part not base64): refused without a directory bind,
        // which would only count a failed logon against the account.
        let binds = slapd.bind_count(&LdapUser::new("alice", "").dn());
        let mangled = format!("SCRV1:{}:!!notbase64", BASE64.encode(ALICE_PW.as_bytes()));
        let r = radclient(
            &host,
            SECRET,
            &format!(
                "User-Name = \"alice\", User-Password = \"{mangled}\", \
                 Message-Authenticator = 0x00"
            ),
        );
        assert_eq!(r.code, "Access-Reject", "{mode}");
        let reason = srv.audit_json("alice")[0]["reason"].clone();
        assert!(
            reason
                .as_str()
                .is_some_and(|r| r.contains("mangled OpenVPN")),
            "{mode}: {reason}"
        );
        assert_eq!(
            slapd.bind_count(&LdapUser::new("alice", "").dn()),
            binds,
            "{mode}"
        );
    }
}

#[test]
fn unverifiable_requests_get_no_reply() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    srv.enroll("alice", &[]);
    let sock = srv.udp();
    let mut buf = [0u8; 4096];

    // No Message-Authenticator, client requires it.
    let (pkt, _) = AccessRequestBuilder::new(1, "alice")
        .password(ALICE_PW.as_bytes())
        .message_authenticator(false)
        .build(SECRET.as_bytes());
    sock.send(&pkt).unwrap();
    assert!(
        sock.recv(&mut buf).is_err(),
        "reply to a request without MA"
    );

    // Bad Message-Authenticator: built with another secret.
    let (pkt, _) = AccessRequestBuilder::new(2, "alice")
        .password(ALICE_PW.as_bytes())
        .build(b"not-the-secret");
    sock.send(&pkt).unwrap();
    assert!(sock.recv(&mut buf).is_err(), "reply to a bad MA");

    // One flipped bit in an otherwise valid request.
    let (mut pkt, _) = AccessRequestBuilder::new(3, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    let last = pkt.len() - 1;
    pkt[last] ^= 1;
    sock.send(&pkt).unwrap();
    assert!(sock.recv(&mut buf).is_err(), "reply to a tampered request");

    // Unknown source address (the client table lists 127.0.0.1 only).
    let other = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
    other
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let (pkt, _) = AccessRequestBuilder::new(4, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    other.send_to(&pkt, srv.addr).unwrap();
    assert!(other.recv(&mut buf).is_err(), "reply to an unknown client");

    // Signed, but naming two users (the second name is the one a proxy reading the last
    // would act on), or PAP beside CHAP: malformed, no reply. The second is counted, but
    // its log line is held back (one a minute per kind).
    for (id, attr) in [(40u8, (1u8, &b"mallory"[..])), (41, (3, &[1u8; 17][..]))] {
        let (pkt, _) = AccessRequestBuilder::new(id, "alice")
            .password(ALICE_PW.as_bytes())
            .attribute(attr.0, attr.1)
            .build(SECRET.as_bytes());
        sock.send(&pkt).unwrap();
        assert!(
            sock.recv(&mut buf).is_err(),
            "reply to a contradicting request"
        );
    }
    assert!(
        srv.log().contains(
            "not a well-formed RADIUS packet [malformed attributes: User-Name more than once]"
        ),
        "{}",
        srv.log()
    );

    // An Accounting-Request at the authentication port: dropped, and the line names it
    // (it said only "not an Access-Request or Status-Server", whatever the code).
    let (mut pkt, _) = AccessRequestBuilder::new(42, "alice").build(SECRET.as_bytes());
    pkt[0] = 4;
    sock.send(&pkt).unwrap();
    assert!(
        sock.recv(&mut buf).is_err(),
        "reply to an Accounting-Request"
    );
    assert!(
        srv.log_shows(
            "(127.0.0.1): radmfa answers only Access-Request and Status-Server on this port \
             [an Accounting-Request (code 4): radmfa does no accounting; send it to an \
             accounting server]"
        ),
        "{}",
        srv.log()
    );

    // A valid request right after is answered, with a verifiable reply, MA first.
    let (pkt, auth) = AccessRequestBuilder::new(5, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send(&pkt).unwrap();
    let n = sock.recv(&mut buf).expect("reply to a valid request");
    verify_reply(&buf[..n], &auth, SECRET.as_bytes()).expect("our own reply check");
    let reply = parse_reply(&buf[..n]).unwrap();
    assert_eq!(reply.code, 11, "Access-Challenge");
    assert_eq!(reply.attributes[0].0, 80, "Message-Authenticator first");

    // A reject is also signed with MA first.
    let (pkt, auth) = AccessRequestBuilder::new(6, "alice")
        .password(b"wrong")
        .build(SECRET.as_bytes());
    sock.send(&pkt).unwrap();
    let n = sock.recv(&mut buf).expect("reply");
    verify_reply(&buf[..n], &auth, SECRET.as_bytes()).expect("reject verifies");
    assert_eq!(parse_reply(&buf[..n]).unwrap().code, 3);

    let mut srv = srv;
    srv.stop();
    let log = srv.log();
    for counter in [
        "unknown_client=1",
        "missing_message_authenticator=1",
        "bad_message_authenticator=2",
    ] {
        assert!(log.contains(counter), "{counter} not counted:\n{log}");
    }
    // At the default log level each cause is named once, with what to do about it; the
    // second bad Message-Authenticator from the same NAS is held back, not logged again.
    for warning in [
        "from 127.0.0.3: no [[client]] entry matches this address; requests from unknown \
         clients are ignored (RFC 2865); add a [[client]] entry with address = \"127.0.0.3\" \
         if this NAS is yours",
        "(127.0.0.1): no Message-Authenticator, and this client has \
         require_message_authenticator = true",
        "(127.0.0.1): its Message-Authenticator does not verify: the NAS and this [[client]] \
         entry have different shared secrets",
    ] {
        let lines = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(warning));
        assert_eq!(lines.count(), 1, "{warning:?} in:\n{log}");
    }
    // The store is closed after the last request; its writes (the challenge and the audit
    // records of the two answered requests) went through the group-committing writer.
    let closed = log
        .lines()
        .find(|l| l.contains("store closed"))
        .map(strip_ansi)
        .unwrap_or_else(|| panic!("store not closed at shutdown:\n{log}"));
    let writes: u64 = closed
        .split("writes=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no write count in {closed:?}"));
    assert!(writes >= 3, "{closed}");
}

/// A log line without its terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the escape sequence ("ESC [ ... m").
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn proxy_state_is_echoed_in_order_and_status_server_answered() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let r = pyrad(
        srv.port(),
        SECRET,
        &[
            "--user",
            "alice",
            "--password",
            "wrong",
            "--proxy-state",
            "0102",
            "--proxy-state",
            "aabbcc",
        ],
    );
    assert_eq!(code_of(&r), "Access-Reject");
    assert_eq!(r["proxy_states"], serde_json::json!(["0102", "aabbcc"]));
    let s = pyrad(srv.port(), SECRET, &["--status"]);
    assert_eq!(code_of(&s), "Access-Accept", "{s}");
    assert_eq!(s["first_attribute"], 80);
}

#[test]
fn legacy_client_without_message_authenticator() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.clients = vec![Nas {
            require_ma: false,
            ..Nas::challenge("legacy", "127.0.0.1")
        }];
    });
    srv.enroll("alice", &[]);
    // The start-up log says what this client does without.
    assert!(
        srv.log()
            .contains("client \"legacy\": require_message_authenticator = false"),
        "{}",
        srv.log()
    );
    let sock = srv.udp();
    let mut buf = [0u8; 4096];
    let (pkt, auth) = AccessRequestBuilder::new(1, "alice")
        .password(ALICE_PW.as_bytes())
        .message_authenticator(false)
        .build(SECRET.as_bytes());
    sock.send(&pkt).unwrap();
    let n = sock.recv(&mut buf).expect("legacy client is answered");
    verify_reply(&buf[..n], &auth, SECRET.as_bytes()).unwrap();
    assert_eq!(parse_reply(&buf[..n]).unwrap().code, 11);
    // BlastRADIUS: even here, Proxy-State without Message-Authenticator is dropped.
    let (pkt, _) = AccessRequestBuilder::new(2, "alice")
        .password(ALICE_PW.as_bytes())
        .proxy_state(b"x")
        .message_authenticator(false)
        .build(SECRET.as_bytes());
    sock.send(&pkt).unwrap();
    assert!(sock.recv(&mut buf).is_err());
    // A NAS with another shared secret, and no Message-Authenticator to show it: the
    // password decodes to noise. Its refusal says why, in the audit and the log, not "bad
    // password". Noise that holds a NUL is cut there (and may be text), so a few tries.
    for id in 10..16 {
        let (pkt, _) = AccessRequestBuilder::new(id, "alice")
            .password(ALICE_PW.as_bytes())
            .message_authenticator(false)
            .build(b"not-the-shared-secret");
        sock.send(&pkt).unwrap();
        let n = sock.recv(&mut buf).expect("a Reject");
        assert_eq!(parse_reply(&buf[..n]).unwrap().code, 3);
    }
    // Signed with the right secret, the secret is proven: a Latin-1 password is the NAS's
    // character set, and no warning sends the admin to compare secrets.
    let (pkt, _) = AccessRequestBuilder::new(20, "alice")
        .password(b"P\xe4ssw0rd")
        .build(SECRET.as_bytes());
    sock.send(&pkt).unwrap();
    let n = sock.recv(&mut buf).expect("a Reject");
    assert_eq!(parse_reply(&buf[..n]).unwrap().code, 3);
    let audit = srv.audit_json("alice");
    let reasons = |what: &str| {
        audit
            .iter()
            .filter(|r| r["reason"].as_str().is_some_and(|w| w.contains(what)))
            .count()
    };
    assert!(
        reasons("probably have different shared secrets") >= 1,
        "{audit:?}"
    );
    assert_eq!(
        reasons("another character set (such as Latin-1)"),
        1,
        "{audit:?}"
    );
    // Once for the client, not once per request.
    let warned = |l: &str| l.contains("WARN") && l.contains("from this client did not decode");
    assert_eq!(srv.log_lines_at_least(1, warned), 1, "{}", srv.log());
}

#[test]
fn retransmit_gets_identical_bytes_and_one_ldap_bind() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    srv.enroll("alice", &[]);
    let sock = srv.udp();
    let binds_before = slapd.bind_count(&LdapUser::new("alice", "").dn());
    let (pkt, _) = AccessRequestBuilder::new(42, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    let mut replies = Vec::new();
    for _ in 0..3 {
        sock.send(&pkt).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("reply");
        replies.push(buf[..n].to_vec());
    }
    assert_eq!(replies[0], replies[1]);
    assert_eq!(replies[1], replies[2]);
    // Three copies sent back to back while the first is in flight: still one bind.
    let (pkt, _) = AccessRequestBuilder::new(43, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    for _ in 0..3 {
        sock.send(&pkt).unwrap();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    assert!(!got.is_empty());
    assert!(got.windows(2).all(|w| w[0] == w[1]));
    std::thread::sleep(Duration::from_millis(300));
    let binds = slapd.bind_count(&LdapUser::new("alice", "").dn()) - binds_before;
    assert_eq!(binds, 2, "one LDAP bind per distinct request");
    let challenges = srv
        .audit_json("alice")
        .iter()
        .filter(|r| r["result"] == "challenge")
        .count();
    assert_eq!(challenges, 2, "one audit record per distinct request");
}

/// `log_format = "json"`, as a SIEM reads it: one object per line; a login's audit line
/// carries user, result and nas as fields, and a dropped request's line its kind, source
/// and client as fields too (they were only in the message's prose).
#[test]
fn json_logs_carry_the_fields_a_siem_matches_on() {
    let slapd = directory();
    let srv = start(&slapd, |o| o.server_extra = "log_format = \"json\"".into());
    srv.enroll("alice", &[]);
    assert_eq!(
        code_of(&py_password(&srv, "alice", ALICE_PW)),
        "Access-Challenge"
    );
    let sock = srv.udp();
    let (pkt, _) = AccessRequestBuilder::new(2, "alice")
        .password(ALICE_PW.as_bytes())
        .build(b"not-the-secret");
    sock.send(&pkt).unwrap();
    let mut buf = [0u8; 4096];
    assert!(sock.recv(&mut buf).is_err(), "reply to a bad MA");
    assert!(srv.log_shows("radmfa::drops"), "{}", srv.log());
    let lines: Vec<serde_json::Value> = srv
        .log()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty(), "{}", srv.log());
    let audit = lines
        .iter()
        .find(|l| l["target"] == "radmfa::audit")
        .unwrap_or_else(|| panic!("{}", srv.log()));
    assert_eq!(
        (&audit["user"], &audit["result"], &audit["nas"]),
        (&"alice".into(), &"challenge".into(), &"local".into()),
        "{audit}"
    );
    let drop = lines
        .iter()
        .find(|l| l["target"] == "radmfa::drops")
        .unwrap_or_else(|| panic!("{}", srv.log()));
    assert_eq!(drop["src"], "127.0.0.1", "{drop}");
    assert_eq!(drop["nas"], "local", "{drop}");
    assert!(
        drop["kind"].as_str().is_some_and(|k| !k.is_empty()),
        "{drop}"
    );

    // A User-Name with a C1 CSI (U+009B, a CSI to xterm) and a bidi override: escaped in
    // the line, as `audit --json` escapes them, and the same name once parsed. They went to
    // `tail -f` and the journal raw.
    let hostile = "rc\u{9b}2J\u{202e}evil";
    let (pkt, _) = AccessRequestBuilder::new(3, hostile)
        .password(b"pw")
        .build(SECRET.as_bytes());
    sock.send(&pkt).unwrap();
    let _ = sock.recv(&mut buf);
    assert!(srv.log_shows("rc\\u009b2j"), "{}", srv.log());
    let log = srv.log();
    assert!(
        !log.contains('\u{9b}') && !log.contains('\u{202e}'),
        "raw in the log: {log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("\\u009b"))
        .unwrap_or_else(|| panic!("{log}"));
    let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
    // The name's key (case folded).
    assert_eq!(parsed["user"], hostile.to_lowercase(), "{line}");
}

#[test]
fn ldap_down_rejects_quickly_and_recovers() {
    let mut slapd = directory();
    let srv = start(&slapd, |o| o.ldap_timeout_ms = 1000);
    srv.enroll("alice", &[]);
    assert_eq!(
        code_of(&py_password(&srv, "alice", ALICE_PW)),
        "Access-Challenge"
    );
    slapd.stop();
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let audit = srv.audit_json("alice");
    let last = &audit[0];
    assert_eq!(last["result"], "reject");
    // A refused connection is known at once: the 1 s LDAP timeout is not waited out. Timed
    // by the server itself (the audit record's latency, from arrival to verdict): the
    // client's wall clock, with a Python start-up in it, swung by more than the margin on
    // a loaded machine.
    let latency = last["latency_ms"].as_i64().unwrap();
    assert!(latency < 500, "refused after {latency} ms: {last}");
    let reason = last["reason"].as_str().unwrap();
    assert!(
        reason.contains("directory: no LDAP server reachable"),
        "{last}"
    );
    // More logins meet the outage: it is warned of once, not once a login (with every
    // server down that flooded the journal), ...
    for _ in 0..4 {
        assert_eq!(
            code_of(&py_password(&srv, "alice", ALICE_PW)),
            "Access-Reject"
        );
    }
    // Counted once the first warning is in the log and any second had time to follow.
    let warned = srv.log_lines_at_least(1, |l| {
        l.contains("WARN") && l.contains("LDAP server unreachable")
    });
    assert_eq!(warned, 1, "{}", srv.log());
    slapd.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = py_password(&srv, "alice", ALICE_PW);
        if code_of(&r) == "Access-Challenge" {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {r}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // ... and its end is said.
    assert!(srv.log_shows("LDAP server answers again"), "{}", srv.log());
}

/// A connection reset after the directory took the user's bind, before its answer came: the
/// login is a directory failure (a Reject here, as on_backend_failure = "reject" says), its
/// reason says why and that the bind was not asked again, and slapd saw one bind, not two
/// (which would have counted twice towards an Active Directory lockout).
#[test]
fn a_bind_answer_lost_to_a_reset_is_a_directory_failure_with_one_bind() {
    let slapd = directory();
    let relay = common::wan_relay::WanRelay::start(slapd.port);
    let srv = start(&slapd, |o| o.ldap_urls = vec![relay.url.clone()]);
    srv.enroll("alice", &[]);
    let alice_dn = LdapUser::new("alice", "").dn();
    assert_eq!(
        code_of(&py_password(&srv, "alice", ALICE_PW)),
        "Access-Challenge"
    );
    std::thread::sleep(Duration::from_millis(200));
    let binds = slapd.bind_count(&alice_dn);
    relay.reset_after_answer(alice_dn.as_bytes());
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(relay.resets(), 1);
    let last = &srv.audit_json("alice")[0];
    let reason = last["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "directory: {}: the directory's answer to the user's bind was lost (connection \
             reset): not asked again, as the bind may have counted towards the account's \
             lockout",
            relay.url
        )),
        "{last}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        slapd.bind_count(&alice_dn),
        binds + 1,
        "{}",
        slapd.log_tail()
    );
    // Nothing of the password in the log.
    assert!(!srv.log().contains(ALICE_PW));
}

/// The same lost bind on a `no_reply` client: the NAS hears nothing, and its retransmits of
/// the request get the same silence for the duplicate window, not the password bound again.
/// The directory may have counted the first bind (a DC that is slow rather than down); each
/// retransmit bound afresh, and here, with the directory answering again, got a Challenge
/// after the silence.
#[test]
fn a_no_reply_clients_retransmits_after_a_lost_bind_are_not_bound_again() {
    let (slapd, relay, srv, alice_dn, binds) = no_reply_behind_a_relay(|_| {});
    relay.reset_after_answer(alice_dn.as_bytes());
    let (pkt, _) = AccessRequestBuilder::new(7, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    // The request and two retransmits, each after the NAS's wait.
    let replies = as_a_nas_resending(srv.addr, &pkt, 3, Duration::from_millis(1500));
    assert_eq!(replies, [None, None, None], "{}", srv.log());
    assert_eq!(relay.resets(), 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        slapd.bind_count(&alice_dn),
        binds + 1,
        "bound again for a retransmit\n{}",
        srv.log()
    );
    // One record: the retransmits were not decided again.
    let records = srv.audit_json("alice");
    assert_eq!(
        records
            .iter()
            .filter(|r| r["result"] == "unanswered")
            .count(),
        1,
        "{records:#?}"
    );
    // A new request (the user trying again) is asked afresh.
    assert_eq!(
        code_of(&py_password(&srv, "alice", ALICE_PW)),
        "Access-Challenge"
    );
}

/// A `no_reply` client "silent" on 127.0.0.1, the directory behind a relay (for faults),
/// alice enrolled and logged in once (the connections open while all is quick); alice's DN
/// and the binds of it slapd has seen so far.
fn no_reply_behind_a_relay(
    tune: impl FnOnce(&mut Options),
) -> (Slapd, common::wan_relay::WanRelay, Server, String, u64) {
    let slapd = directory();
    let relay = common::wan_relay::WanRelay::start(slapd.port);
    let srv = start(&slapd, |o| {
        o.ldap_urls = vec![relay.url.clone()];
        o.clients = vec![Nas {
            on_backend_failure: "no_reply",
            ..Nas::challenge("silent", "127.0.0.1")
        }];
        tune(o);
    });
    srv.enroll("alice", &[]);
    let alice_dn = LdapUser::new("alice", "").dn();
    assert_eq!(
        code_of(&py_password(&srv, "alice", ALICE_PW)),
        "Access-Challenge"
    );
    std::thread::sleep(Duration::from_millis(200));
    let binds = slapd.bind_count(&alice_dn);
    (slapd, relay, srv, alice_dn, binds)
}

/// The same when the request's deadline cuts the login off while its user bind is out (a
/// directory slow to take binds): the bind may have reached the directory,
/// so the NAS's retransmits get silence, not the password bound again each time.
#[test]
fn a_no_reply_clients_retransmits_after_a_bind_cut_by_the_deadline_are_not_bound_again() {
    let (slapd, relay, srv, alice_dn, binds) = no_reply_behind_a_relay(|o| {
        // The bind's own timeout later than the request's deadline (less its reserve for
        // the audit record, 250 ms): the deadline cuts it off.
        o.ldap_timeout_ms = 1900;
        o.request_deadline_ms = 2000;
    });
    // Alice's binds reach the directory 2.5 s late, past the 2 s deadline; searches
    // are quick.
    relay.delay_holding(alice_dn.as_bytes(), Duration::from_millis(2500));
    let (pkt, _) = AccessRequestBuilder::new(8, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    let replies = as_a_nas_resending(srv.addr, &pkt, 3, Duration::from_millis(3000));
    assert_eq!(replies, [None, None, None], "{}", srv.log());
    // Whatever bind is still on its way through the relay lands meanwhile.
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(
        slapd.bind_count(&alice_dn),
        binds + 1,
        "bound again for a retransmit\n{}",
        srv.log()
    );
}

/// A server that takes connections and never answers a search (anonymous searches, so no
/// service bind comes first): each login opens a connection, and the search times out.
/// One warning, and no "answers again": an open connection is not an answer, and taking it
/// for one said the server was back, then warned again, at every login.
#[test]
fn a_server_that_connects_but_never_answers_is_warned_of_once() {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://{}", hung.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = common::radmfa::write_config(dir.path(), &Options::new(&url));
    let text = std::fs::read_to_string(&config).unwrap();
    let service = "bind_dn = \"cn=admin,dc=example,dc=org\"\nbind_password = \"adminpw\"\n";
    assert!(text.contains(service), "{text}");
    std::fs::write(&config, text.replace(service, "bind_dn = \"\"\n")).unwrap();
    let srv = Server::start_with(dir, config);
    for _ in 0..4 {
        assert_eq!(
            code_of(&py_password(&srv, "alice", ALICE_PW)),
            "Access-Reject"
        );
    }
    let warned = srv.log_lines_at_least(1, |l| {
        l.contains("WARN") && l.contains("LDAP search timed out")
    });
    assert_eq!(warned, 1, "{}", srv.log());
    assert!(!srv.log().contains("answers again"), "{}", srv.log());
}

#[test]
fn lockout_after_wrong_codes_and_unlock() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.extra = "\n[lockout]\nthreshold = 3\nduration_secs = 600\n".into();
    });
    let seed = srv.enroll("alice", &[]);
    // The user's station comes with the password only, as most NASes send it.
    let station = ["--calling-station-id", "198.51.100.23"];
    for _ in 0..3 {
        let args = [&["--user", "alice", "--password", ALICE_PW][..], &station].concat();
        let r = pyrad(srv.port(), SECRET, &args);
        let s = r["state"].as_str().unwrap().to_string();
        let good = totp(&seed, now(), &[]);
        let wrong = if good == "999999" { "888888" } else { "999999" };
        assert_eq!(code_of(&py_code(&srv, "alice", wrong, &s)), "Access-Reject");
    }
    // Locked: even the right password gets no challenge, and says why.
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(r["messages"][0].as_str().unwrap().contains("Too many"));
    let out = srv.cli(&["user", "unlock", "alice"]);
    assert!(out.status.success());
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge");
    let s = r["state"].as_str().unwrap().to_string();
    assert_eq!(
        code_of(&py_code(&srv, "alice", &totp(&seed, now(), &[]), &s)),
        "Access-Accept"
    );
    let audit = srv.audit_json("alice");
    let lock = audit
        .iter()
        .find(|r| r["result"] == "lock")
        .expect("lock row");
    // Through which NAS the last wrong code came, as the login records say it.
    assert_eq!(lock["nas_ip"], "127.0.0.1", "{lock}");
    assert_eq!(lock["nas_name"], "local", "{lock}");
    // And where the guessing came from: the station the prompt's first round carried.
    assert_eq!(lock["client_ip"], "198.51.100.23", "{lock}");
    assert_eq!(lock["server_ip"], "127.0.0.1", "{lock}");
    // Until when, as every other reason and `user show` say it: RFC 3339, not Unix seconds.
    let reason = lock["reason"].as_str().unwrap();
    let until = reason
        .strip_prefix("3 consecutive wrong codes; second factor locked until ")
        .unwrap_or_else(|| panic!("{lock}"));
    let at = time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{until}: {e}"));
    let ahead = at.unix_timestamp() - now();
    assert!((300..=600).contains(&ahead), "{reason}");
    // The log line says it the same way.
    let log = srv.log();
    assert!(
        log.lines().any(|l| l.contains("second factor locked")
            && l.contains(&format!("until={} ", at.unix_timestamp()))
            && l.contains(&format!("until_at={until}"))
            && l.contains("nas=\"local\"")
            && l.contains("nas_ip=\"127.0.0.1\"")),
        "{log}"
    );
    assert!(audit.iter().any(|r| r["result"] == "unlock"));

    // Two wrong codes, then the threshold lowered to two: `user show` says why she is at it
    // and not locked (the count stands; the next wrong code locks).
    for _ in 0..2 {
        let r = py_password(&srv, "alice", ALICE_PW);
        let s = r["state"].as_str().unwrap().to_string();
        let good = totp(&seed, now(), &[]);
        let wrong = if good == "999999" { "888888" } else { "999999" };
        assert_eq!(code_of(&py_code(&srv, "alice", wrong, &s)), "Access-Reject");
    }
    let show = |srv: &Server| {
        let out = srv.cli(&["user", "show", "alice"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(
        show(&srv).contains("failures: 2 of 3 (consecutive"),
        "{}",
        show(&srv)
    );
    let text = std::fs::read_to_string(&srv.config).unwrap();
    std::fs::write(&srv.config, text.replace("threshold = 3", "threshold = 2")).unwrap();
    let shown = show(&srv);
    assert!(
        shown.contains("failures: 2 of 2 (at or over a threshold lowered since"),
        "{shown}"
    );
    assert!(shown.contains("locked:   no"), "{shown}");
}

/// A prompt word the prompt does not offer ("resend" at an app code's prompt, "call" where
/// the client allows no calls), or nothing at all, is no guess: the same prompt comes back,
/// no attempt is taken and nothing counts toward the lockout, so the right code still gets
/// in on that State.
#[test]
fn a_prompt_word_not_on_offer_asks_again_without_counting() {
    let slapd = directory();
    // No [sms] or [voice] here: the app's code is all the prompt offers.
    let srv = start(&slapd, |o| {
        o.extra = "\n[lockout]\nthreshold = 2\n".into();
    });
    let seed = srv.enroll("alice", &[]);
    let r = py_password(&srv, "alice", ALICE_PW);
    let s = r["state"].as_str().unwrap().to_string();
    for word in ["resend", "call", "SMS", "app", "", "   "] {
        let r = py_code(&srv, "alice", word, &s);
        assert_eq!(code_of(&r), "Access-Challenge", "{word}: {r}");
        assert_eq!(r["state"].as_str(), Some(s.as_str()), "the same prompt");
        // An empty answer (Enter pressed out of habit) is no guess either.
        let said = if word.trim().is_empty() {
            "Nothing was typed."
        } else {
            "is not available here"
        };
        assert!(
            r["messages"][0].as_str().is_some_and(|m| m.contains(said)),
            "{word:?}: {r}"
        );
    }
    let show = srv.cli(&["user", "show", "alice", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(status["failures"], 0, "{status}");
    common::peers::clear_of_step_boundary(5);
    let r = py_code(&srv, "alice", &totp(&seed, now(), &[]), &s);
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
}

/// A client answering empty in a loop (pam_radius_auth fed no input sent 49 in a second,
/// each audited) is stopped: after five empty answers the prompt is closed, and the right
/// code on it no longer gets in.
#[test]
fn empty_answers_in_a_loop_close_the_prompt() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let seed = srv.enroll("alice", &[]);
    let r = py_password(&srv, "alice", ALICE_PW);
    let s = r["state"].as_str().unwrap().to_string();
    for i in 0..5 {
        let r = py_code(&srv, "alice", "", &s);
        assert_eq!(code_of(&r), "Access-Challenge", "empty answer {i}: {r}");
    }
    let r = py_code(&srv, "alice", "", &s);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(
        r["messages"][0]
            .as_str()
            .is_some_and(|m| m.contains("Log in again")),
        "{r}"
    );
    let closed = &srv.audit_json("alice")[0];
    assert!(
        closed["reason"]
            .as_str()
            .is_some_and(|m| m.contains("more than 5 empty answers"))
            && closed["mode"] == "totp",
        "{closed}"
    );
    common::peers::clear_of_step_boundary(5);
    let r = py_code(&srv, "alice", &totp(&seed, now(), &[]), &s);
    assert_eq!(code_of(&r), "Access-Reject", "the prompt is closed: {r}");
}

/// A VPN client reconnecting with the field it kept sends a used code again and again: each
/// is refused, as used, but none counts toward the lockout (it is no guess), so the loop
/// does not lock its user out, and the next fresh code gets in.
#[test]
fn a_used_code_sent_again_does_not_count_toward_the_lockout() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.clients = vec![Nas {
            otp_mode: "inline",
            ..Nas::challenge("vpn", "127.0.0.1")
        }];
        o.extra = "\n[lockout]\nthreshold = 3\n".into();
    });
    let seed = srv.enroll("alice", &[]);
    common::peers::clear_of_step_boundary(8);
    let field = format!("{ALICE_PW},{}", totp(&seed, now(), &[]));
    assert_eq!(
        code_of(&py_password(&srv, "alice", &field)),
        "Access-Accept"
    );
    for _ in 0..5 {
        let r = py_password(&srv, "alice", &field);
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
    }
    let show = srv.cli(&["user", "show", "alice", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(status["failures"], 0, "{status}");
    let used = srv
        .audit_json("alice")
        .iter()
        .filter(|r| r["reason"] == "code already used")
        .count();
    assert_eq!(used, 5);
    let next = format!("{ALICE_PW},{}", totp(&seed, now() + 30, &[]));
    assert_eq!(code_of(&py_password(&srv, "alice", &next)), "Access-Accept");
}

/// With more attempts at a prompt than the lockout allows (`max_attempts = 7`, threshold
/// 3), the prompt counts down to the lock, not to its own limit: "2 attempt(s) left" was
/// followed by a lock at the very next wrong code.
#[test]
fn attempts_left_count_down_to_the_lockout_when_it_comes_first() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.extra = "\n[challenge]\nmax_attempts = 7\n[lockout]\nthreshold = 3\n".into();
    });
    let seed = srv.enroll("alice", &[]);
    let first = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&first), "Access-Challenge", "{first}");
    let state = first["state"].as_str().unwrap().to_string();
    let good: u32 = totp(&seed, now(), &[]).parse().unwrap();
    let wrong = |k: u32| format!("{:06}", (good + 500_000 + k) % 1_000_000);
    let message = |r: &serde_json::Value| r["messages"].as_array().unwrap()[0].to_string();
    // An answer that is no code at all is not counted, yet the prompt counts down to the
    // lock all the same: it said "5 attempt(s) left" (its own), with 3 before the lock.
    let r = py_code(
        &srv,
        "alice",
        "\u{0661}\u{0662}\u{0663}\u{0664}\u{0665}\u{0666}",
        &state,
    );
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    assert!(message(&r).contains("3 attempt(s) left."), "{r}");
    for (k, left) in [(0, 2), (1, 1)] {
        let r = py_code(&srv, "alice", &wrong(k), &state);
        assert_eq!(code_of(&r), "Access-Challenge", "{r}");
        assert!(
            message(&r).contains(&format!("Wrong code. {left} attempt(s) left.")),
            "{r}"
        );
    }
    let r = py_code(&srv, "alice", &wrong(2), &state);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(message(&r).contains("Too many wrong codes"), "{r}");
}

/// `[challenge] max_attempts` holds for answers sent all at once to one State: each takes
/// an attempt before its code is checked, so however the server interleaves them, no more
/// than `max_attempts` codes are checked (a guess beyond them could otherwise be the one
/// accepted), and the others are refused unchecked.
#[test]
fn answers_sent_at_once_to_one_prompt_check_at_most_max_attempts_codes() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.extra = "\n[challenge]\nmax_attempts = 2\n[lockout]\nthreshold = 50\n".into();
    });
    let seed = srv.enroll("alice", &[]);
    let first = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&first), "Access-Challenge", "{first}");
    let state = hex::decode(first["state"].as_str().unwrap()).unwrap();
    let good = totp(&seed, now(), &[]);
    const ANSWERS: u8 = 12;
    let sock = srv.udp();
    let mut sent = Vec::new();
    for id in 0..ANSWERS {
        // Twelve different wrong codes, none the current one.
        let wrong = format!(
            "{:06}",
            (good.parse::<u32>().unwrap() + 1 + u32::from(id)) % 1_000_000
        );
        let (pkt, auth) = AccessRequestBuilder::new(id, "alice")
            .password(wrong.as_bytes())
            .state(&state)
            .build(SECRET.as_bytes());
        sent.push(auth);
        sock.send(&pkt).unwrap();
    }
    let mut codes = Vec::new();
    let mut buf = [0u8; 4096];
    while codes.len() < usize::from(ANSWERS) {
        let n = sock.recv(&mut buf).expect("every answer is answered");
        let id = usize::from(buf[1]);
        verify_reply(&buf[..n], &sent[id], SECRET.as_bytes()).unwrap();
        codes.push(parse_reply(&buf[..n]).unwrap().code);
    }
    // One wrong answer leaves the prompt open (a Challenge), every other is refused.
    assert_eq!(codes.iter().filter(|&&c| c == 11).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 3).count(), 11, "{codes:?}");
    let audit = srv.audit_json("alice");
    let checked = audit
        .iter()
        .filter(|r| r["reason"].as_str() == Some("wrong code"))
        .count();
    assert_eq!(checked, 2, "exactly max_attempts codes checked: {audit:#?}");
    let show = srv.cli(&["user", "show", "alice", "--json"]);
    assert!(show.status.success(), "{show:?}");
    let status: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(
        status["failures"], 2,
        "only the checked codes count: {status}"
    );
}

#[test]
fn user_without_factor_follows_client_policy() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let r = py_password(&srv, "bob", "bob-Secret-pw");
    assert_eq!(code_of(&r), "Access-Reject");
    drop(srv);
    let srv = start(&slapd, allow_password_only);
    let r = py_password(&srv, "bob", "bob-Secret-pw");
    assert_eq!(code_of(&r), "Access-Accept");
    // The directory matches names case-insensitively; so must the token lookup, or
    // "ALICE" would find no token and pass on the password alone.
    srv.enroll("alice", &[]);
    let r = py_password(&srv, "ALICE ", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    let audit = srv.audit_json("bob");
    assert_eq!(audit[0]["mode"], "primary-only");
    // Still needs the right password.
    assert_eq!(code_of(&py_password(&srv, "bob", "wrong")), "Access-Reject");
    // A token taken out of service (reported lost) is not "no factor enrolled": the
    // password alone does not do.
    let out = srv.cli(&["token", "list", "--user", "alice", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let serial = list[0]["serial"].as_str().unwrap().to_string();
    assert!(srv.cli(&["token", "disable", &serial]).status.success());
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(
        srv.audit_json("alice")[0]["reason"],
        "the user's tokens are disabled"
    );
    // Nor is a phone number the admin stored: this client has no [sms] or [voice] to use it
    // with, and that is not "no second factor" either.
    let out = srv.cli(&["user", "set-phone", "bob", "+4915112345678"]);
    assert!(out.status.success(), "{out:?}");
    let r = py_password(&srv, "bob", "bob-Secret-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(
        srv.audit_json("bob")[0]["reason"],
        "the user's stored phone cannot be used on this client"
    );
}

/// A user locked for wrong codes is not let in on the password alone where users without
/// a factor may be (no_factor = "allow"): the codes came after the right password, and
/// whoever typed them got in once the token was deleted as lost. RD Gateway's path checked
/// the lock first already.
#[test]
fn a_locked_user_is_not_let_in_on_the_password_alone() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        allow_password_only(o);
        o.extra.push_str("\n[lockout]\nthreshold = 2\n");
    });
    srv.enroll("alice", &[]);
    for _ in 0..2 {
        let r = py_password(&srv, "alice", ALICE_PW);
        assert_eq!(code_of(&r), "Access-Challenge", "{r}");
        let r = py_code(&srv, "alice", "000000", r["state"].as_str().unwrap());
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
    }
    let shown = srv.cli(&["user", "show", "alice", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(shown["locked_until"].is_number(), "{shown}");
    let serial = shown["tokens"][0]["serial"].as_str().unwrap().to_string();
    let out = srv.cli(&["token", "delete", &serial, "--force"]);
    assert!(out.status.success(), "{out:?}");
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .starts_with("second factor locked"),
        "{rec}"
    );
    // The helpdesk's way in for the locked user with the lost phone: a bypass, used.
    let out = srv.cli(&["user", "bypass", "alice"]);
    assert!(out.status.success(), "{out:?}");
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(srv.audit_json("alice")[0]["mode"], "bypass");
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "once: {r}");
    let out = srv.cli(&["user", "unlock", "alice"]);
    assert!(out.status.success(), "{out:?}");
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
}

/// One directory entry, two names (`uid: jdoe`, `uid: john.doe`). Tokens are kept under the
/// name enrolled; the other name, with no second factor of its own, must not pass on the
/// password alone where users without a factor may.
#[test]
fn another_name_of_an_enrolled_entry_does_not_skip_its_second_factor() {
    use common::slapd::SlapdOptions;
    let slapd = Slapd::start_with(
        &[LdapUser::new("bob", "bob-Secret-pw")],
        SlapdOptions {
            extra_ldif: "dn: uid=jdoe,ou=people,dc=example,dc=org\n\
                         objectClass: inetOrgPerson\nuid: jdoe\nuid: john.doe\n\
                         cn: John Doe\nsn: Doe\nmail: jdoe@example.org\n\
                         userPassword: jdoe-Secret-pw\n\n"
                .into(),
            ..Default::default()
        },
    );
    let srv = start(&slapd, allow_password_only);
    // Before anyone enrolls, either name is a user without a factor.
    let r = py_password(&srv, "john.doe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
    srv.enroll("jdoe", &[]);
    let r = py_password(&srv, "jdoe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    let r = py_password(&srv, "john.doe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    srv.refused_as_another_name("john.doe", "jdoe");
    // A bypass under the name whose logins are refused would never be used: refused, with
    // the name to grant it to. It said success, and the user was still refused.
    let out = srv.cli(&["user", "bypass", "john.doe"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Nothing granted: `radmfa user bypass jdoe`"),
        "{err}"
    );
    let r = py_password(&srv, "john.doe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let out = srv.cli(&["user", "bypass", "jdoe"]);
    assert!(out.status.success(), "{out:?}");
    let r = py_password(&srv, "jdoe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    // A user with one name is not affected.
    let r = py_password(&srv, "bob", "bob-Secret-pw");
    assert_eq!(code_of(&r), "Access-Accept", "{r}");

    // A filter that also matches mail finds the entry under a name that is none of its
    // uids; the login is keyed on that name, which holds nothing, so it must not pass
    // either, whichever uid the directory lists first.
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new(&slapd.url);
    allow_password_only(&mut o);
    let config = common::radmfa::write_config(dir.path(), &o);
    let text = std::fs::read_to_string(&config).unwrap();
    let uid_only = "user_filter = \"(uid={user})\"";
    assert!(text.contains(uid_only), "{text}");
    std::fs::write(
        &config,
        text.replace(uid_only, "user_filter = \"(|(uid={user})(mail={user}))\""),
    )
    .unwrap();
    let srv = Server::start_with(dir, config);
    srv.enroll("jdoe", &[]);
    let r = py_password(&srv, "jdoe@example.org", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    srv.refused_as_another_name("jdoe@example.org", "jdoe");
    let r = py_password(&srv, "bob@example.org", "bob-Secret-pw");
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    // The other way round: the token under the mail name (as AD's userPrincipalName beside
    // sAMAccountName), the login under the uid, the filter's first attribute.
    srv.enroll("bob@example.org", &[]);
    let r = py_password(&srv, "bob", "bob-Secret-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    srv.refused_as_another_name("bob", "bob@example.org");
}

#[test]
fn unknown_user_and_wrong_password_get_the_same_reply() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    srv.enroll("alice", &[]);
    let sock = srv.udp();
    let mut shape = Vec::new();
    for (id, user) in [(1u8, "alice"), (2u8, "nobody-here")] {
        let (pkt, _) = AccessRequestBuilder::new(id, user)
            .password(b"wrong-password")
            .build(SECRET.as_bytes());
        sock.send(&pkt).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        let r = parse_reply(&buf[..n]).unwrap();
        // Types and values, Message-Authenticator's value aside (it signs the packet, whose
        // identifier differs): a different Reply-Message of the same length shows here.
        let attrs: Vec<(u8, Vec<u8>)> = r
            .attributes
            .iter()
            .map(|a| (a.0, if a.0 == 80 { Vec::new() } else { a.1.clone() }))
            .collect();
        shape.push((r.code, attrs, n));
    }
    assert_eq!(shape[0], shape[1]);
}

/// On an inline client, an enrolled user's field without a code is refused after a search
/// and a bind's time (so that it is not told apart from an unknown name). A field refused
/// for everyone — empty, or not UTF-8, which a directory is never asked with — must be
/// refused at once for the enrolled user too: unknown names get that at once, and the
/// time would otherwise list who is enrolled, without a password.
#[test]
fn passwords_refused_for_everyone_are_refused_alike_for_enrolled_users() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.clients = vec![Nas {
            otp_mode: "inline",
            ..Nas::challenge("vpn", "127.0.0.1")
        }];
    });
    srv.enroll("alice", &[]);
    let sock = srv.udp();
    let mut id = 0u8;
    for (field, reason) in [
        (&b""[..], "empty password"),
        (
            b"\xff\xfe-not-utf8",
            "the password did not decode as text (UTF-8): the NAS may send another character \
             set (such as Latin-1)",
        ),
    ] {
        for user in ["alice", "nobody-here", "bob"] {
            id += 1;
            let (pkt, _) = AccessRequestBuilder::new(id, user)
                .password(field)
                .build(SECRET.as_bytes());
            sock.send(&pkt).unwrap();
            let mut buf = [0u8; 4096];
            let n = sock.recv(&mut buf).unwrap();
            assert_eq!(parse_reply(&buf[..n]).unwrap().code, 3, "{user}");
            let audit = srv.audit_json(user);
            assert_eq!(audit[0]["reason"], reason, "{user}: {audit:#?}");
        }
    }
}

#[test]
fn database_copy_reveals_no_seed() {
    let slapd = directory();
    let mut srv = start(&slapd, |_| {});
    let seed = srv.enroll("alice", &[]);
    srv.stop();
    let raw = data_encoding::BASE32_NOPAD.decode(seed.as_bytes()).unwrap();
    for f in ["radmfa.db", "radmfa.db-wal"] {
        let p = srv.dir.path().join(f);
        // The database must be there; only the WAL may have been checkpointed away.
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if f == "radmfa.db-wal" && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", p.display()),
        };
        let hay = String::from_utf8_lossy(&bytes).to_string();
        assert!(!hay.contains(&seed), "base32 seed in {f}");
        assert!(
            !hay.to_lowercase().contains(&hex::encode(&raw)),
            "hex seed in {f}"
        );
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw.as_slice()),
            "raw seed in {f}"
        );
    }
    // The key file is separate and private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(srv.dir.path().join("radmfa.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn no_secret_in_logs_at_debug_level() {
    let slapd = directory();
    let mut srv = start(&slapd, |o| o.log_level = "debug");
    let seed = srv.enroll("alice", &[]);
    let r = py_password(&srv, "alice", ALICE_PW);
    let state = r["state"].as_str().unwrap().to_string();
    let code = totp(&seed, now(), &[]);
    assert_eq!(
        code_of(&py_code(&srv, "alice", &code, &state)),
        "Access-Accept"
    );
    // A wrong code and a wrong password too.
    let r = py_password(&srv, "alice", ALICE_PW);
    let s2 = r["state"].as_str().unwrap().to_string();
    py_code(&srv, "alice", "314159", &s2);
    py_password(&srv, "alice", "Wr0ng-Pa55word");
    srv.stop();
    let mut log = srv.log();
    log.push_str(&String::from_utf8_lossy(
        &srv.cli(&["audit", "--json", "--limit", "100"]).stdout,
    ));
    assert!(log.contains("DEBUG"), "debug logging was on");
    for (what, s) in [
        ("password", ALICE_PW),
        ("wrong password", "Wr0ng-Pa55word"),
        ("code", code.as_str()),
        ("wrong code", "314159"),
        ("shared secret", SECRET),
        ("seed", seed.as_str()),
        ("LDAP bind password", "adminpw"),
        ("State", state.as_str()),
    ] {
        assert!(!reveals(&log, s), "{what} appears in the log/audit output");
    }
    // The seed and the State in the other forms a log line could carry them in.
    use data_encoding::{BASE32_NOPAD, BASE64, HEXLOWER, HEXUPPER};
    let raw_seed = BASE32_NOPAD.decode(seed.as_bytes()).unwrap();
    let raw_state = HEXLOWER.decode(state.as_bytes()).unwrap();
    for (what, raw) in [("seed", &raw_seed), ("State", &raw_state)] {
        for form in [
            HEXLOWER.encode(raw),
            HEXUPPER.encode(raw),
            BASE64.encode(raw),
            BASE32_NOPAD.encode(raw).to_lowercase(),
            format!("{raw:?}"),
        ] {
            assert!(
                !log.contains(&form),
                "{what} as {form} in the log/audit output"
            );
        }
        assert!(
            !log.as_bytes()
                .windows(raw.len())
                .any(|w| w == raw.as_slice()),
            "raw {what} bytes in the log/audit output"
        );
    }
}

#[test]
fn a_code_counts_in_a_log_only_as_a_number_of_its_own() {
    assert!(reveals("code=314159 ok", "314159"));
    assert!(reveals("\"password\":\"314159\"", "314159"));
    assert!(reveals("314159", "314159"));
    assert!(!reveals("2026-12-01T14:30:31.314159Z DEBUG", "314159"));
    assert!(!reveals("\"time\":1796314159,", "314159"));
    assert!(!reveals("latency 13141590", "314159"));
    assert!(reveals("alice-password here", "alice-password"));
}

#[test]
fn malformed_datagrams_never_stop_the_server() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let sock = srv.udp();
    let (good, _) = AccessRequestBuilder::new(9, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        good[..19].to_vec(),
        good[..good.len() - 3].to_vec(),
        vec![0u8; 4096],
        vec![0xffu8; 4096],
    ];
    let mut over = good.clone();
    over[2] = 0x10;
    over[3] = 0x01; // header length 4097
    junk.push(over);
    let mut bad_attr = good.clone();
    bad_attr[21] = 1; // attribute length 1
    junk.push(bad_attr);
    let mut x: u32 = 12345;
    for i in 0..300 {
        let mut p = good.clone();
        for _ in 0..(1 + i % 5) {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            let idx = (x as usize >> 8) % p.len();
            p[idx] ^= (x >> 16) as u8 | 1;
        }
        junk.push(p);
    }
    for j in &junk {
        let _ = sock.send(j);
    }
    // None of it verifies (Message-Authenticator covers every byte), so none is answered.
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(sock.recv(&mut buf).is_err(), "a reply to junk");
    // alice has no token and the client refuses logins without one.
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
}

#[test]
fn ipv6_listener_serves_logins() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.listen = "[::1]:0";
        o.clients = vec![Nas::challenge("v6", "::1/128")];
    });
    srv.enroll("alice", &[]);
    assert!(srv.addr.is_ipv6());
    let sock = std::net::UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let (pkt, auth) = AccessRequestBuilder::new(7, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send_to(&pkt, srv.addr).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("reply over IPv6");
    verify_reply(&buf[..n], &auth, SECRET.as_bytes()).unwrap();
    assert_eq!(parse_reply(&buf[..n]).unwrap().code, 11);
    // And a whole login from a client nobody here wrote.
    let seed = srv.enroll("bob", &[]);
    radclient_login(&srv.addr.to_string(), "bob", "bob-Secret-pw", &seed);
}

/// A host with several addresses (a keepalived virtual address, say) and radmfa on the
/// wildcard address: the NAS asks one address and must get its reply from that address,
/// or it discards it. Loopback owns all of 127.0.0.0/8, so 127.0.0.2 stands in for the
/// second address; radclient (like most NASes) only takes a reply from the server it asked.
#[test]
fn a_wildcard_listener_answers_from_the_address_the_nas_asked() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.listen = "0.0.0.0:0";
    });
    srv.enroll("alice", &[]);
    for asked in ["127.0.0.1", "127.0.0.2"] {
        let r = radclient(
            &format!("{asked}:{}", srv.port()),
            SECRET,
            &format!(
                "User-Name = \"alice\", User-Password = \"{ALICE_PW}\", Message-Authenticator = 0x00"
            ),
        );
        assert_eq!(r.code, "Access-Challenge", "asked {asked}: {}", r.output);
    }
    // The audit record names the address asked, not the wildcard.
    let audit = srv.audit_json("alice");
    let ips: Vec<&str> = audit
        .iter()
        .filter_map(|r| r["server_ip"].as_str())
        .collect();
    assert!(ips.contains(&"127.0.0.1"), "{audit:#?}");
    assert!(ips.contains(&"127.0.0.2"), "{audit:#?}");
}

/// This thread's first IPv6 address of `scope` ("00" global, "20" link-local) and its
/// interface's index, from if_inet6 (address, ifindex, prefix length, scope, flags, name);
/// the thread's own table, as it may be in a network namespace of its own.
/// A link-local address appears a moment after its link comes up, later on a busy
/// machine: waited for, up to 10 s.
fn an_ipv6_address(scope: &str) -> (std::net::Ipv6Addr, u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let table = std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap_or_default();
        let found =
            table
                .lines()
                .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                    [address, ifindex, _, s, _, _] if s == scope => Some((
                        u128::from_str_radix(address, 16).ok()?.into(),
                        u32::from_str_radix(ifindex, 16).ok()?,
                    )),
                    _ => None,
                });
        match found {
            Some(f) => return f,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => panic!("no IPv6 address of scope {scope}:\n{table}"),
        }
    }
}

/// Runs `f` on a thread in a network namespace of its own (as root, which the test suite
/// runs as), where lo is up and a veth pair's end rv0 holds the global address fd00::2
/// and each end its link-local one: what the test needs, whatever the machine's own
/// interfaces are. Processes the thread starts (slapd, radmfa) are in it too.
fn in_own_network<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET moves only the calling thread.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET), which needs root: {}",
            std::io::Error::last_os_error()
        );
        // No duplicate address detection: the addresses are usable at once, not after
        // a second or two of "tentative".
        for dad in ["all", "default"] {
            // /proc/sys/net is the namespace of the task that opens it: this thread's.
            let knob = format!("/proc/sys/net/ipv6/conf/{dad}/accept_dad");
            std::fs::write(&knob, "0").unwrap_or_else(|e| panic!("{knob}: {e}"));
        }
        for args in [
            "link set lo up",
            "link add rv0 type veth peer name rv1",
            "-6 addr add fd00::2/64 dev rv0 nodad",
            "link set rv0 up",
            "link set rv1 up",
        ] {
            // iproute2's, in /usr/sbin, which a non-login PATH may lack.
            let ip = ["/usr/sbin/ip", "/sbin/ip"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or("ip");
            let out = std::process::Command::new(ip)
                .args(args.split(' '))
                .output()
                .unwrap_or_else(|e| panic!("ip {args} (iproute2): {e}"));
            assert!(out.status.success(), "ip {args}: {out:?}");
        }
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// On `[::]`, a reply is sent from the address the NAS asked; it must not also be pinned to
/// the interface the request came in on. A NAS on this host sending from ::1 to the host's
/// global address arrives "on" eth0 while the route back is lo: pinned to eth0, the kernel
/// took the reply and dropped it, and the NAS heard nothing. A link-local address is
/// nothing without its interface, and is still answered on it.
#[test]
fn a_wildcard_ipv6_listener_answers_a_local_nas_asking_a_global_address() {
    in_own_network(a_local_nas_asking_a_global_address_is_answered);
}

fn a_local_nas_asking_a_global_address_is_answered() {
    let (global, _) = an_ipv6_address("00");
    let (link_local, ifindex) = an_ipv6_address("20");
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.listen = "[::]:0";
        o.clients = vec![
            Nas::challenge("v6", "::1/128"),
            Nas::challenge("link", "fe80::/10"),
        ];
    });
    srv.enroll("alice", &[]);
    // A link-local address (the NAS's and the one asked) with its interface's index.
    let on = |ip, scope| std::net::SocketAddrV6::new(ip, 0, 0, scope);
    for (nas, asked) in [
        (on(std::net::Ipv6Addr::LOCALHOST, 0), on(global, 0)),
        (on(link_local, ifindex), on(link_local, ifindex)),
    ] {
        let sock = std::net::UdpSocket::bind(nas).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let (pkt, auth) = AccessRequestBuilder::new(7, "alice")
            .password(ALICE_PW.as_bytes())
            .build(SECRET.as_bytes());
        let mut to = asked;
        to.set_port(srv.port());
        let to = std::net::SocketAddr::from(to);
        sock.send_to(&pkt, to).unwrap();
        let mut buf = [0u8; 4096];
        let (n, from) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no reply from {to} ({e}); log:\n{}", srv.log()));
        assert_eq!(from, to, "the reply comes from the address asked");
        verify_reply(&buf[..n], &auth, SECRET.as_bytes()).unwrap();
        assert_eq!(parse_reply(&buf[..n]).unwrap().code, 11, "Access-Challenge");
    }
}

/// A NAS set to CHAP or MS-CHAP (ASA with password-management, FortiGate's `auth-type
/// auto`) sends no User-Password: the login is refused, and the audit record says why, so
/// the admin knows to switch the NAS to PAP. radclient computes CHAP-Password and the
/// MS-CHAP-Response (Microsoft vendor attribute 1) from the password it is given.
#[test]
fn chap_and_ms_chap_are_refused_with_the_reason() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    srv.enroll("alice", &[]);
    let host = srv.addr.to_string();
    for attr in ["CHAP-Password", "MS-CHAP-Password", "Framed-Protocol"] {
        let value = if attr == "Framed-Protocol" {
            "PPP"
        } else {
            "\"x\""
        };
        let r = radclient(
            &host,
            SECRET,
            &format!("User-Name = \"alice\", {attr} = {value}, Message-Authenticator = 0x00"),
        );
        assert_eq!(r.code, "Access-Reject", "{attr}: {}", r.output);
    }
    // A User-Password that hiding cannot have made (17 octets): refused, and said so.
    let sock = srv.udp();
    let (pkt, _) = AccessRequestBuilder::new(9, "alice")
        .attribute(2, &[0x41; 17])
        .build(SECRET.as_bytes());
    sock.send(&pkt).unwrap();
    let mut buf = [0u8; 4096];
    sock.recv(&mut buf).expect("a reply");
    assert_eq!(buf[0], 3, "Access-Reject");
    let reasons: Vec<String> = srv
        .audit_json("alice")
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    let pap_only = reasons.iter().filter(|r| r.contains("only PAP")).count();
    // CHAP and MS-CHAP are named as such; a request with neither is just missing its password.
    assert_eq!(pap_only, 2, "{reasons:#?}");
    assert!(
        reasons.iter().any(|r| r == "no User-Password"),
        "{reasons:#?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("a User-Password of 17 octets is not a hidden password")),
        "{reasons:#?}"
    );
}

/// A "retransmit" (same source port, ID and Request Authenticator) with other contents is
/// dropped unanswered, and the log says why, so a NAS that rewrites its retransmits is not
/// left timing out with nothing to go on.
#[test]
fn a_retransmit_with_other_contents_is_dropped_and_logged() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let sock = srv.udp();
    let (pkt, auth) = AccessRequestBuilder::new(42, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send(&pkt).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a reply to the first");
    verify_reply(&buf[..n], &auth, SECRET.as_bytes()).unwrap();
    // The same header, another user name of the same length.
    let mut other = pkt.clone();
    let at = other
        .windows(5)
        .position(|w| w == b"alice")
        .expect("User-Name in the packet");
    other[at..at + 5].copy_from_slice(b"mallo");
    // Signed again, as such a NAS does (a copy that fails verification is dropped for that).
    let ma = message_authenticator_at(&other) + 2;
    other[ma..ma + 16].fill(0);
    let signed = radmfa::radius::crypto::message_authenticator(&other, SECRET.as_bytes());
    other[ma..ma + 16].copy_from_slice(&signed);
    sock.send(&other).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        sock.recv(&mut buf).is_err(),
        "the changed copy was answered"
    );
    assert!(
        srv.log_shows("a NAS must send a retransmit unchanged"),
        "{}",
        srv.log()
    );
}

/// A forged copy of a request (its ID and Request Authenticator, from the NAS's address
/// and port, a wrong Message-Authenticator) sent just ahead of it: the real one is answered
/// at once. The forged copy took the request's in-flight entry, and the real request was
/// dropped as "a retransmit with other contents", the log blaming the NAS (red team: 19 of
/// 20 logins unanswered until the NAS's next retransmit).
#[test]
fn a_forged_copy_sent_ahead_of_a_request_does_not_cost_it_its_reply() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let sock = srv.udp();
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    for id in 0..5u8 {
        let (pkt, auth) = AccessRequestBuilder::new(id, "alice")
            .password(b"not-her-password")
            .build(SECRET.as_bytes());
        // Message-Authenticator (type 80, length 18): its last octet changed.
        let ma = message_authenticator_at(&pkt);
        let mut forged = pkt.clone();
        forged[ma + 17] ^= 0x55;
        sock.send(&forged).unwrap();
        sock.send(&pkt).unwrap();
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("request {id} unanswered ({e}): {}", srv.log()));
        verify_reply(&buf[..n], &auth, SECRET.as_bytes()).unwrap();
        assert_eq!(buf[0], 3, "an Access-Reject");
    }
    assert!(
        !srv.log_shows("a NAS must send a retransmit unchanged"),
        "{}",
        srv.log()
    );
}

/// An empty Calling-Station-Id names no station: the audit's client_ip is the NAS's
/// address, as for none. It was "", and such logins fell out of `audit --client-ip` and
/// `--count-by client-ip` (red team).
#[test]
fn an_empty_calling_station_id_is_audited_as_none() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    let sock = srv.udp();
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for (id, station) in [(1u8, &b""[..]), (2, b"  ")] {
        let (pkt, auth) = AccessRequestBuilder::new(id, "alice")
            .password(b"not-her-password")
            .attribute(31, station)
            .build(SECRET.as_bytes());
        sock.send(&pkt).unwrap();
        let n = sock.recv(&mut buf).expect("a reply");
        verify_reply(&buf[..n], &auth, SECRET.as_bytes()).unwrap();
    }
    let audit = srv.audit_json("alice");
    assert_eq!(audit.len(), 2, "{audit:#?}");
    for rec in &audit {
        assert_eq!(rec["client_ip"], "127.0.0.1", "{rec}");
    }
}

/// Where the Message-Authenticator attribute starts in `pkt`.
fn message_authenticator_at(pkt: &[u8]) -> usize {
    let mut at = 20;
    while at + 2 <= pkt.len() {
        if pkt[at] == 80 && pkt[at + 1] == 18 {
            return at;
        }
        at += usize::from(pkt[at + 1]);
    }
    panic!("no Message-Authenticator in the request")
}

fn radclient_status(srv: &Server) -> String {
    common::peers::radclient_status(&srv.addr.to_string(), SECRET)
}

/// An inline client with on_backend_failure = "no_reply" while the directory is down: an
/// enrolled user who typed no code gets the same silence as an unknown one. Refusing the
/// enrolled one at once (the imitated check's failure ignored) would tell them apart.
#[test]
fn no_reply_clients_are_silent_for_enrolled_users_without_a_code_too() {
    let mut slapd = directory();
    let srv = start(&slapd, |o| {
        o.ldap_timeout_ms = 1000;
        o.clients = vec![Nas {
            on_backend_failure: "no_reply",
            otp_mode: "inline",
            ..Nas::challenge("silent-inline", "127.0.0.1")
        }];
    });
    srv.enroll("alice", &[]);
    slapd.stop();
    // pyrad waits longer than the request deadline (4 s), so a late Reject would be seen;
    // and the server says it left each one unanswered on purpose.
    for user in ["alice", "nobody"] {
        let r = pyrad(
            srv.port(),
            SECRET,
            &["--user", user, "--password", ALICE_PW, "--timeout", "6"],
        );
        assert_eq!(code_of(&r), "timeout", "{user}: {r}\n{}", srv.log());
        assert!(
            srv.log_shows(&format!("user=\"{user}\" result=unanswered mode=none")),
            "{}",
            srv.log()
        );
        assert!(srv.left_unanswered(user), "{}", srv.log());
    }
}

/// A client with on_backend_failure = "no_reply" also gets no Status-Server answer while
/// the directory fails, so a proxy that checks nodes with Status-Server keeps using another
/// one; once the directory is back, a Status-Server finds it (a probe) and is answered. A
/// client with the default "reject" is answered throughout.
#[test]
fn status_server_follows_the_backends_for_no_reply_clients() {
    let mut slapd = directory();
    let start_no_reply = |slapd: &Slapd| {
        start(slapd, |o| {
            o.ldap_timeout_ms = 1000;
            o.clients = vec![Nas {
                on_backend_failure: "no_reply",
                ..Nas::challenge("silent-on-failure", "127.0.0.1")
            }];
        })
    };
    let answered_within_15_s = |srv: &Server, what: &str| {
        let until = Instant::now() + Duration::from_secs(15);
        while radclient_status(srv) != "Access-Accept" {
            assert!(Instant::now() < until, "not answered after {what}");
        }
    };
    let srv = start_no_reply(&slapd);
    assert_eq!(radclient_status(&srv), "Access-Accept");
    slapd.stop();
    // A login meets the failure (and gets no reply); then Status-Server goes silent too.
    assert_eq!(code_of(&py_password(&srv, "alice", ALICE_PW)), "timeout");
    // Silence, not a reply pyrad dropped as badly signed: the log says it was held back.
    assert!(srv.left_unanswered("alice"), "{}", srv.log());
    assert_eq!(radclient_status(&srv), "none", "{}", srv.log());
    slapd.restart();
    answered_within_15_s(&srv, "the directory came back");
    assert_eq!(
        code_of(&py_password(&srv, "alice", ALICE_PW)),
        "Access-Reject",
        "alice has no token"
    );

    // A node started while the directory is down is not "alive" before any login failed:
    // its first Status-Server probes.
    slapd.stop();
    let srv = start_no_reply(&slapd);
    assert_eq!(radclient_status(&srv), "none", "{}", srv.log());
    slapd.restart();
    answered_within_15_s(&srv, "the directory came up");
    assert!(srv.log_shows("the directory and the store answer: Status-Server"));

    // The default client: Status-Server says the node is up, whatever its backends do.
    let srv = start(&slapd, |o| o.ldap_timeout_ms = 1000);
    slapd.stop();
    assert_eq!(
        code_of(&py_password(&srv, "alice", ALICE_PW)),
        "Access-Reject"
    );
    assert_eq!(radclient_status(&srv), "Access-Accept");
}

/// A token whose seed does not open (a damaged row) is its holder's problem, not a store
/// outage: their logins get a Reject even from a no_reply client, and the node stays
/// "alive" to Status-Server. It was handled as a failing store: silence, and a node
/// marked down for every NAS that checks it, for one user's retries (policy red team).
#[test]
fn a_broken_token_is_its_holders_reject_not_a_store_outage() {
    let slapd = directory();
    let srv = start(&slapd, |o| {
        o.clients = vec![Nas {
            on_backend_failure: "no_reply",
            ..Nas::challenge("silent-on-failure", "127.0.0.1")
        }];
    });
    srv.enroll("alice", &[]);
    let db = rusqlite::Connection::open(srv.dir.path().join("radmfa.db")).unwrap();
    let mut sealed: Vec<u8> = db
        .query_row("SELECT secret FROM tokens WHERE user = 'alice'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    db.execute(
        "UPDATE tokens SET secret = ?1 WHERE user = 'alice'",
        rusqlite::params![sealed],
    )
    .unwrap();
    drop(db);
    let r = py_password(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert_eq!(radclient_status(&srv), "Access-Accept", "{}", srv.log());
    assert!(
        srv.log_shows("a login was refused: a stored secret of this user does not open"),
        "{}",
        srv.log()
    );
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["result"] == "reject"
            && rec["reason"]
                .as_str()
                .is_some_and(|r| r.contains("cannot decrypt a stored secret")),
        "{rec}"
    );
}

/// A name with an invisible character in it (a soft hyphen, a zero-width space, a control
/// character) is refused before the directory is asked: OpenLDAP's string preparation
/// (RFC 4518) drops a soft hyphen, so `alice\u{AD}` finds alice's entry, while the store
/// would key the login on another name, one without her tokens or lockout. Whitespace
/// controls too (a line break, a tab, a vertical tab), though the store's key folds them
/// away: `alice\n` got alice's challenge, and `alice\r\nFAKE accept` was logged and audited
/// as `alice fake accept`. The refusal is any other Reject, and its audit reason quotes the
/// name as sent.
#[test]
fn a_name_with_invisible_characters_is_refused() {
    let slapd = directory();
    let srv = start(&slapd, |_| {});
    srv.enroll("alice", &[]);
    let binds = slapd.bind_count(&LdapUser::new("alice", "").dn());
    let unknown = py_password(&srv, "nobody", ALICE_PW);
    let names = [
        "alice\u{AD}",
        "ali\u{200B}ce",
        "alice\u{1}",
        "\u{FEFF}alice",
        "alice\n",
        "\talice\r\n",
        "al\u{B}ice",
        "alice\r\nFAKE accept",
        // The two Cf marks RFC 4518's map-to-nothing list names beside those above.
        "alice\u{6DD}",
        "ali\u{70F}ce",
    ];
    for name in names {
        let r = py_password(&srv, name, ALICE_PW);
        assert_same_reply(&r, &unknown);
    }
    assert_eq!(
        slapd.bind_count(&LdapUser::new("alice", "").dn()),
        binds,
        "the directory was not asked"
    );
    let out = srv.cli(&["audit", "--json", "--limit", "20"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("control or invisible formatting characters")
            .count(),
        names.len(),
        "{text}"
    );
    // The name as sent, escaped (once more by JSON).
    assert!(text.contains(r#"\"alice\\r\\nFAKE accept\""#), "{text}");
    // And no log line of it begins with what followed the line break.
    let log = srv.log();
    assert!(!log.lines().any(|l| l.starts_with("FAKE")), "{log}");
    // The plain name still gets its challenge, and so does one with ordinary spaces around
    // it (folded, as a directory compares).
    for name in ["alice", "alice ", " Alice"] {
        assert_eq!(
            code_of(&py_password(&srv, name, ALICE_PW)),
            "Access-Challenge",
            "{name:?}"
        );
    }
    // A joiner that is part of a spelling (ZWNJ in Persian names) is not refused for
    // itself: this one is no name in the directory, so an unknown user's reply.
    let r = py_password(&srv, "mi\u{200C}na", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let newest = srv.cli(&["audit", "--json", "--limit", "1"]);
    let newest = String::from_utf8_lossy(&newest.stdout);
    assert!(
        newest.contains("unknown user") && !newest.contains("invisible"),
        "{newest}"
    );
}

/// A password spray under the documented cut for journald's rate limit,
/// `log_level = "info,radmfa::audit=warn"`, writes no line per login: unknown users and
/// wrong passwords each wrote an info line of their own beside the audit line (2,999 of
/// 3,000), so the cut cut nothing. The audit table still has every one.
#[test]
fn a_password_spray_logs_no_line_per_login_past_the_audit_cut() {
    let users = LdapUser::generate(10);
    let slapd = Slapd::start(&users);
    let srv = start(&slapd, |o| o.log_level = "info,radmfa::audit=warn");
    let names: Vec<String> = (0..10)
        .map(|i| format!("nobody{i:05}"))
        .chain(users.iter().map(|u| u.uid.clone()))
        .collect();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(srv.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for (id, name) in names.iter().enumerate() {
        let (raw, _) = AccessRequestBuilder::new(id as u8, name)
            .password(b"Summer2026!")
            .build(SECRET.as_bytes());
        sock.send(&raw).unwrap();
    }
    let mut buf = [0u8; 4096];
    for _ in &names {
        let n = sock.recv(&mut buf).expect("every login answered");
        assert_eq!(parse_reply(&buf[..n]).unwrap().code, 3, "Access-Reject");
    }
    let per_login = |l: &str| l.contains("nobody0") || l.contains("user0");
    assert_eq!(srv.log_lines_at_least(0, per_login), 0, "{}", srv.log());
    for (name, reason) in [
        ("nobody00003", "unknown user"),
        ("user00003", "bad password"),
    ] {
        let audit = srv.audit_json(name);
        assert_eq!(audit.len(), 1, "{audit:#?}");
        assert_eq!(audit[0]["reason"], reason, "{audit:#?}");
    }
}

/// A second `radmfa serve` on the SQLite store another one serves (a copy of the config
/// with other ports) is refused, naming the store and saying another server uses it: a
/// SQLite store is one node's, and two processes split the lockout's serialisation and the
/// duplicate cache. Admin commands still run beside the first server.
#[test]
fn a_second_server_on_the_same_sqlite_store_is_refused() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let first = Server::start(&Options::new(&slapd.url));
    let db = first.dir.path().join("radmfa.db");
    let key = first.dir.path().join("radmfa.key");
    let text = std::fs::read_to_string(&first.config)
        .unwrap()
        .replace(
            "path = \"radmfa.db\"",
            &format!("path = {:?}", db.display().to_string()),
        )
        .replace(
            "key_file = \"radmfa.key\"",
            &format!("key_file = {:?}", key.display().to_string()),
        );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("radmfa.toml");
    std::fs::write(&copy, text).unwrap();
    let mut second = std::process::Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(&copy)
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while second.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            second.kill().unwrap();
            let out = second.wait_with_output().unwrap();
            panic!(
                "a second server started on the same store:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("store.path {}", db.display()))
            && err.contains("another `radmfa serve` is serving this database"),
        "{err}"
    );
    // Beside the first server, admin commands run as before.
    let listed = first.cli(&["user", "list"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
}

/// A server started with `o` and `shutdown_grace_ms = grace_ms` (the harness's is 2000).
fn with_grace(o: &Options, grace_ms: u64) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = common::radmfa::write_config(dir.path(), o);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("shutdown_grace_ms = 2000"), "{text}");
    std::fs::write(
        &config,
        text.replace(
            "shutdown_grace_ms = 2000",
            &format!("shutdown_grace_ms = {grace_ms}"),
        ),
    )
    .unwrap();
    Server::start_with(dir, config)
}

/// A stop whose grace ends before a request does (shutdown_grace_ms below the request
/// deadline, the directory hung) says how many requests it abandons, and that they get no
/// reply and no audit record; their dropped tasks do not log a cause that is not theirs
/// ("LDAP operation cut short", after "store closed").
#[test]
fn a_stop_says_how_many_requests_its_grace_abandons() {
    let slapd = directory();
    let mut o = Options::new(&slapd.url);
    o.ldap_timeout_ms = 10_000;
    let mut srv = with_grace(&o, 1500);
    slapd.signal("-STOP");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (pkt, _) = AccessRequestBuilder::new(7, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send_to(&pkt, srv.addr).unwrap();
    slapd.wait_for_unread_request();
    let status = srv.stop();
    slapd.signal("-CONT");
    let log = srv.log();
    assert!(status.success(), "{log}");
    assert!(
        log.contains(
            "abandoning 1 request(s) still in flight: they get no reply and no audit record"
        ),
        "{log}"
    );
    assert!(!log.contains("LDAP operation cut short"), "{log}");
}

/// `/health` says 503 "stopping" from the stop on, while the requests in flight finish
/// (the shutdown grace): it said 200 from the backends' state, and a load balancer kept
/// sending logins to a node whose RADIUS listeners no longer read them.
#[test]
fn health_says_stopping_during_the_shutdown_grace() {
    let slapd = directory();
    let mut o = Options::new(&slapd.url);
    o.ldap_timeout_ms = 10_000;
    o.extra = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n".into();
    let mut srv = with_grace(&o, 8000);
    let health = srv.metrics_addr();
    let (status, _, body) = common::radmfa::http_get(health, "/health");
    assert!(status.contains(" 200 "), "{status}{body}");
    // A login held in flight by a directory that does not answer.
    slapd.signal("-STOP");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (pkt, _) = AccessRequestBuilder::new(9, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send_to(&pkt, srv.addr).unwrap();
    slapd.wait_for_unread_request();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !srv
        .log()
        .contains("shutting down: waiting for requests in flight")
    {
        assert!(Instant::now() < deadline, "no shutdown: {}", srv.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, _, body) = common::radmfa::http_get(health, "/health");
    assert!(
        status.contains(" 503 ") && body.contains("stopping"),
        "{status}{body}\n{}",
        srv.log()
    );
    slapd.signal("-CONT");
    assert!(srv.stop().success(), "{}", srv.log());
}

/// A SIGTERM sent as soon as the log says the server is starting (an admin's Ctrl-C or
/// `systemctl stop` on reading it, a supervisor) is a clean stop: exit status 0 and the
/// "stopped counters=…" line. Before, the handler was set up only once the listeners were, and a
/// signal in between ended the process with SIGTERM's default action (no exit status).
#[test]
fn a_stop_sent_as_the_server_starts_is_a_clean_stop() {
    use std::io::BufRead;
    let slapd = directory();
    let dir = tempfile::tempdir().unwrap();
    let config = common::radmfa::write_config(dir.path(), &Options::new(&slapd.url));
    for attempt in 0..5 {
        let mut child = std::process::Command::new(common::radmfa::bin())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = String::new();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            log.push_str(&line);
            log.push('\n');
            if line.contains(" serving ") {
                let sent = std::process::Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(sent.success());
                break;
            }
        }
        for line in lines {
            log.push_str(&line.unwrap());
            log.push('\n');
        }
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "attempt {attempt}: {status} after a SIGTERM at start:\n{log}"
        );
        assert!(
            log.contains("stopped counters="),
            "attempt {attempt}:\n{log}"
        );
    }
}
