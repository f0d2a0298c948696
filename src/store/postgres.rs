//! The shared store: PostgreSQL, for several radmfa nodes that must finish each other's logins.
//!
//! Same semantics as [`super::SqliteStore`], statement for statement: every security
//! check-and-update is ONE statement whose `rows_affected` or `RETURNING` row is the answer.
//! Under PostgreSQL's READ COMMITTED, a second writer to the same row waits for the first and
//! then re-checks its `WHERE` against the committed row, so of two nodes racing for a TOTP
//! step, an HOTP counter value or a State, exactly one wins; the lockout upsert
//! (`INSERT … ON CONFLICT DO UPDATE`) counts every failure exactly once.
//!
//! Seeds are sealed with the [`Sealer`] (AAD = serial) exactly as in SQLite, so every node
//! needs the same key file, and sealed values can be copied between the two stores as they are.
//!
//! A store error is always an `Err`, never a `false`/`None` that could be mistaken for a
//! decision; the pipeline rejects on it (fail closed).

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder, Row};

use super::{
    AppPassword, AuditCount, AuditFilter, AuditGroup, AuditRecord, CancelledOob, ChallengeAttempt,
    CounterUse, FirstToken, NewToken, OobBegin, OobStatus, OobTransaction, PendingChallenge,
    RememberedLogin, Sealer, SendLimit, StepUse, Store, StoreError, Token, TokenAsRead, TokenExtra,
    TokenFilter, TokenRecord, TokensRemoved, UserProfile, UserSnapshot, UserStatus, UserSummary,
};

use super::audit_sql::{self, Dialect};

mod audit_batch;
mod connect;
mod delivery;
mod pool_diagnosis;
mod privilege;
mod remembered;
mod request_tx;
mod rows;
mod tokens;

pub(crate) use connect::not_there_yet;
pub(super) use connect::{audit_reading_pool, schema_behind_on};
pub use connect::{parse_url, PgSettings, COPY_LOCK, MIGRATION_LOCK_TIMEOUT, WRONG_KEY};
use rows::{
    audit_from_row, challenge_from_row, counter_to_sql, is_unique_violation, kind_str, now_unix,
    to_u32, to_u64, user_status_from_row, user_summary_from_row,
};

/// The schema's migrations. A database migrated by a newer release is not refused
/// (`ignore_missing`): in a rolling upgrade the first upgraded node (or `db migrate` ahead of
/// it) moves the schema on while the older nodes keep serving, and an older node that
/// restarts meanwhile, an older admin command, or a rollback must still start. That holds
/// only because every migration keeps the previous release working on the new schema: it
/// adds tables, and columns that are nullable or have a default, and never drops, renames
/// or narrows anything the previous release reads or writes.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("migrations/postgres")
};

/// The newest schema version this release knows.
pub(crate) fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// A user's app seeds are deleted; their imported tokens go back to stock (see
/// [`Store::delete_user_tokens`]).
/// Each gives back the serials it touched, for the audit.
const DELETE_ENROLLED_PG: &str =
    "DELETE FROM tokens WHERE username = $1 AND origin = 'enroll' RETURNING serial";
const RETURN_IMPORTED_PG: &str =
    "UPDATE tokens SET username = NULL, resync_counter = NULL, resync_at = NULL \
     WHERE username = $1 RETURNING serial";

/// Takes `user`'s tokens away in `tx` (see [`Store::delete_user_tokens`]).
async fn take_user_tokens(
    tx: &mut sqlx::PgConnection,
    user: &str,
) -> Result<TokensRemoved, StoreError> {
    let mut removed = TokensRemoved::default();
    for (sql, serials) in [
        (DELETE_ENROLLED_PG, &mut removed.deleted),
        (RETURN_IMPORTED_PG, &mut removed.returned),
    ] {
        *serials = sqlx::query_scalar(sql)
            .bind(user)
            .fetch_all(&mut *tx)
            .await?;
        // Sorted as SQLite's are: bytewise, whatever the database's collation.
        serials.sort();
    }
    Ok(removed)
}

const TOKEN_COLUMNS: &str = "id, serial, username, kind, algorithm, digits, period, counter, \
                             last_step, enabled, created_at, secret";
