//! Unit tests of the SQLite store's own behaviour (file settings, sealing, group commit);
//! the behaviour every store shares is the battery in tests/store_battery.

use super::*;
use crate::secret::Secret;
use crate::store::columns::open_seed;
use crate::store::{OtpAlgorithm, TokenKind};

fn sealer() -> Sealer {
    Sealer::from_key([42; 32])
}

fn totp(serial: &str, user: &str) -> NewToken {
    NewToken {
        serial: serial.into(),
        user: Some(user.into()),
        kind: TokenKind::Totp,
        algorithm: OtpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        counter: 0,
        secret: Secret::new(b"12345678901234567890".to_vec()),
    }
}

#[tokio::test]
async fn file_database_uses_wal_full_sync_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    let mut conn = store.pool.acquire().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(sync, 2, "synchronous must be FULL");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(busy >= 1000, "busy_timeout {busy}");
}

#[cfg(unix)]
#[tokio::test]
async fn new_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    store.add_token(totp("T1", "alice")).await.unwrap();
    for p in [path.clone(), dir.path().join("radmfa.db-wal")] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", p.display());
    }
}

/// Going back to the previous package after an upgrade: the file was migrated by a newer
/// release, and this one must still open it (sqlx refuses by default).
#[tokio::test]
async fn an_older_release_opens_a_file_a_newer_one_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    let key = sealer();
    let store = SqliteStore::open(&path, key.clone()).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'future', 1, x'00', 0)",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    sqlx::query("ALTER TABLE tokens ADD COLUMN from_the_future TEXT")
        .execute(&store.pool)
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let store = SqliteStore::open(&path, key)
        .await
        .expect("this release opens the newer file");
    store.add_token(totp("T1", "alice")).await.unwrap();
}

/// A database as a release with the first `n` migrations left it (the files copied from
/// migrations/sqlite, so their checksums are this release's), with `key` recorded (from
/// schema version 8, which brought the record) and one token sealed with it.
async fn older_database(path: &Path, n: usize, key: &Sealer) {
    let files = tempfile::tempdir().unwrap();
    let mut names: Vec<std::path::PathBuf> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    names.sort();
    for f in &names[..n] {
        std::fs::copy(f, files.path().join(f.file_name().unwrap())).unwrap();
    }
    let older = sqlx::migrate::Migrator::new(files.path()).await.unwrap();
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool: SqlitePool = crate::store::pool_options::without_reaper()
        .connect_with(options)
        .await
        .unwrap();
    older.run(&pool).await.unwrap();
    if n >= 8 {
        sqlx::query("INSERT INTO key_check (id, sealed, created_at) VALUES (1, ?, 0)")
            .bind(crate::store::seal::seal_key_check(key))
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO tokens (serial, user, kind, algorithm, digits, period, secret, \
         created_at) VALUES ('T1', 'alice', 'totp', 'SHA1', 6, 30, ?, 0)",
    )
    .bind(key.seal(b"12345678901234567890", b"T1"))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// A store from before the key record (schema 7) is checked against its seeds instead,
/// without being changed: by a look (`config check`) and before the start migrates it.
#[tokio::test]
async fn a_wrong_key_is_found_on_a_store_from_before_the_key_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    older_database(&path, 7, &sealer()).await;
    let wrong = Sealer::from_key([7; 32]);
    assert!(SqliteStore::key_matches(&path, &sealer()).await.unwrap());
    assert!(!SqliteStore::key_matches(&path, &wrong).await.unwrap());
    assert!(SqliteStore::open(&path, wrong).await.is_err());
    assert_eq!(
        SqliteStore::schema_behind(&path)
            .await
            .unwrap()
            .map(|b| b.0),
        Some(7),
        "not migrated"
    );
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    store.close().await;
    assert_eq!(SqliteStore::schema_behind(&path).await.unwrap(), None);
}

