//! Several radmfa nodes on one PostgreSQL: any node finishes any login.
//!
//! Each test runs two real `radmfa` processes (different ports, same PostgreSQL database,
//! same key file copied from the first node, as docs/ha.md tells an operator to do) in front
//! of one real slapd, and talks to them with pyrad (enforce_ma), FreeRADIUS's radclient or raw
//! UDP, with codes from oathtool. PostgreSQL is a private cluster in a temp dir
//! (tests/common/postgres.rs).
//!
//! SMS codes and phone calls across nodes are in `oob_cluster_pg.rs`.

mod common;
#[path = "cluster/load.rs"]
mod load;

use std::path::Path;
use std::time::{Duration, Instant};

use common::freeradius::{FreeRadius, UpstreamUser, UPSTREAM_SECRET};
use common::peers::{now, prometheus_parse, pyrad, radclient, totp};
use common::postgres::{PgCluster, PsqlSession};
use common::radmfa::{http_get, write_config, Follower, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};
use common::small_disk::SmallDisk;

const ALICE_PW: &str = "alice-Secret-pw";

fn directory() -> Slapd {
    Slapd::start(&[
        LdapUser::new("alice", ALICE_PW),
        LdapUser::new("bob", "bob-Secret-pw"),
    ])
}

/// The generated test config, pointed at PostgreSQL: `[store]` replaced, the node named.
fn pg_config(dir: &Path, slapd: &Slapd, url: &str, name: &str, extra: &str) -> std::path::PathBuf {
    pg_config_tuned(dir, slapd, url, name, extra, |_| {})
}

/// [`pg_config`] with the harness's options changed by `tune` first.
fn pg_config_tuned(
    dir: &Path,
    slapd: &Slapd,
    url: &str,
    name: &str,
    extra: &str,
    tune: impl Fn(&mut Options),
) -> std::path::PathBuf {
    let mut o = Options::new(&slapd.url);
    o.extra = extra.to_string();
    tune(&mut o);
    let config = write_config(dir, &o);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, common::radmfa::on_postgres(&text, url, Some(name))).unwrap();
    config
}

/// Node A starts first (creating the key file and the schema), then node B gets a copy of
/// A's key file, as an operator would scp it.
pub struct Pair {
    pub a: Server,
    pub b: Server,
}

pub fn pair(slapd: &Slapd, url: &str, extra: &str) -> Pair {
    pair_with_key(slapd, url, extra, None)
}

/// As [`pair`], with node A given an existing key file (a migrated deployment's).
pub fn pair_with_key(slapd: &Slapd, url: &str, extra: &str, key: Option<&Path>) -> Pair {
    pair_tuned(slapd, url, extra, key, |_| {})
}

/// As [`pair_with_key`], both nodes' options changed by `tune`.
pub fn pair_tuned(
    slapd: &Slapd,
    url: &str,
    extra: &str,
    key: Option<&Path>,
    tune: impl Fn(&mut Options),
) -> Pair {
    let dir_a = tempfile::tempdir().unwrap();
    if let Some(key) = key {
        std::fs::copy(key, dir_a.path().join("radmfa.key")).unwrap();
    }
    let config_a = pg_config_tuned(dir_a.path(), slapd, url, "node-a", extra, &tune);
    let a = Server::start_with(dir_a, config_a);
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::copy(
        a.dir.path().join("radmfa.key"),
        dir_b.path().join("radmfa.key"),
    )
    .expect("node A created the key file");
    let config_b = pg_config_tuned(dir_b.path(), slapd, url, "node-b", extra, &tune);
    let b = Server::start_with(dir_b, config_b);
    Pair { a, b }
}

fn password(srv: &Server, user: &str, pw: &str) -> serde_json::Value {
    pyrad(srv.port(), SECRET, &["--user", user, "--password", pw])
}

fn answer(srv: &Server, user: &str, code: &str, state: &str) -> serde_json::Value {
    pyrad(
        srv.port(),
        SECRET,
        &["--user", user, "--password", code, "--state", state],
    )
}

fn code_of(v: &serde_json::Value) -> &str {
    v["code"].as_str().unwrap()
}

fn state_of(v: &serde_json::Value) -> String {
    v["state"].as_str().expect("State in challenge").to_string()
}

/// A code that is not the current one (nor the neighbouring steps').
fn wrong_code(seed: &str) -> String {
    let t = now();
    let near: Vec<String> = (-2..=2).map(|k| totp(seed, t + 30 * k, &[])).collect();
    (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[test]
fn challenge_from_node_a_is_answered_on_node_b() {
    let slapd = directory();
    let pg = PgCluster::start();
    let nodes = pair(&slapd, &pg.url(), "");
    // Enrolled through node B's CLI; node A sees the token (sealed with the shared key).
    let seed = nodes.b.enroll("alice", &[]);
    // An admin watching from node A sees both nodes' logins.
    let follow = Follower::start(&nodes.a.config, &["--json", "--user", "alice"]);

    // So that the next step's code, used below, stays in the window (see its doc).
    common::peers::clear_of_step_boundary(5);
    let r1 = password(&nodes.a, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let r2 = answer(&nodes.b, "alice", &totp(&seed, now(), &[]), &state_of(&r1));
    assert_eq!(
        code_of(&r2),
        "Access-Accept",
        "A's State answered on B: {r2}"
    );
    assert_eq!(r2["first_attribute"], 80, "Message-Authenticator first");

    // The same the other way round, with FreeRADIUS's radclient on raw State bytes.
    let host_b = nodes.b.addr.to_string();
    let host_a = nodes.a.addr.to_string();
    let r3 = radclient(
        &host_b,
        SECRET,
        &format!(
            "User-Name = \"alice\", User-Password = \"{ALICE_PW}\", Message-Authenticator = 0x00"
        ),
    );
    assert_eq!(r3.code, "Access-Challenge", "{}", r3.output);
    let state = r3.state.clone().unwrap();
    let next = totp(&seed, now() + 30, &[]);
    let ask_a = |code: &str| {
        radclient(
            &host_a,
            SECRET,
            &format!(
                "User-Name = \"alice\", User-Password = \"{code}\", State = {state}, \
                 Message-Authenticator = 0x00"
            ),
        )
    };
    assert_eq!(
        ask_a(&next).code,
        "Access-Accept",
        "B's State answered on A"
    );
    // The State was consumed on A: B (or A) refuses it now.
    assert_eq!(ask_a(&next).code, "Access-Reject", "State is single-use");
    // Refused for the State, not only for the code it carried (which is used too).
    assert!(
        nodes
            .a
            .audit_json("alice")
            .iter()
            .any(|r| r["reason"] == "unknown, used or expired State"),
        "the State itself was not refused"
    );

    // Both nodes wrote to the one audit log.
    let audit = nodes.a.audit_json("alice");
    let by = |node: &str, result: &str| {
        audit
            .iter()
            .filter(|r| r["server_name"] == node && r["result"] == result)
            .count()
    };
    assert_eq!(by("node-a", "challenge"), 1, "{audit:#?}");
    assert_eq!(by("node-b", "accept"), 1, "{audit:#?}");
    assert_eq!(by("node-b", "challenge"), 1, "{audit:#?}");
    assert_eq!(by("node-a", "accept"), 1, "{audit:#?}");

    let mut seen = Vec::new();
    for _ in 0..5 {
        let r = follow.next();
        let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        seen.push(format!("{} {}", field("server_name"), field("result")));
    }
    assert!(seen[0].ends_with(" enroll"), "{seen:?}");
    assert_eq!(
        seen[1..],
        [
            "node-a challenge",
            "node-b accept",
            "node-b challenge",
            "node-a accept"
        ],
        "{seen:?}"
    );
    assert!(follow.stop().success());

    // The table says which node answered; one node's records, and a count per node.
    let text = |args: &[&str]| {
        let out = nodes.a.cli(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let table = text(&["audit", "--user", "alice", "--result", "accept"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header[5..7], ["NAS", "SERVER"], "{table}");
    let servers: Vec<&str> = lines
        .map(|l| {
            if l.contains("node-a") {
                "node-a"
            } else if l.contains("node-b") {
                "node-b"
            } else {
                l
            }
        })
        .collect();
    assert_eq!(servers, ["node-a", "node-b"], "{table}");
    // Records of one node alone still say which: the column is there on a shared store.
    let one = text(&[
        "audit", "--user", "alice", "--result", "accept", "--limit", "1",
    ]);
    let header: Vec<&str> = one.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[5..7], ["NAS", "SERVER"], "{one}");
    assert!(one.lines().nth(1).unwrap().contains("node-a"), "{one}");
    let only_b = text(&["audit", "--user", "alice", "--server", "node-b", "--json"]);
    let results: Vec<String> = only_b
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|r| assert_eq!(r["server_name"], "node-b", "{r}"))
        .map(|r| r["result"].as_str().unwrap().to_string())
        .collect();
    // Newest first; the enrollment was made through node B's CLI.
    assert_eq!(results, ["challenge", "accept", "enroll"], "{only_b}");
    let report = text(&["audit", "--user", "alice", "--count-by", "server", "--json"]);
    let totals: Vec<(String, u64)> = report
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_string(),
                g["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        totals.contains(&("node-a".into(), 3)) && totals.contains(&("node-b".into(), 3)),
        "{report}"
    );
}

/// A client whose password is checked by an upstream RADIUS server (Debian's FreeRADIUS):
/// round 1 on node A keeps the upstream Access-Accept's `pass_through` attributes with the
/// challenge in PostgreSQL, and node B, answering round 2, hands them to the NAS.
#[test]
fn upstream_attributes_carried_from_node_a_reach_the_nas_through_node_b() {
    let slapd = directory();
    let pg = PgCluster::start();
    let fr = FreeRadius::start(&[UpstreamUser {
        name: "alice",
        password: "alice-upstream-pw",
        reply: "Class = \"nps-vpn-policy\", Framed-IP-Address = 10.8.0.7",
    }]);
    let extra = format!(
        "\n[upstream]\nservers = [\"127.0.0.1:{port}\"]\nsecret = \"{UPSTREAM_SECRET}\"\n\
         pass_through = [\"Class\", \"Framed-IP-Address\"]\n\n[[client]]\nname = \"vpn\"\n\
         address = \"127.0.0.2\"\nsecret = \"{SECRET}\"\nprimary = \"upstream\"\n",
        port = fr.signed
    );
    let nodes = pair(&slapd, &pg.url(), &extra);
    let seed = nodes.a.enroll("alice", &[]);
    let ask = |srv: &Server, password: &str, state: Option<&str>| {
        let mut args = vec![
            "--bind",
            "127.0.0.2",
            "--user",
            "alice",
            "--password",
            password,
        ];
        if let Some(s) = state {
            args.extend(["--state", s]);
        }
        pyrad(srv.port(), SECRET, &args)
    };

    let r1 = ask(&nodes.a, "alice-upstream-pw", None);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    assert!(r1["attributes"].get("Class").is_none(), "{r1}");
    let r2 = ask(&nodes.b, &totp(&seed, now(), &[]), Some(&state_of(&r1)));
    assert_eq!(
        code_of(&r2),
        "Access-Accept",
        "A's challenge answered on B: {r2}"
    );
    let class: String = b"nps-vpn-policy"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        r2["attributes"]["Class"],
        serde_json::json!([class]),
        "{r2}"
    );
    assert_eq!(
        r2["attributes"]["Framed-IP-Address"],
        serde_json::json!(["10.8.0.7"]),
        "{r2}"
    );
    // The directory's password is not the upstream's, on either node.
    let r = ask(&nodes.b, ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
}

/// `radmfa audit --follow` outlives a PostgreSQL restart: it says the store failed, asks
/// again each second, and shows the logins made after the restart. While the database is
/// down, a serving node's log says why its pool has no connection (connection refused),
/// once, rather than only sqlx's "pool timed out" on each refused login.
#[test]
fn audit_follow_outlives_a_postgres_restart() {
    let slapd = directory();
    let pg = PgCluster::start();
    let nodes = pair(&slapd, &pg.url(), "");
    nodes.b.enroll("alice", &[]);
    let follow = Follower::start(&nodes.a.config, &["--json", "--user", "alice"]);
    assert_eq!(follow.next()["result"], "enroll");

    pg.stop();
    assert!(
        follow.stderr_shows("asking again every second", Duration::from_secs(15)),
        "no store failure reported: {}",
        follow.stderr()
    );
    // The first login may meet a pooled connection the stop closed; the next ones find the
    // pool empty and wait out its acquire timeout.
    for _ in 0..3 {
        let r = password(&nodes.b, "alice", ALICE_PW);
        assert_ne!(code_of(&r), "Access-Challenge", "{r}");
    }
    let diagnosed = nodes.b.log_lines_at_least(1, |l| {
        l.contains("a direct connection fails too") && l.to_lowercase().contains("refused")
    });
    assert_eq!(diagnosed, 1, "{}", nodes.b.log());
    pg.start_again();
    assert!(
        follow.stderr_shows("the store answers again", Duration::from_secs(15)),
        "{}",
        follow.stderr()
    );
    // The nodes reconnect by themselves; the first login after the restart may still meet
    // a dropped connection, so a few tries.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = password(&nodes.b, "alice", ALICE_PW);
        if code_of(&r) == "Access-Challenge" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no challenge after the restart: {r}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Records of the refused tries come first, if any; the challenge shows up.
    let challenge = (0..10)
        .map(|_| follow.next())
        .find(|r| r["result"] == "challenge")
        .expect("the challenge after the restart");
    assert_eq!(challenge["server_name"], "node-b");
    assert!(follow.stop().success());
}

/// The database stalls (every PostgreSQL process stopped: a paused VM, a cut link) and
/// comes back: a login meanwhile is refused, and the node's log says the database was slow
/// or out of reach, not that every connection of store.pool_size was busy (one request
/// was in flight), nor the direct try's own wait as the pool's.
#[test]
fn a_stalled_database_is_not_blamed_on_the_pool_size() {
    let slapd = directory();
    let pg = PgCluster::start();
    let nodes = pair(&slapd, &pg.url(), "");
    nodes.b.enroll("alice", &[]);
    let postmaster: i32 = std::fs::read_to_string(pg.data().join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let children = || -> Vec<i32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                    // The parent is the 4th field, after the name in parentheses.
                    st.rsplit_once(") ")
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
                        == Some(postmaster)
                })
            })
            .collect()
    };
    let all: Vec<i32> = std::iter::once(postmaster).chain(children()).collect();
    assert!(all.len() > 3, "{all:?}");
    let signal = |sig| {
        for &pid in &all {
            // SAFETY: kill(2) on a process id; no memory is involved.
            unsafe { libc::kill(pid, sig) };
        }
    };
    // The pool pings a connection before lending it only when it has been idle 100 ms or
    // more (store/postgres/connect.rs): one the node's start used just now would take the
    // login's statement to the stopped database, where it waits out the request deadline
    // with no pool timeout to explain (CI met that when the login came 95 ms after start).
    std::thread::sleep(Duration::from_millis(300));
    signal(libc::SIGSTOP);
    // Stopped for sure before the login (see frozen::signal).
    for &pid in &all {
        common::frozen::wait_stopped(pid as u32);
    }
    let r = password(&nodes.b, "alice", ALICE_PW);
    // The direct try started at the pool's timeout and waits up to 5 s: back before that.
    std::thread::sleep(Duration::from_millis(500));
    signal(libc::SIGCONT);
    assert_ne!(code_of(&r), "Access-Challenge", "{r}");
    let said = |l: &str| l.contains("slow or out of reach, and answers again");
    assert_eq!(nodes.b.log_lines_at_least(1, said), 1, "{}", nodes.b.log());
    let log = nodes.b.log();
    assert!(
        !log.contains("were busy") && !log.contains("5000 ms"),
        "{log}"
    );
    let line = log.lines().find(|l| said(l)).unwrap();
    assert!(
        line.contains("within 1000 ms") && line.contains("of 16 open"),
        "{line}"
    );
}

