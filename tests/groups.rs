//! Directory groups per client (`allow_groups`, `exempt_groups`), end to end: a real slapd
//! with groupOfNames entries, the real server, and pyrad/radclient as the NAS.

mod common;

use common::peers::{assert_same_reply, now, pyrad, radclient, totp};
use common::radmfa::{Options, Server, SECRET};
use common::slapd::{group_dn, groups_ldif, LdapUser, Slapd, SlapdOptions};

fn directory() -> Slapd {
    let users: Vec<LdapUser> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|u| LdapUser::new(u, &format!("{u}-pw")))
        .collect();
    Slapd::start_with(
        &users,
        SlapdOptions {
            extra_ldif: groups_ldif(&[
                ("vpn-users", &["alice", "carol"]),
                ("mfa-exempt", &["carol", "dave"]),
            ]),
            ..Default::default()
        },
    )
}

/// Two NAS: a VPN (127.0.0.1, code prompt, app passwords) open to vpn-users with mfa-exempt
/// skipping the code, its Accepts carrying a Class and a Filter-Id (which a Reject for a
/// right password must not leak), and an RD Gateway (127.0.0.2, second factor only) where mfa-exempt
/// skips the call.
fn start(slapd: &Slapd) -> Server {
    let (vpn, exempt) = (group_dn("vpn-users"), group_dn("mfa-exempt"));
    with_clients(
        slapd,
        &format!(
            r#"
[[client]]
name = "vpn"
address = "127.0.0.1"
secret = "{SECRET}"
allow_groups = ["{vpn}"]
exempt_groups = ["{exempt}"]
app_passwords = true
accept_attributes = ["Class = vpn-staff", "Filter-Id = vpn-acl"]

[[client]]
name = "rd-gateway"
address = "127.0.0.2"
secret = "{SECRET}"
second_factor_only = true
methods = ["voice"]
voice_mode = "hold"
exempt_groups = ["{exempt}"]
"#
        ),
    )
}

/// The server with these `[[client]]` entries (TOML) in place of the default one.
fn with_clients(slapd: &Slapd, clients: &str) -> Server {
    let mut o = Options::new(&slapd.url);
    o.clients.clear();
    o.extra = clients.to_string();
    Server::start(&o)
}

fn password(srv: &Server, user: &str, pw: &str) -> serde_json::Value {
    pyrad(
        srv.port(),
        SECRET,
        &["--user", user, "--password", pw, "--timeout", "5"],
    )
}

fn code(v: &serde_json::Value) -> &str {
    v["code"].as_str().unwrap_or("none")
}

fn last_audit(srv: &Server, user: &str) -> serde_json::Value {
    srv.audit_json(user)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no audit record for {user}"))
}

