//! SIGHUP reloads the `[[client]]` table, the `[ldap]` settings and the policy sections: a
//! shared secret rotated and the entry renamed, a service password changed, a new challenge
//! prompt and lockout threshold, without a restart, checked with FreeRADIUS's radclient
//! against a real slapd; a file that does not validate changes nothing, and a change
//! elsewhere is reported as needing a restart.

mod common;

use std::process::Command;

use common::peers::{prometheus_parse, radclient, totp};
use common::pki::Pki;
use common::radmfa::{http_get, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

const NEW_SECRET: &str = "rotated-shared-secret-4567";

fn hup(srv: &Server) {
    let ok = Command::new("kill")
        .args(["-HUP", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// An Access-Request for an unknown user: any reply (a Reject) shows the secret was taken.
fn ask(srv: &Server, secret: &str) -> String {
    radclient(
        &srv.addr.to_string(),
        secret,
        "User-Name = nobody, User-Password = pw, Message-Authenticator = 0x00",
    )
    .code
}

#[test]
fn sighup_swaps_the_client_table_and_keeps_it_when_the_file_is_bad() {
    // No directory is needed: an unknown user is refused whether or not LDAP answers.
    let mut o = Options::new("ldap://127.0.0.1:1");
    o.extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let srv = Server::start(&o);
    // `systemctl reload` succeeds whatever the reload did: monitoring counts them here.
    let reloads = || {
        let m = prometheus_parse(&http_get(srv.metrics_addr(), "/metrics").2);
        let n = |r: &str| m[&format!("radmfa_config_reloads_total{{result={r}}}")];
        (n("applied"), n("refused"))
    };
    let restart_pending = || {
        prometheus_parse(&http_get(srv.metrics_addr(), "/metrics").2)
            ["radmfa_config_restart_pending{}"]
    };
    assert_eq!(reloads(), (0.0, 0.0));
    assert_eq!(restart_pending(), 0.0);
    let read_at = || {
        prometheus_parse(&http_get(srv.metrics_addr(), "/metrics").2)
            ["radmfa_config_last_reload_success_timestamp_seconds{}"]
    };
    let started = read_at();
    assert!(
        (started - common::peers::now() as f64).abs() < 60.0,
        "{started}"
    );
    assert_eq!(ask(&srv, SECRET), "Access-Reject");
    assert_eq!(ask(&srv, NEW_SECRET), "none", "a wrong secret is dropped");

    // Rotate the secret and rename the entry.
    let original = std::fs::read_to_string(&srv.config).unwrap();
    let entry =
        format!("[[client]]\nname = \"local\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"");
    assert!(
        original.contains(&entry),
        "the harness's client entry changed:\n{original}"
    );
    let rotated = original.replace(
        &entry,
        &format!("[[client]]\nname = \"local-rotated\"\naddress = \"127.0.0.1\"\nsecret = \"{NEW_SECRET}\""),
    );
    std::fs::write(&srv.config, &rotated).unwrap();
    common::peers::into_next_second();
    hup(&srv);
    assert!(
        srv.log_shows("reload: 1 [[client]] entries from"),
        "{}",
        srv.log()
    );
    // And which: the count alone did not say an entry was renamed (or a secret rotated).
    assert!(
        srv.log_shows("reload: [[client]] entries added: local-rotated; removed: local"),
        "{}",
        srv.log()
    );
    assert_eq!(ask(&srv, NEW_SECRET), "Access-Reject", "{}", srv.log());
    assert_eq!(ask(&srv, SECRET), "none", "the old secret still works");
    let audit = srv.audit_json("nobody");
    assert_eq!(audit[0]["nas_name"], "local-rotated", "{:?}", audit[0]);

    // A file that does not validate: the error names the key, the running table stays.
    std::fs::write(
        &srv.config,
        rotated.replace(&format!("secret = \"{NEW_SECRET}\""), "secret = \"short\""),
    )
    .unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("the running configuration is unchanged"),
        "{}",
        srv.log()
    );
    let refusal = srv.log();
    let refusal = refusal
        .lines()
        .find(|l| l.contains("the running configuration is unchanged"))
        .unwrap();
    // Named too: the log is read away from the file, where client[0] is a count to do.
    assert!(
        refusal.contains("client[0].secret") && refusal.contains("named \"local-rotated\""),
        "{refusal}"
    );
    assert_eq!(reloads(), (1.0, 1.0));
    // The applied reload moved it (a second later at least); the refused one did not.
    let applied = read_at();
    assert!(applied > started, "{started} {applied}");
    assert_eq!(
        ask(&srv, NEW_SECRET),
        "Access-Reject",
        "the table was dropped"
    );

    // A change outside [[client]] is reported, not applied; the clients are reloaded.
    let server_changed = rotated.replace("[server]\n", "[server]\nmax_in_flight = 7\n");
    assert_ne!(server_changed, rotated);
    std::fs::write(&srv.config, server_changed).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("reload: server.max_in_flight changed in"),
        "{}",
        srv.log()
    );
    assert!(srv.log().contains("takes effect after a restart"));
    assert_eq!(ask(&srv, NEW_SECRET), "Access-Reject");
    // Monitoring sees that the running configuration is behind the file.
    assert_eq!(reloads(), (2.0, 1.0));
    assert!(read_at() >= applied);
    assert_eq!(restart_pending(), 1.0);
}

/// alice's password through radclient: the State of the prompt it opens.
fn alice_prompt(host: &str) -> String {
    let first = radclient(
        host,
        SECRET,
        "User-Name = alice, User-Password = alice-pw, Message-Authenticator = 0x00",
    );
    assert_eq!(first.code, "Access-Challenge", "{}", first.output);
    first.state.expect("State")
}

/// alice's current code from `seed`, at the prompt `state`: the reply.
fn alice_answer(host: &str, seed: &str, state: &str) -> common::peers::RadclientReply {
    let code = totp(seed, common::peers::now(), &[]);
    radclient(
        host,
        SECRET,
        &format!(
            "User-Name = alice, User-Password = {code}, State = {state}, \
             Message-Authenticator = 0x00"
        ),
    )
}

/// A NAS taken out by a reload is cut off with its open prompts: an entry of that name added
/// again later (another device, another address and secret) does not finish the old one's
/// logins. Before, the prompt outlived the removal and the right code was accepted.
#[test]
fn sighup_removing_a_client_closes_its_open_prompts() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = Server::start(&Options::new(&slapd.url));
    let seed = srv.enroll("alice", &[]);
    let host = srv.addr.to_string();
    let state = alice_prompt(&host);

    let original = std::fs::read_to_string(&srv.config).unwrap();
    let entry =
        format!("[[client]]\nname = \"local\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"");
    assert!(original.contains(&entry), "{original}");
    let elsewhere = "[[client]]\nname = \"elsewhere\"\naddress = \"192.0.2.1\"\n\
                     secret = \"another-nas-secret-123\"";
    std::fs::write(&srv.config, original.replace(&entry, elsewhere)).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("reload: 1 open prompt(s) of removed client \"local\" closed"),
        "{}",
        srv.log()
    );
    // The entry back (here the same device; a replacement would do the same).
    std::fs::write(&srv.config, &original).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("entries added: local; removed: elsewhere"),
        "{}",
        srv.log()
    );
    // Described as at start, so a method the running sections cannot deliver shows.
    assert!(
        srv.log_shows("reload: client \"local\": 127.0.0.1; password, then a prompt"),
        "{}",
        srv.log()
    );
    let answer = alice_answer(&host, &seed, &state);
    assert_eq!(answer.code, "Access-Reject", "{}", answer.output);
    assert!(answer.output.contains("expired"), "{}", answer.output);

    // A member added to the entry (a NAS cluster growing): prompts opened through the
    // members it had are still answered.
    let state = alice_prompt(&host);
    let grown = original.replace(
        &entry,
        &entry.replace(
            "address = \"127.0.0.1\"",
            "address = [\"127.0.0.3\", \"127.0.0.1/32\"]",
        ),
    );
    std::fs::write(&srv.config, &grown).unwrap();
    hup(&srv);
    assert!(srv.log_shows("entries changed: local"), "{}", srv.log());
    let answer = alice_answer(&host, &seed, &state);
    assert_eq!(answer.code, "Access-Accept", "{}", answer.output);
    // The name given to another device in one reload: a prompt the old one opened is not
    // finished from the new one's address (pyrad sends from it).
    common::peers::clear_of_step_boundary(5);
    let state = alice_prompt(&host);
    let taken = original.replace(
        &entry,
        &entry.replace("address = \"127.0.0.1\"", "address = \"127.0.0.2\""),
    );
    std::fs::write(&srv.config, &taken).unwrap();
    hup(&srv);
    // The second such line: this reload's, not the one before.
    let changed = |l: &str| l.contains("entries changed: local");
    assert_eq!(srv.log_lines_at_least(2, changed), 2, "{}", srv.log());
    let code = totp(&seed, common::peers::now() + 30, &[]);
    let state_hex = state.trim_start_matches("0x");
    let answer = common::peers::pyrad(
        srv.port(),
        SECRET,
        &[
            "--user",
            "alice",
            "--password",
            &code,
            "--state",
            state_hex,
            "--bind",
            "127.0.0.2",
        ],
    );
    assert_eq!(answer["code"], "Access-Reject", "{answer}");
    let reason = srv.audit_json("alice")[0]["reason"].clone();
    assert!(
        reason
            .as_str()
            .unwrap_or_default()
            .contains("when its addresses did not include this NAS's"),
        "{reason}"
    );
    std::fs::write(&srv.config, &original).unwrap();
    hup(&srv);

    // Calls for it, while [voice] waits for a restart: said at the reload.
    let voice = original.replace(&entry, &format!("{entry}\nmethods = [\"voice\"]"));
    std::fs::write(&srv.config, voice).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("reload: client \"local\": 127.0.0.1; password, then a prompt; voice (no [voice] section)"),
        "{}",
        srv.log()
    );
}

