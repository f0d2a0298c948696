//! Unit tests of `ldap.rs` that need no directory (the real-slapd tests are tests/ldap.rs).

use super::*;

fn settings() -> LdapSettings {
    LdapSettings {
        urls: vec!["ldap://127.0.0.1:1".into()],
        base_dn: "dc=example,dc=org".into(),
        ..LdapSettings::default()
    }
}

fn result(rc: u32, text: &str) -> LdapResult {
    LdapResult {
        rc,
        matched: String::new(),
        text: text.into(),
        refs: vec![],
        ctrls: vec![],
    }
}

#[test]
fn new_validates() {
    assert!(LdapAuth::new(settings()).is_ok());
    let mut s = settings();
    s.urls.clear();
    assert!(LdapAuth::new(s).is_err());
    let mut s = settings();
    s.urls = vec!["http://x".into()];
    assert!(LdapAuth::new(s).is_err());
    let mut s = settings();
    s.user_filter = "(uid=alice)".into();
    assert!(LdapAuth::new(s).is_err());
    let mut s = settings();
    s.user_filter = "(uid={user}".into();
    assert!(LdapAuth::new(s).is_err());
    let mut s = settings();
    s.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(matches!(LdapAuth::new(s), Err(AuthError::Tls(_))));
    let mut s = settings();
    s.tls_insecure_skip_verify = true;
    assert!(LdapAuth::new(s).is_ok());
}

/// A bind that succeeds on an expired password: FreeIPA after an admin's reset (its expiry
/// set to now) and 389-ds on a grace login attach the Netscape expired control, OpenLDAP's
/// ppolicy the graceAuthNsRemaining warning. Refused, as AD's 532 and 773 are; a warning of
/// time before expiration is not.
#[test]
fn binds_on_expired_passwords_are_refused() {
    use ldap3::controls::{Control, RawControl};
    let with = |ctype: &str, val: &[u8]| {
        let mut r = result(0, "");
        r.ctrls = vec![Control(
            None,
            RawControl {
                ctype: ctype.into(),
                crit: false,
                val: Some(val.to_vec()),
            },
        )];
        bind_outcome(&r)
    };
    let ppolicy = super::super::ppolicy::OID;
    for (ctype, val) in [
        (super::super::ppolicy::NETSCAPE_EXPIRED_OID, &b"0"[..]),
        (ppolicy, &[0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x02][..]),
        (ppolicy, &[0x30, 0x03, 0x81, 0x01, 0x02][..]),
    ] {
        assert!(
            matches!(
                with(ctype, val),
                Ok(PrimaryOutcome::Denied(Denial::MustChangePassword))
            ),
            "{ctype} {val:?}"
        );
    }
    // Expires in 5 s: still a good password.
    assert!(matches!(
        with(ppolicy, &[0x30, 0x05, 0xa0, 0x03, 0x80, 0x01, 0x05]),
        Ok(PrimaryOutcome::Accepted(_))
    ));
}

#[test]
fn bind_results() {
    assert!(matches!(
        bind_outcome(&result(0, "")),
        Ok(PrimaryOutcome::Accepted(_))
    ));
    assert!(matches!(
        bind_outcome(&result(49, "")),
        Ok(PrimaryOutcome::Denied(Denial::BadPassword))
    ));
    let ad = |code: &str| {
        result(
            49,
            &format!("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {code}, v4563\0"),
        )
    };
    assert!(matches!(
        bind_outcome(&ad("52e")),
        Ok(PrimaryOutcome::Denied(Denial::BadPassword))
    ));
    assert!(matches!(
        bind_outcome(&ad("525")),
        Ok(PrimaryOutcome::Denied(Denial::UnknownUser))
    ));
    assert!(matches!(
        bind_outcome(&ad("775")),
        Ok(PrimaryOutcome::Denied(Denial::Directory(
            ad_codes::AdReason::AccountLockedOut
        )))
    ));
    // 389-ds / FreeIPA: a policy lockout and an inactivated account are the account's
    // state, refused like a wrong password, not a directory fault.
    match bind_outcome(&result(
        19,
        "Exceed password retry limit. Please try later.\0",
    )) {
        Ok(PrimaryOutcome::Denied(d @ Denial::AccountRefused { rc: 19, .. })) => assert_eq!(
            d.reason(),
            "the directory refused this account's bind (LDAP result 19: Exceed password \
             retry limit. Please try later.)"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bind_outcome(&result(
            53,
            "Account inactivated. Contact system administrator."
        )),
        Ok(PrimaryOutcome::Denied(Denial::AccountRefused {
            rc: 53,
            ..
        }))
    ));
    // An entry without a password (older 389-ds: 48), a bind the entry may not make (50):
    // the account, not the directory.
    for rc in [48, 50] {
        assert!(
            matches!(
                bind_outcome(&result(rc, "")),
                Ok(PrimaryOutcome::Denied(Denial::AccountRefused { .. }))
            ),
            "{rc}"
        );
    }
    // A DN that is gone: as an unknown user (a cached DN is searched for again).
    assert!(matches!(
        bind_outcome(&result(32, "")),
        Ok(PrimaryOutcome::Denied(Denial::UnknownUser))
    ));
    // The same code about the server, not the account: a fault.
    assert!(matches!(
        bind_outcome(&result(53, "Backend is offline")),
        Err(AuthError::Ldap(_))
    ));
    // Anything else is the directory's problem.
    assert!(matches!(
        bind_outcome(&result(51, "busy")),
        Err(AuthError::Ldap(_))
    ));
    assert!(matches!(
        bind_outcome(&result(80, "other")),
        Err(AuthError::Ldap(_))
    ));
}

