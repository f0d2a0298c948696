//! PostgreSQL-specific store checks: what only shows with several nodes (separate pools) on
//! one database, the shared key, migrations racing at start, and the database going away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use radmfa::store::postgres::PgSettings;
use radmfa::store::{PgStore, Sealer, Store, StoreError};
use tokio::sync::Barrier;

use super::battery::{self, RACERS, T};
use super::pg_cluster::PgCluster;

/// `n` nodes (each its own pool, as separate processes would have) on one fresh database.
async fn nodes(cluster: &PgCluster, n: usize, sealer: &Sealer) -> Vec<Arc<PgStore>> {
    nodes_on(&cluster.fresh_database(), n, sealer).await
}

/// `n` nodes on the database at `url`.
async fn nodes_on(url: &str, n: usize, sealer: &Sealer) -> Vec<Arc<PgStore>> {
    let settings = super::patient(url.to_string());
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Arc::new(
            PgStore::open(&settings, sealer.clone()).await.unwrap(),
        ));
    }
    out
}

/// Runs `f(node, i)` for RACERS tasks spread over `nodes`, all released at once.
async fn race_over<R, F, Fut>(nodes: &[Arc<PgStore>], f: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(Arc<PgStore>, usize) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut handles = Vec::new();
    for i in 0..RACERS {
        let fut = f(nodes[i % nodes.len()].clone(), i);
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn nodes_starting_together_migrate_once() {
    let cluster = PgCluster::shared();
    let settings = PgSettings::new(cluster.fresh_database());
    let sealer = super::test_sealer();
    // Eight nodes start at the same instant on an empty database. Without the migrator's
    // advisory lock, concurrent CREATE TABLEs fail (duplicate pg_type rows) or run twice.
    let barrier = Arc::new(Barrier::new(8));
    let mut handles = Vec::new();
    for _ in 0..8 {
        let (settings, sealer, barrier) = (settings.clone(), sealer.clone(), barrier.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            PgStore::open(&settings, sealer).await
        }));
    }
    for h in handles {
        h.await.unwrap().expect("every node starts");
    }
    let db = PgCluster::database_of(settings.url.expose_str().unwrap());
    let applied = cluster.psql(
        &db,
        "SELECT COUNT(*), COUNT(DISTINCT version) FROM _sqlx_migrations WHERE success",
    );
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied, format!("{files}|{files}"), "each migration once");
}

/// A rolling upgrade moves the schema on before every node runs the new release: an older
/// node that restarts meanwhile (or an older admin command, or a rollback) must still start
/// on a database a newer release migrated. sqlx refuses by default ("migration 9 was
/// previously applied but is missing in the resolved migrations").
#[tokio::test]
async fn an_older_release_starts_on_a_schema_a_newer_one_migrated() {
    let cluster = PgCluster::shared();
    let url = cluster.fresh_database();
    let settings = PgSettings::new(url.clone());
    let sealer = super::test_sealer();
    let store = PgStore::open(&settings, sealer.clone()).await.unwrap();
    store.close().await;
    let db = PgCluster::database_of(&url);
    // What a future release's migration leaves behind: a new column, and its record.
    cluster.psql(
        &db,
        "ALTER TABLE tokens ADD COLUMN from_the_future TEXT; \
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'future', TRUE, '\\x00', 0)",
    );
    let store = PgStore::open(&settings, sealer)
        .await
        .expect("this release starts on the newer schema");
    store
        .add_token(battery::totp(
            "FUTURE-1",
            Some("carol"),
            b"0123456789abcdefghij",
        ))
        .await
        .expect("and writes to it");
    assert_eq!(PgStore::migrate(&settings).await.unwrap(), 9999);
}

/// A rolling upgrade: the other nodes serve while one migrates. Its `ALTER TABLE` needs the
/// table to itself; behind an open transaction that read the table (a DBA's idle `psql`), it
/// waits, and every later query on the table queues behind it. Without a lock timeout on the
/// migration every login on every node stalls until that session ends; with one the ALTER
/// gives up, lets the queue through, and tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_waiting_for_a_lock_does_not_stall_the_serving_nodes() {
    use sqlx::Connection;
    let cluster = PgCluster::shared();
    let url = cluster.fresh_database();
    let settings = PgSettings::new(url.clone());
    PgStore::open(&settings, super::test_sealer())
        .await
        .unwrap();
    let db = PgCluster::database_of(&url);
    // The database as the previous release left it: the last migration not yet applied.
    let last: i64 = cluster
        .psql(&db, "SELECT MAX(version) FROM _sqlx_migrations")
        .parse()
        .unwrap();
    assert_eq!(
        last, 13,
        "this test undoes migration 13; update it with the next one"
    );
    cluster.psql(
        &db,
        "ALTER TABLE oob_transactions DROP COLUMN client_ip, DROP COLUMN nas_ip, \
         DROP COLUMN nas_identifier; DELETE FROM _sqlx_migrations WHERE version = 13",
    );

    let mut idle = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut idle).await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM oob_transactions")
        .execute(&mut idle)
        .await
        .unwrap();

    let migrating = tokio::spawn({
        let settings = settings.clone();
        async move { PgStore::migrate(&settings).await }
    });
    // Wait until the ALTER is queued for its lock.
    let started = Instant::now();
    while cluster.psql(
        &db,
        "SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND relation = 'oob_transactions'::regclass",
    ) == "0"
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the ALTER never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A serving node's read of the table, issued behind the queued ALTER.
    let mut serving = sqlx::PgConnection::connect(&url).await.unwrap();
    let read = tokio::time::timeout(
        radmfa::store::postgres::MIGRATION_LOCK_TIMEOUT + Duration::from_secs(8),
        sqlx::query("SELECT COUNT(*) FROM oob_transactions").execute(&mut serving),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(_))),
        "a serving node's query stalled behind the migration's lock wait: {read:?}"
    );
    assert!(!migrating.is_finished(), "the migration cannot finish yet");

    sqlx::query("COMMIT").execute(&mut idle).await.unwrap();
    let version = tokio::time::timeout(Duration::from_secs(30), migrating)
        .await
        .expect("the migration finishes once the lock is free")
        .unwrap()
        .expect("the migration succeeds on a later try");
    assert_eq!(version, 13);
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT COUNT(*) FROM information_schema.columns \
             WHERE table_name = 'oob_transactions' AND column_name = 'nas_ip'",
        ),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_nodes_consume_steps_states_and_count_failures_once() {
    let cluster = PgCluster::shared();
    consume_and_count_once(&nodes(&cluster, 2, &super::test_sealer()).await).await;
}

