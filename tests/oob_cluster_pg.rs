//! Out-of-band logins across two radmfa nodes on one real PostgreSQL (issue: any node
//! finishes any login): an SMS code sent by node A is accepted on node B, and a phone call
//! started on A is not started again when the NAS retransmits the request to B; and more
//! SMS logins at once than the store pool has connections do not starve it; and a node
//! stalled while it holds the send-slot locks holds up others' SMS logins only briefly.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::frozen::signal;
use common::oob_env::{client, delivery, directory, ALICE_PW, BOB_PW, DIRECTORY_MOBILE};
use common::peers::pyrad;
use common::postgres::PgCluster;
use common::provider_standin::{Script, Standin};
use common::radmfa::{write_config, Options, Server, SECRET};
use common::slapd::Slapd;
use radmfa::radius::client::{parse_reply, AccessRequestBuilder};

/// A node on `url`, sharing `key_file` with the other nodes, with its own callback port.
fn pg_node(slapd: &Slapd, standin: &Standin, url: &str, key_file: &Path, clients: &str) -> Server {
    pg_node_with(slapd, standin, url, key_file, clients, "")
}

/// [`pg_node`] with lines added to `[store]`.
fn pg_node_with(
    slapd: &Slapd,
    standin: &Standin,
    url: &str,
    key_file: &Path,
    clients: &str,
    store: &str,
) -> Server {
    let mut o = Options::new(&slapd.url);
    // Longer than the request deadline: a directory frozen while several test clients
    // start (more_sms_logins_at_once…) must not fail its first login at the harness's 1 s.
    o.ldap_timeout_ms = 10_000;
    o.clients = Vec::new();
    o.extra = format!("{}{clients}", delivery(standin, ""));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &o);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[store]\npath = \"radmfa.db\"\nkey_file = \"radmfa.key\"\n",
        &format!("[store]\ntype = \"postgres\"\nurl = \"{url}\"\nkey_file = {key_file:?}\n{store}"),
    );
    assert!(
        text.contains("type = \"postgres\""),
        "store section rewritten"
    );
    std::fs::write(&path, text).unwrap();
    Server::start_with(dir, path)
}

fn two_nodes(
    slapd: &Slapd,
    standin: &Standin,
    clients: &str,
) -> (PgCluster, tempfile::TempDir, Server, Server) {
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("radmfa.key");
    let a = pg_node(slapd, standin, &url, &key, clients);
    let b = pg_node(slapd, standin, &url, &key, clients);
    (pg, keys, a, b)
}

/// `code` typed at the prompt `state` (hex), sent to `node`.
fn answer(node: &Server, code: &str, state: &str) -> serde_json::Value {
    pyrad(
        node.port(),
        SECRET,
        &["--user", "alice", "--password", code, "--state", state],
    )
}

/// The value of a reply's first attribute of type `t`.
fn attribute(reply: &radmfa::radius::client::ParsedReply, t: u8) -> Option<Vec<u8>> {
    reply
        .attributes
        .iter()
        .find(|(ty, _)| *ty == t)
        .map(|(_, v)| v.clone())
}

/// More SMS logins at once than the store's pool has connections: each claim settles its
/// transaction before it reads the lockout on another connection, so none waits for a
/// second connection while holding one (which would end in the pool's acquire timeout).
#[test]
fn more_sms_logins_at_once_than_pool_connections_all_get_their_code() {
    let slapd = directory();
    let standin = Standin::start();
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let keys = tempfile::tempdir().unwrap();
    let clients = client("vpn", "127.0.0.1", "methods = [\"sms\"]");
    let node = pg_node_with(
        &slapd,
        &standin,
        &url,
        &keys.path().join("radmfa.key"),
        &clients,
        "pool_size = 2\n",
    );
    let port = node.port();
    // The four must be at the store together: the directory is frozen until each waits on
    // it, then let go (started as separate processes, they would otherwise scatter by tens
    // of milliseconds, each login taking a few, and run one after another).
    slapd.signal("-STOP");
    let replies: Vec<serde_json::Value> = std::thread::scope(|s| {
        let logins: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(move || {
                    pyrad(
                        port,
                        SECRET,
                        &["--user", "alice", "--password", ALICE_PW, "--timeout", "10"],
                    )
                })
            })
            .collect();
        slapd.wait_for_unread_requests(4);
        slapd.signal("-CONT");
        logins.into_iter().map(|l| l.join().unwrap()).collect()
    });
    for r in &replies {
        assert_eq!(r["code"], "Access-Challenge", "{r}\n{}", node.log());
    }
    assert_eq!(standin.sms().len(), 4);
}

