//! No user enumeration by reply or by timing.

use super::*;

/// The timing tests measure latency distributions and compare them; run side by side
/// (cargo runs a binary's tests in parallel) each would load the two cores under the
/// others' measurements, the app-password one with argon2 above all. One at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed holding it poisons it; the next still runs, alone.
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

fn percentiles(mut v: Vec<Duration>) -> [f64; 5] {
    v.sort();
    let at = |p: f64| v[((p * v.len() as f64) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    [at(0.1), at(0.25), at(0.5), at(0.75), at(0.9)]
}

/// Asks `rounds` times for a user named by `first` and one named by `second`, interleaved
/// so that drift in machine load hits both samples alike, each with `password`. Every
/// reply must have the same code and attributes (the Message-Authenticator aside). Prints
/// and returns the two latency distributions (ms: p10, p25, p50, p75, p90).
fn interleaved(
    sock: &UdpSocket,
    rounds: u32,
    password: &[u8],
    first: (&str, &dyn Fn(u32) -> String),
    second: (&str, &dyn Fn(u32) -> String),
) -> ([f64; 5], [f64; 5]) {
    interleaved_logins(
        sock,
        rounds,
        (first.0, &|i| (first.1(i), password.to_vec())),
        (second.0, &|i| (second.1(i), password.to_vec())),
    )
}

/// [`interleaved`], each login with a name and a password of its own.
fn interleaved_logins(
    sock: &UdpSocket,
    rounds: u32,
    first: (&str, &dyn Fn(u32) -> (String, Vec<u8>)),
    second: (&str, &dyn Fn(u32) -> (String, Vec<u8>)),
) -> ([f64; 5], [f64; 5]) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut shapes = std::collections::HashSet::new();
    for i in 0..rounds {
        for ((who, password), bucket) in [(first.1(i), &mut a), (second.1(i), &mut b)] {
            let (c, attrs, rtt) = ask(
                sock,
                AccessRequestBuilder::new(i as u8, &who).password(&password),
            )
            .unwrap();
            let shape: Vec<(u8, Vec<u8>)> = attrs.into_iter().filter(|a| a.0 != 80).collect();
            shapes.insert((c, shape));
            bucket.push(rtt);
        }
    }
    assert_eq!(shapes.len(), 1, "replies differ: {shapes:?}");
    let (a, b) = (percentiles(a), percentiles(b));
    show_distribution(&[(first.0, a), (second.0, b)]);
    (a, b)
}

/// Prints the latency percentiles, and appends them to `timing-distribution.txt` in the
/// test's scratch directory (`target/tmp/`), which `scripts/test.sh` prints after the
/// tests: libtest hides a passing test's output, and the distribution is the evidence.
fn show_distribution(rows: &[(&str, [f64; 5])]) {
    let mut table = format!(
        "{}\nlatency ms              p10    p25    p50    p75    p90\n",
        std::thread::current().name().unwrap_or("timing")
    );
    for (label, p) in rows {
        table += &format!(
            "{label:<22}{:>6.2}{:>7.2}{:>7.2}{:>7.2}{:>7.2}\n",
            p[0], p[1], p[2], p[3], p[4]
        );
    }
    eprint!("{table}");
    use std::io::Write as _;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("timing-distribution.txt");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(table.as_bytes()).unwrap();
}

/// A directory of `users`, radmfa with one client of `otp_mode`, every user enrolled, and
/// a socket to it.
fn client_with_enrolled(
    otp_mode: &'static str,
    users: Vec<LdapUser>,
) -> (Slapd, Server, UdpSocket) {
    let slapd = Slapd::start(&users);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        otp_mode,
        ..Nas::challenge("vpn", "127.0.0.1")
    }];
    let srv = Server::start(&o);
    for u in &users {
        srv.enroll(&u.uid, &[]);
    }
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    (slapd, srv, sock)
}

/// `rounds` requests with `password`, alternating unknown names and user00000..user00019.
fn warm_up(sock: &UdpSocket, rounds: u32, password: &[u8]) {
    for i in 0..rounds {
        let who = if i % 2 == 0 {
            format!("warm{i:05}")
        } else {
            format!("user{:05}", i % 20)
        };
        ask(
            sock,
            AccessRequestBuilder::new(i as u8, &who).password(password),
        )
        .unwrap();
    }
}

