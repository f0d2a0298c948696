//! `[ldap] entry_cache_seconds` against a real slapd: a remembered entry saves the search,
//! every login still binds, and a refused bind asks the directory again, so a changed
//! password, a moved entry and a deleted one are answered as they are now. slapd's own
//! stats log counts the searches and binds it received.

mod common;

use std::time::Duration;

use common::slapd::{LdapUser, Slapd, BASE_DN, PEOPLE_DN};
use radmfa::auth::ldap::LdapSettings;
use radmfa::auth::{Denial, LdapAuth, PrimaryAuth, PrimaryOutcome};
use radmfa::secret::Secret;

const ALICE: &str = "uid=alice)";

fn auth(slapd: &Slapd, ttl: Duration) -> LdapAuth {
    LdapAuth::new(LdapSettings {
        urls: vec![slapd.url.clone()],
        bind_dn: slapd.service_dn.clone(),
        bind_password: Secret::from(slapd.service_password.as_str()),
        base_dn: slapd.base_dn.clone(),
        user_filter: "(&(objectClass=inetOrgPerson)(uid={user}))".into(),
        entry_cache_ttl: ttl,
        ..LdapSettings::default()
    })
    .expect("LdapAuth::new")
}

fn slapd() -> Slapd {
    Slapd::start(&[
        LdapUser::new("alice", "alice-pw"),
        LdapUser::new("bob", "bob-pw"),
    ])
}

async fn login(auth: &LdapAuth, user: &str, password: &str) -> PrimaryOutcome {
    auth.authenticate(user, &Secret::from(password))
        .await
        .expect("the directory answers")
}

fn accepted_dn(out: &PrimaryOutcome) -> &str {
    match out {
        PrimaryOutcome::Accepted(info) => &info.dn,
        other => panic!("expected Accepted, got {other:?}"),
    }
}

/// slapd writes its stats line from its own thread; give it a moment before counting.
fn searches(slapd: &Slapd, needle: &str) -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    slapd.search_count(needle)
}

#[tokio::test]
async fn without_the_setting_every_login_searches() {
    let slapd = slapd();
    let auth = auth(&slapd, Duration::ZERO);
    for _ in 0..3 {
        accepted_dn(&login(&auth, "alice", "alice-pw").await);
    }
    assert_eq!(searches(&slapd, ALICE), 3, "{}", slapd.log_tail());
}

#[tokio::test]
async fn a_remembered_entry_saves_the_search_but_not_the_bind() {
    let slapd = slapd();
    let auth = auth(&slapd, Duration::from_secs(60));
    let first = login(&auth, "alice", "alice-pw").await;
    let second = login(&auth, "alice", "alice-pw").await;
    assert_eq!(first, second, "the same entry, with its attributes");
    let PrimaryOutcome::Accepted(info) = &second else {
        unreachable!()
    };
    assert_eq!(info.mobile.as_deref(), Some("+15550100"));
    assert_eq!(searches(&slapd, ALICE), 1, "{}", slapd.log_tail());
    assert_eq!(slapd.bind_count(&format!("uid=alice,{PEOPLE_DN}")), 2);
    assert_eq!(auth.bind_count(), 2);

    // A wrong password: refused, after the directory is asked again (a search), and the
    // entry is forgotten, so the next good login searches too.
    assert_eq!(
        login(&auth, "alice", "bob-pw").await,
        PrimaryOutcome::Denied(Denial::BadPassword)
    );
    assert_eq!(searches(&slapd, ALICE), 2);
    // One bind for the wrong password, not two: a second would count against the account.
    assert_eq!(auth.bind_count(), 3);
    accepted_dn(&login(&auth, "alice", "alice-pw").await);
    accepted_dn(&login(&auth, "alice", "alice-pw").await);
    assert_eq!(searches(&slapd, ALICE), 3);
}