/// The same on a database whose DBA made every transaction SERIALIZABLE by default: the
/// store's single-statement guards are written for READ COMMITTED (a loser waits for the
/// winner's row lock, then sees its commit), so it sets that level on its connections.
/// Under the stricter level, racing failure counts fail with "could not serialize access"
/// (a wrong code rejected but never counted) and a racing send limit counts from an old
/// snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn the_store_keeps_read_committed_whatever_the_database_default() {
    let cluster = PgCluster::shared();
    let url = cluster.fresh_database();
    let db = PgCluster::database_of(&url);
    cluster.psql(
        "postgres",
        &format!("ALTER DATABASE {db} SET default_transaction_isolation = 'serializable'"),
    );
    assert_eq!(
        cluster.psql(&db, "SHOW default_transaction_isolation"),
        "serializable"
    );
    consume_and_count_once(&nodes_on(&url, 2, &super::test_sealer()).await).await;
}

/// A fresh database set up by the test's superuser (its tables are the superuser's), and a
/// role `{db}_{suffix}` that may log in with `password` and connect to it, nothing more
/// yet: (the superuser's URL, the database, the role).
async fn store_and_role(
    cluster: &PgCluster,
    sealer: &Sealer,
    suffix: &str,
    password: &str,
) -> (String, String, String) {
    let url = cluster.fresh_database();
    let db = PgCluster::database_of(&url);
    PgStore::open(&PgSettings::new(url.clone()), sealer.clone())
        .await
        .unwrap()
        .close()
        .await;
    let role = format!("{db}_{suffix}");
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        format!("GRANT CONNECT ON DATABASE {db} TO {role}"),
    ] {
        cluster.psql("postgres", &sql);
    }
    (url, db, role)
}

/// A serving role with no right to create anything in the schema (least privilege: the
/// DBA runs `radmfa db migrate` as a more privileged role, then grants reads and writes)
/// opens the store and serves once the schema is current. The migrator's bookkeeping table
/// was created on every start, which that role may not do.
#[tokio::test]
async fn a_role_that_may_only_read_and_write_serves_a_current_schema() {
    let cluster = PgCluster::shared();
    let sealer = super::test_sealer();
    let (url, db, role) = store_and_role(&cluster, &sealer, "dml", "dml-only-pw").await;
    for sql in [
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_string(),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
    ] {
        cluster.psql(&db, &sql);
    }
    let (_, host) = url.split_once('@').unwrap();
    let dml_url = format!("postgres://{role}:dml-only-pw@{host}");
    let store = PgStore::open(&PgSettings::new(dml_url.clone()), sealer)
        .await
        .unwrap_or_else(|e| panic!("a DML-only role: {e}"));
    let id = store
        .add_token(battery::totp("LEAST-1", Some("alice"), b"least privilege"))
        .await
        .unwrap();
    assert!(store.consume_totp_step(id, T / 30).await.unwrap());
    store.close().await;
    // Not vacuous: the role may not create the bookkeeping table itself.
    let created = cluster.psql(
        &db,
        &format!("SELECT has_schema_privilege('{role}', 'public', 'CREATE')"),
    );
    assert_eq!(created, "f");
}

