//! Reaching the database: settings, the serving pool, migrations, and the check that every
//! node uses the same key file.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgSslMode};

use super::rows::now_unix;
use super::{PgStore, MIGRATOR};
use crate::secret::Secret;
use crate::store::seal::{opens_key_check, seal_key_check};
use crate::store::{KeyFile, Sealer, StoreError};

/// Server-side cap on one statement of the serving pool. A request gives up at its deadline
/// anyway; this frees the backend of a statement stuck behind a lock after the client left.
const STATEMENT_TIMEOUT_MS: u64 = 5000;
/// A pooled connection idle this long is pinged before use. Shorter than any restart or
/// failover of the database (which takes seconds), longer than a connection rests under load.
const PING_IF_IDLE: Duration = Duration::from_millis(100);
/// Added to [`PgSettings::max_request`] for `idle_in_transaction_session_timeout`.
pub const IDLE_TX_MARGIN: Duration = Duration::from_secs(1);

/// How to reach the database (`[store] type = "postgres"`).
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// `postgres://user:password@host:port/database?sslmode=…`. A secret: it may hold the
    /// password, so it is never printed.
    pub url: Secret,
    /// Most connections one node opens.
    pub pool_size: u32,
    /// How long a request waits for a connection, opening one included. Keep it well below
    /// the request deadline: with the database down, a login makes two store calls (the
    /// work, then the audit record) that each wait this long before the Reject.
    pub connect_timeout: Duration,
    /// Overrides `sslmode` in the URL when set.
    pub ssl_mode: Option<PgSslMode>,
    /// PEM file with the CA that signed the server's certificate (`verify-ca`/`verify-full`).
    pub ssl_root_cert: Option<PathBuf>,
    /// The longest any request may run (the longest request deadline of any client). A
    /// request's transaction that sits idle longer than this plus [`IDLE_TX_MARGIN`] belongs
    /// to a node that stalled, and the database ends it (see `serving_pool`).
    pub max_request: Duration,
    /// Where the URL came from, for messages: `store.url`, or `store.url_file PATH` (the
    /// key an admin who keeps the URL in a file will find in their config).
    pub url_source: String,
}

impl PgSettings {
    /// Settings with the defaults of `conf/radmfa.toml` for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PgSettings {
            url: Secret::from(url.into()),
            pool_size: crate::config::raw::DEFAULT_PG_POOL_SIZE,
            connect_timeout: Duration::from_millis(
                crate::config::raw::DEFAULT_PG_CONNECT_TIMEOUT_MS,
            ),
            ssl_mode: None,
            ssl_root_cert: None,
            max_request: Duration::from_millis(crate::config::raw::DEFAULT_REQUEST_DEADLINE_MS),
            url_source: "store.url".into(),
        }
    }

    /// Where the URL points, for messages and the moved mark: "database D on HOST:PORT as
    /// USER", never the password. `None` for a URL that does not parse, nor for one whose
    /// password may end early ([`Self::unencoded_warning`]): such a URL can parse with
    /// the password's tail read as the port and the database (review).
    pub fn place(&self) -> Option<String> {
        let url = self.url.expose_str().unwrap_or_default();
        if !percent_encoding_hint(url).is_empty() {
            return None;
        }
        let o = parse_url(url).ok()?;
        Some(format!(
            "database {} on {}:{} as {}",
            o.get_database().unwrap_or(o.get_username()),
            o.get_host(),
            o.get_port(),
            o.get_username()
        ))
    }

    /// A '/', '#', '?' or '@' before the URL's last '@' (a password pasted as it is): some
    /// such URLs parse, the user name read as the host and the password's tail as the port
    /// and the database, and then fail with a DNS error that says nothing of the cause.
    /// For `config check` and the start's warnings; names no part of the URL.
    pub fn unencoded_warning(&self) -> Option<String> {
        let url = self.url.expose_str().unwrap_or_default();
        let hint = percent_encoding_hint(url);
        (!hint.is_empty() && parse_url(url).is_ok()).then(|| {
            format!(
                "store: {}: the text before its last '@' holds a '/', '#', '?' or '@', so \
                 the host, port and database may be read from the password{}",
                self.url_source, hint
            )
        })
    }

    /// The connection options the URL and the TLS keys describe.
    pub fn connect_options(&self) -> Result<PgConnectOptions, StoreError> {
        let url = self.url.expose_str().unwrap_or_default();
        let mut options = parse_url(url).map_err(|problem| {
            StoreError::Db(sqlx::Error::Configuration(
                format!("{}: {problem}", self.url_source).into(),
            ))
        })?;
        if let Some(mode) = self.ssl_mode {
            options = options.ssl_mode(mode);
        }
        if let Some(ca) = &self.ssl_root_cert {
            options = options.ssl_root_cert(ca);
        }
        // sqlx sends `extra_float_digits` in every startup packet by default; pgbouncer
        // refuses a startup parameter it does not know, and radmfa stores no floats.
        // sqlx warns of each statement over a second with its whole text: behind a locked
        // table that was a 700-character line per login, past radmfa's own once-a-minute
        // error lines (pipeline::fault_log). Kept, at debug level.
        use sqlx::ConnectOptions;
        Ok(options
            .application_name("radmfa")
            .extra_float_digits(None)
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1)))
    }
}

