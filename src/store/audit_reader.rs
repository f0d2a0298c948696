//! The audit log read on its own, for `radmfa audit`: a report needs neither the seed key
//! (which unseals every token) nor write access, so an auditor's account gets neither. The
//! store proper opens read-write, migrates, and loads the key: on a copy an auditor may
//! only read it failed ("attempt to write a readonly database"), or, where it could write,
//! left -wal and -shm files the service could then not use.

use std::path::Path;

use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use super::postgres::{self, PgSettings};
use super::{sqlite, AuditCount, AuditFilter, AuditGroup, AuditRecord, StoreError};

/// A read-only connection to the audit log of either store.
pub enum AuditReader {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl AuditReader {
    /// The SQLite database at `path`, opened read-only: nothing is created, changed or
    /// migrated. SQLite reads a WAL database (radmfa's are) through its -wal and -shm
    /// files, there while radmfa has it open. Where there is no -wal file, no process has
    /// the database open (the last to close removed it) and every record is in the file
    /// itself: a report (`snapshot_ok`) reads it as it is (SQLite's `immutable`), since a
    /// read-only open would make the two files, owned by this account, and leave them
    /// (a read-only connection cannot checkpoint) for the service to trip over, or fail
    /// where the directory is not writable. `--follow`, which must see the records still to
    /// come, opens it as usual only as the database's owner (the files it makes are then
    /// the service's own), and is refused otherwise.
    pub async fn sqlite(path: &Path, snapshot_ok: bool) -> Result<Self, StoreError> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        if !Path::new(&wal).exists() {
            if snapshot_ok {
                return Ok(AuditReader::Sqlite(sqlite_pool(path, true).await?));
            }
            if !owns(path) {
                return Err(StoreError::Sqlite(
                    "no process has the database open (no -wal file beside it), and following \
                     it as another account than its owner would leave -wal and -shm files \
                     the service could not use"
                        .into(),
                ));
            }
        }
        Ok(AuditReader::Sqlite(sqlite_pool(path, false).await?))
    }

    /// The PostgreSQL store `settings` name, as one connection; the key file is not read.
    pub fn postgres(settings: &PgSettings) -> Result<Self, StoreError> {
        Ok(AuditReader::Postgres(postgres::audit_reading_pool(
            settings,
        )?))
    }

    /// (its newest migration, this release's newest) when the database lacks one of this
    /// release's: the audit's columns may not all be there, and this reader migrates
    /// nothing.
    pub async fn schema_behind(&self) -> Result<Option<(i64, i64)>, StoreError> {
        match self {
            AuditReader::Sqlite(pool) => sqlite::schema_behind_on(pool).await,
            AuditReader::Postgres(pool) => Ok(postgres::schema_behind_on(pool).await?),
        }
    }

    /// Newest first, or from [`AuditFilter::after_id`] on, as [`super::Store::audit`].
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        match self {
            AuditReader::Sqlite(pool) => sqlite::audit_records(pool, filter).await,
            AuditReader::Postgres(pool) => postgres::audit_records(pool, filter).await,
        }
    }

    /// As [`super::Store::audit_top_id`].
    pub async fn audit_top_id(&self) -> Result<i64, StoreError> {
        match self {
            AuditReader::Sqlite(pool) => sqlite::audit_top_id(pool).await,
            AuditReader::Postgres(pool) => postgres::audit_top_id(pool).await,
        }
    }

    /// As [`super::Store::audit_counts`].
    pub async fn audit_counts(
        &self,
        filter: &AuditFilter,
        by: AuditGroup,
    ) -> Result<Vec<AuditCount>, StoreError> {
        match self {
            AuditReader::Sqlite(pool) => sqlite::audit_counts(pool, filter, by).await,
            AuditReader::Postgres(pool) => postgres::audit_counts(pool, filter, by).await,
        }
    }

    pub async fn close(&self) {
        match self {
            AuditReader::Sqlite(pool) => super::pool_close::close_pool(pool).await,
            AuditReader::Postgres(pool) => super::pool_close::close_pool(pool).await,
        }
    }
}

/// One read-only connection to the SQLite database at `path`; `immutable`: read as a file
/// no one changes, without the WAL's files or locks.
async fn sqlite_pool(path: &Path, immutable: bool) -> Result<SqlitePool, StoreError> {
    super::stale_wal::refuse_stale_wal(path)?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(immutable)
        .create_if_missing(false)
        .busy_timeout(sqlite::BUSY_TIMEOUT);
    Ok(super::pool_options::without_reaper()
        .max_connections(1)
        .connect_with(options)
        .await?)
}

/// Whether this process runs as the owner of `path`. Root counts: SQLite gives the -wal and
/// -shm files root makes to the database's owner.
fn owns(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid();
    me.is_root() || std::fs::metadata(path).is_ok_and(|m| m.uid() == me.as_raw())
}