/// A database restored by a superuser with `pg_restore --no-owner` has its tables owned by
/// that superuser, and radmfa's role may use none of them: the open and `config check`'s
/// look at the schema say what the role must be given, not only "permission denied".
#[tokio::test]
async fn a_role_denied_its_tables_is_told_what_to_give_it() {
    let cluster = PgCluster::shared();
    let sealer = super::test_sealer();
    // Set up as the superuser: its tables are the superuser's, as after such a restore.
    let (url, db, role) = store_and_role(&cluster, &sealer, "restored", "restored-pw").await;
    cluster.psql(&db, &format!("GRANT USAGE ON SCHEMA public TO {role}"));
    let (_, host) = url.split_once('@').unwrap();
    let settings = PgSettings::new(format!("postgres://{role}:restored-pw@{host}"));
    let told = |err: String| {
        assert!(
            err.contains("permission denied for")
                && err.contains(&format!("pg_restore --no-owner --role={role}"))
                && err.contains(&format!("OWNER TO {role}")),
            "{err}"
        );
    };
    told(
        PgStore::open(&settings, sealer)
            .await
            .unwrap_err()
            .to_string(),
    );
    told(
        PgStore::schema_behind(&settings)
            .await
            .unwrap_err()
            .to_string(),
    );
}

/// Lists come in SQLite's order (bytewise) whatever the database's collation: a database
/// made with the distribution's default (`en_US.UTF-8`, here ICU's `en`) sorts case and
/// punctuation away, so `token list` and `user list` would read differently after a move to
/// PostgreSQL, and a user's tokens would be tried in another order at login.
#[tokio::test]
async fn lists_are_in_bytewise_order_whatever_the_database_collation() {
    let cluster = PgCluster::shared();
    let db = PgCluster::database_of(&cluster.fresh_database()) + "_icu";
    cluster.psql(
        "postgres",
        &format!(
            "CREATE DATABASE {db} TEMPLATE template0 LOCALE 'C' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en'"
        ),
    );
    // Not vacuous: this database itself sorts the other way.
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT string_agg(s, ',' ORDER BY s) FROM unnest(ARRAY['A-2','A1','C1','b1']) s"
        ),
        "A-2,A1,b1,C1"
    );
    let store = &nodes_on(&cluster.url_for(&db), 1, &super::test_sealer()).await[0];
    let bytewise = ["A-2", "A1", "C1", "b1"];
    for serial in ["b1", "C1", "A1", "A-2"] {
        store
            .add_token(battery::totp(serial, Some("alice"), serial.as_bytes()))
            .await
            .unwrap();
    }
    let listed: Vec<String> = store
        .list_tokens(&radmfa::store::TokenFilter {
            user: Some("alice".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.token.serial)
        .collect();
    assert_eq!(listed, bytewise);
    let snapshot = store.user_snapshot("alice").await.unwrap();
    let tried: Vec<&str> = snapshot
        .tokens
        .iter()
        .map(|r| r.token.serial.as_str())
        .collect();
    assert_eq!(tried, bytewise);
    for user in ["b1", "C1", "A1", "A-2"] {
        store.record_failure(user, 5, T, 300).await.unwrap();
    }
    let users: Vec<String> = store
        .list_users(T)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.status.user)
        .filter(|u| u != "alice")
        .collect();
    assert_eq!(users, bytewise);
}

/// The store's connections commit durably whatever the database's default: the test
/// cluster itself runs with synchronous_commit off (speed), and a DBA may set it off for
/// the database too. A reply waits for its commit; with it off, a used step or State
/// committed before the reply could vanish in a database crash and be accepted again.
#[tokio::test]
async fn the_store_commits_durably_whatever_the_database_default() {
    let cluster = PgCluster::shared();
    let url = cluster.fresh_database();
    let db = PgCluster::database_of(&url);
    cluster.psql(
        "postgres",
        &format!("ALTER DATABASE {db} SET synchronous_commit = 'off'"),
    );
    assert_eq!(cluster.psql(&db, "SHOW synchronous_commit"), "off");
    let store = &nodes_on(&url, 1, &super::test_sealer()).await[0];
    for _ in 0..3 {
        let on: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(on, "on");
    }
}

async fn consume_and_count_once(nodes: &[Arc<PgStore>]) {
    let id = nodes[0]
        .add_token(battery::totp("T1", Some("alice"), b"seed"))
        .await
        .unwrap();
    // The token made on node 0 is readable, seed included, on node 1.
    let t = nodes[1].token_by_serial("T1").await.unwrap().unwrap();
    assert_eq!(t.secret.expose(), b"seed");

    let wins = race_over(nodes, move |s, _| async move {
        s.consume_totp_step(id, T / 30).await.unwrap()
    })
    .await;
    assert_eq!(wins.iter().filter(|&&w| w).count(), 1, "{wins:?}");

    nodes[0]
        .put_challenge(&battery::challenge(b"s1", "alice", T + 60))
        .await
        .unwrap();
    let wins = race_over(nodes, |s, _| async move {
        s.consume_challenge(b"s1").await.unwrap()
    })
    .await;
    assert_eq!(wins.iter().filter(|&&w| w).count(), 1, "{wins:?}");

    // 20 failures over two nodes with threshold 5: none lost before the lock, one lock,
    // and none counted on either node while it is in force.
    let results = race_over(nodes, |s, _| async move {
        s.record_failure("alice", 5, T, 300).await.unwrap()
    })
    .await;
    battery::assert_one_lock_and_nothing_counted_after(&results);
    let st = nodes[1].user_status("alice").await.unwrap();
    assert_eq!((st.failures, st.locked_until), (0, Some(T + 300)));
}