/// A config file every account may change is refused at a reload as at start: its clients
/// are not applied. The reload read the file without the check that `Config::load` makes.
#[test]
fn sighup_refuses_a_config_file_every_account_may_change() {
    use std::os::unix::fs::PermissionsExt;
    let srv = Server::start(&Options::new("ldap://127.0.0.1:1"));
    let original = std::fs::read_to_string(&srv.config).unwrap();
    let rotated = original.replace(
        &format!("secret = \"{SECRET}\""),
        &format!("secret = \"{NEW_SECRET}\""),
    );
    assert_ne!(rotated, original);
    std::fs::write(&srv.config, &rotated).unwrap();
    let writable = std::fs::Permissions::from_mode(0o646);
    std::fs::set_permissions(&srv.config, writable).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("can be changed by every account on this host"),
        "{}",
        srv.log()
    );
    assert_eq!(ask(&srv, SECRET), "Access-Reject", "the file was applied");
    assert_eq!(ask(&srv, NEW_SECRET), "none");
}

/// slapd with alice, and radmfa in front of it with a token enrolled for her.
fn alice_behind_radmfa() -> (Slapd, Server) {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let srv = Server::start(&Options::new(&slapd.url));
    srv.enroll("alice", &[]);
    (slapd, srv)
}

/// alice's password through radclient: an Access-Challenge while the directory answers.
fn alice_login(srv: &Server) -> String {
    radclient(
        &srv.addr.to_string(),
        SECRET,
        "User-Name = alice, User-Password = alice-pw, Message-Authenticator = 0x00",
    )
    .code
}