#[test]
fn allowed_groups_gate_the_client_and_exempt_groups_skip_the_second_factor() {
    let slapd = directory();
    let srv = start(&slapd);

    // alice: in vpn-users, not exempt → the code prompt, then Accept with her code.
    let seed = srv.enroll("alice", &[]);
    let r = password(&srv, "alice", "alice-pw");
    assert_eq!(code(&r), "Access-Challenge", "{r}\n{}", srv.log());
    let state = r["state"].as_str().unwrap().to_string();
    let c = totp(&seed, now(), &[]);
    let r = pyrad(
        srv.port(),
        SECRET,
        &["--user", "alice", "--password", &c, "--state", &state],
    );
    assert_eq!(code(&r), "Access-Accept", "{r}");
    // What an Accept carries here, so that a Reject leaking it would show below.
    assert_eq!(
        (&r["attributes"]["Class"], &r["attributes"]["Filter-Id"]),
        (
            &serde_json::json!([hex::encode("vpn-staff")]),
            &serde_json::json!(["vpn-acl"])
        ),
        "{r}"
    );

    // bob: right password, in no allowed group → Reject, the same reply as a wrong password;
    // the audit record says why.
    let right = password(&srv, "bob", "bob-pw");
    let wrong = password(&srv, "bob", "not-bobs");
    assert_eq!(code(&right), "Access-Reject", "{right}");
    assert_same_reply(&right, &wrong);
    let audit = srv.audit_json("bob");
    assert_eq!(audit[0]["reason"], "bad password", "{audit:?}");
    assert!(
        audit[1]["reason"]
            .as_str()
            .unwrap()
            .contains("not a member of any allow_groups of client \"vpn\""),
        "{audit:?}"
    );

    // An app password stands in for password and code, not for the allowed groups.
    let app_password = |user: &str| {
        let out = srv.cli(&["user", "app-password", "add", user]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let r = password(&srv, "bob", &app_password("bob"));
    assert_eq!(code(&r), "Access-Reject", "{r}");
    assert_same_reply(&r, &wrong);
    let rec = last_audit(&srv, "bob");
    assert_eq!(rec["mode"], "app-password", "{rec}");
    assert!(
        rec["reason"].as_str().unwrap().contains("allow_groups"),
        "{rec}"
    );
    let r = password(&srv, "alice", &app_password("alice"));
    assert_eq!(code(&r), "Access-Accept", "{r}");

    // carol: allowed and exempt, no token at all → Accept on the password, through a
    // client nobody here wrote (radclient), audited as exempt.
    let reply = radclient(
        &srv.addr.to_string(),
        SECRET,
        "User-Name = carol, User-Password = carol-pw, Message-Authenticator = 0x00",
    );
    assert_eq!(reply.code, "Access-Accept", "{}", reply.output);
    let rec = last_audit(&srv, "carol");
    assert_eq!(rec["mode"], "exempt", "{rec}");
    let exempt = group_dn("mfa-exempt");
    assert_eq!(
        rec["reason"].as_str(),
        Some(format!("member of exempt group {exempt}").as_str())
    );
    // ... but only with her password.
    let r = password(&srv, "carol", "wrong");
    assert_eq!(code(&r), "Access-Reject", "{r}");

    // dave: exempt but not in an allowed group: the allowed groups come first, and his
    // Reject is anyone's.
    let r = password(&srv, "dave", "dave-pw");
    assert_eq!(code(&r), "Access-Reject", "{r}");
    assert_same_reply(&r, &wrong);

    // RD Gateway (second factor only): an exempt user needs no call; others would.
    let rdg = |user: &str| {
        pyrad(
            srv.port(),
            SECRET,
            &[
                "--bind",
                "127.0.0.2",
                "--user",
                user,
                "--nas-port-type",
                "5",
                "--called-station-id",
                "UserAuthType:PW",
            ],
        )
    };
    let r = rdg("dave");
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(last_audit(&srv, "dave")["mode"], "exempt");
    let r = rdg("bob");
    assert_eq!(code(&r), "Access-Reject", "{r}");
}

#[test]
fn on_an_inline_client_exempt_users_send_the_password_alone() {
    let slapd = directory();
    let exempt = group_dn("mfa-exempt");
    let clients = format!(
        r#"
[[client]]
name = "wifi"
address = "127.0.0.1"
secret = "{SECRET}"
otp_mode = "inline"
exempt_groups = ["{exempt}"]
"#
    );
    let srv = with_clients(&slapd, &clients);
    // Both have tokens; only carol is exempt.
    let alice = srv.enroll("alice", &[]);
    srv.enroll("carol", &[]);
    let r = password(&srv, "carol", "carol-pw");
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(last_audit(&srv, "carol")["mode"], "exempt");
    let r = password(&srv, "alice", "alice-pw");
    assert_eq!(code(&r), "Access-Reject", "{r}");
    let rec = last_audit(&srv, "alice");
    assert_eq!(
        rec["reason"], "no code found in the password field",
        "{rec}"
    );
    let field = format!("alice-pw,{}", totp(&alice, now(), &[]));
    let r = password(&srv, "alice", &field);
    assert_eq!(code(&r), "Access-Accept", "{r}");
}

/// `accept_attributes` and `group_attributes`: every Access-Accept through the client
/// carries the first, members of a group also that group's, decoded by radclient with
/// FreeRADIUS's own dictionaries (the vendor ones too). Challenges and rejects carry none.
/// `exempt_networks`: from a listed address (IPv4, IPv6 or IPv4-mapped, as
/// Calling-Station-Id) the password alone; from any other address, none, or a MAC address,
/// the second factor; the password and allow_groups still count; on an inline client the
/// code may be left out.
#[test]
fn exempt_networks_skip_the_second_factor_from_listed_addresses_only() {
    let slapd = directory();
    let vpn = group_dn("vpn-users");
    let srv = with_clients(
        &slapd,
        &format!(
            r#"
[[client]]
name = "vpn"
address = "127.0.0.1"
secret = "{SECRET}"
allow_groups = ["{vpn}"]
exempt_networks = ["198.51.100.0/24", "2001:db8::/32"]

[[client]]
name = "inline-vpn"
address = "127.0.0.2"
secret = "{SECRET}"
otp_mode = "inline"
exempt_networks = ["198.51.100.0/24"]
"#
        ),
    );
    srv.enroll("alice", &[]);
    let bob = srv.enroll("bob", &[]);
    let from = |bind: &str, user: &str, pw: &str, station: Option<&str>| {
        let mut args = vec!["--bind", bind, "--user", user, "--password", pw];
        if let Some(s) = station {
            args.extend(["--calling-station-id", s]);
        }
        pyrad(srv.port(), SECRET, &args)
    };

    // An IPv4 address reported IPv4-mapped is the IPv4 address.
    for (station, address) in [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8::5", "2001:db8::5"),
        ("::ffff:198.51.100.8", "198.51.100.8"),
    ] {
        let r = from("127.0.0.1", "alice", "alice-pw", Some(station));
        assert_eq!(code(&r), "Access-Accept", "{station}: {r}");
        let rec = last_audit(&srv, "alice");
        assert_eq!(rec["mode"], "exempt", "{rec}");
        assert_eq!(
            rec["reason"],
            format!("Calling-Station-Id {address} is in exempt_networks")
        );
    }
    for station in [Some("203.0.113.5"), None, Some("00-11-22-33-44-55")] {
        let r = from("127.0.0.1", "alice", "alice-pw", station);
        assert_eq!(code(&r), "Access-Challenge", "{station:?}: {r}");
    }
    let r = from("127.0.0.1", "alice", "wrong", Some("198.51.100.7"));
    assert_eq!(code(&r), "Access-Reject", "the password still counts: {r}");
    // bob is in no allow_groups: refused from the exempt network too.
    let r = from("127.0.0.1", "bob", "bob-pw", Some("198.51.100.7"));
    assert_eq!(code(&r), "Access-Reject", "{r}");
    assert!(
        last_audit(&srv, "bob")["reason"]
            .as_str()
            .unwrap()
            .contains("allow_groups"),
        "allow_groups is checked first"
    );
    // The audit finds the logins by where they came from (`--client-ip`), and counts them
    // per address (`--count-by client-ip`): the two Rejects from 198.51.100.7.
    let out = srv.cli(&["audit", "--client-ip", "203.0.113.5", "--json"]);
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        listed.len() == 1 && listed[0]["result"] == "challenge",
        "{listed:?}"
    );
    let out = srv.cli(&[
        "audit",
        "--count-by",
        "client-ip",
        "--result",
        "reject",
        "--json",
    ]);
    let groups: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(groups[0]["key"], "198.51.100.7", "{groups:?}");
    assert_eq!(groups[0]["total"], 2, "{groups:?}");

    // Inline: the password without a code, only from the exempt network.
    let r = from("127.0.0.2", "bob", "bob-pw", Some("198.51.100.9"));
    assert_eq!(code(&r), "Access-Accept", "{r}");
    let r = from("127.0.0.2", "bob", "bob-pw", Some("203.0.113.5"));
    assert_eq!(code(&r), "Access-Reject", "{r}");
    // A code typed with the password on the exempt network is used up all the same: the
    // same field from elsewhere is refused as a used code. It logged in there as a full
    // second factor, and a station that remembers logins would have remembered it.
    let field = format!("bob-pw,{}", totp(&bob, now(), &[]));
    let r = from("127.0.0.2", "bob", &field, Some("198.51.100.9"));
    assert_eq!(code(&r), "Access-Accept", "{r}");
    assert_eq!(last_audit(&srv, "bob")["mode"], "exempt");
    let r = from("127.0.0.2", "bob", &field, Some("203.0.113.5"));
    assert_eq!(code(&r), "Access-Reject", "{r}");
    assert_eq!(last_audit(&srv, "bob")["reason"], "code already used");
    let fresh = format!("bob-pw,{}", totp(&bob, now() + 30, &[]));
    let r = from("127.0.0.2", "bob", &fresh, Some("203.0.113.5"));
    assert_eq!(code(&r), "Access-Accept", "{r}");
}

#[test]
fn accepts_carry_the_clients_attributes_and_the_users_groups() {
    let slapd = directory();
    let (vpn, exempt) = (group_dn("vpn-users"), group_dn("mfa-exempt"));
    let clients = format!(
        r#"
[[client]]
name = "vpn"
address = "127.0.0.1"
secret = "{SECRET}"
accept_attributes = ["Class = vpn", "Service-Type = Framed-User"]

[[client.group_attributes]]
group = "{vpn}"
attributes = ["Fortinet-Group-Name = vpn-users", "PaloAlto-User-Group = \"vpn users\""]

[[client.group_attributes]]
group = "{exempt}"
attributes = ["Filter-Id = exempt", "Vendor-14823-Attr-1 = exempt-role", "CP-Gaia-SuperUser-Access = 1", "SonicWall-User-Privilege = Access-To-VPN"]
"#
    );
    let srv = with_clients(&slapd, &clients);
    let host = srv.addr.to_string();
    let seeds: Vec<(&str, String)> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| (*u, srv.enroll(u, &[])))
        .collect();
    let ask = |attrs: String| radclient(&host, SECRET, &attrs);
    let login = |user: &str, seed: &str| {
        let (challenge, accept) = login_with_code(&srv, user, seed);
        assert!(
            !challenge.contains("Class"),
            "a challenge carries none: {challenge}"
        );
        accept
    };
    let everyone = ["Class = 0x76706e", "Service-Type = Framed-User"];
    let vpn_users = [
        "Fortinet-Group-Name = \"vpn-users\"",
        "PaloAlto-User-Group = \"vpn users\"",
    ];
    let exempt_users = [
        "Filter-Id = \"exempt\"",
        "Aruba-User-Role = \"exempt-role\"",
        // Integers: radclient reads four octets with its dictionary, so a value sent as
        // text would show as raw octets instead.
        "CP-Gaia-SuperUser-Access = 1",
        "SonicWall-User-Privilege = Access-To-VPN",
    ];
    let has = |reply: &str, attrs: &[&str], want: bool| {
        for a in attrs {
            assert_eq!(reply.contains(a), want, "{a} (wanted: {want}) in:\n{reply}");
        }
    };
    // alice: vpn-users only (round 2 uses the entry carried from round 1).
    let r = login("alice", &seeds[0].1);
    has(&r, &everyone, true);
    has(&r, &vpn_users, true);
    has(&r, &exempt_users, false);
    // bob: no group.
    let r = login("bob", &seeds[1].1);
    has(&r, &everyone, true);
    has(&r, &vpn_users, false);
    has(&r, &exempt_users, false);
    // carol: both groups, in the order of the config.
    let r = login("carol", &seeds[2].1);
    has(&r, &everyone, true);
    has(&r, &vpn_users, true);
    has(&r, &exempt_users, true);
    assert!(
        r.find("Fortinet").unwrap() < r.find("Filter-Id").unwrap(),
        "{r}"
    );
    // A wrong password: a plain Reject.
    let r = ask("User-Name = alice, User-Password = nope, Message-Authenticator = 0x00".into());
    assert_eq!(r.code, "Access-Reject", "{}", r.output);
    let received = r.output.split("Received").nth(1).unwrap();
    has(received, &everyone, false);
}

