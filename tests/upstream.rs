//! `primary = "upstream"`: the password checked by another RADIUS server — Debian's
//! FreeRADIUS, a server nobody here wrote — then the second factor as usual. The real radmfa
//! binary, slapd (the user's entry), pyrad as the NAS and oathtool's codes.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::freeradius::{FreeRadius, UpstreamUser, UPSTREAM_SECRET};
use common::oob_env::{client, directory, ALICE_PW};
use common::peers::{assert_same_reply, prometheus_parse, pyrad, FreshCodes};
use common::radmfa::{http_get, Options, Server, SECRET};
use common::slapd::{free_port, Slapd};
use radmfa::radius::client::{parse_reply, AccessRequestBuilder};

const ALICE_UP: &str = "alice-upstream-pw";
const STATION: &str = "203.0.113.9";
/// The NAS's own address, as it reports it.
const NAS_V6: &str = "2001:db8::44";

fn upstream_users() -> FreeRadius {
    FreeRadius::start(&[
        UpstreamUser {
            name: "alice",
            password: ALICE_UP,
            reply: "Class = \"nps-vpn-policy\", Filter-Id = \"staff-acl\", \
                    Framed-IP-Address = 10.8.0.7, Session-Timeout = 28800",
        },
        // As the upstream server knows her when she types her domain.
        UpstreamUser {
            name: "\"alice@corp.example.org\"",
            password: ALICE_UP,
            reply: "",
        },
        // Known upstream, not in the directory.
        UpstreamUser {
            name: "carol",
            password: "carol-upstream-pw",
            reply: "",
        },
    ])
}

/// `[upstream]` with `servers` and more keys.
fn upstream_section(servers: &[String], keys: &str) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    format!(
        "\n[upstream]\nservers = [{}]\nsecret = \"{UPSTREAM_SECRET}\"\n{keys}\n",
        list.join(", ")
    )
}

fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The servers' `[totp] window`: wide, so that tests making many logins get their codes
/// (`FreshCodes::with_window`) without waiting for new time steps (at 3, six a step).
const WINDOW: i64 = 10;

/// radmfa with `sections` (upstream, totp) and `clients`; the file can be rewritten and
/// reloaded.
fn start(slapd: &Slapd, sections: &str, clients: &[String]) -> Server {
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    o.extra = format!(
        "\n[totp]\nwindow = {WINDOW}\n{sections}{}",
        clients.concat()
    );
    Server::start(&o)
}

/// Rewrites the `[upstream]` section of the running server's file and reloads it.
fn reload_upstream(srv: &Server, section: &str) {
    let text = std::fs::read_to_string(&srv.config).unwrap();
    let start = text.find("\n[upstream]").expect("an [upstream] section");
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |i| start + 1 + i);
    reload_with(srv, &format!("{}{section}{}", &text[..start], &text[end..]));
}

