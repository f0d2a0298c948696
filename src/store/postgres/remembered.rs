//! `PgStore`'s remembered second factors, statement for statement the SQLite ones
//! (`sqlite_remembered.rs`). Shared by every node, so a login remembered on one node is
//! remembered on all.

use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PgStore;
use crate::store::{RememberedLogin, StoreError};

const COLUMNS: &str = "username, nas, station, mode, verified_at, expires_at";

fn from_row(row: &PgRow) -> Result<RememberedLogin, StoreError> {
    Ok(RememberedLogin {
        user: row.try_get("username")?,
        nas: row.try_get("nas")?,
        station: row.try_get("station")?,
        mode: row.try_get("mode")?,
        verified_at: row.try_get("verified_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl PgStore {
    pub(super) async fn remember_login_impl(
        &self,
        login: &RememberedLogin,
    ) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(&format!(
            "INSERT INTO remembered_logins ({COLUMNS}) SELECT $1, $2, $3, $4, $5, $6 \
             WHERE NOT EXISTS (SELECT 1 FROM user_profile \
                               WHERE username = $1 AND logins_forgotten_at >= $5) \
             ON CONFLICT (username, nas, station) DO UPDATE SET mode = excluded.mode, \
             verified_at = excluded.verified_at, expires_at = excluded.expires_at"
        ))
        .bind(&login.user)
        .bind(&login.nas)
        .bind(&login.station)
        .bind(&login.mode)
        .bind(login.verified_at)
        .bind(login.expires_at)
        .execute(w.conn())
        .await;
        w.done(r)?;
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
             WHERE username = $1 AND nas = $2 AND station = $3 AND expires_at > $4"
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
            "SELECT {COLUMNS} FROM remembered_logins WHERE username = $1 AND expires_at > $2 \
             ORDER BY expires_at, nas, station"
        ))
        .bind(user)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub(super) async fn forget_logins_impl(&self, user: &str, now: i64) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        // The moment first, as in SQLite's.
        let r = sqlx::query(
            "INSERT INTO user_profile (username, logins_forgotten_at) VALUES ($1, $2) \
             ON CONFLICT (username) DO UPDATE SET logins_forgotten_at = \
             GREATEST(COALESCE(user_profile.logins_forgotten_at, 0), excluded.logins_forgotten_at)",
        )
        .bind(user)
        .bind(now)
        .execute(w.conn())
        .await;
        w.done(r)?;
        let r = sqlx::query("DELETE FROM remembered_logins WHERE username = $1")
            .bind(user)
            .execute(w.conn())
            .await;
        Ok(w.done(r)?.rows_affected())
    }
}
