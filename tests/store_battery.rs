//! The store behaviour battery (tests/store_battery/battery.rs) run against every backend:
//! `sqlite::CHECK` on a temporary database file, `postgres::CHECK` on a fresh database of a
//! private PostgreSQL cluster (tests/common/postgres.rs). Then backend-specific checks: no
//! plaintext seed on disk (SQLite), several nodes on one database (tests/store_battery/pg.rs).

#[path = "store_battery/battery.rs"]
mod battery;
#[path = "common/frozen.rs"]
#[allow(dead_code)] // signal: this binary stops processes by kill(2) itself
mod frozen;
#[path = "common/postgres.rs"]
mod pg_cluster;
// What pg_cluster reaches as `super::ports`, as in tests/common.
#[path = "store_battery/pg.rs"]
mod pg_specific;
#[path = "common/ports.rs"]
mod ports;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use radmfa::secret::Secret;
use radmfa::store::postgres::PgSettings;
use radmfa::store::{NewToken, OtpAlgorithm, PgStore, Sealer, SqliteStore, Store, TokenKind};
use tempfile::TempDir;

fn test_sealer() -> Sealer {
    Sealer::from_key(rand::random())
}

/// A fresh store on a database file in its own temporary directory (kept alive by the
/// returned `TempDir`).
async fn sqlite_store() -> (TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("radmfa.db"), test_sealer())
        .await
        .unwrap();
    (dir, Arc::new(store))
}

/// A fresh, empty database of the shared private cluster (kept alive by the returned Arc).
async fn pg_store() -> (Arc<pg_cluster::PgCluster>, Arc<PgStore>) {
    let cluster = pg_cluster::PgCluster::shared();
    let url = cluster.fresh_database();
    let store = PgStore::open(&patient(url), test_sealer()).await.unwrap();
    (cluster, Arc::new(store))
}

/// Settings for a store whose answers are checked, not its speed: RACERS (20) calls at once
/// against a pool of 16 wait for its connections to open, and on a loaded machine the
/// default 1 s wait ran out (PoolTimedOut in race_consume_challenge and in pg.rs's
/// two-node races).
fn patient(url: String) -> PgSettings {
    let mut settings = PgSettings::new(url);
    settings.connect_timeout = Duration::from_secs(10);
    settings
}

