//! The embedded store: one SQLite file (WAL, `synchronous=FULL`).
//!
//! Three ways in, by how hot the path is:
//! - the writes a login makes (TOTP step, HOTP counter, failure count, challenge, audit
//!   record) go through one writer thread that group-commits them (`sqlite_writer`);
//! - the two reads a login makes (the user's snapshot, a pending challenge) run on the
//!   request's own thread through read-only rusqlite connections (`sqlite_reads`);
//! - everything else (admin commands, imports, listings, delivery state) uses the sqlx pool
//!   below, as the PostgreSQL store does.
//!
//! Every security check-and-update is a single SQL statement whose `rows_affected` (or
//! `RETURNING` row) is the answer, so concurrent requests (and several processes sharing the
//! file) cannot both win a TOTP step, an HOTP counter value or a challenge State.
//!
//! Token seeds are sealed with the [`Sealer`] (AAD = the token serial) before they are bound
//! into an `INSERT`; the database never sees a plaintext seed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(super) use crate::store::columns::{counter_to_sql, kind_str, to_u32, to_u64};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::audit_sql::{self, Dialect};
use super::sqlite_reads::{Readers, Seed::MustOpen};
use super::sqlite_writer::{is_unique_violation as writer_unique_violation, sqlite_err, Writer};
use super::{
    AppPassword, AuditCount, AuditFilter, AuditGroup, AuditRecord, CancelledOob, ChallengeAttempt,
    CounterUse, FirstToken, NewToken, OobBegin, OobStatus, OobTransaction, PendingChallenge,
    RememberedLogin, Sealer, SendLimit, StepUse, Store, StoreError, Token, TokenAsRead, TokenExtra,
    TokenFilter, TokenRecord, TokensRemoved, UserProfile, UserSnapshot, UserStatus, UserSummary,
};

/// The schema's migrations. A file migrated by a newer release is not refused
/// (`ignore_missing`), so going back to the previous package after an upgrade still starts.
/// Every migration therefore keeps the previous release working on the new schema, as
/// PostgreSQL's must for rolling upgrades (see its `MIGRATOR`): tables and nullable or
/// defaulted columns are added, nothing the previous release uses is dropped or renamed.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("migrations/sqlite")
};

/// A user's app seeds are deleted; their imported tokens go back to stock (see
/// [`Store::delete_user_tokens`]).
/// Each gives back the serials it touched, for the audit.
const DELETE_ENROLLED_SQLITE: &str =
    "DELETE FROM tokens WHERE user = ?1 AND origin = 'enroll' RETURNING serial";
const RETURN_IMPORTED_SQLITE: &str = "UPDATE tokens SET user = NULL, resync_counter = NULL, \
     resync_at = NULL WHERE user = ?1 RETURNING serial";

/// Takes `user`'s tokens away in `tx` (see [`Store::delete_user_tokens`]).
async fn take_user_tokens(
    tx: &mut sqlx::SqliteConnection,
    user: &str,
) -> Result<TokensRemoved, StoreError> {
    let mut removed = TokensRemoved::default();
    for (sql, serials) in [
        (DELETE_ENROLLED_SQLITE, &mut removed.deleted),
        (RETURN_IMPORTED_SQLITE, &mut removed.returned),
    ] {
        *serials = sqlx::query_scalar(sql)
            .bind(user)
            .fetch_all(&mut *tx)
            .await?;
        // RETURNING's order is unspecified: sorted, the audit reads the same on both stores.
        serials.sort();
    }
    Ok(removed)
}

pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// What a WAL file is cut back to when SQLite starts it over after a checkpoint. Without
/// it the file keeps the size of the largest transaction it ever held (a big import) for
/// good; normal load keeps it near 4 MiB (the auto-checkpoint's 1,000 pages), under this.
pub(super) const WAL_SIZE_LIMIT: u64 = 8 << 20;
const MAX_CONNECTIONS: u32 = 8;

const CHALLENGE_COLUMNS: &str = "state_hash, user, nas, created_at, expires_at, attempts, context";
const AUDIT_COLUMNS: &str = "id, time, user, first_name, last_name, email, phone, token_serial, \
                             mode, result, reason, server_name, server_ip, client_ip, nas_name, \
                             latency_ms, actor, nas_ip, nas_identifier";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    pub(super) sealer: Sealer,
    /// Group commit for the writes on the login path (see `sqlite_writer`).
    pub(super) writer: Writer,
    /// The login path's reads (see `sqlite_reads`).
    pub(super) readers: Arc<Readers>,
    /// Set for a throwaway database: removes its files when the last clone goes.
    _temp: Option<Arc<TempDb>>,
}