#[tokio::test]
async fn node_with_another_key_refuses_to_start() {
    let cluster = PgCluster::shared();
    let settings = PgSettings::new(cluster.fresh_database());
    PgStore::open(&settings, Sealer::from_key([1; 32]))
        .await
        .unwrap();
    let err = PgStore::open(&settings, Sealer::from_key([2; 32]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Decrypt(ref m) if m.contains("same key file")),
        "{err}"
    );
    // The right key still opens it.
    let store = PgStore::open(&settings, Sealer::from_key([1; 32]))
        .await
        .unwrap();

    // A database with seeds but no recorded key (a partial restore, the row deleted): only
    // a key that opens a seed records itself; another would start with every seed sealed.
    store
        .add_token(battery::totp("K1", Some("alice"), b"0123456789abcdefghij"))
        .await
        .unwrap();
    sqlx::query("DELETE FROM key_check")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    // A node without its key file makes none for it (it would only be a wrong one).
    let no_key = tempfile::tempdir().unwrap();
    let missing = no_key.path().join("radmfa.key");
    let err = PgStore::open_with_key_file(&settings, &missing)
        .await
        .unwrap_err()
        .to_string();
    // After a disaster there may be no node left to copy it from.
    assert!(
        err.contains("copy the key file") && err.contains("or restore it from its backup"),
        "{err}"
    );
    assert!(
        !missing.exists(),
        "a new key file was made for a database with seeds"
    );
    let err = PgStore::open(&settings, Sealer::from_key([3; 32]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Decrypt(ref m) if m.contains("opens none of this database's seeds")),
        "{err}"
    );
    PgStore::open(&settings, Sealer::from_key([1; 32]))
        .await
        .expect("the key that opens the seeds records itself");
    let err = PgStore::open(&settings, Sealer::from_key([3; 32]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Decrypt(ref m) if m.contains("same key file")),
        "{err}"
    );

    // With a key file: a missing file is created only for an unused database.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("radmfa.key");
    let err = PgStore::open_with_key_file(&settings, &key)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("copy the key file"), "{msg}");
    assert!(!key.exists(), "no stray key file left behind");

    let fresh = PgSettings::new(cluster.fresh_database());
    PgStore::open_with_key_file(&fresh, &key).await.unwrap();
    assert!(key.exists());
    // A second node with that file joins; one with another file is refused, naming it.
    PgStore::open_with_key_file(&fresh, &key).await.unwrap();
    let other = dir.path().join("other.key");
    radmfa::store::KeyFile::load_or_create(&other).unwrap();
    let msg = PgStore::open_with_key_file(&fresh, &other)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("other.key") && msg.contains("same key file"),
        "{msg}"
    );
}