/// `user` logs in with password, then code, through radclient: what the Access-Challenge
/// and the Access-Accept carried, as radclient prints them.
fn login_with_code(srv: &Server, user: &str, seed: &str) -> (String, String) {
    let host = srv.addr.to_string();
    let received = |output: &str| output.split("Received").nth(1).unwrap_or("").to_string();
    let r1 = radclient(
        &host,
        SECRET,
        &format!("User-Name = {user}, User-Password = \"{user}-pw\", Message-Authenticator = 0x00"),
    );
    assert_eq!(r1.code, "Access-Challenge", "{}", r1.output);
    let state = r1.state.as_deref().expect("State");
    let code = totp(seed, now(), &[]);
    let r2 = radclient(
        &host,
        SECRET,
        &format!(
            "User-Name = {user}, User-Password = {code}, State = {state}, \
             Message-Authenticator = 0x00"
        ),
    );
    assert_eq!(
        r2.code,
        "Access-Accept",
        "{user}: {}\n{}",
        r2.output,
        srv.log()
    );
    (received(&r1.output), received(&r2.output))
}

/// A single-valued attribute (RFC 2865 §5.44: at most one in an Access-Accept; or a vendor
/// attribute that names one thing, such as an admin role) set both client-wide and by group
/// rules goes out once: a matching group rule's value replaces the client's, and of two
/// matching rules the first one's (config order) is sent. Sent twice, a NAS that reads the
/// first would give the contractor the client-wide 8-hour session.
#[test]
fn a_groups_single_valued_attribute_replaces_the_clients() {
    let slapd = directory();
    let (vpn, exempt) = (group_dn("vpn-users"), group_dn("mfa-exempt"));
    let clients = format!(
        r#"
[[client]]
name = "vpn"
address = "127.0.0.1"
secret = "{SECRET}"
accept_attributes = ["Session-Timeout = 28800", "Service-Type = NAS-Prompt-User", "Class = all", "CP-Gaia-SuperUser-Access = 0", "Fortinet-Group-Name = everyone", "Vendor-25461-Attr-1 = read-only"]

[[client.group_attributes]]
group = "{vpn}"
attributes = ["Session-Timeout = 3600", "Service-Type = Administrative-User", "Class = vpn", "CP-Gaia-SuperUser-Access = 1", "Fortinet-Group-Name = vpn", "PaloAlto-Admin-Role = net-admin"]

[[client.group_attributes]]
group = "{exempt}"
attributes = ["Session-Timeout = 600", "Class = exempt", "PaloAlto-Admin-Role = auditor"]
"#
    );
    let srv = with_clients(&slapd, &clients);
    let values = |reply: &str, attribute: &str| -> Vec<String> {
        reply
            .lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("{attribute} = ")))
            .map(str::to_string)
            .collect()
    };
    // carol is in both groups: vpn-users' rule comes first.
    let (_, r) = login_with_code(&srv, "carol", &srv.enroll("carol", &[]));
    assert_eq!(values(&r, "Session-Timeout"), ["3600"], "{r}");
    assert_eq!(values(&r, "Service-Type"), ["Administrative-User"], "{r}");
    // Class may repeat: the client's and both groups', in that order.
    assert_eq!(
        values(&r, "Class"),
        ["0x616c6c", "0x76706e", "0x6578656d7074"],
        "{r}"
    );
    // Vendor attributes that name one thing go once too (Gaia given SuperUser-Access 0 and
    // 1 picks one by its own rule); a group name may repeat, and each counts. The admin
    // role written by number in the client's list is the one named in the groups'.
    assert_eq!(values(&r, "CP-Gaia-SuperUser-Access"), ["1"], "{r}");
    assert_eq!(values(&r, "PaloAlto-Admin-Role"), ["\"net-admin\""], "{r}");
    assert_eq!(
        values(&r, "Fortinet-Group-Name"),
        ["\"everyone\"", "\"vpn\""],
        "{r}"
    );
    // bob is in neither: the client's own.
    let (_, r) = login_with_code(&srv, "bob", &srv.enroll("bob", &[]));
    assert_eq!(values(&r, "Session-Timeout"), ["28800"], "{r}");
    assert_eq!(values(&r, "Service-Type"), ["NAS-Prompt-User"], "{r}");
    assert_eq!(values(&r, "CP-Gaia-SuperUser-Access"), ["0"], "{r}");
    assert_eq!(values(&r, "PaloAlto-Admin-Role"), ["\"read-only\""], "{r}");
}