/// The files of a throwaway database, removed on drop.
#[derive(Debug)]
struct TempDb(std::path::PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.0.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

impl SqliteStore {
    /// Opens (creating if missing, mode 0600) the database at `path` and brings its schema up
    /// to date. The key file stays elsewhere: `sealer` comes from [`super::KeyFile`].
    pub async fn open(path: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        precreate_private(path)?;
        // sqlx's SQLite migrator takes no lock: two processes opening a database behind by
        // a migration (the service restarting while an admin runs a command, or both
        // creating it) both read "not applied" and both apply it, and the second failed;
        // two creating it at once also met each other switching it to WAL ("database is
        // locked"). One at a time, then, from the first connection to the last migration:
        // an exclusive flock(2) on the database's directory (see `migration_lock`).
        let guard = migration_lock(path).await?;
        super::stale_wal::refuse_stale_wal(path)?;
        // Never made by a connection: `precreate_private` made the file (private) above.
        // A pool connection opened later, once the file was deleted under a running
        // server, made a new empty database there, and reads through it failed "no such
        // table" beside writes going to the deleted file.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            // An acknowledged enrollment or audit record must survive a power cut.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
        let pool = super::pool_options::without_reaper()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        super::sqlite_key_check::check_recorded_key(&pool, &sealer).await?;
        MIGRATOR.run(&pool).await?;
        drop(guard);
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await?;
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(version) = version.filter(|v| *v > known) {
            tracing::warn!(
                version,
                known,
                "the store's schema is newer than this radmfa release knows (a newer release \
                 ran on it); it keeps working on it"
            );
        }
        super::sqlite_key_check::check_key(&pool, &sealer).await?;
        let writer = Writer::start(path, BUSY_TIMEOUT)?;
        Ok(SqliteStore {
            pool,
            sealer,
            writer,
            readers: Arc::new(Readers::new(path)),
            _temp: None,
        })
    }

    /// How far the database at `path` is behind this release's schema, without changing
    /// it: (its newest migration, this release's newest) when one of this release's is not
    /// applied; `None` when none is missing. For `config check`, which must not upgrade the
    /// store it only looks at (an admin checking a new release before installing it left
    /// the running one unable to start).
    pub async fn schema_behind(path: &Path) -> Result<Option<(i64, i64)>, StoreError> {
        let pool = look_at(path).await?;
        let behind = schema_behind_on(&pool).await;
        super::pool_close::close_pool(&pool).await;
        behind
    }

    /// (the newest migration applied to the database at `path`, this release's newest) when
    /// a newer release migrated it past this one, without changing it: `db migrate` on an
    /// older package (after a rollback) must not call that "up to date".
    pub async fn schema_ahead(path: &Path) -> Result<Option<(i64, i64)>, StoreError> {
        let pool = look_at(path).await?;
        let applied = applied_migrations(&pool).await;
        super::pool_close::close_pool(&pool).await;
        let newest = applied?.into_iter().max().unwrap_or(0);
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        Ok((newest > known).then_some((newest, known)))
    }

    /// Whether `sealer` is the key the database at `path` recorded (yes where it has
    /// recorded none yet), without changing the database: `config check` of a store it does
    /// not open, because opening would migrate it.
    pub async fn key_matches(path: &Path, sealer: &Sealer) -> Result<bool, StoreError> {
        let pool = look_at(path).await?;
        let checked = super::sqlite_key_check::check_recorded_key(&pool, sealer).await;
        super::pool_close::close_pool(&pool).await;
        match checked {
            Ok(()) => Ok(true),
            Err(StoreError::Decrypt(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A private throwaway database (tests): a file in the temp directory, deleted when the
    /// last clone of the store is dropped. Not `:memory:`, because the writer thread needs a
    /// connection of its own to the same database.
    pub async fn open_in_memory(sealer: Sealer) -> Result<Self, StoreError> {
        let path = std::env::temp_dir().join(format!(
            "radmfa-throwaway-{}-{:016x}.db",
            std::process::id(),
            rand::random::<u64>()
        ));
        let temp = Arc::new(TempDb(path.clone()));
        let mut store = Self::open(&path, sealer).await?;
        store._temp = Some(temp);
        Ok(store)
    }
}

/// One connection to the existing database at `path`, to look at it without opening the
/// store (which would migrate it) and without creating a database that is not there.
async fn look_at(path: &Path) -> Result<SqlitePool, StoreError> {
    super::stale_wal::refuse_stale_wal(path)?;
    // Read-only: as the last connection to close, a writable one would checkpoint the WAL
    // into the file and delete it, a change nobody asked a look for (every admin command
    // looks first, to tell a migration).
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT);
    Ok(super::pool_options::without_reaper()
        .max_connections(1)
        .connect_with(options)
        .await?)
}

/// Whether the database has the table `name` (an older schema, or a new database before
/// its migrations, may not).
pub(super) async fn has_table(pool: &SqlitePool, name: &str) -> Result<bool, StoreError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}

/// The versions of the migrations applied to the database (none for a database without
/// the migrator's table: a new one, or a young one whose tables are still in its WAL).
async fn applied_migrations(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    if !has_table(pool, "_sqlx_migrations").await? {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?,
    )
}

/// [`SqliteStore::schema_behind`] of the database `pool` reads.
pub(super) async fn schema_behind_on(pool: &SqlitePool) -> Result<Option<(i64, i64)>, StoreError> {
    Ok(behind(&MIGRATOR, &applied_migrations(pool).await?))
}

/// (the newest applied, the newest `migrator` has) when one of `migrator`'s is not in
/// `applied`.
pub(super) fn behind(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Option<(i64, i64)> {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    let missing = migrator.iter().any(|m| !applied.contains(&m.version));
    missing.then(|| (applied.iter().copied().max().unwrap_or(0), known))
}

/// Creates the database file with mode 0600 if it does not exist yet. SQLite gives the -wal
/// and -shm files the database file's permissions, so none of them is world-readable.
/// An exclusive `flock` on the directory the database is in, waited for off the async
/// workers. Not on the database file itself: SQLite locks it with fcntl(2) locks, which a
/// process loses, all of them, when it closes *any* descriptor of that file, so opening and
/// closing the file here would drop the locks of this process's own connections (seen as
/// "disk I/O error" on the next write). Another database in the same directory waits too,
/// for a moment.
async fn migration_lock(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let io = |e: std::io::Error| {
        StoreError::Db(sqlx::Error::Io(std::io::Error::new(
            e.kind(),
            format!(
                "locking {} to migrate {}: {e}",
                dir.display(),
                path.display()
            ),
        )))
    };
    let file = std::fs::File::open(dir).map_err(io)?;
    tokio::task::spawn_blocking(move || {
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| std::io::Error::from(errno))
    })
    .await
    .map_err(|e| io(std::io::Error::other(e)))?
    .map_err(io)
}

/// The database file, made private (0600) before SQLite makes it with the umask's mode, and
/// given to its directory's owner when root makes it. Made whole: an SQLite header in WAL
/// mode and no tables, written under a temporary name and linked into place, so a radmfa
/// database file is never seen empty. An empty file is then always someone else's (a
/// `touch` before a restore, a copy that failed on a full disk), which `app::sqlite_sealer`
/// refuses beside a key file, while a first start under way in another process is a
/// database without tables.
pub(crate) fn precreate_private(path: &Path) -> Result<(), StoreError> {
    // There already (the usual open): nothing to make. Made each time, the temporary file
    // failed on a full disk, and every command on an existing store said "cannot create
    // database", just when the admin wanted to copy it elsewhere.
    if std::fs::symlink_metadata(path).is_ok() {
        // A symbolic link to a file not there yet (made before the first start): the file
        // is made at its target, private, as here. Left to SQLite, it was made with the
        // caller's umask (0644: phone numbers and the audit trail readable by all).
        if !path.exists() {
            let target = super::serving_lock::followed(path);
            if target != path && std::fs::symlink_metadata(&target).is_err() {
                return precreate_private(&target);
            }
        }
        return Ok(());
    }
    let failed = |e: std::io::Error| {
        StoreError::Db(sqlx::Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot create database {}: {e}", path.display()),
        )))
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".new-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let tmp = path.with_file_name(name);
    let made = super::seal::create_private(&tmp)
        .and_then(|file| super::seal::give_to_directory_owner(&file, &tmp))
        .and_then(|()| {
            let c = rusqlite::Connection::open(&tmp).map_err(std::io::Error::other)?;
            c.pragma_update(None, "journal_mode", "WAL")
                .map_err(std::io::Error::other)?;
            // Closing the only connection checkpoints and removes its -wal and -shm.
            c.close().map_err(|(_, e)| std::io::Error::other(e))
        })
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    for suffix in ["-wal", "-shm"] {
        let mut side = tmp.clone().into_os_string();
        side.push(suffix);
        let _ = std::fs::remove_file(side);
    }
    match made {
        Ok(()) => Ok(()),
        // Another process's, made meanwhile: the same thing.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(failed(e)),
    }
}

/// Whether the database at `path` holds any table: what a first start leaves before its
/// schema (see [`precreate_private`]) holds none. One that cannot be read is taken to hold
/// some (its opening then says why).
pub(crate) fn holds_tables(path: &Path) -> bool {
    if !std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        return false;
    }
    let read = || -> rusqlite::Result<bool> {
        let c = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master)", [], |r| {
            r.get(0)
        })
    };
    read().unwrap_or(true)
}

