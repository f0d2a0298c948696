//! Hardware and imported OATH tokens end to end: files written by python-pskc and CSV files
//! imported with the real binary, then users logging in over RADIUS (pyrad, with
//! Message-Authenticator enforced) with codes from oathtool, against a real slapd.

mod common;

use std::path::Path;
use std::process::Command;

use common::peers::{make_pskc, now, pyrad, totp};
use common::radmfa::{Nas, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

fn b32(seed: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(seed)
}

/// HOTP from oathtool. `oathtool --hotp` only does SHA1, so the counter is given as a time
/// with a 1-second step: TOTP(T = c, X = 1) is HOTP(c) by definition (RFC 6238 §4.2), for
/// any hash.
fn hotp(seed: &[u8], counter: u64, hash: &str, digits: u32) -> String {
    let out = Command::new("oathtool")
        .arg(format!("--totp={hash}"))
        .args([
            "-s",
            "1",
            "-d",
            &digits.to_string(),
            "-N",
            &format!("@{counter}"),
        ])
        .args(["-b", &b32(seed)])
        .output()
        .expect("oathtool");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn totp_code(seed: &[u8], at: i64, hash: &str, digits: u32, period: u32) -> String {
    let mode = format!("--totp={hash}");
    totp(
        &b32(seed),
        at,
        &[&mode, "-d", &digits.to_string(), "-s", &period.to_string()],
    )
}

fn inline_server(slapd: &Slapd, extra: &str) -> Server {
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        otp_mode: "inline",
        ..Nas::challenge("inline-nas", "127.0.0.1")
    }];
    // Tests type many wrong codes on purpose; the lockout is tested elsewhere.
    o.extra = format!("\n[lockout]\nthreshold = 100\n{extra}");
    Server::start(&o)
}

/// One inline login (password,code); the reply code.
fn login(srv: &Server, user: &str, password: &str, code: &str) -> String {
    let r = pyrad(
        srv.port(),
        SECRET,
        &["--user", user, "--password", &format!("{password},{code}")],
    );
    r["code"].as_str().unwrap().to_string()
}

fn cli_ok(srv: &Server, args: &[&str]) -> String {
    let out = srv.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Imports one HOTP token (SHA-1) from a CSV file in the OATH layout written for it, held
/// by `user` (in stock when empty); returns the file, for a test that imports it again.
fn import_hotp(
    srv: &Server,
    serial: &str,
    seed: &[u8],
    digits: u32,
    counter: u64,
    user: &str,
) -> std::path::PathBuf {
    let csv = srv.dir.path().join(format!("{serial}.csv"));
    let row = format!("{serial},{},hotp,{digits},{counter}", hex::encode(seed));
    let text = if user.is_empty() {
        format!("# serial,key,type,digits,counter\n{row}\n")
    } else {
        format!("# serial,key,type,digits,counter,user\n{row},{user}\n")
    };
    std::fs::write(&csv, text).unwrap();
    cli_ok(srv, &["token", "import", csv.to_str().unwrap()]);
    csv
}

struct Kind {
    tag: &'static str,
    kind: &'static str,
    hash: &'static str,
    digits: u32,
    period: u32,
    counter: u64,
}

const KINDS: [Kind; 6] = [
    Kind {
        tag: "t1",
        kind: "totp",
        hash: "sha1",
        digits: 6,
        period: 30,
        counter: 0,
    },
    Kind {
        tag: "t2",
        kind: "totp",
        hash: "sha256",
        digits: 8,
        period: 60,
        counter: 0,
    },
    Kind {
        tag: "h1",
        kind: "hotp",
        hash: "sha1",
        digits: 6,
        period: 0,
        counter: 0,
    },
    Kind {
        tag: "h2",
        kind: "hotp",
        hash: "sha256",
        digits: 8,
        period: 0,
        counter: 5,
    },
    Kind {
        tag: "t3",
        kind: "totp",
        hash: "sha512",
        digits: 7,
        period: 30,
        counter: 0,
    },
    Kind {
        tag: "h3",
        kind: "hotp",
        hash: "sha512",
        digits: 7,
        period: 0,
        counter: 2,
    },
];

/// Acceptance 1: python-pskc files — plain, AES-128-CBC + HMAC-SHA1, AES-256-CBC +
/// HMAC-SHA256, KW-AES128, PBKDF2 — import, and every token logs its user in over RADIUS
/// with an oathtool code: TOTP and HOTP, 6, 7 and 8 digits, SHA1, SHA256 and SHA512, 30 and
/// 60 s.
#[test]
fn python_pskc_files_import_and_log_users_in() {
    let key16 = "000102030405060708090a0b0c0d0e0f";
    let key32 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let modes: [(&str, Vec<&str>, Vec<&str>); 5] = [
        ("plain", vec![], vec![]),
        (
            "cbc128",
            vec![
                "--protection",
                "aes128-cbc",
                "--key",
                key16,
                "--mac",
                "hmac-sha1",
            ],
            vec!["key16"],
        ),
        (
            "cbc256",
            vec![
                "--protection",
                "aes256-cbc",
                "--key",
                key32,
                "--mac",
                "hmac-sha256",
            ],
            vec!["key32"],
        ),
        (
            "kw128",
            vec!["--protection", "kw-aes128", "--key", key16],
            vec!["key16"],
        ),
        (
            "pbkdf2",
            vec!["--protection", "pbkdf2", "--passphrase", "Tr0ub4dor&3"],
            vec!["pass"],
        ),
    ];
    let mut users = Vec::new();
    for (m, _, _) in &modes {
        for k in &KINDS {
            users.push(LdapUser::new(
                &format!("{m}-{}", k.tag),
                &format!("pw-{m}-{}", k.tag),
            ));
        }
    }
    let slapd = Slapd::start(&users);
    let srv = inline_server(&slapd, "");
    let dir = srv.dir.path();
    std::fs::write(dir.join("key16"), format!("{key16}\n")).unwrap();
    std::fs::write(dir.join("key32"), key32).unwrap();
    std::fs::write(dir.join("pass"), "Tr0ub4dor&3\n").unwrap();

    let mut seeds = Vec::new();
    for (m, make_args, secret_file) in &modes {
        let mut list = Vec::new();
        for k in &KINDS {
            let len = match k.hash {
                "sha256" => 32,
                "sha512" => 64,
                _ => 20,
            };
            let seed: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
            list.push(serde_json::json!({
                "serial": format!("{m}-{}", k.tag), "secret_hex": hex::encode(&seed),
                "type": k.kind, "digits": k.digits, "hash": k.hash,
                "period": k.period, "counter": k.counter, "user": format!("{m}-{}", k.tag),
                "manufacturer": "Vendor", "model": "OTP c200",
            }));
            seeds.push((format!("{m}-{}", k.tag), seed, k));
        }
        let file = dir.join(format!("{m}.pskcxml"));
        make_pskc(&file, &serde_json::Value::Array(list), make_args);
        let mut args = vec!["token", "import", file.to_str().unwrap()];
        let secret_path;
        if let Some(f) = secret_file.first() {
            secret_path = dir.join(f).to_str().unwrap().to_string();
            args.push(if *f == "pass" {
                "--passphrase-file"
            } else {
                "--key-file"
            });
            args.push(&secret_path);
        }
        let out = cli_ok(&srv, &args);
        let n = KINDS.len();
        assert!(
            out.contains(&format!("imported {n} token(s) ({n} assigned")),
            "{m}: {out}"
        );
    }

    for (name, seed, k) in &seeds {
        let t = now();
        let code = match k.kind {
            "totp" => totp_code(seed, t, k.hash, k.digits, k.period),
            _ => hotp(seed, k.counter, k.hash, k.digits),
        };
        assert_eq!(
            login(&srv, name, &format!("pw-{name}"), &code),
            "Access-Accept",
            "{name}"
        );
        assert_eq!(
            login(&srv, name, &format!("pw-{name}"), &code),
            "Access-Reject",
            "{name} replay"
        );
        let audit = srv.audit_json(name);
        let accept = audit
            .iter()
            .find(|r| r["result"] == "accept")
            .expect("accept record");
        assert_eq!(accept["mode"], k.kind, "{name}");
        assert_eq!(accept["token_serial"], name.as_str());
    }
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["token", "show", "kw128-t2", "--json"])).unwrap();
    assert_eq!(
        (
            show["algorithm"].as_str(),
            show["digits"].as_u64(),
            show["period"].as_u64()
        ),
        (Some("SHA256"), Some(8), Some(60))
    );
    assert_eq!(show["model"], "OTP c200");
}

/// A vendor's PSKC file may leave out each key's hash, digits and time step (RFC 6030 makes
/// `Suite`, `ResponseFormat` and `TimeInterval` optional). The admin who knows the tokens
/// are 8-digit SHA256 at 60 s says so with the import's options, as for a CSV file: before,
/// the options were quietly ignored for PSKC, the tokens stored as 6-digit SHA1 at 30 s,
/// and no code from them ever verified. `--key-encoding`, which no PSKC key has, is refused.
#[test]
fn a_pskc_file_that_leaves_out_the_parameters_takes_the_import_options() {
    let slapd = Slapd::start(&[LdapUser::new("bare", "pw-bare")]);
    let srv = inline_server(&slapd, "");
    let seed: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    let file = srv.dir.path().join("bare.pskcxml");
    let tokens = serde_json::json!([{
        "serial": "bare-1", "secret_hex": hex::encode(&seed), "type": "totp",
        "digits": 8, "hash": "sha256", "period": 60, "user": "bare",
        "leave_out_parameters": true,
    }]);
    make_pskc(&file, &tokens, &[]);
    let text = std::fs::read_to_string(&file).unwrap();
    for absent in ["ResponseFormat", "Suite", "TimeInterval"] {
        assert!(
            !text.contains(absent),
            "python-pskc wrote {absent}:\n{text}"
        );
    }
    let path = file.to_str().unwrap();
    let out = srv.cli(&["token", "import", path, "--key-encoding", "hex"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--key-encoding is for CSV files"),
        "{out:?}"
    );
    let opts = ["--algorithm", "SHA256", "--digits", "8", "--period", "60"];
    let mut args = vec!["token", "import", path];
    args.extend(opts);
    let out = cli_ok(&srv, &args);
    assert!(out.contains("imported 1 token(s) (1 assigned"), "{out}");
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["token", "show", "bare-1", "--json"])).unwrap();
    assert_eq!(
        (
            show["algorithm"].as_str(),
            show["digits"].as_u64(),
            show["period"].as_u64()
        ),
        (Some("SHA256"), Some(8), Some(60))
    );
    let code = totp_code(&seed, now(), "sha256", 8, 60);
    assert_eq!(login(&srv, "bare", "pw-bare", &code), "Access-Accept");
}