/// Parses a `postgres://` URL. The problem it reports never contains the URL itself, which
/// may hold a password.
pub fn parse_url(url: &str) -> Result<PgConnectOptions, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql://".into());
    }
    if let Some((_, query)) = url.split_once('?') {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            // sqlx's own message hides both the value and the parameter's name (both
            // quoted), so a mistyped mode said nothing: checked here, by name. The value is
            // not repeated (after an unescaped '&' in a password it could be the password's
            // tail).
            // Any case, as sqlx reads it (`sslmode=Require` worked, and must go on working).
            let mode = value.to_ascii_lowercase();
            if matches!(key.as_ref(), "sslmode" | "ssl-mode") && !SSL_MODES.contains(&&*mode) {
                return Err(format!(
                    "the parameter {key:?} takes one of {}{}",
                    SSL_MODES.join(", "),
                    percent_encoding_hint(url)
                ));
            }
        }
        for (n, (key, _)) in form_urlencoded::parse(query.as_bytes()).enumerate() {
            let known = KNOWN_PARAMETERS.contains(&key.as_ref())
                || (key.starts_with("options[") && key.ends_with(']'));
            if !known {
                // sqlx would log the ignored parameter *with its value* (a libpq-only
                // `sslpassword`, a miscased `Password`): refused here. Named only if it is
                // a libpq parameter name: after an unescaped `&` in a password, the "key"
                // is the rest of the password.
                let lower = key.to_ascii_lowercase();
                let named = if LIBPQ_ONLY.contains(&lower.as_str())
                    || KNOWN_PARAMETERS.contains(&lower.as_str())
                {
                    format!("{key:?}")
                } else {
                    format!("number {}", n + 1)
                };
                // A '?' in the password starts the query there: the hint says why.
                return Err(format!(
                    "the parameter {named} is not one radmfa's PostgreSQL client knows \
                     (known: {}){}",
                    KNOWN_PARAMETERS.join(", "),
                    percent_encoding_hint(url)
                ));
            }
        }
    }
    // sqlx's messages name the part that is wrong (port, parameter), not the whole URL,
    // but may quote a value ("unknown value \"…\" for `ssl_mode`"): after a password
    // with an unescaped '&', that value is the password's tail. Quoted text is left out.
    PgConnectOptions::from_str(url).map_err(|e| {
        // sqlx says "error with configuration: " twice over.
        let said = e.to_string();
        let mut said = said.as_str();
        while let Some(rest) = said.strip_prefix("error with configuration: ") {
            said = rest;
        }
        format!(
            "is not a valid connection URL: {}{}",
            crate::config::hide_quoted(said),
            percent_encoding_hint(url)
        )
    })
}

/// A '/', '#', '?' or '@' in the password ends the URL's user part early, and sqlx then
/// complains of the port or the host, which hides the cause. Said when the text before
/// the URL's last '@' holds one; the password itself is not repeated.
fn percent_encoding_hint(url: &str) -> &'static str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let userinfo = rest.rsplit_once('@').map_or("", |(user, _)| user);
    if userinfo.contains(['/', '#', '?', '@']) {
        " (a '/', '#', '?' or '@' in the user name or password must be percent-encoded: \
         %2F, %23, %3F, %40)"
    } else {
        ""
    }
}

/// libpq's `sslmode` values (sqlx takes the same).
const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// libpq connection parameters sqlx-postgres does not read: named when refused, as is one
/// of [`KNOWN_PARAMETERS`] in other case (`SSLMode`); anything else may be part of a
/// password.
const LIBPQ_ONLY: &[&str] = &[
    "sslpassword",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslnegotiation",
    "sslcertmode",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "connect_timeout",
    "client_encoding",
    "target_session_attrs",
    "load_balance_hosts",
    "gssencmode",
    "gsslib",
    "channel_binding",
    "require_auth",
    "passfile",
    "krbsrvname",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "service",
    "fallback_application_name",
    "requirepeer",
];

/// The URL parameters sqlx-postgres (0.8) reads, besides `options[NAME]`.
const KNOWN_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

impl PgStore {
    /// Connects, brings the schema up to date (see [`PgStore::migrate`]) and checks that
    /// `sealer` holds the key this database was set up with.
    pub async fn open(settings: &PgSettings, sealer: Sealer) -> Result<Self, StoreError> {
        Self::open_as_is(settings, sealer)
            .await
            .map_err(|e| super::privilege::with_hint(settings, e))
    }

    async fn open_as_is(settings: &PgSettings, sealer: Sealer) -> Result<Self, StoreError> {
        Self::migrate(settings).await?;
        let pool = serving_pool(settings)?;
        let store = PgStore {
            audit_batch: std::sync::Arc::new(audit_batcher(settings, &pool)?),
            pool,
            sealer,
            diagnosis: Default::default(),
        };
        store.check_key().await?;
        store.audit_batch.open_own().await;
        Ok(store)
    }

    /// [`PgStore::open`] with the key from `key_file`. A missing key file is created only
    /// for a database no node has used yet; otherwise the key must be copied from a node.
    pub async fn open_with_key_file(
        settings: &PgSettings,
        key_file: &Path,
    ) -> Result<Self, StoreError> {
        Self::open_with_key_file_as_is(settings, key_file)
            .await
            .map_err(|e| super::privilege::with_hint(settings, e))
    }