#[tokio::test]
async fn a_changed_password_is_seen_at_once() {
    let slapd = slapd();
    let auth = auth(&slapd, Duration::from_secs(60));
    accepted_dn(&login(&auth, "alice", "alice-pw").await);
    accepted_dn(&login(&auth, "alice", "alice-pw").await);
    assert_eq!(searches(&slapd, ALICE), 1, "the entry is remembered");
    slapd.modify(&format!(
        "dn: uid=alice,{PEOPLE_DN}\nchangetype: modify\nreplace: userPassword\nuserPassword: new-pw\n"
    ));
    assert_eq!(
        login(&auth, "alice", "alice-pw").await,
        PrimaryOutcome::Denied(Denial::BadPassword)
    );
    accepted_dn(&login(&auth, "alice", "new-pw").await);
}

#[tokio::test]
async fn a_moved_entry_is_found_where_it_is_now() {
    let slapd = slapd();
    let auth = auth(&slapd, Duration::from_secs(60));
    let old = format!("uid=alice,{PEOPLE_DN}");
    assert_eq!(accepted_dn(&login(&auth, "alice", "alice-pw").await), old);
    slapd.modify(&format!(
        "dn: ou=moved,{BASE_DN}\nchangetype: add\nobjectClass: organizationalUnit\nou: moved\n\n\
         dn: {old}\nchangetype: modrdn\nnewrdn: uid=alice\ndeleteoldrdn: 1\nnewsuperior: ou=moved,{BASE_DN}\n"
    ));
    // The remembered DN no longer exists, so its bind is refused; the search finds the
    // entry's new place and the password is checked there.
    let out = login(&auth, "alice", "alice-pw").await;
    assert_eq!(accepted_dn(&out), format!("uid=alice,ou=moved,{BASE_DN}"));
    // The first login's bind, the remembered DN's refused one, the new DN's.
    assert_eq!(auth.bind_count(), 3);
    // And the new place is what is remembered now.
    let before = searches(&slapd, ALICE);
    accepted_dn(&login(&auth, "alice", "alice-pw").await);
    assert_eq!(searches(&slapd, ALICE), before);
}

#[tokio::test]
async fn a_deleted_entry_is_an_unknown_user() {
    let slapd = slapd();
    let auth = auth(&slapd, Duration::from_secs(60));
    accepted_dn(&login(&auth, "alice", "alice-pw").await);
    slapd.modify(&format!("dn: uid=alice,{PEOPLE_DN}\nchangetype: delete\n"));
    assert_eq!(
        login(&auth, "alice", "alice-pw").await,
        PrimaryOutcome::Denied(Denial::UnknownUser)
    );
    // Answered after a bind at the remembered DN (uncached, the search alone answers).
    assert_eq!(auth.bind_count(), 2);
    // Others are not affected.
    accepted_dn(&login(&auth, "bob", "bob-pw").await);
}

#[tokio::test]
async fn entries_expire_and_refused_ones_are_never_remembered() {
    let slapd = slapd();
    let auth = auth(&slapd, Duration::from_secs(3));
    accepted_dn(&login(&auth, "alice", "alice-pw").await);
    accepted_dn(&login(&auth, "alice", "alice-pw").await);
    assert_eq!(searches(&slapd, ALICE), 1);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    accepted_dn(&login(&auth, "alice", "alice-pw").await);
    assert_eq!(searches(&slapd, ALICE), 2, "searched again after the TTL");

    // Wrong passwords and unknown names leave nothing behind to skip a search with: bob's
    // good login after his wrong one searches as his first login would.
    for _ in 0..2 {
        assert_eq!(
            login(&auth, "bob", "wrong").await,
            PrimaryOutcome::Denied(Denial::BadPassword)
        );
        assert_eq!(
            login(&auth, "mallory", "x").await,
            PrimaryOutcome::Denied(Denial::UnknownUser)
        );
    }
    accepted_dn(&login(&auth, "bob", "bob-pw").await);
    assert_eq!(searches(&slapd, "uid=bob)"), 3);
    assert_eq!(searches(&slapd, "uid=mallory)"), 2);
}