/// A VPN concentrator assigning IPv6 addressing takes it from the Accept (RFC 3162, 4818,
/// 6911): each attribute arrives in the layout its RFC gives, so radclient's dictionary
/// decodes it to the value configured; a group's pool replaces the client's (it goes once).
#[test]
fn ipv6_addressing_attributes_arrive_as_configured() {
    let slapd = directory();
    let vpn = group_dn("vpn-users");
    let clients = format!(
        r#"
[[client]]
name = "vpn"
address = "127.0.0.1"
secret = "{SECRET}"
accept_attributes = ["Framed-IPv6-Prefix = 2001:db8:0:7::/64", "Framed-Interface-Id = 0:0:0:1", "Framed-IPv6-Address = 2001:db8:0:7::1", "DNS-Server-IPv6-Address = 2001:db8::53", "DNS-Server-IPv6-Address = 2001:db8::54", "Delegated-IPv6-Prefix = 2001:db8:1200::/40", "Framed-IPv6-Route = \"2001:db8:5::/48 :: 1\"", "Framed-IPv6-Pool = everyone", "Delegated-IPv6-Prefix-Pool = pd-pool"]

[[client.group_attributes]]
group = "{vpn}"
attributes = ["Framed-IPv6-Pool = vpn-v6"]
"#
    );
    let srv = with_clients(&slapd, &clients);
    let (_, r) = login_with_code(&srv, "carol", &srv.enroll("carol", &[]));
    let values = |attribute: &str| -> Vec<String> {
        r.lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("{attribute} = ")))
            .map(str::to_string)
            .collect()
    };
    for (attribute, expected) in [
        ("Framed-IPv6-Prefix", &["2001:db8:0:7::/64"][..]),
        ("Framed-Interface-Id", &["0:0:0:1"]),
        ("Framed-IPv6-Address", &["2001:db8:0:7::1"]),
        ("DNS-Server-IPv6-Address", &["2001:db8::53", "2001:db8::54"]),
        ("Delegated-IPv6-Prefix", &["2001:db8:1200::/40"]),
        ("Framed-IPv6-Route", &["\"2001:db8:5::/48 :: 1\""]),
        ("Framed-IPv6-Pool", &["\"vpn-v6\""]),
        ("Delegated-IPv6-Prefix-Pool", &["\"pd-pool\""]),
    ] {
        assert_eq!(values(attribute), expected, "{attribute}:\n{r}");
    }
}

/// The `vpn` client on 127.0.0.1 with one `group_attributes` entry: `group` gets
/// `attribute`.
fn one_group_client(group: &str, attribute: &str) -> String {
    format!(
        "[[client]]\nname = \"vpn\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n\n\
         [[client.group_attributes]]\ngroup = \"{group}\"\nattributes = [\"{attribute}\"]\n"
    )
}