/// A DBA freezes writes (`ALTER DATABASE … SET default_transaction_read_only = on`) and ends
/// the node's sessions: the node reconnects at once, to read-only sessions. Logins are
/// refused (never accepted) and the log names the setting; once the DBA resets it, logins
/// work again within seconds, without a restart. Before, the read-only sessions were taken
/// like any other and kept, and every login failed with "cannot execute UPDATE in a
/// read-only transaction" until sqlx's connection lifetime (30 min) ran out.
#[test]
fn a_database_made_read_only_and_writable_again_serves_again() {
    let slapd = directory();
    let pg = PgCluster::start();
    // A database of its own: the DBA's statements run from `postgres`, which stays writable.
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    let node = node_with_health(&slapd, &url);
    let seed = node.enroll("alice", &[]);
    let r = password(&node, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");

    pg.psql(
        "postgres",
        &format!("ALTER DATABASE {db} SET default_transaction_read_only = on"),
    );
    let end_sessions = format!(
        "SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity \
         WHERE datname = '{db}' AND application_name = 'radmfa'"
    );
    assert_eq!(pg.psql("postgres", &end_sessions), "t");
    let r = password(&node, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(
        node.log_shows("default_transaction_read_only is on (set for the database"),
        "the log names the setting: {}",
        node.log()
    );
    let (status, _, body) = http_get(node.metrics_addr(), "/health");
    assert!(status.contains(" 503 "), "{status}{body}");

    pg.psql(
        "postgres",
        &format!("ALTER DATABASE {db} RESET default_transaction_read_only"),
    );
    logs_in_again(&node, &seed);
}

/// A node started while PostgreSQL is down waits for it, saying so, and serves once it is
/// back: it exited (status 2) after one try, and systemd's start limit (five in a minute)
/// then kept it down after an outage of some 20 s, though a running node rides one out. A
/// read-only database (a failover under way) is waited for too; a wrong password is not.
#[test]
fn a_node_started_while_postgres_is_down_waits_for_it() {
    let slapd = directory();
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    pg.stop();
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &url, "node-late", "");
    let node = std::thread::scope(|s| {
        s.spawn(|| {
            // Past the first try's 5 s of connection attempts (the migrating pool's floor),
            // so the node has given up once and waits.
            std::thread::sleep(Duration::from_secs(8));
            pg.start_again();
        });
        Server::start_with(dir, config.clone())
    });
    let waited = node.log_lines_at_least(1, |l| {
        l.contains("the PostgreSQL store is not available yet")
            && l.contains("refused")
            && l.contains("asking again in 1 s")
    });
    assert!(waited >= 1, "{}", node.log());
    let seed = node.enroll("alice", &[]);
    assert!(
        full_login(&node, &node, "alice", ALICE_PW, &seed),
        "{}",
        node.log()
    );
    // The next node gets this one's key, as an operator copies it.
    let key = std::fs::read(node.dir.path().join("radmfa.key")).unwrap();
    drop(node);

    // Read-only: waited for until it is writable again.
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE {db} SET default_transaction_read_only = on"),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("radmfa.key"), key).unwrap();
    std::fs::set_permissions(
        dir.path().join("radmfa.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config = pg_config(dir.path(), &slapd, &url, "node-late", "");
    let node = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(3));
            pg.psql(
                "postgres",
                &format!("ALTER DATABASE {db} RESET default_transaction_read_only"),
            );
        });
        Server::start_with(dir, config)
    });
    assert!(
        node.log_shows("default_transaction_read_only is on"),
        "{}",
        node.log()
    );
    // Round 1 writes its prompt: the store takes writes.
    let r = password(&node, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", node.log());

    // A wrong password is no outage: the start ends, naming it.
    let dir = tempfile::tempdir().unwrap();
    let wrong = format!(
        "postgres://postgres:wrong-password@{}",
        url.split_once('@').unwrap().1
    );
    let config = pg_config(dir.path(), &slapd, &wrong, "node-wrong", "");
    let out = serve_until_it_ends(&config, 20);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("not available yet"), "{err}");
}

/// `radmfa serve` on `config` for a start that must end by itself: under `timeout`, so one
/// that serves (or waits) anyway is stopped after `secs` and fails its test on status 124.
fn serve_until_it_ends(config: &Path, secs: u32) -> std::process::Output {
    std::process::Command::new("timeout")
        .arg(secs.to_string())
        .arg(common::radmfa::bin())
        .arg("--config")
        .arg(config)
        .arg("serve")
        .output()
        .unwrap()
}

/// A server certificate the node cannot verify (`sslmode = "verify-full"` without the CA
/// that signed it) ends the start, naming it: it was taken for an outage and retried for
/// good, the unit active in systemd and answering nothing. With the CA, the node serves.
#[test]
fn a_node_refusing_the_postgres_certificate_ends_its_start() {
    let slapd = directory();
    let pg = PgCluster::start_with_tls();
    let url = pg.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &url, "node-tls", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let store = "key_file = \"radmfa.key\"\n";
    assert!(text.contains(store), "{text}");
    std::fs::write(
        &config,
        text.replace(store, &format!("{store}sslmode = \"verify-full\"\n")),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = serve_until_it_ends(&config, 30);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        !err.contains("not available yet") && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(25), "{err}");
    // The CA that signed it: served.
    let ca = pg.ca_file.clone().unwrap();
    std::fs::write(
        &config,
        text.replace(
            store,
            &format!("{store}sslmode = \"verify-full\"\nssl_root_cert = {ca:?}\n"),
        ),
    )
    .unwrap();
    let node = Server::start_with(dir, config);
    node.enroll("alice", &[]);
    let r = password(&node, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", node.log());
}

/// Writes frozen for the whole server by ALTER SYSTEM and a reload, which turns the node's
/// open sessions read-only under it: a connection that comes back read-only is closed, and
/// the new ones are refused, so the log names the setting. Before, the pooled connections
/// were kept, every login failed on them, and nothing said why beyond the failed statement.
#[test]
fn a_server_made_read_only_by_alter_system_is_named_and_served_again() {
    let slapd = directory();
    let pg = PgCluster::start();
    let node = node_with_health(&slapd, &pg.url());
    let seed = node.enroll("alice", &[]);
    let r = password(&node, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");

    // ALTER SYSTEM writes a file, not the database: a read-only session may run it.
    let reload = || pg.psql("postgres", "SELECT pg_reload_conf()");
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET default_transaction_read_only = on",
    );
    reload();
    let said = "default_transaction_read_only is on (set in postgresql.conf or by ALTER SYSTEM)";
    // The first logins may meet the pool's connections made before, each closed once it
    // comes back read-only; then no connection is to be had, and the diagnosis says why.
    for _ in 0..10 {
        let r = password(&node, "alice", ALICE_PW);
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
        if node.log().contains(said) {
            break;
        }
    }
    assert!(
        node.log_shows(said),
        "the log names the setting: {}",
        node.log()
    );

    pg.psql(
        "postgres",
        "ALTER SYSTEM RESET default_transaction_read_only",
    );
    reload();
    logs_in_again(&node, &seed);
}

/// One node on `url` with a metrics listener (`/health`).
fn node_with_health(slapd: &Slapd, url: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let metrics = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let config = pg_config(dir.path(), slapd, url, "node-a", metrics);
    Server::start_with(dir, config)
}

/// The database was made writable again just now: alice logs in within 5 s, and `/health`
/// says 200 (its probe runs at most once per 2 s) within 10 s.
fn logs_in_again(node: &Server, seed: &str) {
    let reset = Instant::now();
    while !full_login(node, node, "alice", ALICE_PW, seed) {
        assert!(
            reset.elapsed() < Duration::from_secs(5),
            "no login 5 s after the reset: {}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    while !http_get(node.metrics_addr(), "/health").0.contains(" 200 ") {
        assert!(reset.elapsed() < Duration::from_secs(10), "{}", node.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// After a database restart, a burst of logins refills the serving pool up to the
/// database's `max_connections` before the audit batches' own connection is made again.
/// The batches borrow an idle serving connection; before, no record could be written and
/// every login on the node was refused ("its audit record could not be written") for good,
/// while the node held idle connections, until it was restarted.
#[test]
fn audit_records_are_written_when_the_serving_pool_holds_every_connection() {
    let slapd = directory();
    let mut pg = PgCluster::start();
    let node = node_with_two_connections(&slapd, &pg);
    node.enroll("alice", &[]);
    assert_eq!(
        code_of(&password(&node, "alice", ALICE_PW)),
        "Access-Challenge"
    );
    pg.stop();
    // The node's two serving connections are all the database takes.
    pg.start_again_with("-c max_connections=2 -c superuser_reserved_connections=0");
    for login in alice_logins_in_the_background(&node, 6) {
        login.join().unwrap();
    }
    // Logins after the burst, one at a time: the first may still meet a connection the
    // restart closed.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = password(&node, "alice", ALICE_PW);
        if code_of(&r) == "Access-Challenge" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no challenge with the database full: {r}\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The database's max_connections reached, by another client's session here: logins that
/// find the node's one connection busy wait for a second one the database refuses, and the
/// log says why. It said the pool "has no connection to the database, and a direct
/// connection fails too", while the node held one and answered other logins (HA red team).
#[test]
fn a_database_out_of_connection_slots_is_said_to_be() {
    let slapd = directory();
    let mut pg = PgCluster::start();
    let node = node_with_two_connections(&slapd, &pg);
    node.enroll("alice", &[]);
    pg.stop();
    pg.start_again_with("-c max_connections=2 -c superuser_reserved_connections=0");
    let db = PgCluster::database_of(&pg.url());
    let _other_client = pg.session(&db);
    let until = Instant::now() + Duration::from_secs(20);
    while !node.log().contains("its max_connections is reached") && Instant::now() < until {
        for login in alice_logins_in_the_background(&node, 4) {
            login.join().unwrap();
        }
    }
    let log = node.log();
    assert!(
        log.contains("the database refuses new connections: its max_connections is reached")
            && log.contains("store.pool_size = 2")
            && !log.contains("a direct connection fails too"),
        "{log}"
    );
}

/// The role's password changed in the database (a rotation not yet in radmfa.toml) and its
/// connections ended: the pool's new connections are refused at once (SQLSTATE 28P01, no
/// pool timeout), logins that need the store are refused, and the log says why, once. The
/// cause was only in the audit lines before (review).
#[test]
fn a_rotated_database_password_is_said_to_be() {
    let slapd = directory();
    let pg = PgCluster::start();
    pg.psql(
        "postgres",
        "CREATE ROLE node_a LOGIN SUPERUSER PASSWORD 'first'",
    );
    let (_, at) = pg
        .url()
        .split_once('@')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    let url = format!("postgres://node_a:first@{at}");
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &url, "node-a", "");
    let node = Server::start_with(dir, config);
    node.enroll("alice", &[]);
    let r = password(&node, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    pg.psql(
        "postgres",
        "ALTER ROLE node_a PASSWORD 'second'; \
         SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'node_a'",
    );
    let said = "the password in store.url is not the role's";
    for _ in 0..3 {
        let r = password(&node, "alice", ALICE_PW);
        assert_ne!(code_of(&r), "Access-Challenge", "{r}\n{}", node.log());
        assert_ne!(code_of(&r), "Access-Accept", "{r}\n{}", node.log());
    }
    let log = node.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(said)).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("ERROR") && lines[0].contains("28P01") && !lines[0].contains("second"),
        "{}",
        lines[0]
    );
    // An outage right after is said too: the two lines' 30 s apart are kept apart (the
    // line about the refused password held back the outage's, review).
    pg.psql("postgres", "ALTER ROLE node_a PASSWORD 'first'");
    pg.stop();
    for _ in 0..3 {
        let r = password(&node, "alice", ALICE_PW);
        assert_ne!(code_of(&r), "Access-Challenge", "{r}");
    }
    let diagnosed = node.log_lines_at_least(1, |l| l.contains("a direct connection fails too"));
    assert_eq!(diagnosed, 1, "{}", node.log());
}

/// One node on `pg` with `store.pool_size = 2`.
fn node_with_two_connections(slapd: &Slapd, pg: &PgCluster) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), slapd, &pg.url(), "node-a", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let store = "key_file = \"radmfa.key\"\n";
    assert!(text.contains(store), "{text}");
    let text = text.replacen(store, &format!("{store}pool_size = 2\n"), 1);
    std::fs::write(&config, text).unwrap();
    Server::start_with(dir, config)
}

/// `n` logins of alice's password through `node`, each from a thread of its own.
fn alice_logins_in_the_background(
    node: &Server,
    n: usize,
) -> Vec<std::thread::JoinHandle<serde_json::Value>> {
    let port = node.port();
    (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                pyrad(port, SECRET, &["--user", "alice", "--password", ALICE_PW])
            })
        })
        .collect()
}

