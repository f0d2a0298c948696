//! `SqliteStore`'s out-of-band state: user profile (phone, method, fraud block), app
//! passwords, send rate limits and SMS/call transactions. The trait impl in `sqlite.rs`
//! delegates here. Each guard (one send per request, one decision per call, the rate limit)
//! is one statement or one IMMEDIATE transaction, so processes sharing the file agree.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::delivery::USER_SEND_KEYS;
use super::sqlite::{is_unique_violation, returned_id};
use super::{
    AppPassword, LoginOrigin, OobBegin, OobKind, OobStatus, OobTransaction, SendLimit, SqliteStore,
    StoreError, UserProfile,
};

const OOB_COLUMNS: &str = "id, request_key, user, nas, kind, phone, code_hash, status, reason, \
                           provider_ref, created_at, expires_at, client_ip, nas_ip, \
                           nas_identifier";

/// Send events are kept this long: the longest send window (a day, as validated) and an
/// hour more, so a node whose clock runs ahead does not purge events another still counts.
const SEND_EVENT_RETENTION: i64 = 86_400 + 3600;

fn oob_from_row(row: &SqliteRow) -> Result<OobTransaction, StoreError> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    Ok(OobTransaction {
        id: row.try_get("id")?,
        request_key: row.try_get("request_key")?,
        user: row.try_get("user")?,
        nas: row.try_get("nas")?,
        kind: OobKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("oob kind {kind:?}")))?,
        phone: row.try_get("phone")?,
        code_hash: row.try_get("code_hash")?,
        status: OobStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("oob status {status:?}")))?,
        reason: row.try_get("reason")?,
        provider_ref: row.try_get("provider_ref")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        origin: Box::new(LoginOrigin {
            client_ip: row.try_get("client_ip")?,
            nas_ip: row.try_get("nas_ip")?,
            nas_identifier: row.try_get("nas_identifier")?,
        }),
    })
}

impl SqliteStore {
    pub(super) async fn user_profile_impl(&self, user: &str) -> Result<UserProfile, StoreError> {
        let row = sqlx::query(
            "SELECT phone, method, blocked_at, blocked_reason, bypass_until FROM user_profile \
             WHERE user = ?1",
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(UserProfile {
                user: user.to_string(),
                ..Default::default()
            });
        };
        Ok(UserProfile {
            user: user.to_string(),
            phone: row.try_get("phone")?,
            method: row.try_get("method")?,
            blocked_at: row.try_get("blocked_at")?,
            blocked_reason: row.try_get("blocked_reason")?,
            bypass_until: row.try_get("bypass_until")?,
        })
    }