    async fn open_with_key_file_as_is(
        settings: &PgSettings,
        key_file: &Path,
    ) -> Result<Self, StoreError> {
        let key_err = |reason: &str| StoreError::KeyFile {
            path: key_file.display().to_string(),
            reason: reason.into(),
        };
        // A key file that is not the one the database recorded is refused before the
        // migrations run, not after they upgraded a database this node then cannot use
        // (and older nodes may refuse).
        if key_file.exists() {
            let sealer = KeyFile::load(key_file)?;
            if !Self::recorded_key_opens(settings, &sealer).await? {
                return Err(key_err(WRONG_KEY));
            }
        }
        Self::migrate(settings).await?;
        let pool = serving_pool(settings)?;
        wait_for_copy(&pool).await?;
        // In use: a key recorded, or seeds sealed with one (a key_check row lost to a partial
        // restore): a new key file would only be a wrong one left behind.
        let in_use = || async {
            Ok::<_, StoreError>(
                stored_key_check(&pool).await?.is_some()
                    || sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM tokens)")
                        .fetch_one(&pool)
                        .await?,
            )
        };
        let sealer = if key_file.exists() {
            KeyFile::load(key_file)?
        } else if in_use().await? {
            return Err(key_err(
                "does not exist, and this database is already in use: copy the key file \
                 from a node that uses this database (all nodes share one key file), or \
                 restore it from its backup",
            ));
        } else {
            KeyFile::load_or_create(key_file)?
        };
        let store = PgStore {
            audit_batch: std::sync::Arc::new(audit_batcher(settings, &pool)?),
            pool,
            sealer,
            diagnosis: Default::default(),
        };
        store.check_key().await.map_err(|e| match e {
            StoreError::Decrypt(reason) => key_err(&reason),
            other => other,
        })?;
        store.audit_batch.open_own().await;
        Ok(store)
    }

    /// How far the database is behind this release's schema, without changing it, as
    /// [`crate::store::sqlite::SqliteStore::schema_behind`] says it for SQLite.
    pub async fn schema_behind(settings: &PgSettings) -> Result<Option<(i64, i64)>, StoreError> {
        let pool = pool_of(settings, 1)?;
        let behind = schema_behind_on(&pool).await;
        crate::store::pool_close::close_pool(&pool).await;
        match behind {
            Ok(behind) => Ok(behind),
            Err(e) => Err(super::privilege::with_hint(
                settings,
                why_no_connection(settings, e).await,
            )),
        }
    }

    /// Whether a node has set this database up (its key's check value is recorded), changing
    /// nothing: for `config check`, which must not create a key file or record a key.
    pub async fn key_recorded(settings: &PgSettings) -> Result<bool, StoreError> {
        let recorded = Self::recorded_key_check(settings)
            .await
            .map_err(|e| super::privilege::with_hint(settings, e))?;
        Ok(recorded.is_some())
    }

    /// Whether `sealer` is the key the database recorded (yes where it records none), changing
    /// nothing: checked before the migrations run, and by `config check` of a database
    /// behind this release's schema, which it does not open.
    pub async fn recorded_key_opens(
        settings: &PgSettings,
        sealer: &Sealer,
    ) -> Result<bool, StoreError> {
        Ok(Self::recorded_key_check(settings)
            .await?
            .is_none_or(|row| opens_key_check(sealer, &row)))
    }

    /// The database's recorded key check value, if it has one.
    async fn recorded_key_check(settings: &PgSettings) -> Result<Option<Vec<u8>>, StoreError> {
        // It only reads: `radmfa audit` asks it first, and may run on a read-only session.
        let pool = pool_for(settings, 1, Use::Reads)?;
        let table: Option<String> =
            match sqlx::query_scalar("SELECT to_regclass('key_check')::text")
                .fetch_one(&pool)
                .await
            {
                Ok(table) => table,
                Err(e) => {
                    crate::store::pool_close::close_pool(&pool).await;
                    return Err(why_no_connection(settings, e).await);
                }
            };
        let recorded = match table {
            Some(_) => stored_key_check(&pool).await,
            None => Ok(None),
        };
        // Closed before an error is returned too: a pool dropped at the process's exit
        // leaves "Connection reset by peer" in the server's log.
        crate::store::pool_close::close_pool(&pool).await;
        recorded
    }

    /// Records our key's check value if the database has none yet, then verifies the stored
    /// one. Two first nodes racing both insert-or-skip and then check the single surviving
    /// row, so the loser (with a different key) refuses to start. As in SQLite's store, a
    /// database without the row but with seeds (a partial restore; a DBA deleting the row)
    /// gets it only from a key that opens one of them: else a node without the key file
    /// would make a new key, record it, and start with every seed unreadable.
    async fn check_key(&self) -> Result<(), StoreError> {
        if stored_key_check(&self.pool).await?.is_none() {
            let seeds: Vec<(String, Vec<u8>)> =
                sqlx::query_as("SELECT serial, secret FROM tokens ORDER BY id LIMIT 3")
                    .fetch_all(&self.pool)
                    .await?;
            let opens = |(serial, sealed): &(String, Vec<u8>)| {
                crate::store::columns::open_seed(&self.sealer, serial, sealed).is_ok()
            };
            if !seeds.is_empty() && !seeds.iter().any(opens) {
                return Err(StoreError::Decrypt(
                    "opens none of this database's seeds (and the database records no key): \
                     restore the key file the other nodes use"
                        .into(),
                ));
            }
        }
        sqlx::query(
            "INSERT INTO key_check (id, sealed, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(seal_key_check(&self.sealer))
        .bind(now_unix())
        .execute(&self.pool)
        .await?;
        let stored = stored_key_check(&self.pool)
            .await?
            .ok_or_else(|| StoreError::Corrupt("key_check row vanished".into()))?;
        if opens_key_check(&self.sealer, &stored) {
            return Ok(());
        }
        Err(StoreError::Decrypt(WRONG_KEY.into()))
    }

    /// Applies pending migrations on a connection of its own (no statement timeout: a
    /// future migration may take a while). Safe when several nodes start at once: sqlx's
    /// migrator holds `pg_advisory_lock` for the whole run, so one node migrates and the
    /// others wait, then find nothing to do. Returns the schema version now in place.
    ///
    /// Every lock wait gives up after [`MIGRATION_LOCK_TIMEOUT`] and the run is tried again
    /// (for up to [`MIGRATION_LOCK_PATIENCE`]). In a rolling upgrade the other nodes keep
    /// serving while one migrates: an `ALTER TABLE` waiting for its lock behind any open
    /// transaction on that table (a DBA's idle `psql` session) would otherwise queue every
    /// later query on the table behind it, and all logins on every node would stall until
    /// that session ended.
    pub async fn migrate(settings: &PgSettings) -> Result<i64, StoreError> {
        // A one-connection pool rather than a bare connection: the migrator holds its lock on
        // the connection it acquires, and the pool's future is `Send` (a `&mut PgConnection`
        // run is not, so it could not be spawned).
        let pool = crate::store::pool_options::without_reaper()
            .max_connections(1)
            .acquire_timeout(settings.connect_timeout.max(CONNECT_FLOOR))
            .after_connect(|conn, _| Box::pin(quiet_notices(conn)))
            .connect_with(
                settings
                    .connect_options()?
                    .options(migration_session_settings()),
            )
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            Err(e) => return Err(why_no_connection(settings, e).await),
        };
        let result = async {
            // Checked here, not in `after_connect`, so the reason reaches the operator
            // instead of ending as a pool timeout.
            refuse_read_only(&mut *pool.acquire().await?).await?;
            run_migrations_patiently(&pool).await?;
            let version: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&pool)
                    .await?;
            let version = version.unwrap_or(0);
            let known = super::known_schema_version();
            if version > known {
                tracing::warn!(
                    version,
                    known,
                    "the database schema is newer than this radmfa release knows (another \
                     node was upgraded first); it keeps working on it, but upgrade this node"
                );
            }
            Ok::<_, StoreError>(version)
        }
        .await;
        crate::store::pool_close::close_pool(&pool).await;
        result
    }
}

