//! Behaviour battery for any `Store` implementation.
//!
//! Every check takes a fresh, empty store: plain checks take `&dyn Store`, racing checks take
//! `Arc<dyn Store>` (their tasks are spawned). A new backend (PostgreSQL) runs the same
//! battery by calling these functions, or `run_all` with a factory of fresh stores.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use radmfa::secret::Secret;
use radmfa::store::durability;
use radmfa::store::{
    AuditFilter, AuditGroup, AuditRecord, BypassWas, CancelledOob, ChallengeAttempt, FirstToken,
    LoginOrigin, NewToken, OobBegin, OobKind, OobStatus, OobTransaction, OtpAlgorithm,
    PendingChallenge, RememberedLogin, SendLimit, StepUse, Store, StoreError, TokenAsRead,
    TokenExtra, TokenFilter, TokenKind, UserProfile, UserStatus,
};
use tokio::sync::Barrier;

/// A fixed "now" for the time-dependent checks.
pub const T: i64 = 1_700_000_000;
/// How many tasks each race starts.
pub const RACERS: usize = 20;

/// Runs every check, each on a store freshly made by `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    tokens_add_list_by_serial(&*make().await).await;
    duplicate_serial_is_conflict(&*make().await).await;
    first_token_only_where_no_name_holds_one(&*make().await).await;
    race_add_first_token(make().await).await;
    seed_round_trips(&*make().await).await;
    delete_user_tokens_counts(&*make().await).await;
    token_ids_are_not_reused(&*make().await).await;
    app_password_ids_are_not_reused(&*make().await).await;
    totp_step_consumed_once(&*make().await).await;
    race_totp_step(make().await).await;
    hotp_compare_and_set(&*make().await).await;
    race_hotp_counter(make().await).await;
    user_status_and_list_users(&*make().await).await;
    lockout_threshold_lock_time_and_unlock(&*make().await).await;
    expired_lock_unlock_reports_false(&*make().await).await;
    clear_failures_resets_count(&*make().await).await;
    a_failure_while_locked_counts_nothing(&*make().await).await;
    race_record_failure(make().await).await;
    challenge_put_get_and_expiry(&*make().await).await;
    challenge_consumed_once(&*make().await).await;
    open_challenge_by_user_and_client(&*make().await).await;
    race_consume_challenge(make().await).await;
    take_attempt_closes_at_max(&*make().await).await;
    race_take_attempt(make().await).await;
    race_take_attempt_against_consume(make().await).await;
    race_guarded_writes_in_request_scopes(make().await).await;
    race_remember_and_forget(make().await).await;
    purge_expired_challenges(&*make().await).await;
    close_challenges_of_one_user(&*make().await).await;
    close_challenges_of_one_client(&*make().await).await;
    audit_append_and_round_trip(&*make().await).await;
    audit_records_with_a_nul_are_kept(&*make().await).await;
    import_replace_rescales_steps_to_a_new_period(&*make().await).await;
    audit_filters_order_and_limit(&*make().await).await;
    audit_client_ip_finds_every_form_of_the_address(&*make().await).await;
    audit_after_id_reads_newer_records_oldest_first(&*make().await).await;
    audit_default_limit_is_100(&*make().await).await;
    purge_audit_deletes_the_oldest_in_batches(&*make().await).await;
    audit_counts_per_group_and_result(&*make().await).await;
    delete_user_removes_everything_of_that_user(&*make().await).await;
    inventory_import_list_assign_enable_delete(&*make().await).await;
    import_is_all_or_nothing(&*make().await).await;
    import_refused_when_the_inventory_changed_since_its_checks(&*make().await).await;
    import_of_thousands_of_owned_tokens(&*make().await).await;
    import_replace_keeps_owner_and_what_was_learned(&*make().await).await;
    import_replace_keeps_the_counter_across_a_kind_change(&*make().await).await;
    totp_drift_is_stored_with_the_step(&*make().await).await;
    totp_step_is_used_only_from_the_step_seen(&*make().await).await;
    totp_step_moves_back_only_from_the_step_seen(&*make().await).await;
    hotp_resync_pending_round_trips(&*make().await).await;
    race_import_same_serial(make().await).await;
    import_turns_one_at_a_time(make().await).await;
    profile_phone_method_round_trip(&*make().await).await;
    block_and_unblock(&*make().await).await;
    bypass_is_taken_once_before_it_expires(&*make().await).await;
    race_take_bypass(make().await).await;
    app_passwords_add_list_delete(&*make().await).await;
    send_slots_limit_and_window(&*make().await).await;
    send_slot_given_back_by_its_id(&*make().await).await;
    forgotten_sends_still_count_for_the_nas(&*make().await).await;
    a_numbers_sends_are_told_by_user_and_forgotten(&*make().await).await;
    oob_begin_get_resolve(&*make().await).await;
    cancel_oob_of_one_user(&*make().await).await;
    purge_delivery_state(&*make().await).await;
    delete_user_removes_delivery_state(&*make().await).await;
    remembered_logins_per_client_and_station(&*make().await).await;
    remembered_logins_are_purged_and_forgotten(&*make().await).await;
    remembered_logins_are_cut_to_a_client_period(&*make().await).await;
    race_begin_oob(make().await).await;
    race_resolve_oob(make().await).await;
    race_take_send_slot(make().await).await;
    user_snapshot_matches_separate_reads(&*make().await).await;
    request_scope_writes_are_durable_at_its_end(&*make().await).await;
    request_scope_failed_write_keeps_the_audit(&*make().await).await;
    race_totp_step_in_request_scopes(make().await).await;
}

// ---------------------------------------------------------------------------------------------
// helpers

pub fn totp(serial: &str, user: Option<&str>, seed: &[u8]) -> NewToken {
    NewToken {
        serial: serial.into(),
        user: user.map(Into::into),
        kind: TokenKind::Totp,
        algorithm: OtpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        counter: 0,
        secret: Secret::new(seed.to_vec()),
    }
}

pub fn hotp(serial: &str, user: Option<&str>, seed: &[u8], counter: u64) -> NewToken {
    NewToken {
        serial: serial.into(),
        user: user.map(Into::into),
        kind: TokenKind::Hotp,
        algorithm: OtpAlgorithm::Sha256,
        digits: 8,
        period: 0,
        counter,
        secret: Secret::new(seed.to_vec()),
    }
}

pub fn challenge(state: &[u8], user: &str, expires_at: i64) -> PendingChallenge {
    PendingChallenge {
        state_hash: state.to_vec(),
        user: user.into(),
        nas: "vpn-1".into(),
        created_at: expires_at - 60,
        expires_at,
        attempts: 0,
        context: r#"{"calling_station_id":"203.0.113.7"}"#.into(),
    }
}

pub fn audit_record(time: i64, user: &str, result: &str) -> AuditRecord {
    AuditRecord {
        id: 0,
        time,
        user: user.into(),
        first_name: None,
        last_name: None,
        email: None,
        phone: None,
        token_serial: None,
        mode: "totp".into(),
        result: result.into(),
        reason: None,
        server_name: "node-a".into(),
        server_ip: None,
        client_ip: None,
        nas_ip: None,
        nas_identifier: None,
        nas_name: None,
        latency_ms: 1,
        actor: None,
    }
}

/// Starts `RACERS` tasks that all call `f` at once; returns their results.
async fn race<R, F, Fut>(store: Arc<dyn Store>, f: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(Arc<dyn Store>, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let f = Arc::new(f);
    let mut handles = Vec::with_capacity(RACERS);
    for i in 0..RACERS {
        let store = store.clone();
        let barrier = barrier.clone();
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            f(store, i).await
        }));
    }
    let mut out = Vec::with_capacity(RACERS);
    for h in handles {
        out.push(h.await.expect("racing task panicked"));
    }
    out
}