/// A DBA's `LOCK TABLE` on the token tables in an open transaction, taken once this
/// returns; `ROLLBACK;` on the session lifts it. Returns the database's name and the session.
fn lock_token_tables(pg: &PgCluster) -> (String, PsqlSession) {
    let db = PgCluster::database_of(&pg.url());
    let mut dba = pg.session(&db);
    dba.run("BEGIN; LOCK TABLE tokens, user_state IN ACCESS EXCLUSIVE MODE;");
    let granted = "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' \
                   AND mode = 'AccessExclusiveLock' AND granted \
                   AND relation IN ('tokens'::regclass, 'user_state'::regclass)";
    wait_for_psql(pg, &db, granted, "2", "the lock taken");
    (db, dba)
}

/// Waits up to 10 s for `query` on `db` to answer `want`; `what` names it if it never does.
fn wait_for_psql(pg: &PgCluster, db: &str, query: &str, want: &str, what: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while pg.psql(db, query) != want {
        assert!(std::time::Instant::now() < until, "waited for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every connection of the pool held up by a lock (a DBA's `LOCK TABLE` in an open
/// transaction): the next login finds no free connection, and the log says all of
/// store.pool_size were busy and names locks, as the database itself takes a connection.
/// Once the lock goes, logins go through again.
#[test]
fn a_pool_held_up_by_a_lock_is_said_to_be_all_busy() {
    let slapd = directory();
    let pg = PgCluster::start();
    let node = node_with_two_connections(&slapd, &pg);
    node.enroll("alice", &[]);
    let (_db, mut dba) = lock_token_tables(&pg);
    // Two logins take the pool's two connections and wait on the lock; the third waits
    // for the pool (store.connect_timeout_ms, 1000 ms) and gets nothing.
    let logins = alice_logins_in_the_background(&node, 3);
    let said = |l: &str| l.contains("were busy");
    let seen = node.log_lines_at_least(1, said);
    dba.run("ROLLBACK;");
    for login in logins {
        login.join().unwrap();
    }
    assert_eq!(seen, 1, "{}", node.log());
    let log = node.log();
    let line = log.lines().find(|l| said(l)).unwrap();
    assert!(
        line.contains("all 2 of store.pool_size were busy")
            && line.contains("locks")
            && line.contains("within 1000 ms"),
        "{line}"
    );
    assert!(!log.contains("slow or out of reach"), "{log}");
    let r = password(&node, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
}

/// Audit records have a connection of their own: with every pooled connection held up by
/// a lock, a wrong password (whose only write is its record) is still refused and
/// recorded, where before its record waited for the pool, timed out and was lost.
#[test]
fn a_full_pool_does_not_lose_the_audit_records() {
    let slapd = directory();
    let pg = PgCluster::start();
    let node = node_with_two_connections(&slapd, &pg);
    node.enroll("alice", &[]);
    let (db, mut dba) = lock_token_tables(&pg);
    let logins = alice_logins_in_the_background(&node, 2);
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                   AND backend_type = 'client backend'";
    wait_for_psql(
        &pg,
        &db,
        waiting,
        "2",
        "both pooled connections to wait on the lock",
    );
    let bob = password(&node, "bob", "not-bobs-password");
    dba.run("ROLLBACK;");
    for login in logins {
        login.join().unwrap();
    }
    bob_refused_and_recorded(&node, &bob);
}

/// bob's wrong password was refused, and its record (its only write) is there, once.
fn bob_refused_and_recorded(node: &Server, bob: &serde_json::Value) {
    assert_eq!(code_of(bob), "Access-Reject", "{bob}");
    let log = node.log();
    assert!(!log.contains("could not be written"), "{log}");
    let audit = node.audit_json("bob");
    assert_eq!(audit.len(), 1, "{audit:#?}\n{log}");
    assert_eq!(audit[0]["result"], "reject", "{audit:#?}");
    assert_eq!(audit[0]["reason"], "bad password", "{audit:#?}");
}

/// The audit writer's connection is cut (an admin's `pg_terminate_backend`) while its batch
/// waits for a DBA's lock on the table: the batch is written again on a new connection, and
/// the record of the answered request is there. Before, the batch failed whole while the
/// database was up, and its records (a wrong code among them, evidence of guessing) were
/// lost.
#[test]
fn an_audit_batch_whose_connection_is_cut_is_written_again() {
    let slapd = directory();
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &url, "node-a", "");
    let node = Server::start_with(dir, config);
    // The lock holds the batch's INSERT where it can be found, and cut, on purpose.
    let mut dba = pg.session(&db);
    dba.run("BEGIN; LOCK TABLE audit IN ACCESS EXCLUSIVE MODE;");
    let granted = "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' \
                   AND mode = 'AccessExclusiveLock' AND granted \
                   AND relation = 'audit'::regclass";
    wait_for_psql(&pg, &db, granted, "1", "the lock taken");
    let port = node.port();
    // A wrong password: the record is its only write.
    let bob = std::thread::spawn(move || {
        pyrad(
            port,
            SECRET,
            &["--user", "bob", "--password", "not-bobs-password"],
        )
    });
    let writer = "application_name = 'radmfa' AND wait_event_type = 'Lock'";
    let waiting = format!("SELECT count(*) FROM pg_stat_activity WHERE {writer}");
    wait_for_psql(
        &pg,
        &db,
        &waiting,
        "1",
        "the audit insert to wait on the lock",
    );
    let cut =
        format!("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {writer}");
    assert_eq!(pg.psql(&db, &cut), "1");
    dba.run("ROLLBACK;");
    bob_refused_and_recorded(&node, &bob.join().unwrap());
}

/// A record the store refuses (here a trigger; a full disk, a revoked grant) is counted in
/// radmfa_audit_records_lost_total, which a SOC can alert on: before, only a rate-limited
/// error line said that evidence was lost.
#[test]
fn an_audit_record_the_store_refuses_is_counted_as_lost() {
    let slapd = directory();
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    let node = node_with_health(&slapd, &url);
    let lost = || {
        prometheus_parse(&http_get(node.metrics_addr(), "/metrics").2)
            ["radmfa_audit_records_lost_total{}"]
    };
    assert_eq!(lost(), 0.0);
    pg.psql(
        &db,
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql \
         AS $$BEGIN RAISE EXCEPTION 'no audit records today'; END$$",
    );
    pg.psql(
        &db,
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit \
         FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
    );
    let bob = password(&node, "bob", "not-bobs-password");
    assert_eq!(code_of(&bob), "Access-Reject", "{bob}");
    assert_eq!(lost(), 1.0, "{}", node.log());
}

/// Answers sent all at once for one user queue for the user's turn without holding
/// database connections: before, each took its prompt's attempt (a write, which holds a
/// pooled connection until the request commits) and then waited for the turn, so a burst
/// for one user (one stolen password) took every connection, and other users' logins and
/// audit records failed with "pool timed out".
#[test]
fn one_users_burst_of_answers_leaves_the_pool_to_the_others() {
    use radmfa::radius::client::{parse_reply, AccessRequestBuilder};
    let slapd = directory();
    let pg = PgCluster::start();
    let node = node_with_two_connections(&slapd, &pg);
    let seed = node.enroll("alice", &[]);
    node.enroll("bob", &[]);
    let wrong = wrong_code(&seed);
    const ANSWERS: u8 = 40;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", node.port())).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut ask = |raw: &[u8]| {
        sock.send(raw).unwrap();
        let n = sock.recv(&mut buf).expect("answered");
        parse_reply(&buf[..n]).unwrap()
    };
    let states: Vec<Vec<u8>> = (0..ANSWERS)
        .map(|id| {
            let (raw, _) = AccessRequestBuilder::new(id, "alice")
                .password(ALICE_PW.as_bytes())
                .build(SECRET.as_bytes());
            let reply = ask(&raw);
            assert_eq!(reply.code, 11, "Access-Challenge");
            reply.attributes.into_iter().find(|a| a.0 == 24).unwrap().1
        })
        .collect();
    for (id, state) in states.iter().enumerate() {
        let (raw, _) = AccessRequestBuilder::new(100 + id as u8, "alice")
            .password(wrong.as_bytes())
            .state(state)
            .build(SECRET.as_bytes());
        sock.send(&raw).unwrap();
    }
    // Bob logs in while alice's answers queue.
    let bob = password(&node, "bob", "bob-Secret-pw");
    for _ in 0..ANSWERS {
        let n = sock.recv(&mut buf).expect("every answer is answered");
        assert_eq!(parse_reply(&buf[..n]).unwrap().code, 3, "Access-Reject");
    }
    assert_eq!(code_of(&bob), "Access-Challenge", "{bob}\n{}", node.log());
    let log = node.log();
    assert!(!log.contains("pool timed out"), "{log}");
    assert!(!log.contains("could not be written"), "{log}");
    let results: Vec<_> = node
        .audit_json("bob")
        .iter()
        .map(|r| r["result"].clone())
        .collect();
    assert_eq!(results, ["challenge", "enroll"], "{}", node.log());
}

#[test]
fn code_accepted_on_a_is_refused_on_b() {
    let slapd = directory();
    let pg = PgCluster::start();
    let nodes = pair(&slapd, &pg.url(), "");
    let seed = nodes.a.enroll("alice", &[]);
    let code = totp(&seed, now(), &[]);

    let r1 = password(&nodes.a, "alice", ALICE_PW);
    let r2 = answer(&nodes.a, "alice", &code, &state_of(&r1));
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");

    // A NAS that failed over to B replays the code in a new login: refused.
    let r3 = password(&nodes.b, "alice", ALICE_PW);
    assert_eq!(code_of(&r3), "Access-Challenge", "{r3}");
    let r4 = answer(&nodes.b, "alice", &code, &state_of(&r3));
    assert_eq!(code_of(&r4), "Access-Reject", "replayed code on B: {r4}");
    let audit = nodes.b.audit_json("alice");
    assert_eq!(audit[0]["server_name"], "node-b", "{audit:#?}");
    assert_eq!(audit[0]["reason"], "code already used", "{audit:#?}");
    assert!(
        audit
            .iter()
            .all(|r| !(r["server_name"] == "node-b" && r["result"] == "accept")),
        "{audit:#?}"
    );
    // Refused for being used, not for being unknown: the step is recorded in the database.
    let step: i64 = pg
        .psql(
            "postgres",
            "SELECT last_step FROM tokens WHERE username = 'alice'",
        )
        .parse()
        .unwrap();
    assert!(step >= now() / 30 - 1, "last used step {step}");
}

/// A lock another node writes while this node checks the password is seen by this node's
/// code check. Node B reads the lockout, then waits on the (frozen) directory; the lock
/// lands meanwhile, as node A's wrong codes would write it; B's right inline code is
/// refused, not accepted on the lockout B read before.
#[test]
fn a_lock_from_another_node_during_the_password_check_stops_the_code() {
    let slapd = directory();
    let pg = PgCluster::start();
    let inline = format!(
        "\n[[client]]\nname = \"inline\"\naddress = \"127.0.0.2\"\nsecret = \"{SECRET}\"\n\
         otp_mode = \"inline\"\n"
    );
    // The directory stays frozen while psql runs: an LDAP timeout longer than the request
    // deadline, so that only the deadline could end the login, never the harness's 1 s.
    let nodes = pair_tuned(&slapd, &pg.url(), &inline, None, |o| {
        o.ldap_timeout_ms = 10_000
    });
    let seed = nodes.a.enroll("alice", &[]);
    slapd.signal("-STOP");
    let port = nodes.b.port();
    let login = std::thread::spawn(move || {
        let field = format!("{ALICE_PW},{}", totp(&seed, now(), &[]));
        pyrad(
            port,
            SECRET,
            &[
                "--bind",
                "127.0.0.2",
                "--user",
                "alice",
                "--password",
                &field,
                "--timeout",
                "10",
            ],
        )
    });
    // The login waits on the frozen directory (past its first lockout read) before the
    // lock lands.
    slapd.wait_for_unread_request();
    pg.psql(
        "postgres",
        &format!(
            "INSERT INTO user_state (username, failures, locked_until) VALUES ('alice', 5, {}) \
             ON CONFLICT (username) DO UPDATE SET failures = 5, locked_until = EXCLUDED.locked_until",
            now() + 900
        ),
    );
    slapd.signal("-CONT");
    let r = login.join().unwrap();
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", nodes.b.log());
    let rec = &nodes.b.audit_json("alice")[0];
    assert!(
        rec["reason"].as_str().unwrap().contains("locked"),
        "{rec}\n{}",
        nodes.b.log()
    );
}

#[test]
fn five_wrong_codes_over_both_nodes_lock_the_user_on_both() {
    let slapd = directory();
    let pg = PgCluster::start();
    let nodes = pair(&slapd, &pg.url(), "");
    let seed = nodes.a.enroll("alice", &[]);
    nodes.b.enroll("bob", &[]);
    let bad = wrong_code(&seed);

    // Wrong codes alternate A, B, A, B, A; the lockout threshold is 5 (the default).
    for i in 0..5 {
        let node = if i % 2 == 0 { &nodes.a } else { &nodes.b };
        let r1 = password(node, "alice", ALICE_PW);
        assert_eq!(code_of(&r1), "Access-Challenge", "attempt {i}: {r1}");
        let r2 = answer(node, "alice", &bad, &state_of(&r1));
        assert_eq!(code_of(&r2), "Access-Reject", "attempt {i}: {r2}");
    }
    // Locked on both nodes: the right password is refused before any code is asked for.
    for node in [&nodes.a, &nodes.b] {
        let r = password(node, "alice", ALICE_PW);
        assert_eq!(code_of(&r), "Access-Reject", "locked: {r}");
        assert!(r["state"].is_null());
    }
    let show = nodes.b.cli(&["user", "show", "alice", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).expect("user show --json");
    assert!(
        shown["locked_until"].as_i64().is_some_and(|t| t > now()),
        "{shown}"
    );
    // bob (enrolled too) is not affected: he gets his challenge.
    let bob = password(&nodes.a, "bob", "bob-Secret-pw");
    assert_eq!(code_of(&bob), "Access-Challenge", "{bob}");

    // Unlocked through node A's CLI, the login works on node B.
    assert!(nodes.a.cli(&["user", "unlock", "alice"]).status.success());
    let r1 = password(&nodes.b, "alice", ALICE_PW);
    let r2 = answer(&nodes.b, "alice", &totp(&seed, now(), &[]), &state_of(&r1));
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
}

#[test]
fn node_killed_mid_login_the_next_attempt_on_b_completes() {
    let slapd = directory();
    let pg = PgCluster::start();
    let Pair { a, b } = pair(&slapd, &pg.url(), "");
    let seed = a.enroll("alice", &[]);

    // 1. A sent the challenge, then died (kill -9). The NAS sends the code to B.
    // So that the next step's code, used below, stays in the window (see its doc).
    common::peers::clear_of_step_boundary(5);
    let r1 = password(&a, "alice", ALICE_PW);
    let state = state_of(&r1);
    drop(a); // Child::kill: SIGKILL, no chance to clean up
    let r2 = answer(&b, "alice", &totp(&seed, now(), &[]), &state);
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");

    // 2. A node dies with the password request in flight: the NAS times out and sends the
    // login to B, which completes it. In flight for sure: the directory is frozen until
    // C's search sits unread at it, and C is killed then, before any answer.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        b.dir.path().join("radmfa.key"),
        dir.path().join("radmfa.key"),
    )
    .unwrap();
    let config = pg_config(dir.path(), &slapd, &pg.url(), "node-c", "");
    let c = Server::start_with(dir, config);
    let sock = c.udp();
    let (pkt, _) = radmfa::radius::client::AccessRequestBuilder::new(7, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    slapd.signal("-STOP");
    sock.send(&pkt).unwrap();
    let sent_at = std::time::Instant::now();
    slapd.wait_for_unread_request();
    drop(c);
    slapd.signal("-CONT");
    sock.set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 4096];
    if let Ok(n) = sock.recv(&mut buf) {
        // Said in full: seen once under a loaded parallel run, not understood yet.
        panic!(
            "the killed node answered: code {} ({n} bytes) after {:?}",
            buf[0],
            sent_at.elapsed()
        );
    }
    let r3 = password(&b, "alice", ALICE_PW);
    assert_eq!(code_of(&r3), "Access-Challenge", "{r3}");
    let r4 = answer(&b, "alice", &totp(&seed, now() + 30, &[]), &state_of(&r3));
    assert_eq!(code_of(&r4), "Access-Accept", "{r4}");
}

#[test]
fn postgres_restart_under_load_fails_closed_and_recovers() {
    let users = LdapUser::generate(40);
    let slapd = Slapd::start(&users);
    let pg = PgCluster::start();
    // The load replays codes (a user's code works once per step), which would otherwise lock
    // every load user within a second; this test is about the database, not the lockout.
    let nodes = pair(&slapd, &pg.url(), "\n[lockout]\nthreshold = 1000000\n");
    let seeds: Vec<(String, String)> = users
        .iter()
        .map(|u| (u.uid.clone(), nodes.a.enroll(&u.uid, &[])))
        .collect();
    let report = load::restart_under_load(&nodes, &pg, &seeds);
    eprintln!("{report:#?}");

    assert_eq!(report.invalid_replies, 0, "every reply verifies");
    assert!(
        report.accepted_before > 0,
        "the load got Accepts before the stop"
    );
    assert_eq!(
        report.accepted_while_down, 0,
        "no Accept for a request sent and answered while PostgreSQL was down"
    );
    assert!(
        report.other_while_down.is_empty(),
        "nothing but Reject or silence while down: {report:#?}"
    );
    assert!(report.sent_while_down > 0, "the load ran while it was down");
    // Down means Reject (or no reply), and within the request deadline, not a hang.
    assert!(
        report.slowest_while_down < Duration::from_millis(4500),
        "slowest reply while down: {:?}",
        report.slowest_while_down
    );
    assert!(
        report.rejected_while_down > 0,
        "down gives Rejects: {report:#?}"
    );
    // Recovery by itself: the challenges issued before the stop were not consumed by the
    // failed attempts and are answered now, and fresh logins work on both nodes.
    assert_eq!(
        report.pending_accepted_after, report.pending,
        "pending challenges answered after the restart"
    );
    assert!(
        report.fresh_logins_after_ok,
        "fresh logins after the restart"
    );
    assert!(
        report.challenged_after > 0,
        "the load itself recovered: {report:#?}"
    );
}

/// A helper for the load module: one full login through pyrad, true on Accept.
pub fn full_login(first: &Server, second: &Server, user: &str, pw: &str, seed: &str) -> bool {
    let r1 = password(first, user, pw);
    if code_of(&r1) != "Access-Challenge" {
        return false;
    }
    let r2 = answer(second, user, &totp(seed, now(), &[]), &state_of(&r1));
    code_of(&r2) == "Access-Accept"
}

#[test]
fn sqlite_deployment_moved_to_postgres_logs_in_on_both_nodes() {
    let slapd = directory();
    // A single node on the embedded store, used for a while; its second NAS remembers
    // second factors. A TOTP window of 3 steps: alice's code is replayed at the end, after
    // a PostgreSQL cluster, the migration and two node starts, which on a loaded machine
    // can outlast the default window, and a code out of the window is refused as wrong,
    // not as used.
    let remembering = format!(
        "\n[totp]\nwindow = 3\n\n[[client]]\nname = \"vpn\"\naddress = \"127.0.0.2\"\nsecret = \"{SECRET}\"\n\
         remember_second_factor_secs = 3600\n"
    );
    let mut options = Options::new(&slapd.url);
    options.extra = remembering.clone();
    let mut single = Server::start(&options);
    let seed = single.enroll("alice", &[]);
    let bob_seed = single.enroll("bob", &[]);
    let bob_from_home = |srv: &Server, pw: &str, state: Option<&str>| {
        let mut args = vec!["--bind", "127.0.0.2", "--user", "bob", "--password", pw];
        args.extend(["--calling-station-id", "203.0.113.5"]);
        if let Some(s) = state {
            args.extend(["--state", s]);
        }
        pyrad(srv.port(), SECRET, &args)
    };
    // So that the next step's code, used below, stays in the window (see its doc).
    common::peers::clear_of_step_boundary(5);
    let r = bob_from_home(&single, "bob-Secret-pw", None);
    let r = bob_from_home(&single, &totp(&bob_seed, now(), &[]), Some(&state_of(&r)));
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    let code = totp(&seed, now(), &[]);
    let r1 = password(&single, "alice", ALICE_PW);
    assert_eq!(
        code_of(&answer(&single, "alice", &code, &state_of(&r1))),
        "Access-Accept"
    );
    let r2 = password(&single, "bob", "bob-Secret-pw");
    let bob_bad = wrong_code(&seed);
    assert_eq!(
        code_of(&answer(&single, "bob", &bob_bad, &state_of(&r2))),
        "Access-Reject"
    );
    // A challenge still open when the node is stopped for the move.
    let open_state = state_of(&password(&single, "alice", ALICE_PW));
    let pg = PgCluster::start();
    let url = pg.url();
    // Not while the node serves the file: what it wrote after the copy would be lost.
    let out = std::process::Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(&single.config)
        .args(["store", "migrate-to-postgres"])
        .env("RADMFA_PG_URL", &url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("radmfa is serving this database"),
        "{err}"
    );
    // A rehearsal meanwhile passes, but says the copy itself would be refused now.
    let (ok, text) = migrate_store(&single.config, &url, &["--dry-run"]);
    assert!(
        ok && text.contains("note: the copy itself would be refused now")
            && text.contains("radmfa is serving this database"),
        "{text}"
    );
    assert!(single.stop().success());

    let migrate = |extra: &[&str]| migrate_store(&single.config, &url, extra);

    // A wrong key file is refused before anything reaches PostgreSQL.
    let wrong_key = single.dir.path().join("wrong.key");
    radmfa::store::KeyFile::load_or_create(&wrong_key).unwrap();
    let text = std::fs::read_to_string(&single.config).unwrap();
    let wrong_config = single.dir.path().join("wrong-key.toml");
    std::fs::write(
        &wrong_config,
        text.replace("key_file = \"radmfa.key\"", "key_file = \"wrong.key\""),
    )
    .unwrap();
    let out = std::process::Command::new(common::radmfa::bin())
        .args(["--config", wrong_config.to_str().unwrap()])
        .args(["store", "migrate-to-postgres"])
        .env("RADMFA_PG_URL", &url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("store.key_file") && err.contains("is not the key"),
        "{err}"
    );
    assert!(
        !url.contains("@") || !err.contains(&url),
        "the URL is never echoed"
    );
    // Nor its password alone (the test cluster's, made at initdb).
    let pg_password = url
        .split_once("postgres://postgres:")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(p, _)| p)
        .expect("a password in the test cluster's URL");
    assert!(
        pg_password.len() >= 16 && !err.contains(pg_password),
        "{err}"
    );

    // A row the rowid paging cannot reach (rowid 0: only a hand-made insert gives one) is
    // not left behind in silence.
    let sqlite = |sql: &str| {
        let db = single.dir.path().join("radmfa.db");
        let out = std::process::Command::new(common::peers::python())
            .args([
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
                          c.execute(sys.argv[2]); c.commit()",
            ])
            .arg(&db)
            .arg(sql)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    sqlite(
        "INSERT INTO audit (id, time, user, mode, result, server_name, latency_ms) \
         VALUES (0, 0, 'x', 'admin', 'test', 'x', 0)",
    );
    let (ok, text) = migrate(&["--dry-run"]);
    assert!(!ok && text.contains("row(s) in the SQLite store"), "{text}");
    sqlite("DELETE FROM audit WHERE id = 0");
    // A damaged seed (one byte more) is named as such, not blamed on the key file, which
    // the database's key check has proven; put back, the migration goes on.
    let first = "(SELECT MIN(serial) FROM tokens)";
    sqlite(&format!(
        "UPDATE tokens SET secret = CAST(secret || x'00' AS BLOB) WHERE serial = {first}"
    ));
    let (ok, text) = migrate(&["--dry-run"]);
    assert!(
        !ok && text.contains("damaged rows, marked BROKEN") && !text.contains("is not the key"),
        "{text}"
    );
    sqlite(&format!(
        "UPDATE tokens SET secret = substr(secret, 1, length(secret) - 1) WHERE serial = {first}"
    ));
    // An audit record from before NULs were kept as U+FFFD (Active Directory's error text
    // ends with one): PostgreSQL refuses NUL in text, so it moves as U+FFFD.
    sqlite(
        "INSERT INTO audit (time, user, mode, result, server_name, latency_ms, reason) \
         VALUES (1, 'nul', 'login', 'reject', 'x', 0, 'data 52e' || char(0))",
    );

    let (ok, text) = migrate(&["--dry-run"]);
    assert!(
        ok && text.contains("dry run") && !text.contains("note:"),
        "{text}"
    );
    assert_eq!(pg.psql("postgres", "SELECT COUNT(*) FROM tokens"), "0");
    // The destination's config names its own key file: one that exists must hold this
    // store's key (the nodes would refuse the copy), refused before anything is copied,
    // naming both files.
    let dest_dir = tempfile::tempdir().unwrap();
    let dest_config = pg_config(dest_dir.path(), &slapd, &url, "node-a", "");
    let dest_key = dest_dir.path().join("radmfa.key");
    radmfa::store::KeyFile::load_or_create(&dest_key).unwrap();
    let to_config = ["--to-config", dest_config.to_str().unwrap()];
    let (ok, text) = migrate(&to_config);
    let source_key = single.dir.path().join("radmfa.key");
    assert!(
        !ok && text.contains(&format!(
            "store.key_file {} is not the key file",
            dest_key.display()
        )) && text.contains(&source_key.display().to_string())
            && text.contains("nothing was copied"),
        "{text}"
    );
    assert_eq!(pg.psql("postgres", "SELECT COUNT(*) FROM tokens"), "0");
    // Not there yet: the copy goes on, and says where the key must be copied.
    std::fs::remove_file(&dest_key).unwrap();
    let (ok, text) = migrate(&to_config);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "Copy the key file {} to {}",
            source_key.display(),
            dest_key.display()
        )),
        "{text}"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT reason FROM audit WHERE username = 'nul'"
        ),
        "data 52e\u{FFFD}"
    );
    assert!(text.contains("tokens: 2 row(s)"), "{text}");
    assert!(text.contains("challenges: 1 row(s)"), "{text}");
    assert!(text.contains("remembered_logins: 1 row(s)"), "{text}");
    // Where each token came from moves too (a reset deletes app seeds only).
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT string_agg(DISTINCT origin, ',') FROM tokens"
        ),
        "enroll"
    );
    // A second run from the file marked moved is refused, saying when and where it went and
    // what a copy of the stale file would undo; with --again, it is the destination in use
    // that is refused.
    let (ok, text) = migrate(&[]);
    assert!(
        !ok && text.contains("was already copied")
            && text.contains(&format!(
                "(database postgres on 127.0.0.1:{} as postgres)",
                pg.port
            ))
            && text.contains("used HOTP codes accepted again")
            && text.contains("--again"),
        "a second run: {text}"
    );
    let (ok, text) = migrate(&["--again"]);
    assert!(
        !ok && text.contains("radmfa: the destination already holds")
            && text.contains("refusing to merge"),
        "a second run with --again: {text}"
    );
    // Into another empty database it copies again.
    let (ok, text) = migrate_store(&single.config, &pg.fresh_database(), &["--again"]);
    assert!(ok && text.contains("tokens: 2 row(s)"), "{text}");
    // The old store is marked moved: the old config's server and admin commands refuse it
    // (a cron job's `user delete` there would change a store nobody reads), until the
    // mark is deleted.
    let mark = single.dir.path().join("radmfa.db.moved-to-postgres");
    assert!(mark.exists(), "{text}");
    let old_config = |args: &[&str]| {
        std::process::Command::new(common::radmfa::bin())
            .arg("--config")
            .arg(&single.config)
            .args(args)
            .output()
            .unwrap()
    };
    for args in [
        &["user", "delete", "bob"][..],
        &["serve"][..],
        &["db", "migrate"][..],
    ] {
        let out = old_config(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("was moved to PostgreSQL"),
            "{args:?}: {err}"
        );
    }
    let moved_away = single.dir.path().join("moved-mark");
    std::fs::rename(&mark, &moved_away).unwrap();
    let out = old_config(&["user", "show", "bob"]);
    assert!(out.status.success(), "{out:?}");
    std::fs::rename(&moved_away, &mark).unwrap();
    // The migration itself is on the record, once, in the database it made.
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT COUNT(*) FROM audit WHERE result = 'migrate' AND reason LIKE \
             'copied from the SQLite store %(2 token(s))'"
        ),
        "1"
    );

    // Two PostgreSQL nodes with the SQLite node's key file.
    let key = single.dir.path().join("radmfa.key");
    let nodes = pair_with_key(&slapd, &url, &remembering, Some(&key));
    let out = nodes.b.cli(&["db", "migrate"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("up to date"),
        "{said}"
    );
    // A schema a newer release set up (an older node's check in a rolling upgrade) is said
    // to be newer, not "up to date".
    pg.psql(
        "postgres",
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
         execution_time) VALUES (9999, 'from a newer release', true, '\\x00', 0)",
    );
    let out = nodes.b.cli(&["db", "migrate"]);
    let said = String::from_utf8_lossy(&out.stdout);
    pg.psql(
        "postgres",
        "DELETE FROM _sqlx_migrations WHERE version = 9999",
    );
    assert!(
        out.status.success()
            && said.contains("schema version 9999 is newer than this release knows")
            && !said.contains("up to date"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The code used before the move is still used: the replay state came along (refused
    // as used, not merely as a code of a step long past).
    let replays = || {
        nodes
            .b
            .audit_json("alice")
            .iter()
            .filter(|r| {
                r["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("code already used")
            })
            .count()
    };
    let before = replays();
    let r = password(&nodes.b, "alice", ALICE_PW);
    assert_eq!(
        code_of(&answer(&nodes.b, "alice", &code, &state_of(&r))),
        "Access-Reject"
    );
    assert_eq!(
        replays(),
        before + 1,
        "the code was not refused as used: {:?}",
        nodes.b.audit_json("alice")
    );
    // The challenge opened on the SQLite node is answered on node A with the next code:
    // the seed was copied sealed and opens with the same key file.
    let next = totp(&seed, now() + 30, &[]);
    assert_eq!(
        code_of(&answer(&nodes.a, "alice", &next, &open_state)),
        "Access-Accept"
    );
    // bob's failure count and the old audit trail moved too.
    let bob = nodes.a.cli(&["user", "show", "bob", "--json"]);
    let bob: serde_json::Value = serde_json::from_slice(&bob.stdout).unwrap();
    assert_eq!(bob["failures"], 1, "{bob}");
    // bob's second factor, remembered on the SQLite node, is remembered on node B.
    let r = bob_from_home(&nodes.b, "bob-Secret-pw", None);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    let rec = &nodes.b.audit_json("bob")[0];
    assert_eq!(
        (rec["mode"].as_str(), rec["server_name"].as_str()),
        (Some("remembered"), Some("node-b"))
    );
    let audit = nodes.b.audit_json("alice");
    assert!(audit
        .iter()
        .any(|r| r["server_name"] == "test-node" && r["result"] == "accept"));
    assert!(audit
        .iter()
        .any(|r| r["server_name"] == "node-a" && r["result"] == "accept"));
}

/// The migration holds the destination for its whole copy: it waits for a session writing
/// there (then would see its row, and refuse), a write meanwhile waits for the copy's commit
/// and then lands after the copied ids, and a node started on the destination meanwhile says
/// that it waits for the copy, then serves logins on the copied tokens. (A node that served
/// during the copy had its logins hang and its audit insert take the id the copy then
/// wrote, and the migration still reported success.)
#[test]
fn a_node_started_during_the_migration_waits_for_the_copy() {
    let slapd = directory();
    let mut single = Server::start(&Options::new(&slapd.url));
    let seed = single.enroll("alice", &[]);
    assert!(full_login(&single, &single, "alice", ALICE_PW, &seed));
    assert!(single.stop().success());
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    // The destination's schema and key check, as a rehearsal leaves them.
    let (ok, text) = migrate_store(&single.config, &url, &["--dry-run"]);
    assert!(ok, "{text}");
    // A session writing to the last table the copy locks, open until ROLLBACK.
    let mut writer = pg.session(&db);
    writer.run("BEGIN; LOCK TABLE remembered_logins IN ROW EXCLUSIVE MODE;");
    let waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted";
    let granted = "SELECT count(*) FROM pg_locks WHERE granted AND mode = 'RowExclusiveLock' \
                   AND relation = 'remembered_logins'::regclass";
    wait_for_psql(&pg, &db, granted, "1", "the writer's lock");
    let config = single.config.clone();
    let to = url.clone();
    let migration = std::thread::spawn(move || migrate_store(&config, &to, &[]));
    wait_for_psql(
        &pg,
        &db,
        waiting,
        "1",
        "the migration waiting for the writer",
    );
    // Meanwhile the tables it holds take no write: an audit insert waits.
    let mut late = pg.session(&db);
    late.run(
        "INSERT INTO audit (time, username, mode, result, server_name, latency_ms) \
         VALUES (1, 'late', 'admin', 'test', 'psql', 0);",
    );
    wait_for_psql(
        &pg,
        &db,
        waiting,
        "2",
        "the late insert waiting for the copy",
    );
    // A node started now waits for the copy before it serves, and says so.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        single.dir.path().join("radmfa.key"),
        dir.path().join("radmfa.key"),
    )
    .unwrap();
    let node_config = pg_config(dir.path(), &slapd, &url, "node-a", "");
    let node = std::thread::spawn(move || Server::start_with(dir, node_config));
    let node_waits = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
    wait_for_psql(&pg, &db, node_waits, "1", "the node waiting for the copy");
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM audit"),
        "0",
        "nothing visible before the copy commits"
    );
    writer.run("ROLLBACK;");
    let (ok, text) = migration.join().unwrap();
    assert!(ok && text.contains("copied into PostgreSQL"), "{text}");
    let node = node.join().unwrap();
    assert!(
        node.log_shows("is copying into this database; waiting for the copy"),
        "{}",
        node.log()
    );
    // The late insert went in after the copy, with an id after the copied ones.
    let copied_audit: i64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("audit: ")?
                .strip_suffix(" row(s)")?
                .parse()
                .ok()
        })
        .expect("the audit's count");
    assert!(copied_audit >= 2, "{text}");
    wait_for_psql(
        &pg,
        &db,
        "SELECT count(*) FROM audit WHERE username = 'late'",
        "1",
        "the late insert",
    );
    // Beside every copied row (the migration's own record is written after its commit).
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(*), bool_and(id < (SELECT id FROM audit WHERE username = 'late')) \
             FROM audit WHERE username <> 'late' AND result <> 'migrate'"
        ),
        format!("{copied_audit}|t")
    );
    // The node serves the copied token, and its login is on the record.
    let code = totp(&seed, now() + 30, &[]);
    let r = password(&node, "alice", ALICE_PW);
    assert_eq!(
        code_of(&answer(&node, "alice", &code, &state_of(&r))),
        "Access-Accept"
    );
    assert!(node
        .audit_json("alice")
        .iter()
        .any(|r| r["server_name"] == "node-a" && r["result"] == "accept"));
}

