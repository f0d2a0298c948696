//! `radmfa db migrate`, `radmfa db backup` (its work in `backup.rs`) and `radmfa store
//! migrate-to-postgres`.
//!
//! What is copied: tokens (with inventory data and replay state), lockout state, pending
//! challenges, the audit log, and the out-of-band state (user profiles, app password hashes,
//! send counters, SMS/call transactions). A table or column this program does not know
//! stops the copy instead of being left behind.
//!
//! The copy moves rows as they are: a token seed is sealed with the key file and bound to its
//! serial (AEAD associated data), not to a row id or a database, so the sealed bytes are valid
//! in PostgreSQL unchanged, and every node then uses the same key file. Each seed is opened
//! once before anything is written, to prove the key file is the right one; nothing is ever
//! re-encrypted. The whole copy is one PostgreSQL transaction read from one SQLite snapshot:
//! it lands completely or not at all.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::config::{Config, StoreConfig};
use crate::store::postgres::PgSettings;
use crate::store::{KeyFile, PgStore, Store};

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Bring the configured store's schema up to date, say from which version to which, and
    /// exit. `serve` does this at start too, as does an admin command that changes the
    /// store (one that only reads refuses a store behind); run it ahead of an upgrade (the
    /// release still running must contain git commit d1d2284 to go on using the store), or
    /// with a database role allowed to change the schema.
    Migrate,
    /// Write a consistent copy of the SQLite store to a new FILE (mode 0600), also while
    /// radmfa runs. Not `cp radmfa.db`: recent changes live in radmfa.db-wal. The key file is
    /// not in the copy; back it up separately. (PostgreSQL: use pg_dump.)
    Backup {
        /// The new backup file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the configured SQLite store (tokens, user profiles, app passwords, lockout
    /// state, pending challenges and calls, remembered logins, send counts, audit) into an
    /// empty PostgreSQL database. Stop radmfa first.
    MigrateToPostgres(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Destination, postgres://user:password@host/database?sslmode=verify-full. Read from the
    /// environment (RADMFA_PG_URL, used only when neither --to nor --to-config is given) it
    /// stays out of `ps` and shell history.
    #[arg(long)]
    pub to: Option<String>,
    /// Take the destination from the `[store]` section (type = "postgres") of this file.
    #[arg(long, conflicts_with = "to")]
    pub to_config: Option<PathBuf>,
    /// Check and copy everything, then roll back the copy instead of committing it. The
    /// destination still gets radmfa's schema and this installation's key record (opening
    /// it makes them): point it only at the database meant for radmfa.
    #[arg(long)]
    pub dry_run: bool,
    /// Copy a SQLite store already marked moved (`<store.path>.moved-to-postgres`) once more,
    /// into another empty database. Only when the first copy was lost before any node used
    /// it: the file does not have what the nodes changed since (used HOTP codes would work
    /// again, disabled tokens and deleted users come back).
    #[arg(long)]
    pub again: bool,
}

/// What `db migrate` did to an existing store's schema: `behind` as it stood before
/// (its version, the one it was brought to), `None` when it was current.
pub(crate) fn migrated(behind: Option<(i64, i64)>) -> String {
    match behind {
        Some((0, to)) => format!("schema set up (version {to})"),
        Some((from, to)) => format!("schema migrated from version {from} to {to}"),
        None => "schema up to date".into(),
    }
}

/// `db migrate` on a schema a newer release migrated (an older node's check during a
/// rolling upgrade, or a package rolled back): not "up to date", which told the admin this
/// release was current (the store's own warning goes to a log an admin command does not
/// print).
pub(crate) fn newer_schema(version: i64, known: i64) -> String {
    format!(
        "schema version {version} is newer than this release knows ({known}): a newer \
         release migrated it; this one works on it, but upgrade it"
    )
}

pub async fn db(cfg: &Config, cmd: DbCommand) -> anyhow::Result<ExitCode> {
    if let DbCommand::Backup { file } = cmd {
        return backup(cfg, file).await;
    }
    match &cfg.store {
        // Run ahead of an upgrade, on a mistyped store.path or store.url it sets a new
        // store up, as at a first start. Said, not just "up to date": the admin believed
        // the real store was ready for the upgrade.
        StoreConfig::Sqlite { path, key_file } => {
            // A store moved to PostgreSQL is not upgraded either (see store::moved).
            crate::store::moved::refuse_if_moved(path)?;
            // An empty file is none (`app::has_database`): said as made, not "set up".
            let existed = crate::app::has_database(path);
            // A database without tables is a first start's that stopped before its schema
            // (`precreate_private` makes the file whole first): no store to "set up" for an
            // upgrade, which told the admin the real store had been migrated.
            let bare = existed && !crate::store::sqlite::holds_tables(path);
            let existed = existed && !bare;
            // Said with its versions: "up to date" alone did not tell an admin whether the
            // upgrade had just happened or had happened before.
            let (behind, ahead) = if existed {
                let said = || format!("reading the schema version of {}", path.display());
                let refused = |e| crate::app::stale_wal_refused(e, said);
                (
                    crate::store::sqlite::SqliteStore::schema_behind(path)
                        .await
                        .map_err(refused)?,
                    crate::store::sqlite::SqliteStore::schema_ahead(path)
                        .await
                        .map_err(refused)?,
                )
            } else {
                (None, None)
            };
            // "As a first start would": its directory too (a new host's /var/lib/radmfa).
            crate::app::make_directories(&[path, key_file])?;
            let sealer = crate::app::sqlite_sealer(path, key_file)?;
            crate::app::open_sqlite(path, key_file, sealer)
                .await?
                .close()
                .await;
            if let Some((version, known)) = ahead.filter(|_| behind.is_none()) {
                println!("{}: {}", path.display(), newer_schema(version, known));
            } else if existed {
                println!("{}: {}", path.display(), migrated(behind));
            } else {
                let was = match bare {
                    true => {
                        "the database there had no tables yet (a first start that stopped \
                             before setting it up); set it up as a new, empty store"
                    }
                    false => "no database was there; made a new, empty one",
                };
                println!(
                    "{}: {was} (key file {}). If you meant an existing store, check \
                     store.path and --config.",
                    path.display(),
                    key_file.display()
                );
            }
        }
        StoreConfig::Postgres { settings, .. } => {
            let used = PgStore::key_recorded(settings).await.unwrap_or(true);
            let behind = PgStore::schema_behind(settings).await.ok().flatten();
            let version = PgStore::migrate(settings).await.with_context(|| {
                format!("migrating the PostgreSQL store ({})", settings.url_source)
            })?;
            let known = crate::store::postgres::known_schema_version();
            let said = match behind {
                Some((from, _)) => migrated(Some((from, version))),
                // An older node's check during a rolling upgrade or after a rollback: not
                // "up to date", which told the admin this node was current (the store's
                // warning goes to a log an admin command does not print).
                None if version > known => newer_schema(version, known),
                None => format!("schema up to date (version {version})"),
            };
            println!("PostgreSQL store: {said}");
            if !used {
                println!(
                    "No radmfa node or command has used this database yet (it records no \
                     key). If it should hold an existing store, check {}.",
                    settings.url_source
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn backup(cfg: &Config, file: PathBuf) -> anyhow::Result<ExitCode> {
    let StoreConfig::Sqlite { path, key_file } = &cfg.store else {
        bail!(
            "db backup copies the SQLite store; back a PostgreSQL store up with PostgreSQL's \
             own tools (pg_dump, or your database service's backups), and back the key file up \
             apart from them (docs/operations.md): a stolen backup must not open its seeds"
        );
    };
    if let Some(what) = super::backup::own_file(path, key_file, &file) {
        return Err(super::Refused(format!(
            "{} is {what}; give a backup its own name (radmfa.db.bak, say)",
            file.display()
        ))
        .into());
    }
    // Opened first, as an existing store (a mistyped store.path must fail, not make an
    // empty database and key to back up): a store that cannot take the backup's audit
    // record (its key file gone, say) gets no copy made, rather than a copy on disk that
    // no record tells of.
    let s = crate::app::with_existing_store(&cfg.store, async |store| {
        let from = path.clone();
        let to = file.clone();
        let s = tokio::task::spawn_blocking(move || super::backup::sqlite_backup(&from, &to))
            .await
            .context("backup task")??;
        // A copy of every sealed seed, phone number and the audit trail now exists
        // elsewhere: who made it, and where, goes on the record (after the copy, so it is
        // not in it), or the copy goes.
        // The record alone: `admin_audit`'s error says the change "is done", and this
        // one is taken back below when its record fails.
        let recorded = super::users::write_admin_audit(
            cfg,
            store,
            "",
            "backup",
            // The whole path: "b1.db" says nothing about where the copy went.
            Some(format!(
                "database copied to {} ({} token(s), {} audit record(s))",
                std::path::absolute(&file).unwrap_or(file.clone()).display(),
                s.tokens,
                s.audit
            )),
        )
        .await;
        if let Err(e) = recorded {
            // The usual cause: the store's own disk is full. The copy went elsewhere, but
            // no copy of every seed stays without its record: said, with what to do.
            let full = match e.to_string().contains("disk is full") {
                true => format!(
                    " (the file system holding {} is full: free space there, then back up)",
                    path.display()
                ),
                false => String::new(),
            };
            return Err(
                anyhow::Error::new(e).context(match std::fs::remove_file(&file) {
                    Ok(()) => format!(
                        "the backup's audit record could not be written, so {} was removed{full}",
                        file.display()
                    ),
                    Err(r) => format!(
                        "the backup's audit record could not be written, and {} could not be \
                     removed ({r}): delete it",
                        file.display()
                    ),
                }),
            );
        }
        Ok(s)
    })
    .await?;
    let taken = s
        .taken
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    println!(
        "{}: {} token(s), {} audit record(s), from {}, as of {} (a restore lists the \
         changes made since with `radmfa audit --since {taken} --limit 0`)",
        file.display(),
        s.tokens,
        s.audit,
        path.display(),
        crate::clock::fmt_time(taken),
    );
    eprintln!(
        "The key file {} is not in the backup: keep a copy of it apart from the backups. \
         Without it the seeds in any backup cannot be opened.",
        key_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn store(cfg: &Config, cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    let StoreCommand::MigrateToPostgres(args) = cmd;
    let StoreConfig::Sqlite { path, key_file } = &cfg.store else {
        bail!("store.type: the configured store must be the SQLite one to copy from");
    };
    let (settings, dest_key) = destination(&args)?;
    refuse_a_second_copy(path, args.again)?;
    // Opening a path that is not there would make a new, empty database and copy it: a typo
    // in store.path would "succeed" with no tokens, and the new nodes would know nobody.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0) {
        bail!(
            "store.path {}: no database there to copy from (is store.path the SQLite file \
             radmfa has been using?)",
            path.display()
        );
    }
    // Held until the copy is committed: a server still serving the file would write what
    // the snapshot below misses. A dry run commits nothing, and rehearses a move without
    // stopping the service.
    // The rehearsal still says whether the real copy would be refused now: a dry run
    // passing while a forgotten `serve` or `audit --follow` holds the file would make the
    // cutover the first to find it.
    #[cfg(unix)]
    let would_be_refused = args
        .dry_run
        .then(|| match crate::store::serving_lock::migrating(path) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(e.to_string()),
            _ => None,
        })
        .flatten();
    #[cfg(not(unix))]
    let would_be_refused: Option<String> = None;
    #[cfg(unix)]
    let _copying = if args.dry_run {
        None
    } else {
        Some(crate::store::serving_lock::migrating(path).map_err(|e| {
            // radmfa serving the file: a refusal, not an error (see `Refused`).
            if e.kind() == std::io::ErrorKind::WouldBlock {
                anyhow::Error::new(super::Refused(format!(
                    "store.path {}: {e}",
                    path.display()
                )))
            } else {
                anyhow::Error::new(e).context(format!("store.path {}", path.display()))
            }
        })?)
    };
    let sealer = KeyFile::load(key_file)?;
    if let Some(dest_key) = &dest_key {
        same_key_file(
            key_file,
            &sealer,
            dest_key,
            args.to_config.as_deref().unwrap(),
        )?;
    }
    // Bring the source to the current schema, so it has exactly the columns copied below.
    crate::app::open_sqlite(path, key_file, sealer.clone())
        .await?
        .close()
        .await;
    let src = crate::store::pool_options::without_reaper()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
        .await
        .with_context(|| format!("opening {} read-only", path.display()))?;
    let mut snapshot = src.begin().await?;
    // Before the destination is touched: a wrong key file must not leave its mark there.
    tables::check_seeds(&mut snapshot, &sealer).await?;
    // Creates the schema and records (or checks) the key, so the new nodes' key check
    // passes with exactly this key file.
    let place = settings
        .place()
        .unwrap_or_else(|| "at the URL given".to_string());
    // A destination another key was recorded in (a node, or a --dry-run of another store,
    // started on it first): said with the key file and the way out. Opened, it said only
    // "not the key this database was set up with; every node must use the same key file",
    // a dead end for an admin who had copied the key as the first refusal told them.
    if !PgStore::recorded_key_opens(&settings, &sealer)
        .await
        .unwrap_or(true)
    {
        return Err(super::Refused(format!(
            "the destination ({place}) was set up with another seed key than store.key_file \
             {} (a node, or a --dry-run with another key file, started on it first); \
             nothing was copied. Give an empty database, or, while it holds no tokens, \
             empty its key_check table (DELETE FROM key_check) and migrate again",
            key_file.display()
        ))
        .into());
    }
    let dest = PgStore::open(&settings, sealer.clone())
        .await
        .with_context(|| format!("opening the destination ({place})"))?;
    let mut tx = dest.pool().begin().await?;
    tables::check_sequence_rights(&mut tx).await?;
    // Before the emptiness check below: a row written after it would be merged into the copy.
    tables::hold(&mut tx).await?;
    let mut copied = Vec::new();
    for table in tables::TABLES {
        tables::check_source_columns(&mut snapshot, table).await?;
        let dest_rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", table.pg))
            .fetch_one(&mut *tx)
            .await?;
        if dest_rows > 0 {
            // A refusal (exit 1), not an error: see docs/operations.md.
            bail!(super::Refused(format!(
                "the destination already holds {dest_rows} row(s) in {}: refusing to merge \
                 into a database in use (give an empty database)",
                table.pg
            )));
        }
        let n = tables::copy(&mut snapshot, &mut tx, table).await?;
        copied.push((table.pg, n));
    }
    tables::refuse_unknown_data(&mut snapshot).await?;
    tables::move_sequences(&mut snapshot, &mut tx).await?;
    if args.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    snapshot.rollback().await?;
    for (table, n) in &copied {
        println!("{table}: {n} row(s)");
    }
    if args.dry_run {
        println!("dry run: no row was copied (the schema and the key check were created)");
        if let Some(why) = would_be_refused {
            println!(
                "note: the copy itself would be refused now: store.path {}: {why}",
                path.display()
            );
        }
    } else {
        // The migration is on the record of the database it made, after what it copied.
        let tokens = copied
            .iter()
            .find(|(t, _)| *t == "tokens")
            .map_or(0, |(_, n)| *n);
        let rec = super::users::admin_record(
            cfg,
            "",
            "migrate",
            Some(format!(
                "copied from the SQLite store {} ({tokens} token(s))",
                path.display()
            )),
        );
        // The old file must not go on being served or changed by whoever still has the old
        // config: see store::moved. Marked as soon as the copy is committed, before its
        // record: a record that failed (the database restarting) left the copy in
        // PostgreSQL and the SQLite store unmarked, so a token disabled there afterwards
        // stayed enabled for the nodes, and a rerun was refused as "not empty".
        let now = crate::clock::Clock::now(&crate::clock::SystemClock);
        crate::store::moved::mark(path, now, &place).with_context(|| {
            format!(
                "copied, but the mark {} could not be written: make sure nothing serves \
                     or changes the SQLite store any more",
                crate::store::moved::marker(path).display()
            )
        })?;
        super::users::record_made_change(&dest, &rec, "the migration")
            .await
            .with_context(|| {
                format!(
                    "the copy is committed and the SQLite store is marked moved ({}); \
                     only the migration's audit record is missing",
                    crate::store::moved::marker(path).display()
                )
            })?;
        println!(
            "copied into PostgreSQL. {} and [store] type = \"postgres\". The SQLite store \
             is marked moved ({}): radmfa no longer serves or changes it.",
            key_to_use(key_file, dest_key.as_deref(), args.to_config.as_deref()),
            crate::store::moved::marker(path).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Which key file the nodes need, said after the copy. The destination config's `key_file`
/// may name a path that does not exist here (the nodes are other hosts): the source key must
/// be copied there, or the nodes refuse the copied database.
fn key_to_use(source: &Path, dest: Option<&Path>, dest_config: Option<&Path>) -> String {
    match (dest, dest_config) {
        (Some(dest), Some(config)) if !dest.exists() => format!(
            "Copy the key file {} to {} (store.key_file of {}), mode 0600, on every radmfa \
             node: the nodes need exactly that key",
            source.display(),
            dest.display(),
            config.display()
        ),
        // The destination's config names the source's own key file: said once.
        (Some(dest), _) if same_file(dest, source) => format!(
            "Every radmfa node must now use the key file {} (copy it, mode 0600)",
            dest.display()
        ),
        (Some(dest), _) => format!(
            "Every radmfa node must now use the key file {} (the same key as {}; copy it, \
             mode 0600)",
            dest.display(),
            source.display()
        ),
        _ => format!(
            "Every radmfa node must now use the key file {} (copy it, mode 0600)",
            source.display()
        ),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// A store already copied is copied again only with `--again`: the file misses what the
/// nodes changed since, and a second copy serving it would undo that.
fn refuse_a_second_copy(path: &Path, again: bool) -> anyhow::Result<()> {
    let Some(note) = crate::store::moved::moved_note(path) else {
        return Ok(());
    };
    if again {
        return Ok(());
    }
    bail!(super::Refused(format!(
        "store.path {}: this SQLite store was already copied: {note} A copy of it now would \
         bring back what the nodes changed since (used HOTP codes accepted again, disabled \
         tokens, deleted users and fraud blocks undone). Give --again only if that copy was \
         lost before any node used it.",
        path.display()
    )))
}

/// The destination config's key file must hold the source's key, or not exist yet (it is
/// then copied there, as the success message says): nodes started with another key would
/// refuse the copied database, after the copy had succeeded.
fn same_key_file(
    source: &Path,
    sealer: &crate::store::Sealer,
    dest: &Path,
    dest_config: &Path,
) -> anyhow::Result<()> {
    if !dest.exists() {
        return Ok(());
    }
    use crate::store::seal::{opens_key_check, seal_key_check};
    let theirs = KeyFile::load(dest)
        .with_context(|| format!("store.key_file of {}", dest_config.display()))?;
    if opens_key_check(&theirs, &seal_key_check(sealer)) {
        return Ok(());
    }
    bail!(
        "{}: store.key_file {} is not the key file of this SQLite store ({}), whose seeds the \
         copy keeps sealed as they are: the nodes would refuse the copied database. Copy {} \
         to {} (mode 0600), or point key_file at it; nothing was copied",
        dest_config.display(),
        dest.display(),
        source.display(),
        source.display(),
        dest.display()
    )
}

/// The destination's settings, and the key file its config names (`--to-config` only).
fn destination(args: &MigrateArgs) -> anyhow::Result<(PgSettings, Option<PathBuf>)> {
    // The environment only when no flag names the destination: a variable left in the shell
    // must not override (or, as a clap default, conflict with) the file named here.
    let from_env = || {
        std::env::var("RADMFA_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
    };
    let to = match (&args.to, &args.to_config) {
        (None, None) => from_env(),
        (to, _) => to.clone(),
    };
    match (&to, &args.to_config) {
        (Some(url), None) => {
            // Named as the admin gave it: no --to was typed when it came from the variable.
            let source = if args.to.is_some() {
                "--to"
            } else {
                "RADMFA_PG_URL"
            };
            crate::store::postgres::parse_url(url).map_err(|p| anyhow::anyhow!("{source}: {p}"))?;
            let mut settings = PgSettings::new(url.clone());
            settings.url_source = source.into();
            Ok((settings, None))
        }
        (None, Some(file)) => {
            let cfg = Config::load(file).map_err(|e| e.in_file(file))?;
            match cfg.store {
                StoreConfig::Postgres { settings, key_file } => Ok((settings, Some(key_file))),
                StoreConfig::Sqlite { .. } => bail!(
                    "{}: store.type must be \"postgres\" to be a destination",
                    file.display()
                ),
            }
        }
        _ => bail!("give the destination: --to URL (or RADMFA_PG_URL) or --to-config FILE"),
    }
}

/// The copy itself: which tables, which columns, and how a value crosses the dialects.
mod tables {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Ty {
        Int,
        Text,
        Blob,
        /// SQLite INTEGER 0/1 → BOOLEAN.
        Bool,
    }

    pub struct Table {
        pub sqlite: &'static str,
        pub pg: &'static str,
        /// SQLite column names; `user` is `username` in PostgreSQL (a reserved word there).
        pub columns: &'static [(&'static str, Ty)],
    }

    use Ty::*;

    pub const TABLES: &[Table] = &[
        Table {
            sqlite: "tokens",
            pg: "tokens",
            columns: &[
                ("id", Int),
                ("serial", Text),
                ("user", Text),
                ("kind", Text),
                ("algorithm", Text),
                ("digits", Int),
                ("period", Int),
                ("counter", Int),
                ("last_step", Int),
                ("enabled", Bool),
                ("created_at", Int),
                ("secret", Blob),
                ("manufacturer", Text),
                ("model", Text),
                ("valid_from", Int),
                ("valid_until", Int),
                ("drift", Int),
                ("resync_counter", Int),
                ("resync_at", Int),
                ("origin", Text),
            ],
        },
        Table {
            sqlite: "user_state",
            pg: "user_state",
            columns: &[("user", Text), ("failures", Int), ("locked_until", Int)],
        },
        Table {
            sqlite: "challenges",
            pg: "challenges",
            columns: &[
                ("state_hash", Blob),
                ("user", Text),
                ("nas", Text),
                ("created_at", Int),
                ("expires_at", Int),
                ("attempts", Int),
                ("context", Text),
            ],
        },
        Table {
            sqlite: "audit",
            pg: "audit",
            columns: &[
                ("id", Int),
                ("time", Int),
                ("user", Text),
                ("first_name", Text),
                ("last_name", Text),
                ("email", Text),
                ("phone", Text),
                ("token_serial", Text),
                ("mode", Text),
                ("result", Text),
                ("reason", Text),
                ("server_name", Text),
                ("server_ip", Text),
                ("client_ip", Text),
                ("nas_ip", Text),
                ("nas_identifier", Text),
                ("nas_name", Text),
                ("latency_ms", Int),
                ("actor", Text),
            ],
        },
        Table {
            sqlite: "user_profile",
            pg: "user_profile",
            columns: &[
                ("user", Text),
                ("phone", Text),
                ("method", Text),
                ("blocked_at", Int),
                ("blocked_reason", Text),
                ("bypass_until", Int),
                ("logins_forgotten_at", Int),
            ],
        },
        Table {
            sqlite: "app_passwords",
            pg: "app_passwords",
            columns: &[
                ("id", Int),
                ("user", Text),
                ("label", Text),
                ("hash", Text),
                ("dn", Text),
                ("entry_id", Text),
                ("created_at", Int),
                ("last_used_at", Int),
            ],
        },
        Table {
            sqlite: "send_events",
            pg: "send_events",
            columns: &[("key", Text), ("at", Int), ("slot", Text)],
        },
        Table {
            sqlite: "oob_transactions",
            pg: "oob_transactions",
            columns: &[
                ("id", Text),
                ("request_key", Text),
                ("user", Text),
                ("nas", Text),
                ("kind", Text),
                ("phone", Text),
                ("code_hash", Blob),
                ("status", Text),
                ("reason", Text),
                ("provider_ref", Text),
                ("created_at", Int),
                ("expires_at", Int),
                ("client_ip", Text),
                ("nas_ip", Text),
                ("nas_identifier", Text),
            ],
        },
        Table {
            sqlite: "remembered_logins",
            pg: "remembered_logins",
            columns: &[
                ("user", Text),
                ("nas", Text),
                ("station", Text),
                ("mode", Text),
                ("verified_at", Int),
                ("expires_at", Int),
            ],
        },
    ];

    /// Tables whose identity must continue after the copied ids.
    const IDENTITIES: &[&str] = &["tokens", "audit", "app_passwords"];
    /// Rows per multi-row INSERT (19 columns × 500 stays far below 65535 binds).
    const CHUNK: i64 = 500;

    type Snapshot = sqlx::Transaction<'static, sqlx::Sqlite>;
    type Dest = sqlx::Transaction<'static, Postgres>;

    fn pg_column(c: &str) -> &str {
        if c == "user" {
            "username"
        } else {
            c
        }
    }

    /// The copy ends by moving the id sequences on (`setval`, which needs UPDATE on each):
    /// a role granted only reads and writes (docs/ha.md's least privilege) failed there,
    /// after the whole copy. Checked first, naming the role that can.
    pub async fn check_sequence_rights(dest: &mut Dest) -> anyhow::Result<()> {
        let denied: Vec<String> = sqlx::query_scalar(
            "SELECT t FROM unnest($1::text[]) AS t \
             WHERE NOT has_sequence_privilege(pg_get_serial_sequence(t, 'id'), 'UPDATE')",
        )
        .bind(IDENTITIES)
        .fetch_all(&mut **dest)
        .await?;
        if denied.is_empty() {
            return Ok(());
        }
        let (role, owner): (String, String) = sqlx::query_as(
            "SELECT current_user::text, pg_get_userbyid(relowner)::text FROM pg_class \
             WHERE oid = 'tokens'::regclass",
        )
        .fetch_one(&mut **dest)
        .await?;
        bail!(
            "the destination's role {role} may not move the id sequences of {} (setval needs \
             UPDATE on them), which the copy does so that new ids follow the copied ones: run \
             the migration with the URL of the schema's owner, {owner} (the role `radmfa db \
             migrate` runs as; docs/ha.md). Nothing was copied",
            denied.join(", ")
        )
    }

    /// How long the copy waits for a session that holds one of the destination's tables
    /// (a node's request, a DBA's open transaction) before it gives up.
    const HOLD_WAIT: &str = "30s";

    /// Holds the destination until the copy is committed or rolled back. Every table copied
    /// into is locked against writes (reads go on): a node started on the destination, or an
    /// admin command, writing during the copy would take ids the copy then inserts (its audit
    /// record lost to a duplicate key) or have its rows merged into the copy after the
    /// emptiness check. Their writes wait until the copy is over and then go on the copied
    /// rows. The advisory lock tells a node starting meanwhile to wait before it serves
    /// (`PgStore::open_with_key_file`), instead of rejecting logins stuck behind the locks.
    pub async fn hold(dest: &mut Dest) -> anyhow::Result<()> {
        // The serving connection's 5 s statement timeout would end the wait for a node's
        // request (or a long copy's statement) early; the lock timeout bounds the wait.
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut **dest)
            .await?;
        sqlx::query(&format!("SET LOCAL lock_timeout = '{HOLD_WAIT}'"))
            .execute(&mut **dest)
            .await?;
        let names: Vec<&str> = TABLES.iter().map(|t| t.pg).collect();
        let held = async {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(crate::store::postgres::COPY_LOCK)
                .execute(&mut **dest)
                .await?;
            sqlx::query(&format!(
                "LOCK TABLE {} IN EXCLUSIVE MODE",
                names.join(", ")
            ))
            .execute(&mut **dest)
            .await
        }
        .await;
        match held {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => bail!(
                "the destination's tables stayed in use by another session for {HOLD_WAIT} \
                 (a radmfa node or admin command on that database, another migration, or an \
                 open transaction; pg_locks shows who): nothing was copied. Stop what uses \
                 it, or give an empty database no one uses"
            ),
            other => {
                other?;
                Ok(())
            }
        }
    }

    /// A source column this program does not know would be data left behind: refuse.
    pub async fn check_source_columns(src: &mut Snapshot, t: &Table) -> anyhow::Result<()> {
        let cols: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT name FROM pragma_table_info('{}')",
            t.sqlite
        ))
        .fetch_all(&mut **src)
        .await?;
        for c in &cols {
            if !t.columns.iter().any(|(k, _)| k == c) {
                bail!(
                    "SQLite column {}.{c} is not known to this migration; refusing to leave \
                     its data behind (upgrade radmfa)",
                    t.sqlite
                );
            }
        }
        Ok(())
    }

    /// Tables beyond [`TABLES`] must be empty (or bookkeeping: `key_check` is not copied,
    /// the destination records its own for the same key).
    pub async fn refuse_unknown_data(src: &mut Snapshot) -> anyhow::Result<()> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' \
             AND name <> 'key_check'",
        )
        .fetch_all(&mut **src)
        .await?;
        for name in names {
            if TABLES.iter().any(|t| t.sqlite == name) {
                continue;
            }
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{name}\""))
                .fetch_one(&mut **src)
                .await?;
            if n > 0 {
                bail!(
                    "SQLite table {name} holds {n} row(s) this migration cannot copy yet; \
                     refusing to leave them behind"
                );
            }
        }
        Ok(())
    }

    enum Value {
        Int(Option<i64>),
        Text(Option<String>),
        Blob(Option<Vec<u8>>),
        Bool(Option<bool>),
    }

    fn read(row: &SqliteRow, i: usize, ty: Ty) -> Result<Value, sqlx::Error> {
        Ok(match ty {
            Int => Value::Int(row.try_get(i)?),
            Text => Value::Text(row.try_get(i)?),
            Blob => Value::Blob(row.try_get(i)?),
            Bool => Value::Bool(row.try_get::<Option<i64>, _>(i)?.map(|v| v != 0)),
        })
    }

    /// PostgreSQL refuses NUL in text. Audit records written before radmfa kept them as
    /// U+FFFD (see `AuditRecord::storable`) may hold one: replaced the same way. Anywhere
    /// else a NUL is part of a key or a value radmfa compares, so it is refused by name.
    fn without_nul(t: &Table, row: &SqliteRow, values: &mut [Value]) -> anyhow::Result<()> {
        for (v, (column, _)) in values.iter_mut().zip(t.columns) {
            let Value::Text(Some(text)) = v else { continue };
            if !text.contains('\0') {
                continue;
            }
            if t.pg != "audit" {
                let rowid: i64 = row.try_get(0)?;
                bail!(
                    "{}: column {column} of the row with rowid {rowid} holds a NUL character, \
                     which PostgreSQL cannot store; nothing was written",
                    t.sqlite
                );
            }
            *text = text.replace('\0', "\u{FFFD}");
        }
        Ok(())
    }

    /// Copies one table in rowid order, `CHUNK` rows per statement; returns the row count.
    pub async fn copy(src: &mut Snapshot, dest: &mut Dest, t: &Table) -> anyhow::Result<u64> {
        let names: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
        let select = format!(
            "SELECT rowid, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            names
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", "),
            t.sqlite
        );
        let insert = format!(
            "INSERT INTO {} ({}) ",
            t.pg,
            names
                .iter()
                .map(|c| pg_column(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let (mut after, mut total) = (0i64, 0u64);
        loop {
            let rows = sqlx::query(&select)
                .bind(after)
                .bind(CHUNK)
                .fetch_all(&mut **src)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get(0)?;
            let mut batch = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut values = t
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, ty))| read(row, i + 1, *ty))
                    .collect::<Result<Vec<_>, _>>()?;
                without_nul(t, row, &mut values)?;
                batch.push(values);
            }
            let mut q: QueryBuilder<Postgres> = QueryBuilder::new(&insert);
            q.push_values(batch, |mut b, values| {
                for v in values {
                    match v {
                        Value::Int(x) => b.push_bind(x),
                        Value::Text(x) => b.push_bind(x),
                        Value::Blob(x) => b.push_bind(x),
                        Value::Bool(x) => b.push_bind(x),
                    };
                }
            });
            total += q.build().execute(&mut **dest).await?.rows_affected();
        }
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", t.pg))
            .fetch_one(&mut **dest)
            .await?;
        // Against the source's own count too: paging by rowid skips a row whose rowid is 0 or
        // less (only a hand-made insert gives one), and nothing would say so.
        let source: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", t.sqlite))
            .fetch_one(&mut **src)
            .await?;
        anyhow::ensure!(
            count as u64 == total && source as u64 == total,
            "{}: {source} row(s) in the SQLite store, {total} written, {count} found",
            t.pg
        );
        Ok(total)
    }

    /// Opens every sealed seed with the key file and AAD = serial, exactly as the store will;
    /// each plaintext is dropped (and zeroed) at once. Any failure stops the migration.
    pub async fn check_seeds(
        src: &mut Snapshot,
        sealer: &crate::store::Sealer,
    ) -> anyhow::Result<()> {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT serial, secret FROM tokens")
            .fetch_all(&mut **src)
            .await?;
        let bad: Vec<&str> = rows
            .iter()
            .filter(|(serial, sealed)| {
                crate::store::columns::open_seed(sealer, serial, sealed).is_err()
            })
            .map(|(serial, _)| serial.as_str())
            .collect();
        if !bad.is_empty() {
            // The key itself was proven when the store opened (its key_check row): these
            // are damaged rows, which `token list` marks BROKEN.
            bail!(
                "{} token seed(s) do not open, though the key file is this database's (first: \
                 {}): damaged rows, marked BROKEN by `radmfa token list`. Import imported \
                 tokens again with `radmfa token import --replace`, or for a serial changed \
                 by hand in SQL change it back (or `radmfa token delete SERIAL --force`); \
                 delete an app's token and enroll its user again (docs/operations.md); then \
                 migrate. Nothing was written.",
                bad.len(),
                super::super::printable(bad[0])
            );
        }
        Ok(())
    }

    /// New ids continue after the copied ones, and after every id SQLite gave out: the
    /// rows deleted before the move (the newest token or app password) keep their ids
    /// used, as SQLite's AUTOINCREMENT kept them, so the audit's `app-password-N` and a
    /// login's token id name one thing each.
    pub async fn move_sequences(src: &mut Snapshot, dest: &mut Dest) -> anyhow::Result<()> {
        for t in IDENTITIES {
            // `sqlite_sequence` exists once any AUTOINCREMENT table does (the audit's, from
            // the first schema on); a table not yet rebuilt with it has no row there.
            let given_out: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = ?1")
                    .bind(t)
                    .fetch_optional(&mut **src)
                    .await?;
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{t}', 'id'), \
                 GREATEST(COALESCE(MAX(id), 0), $1) + 1, false) FROM {t}"
            ))
            .bind(given_out.unwrap_or(0))
            .execute(&mut **dest)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::key_to_use;
    use std::path::Path;

    /// The destination's config naming the source's own key file: the path once, not "use
    /// the key file X (the same key as X)".
    #[test]
    fn the_key_to_use_is_named_once_when_both_stores_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("radmfa.key");
        std::fs::write(&key, b"k").unwrap();
        let config = Path::new("/etc/radmfa/pg.toml");
        let shown = key.display().to_string();
        let said = key_to_use(&key, Some(&key), Some(config));
        assert_eq!(said.matches(&shown).count(), 1, "{said}");
        // Another spelling of the same file too.
        let dotted = dir.path().join(".").join("radmfa.key");
        let said = key_to_use(&key, Some(&dotted), Some(config));
        assert!(!said.contains("the same key as"), "{said}");
        // Another file: both named.
        let other = dir.path().join("other.key");
        std::fs::write(&other, b"k").unwrap();
        let said = key_to_use(&key, Some(&other), Some(config));
        assert!(
            said.contains("the same key as") && said.contains(&shown),
            "{said}"
        );
    }
}