/// Acceptance 2 over RADIUS: RFC 6030 Figures 6 (pre-shared key) and 7 (PBKDF2, "qwerty")
/// import, and the token then logs in with the RFC's secret.
#[test]
fn rfc6030_figures_log_in_with_the_rfc_secret() {
    let slapd = Slapd::start(&[LdapUser::new("jsmith", "jsmith-pw")]);
    let srv = inline_server(&slapd, "");
    let fig = |n: u32| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/rfc6030/figure{n}.pskcxml"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let dir = srv.dir.path();
    std::fs::write(dir.join("psk"), "12345678901234567890123456789012").unwrap();
    std::fs::write(dir.join("pass"), "qwerty").unwrap();
    let map = dir.join("map");
    std::fs::write(&map, "987654321,jsmith\n").unwrap();
    let psk = dir.join("psk").to_str().unwrap().to_string();
    let out = cli_ok(
        &srv,
        &[
            "token",
            "import",
            &fig(6),
            "--key-file",
            &psk,
            "--map",
            map.to_str().unwrap(),
        ],
    );
    assert!(out.contains("imported 1 token(s) (1 assigned"), "{out}");
    let secret = b"12345678901234567890";
    assert_eq!(
        login(&srv, "jsmith", "jsmith-pw", &hotp(secret, 0, "sha1", 8)),
        "Access-Accept"
    );
    assert_eq!(
        login(&srv, "jsmith", "jsmith-pw", &hotp(secret, 0, "sha1", 8)),
        "Access-Reject"
    );

    let pass = dir.join("pass").to_str().unwrap().to_string();
    // Same serial: refused without --replace, then replaced (owner kept). The same seed
    // again: the counter does not go back to the file's 0, so the used code stays used.
    assert!(!srv
        .cli(&["token", "import", &fig(7), "--passphrase-file", &pass])
        .status
        .success());
    cli_ok(
        &srv,
        &[
            "token",
            "import",
            &fig(7),
            "--passphrase-file",
            &pass,
            "--replace",
        ],
    );
    assert_eq!(
        login(&srv, "jsmith", "jsmith-pw", &hotp(secret, 0, "sha1", 8)),
        "Access-Reject"
    );
    assert_eq!(
        login(&srv, "jsmith", "jsmith-pw", &hotp(secret, 1, "sha1", 8)),
        "Access-Accept"
    );

    // Figure 10's keys were valid in May 2006 only: each is refused, naming its ExpiryDate
    // (stored, they could never log in), and --skip-invalid leaves nothing to import.
    let out = srv.cli(&["token", "import", &fig(10)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The first two share their ExpiryDate, so one line tells of both; the origin names
    // each serial, and the message does not say it again.
    assert_eq!(
        err.matches("is past, so it could never log in").count(),
        3,
        "{err}"
    );
    assert!(
        err.contains(
            "KeyPackage 1 (line 9, serial 654321) to KeyPackage 2 (line 36, serial 123456) \
             (2 in all): ExpiryDate 2006-05-31T00:00:00Z is past"
        ),
        "{err}"
    );
    assert!(!err.contains("): serial "), "{err}");
    let out = srv.cli(&["token", "import", &fig(10), "--skip-invalid"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no valid token to import"),
        "{out:?}"
    );
    assert!(!srv.cli(&["token", "show", "654321"]).status.success());
}

/// A code one of the user's tokens already used is refused before any other token is asked,
/// and without counting toward the lockout. Two tokens sharing a seed show it: an HOTP token
/// whose last used counter is the TOTP step of now, and a TOTP token; the HOTP token's used
/// code is the TOTP token's current one. Asked of every token in turn, the TOTP token
/// accepted it: whoever held one used code got a free guess at every other token.
#[test]
fn a_code_one_token_used_is_not_checked_against_the_others() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = b"shared-seed-01234567";
    common::peers::clear_of_step_boundary(10);
    let step = now() / 30;
    let csv = srv.dir.path().join("two.csv");
    // An import refuses one seed under two serials, so TT-B comes with a seed of its own and
    // gets HW-A's in the database, sealed as radmfa seals it (bound to its serial).
    std::fs::write(
        &csv,
        format!(
            "serial,key,type,digits,counter,user\nHW-A,{},hotp,6,{},alice\nTT-B,{},totp,6,0,alice\n",
            hex::encode(seed),
            step + 1,
            hex::encode(b"not-the-shared-seed!"),
        ),
    )
    .unwrap();
    cli_ok(&srv, &["token", "import", csv.to_str().unwrap()]);
    let sealer = radmfa::store::seal::KeyFile::load(&srv.dir.path().join("radmfa.key")).unwrap();
    let db = rusqlite::Connection::open(srv.dir.path().join("radmfa.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE tokens SET secret = ?1 WHERE serial = 'TT-B'",
            [sealer.seal(seed, b"TT-B")],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let used_by_a = hotp(seed, step as u64, "sha1", 6);
    let b32 = data_encoding::BASE32.encode(seed);
    assert_eq!(used_by_a, totp(&b32, now(), &[]), "the twin");
    assert_eq!(
        login(&srv, "alice", "alice-pw", &used_by_a),
        "Access-Reject"
    );
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["reason"], "code already used", "{rec}");
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "alice", "--json"])).unwrap();
    assert_eq!(show["failures"], 0, "{show}");
}

/// A code typed as an app shows it, in two groups, or with a space after it, is the code.
#[test]
fn a_code_typed_with_spaces_is_the_code() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = srv.enroll("alice", &[]);
    common::peers::clear_of_step_boundary(8);
    let step = now() / 30;
    let code = |s: i64| totp(&seed, s * 30, &[]);
    let now_code = code(step);
    let grouped = format!("{} {}", &now_code[..3], &now_code[3..]);
    assert_eq!(login(&srv, "alice", "alice-pw", &grouped), "Access-Accept");
    let next = format!("{} ", code(step + 1));
    assert_eq!(login(&srv, "alice", "alice-pw", &next), "Access-Accept");
}

/// A code written with a dash, as some tokens and apps show it ("426-679"), or in full-width
/// digits (an East Asian input method), is the code: it was refused as "not a code" and
/// counted toward the lockout. At a prompt, an answer that is no code at all ("abc") is
/// refused without counting (threshold = 1 here: counted, it locked the user out), as a
/// code-only client refuses one.
#[test]
fn a_code_with_a_dash_or_full_width_digits_is_the_code_and_no_code_is_no_guess() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = srv.enroll("alice", &[]);
    common::peers::clear_of_step_boundary(8);
    let step = now() / 30;
    let code = |s: i64| totp(&seed, s * 30, &[]);
    let now_code = code(step);
    let dashed = format!("{}-{}", &now_code[..3], &now_code[3..]);
    assert_eq!(login(&srv, "alice", "alice-pw", &dashed), "Access-Accept");
    let wide: String = code(step + 1)
        .chars()
        .map(|c| char::from_u32(0xFF10 + c.to_digit(10).unwrap()).unwrap())
        .collect();
    assert_eq!(login(&srv, "alice", "alice-pw", &wide), "Access-Accept");

    let slapd = Slapd::start(&[LdapUser::new("erin", "erin-pw")]);
    let mut o = Options::new(&slapd.url);
    o.extra = "\n[lockout]\nthreshold = 1\n[challenge]\nmax_attempts = 2\n".into();
    let srv = Server::start(&o);
    let seed = srv.enroll("erin", &[]);
    let send = |args: &[&str]| pyrad(srv.port(), SECRET, args);
    let first = send(&["--user", "erin", "--password", "erin-pw"]);
    assert_eq!(first["code"], "Access-Challenge", "{first}");
    let state = first["state"].as_str().unwrap().to_string();
    let answer = send(&["--user", "erin", "--password", "abc", "--state", &state]);
    assert_eq!(answer["code"], "Access-Challenge", "{answer}");
    let rec = &srv.audit_json("erin")[0];
    assert_eq!(rec["reason"], "not a code (4 to 10 digits)", "{rec}");
    let show = cli_ok(&srv, &["user", "show", "erin"]);
    assert!(show.contains("failures: 0"), "{show}");
    let code = totp(&seed, now(), &[]);
    let dashed = format!("{}-{}", &code[..3], &code[3..]);
    let answer = send(&["--user", "erin", "--password", &dashed, "--state", &state]);
    assert_eq!(answer["code"], "Access-Accept", "{answer}");
}