/// An older release's database is told apart without being changed (`config check`), and a
/// wrong key file is refused before it is migrated: the upgrade is left to the right key,
/// and the older release can still run on it.
#[tokio::test]
async fn an_older_database_is_not_migrated_by_a_look_or_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    older_database(&path, 10, &sealer()).await;
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap();
    assert!(known > 10);
    assert_eq!(
        SqliteStore::schema_behind(&path).await.unwrap(),
        Some((10, known))
    );
    let err = match SqliteStore::open(&path, Sealer::from_key([7; 32])).await {
        Ok(_) => panic!("a wrong key is refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("is not the key"), "{err}");
    assert_eq!(
        SqliteStore::schema_behind(&path).await.unwrap(),
        Some((10, known)),
        "not migrated"
    );
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    store.close().await;
    assert_eq!(SqliteStore::schema_behind(&path).await.unwrap(), None);
    // No database there: an error, and none made.
    let none = dir.path().join("none.db");
    assert!(SqliteStore::schema_behind(&none).await.is_err());
    assert!(!none.exists());
}

#[tokio::test]
async fn reopen_keeps_data_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    store.add_token(totp("T1", "alice")).await.unwrap();
    store.close().await;
    drop(store);
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    let t = store.token_by_serial("T1").await.unwrap().unwrap();
    assert_eq!(t.secret.expose(), b"12345678901234567890");
}

#[tokio::test]
async fn close_leaves_only_the_database_file_and_refuses_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    store.add_token(totp("T1", "alice")).await.unwrap();
    // A login-path read, so the reader pool holds a connection too.
    store.user_snapshot("alice").await.unwrap();
    let wal = dir.path().join("radmfa.db-wal");
    assert!(wal.exists(), "no WAL while the store is open");
    store.close().await;
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["radmfa.db"], "files left after close");
    // The login path's writes go through the writer thread, which has stopped.
    let err = store
        .append_audit(&AuditRecord::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("writer has stopped"), "{err}");
    // What was written before the close is there.
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    assert!(store.token_by_serial("T1").await.unwrap().is_some());
}

#[tokio::test]
async fn wrong_key_is_a_decrypt_error_naming_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    store.add_token(totp("T1", "alice")).await.unwrap();
    store.close().await;
    // The key check lets nothing through with another key …
    let err = SqliteStore::open(&path, Sealer::from_key([7; 32]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Decrypt(ref m) if m.contains("is not the key")),
        "{err}"
    );
    // … and behind it, a seed that does not open is still an error naming the token.
    let err = open_seed(
        &Sealer::from_key([7; 32]),
        "T1",
        &sealed_seed(&path, "T1").await,
    )
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Decrypt(ref m) if m.contains("T1")),
        "{err}"
    );
}

/// The sealed seed of `serial`, read straight from the database file.
async fn sealed_seed(path: &std::path::Path, serial: &str) -> Vec<u8> {
    let pool: sqlx::SqlitePool = crate::store::pool_options::without_reaper()
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
        .await
        .unwrap();
    let sealed = sqlx::query_scalar("SELECT secret FROM tokens WHERE serial = ?")
        .bind(serial)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    sealed
}

/// A database made before the key check (no `key_check` row) gets its row only from a key
/// that opens the seeds already in it; a wrong key neither starts nor records itself.
#[tokio::test]
async fn a_database_from_before_the_key_check_records_only_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.db");
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    store.add_token(totp("T1", "alice")).await.unwrap();
    store.add_token(totp("T2", "bob")).await.unwrap();
    let rows = |store: &SqliteStore| {
        let pool = store.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM key_check")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(rows(&store).await, 1);
    sqlx::query("DELETE FROM key_check")
        .execute(&store.pool)
        .await
        .unwrap();
    // One damaged seed does not stop the start when another opens.
    sqlx::query("UPDATE tokens SET secret = x'00' WHERE serial = 'T1'")
        .execute(&store.pool)
        .await
        .unwrap();
    store.close().await;

    let err = SqliteStore::open(&path, Sealer::from_key([7; 32]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Decrypt(_)), "{err}");
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    assert_eq!(rows(&store).await, 1, "the right key is recorded");
    store.close().await;
    // Now the row alone decides, whatever the tokens hold.
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    sqlx::query("DELETE FROM tokens")
        .execute(&store.pool)
        .await
        .unwrap();
    store.close().await;
    assert!(SqliteStore::open(&path, Sealer::from_key([7; 32]))
        .await
        .is_err());
}