    pub(super) async fn set_bypass_impl(
        &self,
        user: &str,
        until: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_profile (user, bypass_until) VALUES (?1, ?2) \
             ON CONFLICT (user) DO UPDATE SET bypass_until = excluded.bypass_until",
        )
        .bind(user)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn set_bypass_audited_impl(
        &self,
        user: &str,
        until: Option<i64>,
        only_if: crate::store::BypassWas,
        record: &crate::store::AuditRecord,
    ) -> Result<bool, StoreError> {
        use crate::store::BypassWas;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = match only_if {
            BypassWas::Anything => {
                sqlx::query(
                    "INSERT INTO user_profile (user, bypass_until) VALUES (?1, ?2) \
                 ON CONFLICT (user) DO UPDATE SET bypass_until = excluded.bypass_until",
                )
                .bind(user)
                .bind(until)
                .execute(&mut *tx)
                .await?
            }
            // No row, or a row with none: a skipped DO UPDATE changes no row.
            BypassWas::Exactly(None) => {
                sqlx::query(
                    "INSERT INTO user_profile (user, bypass_until) VALUES (?1, ?2) \
                 ON CONFLICT (user) DO UPDATE SET bypass_until = excluded.bypass_until \
                 WHERE user_profile.bypass_until IS NULL",
                )
                .bind(user)
                .bind(until)
                .execute(&mut *tx)
                .await?
            }
            BypassWas::Exactly(Some(seen)) => sqlx::query(
                "UPDATE user_profile SET bypass_until = ?2 WHERE user = ?1 AND bypass_until = ?3",
            )
            .bind(user)
            .bind(until)
            .bind(seen)
            .execute(&mut *tx)
            .await?,
        };
        if done.rows_affected() != 1 {
            // Dropped, the transaction rolls back: nothing written.
            return Ok(false);
        }
        super::sqlite_tokens::insert_audit(&mut tx, record).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn take_bypass_impl(&self, user: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE user_profile SET bypass_until = NULL \
             WHERE user = ?1 AND bypass_until > ?2 AND bypass_until <= ?3",
        )
        .bind(user)
        .bind(now)
        .bind(super::delivery::bypass_latest_end(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Upserts one column of `user_profile`. `column` is one of our constants, never input.
    async fn set_profile_column(
        &self,
        column: &'static str,
        user: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO user_profile (user, {column}) VALUES (?1, ?2) \
             ON CONFLICT (user) DO UPDATE SET {column} = excluded.{column}"
        ))
        .bind(user)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn set_phone_impl(
        &self,
        user: &str,
        phone: Option<&str>,
    ) -> Result<(), StoreError> {
        self.set_profile_column("phone", user, phone).await
    }

    pub(super) async fn set_method_impl(
        &self,
        user: &str,
        method: Option<&str>,
    ) -> Result<(), StoreError> {
        self.set_profile_column("method", user, method).await
    }

    pub(super) async fn block_user_impl(
        &self,
        user: &str,
        at: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO user_profile (user, blocked_at, blocked_reason) VALUES (?1, ?2, ?3) \
             ON CONFLICT (user) DO UPDATE SET blocked_at = excluded.blocked_at, \
                 blocked_reason = excluded.blocked_reason \
             WHERE user_profile.blocked_at IS NULL",
        )
        .bind(user)
        .bind(at)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn unblock_user_impl(&self, user: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE user_profile SET blocked_at = NULL, blocked_reason = NULL \
             WHERE user = ?1 AND blocked_at IS NOT NULL",
        )
        .bind(user)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn add_app_password_impl(
        &self,
        user: &str,
        label: Option<&str>,
        hash: &str,
        now: i64,
        (dn, entry_id): (Option<&str>, Option<&str>),
    ) -> Result<i64, StoreError> {
        // fetch_all, not fetch_one: see `returned_id`.
        let ids = sqlx::query_scalar(
            "INSERT INTO app_passwords (user, label, hash, created_at, dn, entry_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )
        .bind(user)
        .bind(label)
        .bind(hash)
        .bind(now)
        .bind(dn)
        .bind(entry_id)
        .fetch_all(&self.pool)
        .await?;
        returned_id(ids)
    }

    pub(super) async fn app_passwords_impl(
        &self,
        user: &str,
    ) -> Result<Vec<AppPassword>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user, label, hash, created_at, last_used_at, dn, entry_id \
             FROM app_passwords \
             WHERE user = ?1 ORDER BY id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AppPassword {
                    id: r.try_get("id")?,
                    user: r.try_get("user")?,
                    label: r.try_get("label")?,
                    hash: r.try_get("hash")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                    dn: r.try_get("dn")?,
                    entry_id: r.try_get("entry_id")?,
                })
            })
            .collect()
    }

    pub(super) async fn delete_app_password_impl(
        &self,
        user: &str,
        id: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM app_passwords WHERE user = ?1 AND id = ?2")
            .bind(user)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete_app_passwords_impl(&self, user: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM app_passwords WHERE user = ?1")
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn touch_app_password_impl(
        &self,
        id: i64,
        user: &str,
        hash: &str,
        now: i64,
        dn: Option<&str>,
        entry_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE app_passwords SET last_used_at = ?2, dn = COALESCE(dn, ?3), \
             entry_id = COALESCE(entry_id, ?6) WHERE id = ?1 AND user = ?4 AND hash = ?5",
        )
        .bind(id)
        .bind(now)
        .bind(dn)
        .bind(user)
        .bind(hash)
        .bind(entry_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn take_send_slot_impl(
        &self,
        limits: &[SendLimit],
        now: i64,
        slot: &str,
    ) -> Result<Option<usize>, StoreError> {
        // IMMEDIATE: the count and the insert happen under the write lock, so two racing
        // senders cannot both see "4 of 5" and both send.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (i, l) in limits.iter().enumerate() {
            // Not sends stamped ahead of this clock by more than nodes' skew (an NTP step back
            // since): counted, they filled the window for as long as the clock was wrong, and the
            // user was told to wait a few minutes for a day.
            let used: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM send_events WHERE key = ?1 AND at > ?2 AND at <= ?3",
            )
            .bind(&l.key)
            .bind(now - l.window_secs)
            .bind(now + crate::clock::FUTURE_SLACK_SECS)
            .fetch_one(&mut *tx)
            .await?;
            if used >= i64::from(l.max) {
                tx.rollback().await?;
                return Ok(Some(i));
            }
        }
        for l in limits {
            sqlx::query("INSERT INTO send_events (key, at, slot) VALUES (?1, ?2, ?3)")
                .bind(&l.key)
                .bind(now)
                .bind(slot)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(None)
    }

    /// On the pool, as `take_send_slot_impl` is: its own autocommit statement, outside the
    /// request's deferred writes.
    pub(super) async fn release_send_slot_impl(&self, slot: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM send_events WHERE slot = ?1")
            .bind(slot)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn forget_sends_impl(&self, key: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let sends: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM send_events WHERE key = ?1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "DELETE FROM send_events WHERE {USER_SEND_KEYS} AND \
             slot IN (SELECT slot FROM send_events WHERE key = ?1)"
        ))
        .bind(key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(sends as u64)
    }

    pub(super) async fn sends_since_impl(
        &self,
        key: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(super::delivery::SENDS_SINCE)
            .bind(key)
            .bind(since)
            .bind(now + crate::clock::FUTURE_SLACK_SECS)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(w, n)| (w, n as u64)).collect())
    }

    pub(super) async fn forget_number_sends_impl(&self, phone: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let sends: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM send_events WHERE key = 'phone-day:' || ?1")
                .bind(phone)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM send_events WHERE key IN ('phone:' || ?1, 'phone-day:' || ?1)")
            .bind(phone)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(sends as u64)
    }

    pub(super) async fn begin_oob_impl(&self, t: &OobTransaction) -> Result<OobBegin, StoreError> {
        let inserted = sqlx::query(&format!(
            "INSERT INTO oob_transactions ({OOB_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ))
        .bind(&t.id)
        .bind(&t.request_key)
        .bind(&t.user)
        .bind(&t.nas)
        .bind(t.kind.as_str())
        .bind(&t.phone)
        .bind(&t.code_hash)
        .bind(t.status.as_str())
        .bind(&t.reason)
        .bind(&t.provider_ref)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(&t.origin.client_ip)
        .bind(&t.origin.nas_ip)
        .bind(&t.origin.nas_identifier)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(OobBegin::Created),
            Err(e) if is_unique_violation(&e) => {
                let row = sqlx::query(&format!(
                    "SELECT {OOB_COLUMNS} FROM oob_transactions WHERE request_key = ?1"
                ))
                .bind(&t.request_key)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    Some(r) => Ok(OobBegin::Existing(Box::new(oob_from_row(&r)?))),
                    // The id itself collided (random 128 bits: practically never).
                    None => Err(StoreError::Conflict(format!("oob transaction {}", t.id))),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn oob_impl(&self, id: &str) -> Result<Option<OobTransaction>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {OOB_COLUMNS} FROM oob_transactions WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(oob_from_row).transpose()
    }

    pub(super) async fn set_oob_provider_ref_impl(
        &self,
        id: &str,
        provider_ref: &str,
    ) -> Result<Option<(OobStatus, Option<String>)>, StoreError> {
        // fetch_all: RETURNING through sqlx's SQLite driver must be read to the end.
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "UPDATE oob_transactions SET provider_ref = ?2 WHERE id = ?1 RETURNING status, reason",
        )
        .bind(id)
        .bind(provider_ref)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|(s, r)| Some((OobStatus::parse(&s)?, r))))
    }

    pub(super) async fn note_pending_oob_impl(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE oob_transactions SET reason = ?2 WHERE id = ?1 AND status = 'pending'")
            .bind(id)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn resolve_oob_impl(
        &self,
        id: &str,
        status: OobStatus,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE oob_transactions SET status = ?2, reason = ?3 \
             WHERE id = ?1 AND (status = 'pending' OR (?2 = 'fraud' AND status <> 'fraud'))",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn purge_delivery_state_impl(&self, now: i64) -> Result<u64, StoreError> {
        let a = sqlx::query(
            "DELETE FROM oob_transactions \
             WHERE expires_at <= CASE WHEN kind = 'voice' THEN ?1 - ?2 ELSE ?1 END",
        )
        .bind(now)
        .bind(super::VOICE_ROW_GRACE)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let b = sqlx::query("DELETE FROM send_events WHERE at <= ?1")
            .bind(now - SEND_EVENT_RETENTION)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let c = sqlx::query("DELETE FROM remembered_logins WHERE expires_at <= ?1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(a + b + c)
    }
}
