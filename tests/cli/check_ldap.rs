//! `config check --connect` against a real slapd whose directory is not as the config
//! expects (a base_dn hidden by an ACL or misspelt, a user the filter does not find), and
//! `--user` before the store exists.

use super::run;
use crate::common::radmfa::{write_config, Options};
use crate::common::slapd::{
    LdapUser, Slapd, SlapdOptions, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD,
};

/// The harness's config at `dir`, bound as the service account (the harness binds as the
/// rootdn, to which no ACL applies).
fn as_service(dir: &std::path::Path, o: &Options) -> std::path::PathBuf {
    let cfg = write_config(dir, o);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let (admin, admin_pw) = (
        "bind_dn = \"cn=admin,dc=example,dc=org\"",
        "bind_password = \"adminpw\"",
    );
    assert!(text.contains(admin) && text.contains(admin_pw), "{text}");
    let text = text
        .replace(admin, &format!("bind_dn = \"{SERVICE_DN}\""))
        .replace(admin_pw, &format!("bind_password = \"{SERVICE_PASSWORD}\""));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// `cfg`'s text with `from` (which it must hold) replaced by `to`.
fn edit(cfg: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(cfg).unwrap();
    assert!(text.contains(from), "no {from:?} in\n{text}");
    std::fs::write(cfg, text.replace(from, to)).unwrap();
}

/// slapd answers noSuchObject for a base_dn the service account may not read as for one
/// that is not there; the check said "not in the directory" of both, and an admin who
/// found the spelling right was stuck. The matched DN tells them apart.
#[test]
fn a_base_dn_hidden_by_an_acl_is_told_from_a_misspelt_one() {
    let slapd = Slapd::start_with(
        &[LdapUser::new("alice", "pw")],
        SlapdOptions {
            access: vec![format!(
                "access to dn.subtree=\"{PEOPLE_DN}\" by dn.exact=\"{SERVICE_DN}\" none by * break"
            )],
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = as_service(dir.path(), &Options::new(&slapd.url));
    let (ok, out, err) = run(&cfg, &["config", "check", "--connect", "--user", "alice"]);
    assert!(!ok, "{out}{err}");
    let hidden = format!(
        "base_dn \"{PEOPLE_DN}\" is not in the directory, or the service account {SERVICE_DN} \
         may not read it (an ACL)"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL user alice: ") && l.contains(&hidden)),
        "{out}"
    );
    edit(&cfg, "ou=people,", "ou=users,");
    let (ok, out, err) = run(&cfg, &["config", "check", "--connect", "--user", "alice"]);
    assert!(!ok, "{out}{err}");
    let typo = "base_dn \"ou=users,dc=example,dc=org\" is not in the directory: it has \
                \"dc=example,dc=org\", but no \"ou=users,dc=example,dc=org\" (a typo?)";
    assert!(out.contains(typo), "{out}");
    assert!(!out.contains("(an ACL)"), "{out}");
}

/// Without `--user`, a base_dn that is not there (or hidden) passed: "connected and bound",
/// exit 0, and every login then failed. Read after the bind, it fails the check.
#[test]
fn config_check_connect_reads_the_base_dn() {
    let slapd = Slapd::start_with(
        &[LdapUser::new("alice", "pw")],
        SlapdOptions {
            access: vec![format!(
                "access to dn.subtree=\"{PEOPLE_DN}\" by dn.exact=\"{SERVICE_DN}\" none by * break"
            )],
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = as_service(dir.path(), &Options::new(&slapd.url));
    let (ok, out, err) = run(&cfg, &["config", "check", "--connect"]);
    assert!(!ok, "{out}{err}");
    let url = &slapd.url;
    assert!(
        out.contains(&format!("ok   ldap {url}: connected and bound"))
            && out.contains(&format!(
                "FAIL ldap {url}: [ldap] base_dn \"{PEOPLE_DN}\" is not in the directory, or \
                 the service account {SERVICE_DN} may not read it (an ACL)"
            )),
        "{out}"
    );
    edit(&cfg, "ou=people,", "ou=users,");
    let (ok, out, err) = run(&cfg, &["config", "check", "--connect"]);
    assert!(!ok && out.contains("(a typo?)"), "{out}{err}");
    // A base the account reads passes.
    edit(&cfg, "ou=users,dc=example,dc=org", "dc=example,dc=org");
    let (ok, out, err) = run(&cfg, &["config", "check", "--connect"]);
    assert!(ok && !out.contains("FAIL"), "{out}{err}");
}

/// A name the user filter does not find for one entry: "not found (or not unique)" alone
/// left the admin to guess. The check names the filter as sent and the base searched, and
/// what may explain it.
#[test]
fn config_check_says_why_a_user_is_not_found() {
    let contractors = format!(
        "dn: ou=contractors,{PEOPLE_DN}\nobjectClass: organizationalUnit\nou: contractors\n\n\
         dn: uid=dup,ou=contractors,{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: dup\ncn: D\n\
         sn: D\n\n"
    );
    let slapd = Slapd::start_with(
        &[LdapUser::new("alice", "pw"), LdapUser::new("dup", "pw")],
        SlapdOptions {
            extra_ldif: contractors,
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = as_service(dir.path(), &Options::new(&slapd.url));
    let check = |user: &str| {
        let (ok, out, err) = run(&cfg, &["config", "check", "--connect", "--user", user]);
        assert!(!ok, "{out}{err}");
        out.lines()
            .find(|l| l.starts_with("FAIL user "))
            .unwrap_or_else(|| panic!("no FAIL user line:\n{out}{err}"))
            .to_string()
    };
    // Several entries: said, and named, not "not found".
    let several = check("dup");
    assert!(
        several.contains("the user filter matched several entries")
            && several.contains(&format!("uid=dup,{PEOPLE_DN}"))
            && several.contains(&format!("uid=dup,ou=contractors,{PEOPLE_DN}")),
        "{several}"
    );
    // The filter as sent, the base searched.
    let nobody = check("nobody");
    assert!(
        nobody.contains(&format!(
            "not found: no entry under base_dn \"{PEOPLE_DN}\" matches (uid=nobody)"
        )) && !nobody.contains("strip_domains"),
        "{nobody}"
    );
    // A domain strip_domains leaves on.
    for (typed, domain) in [
        ("CORP\\alice", "CORP"),
        ("alice@corp.example", "corp.example"),
    ] {
        let with_domain = check(typed);
        assert!(
            with_domain.contains(&format!(
                "the name keeps its domain {domain:?}, which [users] strip_domains does not \
                 take off"
            )),
            "{with_domain}"
        );
    }
    // A filter on an attribute slapd's schema lacks (written for Active Directory).
    edit(&cfg, "(uid={user})", "(sAMAccountName={user})");
    let ad = check("alice");
    assert!(
        ad.contains("the directory's schema has no attribute \"sAMAccountName\""),
        "{ad}"
    );
}

/// A service account that may read base_dn but none of the entries below it finds nobody:
/// said, not only "not found".
#[test]
fn config_check_says_when_the_service_account_sees_no_entries() {
    let slapd = Slapd::start_with(
        &[LdapUser::new("alice", "pw")],
        SlapdOptions {
            access: vec![format!(
                "access to dn.children=\"{PEOPLE_DN}\" by dn.exact=\"{SERVICE_DN}\" none by * break"
            )],
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = as_service(dir.path(), &Options::new(&slapd.url));
    let (ok, out, err) = run(&cfg, &["config", "check", "--connect", "--user", "alice"]);
    assert!(!ok, "{out}{err}");
    assert!(
        out.contains(&format!(
            "FAIL user alice: not found: no entry under base_dn \"{PEOPLE_DN}\" matches \
             (uid=alice); the service account {SERVICE_DN} sees no entry at all under base_dn"
        )),
        "{out}"
    );
}

/// Before the first start there is no store: `--user` said "does not exist yet" and nothing
/// of the user's factor, exit 0, while the login is refused for want of one. It reads the
/// store as empty, as the login will find it (and so a database without radmfa's schema).
#[test]
fn config_check_user_reads_a_store_not_made_yet_as_empty() {
    let slapd = Slapd::start(&[LdapUser::new("erin", "pw")]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = as_service(dir.path(), &Options::new(&slapd.url));
    let refused = "WARN user erin: would be refused on client(s) \"local\": no second factor";
    let (ok, out, err) = run(&cfg, &["config", "check", "--connect", "--user", "erin"]);
    assert!(
        ok && out.contains("does not exist yet")
            && out.contains("ok   user erin: 0 token(s) enrolled (the store holds nothing yet)")
            && out.contains(refused),
        "{out}{err}"
    );
    assert!(
        !dir.path().join("radmfa.db").exists(),
        "the check made the store"
    );
    // A database file with its key, but no schema in it yet.
    rusqlite::Connection::open(dir.path().join("radmfa.db"))
        .unwrap()
        .execute_batch("CREATE TABLE unrelated (x INTEGER)")
        .unwrap();
    radmfa::store::KeyFile::load_or_create(&dir.path().join("radmfa.key")).unwrap();
    let (ok, out, err) = run(&cfg, &["config", "check", "--connect", "--user", "erin"]);
    assert!(
        ok && out.contains("holds no radmfa schema yet") && out.contains(refused),
        "{out}{err}"
    );
}

/// TLS and plain LDAP crossed: `ldaps://` to the plain port failed as "tls handshake eof",
/// `ldap://` to the LDAPS port as "service bind: result recv error: channel closed", and
/// StartTLS to the LDAPS port as "connect timed out". Each now asks whether the port is
/// the other kind.
#[test]
fn tls_and_plain_ports_crossed_are_asked_about() {
    let slapd = Slapd::start_with(
        &[LdapUser::new("alice", "pw")],
        SlapdOptions {
            tls: true,
            ..Default::default()
        },
    );
    let (plain, ldaps) = (slapd.port, slapd.ldaps_port.unwrap());
    let dir = tempfile::tempdir().unwrap();
    for (url, starttls, says) in [
        (
            format!("ldaps://127.0.0.1:{plain}"),
            false,
            "tls handshake eof (is this port plain LDAP? ldaps:// is usually port 636)",
        ),
        (
            format!("ldap://127.0.0.1:{ldaps}"),
            false,
            "channel closed (is this port LDAPS? then use ldaps://)",
        ),
        (
            format!("ldap://127.0.0.1:{ldaps}"),
            true,
            "connect timed out (the server takes TCP connections there but did not answer \
             StartTLS: is this port LDAPS? then use ldaps:// and starttls = false)",
        ),
    ] {
        let mut o = Options::new(&url);
        if starttls {
            o.ldap_extra = "starttls = true".into();
        }
        let cfg = as_service(dir.path(), &o);
        let (ok, out, err) = run(&cfg, &["config", "check", "--connect"]);
        assert!(
            !ok && out.contains(&format!("FAIL ldap {url}: ")) && out.contains(says),
            "{url} starttls={starttls}: {out}{err}"
        );
    }
}

/// A `ca_file` with no TLS to use it (ldap:// URLs, starttls = false) is never read: said,
/// where before it was taken without a word, and the admin believed the server checked.
#[test]
fn a_ca_file_no_connection_uses_is_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::common::pki::Pki::make(dir.path(), "ldap").ca;
    let mut o = Options::new("ldap://127.0.0.1:389");
    o.ldap_extra = format!("ca_file = {:?}", ca.to_str().unwrap());
    let cfg = write_config(dir.path(), &o);
    let (ok, out, err) = run(&cfg, &["config", "check"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!(
            "warning: ldap: ca_file {} is set, but no connection uses TLS",
            ca.display()
        )),
        "{out}"
    );
    // With StartTLS it is read: no warning.
    o.ldap_extra.push_str("\nstarttls = true");
    let cfg = write_config(dir.path(), &o);
    let (ok, out, err) = run(&cfg, &["config", "check"]);
    assert!(ok && !out.contains("ca_file"), "{out}{err}");
}