/// A `group_attributes` group that is not in the directory (renamed, moved, a typo): its
/// attributes may be what restricts its members (a Filter-Id), so the login is refused
/// rather than accepted without them. An allow or exempt group that is missing just has no
/// members.
#[test]
fn a_group_attributes_group_missing_from_the_directory_refuses_the_login() {
    let slapd = directory();
    let gone = group_dn("renamed-away");
    let clients = one_group_client(&gone, "Filter-Id = restricted");
    let srv = with_clients(&slapd, &clients);
    let seed = srv.enroll("alice", &[]);
    let host = srv.addr.to_string();
    let r1 = radclient(
        &host,
        SECRET,
        "User-Name = alice, User-Password = \"alice-pw\", Message-Authenticator = 0x00",
    );
    assert_eq!(r1.code, "Access-Challenge", "{}", r1.output);
    let state = r1.state.expect("State");
    let code = totp(&seed, now(), &[]);
    let r2 = radclient(
        &host,
        SECRET,
        &format!(
            "User-Name = alice, User-Password = {code}, State = {state}, \
             Message-Authenticator = 0x00"
        ),
    );
    assert_eq!(r2.code, "Access-Reject", "{}\n{}", r2.output, srv.log());
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("is not in the directory"),
        "{rec}"
    );
    // The code was right: the record keeps the factor that passed, not "none".
    assert_eq!(rec["mode"], "totp", "{rec}");
    assert!(
        rec["token_serial"].as_str().is_some_and(|t| !t.is_empty()),
        "{rec}"
    );
    // A setting to fix, met by every login: warned of once, not once a login.
    let r3 = radclient(
        &host,
        SECRET,
        "User-Name = alice, User-Password = \"alice-pw\", Message-Authenticator = 0x00",
    );
    let code = totp(&seed, now() + 30, &[]);
    let r4 = radclient(
        &host,
        SECRET,
        &format!(
            "User-Name = alice, User-Password = {code}, State = {}, \
             Message-Authenticator = 0x00",
            r3.state.expect("State")
        ),
    );
    assert_eq!(r4.code, "Access-Reject", "{}", r4.output);
    // The second login is refused for the same reason: the warning once is not the check
    // once. Two such records, the newest the second login's.
    let audit = srv.audit_json("alice");
    let missing = |r: &serde_json::Value| {
        r["result"] == "reject"
            && r["reason"]
                .as_str()
                .is_some_and(|w| w.contains("is not in the directory"))
    };
    assert!(missing(&audit[0]), "{audit:#?}");
    assert_eq!(audit.iter().filter(|r| missing(r)).count(), 2, "{audit:#?}");
    // Counted once the first warning is in the log and any second had time to follow.
    let warnings = srv.log_lines_at_least(1, |l| {
        l.contains("WARN") && l.contains("group_attributes: group not found")
    });
    assert_eq!(warnings, 1, "{}", srv.log());
}

/// The directory hangs (SIGSTOP) between the prompt and the answer on a client with
/// `group_attributes`: the right code is refused for the directory's failure, but neither
/// the code nor the prompt is used up by it, so the same answer once the directory is back
/// is accepted with the group's attributes. Searched after the code, the retry met "The
/// code prompt has expired" and a new login "That code was already used".
#[test]
fn a_directory_failure_at_the_answer_leaves_the_code_and_the_prompt_usable() {
    let slapd = directory();
    let vpn = group_dn("vpn-users");
    let clients = one_group_client(&vpn, "Filter-Id = vpn-acl");
    let srv = with_clients(&slapd, &clients);
    let seed = srv.enroll("alice", &[]);
    let r1 = password(&srv, "alice", "alice-pw");
    assert_eq!(code(&r1), "Access-Challenge", "{r1}");
    let state = r1["state"].as_str().expect("State").to_string();
    let code_now = totp(&seed, now(), &[]);
    let answer = || {
        pyrad(
            srv.port(),
            SECRET,
            &[
                "--user",
                "alice",
                "--password",
                &code_now,
                "--state",
                &state,
            ],
        )
    };
    slapd.signal("-STOP");
    let r2 = answer();
    slapd.signal("-CONT");
    assert_eq!(code(&r2), "Access-Reject", "{r2}\n{}", srv.log());
    let rec = last_audit(&srv, "alice");
    assert!(
        rec["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("directory: ")),
        "{rec}"
    );
    // The answer again (the user's retry, or a NAS's retransmit past its duplicate window).
    let r3 = answer();
    assert_eq!(code(&r3), "Access-Accept", "{r3}\n{}", srv.log());
    assert_eq!(r3["attributes"]["Filter-Id"][0], "vpn-acl", "{r3}");
}

/// An allow or exempt group the directory no longer has (renamed while radmfa runs) has no
/// members; the audit record says the group is missing, rather than blame the user: "not a
/// member" alone sends the admin to the user's groups, and an exempt user asked for a code
/// would look like a plain login.
#[test]
fn an_allow_or_exempt_group_missing_from_the_directory_is_named_in_the_audit() {
    let slapd = directory();
    let gone = group_dn("renamed-away");
    let srv = with_clients(
        &slapd,
        &format!(
            r#"
[[client]]
name = "allow"
address = "127.0.0.1"
secret = "{SECRET}"
allow_groups = ["{gone}"]

[[client]]
name = "exempt"
address = "127.0.0.2"
secret = "{SECRET}"
exempt_groups = ["{gone}"]
"#
        ),
    );
    srv.enroll("alice", &[]);
    let r = password(&srv, "alice", "alice-pw");
    assert_eq!(code(&r), "Access-Reject", "{r}");
    let rec = last_audit(&srv, "alice");
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("not a member of any allow_groups of client \"allow\"")
            && reason.contains(&format!(
                "allow_groups group {gone} is not in the directory (renamed or moved?)"
            )),
        "{rec}"
    );
    // On the other client alice is asked for her code, as a user outside the group; the
    // record of that login says why she was not exempted.
    let r = pyrad(
        srv.port(),
        SECRET,
        &[
            "--user",
            "alice",
            "--password",
            "alice-pw",
            "--bind",
            "127.0.0.2",
            "--timeout",
            "5",
        ],
    );
    assert_eq!(code(&r), "Access-Challenge", "{r}");
    let rec = last_audit(&srv, "alice");
    assert_eq!(rec["nas_name"], "exempt", "{rec}");
    assert!(
        rec["reason"].as_str().is_some_and(|w| w.contains(&format!(
            "exempt_groups group {gone} is not in the directory (renamed or moved?)"
        ))),
        "{rec}"
    );
}

