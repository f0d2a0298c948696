//! `Config` → `AppState`: the backends built once at start-up and shared by every request.

use std::sync::Arc;

use anyhow::Context;

use crate::auth::PrimaryAuth;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, StoreConfig};
use crate::server::clients::ClientTable;
use crate::server::dedup::DuplicateCache;
use crate::server::metrics::Metrics;
use crate::store::audit_reader::AuditReader;
use crate::store::{KeyFile, PgStore, SqliteStore, Store};

pub struct AppState {
    /// The configuration in use: read it with [`AppState::config`]. SIGHUP swaps in the
    /// file's new `[[client]]`, `[ldap]` and policy sections (`admin::reload`); every other
    /// section stays as the server started with it. The live client table and directory are
    /// [`AppState::clients`] and [`AppState::primary`], built from it.
    config: arc_swap::ArcSwap<Config>,
    /// The live client table; replace it with [`AppState::set_clients`].
    pub clients: arc_swap::ArcSwap<ClientTable>,
    /// Bumped on every new client table, for what holds on to an entry (RadSec
    /// connections).
    pub clients_reloaded: tokio::sync::watch::Sender<u64>,
    /// The directory: read it with [`AppState::primary`]; SIGHUP may swap in a new one
    /// (changed `[ldap]` settings) while requests in flight finish on the old one.
    primary: arc_swap::ArcSwap<Arc<dyn PrimaryAuth>>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    /// Which dropped requests get a warning in the log.
    pub drops: crate::server::drop_log::DropLog,
    pub dedup: DuplicateCache,
    /// SMS and call providers, and the wake-up for requests waiting on a call.
    pub delivery: crate::delivery::Delivery,
    /// Which `[upstream]` servers stopped answering; kept across reloads.
    pub upstream_health: crate::auth::upstream::Health,
    /// One code check at a time per user, so the lockout counts every guess.
    pub code_turns: crate::pipeline::code_turns::CodeTurns,
    /// Empty answers per open prompt, on this node (`pipeline::empty_answers`).
    pub empty_answers: crate::pipeline::empty_answers::EmptyAnswers,
    /// How long each upstream group takes to refuse a login (per group: one server may
    /// answer in 2 ms, another in 50): a floor under refusals made without sending the
    /// user's field (`pipeline::login`).
    pub upstream_latency: crate::timing_pad::PadsByName,
    /// How long directory clients' wrong passwords of known users take, from the request's
    /// arrival: a floor under unknown names' refusals (`pipeline::login`).
    /// Per client (see [`crate::timing_pad::PadsByClient`]).
    pub refused_login_latency: crate::timing_pad::PadsByClient,
    /// The same for code-only clients' wrong codes of known users (a lookup, the tokens
    /// read, a failure written): a floor under their unknown names' refusals. Apart from
    /// the passwords': a bind takes another time, and a code-only client makes none.
    pub refused_code_latency: crate::timing_pad::PadsByClient,
    /// How long a client's `allow_groups` check takes a user in none of them (every
    /// group searched; a member's check is scaled up to that): a floor under the same
    /// client's wrong passwords, so that the right password of a user the rule keeps out
    /// (refused after those searches) is not told from a wrong one by its time.
    pub allow_check_latency: crate::timing_pad::PadsByClient,
    /// Whether the directory and the store answered lately (`pipeline::health`).
    pub backend_health: crate::pipeline::health::BackendHealth,
    /// Cancelled when radmfa is told to stop (SIGTERM): requests waiting on a call end
    /// within the shutdown grace instead of being cut off unanswered and unaudited.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Work that outlives the request or callback that started it and must still reach the
    /// store (a fraud report's block, an overturned verdict's record, hang-ups): waited for,
    /// briefly, before the store closes at shutdown.
    pub background: tokio_util::task::TaskTracker,
}

impl AppState {
    /// Builds the production backends (LDAP, the configured store, the system clock).
    pub async fn build(config: Config) -> anyhow::Result<Arc<AppState>> {
        let (store, migrated) = open_store_waiting(&config.store).await?;
        // Said once, at the start that did it: a release that cannot go back to an older
        // build without a restore (docs/operations.md, Upgrading) must leave a trace of when.
        if let Some((from, to)) = migrated {
            tracing::info!("store schema migrated from version {from} to {to}");
        }
        let primary = crate::auth::directory(config.ldap.as_ref()).context("setting up LDAP")?;
        Ok(Self::from_parts(
            config,
            primary,
            store,
            Arc::new(SystemClock),
        ))
    }

