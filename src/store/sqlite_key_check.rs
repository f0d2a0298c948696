//! The SQLite store's `key_check` row: the database remembers which key its seeds are sealed
//! with, so a wrong key file (a regenerated one, or a restored backup's database with today's
//! key) stops `radmfa serve` and every admin command at once, instead of starting and failing
//! each login whose seed does not open.

use super::columns::open_seed;
use super::seal::{opens_key_check, seal_key_check};
use super::sqlite::{has_table, now_unix};
use super::{Sealer, StoreError};
use sqlx::SqlitePool;

/// How many existing seeds a database from before the check is tried against: one damaged
/// row must not stop the start, and a wrong key opens none of them.
const SEEDS_TRIED: i64 = 3;

/// Checks the key against the database's `key_check` row, first recording the row if the
/// database has none (a new one, or one made before schema version 8). A row is recorded only
/// when the key opens a seed already in the database, or there is none.
pub(super) async fn check_key(pool: &SqlitePool, sealer: &Sealer) -> Result<(), StoreError> {
    if stored(pool).await?.is_none() {
        if !opens_a_seed_if_any(pool, sealer).await? {
            return Err(wrong_key());
        }
        // Two processes opening a pre-check database at once both insert-or-skip, then both
        // check the one row that stayed.
        sqlx::query("INSERT INTO key_check (id, sealed, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING")
            .bind(seal_key_check(sealer))
            .bind(now_unix())
            .execute(pool)
            .await?;
    }
    let row = stored(pool)
        .await?
        .ok_or_else(|| StoreError::Corrupt("key_check row vanished".into()))?;
    if opens_key_check(sealer, &row) {
        Ok(())
    } else {
        Err(wrong_key())
    }
}

/// Checks the key against a `key_check` row the database already has, before anything
/// changes it: a wrong key file (a restored database with today's key) is refused before
/// the migrations run, not after they upgraded a store it then could not use.
/// A database without the row (new, or from before schema version 8) is checked against
/// its first seeds instead, as [`check_key`] does before recording one.
pub(super) async fn check_recorded_key(
    pool: &SqlitePool,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    let row = if has_table(pool, "key_check").await? {
        stored(pool).await?
    } else {
        None
    };
    match row {
        Some(row) if opens_key_check(sealer, &row) => Ok(()),
        Some(_) => Err(wrong_key()),
        None if opens_a_seed_if_any(pool, sealer).await? => Ok(()),
        None => Err(wrong_key()),
    }
}

/// Whether the key opens one of the database's first seeds, or there is none to try (no
/// token, or no table yet: a new database before its migrations).
async fn opens_a_seed_if_any(pool: &SqlitePool, sealer: &Sealer) -> Result<bool, StoreError> {
    if !has_table(pool, "tokens").await? {
        return Ok(true);
    }
    let seeds: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT serial, secret FROM tokens ORDER BY id LIMIT ?")
            .bind(SEEDS_TRIED)
            .fetch_all(pool)
            .await?;
    Ok(seeds.is_empty()
        || seeds
            .iter()
            .any(|(serial, sealed)| open_seed(sealer, serial, sealed).is_ok()))
}

async fn stored(pool: &SqlitePool) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT sealed FROM key_check WHERE id = 1")
            .fetch_optional(pool)
            .await?,
    )
}

fn wrong_key() -> StoreError {
    StoreError::Decrypt(
        "is not the key this database's seeds are sealed with; restore the key file that \
         belongs to this database (from the key's own backup, kept apart from the database's)"
            .into(),
    )
}