/// The migrating connection keeps the server's notices to itself: sqlx's migrator makes
/// its table with `CREATE TABLE IF NOT EXISTS` at every run, and the notice that it exists
/// ("relation \"_sqlx_migrations\" already exists, skipping") was the only line a start
/// logged of the migrations, at INFO. Warnings still come. A statement, not a startup
/// parameter: pgbouncer refuses a startup parameter it was not told to track (docs/ha.md).
async fn quiet_notices(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET client_min_messages = warning")
        .execute(conn)
        .await
        .map(drop)
}

/// [`PgStore::schema_behind`] of the database `pool` reads.
pub(in crate::store) async fn schema_behind_on(
    pool: &PgPool,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let bookkept: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !bookkept {
        return Ok(crate::store::sqlite::behind(&MIGRATOR, &[]));
    }
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?;
    Ok(crate::store::sqlite::behind(&MIGRATOR, &applied))
}

/// The requests' pool: `store.pool_size` connections.
fn serving_pool(settings: &PgSettings) -> Result<PgPool, StoreError> {
    pool_of(settings, settings.pool_size)
}

/// What a pool's connections are for: a read-only session is refused for writing, and is
/// just what an auditor's reading may be given (a role with `default_transaction_read_only`,
/// a DBA's freeze of writes during the very incident being looked into, a standby).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Writes,
    Reads,
}

/// One connection for `radmfa audit`, which reads the audit log and nothing else: no key
/// file, no migrations (`super::super::audit_reader`).
pub(in crate::store) fn audit_reading_pool(settings: &PgSettings) -> Result<PgPool, StoreError> {
    pool_for(settings, 1, Use::Reads)
}

/// The shared audit insert with its own connection, made as the serving pool's are (see
/// `audit_batch.rs`): one more connection per node than `store.pool_size`.
fn audit_batcher(
    settings: &PgSettings,
    serving: &PgPool,
) -> Result<super::audit_batch::AuditBatcher, StoreError> {
    Ok(super::audit_batch::AuditBatcher::new(
        pool_of(settings, 1)?,
        serving.clone(),
        settings.max_request,
    ))
}