#[test]
fn attribute_lookup_ignores_case() {
    let mut attrs = HashMap::new();
    attrs.insert("mail".to_string(), vec!["a@example.org".to_string()]);
    attrs.insert(
        "telephoneNumber".to_string(),
        vec![String::new(), "+1".to_string()],
    );
    assert_eq!(
        first_value(&attrs, "Mail").as_deref(),
        Some("a@example.org")
    );
    assert_eq!(
        first_value(&attrs, "telephonenumber").as_deref(),
        Some("+1")
    );
    assert_eq!(first_value(&attrs, "mobile"), None);
    assert_eq!(first_value(&attrs, ""), None);
}

/// Directory values shown in audit records and logs are cut to a bounded length, on a
/// character boundary.
#[test]
fn shown_values_are_cut_on_a_character() {
    assert_eq!(cut_chars("ab".repeat(200), MAX_SHOWN_CHARS).len(), 256);
    assert_eq!(cut_chars("é".repeat(300), 256).chars().count(), 256);
    assert_eq!(cut_chars("short".into(), 256), "short");
}

/// A tagged attribute (`uid;lang-en`) is the attribute's too, after its plain values:
/// `(uid=…)` matches it, so its values are names of the entry.
#[test]
fn attribute_lookup_takes_subtypes_after_the_plain_values() {
    let mut attrs = HashMap::new();
    attrs.insert("uid;lang-en".to_string(), vec!["hank.x".to_string()]);
    attrs.insert("UID".to_string(), vec!["hank".to_string()]);
    attrs.insert("uidNumber".to_string(), vec!["1000".to_string()]);
    let uid: Vec<&String> = all_values(&attrs, "uid").collect();
    assert_eq!(uid, ["hank", "hank.x"]);
    assert_eq!(first_value(&attrs, "uid").as_deref(), Some("hank"));
    assert_eq!(all_values(&attrs, "lang-en").count(), 0);
}

/// A name the entry does not have (as radmfa compares names) is told; one it has, in
/// any case or spacing, is not; nor is anything when the entry shows no names.
#[test]
fn a_name_the_entry_does_not_have_is_told() {
    let auth = LdapAuth::new(LdapSettings {
        user_filter: "(|(uid={user})(mail={user}))".into(),
        ..settings()
    })
    .unwrap();
    let entry = |attrs: &[(&str, &[&str])]| SearchEntry {
        dn: "uid=dave,dc=example,dc=org".into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect(),
        bin_attrs: HashMap::new(),
    };
    let dave = entry(&[
        ("uid", &["Dave"]),
        ("mail", &["dave@example.org"]),
        ("cn", &["ｄave"]),
    ]);
    for typed in ["dave", "DAVE", " dave ", "Dave@Example.org"] {
        assert_eq!(auth.name_not_in_entry(&dave, typed), None, "{typed}");
    }
    assert_eq!(
        auth.name_not_in_entry(&dave, "ｄave").as_deref(),
        Some("\"Dave\", \"dave@example.org\"")
    );
    let hidden = entry(&[("cn", &["Dave"])]);
    assert_eq!(auth.name_not_in_entry(&hidden, "ｄave"), None);
    // A filter that also matches a name no attribute holds as such (a UPN's prefix, the
    // domain given in the filter): such a name is not refused.
    let upn = LdapAuth::new(LdapSettings {
        user_filter: "(|(uid={user})(mail={user}@example.org))".into(),
        ..settings()
    })
    .unwrap();
    let smith = entry(&[("uid", &["dave"]), ("mail", &["dave.smith@example.org"])]);
    assert_eq!(upn.name_not_in_entry(&smith, "dave.smith"), None);
    assert!(only_plain_name_terms(
        "(&(objectClass=user)(sAMAccountName={user}))"
    ));
    assert!(!only_plain_name_terms(
        "(|(sAMAccountName={user})(userPrincipalName={user}@corp.example.org))"
    ));
    assert!(!only_plain_name_terms("(uid:caseExactMatch:={user})"));
}