/// Waits up to 5 s for the `n`-th "new [ldap] settings in use"; how many there are.
fn ldap_applied(srv: &Server, n: usize) -> usize {
    let needle = "reload: new [ldap] settings in use";
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while srv.log().matches(needle).count() < n && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    srv.log().matches(needle).count()
}

/// SIGHUP applies changed `[ldap]` settings too, such as another server list, without a
/// restart; settings that cannot be used change nothing. New settings are tried before they
/// are used: a mistyped service password, or a list of servers none of which answers, is
/// refused, and logins go on with the running settings. Before, both were applied and every
/// login was refused until the next reload.
#[test]
fn sighup_applies_new_ldap_settings() {
    let mut slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![common::radmfa::Nas {
        on_backend_failure: "no_reply",
        ..common::radmfa::Nas::challenge("local", "127.0.0.1")
    }];
    o.extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let srv = Server::start(&o);
    srv.enroll("alice", &[]);
    let login = || alice_login(&srv);
    let reloads = || {
        let m = prometheus_parse(&http_get(srv.metrics_addr(), "/metrics").2);
        let n = |r: &str| m[&format!("radmfa_config_reloads_total{{result={r}}}")];
        (n("applied"), n("refused"))
    };
    assert_eq!(login(), "Access-Challenge", "{}", srv.log());
    let status = || common::peers::radclient_status(&srv.addr.to_string(), SECRET);
    assert_eq!(status(), "Access-Accept", "{}", srv.log());
    let refusals = |n: usize| {
        srv.log_lines_at_least(n, |l| l.contains("the running configuration is unchanged"))
    };

    // The service password in the file no longer matches the directory's: refused, with
    // the key and the directory's answer; the running settings go on serving.
    let original = std::fs::read_to_string(&srv.config).unwrap();
    let right = "bind_password = \"adminpw\"";
    assert!(original.contains(right), "the harness's [ldap] changed");
    let wrong = original.replace(right, "bind_password = \"not-the-password\"");
    std::fs::write(&srv.config, &wrong).unwrap();
    hup(&srv);
    assert_eq!(refusals(1), 1, "{}", srv.log());
    let refusal = srv.log();
    let refusal = refusal
        .lines()
        .find(|l| l.contains("the running configuration is unchanged"))
        .unwrap();
    assert!(
        refusal.contains("ldap.bind_password changed, but no server of the new [ldap]")
            && refusal.contains("invalidCredentials")
            && refusal.contains("nothing of the file is applied"),
        "{refusal}"
    );
    assert!(!refusal.contains("not-the-password"), "{refusal}");
    assert_eq!(reloads(), (0.0, 1.0));
    assert_eq!(ldap_applied(&srv, 0), 0, "{}", srv.log());
    assert_eq!(login(), "Access-Challenge", "{}", srv.log());
    assert_eq!(status(), "Access-Accept", "{}", srv.log());

    // A new server list of which no server answers: refused too.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("ldap://{}", dead.local_addr().unwrap());
    drop(dead);
    let urls = format!("urls = [{:?}]", slapd.url);
    assert!(original.contains(&urls), "the harness's [ldap] changed");
    let unreachable = original.replace(&urls, &format!("urls = [{dead_url:?}]"));
    std::fs::write(&srv.config, &unreachable).unwrap();
    hup(&srv);
    assert_eq!(refusals(2), 2, "{}", srv.log());
    assert!(
        srv.log().contains(&format!(
            "ldap.urls changed, but no server of the new [ldap] settings took the service \
             account's bind and read base_dn ({dead_url}: "
        )),
        "{}",
        srv.log()
    );
    assert_eq!(login(), "Access-Challenge", "{}", srv.log());

    // The right password with a CA file that holds no certificate: refused as well.
    let empty_ca = srv.config.with_file_name("empty-ca.pem");
    std::fs::write(&empty_ca, "").unwrap();
    let unusable = original.replace(
        right,
        &format!("{right}\nca_file = {:?}", empty_ca.display().to_string()),
    );
    std::fs::write(&srv.config, &unusable).unwrap();
    hup(&srv);
    assert!(srv.log_shows("holds no PEM certificate"), "{}", srv.log());
    assert!(srv.log().contains("reload: [ldap]: "), "{}", srv.log());
    assert_eq!(reloads(), (0.0, 3.0));

    // A mistyped base_dn: the bind works, the base is not there, and every login would
    // find nobody. Refused, naming the base; it was applied and logged as a success.
    let base = original
        .lines()
        .find(|l| l.starts_with("base_dn = "))
        .expect("the harness's [ldap] has base_dn")
        .to_string();
    let typo = original.replace(&base, "base_dn = \"ou=peple,dc=example,dc=org\"");
    std::fs::write(&srv.config, &typo).unwrap();
    hup(&srv);
    assert_eq!(refusals(4), 4, "{}", srv.log());
    assert!(
        srv.log().contains("ldap.base_dn changed, but no server")
            && srv.log().contains("connected and bound, but"),
        "{}",
        srv.log()
    );
    assert_eq!(ldap_applied(&srv, 0), 0, "{}", srv.log());
    assert_eq!(reloads(), (0.0, 4.0));
    assert_eq!(login(), "Access-Challenge", "{}", srv.log());

    // A list whose first server is down but whose second binds: applied, no restart.
    let failover = original.replace(&urls, &format!("urls = [{dead_url:?}, {:?}]", slapd.url));
    std::fs::write(&srv.config, &failover).unwrap();
    hup(&srv);
    assert_eq!(ldap_applied(&srv, 1), 1, "{}", srv.log());
    assert!(
        !srv.log().contains("[ldap] changed in"),
        "reported as needing a restart"
    );
    // The server that failed is warned of, as at start (only a gauge told of it).
    assert!(
        srv.log()
            .contains(&format!("reload: new [ldap] settings: {dead_url}: ")),
        "{}",
        srv.log()
    );
    assert_eq!(reloads(), (1.0, 4.0));
    assert_eq!(login(), "Access-Challenge", "{}", srv.log());
    let t = std::time::Instant::now();
    while status() != "Access-Accept" {
        assert!(t.elapsed().as_secs() < 10, "{}", srv.log());
    }

    // The directory down at the reload, for a reason of its own: the change cannot be
    // tried, so it waits (and the rest of the file with it) for a reload once it answers.
    slapd.stop();
    std::fs::write(&srv.config, &original).unwrap();
    hup(&srv);
    assert_eq!(refusals(5), 5, "{}", srv.log());
    slapd.restart();
    hup(&srv);
    assert_eq!(ldap_applied(&srv, 2), 2, "{}", srv.log());
    assert_eq!(reloads(), (2.0, 5.0));
    assert_eq!(login(), "Access-Challenge", "{}", srv.log());
}