/// A pool of at most `size` serving connections, opened as needed: bounded waits, dead
/// connections weeded out, never a standby or a read-only session.
///
/// A request's writes are one transaction that holds its rows' locks until the reply
/// (`request_tx.rs`). If the node stalls mid-request (a paused VM, a partition that sends
/// no reset), its connection stays open and those locks would block the same user's logins
/// on every other node until TCP keepalive gives up, hours later. A live request never
/// leaves its transaction idle longer than its own deadline, so the database ends any that
/// does: the stalled node's writes roll back (its request could not have been answered
/// Accept without committing them) and the other nodes go on.
fn pool_of(settings: &PgSettings, size: u32) -> Result<PgPool, StoreError> {
    pool_for(settings, size, Use::Writes)
}

fn pool_for(settings: &PgSettings, size: u32, used: Use) -> Result<PgPool, StoreError> {
    let idle_tx = settings.max_request + IDLE_TX_MARGIN;
    let options = settings
        .connect_options()?
        .options(serving_session_settings(idle_tx));
    Ok(crate::store::pool_options::without_reaper()
        .max_connections(size)
        .acquire_timeout(settings.connect_timeout)
        // After a database restart or failover the old connections are dead, and without a
        // check each would cost one failed (rejected) login before the pool noticed. sqlx
        // already pings every connection when it is released; pinging again on every acquire
        // (`test_before_acquire`) cost a round trip per store call for nothing under load.
        // Only a connection idle for longer than any database restart can take gets pinged:
        // one that died since its release has been idle at least that long.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_IF_IDLE {
                    return Ok(true);
                }
                // A dead connection is closed and replaced; no error is raised for it.
                Ok(sqlx::Connection::ping(conn).await.is_ok())
            })
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                match used {
                    Use::Writes => refuse_read_only(conn).await,
                    Use::Reads => Ok(()),
                }
            })
        })
        .after_release(move |conn, _| Box::pin(async move { fit_to_reuse(conn, used).await }))
        .connect_lazy_with(options))
}

/// sqlx's pool retries a refused or failed connection in silence until its acquire timeout
/// and then says only "pool timed out while waiting for an open connection": a stopped
/// database, a wrong port and a wrong password all looked alike at start. On a pool timeout
/// one direct connection is tried, and its error (connection refused, password
/// authentication failed, …) is the one reported.
async fn why_no_connection(settings: &PgSettings, e: sqlx::Error) -> StoreError {
    if !matches!(e, sqlx::Error::PoolTimedOut) {
        return StoreError::Db(e);
    }
    let Ok(options) = settings.connect_options() else {
        return StoreError::Db(e);
    };
    let wait = settings.connect_timeout.max(CONNECT_FLOOR);
    match direct_cause(&options, wait).await {
        Err(cause) => StoreError::Db(cause),
        Ok(()) => StoreError::Db(e),
    }
}

/// One connection made directly, as the serving pool would make it (refusing a standby or
/// a read-only session):
/// `Ok` if the database takes it, else why not.
pub(super) async fn direct_cause(
    options: &sqlx::postgres::PgConnectOptions,
    wait: Duration,
) -> Result<(), sqlx::Error> {
    let connect = async {
        let mut conn = <PgConnection as sqlx::Connection>::connect_with(options).await?;
        let standby = refuse_read_only(&mut conn).await;
        let _ = sqlx::Connection::close(conn).await;
        standby
    };
    match tokio::time::timeout(wait, connect).await {
        Ok(outcome) => outcome,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection within {} ms", wait.as_millis()),
        ))),
    }
}

/// How long a connection given back may take to show it is fit for the next borrower.
const RELEASE_CHECK: Duration = Duration::from_secs(2);

/// Run on every connection given back to the pool, before sqlx's own ping (which has no
/// time limit): one round trip, bounded, that shows the session answers and is not inside
/// a transaction. A connection that fails it is closed, and its slot freed.
///
/// - A request cut off by its deadline mid-statement gives its connection back with the
///   answer still owed. After a failover whose old server went silent (no reset), sqlx's
///   ping waited for it until TCP gave up, ~15 minutes, holding the pool slot; with every
///   slot held so, the node refused every login while the new primary was up.
/// - A `BEGIN` cut off before its answer (sqlx 0.8.6, transact-rs/sqlx#4393) leaves the
///   session inside a transaction that sqlx does not know of: the next borrower's writes
///   would land in it, reported done but not committed. Inside a transaction, `now()` is
///   its start, before this statement's; outside, a simple query is its own transaction,
///   started with the statement, and the two are the same. (Sent as a simple query: over
///   the extended protocol they differed.)
/// - A session that became read-only after it was made (`default_transaction_read_only`
///   turned on by ALTER SYSTEM and a reload) fails every write with SQLSTATE 25006. Kept,
///   it would go on failing logins; closed, the pool makes a new one, which
///   [`refuse_read_only`] refuses while the setting lasts and takes once it is reset. (Not
///   for a reading pool's: read-only is fine there.)
async fn fit_to_reuse(conn: &mut sqlx::PgConnection, used: Use) -> Result<bool, sqlx::Error> {
    use sqlx::{Executor, Row};
    // A bare &str has no arguments, and sqlx sends it as a simple query.
    let check = conn.fetch_one(
        "SELECT now() = statement_timestamp(), current_setting('transaction_read_only') = 'on'",
    );
    match tokio::time::timeout(RELEASE_CHECK, check).await {
        Ok(Ok(row)) if !row.try_get::<bool, _>(0)? => {
            tracing::warn!(
                "a database connection came back inside a transaction (a cut-off BEGIN); \
                 closed"
            );
            Ok(false)
        }
        Ok(Ok(row)) if used == Use::Writes && row.try_get::<bool, _>(1)? => {
            tracing::warn!(
                "a database connection's session is read-only now \
                 (default_transaction_read_only, or the server became a standby); closed, \
                 and no new one is taken while the database stays read-only"
            );
            Ok(false)
        }
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "a connection given back did not answer within 2 s; closed",
        ))),
    }
}