#[tokio::test]
async fn database_dump_reveals_no_seed() {
    let cluster = PgCluster::shared();
    let url = cluster.fresh_database();
    let store = PgStore::open(&PgSettings::new(url.clone()), super::test_sealer())
        .await
        .unwrap();
    let seed: [u8; 20] = rand::random();
    let known: &[u8] = b"radmfa-known-seed-0123456789abcdef!";
    store
        .add_token(battery::totp("SERIAL-PG-CHECK", Some("alice"), &seed))
        .await
        .unwrap();
    store
        .add_token(battery::hotp("SERIAL-PG-KNOWN", Some("alice"), known, 0))
        .await
        .unwrap();
    let db = PgCluster::database_of(&url);
    let dump = cluster.pg_dump(&db);
    assert!(
        super::contains(&dump, b"SERIAL-PG-CHECK"),
        "control: the dump holds the serial"
    );
    for s in [&seed[..], known] {
        for (encoding, needle) in super::encodings(s) {
            assert!(
                !super::contains(&dump, &needle),
                "seed ({encoding}) in dump"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_down_fails_within_the_timeout_and_recovers() {
    // Its own cluster: this one is stopped and started.
    let cluster = PgCluster::start();
    let mut settings = PgSettings::new(cluster.url());
    settings.connect_timeout = Duration::from_millis(500);
    let store = PgStore::open(&settings, super::test_sealer())
        .await
        .unwrap();
    let id = store
        .add_token(battery::totp("T1", Some("alice"), b"seed"))
        .await
        .unwrap();
    assert!(store.consume_totp_step(id, 100).await.unwrap());

    cluster.stop();
    for step in 101..104 {
        let started = Instant::now();
        let r = store.consume_totp_step(id, step).await;
        assert!(r.is_err(), "database down must be an error, got {r:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "failed after {:?}",
            started.elapsed()
        );
    }
    assert!(store.user_status("alice").await.is_err());

    cluster.start_again();
    // The pool notices the dead connections by itself; the first call after the restart
    // already succeeds.
    assert!(past_slow_connects(|| store.consume_totp_step(id, 104))
        .await
        .unwrap());
    assert!(!store.consume_totp_step(id, 104).await.unwrap(), "replay");
    assert_eq!(
        store
            .token_by_serial("T1")
            .await
            .unwrap()
            .unwrap()
            .last_step,
        Some(104)
    );

    // Again with several connections resting in the pool across the restart, none of them
    // used while the database was down: each is found dead before use, not by a failed call.
    let reads = || async {
        let s = &store;
        let (a, b, c, d) = tokio::join!(
            s.user_status("alice"),
            s.user_status("alice"),
            s.user_status("alice"),
            s.user_status("alice")
        );
        let mut all = [a, b, c, d];
        for r in &mut all {
            if matches!(r, Err(StoreError::Db(sqlx::Error::PoolTimedOut))) {
                // A new connection slower than 500 ms: read again until one is opened.
                *r = past_slow_connects(|| s.user_status("alice")).await;
            }
        }
        all
    };
    assert!(reads().await.iter().all(Result::is_ok));
    cluster.stop();
    cluster.start_again();
    for r in reads().await {
        r.expect("a connection from before the restart was used unchecked");
    }
}

/// `call` again while it fails for want of a connection the pool could open within this
/// test's 500 ms (a loaded machine's new backend takes longer; PoolTimedOut): what the
/// test looks for, a dead connection used unchecked, fails with another error, at once.
async fn past_slow_connects<T, Fut>(call: impl Fn() -> Fut) -> Result<T, StoreError>
where
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match call().await {
            Err(StoreError::Db(sqlx::Error::PoolTimedOut)) if Instant::now() < until => {}
            r => return r,
        }
    }
}

#[tokio::test]
async fn tls_settings_are_applied() {
    let cluster = PgCluster::start_with_tls();
    let ca = cluster.ca_file.clone().unwrap();
    let tls = |mode: &str, root: Option<std::path::PathBuf>| {
        // Its sslmode=disable is overridden by `ssl_mode` below.
        let mut s = PgSettings::new(cluster.url());
        s.ssl_mode = Some(mode.parse().unwrap());
        s.ssl_root_cert = root;
        s.connect_timeout = Duration::from_millis(500);
        s
    };
    // verify-full with the CA that signed the server's certificate: works, over TLS. Given
    // the time a loaded machine may take for a TLS handshake and a new backend (500 ms ran
    // out: PoolTimedOut); the refusals below come from the handshake, not the timeout.
    let mut right = tls("verify-full", Some(ca));
    right.connect_timeout = Duration::from_secs(10);
    let store = PgStore::open(&right, super::test_sealer())
        .await
        .expect("verify-full with the right CA");
    let on_tls: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(on_tls, "the connection is encrypted");
    // Nothing sent that pgbouncer would refuse and docs/ha.md does not list: sqlx's
    // default `extra_float_digits` is turned off (a unit test checks the listed ones).
    let source: String =
        sqlx::query_scalar("SELECT source FROM pg_settings WHERE name = 'extra_float_digits'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(source, "default", "extra_float_digits left to the server");
    // The same with another CA: refused (no fallback to an unverified connection).
    let other = PgCluster::start_with_tls();
    let err = PgStore::open(
        &tls("verify-full", other.ca_file.clone()),
        super::test_sealer(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // `require` against a server without TLS: refused.
    let plain = PgCluster::start();
    let mut s = tls("require", None);
    s.url = radmfa::secret::Secret::from(plain.url());
    s.ssl_mode = Some("require".parse().unwrap());
    assert!(PgStore::open(&s, super::test_sealer()).await.is_err());
}

/// Two nodes on a fresh database, and alice's TOTP token "T1" (its id) on it. The cluster
/// runs as long as the returned handle lives.
async fn two_nodes_and_a_token() -> (Arc<PgCluster>, Arc<PgStore>, Arc<PgStore>, i64) {
    let cluster = PgCluster::shared();
    let n = nodes(&cluster, 2, &super::test_sealer()).await;
    let id = n[0]
        .add_token(battery::totp("T1", Some("alice"), b"s"))
        .await
        .unwrap();
    (cluster, n[0].clone(), n[1].clone(), id)
}

/// How many audit records `store` sees (up to the default limit).
async fn audit_count(store: &PgStore) -> usize {
    store
        .audit(&radmfa::store::AuditFilter::default())
        .await
        .unwrap()
        .len()
}

/// A request on `store` that makes `writes` and then keeps its transaction open: returns
/// once the writes are made, with the sender that lets the request settle and its handle.
async fn open_request<F, Fut>(
    store: &Arc<PgStore>,
    writes: F,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<((), Result<(), StoreError>)>,
)
where
    F: FnOnce(Arc<PgStore>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (release, hold) = tokio::sync::oneshot::channel::<()>();
    let (written, after_write) = tokio::sync::oneshot::channel::<()>();
    let store = store.clone();
    let request = tokio::spawn(radmfa::store::durability::deferred(async move {
        writes(store).await;
        written.send(()).unwrap();
        hold.await.unwrap();
    }));
    after_write.await.unwrap();
    (release, request)
}

/// Inside a request scope, PostgreSQL keeps the request's writes in one transaction: another
/// node sees none of them until the request writes its audit record (which commits them
/// first, then goes into a shared batch), and a node racing for the same row waits for that
/// commit and then loses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_writes_are_one_transaction_until_settled() {
    let (_cluster, a, b, id) = two_nodes_and_a_token().await;
    let step = T / 30;
    let (go_on, request) = open_request(&a, move |a| async move {
        assert!(a.consume_totp_step(id, step).await.unwrap());
        a.put_challenge(&battery::challenge(b"st", "alice", T + 60))
            .await
            .unwrap();
    })
    .await;
    // Not committed yet: node B sees a fresh token and no challenge.
    assert_eq!(
        b.token_by_serial("T1").await.unwrap().unwrap().last_step,
        None
    );
    assert!(b.challenge(b"st", T).await.unwrap().is_none());
    // Node B's use of the same step blocks on A's row lock...
    let b2 = b.clone();
    let racer = tokio::spawn(async move { b2.consume_totp_step(id, step).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!racer.is_finished(), "B must wait for A's transaction");
    // ...until A's request settles; then B re-checks against the committed row and loses.
    go_on.send(()).unwrap();
    let ((), durable) = request.await.unwrap();
    durable.unwrap();
    assert!(!racer.await.unwrap(), "the step was spent by A's request");
    assert!(b.challenge(b"st", T).await.unwrap().is_some());

    // A request's audit record commits the writes it describes before it is written.
    let a2 = a.clone();
    let (seen_before_settle, durable) = radmfa::store::durability::deferred(async move {
        assert!(a2.consume_totp_step(id, step + 1).await.unwrap());
        a2.append_audit(&battery::audit_record(T, "alice", "accept"))
            .await
            .unwrap();
        b.token_by_serial("T1").await.unwrap().unwrap().last_step
    })
    .await;
    durable.unwrap();
    assert_eq!(seen_before_settle, Some(step + 1));
    assert_eq!(audit_count(&a).await, 1);
}

/// A statement that fails inside a request's transaction aborts it: the request's earlier
/// writes are rolled back (its login is rejected), its later audit record still commits, and
/// the scope reports the loss so that no Accept can go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_statement_rolls_back_the_request_and_fails_its_scope() {
    let (_cluster, store, _, id) = two_nodes_and_a_token().await;
    store
        .put_challenge(&battery::challenge(b"taken", "alice", T + 60))
        .await
        .unwrap();
    let step = T / 30;
    let s = store.clone();
    let (dup, durable) = radmfa::store::durability::deferred(async move {
        assert!(s.consume_totp_step(id, step).await.unwrap());
        let dup = s
            .put_challenge(&battery::challenge(b"taken", "alice", T + 60))
            .await;
        s.append_audit(&battery::audit_record(T, "alice", "reject"))
            .await
            .unwrap();
        dup
    })
    .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let err = durable.expect_err("the scope must report the rolled-back writes");
    assert!(err.to_string().contains("rolled back"), "{err}");
    // The step the rejected request used is usable again; its audit record is there.
    assert!(store.consume_totp_step(id, step).await.unwrap());
    assert_eq!(audit_count(&store).await, 1);
}

/// A write cancelled mid-flight (the request's deadline) leaves the transaction in an
/// unknown state; settling finds out before it commits: the write went through, or it failed
/// and the scope says so (a `COMMIT` of an aborted transaction would quietly roll back).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_write_is_checked_before_commit() {
    let (_cluster, a, b, id) = two_nodes_and_a_token().await;
    let step = T / 30;

    // Node B's open request holds the token's row and a State A is about to insert too.
    let (release, blocker) = open_request(&b, move |b| async move {
        assert!(b.consume_totp_step(id, step).await.unwrap());
        b.put_challenge(&battery::challenge(b"both", "alice", T + 60))
            .await
            .unwrap();
    })
    .await;

    // A's write waits for B's row lock, is cancelled, and runs once B commits: it succeeds
    // (step + 1 is later than B's step), and A's scope commits it.
    let a2 = a.clone();
    let ((), durable) = radmfa::store::durability::deferred(async move {
        let waited = tokio::time::timeout(
            Duration::from_millis(200),
            a2.consume_totp_step(id, step + 1),
        )
        .await;
        assert!(waited.is_err(), "A's write was cancelled while waiting");
        release.send(()).unwrap();
    })
    .await;
    durable.expect("the cancelled write went through after B committed");
    let ((), b_durable) = blocker.await.unwrap();
    b_durable.unwrap();
    assert_eq!(
        a.token_by_serial("T1").await.unwrap().unwrap().last_step,
        Some(step + 1)
    );

    // Again, but this time the cancelled write fails once B commits (B inserted the same
    // State first). A's request then writes its audit record, as the pipeline does after a
    // deadline: it is written all the same (in the shared audit insert), and the scope
    // reports the lost writes.
    let (release, blocker) = open_request(&b, |b| async move {
        b.put_challenge(&battery::challenge(b"again", "alice", T + 60))
            .await
            .unwrap();
    })
    .await;
    let a2 = a.clone();
    let ((), durable) = radmfa::store::durability::deferred(async move {
        assert!(a2.consume_totp_step(id, step + 2).await.unwrap());
        let waited = tokio::time::timeout(
            Duration::from_millis(200),
            a2.put_challenge(&battery::challenge(b"again", "alice", T + 60)),
        )
        .await;
        assert!(waited.is_err(), "A's insert was cancelled while waiting");
        release.send(()).unwrap();
        a2.append_audit(&battery::audit_record(T, "alice", "reject"))
            .await
            .unwrap();
    })
    .await;
    let ((), b_durable) = blocker.await.unwrap();
    b_durable.unwrap();
    let err = durable.expect_err("the cancelled insert failed: A's earlier writes are lost");
    assert!(err.to_string().contains("rolled back"), "{err}");
    assert_eq!(
        a.token_by_serial("T1").await.unwrap().unwrap().last_step,
        Some(step + 1),
        "A's step + 2 went with its aborted transaction"
    );
    assert_eq!(
        audit_count(&a).await,
        1,
        "the audit record survives the aborted transaction"
    );
}

/// A node that stalls mid-request (paused VM, partition) keeps its connection and its
/// transaction's row locks. The database ends a transaction idle longer than any request may
/// run, so the other nodes go on: here node B uses the step node A's stalled request holds,
/// about `max_request` + 1 s later instead of failing at its statement timeout (5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_node_does_not_hold_a_users_rows() {
    let cluster = PgCluster::shared();
    let mut settings = PgSettings::new(cluster.fresh_database());
    let sealer = super::test_sealer();
    let b = Arc::new(PgStore::open(&settings, sealer.clone()).await.unwrap());
    settings.max_request = Duration::from_millis(200);
    let a = Arc::new(PgStore::open(&settings, sealer).await.unwrap());
    let id = a
        .add_token(battery::totp("T1", Some("alice"), b"s"))
        .await
        .unwrap();
    let step = T / 30;
    let (go_on, stalled) = open_request(&a, move |a| async move {
        assert!(a.consume_totp_step(id, step).await.unwrap());
    })
    .await;

    let started = Instant::now();
    let used = b.consume_totp_step(id, step).await;
    let waited = started.elapsed();
    assert!(
        matches!(used, Ok(true)),
        "B gets the step once A's stalled transaction is ended: {used:?} after {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "{waited:?}");

    // A wakes up: its writes are gone, and its scope says so (its login is rejected).
    go_on.send(()).unwrap();
    let ((), durable) = stalled.await.unwrap();
    assert!(durable.is_err(), "A's request must not pass for committed");
}

/// Requests whose only write is their audit record share one INSERT per batch: every
/// record lands once with its own id, each request's scope settles only once its record is
/// committed, and a record PostgreSQL refuses (here a trigger refuses one user's; the
/// store keeps a NUL, which PostgreSQL would refuse, as U+FFFD) fails its own request
/// alone, not the others batched with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_only_requests_are_batched_and_fail_alone() {
    let (_cluster, a, b, _) = two_nodes_and_a_token().await;
    for sql in [
        "CREATE FUNCTION refuse_bad_name() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.username = 'bad name' THEN RAISE EXCEPTION 'refused'; END IF; \
         RETURN NEW; END $$",
        "CREATE TRIGGER refuse_bad_name BEFORE INSERT ON audit \
         FOR EACH ROW EXECUTE FUNCTION refuse_bad_name()",
    ] {
        sqlx::query(sql).execute(a.pool()).await.unwrap();
    }
    let outcomes = race_over(std::slice::from_ref(&a), |node, i| {
        radmfa::store::durability::deferred(async move {
            let user = if i == 7 {
                "bad name".to_string()
            } else {
                format!("u{i}")
            };
            node.append_audit(&battery::audit_record(T, &user, "reject"))
                .await
        })
    })
    .await;
    let mut ids = Vec::new();
    for (i, (written, durable)) in outcomes.into_iter().enumerate() {
        if i == 7 {
            assert!(written.is_err(), "the database refuses this record");
        } else {
            ids.push(written.unwrap_or_else(|e| panic!("record {i}: {e}")));
            durable.unwrap();
        }
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), RACERS - 1, "each record has its own id");
    // Committed: the other node sees every record but the refused one.
    let seen = b
        .audit(&radmfa::store::AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(seen.len(), RACERS - 1);
    assert!(seen.iter().all(|r| ids.contains(&r.id)));
}

/// Backends of a database, stopped (SIGSTOP) until dropped: to their clients they are a
/// server lost without closing its sockets (a failover, a cut link).
/// The server processes of the pool's connections to `db` (at least one).
fn backend_pids(cluster: &PgCluster, db: &str) -> Vec<i32> {
    let pids: Vec<i32> = cluster
        .psql(
            "postgres",
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' \
                 AND pid <> pg_backend_pid()"
            ),
        )
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(!pids.is_empty(), "the pool's connection");
    pids
}

struct Stopped(Vec<i32>);

impl Stopped {
    fn now(pids: &[i32]) -> Stopped {
        // A backend listed while it was exiting (a connection the store's start closed) is
        // gone by now: the ones still there are the pool's.
        let stopped: Vec<i32> = pids
            .iter()
            .copied()
            // SAFETY: kill(2) on a process id; no memory is involved.
            .filter(|&pid| unsafe { libc::kill(pid, libc::SIGSTOP) } == 0)
            .collect();
        assert!(!stopped.is_empty(), "none of {pids:?} could be stopped");
        // Stopped for sure before the test goes on (see frozen::signal).
        for &pid in &stopped {
            super::frozen::wait_stopped(pid as u32);
        }
        Stopped(stopped)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}

/// An audit batch sent on a connection whose server stopped answering fails after the
/// longest request deadline, and the next record is written on a new connection. Before,
/// the batching task waited for that answer until TCP gave up (minutes), and every login's
/// record queued behind it, while new connections to the database worked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_audit_batch_on_a_dead_connection_gives_way() {
    let cluster = PgCluster::shared();
    let url = cluster.fresh_database();
    let db = PgCluster::database_of(&url);
    let mut settings = PgSettings::new(url);
    settings.pool_size = 1;
    settings.max_request = Duration::from_millis(800);
    let store = Arc::new(
        PgStore::open(&settings, super::test_sealer())
            .await
            .unwrap(),
    );
    let record = radmfa::store::AuditRecord {
        time: T,
        user: "alice".into(),
        mode: "totp".into(),
        result: "accept".into(),
        ..Default::default()
    };
    // As a request writes it: into the shared batch.
    let in_request = || {
        let (store, record) = (store.clone(), record.clone());
        tokio::time::timeout(
            Duration::from_secs(10),
            radmfa::store::durability::deferred(async move { store.append_audit(&record).await }),
        )
    };
    let (written, durable) = in_request().await.expect("a first record");
    written.unwrap();
    durable.unwrap();
    let pids = backend_pids(&cluster, &db);
    // Used a moment before its server stops, so the pool hands it out again unpinged (sqlx
    // pings a connection on its way back into the pool, without a limit: 20 ms for that,
    // well within the 100 ms after which the store pings it on its way out).
    in_request().await.expect("a second record").0.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stopped = Stopped::now(&pids);

    let started = Instant::now();
    let (written, _) = in_request()
        .await
        .expect("the record waited on the dead connection past the request deadline");
    assert!(written.is_err(), "written on a stopped server: {written:?}");
    let (written, durable) = in_request()
        .await
        .expect("the next record waited behind the dead connection");
    written.expect("the next record, on a new connection");
    durable.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(stopped);
}

/// A request cut off by its deadline while its server stopped answering (a failover whose
/// old primary went silent, no reset) gives back a connection that still owes an answer.
/// It is closed within seconds and the next store call gets a new one. Before, sqlx's ping
/// on the way back waited for the answer until TCP gave up (~15 minutes), holding the slot:
/// with pool_size = 1, every later call failed while new connections worked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_cut_off_mid_statement_gives_its_slot_back() {
    let cluster = PgCluster::shared();
    let url = cluster.fresh_database();
    let db = PgCluster::database_of(&url);
    let mut settings = PgSettings::new(url);
    settings.pool_size = 1;
    // Room for a loaded machine's new connection (8 s ran out beside CPU hogs): the slot
    // held until TCP gave up was ~15 minutes, which the bounds below still tell apart.
    settings.connect_timeout = Duration::from_secs(20);
    let store = Arc::new(
        PgStore::open(&settings, super::test_sealer())
            .await
            .unwrap(),
    );
    store.user_status("alice").await.unwrap();
    let pids = backend_pids(&cluster, &db);
    // Used again a moment before its server stops, so it is handed out unpinged.
    store.user_status("alice").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stopped = Stopped::now(&pids);
    let cut = tokio::time::timeout(Duration::from_millis(800), store.user_status("bob")).await;
    assert!(cut.is_err(), "answered by a stopped server: {cut:?}");
    let started = Instant::now();
    let next = tokio::time::timeout(Duration::from_secs(25), store.user_status("carol")).await;
    let elapsed = started.elapsed();
    drop(stopped);
    next.expect("the next call waited on the stopped connection's slot")
        .expect("the next call, on a new connection");
    // The release check's 2 s and a new connection: a few seconds on a quiet machine.
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
}