/// `entry_cache_seconds` through the server: radclient's logins after the first cost slapd
/// no search, and every SIGHUP empties the cache (how an admin makes a changed phone number
/// or a renamed account count at once), even when the file did not change. The directory's
/// open connections stay: a reload that left [ldap] as it was made every login after it
/// connect again (at a branch office's distance from its DC, 1.5 s instead of 0.7).
#[test]
fn sighup_empties_the_ldap_entry_cache() {
    let (slapd, srv) = alice_behind_radmfa();
    let original = std::fs::read_to_string(&srv.config).unwrap();
    let anchor = "user_filter = \"(uid={user})\"\n";
    assert!(original.contains(anchor), "the harness's [ldap] changed");
    let caching = original.replace(anchor, &format!("{anchor}entry_cache_seconds = 300\n"));
    std::fs::write(&srv.config, &caching).unwrap();
    hup(&srv);
    assert_eq!(ldap_applied(&srv, 1), 1, "{}", srv.log());
    // slapd logs a search as it reads it, but from its own thread; give it a moment.
    let searches = || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        slapd.search_count("uid=alice)")
    };
    let before = searches();
    for _ in 0..3 {
        assert_eq!(alice_login(&srv), "Access-Challenge", "{}", srv.log());
    }
    assert_eq!(searches(), before + 1, "one search for three logins");
    assert!(
        !srv.log().contains("LDAP entry cache emptied"),
        "turning the cache on emptied nothing"
    );

    std::thread::sleep(std::time::Duration::from_millis(300));
    let connections = slapd.connections_used();
    hup(&srv);
    assert!(
        srv.log_shows("reload: LDAP entry cache emptied"),
        "{}",
        srv.log()
    );
    // [ldap] itself did not change: not said to have.
    assert_eq!(
        srv.log()
            .matches("reload: new [ldap] settings in use")
            .count(),
        1,
        "{}",
        srv.log()
    );
    assert_eq!(alice_login(&srv), "Access-Challenge", "{}", srv.log());
    assert_eq!(searches(), before + 2, "searched again after the reload");
    assert_eq!(
        slapd.connections_used(),
        connections,
        "the login after the reload opened new connections\n{}",
        slapd.log_tail()
    );
}

/// A service password kept in `bind_password_file` and rotated there is taken on SIGHUP,
/// though the config file itself did not change.
#[test]
fn sighup_rereads_a_rotated_bind_password_file() {
    let (_slapd, srv) = alice_behind_radmfa();
    let original = std::fs::read_to_string(&srv.config).unwrap();
    let right = "bind_password = \"adminpw\"";
    assert!(original.contains(right), "the harness's [ldap] changed");
    let file = srv.config.with_file_name("ldap-password");
    common::peers::write_private(&file, "adminpw\n");
    let from_file = original.replace(
        right,
        &format!("bind_password_file = {:?}", file.display().to_string()),
    );
    std::fs::write(&srv.config, &from_file).unwrap();
    hup(&srv);
    assert_eq!(ldap_applied(&srv, 1), 1, "{}", srv.log());
    assert_eq!(alice_login(&srv), "Access-Challenge", "{}", srv.log());

    // Rotated in the file only (here: to one the directory refuses, which the reload
    // finds before using it, and says whose contents changed).
    std::fs::write(&file, "not-the-password\n").unwrap();
    hup(&srv);
    assert!(
        srv.log_shows(
            "reload: ldap.bind_password_file (its contents) changed, but no server of the new \
             [ldap] settings took the service account's bind"
        ),
        "{}",
        srv.log()
    );
    assert_eq!(ldap_applied(&srv, 1), 1, "{}", srv.log());
    assert_eq!(alice_login(&srv), "Access-Challenge", "{}", srv.log());
}