/// With docs/ha.md's least-privilege role (reads and writes only), the copy cannot move
/// the id sequences on: refused before anything is copied, naming the role and the owner
/// whose URL it needs, the database's message said once. (It failed after the whole copy,
/// from setval, with the message twice and no hint.)
#[test]
fn a_least_privilege_role_is_sent_to_the_owner_before_the_copy() {
    let slapd = directory();
    let single = stopped_sqlite_store(&slapd, &["alice"]);
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    // The owner (the superuser here) sets the schema up, as `db migrate` would.
    let (ok, text) = migrate_store(&single.config, &url, &["--dry-run"]);
    assert!(ok, "{text}");
    pg.psql(
        &db,
        "CREATE ROLE serving LOGIN PASSWORD 'serving-pw'; \
         GRANT USAGE ON SCHEMA public TO serving; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO serving; \
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO serving;",
    );
    let serving = format!(
        "postgres://serving:serving-pw@127.0.0.1:{}/{db}?sslmode=disable",
        pg.port
    );
    let (ok, text) = migrate_store(&single.config, &serving, &[]);
    assert!(
        !ok && text.contains("role serving may not move the id sequences of tokens")
            && text.contains("the schema's owner, postgres")
            && text.contains("Nothing was copied"),
        "{text}"
    );
    assert_eq!(pg.psql(&db, "SELECT COUNT(*) FROM tokens"), "0");
    assert!(
        !single
            .dir
            .path()
            .join("radmfa.db.moved-to-postgres")
            .exists(),
        "{text}"
    );
    // The owner's URL copies.
    let (ok, text) = migrate_store(&single.config, &url, &[]);
    assert!(ok && text.contains("tokens: 1 row(s)"), "{text}");
}