/// The settings each serving connection asks for in its startup packet's `options`.
/// docs/ha.md lists their names for pgbouncer's `track_extra_parameters` (pgbouncer refuses
/// a connection whose `options` name a setting it does not track); a test checks the list.
fn serving_session_settings(idle_tx: Duration) -> Vec<(&'static str, String)> {
    vec![
        ("statement_timeout", STATEMENT_TIMEOUT_MS.to_string()),
        (
            "idle_in_transaction_session_timeout",
            idle_tx.as_millis().to_string(),
        ),
        // The store's guards (a step, a State, a send slot taken once) are single
        // statements written for READ COMMITTED: a loser waits for the winner's row lock,
        // then sees its commit. A database or role whose default is REPEATABLE READ or
        // SERIALIZABLE would make racing failure counts fail instead of adding up and let a
        // send limit count from an old snapshot, so the level is set here, whatever the
        // DBA's default. sqlx writes `-c key=value` unquoted: the server splits options at
        // spaces unless a backslash escapes them.
        (
            "default_transaction_isolation",
            "read\\ committed".to_string(),
        ),
        // A reply waits for its writes' commit; with synchronous_commit off (a DBA's speed
        // setting) a committed used step or State could vanish in a database crash and be
        // accepted again. SQLite's store pins synchronous = FULL for the same reason.
        ("synchronous_commit", "on".to_string()),
    ]
}

/// The settings of the connection that migrates (see [`PgStore::migrate`]); listed in
/// docs/ha.md with the serving ones.
fn migration_session_settings() -> Vec<(&'static str, String)> {
    vec![(
        "lock_timeout",
        MIGRATION_LOCK_TIMEOUT.as_millis().to_string(),
    )]
}

/// Why a key file is refused whose key the database did not record.
pub const WRONG_KEY: &str =
    "is not the key this database was set up with; every node must use the same key file";

async fn stored_key_check(pool: &PgPool) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT sealed FROM key_check WHERE id = 1")
            .fetch_optional(pool)
            .await?,
    )
}

/// Held (an advisory lock on its hash) by `store migrate-to-postgres` until its copy is
/// committed or rolled back; see [`wait_for_copy`].
pub const COPY_LOCK: &str = "radmfa store migrate-to-postgres";
/// How often a node waiting for a copy says that it still waits.
const COPY_WAIT_SAID_EVERY: Duration = Duration::from_secs(60);

/// Waits while `store migrate-to-postgres` copies into this database. Its table locks keep
/// the copy whole anyway (a write waits until the copy is committed), but a node started
/// during a long copy would serve meanwhile: every login's writes stuck behind those locks
/// until the request deadline, rejected, with nothing in the log to say why. So a node (or
/// an admin command) waits before using the database, and says what it waits for.
async fn wait_for_copy(pool: &PgPool) -> Result<(), StoreError> {
    // Shared and at once given back (a transaction of its own): only the copy's exclusive
    // hold of the same lock makes it fail.
    let free: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock_shared(hashtextextended($1, 0))")
            .bind(COPY_LOCK)
            .fetch_one(pool)
            .await?;
    if free {
        return Ok(());
    }
    let started = std::time::Instant::now();
    tracing::warn!(
        "`radmfa store migrate-to-postgres` is copying into this database; waiting for the \
         copy to be committed before using it"
    );
    while !copy_over_within(pool, COPY_WAIT_SAID_EVERY).await? {
        tracing::warn!(
            "still waiting for `radmfa store migrate-to-postgres` to finish its copy into \
             this database ({} s so far)",
            started.elapsed().as_secs()
        );
    }
    tracing::info!(
        "the copy into this database is over (waited {} s); going on",
        started.elapsed().as_secs()
    );
    Ok(())
}