#[tokio::test]
async fn swapped_ciphertexts_fail_to_open() {
    let store = SqliteStore::open_in_memory(sealer()).await.unwrap();
    store.add_token(totp("T1", "alice")).await.unwrap();
    store.add_token(totp("T2", "bob")).await.unwrap();
    // Someone with write access to the database moves alice's sealed seed onto bob's row.
    sqlx::query("UPDATE tokens SET secret = (SELECT secret FROM tokens WHERE serial = 'T1') WHERE serial = 'T2'")
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(store.token_by_serial("T1").await.is_ok());
    assert!(matches!(
        store.token_by_serial("T2").await,
        Err(StoreError::Decrypt(_))
    ));
}

#[tokio::test]
async fn seed_column_holds_only_sealed_bytes() {
    let store = SqliteStore::open_in_memory(sealer()).await.unwrap();
    store.add_token(totp("T1", "alice")).await.unwrap();
    let blob: Vec<u8> = sqlx::query_scalar("SELECT secret FROM tokens WHERE serial = 'T1'")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(blob[0], 1, "version byte");
    assert_eq!(blob.len(), 1 + 24 + 20 + 16);
    assert!(!blob.windows(20).any(|w| w == b"12345678901234567890"));
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_fail_alone() {
    // 200 challenges written at once, every fourth one a duplicate State: the duplicates
    // fail with Conflict, every other write lands, and the writes took fewer commits than
    // there were writes (group commit), without one failure spoiling its batch.
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(
        SqliteStore::open(&dir.path().join("g.db"), sealer())
            .await
            .unwrap(),
    );
    let ch = |i: usize| PendingChallenge {
        state_hash: vec![(i % 150) as u8],
        user: format!("u{i}"),
        nas: "nas".into(),
        created_at: 1,
        expires_at: i64::MAX,
        attempts: 0,
        context: String::new(),
    };
    let (_, before) = store.writer.counts();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        let c = ch(i);
        tasks.push(tokio::spawn(async move { store.put_challenge(&c).await }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!((ok, conflicts), (150, 50));
    for i in 0..150 {
        let got = store.challenge(&ch(i).state_hash, 2).await.unwrap();
        assert!(got.is_some(), "challenge {i} missing");
    }
    let commits = store.writer.counts().1 - before;
    assert!(
        commits < 200,
        "{commits} commits for 200 writes: no group commit"
    );
}

#[tokio::test]
async fn concurrent_audit_appends_get_their_own_ids() {
    // Audit records written at once share a batch (one transaction); each caller must
    // still get the id of its own row, and the rows must not be mixed up.
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(
        SqliteStore::open(&dir.path().join("a.db"), sealer())
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let rec = AuditRecord {
                time: 1000 + i,
                user: format!("u{i}"),
                mode: "totp".into(),
                result: "accept".into(),
                server_name: "n".into(),
                ..Default::default()
            };
            (i, store.append_audit(&rec).await.unwrap())
        }));
    }
    let mut ids = std::collections::HashMap::new();
    for t in tasks {
        let (i, id) = t.await.unwrap();
        ids.insert(id, i);
    }
    assert_eq!(ids.len(), 300, "ids are distinct");
    let all = store
        .audit(&AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 300);
    for rec in all {
        let i = ids[&rec.id];
        assert_eq!(
            rec.user,
            format!("u{i}"),
            "id {} names another record",
            rec.id
        );
        assert_eq!(rec.time, 1000 + i);
    }
    let (writes, commits) = store.writer.counts();
    assert!(commits < writes, "{writes} writes in {commits} commits");
}