/// `config check --connect --user`: each LDAP URL on its own (a dead one named), the store,
/// and what a login for the user would find: the entry, the groups per client, the tokens.
#[test]
fn config_check_connect_names_each_server_and_what_a_login_would_find() {
    let slapd = directory();
    let srv = start(&slapd);
    srv.enroll("alice", &[]);
    let check = |config: &std::path::Path| {
        std::process::Command::new(common::radmfa::bin())
            .arg("--config")
            .arg(config)
            .args(["config", "check", "--connect", "--user", "Alice"])
            .output()
            .unwrap()
    };
    let out = check(&srv.config);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (vpn, exempt) = (group_dn("vpn-users"), group_dn("mfa-exempt"));
    for want in [
        format!("ok   ldap {}: connected and bound in", slapd.url),
        "ok   store: opened".to_string(),
        "ok   user alice: uid=alice,".to_string(),
        format!("ok   user alice: member of {vpn} (client \"vpn\" allow_groups)"),
        format!("ok   user alice: not a member of {exempt} (client \"vpn\" exempt_groups)"),
        "ok   user alice: 1 token(s) enrolled: ".to_string(),
        // The directory's mobile is not among [phone] sources (the store only, by
        // default): the check says so rather than show it as the number.
        "ok   user alice: no number texts or calls could use: the directory has one, in an \
         attribute [phone] sources leaves out"
            .to_string(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    let out = srv.cli(&["user", "set-phone", "alice", "+49 151 2345 6789"]);
    assert!(out.status.success(), "{out:?}");
    let out = check(&srv.config);
    let text = String::from_utf8_lossy(&out.stdout);
    let want = "ok   user alice: texts and calls go to ****6789 (from the number stored with \
                user set-phone)";
    assert!(text.contains(want), "missing {want:?} in:\n{text}");
    // Bob is in none of the VPN's allow_groups: the membership check itself is fine
    // ("ok"), the login is not, and a WARN says so.
    let out = srv.cli(&["config", "check", "--connect", "--user", "bob"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let want = "WARN user bob: would be refused on client(s) \"vpn\": not a member of any of \
                the client's allow_groups";
    assert!(text.contains(want), "missing {want:?} in:\n{text}");
    // A locked second factor refuses every login that needs it: said, with the way out.
    for _ in 0..5 {
        let r = password(&srv, "alice", "alice-pw");
        let state = r["state"].as_str().expect("a challenge").to_string();
        pyrad(
            srv.port(),
            SECRET,
            &["--user", "alice", "--password", "000000", "--state", &state],
        );
    }
    let out = check(&srv.config);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(
            |l| l.starts_with("WARN user alice: second factor locked until")
                && l.contains("radmfa user unlock")
        ),
        "{text}"
    );
    assert!(srv.cli(&["user", "unlock", "alice"]).status.success());
    // A displayName the user wrote herself ("by self write") with terminal escapes in it
    // (move up, erase the line: a FAIL line above would vanish) is shown escaped.
    slapd.modify(
        "dn: uid=alice,ou=people,dc=example,dc=org\nchangetype: modify\n\
         replace: displayName\ndisplayName:: QWxpY2UbWzFBG1sySw==\n",
    );
    let out = check(&srv.config);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains('\x1b'),
        "a raw escape reached the terminal:\n{text:?}"
    );
    assert!(text.contains("name Alice\\u{1b}[1A"), "{text}");

    // A dead second server and a wrong service password: each named, exit status 1.
    let config = std::fs::read_to_string(&srv.config).unwrap();
    let urls = format!("urls = [\"{}\"]", slapd.url);
    assert!(config.contains(&urls), "{config}");
    let broken = config.replace(
        &urls,
        &format!("urls = [\"{}\", \"ldap://127.0.0.1:1\"]", slapd.url),
    );
    let bad = srv.dir.path().join("broken.toml");
    std::fs::write(&bad, &broken).unwrap();
    let out = check(&bad);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL ldap ldap://127.0.0.1:1: "), "{text}");
    assert!(
        text.contains(&format!("ok   ldap {}:", slapd.url)),
        "{text}"
    );
    std::fs::write(
        &bad,
        config.replace("bind_password = \"adminpw\"", "bind_password = \"wrong\""),
    )
    .unwrap();
    let out = check(&bad);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("FAIL ldap {}: service bind as ", slapd.url)),
        "{text}"
    );
    assert!(!text.contains("wrong"), "the password is printed: {text}");

    // The database without its key file: named, and no new key is made.
    let key = "key_file = \"radmfa.key\"";
    assert!(config.contains(key), "{config}");
    std::fs::write(&bad, config.replace(key, "key_file = \"elsewhere.key\"")).unwrap();
    let out = check(&bad);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL store: the key file "), "{text}");
    assert!(!srv.dir.path().join("elsewhere.key").exists());
}

