//! `PgStore`'s out-of-band state, statement for statement the SQLite one
//! (`sqlite_delivery.rs`): user profile (phone, method, fraud block), app passwords, send rate
//! limits and SMS/call transactions. The trait impl in `postgres.rs` delegates here. Each
//! guard (one send per request, one decision per call, the rate limit) is one statement or
//! one transaction serialised by an advisory lock, so every node sharing the database agrees.

use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PgStore;
use crate::store::delivery::USER_SEND_KEYS;
use crate::store::{
    AppPassword, LoginOrigin, OobBegin, OobKind, OobStatus, OobTransaction, SendLimit, StoreError,
    UserProfile,
};

const OOB_COLUMNS: &str =
    "id, request_key, username, nas, kind, phone, code_hash, status, reason, \
                           provider_ref, created_at, expires_at, client_ip, nas_ip, \
                           nas_identifier";

/// Send events are kept this long: the longest send window (a day, as validated) and an
/// hour more, so a node whose clock runs ahead does not purge events another still counts.
const SEND_EVENT_RETENTION: i64 = 86_400 + 3600;

/// `idle_in_transaction_session_timeout` of a transaction that holds send-slot locks (see
/// `take_send_slot_impl`): how long a stalled node can hold up other logins through its NAS
/// or to its number. Its statements follow one another without waiting on anything but the
/// database, so a live node never idles this long between them even when loaded; were it to,
/// its session is ended and that one login rejected, nothing sent. Short enough that a
/// waiter still gets the locks well inside the serving statement timeout (5 s) and a request
/// deadline.
const SLOT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn oob_from_row(row: &PgRow) -> Result<OobTransaction, StoreError> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    Ok(OobTransaction {
        id: row.try_get("id")?,
        request_key: row.try_get("request_key")?,
        user: row.try_get("username")?,
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

impl PgStore {
    pub(super) async fn user_profile_impl(&self, user: &str) -> Result<UserProfile, StoreError> {
        let mut rd = self.reader().await?;
        let row = sqlx::query(
            "SELECT phone, method, blocked_at, blocked_reason, bypass_until FROM user_profile \
             WHERE username = $1",
        )
        .bind(user)
        .fetch_optional(rd.conn())
        .await;
        let row = rd.done(row)?;
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
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "INSERT INTO user_profile (username, bypass_until) VALUES ($1, $2) \
             ON CONFLICT (username) DO UPDATE SET bypass_until = excluded.bypass_until",
        )
        .bind(user)
        .bind(until)
        .execute(w.conn())
        .await;
        w.done(r)?;
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
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        let done = match only_if {
            BypassWas::Anything => sqlx::query(
                "INSERT INTO user_profile (username, bypass_until) VALUES ($1, $2) \
                 ON CONFLICT (username) DO UPDATE SET bypass_until = excluded.bypass_until",
            )
            .bind(user)
            .bind(until)
            .execute(&mut *tx)
            .await?,
            // No row, or a row with none: a skipped DO UPDATE changes no row.
            BypassWas::Exactly(None) => sqlx::query(
                "INSERT INTO user_profile (username, bypass_until) VALUES ($1, $2) \
                 ON CONFLICT (username) DO UPDATE SET bypass_until = excluded.bypass_until \
                 WHERE user_profile.bypass_until IS NULL",
            )
            .bind(user)
            .bind(until)
            .execute(&mut *tx)
            .await?,
            BypassWas::Exactly(Some(seen)) => sqlx::query(
                "UPDATE user_profile SET bypass_until = $2 WHERE username = $1 AND bypass_until = $3",
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
        let storable = record.storable();
        super::audit_batch::insert_records(&mut *tx, std::iter::once(&*storable)).await?;
        tx.commit().await?;
        w.done(Ok(()))?;
        Ok(true)
    }

    pub(super) async fn take_bypass_impl(&self, user: &str, now: i64) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE user_profile SET bypass_until = NULL \
             WHERE username = $1 AND bypass_until > $2 AND bypass_until <= $3",
        )
        .bind(user)
        .bind(now)
        .bind(crate::store::delivery::bypass_latest_end(now))
        .execute(w.conn())
        .await;
        Ok(w.done(r)?.rows_affected() == 1)
    }

    /// Upserts one column of `user_profile`. `column` is one of our constants, never input.
    async fn set_profile_column(
        &self,
        column: &'static str,
        user: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(&format!(
            "INSERT INTO user_profile (username, {column}) VALUES ($1, $2) \
             ON CONFLICT (username) DO UPDATE SET {column} = excluded.{column}"
        ))
        .bind(user)
        .bind(value)
        .execute(w.conn())
        .await;
        w.done(r)?;
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
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "INSERT INTO user_profile (username, blocked_at, blocked_reason) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (username) DO UPDATE SET blocked_at = excluded.blocked_at, \
                 blocked_reason = excluded.blocked_reason \
             WHERE user_profile.blocked_at IS NULL",
        )
        .bind(user)
        .bind(at)
        .bind(reason)
        .execute(w.conn())
        .await;
        let done = w.done(r)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn unblock_user_impl(&self, user: &str) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE user_profile SET blocked_at = NULL, blocked_reason = NULL \
             WHERE username = $1 AND blocked_at IS NOT NULL",
        )
        .bind(user)
        .execute(w.conn())
        .await;
        let done = w.done(r)?;
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
        let mut w = self.writer().await?;
        let r = sqlx::query_scalar(
            "INSERT INTO app_passwords (username, label, hash, created_at, dn, entry_id) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(user)
        .bind(label)
        .bind(hash)
        .bind(now)
        .bind(dn)
        .bind(entry_id)
        .fetch_one(w.conn())
        .await;
        Ok(w.done(r)?)
    }

    pub(super) async fn app_passwords_impl(
        &self,
        user: &str,
    ) -> Result<Vec<AppPassword>, StoreError> {
        let mut rd = self.reader().await?;
        let rows = sqlx::query(
            "SELECT id, username, label, hash, created_at, last_used_at, dn, entry_id \
             FROM app_passwords \
             WHERE username = $1 ORDER BY id",
        )
        .bind(user)
        .fetch_all(rd.conn())
        .await;
        let rows = rd.done(rows)?;
        rows.iter()
            .map(|r| {
                Ok(AppPassword {
                    id: r.try_get("id")?,
                    user: r.try_get("username")?,
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
        let mut w = self.writer().await?;
        let r = sqlx::query("DELETE FROM app_passwords WHERE username = $1 AND id = $2")
            .bind(user)
            .bind(id)
            .execute(w.conn())
            .await;
        let done = w.done(r)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete_app_passwords_impl(&self, user: &str) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query("DELETE FROM app_passwords WHERE username = $1")
            .bind(user)
            .execute(w.conn())
            .await;
        let done = w.done(r)?;
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
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE app_passwords SET last_used_at = $2, dn = COALESCE(dn, $3), \
             entry_id = COALESCE(entry_id, $6) WHERE id = $1 AND username = $4 AND hash = $5",
        )
        .bind(id)
        .bind(now)
        .bind(dn)
        .bind(user)
        .bind(hash)
        .bind(entry_id)
        .execute(w.conn())
        .await;
        Ok(w.done(r)?.rows_affected() == 1)
    }

    pub(super) async fn take_send_slot_impl(
        &self,
        limits: &[SendLimit],
        now: i64,
        slot: &str,
    ) -> Result<Option<usize>, StoreError> {
        // Count-then-insert is only safe if no other node counts the same key in between:
        // READ COMMITTED would let two senders both see "4 of 5" and both send. A transaction
        // advisory lock per key (taken in sorted order, so two nodes never deadlock) makes
        // the check and the insert one step for that key; it is released at commit.
        // Inside a request: a savepoint in its transaction (see request_tx.rs).
        //
        // Those locks are shared: every SMS or call through this NAS, and to this number,
        // waits for them. Should this node stall while holding them (a paused VM, a cut link
        // with no reset), its session sits idle in transaction, and the connection's own
        // timeout (the longest request deadline plus a second: up to a minute with calls on
        // hold) would hold up that NAS's logins on every node for that long. Nothing idles
        // in this transaction once the locks are taken: the request commits right after the
        // slot (`pipeline::oob::claim` settles before calling the provider), and a refused
        // slot rolls the savepoint back, which releases the locks and undoes this setting.
        // So the transaction gets a short timeout of its own, set before the first lock: a
        // stalled holder's session is ended, and its locks freed, after SLOT_IDLE_TIMEOUT.
        // Waiters then still fit in the statement timeout and their request's deadline.
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        sqlx::query("SELECT set_config('idle_in_transaction_session_timeout', $1, true)")
            .bind(SLOT_IDLE_TIMEOUT.as_millis().to_string())
            .execute(&mut *tx)
            .await?;
        let mut keys: Vec<&str> = limits.iter().map(|l| l.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        for (i, l) in limits.iter().enumerate() {
            // Not sends stamped ahead of this clock by more than nodes' skew (an NTP step back
            // since): counted, they filled the window for as long as the clock was wrong, and the
            // user was told to wait a few minutes for a day.
            let used: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM send_events WHERE key = $1 AND at > $2 AND at <= $3",
            )
            .bind(&l.key)
            .bind(now - l.window_secs)
            .bind(now + crate::clock::FUTURE_SLACK_SECS)
            .fetch_one(&mut *tx)
            .await?;
            if used >= i64::from(l.max) {
                tx.rollback().await?;
                w.done(Ok(()))?;
                return Ok(Some(i));
            }
        }
        for l in limits {
            sqlx::query("INSERT INTO send_events (key, at, slot) VALUES ($1, $2, $3)")
                .bind(&l.key)
                .bind(now)
                .bind(slot)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        w.done(Ok(()))?;
        Ok(None)
    }

    /// On a pooled connection, never the request's transaction (`writer`): a failed
    /// statement there aborts that transaction, rolling back the request's writes and
    /// turning its reply into a Reject, and giving a slot back is not worth that. The caller
    /// gives it back while the request holds no connection of its own (the claim's settle
    /// committed it), so this takes no second one per request.
    pub(super) async fn release_send_slot_impl(&self, slot: &str) -> Result<u64, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.noted(e.into()))?;
        let done = sqlx::query("DELETE FROM send_events WHERE slot = $1")
            .bind(slot)
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn forget_sends_impl(&self, key: &str) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        // One statement: the sends under `key` are counted as they are deleted.
        let r = sqlx::query_scalar(&format!(
            "WITH gone AS (DELETE FROM send_events WHERE {USER_SEND_KEYS} AND slot IN \
             (SELECT slot FROM send_events WHERE key = $1) RETURNING key) \
             SELECT COUNT(*) FROM gone WHERE key = $1"
        ))
        .bind(key)
        .fetch_one(w.conn())
        .await;
        let sends: i64 = w.done(r)?;
        Ok(sends as u64)
    }

    pub(super) async fn sends_since_impl(
        &self,
        key: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let sql = super::super::delivery::SENDS_SINCE
            .replace("?1", "$1")
            .replace("?2", "$2")
            .replace("?3", "$3");
        let mut rd = self.reader().await?;
        let rows: Result<Vec<(String, i64)>, _> = sqlx::query_as(&sql)
            .bind(key)
            .bind(since)
            .bind(now + crate::clock::FUTURE_SLACK_SECS)
            .fetch_all(rd.conn())
            .await;
        let rows = rd.done(rows)?;
        Ok(rows.into_iter().map(|(w, n)| (w, n as u64)).collect())
    }

    pub(super) async fn forget_number_sends_impl(&self, phone: &str) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        // One statement: the number's day events are counted as they are deleted.
        let r = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM send_events WHERE key IN ('phone:' || $1, \
             'phone-day:' || $1) RETURNING key) \
             SELECT COUNT(*) FROM gone WHERE key = 'phone-day:' || $1",
        )
        .bind(phone)
        .fetch_one(w.conn())
        .await;
        let sends: i64 = w.done(r)?;
        Ok(sends as u64)
    }

    pub(super) async fn begin_oob_impl(&self, t: &OobTransaction) -> Result<OobBegin, StoreError> {
        let mut w = self.writer().await?;
        // ON CONFLICT DO NOTHING: a racing node's insert of the same request makes ours wait
        // for its commit and then do nothing, and we follow theirs.
        let r = sqlx::query(&format!(
            "INSERT INTO oob_transactions ({OOB_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT DO NOTHING"
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
        .execute(w.conn())
        .await;
        let inserted = w.done(r)?;
        if inserted.rows_affected() == 1 {
            return Ok(OobBegin::Created);
        }
        let r = sqlx::query(&format!(
            "SELECT {OOB_COLUMNS} FROM oob_transactions WHERE request_key = $1"
        ))
        .bind(&t.request_key)
        .fetch_optional(w.conn())
        .await;
        let row = w.done(r)?;
        match row {
            // `into`: the variant holds the transaction boxed or not; either way this fits.
            Some(r) => Ok(OobBegin::Existing(oob_from_row(&r)?.into())),
            // The id itself collided (random 128 bits: practically never).
            None => Err(StoreError::Conflict(format!("oob transaction {}", t.id))),
        }
    }

    pub(super) async fn oob_impl(&self, id: &str) -> Result<Option<OobTransaction>, StoreError> {
        let mut rd = self.reader().await?;
        let row = sqlx::query(&format!(
            "SELECT {OOB_COLUMNS} FROM oob_transactions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(rd.conn())
        .await;
        let row = rd.done(row)?;
        row.as_ref().map(oob_from_row).transpose()
    }

    pub(super) async fn set_oob_provider_ref_impl(
        &self,
        id: &str,
        provider_ref: &str,
    ) -> Result<Option<(OobStatus, Option<String>)>, StoreError> {
        let mut w = self.writer().await?;
        let r: Result<Option<(String, Option<String>)>, _> = sqlx::query_as(
            "UPDATE oob_transactions SET provider_ref = $2 WHERE id = $1 \
             RETURNING status, reason",
        )
        .bind(id)
        .bind(provider_ref)
        .fetch_optional(w.conn())
        .await;
        Ok(w.done(r)?
            .and_then(|(s, r)| Some((OobStatus::parse(&s)?, r))))
    }

    pub(super) async fn note_pending_oob_impl(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE oob_transactions SET reason = $2 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(reason)
        .execute(w.conn())
        .await;
        w.done(r)?;
        Ok(())
    }

    pub(super) async fn resolve_oob_impl(
        &self,
        id: &str,
        status: OobStatus,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE oob_transactions SET status = $2, reason = $3 \
             WHERE id = $1 AND (status = 'pending' OR ($2 = 'fraud' AND status <> 'fraud'))",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(reason)
        .execute(w.conn())
        .await;
        let done = w.done(r)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn purge_delivery_state_impl(&self, now: i64) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "DELETE FROM oob_transactions \
             WHERE expires_at <= CASE WHEN kind = 'voice' THEN $1 - $2 ELSE $1 END",
        )
        .bind(now)
        .bind(crate::store::VOICE_ROW_GRACE)
        .execute(w.conn())
        .await;
        let a = w.done(r)?.rows_affected();
        let r = sqlx::query("DELETE FROM send_events WHERE at <= $1")
            .bind(now - SEND_EVENT_RETENTION)
            .execute(w.conn())
            .await;
        let b = w.done(r)?.rows_affected();
        let r = sqlx::query("DELETE FROM remembered_logins WHERE expires_at <= $1")
            .bind(now)
            .execute(w.conn())
            .await;
        let c = w.done(r)?.rows_affected();
        Ok(a + b + c)
    }
}