#[tokio::test]
async fn a_panicking_write_fails_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("p.db"), sealer())
        .await
        .unwrap();
    let boom = store
        .writer
        .write(|_c| -> Result<(), StoreError> { panic!("a bug in a write") })
        .await;
    assert!(boom.is_err(), "a panicking write must not report success");
    // The writer thread survived: later writes commit.
    let id = store.add_token(totp("S1", "alice")).await.unwrap();
    assert!(store.consume_totp_step(id, 5).await.unwrap());
    assert!(!store.consume_totp_step(id, 5).await.unwrap());
}

#[tokio::test]
async fn hotp_counter_never_moves_backwards() {
    let store = SqliteStore::open_in_memory(sealer()).await.unwrap();
    let mut t = totp("H1", "alice");
    t.kind = TokenKind::Hotp;
    t.counter = 5;
    let id = store.add_token(t).await.unwrap();
    let not_moved = CounterUse::Moved { counter: 5 };
    assert_eq!(
        store.advance_hotp_counter(id, 5, 5, None).await.unwrap(),
        not_moved
    );
    assert_eq!(
        store.advance_hotp_counter(id, 5, 4, None).await.unwrap(),
        not_moved
    );
    assert_eq!(
        store.advance_hotp_counter(id, 5, 6, None).await.unwrap(),
        CounterUse::Taken
    );
    // Beyond i64 is refused, never wrapped.
    assert!(store
        .advance_hotp_counter(id, 6, u64::MAX, None)
        .await
        .is_err());
    let mut big = totp("H2", "alice");
    big.counter = u64::MAX;
    assert!(store.add_token(big).await.is_err());
}

#[tokio::test]
async fn record_failure_threshold_zero_never_locks() {
    let store = SqliteStore::open_in_memory(sealer()).await.unwrap();
    for i in 1..=5 {
        assert_eq!(
            store.record_failure("alice", 0, 1000, 60).await.unwrap(),
            (i, None)
        );
    }
}

#[tokio::test]
async fn deferred_writes_answer_early_and_settle_at_the_end() {
    // Inside a request's scope a write is answered once it has run; the next write already
    // sees it (a used step stays used), and the scope ends only when both are committed:
    // a read-only connection sees the step then.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("d.db"), sealer())
        .await
        .unwrap();
    let id = store.add_token(totp("T1", "alice")).await.unwrap();
    let (answers, durable) = crate::store::durability::deferred(async {
        let first = store.consume_totp_step(id, 100).await.unwrap();
        let again = store.consume_totp_step(id, 100).await.unwrap();
        (first, again)
    })
    .await;
    assert_eq!(answers, (true, false));
    durable.unwrap();
    let tokens = store.tokens_for_user("alice").await.unwrap();
    assert_eq!(tokens[0].last_step, Some(100));
}

#[tokio::test]
async fn a_write_that_never_commits_fails_its_scope() {
    // A write that dies in the writer (here: panics) is not on disk: the request's scope
    // must report it, so the pipeline answers Reject instead of Accept.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("f.db"), sealer())
        .await
        .unwrap();
    let (res, durable) = crate::store::durability::deferred(async {
        store
            .writer
            .write(|_| -> Result<(), StoreError> { panic!("a bug in a write") })
            .await
    })
    .await;
    assert!(res.is_err());
    assert!(durable.is_err(), "a lost write must fail the scope");
    // Outside a scope nothing is deferred, and there is nothing to settle.
    crate::store::durability::settle().await.unwrap();
}