/// An unknown user and a known user with a wrong password get the same reply, and the
/// unknown one is not answered measurably faster (radmfa pads it to a bind's duration).
#[test]
fn no_user_enumeration_by_reply_or_timing() {
    let _alone = one_at_a_time();
    // Binds that cost slapd ~10 ms (a crypt of many rounds), as a loaded directory's can:
    // on loopback a plain bind is ~0.3 ms inside a round trip of 1-2 ms, and an unpadded
    // unknown name came out at only 0.8-0.86 of a known one's time, close to the bound
    // below. With these, no padding would come out near 0.2.
    let mut users = LdapUser::generate(50);
    for u in &mut users {
        u.password_hash = Some(common::slapd::slow_crypt(&u.password, 20_000));
    }
    let slapd = Slapd::start(&users);
    let srv = Server::start(&Options::new(&slapd.url));
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    // Warm up: the padding draws from the durations of recent real binds.
    for i in 0..20 {
        ask(
            &sock,
            AccessRequestBuilder::new(i, &format!("user{:05}", i % 50)).password(b"wrong"),
        )
        .unwrap();
    }
    let (k, u) = interleaved(
        &sock,
        150,
        b"wrong-password",
        ("known user", &|i| format!("user{:05}", i % 50)),
        ("unknown user", &|i| format!("ghost{i:05}")),
    );
    // The padding for an unknown name is one of the recent binds' durations, less what
    // the sleep itself overshot lately (tokio's timer rounds up), so the unknown name
    // comes out about as fast (it came out at 1.0-1.1 of the known user's when the pad was
    // the binds' moving average ±25 %, and the timer's rounding was not taken off). With no padding at all it came out at 0.80-0.82 with plain binds (and
    // the old bound here, medians within a factor of 1.5, still passed); 0.9 tells the two
    // apart, by far with the slow binds above. Compared at
    // p10 and p25: the quickest answers show the work done, and they stay put on a loaded
    // machine, where the median goes to the scheduler (two busy loops on the two cores
    // moved it by ±25 % and left p10 and p25 on the safe side).
    assert_alike(k, u);
}

/// The unknown name's p10 and p25 (`u`) within 0.9 and 1.5 of the known user's (`k`): not
/// answered measurably faster, nor much slower (padding that overshoots tells them apart
/// as well as none does). The bounds are explained in
/// `no_user_enumeration_by_reply_or_timing`.
fn assert_alike(k: [f64; 5], u: [f64; 5]) {
    assert!(
        u[0] > k[0] * 0.9 && u[1] > k[1] * 0.9,
        "unknown user answered faster: {u:?} vs {k:?}"
    );
    assert!(
        u[0] < k[0] * 1.5 && u[1] < k[1] * 1.5,
        "unknown user answered slower: {u:?} vs {k:?}"
    );
}