/// Writes `text` as the running server's file and reloads it.
fn reload_with(srv: &Server, text: &str) {
    std::fs::write(&srv.config, text).unwrap();
    let reloads = srv.log().matches("[[client]] entries from").count();
    let ok = Command::new("kill")
        .args(["-HUP", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let t = Instant::now();
    while srv.log().matches("[[client]] entries from").count() == reloads {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no reload:\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send(
    srv: &Server,
    bind: &str,
    user: &str,
    password: &str,
    state: Option<&str>,
) -> serde_json::Value {
    let mut args = vec![
        "--bind",
        bind,
        "--user",
        user,
        "--password",
        password,
        "--calling-station-id",
        STATION,
        "--nas-ipv6-address",
        NAS_V6,
    ];
    if let Some(s) = state {
        args.extend(["--state", s]);
    }
    pyrad(srv.port(), SECRET, &args)
}

/// A client whose passwords go upstream, with password and code in one field.
const INLINE_UPSTREAM: &str = "primary = \"upstream\"\notp_mode = \"inline\"";

/// alice's inline login from `bind`: `password,code`, with a fresh code each time.
fn inline_login(srv: &Server, bind: &str, password: &str, codes: &FreshCodes) -> serde_json::Value {
    send(
        srv,
        bind,
        "alice",
        &format!("{password},{}", codes.next()),
        None,
    )
}

/// `radmfa_upstream_answering` of `server` in the default group, read from /metrics.
fn answering(srv: &Server, server: &str) -> f64 {
    let m = prometheus_parse(&http_get(srv.metrics_addr(), "/metrics").2);
    m[&format!("radmfa_upstream_answering{{group=default,server={server}}}")]
}

fn code(v: &serde_json::Value) -> &str {
    v["code"].as_str().unwrap()
}

fn attribute<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    v["attributes"].get(name)
}

fn newest(srv: &Server, user: &str) -> serde_json::Value {
    srv.audit_json(user).into_iter().next().unwrap()
}

/// The upstream server decides the password (not the directory's), its Access-Accept's
/// `pass_through` attributes reach the NAS — inline, and across a challenge's two rounds —
/// and the directory still has to know the user. A wrong password and an unknown user get
/// the same reply; an LDAP client beside it is unchanged.
#[test]
fn the_upstream_server_checks_the_password_and_its_attributes_reach_the_nas() {
    let slapd = directory();
    let fr = upstream_users();
    let sections = upstream_section(
        &[local(fr.signed)],
        "pass_through = [\"Class\", \"Framed-IP-Address\", \"Session-Timeout\"]",
    );
    let clients = [
        client("vpn", "127.0.0.1", "primary = \"upstream\""),
        client("inline-vpn", "127.0.0.2", INLINE_UPSTREAM),
        client("ldap-vpn", "127.0.0.3", ""),
        client(
            "pinned-vpn",
            "127.0.0.4",
            &format!("{INLINE_UPSTREAM}\naccept_attributes = [\"Session-Timeout = 3600\"]"),
        ),
    ];
    let srv = start(&slapd, &sections, &clients);
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    let policy_hex = hex(b"nps-vpn-policy");

    // The admin's own Session-Timeout wins, alone: one value of a single-valued
    // attribute, not the admin's and then the upstream's (a NAS reading the last one took
    // the upstream's 8 hours). What the admin did not set still passes.
    let r = inline_login(&srv, "127.0.0.4", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Accept", "{r}");
    assert_eq!(
        attribute(&r, "Session-Timeout"),
        Some(&serde_json::json!(["3600"])),
        "{r}"
    );
    assert_eq!(
        attribute(&r, "Framed-IP-Address"),
        Some(&serde_json::json!(["10.8.0.7"]))
    );
    assert_eq!(
        attribute(&r, "Class"),
        Some(&serde_json::json!([policy_hex])),
        "{r}"
    );

    // Inline: the upstream password with the code.
    let r = inline_login(&srv, "127.0.0.2", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Accept", "{r}");
    assert_eq!(
        attribute(&r, "Class"),
        Some(&serde_json::json!([policy_hex])),
        "{r}"
    );
    assert_eq!(
        attribute(&r, "Framed-IP-Address"),
        Some(&serde_json::json!(["10.8.0.7"]))
    );
    assert_eq!(attribute(&r, "Filter-Id"), None, "not in pass_through: {r}");
    let rec = newest(&srv, "alice");
    assert_eq!(
        (rec["mode"].as_str(), rec["result"].as_str()),
        (Some("totp"), Some("accept"))
    );
    // What FreeRADIUS received: the name, radmfa's NAS-Identifier, the NAS's station and
    // address.
    let log = fr.log();
    for needle in [
        "User-Name = \"alice\"",
        "NAS-Identifier = \"test-node\"",
        &format!("Calling-Station-Id = \"{STATION}\""),
        &format!("NAS-IPv6-Address = {NAS_V6}"),
    ] {
        assert!(
            log.contains(needle),
            "FreeRADIUS did not get {needle}:\n{log}"
        );
    }

    // The directory's password is not the upstream's: refused, and said why.
    let r = inline_login(&srv, "127.0.0.2", ALICE_PW, &codes);
    assert_eq!(code(&r), "Access-Reject", "{r}");
    let rec = newest(&srv, "alice");
    assert!(
        rec["reason"].as_str().unwrap().contains(&format!(
            "rejected by the upstream RADIUS server {}",
            local(fr.signed)
        )),
        "{rec}"
    );

    // A prompt: the upstream's attributes are kept with the challenge for the accept.
    let r1 = send(&srv, "127.0.0.1", "alice", ALICE_UP, None);
    assert_eq!(code(&r1), "Access-Challenge", "{r1}");
    assert_eq!(attribute(&r1, "Class"), None, "only on the accept: {r1}");
    let state = r1["state"].as_str().unwrap().to_string();
    let r2 = send(&srv, "127.0.0.1", "alice", &codes.next(), Some(&state));
    assert_eq!(code(&r2), "Access-Accept", "{r2}");
    assert_eq!(
        attribute(&r2, "Class"),
        Some(&serde_json::json!([policy_hex])),
        "{r2}"
    );
    assert_eq!(
        attribute(&r2, "Framed-IP-Address"),
        Some(&serde_json::json!(["10.8.0.7"]))
    );

    // The LDAP client beside it: the directory's password, and no upstream attributes.
    let r = send(&srv, "127.0.0.3", "alice", ALICE_PW, None);
    assert_eq!(code(&r), "Access-Challenge", "{r}");
    let r = send(&srv, "127.0.0.3", "alice", ALICE_UP, None);
    assert_eq!(code(&r), "Access-Reject", "{r}");

    // A wrong password and an unknown user: the same reply.
    let wrong = send(&srv, "127.0.0.1", "alice", "not-the-password", None);
    let unknown = send(&srv, "127.0.0.1", "mallory", "not-the-password", None);
    assert_eq!(code(&wrong), "Access-Reject");
    // Values too, not only names: an upstream's reply passed on in one of them would show.
    // Nothing in a Reject is rightly per request but its Message-Authenticator (these
    // requests carry no Proxy-State to echo, and a Reject has no State).
    assert_same_reply(&wrong, &unknown);

    // Accepted upstream, unknown to the directory: refused, the audit says why.
    let r = send(&srv, "127.0.0.1", "carol", "carol-upstream-pw", None);
    assert_eq!(code(&r), "Access-Reject", "{r}");
    assert_same_reply(&r, &unknown);
    let rec = newest(&srv, "carol");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("not in the directory"),
        "{rec}"
    );
}

/// An upstream Accept with two of a single-valued attribute (FreeRADIUS told to add
/// Session-Timeout and Service-Type twice): the NAS gets the first of each, as RFC 2865
/// allows 0-1 of them in an Accept, and the log says the rest was left out. Attributes that
/// may repeat (Class) all pass.
#[test]
fn an_upstream_accept_repeating_a_single_valued_attribute_passes_on_its_first() {
    let slapd = directory();
    let fr = FreeRadius::start(&[UpstreamUser {
        name: "alice",
        password: ALICE_UP,
        reply: "Session-Timeout += 7200, Session-Timeout += 60, Service-Type += Framed-User, \
                Service-Type += Login-User, Class += \"first\", Class += \"second\"",
    }]);
    let srv = start(
        &slapd,
        &upstream_section(
            &[local(fr.signed)],
            "pass_through = [\"Session-Timeout\", \"Service-Type\", \"Class\"]",
        ),
        &[client("vpn", "127.0.0.1", INLINE_UPSTREAM)],
    );
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", fr.log());
    assert_eq!(
        attribute(&r, "Session-Timeout"),
        Some(&serde_json::json!(["7200"])),
        "{r}\n{}",
        fr.log()
    );
    // Framed-User (2); pyrad's dictionary has no name for Service-Type (6).
    assert_eq!(
        attribute(&r, "6"),
        Some(&serde_json::json!(["00000002"])),
        "{r}"
    );
    assert_eq!(
        attribute(&r, "Class"),
        Some(&serde_json::json!([hex(b"first"), hex(b"second")])),
        "{r}"
    );
    for name in ["Session-Timeout", "Service-Type"] {
        assert!(
            srv.log()
                .contains(&format!("carries {name} more than once")),
            "{}",
            srv.log()
        );
    }
}

/// A login whose request deadline runs out while it waits for an upstream server (its
/// timeout_ms longer than the deadline) is refused as one no server answered: counted in
/// `radmfa_backend_failures_total{backend="upstream"}`, and its reason names the servers
/// and where each stood, not only the deadline.
#[test]
fn a_login_cut_short_waiting_for_the_upstream_is_an_upstream_failure() {
    let slapd = directory();
    // Takes the datagrams and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let at = local(silent.local_addr().unwrap().port());
    let srv = start(
        &slapd,
        &format!(
            "\n[metrics]\nlisten = \"127.0.0.1:0\"\n{}",
            upstream_section(std::slice::from_ref(&at), "timeout_ms = 8000")
        ),
        &[client("vpn", "127.0.0.1", INLINE_UPSTREAM)],
    );
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Reject", "{r}\n{}", srv.log());
    let rec = newest(&srv, "alice");
    let reason = rec["reason"].as_str().unwrap();
    let want = format!(
        "request deadline of 4000 ms exceeded waiting for the upstream RADIUS servers ({at} \
         asked "
    );
    assert!(reason.starts_with(&want), "{want:?} not in {reason:?}");
    assert!(reason.ends_with(" ms before, no answer yet)"), "{reason}");
    let m = prometheus_parse(&http_get(srv.metrics_addr(), "/metrics").2);
    assert_eq!(m["radmfa_backend_failures_total{backend=upstream}"], 1.0);
    assert_eq!(m["radmfa_deadline_exceeded_total{}"], 1.0);
    drop(silent);
}

/// What must not pass: a reply without a Message-Authenticator (by default), replies signed
/// with another secret, no server answering. Then failover to the next server, which is
/// asked first while the dead one sits out `dead_time_secs`; and an admin may accept
/// unsigned replies explicitly. Each step is a SIGHUP of `[upstream]` on the running server.
#[test]
fn unsafe_or_missing_answers_refuse_and_a_dead_server_is_skipped() {
    let slapd = directory();
    let fr = upstream_users();
    let dead = local(free_port());
    let quick = "timeout_ms = 300";
    let srv = start(
        &slapd,
        &format!(
            "\n[metrics]\nlisten = \"127.0.0.1:0\"\n{}",
            // The default timeout where a live server's reply must arrive (here, to be
            // refused as unsigned): a busy CI machine may take longer than `quick`.
            upstream_section(&[local(fr.unsigned)], "")
        ),
        &[client("vpn", "127.0.0.1", INLINE_UPSTREAM)],
    );
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    let login = || inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    // Refused before any code is looked at, so these take no fresh code: a made-up one.
    let refused_because = |why: &str| {
        let r = send(
            &srv,
            "127.0.0.1",
            "alice",
            &format!("{ALICE_UP},000000"),
            None,
        );
        assert_eq!(code(&r), "Access-Reject", "{r}");
        let rec = newest(&srv, "alice");
        let reason = rec["reason"].as_str().unwrap().to_string();
        assert!(reason.contains(why), "{why:?} not in {reason:?}");
    };

    // Said as what it is, with the fix, not after "down, or not configured".
    refused_because(
        "without Message-Authenticator, and such replies are refused \
         (upstream.require_message_authenticator): make the server sign its replies",
    );
    let rec = newest(&srv, "alice");
    assert!(
        !rec["reason"]
            .as_str()
            .unwrap()
            .contains("down, or not configured"),
        "{rec}"
    );

    // FreeRADIUS drops a request whose Message-Authenticator its secret does not verify:
    // to radmfa that is silence, and the reason says what silence can mean.
    reload_upstream(&srv, &upstream_section(&[local(fr.other_secret)], quick));
    refused_because("not configured for this address and secret");
    assert!(
        fr.log().contains("invalid Message-Authenticator"),
        "{}",
        fr.log()
    );

    reload_upstream(&srv, &upstream_section(std::slice::from_ref(&dead), quick));
    refused_because("no upstream server answered");
    // An outage is logged when it starts, not at every login it refuses.
    refused_because("no upstream server answered");
    let warned = |server: &str| {
        srv.log_lines_at_least(1, |l| l.contains("did not answer") && l.contains(server))
    };
    assert_eq!(warned(&dead), 1, "{}", srv.log());

    // A server not heard from yet goes first: the first login waits for it, then fails
    // over; the next one asks the live server first.
    let dead2 = local(free_port());
    reload_upstream(
        &srv,
        &upstream_section(&[dead2.clone(), local(fr.signed)], ""),
    );
    for _ in 0..2 {
        let r = login();
        assert_eq!(code(&r), "Access-Accept", "{r}");
    }
    assert_eq!(warned(&dead2), 1, "{}", srv.log());
    // Prometheus sees which server answers: the one that failed stays 0 until it answers.
    let m = prometheus_parse(&http_get(srv.metrics_addr(), "/metrics").2);
    let answering =
        |server: &str| m[&format!("radmfa_upstream_answering{{group=default,server={server}}}")];
    assert_eq!(answering(&dead2), 0.0, "{m:?}");
    assert_eq!(answering(&local(fr.signed)), 1.0, "{m:?}");
    // Refused for want of a usable answer: unsigned, another secret, the silent one twice.
    assert_eq!(
        m["radmfa_backend_failures_total{backend=upstream}"], 4.0,
        "{m:?}"
    );

    // A server whose timeout outlasts the login's deadline (4 s): the first login is cut
    // off waiting for it, which counts as its silence; the next asks the live one first.
    // (A bound socket that reads nothing: a closed port would answer with ICMP at once.)
    let quiet_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let slow = local(quiet_socket.local_addr().unwrap().port());
    reload_upstream(
        &srv,
        &upstream_section(&[slow.clone(), local(fr.signed)], "timeout_ms = 8000"),
    );
    let field = format!("{ALICE_UP},{}", codes.next());
    let args = ["--user", "alice", "--password", &field, "--timeout", "10"];
    let r = pyrad(srv.port(), SECRET, &args);
    assert_eq!(code(&r), "Access-Reject", "{r}");
    let reason = newest(&srv, "alice")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("deadline"), "{reason}");
    let r = login();
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert!(
        srv.log()
            .lines()
            .any(|l| l.contains("did not answer before the login's deadline") && l.contains(&slow)),
        "{}",
        srv.log()
    );

    // Two silent servers whose timeouts together outlast the deadline: the first times out
    // and is marked; the second, cut off with what was left, is not (it had no fair chance,
    // and marking it too would leave nothing to fail over to).
    let quiet1 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let quiet2 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let first = local(quiet1.local_addr().unwrap().port());
    let second = local(quiet2.local_addr().unwrap().port());
    reload_upstream(
        &srv,
        &upstream_section(&[first.clone(), second.clone()], "timeout_ms = 3000"),
    );
    let field = format!("{ALICE_UP},{}", codes.next());
    let args = ["--user", "alice", "--password", &field, "--timeout", "10"];
    let r = pyrad(srv.port(), SECRET, &args);
    assert_eq!(code(&r), "Access-Reject", "{r}");
    let lines = |server: &str, what: &str, at_least: usize| {
        srv.log_lines_at_least(at_least, |l| l.contains(what) && l.contains(server))
    };
    assert_eq!(
        lines(&first, "upstream RADIUS server did not answer: ", 1),
        1,
        "{}",
        srv.log()
    );
    assert_eq!(
        lines(&second, "before the login's deadline", 0),
        0,
        "{}",
        srv.log()
    );
    drop((quiet1, quiet2));

    // Unsigned replies, when the admin says so; config check and the log say what it costs.
    reload_upstream(
        &srv,
        &upstream_section(
            &[local(fr.unsigned)],
            "require_message_authenticator = false",
        ),
    );
    let r = login();
    assert_eq!(code(&r), "Access-Accept", "{r}");
    assert!(
        srv.log_shows("upstream: require_message_authenticator = false"),
        "{}",
        srv.log()
    );
}

/// A User-Name that is not UTF-8 goes upstream as the octets the NAS sent. Before, radmfa
/// passed on its lossy text, in which each bad octet is three: 100 of them no longer fit one
/// attribute, and the request died unanswered (its retransmits swallowed for good).
#[test]
fn a_user_name_that_is_not_utf8_goes_upstream_as_sent() {
    let slapd = directory();
    let fr = upstream_users();
    let srv = start(
        &slapd,
        &upstream_section(&[local(fr.signed)], ""),
        &[client("vpn", "127.0.0.1", INLINE_UPSTREAM)],
    );
    let sock = srv.udp();
    let (raw, _) = AccessRequestBuilder::with_raw_user(7, &[0xff; 100])
        .password(b"some-password,123456")
        .build(SECRET.as_bytes());
    let mut buf = [0u8; 4096];
    // FreeRADIUS logs each request as it takes it in, before it answers; the pause covers
    // the file's lag behind that, so that a request is counted before the next look.
    let asked = || {
        std::thread::sleep(Duration::from_millis(300));
        fr.log().matches("Received Access-Request").count()
    };
    // Sent twice, with the same Identifier and Authenticator, as a NAS retransmits: the
    // second is a duplicate (RFC 5080), answered from the cache with the first reply's
    // bytes, and not asked of the upstream server again.
    let mut replies = Vec::new();
    let mut upstream = Vec::new();
    for _ in 0..2 {
        sock.send(&raw).unwrap();
        let n = sock.recv(&mut buf).expect("an answer");
        assert_eq!(parse_reply(&buf[..n]).unwrap().code, 3, "Access-Reject");
        replies.push(buf[..n].to_vec());
        upstream.push(asked());
    }
    assert_eq!(replies[0], replies[1], "the retransmit got another answer");
    let log = fr.log();
    assert!(
        log.contains("Login incorrect"),
        "upstream never refused: {log}"
    );
    assert_eq!(
        upstream,
        [1, 1],
        "upstream requests after the original and after the retransmit:\n{log}"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `config check --connect` asks each upstream server about a made-up user: the signed ones
/// (IPv4 and IPv6) pass, the unsigned one and a silent address fail and say why, and the exit status
/// reflects the failures. With `status_check = "status-server"` it asks Status-Server too,
/// and a server that answers logins but not that (as NPS) fails, saying what to use.
#[test]
fn config_check_connect_probes_each_upstream_server() {
    let slapd = directory();
    let fr = upstream_users();
    let silent = local(free_port());
    let like_nps = LossyRelay::ignoring(fr.signed, 12);
    let srv = start(
        &slapd,
        &upstream_section(
            &[
                local(fr.signed),
                local(fr.unsigned),
                silent.clone(),
                format!("[::1]:{}", fr.signed_v6),
                local(like_nps.port),
            ],
            // The default timeout: the live servers' replies must arrive within it.
            "status_check = \"status-server\"",
        ),
        &[client("vpn", "127.0.0.1", "primary = \"upstream\"")],
    );
    let out = srv.cli(&["config", "check", "--connect"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !out.status.success(),
        "a failed probe fails the check:\n{text}"
    );
    let line = |server: &str| {
        text.lines()
            .find(|l| l.contains(&format!("upstream {server}:")))
            .unwrap_or_else(|| panic!("no line for {server}:\n{text}"))
            .to_string()
    };
    let signed = line(&local(fr.signed));
    assert!(
        signed.starts_with("ok ") && signed.contains("rejected a made-up user"),
        "{signed}"
    );
    let status_line = |server: &str| {
        text.lines()
            .find(|l| l.contains(&format!("upstream {server}:")) && l.contains("Status-Server"))
            .unwrap_or_else(|| panic!("no Status-Server line for {server}:\n{text}"))
            .to_string()
    };
    let asked = status_line(&local(fr.signed));
    assert!(asked.starts_with("ok "), "{asked}");
    let nps = status_line(&local(like_nps.port));
    assert!(
        nps.starts_with("FAIL")
            && nps.contains("answers logins but not Status-Server")
            && nps.contains("\"access-request\""),
        "{nps}"
    );
    assert!(line(&local(like_nps.port)).starts_with("ok "), "{text}");
    let v6 = line(&format!("[::1]:{}", fr.signed_v6));
    assert!(v6.starts_with("ok "), "{v6}");
    let unsigned = line(&local(fr.unsigned));
    assert!(
        unsigned.starts_with("FAIL") && unsigned.contains("without Message-Authenticator"),
        "{unsigned}"
    );
    let quiet = line(&silent);
    assert!(
        quiet.starts_with("FAIL") && quiet.contains("port unreachable: nothing listens there"),
        "{quiet}"
    );
    assert!(
        fr.log().contains("User-Name = \"radmfa-config-check\""),
        "{}",
        fr.log()
    );
}

/// A stock FreeRADIUS holds every reject for `reject_delay` (1 s): a wrong password then
/// lands at the edge of `timeout_ms`, and one past it counted the server down. `config
/// check --connect` warns when the made-up user's reject took half of `timeout_ms` or more.
#[test]
fn config_check_connect_warns_of_a_server_that_holds_its_rejects() {
    let slapd = directory();
    let fr = FreeRadius::start_with_reject_delay(&[], 1);
    let srv = start(
        &slapd,
        &upstream_section(&[local(fr.signed)], "timeout_ms = 1800"),
        &[client("vpn", "127.0.0.1", "primary = \"upstream\"")],
    );
    let out = srv.cli(&["config", "check", "--connect"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "a slow reject is no failure:\n{text}");
    assert!(
        text.lines().any(|l| l.starts_with("WARN upstream")
            && l.contains("its reject took")
            && l.contains("reject_delay")
            && l.contains("upstream.timeout_ms")),
        "{text}"
    );
}

/// A UDP relay in front of FreeRADIUS that drops the first `drop` datagrams from radmfa:
/// packet loss on the path, on loopback. Replies go back to whoever sent last.
struct LossyRelay {
    port: u16,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Datagrams dropped before the relay passes them on; [`LossyRelay::pass`] lowers it.
    drop: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The RADIUS code and User-Name of each datagram from radmfa, passed on or not.
    codes: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    /// Datagrams of this RADIUS code are never passed on (0: none).
    ignored: std::sync::Arc<std::sync::atomic::AtomicU8>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A datagram's RADIUS code and User-Name, as the relay saw it.
type Seen = (u8, Option<Vec<u8>>);

/// The user name `status_check = "access-request"` asks about.
const CHECK_USER: &[u8] = b"radmfa-status-check";

/// The User-Name (attribute 1) of a RADIUS datagram, if it has one (the client's parser
/// reads any packet's attributes, a request's too).
fn user_name(datagram: &[u8]) -> Option<Vec<u8>> {
    let packet = radmfa::radius::client::parse_reply(datagram)?;
    packet
        .attributes
        .into_iter()
        .find_map(|(typ, value)| (typ == 1).then_some(value))
}

impl LossyRelay {
    fn start(target: u16, drop: usize) -> LossyRelay {
        use std::net::UdpSocket;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(("127.0.0.1", target)).unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        let port = front.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        let drop = Arc::new(AtomicUsize::new(drop));
        let codes = Arc::new(Mutex::new(Vec::new()));
        let ignored = Arc::new(std::sync::atomic::AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let peer = Arc::new(Mutex::new(None));
        let (front2, back2) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let (seen2, drop2, codes2) = (seen.clone(), drop.clone(), codes.clone());
        let (stop2, peer2, ignored2) = (stop.clone(), peer.clone(), ignored.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = front2.recv_from(&mut buf) {
                    *peer2.lock().unwrap() = Some(from);
                    codes2.lock().unwrap().push((buf[0], user_name(&buf[..n])));
                    if buf[0] == ignored2.load(Ordering::Relaxed) {
                        continue;
                    }
                    if seen2.fetch_add(1, Ordering::Relaxed) >= drop2.load(Ordering::Relaxed) {
                        let _ = back2.send(&buf[..n]);
                    }
                }
            }
        });
        let stop3 = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop3.load(Ordering::Relaxed) {
                if let Ok(n) = back.recv(&mut buf) {
                    if let Some(to) = *peer.lock().unwrap() {
                        let _ = front.send_to(&buf[..n], to);
                    }
                }
            }
        });
        LossyRelay {
            port,
            seen,
            drop,
            codes,
            ignored,
            stop,
        }
    }

    /// Passes everything on but datagrams of RADIUS code `code`, as NPS ignores
    /// Status-Server (12).
    fn ignoring(target: u16, code: u8) -> LossyRelay {
        let relay = LossyRelay::start(target, 0);
        relay
            .ignored
            .store(code, std::sync::atomic::Ordering::Relaxed);
        relay
    }

    fn seen(&self) -> usize {
        self.seen.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops every datagram from now on: the server behind it went silent.
    fn silence(&self) {
        self.drop
            .store(usize::MAX, std::sync::atomic::Ordering::Relaxed);
    }

    /// Passes on every datagram from now on: the server behind it is back.
    fn pass(&self) {
        self.drop.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many datagrams from radmfa had RADIUS code `code`.
    fn count(&self, code: u8) -> usize {
        self.codes
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == code)
            .count()
    }

    /// How many Access-Requests from radmfa were logins, not `status_check =
    /// "access-request"`'s checks (its made-up user): a check may go out while a login is
    /// still waiting on a loaded machine.
    fn logins(&self) -> usize {
        self.codes
            .lock()
            .unwrap()
            .iter()
            .filter(|(code, user)| *code == 1 && user.as_deref() != Some(CHECK_USER))
            .count()
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The request lost on its way to the only upstream server is sent again within the same
/// wait, and the login goes through.
#[test]
fn a_lost_request_is_sent_again() {
    let slapd = directory();
    let fr = upstream_users();
    let relay = LossyRelay::start(fr.signed, 1);
    let srv = start(
        &slapd,
        // Long enough that the resend (at half of it) is answered on a busy CI machine.
        &upstream_section(&[local(relay.port)], "timeout_ms = 3000"),
        &[client("vpn", "127.0.0.1", INLINE_UPSTREAM)],
    );
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(
        relay.seen(),
        2,
        "the first datagram dropped, the second answered"
    );
}

/// `status_check`: a server that stopped answering is asked between logins, every
/// `check_interval_secs`. While it stays silent no login asks it, though its dead time has
/// run out; once it answers, the log, `/metrics` and the next login see it back.
fn silent_server_checked_between_logins(kind: &str, check_code: u8) {
    const ACCESS_REQUEST: u8 = 1;
    let slapd = directory();
    let fr = upstream_users();
    let relay = LossyRelay::start(fr.signed, usize::MAX);
    let behind = local(relay.port);
    let srv = start(
        &slapd,
        &format!(
            "\n[metrics]\nlisten = \"127.0.0.1:0\"\n{}",
            upstream_section(
                &[behind.clone(), local(fr.signed)],
                &format!("dead_time_secs = 4\nstatus_check = \"{kind}\"\ncheck_interval_secs = 1"),
            )
        ),
        &[client("vpn", "127.0.0.1", INLINE_UPSTREAM)],
    );
    let answering = || answering(&srv, &behind);
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
    let asked_by_logins = relay.logins();
    assert_eq!(asked_by_logins, 2, "the first login asked it, twice");
    assert_eq!(answering(), 0.0);

    // Past its dead time, still silent: the checks kept it at the back.
    std::thread::sleep(Duration::from_secs(5));
    // With status_check = "access-request" the checks share their code with the logins'
    // requests, which do not count as checks.
    let by_logins = if check_code == ACCESS_REQUEST {
        relay.logins()
    } else {
        0
    };
    let checks = relay.count(check_code) - by_logins;
    assert!(checks >= 3, "checked about once a second: {checks}");
    if check_code != ACCESS_REQUEST {
        let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
        assert_eq!(code(&r), "Access-Accept", "{r}");
        assert_eq!(
            relay.logins(),
            asked_by_logins,
            "no login asked the silent server"
        );
    }
    assert_eq!(answering(), 0.0);

    relay.pass();
    let t = Instant::now();
    while !srv.log().contains("answers again (status check)") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{}\n{}",
            srv.log(),
            fr.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(answering(), 1.0);
    let before = relay.logins();
    let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Accept", "{r}");
    assert_eq!(relay.logins(), before + 1, "the login asked it first again");
    if check_code == ACCESS_REQUEST {
        assert!(
            fr.log().contains("User-Name = \"radmfa-status-check\""),
            "{}",
            fr.log()
        );
    }
}

/// A node whose upstream servers are all silent answers no login of a no-reply client, so
/// it must not answer that client's Status-Server either: a proxy checking with it
/// (radsecproxy, FreeRADIUS) would bring the node back and fail over again, login after
/// login. It says "alive" again once a server answers (a login, or a status check), or
/// after `dead_time_secs`, so that a proxy sends a login again.
#[test]
fn status_server_is_silent_while_every_upstream_server_is() {
    let slapd = directory();
    let fr = upstream_users();
    let relay = LossyRelay::start(fr.signed, usize::MAX);
    let srv = start(
        &slapd,
        &upstream_section(
            &[local(relay.port)],
            "timeout_ms = 500\ndead_time_secs = 8\nstatus_check = \"status-server\"\n\
             check_interval_secs = 1",
        ),
        &[client(
            "vpn",
            "127.0.0.1",
            &format!("{INLINE_UPSTREAM}\non_backend_failure = \"no_reply\""),
        )],
    );
    let addr = srv.addr.to_string();
    let status = || common::peers::radclient_status(&addr, SECRET);
    assert_eq!(status(), "Access-Accept", "not asked yet: answering");
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    // A login the silent relay leaves unanswered (pyrad gives up after 3 s).
    let unanswered = || {
        pyrad(
            srv.port(),
            SECRET,
            &[
                "--user",
                "alice",
                "--password",
                &format!("{ALICE_UP},{}", codes.next()),
                "--timeout",
                "3",
            ],
        )
    };
    let login_sent = Instant::now();
    let r = unanswered();
    assert_eq!(
        code(&r),
        "timeout",
        "no reply while the upstream is silent: {r}"
    );
    // Left unanswered on purpose (pyrad also says "timeout" for a reply it dropped), and
    // recorded so: `audit --result unanswered` finds it (it said "reject", which the NAS
    // never got).
    assert!(
        srv.log_shows("not answered (on_backend_failure = \\\"no_reply\\\")"),
        "{}",
        srv.log()
    );
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["result"], "unanswered", "{rec}");
    assert_eq!(status(), "none", "{}", srv.log());
    // For dead_time_secs (8) at most: then "alive" again, so a proxy sends a login, the
    // only way a group whose servers ignore the checks is found back. (The relay drops the
    // checks too.)
    while status() != "Access-Accept" {
        assert!(
            login_sent.elapsed() < Duration::from_secs(14),
            "{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        login_sent.elapsed() >= Duration::from_secs(7),
        "silent too briefly: {:?}",
        login_sent.elapsed()
    );
    let r = unanswered();
    assert_eq!(code(&r), "timeout", "{r}");
    // Left unanswered on purpose again: a second such line, not a reply pyrad dropped.
    let deliberate = || {
        srv.log()
            .matches("not answered (on_backend_failure = \\\"no_reply\\\")")
            .count()
    };
    let t = Instant::now();
    while deliberate() < 2 {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(), "none", "silent again after that login");
    // Back: the status checks find it, but a Status-Server answer does not outweigh that
    // unanswered login for dead_time_secs (8).
    relay.pass();
    let t = Instant::now();
    while status() != "Access-Accept" {
        assert!(t.elapsed() < Duration::from_secs(14), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Accept", "{r}");
}

/// A server that answers Status-Server but drops logins (a FreeRADIUS whose LDAP back end
/// hangs, or that stopped signing its replies) is not put back first by its Status-Server
/// answers: a login it left unanswered outweighs them for `dead_time_secs`, so the logins
/// meanwhile go straight to the next server, and the log says what the checks found.
#[test]
fn a_server_answering_status_server_but_not_logins_stays_at_the_back() {
    const ACCESS_REQUEST: u8 = 1;
    let slapd = directory();
    let fr = upstream_users();
    // Status-Server reaches FreeRADIUS and is answered; logins never do.
    let relay = LossyRelay::ignoring(fr.signed, ACCESS_REQUEST);
    let behind = local(relay.port);
    let srv = start(
        &slapd,
        &format!(
            "\n[metrics]\nlisten = \"127.0.0.1:0\"\n{}",
            upstream_section(
                &[behind.clone(), local(fr.signed)],
                "timeout_ms = 1000\ndead_time_secs = 6\nstatus_check = \"status-server\"\n\
                 check_interval_secs = 1",
            )
        ),
        &[client("vpn", "127.0.0.1", INLINE_UPSTREAM)],
    );
    let answering = || answering(&srv, &behind);
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    let failed = Instant::now();
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
    let by_the_first_login = relay.count(ACCESS_REQUEST);
    assert_eq!(by_the_first_login, 2, "asked, and asked again");
    let t = Instant::now();
    while !srv
        .log()
        .contains("answers Status-Server but did not answer a login")
    {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Checks answered meanwhile, logins not sent to it, nor is it said to answer.
    let mut logins = 0;
    loop {
        // A fresh code may wait for the next time step: the login is timed after it.
        let password = format!("{ALICE_UP},{}", codes.next());
        if failed.elapsed() >= Duration::from_secs(4) {
            break;
        }
        assert!(!srv.log().contains("answers again"), "{}", srv.log());
        let started = Instant::now();
        let r = send(&srv, "127.0.0.1", "alice", &password, None);
        logins += 1;
        assert_eq!(code(&r), "Access-Accept", "{r}");
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "a login waited for the server that drops them: {:?}\n{}",
            started.elapsed(),
            srv.log()
        );
        assert_eq!(answering(), 0.0, "{}", srv.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        logins >= 1 && relay.count(12) >= 2,
        "checked: {}",
        relay.count(12)
    );
    assert_eq!(relay.count(ACCESS_REQUEST), by_the_first_login);
    // Its dead time after that login over, the next Status-Server answer puts it back (a
    // login finds out the rest).
    while !srv.log().contains("answers again (status check)") {
        assert!(failed.elapsed() < Duration::from_secs(12), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        failed.elapsed() >= Duration::from_secs(5),
        "back after {:?}",
        failed.elapsed()
    );
    assert_eq!(
        srv.log()
            .matches("answers Status-Server but did not answer a login")
            .count(),
        1,
        "said once: {}",
        srv.log()
    );
}

#[test]
fn a_silent_server_is_checked_with_status_server() {
    silent_server_checked_between_logins("status-server", 12);
}

#[test]
fn a_silent_server_is_checked_with_a_made_up_users_request() {
    silent_server_checked_between_logins("access-request", 1);
}

/// A server named by its DNS name (`localhost`, from /etc/hosts, so nothing leaves the
/// machine): looked up when radmfa asks, logins go through it, and `config check --connect`
/// says where the name led.
#[test]
fn a_server_given_by_name_is_looked_up() {
    use std::net::ToSocketAddrs;
    let slapd = directory();
    let fr = upstream_users();
    // The system's first address for the name, as radmfa takes it: FreeRADIUS listens on
    // 127.0.0.1 and ::1 on different ports.
    let first = ("localhost", 1).to_socket_addrs().unwrap().next().unwrap();
    let port = if first.is_ipv4() {
        fr.signed
    } else {
        fr.signed_v6
    };
    let name = format!("localhost:{port}");
    let at = std::net::SocketAddr::new(first.ip(), port);
    // The same server again, by its address: the loader cannot tell; the check can.
    let srv = start(
        &slapd,
        &upstream_section(&[name.clone(), at.to_string()], ""),
        &[client("vpn", "127.0.0.1", INLINE_UPSTREAM)],
    );
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
    let r = inline_login(&srv, "127.0.0.1", ALICE_PW, &codes);
    assert_eq!(code(&r), "Access-Reject", "the directory's password: {r}");

    let out = srv.cli(&["config", "check", "--connect"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("ok ")
            && l.contains(&format!(
                "upstream {name} (at {at}): rejected a made-up user"
            ))),
        "{text}"
    );
    assert!(
        text.contains(&format!("upstream: {name}, {at} (")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("WARN ")
            && l.contains(&format!("upstream {at} is {name} again (both at {at})"))),
        "{text}"
    );
}

/// Named groups: each client's passwords go to its own group's servers with that group's
/// secret (`[upstreams.branch]`: FreeRADIUS's port for another secret), and a group whose
/// secret the server does not know is refused and marked silent for that group alone,
/// though the same server answers the default group.
#[test]
fn each_client_asks_its_own_group_of_servers() {
    const BRANCH_SECRET: &str = "not-the-secret-radmfa-has";
    let slapd = directory();
    let fr = upstream_users();
    // Only the group meant to go unanswered waits briefly; the others keep the default
    // timeout, so a busy CI machine does not make a live server look silent.
    let group = |name: &str, port: u16, secret: &str| {
        let wait = if name == "stale" {
            "timeout_ms = 300"
        } else {
            ""
        };
        format!(
            "\n[upstreams.{name}]\nservers = [\"{}\"]\nsecret = \"{secret}\"\n{wait}\n",
            local(port)
        )
    };
    let sections = format!(
        "\n[metrics]\nlisten = \"127.0.0.1:0\"\n{}{}{}",
        upstream_section(&[local(fr.signed)], ""),
        group("branch", fr.other_secret, BRANCH_SECRET),
        // The default group's server, with a secret it does not know: it stays silent.
        group("stale", fr.signed, BRANCH_SECRET),
    ) + &group("spare", fr.signed, UPSTREAM_SECRET);
    let srv = start(
        &slapd,
        &sections,
        &[
            client("vpn", "127.0.0.1", INLINE_UPSTREAM),
            client(
                "branch-vpn",
                "127.0.0.2",
                &format!("{INLINE_UPSTREAM}\nupstream = \"branch\""),
            ),
            client(
                "old-vpn",
                "127.0.0.3",
                &format!("{INLINE_UPSTREAM}\nupstream = \"stale\""),
            ),
        ],
    );
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    let login = |bind: &str| inline_login(&srv, bind, ALICE_UP, &codes);
    assert_eq!(code(&login("127.0.0.1")), "Access-Accept");
    let r = login("127.0.0.2");
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
    let r = login("127.0.0.3");
    assert_eq!(code(&r), "Access-Reject", "{r}");
    let reason = newest(&srv, "alice")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("no upstream stale server answered")
            && reason.contains("no reply within 300 ms"),
        "{reason}"
    );
    // The silence is the stale group's alone: the default group's view of the same server
    // is that it answers.
    let m = prometheus_parse(&http_get(srv.metrics_addr(), "/metrics").2);
    let answering = |group: &str, port: u16| {
        m[&format!(
            "radmfa_upstream_answering{{group={group},server={}}}",
            local(port)
        )]
    };
    assert_eq!(answering("default", fr.signed), 1.0, "{m:?}");
    assert_eq!(answering("branch", fr.other_secret), 1.0, "{m:?}");
    assert_eq!(answering("stale", fr.signed), 0.0, "{m:?}");
    assert_eq!(code(&login("127.0.0.1")), "Access-Accept");

    let out = srv.cli(&["config", "check", "--connect"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "the stale group fails:\n{text}");
    for (line, verdict) in [
        (format!("upstream {}:", local(fr.signed)), "ok "),
        (
            format!("upstream branch {}:", local(fr.other_secret)),
            "ok ",
        ),
        (format!("upstream stale {}:", local(fr.signed)), "FAIL"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(verdict) && l.contains(&line)),
            "{verdict} {line}\n{text}"
        );
    }
    assert!(
        text.contains("client \"branch-vpn\": ") && text.contains("[upstreams.branch]"),
        "{text}"
    );
    assert!(
        text.contains("warning: upstream spare: no [[client]] uses [upstreams.spare]"),
        "{text}"
    );
}

/// An inline client refuses an enrolled user who typed no code without sending the field
/// upstream (it would count against the account's lockout there): the servers are asked
/// about a made-up name instead, every time, so the refusal takes their time for a name
/// they do not know, and fails as every login does while they are silent. On a no_reply
/// client an enrolled name then meets the same silence as an unknown one (a quick Reject
/// would list the enrolled to anyone, without a password).
#[test]
fn a_no_code_refusal_asks_about_a_made_up_name_and_fails_with_the_servers() {
    let fr = upstream_users();
    let slapd = directory();
    let relay = LossyRelay::start(fr.signed, 0);
    let srv = start(
        &slapd,
        &upstream_section(&[local(relay.port)], "timeout_ms = 400"),
        &[client(
            "vpn",
            "127.0.0.1",
            &format!("{INLINE_UPSTREAM}\non_backend_failure = \"no_reply\""),
        )],
    );
    srv.enroll("alice", &[]);
    for _ in 0..2 {
        let r = send(&srv, "127.0.0.1", "alice", "not-her-password", None);
        assert_eq!(code(&r), "Access-Reject", "{r}");
        assert_eq!(
            newest(&srv, "alice")["reason"].as_str(),
            Some("no code found in the password field")
        );
    }
    let log = fr.log();
    assert_eq!(
        log.matches("User-Name = \"radmfa-timing-check\"").count(),
        2,
        "each refusal asked about the made-up name:\n{log}"
    );
    assert!(
        !log.contains("User-Name = \"alice\""),
        "alice's field went upstream:\n{log}"
    );

    relay.silence();
    for user in ["alice", "nobody"] {
        let r = pyrad(
            srv.port(),
            SECRET,
            &[
                "--user",
                user,
                "--password",
                "not-her-password",
                "--timeout",
                "6",
            ],
        );
        // Silence, not a reply pyrad dropped (it does that to a badly signed one too):
        // past the request deadline, and the log says it was left unanswered.
        assert_eq!(code(&r), "timeout", "{user}: {r}\n{}", srv.log());
        assert!(srv.left_unanswered(user), "{}", srv.log());
    }
}

/// No `[ldap]` at all, as Duo's proxy runs with only a `radius_client`: the upstream server
/// vouches for the user, who is known by name; the token and the lockout live in radmfa's
/// store as usual. `config check` says so, and `--connect --user` needs no directory.
/// `[users] strip_domains` makes `alice@corp.example.org` the same user, while the upstream
/// server gets the name as typed.
#[test]
fn without_a_directory_the_upstream_server_vouches_for_the_user() {
    let fr = upstream_users();
    let slapd = directory();
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    o.extra = format!(
        "\n[users]\nstrip_domains = [\"corp.example.org\"]\n[totp]\nwindow = {WINDOW}\n{}{}{}",
        upstream_section(&[local(fr.signed)], "pass_through = [\"Class\"]"),
        client("vpn", "127.0.0.1", INLINE_UPSTREAM),
        client("prompting-vpn", "127.0.0.2", "primary = \"upstream\""),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = common::radmfa::write_config(dir.path(), &o);
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("[ldap]").expect("the harness writes [ldap]");
    let end = start + text[start..].find("\n[").unwrap() + 1;
    let (ldap_section, without) = (
        text[start..end].to_string(),
        format!("{}{}", &text[..start], &text[end..]),
    );
    std::fs::write(&config, &without).unwrap();
    let srv = Server::start_with(dir, config);

    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), WINDOW);
    let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(
        attribute(&r, "Class"),
        Some(&serde_json::json!([hex(b"nps-vpn-policy")]))
    );
    // Through a prompt too.
    let r1 = send(&srv, "127.0.0.2", "alice", ALICE_UP, None);
    assert_eq!(code(&r1), "Access-Challenge", "{r1}");
    let r2 = send(
        &srv,
        "127.0.0.2",
        "alice",
        &codes.next(),
        Some(r1["state"].as_str().unwrap()),
    );
    assert_eq!(code(&r2), "Access-Accept", "{r2}");
    // The upstream server still decides the password, and the code is still required.
    let r = inline_login(&srv, "127.0.0.1", ALICE_PW, &codes);
    assert_eq!(code(&r), "Access-Reject", "{r}");
    let r = send(&srv, "127.0.0.1", "alice", ALICE_UP, None);
    assert_eq!(code(&r), "Access-Reject", "no code: {r}");
    // Her domain is taken off for radmfa (her token, her audit rows), not for the upstream
    // server, which has her under that name too.
    let typed = "alice@corp.example.org";
    let r = send(
        &srv,
        "127.0.0.1",
        typed,
        &format!("{ALICE_UP},{}", codes.next()),
        None,
    );
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(newest(&srv, "alice")["result"].as_str(), Some("accept"));
    // carol is known upstream and has no token: the client's no_factor policy (reject).
    let r = send(&srv, "127.0.0.2", "carol", "carol-upstream-pw", None);
    assert_eq!(code(&r), "Access-Reject", "{r}");
    assert_eq!(
        newest(&srv, "carol")["reason"].as_str(),
        Some("no second factor enrolled")
    );

    let out = srv.cli(&["config", "check", "--connect", "--user", typed]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ldap:   none"), "{text}");
    assert!(
        text.contains("users:  corp.example.org taken off names"),
        "{text}"
    );
    assert!(!text.contains("ldap://"), "no directory is probed: {text}");
    assert!(text.contains("user alice: 1 token(s) enrolled"), "{text}");
    assert!(
        text.contains(
            "strip_domains lists UPN suffix(es) corp.example.org with a password checked \
             elsewhere (client(s) vpn, prompting-vpn"
        ),
        "{text}"
    );

    // A reload brings the directory in, with a client that checks passwords there; and a
    // reload takes it out again.
    let ldap_client = client("ldap-vpn", "127.0.0.3", "");
    reload_with(&srv, &format!("{without}\n{ldap_section}{ldap_client}"));
    let r = send(&srv, "127.0.0.3", "alice", ALICE_PW, None);
    assert_eq!(
        code(&r),
        "Access-Challenge",
        "the directory's password: {r}"
    );
    reload_with(&srv, &without);
    let r = inline_login(&srv, "127.0.0.1", ALICE_UP, &codes);
    assert_eq!(code(&r), "Access-Accept", "{r}");
    assert!(
        srv.log().contains("reload: 2 [[client]] entries"),
        "{}",
        srv.log()
    );
}

/// An upstream server that answers with an Access-Challenge (an OTP server asking one user
/// for a next code or a new PIN): refused as a Reject is, on a `no_reply` client too, and
/// asked once however often the NAS resends. It was taken for an outage: the NAS heard
/// nothing (and counted radmfa dead), and each resend sent the password upstream again.
#[test]
fn an_upstream_challenge_is_a_reject_even_where_outages_get_no_reply() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let slapd = directory();
    let upstream = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    upstream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = upstream.local_addr().unwrap().port();
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let secret = UPSTREAM_SECRET.as_bytes();
        loop {
            let Ok((n, from)) = upstream.recv_from(&mut buf) else {
                continue;
            };
            let Ok(req) = radmfa::radius::decode_request(&buf[..n], secret, false) else {
                continue;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let reply = radmfa::radius::Reply::challenge(b"up".to_vec(), "Enter the next code");
            let raw = radmfa::radius::encode_reply(&req, &reply, secret);
            let _ = upstream.send_to(&raw, from);
        }
    });
    let keys = format!("{INLINE_UPSTREAM}\non_backend_failure = \"no_reply\"");
    let srv = start(
        &slapd,
        &upstream_section(&[local(port)], ""),
        &[client("vpn", "127.0.0.1", &keys)],
    );
    srv.enroll("alice", &[]);
    // One request and a resend of it (same identifier and authenticator), as a NAS sends.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(srv.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let (pkt, _) = AccessRequestBuilder::new(7, "alice")
        .password(format!("{ALICE_UP},000000").as_bytes())
        .build(SECRET.as_bytes());
    let mut codes = Vec::new();
    for _ in 0..2 {
        sock.send(&pkt).unwrap();
        let mut buf = [0u8; 4096];
        let got = sock.recv(&mut buf).ok();
        codes.push(got.and_then(|n| parse_reply(&buf[..n])).map(|r| r.code));
    }
    assert_eq!(
        codes,
        [Some(3), Some(3)],
        "Access-Reject, twice\n{}",
        srv.log()
    );
    let rec = newest(&srv, "alice");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("answered with an Access-Challenge"),
        "{rec}"
    );
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "asked upstream more than once"
    );
}

/// An upstream server that takes the password and does not answer in time (slow rather
/// than down: FreeRADIUS's reject_delay, a loaded NPS), on a `no_reply` client: the NAS
/// hears nothing, and its retransmits get the same silence instead of sending the password
/// upstream again, where each try could count towards the account's lockout (three NAS
/// tries reached the server as three authentications). A new request is asked afresh.
#[test]
fn a_no_reply_clients_retransmits_do_not_send_the_password_upstream_again() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    let slapd = directory();
    let upstream = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    upstream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = upstream.local_addr().unwrap().port();
    // Each distinct request (identifier and authenticator): radmfa's own resend within
    // one try is the same request, as a server's duplicate detection sees it.
    let asked = Arc::new(Mutex::new(HashSet::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, _)) = upstream.recv_from(&mut buf) else {
                continue;
            };
            if n >= 20 {
                seen.lock().unwrap().insert(buf[1..20].to_vec());
            }
        }
    });
    let keys = format!("{INLINE_UPSTREAM}\non_backend_failure = \"no_reply\"");
    let srv = start(
        &slapd,
        &upstream_section(&[local(port)], "timeout_ms = 300"),
        &[client("vpn", "127.0.0.1", &keys)],
    );
    srv.enroll("alice", &[]);
    let (pkt, _) = AccessRequestBuilder::new(7, "alice")
        .password(format!("{ALICE_UP},000000").as_bytes())
        .build(SECRET.as_bytes());
    let replies =
        common::radmfa::as_a_nas_resending(srv.addr, &pkt, 3, Duration::from_millis(1000));
    assert_eq!(replies, [None, None, None], "{}", srv.log());
    assert_eq!(
        asked.lock().unwrap().len(),
        1,
        "the password went upstream again for a retransmit\n{}",
        srv.log()
    );
    // The user's next login is a new request, and goes upstream.
    let (again, _) = AccessRequestBuilder::new(8, "alice")
        .password(format!("{ALICE_UP},000000").as_bytes())
        .build(SECRET.as_bytes());
    let replies =
        common::radmfa::as_a_nas_resending(srv.addr, &again, 1, Duration::from_millis(1000));
    assert_eq!(replies, [None], "answered");
    assert_eq!(asked.lock().unwrap().len(), 2, "{}", srv.log());
}