#[test]
fn url_order_prefers_last_good_and_holds_off_failed() {
    let mut s = settings();
    s.urls = vec!["ldap://a".into(), "ldap://b".into(), "ldap://c".into()];
    let auth = LdapAuth::new(s).unwrap();
    assert_eq!(auth.url_order(), vec![0, 1, 2]);
    auth.mark_failed(0);
    assert_eq!(auth.url_order(), vec![1, 2, 0]);
    // A connect to c that set out before b took a's place does not take b's: b answers.
    auth.mark_good(2);
    assert_eq!(auth.url_order(), vec![1, 2, 0]);
    auth.mark_failed(1);
    assert_eq!(auth.url_order(), vec![2, 0, 1]);
    auth.mark_good(2);
    assert_eq!(auth.url_order(), vec![2, 0, 1]);
    // a connects again: no longer held off, but c keeps its place (the probe brings a
    // back, `ldap_return`).
    auth.mark_good(0);
    assert_eq!(auth.url_order(), vec![2, 0, 1]);
    assert!(auth.url_health.lock().unwrap()[0].held_until.is_none());
}

/// A preferred server that fails gives its place to the next: once its hold-off runs out it
/// is not first again (a server that takes connections and never answers, with anonymous
/// searches, failed every login that came after the hold-off).
#[test]
fn a_failed_preferred_url_is_not_first_again_after_its_hold_off() {
    let mut s = settings();
    s.urls = vec!["ldap://a".into(), "ldap://b".into(), "ldap://c".into()];
    let auth = LdapAuth::new(s).unwrap();
    auth.mark_failed(0);
    let expire = |i: usize| {
        auth.url_health.lock().unwrap()[i].held_until = Some(Instant::now());
    };
    expire(0);
    assert_eq!(auth.url_order(), vec![1, 0, 2]);
    // Not the preferred one: the order stays.
    auth.mark_failed(2);
    assert_eq!(auth.url_order(), vec![1, 0, 2]);
    // The next one failing, with the first free again and the third held off: the first.
    auth.mark_failed(1);
    assert_eq!(auth.url_order(), vec![0, 1, 2]);
    // All held off: the preferred one stays where it is.
    auth.mark_failed(0);
    assert_eq!(auth.url_order()[0], 0);
}

#[tokio::test]
async fn empty_password_needs_no_network() {
    let auth = LdapAuth::new(settings()).unwrap();
    let out = auth.authenticate("alice", &Secret::from("")).await.unwrap();
    assert_eq!(out, PrimaryOutcome::Denied(Denial::EmptyPassword));
    assert_eq!(auth.bind_count(), 0);
}

#[tokio::test]
async fn unreachable_is_unavailable() {
    let auth = LdapAuth::new(settings()).unwrap();
    let err = auth
        .authenticate("alice", &Secret::from("pw"))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Unavailable(_)), "{err:?}");
}

#[test]
fn the_naming_attribute_is_read_from_user_filter() {
    let naming_attribute = |f: &str| naming_attributes(f).into_iter().next();
    assert_eq!(naming_attribute("(uid={user})").as_deref(), Some("uid"));
    assert_eq!(
        naming_attribute("(&(objectClass=user)(sAMAccountName={user}))").as_deref(),
        Some("sAMAccountName")
    );
    // `{user}` inside a value, or not compared for equality: no attribute to read.
    assert_eq!(naming_attribute("(mail={user}@example.org)"), None);
    assert_eq!(naming_attribute("(cn=*{user}*)"), None);
    assert_eq!(naming_attribute("(uid~={user})"), None);
    assert_eq!(
        naming_attributes(
            "(&(objectClass=user)(|(sAMAccountName={user})(userPrincipalName={user})(mail={user}@x)(sAMAccountName={user})))"
        ),
        ["sAMAccountName", "userPrincipalName"]
    );
    // Read always: for group_filter's {user}, and for an entry's other names.
    let plain = LdapAuth::new(settings()).unwrap();
    assert_eq!(plain.name_attr.as_deref(), Some("uid"));
    let mut s = settings();
    s.group_filter = "(memberUid={user})".into();
    let posix = LdapAuth::new(s).unwrap();
    assert_eq!(posix.name_attr.as_deref(), Some("uid"));
    assert!(posix.search_attrs.iter().any(|a| a == "uid"));
}