/// A migration whose audit record the database refuses after the copy committed: the
/// SQLite store is marked moved all the same (the copy is the store now), and the error
/// says so. It was left unmarked, so the old config went on changing a store the nodes no
/// longer read (a token disabled there stayed enabled for them).
#[test]
fn a_migration_whose_record_fails_still_marks_the_sqlite_store_moved() {
    let slapd = directory();
    let single = stopped_sqlite_store(&slapd, &["alice"]);
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    let (ok, text) = migrate_store(&single.config, &url, &["--dry-run"]);
    assert!(ok, "{text}");
    pg.psql(
        &db,
        "CREATE FUNCTION refuse_migrate() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.result = 'migrate' THEN RAISE EXCEPTION 'refused by a test'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse_migrate BEFORE INSERT ON audit FOR EACH ROW \
         EXECUTE FUNCTION refuse_migrate();",
    );
    let (ok, text) = migrate_store(&single.config, &url, &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("the copy is committed and the SQLite store is marked moved"),
        "{text}"
    );
    assert_eq!(pg.psql(&db, "SELECT COUNT(*) FROM tokens"), "1");
    assert!(
        single
            .dir
            .path()
            .join("radmfa.db.moved-to-postgres")
            .exists(),
        "{text}"
    );
    let out = single.cli(&["user", "show", "alice"]);
    assert!(!out.status.success(), "the moved store was read: {out:?}");
}

