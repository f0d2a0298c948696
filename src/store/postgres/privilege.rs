//! PostgreSQL's "permission denied" at open, with what to do about it. A database restored
//! by a superuser with `pg_restore --no-owner` has its tables owned by that superuser, and
//! the role radmfa connects as may touch none of them: `config check` said "permission
//! denied for table _sqlx_migrations" and `serve` "permission denied for table key_check",
//! and neither said why a database that worked before the restore no longer did.

use sqlx::migrate::MigrateError;

use super::connect::PgSettings;
use crate::store::StoreError;

/// SQLSTATE `insufficient_privilege`.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// `e`, with the hint when it is PostgreSQL's "permission denied"; anything else as it is.
pub(super) fn with_hint(settings: &PgSettings, e: StoreError) -> StoreError {
    let denied = match &e {
        StoreError::Db(cause)
        | StoreError::Migrate(MigrateError::Execute(cause))
        | StoreError::Migrate(MigrateError::ExecuteMigration(cause, _)) => denied(cause),
        _ => None,
    };
    let Some(message) = denied else {
        return e;
    };
    let role = settings
        .connect_options()
        .map(|o| o.get_username().to_string())
        .unwrap_or_else(|_| "ROLE".into());
    StoreError::PermissionDenied(hint(&message, &role))
}

/// The server's message, when `e` is its "permission denied".
fn denied(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE) => {
            Some(db.message().to_string())
        }
        _ => None,
    }
}

fn hint(message: &str, role: &str) -> String {
    format!(
        "{message}: radmfa's tables must be owned by, or granted to, the role it connects as \
         ({role}). A restore by a superuser with `pg_restore --no-owner` leaves them the \
         superuser's: restore with `pg_restore --no-owner --role={role}`, or give each table \
         to it (`ALTER TABLE name OWNER TO {role}`)"
    )
}