fn wal_bytes(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test]
async fn enrollments_commit_in_a_step_so_the_wal_is_checkpointed() {
    // `INSERT … RETURNING` through sqlx's fetch_one committed in a reset: SQLite's
    // auto-checkpoint (which runs when a step returns SQLITE_DONE) never ran, and the WAL grew
    // by ~16 KiB per enrollment, without bound. 500 tokens and 500 app passwords came to
    // ~14 MB of WAL that way; checkpointed every 1,000 pages it stays near 4 MiB.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    for i in 0..500 {
        let user = format!("user{i}");
        store
            .add_token(totp(&format!("T{i}"), &user))
            .await
            .unwrap();
        store
            .add_app_password(
                &user,
                Some("vpn"),
                "$argon2id$v=19$m=4096,t=1,p=1$x$y",
                0,
                (None, None),
            )
            .await
            .unwrap();
    }
    let wal = wal_bytes(&path);
    assert!(wal < 6 << 20, "WAL {wal} bytes: never checkpointed");
    let db = std::fs::metadata(&path).unwrap().len();
    assert!(
        db > 100 << 10,
        "database file {db} bytes: nothing checkpointed into it"
    );
}

#[tokio::test]
async fn a_big_transaction_does_not_leave_a_big_wal_behind() {
    // A transaction bigger than WAL_SIZE_LIMIT (a large import) needs a WAL that big; once
    // SQLite starts the WAL over, journal_size_limit cuts the file back instead of keeping
    // it at its largest for good.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.db");
    let store = SqliteStore::open(&path, sealer()).await.unwrap();
    let big = i64::try_from(WAL_SIZE_LIMIT + (4 << 20)).unwrap();
    let mut tx = store.pool.begin().await.unwrap();
    sqlx::query("CREATE TABLE scratch (b BLOB)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO scratch VALUES (zeroblob(?1))")
        .bind(big)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let peak = wal_bytes(&path);
    assert!(
        peak > WAL_SIZE_LIMIT,
        "the big transaction's WAL was only {peak} bytes"
    );
    // Later writes (the login path's writer, an enrollment) start the WAL over once it is
    // checkpointed.
    for i in 0..3 {
        store
            .add_token(totp(&format!("T{i}"), &format!("u{i}")))
            .await
            .unwrap();
        store
            .writer
            .write(|c| c.execute("DELETE FROM challenges", []).map_err(sqlite_err))
            .await
            .unwrap();
    }
    let after = wal_bytes(&path);
    assert!(
        after <= WAL_SIZE_LIMIT,
        "WAL still {after} bytes after a restart"
    );
}

/// The previous release keeps running on a migrated store (rolling upgrades, rollbacks; see
/// `MIGRATOR`), so no migration of either store may drop or rename anything, and a column
/// added to an existing table is nullable or has a default. The one exception is SQLite's
/// way of changing what `ALTER TABLE` cannot (AUTOINCREMENT, in 0011): a table rebuilt as
/// `T_new`, filled from `T`, then `T` dropped and `T_new` renamed to `T`, which leaves the
/// name and the columns the previous release uses.
#[test]
fn every_migration_only_adds() {
    for dialect in ["sqlite", "postgres"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dialect);
        let mut read = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            read += 1;
            let sql: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
                .to_lowercase();
            // A rebuild's drop and rename, once each per table, taken out before the check.
            let mut sql = sql;
            for stmt in sql.clone().split(';') {
                let stmt = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
                let Some(table) = stmt.strip_prefix("drop table ") else {
                    continue;
                };
                let rename = format!("alter table {table}_new rename to {table}");
                let create = format!("create table {table}_new (");
                let copy = format!("insert into {table}_new");
                let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(
                    flat.contains(&create) && flat.contains(&copy) && flat.contains(&rename),
                    "{}: {stmt:?} is not part of a rebuild of {table}",
                    path.display()
                );
                sql = flat.replace(&stmt, "").replace(&rename, "");
            }
            for word in ["drop ", "rename ", "alter column"] {
                assert!(!sql.contains(word), "{}: {word:?}", path.display());
            }
            for stmt in sql.split(';').filter(|s| s.contains("add column")) {
                assert!(
                    !stmt.contains("not null") || stmt.contains("default"),
                    "{}: a NOT NULL column without a default: {stmt}",
                    path.display()
                );
            }
        }
        assert!(read >= 8, "{read} migrations read from {}", dir.display());
    }
}

#[test]
fn every_migration_is_pinned() {
    crate::store::assert_migrations_pinned("sqlite", &MIGRATOR);
}
