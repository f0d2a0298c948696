//! What an `otp_mode = "inline"` client's refusals tell: no more than a wrong password's.
//! Every refusal that only comes after the directory took the password (no second factor,
//! a locked or disabled token, a phone this client cannot use) is the very reply a wrong
//! password gets, so a password spray learns nothing from it; the audit says why. Real
//! slapd, real pyrad with Message-Authenticator, codes made with oathtool.

mod common;

use common::peers::{assert_same_reply, now, pyrad, reveals, totp};
use common::radmfa::{Nas, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

fn inline_server(slapd: &Slapd) -> Server {
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        otp_mode: "inline",
        ..Nas::challenge("vpn", "127.0.0.1")
    }];
    o.extra = "\n[lockout]\nthreshold = 2\n".into();
    Server::start(&o)
}

fn send(srv: &Server, user: &str, field: &str) -> serde_json::Value {
    pyrad(srv.port(), SECRET, &["--user", user, "--password", field])
}

fn reason(srv: &Server, user: &str) -> String {
    let audit = srv.audit_json(user);
    audit[0]["reason"].as_str().unwrap_or_default().to_string()
}

fn cli_ok(srv: &Server, args: &[&str]) {
    let out = srv.cli(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
}

#[test]
fn a_refusal_after_the_right_password_is_a_wrong_passwords_reply() {
    let slapd = Slapd::start(&[
        LdapUser::new("alice", "alice-pw"),
        LdapUser::new("bob", "bob-pw"),
        LdapUser::new("carol", "carol-pw"),
        LdapUser::new("dave", "dave-pw"),
    ]);
    let srv = inline_server(&slapd);
    let wrong = send(&srv, "bob", "not-bobs-pw");
    assert_eq!(wrong["code"], "Access-Reject", "{wrong}");
    assert!(reason(&srv, "bob").contains("bad password"));

    // Not enrolled (no_factor = "reject"): it said "No second factor is enrolled".
    let r = send(&srv, "bob", "bob-pw");
    assert_same_reply(&r, &wrong);
    assert_eq!(reason(&srv, "bob"), "no second factor enrolled");
    // An unknown name's reply is the same too.
    assert_same_reply(&send(&srv, "nobody-here", "bob-pw"), &wrong);

    // Locked after wrong codes: it said "Too many wrong codes".
    let seed = srv.enroll("alice", &[]);
    let near: Vec<String> = (-4..=4).map(|k| totp(&seed, now() + k * 30, &[])).collect();
    let bad = ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .unwrap();
    for _ in 0..2 {
        let r = send(&srv, "alice", &format!("alice-pw,{bad}"));
        assert_same_reply(&r, &wrong);
    }
    let code = totp(&seed, now(), &[]);
    let r = send(&srv, "alice", &format!("alice-pw,{code}"));
    assert_same_reply(&r, &wrong);
    assert!(
        reason(&srv, "alice").contains("locked"),
        "{:?}",
        srv.audit_json("alice")[0]
    );

    // A disabled token: it said "Your second factor is disabled".
    let serial = {
        srv.enroll("carol", &[]);
        let out = srv.cli(&["token", "list", "--user", "carol", "--json"]);
        let tokens: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        tokens[0]["serial"].as_str().unwrap().to_string()
    };
    cli_ok(&srv, &["token", "disable", &serial]);
    let r = send(&srv, "carol", "carol-pw");
    assert_same_reply(&r, &wrong);
    assert_eq!(reason(&srv, "carol"), "the user's tokens are disabled");

    // A stored phone this client cannot use (no [sms], no [voice]): it said "Your second
    // factor cannot be used here".
    cli_ok(&srv, &["user", "set-phone", "dave", "+15555550123"]);
    let r = send(&srv, "dave", "dave-pw");
    assert_same_reply(&r, &wrong);
    assert!(
        reason(&srv, "dave").contains("cannot be used on this client"),
        "{}",
        reason(&srv, "dave")
    );
}

/// A user without a token who types `password,123456` on an inline client: the field is
/// the password (a password may hold the delimiter), the directory refuses it, and the
/// audit says why, so the help desk does not reset a password that was right. Nothing of
/// the field is written: not the digits, not the password.
#[test]
fn a_code_typed_by_a_user_without_a_token_is_named_in_the_refusal() {
    let slapd = Slapd::start(&[LdapUser::new("bob", "bob-pw")]);
    let srv = inline_server(&slapd);
    let r = send(&srv, "bob", "bob-pw,424242");
    assert_eq!(r["code"], "Access-Reject", "{r}");
    assert_eq!(
        reason(&srv, "bob"),
        "bad password (the field ends in the delimiter and 6 digits, but this user has no \
         token: the whole field was taken as the password)"
    );
    // A plain wrong password says nothing of the kind.
    send(&srv, "bob", "not-bobs-pw");
    assert_eq!(reason(&srv, "bob"), "bad password");
    let audit = String::from_utf8_lossy(&srv.cli(&["audit", "--json"]).stdout).to_string();
    for hay in [srv.log(), audit] {
        assert!(!reveals(&hay, "424242") && !hay.contains("bob-pw"), "{hay}");
    }
}