/// With `[ldap] entry_cache_seconds`, a user who just logged in is remembered, and their
/// next login binds without a search. A wrong password then must not be answered faster
/// than an unknown name: the refusal searches again before answering (bind + search, where
/// the unknown name costs a search and a bind's time), with the same reply.
#[test]
fn remembered_entries_do_not_tell_known_users_apart() {
    let _alone = one_at_a_time();
    let slapd = Slapd::start(&LdapUser::generate(50));
    let mut o = Options::new(&slapd.url);
    o.ldap_extra = "entry_cache_seconds = 300".into();
    let srv = Server::start(&o);
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    warm_up(&sock, 40, b"wrong-password");
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    let mut shapes = std::collections::HashSet::new();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = slapd.search_count("(uid=user");
    for i in 0..100u32 {
        let user = format!("user{:05}", i % 50);
        // The right password twice (no second factor enrolled, so refused after the bind):
        // the first remembers the entry, the second binds without a search.
        let pw = format!("pw-{user}");
        for _ in 0..2 {
            let b = AccessRequestBuilder::new(i as u8, &user).password(pw.as_bytes());
            ask(&sock, b).unwrap();
        }
        for (who, bucket) in [(user, &mut known), (format!("ghost{i:05}"), &mut unknown)] {
            let (c, attrs, rtt) = ask(
                &sock,
                AccessRequestBuilder::new(i as u8, &who).password(b"wrong-password"),
            )
            .unwrap();
            let shape: Vec<(u8, Vec<u8>)> = attrs.into_iter().filter(|a| a.0 != 80).collect();
            shapes.insert((c, shape));
            bucket.push(rtt);
        }
    }
    assert_eq!(shapes.len(), 1, "replies differ: {shapes:?}");
    // The cache was in use: per round the first right password searches, the second does
    // not, the wrong one searches after its bind: 200 searches, where uncached it is 300.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let searched = slapd.search_count("(uid=user") - before;
    assert!(
        searched <= 210,
        "{searched} searches: the entries were not remembered"
    );
    assert!(
        searched >= 190,
        "{searched} searches: a refusal did not search again"
    );
    let (k, u) = (percentiles(known), percentiles(unknown));
    show_distribution(&[("remembered, wrong", k), ("unknown user", u)]);
    // As in `no_user_enumeration_by_reply_or_timing`: without the padding, 0.78-0.82.
    assert!(
        u[0] > k[0] * 0.9 && u[1] > k[1] * 0.9,
        "unknown user answered faster: {u:?} vs {k:?}"
    );
    // Nor the other way round. With the search after it, 0.87-0.98 of the unknown name's
    // p25; answered after the bind alone, 0.72, which the search count above catches
    // exactly. Under two busy loops the unknown name's padding (a timer) wakes late, and
    // this came down to 0.80; the bound is loose so that only a gross gap fails here.
    assert!(
        k[1] > u[1] * 0.7,
        "a remembered user's refusal is answered faster: {k:?} vs {u:?}"
    );
}

/// On an inline client, an enrolled user who typed no code is refused without a bind (a
/// bind with that field would count against the account's lockout in the directory). The
/// refusal still costs what an unknown user's does, a search and a bind's time: answered at
/// once, it would tell enrolled users from unknown ones. Same reply, same time.
#[test]
fn an_enrolled_user_without_a_code_is_not_told_apart_by_timing() {
    let _alone = one_at_a_time();
    let (_slapd, srv, sock) = client_with_enrolled("inline", LdapUser::generate(20));
    // Warm up: the first requests open the directory connections, and the padding follows
    // the moving average of real binds (wrong passwords here).
    warm_up(&sock, 60, b"wrong-password,123456");
    let (e, u) = interleaved(
        &sock,
        120,
        b"password-no-code",
        ("enrolled, no code", &|i| format!("user{:05}", i % 20)),
        ("unknown user", &|i| format!("ghost{i:05}")),
    );
    let audit = srv.audit_json("user00000");
    assert!(
        audit
            .iter()
            .any(|r| r["reason"] == "no code found in the password field"),
        "{audit:#?}"
    );
    // Answered at once (before this was fixed), the enrolled user came out at 0.55-0.75 of
    // the unknown one's time: the search and the bind's time it skipped; with the
    // imitation, 1.0-1.1. Low percentiles, as in the tests above: under two busy loops the
    // medians and p25 moved by up to 40 % while p10 stayed within 1.2.
    assert!(
        e[0] > u[0] * 0.85 && e[1] > u[1] * 0.85 && e[0] < u[0] * 1.3,
        "an enrolled user without a code is told apart: {e:?} vs {u:?}"
    );
}

