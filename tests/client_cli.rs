//! `radmfa client …` against the real server and slapd: an interactive-style login answered
//! from --code, a Status-Server probe, and short bounded load runs of every flow.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::peers::{now, totp};
use common::radmfa::{bin, cli_on, write_config, Nas, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

fn client(srv: &Server, args: &[&str]) -> Output {
    Command::new(bin())
        .args(["client"])
        .args(args)
        .args(["--server", &srv.addr.to_string()])
        .env("RADMFA_SECRET", SECRET)
        .output()
        .unwrap()
}

/// Enrolls each of `users` and writes the users file `client load` reads (name,
/// password, seed), in the server's directory.
fn enrolled_users_file(srv: &Server, users: &[LdapUser]) -> std::path::PathBuf {
    let mut csv = String::new();
    for u in users {
        let seed = srv.enroll(&u.uid, &[]);
        csv.push_str(&format!("{},{},{seed}\n", u.uid, u.password));
    }
    let file = srv.dir.path().join("users.csv");
    std::fs::write(&file, csv).unwrap();
    file
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn login_follows_the_challenge_and_status_probe_answers() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = Server::start(&Options::new(&slapd.url));
    let seed = srv.enroll("alice", &[]);
    let code = totp(&seed, now(), &[]);
    let out = client(
        &srv,
        &["login", "alice", "--password", "alice-pw", "--code", &code],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Access-Challenge"), "{}", text(&out));
    assert!(text(&out).contains("Access-Accept"));
    // Typed at the prompt: the server's prompt ends in ": " already, and gets no second.
    let out = common::peers::with_input(
        Command::new(bin())
            .args([
                "client",
                "login",
                "alice",
                "--password",
                "alice-pw",
                "--server",
            ])
            .arg(srv.addr.to_string())
            .env("RADMFA_SECRET", SECRET),
        format!("{}\n", totp(&seed, now(), &[])).as_bytes(),
    );
    assert!(
        text(&out).contains("Enter the code from your authenticator app or token: ")
            && !text(&out).contains(": :"),
        "{}",
        text(&out)
    );

    let out = client(&srv, &["login", "alice", "--password", "wrong"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Access-Reject"));
    // A bare Reject to the password: the hint says where the reason is, and how an inline
    // client takes the code.
    assert!(
        text(&out).contains("radmfa audit --user alice")
            && text(&out).contains("send password,code as the password"),
        "{}",
        text(&out)
    );

    let out = client(&srv, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    // By name, as radclient takes one: `localhost` is 127.0.0.1 here (its IPv4 address
    // first), the address the server's entry names.
    let by_name = Command::new(bin())
        .args(["client", "status", "--server"])
        .arg(format!("localhost:{}", srv.port()))
        .env("RADMFA_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(by_name.status.success(), "{}", text(&by_name));

    // --secret-file reads the first line, as the server reads a client's secret_file: the
    // same file (a note on its second line included) works for both.
    // So does a file an editor saved with a byte-order mark, or ending in a lone CR.
    let file = srv.dir.path().join("nas.secret");
    for saved in [
        format!("{SECRET}\nrotated 2026-11\n"),
        format!("\u{feff}{SECRET}\r\n"),
        format!("{SECRET}\r"),
    ] {
        std::fs::write(&file, &saved).unwrap();
        // The file named wins over a RADMFA_SECRET left in the environment.
        let out = Command::new(bin())
            .args(["client", "status", "--secret-file"])
            .arg(&file)
            .args(["--retries", "0", "--server", &srv.addr.to_string()])
            .env("RADMFA_SECRET", "another-nas-secret")
            .output()
            .unwrap();
        assert!(out.status.success(), "{saved:?}: {}", text(&out));
    }

    // A wrong shared secret: replies fail verification, so no answer is believed.
    let out = Command::new(bin())
        .args([
            "client",
            "status",
            "--secret",
            "not-the-secret",
            "--retries",
            "0",
        ])
        .args(["--timeout", "0.5", "--server", &srv.addr.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
}

/// An inline client, as an admin first tries it: the password alone is a bare Reject, and
/// the output says to send password,code, which then logs in.
#[test]
fn login_to_an_inline_client_says_how_to_send_the_code() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        otp_mode: "inline",
        ..Nas::challenge("vpn", "127.0.0.1")
    }];
    let srv = Server::start(&o);
    let seed = srv.enroll("alice", &[]);
    let out = client(&srv, &["login", "alice", "--password", "alice-pw"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("If this client is otp_mode = \"inline\", send password,code"),
        "{}",
        text(&out)
    );
    let field = format!("alice-pw,{}", totp(&seed, now(), &[]));
    let out = client(&srv, &["login", "alice", "--password", &field]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("inline"), "{}", text(&out));
}

/// Tokens of another hash and length (`[totp] algorithm = "SHA256"`, 8 digits): the load
/// generator makes their codes with `--totp-algorithm` and `--totp-digits`; without the
/// flag its SHA1 codes are refused and the run fails.
#[test]
fn load_makes_codes_of_the_servers_totp_algorithm() {
    let users = LdapUser::generate(4);
    let slapd = Slapd::start(&users);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        otp_mode: "inline",
        ..Nas::challenge("inline-nas", "127.0.0.1")
    }];
    o.extra = "\n[totp]\nalgorithm = \"SHA256\"\ndigits = 8\n".into();
    let srv = Server::start(&o);
    let file = enrolled_users_file(&srv, &users);
    let file = file.to_str().unwrap();
    let load = |extra: &[&str]| {
        let mut args = vec![
            "load", "--users", file, "--flow", "inline", "-n", "2", "--json",
        ];
        args.extend_from_slice(extra);
        client(&srv, &args)
    };
    let out = load(&[
        "--range",
        "0:2",
        "--totp-algorithm",
        "sha256",
        "--totp-digits",
        "8",
    ]);
    assert_eq!(load_json(&out)[0]["expected"], 2, "{}", text(&out));
    let out = load(&["--range", "2:4", "--totp-digits", "8"]);
    assert_eq!(out.status.code(), Some(1), "SHA1 codes: {}", text(&out));
    let out = load(&["--totp-algorithm", "md5"]);
    assert!(
        text(&out).contains("use sha1, sha256 or sha512"),
        "{}",
        text(&out)
    );
}

fn load_json(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn load_runs_every_flow_with_verified_replies() {
    let users = LdapUser::generate(30);
    let slapd = Slapd::start(&users);
    let mut o = Options::new(&slapd.url);
    o.clients.push(Nas {
        otp_mode: "inline",
        ..Nas::challenge("inline-nas", "127.0.0.2")
    });
    let srv = Server::start(&o);
    let mut csv = String::new();
    for u in &users {
        csv.push_str(&format!(
            "{},{},{}\n",
            u.uid,
            u.password,
            srv.enroll(&u.uid, &[])
        ));
    }
    let file = srv.dir.path().join("users.csv");
    std::fs::write(&file, csv).unwrap();
    let file = file.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["load", "--users", file, "-p", "4", "--json"];
        args.extend_from_slice(extra);
        load_json(&client(&srv, &args))
    };

    // Default window 1: one code per user per step, so each code-sending run gets users of
    // its own (a new run cannot know which steps the last one used).
    let r = run(&[
        "--flow",
        "inline",
        "-n",
        "15",
        "--source",
        "127.0.0.2",
        "--range",
        "0:15",
    ]);
    assert_eq!(
        (r[0]["phase"].as_str(), r[0]["expected"].as_u64()),
        (Some("inline"), Some(15)),
        "{r:?}"
    );

    let r = run(&["--flow", "two-round", "-n", "15", "--range", "15:30"]);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["expected"], 15, "round 1: {r:?}");
    assert_eq!(
        (r[1]["phase"].as_str(), r[1]["expected"].as_u64()),
        (Some("round2"), Some(15)),
        "{r:?}"
    );

    let r = run(&["--flow", "reject", "-n", "10"]);
    assert_eq!(r[0]["expected"], 10, "{r:?}");
    let r = run(&["--flow", "status", "-d", "0.3"]);
    assert!(r[0]["expected"].as_u64().unwrap() > 10, "{r:?}");
    assert!(r[0]["p99_ms"].as_f64().unwrap() > 0.0);
    // Status-Server names no user: no --users or --generated needed (BENCHMARKS.md's
    // command was refused for want of one).
    let r = load_json(&client(
        &srv,
        &["load", "--flow", "status", "-p", "4", "-d", "0.3", "--json"],
    ));
    assert!(r[0]["expected"].as_u64().unwrap() > 10, "{r:?}");
    // A run in which nothing went as expected fails: under another secret radmfa drops
    // every request, and a script must not read the timeouts as success.
    let out = client(
        &srv,
        &[
            "load",
            "--users",
            file,
            "-p",
            "2",
            "--flow",
            "reject",
            "-n",
            "2",
            "--secret",
            "not-the-shared-secret",
            "--timeout",
            "0.3",
            "--retries",
            "0",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    // Mostly failures is a failure too: half the users have a wrong password, so half the
    // round-1 requests get Access-Reject where a Challenge was due. Above the default
    // --max-error-ratio (0.01) that exits 1; allowed 0.6, the same run passes.
    let half = srv.dir.path().join("half-wrong.csv");
    std::fs::write(&half, "user00000,pw-user00000\nuser00001,wrong\n").unwrap();
    let half = half.to_str().unwrap();
    let mixed = |extra: &[&str]| {
        let mut args = vec!["load", "--users", half, "-p", "1", "--flow", "round1"];
        args.extend_from_slice(&["-n", "10", "--json"]);
        args.extend_from_slice(extra);
        client(&srv, &args)
    };
    let out = mixed(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--max-error-ratio"), "{}", text(&out));
    let r = load_json(&mixed(&["--max-error-ratio", "0.6"]));
    assert_eq!(
        (r[0]["expected"].as_u64(), r[0]["sent"].as_u64()),
        (Some(5), Some(10))
    );
    // Bounds that would overflow or divide by zero are refused up front, naming the flag.
    for (flag, value) in [
        ("--rate", "1e-20"),
        ("--duration", "inf"),
        ("--totp-period", "0"),
        ("--timeout", "inf"),
        ("--timeout", "1e30"),
        ("--max-error-ratio", "1.5"),
    ] {
        let out = client(&srv, &["load", "--users", file, "-n", "1", flag, value]);
        assert!(
            !out.status.success() && text(&out).contains(flag),
            "{flag} {value}: {}",
            text(&out)
        );
    }
    // Two-round keeps every State for round 2: a run that would need more than the cap is
    // refused up front (unbounded memory before), whether by -n or by -d × --rate.
    for bound in [
        &["-n", "4000001", "-d", "0.5"][..],
        &["-d", "0.5", "--rate", "1e7"],
    ] {
        let mut args = vec![
            "load",
            "--users",
            file,
            "--flow",
            "two-round",
            "--timeout",
            "0.2",
        ];
        args.extend_from_slice(bound);
        let out = client(&srv, &args);
        assert!(
            !out.status.success() && text(&out).contains("keeps every State"),
            "{bound:?}: {}",
            text(&out)
        );
    }
    for user in ["user00000", "user00029"] {
        let audit = srv.audit_json(user);
        assert!(
            audit.iter().any(|a| a["result"] == "accept"),
            "{user}: {audit:?}"
        );
    }
}

/// `radmfa db backup` while the server runs: the copy (mode 0600) restores to a server that
/// opens the seeds with the same key file and still refuses the code used before the backup.
#[test]
fn a_backup_taken_while_serving_restores_to_a_working_server() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = Server::start(&Options::new(&slapd.url));
    let seed = srv.enroll("alice", &[]);
    // So that the next step's code, used below, stays in the window (see its doc).
    common::peers::clear_of_step_boundary(5);
    let used = totp(&seed, now(), &[]);
    let login = |s: &Server, code: &str| {
        client(
            s,
            &["login", "alice", "--password", "alice-pw", "--code", code],
        )
    };
    let out = login(&srv, &used);
    assert!(out.status.success(), "{}", text(&out));

    let bk = tempfile::tempdir().unwrap();
    let file = bk.path().join("radmfa.db");
    let before = std::time::SystemTime::now();
    let out = srv.cli(&["db", "backup", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 token(s)"), "{}", text(&out));
    assert!(text(&out).contains("not in the backup"), "{}", text(&out));
    // The file's time is the copy's start, not its end (changes made during a long copy
    // were in neither the backup nor the restore's `--since` list), and the line says it.
    let meta = std::fs::metadata(&file).unwrap();
    let mtime = meta.modified().unwrap();
    {
        // Set back to the copy's start after it was written: strictly before the last
        // change of the file's metadata. The copy's own last write left both equal.
        use std::os::unix::fs::MetadataExt;
        assert!(
            (meta.mtime(), meta.mtime_nsec()) < (meta.ctime(), meta.ctime_nsec()),
            "mtime {mtime:?} is not before the file's ctime"
        );
    }
    let (elapsed, copied) = (before.elapsed().unwrap(), mtime.duration_since(before));
    assert!(
        copied.is_ok_and(|d| d < elapsed),
        "mtime {mtime:?} not between the command's start {before:?} and end"
    );
    let secs = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        text(&out).contains(&format!("audit --since {secs} --limit 0")),
        "{}",
        text(&out)
    );
    // Who copied every sealed seed and phone number out, and where to, is on the record.
    let out = srv.cli(&["audit", "--result", "backup", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let reason = records[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("copied to {}", file.display())),
        "{reason}"
    );
    assert!(records[0]["actor"].is_string(), "{:?}", records[0]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "backup mode {mode:o}");
    }
    // An empty placeholder someone made is used, and made private like a new file.
    {
        use std::os::unix::fs::PermissionsExt;
        let placeholder = srv.dir.path().join("placeholder.db");
        std::fs::write(&placeholder, b"").unwrap();
        std::fs::set_permissions(&placeholder, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = srv.cli(&["db", "backup", placeholder.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        let mode = std::fs::metadata(&placeholder)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "placeholder backup mode {mode:o}");
        // Not another user's placeholder (it would stay theirs to read), nor a link.
        let theirs = srv.dir.path().join("theirs.db");
        std::fs::write(&theirs, b"").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534))
            .expect("chown to nobody (the suite runs as root, as CI does)");
        let out = srv.cli(&["db", "backup", theirs.to_str().unwrap()]);
        assert!(!out.status.success(), "wrote into another user's file");
        assert!(
            text(&out).contains("belongs to another user"),
            "{}",
            text(&out)
        );
        assert_eq!(std::fs::metadata(&theirs).unwrap().len(), 0);
        let link = srv.dir.path().join("link.db");
        std::os::unix::fs::symlink(&theirs, &link).unwrap();
        let out = srv.cli(&["db", "backup", link.to_str().unwrap()]);
        assert!(!out.status.success(), "wrote through a link");
        assert_eq!(std::fs::metadata(&theirs).unwrap().len(), 0);
    }
    let again = srv.cli(&["db", "backup", file.to_str().unwrap()]);
    assert!(!again.status.success(), "a backup overwrote a file");
    assert!(text(&again).contains("exists"), "{}", text(&again));

    let key = srv.config.parent().unwrap().join("radmfa.key");
    std::fs::copy(key, bk.path().join("radmfa.key")).unwrap();
    let cfg = common::radmfa::write_config(bk.path(), &Options::new(&slapd.url));
    let restored = Server::start_with(bk, cfg);
    let out = login(&restored, &used);
    assert!(
        !out.status.success(),
        "the code used before the backup worked again: {}",
        text(&out)
    );
    let next = totp(&seed, now() + 30, &[]);
    let out = login(&restored, &next);
    assert!(out.status.success(), "{}", text(&out));
}

/// Inputs the packet encoder cannot take are refused naming the option, not found by a
/// worker as a panic: a NAS-Identifier over 253 octets, an empty shared secret (given
/// outright, or as the empty first line of a --secret-file).
#[test]
fn unencodable_options_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty_first = dir.path().join("nas.secret");
    std::fs::write(&empty_first, "\nthe secret on line 2 is not read\n").unwrap();
    let empty_first = empty_first.to_str().unwrap();
    let long = "n".repeat(254);
    // Nothing listens on the discard port: were a request sent, it would only time out.
    let target = [
        "--server",
        "127.0.0.1:9",
        "--timeout",
        "0.2",
        "--retries",
        "0",
    ];
    let login = ["login", "alice", "--password", "pw", "--code", "123456"];
    let load = ["load", "--generated", "1", "-n", "1", "--flow", "reject"];
    let cases: [(&[&str], &[&str], &str); 6] = [
        (
            &login,
            &["--secret", "s", "--nas-identifier", &long],
            "--nas-identifier",
        ),
        (
            &load,
            &["--secret", "s", "--nas-identifier", &long],
            "--nas-identifier",
        ),
        (&login, &["--secret", ""], "--secret"),
        (&load, &["--secret", ""], "--secret"),
        (&login, &["--secret-file", empty_first], "--secret-file"),
        (&load, &["--secret-file", empty_first], "--secret-file"),
    ];
    for (cmd, extra, flag) in cases {
        let out = Command::new(bin())
            .arg("client")
            .args(cmd)
            .args(extra)
            .args(target)
            .env_remove("RADMFA_SECRET")
            .output()
            .unwrap();
        let t = text(&out);
        assert!(
            matches!(out.status.code(), Some(1 | 2)) && t.contains(flag) && !t.contains("panicked"),
            "{cmd:?} {flag}: {:?} {t}",
            out.status.code()
        );
    }
}

/// A closed port answers each datagram with ICMP port-unreachable, which the socket reports
/// at once: each attempt still waits out its timeout. With 2 attempts of 0.2 s a request
/// takes 0.4 s, so one worker fits about 3 in a 1 s run; before, it spun through thousands
/// of instant "timeouts".
#[test]
fn a_closed_port_is_waited_out_not_spun_on() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(bin())
        .args(["client", "load", "--generated", "1", "--flow", "status"])
        .args(["-p", "1", "-d", "1", "--timeout", "0.2", "--retries", "1"])
        .args(["--json", "--secret", "s", "--server"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    let sent = r["sent"].as_u64().unwrap();
    assert!((1..=4).contains(&sent), "{r}");
    // Said as what it is (`client login` says "nothing listening" too), not as timeouts;
    // the last request may be cut off by the end of the run instead.
    let unreachable = r["unreachable"].as_u64().unwrap();
    assert!(unreachable >= 1 && sent - unreachable <= 1, "{r}");
    assert_eq!(
        (r["timeouts"].as_u64(), r["replies"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    assert!(!out.status.success(), "{}", text(&out));
}

/// Round 2 keeps to --duration: a server that challenges every password but never answers
/// a State (one that died between the rounds) leaves 200 States, each a 0.3 s timeout, 2 in
/// flight: 30 s unbounded, about 1 s with the deadline; the States not answered are skipped.
#[test]
fn round_two_ends_at_its_duration_when_the_server_goes_quiet() {
    use radmfa::radius::{reply, request};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            let Ok(req) = request::decode_request(&buf[..len], b"s", false) else {
                continue;
            };
            if has_state(&buf[..len]) {
                continue;
            }
            let r = reply::Reply::challenge(b"st".to_vec(), "Code");
            sock.send_to(&reply::encode_reply(&req, &r, b"s"), from)
                .ok();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.csv");
    std::fs::write(&users, "u0,pw,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").unwrap();
    let mut child = Command::new(bin())
        .args([
            "client",
            "load",
            "--flow",
            "two-round",
            "--no-replay-guard",
            "--users",
        ])
        .arg(&users)
        .args([
            "-n",
            "200",
            "-d",
            "1",
            "-p",
            "2",
            "--timeout",
            "0.3",
            "--retries",
            "0",
        ])
        .args(["--json", "--secret", "s", "--server", &addr.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > std::time::Duration::from_secs(15) {
            child.kill().ok();
            panic!("round 2 ran past its --duration");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let r: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(r[0]["expected"], 200, "{r:?}");
    let (sent, skipped) = (r[1]["sent"].as_u64(), r[1]["skipped"].as_u64());
    assert_eq!(sent.unwrap() + skipped.unwrap(), 200, "{r:?}");
    assert!(sent.unwrap() < 20, "{r:?}");
}

/// A UDP responder on a free port: `answer` gets each request that decodes under the
/// secret "s" (with its raw octets) and gives the reply to send, if any.
fn responder(
    answer: impl Fn(&radmfa::radius::Request, &[u8]) -> Option<Vec<u8>> + Send + 'static,
) -> std::net::SocketAddr {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            let raw = &buf[..len];
            let Ok(req) = radmfa::radius::decode_request(raw, b"s", false) else {
                continue;
            };
            if let Some(reply) = answer(&req, raw) {
                sock.send_to(&reply, from).ok();
            }
        }
    });
    addr
}

/// Three users with a one-step window can log in three times; the fourth request waits
/// for a step that does not come before the end (a period of an hour). Before, the phase
/// was timed to its last reply ("3 sent in 0.00 s: 2461 req/s"), the skipped requests
/// were put down to time and the run exited 0. Now the rate is over the 2 s the phase
/// idled, the report says the users ran out of steps, and the run fails.
#[test]
fn users_running_out_of_totp_steps_are_said_and_not_a_fast_run() {
    let accept = |req: &radmfa::radius::Request, _: &[u8]| {
        Some(radmfa::radius::encode_reply(
            req,
            &radmfa::radius::Reply::accept(),
            b"s",
        ))
    };
    let addr = responder(accept);
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.csv");
    let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    std::fs::write(&users, format!("a,pw,{seed}\nb,pw,{seed}\nc,pw,{seed}\n")).unwrap();
    let run = |json: bool| {
        Command::new(bin())
            .args(["client", "load", "--flow", "inline", "--users"])
            .arg(&users)
            .args(["-p", "1", "-d", "2", "--totp-period", "3600"])
            .args(["--secret", "s", "--server", &addr.to_string()])
            .args(if json { &["--json"][..] } else { &[][..] })
            .output()
            .unwrap()
    };
    let out = run(true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r: serde_json::Value = first_report(&out);
    assert_eq!(
        (&r["expected"], &r["step_skipped"], &r["ran_out_after"]),
        (&3.into(), &1.into(), &3.into()),
        "{r}"
    );
    assert!(r["step_waits"].as_u64().unwrap() >= 1, "{r}");
    let seconds = r["seconds"].as_f64().unwrap();
    assert!((1.9..3.0).contains(&seconds), "{seconds} s: {r}");
    assert!(r["ok_per_sec"].as_f64().unwrap() < 2.0, "{r}");
    assert!(
        text(&out).contains("users ran out of unused TOTP steps after 3 logins"),
        "{}",
        text(&out)
    );
    let out = run(false);
    let t = text(&out);
    assert!(
        t.contains("skipped (no unused TOTP step before the end) 1")
            && t.contains("WARNING: users ran out of unused TOTP steps after 3 logins")
            && !t.contains("not sent before the end"),
        "{t}"
    );
    // Under --rate the requests due while the worker waited for a step are not sent
    // either: put down to the steps, not to the server.
    let out = Command::new(bin())
        .args(["client", "load", "--flow", "inline", "--users"])
        .arg(&users)
        .args([
            "-p",
            "1",
            "-d",
            "2",
            "--rate",
            "20",
            "--totp-period",
            "3600",
        ])
        .args(["--secret", "s", "--server", &addr.to_string()])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        t.contains("due under --rate but never sent (workers were waiting for unused TOTP")
            && !t.contains("could not keep up"),
        "{t}"
    );
}

/// Whether a request carries a State (type 24), walking its attributes.
fn has_state(raw: &[u8]) -> bool {
    let mut at = 20;
    while at + 2 <= raw.len() {
        if raw[at] == 24 {
            return true;
        }
        at += usize::from(raw[at + 1]).max(2);
    }
    false
}

/// A responder that answers every request with an Access-Accept signed with another secret:
/// every reply the client gets fails verification. Nothing is believed: `status` and
/// `login` report the forged replies and fail (exit 2, no valid reply), and `load` counts
/// them as forged and fails (exit 1). The server itself drops mis-signed requests, so only
/// a responder like this reaches the client's checks.
#[test]
fn replies_that_fail_verification_are_never_believed() {
    use radmfa::radius::{reply, request};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            let Ok(req) = request::decode_request(&buf[..len], b"s", false) else {
                continue;
            };
            let forged = reply::encode_reply(&req, &reply::Reply::accept(), b"not-s");
            sock.send_to(&forged, from).ok();
        }
    });
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("client")
            .args(args)
            .args(["--secret", "s", "--retries", "0", "--timeout", "0.3"])
            .args(["--server", &addr.to_string()])
            .output()
            .unwrap()
    };
    for args in [&["status"][..], &["login", "alice", "--password", "pw"][..]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("ignored a reply that failed verification")
                && !text(&out).contains("Access-Accept"),
            "{args:?}: {}",
            text(&out)
        );
    }
    let load = [
        "load",
        "--flow",
        "status",
        "--generated",
        "1",
        "-n",
        "3",
        "-p",
        "1",
    ];
    let out = run(&[&load[..], &["--json"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r: serde_json::Value = first_report(&out);
    assert_eq!(
        (&r["forged"], &r["expected"]),
        (&3.into(), &0.into()),
        "{r}"
    );
    // The failure line counts them: it said "0 of 3 requests went wrong".
    let out = run(&load);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Said as `client login` says it ("forged 3" named no cause).
    assert!(
        text(&out).contains(
            "failed: 3 of 3 requests went wrong (3 failed verification (a wrong shared \
             secret looks like this)"
        ) && text(&out).contains("failed verification 3 (a wrong shared secret looks like this;"),
        "{}",
        text(&out)
    );
}

/// A server that answers for a second and then goes quiet, inside the last timeout ×
/// attempts of a 3 s run: every worker waits out its request and nothing more is sent.
/// The run lasted 3 s, not the 1 s the server answered in: its rate is not credited with
/// the silence cut off. With a rate, the requests that came due while every worker waited
/// are counted as skipped, not forgotten.
#[test]
fn a_server_that_goes_quiet_near_the_end_is_not_credited_with_a_short_run() {
    use radmfa::radius::{reply, request};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut first: Option<Instant> = None;
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            // Quiet a second after the first request of each run (the runs are 3 s apart
            // at least, and a run's first request comes at once).
            let now = Instant::now();
            let started = *first.get_or_insert(now);
            if now.duration_since(started) > Duration::from_secs(4) {
                first = Some(now);
            } else if now.duration_since(started) > Duration::from_secs(1) {
                continue;
            }
            let Ok(req) = request::decode_request(&buf[..len], b"s", false) else {
                continue;
            };
            sock.send_to(
                &reply::encode_reply(&req, &reply::Reply::accept(), b"s"),
                from,
            )
            .ok();
        }
    });
    let load = |extra: &[&str]| {
        let out = Command::new(bin())
            .args(["client", "load", "--flow", "status", "--generated", "1"])
            .args(["-p", "2", "-d", "3", "--timeout", "0.6", "--retries", "1"])
            .args(["--secret", "s", "--server", &addr.to_string(), "--json"])
            .args(extra)
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let r: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        r
    };
    let count = |r: &serde_json::Value, field: &str| {
        r[field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {field}: {r}"))
    };
    let r = load(&[]);
    let seconds = r["seconds"].as_f64().unwrap();
    assert!(count(&r, "expected") > 0, "{r}");
    assert!((2.8..3.6).contains(&seconds), "{seconds} s: {r}");
    // Between the runs: the responder takes a request more than 4 s after its run's first
    // as the start of the next run.
    std::thread::sleep(Duration::from_secs(5));
    let r = load(&["--rate", "100"]);
    // Every request due in the 3 s (100/s × 3 s; the schedule hands out no number due at
    // or after the end) is either sent or counted as skipped: none is lost, none counted
    // twice.
    let (sent, skipped) = (count(&r, "sent"), count(&r, "skipped"));
    assert_eq!(sent + skipped, 300, "{r}");
    // Each of the 2 workers waited out at least one request the silence left unanswered
    // (and so sent nothing while it waited) ...
    assert!(count(&r, "timeouts") >= 2, "{r}");
    // ... so most of what came due in the silent 2 s was never sent: skipped, not
    // forgotten (at 100/s, the answered second holds about 100 of the 300).
    assert!(skipped >= 150, "{r}");
    // They are the rate not kept: counted as such.
    assert_eq!(count(&r, "behind_rate"), skipped, "{r}");
    let seconds = r["seconds"].as_f64().unwrap();
    assert!((2.8..3.6).contains(&seconds), "{seconds} s: {r}");
}

/// A server that stops answering a second into a 3 s run, with the default --timeout of
/// 3 s: no request reaches its timeout before the end, so each was only "unanswered when
/// the run ended", and the run passed (exit 0) at a third of the server's rate. A
/// reviewer's radmfa frozen (SIGSTOP) for the last 2 s of a run passed so. Now the run
/// fails, saying the server went quiet; one that answers to the end still passes.
#[test]
fn a_server_that_stops_answering_before_the_end_fails_the_run() {
    let run = |quiet_after: Option<Duration>| {
        Command::new(bin())
            .args(["client", "load", "--flow", "status", "--generated", "1"])
            .args(["-p", "4", "-d", "3", "--secret", "s", "--server"])
            .arg(status_responder(quiet_after).to_string())
            .output()
            .unwrap()
    };
    let out = run(Some(Duration::from_secs(1)));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("failed: no reply in the last")
            && text(&out).contains("the server stopped answering")
            && text(&out).contains("of them for over a second)"),
        "{}",
        text(&out)
    );
    let out = run(None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// A RADIUS server answering Status-Server (secret "s") with an Accept, on a thread; quiet
/// from `quiet_after` past its first request on, if given.
fn status_responder(quiet_after: Option<Duration>) -> std::net::SocketAddr {
    use radmfa::radius::{reply, request};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut first: Option<Instant> = None;
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            let started = *first.get_or_insert_with(Instant::now);
            if quiet_after.is_some_and(|q| started.elapsed() > q) {
                continue;
            }
            let Ok(req) = request::decode_request(&buf[..len], b"s", false) else {
                continue;
            };
            sock.send_to(
                &reply::encode_reply(&req, &reply::Reply::accept(), b"s"),
                from,
            )
            .ok();
        }
    });
    addr
}

/// `-n 2 -p 300` opens two sockets, not 300: under `ulimit -n 64` it failed with "Too
/// many open files" and no word of -p.
#[test]
fn a_count_below_the_concurrency_opens_only_what_it_sends_with() {
    let addr = status_responder(None);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {} client load --flow status --generated 1 -n 2 -p 300 \
             --secret s --server {addr}",
            bin().display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 sent"), "{}", text(&out));
}

/// `-d` ends the run on time: against a server that never answers, with the default
/// timeout (3 s) and retransmits (2), a 1 s run took 9 s and reported "4 sent in 1.00 s".
/// Now no wait goes past the end; the requests still waiting are counted as unanswered
/// when the run ended, and the run (with no reply at all) fails.
#[test]
fn a_duration_ends_the_run_on_time_even_against_a_silent_server() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let t0 = Instant::now();
    let out = Command::new(bin())
        .args(["client", "load", "--flow", "status", "--generated", "1"])
        .args(["-p", "4", "-d", "1", "--secret", "s", "--server"])
        .arg(addr.to_string())
        .output()
        .unwrap();
    let took = t0.elapsed();
    drop(silent);
    assert!(took < Duration::from_secs(3), "{took:?}: {}", text(&out));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("4 sent in 1.00 s")
            && text(&out).contains("unanswered when the run ended 4"),
        "{}",
        text(&out)
    );
    // A request that had waited a whole --timeout (and was retransmitted) before the end
    // is a timeout, not "unanswered when the run ended": attempts at 0, 0.4 and 0.8 s, the
    // fourth would start after the end.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let out = Command::new(bin())
        .args(["client", "load", "--flow", "status", "--generated", "1"])
        .args(["-p", "1", "-d", "1", "--timeout", "0.4", "--retries", "3"])
        .args(["--json", "--secret", "s", "--server"])
        .arg(silent.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    let r = first_report(&out);
    assert_eq!(
        (r["timeouts"].as_u64(), r["cut_off"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
}

/// `--rate` is a promise the run checks: a server that answers one request per 50 ms
/// cannot take 100/s with 2 in flight. Before, 61 % of the requests due were never sent
/// and the run exited 0.
#[test]
fn a_rate_the_server_cannot_keep_is_a_failure() {
    let addr = responder(|req, _| {
        std::thread::sleep(Duration::from_millis(50));
        Some(radmfa::radius::reply::encode_reply(
            req,
            &radmfa::radius::reply::Reply::accept(),
            b"s",
        ))
    });
    let out = Command::new(bin())
        .args(["client", "load", "--flow", "status", "--generated", "1"])
        .args(["-p", "2", "-d", "2", "--rate", "100", "--secret", "s"])
        .args(["--server", &addr.to_string()])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("behind the rate (due, never sent)") && t.contains("due under --rate"),
        "{t}"
    );
}

/// `client ldap-binds` (the benchmark's raw-bind ceiling) against a directory that accepts
/// connections and never answers: the run ends a bounded time after its duration, counting
/// timeouts, instead of hanging the benchmark script.
#[test]
fn ldap_binds_end_when_the_directory_stops_answering() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://{}", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        // Accepted and held open, never read from: a paused slapd.
        let conns: Vec<_> = silent.incoming().take(2).collect();
        std::thread::sleep(std::time::Duration::from_secs(20));
        drop(conns);
    });
    let started = std::time::Instant::now();
    let out = Command::new(bin())
        .args(["client", "ldap-binds", "--url", &url, "--users", "1"])
        .args(["-p", "2", "-d", "0.5", "--json"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(12),
        "{took:?}: {}",
        text(&out)
    );
    let r: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert!(r["timeouts"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["expected"], 0, "{r}");
    drop(held);
}

/// `client ldap-binds` against a directory holding half the users it binds as: the failed
/// binds are called so (not "Access-Reject" beside RADIUS-only fields), the headline rate
/// is of successful binds, and the run exits 1 as `load` does past --max-error-ratio.
/// Before, it printed the rate of all binds and exited 0.
#[test]
fn failed_ldap_binds_are_named_and_fail_the_run() {
    let slapd = Slapd::start(&LdapUser::generate(2));
    let binds = |users: &str, json: bool| {
        Command::new(bin())
            .args([
                "client",
                "ldap-binds",
                "--url",
                &slapd.url,
                "--users",
                users,
            ])
            .args(["-p", "2", "-d", "0.5"])
            .args(if json { &["--json"][..] } else { &[][..] })
            .output()
            .unwrap()
    };
    let out = binds("4", false);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("successful binds/s") && t.contains("bind failed") && !t.contains("Reject"),
        "{t}"
    );
    assert!(!t.contains("forged") && !t.contains("retransmits"), "{t}");
    let out = binds("4", true);
    let r: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let failed = r["unexpected"]["bind failed"].as_u64().unwrap_or(0);
    assert!(failed > 0 && r["expected"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["ok_per_sec"].as_f64() < r["replies_per_sec"].as_f64(),
        "{r}"
    );
    // Every user there: a clean run.
    let out = binds("2", false);
    assert!(out.status.success(), "{}", text(&out));
    // Each mode's phase is named for it (both were "ldap-bind").
    assert_eq!(r["phase"], "ldap-bind", "{r}");
    let out = Command::new(bin())
        .args(["client", "ldap-binds", "--url", &slapd.url, "--users", "2"])
        .args(["-p", "2", "-d", "0.3", "--mode", "connect-bind", "--json"])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(r["phase"], "ldap-connect-bind", "{r}");
}

/// `client bench-users --enroll` writes tokens only into a store an admin named (--config or
/// RADMFA_CONFIG, never the default /etc/radmfa/radmfa.toml), under one audit record; a
/// store that already holds BENCH- tokens is refused before users.csv is replaced. Before,
/// a second run replaced the files, enrolled the new users, then stopped at the first
/// serial already there (exit 2), leaving a users.csv whose seeds the store did not hold.
#[test]
fn bench_users_enroll_needs_a_named_fresh_store_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &Options::new("ldap://127.0.0.1:9"));
    let out_dir = dir.path().join("bench");
    let csv = out_dir.join("users.csv");
    let bench = |count: &str, config: Option<&std::path::Path>| {
        let mut cmd = Command::new(bin());
        cmd.env_remove("RADMFA_CONFIG");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.args([
            "client",
            "bench-users",
            "--count",
            count,
            "--enroll",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap()
    };
    // No configuration named: refused, nothing written.
    let out = bench("3", None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("--config or RADMFA_CONFIG"),
        "{}",
        text(&out)
    );
    assert!(!csv.exists());

    let out = bench("3", Some(&config));
    assert!(out.status.success(), "{}", text(&out));
    let first = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(first.lines().count(), 3);
    let audit = cli_on(&config, &["audit", "--json", "--limit", "100"]);
    assert!(audit.status.success(), "{}", text(&audit));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let reason = records[0]["reason"].as_str().unwrap_or_default();
    assert!(
        records[0]["result"] == "import" && reason.contains("bench-users: 3 benchmark"),
        "{records:?}"
    );

    // Again on the same store: refused before the files are touched.
    let out = bench("5", Some(&config));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("already holds 3 BENCH-"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), first);

    // RADMFA_CONFIG names a configuration as --config does.
    let other = tempfile::tempdir().unwrap();
    let config2 = write_config(other.path(), &Options::new("ldap://127.0.0.1:9"));
    let out = Command::new(bin())
        .env("RADMFA_CONFIG", &config2)
        .args(["client", "bench-users", "--count", "2", "--enroll", "--out"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// An Access-Accept to `raw` with right authenticators under "s" but no
/// Message-Authenticator (`ma_last` false), or one after a Reply-Message (FreeRADIUS 3.2.1).
fn unsigned_accept(raw: &[u8], ma_last: bool) -> Vec<u8> {
    use radmfa::radius::crypto::{message_authenticator, response_authenticator};
    let mut pkt = vec![2, raw[1], 0, 0];
    pkt.extend_from_slice(&raw[4..20]);
    if ma_last {
        pkt.extend_from_slice(&[18, 4, b'o', b'k', 80, 18]);
        pkt.extend_from_slice(&[0; 16]);
    }
    let len = (pkt.len() as u16).to_be_bytes();
    pkt[2..4].copy_from_slice(&len);
    if ma_last {
        let ma = message_authenticator(&pkt, b"s");
        let at = pkt.len() - 16;
        pkt[at..].copy_from_slice(&ma);
    }
    let ra = response_authenticator(&pkt, b"s");
    pkt[4..20].copy_from_slice(&ra);
    pkt
}

/// Right replies that are unsigned, or signed last (FreeRADIUS 3.2.1), are not believed
/// under the strict check, but are not called forged either: `load` counts them apart
/// (`unsigned`) and `status`/`login` say to use `--verify lenient`, and that a reply came.
/// Before, load counted them as forged, and status said "no attributes" then only the
/// generic "no valid reply … server down?".
#[test]
fn unsigned_replies_are_counted_apart_and_point_to_verify_lenient() {
    for ma_last in [false, true] {
        let addr = responder(move |_, raw| Some(unsigned_accept(raw, ma_last)));
        let run = |args: &[&str]| {
            Command::new(bin())
                .arg("client")
                .args(args)
                .args(["--secret", "s", "--retries", "0", "--timeout", "0.3"])
                .args(["--server", &addr.to_string()])
                .output()
                .unwrap()
        };
        let out = run(&["load", "--flow", "status", "--generated", "1", "-n", "3"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(
            t.contains("unsigned") && t.contains("--verify lenient"),
            "{t}"
        );
        let out = run(&[
            "load",
            "--flow",
            "status",
            "--generated",
            "1",
            "-n",
            "3",
            "--json",
        ]);
        let r: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap())
                .unwrap();
        assert_eq!(
            (&r["unsigned"], &r["forged"]),
            (&3.into(), &0.into()),
            "{r}"
        );
        let first = if ma_last {
            "Message-Authenticator not first"
        } else {
            "no Message-Authenticator"
        };
        for args in [&["status"][..], &["login", "alice", "--password", "pw"][..]] {
            let out = run(args);
            let t = text(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {t}");
            assert!(
                t.contains(&format!(
                    "{first} (strict requires it first; `--verify lenient` for servers such \
                     as FreeRADIUS 3.2)"
                )) && t.contains("arrived but failed verification"),
                "{args:?}: {t}"
            );
        }
        let out = run(&["status", "--verify", "lenient"]);
        assert!(out.status.success(), "{}", text(&out));
    }
}

/// Runs `cmd` in a session of its own: no controlling terminal, as under cron or a service.
fn without_terminal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; it only detaches the child from the terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// `client login` with no controlling terminal (cron, a service, setsid) and no password
/// given says how to give one. Before: "reading the password: No such device or address".
#[test]
fn login_without_a_terminal_says_how_to_give_the_password() {
    // `client login USER`, no password given, no terminal, nothing listening.
    let login_as = |user: &str| {
        let mut cmd = Command::new(bin());
        cmd.args(["client", "login", user, "--secret", "s"])
            .args([
                "--server",
                "127.0.0.1:9",
                "--timeout",
                "0.2",
                "--retries",
                "0",
            ])
            .env_remove("RADMFA_PASSWORD")
            .stdin(std::process::Stdio::null());
        without_terminal(&mut cmd);
        cmd
    };
    let mut cmd = login_as("alice");
    let out = cmd.output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("no terminal to ask for the password")
            && t.contains("RADMFA_PASSWORD")
            && t.contains("--password"),
        "{t}"
    );
    // RADMFA_PASSWORD set but empty (a script's unset variable) asks as well, rather than
    // sending an empty password.
    let out = cmd.env("RADMFA_PASSWORD", "").output().unwrap();
    let t = text(&out);
    assert!(t.contains("no terminal to ask for the password"), "{t}");
    // A name that cannot be sent is said before a password is asked for.
    let out = login_as("").output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("the user name must be 1 to 253 octets") && !t.contains("password"),
        "{t}"
    );
}

/// `client login` says what came back when nothing it could believe did: replies with
/// another Identifier are named (it said "wrong secret, unknown client, or server down?"),
/// and a reply of another code, signed with the right secret, does not blame the secret.
#[test]
fn odd_replies_are_named_for_what_they_are() {
    use radmfa::radius::reply;
    let other_id = responder(|req, _| {
        let mut raw = reply::encode_reply(req, &reply::Reply::accept(), b"s");
        raw[1] = raw[1].wrapping_add(1);
        Some(raw)
    });
    let accounting = responder(|req, _| {
        // An Accounting-Response (5) with a right Response Authenticator: the code is
        // what is wrong, not the secret.
        let mut raw = reply::encode_reply(req, &reply::Reply::reject(), b"s");
        raw[0] = 5;
        Some(raw)
    });
    let login = |addr: std::net::SocketAddr| {
        let out = Command::new(bin())
            .args([
                "client",
                "login",
                "alice",
                "--password",
                "pw",
                "--secret",
                "s",
            ])
            .args(["--timeout", "0.3", "--retries", "1"])
            .args(["--server", &addr.to_string()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        text(&out)
    };
    let t = login(other_id);
    assert!(
        t.contains("no valid reply after")
            && t.contains("none a reply to this request (too short, or another Identifier)")
            && !t.contains("wrong secret"),
        "{t}"
    );
    let t = login(accounting);
    assert!(
        t.contains("not an Access-Accept, Access-Reject or Access-Challenge")
            && !t.contains("wrong shared secret"),
        "{t}"
    );
    // Signed with another secret and without a Message-Authenticator: the authenticator
    // is what is wrong, and the secret is named (not only "no Message-Authenticator").
    let unsigned_and_wrong = responder(|_, raw| {
        let mut wrong = unsigned_accept(raw, false);
        wrong[4] ^= 0xff;
        Some(wrong)
    });
    let t = login(unsigned_and_wrong);
    assert!(t.contains("wrong shared secret"), "{t}");
}

/// Small mistakes said as what they are: `-d 0` refused up front (it ran nothing and
/// failed with a confusing line), an empty `--range` called empty (not "outside the
/// users"), a closed UDP port called that (not "receiving: Connection refused"), and a
/// latency line with no expected reply shows "-" (null in JSON), not zeros that read as a
/// fast server.
#[test]
fn small_mistakes_are_said_plainly() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("127.0.0.1:{port}");
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("client")
            .args(args)
            .args(["--secret", "s", "--timeout", "0.2", "--retries", "0"])
            .args(["--server", &server])
            .output()
            .unwrap()
    };
    // Each mistake: its exit code, and what it says.
    let says = |args: &[&str], code: i32, said: &str| {
        let out = run(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(said), "{args:?}: {}", text(&out));
    };
    let load = ["load", "--generated", "10", "--flow", "reject"];
    says(
        &[&load[..], &["-d", "0"]].concat(),
        2,
        "--duration 0: more than 0",
    );
    says(
        &[&load[..], &["-n", "1", "--range", "5:5"]].concat(),
        2,
        "--range 5:5 is empty",
    );
    says(&[&load[..], &["-n", "0"]].concat(), 2, "--count 0");
    says(
        &[&load[..], &["-n", "1", "--totp-window", "11"]].concat(),
        2,
        "--totp-window 11: 0 to 10",
    );
    // A users file line without a seed is named by its user, the flow as typed.
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.csv");
    std::fs::write(&users, "u0,pw,GEZDGNBVGY3TQOJQ\nu1,pw\n").unwrap();
    says(
        &[
            "load",
            "--flow",
            "inline",
            "-n",
            "1",
            "--users",
            users.to_str().unwrap(),
        ],
        2,
        "--flow inline needs a TOTP seed for every user: \"u1\" has none",
    );
    // More codes in flight than users: the generator's own codes would arrive out of
    // order and be refused as replays, counted as the server's failures. Refused up front.
    std::fs::write(&users, "u0,pw,GEZDGNBVGY3TQOJQ\nu1,pw,GEZDGNBVGY3TQOJQ\n").unwrap();
    let users = users.to_str().unwrap();
    for flow in ["inline", "two-round"] {
        says(
            &[
                "load", "--flow", flow, "-n", "9", "-p", "3", "--users", users,
            ],
            2,
            "-p 3 requests in flight for 2 users",
        );
    }
    // An address this host does not have is named by its flag.
    says(
        &[&load[..], &["-n", "1", "--source", "192.0.2.1"]].concat(),
        2,
        "--source 192.0.2.1: binding a UDP socket",
    );
    says(
        &["login", "alice", "--password", "pw"],
        2,
        &format!("nothing listening on {server} (ICMP port unreachable)"),
    );
    says(
        &[&load[..], &["-n", "1", "-p", "1"]].concat(),
        1,
        "latency ms: - (no expected reply)",
    );
    // The JSON says null, not 0.0, for the same run (the bench's tables read it).
    let out = run(&[&load[..], &["-n", "1", "-p", "1", "--json"]].concat());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        assert!(r[k].is_null(), "{k}: {r}");
    }
}

/// A server whose Access-Challenge carries no State: round 1 does not count such a
/// challenge as expected, and round 2 says there was nothing to answer. Before, round 1
/// counted them as expected and round 2 failed with "0 of 0 requests".
#[test]
fn challenges_without_state_are_not_expected() {
    let addr = responder(|req, _| {
        // An empty State is left out of the packet.
        let r = radmfa::radius::Reply::challenge(Vec::new(), "Code");
        Some(radmfa::radius::encode_reply(req, &r, b"s"))
    });
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.csv");
    std::fs::write(&users, "u0,pw,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").unwrap();
    let out = Command::new(bin())
        .args(["client", "load", "--flow", "two-round", "--no-replay-guard"])
        .arg("--users")
        .arg(&users)
        .args(["-n", "4", "-p", "1", "--timeout", "0.3", "--retries", "0"])
        .args(["--json", "--secret", "s", "--server", &addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (
            &r[0]["expected"],
            &r[0]["stateless_challenges"],
            &r[1]["sent"]
        ),
        (&0.into(), &4.into(), &0.into()),
        "{r:?}"
    );
    assert!(
        text(&out).contains("no round-1 challenge carried a State"),
        "{}",
        text(&out)
    );
}

/// The first line of a `--json` run's output: the first phase's report.
fn first_report(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().expect("a report")).unwrap()
}

/// Ctrl-C (SIGINT) during a long `client load` stops it and prints what it counted so far,
/// marked as interrupted, then ends by SIGINT, as Ctrl-C ends a command (an exit 130 of
/// its own let a script of loads go on). Before, SIGINT killed it with empty output, a
/// long run's counts lost. A two-round run stopped in round 1 does not go
/// on to round 2.
#[test]
fn ctrl_c_stops_a_load_run_and_reports_it_so_far() {
    let users = LdapUser::generate(4);
    let slapd = Slapd::start(&users);
    let srv = Server::start(&Options::new(&slapd.url));
    let file = enrolled_users_file(&srv, &users);
    let interrupted = |args: &[&str]| {
        let child = Command::new(bin())
            .args(["client", "load", "-d", "30", "-p", "2"])
            .args(args)
            .args(["--server", &srv.addr.to_string()])
            .env("RADMFA_SECRET", SECRET)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let t0 = Instant::now();
        // SAFETY: kill(2) on the child this test started.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
        let out = child.wait_with_output().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{:?} after Ctrl-C: {}",
            t0.elapsed(),
            text(&out)
        );
        // Ended by SIGINT, as Ctrl-C ends a command (a shell then stops its script too).
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGINT),
            "{}",
            text(&out)
        );
        out
    };
    let out = interrupted(&["--flow", "status"]);
    let t = text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("status: ") && stdout.contains("INTERRUPTED (Ctrl-C)"),
        "{t}"
    );
    assert!(t.contains("status: failed: INTERRUPTED"), "{t}");
    let out = interrupted(
        &["--flow", "two-round", "--json", "--users"]
            .iter()
            .copied()
            .chain([file.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    let r: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(r.len(), 1, "round 2 is not started: {r:?}");
    assert_eq!(
        (&r[0]["phase"], &r[0]["interrupted"]),
        (&"round1".into(), &true.into()),
        "{r:?}"
    );
    let expected = r[0]["expected"].as_u64().unwrap();
    assert!(expected > 0, "{r:?}");
    // Its time is the run's until Ctrl-C, not the 30 s asked for.
    let seconds = r[0]["seconds"].as_f64().unwrap();
    assert!((1.0..3.0).contains(&seconds), "{seconds}: {r:?}");
}

/// Under `--rate`, the time the generator itself waits for a fresh TOTP step is not charged
/// to the server: three users with a one-step window send three codes, the next two
/// requests wait for the next step (about 2.5 s here), and the sixth, due long before,
/// goes out when they come back. Its latency counted from its due time, taking in the
/// wait: max 2.5 s against a server that answers at once (round 2 of a real run: p90
/// 11 s with --rate, 8 ms without).
#[test]
fn a_wait_for_a_totp_step_is_not_the_servers_latency_under_a_rate() {
    let addr = responder(|req, _| {
        Some(radmfa::radius::encode_reply(
            req,
            &radmfa::radius::Reply::accept(),
            b"s",
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.csv");
    let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    std::fs::write(&users, format!("a,pw,{seed}\nb,pw,{seed}\nc,pw,{seed}\n")).unwrap();
    // Early in a 3 s step, so that the wait for the next one is long.
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    while !(0.05..0.5).contains(&(unix() % 3.0)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new(bin())
        .args(["client", "load", "--flow", "inline", "--users"])
        .arg(&users)
        .args(["-n", "6", "-p", "2", "--rate", "100", "--totp-period", "3"])
        .args(["--json", "--secret", "s", "--server", &addr.to_string()])
        .output()
        .unwrap();
    let r = first_report(&out);
    assert_eq!(r["expected"], 6, "{r}");
    assert!(r["step_waits"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["max_ms"].as_f64().unwrap() < 1000.0, "{r}");
}

/// `client login` shows what an Access-Accept carries besides Reply-Message, named as in
/// the configuration: an admin checks `accept_attributes` without radclient. Before, it
/// printed only the Reply-Message.
#[test]
fn login_shows_the_accepts_attributes() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let mut o = Options::new(&slapd.url);
    o.clients.clear();
    o.extra = format!(
        r#"
[[client]]
name = "vpn"
address = "127.0.0.1"
secret = "{SECRET}"
accept_attributes = ["Class = OU=vpn;", "Session-Timeout = 28800", "Fortinet-Group-Name = vpn admins", "Vendor-99-Attr-7 = x"]
"#
    );
    let srv = Server::start(&o);
    let code = totp(&srv.enroll("alice", &[]), now(), &[]);
    let out = client(
        &srv,
        &["login", "alice", "--password", "alice-pw", "--code", &code],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for shown in [
        "  Class = \"OU=vpn;\"\n",
        "  Session-Timeout = 28800\n",
        "  Fortinet-Group-Name = \"vpn admins\"\n",
        "  Vendor-99-Attr-7 = \"x\"\n",
    ] {
        assert!(t.contains(shown), "{shown:?}: {t}");
    }
    assert!(!t.contains("Message-Authenticator"), "{t}");
}

/// A phase's time is the time it took: a `-n` run whose requests all time out took their
/// timeout (it said "5 sent in 0.00 s" after 0.3 s), and a `--rate` run paced to its
/// `-d` lasted that long (`-n 5 -d 1 --rate 1` sends one request and said "1 sent in
/// 0.00 s: 203 replies/s").
#[test]
fn a_phase_lasts_as_long_as_it_ran() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let accepts = responder(|req, _| {
        Some(radmfa::radius::encode_reply(
            req,
            &radmfa::radius::Reply::accept(),
            b"s",
        ))
    });
    let run = |addr: std::net::SocketAddr, extra: &[&str]| {
        let out = Command::new(bin())
            .args(["client", "load", "--flow", "status", "--generated", "1"])
            .args(["--json", "--secret", "s", "--server", &addr.to_string()])
            .args(extra)
            .output()
            .unwrap();
        first_report(&out)
    };
    let silent_addr = silent.local_addr().unwrap();
    let r = run(
        silent_addr,
        &["-n", "5", "-p", "5", "--timeout", "0.3", "--retries", "0"],
    );
    assert_eq!(r["timeouts"], 5, "{r}");
    let seconds = r["seconds"].as_f64().unwrap();
    assert!((0.29..1.0).contains(&seconds), "{seconds}: {r}");
    let r = run(accepts, &["-n", "5", "-d", "1", "--rate", "1"]);
    assert_eq!((&r["sent"], &r["expected"]), (&1.into(), &1.into()), "{r}");
    let seconds = r["seconds"].as_f64().unwrap();
    assert!((0.99..1.5).contains(&seconds), "{seconds}: {r}");
    assert!(r["replies_per_sec"].as_f64().unwrap() <= 1.01, "{r}");
}