#[test]
fn same_dn_ignores_case_and_spaces_only() {
    assert!(same_dn(
        "uid=alice,ou=people,dc=example,dc=org",
        "UID=Alice, OU=People,dc = example,DC=org"
    ));
    assert!(!same_dn(
        "uid=alice,ou=people,dc=example,dc=org",
        "uid=alice,ou=moved,dc=example,dc=org"
    ));
    assert!(!same_dn("cn=a,dc=x", "cn=a,dc=x,dc=y"));
    // Escapes read: what slapd returns for an escaped comma.
    assert!(same_dn(
        "uid=frank,ou=Sales\\, EMEA,dc=example,dc=org",
        "uid=frank,ou=Sales\\2C EMEA,dc=example,dc=org"
    ));
    assert!(same_dn("", ""));
}

/// An unknown user's padding waits for a bind slot as a known user's bind does, and runs
/// into the same timeout when none comes: with every slot held (peak load, or a flood of
/// logins for known names), an unknown name must not be the one answered at once.
#[tokio::test]
async fn the_padding_waits_for_a_bind_slot_like_a_bind() {
    let mut s = settings();
    s.user_bind_concurrency = 1;
    s.op_timeout = Duration::from_millis(200);
    let auth = LdapAuth::new(s).unwrap();
    let held = auth.user_bind_slots.acquire().await.unwrap();
    let started = Instant::now();
    let padded = auth.pad_like_a_bind(Duration::ZERO).await;
    assert!(matches!(padded, Err(AuthError::Timeout(_))), "{padded:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    drop(held);
    assert!(auth.pad_like_a_bind(Duration::ZERO).await.is_ok());
}

#[test]
fn an_entrys_identity_is_read_from_text_or_binary_values() {
    let entry = |attrs: &[(&str, &str)], bin: &[(&str, &[u8])]| SearchEntry {
        dn: "uid=frank,dc=example,dc=org".into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect(),
        bin_attrs: bin
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_vec()]))
            .collect(),
    };
    // OpenLDAP's entryUUID, whatever the case of the name or the value.
    let e = entry(
        &[("entryuuid", "0F6C3D2A-1111-4E5E-9A9A-00000000000A")],
        &[],
    );
    assert_eq!(
        entry_id(&e).as_deref(),
        Some("entryUUID:0f6c3d2a-1111-4e5e-9a9a-00000000000a")
    );
    // AD's objectGUID: 16 bytes, as binary or (when they happen to be UTF-8) as text.
    let guid: &[u8] = &[0xa1, 0, 0xff, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xfe];
    let e = entry(&[], &[("objectGUID", guid)]);
    assert_eq!(
        entry_id(&e).as_deref(),
        Some("objectGUID:a100ff070102030405060708090a0bfe")
    );
    let e = entry(&[("objectGUID", "abcdefghijklmnop")], &[]);
    assert_eq!(
        entry_id(&e).as_deref(),
        Some("objectGUID:6162636465666768696a6b6c6d6e6f70")
    );
    // None shown: no identity, rather than an empty one.
    assert_eq!(entry_id(&entry(&[("entryUUID", "")], &[])), None);
    assert_eq!(entry_id(&entry(&[("uid", "frank")], &[])), None);
}

/// A group search that times out says it was the group search: "LDAP operation timed out"
/// alone, in an audit reason, reads as the user's own search or bind.
#[tokio::test]
async fn a_group_search_timeout_names_the_group() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut s = settings();
    s.urls = vec![format!("ldap://{}", silent.local_addr().unwrap())];
    s.op_timeout = Duration::from_millis(200);
    let auth = LdapAuth::new(s).unwrap();
    let info = UserInfo {
        dn: "uid=alice,dc=example,dc=org".into(),
        ..UserInfo::default()
    };
    let err = auth
        .member_of("alice", &info, "cn=vpn,dc=example,dc=org")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "group search cn=vpn,dc=example,dc=org: LDAP operation timed out after 200 ms"
    );
}

/// rustls's names for a refused certificate, with what to do about them.
#[test]
fn tls_refusals_say_what_to_do() {
    let auth = LdapAuth::new(settings()).unwrap();
    let hint = |msg: &str| auth.tls_hint(msg.to_string());
    let said = hint("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))");
    assert!(
        said.starts_with("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity)) (")
            && said.contains("is a CA certificate (basicConstraints CA:TRUE"),
        "{said}"
    );
    let said = hint("invalid peer certificate: certificate expired: verification time 1796672596 (UNIX), but certificate is not valid after 1580515200 (UNIX)");
    assert!(
        said.ends_with("(the server's certificate has expired, or this host's clock is wrong)"),
        "{said}"
    );
    let said = hint("invalid peer certificate: certificate not valid yet: verification time 1580515200 (UNIX), but certificate is not valid before 1796672596 (UNIX)");
    assert!(
        said.ends_with("(the server's certificate is not valid yet: this host's clock may be behind, or the certificate was issued with a start date in the future)"),
        "{said}"
    );
    assert_eq!(hint("connection refused"), "connection refused");
}