/// An SMS provider's token rotated in its file: `[http_sms]` is not reloaded, and its text
/// did not change, so the log must say the new token waits for a restart rather than let the
/// reload look like it applied it.
#[test]
fn sighup_says_a_rotated_provider_token_file_needs_a_restart() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("sms-token");
    common::peers::write_private(&token, "first-token\n");
    let mut o = Options::new(&slapd.url);
    o.extra = format!(
        "\n[http_sms]\nurl = \"https://sms.example.org/send?to={{phone}}&text={{message}}\"\n\
         method = \"GET\"\nauth = \"bearer\"\ntoken_file = {:?}\n",
        token.display().to_string()
    );
    let config = common::radmfa::write_config(dir.path(), &o);
    let srv = Server::start_with(dir, config);
    hup(&srv);
    assert!(
        srv.log_shows("reload: 1 [[client]] entries"),
        "{}",
        srv.log()
    );
    assert!(
        !srv.log().contains("takes effect after a restart"),
        "{}",
        srv.log()
    );
    std::fs::write(&token, "second-token\n").unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("reload: http_sms.token changed in"),
        "{}",
        srv.log()
    );
    assert!(!srv.log().contains("second-token"), "the token is logged");

    // A key in the gateway's URL (its Debug masks the URL, so the section looked the same):
    // rotated, it must not look applied either, nor be logged. (The token rotated above is
    // still waiting for the restart too.)
    let text = std::fs::read_to_string(&srv.config).unwrap();
    let rotated = text.replace("send?to=", "send?apikey=rotated-key-77&to=");
    assert_ne!(text, rotated);
    std::fs::write(&srv.config, rotated).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("reload: http_sms.url, http_sms.token changed in"),
        "{}",
        srv.log()
    );
    assert!(!srv.log().contains("rotated-key-77"), "the key is logged");
}

/// A CA bundle replaced at the same `[ldap] ca_file` path is read again on SIGHUP, though
/// the config file did not change: a bundle without a certificate is refused (the running
/// settings stay), a good one is taken.
#[test]
fn sighup_rereads_a_replaced_ldap_ca_file() {
    let (_slapd, srv) = alice_behind_radmfa();
    let login = || alice_login(&srv);
    let applied = |n: usize| ldap_applied(&srv, n);

    // The directory is plain ldap:// here, so the CA is read and checked but not used.
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make(pki_dir.path(), "ldap");
    let bundle = pki_dir.path().join("ldap-ca-bundle.pem");
    std::fs::copy(&pki.ca, &bundle).unwrap();
    let original = std::fs::read_to_string(&srv.config).unwrap();
    let right = "bind_password = \"adminpw\"";
    let with_ca = original.replace(
        right,
        &format!("{right}\nca_file = {:?}", bundle.display().to_string()),
    );
    assert_ne!(with_ca, original);
    std::fs::write(&srv.config, &with_ca).unwrap();
    hup(&srv);
    assert_eq!(applied(1), 1, "{}", srv.log());
    assert_eq!(login(), "Access-Challenge", "{}", srv.log());

    // The bundle is replaced in place; the config file stays as it is.
    std::fs::write(&bundle, "not a certificate\n").unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("holds no PEM certificate"),
        "the replaced CA file was not read again:\n{}",
        srv.log()
    );
    assert_eq!(applied(1), 1);
    assert_eq!(login(), "Access-Challenge", "{}", srv.log());

    std::fs::copy(&pki.ca, &bundle).unwrap();
    hup(&srv);
    assert_eq!(applied(2), 2, "{}", srv.log());
    assert_eq!(login(), "Access-Challenge", "{}", srv.log());
}