/// One #[tokio::test] per battery check and backend. `plain` checks take `&dyn Store`,
/// `racing` ones `Arc<dyn Store>`; all run on a multi-threaded runtime so racers really run in
/// parallel. A check added to the list below runs on every backend.
macro_rules! store_battery {
    (plain: [$($plain:ident),* $(,)?], racing: [$($racing:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $plain() {
                    let (_dir, store) = sqlite_store().await;
                    battery::$plain(&*store).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
                async fn $racing() {
                    let (_dir, store) = sqlite_store().await;
                    battery::$racing(store).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $plain() {
                    let (_cluster, store) = pg_store().await;
                    battery::$plain(&*store).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
                async fn $racing() {
                    let (_cluster, store) = pg_store().await;
                    battery::$racing(store).await;
                }
            )*
        }
    };
}

store_battery! {
    plain: [
        tokens_add_list_by_serial,
        duplicate_serial_is_conflict,
        first_token_only_where_no_name_holds_one,
        seed_round_trips,
        delete_user_tokens_counts,
        token_ids_are_not_reused,
        app_password_ids_are_not_reused,
        totp_step_consumed_once,
        hotp_compare_and_set,
        user_status_and_list_users,
        lockout_threshold_lock_time_and_unlock,
        expired_lock_unlock_reports_false,
        clear_failures_resets_count,
        a_failure_while_locked_counts_nothing,
        challenge_put_get_and_expiry,
        challenge_consumed_once,
        open_challenge_by_user_and_client,
        take_attempt_closes_at_max,
        purge_expired_challenges,
        close_challenges_of_one_user,
        close_challenges_of_one_client,
        audit_append_and_round_trip,
        audit_records_with_a_nul_are_kept,
        audit_filters_order_and_limit,
        audit_client_ip_finds_every_form_of_the_address,
        audit_after_id_reads_newer_records_oldest_first,
        audit_default_limit_is_100,
        purge_audit_deletes_the_oldest_in_batches,
        audit_counts_per_group_and_result,
        delete_user_removes_everything_of_that_user,
        profile_phone_method_round_trip,
        block_and_unblock,
        bypass_is_taken_once_before_it_expires,
        app_passwords_add_list_delete,
        send_slots_limit_and_window,
        send_slot_given_back_by_its_id,
        forgotten_sends_still_count_for_the_nas,
        a_numbers_sends_are_told_by_user_and_forgotten,
        oob_begin_get_resolve,
        cancel_oob_of_one_user,
        purge_delivery_state,
        delete_user_removes_delivery_state,
        remembered_logins_per_client_and_station,
        remembered_logins_are_purged_and_forgotten,
        remembered_logins_are_cut_to_a_client_period,
        inventory_import_list_assign_enable_delete,
        import_is_all_or_nothing,
        import_refused_when_the_inventory_changed_since_its_checks,
        import_of_thousands_of_owned_tokens,
        import_replace_keeps_owner_and_what_was_learned,
        import_replace_keeps_the_counter_across_a_kind_change,
        import_replace_rescales_steps_to_a_new_period,
        totp_drift_is_stored_with_the_step,
        totp_step_is_used_only_from_the_step_seen,
        totp_step_moves_back_only_from_the_step_seen,
        hotp_resync_pending_round_trips,
        user_snapshot_matches_separate_reads,
        request_scope_writes_are_durable_at_its_end,
        request_scope_failed_write_keeps_the_audit,
    ],
    racing: [
        race_totp_step,
        import_turns_one_at_a_time,
        race_add_first_token,
        race_hotp_counter,
        race_record_failure,
        race_consume_challenge,
        race_take_bypass,
        race_take_attempt,
        race_take_attempt_against_consume,
        race_remember_and_forget,
        race_begin_oob,
        race_resolve_oob,
        race_take_send_slot,
        race_import_same_serial,
        race_totp_step_in_request_scopes,
        race_guarded_writes_in_request_scopes,
    ],
}

/// Every check in battery.rs is in the list above (so it runs on both backends) and in
/// `run_all`: `cancel_oob_of_one_user` was in `run_all` alone, so PostgreSQL's cancel of a
/// user's calls (fraud reports, phone changes, resets) went untested.
#[test]
fn every_battery_check_runs_on_every_backend() {
    let battery = include_str!("store_battery/battery.rs");
    let this = include_str!("store_battery.rs");
    let listed = this
        .split_once("store_battery! {\n")
        .and_then(|(_, rest)| rest.split_once("\n}\n"))
        .expect("the store_battery! invocation")
        .0;
    let run_all = battery
        .split_once("pub async fn run_all")
        .and_then(|(_, rest)| rest.split_once("\n}\n"))
        .expect("run_all")
        .0;
    let named = |text: &str, name: &str| {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == name)
    };
    let checks: Vec<&str> = battery
        .lines()
        .filter_map(|l| l.strip_prefix("pub async fn "))
        .filter_map(|l| l.split(['(', '<']).next())
        .filter(|name| *name != "run_all")
        .collect();
    assert!(checks.len() > 40, "{checks:?}");
    for name in checks {
        assert!(named(listed, name), "{name} is not in store_battery!");
        assert!(named(run_all, name), "{name} is not in battery::run_all");
    }
}

/// The whole battery once more on the in-memory store (single connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_battery_on_in_memory_store() {
    battery::run_all(|| async {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open_in_memory(test_sealer()).await.unwrap());
        store
    })
    .await;
}

/// Two stores on the same file (as two processes would be) still consume a step once.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_handles_on_one_file_consume_a_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    let sealer = test_sealer();
    let a = Arc::new(SqliteStore::open(&path, sealer.clone()).await.unwrap());
    let b = Arc::new(SqliteStore::open(&path, sealer).await.unwrap());
    let id = a
        .add_token(battery::totp("T1", Some("alice"), b"seed"))
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..battery::RACERS {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        handles.push(tokio::spawn(async move {
            s.consume_totp_step(id, 1000).await.unwrap()
        }));
    }
    let mut wins = 0;
    for h in handles {
        wins += h.await.unwrap() as usize;
    }
    assert_eq!(wins, 1);
}