    pub fn from_parts(
        config: Config,
        primary: Arc<dyn PrimaryAuth>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            clients: arc_swap::ArcSwap::from_pointee(ClientTable::new(&config.clients)),
            clients_reloaded: tokio::sync::watch::Sender::new(0),
            dedup: DuplicateCache::new(config.server.duplicate_window),
            delivery: crate::delivery::Delivery::from_config(&config.delivery),
            metrics: Metrics::for_clients(config.clients.iter().map(|c| c.name.as_str())),
            drops: Default::default(),
            config: arc_swap::ArcSwap::from_pointee(config),
            primary: arc_swap::ArcSwap::from_pointee(primary),
            store,
            clock,
            upstream_health: Default::default(),
            code_turns: Default::default(),
            empty_answers: Default::default(),
            upstream_latency: Default::default(),
            refused_login_latency: Default::default(),
            refused_code_latency: Default::default(),
            allow_check_latency: Default::default(),
            backend_health: crate::pipeline::health::BackendHealth::unproven(),
            stopping: Default::default(),
            background: Default::default(),
        })
    }
}

impl AppState {
    /// The `[[client]]` entry for a source address over UDP or RadSec (`over_tls`), from the
    /// live table ([`crate::server::clients::ClientTable::lookup`]).
    pub fn client_for(
        &self,
        ip: std::net::IpAddr,
        over_tls: bool,
    ) -> Option<Arc<crate::config::ClientConfig>> {
        self.clients.load().lookup(ip, over_tls).cloned()
    }

    /// The configuration as it is now. A request takes it once per stage; SIGHUP may swap
    /// it between two stages, and what it swaps (limits, prompts, windows) is safe to change
    /// mid-login.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Swaps in a reloaded configuration (built by `admin::reload`).
    pub fn set_config(&self, config: Config) {
        self.config.store(Arc::new(config));
    }

    /// The directory as it is now (a request keeps the one it started with).
    pub fn primary(&self) -> Arc<dyn PrimaryAuth> {
        self.primary.load().as_ref().clone()
    }

    /// Swaps in a new directory; requests in flight finish on the old one.
    pub fn set_primary(&self, primary: Arc<dyn PrimaryAuth>) {
        self.primary.store(Arc::new(primary));
    }

    /// Swaps in a new client table and tells whoever holds an entry of the old one.
    pub fn set_clients(&self, table: ClientTable) {
        self.clients.store(Arc::new(table));
        self.clients_reloaded.send_modify(|n| *n += 1);
    }
}

/// Runs one admin command against the configured store, then closes it. A command does one
/// thing at a time, so its PostgreSQL pool holds one connection: with two, the second was
/// opened while the first was still being checked on its release, and the exit cut that
/// check off, so PostgreSQL logged "could not receive data from client: Connection reset by
/// peer" for about one command in four (closing the pool alone did not stop it).
///
/// A store behind this release's schema is migrated, and the command says so on stderr:
/// the release still running on it may be one that then refuses it.
pub async fn with_command_store<T>(
    cfg: &StoreConfig,
    command: impl AsyncFnOnce(&dyn Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    with_store(cfg, Schema::Migrate, command).await
}

/// What an admin command may do to a store behind this release's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    /// Bring it up to date, and say so (a command that changes the store).
    Migrate,
    /// Refuse it (a command that only reads): a look must not upgrade the store under the
    /// release still serving it, which an older build then refuses at its next command or
    /// restart, as `config check --connect` and `audit` already leave it alone.
    AsItIs,
}