fn serials(tokens: &[radmfa::store::Token]) -> BTreeSet<String> {
    tokens.iter().map(|t| t.serial.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// tokens

pub async fn tokens_add_list_by_serial(store: &dyn Store) {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t1 = store
        .add_token(totp("T1", Some("alice"), b"seed-t1"))
        .await
        .unwrap();
    let h1 = store
        .add_token(hotp("H1", Some("alice"), b"seed-h1", 42))
        .await
        .unwrap();
    let t2 = store
        .add_token(totp("T2", Some("bob"), b"seed-t2"))
        .await
        .unwrap();
    let u1 = store.add_token(totp("U1", None, b"seed-u1")).await.unwrap();
    let ids: BTreeSet<i64> = [t1, h1, t2, u1].into_iter().collect();
    assert_eq!(ids.len(), 4, "ids are distinct");
    // Added one by one = enrolled for an app; imported ones are not (below).
    let t1_record = store.token_record("T1").await.unwrap().unwrap();
    assert!(
        t1_record.extra.enrolled,
        "add_token records an enrolled seed"
    );

    let alice = store.tokens_for_user("alice").await.unwrap();
    assert_eq!(
        serials(&alice),
        ["H1", "T1"].iter().map(|s| s.to_string()).collect()
    );
    let t = alice.iter().find(|t| t.serial == "T1").unwrap();
    assert_eq!(t.id, t1);
    assert_eq!(t.user.as_deref(), Some("alice"));
    assert_eq!(t.kind, TokenKind::Totp);
    assert_eq!(t.algorithm, OtpAlgorithm::Sha1);
    assert_eq!((t.digits, t.period, t.counter), (6, 30, 0));
    assert_eq!(t.last_step, None);
    assert!(t.enabled, "new tokens are enabled");
    assert!(t.created_at >= before - 5 && t.created_at <= before + 60);
    assert_eq!(t.secret.expose(), b"seed-t1");

    let h = store
        .token_by_serial("H1")
        .await
        .unwrap()
        .expect("H1 exists");
    assert_eq!(h.id, h1);
    assert_eq!(h.kind, TokenKind::Hotp);
    assert_eq!(h.algorithm, OtpAlgorithm::Sha256);
    assert_eq!((h.digits, h.counter), (8, 42));
    assert_eq!(h.secret.expose(), b"seed-h1");
    // Debug output never shows the seed.
    assert!(!format!("{h:?}").contains("seed-h1"));

    let u = store.token_by_serial("U1").await.unwrap().unwrap();
    assert_eq!(u.user, None);

    assert_eq!(
        serials(&store.tokens_for_user("bob").await.unwrap()).len(),
        1
    );
    assert!(store.tokens_for_user("carol").await.unwrap().is_empty());
    assert!(store.token_by_serial("nope").await.unwrap().is_none());
    // Lookups are exact.
    assert!(store.token_by_serial("t1").await.unwrap().is_none());
}

pub async fn duplicate_serial_is_conflict(store: &dyn Store) {
    store
        .add_token(totp("T1", Some("alice"), b"first"))
        .await
        .unwrap();
    let err = store
        .add_token(totp("T1", Some("mallory"), b"second"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    // The original is untouched.
    let t = store.token_by_serial("T1").await.unwrap().unwrap();
    assert_eq!(t.user.as_deref(), Some("alice"));
    assert_eq!(t.secret.expose(), b"first");
    assert!(store.tokens_for_user("mallory").await.unwrap().is_empty());
}

/// `add_first_token` stores only for a user none of whose names holds a token (a disabled
/// one counts), and says which of them holds which.
pub async fn first_token_only_where_no_name_holds_one(store: &dyn Store) {
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Another user's token, and one in stock, are nobody's of these names.
    store
        .add_token(totp("B1", Some("bob"), b"b"))
        .await
        .unwrap();
    store.add_token(totp("S1", None, b"s")).await.unwrap();
    let first = store
        .add_first_token(
            totp("A1", Some("alice"), b"a1"),
            &names(&["alice", "asmith"]),
        )
        .await
        .unwrap();
    let FirstToken::Added(id) = first else {
        panic!("alice held nothing: {first:?}")
    };
    assert_eq!(store.token_by_serial("A1").await.unwrap().unwrap().id, id);
    // Under the other name of her entry, and under her own: refused, naming what is held.
    let again = |serial: &'static str, holders: &'static [&'static str]| {
        let user = holders[0];
        async move {
            store
                .add_first_token(totp(serial, Some(user), b"x"), &names(holders))
                .await
                .unwrap()
        }
    };
    assert_eq!(
        again("A2", &["asmith", "alice"]).await,
        FirstToken::Held(vec![("alice".into(), "A1".into())])
    );
    assert!(store.set_token_enabled("A1", false).await.unwrap());
    store
        .add_token(totp("A3", Some("alice"), b"a3"))
        .await
        .unwrap();
    assert_eq!(
        again("A4", &["alice"]).await,
        FirstToken::Held(vec![
            ("alice".into(), "A1".into()),
            ("alice".into(), "A3".into())
        ])
    );
    for serial in ["A2", "A4"] {
        assert!(store.token_by_serial(serial).await.unwrap().is_none());
    }
    // A serial already there is still a conflict, and stores nothing.
    let err = store
        .add_first_token(totp("B1", Some("carol"), b"c"), &names(&["carol"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    assert!(store.tokens_for_user("carol").await.unwrap().is_empty());
}

pub async fn seed_round_trips(store: &dyn Store) {
    let seeds: Vec<Vec<u8>> = vec![
        b"12345678901234567890".to_vec(),
        (0u8..=255).collect(),
        vec![0u8; 20],
        vec![0xff; 64],
        vec![7],
    ];
    for (i, seed) in seeds.iter().enumerate() {
        store
            .add_token(totp(&format!("S{i}"), Some("alice"), seed))
            .await
            .unwrap();
    }
    for (i, seed) in seeds.iter().enumerate() {
        let t = store
            .token_by_serial(&format!("S{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.secret.expose(), &seed[..], "seed {i} by serial");
    }
    let all = store.tokens_for_user("alice").await.unwrap();
    assert_eq!(all.len(), seeds.len());
    for t in all {
        let i: usize = t.serial[1..].parse().unwrap();
        assert_eq!(t.secret.expose(), &seeds[i][..], "seed {i} by user");
    }
}

pub async fn delete_user_tokens_counts(store: &dyn Store) {
    store
        .add_token(totp("A1", Some("alice"), b"a"))
        .await
        .unwrap();
    store
        .add_token(totp("A2", Some("alice"), b"b"))
        .await
        .unwrap();
    store
        .add_token(totp("B1", Some("bob"), b"c"))
        .await
        .unwrap();
    // A hardware token of alice's, imported, that has been used (counter 7).
    let mut hw = totp("HW1", Some("alice"), b"hw");
    hw.kind = TokenKind::Hotp;
    hw.counter = 7;
    store
        .import_tokens(&[(hw, TokenExtra::default())], false)
        .await
        .unwrap();
    // Each by its serial, sorted: the audit names every token taken away.
    let removed = store.delete_user_tokens("alice").await.unwrap();
    assert_eq!(removed.deleted, ["A1", "A2"]);
    assert_eq!(removed.returned, ["HW1"]);
    let again = store.delete_user_tokens("alice").await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert!(store.tokens_for_user("alice").await.unwrap().is_empty());
    assert!(store.token_by_serial("A1").await.unwrap().is_none());
    assert_eq!(store.tokens_for_user("bob").await.unwrap().len(), 1);
    // The hardware token is back in stock, unassigned, its counter kept.
    let back = store.token_by_serial("HW1").await.unwrap().expect("kept");
    assert_eq!((back.user.as_deref(), back.counter), (None, 7));
    // The serial is free again.
    store
        .add_token(totp("A1", Some("alice"), b"new"))
        .await
        .unwrap();
}

/// A deleted token's id is never given to another: a login that read alice's token before
/// her reset would otherwise use up a step of whoever got the id next (the step is taken by
/// id), and be accepted. SQLite gave the newest row's id out again until migration 11.
pub async fn token_ids_are_not_reused(store: &dyn Store) {
    let old = store
        .add_token(totp("OLD", Some("alice"), b"a"))
        .await
        .unwrap();
    store.delete_user_tokens("alice").await.unwrap();
    let new = store
        .add_token(totp("NEW", Some("bob"), b"b"))
        .await
        .unwrap();
    assert_ne!(old, new, "the deleted token's id was given out again");
    assert!(!store.consume_totp_step(old, 100).await.unwrap());
    let bob = &store.tokens_for_user("bob").await.unwrap()[0];
    assert_eq!(
        bob.last_step, None,
        "bob's step was taken through alice's old id"
    );
}

/// A deleted app password's id is never given to another: the audit names an app
/// password's logins `app-password-N`, and an admin deletes one by its id. SQLite gave the
/// newest row's id out again until migration 12.
pub async fn app_password_ids_are_not_reused(store: &dyn Store) {
    let old = store
        .add_app_password(
            "alice",
            Some("stolen laptop"),
            "$argon2id$one",
            T,
            (None, None),
        )
        .await
        .unwrap();
    assert_eq!(store.delete_app_passwords("alice").await.unwrap(), 1);
    // Bound to its directory entry from the start, as `user app-password add` binds it.
    let entry = (
        Some("uid=bob,ou=people,dc=example,dc=org"),
        Some("entryUUID:0df74c56-0000-4000-8000-000000000001"),
    );
    let new = store
        .add_app_password("bob", None, "$argon2id$two", T + 1, entry)
        .await
        .unwrap();
    let listed = store.app_passwords("bob").await.unwrap();
    assert_eq!(
        (listed[0].dn.as_deref(), listed[0].entry_id.as_deref()),
        entry,
        "the entry it was bound to at creation"
    );
    assert_ne!(
        old, new,
        "the deleted app password's id was given out again"
    );
    assert!(
        !store.delete_app_password("bob", old).await.unwrap(),
        "bob's new password went by the deleted one's id"
    );
}

// ---------------------------------------------------------------------------------------------
// replay protection

pub async fn totp_step_consumed_once(store: &dyn Store) {
    let id = store
        .add_token(totp("T1", Some("alice"), b"s"))
        .await
        .unwrap();
    let other = store
        .add_token(totp("T2", Some("alice"), b"s"))
        .await
        .unwrap();
    let step = T / 30;

    assert!(store.consume_totp_step(id, step).await.unwrap());
    assert!(!store.consume_totp_step(id, step).await.unwrap(), "replay");
    assert!(
        !store.consume_totp_step(id, step - 1).await.unwrap(),
        "earlier step"
    );
    let t = store.token_by_serial("T1").await.unwrap().unwrap();
    assert_eq!(t.last_step, Some(step));

    // Tokens are independent.
    assert!(store.consume_totp_step(other, step).await.unwrap());

    assert!(store.consume_totp_step(id, step + 1).await.unwrap());
    assert!(!store.consume_totp_step(id, step).await.unwrap());
    assert!(!store.consume_totp_step(id, step + 1).await.unwrap());
    assert_eq!(
        store
            .token_by_serial("T1")
            .await
            .unwrap()
            .unwrap()
            .last_step,
        Some(step + 1)
    );

    // Unknown token: nothing consumed.
    assert!(!store
        .consume_totp_step(id + other + 1000, step)
        .await
        .unwrap());
}

pub async fn race_totp_step(store: Arc<dyn Store>) {
    let id = store
        .add_token(totp("T1", Some("alice"), b"s"))
        .await
        .unwrap();
    let step = T / 30;
    let results = race(store.clone(), move |s, _| async move {
        s.consume_totp_step(id, step).await.unwrap()
    })
    .await;
    assert_eq!(
        results.iter().filter(|&&won| won).count(),
        1,
        "exactly one of {RACERS} concurrent uses of a step wins: {results:?}"
    );
    assert_eq!(
        store
            .token_by_serial("T1")
            .await
            .unwrap()
            .unwrap()
            .last_step,
        Some(step)
    );
}

/// Enrollments racing under both names of one directory entry: exactly one stores its
/// token. Checked, then inserted apart, every one of them found no token and stored one.
pub async fn race_add_first_token(store: Arc<dyn Store>) {
    let results = race(store.clone(), |s, i| async move {
        // Half under each name, each listing its own name first.
        let (user, other) = if i % 2 == 0 {
            ("carol", "cjones")
        } else {
            ("cjones", "carol")
        };
        let holders = [user.to_string(), other.to_string()];
        let token = totp(&format!("C{i}"), Some(user), b"c");
        s.add_first_token(token, &holders).await.unwrap()
    })
    .await;
    let added = results
        .iter()
        .filter(|r| matches!(r, FirstToken::Added(_)))
        .count();
    assert_eq!(
        added, 1,
        "exactly one of {RACERS} enrollments stores: {results:?}"
    );
    let held = store.tokens_for_user("carol").await.unwrap().len()
        + store.tokens_for_user("cjones").await.unwrap().len();
    assert_eq!(held, 1);
}

pub async fn hotp_compare_and_set(store: &dyn Store) {
    use radmfa::store::CounterUse::{Gone, Moved, Taken};
    let id = store
        .add_token(hotp("H1", Some("alice"), b"s", 5))
        .await
        .unwrap();
    let advance = |expected: u64, new: u64, owner: Option<&'static str>| async move {
        store
            .advance_hotp_counter(id, expected, new, owner)
            .await
            .unwrap()
    };
    assert_eq!(advance(5, 6, None).await, Taken);
    // A stale expected counter: told where the counter is now.
    assert_eq!(advance(5, 6, None).await, Moved { counter: 6 });
    assert_eq!(advance(5, 9, None).await, Moved { counter: 6 });
    assert_eq!(
        store.token_by_serial("H1").await.unwrap().unwrap().counter,
        6
    );
    // Look-ahead resynchronisation: jump several values at once.
    assert_eq!(advance(6, 10, None).await, Taken);
    assert_eq!(
        store.token_by_serial("H1").await.unwrap().unwrap().counter,
        10
    );
    assert_eq!(
        store
            .advance_hotp_counter(id + 1000, 10, 11, None)
            .await
            .unwrap(),
        Gone
    );
    // A login's use: only while the token is enabled and still the login's user's;
    // otherwise it is gone for that login, not moved.
    let alice = Some("alice");
    assert_eq!(advance(10, 11, Some("bob")).await, Gone);
    assert!(store.set_token_enabled("H1", false).await.unwrap());
    assert_eq!(advance(10, 11, alice).await, Gone);
    // An admin's resync works on a disabled token.
    assert_eq!(advance(10, 11, None).await, Taken);
    assert!(store.set_token_enabled("H1", true).await.unwrap());
    assert_eq!(advance(10, 12, alice).await, Moved { counter: 11 });
    assert_eq!(advance(11, 12, alice).await, Taken);
}

pub async fn race_hotp_counter(store: Arc<dyn Store>) {
    let id = store
        .add_token(hotp("H1", Some("alice"), b"s", 0))
        .await
        .unwrap();
    let results = race(store.clone(), move |s, _| async move {
        s.advance_hotp_counter(id, 0, 1, None).await.unwrap() == radmfa::store::CounterUse::Taken
    })
    .await;
    assert_eq!(results.iter().filter(|&&won| won).count(), 1, "{results:?}");
    assert_eq!(
        store.token_by_serial("H1").await.unwrap().unwrap().counter,
        1
    );
}

// ---------------------------------------------------------------------------------------------
// users and lockout

pub async fn user_status_and_list_users(store: &dyn Store) {
    assert!(store.list_users(T).await.unwrap().is_empty());
    assert_eq!(
        store.user_status("nobody").await.unwrap(),
        UserStatus {
            user: "nobody".into(),
            failures: 0,
            locked_until: None,
            token_count: 0,
        }
    );

    store
        .add_token(totp("A1", Some("alice"), b"a"))
        .await
        .unwrap();
    store
        .add_token(totp("A2", Some("alice"), b"b"))
        .await
        .unwrap();
    store
        .add_token(totp("B1", Some("bob"), b"c"))
        .await
        .unwrap();
    store.add_token(totp("U1", None, b"d")).await.unwrap();
    // carol has no token, only failures.
    store.record_failure("carol", 5, T, 300).await.unwrap();
    store.record_failure("alice", 5, T, 300).await.unwrap();

    let mut users: Vec<UserStatus> = store
        .list_users(T)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.status)
        .collect();
    users.sort_by(|a, b| a.user.cmp(&b.user));
    assert_eq!(
        users,
        vec![
            UserStatus {
                user: "alice".into(),
                failures: 1,
                locked_until: None,
                token_count: 2
            },
            UserStatus {
                user: "bob".into(),
                failures: 0,
                locked_until: None,
                token_count: 1
            },
            UserStatus {
                user: "carol".into(),
                failures: 1,
                locked_until: None,
                token_count: 0
            },
        ]
    );
    assert_eq!(store.user_status("alice").await.unwrap(), users[0]);
    assert_eq!(store.user_status("bob").await.unwrap(), users[1]);
    assert_eq!(store.user_status("carol").await.unwrap(), users[2]);

    // A count back at 0 (a good code after a wrong one), or a lock that has run out, is no
    // state: `user list` leaves the user out, as `user show` finds nothing for them.
    store.clear_failures("carol").await.unwrap();
    for _ in 0..2 {
        store.record_failure("dave", 2, T, 300).await.unwrap();
    }
    assert_eq!(
        store.user_status("dave").await.unwrap().locked_until,
        Some(T + 300)
    );
    // By the caller's clock, not the database host's: dave is locked at T, not after.
    let listed = |now: i64| async move {
        store
            .list_users(now)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.status.user)
            .collect::<Vec<String>>()
    };
    assert_eq!(listed(T).await, ["alice", "bob", "dave"]);
    assert_eq!(listed(T + 301).await, ["alice", "bob"]);

    // What else the store holds of each listed user comes with the listing (`user list`
    // shows why a user without a token is there): a stored method and phone, a fraud
    // block, a waiting bypass, app passwords, remembered logins in force.
    store.set_method("erin", Some("sms")).await.unwrap();
    store.set_phone("erin", Some("+15550100")).await.unwrap();
    store.block_user("frank", T - 5, "fraud key").await.unwrap();
    store.set_bypass("gina", Some(T + 600)).await.unwrap();
    for label in ["mail", "phone"] {
        store
            .add_app_password("hal", Some(label), "hash", T, (None, None))
            .await
            .unwrap();
    }
    store
        .remember_login(&RememberedLogin {
            user: "ivy".into(),
            ..remembered("vpn", "", "totp", T, 3600)
        })
        .await
        .unwrap();
    let summary = |u: &str| {
        let u = u.to_string();
        async move {
            store
                .list_users(T)
                .await
                .unwrap()
                .into_iter()
                .find(|s| s.status.user == u)
                .unwrap()
        }
    };
    let erin = summary("erin").await;
    assert_eq!(
        (erin.method.as_deref(), erin.phone),
        (Some("sms"), true),
        "{erin:?}"
    );
    assert_eq!(summary("frank").await.blocked_at, Some(T - 5));
    assert_eq!(summary("gina").await.bypass_until, Some(T + 600));
    assert_eq!(summary("hal").await.app_passwords, 2);
    assert_eq!(summary("ivy").await.remembered, 1);
    let alice = summary("alice").await;
    assert_eq!(
        (
            alice.method,
            alice.phone,
            alice.blocked_at,
            alice.bypass_until
        ),
        (None, false, None, None)
    );
    assert_eq!((alice.app_passwords, alice.remembered), (0, 0));
    // A bypass or remembered login past its time is not shown (nor lists its user).
    let later: Vec<_> = store.list_users(T + 3601).await.unwrap();
    assert!(later
        .iter()
        .all(|s| s.status.user != "gina" && s.status.user != "ivy"));

    // Page by page (`user list` prints as it reads): the pages put together are the list,
    // in byte order (an upper-case and an accented name among them), none twice or left
    // out at a page's edge.
    store.set_phone("Zed", Some("+15550101")).await.unwrap();
    store
        .set_phone("\u{e9}mile", Some("+15550102"))
        .await
        .unwrap();
    let whole = listed(T).await;
    let mut sorted = whole.clone();
    sorted.sort();
    assert_eq!(whole, sorted);
    assert_eq!(whole.first().map(String::as_str), Some("Zed"));
    assert_eq!(whole.last().map(String::as_str), Some("\u{e9}mile"));
    let mut paged: Vec<String> = Vec::new();
    loop {
        let page = store
            .list_users_page(T, paged.last().map(String::as_str), 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let done = page.len() < 2;
        paged.extend(page.into_iter().map(|u| u.status.user));
        if done {
            break;
        }
    }
    assert_eq!(paged, whole);
    // More users than one of `list_users`'s own pages: all of them, once each.
    let many = radmfa::store::USERS_PAGE as usize * 2 + 1;
    let batch: Vec<_> = (0..many)
        .map(|i| {
            let user = format!("paged{i:05}");
            (
                totp(&format!("PG{i:05}"), Some(&user), b"p"),
                TokenExtra::default(),
            )
        })
        .collect();
    store
        .import_tokens_audited(&batch, false, &[audit_record(T, "", "import")], None)
        .await
        .unwrap();
    let all = listed(T).await;
    assert_eq!(all.len(), whole.len() + many);
    let paged_names: Vec<&String> = all.iter().filter(|u| u.starts_with("paged")).collect();
    assert_eq!(paged_names.len(), many);
    assert!(paged_names.windows(2).all(|w| w[0] < w[1]));
}

pub async fn lockout_threshold_lock_time_and_unlock(store: &dyn Store) {
    assert_eq!(
        store.record_failure("alice", 3, T, 300).await.unwrap(),
        (1, None)
    );
    assert_eq!(
        store.record_failure("alice", 3, T + 1, 300).await.unwrap(),
        (2, None)
    );
    let st = store.user_status("alice").await.unwrap();
    assert_eq!((st.failures, st.locked_until), (2, None));

    // The third consecutive failure locks until now + lock_secs and resets the count.
    assert_eq!(
        store.record_failure("alice", 3, T + 2, 300).await.unwrap(),
        (3, Some(T + 2 + 300))
    );
    let st = store.user_status("alice").await.unwrap();
    assert_eq!((st.failures, st.locked_until), (0, Some(T + 302)));

    // Other users are unaffected.
    assert_eq!(store.user_status("bob").await.unwrap().locked_until, None);

    assert!(
        store.unlock_user("alice", T + 10).await.unwrap(),
        "was locked"
    );
    let st = store.user_status("alice").await.unwrap();
    assert_eq!((st.failures, st.locked_until), (0, None));
    assert!(
        !store.unlock_user("alice", T + 11).await.unwrap(),
        "no longer locked"
    );
    assert!(!store.unlock_user("nobody", T).await.unwrap());

    // The count starts over after an unlock.
    assert_eq!(
        store.record_failure("alice", 3, T + 20, 300).await.unwrap(),
        (1, None)
    );

    // Threshold 1 locks on the first failure.
    assert_eq!(
        store.record_failure("bob", 1, T, 60).await.unwrap(),
        (1, Some(T + 60))
    );
}

pub async fn expired_lock_unlock_reports_false(store: &dyn Store) {
    let (_, until) = {
        store.record_failure("alice", 2, T, 100).await.unwrap();
        store.record_failure("alice", 2, T, 100).await.unwrap()
    };
    assert_eq!(until, Some(T + 100));
    // At or after locked_until the user is no longer locked.
    assert!(!store.unlock_user("alice", T + 100).await.unwrap());
    assert_eq!(store.user_status("alice").await.unwrap().locked_until, None);
}

pub async fn clear_failures_resets_count(store: &dyn Store) {
    store.record_failure("alice", 5, T, 300).await.unwrap();
    store.record_failure("alice", 5, T, 300).await.unwrap();
    store.record_failure("bob", 5, T, 300).await.unwrap();
    store.clear_failures("alice").await.unwrap();
    assert_eq!(store.user_status("alice").await.unwrap().failures, 0);
    assert_eq!(store.user_status("bob").await.unwrap().failures, 1);
    assert_eq!(
        store.record_failure("alice", 5, T, 300).await.unwrap(),
        (1, None)
    );
    // Clearing an unknown user is fine.
    store.clear_failures("nobody").await.unwrap();
    assert_eq!(store.user_status("nobody").await.unwrap().failures, 0);

    // Clearing failures does not lift a lock.
    store.record_failure("carol", 1, T, 300).await.unwrap();
    store.clear_failures("carol").await.unwrap();
    assert_eq!(
        store.user_status("carol").await.unwrap().locked_until,
        Some(T + 300)
    );
}

pub async fn race_record_failure(store: Arc<dyn Store>) {
    // 20 simultaneous failures with threshold 5: counts 1..=4 are each seen once, one
    // call locks, and the rest, arriving while the lock is in force, count nothing.
    let results = race(store.clone(), |s, _| async move {
        s.record_failure("alice", 5, T, 300).await.unwrap()
    })
    .await;
    assert_one_lock_and_nothing_counted_after(&results);
    let st = store.user_status("alice").await.unwrap();
    assert_eq!((st.failures, st.locked_until), (0, Some(T + 300)));
}

/// `results` of RACERS simultaneous failures at threshold 5: no failure before the lock
/// lost, one lock, and none counted while it was in force (they came in (0, None)).
pub fn assert_one_lock_and_nothing_counted_after(results: &[(u32, Option<i64>)]) {
    let locks = results.iter().filter(|(_, l)| l.is_some()).count();
    assert_eq!(locks, 1, "{results:?}");
    for n in 1..=4u32 {
        assert_eq!(
            results.iter().filter(|r| **r == (n, None)).count(),
            1,
            "count {n} in {results:?}"
        );
    }
    assert_eq!(
        results.iter().filter(|r| **r == (0, None)).count(),
        RACERS - 5,
        "{results:?}"
    );
}

/// A failure counted while the user is locked (a wrong code that reached another node
/// just after this one locked the user) counts nothing: counted, it started the new lock
/// period's count, and the user was locked again one wrong code early after it.
pub async fn a_failure_while_locked_counts_nothing(store: &dyn Store) {
    assert_eq!(
        store.record_failure("alice", 2, T, 300).await.unwrap(),
        (1, None)
    );
    assert_eq!(
        store.record_failure("alice", 2, T, 300).await.unwrap(),
        (2, Some(T + 300))
    );
    assert_eq!(
        store.record_failure("alice", 2, T + 1, 300).await.unwrap(),
        (0, None),
        "counted while locked"
    );
    let st = store.user_status("alice").await.unwrap();
    assert_eq!((st.failures, st.locked_until), (0, Some(T + 300)));
    // Once the lock has run out, failures count again, from one.
    assert_eq!(
        store
            .record_failure("alice", 2, T + 300, 300)
            .await
            .unwrap(),
        (1, None)
    );
}

// ---------------------------------------------------------------------------------------------
// challenges

pub async fn challenge_put_get_and_expiry(store: &dyn Store) {
    let c = challenge(b"state-hash-1", "alice", T + 60);
    store.put_challenge(&c).await.unwrap();
    assert_eq!(
        store.challenge(b"state-hash-1", T).await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(
        store.challenge(b"state-hash-1", T + 59).await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(
        store.challenge(b"state-hash-1", T + 60).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.challenge(b"state-hash-1", T + 61).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(store.challenge(b"state-hash-2", T).await.unwrap(), None);
    // Binary hashes with zero bytes are exact keys.
    let bin = challenge(&[0, 1, 2, 0, 255], "bob", T + 60);
    store.put_challenge(&bin).await.unwrap();
    assert_eq!(
        store.challenge(&[0, 1, 2, 0, 255], T).await.unwrap(),
        Some(bin)
    );
    assert_eq!(store.challenge(&[0, 1, 2, 0], T).await.unwrap(), None);
    // Same State twice is refused.
    assert!(store.put_challenge(&c).await.is_err());
}

pub async fn open_challenge_by_user_and_client(store: &dyn Store) {
    assert!(!store.has_open_challenge("alice", "vpn-1", T).await.unwrap());
    store
        .put_challenge(&challenge(b"open-1", "alice", T + 60))
        .await
        .unwrap();
    assert!(store.has_open_challenge("alice", "vpn-1", T).await.unwrap());
    assert!(
        !store.has_open_challenge("alice", "vpn-2", T).await.unwrap(),
        "another client's prompt"
    );
    assert!(
        !store.has_open_challenge("bob", "vpn-1", T).await.unwrap(),
        "another user's prompt"
    );
    assert!(
        !store
            .has_open_challenge("alice", "vpn-1", T + 60)
            .await
            .unwrap(),
        "expired"
    );
    assert!(store.consume_challenge(b"open-1").await.unwrap());
    assert!(
        !store.has_open_challenge("alice", "vpn-1", T).await.unwrap(),
        "answered"
    );
}

pub async fn challenge_consumed_once(store: &dyn Store) {
    store
        .put_challenge(&challenge(b"s1", "alice", T + 60))
        .await
        .unwrap();
    assert!(store.consume_challenge(b"s1").await.unwrap());
    assert!(!store.consume_challenge(b"s1").await.unwrap());
    assert_eq!(store.challenge(b"s1", T).await.unwrap(), None);
    assert!(!store.consume_challenge(b"never-issued").await.unwrap());
}

pub async fn race_consume_challenge(store: Arc<dyn Store>) {
    store
        .put_challenge(&challenge(b"s1", "alice", T + 60))
        .await
        .unwrap();
    let results = race(store.clone(), |s, _| async move {
        s.consume_challenge(b"s1").await.unwrap()
    })
    .await;
    assert_eq!(results.iter().filter(|&&won| won).count(), 1, "{results:?}");
    assert_eq!(store.challenge(b"s1", T).await.unwrap(), None);
}

pub async fn take_attempt_closes_at_max(store: &dyn Store) {
    store
        .put_challenge(&challenge(b"s1", "alice", T + 60))
        .await
        .unwrap();
    assert_eq!(
        store.take_attempt(b"s1", 3).await.unwrap(),
        ChallengeAttempt::Open(1)
    );
    assert_eq!(
        store.challenge(b"s1", T).await.unwrap().unwrap().attempts,
        1
    );
    assert_eq!(
        store.take_attempt(b"s1", 3).await.unwrap(),
        ChallengeAttempt::Open(2)
    );
    assert_eq!(
        store.take_attempt(b"s1", 3).await.unwrap(),
        ChallengeAttempt::Last
    );
    assert_eq!(
        store.challenge(b"s1", T).await.unwrap(),
        None,
        "the last attempt closes (deletes) the challenge"
    );
    assert!(!store.consume_challenge(b"s1").await.unwrap());
    assert_eq!(
        store.take_attempt(b"s1", 3).await.unwrap(),
        ChallengeAttempt::Closed
    );
    assert_eq!(
        store.take_attempt(b"unknown", 3).await.unwrap(),
        ChallengeAttempt::Closed
    );

    // max_attempts 1: the first answer takes the only attempt and closes it.
    store
        .put_challenge(&challenge(b"s2", "alice", T + 60))
        .await
        .unwrap();
    assert_eq!(
        store.take_attempt(b"s2", 1).await.unwrap(),
        ChallengeAttempt::Last
    );
    assert_eq!(store.challenge(b"s2", T).await.unwrap(), None);
    assert_eq!(
        store.take_attempt(b"s2", 1).await.unwrap(),
        ChallengeAttempt::Closed
    );

    // A maximum lowered by a reload below the attempts already taken: none left.
    store
        .put_challenge(&challenge(b"s3", "alice", T + 60))
        .await
        .unwrap();
    for n in 1..=2 {
        assert_eq!(
            store.take_attempt(b"s3", 5).await.unwrap(),
            ChallengeAttempt::Open(n)
        );
    }
    assert_eq!(
        store.take_attempt(b"s3", 2).await.unwrap(),
        ChallengeAttempt::Closed
    );
    assert_eq!(
        store.take_attempt(b"s3", 1).await.unwrap(),
        ChallengeAttempt::Closed,
        "lowered to 1 as well"
    );
}

pub async fn race_take_attempt(store: Arc<dyn Store>) {
    for max in [1, 5] {
        store
            .put_challenge(&challenge(b"s1", "alice", T + 60))
            .await
            .unwrap();
        let results = race(store.clone(), move |s, _| async move {
            s.take_attempt(b"s1", max).await.unwrap()
        })
        .await;
        for n in 1..max {
            assert_eq!(
                results
                    .iter()
                    .filter(|r| **r == ChallengeAttempt::Open(n))
                    .count(),
                1,
                "Open({n}) exactly once: {results:?}"
            );
        }
        let count = |want: ChallengeAttempt| results.iter().filter(|r| **r == want).count();
        assert_eq!(count(ChallengeAttempt::Last), 1, "{results:?}");
        assert_eq!(
            count(ChallengeAttempt::Closed),
            RACERS - max as usize,
            "{results:?}"
        );
        assert_eq!(store.challenge(b"s1", T).await.unwrap(), None);
    }
}

/// Attempts taken (the last one closes the prompt) racing consumes of the same State, as
/// two right answers to one prompt do: exactly one racer closes it. On PostgreSQL the
/// last attempt's increment and its delete were two statements outside a request scope:
/// a consume between them deleted the row too, and two answers each closed the prompt.
pub async fn race_take_attempt_against_consume(store: Arc<dyn Store>) {
    race_attempts_against_consumes(store, b"s2", 20, false).await;
}

/// `rounds` times: a prompt at `state`, its last attempt (of 2) taken by half the racers
/// while the others consume it, in requests' scopes if `scoped`; exactly one closes it.
async fn race_attempts_against_consumes(
    store: Arc<dyn Store>,
    state: &'static [u8],
    rounds: usize,
    scoped: bool,
) {
    for round in 0..rounds {
        store
            .put_challenge(&challenge(state, "alice", T + 60))
            .await
            .unwrap();
        let closed = race(store.clone(), move |s, i| async move {
            let close = async {
                if i % 2 == 0 {
                    s.take_attempt(state, 2).await.unwrap() == ChallengeAttempt::Last
                } else {
                    s.consume_challenge(state).await.unwrap()
                }
            };
            if !scoped {
                return close.await;
            }
            let (closed, durable) = durability::deferred(close).await;
            durable.unwrap();
            closed
        })
        .await;
        assert_eq!(
            closed.iter().filter(|c| **c).count(),
            1,
            "round {round}: {closed:?}"
        );
        assert_eq!(store.challenge(state, T).await.unwrap(), None);
    }
}

pub async fn purge_expired_challenges(store: &dyn Store) {
    for (state, exp) in [
        (&b"old1"[..], T - 100),
        (b"old2", T),
        (b"live1", T + 1),
        (b"live2", T + 600),
    ] {
        store
            .put_challenge(&challenge(state, "alice", exp))
            .await
            .unwrap();
    }
    // Open: those expiring after now (`radmfa_challenges_open`).
    assert_eq!(store.count_open_challenges(T).await.unwrap(), 2);
    assert_eq!(store.count_open_challenges(T - 100).await.unwrap(), 3);
    assert_eq!(store.purge_expired_challenges(T).await.unwrap(), 2);
    assert_eq!(store.purge_expired_challenges(T).await.unwrap(), 0);
    assert_eq!(store.count_open_challenges(T).await.unwrap(), 2);
    assert!(!store.consume_challenge(b"old1").await.unwrap());
    assert!(!store.consume_challenge(b"old2").await.unwrap());
    assert!(store.challenge(b"live1", T).await.unwrap().is_some());
    assert!(store.challenge(b"live2", T).await.unwrap().is_some());
    assert_eq!(store.purge_expired_challenges(T + 1000).await.unwrap(), 2);
    assert!(store.challenge(b"live2", T).await.unwrap().is_none());
    assert_eq!(store.count_open_challenges(T).await.unwrap(), 0);
}

pub async fn close_challenges_of_one_user(store: &dyn Store) {
    for (state, user) in [(&b"a1"[..], "alice"), (b"a2", "alice"), (b"b1", "bob")] {
        store
            .put_challenge(&challenge(state, user, T + 600))
            .await
            .unwrap();
    }
    assert_eq!(store.close_challenges("alice").await.unwrap(), 2);
    assert_eq!(store.close_challenges("alice").await.unwrap(), 0);
    assert!(store.challenge(b"a1", T).await.unwrap().is_none());
    assert!(store.challenge(b"a2", T).await.unwrap().is_none());
    assert!(
        store.challenge(b"b1", T).await.unwrap().is_some(),
        "bob's stays"
    );
}

pub async fn close_challenges_of_one_client(store: &dyn Store) {
    for (state, nas) in [(&b"v1"[..], "vpn-1"), (b"v2", "vpn-1"), (b"w1", "wifi")] {
        let mut c = challenge(state, "alice", T + 600);
        c.nas = nas.into();
        store.put_challenge(&c).await.unwrap();
    }
    assert_eq!(store.close_client_challenges("vpn-1").await.unwrap(), 2);
    assert_eq!(store.close_client_challenges("vpn-1").await.unwrap(), 0);
    assert!(store.challenge(b"v1", T).await.unwrap().is_none());
    assert!(store.challenge(b"v2", T).await.unwrap().is_none());
    assert!(
        store.challenge(b"w1", T).await.unwrap().is_some(),
        "the other client's stays"
    );
}

// ---------------------------------------------------------------------------------------------
// audit

/// A record may quote a NUL (a refused User-Name holding one; Active Directory's error text
/// ends with one). PostgreSQL refuses NUL in text, so each store keeps it as U+FFFD rather
/// than lose the record, inside a request's deferred writes and outside.
pub async fn audit_records_with_a_nul_are_kept(store: &dyn Store) {
    let mut r = audit_record(T, "alice\0", "reject");
    r.reason = Some(
        "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563\0"
            .into(),
    );
    r.client_ip = Some("aa\0bb".into());
    store
        .append_audit(&r)
        .await
        .expect("kept outside a request");
    let (in_request, durable) = durability::deferred(async { store.append_audit(&r).await }).await;
    in_request.expect("kept inside a request");
    durable.expect("and committed");
    let kept = store
        .audit(&AuditFilter {
            user: Some("alice\u{FFFD}".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    for k in kept {
        assert!(
            k.reason.as_deref().unwrap().ends_with("v4563\u{FFFD}"),
            "{k:?}"
        );
        assert_eq!(k.client_ip.as_deref(), Some("aa\u{FFFD}bb"));
    }
}

pub async fn audit_append_and_round_trip(store: &dyn Store) {
    let full = AuditRecord {
        id: 0,
        time: T,
        user: "alice".into(),
        first_name: Some("Alice".into()),
        last_name: Some("Liddell".into()),
        email: Some("alice@example.org".into()),
        phone: Some("+15550100".into()),
        token_serial: Some("T1".into()),
        mode: "totp".into(),
        result: "accept".into(),
        reason: Some("ok".into()),
        server_name: "node-a".into(),
        server_ip: Some("192.0.2.1".into()),
        client_ip: Some("203.0.113.7".into()),
        nas_ip: Some("192.0.2.10".into()),
        nas_identifier: Some("vpn-gw-7".into()),
        nas_name: Some("vpn-1".into()),
        latency_ms: 123,
        actor: Some("root via sudo from alice".into()),
    };
    let id1 = store.append_audit(&full).await.unwrap();
    let id2 = store
        .append_audit(&audit_record(T, "bob", "reject"))
        .await
        .unwrap();
    assert_ne!(id1, id2);
    let got = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(got.len(), 2);
    // Same time: the later record first.
    assert_eq!(got[0].id, id2);
    assert_eq!(got[1], AuditRecord { id: id1, ..full });
}

pub async fn audit_filters_order_and_limit(store: &dyn Store) {
    let rows = [
        (T, "alice", "accept"),
        (T + 10, "bob", "reject"),
        (T + 20, "alice", "reject"),
        (T + 30, "alice", "challenge"),
        (T + 40, "bob", "accept"),
    ];
    for (time, user, result) in rows {
        store
            .append_audit(&audit_record(time, user, result))
            .await
            .unwrap();
    }
    let times = |v: Vec<AuditRecord>| v.into_iter().map(|r| r.time - T).collect::<Vec<_>>();

    let all = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(times(all), vec![40, 30, 20, 10, 0], "newest first");

    let f = |user: Option<&str>, result: Option<&str>, since, until, limit| AuditFilter {
        user: user.map(Into::into),
        result: result.map(Into::into),
        mode: None,
        since,
        until,
        server: None,
        nas: None,
        token: None,
        client_ip: None,
        limit,
        after_id: None,
        before: None,
        newest_by_id: false,
    };
    // Read a page at a time (`radmfa audit` does, so a long export is not held in memory):
    // each page starts after the last record of the one before, ties in time by id.
    let mut pages = Vec::new();
    let mut page = f(None, None, None, None, 2);
    loop {
        let rows = store.audit(&page).await.unwrap();
        let Some(last) = rows.last() else { break };
        page.before = Some((last.time, last.id));
        pages.push(times(rows));
    }
    assert_eq!(pages, vec![vec![40, 30], vec![20, 10], vec![0]]);
    let all = store.audit(&AuditFilter::default()).await.unwrap();
    let twenty = all.iter().find(|r| r.time == T + 20).unwrap().id;
    let after = |time, id| AuditFilter {
        before: Some((time, id)),
        ..AuditFilter::default()
    };
    assert_eq!(
        times(store.audit(&after(T + 20, i64::MAX)).await.unwrap()),
        vec![20, 10, 0],
        "a record of the cursor's second with a smaller id comes after it"
    );
    assert_eq!(
        times(store.audit(&after(T + 20, twenty)).await.unwrap()),
        vec![10, 0]
    );
    assert_eq!(
        times(
            store
                .audit(&f(Some("alice"), None, None, None, 0))
                .await
                .unwrap()
        ),
        vec![30, 20, 0]
    );
    assert_eq!(
        times(
            store
                .audit(&f(None, Some("reject"), None, None, 0))
                .await
                .unwrap()
        ),
        vec![20, 10]
    );
    assert_eq!(
        times(
            store
                .audit(&f(Some("bob"), Some("accept"), None, None, 0))
                .await
                .unwrap()
        ),
        vec![40]
    );
    // since is inclusive, until exclusive: consecutive windows share no record.
    assert_eq!(
        times(
            store
                .audit(&f(None, None, Some(T + 10), Some(T + 30), 0))
                .await
                .unwrap()
        ),
        vec![20, 10]
    );
    assert_eq!(
        times(
            store
                .audit(&f(None, None, Some(T + 30), Some(T + 50), 0))
                .await
                .unwrap()
        ),
        vec![40, 30]
    );
    assert_eq!(
        times(
            store
                .audit(&f(None, None, Some(T + 31), None, 0))
                .await
                .unwrap()
        ),
        vec![40]
    );
    assert_eq!(
        times(
            store
                .audit(&f(None, None, None, Some(T + 10), 0))
                .await
                .unwrap()
        ),
        vec![0]
    );
    assert_eq!(
        times(store.audit(&f(None, None, None, None, 2)).await.unwrap()),
        vec![40, 30],
        "limit keeps the newest"
    );
    assert_eq!(
        times(
            store
                .audit(&f(Some("alice"), None, Some(T + 1), None, 1))
                .await
                .unwrap()
        ),
        vec![30]
    );
    assert!(store
        .audit(&f(Some("carol"), None, None, None, 0))
        .await
        .unwrap()
        .is_empty());
    // By mode: how the login was decided.
    store
        .append_audit(&AuditRecord {
            mode: "bypass".into(),
            ..audit_record(T + 45, "carol", "accept")
        })
        .await
        .unwrap();
    let bypassed = store
        .audit(&AuditFilter {
            mode: Some("bypass".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        bypassed.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(),
        ["carol"]
    );
    // One stamped ahead (a clock that ran fast), written before the last: first by time,
    // second by id (`audit --follow` starts from the last written).
    let ahead = store
        .append_audit(&audit_record(T + 1000, "carol", "accept"))
        .await
        .unwrap();
    let last = store
        .append_audit(&audit_record(T + 50, "carol", "accept"))
        .await
        .unwrap();
    let by_time = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(times(by_time)[..2], [1000, 50]);
    let by_id = AuditFilter {
        newest_by_id: true,
        limit: 2,
        ..AuditFilter::default()
    };
    let ids: Vec<i64> = store
        .audit(&by_id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [last, ahead]);
}

/// `radmfa audit --follow`: records after an id, oldest first, the other filters applying.
/// `--client-ip ADDR` finds the logins from that address however the NAS wrote it: with
/// a port (a new one per connection), in brackets, strongSwan's `addr[port]`, in upper
/// case, IPv4-mapped (in hex too), padded with zeros, IPv6 written out in full. Compared
/// as text, it found 1 of 4. A neighbour sharing its prefix
/// as text (10.0.0.12) and what is no address (a MAC) stay apart.
pub async fn audit_client_ip_finds_every_form_of_the_address(store: &dyn Store) {
    let sent = [
        "10.0.0.1",
        "10.0.0.1:5555",
        "10.0.0.1[4500]",
        "::FFFF:10.0.0.1",
        "[::ffff:10.0.0.1]:9",
        " 10.0.0.1:77 ",
        "\t10.0.0.1\r\n\u{b}",
        "010.000.000.001",
        "010.000.000.001:4500",
        "::ffff:a00:1",
        "[::FFFF:A00:1]:9",
        "::ffff:0a00:0001",
        "0:0:0:0:0:ffff:a00:1",
        "10.0.0.12",
        "10.0.0.12:5555",
        "2001:db8:7::21",
        "[2001:DB8:7::21]:4500",
        "[2001:db8:7::21]",
        "2001:db8:7::21[61234]",
        "2001:0db8:0007:0000:0000:0000:0000:0021",
        "[2001:db8:7:0:0:0:0:21]:500",
        "2001:db8:7::210",
        "00-11-22-33-44-55",
        // Not ASCII's whitespace: not folded, as --count-by does not fold it either.
        "10.0.0.1\u{a0}",
    ];
    for (i, ip) in sent.iter().enumerate() {
        let mut r = audit_record(T + i as i64, "alice", "accept");
        r.client_ip = Some(ip.to_string());
        store.append_audit(&r).await.unwrap();
    }
    let found = |given: &str| {
        let f = AuditFilter {
            client_ip: Some(given.into()),
            ..Default::default()
        };
        async move {
            let mut v: Vec<String> = store
                .audit(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.client_ip.unwrap())
                .collect();
            v.sort();
            v
        }
    };
    let sorted = |v: &[&str]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let v4 = sorted(&sent[..13]);
    assert_eq!(found("10.0.0.1").await, v4);
    assert_eq!(found("::ffff:10.0.0.1").await, v4);
    // Given as a record shows it, padded: the same address.
    assert_eq!(found("010.000.000.001").await, v4);
    // Partly padded, as typed: found as written.
    let mut r = audit_record(T + 100, "alice", "accept");
    r.client_ip = Some("01.2.3.4".into());
    store.append_audit(&r).await.unwrap();
    assert_eq!(found("01.2.3.4").await, ["01.2.3.4"]);
    assert_eq!(found("10.0.0.12").await, sorted(&sent[13..15]));
    let v6 = sorted(&sent[15..21]);
    assert_eq!(found("2001:db8:7::21").await, v6);
    assert_eq!(found("[2001:DB8:7::21]").await, v6);
    assert_eq!(found("00-11-22-33-44-55").await, sorted(&sent[22..23]));
}

pub async fn audit_after_id_reads_newer_records_oldest_first(store: &dyn Store) {
    assert_eq!(store.audit_top_id().await.unwrap(), 0, "no record yet");
    let mut ids = Vec::new();
    for (i, user) in ["alice", "bob", "alice", "alice", "bob"].iter().enumerate() {
        let rec = audit_record(T + i as i64, user, "accept");
        ids.push(store.append_audit(&rec).await.unwrap());
    }
    let after = |id, user: Option<&str>, limit| AuditFilter {
        user: user.map(Into::into),
        limit,
        after_id: Some(id),
        ..Default::default()
    };
    let got = |v: Vec<AuditRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        got(store.audit(&after(ids[1], None, 0)).await.unwrap()),
        ids[2..],
        "oldest first"
    );
    assert_eq!(
        got(store.audit(&after(ids[0], Some("alice"), 0)).await.unwrap()),
        [ids[2], ids[3]]
    );
    assert_eq!(
        got(store.audit(&after(ids[0], None, 2)).await.unwrap()),
        ids[1..3],
        "limit keeps the oldest"
    );
    assert!(store
        .audit(&after(ids[4], None, 0))
        .await
        .unwrap()
        .is_empty());
    // `audit --follow` moves past records its filter leaves out up to this id.
    assert_eq!(store.audit_top_id().await.unwrap(), ids[4]);
}

pub async fn audit_default_limit_is_100(store: &dyn Store) {
    for i in 0..120 {
        store
            .append_audit(&audit_record(T + i, "alice", "accept"))
            .await
            .unwrap();
    }
    let got = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(got.len(), 100);
    assert_eq!(got[0].time, T + 119);
    assert_eq!(got[99].time, T + 20);
    let more = store
        .audit(&AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(more.len(), 120);
}

pub async fn audit_counts_per_group_and_result(store: &dyn Store) {
    // T is 2023-11-14T22:13:20Z: T + 7200 is the next UTC day.
    let rec = |time: i64, user: &str, result: &str, nas: Option<&str>| {
        let mut r = audit_record(time, user, result);
        r.nas_name = nas.map(str::to_string);
        r.reason = (result == "reject").then(|| "bad password".to_string());
        r.token_serial = (result == "accept").then(|| format!("TOK-{time}"));
        // bob's records written by the other node, from another address.
        r.client_ip = Some("192.0.2.1".into());
        if user == "bob" {
            r.server_name = "node-b".into();
            r.client_ip = (result != "enroll").then(|| "198.51.100.7".into());
        }
        r
    };
    for r in [
        rec(T, "alice", "accept", Some("vpn")),
        rec(T + 1, "alice", "accept", Some("vpn")),
        rec(T + 2, "alice", "reject", Some("vpn")),
        rec(T + 7200, "bob", "reject", Some("wifi")),
        rec(T + 7201, "bob", "enroll", None),
    ] {
        store.append_audit(&r).await.unwrap();
    }
    let counts = |filter: AuditFilter, by: AuditGroup| async move {
        let mut c: Vec<(String, String, u64)> = store
            .audit_counts(&filter, by)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.key, c.result, c.count))
            .collect();
        c.sort();
        c
    };
    let t = |k: &str, r: &str, n: u64| (k.to_string(), r.to_string(), n);
    assert_eq!(
        counts(AuditFilter::default(), AuditGroup::User).await,
        [
            t("alice", "accept", 2),
            t("alice", "reject", 1),
            t("bob", "enroll", 1),
            t("bob", "reject", 1)
        ]
    );
    assert_eq!(
        counts(AuditFilter::default(), AuditGroup::Nas).await,
        [
            t("-", "enroll", 1),
            t("vpn", "accept", 2),
            t("vpn", "reject", 1),
            t("wifi", "reject", 1)
        ]
    );
    assert_eq!(
        counts(AuditFilter::default(), AuditGroup::Day).await,
        [
            t("2023-11-14", "accept", 2),
            t("2023-11-14", "reject", 1),
            t("2023-11-15", "enroll", 1),
            t("2023-11-15", "reject", 1)
        ]
    );
    // Which node answered, and one node's records alone (nodes sharing PostgreSQL).
    assert_eq!(
        counts(AuditFilter::default(), AuditGroup::Server).await,
        [
            t("node-a", "accept", 2),
            t("node-a", "reject", 1),
            t("node-b", "enroll", 1),
            t("node-b", "reject", 1)
        ]
    );
    let node_b = AuditFilter {
        server: Some("node-b".into()),
        ..Default::default()
    };
    assert_eq!(
        counts(node_b.clone(), AuditGroup::User).await,
        [t("bob", "enroll", 1), t("bob", "reject", 1)]
    );
    let listed = store.audit(&node_b).await.unwrap();
    assert!(
        listed.len() == 2 && listed.iter().all(|r| r.user == "bob"),
        "{listed:?}"
    );
    // One NAS's records, one token's records (`radmfa audit --nas`, `--token`).
    let wifi = AuditFilter {
        nas: Some("wifi".into()),
        ..Default::default()
    };
    let listed = store.audit(&wifi).await.unwrap();
    assert!(listed.len() == 1 && listed[0].user == "bob", "{listed:?}");
    assert_eq!(
        counts(wifi, AuditGroup::Result).await,
        [t("reject", "reject", 1)]
    );
    let token = AuditFilter {
        token: Some(format!("TOK-{}", T + 1)),
        ..Default::default()
    };
    let listed = store.audit(&token).await.unwrap();
    assert!(listed.len() == 1 && listed[0].time == T + 1, "{listed:?}");
    // Logins from one address, and the addresses logins came from (`--client-ip`,
    // `--count-by client-ip`); an admin record has none.
    let from = AuditFilter {
        client_ip: Some("198.51.100.7".into()),
        ..Default::default()
    };
    let listed = store.audit(&from).await.unwrap();
    assert!(listed.len() == 1 && listed[0].user == "bob", "{listed:?}");
    assert_eq!(
        counts(AuditFilter::default(), AuditGroup::ClientIp).await,
        [
            t("-", "enroll", 1),
            t("192.0.2.1", "accept", 2),
            t("192.0.2.1", "reject", 1),
            t("198.51.100.7", "reject", 1)
        ]
    );
    let rejects = AuditFilter {
        result: Some("reject".into()),
        ..Default::default()
    };
    assert_eq!(
        counts(rejects, AuditGroup::Reason).await,
        [t("bad password", "reject", 2)]
    );
    // The report's window is half-open too: T + 7200's reject is the next window's.
    let window = |since, until| AuditFilter {
        since: Some(since),
        until: Some(until),
        ..Default::default()
    };
    assert_eq!(
        counts(window(T + 1, T + 7200), AuditGroup::Result).await,
        [t("accept", "accept", 1), t("reject", "reject", 1)]
    );
    assert_eq!(
        counts(window(T + 7200, T + 7300), AuditGroup::Result).await,
        [t("enroll", "enroll", 1), t("reject", "reject", 1)]
    );
}

pub async fn purge_audit_deletes_the_oldest_in_batches(store: &dyn Store) {
    for i in 0..25 {
        store
            .append_audit(&audit_record(T + i, "alice", "accept"))
            .await
            .unwrap();
    }
    let everything = AuditFilter {
        limit: 1000,
        ..Default::default()
    };
    // Older than T + 20: 20 records, deleted 8, 8, then the last 4.
    assert_eq!(store.purge_audit(T + 20, 8).await.unwrap(), 8);
    let left = store.audit(&everything).await.unwrap();
    assert_eq!(left.len(), 17);
    assert_eq!(left.last().unwrap().time, T + 8, "the oldest went first");
    assert_eq!(store.purge_audit(T + 20, 8).await.unwrap(), 8);
    assert_eq!(store.purge_audit(T + 20, 8).await.unwrap(), 4);
    assert_eq!(store.purge_audit(T + 20, 8).await.unwrap(), 0);
    let left = store.audit(&everything).await.unwrap();
    let times: Vec<i64> = left.iter().map(|r| r.time).collect();
    assert_eq!(times, (20..25).rev().map(|i| T + i).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// delete_user

pub async fn delete_user_removes_everything_of_that_user(store: &dyn Store) {
    store
        .add_token(totp("A1", Some("alice"), b"a"))
        .await
        .unwrap();
    store
        .add_token(hotp("A2", Some("alice"), b"b", 0))
        .await
        .unwrap();
    store
        .add_token(totp("B1", Some("bob"), b"c"))
        .await
        .unwrap();
    // An imported (hardware) token survives its user, back in stock.
    store
        .import_tokens(
            &[(hotp("HW9", Some("alice"), b"h", 3), TokenExtra::default())],
            false,
        )
        .await
        .unwrap();
    store.record_failure("alice", 1, T, 300).await.unwrap();
    store.record_failure("bob", 5, T, 300).await.unwrap();
    store
        .put_challenge(&challenge(b"sa", "alice", T + 60))
        .await
        .unwrap();
    store
        .put_challenge(&challenge(b"sb", "bob", T + 60))
        .await
        .unwrap();
    store
        .append_audit(&audit_record(T, "alice", "lock"))
        .await
        .unwrap();

    let removed = store
        .delete_user("alice")
        .await
        .unwrap()
        .expect("alice existed");
    assert_eq!(
        (removed.deleted, removed.returned),
        (vec!["A1".into(), "A2".into()], vec!["HW9".into()])
    );

    assert!(store.tokens_for_user("alice").await.unwrap().is_empty());
    assert!(store.token_by_serial("A1").await.unwrap().is_none());
    assert!(store.token_by_serial("A2").await.unwrap().is_none());
    let hw = store.token_by_serial("HW9").await.unwrap().expect("kept");
    assert_eq!((hw.user.as_deref(), hw.counter), (None, 3));
    assert_eq!(
        store.user_status("alice").await.unwrap(),
        UserStatus {
            user: "alice".into(),
            ..Default::default()
        }
    );
    assert_eq!(store.challenge(b"sa", T).await.unwrap(), None);
    assert!(store
        .list_users(T)
        .await
        .unwrap()
        .iter()
        .all(|u| u.status.user != "alice"));

    // bob is untouched.
    let bob = store.user_status("bob").await.unwrap();
    assert_eq!((bob.failures, bob.token_count), (1, 1));
    assert!(store.challenge(b"sb", T).await.unwrap().is_some());
    // The audit trail is kept.
    assert_eq!(
        store
            .audit(&AuditFilter {
                user: Some("alice".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );

    assert_eq!(
        store.delete_user("alice").await.unwrap(),
        None,
        "nothing left"
    );
    assert_eq!(store.delete_user("nobody").await.unwrap(), None);

    // A user with only lockout state (no tokens) can be deleted too.
    store.record_failure("carol", 5, T, 300).await.unwrap();
    let removed = store
        .delete_user("carol")
        .await
        .unwrap()
        .expect("carol existed");
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(store.user_status("carol").await.unwrap().failures, 0);
}

// ---------------------------------------------------------------------------------------------
// token inventory (hardware and imported tokens)

fn extra(manufacturer: &str) -> TokenExtra {
    TokenExtra {
        manufacturer: Some(manufacturer.into()),
        model: Some("c200".into()),
        valid_from: Some(T - 100),
        valid_until: Some(T + 100),
        drift: -2,
        resync: None,
        enrolled: false,
        unreadable_seed: None,
    }
}

fn record_serials(records: &[radmfa::store::TokenRecord]) -> Vec<String> {
    records.iter().map(|r| r.token.serial.clone()).collect()
}

pub async fn inventory_import_list_assign_enable_delete(store: &dyn Store) {
    let batch = vec![
        (hotp("H2", None, b"seed-h2", 7), extra("Feitian")),
        (totp("T1", Some("alice"), b"seed-t1"), TokenExtra::default()),
        (hotp("H1", Some("bob"), b"seed-h1", 0), extra("Yubico")),
    ];
    assert_eq!(store.import_tokens(&batch, false).await.unwrap(), 3);
    let all = store.list_tokens(&TokenFilter::default()).await.unwrap();
    assert_eq!(
        record_serials(&all),
        ["H1", "H2", "T1"],
        "ordered by serial"
    );
    let h2 = &all[1];
    assert_eq!(h2.token.user, None);
    assert_eq!(
        (h2.token.kind, h2.token.counter, h2.token.digits),
        (TokenKind::Hotp, 7, 8)
    );
    assert_eq!(h2.token.secret.expose(), b"seed-h2");
    assert_eq!(h2.extra, extra("Feitian"));
    assert!(h2.token.enabled);
    assert!(
        !h2.extra.enrolled,
        "an imported token is not an enrolled seed"
    );
    // Imported tokens are ordinary tokens for the login path.
    assert_eq!(store.tokens_for_user("bob").await.unwrap().len(), 1);

    let stock = TokenFilter {
        unassigned: true,
        ..Default::default()
    };
    assert_eq!(
        record_serials(&store.list_tokens(&stock).await.unwrap()),
        ["H2"]
    );
    // Only from the holder the caller saw: H2 is in stock, so a move "from bob" changes
    // nothing (another admin got there first).
    assert!(!store
        .assign_token("H2", Some("bob"), Some("alice"))
        .await
        .unwrap());
    assert_eq!(
        store.token_record("H2").await.unwrap().unwrap().token.user,
        None
    );
    assert!(store.assign_token("H2", None, Some("alice")).await.unwrap());
    assert!(!store.assign_token("H2", None, Some("carol")).await.unwrap());
    assert!(!store
        .assign_token("nope", None, Some("alice"))
        .await
        .unwrap());
    let alice = TokenFilter {
        user: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(
        record_serials(&store.list_tokens(&alice).await.unwrap()),
        ["H2", "T1"]
    );
    assert!(store.list_tokens(&stock).await.unwrap().is_empty());
    assert!(store.assign_token("T1", Some("alice"), None).await.unwrap());
    assert_eq!(
        store.token_record("T1").await.unwrap().unwrap().token.user,
        None
    );

    assert!(store.set_token_enabled("H1", false).await.unwrap());
    assert!(
        !store
            .token_record("H1")
            .await
            .unwrap()
            .unwrap()
            .token
            .enabled
    );
    assert!(store.set_token_enabled("H1", true).await.unwrap());
    assert!(
        store
            .token_record("H1")
            .await
            .unwrap()
            .unwrap()
            .token
            .enabled
    );
    assert!(!store.set_token_enabled("nope", true).await.unwrap());

    assert!(store.delete_token("H1").await.unwrap());
    assert!(!store.delete_token("H1").await.unwrap());
    assert!(store.token_record("H1").await.unwrap().is_none());
    assert!(store.token_by_serial("H1").await.unwrap().is_none());
}

/// An import's checks read the inventory before its write lock: a token stored since (by
/// another import, which may hold the same seed) or a replaced token given to someone else
/// since refuses the import under that lock, with nothing written. Two imports at once each
/// stored one seed under its own serial, and a replacing import moved a token an admin had
/// just assigned (red team).
pub async fn import_refused_when_the_inventory_changed_since_its_checks(store: &dyn Store) {
    let first = store.add_token(totp("R1", None, b"stock")).await.unwrap();
    let seen = radmfa::store::InventorySeen {
        last_id: first,
        owners: vec![("R1".into(), None)],
    };
    let batch = vec![
        (totp("R1", Some("bob"), b"stock"), TokenExtra::default()),
        (totp("R2", None, b"shared"), TokenExtra::default()),
    ];
    let records = [audit_record(T, "", "import")];
    // Another admin gives R1 to alice meanwhile.
    assert!(store.assign_token("R1", None, Some("alice")).await.unwrap());
    let err = store
        .import_tokens_audited(&batch, true, &records, Some(&seen))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InventoryChanged(ref m)
            if m.contains("token R1 was given to alice") && m.contains("nothing was imported")),
        "{err:?}"
    );
    let all = store.list_tokens(&TokenFilter::default()).await.unwrap();
    assert_eq!(record_serials(&all), ["R1"]);
    assert_eq!(all[0].token.user.as_deref(), Some("alice"));
    // Another import stores R3 (the same seed as this one's R2) meanwhile.
    let seen = radmfa::store::InventorySeen {
        last_id: first,
        owners: vec![("R1".into(), Some("alice".into()))],
    };
    store.add_token(totp("R3", None, b"shared")).await.unwrap();
    let err = store
        .import_tokens_audited(&batch[1..], false, &records, Some(&seen))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InventoryChanged(ref m) if m.contains("token R3 was stored")),
        "{err:?}"
    );
    let all = store.list_tokens(&TokenFilter::default()).await.unwrap();
    assert_eq!(record_serials(&all), ["R1", "R3"]);
    assert!(store
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .is_empty());
    // As seen: written.
    let seen = radmfa::store::InventorySeen {
        last_id: all.iter().map(|r| r.token.id).max().unwrap(),
        owners: vec![("R1".into(), Some("alice".into()))],
    };
    let batch = vec![(totp("R1", None, b"stock"), TokenExtra::default())];
    assert_eq!(
        store
            .import_tokens_audited(&batch, true, &records, Some(&seen))
            .await
            .unwrap(),
        1
    );
    // Deleted meanwhile: said as deleted, not as "given to nobody".
    assert!(store.delete_token("R1").await.unwrap());
    let err = store
        .import_tokens_audited(&batch, true, &records, Some(&seen))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InventoryChanged(ref m) if m.contains("token R1 was deleted")),
        "{err:?}"
    );
}

pub async fn import_is_all_or_nothing(store: &dyn Store) {
    store
        .add_token(totp("T5", Some("carol"), b"old"))
        .await
        .unwrap();
    let batch = vec![
        (totp("T4", None, b"a"), TokenExtra::default()),
        (totp("T5", None, b"b"), TokenExtra::default()),
        (totp("T6", None, b"c"), TokenExtra::default()),
    ];
    // The import's audit records go with it: none of them stays behind either.
    let records = [
        audit_record(T, "", "import"),
        audit_record(T, "dave", "assign"),
    ];
    let err = store
        .import_tokens_audited(&batch, false, &records, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("T5")),
        "{err:?}"
    );
    let all = store.list_tokens(&TokenFilter::default()).await.unwrap();
    assert_eq!(record_serials(&all), ["T5"], "nothing of the batch stayed");
    assert_eq!(all[0].token.secret.expose(), b"old");
    assert!(store
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .is_empty());
    // And they are there with the tokens, all of them.
    let fine = vec![(totp("T8", Some("dave"), b"d"), TokenExtra::default())];
    assert_eq!(
        store
            .import_tokens_audited(&fine, false, &records, None)
            .await
            .unwrap(),
        1
    );
    let mut results: Vec<String> = store
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.result)
        .collect();
    results.sort();
    assert_eq!(results, ["assign", "import"]);
    // A serial twice in one batch is refused the same way.
    let twice = vec![
        (totp("T7", None, b"a"), TokenExtra::default()),
        (totp("T7", None, b"b"), TokenExtra::default()),
    ];
    assert!(store.import_tokens(&twice, false).await.is_err());
    assert!(store.token_record("T7").await.unwrap().is_none());
    assert_eq!(store.import_tokens(&[], false).await.unwrap(), 0);
}

/// An import giving thousands of tokens to users, each audited in the import's transaction:
/// more records than PostgreSQL takes parameters in one statement (65,535, 18 a record), so
/// they go in several statements of the one transaction. 4,000 records in one statement
/// failed every import of 3,640 owned tokens or more.
pub async fn import_of_thousands_of_owned_tokens(store: &dyn Store) {
    const N: usize = 4_100;
    let batch: Vec<_> = (0..N)
        .map(|i| {
            let seed = format!("seed-{i:06}-0123456789");
            let t = totp(
                &format!("OWN{i:05}"),
                Some(&format!("u{i}")),
                seed.as_bytes(),
            );
            (t, TokenExtra::default())
        })
        .collect();
    let records: Vec<_> = std::iter::once(audit_record(T, "", "import"))
        .chain((0..N).map(|i| audit_record(T, &format!("u{i}"), "assign")))
        .collect();
    assert_eq!(
        store
            .import_tokens_audited(&batch, false, &records, None)
            .await
            .unwrap(),
        N as u64
    );
    let all = store.list_tokens(&TokenFilter::default()).await.unwrap();
    assert_eq!(all.len(), N);
    let assigns = AuditFilter {
        result: Some("assign".into()),
        limit: 10_000,
        ..Default::default()
    };
    assert_eq!(store.audit(&assigns).await.unwrap().len(), N);
}

pub async fn import_replace_keeps_owner_and_what_was_learned(store: &dyn Store) {
    let id = store
        .add_token(totp("T1", Some("alice"), b"old"))
        .await
        .unwrap();
    assert!(store
        .consume_totp_step_with_drift(id, T / 30, 3)
        .await
        .unwrap());
    store.set_token_enabled("T1", false).await.unwrap();
    let mut new = hotp("T1", None, b"new-seed", 9);
    new.digits = 6;
    let written = store
        .import_tokens(&[(new, extra("Acme"))], true)
        .await
        .unwrap();
    assert_eq!(written, 1);
    let r = store.token_record("T1").await.unwrap().unwrap();
    assert_eq!(r.token.user.as_deref(), Some("alice"), "owner kept");
    assert_eq!(r.token.secret.expose(), b"new-seed");
    assert_eq!(
        (r.token.kind, r.token.counter, r.token.digits),
        (TokenKind::Hotp, 9, 6)
    );
    // Used steps stay used (with the new seed they refuse only the past), and a token
    // disabled as lost is not put back in service by a file.
    assert_eq!(r.token.last_step, Some(T / 30));
    assert!(!r.token.enabled, "a disabled token came back in service");
    assert_eq!(r.extra, extra("Acme"));
    // The same seed again with a lower counter: the counter does not go back.
    store.set_token_enabled("T1", true).await.unwrap();
    assert_eq!(
        store
            .advance_hotp_counter(r.token.id, 9, 15, None)
            .await
            .unwrap(),
        radmfa::store::CounterUse::Taken
    );
    let mut again = hotp("T1", None, b"new-seed", 2);
    again.digits = 6;
    store
        .import_tokens(&[(again.clone(), extra("Acme"))], true)
        .await
        .unwrap();
    let r = store.token_record("T1").await.unwrap().unwrap();
    assert_eq!(r.token.counter, 15, "the same seed's counter went back");
    // The same seed padded with zero bytes gives the same codes (HMAC pads its key so):
    // it is the same seed, and used codes must not work again.
    again.secret = Secret::new(b"new-seed\0\0".to_vec());
    store
        .import_tokens(&[(again.clone(), extra("Acme"))], true)
        .await
        .unwrap();
    let r = store.token_record("T1").await.unwrap().unwrap();
    assert_eq!(r.token.counter, 15, "a padded seed's counter went back");
    // Another seed starts where its file says.
    again.secret = Secret::new(b"other-seed".to_vec());
    store
        .import_tokens(&[(again, extra("Acme"))], true)
        .await
        .unwrap();
    let r = store.token_record("T1").await.unwrap().unwrap();
    assert_eq!(r.token.counter, 2);
    // A replacement that names an owner moves the token.
    store
        .import_tokens(
            &[(totp("T1", Some("bob"), b"x"), TokenExtra::default())],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .token_record("T1")
            .await
            .unwrap()
            .unwrap()
            .token
            .user
            .as_deref(),
        Some("bob")
    );
    assert_eq!(
        store
            .list_tokens(&TokenFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

/// The same seed re-imported under the wrong type (a CSV without a `type` column makes
/// TOTP), then the right one: the HOTP counter stays where it was through both, or codes
/// used before would log in again.
pub async fn import_replace_keeps_the_counter_across_a_kind_change(store: &dyn Store) {
    store
        .add_token(hotp("H9", Some("alice"), b"the-seed", 40))
        .await
        .unwrap();
    let as_totp = totp("H9", None, b"the-seed");
    store
        .import_tokens(&[(as_totp, TokenExtra::default())], true)
        .await
        .unwrap();
    let r = store.token_record("H9").await.unwrap().unwrap();
    assert_eq!((r.token.kind, r.token.counter), (TokenKind::Totp, 40));
    store
        .import_tokens(
            &[(hotp("H9", None, b"the-seed", 0), TokenExtra::default())],
            true,
        )
        .await
        .unwrap();
    let r = store.token_record("H9").await.unwrap().unwrap();
    assert_eq!((r.token.kind, r.token.counter), (TokenKind::Hotp, 40));
    // Another seed, of the other type too, starts where its file says.
    store
        .import_tokens(
            &[(totp("H9", None, b"other-seed"), TokenExtra::default())],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .token_record("H9")
            .await
            .unwrap()
            .unwrap()
            .token
            .counter,
        0
    );
    // And another seed of the same type.
    store
        .import_tokens(
            &[(hotp("H9", None, b"third-seed", 3), TokenExtra::default())],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .token_record("H9")
            .await
            .unwrap()
            .unwrap()
            .token
            .counter,
        3
    );
}

/// A token reprogrammed from 30 s to 60 s steps (or a vendor file corrected) and imported
/// again with `--replace`: the used step and the drift are counted in periods, so they are
/// rescaled. Kept as they were, step T/30 read as a 60 s step lies decades ahead and every
/// code would be refused as already used.
pub async fn import_replace_rescales_steps_to_a_new_period(store: &dyn Store) {
    let id = store
        .add_token(totp("T1", Some("alice"), b"0123456789abcdefghij"))
        .await
        .unwrap();
    let used = T / 30;
    assert!(store
        .consume_totp_step_with_drift(id, used, 4)
        .await
        .unwrap());
    let mut slower = totp("T1", None, b"0123456789abcdefghij");
    slower.period = 60;
    store
        .import_tokens(&[(slower.clone(), TokenExtra::default())], true)
        .await
        .unwrap();
    let r = store.token_record("T1").await.unwrap().unwrap();
    // Used up to the end of 30 s step `used`: the 60 s step that holds that instant.
    let last = ((used + 1) * 30 - 1) / 60;
    assert_eq!(r.token.last_step, Some(last));
    assert_eq!(r.extra.drift, 2, "4 steps of 30 s are 2 of 60 s");
    assert!(
        !store.consume_totp_step(id, last).await.unwrap(),
        "what was used stays used"
    );
    assert!(
        store.consume_totp_step(id, last + 1).await.unwrap(),
        "the next 60 s step works"
    );
    // Back to 30 s: the next 30 s step after the used 60 s one.
    slower.period = 30;
    store
        .import_tokens(&[(slower, TokenExtra::default())], true)
        .await
        .unwrap();
    let r = store.token_record("T1").await.unwrap().unwrap();
    assert_eq!(r.token.last_step, Some((last + 2) * 2 - 1));
    assert_eq!(r.extra.drift, 4);
}

pub async fn totp_drift_is_stored_with_the_step(store: &dyn Store) {
    let id = store
        .add_token(totp("T1", Some("alice"), b"s"))
        .await
        .unwrap();
    let step = T / 30;
    assert!(store
        .consume_totp_step_with_drift(id, step, 4)
        .await
        .unwrap());
    assert_eq!(
        store.token_record("T1").await.unwrap().unwrap().extra.drift,
        4
    );
    // A replay neither succeeds nor changes the drift.
    assert!(!store
        .consume_totp_step_with_drift(id, step, -7)
        .await
        .unwrap());
    assert!(!store.consume_totp_step(id, step).await.unwrap());
    let r = store.token_record("T1").await.unwrap().unwrap();
    assert_eq!((r.extra.drift, r.token.last_step), (4, Some(step)));
    assert!(store
        .consume_totp_step_with_drift(id, step + 1, -1)
        .await
        .unwrap());
    assert_eq!(
        store.token_record("T1").await.unwrap().unwrap().extra.drift,
        -1
    );
}

/// A login's use of its code: only from the last used step it read. Two requests with one
/// code that matched different steps (a twin, each one's now in another step) both read
/// the same last step: the second to write loses, though its step is higher.
pub async fn totp_step_is_used_only_from_the_step_seen(store: &dyn Store) {
    let id = store
        .add_token(totp("T1", Some("alice"), b"s"))
        .await
        .unwrap();
    let step = T / 30;
    let alice = Some("alice");
    let read = |owner| TokenAsRead { owner, period: 30 };
    let taken = |u: StepUse| u == StepUse::Taken;
    assert!(taken(
        store
            .consume_totp_step_seen(id, read(alice), None, step, 2)
            .await
            .unwrap()
    ));
    // The loser is told where the token is now, to judge its code again.
    assert_eq!(
        store
            .consume_totp_step_seen(id, read(alice), None, step + 1, 3)
            .await
            .unwrap(),
        StepUse::Moved {
            last_step: Some(step),
            drift: 2
        },
        "read before the first wrote"
    );
    assert!(!taken(
        store
            .consume_totp_step_seen(id, read(alice), Some(step), step, 3)
            .await
            .unwrap()
    ));
    let r = store.token_record("T1").await.unwrap().unwrap();
    assert_eq!((r.token.last_step, r.extra.drift), (Some(step), 2));
    // Not the owner's any more, or disabled: gone for this login, and nothing written.
    assert_eq!(
        store
            .consume_totp_step_seen(id, read(Some("bob")), Some(step), step + 1, 0)
            .await
            .unwrap(),
        StepUse::Gone
    );
    // Read with another period (the token replaced meanwhile): gone for this login.
    assert_eq!(
        store
            .consume_totp_step_seen(
                id,
                TokenAsRead {
                    owner: alice,
                    period: 60
                },
                Some(step),
                step + 1,
                0
            )
            .await
            .unwrap(),
        StepUse::Gone
    );
    assert!(store.set_token_enabled("T1", false).await.unwrap());
    assert_eq!(
        store
            .consume_totp_step_seen(id, read(alice), Some(step), step + 1, 0)
            .await
            .unwrap(),
        StepUse::Gone
    );
    assert!(store.set_token_enabled("T1", true).await.unwrap());
    assert!(taken(
        store
            .consume_totp_step_seen(id, read(alice), Some(step), step + 1, -1)
            .await
            .unwrap()
    ));
    let r = store.token_record("T1").await.unwrap().unwrap();
    assert_eq!((r.token.last_step, r.extra.drift), (Some(step + 1), -1));
}

/// `token resync --clock-went-back`: the last used step moves back, with the drift, only
/// if it is still the one the admin's command read, and never forward.
pub async fn totp_step_moves_back_only_from_the_step_seen(store: &dyn Store) {
    let id = store
        .add_token(totp("T1", Some("alice"), b"s"))
        .await
        .unwrap();
    let step = T / 30;
    assert!(store
        .consume_totp_step_with_drift(id, step + 120, 120)
        .await
        .unwrap());
    // Not from a step it is not at (a login moved it meanwhile), not forward.
    assert!(!store
        .rewind_totp_step(id, step + 119, step, 0)
        .await
        .unwrap());
    assert!(!store
        .rewind_totp_step(id, step + 120, step + 121, 1)
        .await
        .unwrap());
    let r = store.token_record("T1").await.unwrap().unwrap();
    assert_eq!((r.extra.drift, r.token.last_step), (120, Some(step + 120)));
    assert!(store
        .rewind_totp_step(id, step + 120, step, 1)
        .await
        .unwrap());
    let r = store.token_record("T1").await.unwrap().unwrap();
    assert_eq!((r.extra.drift, r.token.last_step), (1, Some(step)));
    // The step given is used; the next one is not.
    assert!(!store.consume_totp_step(id, step).await.unwrap());
    assert!(store.consume_totp_step(id, step + 1).await.unwrap());
}

pub async fn hotp_resync_pending_round_trips(store: &dyn Store) {
    let id = store
        .add_token(hotp("H1", Some("alice"), b"s", 3))
        .await
        .unwrap();
    assert_eq!(
        store
            .token_record("H1")
            .await
            .unwrap()
            .unwrap()
            .extra
            .resync,
        None
    );
    store.set_hotp_resync(id, Some((57, T))).await.unwrap();
    assert_eq!(
        store
            .token_record("H1")
            .await
            .unwrap()
            .unwrap()
            .extra
            .resync,
        Some((57, T))
    );
    // Assigning the token to someone else drops a pending resync.
    assert!(store
        .assign_token("H1", Some("alice"), Some("bob"))
        .await
        .unwrap());
    assert_eq!(
        store
            .token_record("H1")
            .await
            .unwrap()
            .unwrap()
            .extra
            .resync,
        None
    );
    store.set_hotp_resync(id, Some((60, T))).await.unwrap();
    store.set_hotp_resync(id, None).await.unwrap();
    assert_eq!(
        store
            .token_record("H1")
            .await
            .unwrap()
            .unwrap()
            .extra
            .resync,
        None
    );
}

/// Many importers of the same serial at once: exactly one wins, the rest are conflicts.
/// Two imports' turns (each from its read of the inventory to its commit) do not overlap:
/// the second waits until the first is dropped, whatever else runs meanwhile. Imports that
/// overlapped stored one seed under two serials where one of them replaced an existing
/// serial's seed (review).
pub async fn import_turns_one_at_a_time(store: Arc<dyn Store>) {
    let first = store.import_turn().await.unwrap();
    let other = store.clone();
    let second = tokio::spawn(async move { other.import_turn().await.map(|_| ()) });
    // Logins and other writes go on meanwhile.
    store
        .add_token(totp("TURN-1", None, b"turn"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "a second import's turn overlapped the first"
    );
    drop(first);
    tokio::time::timeout(std::time::Duration::from_secs(10), second)
        .await
        .expect("the second turn once the first ended")
        .unwrap()
        .unwrap();
}

pub async fn race_import_same_serial(store: Arc<dyn Store>) {
    let results = race(store.clone(), |s, i| async move {
        let seed = format!("seed-{i}");
        s.import_tokens(
            &[(totp("R1", None, seed.as_bytes()), TokenExtra::default())],
            false,
        )
        .await
    })
    .await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, StoreError::Conflict(_))));
}

// ---------------------------------------------------------------------------------------------
// out-of-band factors (issue 4): profile, app passwords, send limits, SMS/call transactions

pub fn oob_txn(id: &str, request_key: &str, user: &str, expires_at: i64) -> OobTransaction {
    OobTransaction {
        id: id.into(),
        request_key: request_key.into(),
        user: user.into(),
        nas: "vpn".into(),
        kind: OobKind::Sms,
        phone: "+15550100".into(),
        code_hash: Some(vec![7; 48]),
        status: OobStatus::Pending,
        reason: None,
        provider_ref: None,
        created_at: T,
        expires_at,
        // Read back whole by `oob` (a fraud report's record names them).
        origin: Box::new(LoginOrigin {
            client_ip: Some("198.51.100.7".into()),
            nas_ip: Some("127.0.0.1".into()),
            nas_identifier: Some("vpn-gw-2".into()),
        }),
    }
}

pub async fn profile_phone_method_round_trip(store: &dyn Store) {
    let empty = store.user_profile("alice").await.unwrap();
    assert_eq!(
        empty,
        UserProfile {
            user: "alice".into(),
            ..Default::default()
        }
    );
    store.set_phone("alice", Some("+15550100")).await.unwrap();
    store.set_method("alice", Some("sms")).await.unwrap();
    store.set_phone("bob", Some("+15550102")).await.unwrap();
    let p = store.user_profile("alice").await.unwrap();
    assert_eq!(p.phone.as_deref(), Some("+15550100"));
    assert_eq!(p.method.as_deref(), Some("sms"));
    // Setting one column keeps the other.
    store.set_method("alice", Some("voice")).await.unwrap();
    assert_eq!(
        store.user_profile("alice").await.unwrap().phone.as_deref(),
        Some("+15550100")
    );
    store.set_phone("alice", None).await.unwrap();
    let p = store.user_profile("alice").await.unwrap();
    assert_eq!((p.phone, p.method.as_deref()), (None, Some("voice")));
    assert_eq!(
        store.user_profile("bob").await.unwrap().phone.as_deref(),
        Some("+15550102")
    );
}

pub async fn block_and_unblock(store: &dyn Store) {
    assert!(!store.unblock_user("alice").await.unwrap(), "not blocked");
    assert!(store.block_user("alice", T, "fraud one").await.unwrap());
    assert!(!store.block_user("alice", T + 5, "fraud two").await.unwrap());
    let p = store.user_profile("alice").await.unwrap();
    assert_eq!(p.blocked_at, Some(T));
    assert_eq!(
        p.blocked_reason.as_deref(),
        Some("fraud one"),
        "first reason stays"
    );
    assert_eq!(store.user_profile("bob").await.unwrap().blocked_at, None);
    store.set_phone("alice", Some("+15550100")).await.unwrap();
    assert!(store
        .user_profile("alice")
        .await
        .unwrap()
        .blocked_at
        .is_some());
    assert!(store.unblock_user("alice").await.unwrap());
    let p = store.user_profile("alice").await.unwrap();
    assert_eq!((p.blocked_at, p.blocked_reason), (None, None));
    assert_eq!(
        p.phone.as_deref(),
        Some("+15550100"),
        "unblock keeps the phone"
    );
}

pub async fn bypass_is_taken_once_before_it_expires(store: &dyn Store) {
    assert!(!store.take_bypass("alice", T).await.unwrap(), "none set");
    store.set_phone("alice", Some("+15550100")).await.unwrap();
    store.set_bypass("alice", Some(T + 300)).await.unwrap();
    let p = store.user_profile("alice").await.unwrap();
    assert_eq!(p.bypass_until, Some(T + 300));
    assert!(p.bypass_pending(T) && !p.bypass_pending(T + 300));
    assert_eq!(
        p.phone.as_deref(),
        Some("+15550100"),
        "the rest of the profile stays"
    );
    let snap = store.user_snapshot("alice").await.unwrap();
    assert_eq!(
        snap.profile.bypass_until,
        Some(T + 300),
        "the login's read sees it"
    );
    assert!(
        !store.take_bypass("bob", T).await.unwrap(),
        "another user's"
    );
    assert!(store.take_bypass("alice", T + 10).await.unwrap());
    assert!(!store.take_bypass("alice", T + 11).await.unwrap(), "once");
    assert_eq!(
        store.user_profile("alice").await.unwrap().bypass_until,
        None
    );
    // Expired, and cancelled: neither can be taken.
    store.set_bypass("alice", Some(T + 300)).await.unwrap();
    assert!(
        !store.take_bypass("alice", T + 300).await.unwrap(),
        "expired"
    );
    store.set_bypass("bob", Some(T + 300)).await.unwrap();
    store.set_bypass("bob", None).await.unwrap();
    assert!(!store.take_bypass("bob", T).await.unwrap(), "cancelled");

    // Taking an admin's bypass back (its audit record failed) puts the earlier one back,
    // but not once a login used the new one: that would be a second use of one grant.
    store.set_bypass("carol", Some(T + 7200)).await.unwrap();
    store.set_bypass("carol", Some(T + 300)).await.unwrap();
    assert!(store
        .restore_bypass("carol", T + 300, Some(T + 7200))
        .await
        .unwrap());
    assert_eq!(
        store.user_profile("carol").await.unwrap().bypass_until,
        Some(T + 7200)
    );
    store.set_bypass("carol", Some(T + 300)).await.unwrap();
    assert!(store.take_bypass("carol", T).await.unwrap());
    assert!(!store
        .restore_bypass("carol", T + 300, Some(T + 7200))
        .await
        .unwrap());
    assert!(!store.take_bypass("carol", T).await.unwrap(), "used once");

    // Granted with its audit record, in one transaction: both are there, the rest of the
    // profile left as it was, and the login takes it as any other.
    store.set_phone("dora", Some("+15550101")).await.unwrap();
    let mut grant = audit_record(T, "dora", "bypass");
    grant.mode = "admin".into();
    grant.reason = Some("until T+300".into());
    assert!(store
        .set_bypass_audited("dora", Some(T + 300), BypassWas::Anything, &grant)
        .await
        .unwrap());
    let p = store.user_profile("dora").await.unwrap();
    assert_eq!(
        (p.bypass_until, p.phone.as_deref()),
        (Some(T + 300), Some("+15550101"))
    );
    let records = store
        .audit(&AuditFilter {
            user: Some("dora".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (records[0].result.as_str(), records[0].reason.as_deref()),
        ("bypass", Some("until T+300"))
    );
    // A cancel of the bypass read, once a login took it: nothing done, nothing recorded.
    assert!(store.take_bypass("dora", T).await.unwrap());
    let mut cancel = grant.clone();
    cancel.reason = Some("cancelled".into());
    assert!(!store
        .set_bypass_audited("dora", None, BypassWas::Exactly(Some(T + 300)), &cancel)
        .await
        .unwrap());
    let count = |user: &str| {
        let f = AuditFilter {
            user: Some(user.into()),
            ..Default::default()
        };
        async move { store.audit(&f).await.unwrap().len() }
    };
    assert_eq!(count("dora").await, 1, "no record of a cancel not made");
    // Of the one still there: cancelled, and recorded.
    store
        .set_bypass_audited("dora", Some(T + 600), BypassWas::Anything, &grant)
        .await
        .unwrap();
    assert!(store
        .set_bypass_audited("dora", None, BypassWas::Exactly(Some(T + 600)), &cancel)
        .await
        .unwrap());
    assert_eq!(store.user_profile("dora").await.unwrap().bypass_until, None);
    assert_eq!(count("dora").await, 3);

    // A grant over the bypass an admin read: over none (no row yet, or a row without
    // one) it is made; over one that another grant set meanwhile, nothing is written.
    let mut grant = grant.clone();
    grant.user = "erin".into();
    assert!(store
        .set_bypass_audited("erin", Some(T + 300), BypassWas::Exactly(None), &grant)
        .await
        .unwrap());
    assert!(!store
        .set_bypass_audited("erin", Some(T + 900), BypassWas::Exactly(None), &grant)
        .await
        .unwrap());
    assert!(!store
        .set_bypass_audited(
            "erin",
            Some(T + 900),
            BypassWas::Exactly(Some(T + 1)),
            &grant
        )
        .await
        .unwrap());
    assert_eq!(
        store.user_profile("erin").await.unwrap().bypass_until,
        Some(T + 300)
    );
    assert_eq!(count("erin").await, 1, "no record of a grant not made");
    assert!(store
        .set_bypass_audited(
            "erin",
            Some(T + 900),
            BypassWas::Exactly(Some(T + 300)),
            &grant
        )
        .await
        .unwrap());
    assert!(store.take_bypass("erin", T).await.unwrap());
    assert!(store
        .set_bypass_audited("erin", Some(T + 60), BypassWas::Exactly(None), &grant)
        .await
        .unwrap());
    assert_eq!(
        store.user_profile("erin").await.unwrap().bypass_until,
        Some(T + 60)
    );
    assert_eq!(count("erin").await, 3);
}

pub async fn race_take_bypass(store: Arc<dyn Store>) {
    store.set_bypass("alice", Some(T + 300)).await.unwrap();
    let results = race(store.clone(), |s, _| async move {
        s.take_bypass("alice", T).await.unwrap()
    })
    .await;
    assert_eq!(results.iter().filter(|&&won| won).count(), 1, "{results:?}");
}

pub async fn app_passwords_add_list_delete(store: &dyn Store) {
    let a1 = store
        .add_app_password("alice", Some("phone"), "$argon2id$one", T, (None, None))
        .await
        .unwrap();
    let a2 = store
        .add_app_password("alice", None, "$argon2id$two", T + 1, (None, None))
        .await
        .unwrap();
    let b1 = store
        .add_app_password("bob", None, "$argon2id$bob", T, (None, None))
        .await
        .unwrap();
    assert!(a1 != a2 && a2 != b1);
    // An app password logs in without a code: its holders are listed users. A profile
    // with nothing left in it (a bypass long expired) does not make one.
    store.set_bypass("zed", Some(1)).await.unwrap();
    let users: Vec<String> = store
        .list_users(T)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.status.user)
        .collect();
    assert_eq!(users, ["alice", "bob"]);
    let list = store.app_passwords("alice").await.unwrap();
    assert_eq!(list.iter().map(|p| p.id).collect::<Vec<_>>(), vec![a1, a2]);
    assert_eq!(list[0].label.as_deref(), Some("phone"));
    assert_eq!(list[0].hash, "$argon2id$one");
    assert_eq!((list[0].created_at, list[0].last_used_at), (T, None));
    assert_eq!(list[0].dn, None);
    let entry = "uid=alice,ou=people,dc=example,dc=org";
    assert!(store
        .touch_app_password(a1, "alice", "$argon2id$one", T + 60, Some(entry), None)
        .await
        .unwrap());
    let used = &store.app_passwords("alice").await.unwrap()[0];
    assert_eq!(
        (
            used.last_used_at,
            used.dn.as_deref(),
            used.entry_id.as_deref()
        ),
        (Some(T + 60), Some(entry), None)
    );
    // The entry's identity, first seen at a later use (a directory that showed none, a
    // release that did not record it), is recorded then, and kept.
    let id = "entryUUID:0f6c3d2a-1111-4e5e-9a9a-000000000001";
    for other in [id, "entryUUID:0f6c3d2a-2222-4e5e-9a9a-000000000002"] {
        assert!(store
            .touch_app_password(
                a1,
                "alice",
                "$argon2id$one",
                T + 70,
                Some(entry),
                Some(other)
            )
            .await
            .unwrap());
    }
    assert_eq!(
        store.app_passwords("alice").await.unwrap()[0]
            .entry_id
            .as_deref(),
        Some(id)
    );
    // The first entry stays: a later use under another entry does not rebind it.
    assert!(store
        .touch_app_password(
            a1,
            "alice",
            "$argon2id$one",
            T + 90,
            Some("uid=other,dc=example,dc=org"),
            None
        )
        .await
        .unwrap());
    assert_eq!(
        store.app_passwords("alice").await.unwrap()[0].dn.as_deref(),
        Some(entry)
    );
    // Only the owner's ids can be deleted.
    assert!(!store.delete_app_password("alice", b1).await.unwrap());
    assert!(store.delete_app_password("alice", a1).await.unwrap());
    assert!(!store.delete_app_password("alice", a1).await.unwrap());
    // A login that checked it before the delete learns it is gone.
    assert!(!store
        .touch_app_password(a1, "alice", "$argon2id$one", T + 120, None, None)
        .await
        .unwrap());
    // Nor is another user's row, or another password, under the id it had.
    assert!(!store
        .touch_app_password(b1, "alice", "$argon2id$bob", T + 120, None, None)
        .await
        .unwrap());
    assert!(!store
        .touch_app_password(a2, "alice", "$argon2id$one", T + 120, None, None)
        .await
        .unwrap());
    assert_eq!(
        store.app_passwords("bob").await.unwrap()[0].last_used_at,
        None,
        "bob's row untouched"
    );
    assert_eq!(store.app_passwords("alice").await.unwrap().len(), 1);
    store
        .add_app_password("alice", None, "$argon2id$three", T, (None, None))
        .await
        .unwrap();
    assert_eq!(store.delete_app_passwords("alice").await.unwrap(), 2);
    assert!(store.app_passwords("alice").await.unwrap().is_empty());
    assert_eq!(store.app_passwords("bob").await.unwrap().len(), 1);
}

fn limits(user: &str, user_max: u32, nas_max: u32) -> Vec<SendLimit> {
    vec![
        SendLimit {
            key: format!("user:{user}"),
            max: user_max,
            window_secs: 300,
        },
        SendLimit {
            key: "nas:vpn".into(),
            max: nas_max,
            window_secs: 300,
        },
    ]
}

pub async fn send_slots_limit_and_window(store: &dyn Store) {
    assert_eq!(
        store
            .take_send_slot(&limits("a", 2, 3), T, "s1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .take_send_slot(&limits("a", 2, 3), T + 1, "s2")
            .await
            .unwrap(),
        None
    );
    // The user's limit is full; nothing is recorded for the NAS either.
    assert_eq!(
        store
            .take_send_slot(&limits("a", 2, 3), T + 2, "s3")
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        store
            .take_send_slot(&limits("b", 2, 3), T + 3, "s4")
            .await
            .unwrap(),
        None
    );
    // Now the NAS has 3 in the window: full for everyone.
    assert_eq!(
        store
            .take_send_slot(&limits("c", 2, 3), T + 4, "s5")
            .await
            .unwrap(),
        Some(1)
    );
    // The window slides: the two sends at T and T+1 leave it at T+300 and T+301.
    assert_eq!(
        store
            .take_send_slot(&limits("a", 2, 3), T + 299, "s6")
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        store
            .take_send_slot(&limits("a", 2, 9), T + 301, "s7")
            .await
            .unwrap(),
        None
    );
    // Sends stamped by a clock a day ahead (an NTP step back since) fill no window now:
    // counted, they refused the user for that day with "wait a few minutes". Those within
    // the skew allowed between nodes (2 minutes) count.
    let later = T + 10_000;
    for (at, slot) in [(later + 86_400, "d1"), (later + 86_401, "d2")] {
        assert_eq!(take(store, "d", 9, at, slot).await, None);
    }
    assert_eq!(take(store, "d", 9, later, "d3").await, None);
    assert_eq!(take(store, "d", 9, later + 60, "d4").await, None);
    let skewed = take(store, "e", 9, later + 100, "e1").await;
    assert_eq!(skewed, None);
    assert_eq!(take(store, "e", 9, later, "e2").await, None);
    assert_eq!(take(store, "e", 9, later + 1, "e3").await, Some(0));
}

/// A send slot for `user` through a NAS allowing `nas_max` (the user 2), at `at`.
async fn take(store: &dyn Store, user: &str, nas_max: u32, at: i64, slot: &str) -> Option<usize> {
    store
        .take_send_slot(&limits(user, 2, nas_max), at, slot)
        .await
        .unwrap()
}

/// The limits a send of `user` to `phone` through the NAS counts against, as
/// `pipeline::oob::rate_limits` makes them: the user 2 a window and a day, the number 2, the
/// NAS `nas_max`.
fn user_phone_nas(user: &str, phone: &str, nas_max: u32) -> Vec<SendLimit> {
    let limit = |key: String, max| SendLimit {
        key,
        max,
        window_secs: 300,
    };
    vec![
        limit(format!("user:{user}"), 2),
        limit(format!("phone:{phone}"), 2),
        limit("nas:vpn".into(), nas_max),
        limit(format!("user-day:{user}"), 2),
    ]
}

/// An admin forgets one user's sends (`user unlock`): under the user's and the number's keys,
/// no one else's; the NAS's cap still counts them, so unlocking user after user during an
/// incident does not make room for more sends through the NAS.
pub async fn forgotten_sends_still_count_for_the_nas(store: &dyn Store) {
    let send = |user: &'static str, nas_max: u32, slot: &'static str| async move {
        store
            .take_send_slot(&user_phone_nas(user, "+4930", nas_max), T, slot)
            .await
            .unwrap()
    };
    for slot in ["a1", "a2"] {
        assert_eq!(send("a", 5, slot).await, None);
    }
    // a is at its limit and so is the number (whoever's account it is).
    assert_eq!(send("a", 5, "a3").await, Some(0));
    assert_eq!(send("b", 5, "b0").await, Some(1));
    assert_eq!(store.forget_sends("user-day:a").await.unwrap(), 2);
    assert_eq!(store.forget_sends("user-day:a").await.unwrap(), 0);
    // Room for a again, the number's allowance included...
    assert_eq!(send("a", 5, "a4").await, None);
    // ...but the NAS still counts a's two forgotten sends: with room for 3, it is full.
    assert_eq!(
        send("a", 3, "a5").await,
        Some(2),
        "the NAS holds a1, a2, a4"
    );
    assert_eq!(send("a", 4, "a6").await, None);
    assert_eq!(
        send("c", 4, "c1").await,
        Some(1),
        "the number is full again"
    );
}

/// Two users share a number (an admin account and a normal one): a's sends fill the number's
/// limits, and b is refused though b sent nothing. What an admin is told: the number's
/// sends, by whose login; `user unlock b` forgets them in the number's limits only, so b
/// gets its text while a's own limits and the NAS's still count them.
pub async fn a_numbers_sends_are_told_by_user_and_forgotten(store: &dyn Store) {
    let limits = |user: &str| {
        let mut l = user_phone_nas(user, "+4930", 10);
        l.push(SendLimit {
            key: "phone-day:+4930".into(),
            max: 2,
            window_secs: 86_400,
        });
        l
    };
    for slot in ["a1", "a2"] {
        assert_eq!(
            store.take_send_slot(&limits("a"), T, slot).await.unwrap(),
            None
        );
    }
    assert_eq!(
        store.take_send_slot(&limits("b"), T, "b1").await.unwrap(),
        Some(1),
        "the number is full"
    );
    let told = |key: &'static str, since: i64| async move {
        store.sends_since(key, since, T).await.unwrap()
    };
    assert_eq!(
        told("phone-day:+4930", T - 86_400).await,
        [("a".to_string(), 2)]
    );
    assert_eq!(told("phone:+4930", T - 300).await, [("a".to_string(), 2)]);
    // Only those after `since`; none of b's (refused sends are not counted).
    assert!(told("phone:+4930", T).await.is_empty());
    assert!(told("user-day:b", T - 86_400).await.is_empty());
    assert_eq!(told("user-day:a", T - 86_400).await, [("a".to_string(), 2)]);
    assert_eq!(store.forget_number_sends("+4930").await.unwrap(), 2);
    assert_eq!(store.forget_number_sends("+4930").await.unwrap(), 0);
    assert!(told("phone-day:+4930", T - 86_400).await.is_empty());
    // b gets its send; a is still at its own limit, which the number's forgetting left.
    assert_eq!(
        store.take_send_slot(&limits("b"), T, "b2").await.unwrap(),
        None
    );
    assert_eq!(
        store.take_send_slot(&limits("a"), T, "a3").await.unwrap(),
        Some(0)
    );
    assert_eq!(
        told("phone-day:+4930", T - 86_400).await,
        [("b".to_string(), 1)]
    );
    // Another number's sends are not touched.
    let other = vec![SendLimit {
        key: "phone-day:+4940".into(),
        max: 2,
        window_secs: 86_400,
    }];
    assert_eq!(store.take_send_slot(&other, T, "c1").await.unwrap(), None);
    assert_eq!(store.forget_number_sends("+4930").await.unwrap(), 1);
    assert_eq!(
        told("phone-day:+4940", T - 86_400).await,
        [(String::new(), 1)]
    );
}

/// A send the provider surely did not take gives its slot back, under the user's key and the
/// NAS's, by the slot's id: another send of the same user in the same second (the same keys
/// and times) keeps its own. Given back once; an id never taken gives back nothing.
pub async fn send_slot_given_back_by_its_id(store: &dyn Store) {
    for slot in ["mine", "theirs"] {
        assert_eq!(take(store, "a", 2, T, slot).await, None);
    }
    // The NAS is full.
    assert_eq!(take(store, "b", 2, T, "refused").await, Some(1));
    // Given back inside a request's scope, as the pipeline does: on PostgreSQL not in the
    // request's transaction, and the request's writes are still durable.
    let (released, durable) = durability::deferred(store.release_send_slot("mine")).await;
    durable.unwrap();
    assert_eq!(released.unwrap(), 2, "the user's event and the NAS's");
    assert_eq!(store.release_send_slot("mine").await.unwrap(), 0);
    assert_eq!(store.release_send_slot("never-taken").await.unwrap(), 0);
    assert_eq!(store.release_send_slot("refused").await.unwrap(), 0);
    // Room for one more send of the user's, through that NAS.
    assert_eq!(take(store, "a", 2, T + 1, "next").await, None);
    // "theirs" still counts, for the user and for the NAS.
    assert_eq!(take(store, "a", 9, T + 2, "over-user").await, Some(0));
    assert_eq!(take(store, "b", 2, T + 2, "over-nas").await, Some(1));
}

pub async fn cancel_oob_of_one_user(store: &dyn Store) {
    for (id, user) in [
        ("a1", "alice"),
        ("a2", "alice"),
        ("b1", "bob"),
        ("a3", "alice"),
    ] {
        let mut t = oob_txn(id, &format!("req-{id}"), user, T + 300);
        if id == "a2" {
            t.kind = OobKind::Voice;
            t.code_hash = None;
        }
        assert_eq!(store.begin_oob(&t).await.unwrap(), OobBegin::Created);
    }
    assert_eq!(
        store.set_oob_provider_ref("a2", "CA-a2").await.unwrap(),
        Some((OobStatus::Pending, None))
    );
    assert!(store
        .resolve_oob("a3", OobStatus::Approved, None)
        .await
        .unwrap());
    // The calls among them come back by their provider's reference, to be hung up.
    assert_eq!(
        store
            .cancel_oob("alice", None, "phone changed")
            .await
            .unwrap(),
        CancelledOob {
            count: 2,
            calls: vec!["CA-a2".into()]
        }
    );
    assert_eq!(
        store
            .cancel_oob("alice", None, "phone changed")
            .await
            .unwrap(),
        CancelledOob::default()
    );
    // A call's reference arriving after its cancel (it was being placed): the caller learns
    // the call is failed, to hang it up.
    assert_eq!(
        store.set_oob_provider_ref("a1", "CA-late").await.unwrap(),
        Some((OobStatus::Failed, Some("phone changed".to_string())))
    );
    assert_eq!(
        store.set_oob_provider_ref("nope", "CA-x").await.unwrap(),
        None
    );
    for id in ["a1", "a2"] {
        let t = store.oob(id).await.unwrap().unwrap();
        assert_eq!(
            (t.status, t.reason.as_deref()),
            (OobStatus::Failed, Some("phone changed"))
        );
        // A late approval changes nothing; a fraud report still marks it.
        assert!(!store
            .resolve_oob(id, OobStatus::Approved, None)
            .await
            .unwrap());
    }
    assert!(store
        .resolve_oob("a1", OobStatus::Fraud, Some("fraud"))
        .await
        .unwrap());
    assert_eq!(
        store.oob("a3").await.unwrap().unwrap().status,
        OobStatus::Approved,
        "a decided one stays"
    );
    assert_eq!(
        store.oob("b1").await.unwrap().unwrap().status,
        OobStatus::Pending,
        "bob's stays"
    );

    // A fraud report cancels the user's other calls but not its own, which its decision
    // marks next (failed in between, the login held on it read the wrong outcome).
    for id in ["a4", "a5"] {
        let t = oob_txn(id, &format!("req-{id}"), "alice", T + 300);
        assert_eq!(store.begin_oob(&t).await.unwrap(), OobBegin::Created);
    }
    assert_eq!(
        store
            .cancel_oob("alice", Some("a4"), "fraud alert on another call")
            .await
            .unwrap()
            .count,
        1
    );
    assert_eq!(
        store.oob("a4").await.unwrap().unwrap().status,
        OobStatus::Pending
    );
    assert_eq!(
        store.oob("a5").await.unwrap().unwrap().status,
        OobStatus::Failed
    );
    assert_eq!(
        store.oob("b1").await.unwrap().unwrap().status,
        OobStatus::Pending,
        "bob's stays"
    );
}

pub async fn oob_begin_get_resolve(store: &dyn Store) {
    let t = oob_txn("id-1", "req-1", "alice", T + 300);
    assert_eq!(store.begin_oob(&t).await.unwrap(), OobBegin::Created);
    // A retransmit (same request key, any node) finds the first one.
    let again = oob_txn("id-2", "req-1", "alice", T + 300);
    assert_eq!(
        store.begin_oob(&again).await.unwrap(),
        OobBegin::Existing(Box::new(t.clone()))
    );
    assert_eq!(store.oob("id-2").await.unwrap(), None);
    assert_eq!(store.oob("id-1").await.unwrap(), Some(t.clone()));
    store.set_oob_provider_ref("id-1", "SM123").await.unwrap();
    assert_eq!(
        store
            .oob("id-1")
            .await
            .unwrap()
            .unwrap()
            .provider_ref
            .as_deref(),
        Some("SM123")
    );
    assert!(store
        .resolve_oob("id-1", OobStatus::Approved, None)
        .await
        .unwrap());
    assert!(!store
        .resolve_oob("id-1", OobStatus::Denied, Some("late"))
        .await
        .unwrap());
    let done = store.oob("id-1").await.unwrap().unwrap();
    assert_eq!((done.status, done.reason), (OobStatus::Approved, None));
    // A fraud report marks a decided call, once: its replay is known as one.
    assert!(store
        .resolve_oob("id-1", OobStatus::Fraud, Some("late"))
        .await
        .unwrap());
    assert!(!store
        .resolve_oob("id-1", OobStatus::Fraud, Some("again"))
        .await
        .unwrap());
    let done = store.oob("id-1").await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.reason.as_deref()),
        (OobStatus::Fraud, Some("late"))
    );
    assert!(!store
        .resolve_oob("nope", OobStatus::Denied, None)
        .await
        .unwrap());
    let mut call = oob_txn("id-3", "req-3", "bob", T + 60);
    call.kind = OobKind::Voice;
    call.code_hash = None;
    store.begin_oob(&call).await.unwrap();
    assert!(store
        .resolve_oob("id-3", OobStatus::Failed, Some("call no-answer"))
        .await
        .unwrap());
    let c = store.oob("id-3").await.unwrap().unwrap();
    assert_eq!((c.kind, c.status), (OobKind::Voice, OobStatus::Failed));
    assert_eq!(
        (c.code_hash, c.reason.as_deref()),
        (None, Some("call no-answer"))
    );
}

pub async fn purge_delivery_state(store: &dyn Store) {
    store
        .begin_oob(&oob_txn("old", "r-old", "alice", T))
        .await
        .unwrap();
    store
        .begin_oob(&oob_txn("new", "r-new", "alice", T + 100))
        .await
        .unwrap();
    store
        .take_send_slot(&limits("a", 1, 100), T - 90_000, "s8")
        .await
        .unwrap();
    // A call's row stays an hour past its lifetime, for a late fraud report.
    let mut call = oob_txn("call", "r-call", "alice", T);
    call.kind = OobKind::Voice;
    call.code_hash = None;
    store.begin_oob(&call).await.unwrap();
    assert!(store.purge_delivery_state(T).await.unwrap() >= 2);
    assert_eq!(store.oob("old").await.unwrap(), None);
    assert!(store.oob("new").await.unwrap().is_some());
    assert!(store.oob("call").await.unwrap().is_some());
    store.purge_delivery_state(T + 3600).await.unwrap();
    assert_eq!(store.oob("call").await.unwrap(), None);
}

pub async fn delete_user_removes_delivery_state(store: &dyn Store) {
    store.set_phone("alice", Some("+15550100")).await.unwrap();
    store
        .add_app_password("alice", None, "$h", T, (None, None))
        .await
        .unwrap();
    store
        .begin_oob(&oob_txn("a", "r-a", "alice", T + 60))
        .await
        .unwrap();
    let call = OobTransaction {
        kind: OobKind::Voice,
        code_hash: None,
        ..oob_txn("v", "r-v", "alice", T + 60)
    };
    store.begin_oob(&call).await.unwrap();
    store
        .add_app_password("bob", None, "$h", T, (None, None))
        .await
        .unwrap();
    assert!(store.delete_user("alice").await.unwrap().is_some());
    assert_eq!(store.user_profile("alice").await.unwrap().phone, None);
    assert!(store.app_passwords("alice").await.unwrap().is_empty());
    assert_eq!(store.oob("a").await.unwrap(), None);
    // A call still ringing is failed, not removed: its 0# must still find it and block the
    // name (the row goes with the others of its age).
    let kept = store.oob("v").await.unwrap().expect("the call's row");
    assert_eq!(kept.status, OobStatus::Failed);
    assert_eq!(store.app_passwords("bob").await.unwrap().len(), 1);
}

fn remembered(nas: &str, station: &str, mode: &str, at: i64, secs: i64) -> RememberedLogin {
    RememberedLogin {
        user: "alice".into(),
        nas: nas.into(),
        station: station.into(),
        mode: mode.into(),
        verified_at: at,
        expires_at: at + secs,
    }
}

/// One row per user, client and station; valid strictly before it expires; a newer second
/// factor replaces the row; listed soonest to expire first.
pub async fn remembered_logins_per_client_and_station(store: &dyn Store) {
    let vpn = remembered("vpn", "203.0.113.5", "totp", T, 300);
    store.remember_login(&vpn).await.unwrap();
    let get = |nas: &'static str, station: &'static str, now: i64| async move {
        store
            .remembered_login("alice", nas, station, now)
            .await
            .unwrap()
    };
    assert_eq!(get("vpn", "203.0.113.5", T + 299).await, Some(vpn.clone()));
    assert_eq!(get("vpn", "203.0.113.5", T + 300).await, None, "expired");
    assert_eq!(get("vpn", "203.0.113.6", T).await, None, "another station");
    assert_eq!(get("wifi", "203.0.113.5", T).await, None, "another client");
    assert_eq!(
        store
            .remembered_login("bob", "vpn", "203.0.113.5", T)
            .await
            .unwrap(),
        None,
        "another user"
    );
    // A newer factor on the same station replaces the row (and its period).
    let renewed = remembered("vpn", "203.0.113.5", "sms", T + 200, 300);
    store.remember_login(&renewed).await.unwrap();
    assert_eq!(get("vpn", "203.0.113.5", T + 450).await, Some(renewed));
    // No station (RD Gateway sends none) is a station of its own.
    let rdg = remembered("rdg", "", "voice", T, 60);
    store.remember_login(&rdg).await.unwrap();
    assert_eq!(get("rdg", "", T + 10).await, Some(rdg.clone()));
    let all = store.remembered_logins("alice", T + 10).await.unwrap();
    let order: Vec<&str> = all.iter().map(|r| r.nas.as_str()).collect();
    assert_eq!(order, ["rdg", "vpn"], "soonest to expire first");
    let later = store.remembered_logins("alice", T + 100).await.unwrap();
    assert_eq!(later.len(), 1, "the expired one is not listed: {later:?}");
}

/// Expired rows go with the delivery state; `forget_logins` and `delete_user` take the
/// user's rows and nobody else's.
pub async fn remembered_logins_are_purged_and_forgotten(store: &dyn Store) {
    store
        .remember_login(&remembered("vpn", "a", "totp", T - 600, 300))
        .await
        .unwrap();
    store
        .remember_login(&remembered("vpn", "b", "totp", T, 300))
        .await
        .unwrap();
    assert_eq!(store.purge_delivery_state(T).await.unwrap(), 1);
    assert_eq!(store.remembered_logins("alice", 0).await.unwrap().len(), 1);
    let bob = RememberedLogin {
        user: "bob".into(),
        ..remembered("vpn", "b", "totp", T, 300)
    };
    store.remember_login(&bob).await.unwrap();
    store
        .remember_login(&remembered("wifi", "c", "hotp", T, 300))
        .await
        .unwrap();
    assert_eq!(store.forget_logins("alice", T + 10).await.unwrap(), 2);
    assert_eq!(store.forget_logins("alice", T + 10).await.unwrap(), 0);
    assert!(store
        .remembered_logins("alice", T)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.remembered_logins("bob", T).await.unwrap(), [bob]);
    assert!(
        store.delete_user("bob").await.unwrap().is_some(),
        "a remembered row is the user's"
    );
    assert!(store.remembered_logins("bob", T).await.unwrap().is_empty());
    // Bob's login that passed its factor before the delete and writes its row after it:
    // not written (the delete leaves the mark a forget does, at the store's clock).
    let mut late_bob = remembered("vpn", "late", "totp", T, 300);
    late_bob.user = "bob".into();
    store.remember_login(&late_bob).await.unwrap();
    assert!(store.remembered_logins("bob", T).await.unwrap().is_empty());
    assert!(
        store.delete_user("bob").await.unwrap().is_none(),
        "the mark is no user"
    );

    // alice's rows after one more verified at `at` is written.
    let kept_after = |station: &'static str, at: i64| async move {
        store
            .remember_login(&remembered("vpn", station, "totp", at, 300))
            .await
            .unwrap();
        store.remembered_logins("alice", T).await.unwrap().len()
    };
    // A login that passed its factor before the forget and writes its row after it (it
    // was in flight) does not bring it back.
    assert_eq!(kept_after("late", T + 5).await, 0);
    // Verified in the forget's own second: the clock cannot tell it from one before (the
    // race the mark is for takes milliseconds), so it is not remembered either; the login
    // itself went through.
    assert_eq!(kept_after("same-second", T + 10).await, 0);
    assert_eq!(kept_after("next-second", T + 11).await, 1);
    // A forget that records an earlier moment does not move the mark back.
    assert_eq!(store.forget_logins("alice", T).await.unwrap(), 1);
    store
        .remember_login(&remembered("vpn", "late", "totp", T + 5, 300))
        .await
        .unwrap();
    assert!(store
        .remembered_logins("alice", T)
        .await
        .unwrap()
        .is_empty());
    // The mark alone makes no user: nothing for delete_user to report.
    store.forget_logins("carol", T).await.unwrap();
    assert!(store.delete_user("carol").await.unwrap().is_none());
}

/// A client's period lowered (or turned off) ends its remembered logins for good: cut to
/// the period from their second factor, or deleted; other clients' rows are untouched.
pub async fn remembered_logins_are_cut_to_a_client_period(store: &dyn Store) {
    for login in [
        remembered("vpn", "a", "totp", T, 3600),
        remembered("vpn", "b", "totp", T, 60),
        remembered("wifi", "c", "hotp", T, 3600),
        remembered("rdg", "", "voice", T, 3600),
    ] {
        store.remember_login(&login).await.unwrap();
    }
    let mut clients = store.remembered_clients().await.unwrap();
    clients.sort();
    assert_eq!(clients, ["rdg", "vpn", "wifi"]);
    // Only the row that ran past the period is changed: the count says so.
    assert_eq!(store.cut_remembered("vpn", Some(300)).await.unwrap(), 1);
    assert_eq!(store.cut_remembered("vpn", Some(300)).await.unwrap(), 0);
    let ends = |user_rows: Vec<RememberedLogin>| -> Vec<(String, i64)> {
        user_rows
            .into_iter()
            .map(|r| {
                (
                    format!("{}/{}", r.nas, r.station),
                    r.expires_at - r.verified_at,
                )
            })
            .collect()
    };
    let all = ends(store.remembered_logins("alice", T).await.unwrap());
    assert_eq!(
        all,
        [
            ("vpn/b".to_string(), 60),
            ("vpn/a".to_string(), 300),
            ("rdg/".to_string(), 3600),
            ("wifi/c".to_string(), 3600),
        ],
        "{all:?}"
    );
    // Raising the period again does not bring the cut row back: nothing here to raise.
    assert_eq!(store.cut_remembered("vpn", Some(3600)).await.unwrap(), 0);
    assert_eq!(
        store
            .remembered_login("alice", "vpn", "a", T + 300)
            .await
            .unwrap(),
        None
    );
    // Turned off: every row of the client goes, another client's stays.
    assert_eq!(store.cut_remembered("wifi", None).await.unwrap(), 1);
    assert_eq!(store.cut_remembered("nowhere", None).await.unwrap(), 0);
    let mut clients = store.remembered_clients().await.unwrap();
    clients.sort();
    assert_eq!(clients, ["rdg", "vpn"]);
}

/// Many nodes handle retransmits of one request at once: exactly one sends.
pub async fn race_begin_oob(store: Arc<dyn Store>) {
    let results = race(store, |s, i| async move {
        s.begin_oob(&oob_txn(
            &format!("id-{i}"),
            "same-request",
            "alice",
            T + 60,
        ))
        .await
        .unwrap()
    })
    .await;
    let created = results.iter().filter(|r| **r == OobBegin::Created).count();
    assert_eq!(created, 1, "{results:?}");
}

/// Callbacks and timeouts racing on one call: exactly one decision sticks.
pub async fn race_resolve_oob(store: Arc<dyn Store>) {
    store
        .begin_oob(&oob_txn("c", "r", "alice", T + 60))
        .await
        .unwrap();
    let results = race(store.clone(), |s, i| async move {
        let status = if i % 2 == 0 {
            OobStatus::Approved
        } else {
            OobStatus::Failed
        };
        s.resolve_oob("c", status, None).await.unwrap()
    })
    .await;
    assert_eq!(results.iter().filter(|r| **r).count(), 1, "{results:?}");
    assert_ne!(
        store.oob("c").await.unwrap().unwrap().status,
        OobStatus::Pending
    );
}

/// Logins remembering a second factor racing a forget of the same user, which stamps a
/// moment no earlier than theirs: whatever the order, no row is left (a row the forget did
/// not see, written back after it, would skip the second factor it was meant to end).
pub async fn race_remember_and_forget(store: Arc<dyn Store>) {
    for round in 0..20 {
        let at = T + 100 * round;
        let login = remembered("vpn", "s", "totp", at, 3600);
        store.remember_login(&login).await.unwrap();
        assert!(store
            .remembered_login("alice", "vpn", "s", at)
            .await
            .unwrap()
            .is_some());
        race(store.clone(), move |s, i| async move {
            if i % 2 == 0 {
                s.remember_login(&remembered("vpn", "s", "totp", at, 3600))
                    .await
                    .unwrap();
            } else {
                s.forget_logins("alice", at).await.unwrap();
            }
        })
        .await;
        assert!(
            store
                .remembered_login("alice", "vpn", "s", at)
                .await
                .unwrap()
                .is_none(),
            "round {round}: a remembered login outlived the forget"
        );
    }
}

/// Concurrent sends for one user: the limit holds exactly.
pub async fn race_take_send_slot(store: Arc<dyn Store>) {
    let results = race(store, |s, i| async move {
        s.take_send_slot(&limits("a", 5, 1000), T, &format!("race-{i}"))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_none()).count(),
        5,
        "{results:?}"
    );
}

/// `user_snapshot` (one query on SQLite) says exactly what the three separate reads say, for
/// a user with tokens (one disabled, one with drift), failures, a lock and a profile; a user
/// with only a profile; and a user the store has never seen.
pub async fn user_snapshot_matches_separate_reads(store: &dyn Store) {
    let a1 = store
        .add_token(totp("A1", Some("alice"), b"seed-a1"))
        .await
        .unwrap();
    store
        .add_token(hotp("A0", Some("alice"), b"seed-a0", 7))
        .await
        .unwrap();
    store
        .add_token(totp("B1", Some("bob"), b"b"))
        .await
        .unwrap();
    store.add_token(totp("U1", None, b"u")).await.unwrap();
    assert!(store
        .consume_totp_step_with_drift(a1, T / 30, 2)
        .await
        .unwrap());
    assert!(store.set_token_enabled("A0", false).await.unwrap());
    store.record_failure("alice", 5, T, 300).await.unwrap();
    store.record_failure("alice", 2, T, 300).await.unwrap();
    store
        .set_phone("alice", Some("+15551230000"))
        .await
        .unwrap();
    store.set_method("alice", Some("sms")).await.unwrap();
    store.block_user("alice", T, "fraud").await.unwrap();
    store
        .set_phone("carol", Some("+15559870000"))
        .await
        .unwrap();

    for user in ["alice", "carol", "nobody"] {
        let snap = store.user_snapshot(user).await.unwrap();
        let filter = TokenFilter {
            user: Some(user.into()),
            ..Default::default()
        };
        let listed = store.list_tokens(&filter).await.unwrap();
        let view = |recs: &[radmfa::store::TokenRecord]| -> Vec<_> {
            recs.iter()
                .map(|r| {
                    (
                        r.token.serial.clone(),
                        r.token.enabled,
                        r.token.last_step,
                        r.token.counter,
                        r.token.secret.expose().to_vec(),
                        r.extra.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(view(&snap.tokens), view(&listed), "{user}: tokens");
        assert_eq!(
            snap.status,
            store.user_status(user).await.unwrap(),
            "{user}"
        );
        assert_eq!(
            snap.profile,
            store.user_profile(user).await.unwrap(),
            "{user}"
        );
    }
    let alice = store.user_snapshot("alice").await.unwrap();
    assert_eq!(alice.tokens.len(), 2);
    assert_eq!(alice.tokens[1].extra.drift, 2);
    assert!(alice.status.locked_until.is_some());
    assert_eq!(alice.profile.method.as_deref(), Some("sms"));
    assert_eq!(alice.profile.blocked_reason.as_deref(), Some("fraud"));
}

// ---------------------------------------------------------------------------------------------
// a request's writes (store::durability::deferred)

/// A login's writes inside one request scope: each answers as it runs, and all are on disk
/// when the scope ends.
pub async fn request_scope_writes_are_durable_at_its_end(store: &dyn Store) {
    let id = store
        .add_token(totp("T1", Some("alice"), b"s"))
        .await
        .unwrap();
    store
        .put_challenge(&challenge(b"s1", "alice", T + 60))
        .await
        .unwrap();
    let step = T / 30;
    let (answers, durable) = durability::deferred(async {
        let used = store.consume_totp_step(id, step).await.unwrap();
        // The request's own next write sees the first one: the step is spent.
        let again = store.consume_totp_step(id, step).await.unwrap();
        let closed = store.consume_challenge(b"s1").await.unwrap();
        let (fails, _) = store.record_failure("bob", 5, T, 60).await.unwrap();
        store
            .append_audit(&audit_record(T, "alice", "accept"))
            .await
            .unwrap();
        (used, again, closed, fails)
    })
    .await;
    durable.expect("the scope's writes commit");
    assert_eq!(answers, (true, false, true, 1));
    // On disk for everyone else now.
    assert!(!store.consume_totp_step(id, step).await.unwrap(), "replay");
    assert_eq!(store.challenge(b"s1", T).await.unwrap(), None);
    assert_eq!(store.user_status("bob").await.unwrap().failures, 1);
    assert_eq!(store.audit(&AuditFilter::default()).await.unwrap().len(), 1);
    // A second scope after the first works the same (a fresh transaction where there is one).
    let (next, durable) =
        durability::deferred(async { store.consume_totp_step(id, step + 1).await.unwrap() }).await;
    durable.unwrap();
    assert!(next);
}

/// A write that fails inside a scope is reported to its caller, and the request's audit
/// record, written after it, still reaches the disk.
pub async fn request_scope_failed_write_keeps_the_audit(store: &dyn Store) {
    store
        .put_challenge(&challenge(b"taken", "alice", T + 60))
        .await
        .unwrap();
    let (failed, _durable) = durability::deferred(async {
        let dup = store
            .put_challenge(&challenge(b"taken", "alice", T + 60))
            .await;
        store
            .append_audit(&audit_record(T, "alice", "reject"))
            .await
            .unwrap();
        dup.is_err()
    })
    .await;
    assert!(failed, "a duplicate State is refused inside a scope too");
    let audit = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].result, "reject");
}

/// The other guarded writes of a login, each racing in requests' scopes, as they run in
/// production (on PostgreSQL a savepoint in the request's transaction, its locks held to
/// the request's commit; the plain races above run them as statements of their own): the
/// send limit, the one transaction per request key, and a prompt's attempts against
/// consumes of its State.
pub async fn race_guarded_writes_in_request_scopes(store: Arc<dyn Store>) {
    let slots = race(store.clone(), |s, i| async move {
        let (taken, durable) = durability::deferred(async {
            s.take_send_slot(&limits("scoped", 5, 1000), T, &format!("scoped-{i}"))
                .await
                .unwrap()
        })
        .await;
        durable.unwrap();
        taken
    })
    .await;
    assert_eq!(slots.iter().filter(|r| r.is_none()).count(), 5, "{slots:?}");

    let begun = race(store.clone(), |s, i| async move {
        let txn = oob_txn(&format!("scoped-{i}"), "scoped-request", "alice", T + 60);
        let (begun, durable) =
            durability::deferred(async { s.begin_oob(&txn).await.unwrap() }).await;
        durable.unwrap();
        begun
    })
    .await;
    let created = begun.iter().filter(|r| **r == OobBegin::Created).count();
    assert_eq!(created, 1, "{begun:?}");

    race_attempts_against_consumes(store, b"s3", 10, true).await;
}

/// Concurrent requests, each in its own scope, racing for one TOTP step: exactly one wins.
pub async fn race_totp_step_in_request_scopes(store: Arc<dyn Store>) {
    let id = store
        .add_token(totp("T1", Some("alice"), b"s"))
        .await
        .unwrap();
    let step = T / 30;
    let results = race(store.clone(), move |s, _| async move {
        let (won, durable) =
            durability::deferred(async { s.consume_totp_step(id, step).await.unwrap() }).await;
        durable.unwrap();
        won
    })
    .await;
    assert_eq!(
        results.iter().filter(|&&won| won).count(),
        1,
        "exactly one of {RACERS} requests wins a step: {results:?}"
    );
}