const CHALLENGE_COLUMNS: &str =
    "state_hash, username, nas, created_at, expires_at, attempts, context";
const AUDIT_COLUMNS: &str = "id, time, username, first_name, last_name, email, phone, \
                             token_serial, mode, result, reason, server_name, server_ip, \
                             client_ip, nas_name, latency_ms, actor, nas_ip, \
                             nas_identifier";

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    sealer: Sealer,
    audit_batch: std::sync::Arc<audit_batch::AuditBatcher>,
    diagnosis: std::sync::Arc<pool_diagnosis::PoolDiagnosis>,
}

impl PgStore {
    /// A serving-path error, after asking why if the pool gave no connection.
    fn noted(&self, e: StoreError) -> StoreError {
        match &e {
            StoreError::Db(sqlx::Error::PoolTimedOut) => self.diagnosis.pool_timed_out(&self.pool),
            StoreError::Db(db) => self.diagnosis.login_refused(db),
            _ => {}
        }
        e
    }
}

impl PgStore {
    /// The connection pool, for the SQLite → PostgreSQL migration (raw row copies).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    fn sms_code_key(&self) -> &[u8] {
        self.sealer.code_key()
    }

    // --- tokens ---

    async fn add_token(&self, token: NewToken) -> Result<i64, StoreError> {
        let row = self.sealed_row(&token)?;
        let mut w = self.writer().await?;
        let r = tokens::insert_token(w.conn(), &token, row).await;
        w.done(r)
            .map_err(|e| tokens::insert_error(e, &token.serial))
    }

    async fn add_first_token(
        &self,
        token: NewToken,
        holders: &[String],
    ) -> Result<FirstToken, StoreError> {
        self.add_first_token_impl(token, holders).await
    }

    async fn tokens_for_user(&self, user: &str) -> Result<Vec<Token>, StoreError> {
        let mut rd = self.reader().await?;
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE username = $1 ORDER BY id"
        ))
        .bind(user)
        .fetch_all(rd.conn())
        .await;
        let rows = rd.done(rows)?;
        rows.iter()
            .map(|r| self.token_from_row(r, false).map(|(t, _)| t))
            .collect()
    }

    async fn token_by_serial(&self, serial: &str) -> Result<Option<Token>, StoreError> {
        let mut rd = self.reader().await?;
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE serial = $1"
        ))
        .bind(serial)
        .fetch_optional(rd.conn())
        .await;
        let row = rd.done(row)?;
        row.as_ref()
            .map(|r| self.token_from_row(r, false).map(|(t, _)| t))
            .transpose()
    }

    async fn consume_totp_step(&self, token_id: i64, step: i64) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE tokens SET last_step = $1 \
             WHERE id = $2 AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(token_id)
        .execute(w.conn())
        .await;
        let done = w.done(r)?;
        Ok(done.rows_affected() == 1)
    }

    async fn advance_hotp_counter(
        &self,
        token_id: i64,
        expected: u64,
        new_counter: u64,
        login_owner: Option<&str>,
    ) -> Result<CounterUse, StoreError> {
        let mut w = self.writer().await?;
        // A counter only moves forward: going back would make used codes valid again.
        if new_counter <= expected {
            return Ok(CounterUse::Moved { counter: expected });
        }
        let expected = counter_to_sql(expected)?;
        let new_counter = counter_to_sql(new_counter)?;
        let r = sqlx::query(
            "UPDATE tokens SET counter = $1 WHERE id = $2 AND counter = $3 \
             AND ($4::TEXT IS NULL OR (enabled AND username = $4))",
        )
        .bind(new_counter)
        .bind(token_id)
        .bind(expected)
        .bind(login_owner)
        .execute(w.conn())
        .await;
        if w.done(r)?.rows_affected() == 1 {
            return Ok(CounterUse::Taken);
        }
        // On the request's own connection, as for TOTP steps: the update above already
        // waited for a winner's commit, and a second connection could wait on a pool of one.
        let r = sqlx::query_scalar::<_, i64>(
            "SELECT counter FROM tokens \
             WHERE id = $1 AND ($2::TEXT IS NULL OR (enabled AND username = $2))",
        )
        .bind(token_id)
        .bind(login_owner)
        .fetch_optional(w.conn())
        .await;
        Ok(match w.done(r)? {
            Some(counter) => CounterUse::Moved {
                counter: to_u64(counter, "HOTP counter")?,
            },
            None => CounterUse::Gone,
        })
    }

    async fn delete_user_tokens(&self, user: &str) -> Result<TokensRemoved, StoreError> {
        // Inside a request: a savepoint in its transaction (see request_tx.rs).
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        let removed = take_user_tokens(&mut tx, user).await?;
        tx.commit().await?;
        w.done(Ok(()))?;
        Ok(removed)
    }

    // --- token inventory (postgres/tokens.rs) ---

    async fn import_turn(&self) -> Result<crate::store::ImportTurn, StoreError> {
        self.import_turn_impl().await
    }

    async fn import_tokens_audited(
        &self,
        tokens: &[(NewToken, TokenExtra)],
        replace: bool,
        audit: &[AuditRecord],
        seen: Option<&crate::store::InventorySeen>,
    ) -> Result<u64, StoreError> {
        self.import_tokens_impl(tokens, replace, audit, seen).await
    }

    async fn list_tokens(&self, filter: &TokenFilter) -> Result<Vec<TokenRecord>, StoreError> {
        self.list_tokens_impl(filter).await
    }

    async fn token_record(&self, serial: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.token_record_impl(serial).await
    }

    async fn assign_token(
        &self,
        serial: &str,
        holder: Option<&str>,
        user: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.assign_token_impl(serial, holder, user).await
    }

    async fn set_token_enabled(&self, serial: &str, enabled: bool) -> Result<bool, StoreError> {
        self.set_token_enabled_impl(serial, enabled).await
    }

    async fn delete_token(&self, serial: &str) -> Result<bool, StoreError> {
        self.delete_token_impl(serial).await
    }

    async fn consume_totp_step_with_drift(
        &self,
        token_id: i64,
        step: i64,
        drift: i64,
    ) -> Result<bool, StoreError> {
        self.consume_totp_step_with_drift_impl(token_id, step, drift)
            .await
    }

    async fn consume_totp_step_seen(
        &self,
        token_id: i64,
        read: TokenAsRead<'_>,
        seen: Option<i64>,
        step: i64,
        drift: i64,
    ) -> Result<StepUse, StoreError> {
        self.consume_totp_step_seen_impl(token_id, read, seen, step, drift)
            .await
    }

    async fn rewind_totp_step(
        &self,
        token_id: i64,
        from: i64,
        step: i64,
        drift: i64,
    ) -> Result<bool, StoreError> {
        self.rewind_totp_step_impl(token_id, from, step, drift)
            .await
    }

    async fn set_hotp_resync(
        &self,
        token_id: i64,
        pending: Option<(u64, i64)>,
    ) -> Result<(), StoreError> {
        self.set_hotp_resync_impl(token_id, pending).await
    }

    // --- users ---

    async fn user_snapshot(&self, user: &str) -> Result<UserSnapshot, StoreError> {
        self.user_snapshot_impl(user).await
    }

    // --- users: lockout ---

    async fn list_users_page(
        &self,
        now: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserSummary>, StoreError> {
        // `after` and the limit in each branch (as for SQLite), compared and ordered in the
        // list's own (byte) order: under the database's collation a page boundary would
        // skip or repeat names.
        let rows = sqlx::query(
            "SELECT u.username AS username, \
                    COALESCE(s.failures, 0) AS failures, \
                    s.locked_until AS locked_until, \
                    (SELECT COUNT(*) FROM tokens t WHERE t.username = u.username) AS token_count, \
                    p.method AS method, p.phone IS NOT NULL AS has_phone, \
                    p.blocked_at AS blocked_at, \
                    CASE WHEN p.bypass_until > $1 THEN p.bypass_until END AS bypass_until, \
                    (SELECT COUNT(*) FROM app_passwords a WHERE a.username = u.username) \
                        AS app_password_count, \
                    (SELECT COUNT(*) FROM remembered_logins r \
                      WHERE r.username = u.username AND r.expires_at > $1) AS remembered_count \
             FROM ((SELECT username FROM tokens \
                         WHERE username IS NOT NULL AND username > $2 COLLATE \"C\" \
                         ORDER BY username COLLATE \"C\" LIMIT $3) \
                   UNION (SELECT username FROM user_state \
                         WHERE (failures > 0 OR locked_until > $1) \
                           AND username > $2 COLLATE \"C\" \
                         ORDER BY username COLLATE \"C\" LIMIT $3) \
                   UNION (SELECT username FROM user_profile \
                         WHERE (phone IS NOT NULL OR method IS NOT NULL \
                            OR blocked_at IS NOT NULL OR bypass_until > $1) \
                           AND username > $2 COLLATE \"C\" \
                         ORDER BY username COLLATE \"C\" LIMIT $3) \
                   UNION (SELECT username FROM app_passwords \
                         WHERE username > $2 COLLATE \"C\" \
                         ORDER BY username COLLATE \"C\" LIMIT $3) \
                   UNION (SELECT username FROM remembered_logins \
                         WHERE expires_at > $1 AND username > $2 COLLATE \"C\" \
                         ORDER BY username COLLATE \"C\" LIMIT $3)) AS u \
             LEFT JOIN user_state s ON s.username = u.username \
             LEFT JOIN user_profile p ON p.username = u.username \
             ORDER BY u.username COLLATE \"C\" LIMIT $3",
        )
        .bind(now)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_summary_from_row).collect()
    }

    async fn user_status(&self, user: &str) -> Result<UserStatus, StoreError> {
        let mut rd = self.reader().await?;
        let row = sqlx::query(
            "SELECT $1::TEXT AS username, \
                    COALESCE((SELECT failures FROM user_state WHERE username = $1), 0) \
                        AS failures, \
                    (SELECT locked_until FROM user_state WHERE username = $1) AS locked_until, \
                    (SELECT COUNT(*) FROM tokens WHERE username = $1) AS token_count",
        )
        .bind(user)
        .fetch_one(rd.conn())
        .await;
        let row = rd.done(row)?;
        user_status_from_row(&row)
    }

    async fn record_failure(
        &self,
        user: &str,
        threshold: u32,
        now: i64,
        lock_secs: i64,
    ) -> Result<(u32, Option<i64>), StoreError> {
        let mut w = self.writer().await?;
        // One statement: count the failure and, if that reaches the threshold, lock and reset
        // the count. In ON CONFLICT's SET every expression sees the old row, so both CASEs
        // test the same `failures + 1`; a racing node waits for the row lock and then counts
        // on top of the committed value, unless that value is a lock in force (the WHERE).
        // A threshold of 0 never locks.
        let until = now.saturating_add(lock_secs);
        let r = sqlx::query(
            "INSERT INTO user_state (username, failures, locked_until) \
             VALUES ($1, \
                     CASE WHEN $2 > 0 AND 1 >= $2 THEN 0 ELSE 1 END, \
                     CASE WHEN $2 > 0 AND 1 >= $2 THEN $3 ELSE NULL END) \
             ON CONFLICT (username) DO UPDATE SET \
                 failures = CASE WHEN $2 > 0 AND user_state.failures + 1 >= $2 \
                                 THEN 0 ELSE user_state.failures + 1 END, \
                 locked_until = CASE WHEN $2 > 0 AND user_state.failures + 1 >= $2 \
                                     THEN $3 ELSE user_state.locked_until END \
             WHERE user_state.locked_until IS NULL OR user_state.locked_until <= $4 \
             RETURNING failures, locked_until",
        )
        .bind(user)
        .bind(i64::from(threshold))
        .bind(until)
        .bind(now)
        .fetch_optional(w.conn())
        .await;
        // No row: locked already (another node locked the user since this login read its
        // standing). Nothing counted, so the new lock period does not start with this
        // failure on its count.
        let Some(row) = w.done(r)? else {
            return Ok((0, None));
        };
        let failures = to_u32(row.try_get("failures")?, "user_state.failures")?;
        // After this statement `failures` is at least 1 unless this very statement locked.
        if failures == 0 {
            let locked_until: Option<i64> = row.try_get("locked_until")?;
            Ok((threshold, Some(locked_until.unwrap_or(until))))
        } else {
            Ok((failures, None))
        }
    }

    async fn clear_failures(&self, user: &str) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let r =
            sqlx::query("UPDATE user_state SET failures = 0 WHERE username = $1 AND failures <> 0")
                .bind(user)
                .execute(w.conn())
                .await;
        w.done(r)?;
        Ok(())
    }

    async fn unlock_user(&self, user: &str, now: i64) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE user_state SET locked_until = NULL, failures = 0 \
             WHERE username = $1 AND locked_until IS NOT NULL AND locked_until > $2",
        )
        .bind(user)
        .bind(now)
        .execute(w.conn())
        .await;
        let lifted = w.done(r)?.rows_affected() == 1;
        if !lifted {
            // Not locked (or the lock already ran out): still give a clean slate.
            let r = sqlx::query(
                "UPDATE user_state SET locked_until = NULL, failures = 0 \
                 WHERE username = $1 AND (locked_until IS NOT NULL OR failures <> 0)",
            )
            .bind(user)
            .execute(w.conn())
            .await;
            w.done(r)?;
        }
        Ok(lifted)
    }

    async fn delete_user(&self, user: &str) -> Result<Option<TokensRemoved>, StoreError> {
        // Inside a request: a savepoint in its transaction (see request_tx.rs).
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        remembered::lock_users_remembered(&mut tx, user).await?;
        let tokens = take_user_tokens(&mut tx, user).await?;
        let mut removed = 0;
        for sql in [
            "DELETE FROM user_state WHERE username = $1",
            "DELETE FROM challenges WHERE username = $1",
            // As in SQLite's: a row holding only logins_forgotten_at is no user.
            "DELETE FROM user_profile WHERE username = $1 AND (phone IS NOT NULL \
             OR method IS NOT NULL OR blocked_at IS NOT NULL OR bypass_until IS NOT NULL)",
            "DELETE FROM app_passwords WHERE username = $1",
            // As in SQLite's: calls' rows stay their grace, a ringing one failed.
            "UPDATE oob_transactions SET status = 'failed', reason = 'the user was deleted' \
             WHERE username = $1 AND kind = 'voice' AND status = 'pending'",
            "DELETE FROM oob_transactions WHERE username = $1 AND kind <> 'voice'",
            "DELETE FROM remembered_logins WHERE username = $1",
        ] {
            removed += sqlx::query(sql)
                .bind(user)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        // As in SQLite's: the mark of the forget stays, so a login in flight cannot write its
        // remembered row back.
        sqlx::query(
            "INSERT INTO user_profile (username, logins_forgotten_at) VALUES ($1, $2) \
             ON CONFLICT (username) DO UPDATE SET logins_forgotten_at = \
             GREATEST(user_profile.logins_forgotten_at, $2)",
        )
        .bind(user)
        .bind(now_unix())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        w.done(Ok(()))?;
        Ok((removed > 0 || !tokens.is_empty()).then_some(tokens))
    }

    // --- pending challenges ---

    async fn put_challenge(&self, challenge: &PendingChallenge) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(&format!(
            "INSERT INTO challenges ({CHALLENGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&challenge.state_hash)
        .bind(&challenge.user)
        .bind(&challenge.nas)
        .bind(challenge.created_at)
        .bind(challenge.expires_at)
        .bind(i64::from(challenge.attempts))
        .bind(&challenge.context)
        .execute(w.conn())
        .await;
        let result = w.done(r);
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict("challenge state".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn challenge(
        &self,
        state_hash: &[u8],
        now: i64,
    ) -> Result<Option<PendingChallenge>, StoreError> {
        let mut rd = self.reader().await?;
        let row = sqlx::query(&format!(
            "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE state_hash = $1 AND expires_at > $2"
        ))
        .bind(state_hash)
        .bind(now)
        .fetch_optional(rd.conn())
        .await;
        let row = rd.done(row)?;
        row.as_ref().map(challenge_from_row).transpose()
    }

    async fn consume_challenge(&self, state_hash: &[u8]) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query("DELETE FROM challenges WHERE state_hash = $1")
            .bind(state_hash)
            .execute(w.conn())
            .await;
        let done = w.done(r)?;
        Ok(done.rows_affected() == 1)
    }

    async fn take_attempt(
        &self,
        state_hash: &[u8],
        max_attempts: u32,
    ) -> Result<ChallengeAttempt, StoreError> {
        let mut w = self.writer().await?;
        if max_attempts <= 1 {
            // The only attempt (the default): taking it is consuming the challenge. Unless
            // a reload lowered the maximum below the attempts this prompt has had.
            let r = sqlx::query("DELETE FROM challenges WHERE state_hash = $1 AND attempts < 1")
                .bind(state_hash)
                .execute(w.conn())
                .await;
            return Ok(if w.done(r)?.rows_affected() == 1 {
                ChallengeAttempt::Last
            } else {
                ChallengeAttempt::Closed
            });
        }
        // Each caller gets a distinct `attempts` value back from the guarded increment (one
        // statement, atomic on any node); whoever takes the last one deletes the row. Both
        // in one transaction (a savepoint inside a request's), which keeps the row locked
        // from the increment to the delete: a consume of the State in between would delete
        // it too, and two answers would each close the prompt.
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        let attempts: Option<i64> = sqlx::query_scalar(
            "UPDATE challenges SET attempts = attempts + 1 \
             WHERE state_hash = $1 AND attempts < $2 RETURNING attempts",
        )
        .bind(state_hash)
        .bind(i64::from(max_attempts))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(attempts) = attempts else {
            tx.commit().await?;
            w.done(Ok(()))?;
            return Ok(ChallengeAttempt::Closed);
        };
        let attempts = to_u32(attempts, "challenges.attempts")?;
        if attempts >= max_attempts {
            sqlx::query("DELETE FROM challenges WHERE state_hash = $1")
                .bind(state_hash)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            w.done(Ok(()))?;
            return Ok(ChallengeAttempt::Last);
        }
        tx.commit().await?;
        w.done(Ok(()))?;
        Ok(ChallengeAttempt::Open(attempts))
    }

    async fn has_open_challenge(
        &self,
        user: &str,
        nas: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut rd = self.reader().await?;
        let open = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM challenges \
             WHERE username = $1 AND nas = $2 AND expires_at > $3)",
        )
        .bind(user)
        .bind(nas)
        .bind(now)
        .fetch_one(rd.conn())
        .await;
        Ok(rd.done(open)?)
    }

    async fn count_open_challenges(&self, now: i64) -> Result<u64, StoreError> {
        let mut rd = self.reader().await?;
        let n =
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM challenges WHERE expires_at > $1")
                .bind(now)
                .fetch_one(rd.conn())
                .await;
        Ok(u64::try_from(rd.done(n)?).unwrap_or(0))
    }

    async fn purge_expired_challenges(&self, now: i64) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query("DELETE FROM challenges WHERE expires_at <= $1")
            .bind(now)
            .execute(w.conn())
            .await;
        let done = w.done(r)?;
        Ok(done.rows_affected())
    }

    async fn close_challenges(&self, user: &str) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query("DELETE FROM challenges WHERE username = $1")
            .bind(user)
            .execute(w.conn())
            .await;
        let done = w.done(r)?;
        Ok(done.rows_affected())
    }

    async fn close_client_challenges(&self, nas: &str) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query("DELETE FROM challenges WHERE nas = $1")
            .bind(nas)
            .execute(w.conn())
            .await;
        let done = w.done(r)?;
        Ok(done.rows_affected())
    }

    // --- out-of-band factors (postgres/delivery.rs) ---

    async fn user_profile(&self, user: &str) -> Result<UserProfile, StoreError> {
        self.user_profile_impl(user).await
    }

    async fn set_phone(&self, user: &str, phone: Option<&str>) -> Result<(), StoreError> {
        self.set_phone_impl(user, phone).await
    }

    async fn set_method(&self, user: &str, method: Option<&str>) -> Result<(), StoreError> {
        self.set_method_impl(user, method).await
    }

    async fn block_user(&self, user: &str, at: i64, reason: &str) -> Result<bool, StoreError> {
        self.block_user_impl(user, at, reason).await
    }

    async fn unblock_user(&self, user: &str) -> Result<bool, StoreError> {
        self.unblock_user_impl(user).await
    }

    async fn set_bypass(&self, user: &str, until: Option<i64>) -> Result<(), StoreError> {
        self.set_bypass_impl(user, until).await
    }

    async fn set_bypass_audited(
        &self,
        user: &str,
        until: Option<i64>,
        only_if: super::BypassWas,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.set_bypass_audited_impl(user, until, only_if, record)
            .await
    }

    async fn take_bypass(&self, user: &str, now: i64) -> Result<bool, StoreError> {
        self.take_bypass_impl(user, now).await
    }

    async fn restore_bypass(
        &self,
        user: &str,
        expected: i64,
        earlier: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE user_profile SET bypass_until = $3 \
             WHERE username = $1 AND bypass_until = $2",
        )
        .bind(user)
        .bind(expected)
        .bind(earlier)
        .execute(w.conn())
        .await;
        Ok(w.done(r)?.rows_affected() == 1)
    }

    async fn remember_login(&self, login: &RememberedLogin) -> Result<(), StoreError> {
        self.remember_login_impl(login).await
    }

    async fn remembered_login(
        &self,
        user: &str,
        nas: &str,
        station: &str,
        now: i64,
    ) -> Result<Option<RememberedLogin>, StoreError> {
        self.remembered_login_impl(user, nas, station, now).await
    }

    async fn remembered_logins(
        &self,
        user: &str,
        now: i64,
    ) -> Result<Vec<RememberedLogin>, StoreError> {
        self.remembered_logins_impl(user, now).await
    }

    async fn forget_logins(&self, user: &str, now: i64) -> Result<u64, StoreError> {
        self.forget_logins_impl(user, now).await
    }

    async fn remembered_clients(&self) -> Result<Vec<String>, StoreError> {
        self.remembered_clients_impl().await
    }

    async fn cut_remembered(&self, nas: &str, period: Option<i64>) -> Result<u64, StoreError> {
        self.cut_remembered_impl(nas, period).await
    }

    async fn add_app_password(
        &self,
        user: &str,
        label: Option<&str>,
        hash: &str,
        now: i64,
        entry: (Option<&str>, Option<&str>),
    ) -> Result<i64, StoreError> {
        self.add_app_password_impl(user, label, hash, now, entry)
            .await
    }

    async fn app_passwords(&self, user: &str) -> Result<Vec<AppPassword>, StoreError> {
        self.app_passwords_impl(user).await
    }

    async fn delete_app_password(&self, user: &str, id: i64) -> Result<bool, StoreError> {
        self.delete_app_password_impl(user, id).await
    }

    async fn delete_app_passwords(&self, user: &str) -> Result<u64, StoreError> {
        self.delete_app_passwords_impl(user).await
    }

    async fn touch_app_password(
        &self,
        id: i64,
        user: &str,
        hash: &str,
        now: i64,
        dn: Option<&str>,
        entry_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.touch_app_password_impl(id, user, hash, now, dn, entry_id)
            .await
    }

    async fn take_send_slot(
        &self,
        limits: &[SendLimit],
        now: i64,
        slot: &str,
    ) -> Result<Option<usize>, StoreError> {
        self.take_send_slot_impl(limits, now, slot).await
    }
    async fn release_send_slot(&self, slot: &str) -> Result<u64, StoreError> {
        self.release_send_slot_impl(slot).await
    }
    async fn forget_sends(&self, key: &str) -> Result<u64, StoreError> {
        self.forget_sends_impl(key).await
    }
    async fn sends_since(
        &self,
        key: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.sends_since_impl(key, since, now).await
    }
    async fn forget_number_sends(&self, phone: &str) -> Result<u64, StoreError> {
        self.forget_number_sends_impl(phone).await
    }

    async fn begin_oob(&self, txn: &OobTransaction) -> Result<OobBegin, StoreError> {
        self.begin_oob_impl(txn).await
    }

    async fn oob(&self, id: &str) -> Result<Option<OobTransaction>, StoreError> {
        self.oob_impl(id).await
    }

    async fn set_oob_provider_ref(
        &self,
        id: &str,
        provider_ref: &str,
    ) -> Result<Option<(OobStatus, Option<String>)>, StoreError> {
        self.set_oob_provider_ref_impl(id, provider_ref).await
    }

    async fn note_pending_oob(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        self.note_pending_oob_impl(id, reason).await
    }

    async fn resolve_oob(
        &self,
        id: &str,
        status: OobStatus,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.resolve_oob_impl(id, status, reason).await
    }

    async fn cancel_oob(
        &self,
        user: &str,
        except: Option<&str>,
        reason: &str,
    ) -> Result<CancelledOob, StoreError> {
        let mut w = self.writer().await?;
        let r: Result<Vec<(String, Option<String>)>, _> = sqlx::query_as(
            "UPDATE oob_transactions SET status = 'failed', reason = $2 \
             WHERE username = $1 AND status = 'pending' AND ($3::text IS NULL OR id <> $3) \
             RETURNING kind, provider_ref",
        )
        .bind(user)
        .bind(reason)
        .bind(except)
        .fetch_all(w.conn())
        .await;
        Ok(CancelledOob::from_rows(w.done(r)?))
    }

    async fn purge_delivery_state(&self, now: i64) -> Result<u64, StoreError> {
        self.purge_delivery_state_impl(now).await
    }

    // --- lifecycle ---

    async fn close(&self) {
        super::pool_close::close_pool(&self.pool).await;
        super::pool_close::close_pool(self.audit_batch.pool()).await;
    }

    // --- audit ---

    async fn append_audit(&self, r: &AuditRecord) -> Result<i64, StoreError> {
        let r = r.storable();
        if self.audit_after_request_writes().await? {
            return self.audit_batch.insert(&r).await.map_err(|e| self.noted(e));
        }
        let mut w = self.writer().await?;
        let r = audit_batch::insert_records(w.conn(), std::iter::once(&*r)).await;
        Ok(w.done(r)?[0])
    }

    async fn audit_writable(&self) -> Result<(), StoreError> {
        self.audit_batch.writable().await.map_err(|e| self.noted(e))
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        audit_records(&self.pool, filter).await
    }

    async fn audit_top_id(&self) -> Result<i64, StoreError> {
        audit_top_id(&self.pool).await
    }

    async fn audit_counts(
        &self,
        filter: &AuditFilter,
        by: AuditGroup,
    ) -> Result<Vec<AuditCount>, StoreError> {
        audit_counts(&self.pool, filter, by).await
    }

    async fn purge_audit(&self, before: i64, batch: u32) -> Result<u64, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "DELETE FROM audit WHERE id IN \
             (SELECT id FROM audit WHERE time < $1 ORDER BY time LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(w.conn())
        .await;
        Ok(w.done(r)?.rows_affected())
    }
}

// The audit log's reads on a pool: the store's, or `radmfa audit`'s read-only one
// (`super::audit_reader`), which has neither the seed key nor write access.

/// [`Store::audit`].
pub(super) async fn audit_records(
    pool: &PgPool,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut q: QueryBuilder<Postgres> =
        audit_sql::records_query(Dialect::Postgres, AUDIT_COLUMNS, filter);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(audit_from_row).collect()
}

/// [`Store::audit_top_id`].
pub(super) async fn audit_top_id(pool: &PgPool) -> Result<i64, StoreError> {
    let top: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM audit")
        .fetch_one(pool)
        .await?;
    Ok(top.unwrap_or(0))
}

/// [`Store::audit_counts`].
pub(super) async fn audit_counts(
    pool: &PgPool,
    filter: &AuditFilter,
    by: AuditGroup,
) -> Result<Vec<AuditCount>, StoreError> {
    let mut q: QueryBuilder<Postgres> = audit_sql::counts_query(Dialect::Postgres, filter, by);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(audit_sql::count_from_row).collect()
}

#[cfg(test)]
mod migration_pins {
    #[test]
    fn every_migration_is_pinned() {
        crate::store::assert_migrations_pinned("postgres", &super::MIGRATOR);
    }
}