/// A TOTP code from two steps before the last used one (beyond the window, never used) is
/// refused as older than the last code used, uncounted; it was "code already used", which
/// sent the admin after a replay. The very code used is still "code already used".
#[test]
fn an_old_totp_code_is_told_apart_from_a_replay() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = srv.enroll("alice", &[]);
    common::peers::clear_of_step_boundary(8);
    let step = now() / 30;
    let code = |s: i64| totp(&seed, s * 30, &[]);
    assert_eq!(
        login(&srv, "alice", "alice-pw", &code(step)),
        "Access-Accept"
    );
    let reason = |c: &str| {
        assert_eq!(login(&srv, "alice", "alice-pw", c), "Access-Reject");
        srv.audit_json("alice")[0]["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Unless the old step's code happens to be the used one's (one in a million).
    if code(step - 2) != code(step) {
        assert_eq!(reason(&code(step - 2)), "code older than the last one used");
    }
    assert_eq!(reason(&code(step)), "code already used");
    let show = cli_ok(&srv, &["user", "show", "alice"]);
    assert!(show.contains("failures: 0"), "{show}");
}

/// An HOTP code from an earlier press typed again (not the last used one) is refused as
/// older than the last one used, and not counted toward the lockout, as TOTP's earlier
/// steps are: it counted as a wrong code ("failures: 1 of 5").
#[test]
fn an_earlier_hotp_code_again_is_older_than_the_last_used_and_uncounted() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = b"hotp-look-behind-123";
    import_hotp(&srv, "HB-1", seed, 6, 1001, "alice");
    let go = |c| login(&srv, "alice", "alice-pw", &hotp(seed, c, "sha1", 6));
    let reason = || {
        srv.audit_json("alice")[0]["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(go(1001), "Access-Accept");
    assert_eq!(go(1002), "Access-Accept");
    assert_eq!(go(1001), "Access-Reject");
    assert_eq!(reason(), "code older than the last one used");
    assert_eq!(go(1002), "Access-Reject");
    assert_eq!(reason(), "code already used");
    let show = cli_ok(&srv, &["user", "show", "alice"]);
    assert!(show.contains("failures: 0"), "{show}");
    assert_eq!(go(1003), "Access-Accept", "the next press still works");
}

/// `token delete` of an HOTP token that has used codes warns that the vendor's file
/// imported again would let them in again, and takes --force for it, in stock too: deleted
/// and re-imported (counter 0 in the file), a code already used logged in again.
#[test]
fn deleting_a_used_hotp_token_takes_force_and_says_what_a_reimport_would_do() {
    let slapd = Slapd::start(&[LdapUser::new("bob", "bob-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = b"hotp-delete-reimport";
    let csv = import_hotp(&srv, "HH0004", seed, 6, 0, "");
    // Unused: deleted as before, without --force.
    cli_ok(&srv, &["token", "delete", "HH0004"]);
    cli_ok(&srv, &["token", "import", csv.to_str().unwrap()]);
    cli_ok(&srv, &["token", "assign", "HH0004", "bob"]);
    let code = |c| hotp(seed, c, "sha1", 6);
    assert_eq!(login(&srv, "bob", "bob-pw", &code(1)), "Access-Accept");
    cli_ok(&srv, &["token", "unassign", "HH0004"]);
    // In stock, and used up to counter 2: refused without --force, saying why and what to
    // do instead.
    let out = srv.cli(&["token", "delete", "HH0004"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("HH0004: an HOTP token at counter 2")
            && err.contains("the codes it has used would log in again")
            && err.contains("`counter` column of 2")
            && err.contains("radmfa token disable")
            && err.contains("--force"),
        "{err}"
    );
    assert!(cli_ok(&srv, &["token", "list"]).contains("HH0004"));
    // With --force it goes, and the counter it had is said once more.
    let out = srv.cli(&["token", "delete", "HH0004", "--force"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("note: HH0004 was an HOTP token at counter 2"),
        "{err}"
    );
}

/// Acceptance 4: an HOTP code works once; a code 5 ahead works and the earlier ones then
/// fail; a token 50 ahead is refused until resynchronised with two consecutive codes.
#[test]
fn hotp_window_single_use_and_resync() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = b"hotp-seed-0123456789";
    let csv = import_hotp(&srv, "HW-1", seed, 6, 0, "alice");
    let code = |c| hotp(seed, c, "sha1", 6);
    let go = |c| login(&srv, "alice", "alice-pw", &code(c));

    assert_eq!(go(0), "Access-Accept");
    assert_eq!(go(0), "Access-Reject", "a code works once");
    assert_eq!(go(6), "Access-Accept", "5 ahead of the next expected (1)");
    for c in 1..=5 {
        assert_eq!(go(c), "Access-Reject", "earlier code {c} after the jump");
    }
    // Disabled tokens do not verify; enabled again they do.
    cli_ok(&srv, &["token", "disable", "HW-1"]);
    assert_eq!(go(7), "Access-Reject");
    cli_ok(&srv, &["token", "enable", "HW-1"]);
    assert_eq!(go(7), "Access-Accept");

    // The button pressed 50 times without a login: counter 8, token at 58.
    assert_eq!(go(58), "Access-Reject", "beyond the window");
    assert_eq!(go(59), "Access-Reject", "self-service is off by default");
    let bad = srv.cli(&["token", "resync", "HW-1", &code(60), &code(62)]);
    assert!(
        !bad.status.success(),
        "codes that are not consecutive do not resync"
    );
    let out = cli_ok(&srv, &["token", "resync", "HW-1", &code(60), &code(61)]);
    assert!(out.contains("counter moved from 8 to 62"), "{out}");
    // The same two codes again (or the last used one and the next): said as used, or as
    // older than the last used, not as codes that are not consecutive. Only the last used
    // one is called used: an earlier one may have been skipped.
    for (first, second, said) in [
        (
            60,
            61,
            "the first code is older than the last one the token used (counter 60; the last \
             used is 61, the next 62)",
        ),
        (
            61,
            62,
            "the first code is the one the token used last (counter 61; the next is 62)",
        ),
    ] {
        let again = srv.cli(&["token", "resync", "HW-1", &code(first), &code(second)]);
        let err = String::from_utf8_lossy(&again.stderr);
        assert!(!again.status.success() && err.contains(said), "{err}");
    }
    assert_eq!(go(61), "Access-Reject");
    assert_eq!(go(62), "Access-Accept");

    // The vendor's file imported again over the token (same seed, counter 0): what radmfa
    // learned stays. Disabled as lost, it stays disabled; the used codes stay used.
    cli_ok(&srv, &["token", "disable", "HW-1"]);
    let out = cli_ok(
        &srv,
        &["token", "import", csv.to_str().unwrap(), "--replace"],
    );
    assert!(out.contains("1 replacing"), "{out}");
    assert_eq!(go(63), "Access-Reject", "re-enabled by the import");
    cli_ok(&srv, &["token", "enable", "HW-1"]);
    assert_eq!(go(0), "Access-Reject", "a used code works again");
    assert_eq!(go(62), "Access-Reject", "the last used code works again");
    assert_eq!(go(63), "Access-Accept");

    let audit = srv.audit_json("alice");
    assert!(
        audit.iter().any(|r| r["result"] == "replace"
            && r["token_serial"] == "HW-1"
            && r["reason"]
                .as_str()
                .is_some_and(|why| why.starts_with("token HW-1 replaced from"))),
        "{audit:#?}"
    );
    let accepts: Vec<_> = audit.iter().filter(|r| r["result"] == "accept").collect();
    assert_eq!(accepts.len(), 5, "{audit:#?}");
    assert!(accepts
        .iter()
        .all(|r| r["mode"] == "hotp" && r["token_serial"] == "HW-1"));
    assert!(audit
        .iter()
        .any(|r| r["result"] == "resync" && r["token_serial"] == "HW-1"));
}

/// Self-service resync at login ([hotp] self_resync): the first far code is refused and
/// remembered, the very next one is accepted.
#[test]
fn hotp_self_service_resync_at_login() {
    let slapd = Slapd::start(&[LdapUser::new("bob", "bob-pw")]);
    let srv = inline_server(&slapd, "\n[hotp]\nself_resync = true\n");
    let seed = b"another-hotp-seed-42";
    let csv = srv.dir.path().join("hw.csv");
    std::fs::write(
        &csv,
        format!(
            "serial,key,type,digits,counter,user\nHW-2,{},hotp,8,0,bob\n",
            b32(seed)
        ),
    )
    .unwrap();
    cli_ok(
        &srv,
        &[
            "token",
            "import",
            csv.to_str().unwrap(),
            "--key-encoding",
            "base32",
        ],
    );
    let go = |c| login(&srv, "bob", "bob-pw", &hotp(seed, c, "sha1", 8));
    let far = format!("bob-pw,{}", hotp(seed, 300, "sha1", 8));
    let first = pyrad(srv.port(), SECRET, &["--user", "bob", "--password", &far]);
    assert_eq!(first["code"], "Access-Reject");
    // Inline, told nothing a wrong password is not (`inline_reply`): the user's next try
    // with a fresh code, the token's next, finishes the resync. The audit says what it was.
    assert!(
        first["messages"].as_array().is_none_or(|m| m.is_empty()),
        "{first}"
    );
    let audit = srv.audit_json("bob");
    assert!(
        audit[0]["reason"].as_str().unwrap().contains("out of sync"),
        "{audit:#?}"
    );
    assert_eq!(go(302), "Access-Reject", "not the very next code");
    assert_eq!(go(303), "Access-Accept");
    assert_eq!(go(303), "Access-Reject");
    assert_eq!(go(304), "Access-Accept");
    // Refused inline codes are recorded in the code's mode, as at a prompt (they were
    // "none", beside requests that had no code at all).
    let modes: Vec<(String, String)> = srv
        .audit_json("bob")
        .iter()
        .filter(|r| r["mode"] != "admin")
        .map(|r| (r["result"].to_string(), r["mode"].to_string()))
        .collect();
    assert_eq!(modes.len(), 5, "{modes:?}");
    assert!(modes.iter().all(|(_, m)| m == "\"hotp\""), "{modes:?}");
}

/// Self-service resync with the largest `resync_window`, whose first code also came up
/// earlier in the range (a chance twin, about one resync in ten there; this seed's found by
/// search): the user's next press finishes it. Only the earlier counter's successor was
/// taken: the next code was refused as out of sync again, and only the one after it got in.
#[test]
fn a_self_resync_whose_first_code_has_an_earlier_twin_takes_the_next_code() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = inline_server(
        &slapd,
        "\n[hotp]\nself_resync = true\nresync_window = 100000\n",
    );
    let seed = b"hotp-twin-resync-seed";
    import_hotp(&srv, "HT-1", seed, 6, 0, "alice");
    let at = |c: u64| {
        let secret = radmfa::secret::Secret::new(seed.to_vec());
        radmfa::mfa::hotp::hotp_code(&secret, radmfa::store::OtpAlgorithm::Sha1, 6, c)
    };
    // Past the window of 10: the first two counters with one code.
    let mut seen = std::collections::HashMap::new();
    let (twin, pressed) = (11u64..)
        .find_map(|c| seen.insert(at(c), c).map(|earlier| (earlier, c)))
        .unwrap();
    let code = |c| hotp(seed, c, "sha1", 6);
    assert_eq!(code(twin), code(pressed), "a twin, by oathtool too");
    assert_ne!(code(twin + 1), code(pressed + 1));
    let far = format!("alice-pw,{}", code(pressed));
    let first = pyrad(srv.port(), SECRET, &["--user", "alice", "--password", &far]);
    assert_eq!(first["code"], "Access-Reject", "{first}");
    assert!(srv.audit_json("alice")[0]["reason"]
        .as_str()
        .is_some_and(|m| m.contains("out of sync")));
    assert_eq!(
        login(&srv, "alice", "alice-pw", &code(pressed + 1)),
        "Access-Accept",
        "the press after {pressed} (twin {twin})"
    );
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["token", "show", "HT-1", "--json"])).unwrap();
    assert_eq!(show["counter"], pressed + 2, "{show}");
    assert_eq!(
        login(&srv, "alice", "alice-pw", &code(pressed + 2)),
        "Access-Accept"
    );
}

/// A refused code that is one token's (a code it used, one far ahead of it, the code of it
/// disabled) is audited under that token's serial and in its kind's mode, though the user
/// also holds a TOTP app: those were "totp" and "-", and the admin looked for an app's
/// problem. A user with two HOTP tokens gets the used one's serial too. A code of none
/// keeps the user's mode.
#[test]
fn a_refused_code_of_one_token_is_audited_as_that_tokens() {
    let slapd = Slapd::start(&[
        LdapUser::new("carol", "carol-pw"),
        LdapUser::new("lee", "lee-pw"),
    ]);
    let srv = inline_server(&slapd, "\n[hotp]\nself_resync = true\n");
    srv.enroll("carol", &[]);
    let seed = b"hotp-carol-seed-0123";
    import_hotp(&srv, "HOTP-CAROL", seed, 6, 0, "carol");
    let code = |c| hotp(seed, c, "sha1", 6);
    let last = |user: &str| {
        let rec = srv.audit_json(user).remove(0);
        let field = |k: &str| rec[k].as_str().unwrap_or("-").to_string();
        (
            field("result"),
            field("mode"),
            field("token_serial"),
            field("reason"),
        )
    };
    assert_eq!(login(&srv, "carol", "carol-pw", &code(0)), "Access-Accept");
    let hotp_row = |reason: &str| {
        (
            "reject".to_string(),
            "hotp".to_string(),
            "HOTP-CAROL".to_string(),
            reason.to_string(),
        )
    };
    assert_eq!(login(&srv, "carol", "carol-pw", &code(0)), "Access-Reject");
    assert_eq!(last("carol"), hotp_row("code already used"));
    assert_eq!(
        login(&srv, "carol", "carol-pw", &code(500)),
        "Access-Reject"
    );
    assert_eq!(
        last("carol"),
        hotp_row("HOTP token out of sync: log in again with its next code to resynchronise")
    );
    // A code of none of her tokens: as before, the user's mode and no token named.
    let wrong = if code(2) == "000000" {
        "000001"
    } else {
        "000000"
    };
    assert_eq!(login(&srv, "carol", "carol-pw", wrong), "Access-Reject");
    let (_, mode, serial, _) = last("carol");
    assert_eq!((mode.as_str(), serial.as_str()), ("totp", "-"));
    cli_ok(&srv, &["token", "disable", "HOTP-CAROL"]);
    assert_eq!(login(&srv, "carol", "carol-pw", &code(1)), "Access-Reject");
    assert_eq!(
        last("carol"),
        hotp_row("code of token HOTP-CAROL, which is disabled")
    );

    let lee = b"hotp-lee-seed-012345";
    import_hotp(&srv, "HOTP-LEE-1", lee, 6, 0, "lee");
    import_hotp(&srv, "HOTP-LEE-2", b"hotp-lee-seed-second", 6, 0, "lee");
    let lee_code = hotp(lee, 0, "sha1", 6);
    assert_eq!(login(&srv, "lee", "lee-pw", &lee_code), "Access-Accept");
    assert_eq!(login(&srv, "lee", "lee-pw", &lee_code), "Access-Reject");
    let (_, mode, serial, reason) = last("lee");
    assert_eq!(
        (mode.as_str(), serial.as_str(), reason.as_str()),
        ("hotp", "HOTP-LEE-1", "code already used")
    );
}

/// A self-service resync has an audit record of its own: the accept that finishes it names
/// the token and how far its counter moved (it was a plain accept; only the text log told,
/// with a counter one off). A `token resync` its codes refuse is audited too, saying why,
/// never the codes: refused attempts went unrecorded.
#[test]
fn self_service_and_refused_resyncs_are_audited() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = inline_server(&slapd, "\n[hotp]\nself_resync = true\n");
    let seed = b"hotp-resync-audited!";
    import_hotp(&srv, "HOTP-ALICE", seed, 6, 0, "alice");
    let code = |c| hotp(seed, c, "sha1", 6);
    let go = |c| login(&srv, "alice", "alice-pw", &code(c));
    let last = || srv.audit_json("alice").remove(0);
    assert_eq!(go(2), "Access-Accept");
    assert_eq!(go(15), "Access-Reject", "beyond the window of counter 3");
    assert_eq!(go(16), "Access-Accept");
    let rec = last();
    assert_eq!(
        (
            &rec["result"],
            &rec["mode"],
            &rec["token_serial"],
            &rec["reason"]
        ),
        (
            &serde_json::json!("accept"),
            &serde_json::json!("hotp"),
            &serde_json::json!("HOTP-ALICE"),
            &serde_json::json!("token HOTP-ALICE resynchronised: counter moved from 3 to 17")
        ),
        "{rec}"
    );
    let (c1, c2) = (code(40), code(42));
    let out = srv.cli(&["token", "resync", "HOTP-ALICE", &c1, &c2]);
    assert!(!out.status.success(), "{out:?}");
    let rec = last();
    assert_eq!(
        (&rec["result"], &rec["mode"], &rec["token_serial"]),
        (
            &serde_json::json!("resync-refused"),
            &serde_json::json!("admin"),
            &serde_json::json!("HOTP-ALICE")
        ),
        "{rec}"
    );
    let reason = rec["reason"].as_str().unwrap();
    assert_eq!(
        reason, "the two codes are not consecutive codes within 1000 of counter 17",
        "{rec}"
    );
    let listed = cli_ok(&srv, &["audit", "--result", "resync-refused"]);
    assert!(!listed.contains(&c1) && !listed.contains(&c2), "{listed}");
    assert!(listed.contains("HOTP-ALICE"), "{listed}");
}

/// `token show` and `token list --json` say a resync is pending only while its first code
/// waits for the next (10 minutes): past that a login starts afresh, but they said
/// `resync_pending: true` until the token's next login.
#[test]
fn a_pending_resync_past_its_ten_minutes_is_not_shown_pending() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = inline_server(&slapd, "\n[hotp]\nself_resync = true\n");
    let seed = b"hotp-pending-resync!";
    import_hotp(&srv, "HP-1", seed, 6, 0, "alice");
    let far = hotp(seed, 50, "sha1", 6);
    assert_eq!(login(&srv, "alice", "alice-pw", &far), "Access-Reject");
    let pending = || {
        let show: serde_json::Value =
            serde_json::from_str(&cli_ok(&srv, &["token", "show", "HP-1", "--json"])).unwrap();
        let list: serde_json::Value =
            serde_json::from_str(&cli_ok(&srv, &["token", "list", "--json"])).unwrap();
        assert_eq!(show["resync_pending"], list[0]["resync_pending"]);
        show["resync_pending"].as_bool().unwrap()
    };
    assert!(pending());
    // Its first code came 11 minutes ago.
    let db = rusqlite::Connection::open(srv.dir.path().join("radmfa.db")).unwrap();
    let aged = db
        .execute(
            "UPDATE tokens SET resync_at = resync_at - 660 WHERE serial = 'HP-1'",
            [],
        )
        .unwrap();
    assert_eq!(aged, 1);
    drop(db);
    assert!(!pending());
}

/// A hardware TOTP token whose clock runs ahead: refused beyond the window, resynchronised
/// with two codes, and from then on the window follows its drift.
#[test]
fn totp_token_with_clock_drift() {
    let slapd = Slapd::start(&[LdapUser::new("carol", "carol-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = b"drifting-totp-seed!!";
    let csv = srv.dir.path().join("azure.csv");
    // The Azure MFA Server layout: serial, Base32 secret, time interval, user.
    std::fs::write(&csv, format!("TT-1,{},30,carol\n", b32(seed))).unwrap();
    cli_ok(&srv, &["token", "import", csv.to_str().unwrap()]);
    // Everything is worked out in whole time steps from one reading of the clock, because a
    // step boundary can pass between making a code and the server checking it. CI once
    // failed here: the boundary passed during the resync, the drift was learned as 5
    // instead of 6, and a code made as "6 + 1 steps ahead" fell outside the window.
    let ahead = 5; // the token's clock is 5 steps ahead
    let at_step = |step: i64| totp_code(seed, step * 30, "sha1", 6, 30);
    let step = now() / 30 + ahead;
    assert_eq!(
        login(&srv, "carol", "carol-pw", &at_step(step)),
        "Access-Reject"
    );
    let (first, second) = (at_step(step), at_step(step + 1));
    let out = cli_ok(&srv, &["token", "resync", "TT-1", &first, &second]);
    assert!(out.contains("clock drift set to"), "{out}");
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["token", "show", "TT-1", "--json"])).unwrap();
    let drift = show["drift"].as_i64().unwrap();
    // 6, or 5 (4 on a crawling machine) if boundaries passed before the server looked.
    assert!((4..=6).contains(&drift), "drift {drift}");
    // One step past the learned drift: at least 5 steps ahead, far outside the default
    // window of 1, so only a window that follows the drift accepts it. A boundary passing
    // before the check only brings it closer to the drift.
    let used = now() / 30 + drift + 1;
    assert_eq!(
        login(&srv, "carol", "carol-pw", &at_step(used)),
        "Access-Accept"
    );
    // `token show` gives the used step as the time it was used, by this server's clock
    // (the token's step less its drift, as learned by then), not a bare count.
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["token", "show", "TT-1", "--json"])).unwrap();
    let drift = json["drift"].as_i64().unwrap();
    assert_eq!(json["last_used_step"].as_i64(), Some(used));
    let show = cli_ok(&srv, &["token", "show", "TT-1"]);
    let line = show
        .lines()
        .find(|l| l.starts_with("last_used_step:"))
        .unwrap_or_else(|| panic!("{show}"));
    let at = radmfa::clock::fmt_time((used - drift) * 30);
    assert!(
        line.contains(&format!("{used} (used at about {at})")),
        "{line}"
    );
    assert!(((used - drift) * 30 - now()).abs() <= 60, "{line}");
}

