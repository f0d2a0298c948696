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
        // Under the user's lock, which a forget takes too: at READ COMMITTED the NOT EXISTS
        // below reads a snapshot from before the statement, and a forget committing while
        // this insert waited for the row it deletes was not seen, so the row came back.
        // Inside a request: a savepoint in its transaction, the lock held to its commit.
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        lock_users_remembered(&mut tx, &login.user).await?;
        sqlx::query(&format!(
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
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        w.done(Ok(()))?;
        Ok(())
    }

    pub(super) async fn remembered_login_impl(
        &self,
        user: &str,
        nas: &str,
        station: &str,
        now: i64,
    ) -> Result<Option<RememberedLogin>, StoreError> {
        let mut rd = self.reader().await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM remembered_logins \
             WHERE username = $1 AND nas = $2 AND station = $3 AND expires_at > $4"
        ))
        .bind(user)
        .bind(nas)
        .bind(station)
        .bind(now)
        .fetch_optional(rd.conn())
        .await;
        let row = rd.done(row)?;
        row.as_ref().map(from_row).transpose()
    }

    pub(super) async fn remembered_logins_impl(
        &self,
        user: &str,
        now: i64,
    ) -> Result<Vec<RememberedLogin>, StoreError> {
        let mut rd = self.reader().await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM remembered_logins WHERE username = $1 AND expires_at > $2 \
             ORDER BY expires_at, nas COLLATE \"C\", station COLLATE \"C\""
        ))
        .bind(user)
        .bind(now)
        .fetch_all(rd.conn())
        .await;
        let rows = rd.done(rows)?;
        rows.iter().map(from_row).collect()
    }

    pub(super) async fn forget_logins_impl(&self, user: &str, now: i64) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        lock_users_remembered(&mut tx, user).await?;
        // The moment first, as in SQLite's.
        sqlx::query(
            "INSERT INTO user_profile (username, logins_forgotten_at) VALUES ($1, $2) \
             ON CONFLICT (username) DO UPDATE SET logins_forgotten_at = \
             GREATEST(COALESCE(user_profile.logins_forgotten_at, 0), excluded.logins_forgotten_at)",
        )
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query("DELETE FROM remembered_logins WHERE username = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        w.done(Ok(()))?;
        Ok(gone)
    }

    pub(super) async fn remembered_clients_impl(&self) -> Result<Vec<String>, StoreError> {
        let mut rd = self.reader().await?;
        let rows = sqlx::query("SELECT DISTINCT nas FROM remembered_logins")
            .fetch_all(rd.conn())
            .await;
        let rows = rd.done(rows)?;
        rows.iter()
            .map(|r| r.try_get("nas").map_err(StoreError::from))
            .collect()
    }

    pub(super) async fn cut_remembered_impl(
        &self,
        nas: &str,
        period: Option<i64>,
    ) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        let done = match period {
            None => {
                sqlx::query("DELETE FROM remembered_logins WHERE nas = $1")
                    .bind(nas)
                    .execute(w.conn())
                    .await
            }
            // As in SQLite's: only rows that run past the period.
            Some(secs) => {
                sqlx::query(
                    "UPDATE remembered_logins SET expires_at = verified_at + $2 \
                     WHERE nas = $1 AND expires_at > verified_at + $2",
                )
                .bind(nas)
                .bind(secs)
                .execute(w.conn())
                .await
            }
        };
        Ok(w.done(done)?.rows_affected())
    }
}

/// The user's remembered logins, for the rest of the transaction: a remember and a forget
/// (or a user delete) of one user take turns, so a remember either finds the forget's mark
/// or has its row deleted by it. Taken before any other lock, so it cannot close a cycle.
pub(super) async fn lock_users_remembered(
    conn: &mut sqlx::PgConnection,
    user: &str,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("remembered:{user}"))
        .execute(conn)
        .await?;
    Ok(())
}