// ---------------------------------------------------------------------------------------------
// No plaintext seed on disk

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every encoding of `seed` an operator or a bug could plausibly have written.
fn encodings(seed: &[u8]) -> Vec<(String, Vec<u8>)> {
    use data_encoding::{BASE32, BASE32_NOPAD, BASE64, HEXLOWER, HEXUPPER};
    let b32 = BASE32_NOPAD.encode(seed);
    vec![
        ("raw".into(), seed.to_vec()),
        ("hex".into(), HEXLOWER.encode(seed).into_bytes()),
        ("HEX".into(), HEXUPPER.encode(seed).into_bytes()),
        ("base32".into(), BASE32.encode(seed).into_bytes()),
        ("base32 no pad".into(), b32.clone().into_bytes()),
        ("base32 lower".into(), b32.to_lowercase().into_bytes()),
        ("base64".into(), BASE64.encode(seed).into_bytes()),
    ]
}

/// All of the database's files: the .db and its -wal / -shm / -journal companions.
fn database_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("radmfa.db") {
            out.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
    out
}

fn assert_no_seed_on_disk(dir: &Path, seeds: &[&[u8]], marker: &[u8]) {
    let files = database_files(dir);
    assert!(
        files.iter().any(|(n, _)| n == "radmfa.db"),
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    // Control: the scan does see the data (the serial is stored in clear).
    assert!(
        files.iter().any(|(_, bytes)| contains(bytes, marker)),
        "the serial should be visible in the database files"
    );
    for (name, bytes) in &files {
        for seed in seeds {
            for (encoding, needle) in encodings(seed) {
                assert!(
                    !contains(bytes, &needle),
                    "seed ({encoding}) found in {name}"
                );
            }
        }
    }
}

#[tokio::test]
async fn plaintext_seed_never_reaches_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    let store = SqliteStore::open(&path, test_sealer()).await.unwrap();

    let random_seed: [u8; 20] = rand::random();
    let known_seed: &[u8] = b"radmfa-known-seed-0123456789abcdef!";
    let serial = "SERIAL-PLAINTEXT-CHECK";
    for (s, seed, kind) in [
        (serial, &random_seed[..], TokenKind::Totp),
        ("SERIAL-KNOWN", known_seed, TokenKind::Hotp),
    ] {
        store
            .add_token(NewToken {
                serial: s.into(),
                user: Some("alice".into()),
                kind,
                algorithm: OtpAlgorithm::Sha1,
                digits: 6,
                period: 30,
                counter: 0,
                secret: Secret::new(seed.to_vec()),
            })
            .await
            .unwrap();
    }
    // Exercise the read and update paths too.
    let tokens = store.tokens_for_user("alice").await.unwrap();
    assert_eq!(tokens.len(), 2);
    let t = store.token_by_serial(serial).await.unwrap().unwrap();
    assert_eq!(t.secret.expose(), &random_seed[..]);
    assert!(store.consume_totp_step(t.id, 1).await.unwrap());

    // While open: the data sits in the WAL.
    assert_no_seed_on_disk(dir.path(), &[&random_seed, known_seed], serial.as_bytes());

    // After closing: the WAL has been checkpointed into the main file.
    store.close().await;
    drop(store);
    assert_no_seed_on_disk(dir.path(), &[&random_seed, known_seed], serial.as_bytes());

    // And another key opens nothing: the database refuses it at once.
    let err = SqliteStore::open(&path, test_sealer())
        .await
        .expect_err("another key cannot open the store");
    assert!(err.to_string().contains("is not the key"), "{err}");
}