/// [`with_command_store`], with what it does to a store behind this release's schema.
async fn with_store<T>(
    cfg: &StoreConfig,
    schema: Schema,
    command: impl AsyncFnOnce(&dyn Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let one = match cfg {
        StoreConfig::Postgres { settings, key_file } => {
            let mut settings = settings.clone();
            settings.pool_size = 1;
            StoreConfig::Postgres {
                settings,
                key_file: key_file.clone(),
            }
        }
        sqlite => sqlite.clone(),
    };
    // Held for the command: a migration's copy refuses to start while one runs, and a
    // command refuses during a copy (its change would miss the snapshot).
    // A lock file this user cannot make (a reader without write access to the directory)
    // is no reason to refuse a command that worked before the lock existed: only a copy
    // under way refuses.
    #[cfg(unix)]
    let _using = match cfg {
        StoreConfig::Sqlite { path, .. } => command_lock(path)?,
        StoreConfig::Postgres { .. } => None,
    };
    let store = match schema {
        Schema::Migrate => open_command_store(&one).await?,
        Schema::AsItIs => {
            refuse_behind(cfg).await?;
            open_store(&one).await?
        }
    };
    let result = command(store.as_ref()).await;
    store.close().await;
    result
}

/// Opens the store for an admin command that changes it, and says on stderr when that
/// migrated its schema, in `db migrate`'s words: an admin who ran a command with the new
/// binary beside an older release still serving learns why that release then refuses
/// the store.
pub async fn open_command_store(cfg: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    let (store, migrated) = open_store_migrating(cfg).await?;
    if let Some(versions) = migrated {
        eprintln!(
            "{}: {}",
            store_place(cfg),
            crate::admin::migrate::migrated(Some(versions))
        );
    }
    Ok(store)
}

/// The store as `db migrate` names it in what it says.
fn store_place(cfg: &StoreConfig) -> String {
    match cfg {
        StoreConfig::Sqlite { path, .. } => path.display().to_string(),
        StoreConfig::Postgres { .. } => "PostgreSQL store".into(),
    }
}

/// Refuses a store behind this release's schema, for a command that only reads.
async fn refuse_behind(cfg: &StoreConfig) -> anyhow::Result<()> {
    if let Some((at, known)) = schema_behind(cfg).await? {
        anyhow::bail!(
            "the store's schema is at version {at}, behind this release's {known}: a command \
             that only reads does not migrate it (the release still running on it may not \
             know the new schema); run `radmfa db migrate` (as the user radmfa runs as), or \
             start this release's `radmfa serve`, then ask again"
        );
    }
    Ok(())
}

/// How far an existing store's schema is behind this release's: (its version, this
/// release's), asked without changing anything. `None` when it is current, and for a
/// store not set up yet (no file, no tables): setting one up is no migration to tell of.
async fn schema_behind(cfg: &StoreConfig) -> anyhow::Result<Option<(i64, i64)>> {
    let behind = match cfg {
        StoreConfig::Sqlite { path, .. } if !path.exists() => None,
        StoreConfig::Sqlite { path, .. } => {
            // A moved store is neither read nor migrated; said as the opening says it.
            crate::store::moved::refuse_if_moved(path)?;
            SqliteStore::schema_behind(path).await.map_err(|e| {
                stale_wal_refused(e, || {
                    format!("reading the schema version of {}", path.display())
                })
            })?
        }
        StoreConfig::Postgres { settings, .. } => PgStore::schema_behind(settings)
            .await
            .with_context(|| format!("reading the schema version ({})", settings.url_source))?,
    };
    Ok(behind.filter(|(at, _)| *at > 0))
}

/// [`open_store`], and what it did to the store's schema: (the version it was at, this
/// release's) when it migrated an existing store, `None` when that was current or new.
/// Asked just before opening; a failure to ask is left to the opening, which says more.
pub async fn open_store_migrating(
    cfg: &StoreConfig,
) -> anyhow::Result<(Arc<dyn Store>, Option<(i64, i64)>)> {
    let behind = schema_behind(cfg).await.ok().flatten();
    let store = open_store(cfg).await?;
    Ok((store, behind))
}

/// [`open_store_migrating`] for `serve`: a PostgreSQL store that is not there yet (refused,
/// no answer, starting up, a standby or read-only during a failover) is asked again, at 1,
/// 2, 4… up to 30 s apart, each time said in the log, until it takes the node; anything
/// else (a wrong password, an unknown database, the wrong key) ends the start as before.
/// Exited instead, a node started during a database outage of some 20 s (a site powering
/// up with the database host last, a failover during patching) used up systemd's start
/// limit and stayed down until someone reset it, though a running node rides the same
/// outage out.
async fn open_store_waiting(
    cfg: &StoreConfig,
) -> anyhow::Result<(Arc<dyn Store>, Option<(i64, i64)>)> {
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        match open_store_migrating(cfg).await {
            Err(e)
                if matches!(cfg, StoreConfig::Postgres { .. })
                    && e.chain()
                        .find_map(|c| c.downcast_ref::<crate::store::StoreError>())
                        .is_some_and(crate::store::postgres::not_there_yet) =>
            {
                tracing::warn!(
                    "the PostgreSQL store is not available yet ({}); asking again in {} s \
                     (radmfa answers no request until it is)",
                    crate::admin::error_text(&e),
                    delay.as_secs()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
            }
            other => return other,
        }
    }
}

/// An admin command's shared lock on a SQLite store: refused while a migration copies it;
/// none where this account cannot take it (no reason to refuse what worked before the lock
/// existed).
#[cfg(unix)]
fn command_lock(
    path: &std::path::Path,
) -> anyhow::Result<Option<crate::store::serving_lock::SqliteLock>> {
    match crate::store::serving_lock::command(path) {
        Ok(lock) => Ok(Some(lock)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(anyhow::Error::new(
            crate::admin::Refused(format!("store.path {}: {e}", path.display())),
        )),
        Err(_) => Ok(None),
    }
}

/// Whether the configured store has been set up (by a start or a command): a SQLite
/// database file there, or a PostgreSQL database holding radmfa's key record.
pub async fn store_exists(cfg: &StoreConfig) -> anyhow::Result<bool> {
    match cfg {
        StoreConfig::Sqlite { path, .. } => Ok(has_database(path)),
        StoreConfig::Postgres { settings, .. } => crate::store::PgStore::key_recorded(settings)
            .await
            .with_context(|| settings.url_source.clone()),
    }
}

/// [`with_command_store`] for a command that reads or takes away (lists, the audit log, a
/// reset, a delete): a store that does not exist yet is reported, not made. A mistyped
/// `store.path` would otherwise get a new empty database and key file, and "no users" or
/// "0 deleted" for an answer while the real store kept everything.
pub async fn with_existing_store<T>(
    cfg: &StoreConfig,
    command: impl AsyncFnOnce(&dyn Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    refuse_unless_existing(cfg).await?;
    with_command_store(cfg, command).await
}

/// [`with_existing_store`] for a command that only reads (a listing, `user show`, an
/// import's dry run): a store behind this release's schema is refused, not migrated.
pub async fn with_store_as_it_is<T>(
    cfg: &StoreConfig,
    command: impl AsyncFnOnce(&dyn Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    refuse_unless_existing(cfg).await?;
    with_store(cfg, Schema::AsItIs, command).await
}

/// Refuses a store that is not set up, or whose key file is missing (see
/// [`with_existing_store`]).
async fn refuse_unless_existing(cfg: &StoreConfig) -> anyhow::Result<()> {
    let key_file = match cfg {
        StoreConfig::Sqlite { key_file, .. } | StoreConfig::Postgres { key_file, .. } => key_file,
    };
    refuse_unless_set_up(cfg).await?;
    if !key_file.exists() {
        anyhow::bail!(
            "store.key_file {} is missing. This command only reads or removes, so it does \
             not create a key file (a new key would not open the seeds in the database): \
             restore the key file from its backup (docs/operations.md), or check \
             store.key_file and --config",
            key_file.display()
        );
    }
    Ok(())
}

/// Refuses a store no start or command has set up: a SQLite database that is not there,
/// a PostgreSQL database without radmfa's key record.
async fn refuse_unless_set_up(cfg: &StoreConfig) -> anyhow::Result<()> {
    if let StoreConfig::Sqlite { path, .. } = cfg {
        if let Some(why) = database_out_of_reach(path) {
            anyhow::bail!(why);
        }
    }
    match cfg {
        StoreConfig::Sqlite { path, .. } if !has_database(path) => anyhow::bail!(
            "store.path {}: no database there, so nothing to show or change (radmfa makes \
             it at its first start or enrollment); check store.path and --config",
            path.display()
        ),
        StoreConfig::Sqlite { .. } => Ok(()),
        // PostgreSQL: the database exists (someone made it), but a mistyped name in
        // store.url can reach another one; opening would set radmfa's tables up there and
        // tie it to the key. Only a store some node or command has set up is read.
        StoreConfig::Postgres { settings, .. } => {
            let source = &settings.url_source;
            let recorded = crate::store::PgStore::key_recorded(settings)
                .await
                .with_context(|| source.clone())?;
            if !recorded {
                anyhow::bail!(
                    "{source}: that database holds no radmfa store yet, so nothing to show \
                     (radmfa sets it up at its first start or enrollment); check the URL and \
                     --config"
                );
            }
            Ok(())
        }
    }
}

/// Runs `radmfa audit` against the audit log alone, read-only and without the key file: a
/// report changes nothing and unseals nothing, so an auditor's account needs only read
/// access to the database (or a PostgreSQL role that may read radmfa's tables). The store is not
/// migrated either: one behind this release's schema is reported.
/// `snapshot_ok`: a SQLite database no process has open may be read as it is (a report);
/// not for `--follow`, which waits for records still to come.
pub async fn with_audit_reader<T>(
    cfg: &StoreConfig,
    snapshot_ok: bool,
    command: impl AsyncFnOnce(&AuditReader) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    refuse_unless_set_up(cfg).await?;
    // The shared lock other commands take, so that a migration does not copy the database
    // from under a running `--follow`, which would go on following a file nothing writes
    // any more. Only where the lock file is there already: made by this account, it would
    // be one the service may not open to write, and it would not start.
    #[cfg(unix)]
    let _using = match cfg {
        StoreConfig::Sqlite { path, .. }
            if crate::store::serving_lock::lock_path(path).exists() =>
        {
            command_lock(path)?
        }
        _ => None,
    };
    let reader = match cfg {
        StoreConfig::Sqlite { path, .. } => {
            crate::store::moved::refuse_if_moved(path)?;
            AuditReader::sqlite(path, snapshot_ok)
                .await
                .map_err(|e| unreadable_sqlite(path, e))?
        }
        StoreConfig::Postgres { settings, .. } => AuditReader::postgres(settings)
            .with_context(|| format!("opening the PostgreSQL store ({})", settings.url_source))?,
    };
    let result = async {
        let behind = reader.schema_behind().await?;
        if let Some((at, known)) = behind {
            anyhow::bail!(
                "the store's schema is at version {at}, behind this release's {known}: its \
                 audit log is read as it is, not migrated; run `radmfa db migrate` (as the \
                 user radmfa runs as), or start radmfa, then ask again"
            );
        }
        command(&reader).await
    }
    .await;
    reader.close().await;
    result
}

/// Why the SQLite database at `path` could not be read, and what it takes. SQLite reads a
/// WAL database (radmfa's are) through its -wal and -shm files: where they are not there,
/// a reader that may not write the directory cannot make them.
fn unreadable_sqlite(path: &std::path::Path, e: crate::store::StoreError) -> anyhow::Error {
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    let reading = format!("reading database {}", path.display());
    if let crate::store::StoreError::StaleWal(said) = e {
        return anyhow::Error::new(crate::admin::Refused(said));
    }
    if std::path::Path::new(&shm).exists() {
        return anyhow::Error::new(e).context(reading);
    }
    anyhow::anyhow!(
        "{reading}: {e}. It is in WAL mode: following it as it changes needs its -wal and \
         -shm files, there while radmfa runs. Run this while radmfa runs, or as the user \
         radmfa runs as"
    )
}

/// Opens (creating and migrating if needed) the configured store.
/// The key of a SQLite store: loaded, or made for a new database. A database without its
/// key file is refused: its seeds cannot be unsealed, and a new key would seal what is
/// enrolled from now on with a key that is not the backup's.
pub fn sqlite_sealer(
    path: &std::path::Path,
    key_file: &std::path::Path,
) -> anyhow::Result<crate::store::Sealer> {
    // The key file outlives its database only when the database went: a restore whose
    // backup landed at another path, a typo in store.path, the database's mount not there.
    // Started empty, every enrollment was gone without a word (and with no_factor =
    // "allow", every user let in on the password alone). `config check` says the same.
    if key_file.exists() && !has_database(path) {
        // Nothing was opened or made: a refusal (exit 1), as a stale -wal's.
        return Err(anyhow::Error::new(crate::admin::Refused(
            key_without_database(path, key_file),
        )));
    }
    // The database before the key: a key with no database beside it is then always one
    // whose database went, not one a first start made before it failed to make the
    // database (its directory not writable, say). Made whole, a header and no tables (see
    // `precreate_private`): a radmfa database file is never empty, so an empty one beside
    // a key is always one someone else made.
    if !path.exists() {
        // Its error names the file.
        crate::store::sqlite::precreate_private(path)?;
    }
    // Data is tables: a database with none is a first start's, under way in another
    // process (two commands setting a new store up at once) or one that stopped before
    // the schema, with nothing sealed; its key is made, or the other process's is loaded.
    if !key_file.exists() && crate::store::sqlite::holds_tables(path) {
        anyhow::bail!(
            "store.key_file {} is missing, but the database {} exists: the seeds in \
             it cannot be unsealed without it. Restore the key file from your backup \
             (or, to start over with no tokens, move the database away)",
            key_file.display(),
            path.display()
        );
    }
    // The error names the file already.
    KeyFile::load_or_create(key_file).context("store.key_file")
}

/// What `serve`, the commands that make a database and `config check --connect` say of a
/// key file whose database is not at `store.path`.
pub(crate) fn key_without_database(path: &std::path::Path, key_file: &std::path::Path) -> String {
    if let Some(why) = database_out_of_reach(path) {
        return why;
    }
    let state = if path.exists() {
        "is an empty file"
    } else {
        "does not exist"
    };
    format!(
        "store: {} {state}, but its key file {} does exist: if you are restoring a backup, \
         it is not at store.path (or the file system holding it is not mounted, or the copy \
         failed); to start an empty database on purpose, move the key file away too",
        path.display(),
        key_file.display()
    )
}

/// A database this account may not even look at, said as such: taken for a missing one,
/// it was "no database there" or "does not exist", while the file was there below a
/// directory (or through a link into one) this account may not enter.
pub(crate) fn database_out_of_reach(path: &std::path::Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
            "store.path {}: permission denied to the user radmfa runs as, {}: a directory on \
             the way (or one a link leads into) it may not enter; `namei -l {}` shows the way",
            path.display(),
            crate::store::writable::runs_as(),
            path.display()
        )),
        _ => None,
    }
}

/// Whether a database is at `path`: a file with something in it. An empty file is none:
/// what a `touch` or an `install /dev/null` before a restore leaves, or a copy that failed
/// on a full disk. Opened, it took the schema and started an empty store beside the key
/// file of the real one, and read-only commands wrote the schema into it.
pub(crate) fn has_database(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// A store error as a command reports it: a stale -wal beside the database is a refusal
/// (exit 1: nothing was read or changed, and its text names the files), whichever command
/// met it first; anything else in `context`.
pub(crate) fn stale_wal_refused(
    e: crate::store::StoreError,
    context: impl FnOnce() -> String,
) -> anyhow::Error {
    match e {
        crate::store::StoreError::StaleWal(said) => anyhow::Error::new(crate::admin::Refused(said)),
        other => anyhow::Error::new(other).context(context()),
    }
}

/// Opens the SQLite store at `path` with the key from `key_file`; a key that is not the one
/// the database was set up with is reported as `store.key_file`'s problem.
pub async fn open_sqlite(
    path: &std::path::Path,
    key_file: &std::path::Path,
    sealer: crate::store::Sealer,
) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(path, sealer).await.map_err(|e| match e {
        crate::store::StoreError::Decrypt(reason) => {
            anyhow::anyhow!("store.key_file {}: {reason}", key_file.display())
        }
        other => stale_wal_refused(other, || format!("opening database {}", path.display())),
    })
}

/// Makes the directories `files` are to be made in, as a first start does (`/var/lib/radmfa`
/// on a new host).
pub fn make_directories(files: &[&std::path::Path]) -> anyhow::Result<()> {
    for p in files {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_dirs(dir).with_context(|| format!("creating directory {}", dir.display()))?;
        }
    }
    Ok(())
}