/// A destination another seed key was recorded in (a dry run of another store with its own
/// key file started on it first): the migration is refused naming the key file and the
/// way out, before anything is copied. It said only "not the key this database was set up
/// with; every node must use the same key file".
#[test]
fn a_destination_set_up_with_another_key_is_refused_with_the_way_out() {
    let slapd = directory();
    let first = stopped_sqlite_store(&slapd, &["alice"]);
    let other = stopped_sqlite_store(&slapd, &[]);
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    let (ok, text) = migrate_store(&other.config, &url, &["--dry-run"]);
    assert!(ok, "{text}");
    let (ok, text) = migrate_store(&first.config, &url, &[]);
    assert!(!ok, "{text}");
    let key = first.dir.path().join("radmfa.key");
    assert!(
        text.contains("was set up with another seed key than store.key_file")
            && text.contains(&key.display().to_string())
            && text.contains("DELETE FROM key_check"),
        "{text}"
    );
    assert_eq!(pg.psql(&db, "SELECT COUNT(*) FROM tokens"), "0");
    // As it says: the key record emptied, the copy goes through with this key.
    pg.psql(&db, "DELETE FROM key_check");
    let (ok, text) = migrate_store(&first.config, &url, &[]);
    assert!(ok && text.contains("tokens: 1 row(s)"), "{text}");
}

/// A SQLite deployment to migrate: a server that ran with `users` enrolled, stopped (its
/// store and key file stay in its directory).
fn stopped_sqlite_store(slapd: &Slapd, users: &[&str]) -> Server {
    let mut single = Server::start(&Options::new(&slapd.url));
    for user in users {
        single.enroll(user, &[]);
    }
    assert!(single.stop().success());
    single
}