/// The private clusters the tests start take no password-less TCP connection: with `trust`
/// on 127.0.0.1 any account on the machine could connect as superuser while the tests run,
/// and run programs as the server's user.
#[tokio::test]
async fn the_test_cluster_wants_its_password_over_tcp() {
    use sqlx::Connection;
    let cluster = PgCluster::shared();
    let url = cluster.url();
    let (before, after) = url.split_once('@').unwrap();
    let without = format!("{}@{after}", before.rsplit_once(':').unwrap().0);
    assert!(
        without.starts_with("postgres://postgres@127.0.0.1:"),
        "{without}"
    );
    let err = sqlx::PgConnection::connect(&without)
        .await
        .expect_err("connected without the password");
    assert!(err.to_string().contains("password"), "{err}");
    sqlx::PgConnection::connect(&url).await.unwrap();
}

/// `token import`'s turn on PostgreSQL waits on another node's as long as that import
/// runs: past the serving connections' statement_timeout (5 s), the wait ended with
/// "canceling statement due to statement timeout" and the second import failed (review).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_waits_its_turn_past_the_statement_timeout() {
    let cluster = PgCluster::shared();
    let sealer = super::test_sealer();
    let n = nodes(&cluster, 2, &sealer).await;
    let first = n[0].import_turn().await.unwrap();
    let other = n[1].clone();
    let second = tokio::spawn(async move { other.import_turn().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(6000)).await;
    assert!(
        !second.is_finished(),
        "the second turn ended while the first was held"
    );
    drop(first);
    tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second turn once the first ended")
        .unwrap()
        .expect("the second import's turn");
}