/// SIGHUP applies changed policy sections from the next request: a new challenge prompt is
/// shown and a lower lockout threshold locks at once.
#[test]
fn sighup_applies_new_policy_sections() {
    let (_slapd, srv) = alice_behind_radmfa();
    let seed = srv.enroll("alice", &[]); // --force: a new seed, known to this test
    let default_prompt = "Enter the code from your authenticator app or token";
    let r = radclient(
        &srv.addr.to_string(),
        SECRET,
        "User-Name = alice, User-Password = alice-pw, Message-Authenticator = 0x00",
    );
    assert_eq!(r.code, "Access-Challenge", "{}", srv.log());
    assert!(r.output.contains(default_prompt), "{}", r.output);

    let prompt = "Type the six digits from radmfa-test";
    let original = std::fs::read_to_string(&srv.config)
        .unwrap()
        .replace("[audit]\n", "[audit]\nkeep_days = 400\n");
    std::fs::write(
        &srv.config,
        format!(
            "{original}\n[challenge]\nprompt = {prompt:?}\n\n[lockout]\nthreshold = 1\n\
             duration_secs = 600\n"
        ),
    )
    .unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("reload: [challenge], [lockout] in use from the next request"),
        "{}",
        srv.log()
    );
    // The purge reads keep_days once a minute, not at a request.
    assert!(
        srv.log_shows(
            "reload: audit.keep_days in use from the next housekeeping run, within a minute"
        ),
        "{}",
        srv.log()
    );
    assert!(
        !srv.log().contains("takes effect after a restart"),
        "{}",
        srv.log()
    );

    let r = radclient(
        &srv.addr.to_string(),
        SECRET,
        "User-Name = alice, User-Password = alice-pw, Message-Authenticator = 0x00",
    );
    assert_eq!(r.code, "Access-Challenge", "{}", srv.log());
    assert!(r.output.contains(prompt), "the old prompt:\n{}", r.output);

    // One wrong code: the default threshold (5) would not lock, the reloaded one (1) does.
    let right = totp(&seed, common::peers::now(), &[]);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let state = r.state.expect("State in the challenge");
    let answer = radclient(
        &srv.addr.to_string(),
        SECRET,
        &format!(
            "User-Name = alice, User-Password = {wrong}, State = {state}, \
             Message-Authenticator = 0x00"
        ),
    );
    assert_ne!(answer.code, "Access-Accept");
    let audit = srv.audit_json("alice");
    assert!(
        audit.iter().any(|r| r["result"] == "lock"),
        "one wrong code did not lock: {audit:?}"
    );
}

/// The RadSec listener keeps the idle timeout it started with, so a reload is held to it: a
/// file that raises both `idle_timeout_secs` and a held call's `voice_budget_secs` past the
/// running timeout is refused (the call would outlive its connection), and the clients stay.
#[test]
fn sighup_holds_new_clients_to_the_running_radsec_idle_timeout() {
    use common::oob_env::{client, delivery, directory};
    use common::provider_standin::Standin;

    let slapd = directory();
    let standin = Standin::start();
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::make(pki_dir.path(), "nas");
    let mut o = Options::new(&slapd.url);
    o.clients.clear();
    o.extra = format!(
        "{}\n[radsec]\nlisten = [\"127.0.0.1:0\"]\ncert_file = {:?}\nkey_file = {:?}\n\
         ca_file = {:?}\nidle_timeout_secs = 30\n{}",
        delivery(&standin, ""),
        pki.server_cert,
        pki.server_key,
        pki.ca,
        client(
            "vpn",
            "127.0.0.1",
            "methods = [\"totp\", \"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 10"
        ),
    );
    let srv = Server::start(&o);
    assert_eq!(ask(&srv, SECRET), "Access-Reject", "{}", srv.log());

    let original = std::fs::read_to_string(&srv.config).unwrap();
    let longer = original
        .replace("idle_timeout_secs = 30", "idle_timeout_secs = 300")
        .replace("voice_budget_secs = 10", "voice_budget_secs = 60")
        .replace(
            &format!("secret = \"{SECRET}\""),
            &format!("secret = \"{NEW_SECRET}\""),
        );
    assert_ne!(longer, original);
    std::fs::write(&srv.config, &longer).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("not shorter than the running radsec.idle_timeout_secs (30 s)"),
        "{}",
        srv.log()
    );
    assert!(srv.log().contains("the running configuration is unchanged"));
    assert_eq!(ask(&srv, SECRET), "Access-Reject", "the clients changed");
    assert_eq!(ask(&srv, NEW_SECRET), "none");

    // The same file with the call inside the running timeout is applied (the [radsec]
    // change is reported as waiting for a restart).
    std::fs::write(
        &srv.config,
        longer.replace("voice_budget_secs = 60", "voice_budget_secs = 12"),
    )
    .unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("reload: 1 [[client]] entries from"),
        "{}",
        srv.log()
    );
    assert_eq!(ask(&srv, NEW_SECRET), "Access-Reject", "{}", srv.log());
}

/// [voice] waits for a restart, so a reload's held calls are held to the running call
/// lifetime: a file that raises both `call_lifetime_secs` and a hold client's
/// `voice_budget_secs` past the running lifetime is refused, and the clients stay.
#[test]
fn sighup_holds_new_clients_to_the_running_call_lifetime() {
    use common::oob_env::{client, delivery, directory};
    use common::provider_standin::Standin;

    let slapd = directory();
    let standin = Standin::start();
    let mut o = Options::new(&slapd.url);
    o.clients.clear();
    let voice = delivery(&standin, "").replacen(
        "[voice]\n",
        "[voice]\ncall_lifetime_secs = 30\nring_timeout_secs = 20\n",
        1,
    );
    assert!(voice.contains("call_lifetime_secs = 30"));
    o.extra = format!(
        "{voice}{}",
        client(
            "vpn",
            "127.0.0.1",
            "methods = [\"totp\", \"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 10"
        ),
    );
    let srv = Server::start(&o);
    let original = std::fs::read_to_string(&srv.config).unwrap();
    let longer = original
        .replace("call_lifetime_secs = 30", "call_lifetime_secs = 120")
        .replace("voice_budget_secs = 10", "voice_budget_secs = 60")
        .replace(
            &format!("secret = \"{SECRET}\""),
            &format!("secret = \"{NEW_SECRET}\""),
        );
    std::fs::write(&srv.config, &longer).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("longer than voice.call_lifetime_secs (30 s)"),
        "{}",
        srv.log()
    );
    assert!(srv.log().contains("the running configuration is unchanged"));
    assert_eq!(ask(&srv, SECRET), "Access-Reject", "the clients changed");
}