/// A seed that no longer opens under the right key (a damaged row: `corrupt` appends a byte
/// to the ciphertext of `T-BAD`): the admin reads report it in the record instead of failing
/// on it, a login's read of its holder still fails (a store error, never an empty seed that
/// verifies), other users are unaffected, and it can be deleted.
async fn a_seed_that_does_not_open_is_reported_not_fatal(
    store: &dyn Store,
    corrupt: impl Fn(&str),
) {
    let bad_seed: [u8; 20] = rand::random();
    store
        .add_token(battery::hotp("T-BAD", Some("alice"), &bad_seed, 40))
        .await
        .unwrap();
    for (serial, user) in [("T-GOOD", "alice"), ("T-BOB", "bob")] {
        store
            .add_token(battery::totp(
                serial,
                Some(user),
                &rand::random::<[u8; 20]>(),
            ))
            .await
            .unwrap();
    }
    corrupt("T-BAD");
    let all = store
        .list_tokens(&radmfa::store::TokenFilter::default())
        .await
        .unwrap();
    let broken: Vec<&str> = all
        .iter()
        .filter(|r| r.extra.unreadable_seed.is_some())
        .map(|r| r.token.serial.as_str())
        .collect();
    assert_eq!((all.len(), broken), (3, vec!["T-BAD"]));
    let bad = store.token_record("T-BAD").await.unwrap().unwrap();
    assert!(bad.token.secret.is_empty(), "no seed is made up");
    assert!(
        bad.extra
            .unreadable_seed
            .as_deref()
            .unwrap()
            .contains("T-BAD"),
        "{:?}",
        bad.extra
    );
    let good = store.token_record("T-GOOD").await.unwrap().unwrap();
    assert_eq!(
        (good.extra.unreadable_seed, good.token.secret.len()),
        (None, 20)
    );
    assert!(matches!(
        store.user_snapshot("alice").await,
        Err(radmfa::store::StoreError::Decrypt(_))
    ));
    assert!(store.tokens_for_user("alice").await.is_err());
    assert_eq!(store.user_snapshot("bob").await.unwrap().tokens.len(), 1);

    // The vendor's file again, with --replace: the seed opens again, and the counter, which
    // may be this seed's, does not go back to the file's 0 (used codes would log in again).
    let again = battery::hotp("T-BAD", None, &bad_seed, 0);
    store
        .import_tokens(&[(again, Default::default())], true)
        .await
        .unwrap();
    let fixed = store.token_record("T-BAD").await.unwrap().unwrap();
    assert_eq!(fixed.extra.unreadable_seed, None);
    assert_eq!(fixed.token.secret.expose(), &bad_seed[..]);
    assert_eq!(
        (fixed.token.counter, fixed.token.user.as_deref()),
        (40, Some("alice"))
    );
    assert_eq!(store.user_snapshot("alice").await.unwrap().tokens.len(), 2);

    corrupt("T-BAD");
    assert!(store.delete_token("T-BAD").await.unwrap());
    assert_eq!(store.user_snapshot("alice").await.unwrap().tokens.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_seed_that_does_not_open_is_reported_not_fatal() {
    let (dir, store) = sqlite_store().await;
    let path = dir.path().join("radmfa.db");
    a_seed_that_does_not_open_is_reported_not_fatal(&*store, |serial| {
        let db = rusqlite::Connection::open(&path).unwrap();
        let mut sealed: Vec<u8> = db
            .query_row(
                "SELECT secret FROM tokens WHERE serial = ?1",
                [serial],
                |r| r.get(0),
            )
            .unwrap();
        sealed.push(0);
        db.execute(
            "UPDATE tokens SET secret = ?1 WHERE serial = ?2",
            rusqlite::params![sealed, serial],
        )
        .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_seed_that_does_not_open_is_reported_not_fatal() {
    let cluster = pg_cluster::PgCluster::shared();
    let url = cluster.fresh_database();
    let store = PgStore::open(&PgSettings::new(url.clone()), test_sealer())
        .await
        .unwrap();
    let db = pg_cluster::PgCluster::database_of(&url);
    a_seed_that_does_not_open_is_reported_not_fatal(&store, |serial| {
        cluster.psql(
            &db,
            &format!(
                "UPDATE tokens SET secret = secret || '\\x00'::bytea WHERE serial = '{serial}'"
            ),
        );
    })
    .await;
}