/// `dir`, private to the account making it (0700, as the shipped unit's
/// StateDirectoryMode= makes /var/lib/radmfa), and its missing parents at 0755, so that the
/// service's account, once given `dir`, can reach it; whatever the caller's umask. Made
/// under `umask 000` (a container, a permissive shell) they were 0777, and any account
/// could delete or swap the database and the seed key in them; made 0755 by a root command
/// before the service's first start, systemd (which leaves an existing directory's mode
/// alone) kept `dir` readable by every account.
pub fn create_dirs(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let build = |mode: u32, recursive: bool, path: &std::path::Path| {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(recursive);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, mode);
        #[cfg(not(unix))]
        let _ = mode;
        b.create(path)
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        build(0o755, true, parent)?;
    }
    match build(0o700, false, dir) {
        // Made meanwhile by another process (two commands at once): as good.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        r => r,
    }
}

pub async fn open_store(cfg: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    match cfg {
        StoreConfig::Sqlite { path, key_file } => {
            crate::store::moved::refuse_if_moved(path)?;
            make_directories(&[path, key_file])?;
            let sealer = sqlite_sealer(path, key_file)?;
            Ok(Arc::new(open_sqlite(path, key_file, sealer).await?))
        }
        StoreConfig::Postgres { settings, key_file } => {
            if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_dirs(dir)
                    .with_context(|| format!("creating directory {}", dir.display()))?;
            }
            let store = PgStore::open_with_key_file(settings, key_file)
                .await
                .with_context(|| {
                    format!("opening the PostgreSQL store ({})", settings.url_source)
                })?;
            Ok(Arc::new(store))
        }
    }
}