/// Fields refused for every name before anything is asked (empty, holding a NUL, not
/// UTF-8) must be refused at once for an enrolled user on an inline client too: unknown
/// names get that at once, and a bind's time on enrolled names would list who is enrolled
/// without knowing a password. Binds here cost ~8 ms, answers at once ~1 ms.
#[test]
fn fields_refused_for_everyone_do_not_tell_enrolled_users_apart() {
    let _alone = one_at_a_time();
    let mut users = LdapUser::generate(20);
    for u in &mut users {
        u.password_hash = Some(common::slapd::slow_crypt(&u.password, 20_000));
    }
    let (_slapd, srv, sock) = client_with_enrolled("inline", users);
    // A wrong password's bind, for comparison: what a field that reached the directory costs.
    warm_up(&sock, 40, b"wrong-password,123456");
    let (bind, _) = interleaved(
        &sock,
        30,
        b"wrong-password,123456",
        ("enrolled, wrong pw", &|i| format!("user{:05}", i % 20)),
        ("unknown, wrong pw", &|i| format!("ghost{i:05}")),
    );
    // The PAP field is cut at its first NUL as it is decoded, so "pw\0x,123456" arrives as
    // "pw", a field without a code: refused after a check's time, for every name alike.
    for (field, at_once) in [
        (&b""[..], true),
        (b"\xff\xfe,123456", true),
        (b"pw\0x,123456", false),
    ] {
        let (e, u) = interleaved(
            &sock,
            60,
            field,
            ("enrolled", &|i| format!("user{:05}", i % 20)),
            ("unknown user", &|i| format!("ghost{i:05}")),
        );
        // At once: well under a bind. A bind (or its imitation) for the enrolled names
        // only would put their p25 near the wrong password's (~8 ms against ~1).
        assert!(
            !at_once || (e[1] < bind[0] * 0.5 && u[1] < bind[0] * 0.5),
            "{field:?}: not refused at once: enrolled {e:?}, unknown {u:?}, a bind {bind:?}"
        );
        assert!(
            e[1] < u[1] * 1.5 + 0.5 && u[1] < e[1] * 1.5 + 0.5,
            "{field:?}: enrolled {e:?} told apart from unknown {u:?}"
        );
    }
    let audit = srv.audit_json("user00000");
    for reason in [
        "empty password",
        "bad password",
        "the password did not decode as text (UTF-8)",
    ] {
        assert!(
            audit
                .iter()
                .any(|r| r["reason"].as_str().is_some_and(|w| w.starts_with(reason))),
            "{reason}: {audit:#?}"
        );
    }
}

/// On a client that takes app passwords, every password is first compared with the user's
/// app passwords. A user who holds none must cost the same as one who holds three (one per
/// legacy device): otherwise the time tells holders, who exist, from names nobody has. With
/// argon2 hashes, each milliseconds of CPU, a holder of three took three times as long.
#[test]
fn app_password_holders_are_not_told_apart_by_timing() {
    let _alone = one_at_a_time();
    let slapd = Slapd::start(&LdapUser::generate(20));
    let mut o = Options::new(&slapd.url);
    o.clients.clear();
    o.extra = format!(
        "\n[[client]]\nname = \"legacy-mail\"\naddress = \"127.0.0.1\"\n\
         secret = \"{SECRET}\"\napp_passwords = true\n"
    );
    let srv = Server::start(&o);
    for i in 0..20 {
        for _ in 0..3 {
            let out = srv.cli(&["user", "app-password", "add", &format!("user{i:05}")]);
            assert!(out.status.success(), "{out:?}");
        }
    }
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    warm_up(&sock, 40, b"wrong-password");
    let (h, u) = interleaved(
        &sock,
        120,
        b"wrong-password",
        ("app-password holder", &|i| format!("user{:05}", i % 20)),
        ("unknown user", &|i| format!("ghost{i:05}")),
    );
    // Without a comparison for users who hold none, the unknown user's median came out at
    // about half the holder's: the argon2 check it skipped. p10 and p25, as above: they
    // show the work done and hold still on a loaded machine; both ways.
    assert!(
        u[0] > h[0] * 0.8 && u[1] > h[1] * 0.8,
        "an unknown user is answered faster than an app-password holder: {u:?} vs {h:?}"
    );
    assert!(
        u[1] < h[1] * 1.5,
        "an unknown user is answered slower than an app-password holder: {u:?} vs {h:?}"
    );
}

/// On a code-only client (the NAS checked the password, radmfa gets the code alone) an
/// unknown name and a known user's wrong code get the same reply, and the unknown name is
/// not answered measurably faster: it skips the tokens' read and the failure's write, and
/// is padded to this client's wrong codes. Unpadded it came out at about half their time.
#[test]
fn code_only_unknown_names_are_not_told_apart_by_timing() {
    let _alone = one_at_a_time();
    // 100 users, so that no one reaches the lockout's 5 wrong codes (a locked user's
    // reply says so, and would differ).
    let (_slapd, _srv, sock) = client_with_enrolled("code_only", LdapUser::generate(100));
    // Warm up: the padding draws from the durations of recent wrong codes.
    for i in 0..40u32 {
        ask(
            &sock,
            AccessRequestBuilder::new(i as u8, &format!("user{:05}", 60 + i % 40))
                .password(b"000000"),
        )
        .unwrap();
    }
    let (k, u) = interleaved(
        &sock,
        120,
        b"000000",
        ("known, wrong code", &|i| format!("user{:05}", i % 60)),
        ("unknown user", &|i| format!("ghost{i:05}")),
    );
    assert_alike(k, u);
}