/// An Access-Accept whose configured attributes do not fit beside the request's Proxy-State
/// echo is refused, not sent without some of them (the NAS would then apply its broader
/// default policy); the same login with room for them is accepted with them.
#[test]
fn an_accept_whose_attributes_do_not_fit_is_refused() {
    use radmfa::radius::client::{parse_reply, AccessRequestBuilder};
    let slapd = directory();
    let acl = "x".repeat(240);
    let srv = with_clients(
        &slapd,
        &format!(
            r#"
[[client]]
name = "vpn"
address = "127.0.0.1"
secret = "{SECRET}"
exempt_networks = ["198.51.100.0/24"]
accept_attributes = ["Filter-Id = a{acl}", "Filter-Id = b{acl}"]
"#
        ),
    );
    let sock = srv.udp();
    let login_from = |id: u8, proxy_states: usize, station: &[u8]| {
        let mut b = AccessRequestBuilder::new(id, "alice")
            .password(b"alice-pw")
            .attribute(31, station);
        for _ in 0..proxy_states {
            b = b.proxy_state(&[b'p'; 253]);
        }
        let (raw, _) = b.build(SECRET.as_bytes());
        sock.send(&raw).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("an answer");
        parse_reply(&buf[..n]).unwrap()
    };
    let login = |id: u8, proxy_states: usize| login_from(id, proxy_states, b"198.51.100.7");
    let roomy = login(1, 1);
    assert_eq!(roomy.code, 2, "Access-Accept");
    assert_eq!(roomy.attributes.iter().filter(|a| a.0 == 11).count(), 2);
    // 15 Proxy-States of 253 octets: 3,825 octets to echo, no room for both Filter-Ids.
    let full = login(2, 15);
    assert_eq!(full.code, 3, "Access-Reject");
    assert_eq!(full.attributes.iter().filter(|a| a.0 == 33).count(), 15);
    let rec = last_audit(&srv, "alice");
    assert!(
        rec["reason"].as_str().unwrap().contains("do not fit"),
        "{rec}"
    );

    // A one-time bypass is used only by an Accept that stands: refused for want of room,
    // it is still there for the next try.
    let out = srv.cli(&["user", "bypass", "alice"]);
    assert!(out.status.success(), "{out:?}");
    let elsewhere = b"203.0.113.9";
    assert_eq!(login_from(3, 15, elsewhere).code, 3, "Access-Reject");
    let r = login_from(4, 1, elsewhere);
    assert_eq!(r.code, 2, "the bypass was kept: Access-Accept");
    assert_eq!(last_audit(&srv, "alice")["mode"], "bypass");
    assert_eq!(login_from(5, 1, elsewhere).code, 3, "used once");
}

/// A user in enough group_attributes groups gets more attributes than one Accept holds,
/// with no Proxy-State in the request at all: refused, and the reason does not blame a
/// Proxy-State there was none of. `config check` warns of such a client beforehand.
#[test]
fn attributes_of_many_groups_that_do_not_fit_are_refused_and_warned_of() {
    let slapd = directory();
    let (vpn, exempt) = (group_dn("vpn-users"), group_dn("mfa-exempt"));
    // 9 × (250 + 2) octets per group: each fits alone, both (4,536) do not.
    let classes = |tag: char| {
        let one = format!("\"Class = {}\"", tag.to_string().repeat(250));
        vec![one; 9].join(", ")
    };
    let srv = with_clients(
        &slapd,
        &format!(
            r#"
[[client]]
name = "vpn"
address = "127.0.0.1"
secret = "{SECRET}"
exempt_groups = ["{exempt}"]
accept_attributes = ["Filter-Id = vpn"]

[[client.group_attributes]]
group = "{vpn}"
attributes = [{}]

[[client.group_attributes]]
group = "{exempt}"
attributes = [{}]
"#,
            classes('v'),
            classes('e')
        ),
    );
    let out = srv.cli(&["config", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.lines().any(|l| l.contains(
            "client \"vpn\": accept_attributes and \
             group_attributes together take up to 4541 octets in a packet, more than the \
             4058 an Access-Accept has room for"
        )),
        "{text}"
    );
    // dave is in mfa-exempt only: his Accept fits. carol is in both: hers does not.
    assert_eq!(code(&password(&srv, "dave", "dave-pw")), "Access-Accept");
    let r = password(&srv, "carol", "carol-pw");
    assert_eq!(code(&r), "Access-Reject", "{r}");
    let rec = last_audit(&srv, "carol");
    assert_eq!(
        rec["reason"],
        "the Access-Accept's attributes do not fit in one packet; refused rather than sent \
         without some of them",
        "{rec}"
    );
    assert_eq!(rec["mode"], "exempt", "{rec}");
}

/// The same for an Access-Challenge whose State does not fit: sent without it, the code
/// would come back as a new login and be checked as a password.
#[test]
fn a_challenge_whose_state_does_not_fit_is_refused() {
    use radmfa::radius::client::{parse_reply, AccessRequestBuilder};
    let slapd = directory();
    let srv = with_clients(
        &slapd,
        &format!("\n[[client]]\nname = \"vpn\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n"),
    );
    srv.enroll("alice", &[]);
    let sock = srv.udp();
    let login = |id: u8, crowded: bool| {
        let mut b = AccessRequestBuilder::new(id, "alice").password(b"alice-pw");
        if crowded {
            // 15 × 253 + 200 octets of Proxy-State: no room left for a 32-octet State.
            for _ in 0..15 {
                b = b.proxy_state(&[b'p'; 253]);
            }
            b = b.proxy_state(&[b'q'; 200]);
        }
        let (raw, _) = b.build(SECRET.as_bytes());
        sock.send(&raw).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("an answer");
        parse_reply(&buf[..n]).unwrap()
    };
    assert_eq!(login(1, false).code, 11, "Access-Challenge");
    let full = login(2, true);
    assert_eq!(full.code, 3, "Access-Reject");
    assert!(full.attributes.iter().all(|a| a.0 != 24), "no State");
    let rec = last_audit(&srv, "alice");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("State does not fit"),
        "{rec}"
    );
}

