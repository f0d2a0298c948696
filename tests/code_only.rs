//! `otp_mode = "code_only"`: a NAS that checked the password itself (NetScaler's LDAP then
//! RADIUS, a secondary server in an Ivanti realm) sends only the code. Real slapd, real
//! pyrad with Message-Authenticator enforced, codes made with oathtool.

mod common;

use common::peers::{now, pyrad, totp};
use common::radmfa::{Nas, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

fn code_only_server(slapd: &Slapd) -> Server {
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        otp_mode: "code_only",
        ..Nas::challenge("netscaler", "127.0.0.1")
    }];
    Server::start(&o)
}

fn send(srv: &Server, user: &str, field: &str) -> serde_json::Value {
    pyrad(srv.port(), SECRET, &["--user", user, "--password", field])
}

/// The reply without its Message-Authenticator, which differs in every reply.
fn shape(r: &serde_json::Value) -> serde_json::Value {
    let mut r = r.clone();
    r["attributes"]
        .as_object_mut()
        .unwrap()
        .remove("Message-Authenticator");
    r
}

fn failures(srv: &Server, user: &str) -> i64 {
    let out = srv.cli(&["user", "show", user, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["failures"].as_i64().unwrap()
}

/// A 6-digit code that is none of the token's codes around now.
fn wrong_code(seed: &str) -> String {
    let near: Vec<String> = (-4..=4).map(|k| totp(seed, now() + k * 30, &[])).collect();
    (0..1_000_000)
        .map(|n| format!("{:06}", (n * 7919 + 13) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[test]
fn a_code_only_client_takes_the_code_and_never_the_password() {
    let slapd = Slapd::start(&[
        LdapUser::new("alice", "alice-pw"),
        LdapUser::new("bob", "bob-pw"),
    ]);
    let srv = code_only_server(&slapd);
    let seed = srv.enroll("alice", &[]);

    // The code alone logs in, once.
    let code = totp(&seed, now(), &[]);
    let r = send(&srv, "alice", &code);
    assert_eq!(r["code"], "Access-Accept", "{r}\n{}", srv.log());
    let r = send(&srv, "alice", &code);
    assert_eq!(r["code"], "Access-Reject", "a code is used once: {r}");

    // The password is not a code: refused before anything is asked, not counted toward
    // the lockout, and the audit says what the NAS should send.
    let before = failures(&srv, "alice");
    let r = send(&srv, "alice", "alice-pw");
    assert_eq!(r["code"], "Access-Reject", "{r}");
    assert_eq!(failures(&srv, "alice"), before);
    let audit = srv.audit_json("alice");
    let reason = audit[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("is not a code"), "{:?}", audit[0]);

    // A wrong code is counted, and its reply is an unknown user's.
    let wrong = send(&srv, "alice", &wrong_code(&seed));
    assert_eq!(wrong["code"], "Access-Reject", "{wrong}");
    assert_eq!(failures(&srv, "alice"), before + 1);
    let unknown = send(&srv, "mallory", "123456");
    assert_eq!(shape(&unknown), shape(&wrong), "unknown user vs wrong code");
    let audit = srv.audit_json("mallory");
    assert!(
        audit[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unknown user")),
        "{:?}",
        audit[0]
    );

    // In the directory without a token: refused (no_factor = "reject"), saying why.
    let r = send(&srv, "bob", "123456");
    assert_eq!(r["code"], "Access-Reject", "{r}");
    assert!(
        r["messages"][0]
            .as_str()
            .is_some_and(|m| m.contains("No second factor")),
        "{r}"
    );
    // A code with the spaces a token's display shows is the code.
    let next = totp(&seed, now() + 30, &[]);
    let spaced = format!("{} {}", &next[..3], &next[3..]);
    let r = send(&srv, "alice", &spaced);
    assert_eq!(r["code"], "Access-Accept", "{r}");

    // config check describes the entry as what it is.
    let out = srv.cli(&["config", "check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("the code alone (the NAS checks the password)"),
        "{said}"
    );
}

/// config check says what no_factor = "allow" and an exempt network mean on a code-only
/// entry: the name and any digits, not "the password", which radmfa never sees there.
#[test]
fn config_check_says_what_no_factor_allow_means_here() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new("ldap://127.0.0.1:1");
    o.clients = Vec::new();
    o.extra = format!(
        "[[client]]\nname = \"netscaler\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n\
         otp_mode = \"code_only\"\nno_factor = \"allow\"\n\
         exempt_networks = [\"198.51.100.0/24\"]\n"
    );
    let cfg = common::radmfa::write_config(dir.path(), &o);
    let out = std::process::Command::new(common::radmfa::bin())
        .arg("--config")
        .arg(&cfg)
        .args(["config", "check"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("get in with their name and any 4 to 10 digits"),
        "{said}"
    );
    assert!(
        said.contains("logins from 198.51.100.0/24 need their name and any 4 to 10 digits")
            && !said.contains("the password alone"),
        "{said}"
    );
}