/// On an inline client, a user with no second factor who sends the right password gets a
/// wrong password's bare Access-Reject (src/pipeline/inline_reply.rs), so that a password
/// spray during a roll-out is not told which password was right. The time must not tell it
/// either: the refusal after a bind that passed (and the store's read of the user's
/// factors) against a bind that failed, on plain binds (~0.3 ms), where the store's part
/// weighs most. Measured on loopback, medians 2.23 against 2.20 ms, 2.16 against 2.15 and
/// 2.09 against 2.05 in three runs; with 0.8 ms more work on the refusal after the right
/// password (a sleep put there to try the test), it failed at 3.01 against 2.10.
#[test]
fn an_inline_right_password_without_a_factor_is_not_told_apart_by_timing() {
    let _alone = one_at_a_time();
    let users = LdapUser::generate(40);
    let passwords: Vec<String> = users.iter().map(|u| u.password.clone()).collect();
    let slapd = Slapd::start(&users);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        otp_mode: "inline",
        ..Nas::challenge("vpn", "127.0.0.1")
    }];
    // Nobody enrolled: every login is refused, after the password or at it.
    let srv = Server::start(&o);
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    warm_up(&sock, 40, b"wrong-password");
    let right = |i: u32| {
        let n = (i % 20) as usize;
        // The password alone: from a user with no token, the whole field is the password.
        (format!("user{n:05}"), passwords[n].clone().into_bytes())
    };
    let wrong = |i: u32| {
        (
            format!("user{:05}", 20 + i % 20),
            b"wrong-password".to_vec(),
        )
    };
    let (r, w) = interleaved_logins(
        &sock,
        150,
        ("right pw, no factor", &right),
        ("wrong password", &wrong),
    );
    // user00000 was sent its right password only (warm_up asks odd-numbered users).
    let reasons: std::collections::BTreeSet<String> = srv
        .audit_json("user00000")
        .iter()
        .map(|rec| rec["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    eprintln!("right password refused as: {reasons:?}");
    assert!(
        !reasons.is_empty() && reasons.iter().all(|why| !why.starts_with("bad password")),
        "the right password was refused as a wrong one: {reasons:?}"
    );
    // The right password's refusal must not stand out either way: p10 and p25, as in
    // the tests above.
    assert!(
        r[0] < w[0] * 1.25 && r[1] < w[1] * 1.25,
        "the right password's refusal is slower than a wrong one's: {r:?} vs {w:?}"
    );
    assert!(
        r[0] > w[0] * 0.8 && r[1] > w[1] * 0.8,
        "the right password's refusal is faster than a wrong one's: {r:?} vs {w:?}"
    );
}

/// A server whose client "vpn" (127.0.0.1) has `allow_groups`: three groups nobody here is
/// in (each holds one other member), searched one by one; "plain" (127.0.0.2) has none.
/// `user00000`..`user00019` are the right passwords, `user00020`.. the wrong ones.
struct AllowGroups {
    _slapd: Slapd,
    srv: Server,
    passwords: Vec<String>,
}

impl AllowGroups {
    fn start() -> Self {
        let users = LdapUser::generate(40);
        let passwords: Vec<String> = users.iter().map(|u| u.password.clone()).collect();
        let groups = ["vpn-a", "vpn-b", "vpn-c"];
        let slapd = Slapd::start_with(
            &users,
            common::slapd::SlapdOptions {
                extra_ldif: common::slapd::groups_ldif(&[
                    ("vpn-a", &["someone-else"]),
                    ("vpn-b", &["someone-else"]),
                    ("vpn-c", &["someone-else"]),
                ]),
                ..Default::default()
            },
        );
        let allow: Vec<String> = groups
            .iter()
            .map(|g| format!("{:?}", common::slapd::group_dn(g)))
            .collect();
        let keys: &'static str =
            Box::leak(format!("allow_groups = [{}]\n", allow.join(", ")).into());
        let mut o = Options::new(&slapd.url);
        o.clients = vec![
            Nas {
                keys,
                ..Nas::challenge("vpn", "127.0.0.1")
            },
            Nas::challenge("plain", "127.0.0.2"),
        ];
        let srv = Server::start(&o);
        AllowGroups {
            _slapd: slapd,
            srv,
            passwords,
        }
    }

    fn right(&self, i: u32) -> (String, Vec<u8>) {
        let n = (i % 20) as usize;
        (
            format!("user{n:05}"),
            self.passwords[n].clone().into_bytes(),
        )
    }

    fn wrong(i: u32) -> (String, Vec<u8>) {
        (
            format!("user{:05}", 20 + i % 20),
            b"wrong-password".to_vec(),
        )
    }

    /// Each login once from `sock`, its round trip kept; every reply a Reject.
    fn times(
        &self,
        sock: &UdpSocket,
        logins: impl Iterator<Item = (String, Vec<u8>)>,
    ) -> Vec<Duration> {
        logins
            .enumerate()
            .map(|(i, (who, pw))| {
                let (code, _, rtt) =
                    ask(sock, AccessRequestBuilder::new(i as u8, &who).password(&pw)).unwrap();
                assert_eq!(code, 3, "{who}: not a Reject");
                rtt
            })
            .collect()
    }
}

/// On a client with `allow_groups`, a user outside them is refused after the password: the
/// right password costs the groups' searches before the Reject, a wrong one did not, so the
/// time told which passwords were right for the accounts the rule keeps out (a red team
/// measured ~1 ms a group on loopback; a round trip each to a remote directory). The same
/// Reject, and wrong passwords now wait about as long.
#[test]
fn a_right_password_outside_allow_groups_is_not_told_apart_by_timing() {
    let _alone = one_at_a_time();
    let a = AllowGroups::start();
    let srv = &a.srv;
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    // Both kinds first, so that each pad has its durations.
    for i in 0..40 {
        a.times(&sock, [a.right(i), AllowGroups::wrong(i)].into_iter());
    }
    let (r, w) = interleaved_logins(
        &sock,
        150,
        ("right pw, not allowed", &|i| a.right(i)),
        ("wrong password", &AllowGroups::wrong),
    );
    let rec = &srv.audit_json("user00000")[0];
    assert!(
        rec["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not a member of any allow_groups"),
        "{rec}"
    );
    // p10 and p25, as in the tests above.
    assert!(
        r[0] < w[0] * 1.25 && r[1] < w[1] * 1.25,
        "the right password's refusal is slower than a wrong one's: {r:?} vs {w:?}"
    );
    assert!(
        r[0] > w[0] * 0.8 && r[1] > w[1] * 0.8,
        "the right password's refusal is faster than a wrong one's: {r:?} vs {w:?}"
    );
}

/// Just after a start, before any right password on the client has run the groups' check,
/// there is no duration to pad a wrong password to: it was refused a search per group
/// sooner than an outsider's right password, so a sprayer starting after a restart could
/// tell the right ones apart until someone logged in. Wrong passwords then do the searches.
#[test]
fn wrong_passwords_just_after_a_start_wait_for_the_allow_groups_searches() {
    let _alone = one_at_a_time();
    let a = AllowGroups::start();
    // Connections to the directory opened from a client without allow_groups, so that
    // neither kind below pays for them, and the "vpn" pads stay empty.
    let plain = socket_from("127.0.0.2", a.srv.addr, 3000);
    for i in 0..20 {
        let (who, pw) = a.right(i);
        ask(
            &plain,
            AccessRequestBuilder::new(i as u8, &who).password(&pw),
        )
        .unwrap();
        let (who, pw) = AllowGroups::wrong(i);
        ask(
            &plain,
            AccessRequestBuilder::new(i as u8, &who).password(&pw),
        )
        .unwrap();
    }
    let sock = socket_from("127.0.0.1", a.srv.addr, 3000);
    // Wrong passwords first, while no right password on "vpn" has run the check; then
    // right ones. Alternating would record the check's time after the first right one.
    let w = percentiles(a.times(&sock, (0..40).map(AllowGroups::wrong)));
    let r = percentiles(a.times(&sock, (0..40).map(|i| a.right(i))));
    show_distribution(&[("wrong pw, first", w), ("right pw, not allowed", r)]);
    assert!(
        w[1] > r[1] * 0.8 && w[2] > r[2] * 0.8,
        "wrong passwords just after the start are refused sooner than right ones: {w:?} vs {r:?}"
    );
}
