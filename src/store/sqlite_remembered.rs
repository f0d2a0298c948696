//! `SqliteStore`'s remembered second factors (`remember_second_factor_secs`). Each call is
//! one statement; the trait impl in `sqlite.rs` delegates here.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{RememberedLogin, SqliteStore, StoreError};

const COLUMNS: &str = "user, nas, station, mode, verified_at, expires_at";

fn from_row(row: &SqliteRow) -> Result<RememberedLogin, StoreError> {
    Ok(RememberedLogin {
        user: row.try_get("user")?,
        nas: row.try_get("nas")?,
        station: row.try_get("station")?,
        mode: row.try_get("mode")?,
        verified_at: row.try_get("verified_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl SqliteStore {
    pub(super) async fn remember_login_impl(
        &self,
        login: &RememberedLogin,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO remembered_logins ({COLUMNS}) SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
             WHERE NOT EXISTS (SELECT 1 FROM user_profile \
                               WHERE user = ?1 AND logins_forgotten_at >= ?5) \
             ON CONFLICT (user, nas, station) DO UPDATE SET mode = excluded.mode, \
             verified_at = excluded.verified_at, expires_at = excluded.expires_at"
        ))
        .bind(&login.user)
        .bind(&login.nas)
        .bind(&login.station)
        .bind(&login.mode)
        .bind(login.verified_at)
        .bind(login.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn remembered_login_impl(
        &self,
        user: &str,
        nas: &str,
        station: &str,
        now: i64,
    ) -> Result<Option<RememberedLogin>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM remembered_logins \
             WHERE user = ?1 AND nas = ?2 AND station = ?3 AND expires_at > ?4"
        ))
        .bind(user)
        .bind(nas)
        .bind(station)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub(super) async fn remembered_logins_impl(
        &self,
        user: &str,
        now: i64,
    ) -> Result<Vec<RememberedLogin>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM remembered_logins WHERE user = ?1 AND expires_at > ?2 \
             ORDER BY expires_at, nas, station"
        ))
        .bind(user)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub(super) async fn forget_logins_impl(&self, user: &str, now: i64) -> Result<u64, StoreError> {
        // The moment first: a login that verified before it and writes its row after the
        // delete below is then refused by `remember_login`.
        sqlx::query(
            "INSERT INTO user_profile (user, logins_forgotten_at) VALUES (?1, ?2) \
             ON CONFLICT (user) DO UPDATE SET logins_forgotten_at = \
             max(COALESCE(logins_forgotten_at, 0), excluded.logins_forgotten_at)",
        )
        .bind(user)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let done = sqlx::query("DELETE FROM remembered_logins WHERE user = ?1")
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn remembered_clients_impl(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT nas FROM remembered_logins")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("nas").map_err(StoreError::from))
            .collect()
    }

    pub(super) async fn cut_remembered_impl(
        &self,
        nas: &str,
        period: Option<i64>,
    ) -> Result<u64, StoreError> {
        let done = match period {
            None => {
                sqlx::query("DELETE FROM remembered_logins WHERE nas = ?1")
                    .bind(nas)
                    .execute(&self.pool)
                    .await?
            }
            // Only rows that run past the period: the count says how many were cut.
            Some(secs) => {
                sqlx::query(
                    "UPDATE remembered_logins SET expires_at = verified_at + ?2 \
                     WHERE nas = ?1 AND expires_at > verified_at + ?2",
                )
                .bind(nas)
                .bind(secs)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected())
    }
}