/// A prompt's answer takes its attempt (a write, which opens the request's transaction on
/// a pooled connection) and then reads the lockout: with `pool_size = 1` that read waited
/// for a second connection until the acquire timeout, and every answer was refused. Now a
/// request's reads go through its open transaction. TOTP and SMS answers, and four TOTP
/// answers at once on a pool of two.
#[test]
fn answers_to_prompts_need_one_pool_connection() {
    let slapd = directory();
    let standin = Standin::start();
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("radmfa.key");
    let clients = format!(
        "{}{}",
        client("vpn", "127.0.0.1", "methods = [\"totp\"]"),
        client("sms", "127.0.0.2", "methods = [\"sms\"]")
    );
    let node = pg_node_with(&slapd, &standin, &url, &key, &clients, "pool_size = 1\n");
    let seed = node.enroll("alice", &[]);
    let port = node.port();
    let first_round = |bind: &str| {
        let r = pyrad(
            port,
            SECRET,
            &["--bind", bind, "--user", "alice", "--password", ALICE_PW],
        );
        assert_eq!(r["code"], "Access-Challenge", "{r}\n{}", node.log());
        r["state"].as_str().unwrap().to_string()
    };
    let answer = |bind: &str, state: &str, code: &str| {
        pyrad(
            port,
            SECRET,
            &[
                "--bind",
                bind,
                "--user",
                "alice",
                "--password",
                code,
                "--state",
                state,
            ],
        )
    };
    common::peers::clear_of_step_boundary(5);
    let state = first_round("127.0.0.1");
    let code = common::peers::totp(&seed, common::peers::now(), &[]);
    let r = answer("127.0.0.1", &state, &code);
    assert_eq!(r["code"], "Access-Accept", "TOTP: {r}\n{}", node.log());

    let state = first_round("127.0.0.2");
    let code = standin.sms().last().expect("an SMS").code();
    let r = answer("127.0.0.2", &state, &code);
    assert_eq!(r["code"], "Access-Accept", "SMS: {r}\n{}", node.log());
    drop(node);

    // Four answers at once on a pool of two (wrong codes: each takes its attempt, reads
    // the lockout and counts a failure), all answered by the prompt, none by the pool's
    // timeout.
    let url = pg.fresh_database();
    let node = pg_node_with(&slapd, &standin, &url, &key, &clients, "pool_size = 2\n");
    node.enroll("alice", &[]);
    let port = node.port();
    let states: Vec<String> = (0..4)
        .map(|_| {
            let r = pyrad(port, SECRET, &["--user", "alice", "--password", ALICE_PW]);
            assert_eq!(r["code"], "Access-Challenge", "{r}\n{}", node.log());
            r["state"].as_str().unwrap().to_string()
        })
        .collect();
    // Sent back to back from one socket, so the four are in the server together (four
    // client processes would scatter by tens of milliseconds and rarely overlap).
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for (i, state) in states.iter().enumerate() {
        let (pkt, _) = AccessRequestBuilder::new(40 + i as u8, "alice")
            .password(b"000000")
            .state(&hex::decode(state).unwrap())
            .build(SECRET.as_bytes());
        sock.send_to(&pkt, node.addr).unwrap();
    }
    let mut buf = [0u8; 4096];
    for _ in 0..4 {
        let n = retry_interrupted(|| sock.recv(&mut buf)).expect("every answer answered");
        let reply = parse_reply(&buf[..n]).unwrap();
        assert_eq!(reply.code, 3, "Access-Reject\n{}", node.log());
    }
    assert!(
        !node.log().contains("pool timed out"),
        "an answer waited for a second connection:\n{}",
        node.log()
    );
    // A Reject comes from a pool timeout too: each of the four must have been a code
    // checked and found wrong (its audit record says so), not a store failure.
    let checked = node
        .audit_json("alice")
        .into_iter()
        .filter(|r| {
            r["result"] == "reject"
                && r["reason"]
                    .as_str()
                    .is_some_and(|w| w.contains("wrong code"))
        })
        .count();
    assert_eq!(checked, 4, "{:#?}", node.audit_json("alice"));
}