/// A phone whose clock is three minutes off: its code (oathtool's, for three minutes from
/// now, then three minutes ago) is a wrong code, refused and counted, but the audit reason
/// says whose time it is and points at `token resync`, where "wrong code" alone had the
/// help desk looking for a typo. Not the code itself.
#[test]
fn a_code_minutes_off_is_a_wrong_code_that_names_the_clock() {
    let slapd = Slapd::start(&[LdapUser::new("erin", "erin-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = srv.enroll("erin", &[]);
    let failures = || {
        let show: serde_json::Value =
            serde_json::from_str(&cli_ok(&srv, &["user", "show", "erin", "--json"])).unwrap();
        show["failures"].as_i64().unwrap()
    };
    for (at, said) in [(180, "3 min ahead of"), (-180, "3 min behind")] {
        let code = totp(&seed, now() + at, &[]);
        let before = failures();
        let r = pyrad(
            srv.port(),
            SECRET,
            &["--user", "erin", "--password", &format!("erin-pw,{code}")],
        );
        assert_eq!(r["code"], "Access-Reject", "{r}");
        assert_eq!(failures(), before + 1, "counted as a wrong code");
        let rec = &srv.audit_json("erin")[0];
        assert_eq!(
            rec["reason"],
            format!(
                "wrong code (it is the token's code for {said} this server's clock: is the \
                 phone's or token's clock off? radmfa token resync)"
            ),
            "{rec}"
        );
        assert!(!srv.log().contains(&code), "the code is in the log");
    }
    // A code of no time near now is a plain wrong code.
    let near: Vec<String> = (-21..=21)
        .map(|k| totp(&seed, now() + 30 * k, &[]))
        .collect();
    let wrong = (0..1_000_000)
        .map(|n| format!("{:06}", (n * 7919 + 13) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap();
    login(&srv, "erin", "erin-pw", &wrong);
    assert_eq!(srv.audit_json("erin")[0]["reason"], "wrong code");
}

/// No delimiter (OpenVPN's static challenge "concat"), a password ending in two digits and
/// tokens of 6 and 8 digits: "Summer24" and a 6-digit code also end in 8 digits, and that
/// split always won, so the 6-digit token never worked (and each try was a wrong password
/// for the directory). Both tokens log in.
#[test]
fn no_delimiter_tokens_of_two_lengths_and_a_password_ending_in_digits() {
    let slapd = Slapd::start(&[LdapUser::new("dana", "Summer24")]);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        otp_mode: "inline",
        delimiter: "",
        ..Nas::challenge("concat-nas", "127.0.0.1")
    }];
    let srv = Server::start(&o);
    let app_seed = srv.enroll("dana", &[]);
    let hw_seed = b"12345678901234567890";
    let csv = srv.dir.path().join("hw.csv");
    let hex: String = hw_seed.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&csv, format!("HW-8,{hex},hotp,8,0,dana\n")).unwrap();
    cli_ok(&srv, &["token", "import", csv.to_str().unwrap()]);
    let go = |field: String| {
        let r = pyrad(
            srv.port(),
            SECRET,
            &["--user", "dana", "--password", &field],
        );
        r["code"].as_str().unwrap().to_string()
    };
    let six = totp(&app_seed, now(), &[]);
    assert_eq!(
        go(format!("Summer24{six}")),
        "Access-Accept",
        "{}",
        srv.log()
    );
    let eight = hotp(hw_seed, 0, "sha1", 8);
    assert_eq!(
        go(format!("Summer24{eight}")),
        "Access-Accept",
        "{}",
        srv.log()
    );
    // A wrong code is still one wrong code (the longest split, as before).
    assert_eq!(go("Summer2412345678".to_string()), "Access-Reject");

    let dn = "uid=dana,ou=people,dc=example,dc=org";
    // A wrong password counts toward no second-factor lockout, however the field splits:
    // knowing the name must not be enough to lock dana out. Each split's password is asked
    // (one refused bind per split).
    let binds = slapd.bind_count(dn);
    for _ in 0..6 {
        assert_eq!(go("nope12345678".to_string()), "Access-Reject");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(slapd.bind_count(dn) - binds, 12);
    assert_eq!(
        go(format!("Summer24{}", hotp(hw_seed, 1, "sha1", 8))),
        "Access-Accept",
        "not locked by wrong passwords"
    );

    // Wrong 6-digit codes with the right password: none fits, so the 8-digit split's
    // password ("Summer") is bound and refused. That refusal was never counted: guessing
    // went on without a lockout until a guess fitted. Now the other split's password is
    // asked too, binds, and its wrong code is counted.
    let near: Vec<String> = (-3..=3)
        .map(|k| totp(&app_seed, now() + 30 * k, &[]))
        .collect();
    let wrong = ["000000", "111111", "222222"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .unwrap();
    let binds = slapd.bind_count(dn);
    for _ in 0..5 {
        assert_eq!(go(format!("Summer24{wrong}")), "Access-Reject");
    }
    let audit = srv.audit_json("dana");
    let lock = audit.iter().find(|r| r["result"] == "lock");
    let lock = lock.unwrap_or_else(|| panic!("no lock: {audit:#?}"));
    // The inline login's NAS, as the login records name it.
    assert_eq!(lock["nas_ip"], "127.0.0.1", "{lock}");
    // Two binds each: "Summer" refused, "Summer24" accepted.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(slapd.bind_count(dn) - binds, 10);
    // The lockout (5 by default) stands: the next step's right code is refused too.
    let next = totp(&app_seed, now() + 30, &[]);
    let r = pyrad(
        srv.port(),
        SECRET,
        &["--user", "dana", "--password", &format!("Summer24{next}")],
    );
    assert_eq!(r["code"], "Access-Reject", "{r}\n{}", srv.log());
    // Inline, no "Too many wrong codes": it would tell the right password (`inline_reply`).
    assert!(r["messages"].as_array().is_none_or(|m| m.is_empty()), "{r}");
    let rec = &srv.audit_json("dana")[0];
    assert!(
        rec["reason"].as_str().is_some_and(|r| r.contains("locked")),
        "{rec}"
    );
}

/// Codes from long ago (filmed from the display, say) do not set a drift without
/// `--clock-behind`: with a drift 100 minutes back, each code the token showed after them
/// would log in as its time came round. A clock a few minutes slow is resynchronised as
/// before.
#[test]
fn a_resync_to_codes_from_long_ago_needs_clock_behind() {
    let slapd = Slapd::start(&[LdapUser::new("carol", "carol-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = b"slow-or-filmed-seed!";
    let csv = srv.dir.path().join("tokens.csv");
    std::fs::write(&csv, format!("TT-3,{},30,carol\n", b32(seed))).unwrap();
    cli_ok(&srv, &["token", "import", csv.to_str().unwrap()]);
    let at_step = |step: i64| totp_code(seed, step * 30, "sha1", 6, 30);
    common::peers::clear_of_step_boundary(3);
    let cur = now() / 30;
    let (old1, old2) = (at_step(cur - 200), at_step(cur - 199));
    let out = srv.cli(&["token", "resync", "TT-3", &old1, &old2]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        // The first code's age (200 steps of 30 s): it said 99, the second's rounded down.
        err.contains("100 min old") && err.contains("--clock-behind"),
        "{err}"
    );
    // The code that came after them is still refused: no drift was set.
    let r = pyrad(
        srv.port(),
        SECRET,
        &[
            "--user",
            "carol",
            "--password",
            &format!("carol-pw,{}", at_step(cur - 198)),
        ],
    );
    assert_eq!(r["code"], "Access-Reject", "{r}");
    // One really that slow, with the flag.
    let out = cli_ok(
        &srv,
        &[
            "token",
            "resync",
            "TT-3",
            &at_step(cur - 100),
            &at_step(cur - 99),
            "--clock-behind",
        ],
    );
    assert!(out.contains("clock drift set to -99 "), "{out}");
    // Then a clock five minutes slow: as before, no flag (the second code typed as the
    // token shows it, in two groups).
    let second = at_step(cur - 9);
    let spaced = format!("{} {}", &second[..3], &second[3..]);
    let out = cli_ok(
        &srv,
        &["token", "resync", "TT-3", &at_step(cur - 10), &spaced],
    );
    assert!(out.contains("clock drift set to -9 "), "{out}");
}

/// A token resynchronised while its clock ran an hour ahead, and then put right: every code
/// it shows is before its last used step, so logins are refused as replays. A plain resync
/// says so (not "already used"); `--clock-went-back` takes the codes and logins work.
#[test]
fn a_totp_token_whose_clock_went_back_is_resynchronised_explicitly() {
    let slapd = Slapd::start(&[LdapUser::new("carol", "carol-pw")]);
    let srv = inline_server(&slapd, "");
    let seed = b"fast-then-fixed-seed";
    let csv = srv.dir.path().join("tokens.csv");
    std::fs::write(&csv, format!("TT-2,{},30,carol\n", b32(seed))).unwrap();
    cli_ok(&srv, &["token", "import", csv.to_str().unwrap()]);
    let at_step = |step: i64| totp_code(seed, step * 30, "sha1", 6, 30);
    let ahead = 120;
    let step = now() / 30 + ahead;
    let (first, second) = (at_step(step), at_step(step + 1));
    let out = cli_ok(&srv, &["token", "resync", "TT-2", &first, &second]);
    assert!(out.contains("clock drift set to"), "{out}");

    // The clock put right: a code of now is refused.
    let cur = now() / 30;
    assert_eq!(
        login(&srv, "carol", "carol-pw", &at_step(cur)),
        "Access-Reject"
    );
    // Old codes (filmed from the display, say) never move it back, flag or not.
    let (old1, old2) = (at_step(cur - 200), at_step(cur - 199));
    let old = srv.cli(&["token", "resync", "TT-2", &old1, &old2, "--clock-went-back"]);
    let said = String::from_utf8_lossy(&old.stderr);
    assert!(!old.status.success(), "{said}");
    assert!(said.contains("min old"), "{said}");
    let (first, second) = (at_step(cur), at_step(cur + 1));
    let plain = srv.cli(&["token", "resync", "TT-2", &first, &second]);
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(!plain.status.success(), "{said}");
    assert!(said.contains("--clock-went-back"), "{said}");
    assert!(!said.contains("were already used"), "{said}");
    let out = cli_ok(
        &srv,
        &[
            "token",
            "resync",
            "TT-2",
            &first,
            &second,
            "--clock-went-back",
        ],
    );
    assert!(out.contains("moved back"), "{out}");
    // The codes given are used; the one after them logs in (one step past the learned
    // drift, as in the test above: a boundary passing meanwhile moves both alike).
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["token", "show", "TT-2", "--json"])).unwrap();
    let drift = show["drift"].as_i64().unwrap();
    assert!((-1..=1).contains(&drift), "drift {drift}");
    let next = at_step(now() / 30 + drift + 1);
    assert_eq!(login(&srv, "carol", "carol-pw", &next), "Access-Accept");
    assert_eq!(
        login(&srv, "carol", "carol-pw", &first),
        "Access-Reject",
        "a code given to the resync works again"
    );
    let audit = srv.audit_json("carol");
    assert!(
        audit.iter().any(|r| r["result"] == "resync"
            && r["reason"]
                .as_str()
                .is_some_and(|t| t.contains("--clock-went-back"))),
        "{audit:#?}"
    );
}

/// An HOTP-only user at a challenge prompt: the prompt and the wrong answers are audited as
/// `hotp` (not `totp`), and with `[hotp] self_resync` a code far ahead tells the user, in the
/// prompt that stays open, that the token's next code will resynchronise it — which it does.
#[test]
fn hotp_user_at_a_challenge_prompt_is_told_to_resync() {
    let slapd = Slapd::start(&[LdapUser::new("dave", "dave-pw")]);
    let mut o = Options::new(&slapd.url);
    o.extra = "\n[hotp]\nself_resync = true\n[challenge]\nmax_attempts = 2\n".into();
    let srv = Server::start(&o);
    let seed = b"challenge-hotp-seed1";
    import_hotp(&srv, "HW-3", seed, 6, 0, "dave");
    let send = |args: &[&str]| pyrad(srv.port(), SECRET, args);

    let first = send(&["--user", "dave", "--password", "dave-pw"]);
    assert_eq!(first["code"], "Access-Challenge", "{first}");
    let state = first["state"].as_str().unwrap().to_string();
    let far = hotp(seed, 200, "sha1", 6);
    let answer = send(&["--user", "dave", "--password", &far, "--state", &state]);
    assert_eq!(answer["code"], "Access-Challenge", "{answer}");
    let told = answer["messages"][0].as_str().unwrap_or_default();
    assert!(told.contains("out of sync"), "{answer}");
    // Enter pressed by mistake: asked again, still for the resync code.
    let empty = send(&["--user", "dave", "--password", "", "--state", &state]);
    assert_eq!(empty["code"], "Access-Challenge", "{empty}");
    let told = empty["messages"][0].as_str().unwrap_or_default();
    assert!(
        told.contains("Nothing was typed") && told.contains("out of sync"),
        "{empty}"
    );
    let next = hotp(seed, 201, "sha1", 6);
    let done = send(&["--user", "dave", "--password", &next, "--state", &state]);
    assert_eq!(done["code"], "Access-Accept", "{done}");

    // A far code as the last attempt closes the prompt, and the reject says what to do.
    let second = send(&["--user", "dave", "--password", "dave-pw"]);
    let state = second["state"].as_str().unwrap().to_string();
    let wrong = send(&["--user", "dave", "--password", "000000", "--state", &state]);
    assert_eq!(wrong["code"], "Access-Challenge", "{wrong}");
    let far = hotp(seed, 600, "sha1", 6);
    let last = send(&["--user", "dave", "--password", &far, "--state", &state]);
    assert_eq!(last["code"], "Access-Reject", "{last}");
    let told = last["messages"][0].as_str().unwrap_or_default();
    assert!(told.contains("next code"), "{last}");

    let audit = srv.audit_json("dave");
    let modes: Vec<(&str, &str)> = audit
        .iter()
        .map(|r| (r["result"].as_str().unwrap(), r["mode"].as_str().unwrap()))
        .collect();
    for (result, mode) in &modes {
        // Admin records (the import's assignment, a resync) are not logins.
        if *result != "resync" && *mode != "admin" {
            assert_eq!(*mode, "hotp", "{modes:?}");
        }
    }
    assert!(
        modes.iter().filter(|(r, _)| *r == "challenge").count() >= 2,
        "{modes:?}"
    );
}

/// A token outside its validity dates (PSKC StartDate two days ahead, and one whose
/// ExpiryDate passes a few seconds after import) refuses every code, and the admin views say
/// so: `token list` and `user show` called them "enabled", and `config check --connect
/// --user` said "ok" for a user whose every login ends in a Reject.
#[test]
fn tokens_outside_their_dates_are_shown_as_such() {
    let slapd = Slapd::start(&[LdapUser::new("carol", "pw-carol")]);
    let srv = inline_server(&slapd, "");
    let file = srv.dir.path().join("dated.pskcxml");
    let t = now();
    let tokens = serde_json::json!([
        {"serial": "FUT001", "secret_hex": "3132333435363738393031323334353637383930",
         "type": "totp", "digits": 6, "period": 30, "user": "carol",
         "start_date": t + 2 * 86_400},
        {"serial": "EXP001", "secret_hex": "3039383736353433323130393837363534333231",
         "type": "totp", "digits": 6, "period": 30, "user": "carol",
         "expiry_date": t + 3},
    ]);
    make_pskc(&file, &tokens, &[]);
    cli_ok(&srv, &["token", "import", file.to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_secs(4));
    let list = cli_ok(&srv, &["token", "list"]);
    let state = |serial: &str| {
        list.lines()
            .find(|l| l.starts_with(serial))
            .unwrap_or_else(|| panic!("{serial} in {list}"))
            .to_string()
    };
    assert!(state("FUT001").contains("not yet valid"), "{list}");
    assert!(state("EXP001").contains("expired"), "{list}");
    let show = cli_ok(&srv, &["user", "show", "carol"]);
    assert!(
        show.contains("not yet valid (before its valid_from") && show.contains("expired (past"),
        "{show}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "carol", "--json"])).unwrap();
    assert!(
        json["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|tok| tok["valid_until"].as_i64() == Some(t + 3)),
        "{json}"
    );
    let out = srv.cli(&["config", "check", "--connect", "--user", "carol"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARN user carol: would be refused")
            && text.contains("outside their validity dates"),
        "{text}"
    );
    // And so it is, before any code is checked: the right code of the expired token is
    // no wrong guess, and must not lock the user out (it counted toward [lockout]).
    for _ in 0..3 {
        let code = totp_code(b"09876543210987654321", now(), "sha1", 6, 30);
        let r = pyrad(
            srv.port(),
            SECRET,
            &["--user", "carol", "--password", &format!("pw-carol,{code}")],
        );
        assert_eq!(r["code"], "Access-Reject", "{r}");
        // Inline, said in the audit only: the message would tell the right password.
        assert!(r["messages"].as_array().is_none_or(|m| m.is_empty()), "{r}");
    }
    let rec = &srv.audit_json("carol")[0];
    assert_eq!(
        rec["reason"], "token outside its validity period (expired)",
        "{rec}"
    );
    let show = cli_ok(&srv, &["user", "show", "carol"]);
    assert!(show.contains("failures: 0"), "{show}");
    // Replaced from a CSV file, which has no date columns: the token stays expired (the
    // dates were cleared, and the expired token worked again).
    let csv = srv.dir.path().join("again.csv");
    std::fs::write(
        &csv,
        "EXP001,3039383736353433323130393837363534333231,totp,6,30,carol\n",
    )
    .unwrap();
    cli_ok(
        &srv,
        &["token", "import", csv.to_str().unwrap(), "--replace"],
    );
    let list = cli_ok(&srv, &["token", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("EXP001") && l.contains("expired")),
        "{list}"
    );
    // Given to someone else by such a file: refused without --force, as `token assign`
    // refuses it (its new holder's every code would be refused, with nothing said).
    cli_ok(&srv, &["token", "unassign", "EXP001"]);
    std::fs::write(
        &csv,
        "EXP001,3039383736353433323130393837363534333231,totp,6,30,erin\n",
    )
    .unwrap();
    let out = srv.cli(&["token", "import", csv.to_str().unwrap(), "--replace"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("serial EXP001 is expired"),
        "{err}"
    );
    let out = srv.cli(&[
        "token",
        "import",
        csv.to_str().unwrap(),
        "--replace",
        "--force",
    ]);
    assert!(out.status.success(), "{out:?}");
}

/// A token that expires between the prompt and the answer: the right code is refused as
/// outside the token's dates, and not counted as a wrong guess toward the lockout.
#[test]
fn a_token_expiring_at_the_prompt_refuses_the_answer_uncounted() {
    let slapd = Slapd::start(&[LdapUser::new("erin", "erin-pw")]);
    let mut o = Options::new(&slapd.url);
    o.extra = "\n[lockout]\nthreshold = 1\n".into();
    let srv = Server::start(&o);
    let file = srv.dir.path().join("soon.pskcxml");
    let seed = b"expiring-soon-seed-1";
    // Long enough for the import and the first round on a slow machine; the answer waits
    // until it has passed.
    let expiry = now() + 8;
    let tokens = serde_json::json!([
        {"serial": "SOON01", "secret_hex": hex::encode(seed), "type": "totp", "digits": 6,
         "period": 30, "user": "erin", "expiry_date": expiry},
    ]);
    make_pskc(&file, &tokens, &[]);
    cli_ok(&srv, &["token", "import", file.to_str().unwrap()]);
    let send = |args: &[&str]| pyrad(srv.port(), SECRET, args);
    let first = send(&["--user", "erin", "--password", "erin-pw"]);
    assert_eq!(first["code"], "Access-Challenge", "{first}");
    let state = first["state"].as_str().unwrap().to_string();
    while now() <= expiry {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let code = totp_code(seed, now(), "sha1", 6, 30);
    let answer = send(&["--user", "erin", "--password", &code, "--state", &state]);
    assert_eq!(answer["code"], "Access-Reject", "{answer}");
    let rec = &srv.audit_json("erin")[0];
    assert_eq!(rec["reason"], "token outside its validity period", "{rec}");
    // With threshold = 1 a counted answer would have locked her.
    let show = cli_ok(&srv, &["user", "show", "erin"]);
    assert!(!show.contains("locked:   until"), "{show}");
}

/// A token an admin takes from the user between the prompt and the answer (disabled as
/// reported lost, or deleted): the right code is refused, as a new login would be, and not
/// counted toward the lockout. Counted, a user told to try again locked themselves out.
#[test]
fn a_token_taken_away_at_the_prompt_refuses_the_answer_uncounted() {
    let slapd = Slapd::start(&[LdapUser::new("erin", "erin-pw")]);
    let mut o = Options::new(&slapd.url);
    o.extra = "\n[lockout]\nthreshold = 1\n".into();
    let srv = Server::start(&o);
    let seed = srv.enroll("erin", &[]);
    let serial = {
        let out = cli_ok(&srv, &["token", "list", "--user", "erin", "--json"]);
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        list[0]["serial"].as_str().unwrap().to_string()
    };
    let send = |args: &[&str]| pyrad(srv.port(), SECRET, args);
    for (takes, reason, says) in [
        (
            "disable",
            "the user's tokens are disabled",
            "Your second factor is disabled",
        ),
        (
            "delete",
            "token disabled, reassigned or replaced during the login",
            "Please log in again",
        ),
    ] {
        let first = send(&["--user", "erin", "--password", "erin-pw"]);
        assert_eq!(first["code"], "Access-Challenge", "{takes}: {first}");
        let state = first["state"].as_str().unwrap().to_string();
        let force: &[&str] = if takes == "delete" { &["--force"] } else { &[] };
        cli_ok(&srv, &[&["token", takes, &serial], force].concat());
        let code = common::peers::totp(&seed, now(), &[]);
        let answer = send(&["--user", "erin", "--password", &code, "--state", &state]);
        assert_eq!(answer["code"], "Access-Reject", "{takes}: {answer}");
        assert!(answer.to_string().contains(says), "{takes}: {answer}");
        let rec = &srv.audit_json("erin")[0];
        assert_eq!(rec["reason"], reason, "{takes}: {rec}");
        // With threshold = 1 a counted answer would have locked her.
        let show = srv.cli(&["user", "show", "erin", "--json"]);
        if takes == "delete" {
            // No token and no failure recorded: nothing to show.
            let err = String::from_utf8_lossy(&show.stderr);
            assert!(
                err.contains("no tokens and no second-factor state"),
                "{err}"
            );
        } else {
            let status: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
            assert_eq!(status["failures"], 0, "{takes}: {status}");
        }
        if takes == "disable" {
            cli_ok(&srv, &["token", "enable", &serial]);
        }
    }
}

/// A user with several tokens, one of them expired and one not valid yet (PSKC ExpiryDate
/// and StartDate), beside a valid TOTP and an HOTP token: the right code of the expired or
/// the future token is refused as that token's, named in the audit, and not counted toward
/// the lockout. Inline, the user is told nothing more than for a wrong code: a message
/// there would tell whoever holds such a token which password is right. It was "wrong code", counted,
/// with no token named. A code that matches none of the tokens is still a counted wrong
/// code: only the unusable token's own code is spared, so no guess goes uncounted.
#[test]
fn the_code_of_an_unusable_token_beside_usable_ones_is_named_and_not_counted() {
    let slapd = Slapd::start(&[LdapUser::new("hank", "hank-pw")]);
    let srv = inline_server(&slapd, "");
    let file = srv.dir.path().join("hank.pskcxml");
    let (exp_seed, fut_seed) = (b"hank-expiring-seed-1", b"hank-future-seed-001");
    // Long enough for the import on a slow machine; the codes wait until it has passed.
    let expiry = now() + 6;
    let tokens = serde_json::json!([
        {"serial": "PS-HANK-OK", "secret_hex": hex::encode(b"hank-valid-totp-seed"),
         "type": "totp", "digits": 6, "period": 30, "user": "hank"},
        {"serial": "PS-HANK-EXP", "secret_hex": hex::encode(exp_seed), "type": "totp",
         "digits": 6, "period": 30, "user": "hank", "expiry_date": expiry},
        {"serial": "PS-HANK-FUT", "secret_hex": hex::encode(fut_seed), "type": "totp",
         "digits": 6, "period": 30, "user": "hank", "start_date": now() + 86_400},
        {"serial": "PS-HANK-H", "secret_hex": hex::encode(b"hank-hotp-seed-00001"),
         "type": "hotp", "digits": 6, "counter": 0, "user": "hank"},
    ]);
    make_pskc(&file, &tokens, &[]);
    cli_ok(&srv, &["token", "import", file.to_str().unwrap()]);
    while now() <= expiry {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let failures = || {
        let out = cli_ok(&srv, &["user", "show", "hank", "--json"]);
        let show: serde_json::Value = serde_json::from_str(&out).unwrap();
        show["failures"].as_u64().unwrap()
    };
    for (seed, serial, why) in [
        (exp_seed, "PS-HANK-EXP", "expired"),
        (fut_seed, "PS-HANK-FUT", "not yet valid"),
    ] {
        let code = totp_code(seed, now(), "sha1", 6, 30);
        let with = |password: &str| {
            pyrad(
                srv.port(),
                SECRET,
                &[
                    "--user",
                    "hank",
                    "--password",
                    &format!("{password},{code}"),
                ],
            )
        };
        // After a wrong password first: the reply the right one must not differ from.
        let refused = with("hank-px");
        let r = with("hank-pw");
        assert_eq!(r["code"], "Access-Reject", "{serial}: {r}");
        assert_eq!(
            (&r["code"], &r["messages"]),
            (&refused["code"], &refused["messages"]),
            "{serial}: the right password told apart: {r} / {refused}"
        );
        let rec = &srv.audit_json("hank")[0];
        assert_eq!(
            rec["reason"],
            format!("code of token {serial}, token outside its validity period ({why})"),
            "{rec}"
        );
        assert_eq!(rec["token_serial"], serial, "{rec}");
        assert_eq!(failures(), 0, "{serial}");
    }
    // Not an oracle: a code of none of the tokens is a wrong code, counted, and told no
    // more than before.
    let valid = totp_code(b"hank-valid-totp-seed", now(), "sha1", 6, 30);
    let wrong = format!("{:06}", (valid.parse::<u32>().unwrap() + 1) % 1_000_000);
    let r = pyrad(
        srv.port(),
        SECRET,
        &["--user", "hank", "--password", &format!("hank-pw,{wrong}")],
    );
    assert_eq!(r["code"], "Access-Reject", "{r}");
    assert!(r["messages"].as_array().is_none_or(|m| m.is_empty()), "{r}");
    assert_eq!(srv.audit_json("hank")[0]["reason"], "wrong code");
    assert_eq!(failures(), 1);
    assert_eq!(login(&srv, "hank", "hank-pw", &valid), "Access-Accept");
}

/// At a code prompt, the right code of the user's expired token (another one still valid)
/// is refused as that token's, told so, and not counted: with threshold = 1 a counted answer
/// would have locked the user out, as "wrong code" did.
#[test]
fn a_prompt_answered_with_an_expired_tokens_code_is_told_so() {
    let slapd = Slapd::start(&[LdapUser::new("hank", "hank-pw")]);
    let mut o = Options::new(&slapd.url);
    o.extra = "\n[lockout]\nthreshold = 1\n".into();
    let srv = Server::start(&o);
    srv.enroll("hank", &[]);
    let file = srv.dir.path().join("exp.pskcxml");
    let seed = b"hank-expiring-seed-2";
    let expiry = now() + 6;
    let tokens = serde_json::json!([
        {"serial": "PS-HANK-EXP", "secret_hex": hex::encode(seed), "type": "totp",
         "digits": 6, "period": 30, "user": "hank", "expiry_date": expiry},
    ]);
    make_pskc(&file, &tokens, &[]);
    cli_ok(&srv, &["token", "import", file.to_str().unwrap()]);
    while now() <= expiry {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let send = |args: &[&str]| pyrad(srv.port(), SECRET, args);
    let first = send(&["--user", "hank", "--password", "hank-pw"]);
    assert_eq!(first["code"], "Access-Challenge", "{first}");
    let state = first["state"].as_str().unwrap().to_string();
    let code = totp_code(seed, now(), "sha1", 6, 30);
    let answer = send(&["--user", "hank", "--password", &code, "--state", &state]);
    assert_eq!(answer["code"], "Access-Reject", "{answer}");
    assert_eq!(
        answer["messages"][0], "Your second factor has expired. Contact your administrator.",
        "{answer}"
    );
    let rec = &srv.audit_json("hank")[0];
    assert_eq!(
        rec["reason"], "code of token PS-HANK-EXP, token outside its validity period (expired)",
        "{rec}"
    );
    assert_eq!(rec["token_serial"], "PS-HANK-EXP", "{rec}");
    let show = cli_ok(&srv, &["user", "show", "hank"]);
    assert!(!show.contains("locked:   until"), "{show}");
    assert!(show.contains("failures: 0"), "{show}");
}

/// A login of a user whose only token has expired is refused at the password naming that
/// token in the audit (it was "-"): the one the admin renews.
#[test]
fn a_login_whose_only_token_expired_names_it() {
    let slapd = Slapd::start(&[LdapUser::new("ivy", "ivy-pw")]);
    let srv = Server::start(&Options::new(&slapd.url));
    let file = srv.dir.path().join("exp.pskcxml");
    let expiry = now() + 3;
    let tokens = serde_json::json!([
        {"serial": "PS-IVY-EXP", "secret_hex": hex::encode(b"ivy-expiring-seed-01"),
         "type": "totp", "digits": 6, "period": 30, "user": "ivy", "expiry_date": expiry},
    ]);
    make_pskc(&file, &tokens, &[]);
    cli_ok(&srv, &["token", "import", file.to_str().unwrap()]);
    while now() <= expiry {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = pyrad(
        srv.port(),
        SECRET,
        &["--user", "ivy", "--password", "ivy-pw"],
    );
    assert_eq!(r["code"], "Access-Reject", "{r}");
    let rec = &srv.audit_json("ivy")[0];
    assert_eq!(
        rec["reason"], "token outside its validity period (expired)",
        "{rec}"
    );
    assert_eq!(rec["token_serial"], "PS-IVY-EXP", "{rec}");
}

/// No delimiter, a disabled 6-digit TOTP token beside an enabled 8-digit HOTP token: the
/// disabled token's code split the field 8 from the end ("pass12" refused by the directory,
/// "bad password", a bind its lockout counted), for a user who typed the right password.
/// Its length splits the field too: the password binds once, and the code is refused as
/// the disabled token's, uncounted, with a bare Reject (inline, a message would tell the
/// right password to whoever holds the disabled token) and the token named in the audit.
#[test]
fn no_delimiter_a_disabled_tokens_code_finds_the_password() {
    let slapd = Slapd::start(&[LdapUser::new("pin", "pass1234")]);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        otp_mode: "inline",
        delimiter: "",
        ..Nas::challenge("concat-nas", "127.0.0.1")
    }];
    let srv = Server::start(&o);
    let app_seed = srv.enroll("pin", &[]);
    let totp_serial = {
        let out = cli_ok(&srv, &["token", "list", "--user", "pin", "--json"]);
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        list[0]["serial"].as_str().unwrap().to_string()
    };
    let hw_seed = b"12345678901234567890";
    let csv = srv.dir.path().join("hw.csv");
    std::fs::write(
        &csv,
        format!("HW-PIN-H,{},hotp,8,0,pin\n", hex::encode(hw_seed)),
    )
    .unwrap();
    cli_ok(&srv, &["token", "import", csv.to_str().unwrap()]);
    cli_ok(&srv, &["token", "disable", &totp_serial]);
    let go = |field: String| pyrad(srv.port(), SECRET, &["--user", "pin", "--password", &field]);
    let dn = "uid=pin,ou=people,dc=example,dc=org";
    let binds = slapd.bind_count(dn);
    let r = go(format!("pass1234{}", totp(&app_seed, now(), &[])));
    assert_eq!(r["code"], "Access-Reject", "{r}");
    assert!(r["messages"].as_array().is_none_or(|m| m.is_empty()), "{r}");
    let rec = &srv.audit_json("pin")[0];
    assert_eq!(
        rec["reason"],
        format!("code of token {totp_serial}, which is disabled"),
        "{rec}"
    );
    assert_eq!(rec["token_serial"], totp_serial.as_str(), "{rec}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        slapd.bind_count(dn) - binds,
        1,
        "one bind, the right password's"
    );
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "pin", "--json"])).unwrap();
    assert_eq!(show["failures"], 0, "{show}");
    // The enabled token still logs in.
    let r = go(format!("pass1234{}", hotp(hw_seed, 0, "sha1", 8)));
    assert_eq!(r["code"], "Access-Accept", "{r}");
}

/// A prompt's last attempt refused for a wrong code, or for a code already used, says so:
/// it was a bare Access-Reject, and the user could not tell the code from the server at
/// fault. The re-prompt with attempts left already said "Wrong code.".
#[test]
fn a_prompts_last_wrong_or_used_code_is_said() {
    let slapd = Slapd::start(&[LdapUser::new("erin", "erin-pw")]);
    let srv = Server::start(&Options::new(&slapd.url));
    let seed = srv.enroll("erin", &[]);
    common::peers::clear_of_step_boundary(8);
    let send = |args: &[&str]| pyrad(srv.port(), SECRET, args);
    let answer = |code: &str| {
        let first = send(&["--user", "erin", "--password", "erin-pw"]);
        assert_eq!(first["code"], "Access-Challenge", "{first}");
        let state = first["state"].as_str().unwrap().to_string();
        send(&["--user", "erin", "--password", code, "--state", &state])
    };
    let code = totp(&seed, now(), &[]);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let r = answer(&wrong);
    assert_eq!(r["code"], "Access-Reject", "{r}");
    assert_eq!(r["messages"], serde_json::json!(["Wrong code."]), "{r}");
    assert_eq!(answer(&code)["code"], "Access-Accept");
    let r = answer(&code);
    assert_eq!(r["code"], "Access-Reject", "{r}");
    assert_eq!(
        r["messages"],
        serde_json::json!(["That code was already used; wait for the next one."]),
        "{r}"
    );
}

/// An HOTP user at a prompt is told to press the button for a new code after a used or an
/// older code ("wait for the next one" is a TOTP user's advice), and `token resync` says
/// what is wrong with a code that is no code, or has the wrong length for the token, where
/// it said "the two codes are not consecutive codes within 1000 of counter N".
#[test]
fn hotp_users_and_admins_are_told_what_is_wrong_with_a_code() {
    let slapd = Slapd::start(&[LdapUser::new("erin", "erin-pw")]);
    let srv = Server::start(&Options::new(&slapd.url));
    let seed = b"hotp-eight-digits-01";
    import_hotp(&srv, "H8-1", seed, 8, 0, "erin");
    let code = |c| hotp(seed, c, "sha1", 8);
    let send = |args: &[&str]| pyrad(srv.port(), SECRET, args);
    let answer = |code: &str| {
        let first = send(&["--user", "erin", "--password", "erin-pw"]);
        assert_eq!(first["code"], "Access-Challenge", "{first}");
        let state = first["state"].as_str().unwrap().to_string();
        send(&["--user", "erin", "--password", code, "--state", &state])
    };
    assert_eq!(answer(&code(0))["code"], "Access-Accept");
    assert_eq!(answer(&code(1))["code"], "Access-Accept");
    for (c, said) in [
        (
            1,
            "That code was already used; press the button for a new one.",
        ),
        (
            0,
            "That code is older than the last one used; press the button for a new one.",
        ),
    ] {
        let r = answer(&code(c));
        assert_eq!(r["code"], "Access-Reject", "{r}");
        assert_eq!(r["messages"], serde_json::json!([said]), "{r}");
    }

    for (first, second, said) in [
        (
            "abc".to_string(),
            "12".to_string(),
            "the first code \"abc\" is not a code",
        ),
        (
            code(5),
            "123456".to_string(),
            "the second code has 6 digits, but this token shows 8",
        ),
    ] {
        let out = srv.cli(&["token", "resync", "H8-1", &first, &second]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(said) && !err.contains("consecutive"),
            "{err}"
        );
    }
    let out = cli_ok(&srv, &["token", "resync", "H8-1", &code(5), &code(6)]);
    assert!(out.contains("counter moved from 2 to 7"), "{out}");
}