/// `radmfa store migrate-to-postgres` of `config`'s SQLite store into `url`: (success, output).
fn migrate_store(config: &Path, url: &str, extra: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(config)
        .args(["store", "migrate-to-postgres"])
        .args(extra)
        .env("RADMFA_PG_URL", url)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The rows of `sql` in the SQLite store `db`, as [`PgCluster::psql`] prints them: a line a
/// row, `|` between columns, NULL empty (blobs must be given as `hex()`).
fn sqlite_rows(db: &Path, sql: &str) -> String {
    use rusqlite::types::ValueRef;
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    let rows: Vec<String> = st
        .query_map([], |r| {
            let cols = (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => String::new(),
                        ValueRef::Integer(v) => v.to_string(),
                        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        other => panic!("{sql}: column {i} is {other:?}"),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(cols.join("|"))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    rows.join("\n")
}

/// What [`sqlite_deployment_moved_to_postgres_logs_in_on_both_nodes`] leaves empty (the
/// tables `user_profile`, `app_passwords`, `oob_transactions`, `send_events`): a phone
/// number, a default method, a waiting bypass, a `user forget` mark, a fraud block (from a
/// real call), an app password used in a login (so its `dn` is set), an SMS code still
/// waiting and the send counts. Each is checked on the PostgreSQL nodes by the CLI, by a
/// login, or (what no command shows) by comparing the rows with the SQLite store's.
#[test]
fn sqlite_deployment_moved_to_postgres_keeps_phones_blocks_bypasses_app_passwords_and_sms() {
    use common::oob_env::{self, cli_ok, client, delivery, DIRECTORY_MOBILE};
    use common::provider_standin::{Script, Standin};

    let slapd = Slapd::start(&[
        LdapUser::new("alice", ALICE_PW),
        LdapUser::new("bob", "bob-Secret-pw"),
        LdapUser::new("carol", "carol-Secret-pw"),
    ]);
    let standin = Standin::start();
    // One send per user (and number) an hour: a send count lost in the move would let
    // alice's second SMS out.
    let sms_keys = "max_per_user = 1\nwindow_secs = 3600\n";
    let clients = [
        client("vpn", "127.0.0.1", "methods = [\"totp\"]"),
        client("sms-vpn", "127.0.0.2", "methods = [\"sms\"]"),
        client("legacy-mail", "127.0.0.3", "app_passwords = true"),
        client(
            "rdg",
            "127.0.0.4",
            "methods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 20",
        ),
    ];
    let mut single = oob_env::start(&slapd, &standin, sms_keys, "", &clients);
    let on = |srv: &Server, bind: &str, user: &str, pw: &str, state: Option<&str>| {
        let mut args = vec!["--bind", bind, "--user", user, "--password", pw];
        args.extend(["--timeout", "25"]);
        if let Some(s) = state {
            args.extend(["--state", s]);
        }
        pyrad(srv.port(), SECRET, &args)
    };

    // alice: her own number, SMS as her method, an app password used once.
    let phone = "+15550100123";
    cli_ok(&single, &["user", "set-phone", "alice", phone]);
    cli_ok(&single, &["user", "set-method", "alice", "sms"]);
    let app_pw = cli_ok(
        &single,
        &[
            "user",
            "app-password",
            "add",
            "alice",
            "--label",
            "mail on old phone",
        ],
    );
    let app_pw = app_pw.trim();
    let r = on(&single, "127.0.0.3", "alice", app_pw, None);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    // And a newer one deleted before the move: its id must not be given out after it.
    cli_ok(&single, &["user", "app-password", "add", "alice"]);
    let ids = |config: &Path, user: &str| -> Vec<i64> {
        let out = std::process::Command::new(common::radmfa::bin())
            .arg("--config")
            .arg(config)
            .args(["user", "app-password", "list", user, "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect()
    };
    let deleted = ids(&single.config, "alice")[1];
    cli_ok(
        &single,
        &[
            "user",
            "app-password",
            "delete",
            "alice",
            &deleted.to_string(),
        ],
    );
    // Her SMS code, sent by the SQLite node, still waiting to be typed.
    let sms_prompt = on(&single, "127.0.0.2", "alice", ALICE_PW, None);
    assert_eq!(code_of(&sms_prompt), "Access-Challenge", "{sms_prompt}");
    let sms = standin.sms();
    assert_eq!((sms.len(), sms[0].to.as_str()), (1, phone), "{sms:?}");
    let sms_code = sms[0].code();
    // bob: a token, a bypass waiting, and the mark `user forget` leaves.
    single.enroll("bob", &[]);
    cli_ok(&single, &["user", "bypass", "bob", "--for", "1h"]);
    cli_ok(&single, &["user", "forget", "bob"]);
    // carol: blocked by a fraud report on a real call.
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("0", Duration::from_millis(300)),
    );
    let r = on(&single, "127.0.0.4", "carol", "carol-Secret-pw", None);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", single.log());
    assert_eq!(standin.calls().len(), 1);
    assert!(single.stop().success());

    // What the CLI shows, and the columns it does not show, before the move.
    let show = |config: &Path, args: &[&str]| -> serde_json::Value {
        let out = std::process::Command::new(common::radmfa::bin())
            .arg("--config")
            .arg(config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let views: [&[&str]; 4] = [
        &["user", "show", "alice", "--json"],
        &["user", "show", "bob", "--json"],
        &["user", "show", "carol", "--json"],
        &["user", "app-password", "list", "alice", "--json"],
    ];
    let before: Vec<serde_json::Value> = views.iter().map(|v| show(&single.config, v)).collect();
    let (alice, bob, carol, list) = (&before[0], &before[1], &before[2], &before[3]);
    assert_eq!(
        (&alice["phone"], &alice["method"]),
        (&phone.into(), &"sms".into())
    );
    assert!(
        alice["app_passwords"][0]["last_used_at"].is_i64(),
        "{alice}"
    );
    assert_eq!(list[0]["label"], "mail on old phone", "{list}");
    assert!(
        bob["bypass_until"].is_i64() && bob["tokens"][0].is_object(),
        "{bob}"
    );
    assert!(carol["blocked_at"].is_i64(), "{carol}");
    assert!(
        carol["blocked_reason"]
            .as_str()
            .unwrap_or("")
            .contains("fraud"),
        "{carol}"
    );
    // Each query twice: SQLite's `user` is PostgreSQL's `username`; blobs as hex; text
    // ordered bytewise on both.
    let raw: [(&str, &str); 4] = [
        (
            "SELECT id, user, dn FROM app_passwords ORDER BY id",
            "SELECT id, username, dn FROM app_passwords ORDER BY id",
        ),
        (
            "SELECT user, logins_forgotten_at FROM user_profile ORDER BY user",
            "SELECT username, logins_forgotten_at FROM user_profile ORDER BY username COLLATE \"C\"",
        ),
        (
            // With the send each event is of (`slot`), by which a refused send gives it back.
            "SELECT key, at, slot FROM send_events ORDER BY key, at, slot",
            "SELECT key, at, slot FROM send_events ORDER BY key COLLATE \"C\", at, slot COLLATE \"C\"",
        ),
        (
            "SELECT id, request_key, user, nas, kind, phone, hex(code_hash), status, reason, \
             provider_ref, created_at, expires_at FROM oob_transactions ORDER BY id",
            "SELECT id, request_key, username, nas, kind, phone, upper(encode(code_hash, 'hex')), \
             status, reason, provider_ref, created_at, expires_at FROM oob_transactions \
             ORDER BY id COLLATE \"C\"",
        ),
    ];
    let db = single.dir.path().join("radmfa.db");
    let sqlite_had: Vec<String> = raw.iter().map(|(q, _)| sqlite_rows(&db, q)).collect();
    // Not vacuous: the app password's entry, bob's mark, the sends and both transactions.
    assert!(
        sqlite_had[0].ends_with("|alice|uid=alice,ou=people,dc=example,dc=org"),
        "{}",
        sqlite_had[0]
    );
    assert!(
        sqlite_had[1]
            .lines()
            .any(|l| l.starts_with("bob|") && l.len() > 4),
        "{}",
        sqlite_had[1]
    );
    assert!(!sqlite_had[2].is_empty());
    let oob = &sqlite_had[3];
    assert!(
        oob.lines().count() == 2
            && oob.contains(&format!("|alice|sms-vpn|sms|{phone}|"))
            && oob.contains("|pending|")
            && oob.contains("|carol|rdg|voice|")
            && oob.contains("|fraud|"),
        "{oob}"
    );

    let pg = PgCluster::start();
    let url = pg.url();
    let (ok, text) = migrate_store(&single.config, &url, &[]);
    assert!(ok, "{text}");
    for table in ["app_passwords: 1", "oob_transactions: 2"] {
        assert!(text.contains(&format!("{table} row(s)")), "{text}");
    }
    for ((_, pg_query), had) in raw.iter().zip(&sqlite_had) {
        assert_eq!(&pg.psql("postgres", pg_query), had, "{pg_query}");
    }

    let key = single.dir.path().join("radmfa.key");
    let nodes = pair_tuned(&slapd, &url, &clients.concat(), Some(&key), |o| {
        // Each node its own callback listener.
        o.clients = Vec::new();
        o.extra = format!("{}{}", delivery(&standin, sms_keys), o.extra);
    });
    for node in [&nodes.a, &nodes.b] {
        for (view, was) in views.iter().zip(&before) {
            assert_eq!(&show(&node.config, view), was, "{view:?}");
        }
    }
    // New ids continue after every id SQLite gave out, the deleted newest one included.
    cli_ok(&nodes.a, &["user", "app-password", "add", "bob"]);
    let new = ids(&nodes.a.config, "bob");
    assert!(
        new.len() == 1 && new[0] > deleted,
        "{new:?} after {deleted}"
    );
    // The SMS code sent before the move finishes the login on node A.
    let r = on(
        &nodes.a,
        "127.0.0.2",
        "alice",
        &sms_code,
        Some(&state_of(&sms_prompt)),
    );
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    // The app password (its hash) logs in on node B, a legacy client only.
    let r = on(&nodes.b, "127.0.0.3", "alice", app_pw, None);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(nodes.b.audit_json("alice")[0]["mode"], "app-password");
    // Her one SMS of the hour was sent before the move: the next is refused, not sent.
    let r = on(&nodes.b, "127.0.0.2", "alice", ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let rec = &nodes.b.audit_json("alice")[0];
    assert!(
        rec["reason"].as_str().unwrap_or("").contains("rate limit"),
        "{rec}"
    );
    assert_eq!(standin.sms().len(), 1);
    // bob's bypass lets the password alone in, once.
    let r = on(&nodes.b, "127.0.0.1", "bob", "bob-Secret-pw", None);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(nodes.b.audit_json("bob")[0]["mode"], "bypass");
    let r = on(&nodes.a, "127.0.0.1", "bob", "bob-Secret-pw", None);
    assert_eq!(code_of(&r), "Access-Challenge", "once only: {r}");
    // carol's block refuses her without a call.
    let r = on(&nodes.a, "127.0.0.4", "carol", "carol-Secret-pw", None);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(r["messages"].to_string().contains("blocked"), "{r}");
    assert_eq!(standin.calls().len(), 1);
}

/// `systemctl reload` while a node still waits for its database at start (up to 5 s):
/// SIGHUP is caught from the start — its default action would end the process — and the
/// node comes up once the database is back, and reloads then.
#[test]
fn sighup_while_waiting_for_the_database_at_start_does_not_stop_the_node() {
    let slapd = directory();
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &pg.url(), "node-a", "");
    pg.stop();
    let starting = {
        let config = config.clone();
        std::thread::spawn(move || Server::start_with(dir, config))
    };
    std::thread::sleep(Duration::from_millis(1000));
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &common::radmfa::pid_of(&config).to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    std::thread::sleep(Duration::from_millis(300));
    pg.start_again();
    let srv = starting
        .join()
        .expect("the node did not come up after SIGHUP");
    assert!(
        srv.log_shows("reload: 1 [[client]] entries"),
        "{}",
        srv.log()
    );
    let seed = srv.enroll("alice", &[]);
    let r1 = password(&srv, "alice", ALICE_PW);
    let r2 = answer(&srv, "alice", &totp(&seed, now(), &[]), &state_of(&r1));
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
}

/// Admin commands close their database connection cleanly: PostgreSQL's log shows no
/// "Connection reset by peer" (it did for about one command in four, when a command's pool
/// opened a second connection while the first was still being checked on release).
#[test]
fn admin_commands_leave_no_connection_reset_in_the_postgres_log() {
    let slapd = directory();
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &pg.url(), "admin", "");
    let run = |args: &[&str]| {
        let out = common::radmfa::cli_on(&config, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    run(&["user", "enroll-totp", "alice", "--uri-only"]);
    for _ in 0..10 {
        run(&["user", "list"]);
        run(&["user", "show", "alice"]);
        run(&["token", "list"]);
        run(&["audit", "--limit", "5"]);
    }
    let log = pg.log();
    assert!(!log.contains("reset by peer"), "{log}");
}

/// `config check --connect` closes its store connections, also when not asked about a
/// user (it returned before closing them then). A connection the process's exit ends skips
/// PostgreSQL's Terminate message, and the server logs that: "Connection reset by peer"
/// when a reply was still unread, else, at debug1, "unexpected EOF on client connection",
/// which makes the check independent of timing.
#[test]
fn config_check_connect_closes_its_postgres_connections() {
    let slapd = directory();
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &pg.url(), "admin", "");
    let run = |args: &[&str]| {
        String::from_utf8_lossy(&common::radmfa::cli_on(&config, args).stdout).to_string()
    };
    // The schema and the key file, so the check opens the store as `serve` would.
    run(&["user", "enroll-totp", "alice", "--uri-only"]);
    pg.psql("postgres", "ALTER SYSTEM SET log_min_messages = 'debug1'");
    pg.psql("postgres", "SELECT pg_reload_conf()");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while pg.psql("postgres", "SHOW log_min_messages") != "debug1" {
        assert!(
            std::time::Instant::now() < until,
            "the setting did not apply"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for args in [
        &["config", "check", "--connect"][..],
        &["config", "check", "--connect", "--user", "alice"],
    ] {
        let out = run(args);
        assert!(out.contains("ok   store: opened"), "{args:?}: {out}");
    }
    let log = pg.log();
    assert!(
        !log.contains("unexpected EOF on client connection") && !log.contains("reset by peer"),
        "a connection was not closed:\n{log}"
    );
}

/// An admin's view of a fresh PostgreSQL database: the directory (kept running), the
/// cluster, the database's name, the config's directory and its file.
fn admin_on_a_fresh_database() -> (
    Slapd,
    std::sync::Arc<PgCluster>,
    String,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let slapd = directory();
    let pg = PgCluster::shared();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &url, "admin", "");
    (slapd, pg, db, dir, config)
}

/// `config check --connect` of a new release, run before it is installed, leaves a
/// PostgreSQL store behind its schema as it is (an older node must go on using it), says
/// so, and sets up no empty database either.
#[test]
fn config_check_connect_does_not_migrate_a_postgres_store() {
    let (_slapd, pg, db, dir, config) = admin_on_a_fresh_database();
    radmfa::store::KeyFile::load_or_create(&dir.path().join("radmfa.key")).unwrap();
    let check = || {
        let out = common::radmfa::cli_on(&config, &["config", "check", "--connect"]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let out = check();
    assert!(
        out.contains("ok   store: reached; it holds no radmfa schema yet"),
        "{out}"
    );
    let tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'";
    assert_eq!(
        pg.psql(&db, tables).trim(),
        "0",
        "the check set the store up"
    );
    assert!(common::radmfa::cli_on(&config, &["db", "migrate"])
        .status
        .success());
    // A command that writes records the key, as a node's first start does.
    let enrolled = common::radmfa::cli_on(&config, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(enrolled.status.success(), "{enrolled:?}");
    let newest: i64 = pg
        .psql(&db, "SELECT MAX(version) FROM _sqlx_migrations")
        .trim()
        .parse()
        .unwrap();
    pg.psql(
        &db,
        &format!(
            "CREATE TABLE kept AS SELECT * FROM _sqlx_migrations WHERE version = {newest}; \
             DELETE FROM _sqlx_migrations WHERE version = {newest}"
        ),
    );
    let out = check();
    let says = format!(
        "ok   store: reached; its schema is at version {} and this release's at {newest}",
        newest - 1
    );
    assert!(out.contains(&says), "{out}");
    let books = "SELECT count(*) FROM _sqlx_migrations";
    assert_eq!(
        pg.psql(&db, books).trim(),
        (newest - 1).to_string(),
        "migrated"
    );
    // Another key file: found by the check from the key the database recorded, and refused
    // by the start before any migration runs.
    let key = dir.path().join("radmfa.key");
    let right = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    radmfa::store::KeyFile::load_or_create(&key).unwrap();
    let out = check();
    assert!(
        out.contains("FAIL store: store.key_file") && out.contains("is not the key"),
        "{out}"
    );
    let serve = serve_until_it_ends(&config, 20);
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(
        serve.status.code().is_some_and(|c| c != 0 && c != 124) && err.contains("is not the key"),
        "{:?}: {err}",
        serve.status
    );
    assert_eq!(
        pg.psql(&db, books).trim(),
        (newest - 1).to_string(),
        "migrated under a wrong key"
    );
    std::fs::write(&key, right).unwrap();
    pg.psql(
        &db,
        "INSERT INTO _sqlx_migrations SELECT * FROM kept; DROP TABLE kept",
    );
    let out = check();
    assert!(out.contains("ok   store: opened"), "{out}");
}

/// The PostgreSQL store as the previous release left it: the newest migration undone.
fn undo_newest_migration(pg: &PgCluster, db: &str) {
    let last = pg.psql(db, "SELECT MAX(version) FROM _sqlx_migrations");
    assert_eq!(
        last.trim(),
        "13",
        "this undoes migration 13; update it with the next one"
    );
    pg.psql(
        db,
        "ALTER TABLE oob_transactions DROP COLUMN client_ip, DROP COLUMN nas_ip, \
         DROP COLUMN nas_identifier; DELETE FROM _sqlx_migrations WHERE version = 13",
    );
}

/// On PostgreSQL as on SQLite: with an older node still serving, a command of the new
/// binary that only reads leaves the database at its schema, naming `db migrate`; one that
/// changes it migrates it and says so; a node's start logs the migration it made. They
/// migrated without a word (the start's only line was the server's notice that the
/// migrator's table already exists, which is not logged any more).
#[test]
fn a_postgres_store_behind_is_read_as_it_is_and_its_migration_said() {
    let (_slapd, pg, db, dir, config) = admin_on_a_fresh_database();
    let enrolled = common::radmfa::cli_on(&config, &["user", "enroll-totp", "alice", "--uri-only"]);
    assert!(enrolled.status.success(), "{enrolled:?}");
    undo_newest_migration(&pg, &db);
    let version = "SELECT MAX(version) FROM _sqlx_migrations";
    for args in [
        &["user", "list"][..],
        &["user", "show", "alice"],
        &["token", "list"],
    ] {
        let out = common::radmfa::cli_on(&config, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("the store's schema is at version 12, behind this release's 13")
                && err.contains("radmfa db migrate"),
            "{args:?}: {err}"
        );
        assert_eq!(pg.psql(&db, version).trim(), "12", "{args:?} migrated");
    }
    let out = common::radmfa::cli_on(&config, &["user", "unlock", "alice"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && err.contains("PostgreSQL store: schema migrated from version 12 to 13\n"),
        "{err}"
    );
    assert_eq!(pg.psql(&db, version).trim(), "13");
    undo_newest_migration(&pg, &db);
    let mut node = Server::start_with(dir, config);
    assert!(
        node.log_shows("store schema migrated from version 12 to 13"),
        "{}",
        node.log()
    );
    node.stop();
    let log = node.log();
    assert!(!log.contains("already exists, skipping"), "{log}");
}

/// PostgreSQL's disk fills up: radmfa's database lives in a tablespace on a small tmpfs,
/// which a file of zeros then fills, so a write that has to grow a table fails ("could not
/// extend file ...: No space left on device") while writes into pages with room still
/// succeed. Logins that need the disk are refused, never accepted without their writes;
/// the log says the Accept was withheld; radmfa counts them and stays up; once the file is
/// removed, logins work again, and the audit has one accept per accepted login. (Unlike
/// SQLite's, the refused code may be used up: a request's transaction is committed before
/// its audit record goes into the shared insert, and it was that insert that failed.)
#[test]
fn postgres_with_a_full_disk_refuses_logins_and_recovers() {
    let disk = SmallDisk::mount(64, Some("postgres"));
    let slapd = directory();
    let pg = PgCluster::start();
    pg.psql(
        "postgres",
        &format!(
            "CREATE TABLESPACE small LOCATION '{}'",
            disk.mount.display()
        ),
    );
    pg.psql("postgres", "CREATE DATABASE on_small TABLESPACE small");
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(
        dir.path(),
        &slapd,
        &pg.url_for("on_small"),
        "node-a",
        "\n[lockout]\nthreshold = 1000000\n[totp]\nwindow = 2\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let srv = Server::start_with(dir, config);
    let seed = srv.enroll("alice", &[]);
    let login = |code: &str| {
        let r1 = password(&srv, "alice", ALICE_PW);
        if code_of(&r1) != "Access-Challenge" {
            return r1;
        }
        answer(&srv, "alice", code, &state_of(&r1))
    };
    // Each login a later step than the last (now, +1, +2), all within the window of two.
    common::peers::clear_of_step_boundary(5);
    let r = login(&totp(&seed, now(), &[]));
    assert_eq!(code_of(&r), "Access-Accept", "before: {r}");
    let store_failures = || store_failures_of(&srv);
    assert_eq!(store_failures(), 0.0);

    // The log is copied by a thread: the accept must be in before the mark is taken.
    assert!(srv.log_shows("result=accept"), "{}", srv.log());
    let log_before_full = srv.log().len();
    disk.fill();
    // Wrong passwords until a request's writes no longer fit: each adds an audit row, and
    // the audit table's last page fills within a few dozen.
    let mut wrong = 0;
    while store_failures() == 0.0 {
        let r = password(&srv, "bob", "not-bobs-password");
        assert_ne!(code_of(&r), "Access-Accept", "{r}");
        wrong += 1;
        assert!(
            wrong < 300,
            "300 audit rows written on a full disk:\n{}",
            pg.log()
        );
    }
    let r = login(&totp(&seed, now() + 30, &[]));
    assert_eq!(
        code_of(&r),
        "Access-Reject",
        "accepted without its writes: {r}"
    );
    assert!(store_failures() >= 2.0, "the refused login is counted");
    assert!(pg.log().contains("No space left on device"), "{}", pg.log());

    // Either the code's own writes failed (a plain reject), or the code passed and only its
    // audit record failed: then the log must not leave it at "accept". Only what was
    // logged once the disk was full counts (the login before it was accepted).
    // Waits for alice's verdict after the mark (the log lags the process), and then for the
    // withheld line if it was an accept.
    let verdicts = srv.log_lines_at_least(2, |l| {
        l.contains("user=\"alice\"") && (l.contains("result=accept") || l.contains("result=reject"))
    });
    assert!(
        verdicts >= 2,
        "no verdict logged for the refused login:\n{}",
        srv.log()
    );
    let since_full = srv.log()[log_before_full..].to_string();
    if since_full.contains("result=accept") {
        assert!(
            srv.log_shows(
                "result=reject reason=\"accept withheld: its audit record could not be written\""
            ),
            "{since_full}"
        );
    }

    disk.free();
    let r = login(&totp(&seed, now() + 60, &[]));
    assert_eq!(
        code_of(&r),
        "Access-Accept",
        "once there is room: {r}\n{}",
        srv.log()
    );
    let accepts = srv
        .audit_json("alice")
        .iter()
        .filter(|r| r["result"] == "accept")
        .count();
    assert_eq!(accepts, 2, "one audit accept per accepted login");
}

/// `config check --connect` creates nothing: on a database no node has used, the missing
/// key file is reported as one `serve` will create (and is not created, nor recorded in the
/// database); once a node uses the database, the same missing file is a failure that says
/// to copy it.
#[test]
fn config_check_connect_creates_no_key_file() {
    let slapd = directory();
    let pg = PgCluster::shared();
    let url = pg.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &url, "node-a", "");
    let key = dir.path().join("radmfa.key");
    let check = || {
        let out = std::process::Command::new(common::radmfa::bin())
            .args(["--config", config.to_str().unwrap()])
            .args(["config", "check", "--connect"])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let out = check();
    assert!(
        out.contains("ok   store: reached; the key file") && out.contains("does not exist yet"),
        "{out}"
    );
    assert!(!key.exists(), "config check created the key file");
    // A node starts: it creates the key file and records its key.
    let node = Server::start_with(dir, config.clone());
    std::fs::rename(&key, key.with_extension("moved")).unwrap();
    let out = check();
    assert!(
        out.contains("FAIL store: the key file")
            && out.contains("copy it from a node")
            && out.contains("or restore it from its backup"),
        "{out}"
    );
    assert!(!key.exists(), "config check created the key file");
    drop(node);
}

/// A reading command pointed at a database radmfa never set up (a mistyped `store.url`
/// that reaches another database) says so and leaves it untouched: no tables, no key row.
#[test]
fn reading_commands_do_not_set_up_a_postgres_store() {
    let slapd = directory();
    let pg = PgCluster::shared();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &url, "node-a", "");
    // The key file exists (copied from a node, as ha.md says), so only the database is new.
    radmfa::store::KeyFile::load_or_create(&dir.path().join("radmfa.key")).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::radmfa::bin())
            .args(["--config", config.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for args in [&["user", "list"][..], &["token", "list"], &["audit"]] {
        let (ok, err) = run(args);
        assert!(
            !ok && err.contains("store.url") && err.contains("no radmfa store"),
            "{args:?}: {err}"
        );
    }
    let tables = pg.psql(
        &db,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert_eq!(tables.trim(), "0", "a reading command created tables");
    // A command that writes sets it up, and reading works from then on.
    assert!(run(&["user", "enroll-totp", "alice", "--uri-only"]).0);
    let (ok, err) = run(&["user", "list"]);
    assert!(ok, "{err}");
    // `audit` reads without the key file: an auditor's account is not given the key that
    // unseals every seed.
    let key = dir.path().join("radmfa.key");
    std::fs::rename(&key, dir.path().join("away.key")).unwrap();
    for args in [&["audit"][..], &["audit", "--count-by", "user"]] {
        let (ok, err) = run(args);
        assert!(ok && err.is_empty(), "{args:?}: {err}");
    }
    assert!(!key.exists(), "a key file was made");
    // Nor does it need a writable session: an auditor's role may be read-only, and a DBA
    // may have frozen writes during the very incident looked into (serving refuses such a
    // session; reading must not).
    pg.psql(
        &db,
        &format!("ALTER DATABASE {db} SET default_transaction_read_only = on"),
    );
    let (ok, err) = run(&["audit"]);
    assert!(ok && err.is_empty(), "audit of a read-only database: {err}");
}

/// A login refused because the database is down counts once in
/// `radmfa_backend_failures_total{backend="store"}`: its decision met the outage, and so did
/// its audit record, and each counted (2 per login), so the store's failures could not be
/// set beside the directory's, which count once.
#[test]
fn a_login_refused_in_a_store_outage_counts_once() {
    let slapd = directory();
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(
        dir.path(),
        &slapd,
        &pg.url(),
        "node-a",
        "\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let srv = Server::start_with(dir, config);
    srv.enroll("alice", &[]);
    let store_failures = || store_failures_of(&srv);
    assert_eq!(store_failures(), 0.0);
    pg.stop();
    let r = pyrad(
        srv.port(),
        SECRET,
        &["--user", "alice", "--password", ALICE_PW, "--timeout", "8"],
    );
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert_eq!(store_failures(), 1.0, "{}", srv.log());
}

/// On a client in challenge mode, a wrong password reads nothing from the store: the user's
/// tokens are read once the directory accepted the password (before it, a read that found
/// tokens took longer than one that found none, and told token holders from other names).
/// So in a store outage the audit line names the wrong password, the cause an admin can act
/// on, and a right password meets the outage.
#[test]
fn a_wrong_password_is_refused_as_such_in_a_store_outage() {
    let slapd = directory();
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &slapd, &pg.url(), "node-a", "");
    let srv = Server::start_with(dir, config);
    srv.enroll("alice", &[]);
    pg.stop();
    let refusal = |pw: &str, nth: usize| {
        let r = pyrad(
            srv.port(),
            SECRET,
            &["--user", "alice", "--password", pw, "--timeout", "8"],
        );
        assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
        let alices = |l: &str| l.contains("user=\"alice\"") && l.contains("result=reject");
        assert!(
            srv.log_lines_at_least(nth + 1, alices) > nth,
            "{}",
            srv.log()
        );
        let log = srv.log();
        log.lines()
            .filter(|l| alices(l))
            .nth(nth)
            .unwrap()
            .to_string()
    };
    let wrong = refusal("wrong-password", 0);
    assert!(wrong.contains("reason=\"bad password\""), "{wrong}");
    let right = refusal(ALICE_PW, 1);
    assert!(!right.contains("bad password"), "{right}");
}

/// `radmfa_backend_failures_total{backend="store"}` as `srv`'s /metrics shows it now.
fn store_failures_of(srv: &Server) -> f64 {
    let m = prometheus_parse(&http_get(srv.metrics_addr(), "/metrics").2);
    m.get("radmfa_backend_failures_total{backend=store}")
        .copied()
        .unwrap_or(0.0)
}

/// Audit records that PostgreSQL refuses (here a trigger, as a full disk or a locked table
/// would): a no_reply client's wrong password gets no reply at all (it got its Reject with
/// no record anywhere), and Status-Server goes silent, since its probe now tries an audit
/// insert too (it wrote a challenge, found the store fine and called the node alive while
/// every login failed). Once records are taken again, both come back, and the refused
/// requests' own records say what happened where they could be written.
#[test]
fn status_server_and_no_reply_clients_follow_the_audit_table() {
    let slapd = directory();
    let pg = PgCluster::start();
    let url = pg.fresh_database();
    let db = PgCluster::database_of(&url);
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config_tuned(dir.path(), &slapd, &url, "node-a", "", |o| {
        o.clients = vec![common::radmfa::Nas {
            on_backend_failure: "no_reply",
            ..common::radmfa::Nas::challenge("silent-on-failure", "127.0.0.1")
        }];
    });
    let srv = Server::start_with(dir, config);
    let status = || common::peers::radclient_status(&srv.addr.to_string(), SECRET);
    let until_answered = || {
        let until = Instant::now() + Duration::from_secs(15);
        while status() != "Access-Accept" {
            assert!(Instant::now() < until, "never answered:\n{}", srv.log());
        }
    };
    until_answered();
    assert_eq!(code_of(&password(&srv, "bob", "wrong")), "Access-Reject");
    pg.psql(
        &db,
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON audit FOR EACH ROW \
         EXECUTE FUNCTION refuse_audit();",
    );
    // One request, sent twice as a NAS retransmits it: decided once (its wrong password
    // counted once), the retransmit gets the same silence.
    let (pkt, _) = radmfa::radius::client::AccessRequestBuilder::new(7, "bob")
        .password(b"wrong")
        .build(SECRET.as_bytes());
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.send_to(&pkt, srv.addr).unwrap();
    let withheld = "reject withheld: its audit record could not be written";
    assert!(srv.log_shows(withheld), "{}", srv.log());
    sock.send_to(&pkt, srv.addr).unwrap();
    let mut buf = [0u8; 4096];
    assert!(sock.recv_from(&mut buf).is_err(), "no reply to either");
    assert_eq!(
        srv.log().matches(withheld).count(),
        1,
        "the retransmit was decided again:\n{}",
        srv.log()
    );
    assert!(srv.log_shows("a login's audit record could not be written: Status-Server"));
    let r = password(&srv, "bob", "wrong");
    assert_eq!(code_of(&r), "timeout", "{r}\n{}", srv.log());
    assert_eq!(status(), "none", "{}", srv.log());
    pg.psql(&db, "DROP TRIGGER refuse ON audit");
    until_answered();
    assert_eq!(code_of(&password(&srv, "bob", "wrong")), "Access-Reject");
    // The trial inserts left nothing behind.
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(*) FROM audit WHERE username = 'radmfa-health-probe'"
        )
        .trim(),
        "0"
    );
}