#[test]
fn sms_code_sent_by_node_a_is_accepted_on_node_b() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = client("vpn", "127.0.0.1", "methods = [\"sms\"]");
    let (_pg, _keys, a, b) = two_nodes(&slapd, &standin, &clients);

    let r1 = pyrad(
        a.port(),
        SECRET,
        &["--user", "alice", "--password", ALICE_PW],
    );
    assert_eq!(r1["code"], "Access-Challenge", "{r1}");
    let sent = standin.sms();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, DIRECTORY_MOBILE);
    let state = r1["state"].as_str().unwrap();
    let code = sent[0].code();
    let r2 = pyrad(
        b.port(),
        SECRET,
        &["--user", "alice", "--password", &code, "--state", state],
    );
    assert_eq!(
        r2["code"], "Access-Accept",
        "node B checks node A's code: {r2}"
    );
    // The State (and with it the SMS transaction its code belongs to) is spent on every
    // node: the same answer sent to node A is refused.
    let r3 = pyrad(
        a.port(),
        SECRET,
        &["--user", "alice", "--password", &code, "--state", state],
    );
    assert_eq!(r3["code"], "Access-Reject", "{r3}");
    assert_eq!(standin.sms().len(), 1, "no second SMS");
}

/// A text the provider took on node A's request without confirming it in time: a copy of
/// the request to node B (a NAS failing over) is told the same ("not confirmed"), sends no
/// second text, and the late code finishes the login at B's prompt.
#[test]
fn a_text_not_confirmed_on_node_a_is_told_so_by_node_b() {
    let slapd = directory();
    let standin = Standin::start();
    standin.set_sms_delay(Duration::from_millis(3000));
    let clients = client("vpn", "127.0.0.1", "methods = [\"sms\"]");
    let (_pg, _keys, a, b) = two_nodes(&slapd, &standin, &clients);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let (pkt, _) = AccessRequestBuilder::new(7, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    let mut buf = [0u8; 4096];
    let mut prompt_of = |node: &Server| {
        sock.send_to(&pkt, ("127.0.0.1", node.port())).unwrap();
        let n = sock.recv(&mut buf).expect("a reply");
        let reply = parse_reply(&buf[..n]).unwrap();
        assert_eq!(reply.code, 11, "{reply:?}");
        let text = |t: u8| attribute(&reply, t).unwrap();
        (String::from_utf8(text(18)).unwrap(), text(24))
    };
    let (on_a, _) = prompt_of(&a);
    let (on_b, state) = prompt_of(&b);
    for said in [&on_a, &on_b] {
        assert!(said.contains("was not confirmed. If it comes"), "{said}");
    }
    let sent = standin.wait_sms(2, Duration::from_secs(3));
    assert_eq!(sent.len(), 1, "one text for both copies: {sent:?}");
    let state = hex::encode(state);
    let r = answer(&b, &sent[0].code(), &state);
    assert_eq!(r["code"], "Access-Accept", "{r}\n{}", b.log());

    // A copy that reaches node B while node A still waits on the provider (a NAS failing
    // over at once): B waits for A's outcome and tells the same, not "sent" before anyone
    // knew (review).
    let (pkt, _) = AccessRequestBuilder::new(8, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send_to(&pkt, ("127.0.0.1", a.port())).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    sock.send_to(&pkt, ("127.0.0.1", b.port())).unwrap();
    for _ in 0..2 {
        let n = sock.recv(&mut buf).expect("a reply from each node");
        let reply = parse_reply(&buf[..n]).unwrap();
        let said = String::from_utf8_lossy(&attribute(&reply, 18).unwrap_or_default()).to_string();
        assert!(
            reply.code == 11 && said.contains("was not confirmed. If it comes"),
            "{said:?} {reply:?}"
        );
    }
    assert_eq!(standin.wait_sms(3, Duration::from_secs(3)).len(), 2);
}

/// A copy on node B that runs out of its own time waiting for node A's text to be heard of
/// (a slow provider) does not fail open on a `provider_failure = "allow"` client, nor close
/// the text: nothing said the provider failed. Before, B let the login in on the password
/// and A's genuine code was then refused as "already used" (review).
#[test]
fn a_copy_that_waits_out_its_time_does_not_fail_open() {
    let slapd = directory();
    let standin = Standin::start();
    // Taken at 1.9 s (under [twilio] timeout_ms 2000), after B's time to decide at 3 s of
    // deadline (less the audit's reserve and a margin: about 1.6 s) has run out.
    standin.set_sms_delay(Duration::from_millis(1900));
    let clients = client(
        "vpn",
        "127.0.0.1",
        "methods = [\"sms\"]\nprovider_failure = \"allow\"",
    );
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("radmfa.key");
    let node = || {
        let mut o = Options::new(&slapd.url);
        o.request_deadline_ms = 3000;
        o.clients = Vec::new();
        o.extra = format!("{}{clients}", delivery(&standin, ""));
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), &o);
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "[store]\npath = \"radmfa.db\"\nkey_file = \"radmfa.key\"\n",
            &format!("[store]\ntype = \"postgres\"\nurl = \"{url}\"\nkey_file = {key:?}\n"),
        );
        std::fs::write(&path, text).unwrap();
        Server::start_with(dir, path)
    };
    let (a, b) = (node(), node());
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let (pkt, _) = AccessRequestBuilder::new(9, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send_to(&pkt, ("127.0.0.1", a.port())).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    sock.send_to(&pkt, ("127.0.0.1", b.port())).unwrap();
    let mut buf = [0u8; 4096];
    let mut states = Vec::new();
    for _ in 0..2 {
        let n = sock.recv(&mut buf).expect("a reply from each node");
        let reply = parse_reply(&buf[..n]).unwrap();
        assert_eq!(reply.code, 11, "no fail-open: {reply:?}\n{}", b.log());
        states.push(hex::encode(attribute(&reply, 24).unwrap()));
    }
    let sent = standin.wait_sms(1, Duration::from_secs(3));
    // The text came: its code finishes the login at either node's prompt.
    let r = answer(&a, &sent[0].code(), &states[0]);
    assert_eq!(r["code"], "Access-Accept", "{r}\n{}", a.log());
}