pub(super) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The id from an autocommit `INSERT … RETURNING id` run through the pool with
/// `fetch_all`, never `fetch_one`.
///
/// sqlx's `fetch_one` stops stepping after the first row and finishes the statement with a
/// reset whose result it discards, and for an autocommit statement that reset is where
/// SQLite commits. A commit that failed (disk full, I/O error) came back as success; and
/// SQLite's WAL auto-checkpoint, which runs only when a step returns `SQLITE_DONE`, never
/// ran, so bulk enrollment grew the WAL without bound (973 MB for 60,000 tokens).
/// `fetch_all` steps to the end: the commit happens inside a step and its error is ours.
pub(super) fn returned_id(ids: Vec<i64>) -> Result<i64, StoreError> {
    ids.into_iter()
        .next()
        .ok_or_else(|| StoreError::Sqlite("INSERT … RETURNING returned no row".into()))
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        time: row.try_get("time")?,
        user: row.try_get("user")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        token_serial: row.try_get("token_serial")?,
        mode: row.try_get("mode")?,
        result: row.try_get("result")?,
        reason: row.try_get("reason")?,
        server_name: row.try_get("server_name")?,
        server_ip: row.try_get("server_ip")?,
        client_ip: row.try_get("client_ip")?,
        nas_ip: row.try_get("nas_ip")?,
        nas_identifier: row.try_get("nas_identifier")?,
        nas_name: row.try_get("nas_name")?,
        latency_ms: row.try_get("latency_ms")?,
        actor: row.try_get("actor")?,
    })
}

fn user_status_from_row(row: &SqliteRow) -> Result<UserStatus, StoreError> {
    Ok(UserStatus {
        user: row.try_get("user")?,
        failures: to_u32(row.try_get("failures")?, "user_state.failures")?,
        locked_until: row.try_get("locked_until")?,
        token_count: to_u32(row.try_get("token_count")?, "token count")?,
    })
}