/// A reload that takes a group out of a client's allow_groups applies to prompts already
/// open: alice (in vpn-users) got her code prompt; the reload leaves only mfa-exempt
/// (carol and dave); her right code is refused, and the audit says why. A prompt opened
/// under the new rule, for carol (in mfa-exempt, which is no longer exempt here), and one
/// answered after a reload that kept the rule, are accepted.
#[test]
fn a_reload_that_narrows_allow_groups_applies_to_open_prompts() {
    let slapd = directory();
    let (vpn, exempt) = (group_dn("vpn-users"), group_dn("mfa-exempt"));
    let entry = |allow: &str| {
        format!(
            "[[client]]\nname = \"vpn\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n\
             allow_groups = [\"{allow}\"]\n"
        )
    };
    let srv = with_clients(&slapd, &entry(&vpn));
    let alice = srv.enroll("alice", &[]);
    let carol = srv.enroll("carol", &[]);
    let reload_with = |allow: &str, n: usize| {
        let text = std::fs::read_to_string(&srv.config).unwrap();
        let from = text.find("[[client]]").expect("the client entry");
        std::fs::write(&srv.config, format!("{}{}", &text[..from], entry(allow))).unwrap();
        assert_eq!(srv.reload(n), n, "{}", srv.log());
    };
    let prompt = |user: &str| {
        let r = password(&srv, user, &format!("{user}-pw"));
        assert_eq!(code(&r), "Access-Challenge", "{user}: {r}\n{}", srv.log());
        r["state"].as_str().unwrap().to_string()
    };
    let answer = |user: &str, seed: &str, state: &str, at: i64| {
        let c = totp(seed, at, &[]);
        pyrad(
            srv.port(),
            SECRET,
            &["--user", user, "--password", &c, "--state", state],
        )
    };

    // The same rule after a reload: the open prompt finishes.
    let state = prompt("alice");
    reload_with(&vpn, 1);
    let r = answer("alice", &alice, &state, now());
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());

    // vpn-users taken away while alice's prompt is open.
    let state = prompt("alice");
    reload_with(&exempt, 2);
    let r = answer("alice", &alice, &state, now() + 30);
    assert_eq!(code(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert_eq!(
        last_audit(&srv, "alice")["reason"],
        "not a member of any allow_groups of client \"vpn\" (changed by a reload since the \
         prompt)"
    );
    // Under the new rule, carol is let through to her prompt and in.
    let state = prompt("carol");
    let r = answer("carol", &carol, &state, now());
    assert_eq!(code(&r), "Access-Accept", "{r}\n{}", srv.log());
}

/// `config check --connect` reads each configured group as logins read it: a group whose
/// members the service account cannot see (an ACL hiding `member` from the bind_dn), or
/// kept in an attribute `group_filter` does not compare (a groupOfUniqueNames under the
/// default `(member={dn})`), makes every membership check say "not a member", silently
/// (no group_attributes sent, nobody allowed): each is warned of, naming the group.
#[test]
fn config_check_connect_warns_of_groups_whose_members_it_cannot_see() {
    let users: Vec<LdapUser> = ["alice", "bob"]
        .iter()
        .map(|u| LdapUser::new(u, &format!("{u}-pw")))
        .collect();
    let mut ldif = groups_ldif(&[("contractors", &["bob"])]);
    let unique = group_dn("unique-staff");
    ldif.push_str(&format!(
        "dn: {unique}\nobjectClass: groupOfUniqueNames\ncn: unique-staff\n\
         uniqueMember: uid=bob,ou=people,dc=example,dc=org\n\n"
    ));
    let slapd = Slapd::start_with(
        &users,
        SlapdOptions {
            extra_ldif: ldif,
            access: vec![format!(
                "access to dn.subtree=\"ou=groups,dc=example,dc=org\" attrs=member \
                 by dn.exact=\"{}\" none by * read",
                common::slapd::SERVICE_DN
            )],
            ..Default::default()
        },
    );
    let contractors = group_dn("contractors");
    let srv = with_clients(
        &slapd,
        &format!(
            r#"
[[client]]
name = "up"
address = "127.0.0.1"
secret = "{SECRET}"

[[client.group_attributes]]
group = "{contractors}"
attributes = ["Filter-Id = restricted"]

[[client]]
name = "staff"
address = "127.0.0.2"
secret = "{SECRET}"
allow_groups = ["{unique}"]
"#
        ),
    );
    let check = |config: &std::path::Path| {
        let out = common::radmfa::cli_on(config, &["config", "check", "--connect"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // Warnings, not failures: an empty group is a valid one.
        assert!(out.status.success(), "{text}{out:?}");
        text
    };
    // As the directory's admin, member is readable: only the class mismatch is warned of.
    let text = check(&srv.config);
    let line = |text: &str, start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
            .to_string()
    };
    line(
        &text,
        &format!(
            "ok   group {contractors}: found, member readable (client \"up\" group_attributes)"
        ),
    );
    let w = line(
        &text,
        &format!("WARN group {unique} (client \"staff\" allow_groups): "),
    );
    assert!(
        w.contains("a groupOfUniqueNames lists its members in uniqueMember")
            && w.contains("group_filter = \"(uniqueMember={dn})\""),
        "{w}"
    );
    // As a service account the ACL keeps member from: the group named, the ACL the cause.
    let config = std::fs::read_to_string(&srv.config).unwrap();
    let admin = "bind_dn = \"cn=admin,dc=example,dc=org\"\nbind_password = \"adminpw\"";
    assert!(config.contains(admin), "{config}");
    let service = srv.dir.path().join("service.toml");
    std::fs::write(
        &service,
        config.replace(
            admin,
            &format!(
                "bind_dn = \"{}\"\nbind_password = \"{}\"",
                common::slapd::SERVICE_DN,
                common::slapd::SERVICE_PASSWORD
            ),
        ),
    )
    .unwrap();
    let text = check(&service);
    let w = line(
        &text,
        &format!("WARN group {contractors} (client \"up\" group_attributes): "),
    );
    assert!(
        w.contains(&format!(
            "none of member (what [ldap] group_filter compares) is shown to the service \
             account {}",
            common::slapd::SERVICE_DN
        )) && w.contains("ACL"),
        "{w}"
    );
}