#[test]
fn call_started_on_node_a_is_not_started_again_by_a_retransmit_to_node_b() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(2500)),
    );
    let clients = client(
        "vpn",
        "127.0.0.1",
        "methods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 20",
    );
    let (_pg, _keys, a, b) = two_nodes(&slapd, &standin, &clients);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (pkt, _) = AccessRequestBuilder::new(77, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send_to(&pkt, a.addr).unwrap();
    // The NAS times out on A and retransmits the same request to B.
    std::thread::sleep(Duration::from_millis(1000));
    sock.send_to(&pkt, b.addr).unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..2 {
        let (n, src) = retry_interrupted(|| sock.recv_from(&mut buf)).expect("both nodes answer");
        assert_eq!(parse_reply(&buf[..n]).unwrap().code, 2, "Accept from {src}");
    }
    assert_eq!(standin.calls().len(), 1, "one call across both nodes");
    // One logon, two records: B's says it followed A's call (it read as a second plain
    // accept).
    let audit = b.audit_json("alice");
    let accepts: Vec<_> = audit.iter().filter(|r| r["result"] == "accept").collect();
    assert_eq!(accepts.len(), 2, "{audit:#?}");
    let followed = |r: &&&serde_json::Value| {
        r["reason"].as_str().is_some_and(|w| {
            w == "followed the call of an earlier copy of this request: approved on the call"
        })
    };
    assert_eq!(accepts.iter().filter(followed).count(), 1, "{audit:#?}");
}

/// A rolling restart stops node A (SIGTERM) while a held call's login waits on it, and the
/// NAS has sent the same request to node B too (its failover retransmit), which follows the
/// call. A leaves the call ringing and its request unanswered; the keypress, reaching B
/// (the callbacks' load balancer sends it to a live node), is B's Accept. Before, A closed
/// the call as failed at its stop and hung it up: both nodes answered "The sign-in was
/// interrupted", B's record saying radmfa stopped though B never did.
#[test]
fn a_node_stopped_during_a_held_call_leaves_it_to_the_node_following_it() {
    let (env, mut a, b, sock, pkt) = held_call_on_node_a(81);
    sock.send_to(&pkt, b.addr).unwrap();
    // B follows the call as soon as its copy gets there; the stop comes after that.
    assert!(b.log_shows("following the call"), "{}", b.log());
    a.stop();
    left_to_the_other_node(&env, &a, &b, &sock);
}