/// A request in flight when SIGHUP rotates its client's secret is answered with the secret
/// it came in under (the NAS verifies the reply with that one); the next request needs the
/// new secret. The directory here accepts connections and never answers, so the login is
/// held until the LDAP timeout; its connection arriving shows the request is in flight.
#[test]
fn a_request_in_flight_during_a_secret_rotation_is_answered_with_its_own_secret() {
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = Options::new(&format!("ldap://{}", mute.local_addr().unwrap()));
    o.ldap_timeout_ms = 1500;
    let srv = Server::start(&o);
    // The start's check of the directory connects first (before any login is sent): kept
    // open, never answered, so that the next connection is the login's.
    let (_check, _) = mute.accept().unwrap();
    let port = srv.port();
    let held = std::thread::spawn(move || {
        common::peers::pyrad(
            port,
            SECRET,
            &["--user", "alice", "--password", "pw", "--timeout", "5"],
        )
    });
    // The login's LDAP connection: it is in flight now. Kept open, never answered.
    let (_conn, _) = mute.accept().unwrap();
    let original = std::fs::read_to_string(&srv.config).unwrap();
    let old = format!("secret = \"{SECRET}\"");
    assert!(original.contains(&old));
    std::fs::write(
        &srv.config,
        original.replace(&old, &format!("secret = \"{NEW_SECRET}\"")),
    )
    .unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("reload: 1 [[client]] entries from"),
        "{}",
        srv.log()
    );
    // pyrad checks the reply's Response Authenticator and Message-Authenticator with the
    // old secret: a reply signed with the new one would be discarded ("timeout").
    let r = held.join().unwrap();
    assert_eq!(r["code"], "Access-Reject", "{r}\n{}", srv.log());
    let audit = srv.audit_json("alice");
    assert!(
        audit[0]["reason"]
            .as_str()
            .is_some_and(|s| s.contains("directory")),
        "{audit:#?}"
    );
    // After the reload: the old secret is dropped, the new one is served.
    assert_eq!(ask(&srv, SECRET), "none");
    drop(mute);
    drop(_conn);
}

/// A service account the directory refused is held off (see `a_refused_service_account_is_
/// not_bound_again_for_every_request` in server.rs) until a bind works or a reload: an
/// admin who fixes the account in the directory, where radmfa's file has nothing to change,
/// reloads and is served at once, not after the hold (up to 10 minutes).
#[test]
fn sighup_lifts_the_hold_on_a_refused_service_account() {
    let svc = LdapUser::new("svc", "svc-old-pw");
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw"), svc.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let config = common::radmfa::write_config(dir.path(), &Options::new(&slapd.url));
    let text = std::fs::read_to_string(&config).unwrap();
    let admin = "bind_dn = \"cn=admin,dc=example,dc=org\"\nbind_password = \"adminpw\"";
    assert!(text.contains(admin), "{text}");
    let as_svc = format!("bind_dn = \"{}\"\nbind_password = \"svc-new-pw\"", svc.dn());
    std::fs::write(&config, text.replace(admin, &as_svc)).unwrap();
    let srv = Server::start_with(dir, config);
    // The start's check binds (and is refused) once, which holds the logins' binds off for
    // the first hold (5 s); the logins below come after it, as after a login's refusal.
    assert!(
        srv.log_shows(&format!("service bind as {}: rc=49", svc.dn())),
        "{}",
        srv.log()
    );
    let hold_ends = std::time::Instant::now() + std::time::Duration::from_millis(5_500);
    // The enrollment's own directory check binds (and is refused) once, in its process.
    srv.enroll("alice", &[]);
    std::thread::sleep(hold_ends.saturating_duration_since(std::time::Instant::now()));
    let before = slapd.bind_count(&svc.dn());
    for _ in 0..3 {
        assert_eq!(alice_login(&srv), "Access-Reject", "{}", srv.log());
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        slapd.bind_count(&svc.dn()) - before,
        1,
        "one refused bind, then held"
    );
    // Fixed in the directory: still held until the reload.
    slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: userPassword\nuserPassword: svc-new-pw\n",
        svc.dn()
    ));
    assert_eq!(alice_login(&srv), "Access-Reject", "{}", srv.log());
    hup(&srv);
    let t = std::time::Instant::now();
    while !srv.log_shows("[[client]] entries from") {
        assert!(t.elapsed().as_secs() < 5, "{}", srv.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(alice_login(&srv), "Access-Challenge", "{}", srv.log());
}

/// A SIGHUP while `radmfa serve` is still reading its config file (`systemctl restart`, then
/// `reload` at once) does not end it: it is kept, and applied as a reload once the server
/// serves. Before, the signal's default action ended the process, with nothing logged, until
/// the reloader existed. The file is a FIFO here, so that the server waits at that read for
/// as long as the test needs.
#[test]
fn sighup_while_reading_the_config_at_start_is_applied_once_serving() {
    let dir = tempfile::tempdir().unwrap();
    let real = common::radmfa::write_config(dir.path(), &Options::new("ldap://127.0.0.1:1"));
    let text = std::fs::read_to_string(&real).unwrap();
    let config = dir.path().join("fifo.toml");
    let made = Command::new("mkfifo")
        .args(["-m", "0600"])
        .arg(&config)
        .status()
        .unwrap();
    assert!(made.success());
    let feeder = {
        let config = config.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            // Read and write: the open does not wait for the server, and the server's read
            // waits for the text.
            let mut fifo = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&config)
                .unwrap();
            let pid = server_reading(&config);
            let ok = Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
            std::thread::sleep(std::time::Duration::from_millis(300));
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let alive = status
                .lines()
                .any(|l| l.starts_with("State:") && !l.contains("zombie"));
            // The reload reads the path again: a plain file by then. The server holds the
            // FIFO open and gets the text from it. (A server gone took the directory along.)
            if alive {
                std::fs::rename(&real, &config).unwrap();
                fifo.write_all(text.as_bytes()).unwrap();
            }
            alive
        })
    };
    let mut cmd = Command::new(common::radmfa::bin());
    cmd.arg("--config").arg(&config).arg("serve");
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Server::spawn(dir, config.clone(), cmd)
    }));
    assert!(
        feeder.join().unwrap(),
        "a SIGHUP while radmfa read its config file ended it"
    );
    let srv = started.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(
        srv.log_shows("reload: 1 [[client]] entries from"),
        "the SIGHUP was not applied once serving:\n{}",
        srv.log()
    );
    assert_eq!(ask(&srv, SECRET), "Access-Reject", "{}", srv.log());
}