fn user_summary_from_row(row: &SqliteRow) -> Result<UserSummary, StoreError> {
    Ok(UserSummary {
        status: user_status_from_row(row)?,
        method: row.try_get("method")?,
        phone: row.try_get("has_phone")?,
        blocked_at: row.try_get("blocked_at")?,
        bypass_until: row.try_get("bypass_until")?,
        app_passwords: to_u32(row.try_get("app_password_count")?, "app password count")?,
        remembered: to_u32(row.try_get("remembered_count")?, "remembered login count")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn sms_code_key(&self) -> &[u8] {
        self.sealer.code_key()
    }

    // --- tokens ---

    async fn add_token(&self, token: NewToken) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.insert_token(&mut conn, &token).await
    }

    async fn add_first_token(
        &self,
        token: NewToken,
        holders: &[String],
    ) -> Result<FirstToken, StoreError> {
        self.add_first_token_impl(token, holders).await
    }

    async fn tokens_for_user(&self, user: &str) -> Result<Vec<Token>, StoreError> {
        let _turn = self.readers.turn().await;
        let records = self.readers.token_records(
            &self.sealer,
            "WHERE user = ?1 ORDER BY id",
            [user],
            MustOpen,
        )?;
        Ok(records.into_iter().map(|r| r.token).collect())
    }

    async fn token_by_serial(&self, serial: &str) -> Result<Option<Token>, StoreError> {
        let _turn = self.readers.turn().await;
        let records =
            self.readers
                .token_records(&self.sealer, "WHERE serial = ?1", [serial], MustOpen)?;
        Ok(records.into_iter().next().map(|r| r.token))
    }

    async fn consume_totp_step(&self, token_id: i64, step: i64) -> Result<bool, StoreError> {
        self.writer
            .write(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE tokens SET last_step = ?1 \
                         WHERE id = ?2 AND (last_step IS NULL OR last_step < ?1)",
                    )
                    .and_then(|mut st| st.execute(rusqlite::params![step, token_id]))
                    .map_err(sqlite_err)?;
                Ok(changed == 1)
            })
            .await
    }

    async fn advance_hotp_counter(
        &self,
        token_id: i64,
        expected: u64,
        new_counter: u64,
        login_owner: Option<&str>,
    ) -> Result<CounterUse, StoreError> {
        // A counter only moves forward: going back would make used codes valid again.
        if new_counter <= expected {
            return Ok(CounterUse::Moved { counter: expected });
        }
        let expected = counter_to_sql(expected)?;
        let new_counter = counter_to_sql(new_counter)?;
        let login_owner = login_owner.map(str::to_string);
        let now = self
            .writer
            .write(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE tokens SET counter = ?1 WHERE id = ?2 AND counter = ?3 \
                         AND (?4 IS NULL OR (enabled = 1 AND user IS ?4))",
                    )
                    .and_then(|mut st| {
                        st.execute(rusqlite::params![
                            new_counter,
                            token_id,
                            expected,
                            login_owner
                        ])
                    })
                    .map_err(sqlite_err)?;
                if changed == 1 {
                    return Ok(None);
                }
                // On the writer's connection: it sees the batch's writes not yet committed,
                // which a reader would not (a racing login's counter move).
                c.prepare_cached(
                    "SELECT counter FROM tokens \
                     WHERE id = ?1 AND (?2 IS NULL OR (enabled = 1 AND user IS ?2))",
                )
                .and_then(|mut st| {
                    use rusqlite::OptionalExtension;
                    st.query_row(rusqlite::params![token_id, login_owner], |r| {
                        r.get::<_, i64>(0)
                    })
                    .optional()
                })
                .map(Some)
                .map_err(sqlite_err)
            })
            .await?;
        Ok(match now {
            None => CounterUse::Taken,
            Some(Some(counter)) => CounterUse::Moved {
                counter: to_u64(counter, "HOTP counter")?,
            },
            Some(None) => CounterUse::Gone,
        })
    }

    async fn delete_user_tokens(&self, user: &str) -> Result<TokensRemoved, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let removed = take_user_tokens(&mut tx, user).await?;
        tx.commit().await?;
        Ok(removed)
    }

    // --- token inventory (sqlite_tokens.rs) ---

    async fn import_turn(&self) -> Result<crate::store::ImportTurn, StoreError> {
        let db = self.readers.path().to_path_buf();
        let file = tokio::task::spawn_blocking(move || super::serving_lock::importing(&db))
            .await
            .map_err(|e| StoreError::Sqlite(e.to_string()))?
            .map_err(|e| StoreError::Sqlite(format!("taking the import's turn: {e}")))?;
        Ok(crate::store::ImportTurn(Box::new(file)))
    }

    async fn import_tokens_audited(
        &self,
        tokens: &[(NewToken, TokenExtra)],
        replace: bool,
        audit: &[AuditRecord],
        seen: Option<&crate::store::InventorySeen>,
    ) -> Result<u64, StoreError> {
        self.import_tokens_impl(tokens, replace, audit, seen).await
    }

    async fn list_tokens(&self, filter: &TokenFilter) -> Result<Vec<TokenRecord>, StoreError> {
        self.list_tokens_impl(filter).await
    }

    async fn token_record(&self, serial: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.token_record_impl(serial).await
    }

    async fn assign_token(
        &self,
        serial: &str,
        holder: Option<&str>,
        user: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.assign_token_impl(serial, holder, user).await
    }

    async fn set_token_enabled(&self, serial: &str, enabled: bool) -> Result<bool, StoreError> {
        self.set_token_enabled_impl(serial, enabled).await
    }

    async fn delete_token(&self, serial: &str) -> Result<bool, StoreError> {
        self.delete_token_impl(serial).await
    }

    async fn consume_totp_step_with_drift(
        &self,
        token_id: i64,
        step: i64,
        drift: i64,
    ) -> Result<bool, StoreError> {
        self.consume_totp_step_with_drift_impl(token_id, step, drift)
            .await
    }

    async fn consume_totp_step_seen(
        &self,
        token_id: i64,
        read: TokenAsRead<'_>,
        seen: Option<i64>,
        step: i64,
        drift: i64,
    ) -> Result<StepUse, StoreError> {
        self.consume_totp_step_seen_impl(token_id, read, seen, step, drift)
            .await
    }

    async fn rewind_totp_step(
        &self,
        token_id: i64,
        from: i64,
        step: i64,
        drift: i64,
    ) -> Result<bool, StoreError> {
        self.rewind_totp_step_impl(token_id, from, step, drift)
            .await
    }

    async fn set_hotp_resync(
        &self,
        token_id: i64,
        pending: Option<(u64, i64)>,
    ) -> Result<(), StoreError> {
        self.set_hotp_resync_impl(token_id, pending).await
    }

    // --- users ---

    async fn user_snapshot(&self, user: &str) -> Result<UserSnapshot, StoreError> {
        let _turn = self.readers.turn().await;
        self.readers.user_snapshot(&self.sealer, user)
    }

    // --- users: lockout ---

    async fn list_users_page(
        &self,
        now: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserSummary>, StoreError> {
        // `after` and the limit in each branch, so each reads a page's worth from its index
        // onwards, not every later name for every page (the page's names are among the
        // first `limit` of some branch). An empty `after` is before every name.
        let rows = sqlx::query(
            "SELECT u.user AS user, \
                    COALESCE(s.failures, 0) AS failures, \
                    s.locked_until AS locked_until, \
                    (SELECT COUNT(*) FROM tokens t WHERE t.user = u.user) AS token_count, \
                    p.method AS method, p.phone IS NOT NULL AS has_phone, \
                    p.blocked_at AS blocked_at, \
                    CASE WHEN p.bypass_until > ?1 THEN p.bypass_until END AS bypass_until, \
                    (SELECT COUNT(*) FROM app_passwords a WHERE a.user = u.user) \
                        AS app_password_count, \
                    (SELECT COUNT(*) FROM remembered_logins r \
                      WHERE r.user = u.user AND r.expires_at > ?1) AS remembered_count \
             FROM (SELECT user FROM (SELECT user FROM tokens \
                         WHERE user IS NOT NULL AND user > ?2 ORDER BY user LIMIT ?3) \
                   UNION SELECT user FROM (SELECT user FROM user_state \
                         WHERE (failures > 0 OR locked_until > ?1) AND user > ?2 \
                         ORDER BY user LIMIT ?3) \
                   UNION SELECT user FROM (SELECT user FROM user_profile \
                         WHERE (phone IS NOT NULL OR method IS NOT NULL \
                            OR blocked_at IS NOT NULL OR bypass_until > ?1) AND user > ?2 \
                         ORDER BY user LIMIT ?3) \
                   UNION SELECT user FROM (SELECT user FROM app_passwords \
                         WHERE user > ?2 ORDER BY user LIMIT ?3) \
                   UNION SELECT user FROM (SELECT user FROM remembered_logins \
                         WHERE expires_at > ?1 AND user > ?2 ORDER BY user LIMIT ?3)) AS u \
             LEFT JOIN user_state s ON s.user = u.user \
             LEFT JOIN user_profile p ON p.user = u.user \
             ORDER BY u.user LIMIT ?3",
        )
        .bind(now)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_summary_from_row).collect()
    }

    async fn user_status(&self, user: &str) -> Result<UserStatus, StoreError> {
        let row = sqlx::query(
            "SELECT ?1 AS user, \
                    COALESCE((SELECT failures FROM user_state WHERE user = ?1), 0) AS failures, \
                    (SELECT locked_until FROM user_state WHERE user = ?1) AS locked_until, \
                    (SELECT COUNT(*) FROM tokens WHERE user = ?1) AS token_count",
        )
        .bind(user)
        .fetch_one(&self.pool)
        .await?;
        user_status_from_row(&row)
    }

    async fn record_failure(
        &self,
        user: &str,
        threshold: u32,
        now: i64,
        lock_secs: i64,
    ) -> Result<(u32, Option<i64>), StoreError> {
        // One statement: count the failure and, if that reaches the threshold, lock and reset
        // the count. In an upsert's SET every expression sees the old row, so both CASEs test
        // the same `failures + 1`. A threshold of 0 never locks. A row locked at `now` is
        // left as it is (the WHERE), and the statement then returns no row.
        let until = now.saturating_add(lock_secs);
        let user = user.to_string();
        let (failures, locked_until): (i64, Option<i64>) = self
            .writer
            .write(move |c| {
                use rusqlite::OptionalExtension;
                c.prepare_cached(
                    "INSERT INTO user_state (user, failures, locked_until) \
                     VALUES (?1, \
                             CASE WHEN ?2 > 0 AND 1 >= ?2 THEN 0 ELSE 1 END, \
                             CASE WHEN ?2 > 0 AND 1 >= ?2 THEN ?3 ELSE NULL END) \
                     ON CONFLICT (user) DO UPDATE SET \
                         failures = CASE WHEN ?2 > 0 AND user_state.failures + 1 >= ?2 \
                                         THEN 0 ELSE user_state.failures + 1 END, \
                         locked_until = CASE WHEN ?2 > 0 AND user_state.failures + 1 >= ?2 \
                                             THEN ?3 ELSE user_state.locked_until END \
                     WHERE user_state.locked_until IS NULL OR user_state.locked_until <= ?4 \
                     RETURNING failures, locked_until",
                )
                .and_then(|mut st| {
                    st.query_row(
                        rusqlite::params![user, i64::from(threshold), until, now],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                })
                .map_err(sqlite_err)
            })
            .await?
            // Locked already (by another process since this login read its standing):
            // nothing counted, so the new lock period does not start with this failure.
            .unwrap_or((0, None));
        if (failures, locked_until) == (0, None) {
            return Ok((0, None));
        }
        let failures = to_u32(failures, "user_state.failures")?;
        // After this statement `failures` is at least 1 unless this very statement locked.
        if failures == 0 {
            Ok((threshold, Some(locked_until.unwrap_or(until))))
        } else {
            Ok((failures, None))
        }
    }

    async fn clear_failures(&self, user: &str) -> Result<(), StoreError> {
        let user = user.to_string();
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE user_state SET failures = 0 WHERE user = ?1 AND failures <> 0",
                )
                .and_then(|mut st| st.execute([&user]))
                .map_err(sqlite_err)?;
                Ok(())
            })
            .await
    }

    async fn unlock_user(&self, user: &str, now: i64) -> Result<bool, StoreError> {
        let lifted = sqlx::query(
            "UPDATE user_state SET locked_until = NULL, failures = 0 \
             WHERE user = ?1 AND locked_until IS NOT NULL AND locked_until > ?2",
        )
        .bind(user)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if !lifted {
            // Not locked (or the lock already ran out): still give a clean slate.
            sqlx::query(
                "UPDATE user_state SET locked_until = NULL, failures = 0 \
                 WHERE user = ?1 AND (locked_until IS NOT NULL OR failures <> 0)",
            )
            .bind(user)
            .execute(&self.pool)
            .await?;
        }
        Ok(lifted)
    }

    async fn delete_user(&self, user: &str) -> Result<Option<TokensRemoved>, StoreError> {
        // IMMEDIATE: take the write lock up front (a deferred transaction upgrading from read
        // to write can fail with SQLITE_BUSY without waiting).
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let tokens = take_user_tokens(&mut tx, user).await?;
        let mut removed = 0;
        for sql in [
            "DELETE FROM user_state WHERE user = ?1",
            "DELETE FROM challenges WHERE user = ?1",
            // A row holding only when the user's remembered logins were last forgotten (a
            // reset of a mistyped name leaves one) is no user: not counted, removed below.
            "DELETE FROM user_profile WHERE user = ?1 AND (phone IS NOT NULL \
             OR method IS NOT NULL OR blocked_at IS NOT NULL OR bypass_until IS NOT NULL)",
            "DELETE FROM app_passwords WHERE user = ?1",
            // A call's row stays its grace (VOICE_ROW_GRACE, then purged), a ringing one
            // failed: the 0# of a call still ringing must find it and block the name, or
            // whoever started it keeps a password that, with no factor left, may let them in.
            "UPDATE oob_transactions SET status = 'failed', reason = 'the user was deleted' \
             WHERE user = ?1 AND kind = 'voice' AND status = 'pending'",
            "DELETE FROM oob_transactions WHERE user = ?1 AND kind <> 'voice'",
            "DELETE FROM remembered_logins WHERE user = ?1",
        ] {
            removed += sqlx::query(sql)
                .bind(user)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        // What is left of the profile is the mark of when the user's remembered logins were
        // forgotten, now: a login of theirs in flight must not write its row back after the
        // delete (it would let the password alone in from that station, tokens or not).
        sqlx::query(
            "INSERT INTO user_profile (user, logins_forgotten_at) VALUES (?1, ?2) \
             ON CONFLICT (user) DO UPDATE SET logins_forgotten_at = \
             MAX(COALESCE(user_profile.logins_forgotten_at, ?2), ?2)",
        )
        .bind(user)
        .bind(now_unix())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((removed > 0 || !tokens.is_empty()).then_some(tokens))
    }

    // --- pending challenges ---

    async fn put_challenge(&self, challenge: &PendingChallenge) -> Result<(), StoreError> {
        let ch = challenge.clone();
        self.writer
            .write(move |c| {
                let result = c
                    .prepare_cached(&format!(
                        "INSERT INTO challenges ({CHALLENGE_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ))
                    .and_then(|mut st| {
                        st.execute(rusqlite::params![
                            ch.state_hash,
                            ch.user,
                            ch.nas,
                            ch.created_at,
                            ch.expires_at,
                            i64::from(ch.attempts),
                            ch.context
                        ])
                    });
                match result {
                    Ok(_) => Ok(()),
                    Err(e) if writer_unique_violation(&e) => {
                        Err(StoreError::Conflict("challenge state".into()))
                    }
                    Err(e) => Err(sqlite_err(e)),
                }
            })
            .await
    }

    async fn challenge(
        &self,
        state_hash: &[u8],
        now: i64,
    ) -> Result<Option<PendingChallenge>, StoreError> {
        let _turn = self.readers.turn().await;
        self.readers.challenge(state_hash, now)
    }

    async fn consume_challenge(&self, state_hash: &[u8]) -> Result<bool, StoreError> {
        let hash = state_hash.to_vec();
        self.writer
            .write(move |c| {
                let changed = c
                    .prepare_cached("DELETE FROM challenges WHERE state_hash = ?1")
                    .and_then(|mut st| st.execute([&hash]))
                    .map_err(sqlite_err)?;
                Ok(changed == 1)
            })
            .await
    }

    async fn take_attempt(
        &self,
        state_hash: &[u8],
        max_attempts: u32,
    ) -> Result<ChallengeAttempt, StoreError> {
        let hash = state_hash.to_vec();
        self.writer
            .write(move |c| {
                if max_attempts <= 1 {
                    // The only attempt (the default): taking it is consuming the challenge,
                    // one statement as before attempts were taken up front. Unless a
                    // reload lowered the maximum below the attempts this prompt has had.
                    let changed = c
                        .prepare_cached(
                            "DELETE FROM challenges WHERE state_hash = ?1 AND attempts < 1",
                        )
                        .and_then(|mut st| st.execute([&hash]))
                        .map_err(sqlite_err)?;
                    return Ok(if changed == 1 {
                        ChallengeAttempt::Last
                    } else {
                        ChallengeAttempt::Closed
                    });
                }
                // Each caller gets a distinct `attempts` value back from the guarded
                // increment; whoever takes the last one deletes the row. A savepoint makes
                // the two statements one unit inside the writer's batch.
                let sp = c.savepoint().map_err(sqlite_err)?;
                let attempts: Option<i64> = sp
                    .prepare_cached(
                        "UPDATE challenges SET attempts = attempts + 1 \
                         WHERE state_hash = ?1 AND attempts < ?2 RETURNING attempts",
                    )
                    .and_then(|mut st| {
                        use rusqlite::OptionalExtension;
                        st.query_row(rusqlite::params![&hash, max_attempts], |r| r.get(0))
                            .optional()
                    })
                    .map_err(sqlite_err)?;
                let Some(attempts) = attempts else {
                    return Ok(ChallengeAttempt::Closed);
                };
                let attempts = to_u32(attempts, "challenges.attempts")?;
                let outcome = if attempts >= max_attempts {
                    sp.prepare_cached("DELETE FROM challenges WHERE state_hash = ?1")
                        .and_then(|mut st| st.execute([&hash]))
                        .map_err(sqlite_err)?;
                    ChallengeAttempt::Last
                } else {
                    ChallengeAttempt::Open(attempts)
                };
                sp.commit().map_err(sqlite_err)?;
                Ok(outcome)
            })
            .await
    }

    async fn has_open_challenge(
        &self,
        user: &str,
        nas: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.readers.turn().await;
        self.readers.has_open_challenge(user, nas, now)
    }

    async fn purge_expired_challenges(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM challenges WHERE expires_at <= ?1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn count_open_challenges(&self, now: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM challenges WHERE expires_at > ?1")
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn close_challenges(&self, user: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM challenges WHERE user = ?1")
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn close_client_challenges(&self, nas: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM challenges WHERE nas = ?1")
            .bind(nas)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    // --- out-of-band factors (sqlite_delivery.rs) ---

    async fn user_profile(&self, user: &str) -> Result<UserProfile, StoreError> {
        self.user_profile_impl(user).await
    }

    async fn set_phone(&self, user: &str, phone: Option<&str>) -> Result<(), StoreError> {
        self.set_phone_impl(user, phone).await
    }

    async fn set_method(&self, user: &str, method: Option<&str>) -> Result<(), StoreError> {
        self.set_method_impl(user, method).await
    }

    async fn block_user(&self, user: &str, at: i64, reason: &str) -> Result<bool, StoreError> {
        self.block_user_impl(user, at, reason).await
    }

    async fn unblock_user(&self, user: &str) -> Result<bool, StoreError> {
        self.unblock_user_impl(user).await
    }

    async fn set_bypass(&self, user: &str, until: Option<i64>) -> Result<(), StoreError> {
        self.set_bypass_impl(user, until).await
    }

    async fn set_bypass_audited(
        &self,
        user: &str,
        until: Option<i64>,
        only_if: super::BypassWas,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.set_bypass_audited_impl(user, until, only_if, record)
            .await
    }

    async fn take_bypass(&self, user: &str, now: i64) -> Result<bool, StoreError> {
        self.take_bypass_impl(user, now).await
    }

    async fn restore_bypass(
        &self,
        user: &str,
        expected: i64,
        earlier: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE user_profile SET bypass_until = ?3 WHERE user = ?1 AND bypass_until = ?2",
        )
        .bind(user)
        .bind(expected)
        .bind(earlier)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remember_login(&self, login: &RememberedLogin) -> Result<(), StoreError> {
        self.remember_login_impl(login).await
    }

    async fn remembered_login(
        &self,
        user: &str,
        nas: &str,
        station: &str,
        now: i64,
    ) -> Result<Option<RememberedLogin>, StoreError> {
        self.remembered_login_impl(user, nas, station, now).await
    }

    async fn remembered_logins(
        &self,
        user: &str,
        now: i64,
    ) -> Result<Vec<RememberedLogin>, StoreError> {
        self.remembered_logins_impl(user, now).await
    }

    async fn forget_logins(&self, user: &str, now: i64) -> Result<u64, StoreError> {
        self.forget_logins_impl(user, now).await
    }

    async fn remembered_clients(&self) -> Result<Vec<String>, StoreError> {
        self.remembered_clients_impl().await
    }

    async fn cut_remembered(&self, nas: &str, period: Option<i64>) -> Result<u64, StoreError> {
        self.cut_remembered_impl(nas, period).await
    }

    async fn add_app_password(
        &self,
        user: &str,
        label: Option<&str>,
        hash: &str,
        now: i64,
        entry: (Option<&str>, Option<&str>),
    ) -> Result<i64, StoreError> {
        self.add_app_password_impl(user, label, hash, now, entry)
            .await
    }

    async fn app_passwords(&self, user: &str) -> Result<Vec<AppPassword>, StoreError> {
        self.app_passwords_impl(user).await
    }

    async fn delete_app_password(&self, user: &str, id: i64) -> Result<bool, StoreError> {
        self.delete_app_password_impl(user, id).await
    }

    async fn delete_app_passwords(&self, user: &str) -> Result<u64, StoreError> {
        self.delete_app_passwords_impl(user).await
    }

    async fn touch_app_password(
        &self,
        id: i64,
        user: &str,
        hash: &str,
        now: i64,
        dn: Option<&str>,
        entry_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.touch_app_password_impl(id, user, hash, now, dn, entry_id)
            .await
    }

    async fn take_send_slot(
        &self,
        limits: &[SendLimit],
        now: i64,
        slot: &str,
    ) -> Result<Option<usize>, StoreError> {
        self.take_send_slot_impl(limits, now, slot).await
    }
    async fn release_send_slot(&self, slot: &str) -> Result<u64, StoreError> {
        self.release_send_slot_impl(slot).await
    }
    async fn forget_sends(&self, key: &str) -> Result<u64, StoreError> {
        self.forget_sends_impl(key).await
    }
    async fn sends_since(
        &self,
        key: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.sends_since_impl(key, since, now).await
    }
    async fn forget_number_sends(&self, phone: &str) -> Result<u64, StoreError> {
        self.forget_number_sends_impl(phone).await
    }

    async fn begin_oob(&self, txn: &OobTransaction) -> Result<OobBegin, StoreError> {
        self.begin_oob_impl(txn).await
    }

    async fn oob(&self, id: &str) -> Result<Option<OobTransaction>, StoreError> {
        self.oob_impl(id).await
    }

    async fn set_oob_provider_ref(
        &self,
        id: &str,
        provider_ref: &str,
    ) -> Result<Option<(OobStatus, Option<String>)>, StoreError> {
        self.set_oob_provider_ref_impl(id, provider_ref).await
    }

    async fn note_pending_oob(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        self.note_pending_oob_impl(id, reason).await
    }

    async fn resolve_oob(
        &self,
        id: &str,
        status: OobStatus,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.resolve_oob_impl(id, status, reason).await
    }

    async fn cancel_oob(
        &self,
        user: &str,
        except: Option<&str>,
        reason: &str,
    ) -> Result<CancelledOob, StoreError> {
        // fetch_all: RETURNING through sqlx's SQLite driver must be read to the end.
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "UPDATE oob_transactions SET status = 'failed', reason = ?2 \
             WHERE user = ?1 AND status = 'pending' AND (?3 IS NULL OR id <> ?3) \
             RETURNING kind, provider_ref",
        )
        .bind(user)
        .bind(reason)
        .bind(except)
        .fetch_all(&self.pool)
        .await?;
        Ok(CancelledOob::from_rows(rows))
    }

    async fn purge_delivery_state(&self, now: i64) -> Result<u64, StoreError> {
        self.purge_delivery_state_impl(now).await
    }

    // --- lifecycle ---

    async fn close(&self) {
        let (writes, commits) = self.writer.counts();
        tracing::info!(
            writes,
            commits,
            "store closed: writes and the commits that carried them"
        );
        // The writer closes last: only a read-write connection that closes last checkpoints
        // the WAL and removes the -wal and -shm files, so a stopped radmfa leaves just the
        // database file (and an admin command run as root leaves nothing of its own).
        self.readers.close_idle();
        super::pool_close::close_pool(&self.pool).await;
        self.writer.stop().await;
    }

    // --- audit ---

    async fn append_audit(&self, r: &AuditRecord) -> Result<i64, StoreError> {
        let r = r.storable().into_owned();
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO audit (time, user, first_name, last_name, email, phone, \
                     token_serial, mode, result, reason, server_name, server_ip, client_ip, \
                     nas_name, latency_ms, actor, nas_ip, nas_identifier) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                     ?16, ?17, ?18)",
                )
                .and_then(|mut st| {
                    st.insert(rusqlite::params![
                        r.time,
                        r.user,
                        r.first_name,
                        r.last_name,
                        r.email,
                        r.phone,
                        r.token_serial,
                        r.mode,
                        r.result,
                        r.reason,
                        r.server_name,
                        r.server_ip,
                        r.client_ip,
                        r.nas_name,
                        r.latency_ms,
                        r.actor,
                        r.nas_ip,
                        r.nas_identifier
                    ])
                })
                .map_err(sqlite_err)
            })
            .await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        audit_records(&self.pool, filter).await
    }

    async fn audit_top_id(&self) -> Result<i64, StoreError> {
        audit_top_id(&self.pool).await
    }

    async fn audit_counts(
        &self,
        filter: &AuditFilter,
        by: AuditGroup,
    ) -> Result<Vec<AuditCount>, StoreError> {
        audit_counts(&self.pool, filter, by).await
    }

    async fn purge_audit(&self, before: i64, batch: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM audit WHERE id IN \
             (SELECT id FROM audit WHERE time < ?1 ORDER BY time LIMIT ?2)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

// The audit log's reads on a pool: the store's, or `radmfa audit`'s read-only one
// (`super::audit_reader`), which has neither the seed key nor write access.

/// [`Store::audit`].
pub(super) async fn audit_records(
    pool: &SqlitePool,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut q: QueryBuilder<Sqlite> =
        audit_sql::records_query(Dialect::Sqlite, AUDIT_COLUMNS, filter);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(audit_from_row).collect()
}

/// [`Store::audit_top_id`].
pub(super) async fn audit_top_id(pool: &SqlitePool) -> Result<i64, StoreError> {
    let top: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM audit")
        .fetch_one(pool)
        .await?;
    Ok(top.unwrap_or(0))
}

/// [`Store::audit_counts`].
pub(super) async fn audit_counts(
    pool: &SqlitePool,
    filter: &AuditFilter,
    by: AuditGroup,
) -> Result<Vec<AuditCount>, StoreError> {
    let mut q: QueryBuilder<Sqlite> = audit_sql::counts_query(Dialect::Sqlite, filter, by);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(audit_sql::count_from_row).collect()
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