/// The same stop with no copy of the request on B yet: A leaves it unanswered, and the
/// NAS's retransmit that reaches B then follows the call A placed. Before, A's Reject was
/// on record and B answered the retransmit with it ("repeat of a decided request").
#[test]
fn a_retransmit_after_a_node_stopped_during_a_held_call_follows_the_call() {
    let (env, mut a, b, sock, pkt) = held_call_on_node_a(82);
    a.stop();
    sock.send_to(&pkt, b.addr).unwrap();
    assert!(b.log_shows("following the call"), "{}", b.log());
    left_to_the_other_node(&env, &a, &b, &sock);
}

/// The peers of a held call across two nodes: the directory, the stand-in, PostgreSQL and
/// the key file's directory.
struct HeldCallEnv {
    _slapd: Slapd,
    standin: Standin,
    _pg: PgCluster,
    _keys: tempfile::TempDir,
}

/// Two nodes, a client holding calls, and alice's request (Identifier `id`) sent to node A
/// from the returned socket, once A has placed its call (whose callee never presses a key
/// by itself).
fn held_call_on_node_a(id: u8) -> (HeldCallEnv, Server, Server, std::net::UdpSocket, Vec<u8>) {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let clients = client(
        "rdg",
        "127.0.0.1",
        "methods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 20",
    );
    let (pg, keys, a, b) = two_nodes(&slapd, &standin, &clients);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let (pkt, _) = AccessRequestBuilder::new(id, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send_to(&pkt, a.addr).unwrap();
    let start = Instant::now();
    while standin.calls().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let env = HeldCallEnv {
        _slapd: slapd,
        standin,
        _pg: pg,
        _keys: keys,
    };
    (env, a, b, sock, pkt)
}

/// Node A has stopped during the call that B now follows: the callee's # reaches B, and
/// the NAS gets B's Accept and nothing from A; the call was not hung up, and A's record
/// says it left the login to the others.
fn left_to_the_other_node(env: &HeldCallEnv, a: &Server, b: &Server, sock: &std::net::UdpSocket) {
    let call = &env.standin.calls()[0];
    // Posted to B's listener, as the load balancer in front of the nodes would.
    let at_b = call
        .gather_action()
        .replace(&callbacks_base(a), &callbacks_base(b));
    let res = env
        .standin
        .post_callback(&at_b, Standin::gather_params(call, ""), None);
    assert!(res.body.contains("approved"), "{res:?}\n{}", b.log());
    let mut buf = [0u8; 4096];
    let (n, from) = retry_interrupted(|| sock.recv_from(&mut buf)).expect("B answers");
    assert_eq!(from, b.addr, "A answered at its stop:\n{}", a.log());
    assert_eq!(
        parse_reply(&buf[..n]).unwrap().code,
        2,
        "Accept from B\n{}",
        b.log()
    );
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(sock.recv_from(&mut buf).is_err(), "one reply only");
    assert!(env.standin.ended_calls().is_empty(), "the call was hung up");
    let audit = b.audit_json("alice");
    let results: Vec<_> = audit.iter().map(|r| r["result"].as_str()).collect();
    assert!(
        results.contains(&Some("accept")) && results.contains(&Some("unanswered")),
        "{audit:#?}"
    );
    let left = audit.iter().find(|r| r["result"] == "unanswered").unwrap();
    assert!(
        left["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("left to the other nodes")),
        "{left}"
    );
    assert!(
        a.log().contains("left ringing for the other nodes"),
        "{}",
        a.log()
    );
}

/// A node's `[callbacks] public_url`, as its config file has it.
fn callbacks_base(node: &Server) -> String {
    let text = std::fs::read_to_string(&node.config).unwrap();
    let at = text
        .find("public_url = \"")
        .expect("[callbacks] public_url")
        + 14;
    text[at..].split('"').next().unwrap().to_string()
}

/// Node A stalls (SIGSTOP, as a paused VM) right after it took the send-slot locks of an SMS
/// login: its database session sits idle in transaction holding `nas:vpn` and the number's
/// lock. Bob's SMS login through the same NAS on node B waits for those locks. The session
/// default idle-in-transaction timeout is the longest request deadline plus a second (31 s
/// here, with a client holding calls for 30 s), far past Bob's 4 s deadline; the
/// send-slot transaction's own short timeout ends A's session after 2 s, and Bob gets his
/// code.
#[test]
fn node_stalled_holding_send_slot_locks_blocks_other_sms_logins_only_briefly() {
    let slapd = directory();
    let standin = Standin::start();
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("radmfa.key");
    let clients = format!(
        "{}{}",
        client("vpn", "127.0.0.1", "methods = [\"sms\"]"),
        client(
            "calls",
            "127.0.0.2",
            "methods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 30",
        )
    );
    let a = pg_node(&slapd, &standin, &url, &key, &clients);
    let b = pg_node(&slapd, &standin, &url, &key, &clients);
    // On one connection kept open, not a psql started per look: A's session holds its
    // locks for 2 s only (its idle-in-transaction timeout), and on a loaded machine a few
    // psql starts took longer than that, so the test never saw them held.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let watcher = std::cell::RefCell::new(
        rt.block_on(<sqlx::PgConnection as sqlx::Connection>::connect(&url))
            .unwrap(),
    );
    let advisory = |granted: bool| -> usize {
        let n: i64 = rt
            .block_on(
                sqlx::query_scalar(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted = $1",
                )
                .bind(granted)
                .fetch_one(&mut *watcher.borrow_mut()),
            )
            .unwrap();
        n as usize
    };
    let wait_until = |what: &str, ok: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !ok() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // To stop A between its locks: a session of ours holds alice's (her key sorts after
    // the NAS's, the number's and the daily ones), so A takes those four and waits on hers.
    let mut holder = pg.session(&db);
    holder.run("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('user:alice', 0));");
    wait_until("our lock on user:alice", &|| advisory(true) == 1);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (pkt, _) = AccessRequestBuilder::new(1, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send_to(&pkt, a.addr).unwrap();
    wait_until("node A to wait on user:alice", &|| advisory(false) == 1);
    let stalled = Stalled::stop(a.pid());
    // A's session now takes alice's lock and goes idle in transaction with all five.
    holder.run("COMMIT;");
    wait_until("node A to hold its five locks", &|| {
        advisory(false) == 0 && advisory(true) == 5
    });

    let r = pyrad(
        b.port(),
        SECRET,
        &["--user", "bob", "--password", BOB_PW, "--timeout", "10"],
    );
    assert_eq!(
        r["code"],
        "Access-Challenge",
        "bob's SMS login through the NAS whose lock the stalled node held: {r}\n{}\n{}",
        b.log(),
        pg.log()
    );
    assert!(
        pg.log()
            .contains("terminating connection due to idle-in-transaction timeout"),
        "the stalled node's session was ended by its timeout:\n{}",
        pg.log()
    );
    // How long node B spent on bob's login, by its own clock from the request's arrival
    // to its audit record (not this test's, which counts pyrad's start-up and a busy
    // machine): the stalled session's locks held it up for their 2 s timeout, not for the
    // session default (31 s), nor up to bob's 4 s deadline.
    let audit = b.audit_json("bob");
    let challenges: Vec<_> = audit
        .iter()
        .filter(|r| r["result"] == "challenge")
        .collect();
    assert_eq!(challenges.len(), 1, "{audit:#?}");
    let latency = challenges[0]["latency_ms"]
        .as_i64()
        .unwrap_or_else(|| panic!("no latency_ms: {}", challenges[0]));
    assert!(latency < 3000, "bob's login took {latency} ms: {audit:#?}");
    let sent = standin.sms();
    assert_eq!(sent.len(), 1, "only bob's code went out: {sent:?}");
    // Node A continued, so that its own shutdown runs.
    stalled.resume();
}

/// A blocking socket read, again when a signal interrupted it: with a read timeout set,
/// Linux never restarts it (signal(7)), and the tests in this file run beside one that
/// stops and continues a node (SIGCHLD each time).
fn retry_interrupted<T>(mut read: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match read() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A process stopped with SIGSTOP. [`Stalled::resume`] continues it and asserts that it
/// could; if the test fails first, dropping this continues it as best it can (a panic in a
/// drop during unwinding would abort the test binary), so that the node's own shutdown
/// still runs.
struct Stalled(Option<u32>);

impl Stalled {
    fn stop(pid: u32) -> Stalled {
        signal(pid, "-STOP");
        Stalled(Some(pid))
    }

    fn resume(mut self) {
        if let Some(pid) = self.0.take() {
            signal(pid, "-CONT");
        }
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // Best effort: the outcome is not checked here.
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
    }
}