/// The `radmfa --config PATH serve` process, once it has `path` open (10 s at most). By its
/// command line too: a child of this test process, forked by another test and not yet
/// running its program, has the FIFO open as well.
fn server_reading(path: &std::path::Path) -> u32 {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reading = |pid: u32| {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        cmd.contains(&*path.to_string_lossy())
            && cmd.ends_with(" serve ")
            && std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == path))
            })
    };
    loop {
        let pids = std::fs::read_dir("/proc").unwrap().flatten();
        let mut pids = pids.filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok());
        if let Some(pid) = pids.find(|pid| reading(*pid)) {
            return pid;
        }
        assert!(
            std::time::Instant::now() < until,
            "no radmfa opened {}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A seed key file replaced at the same `store.key_file` path changes no text of the config
/// file, yet the next start runs with it: a reload says it waits for a restart, and that the
/// start will refuse a key the database's seeds are not sealed with. The key put back (a
/// new file, the same key) changes nothing. Before, the replacement went unnoticed.
#[test]
fn sighup_says_a_replaced_store_key_file_needs_a_restart() {
    let mut o = Options::new("ldap://127.0.0.1:1");
    o.extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let srv = Server::start(&o);
    let restart_pending = || {
        prometheus_parse(&http_get(srv.metrics_addr(), "/metrics").2)
            ["radmfa_config_restart_pending{}"]
    };
    let reloaded = |n: usize| srv.log_lines_at_least(n, |l| l.contains("[[client]] entries from"));
    let key = srv.config.with_file_name("radmfa.key");
    let in_use = std::fs::read_to_string(&key).unwrap();
    std::fs::write(&key, format!("{}\n", "5a".repeat(32))).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows(
            "reload: store.key_file (another key, not the one this database's seeds are sealed \
             with: the next start refuses to run; put the key in use back) changed in"
        ),
        "{}",
        srv.log()
    );
    assert_eq!(restart_pending(), 1.0);

    std::fs::remove_file(&key).unwrap();
    common::peers::write_private(&key, &in_use);
    hup(&srv);
    assert_eq!(reloaded(2), 2, "{}", srv.log());
    assert_eq!(restart_pending(), 0.0, "{}", srv.log());
    assert_eq!(
        srv.log().matches("store.key_file").count(),
        1,
        "{}",
        srv.log()
    );
}

/// A reload logs the configuration warnings it brings, not every warning again: a config
/// tool reloading every minute filled the log with the start's warnings (4 lines per
/// reload, thousands a day). Those still in force are counted in one line.
#[test]
fn sighup_logs_only_the_warnings_it_brings() {
    let o = Options::new("ldap://127.0.0.1:1");
    let srv = Server::start(&o);
    let reloaded = |n: usize| srv.log_lines_at_least(n, |l| l.contains("[[client]] entries from"));
    // The harness's config has a shutdown grace shorter than the request deadline.
    let grace = "is shorter than server.request_deadline_ms";
    assert_eq!(
        srv.log_lines_at_least(1, |l| l.contains(grace)),
        1,
        "{}",
        srv.log()
    );
    hup(&srv);
    assert_eq!(reloaded(1), 1, "{}", srv.log());
    hup(&srv);
    assert_eq!(reloaded(2), 2, "{}", srv.log());
    let log = srv.log();
    assert_eq!(
        log.matches(grace).count(),
        1,
        "said again at a reload:\n{log}"
    );
    assert_eq!(
        log.matches("warning(s) logged before still apply").count(),
        2,
        "{log}"
    );
    // A warning the reload brings is said.
    let text = std::fs::read_to_string(&srv.config).unwrap();
    let wide = text.replacen("address = \"127.0.0.1\"", "address = \"0.0.0.0/0\"", 1);
    assert_ne!(text, wide, "the harness's client entry changed:\n{text}");
    std::fs::write(&srv.config, wide).unwrap();
    hup(&srv);
    assert_eq!(reloaded(3), 3, "{}", srv.log());
    assert!(
        srv.log_shows("address 0.0.0.0/0: every address on the internet may use"),
        "{}",
        srv.log()
    );
}