/// Waits for the copy's lock (shown in `pg_locks` as an advisory lock not granted) for at
/// most `wait`: true once the copy is over, false when it still runs.
async fn copy_over_within(pool: &PgPool, wait: Duration) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    // The serving connection's statement timeout would cut each wait to 5 s.
    for set in [
        format!("SET LOCAL lock_timeout = {}", wait.as_millis()),
        format!("SET LOCAL statement_timeout = {}", wait.as_millis() + 1000),
    ] {
        sqlx::query(&set).execute(&mut *tx).await?;
    }
    let waited = sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))")
        .bind(COPY_LOCK)
        .execute(&mut *tx)
        .await;
    match waited {
        Ok(_) => {
            tx.commit().await?;
            Ok(true)
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// How long one of the migration's lock waits may last before it gives up (and lets the
/// queries queued behind it through); see [`PgStore::migrate`].
pub const MIGRATION_LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the migration keeps trying again after lock timeouts before the node gives up
/// starting. Also bounds the wait for another node's migration (its advisory lock).
const MIGRATION_LOCK_PATIENCE: Duration = Duration::from_secs(300);
/// PostgreSQL's SQLSTATE for a lock wait cut off by `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// Runs the migrator, again after each lock timeout until [`MIGRATION_LOCK_PATIENCE`] runs
/// out. A migration that timed out rolled back whole (each runs in its own transaction, its
/// bookkeeping row included), so trying again is safe.
async fn run_migrations_patiently(pool: &PgPool) -> Result<(), StoreError> {
    if schema_is_current(pool).await? {
        return Ok(());
    }
    let started = std::time::Instant::now();
    loop {
        let err = match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !waited_too_long_for_a_lock(&err) || started.elapsed() >= MIGRATION_LOCK_PATIENCE {
            return Err(err.into());
        }
        tracing::warn!(
            "schema migration: a table it changes (or another node's migration) is locked by \
             another session; trying again (pg_locks shows who holds it)"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every migration this release knows is applied, unchanged: nothing to run. Asked before
/// the migrator, which issues `CREATE TABLE IF NOT EXISTS _sqlx_migrations` on every run: a
/// serving role without the right to create in the schema (a DBA's least privilege, with
/// `radmfa db migrate` run by a more privileged role, as docs/ha.md describes) could not
/// start at all. A migration changed since it was applied is left to the migrator, which
/// refuses it.
async fn schema_is_current(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let bookkept: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !bookkept {
        return Ok(false);
    }
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?;
    Ok(MIGRATOR.iter().all(|m| {
        applied
            .iter()
            .any(|(v, sum)| *v == m.version && sum[..] == m.checksum[..])
    }))
}

fn waited_too_long_for_a_lock(err: &sqlx::migrate::MigrateError) -> bool {
    use sqlx::migrate::MigrateError;
    let db = match err {
        MigrateError::Execute(sqlx::Error::Database(db))
        | MigrateError::ExecuteMigration(sqlx::Error::Database(db), _) => db,
        _ => return false,
    };
    db.code().as_deref() == Some(LOCK_NOT_AVAILABLE)
}

/// The migration waits at least this long for the database (a node starting next to a
/// database that is still starting up), however short `connect_timeout` is.
pub(super) const CONNECT_FLOOR: Duration = Duration::from_secs(5);

/// A hot standby accepts connections and reads but refuses every write: a node pointed at
/// one (a stale DNS name after a failover) would reject every login one failed write at a
/// time. Refusing the connection instead makes the pool retry until the primary answers.
///
/// A primary's session can be read-only too: `default_transaction_read_only = on` set by a
/// DBA who froze writes (for the database, the role, or the whole server). It is refused
/// alike, not overridden in the startup packet: the DBA means it. While it lasts logins are
/// refused and the pool's diagnosis says why; once it is reset, the next connection made is
/// writable and logins work again. (Accepted, such a session kept every login failing with
/// "cannot execute UPDATE in a read-only transaction" long after the reset, since a
/// database's or role's settings are read only when a session starts.)
/// How [`refuse_read_only`]'s two refusals begin, for [`not_there_yet`].
const STANDBY: &str = "the database is a read-only standby";
const READ_ONLY_SESSION: &str = "the database session is read-only";

/// Whether a store that failed to open may take a node by itself, later, so a starting
/// `serve` waits for it: no connection (refused, unreachable, timed out), the server
/// starting up or shutting down, out of connection slots, or a standby or read-only
/// session (a failover under way). Not a wrong password, an unknown database or the wrong
/// key, which no wait mends.
pub(crate) fn not_there_yet(e: &StoreError) -> bool {
    let StoreError::Db(e) = e else {
        return false;
    };
    match e {
        // A TLS handshake that fails (a server certificate that does not verify: no CA for
        // it in ssl_root_cert, a name it is not for, expired; no cipher in common) comes as
        // an I/O error too, and no wait mends it: retried, the node waited for good, active
        // in systemd and answering nothing.
        sqlx::Error::Io(io) => !tls_handshake_failed(io),
        sqlx::Error::Tls(_) => false,
        sqlx::Error::PoolTimedOut => true,
        // 08: connection exception; 57P01-57P03: shutting down, crashed, starting up;
        // 53300: too many connections.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
        sqlx::Error::Configuration(m) => {
            let m = m.to_string();
            m.starts_with(STANDBY) || m.starts_with(READ_ONLY_SESSION)
        }
        _ => false,
    }
}

/// Whether `io` is a TLS handshake that failed (rustls's error, which tokio-rustls wraps
/// in an I/O error): a certificate that does not verify, no cipher or protocol version in
/// common, an alert from the server. None of that mends with waiting; a connection that
/// drops or is refused is a plain I/O error, not this.
fn tls_handshake_failed(io: &std::io::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = io.get_ref().map(|e| e as _);
    while let Some(e) = cause {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        cause = e.source();
    }
    false
}

async fn refuse_read_only(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let (standby, read_only): (bool, bool) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if standby {
        return Err(sqlx::Error::Configuration(
            format!(
                "{STANDBY}; point the store's URL (store.url or store.url_file) at the \
                 primary"
            )
            .into(),
        ));
    }
    if read_only {
        // Asked only now, and only for the message: a database that hides pg_settings
        // (REVOKE SELECT … FROM PUBLIC) must not have its writable sessions refused.
        let source: Option<String> = sqlx::query_scalar(
            "SELECT source FROM pg_settings WHERE name = 'default_transaction_read_only'",
        )
        .fetch_optional(&mut *conn)
        .await
        .ok()
        .flatten();
        return Err(sqlx::Error::Configuration(
            format!(
                "{READ_ONLY_SESSION}: default_transaction_read_only is on \
                 ({}); radmfa writes on every login, so it takes no connection (and \
                 refuses logins) until the setting is reset",
                set_by(source.as_deref().unwrap_or("unknown"))
            )
            .into(),
        ));
    }
    Ok(())
}

/// Where a setting came from, from `pg_settings.source`, as the DBA would undo it.
fn set_by(source: &str) -> String {
    match source {
        "database" => {
            "set for the database: ALTER DATABASE … RESET default_transaction_read_only".into()
        }
        "user" => "set for the role: ALTER ROLE … RESET default_transaction_read_only".into(),
        "database user" => "set for the role in this database: ALTER ROLE … IN DATABASE … \
                            RESET default_transaction_read_only"
            .into(),
        "configuration file" => "set in postgresql.conf or by ALTER SYSTEM".into(),
        "client" => "set in the connection's options".into(),
        other => format!("set by: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate the handshake refuses ends a start: waited for, the node never came
    /// up and never said it would not. A connection that drops is still waited for.
    #[test]
    fn a_refused_certificate_is_no_outage() {
        let tls = |e: rustls::Error| {
            StoreError::Db(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e,
            )))
        };
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert!(!not_there_yet(&tls(unknown)));
        let name = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        assert!(!not_there_yet(&tls(name)));
        let dropped = StoreError::Db(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(not_there_yet(&dropped));
        // No cipher or protocol version in common: no wait mends that either.
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        assert!(!not_there_yet(&tls(alert)));
        let reset = StoreError::Db(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(not_there_yet(&reset));
    }

    /// docs/ha.md tells pgbouncer users which settings to list in `track_extra_parameters`:
    /// one missing there and pgbouncer refuses every connection that sends it.
    #[test]
    fn the_pgbouncer_recipe_lists_every_setting_sent() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ha.md"));
        let (_, after) = doc
            .split_once("track_extra_parameters =")
            .expect("docs/ha.md shows the track_extra_parameters line");
        let listed: std::collections::BTreeSet<&str> = after
            .split('`')
            .next()
            .unwrap()
            .split(',')
            .map(str::trim)
            .collect();
        let sent: std::collections::BTreeSet<&str> = serving_session_settings(Duration::ZERO)
            .into_iter()
            .chain(migration_session_settings())
            .map(|(name, _)| name)
            .collect();
        assert_eq!(listed, sent);
    }

    /// A mistyped sslmode is named: sqlx's message hid both the value and the parameter
    /// ("unknown value \"(value not shown)\" for `(value not shown)`"), under a doubled
    /// prefix.
    #[test]
    fn a_mistyped_sslmode_is_named() {
        let e = parse_url("postgres://u:p@127.0.0.1/db?sslmode=disabled").unwrap_err();
        assert_eq!(
            e,
            "the parameter \"sslmode\" takes one of disable, allow, prefer, require, \
             verify-ca, verify-full"
        );
        assert!(parse_url("postgres://u:p@127.0.0.1/db?sslmode=verify-full").is_ok());
        assert!(parse_url("postgres://u:p@127.0.0.1/db?sslmode=Require").is_ok());
        // A password holding '#' or '/' unencoded: the hint, never the password.
        // And '?', which starts a query where the password goes on (HA walk-through).
        for url in [
            "postgres://u:pa#ss@127.0.0.1/db",
            "postgres://u:pa/ss@127.0.0.1:5432/db",
            "postgres://u:Zx?9kQw1@127.0.0.1:5432/db",
            "postgres://u:Zx/9k+Q=w@1#t?@127.0.0.1:5432/db",
        ] {
            let e = parse_url(url).unwrap_err();
            assert!(
                e.contains("must be percent-encoded: %2F, %23")
                    && !e.contains("ss@")
                    && !e.contains("Zx"),
                "{e}"
            );
        }
        // Passwords that start with '/' or with digits and '/' parse: the user name read as
        // the host, the rest as the port and the database. Nothing of them is shown, and
        // config check warns (review).
        for url in [
            "postgres://radmfa:/Secr3tTail@127.0.0.1:5432/radmfa",
            "postgres://radmfa:5432/Secr3tTail@127.0.0.1:5432/radmfa",
        ] {
            assert!(parse_url(url).is_ok(), "{url}");
            let s = PgSettings::new(url);
            assert_eq!(s.place(), None);
            let w = s.unencoded_warning().expect("a warning");
            assert!(
                w.contains("must be percent-encoded")
                    && !w.contains("Secr3t")
                    && !w.contains("5432"),
                "{w}"
            );
        }
        let s = PgSettings::new("postgres://radmfa:pw@127.0.0.1:5432/radmfa");
        assert_eq!(
            s.place().as_deref(),
            Some("database radmfa on 127.0.0.1:5432 as radmfa")
        );
        assert_eq!(s.unencoded_warning(), None);
        let e = parse_url("postgres://u:p@127.0.0.1:99999/db").unwrap_err();
        assert!(!e.contains("percent-encoded"), "{e}");
        assert!(
            e.starts_with("is not a valid connection URL: ")
                && !e.contains("error with configuration: error with configuration"),
            "{e}"
        );
    }
}
