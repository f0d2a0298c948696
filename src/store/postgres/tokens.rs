//! `PgStore`'s token inventory, statement for statement the SQLite one (`sqlite_tokens.rs`):
//! bulk import in one transaction, listing, assignment, and the per-token state long-lived
//! tokens need (TOTP drift, pending HOTP resynchronisation). The trait impl in `postgres.rs`
//! delegates here.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::to_u32;
use super::{counter_to_sql, is_unique_violation, kind_str, now_unix, to_u64, PgStore};
use crate::store::columns::{kept_on_replace, Kept};
use crate::store::{
    AuditRecord, FirstToken, NewToken, StepUse, StoreError, TokenAsRead, TokenExtra, TokenFilter,
    TokenRecord, UserProfile, UserSnapshot, UserStatus,
};

const RECORD_COLUMNS: &str = "id, serial, username, kind, algorithm, digits, period, counter, \
                              last_step, enabled, created_at, secret, manufacturer, model, \
                              valid_from, valid_until, drift, resync_counter, resync_at, origin";

/// A token's counter and sealed seed, ready to bind.
pub(super) struct SealedRow {
    counter: i64,
    sealed: Vec<u8>,
}

impl PgStore {
    pub(super) fn sealed_row(&self, token: &NewToken) -> Result<SealedRow, StoreError> {
        Ok(SealedRow {
            counter: counter_to_sql(token.counter)?,
            sealed: self
                .sealer
                .seal(token.secret.expose(), token.serial.as_bytes()),
        })
    }

    pub(super) async fn add_first_token_impl(
        &self,
        token: NewToken,
        holders: &[String],
    ) -> Result<FirstToken, StoreError> {
        let row = self.sealed_row(&token)?;
        // READ COMMITTED lets two transactions both see no token and both insert (no row
        // to wait on): a transaction advisory lock per name makes the look and the insert
        // one step for it. Taken in sorted order, so two calls never deadlock; released at
        // commit. Inside a request: a savepoint in its transaction (see request_tx.rs).
        let mut names: Vec<&String> = holders.iter().collect();
        names.sort_unstable();
        names.dedup();
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        for name in names {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!("tokens:{name}"))
                .execute(&mut *tx)
                .await?;
        }
        let mut held = Vec::new();
        for holder in holders {
            let serials: Vec<String> =
                sqlx::query_scalar("SELECT serial FROM tokens WHERE username = $1 ORDER BY id")
                    .bind(holder)
                    .fetch_all(&mut *tx)
                    .await?;
            held.extend(serials.into_iter().map(|s| (holder.clone(), s)));
        }
        if !held.is_empty() {
            tx.rollback().await?;
            w.done(Ok(()))?;
            return Ok(FirstToken::Held(held));
        }
        let id = insert_token(&mut tx, &token, row)
            .await
            .map_err(|e| insert_error(e, &token.serial))?;
        tx.commit().await?;
        w.done(Ok(()))?;
        Ok(FirstToken::Added(id))
    }

    /// [`crate::store::Store::user_snapshot`] in one round trip: one row per token (ordered
    /// by serial, as `list_tokens`), or one row with NULL token columns for a user without
    /// tokens; the lockout and profile columns repeat on every row.
    pub(super) async fn user_snapshot_impl(&self, user: &str) -> Result<UserSnapshot, StoreError> {
        let token_columns: Vec<String> = RECORD_COLUMNS
            .split(',')
            .map(|c| format!("t.{0} AS {0}", c.trim()))
            .collect();
        let mut rd = self.reader().await?;
        let rows = sqlx::query(&format!(
            "SELECT s.failures AS snap_failures, s.locked_until AS snap_locked_until, \
                    p.phone AS snap_phone, p.method AS snap_method, \
                    p.blocked_at AS snap_blocked_at, p.blocked_reason AS snap_blocked_reason, \
                    p.bypass_until AS snap_bypass_until, \
                    {} \
             FROM (SELECT $1::TEXT AS name) AS u \
             LEFT JOIN user_state s ON s.username = u.name \
             LEFT JOIN user_profile p ON p.username = u.name \
             LEFT JOIN tokens t ON t.username = u.name \
             ORDER BY t.serial COLLATE \"C\"",
            token_columns.join(", ")
        ))
        .bind(user)
        .fetch_all(rd.conn())
        .await;
        let rows = rd.done(rows)?;
        let Some(first) = rows.first() else {
            return Err(StoreError::Corrupt("user snapshot returned no row".into()));
        };
        let mut tokens = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: Option<i64> = row.try_get("id")?;
            if id.is_some() {
                tokens.push(self.record_from_row(row, false)?);
            }
        }
        let failures: Option<i64> = first.try_get("snap_failures")?;
        Ok(UserSnapshot {
            status: UserStatus {
                user: user.to_string(),
                failures: to_u32(failures.unwrap_or(0), "user_state.failures")?,
                locked_until: first.try_get("snap_locked_until")?,
                token_count: tokens.len() as u32,
            },
            profile: UserProfile {
                user: user.to_string(),
                phone: first.try_get("snap_phone")?,
                method: first.try_get("snap_method")?,
                blocked_at: first.try_get("snap_blocked_at")?,
                blocked_reason: first.try_get("snap_blocked_reason")?,
                bypass_until: first.try_get("snap_bypass_until")?,
            },
            tokens,
        })
    }

    fn record_from_row(&self, row: &PgRow, seed_may_fail: bool) -> Result<TokenRecord, StoreError> {
        let (token, unreadable_seed) = self.token_from_row(row, seed_may_fail)?;
        let resync_counter: Option<i64> = row.try_get("resync_counter")?;
        let resync_at: Option<i64> = row.try_get("resync_at")?;
        let resync = match (resync_counter, resync_at) {
            (Some(c), Some(at)) => Some((to_u64(c, "tokens.resync_counter")?, at)),
            _ => None,
        };
        Ok(TokenRecord {
            extra: TokenExtra {
                manufacturer: row.try_get("manufacturer")?,
                model: row.try_get("model")?,
                valid_from: row.try_get("valid_from")?,
                valid_until: row.try_get("valid_until")?,
                drift: row.try_get("drift")?,
                resync,
                enrolled: row.try_get::<String, _>("origin")? == "enroll",
                unreadable_seed,
            },
            token,
        })
    }

    /// `token import`'s turn, on any node: a session advisory lock, on a connection of its
    /// own taken out of the pool (`detach`), so that dropping the turn closes the session
    /// and the lock goes with it, whatever ends the command.
    pub(super) async fn import_turn_impl(&self) -> Result<crate::store::ImportTurn, StoreError> {
        let mut conn = self.pool.acquire().await?.detach();
        // A serving connection's statement_timeout (5 s) ended the wait for an import
        // longer than that with "canceling statement due to statement timeout" (review).
        // Set for this session alone, which ends with the turn.
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut conn)
            .await?;
        sqlx::query("SET lock_timeout = 0")
            .execute(&mut conn)
            .await?;
        // The turn's session sits idle while the import works on pool connections: a
        // server's idle_session_timeout ended it, and the next import took its turn
        // meanwhile (review). PostgreSQL 14 and later; an older one has no such setting.
        let _ = sqlx::query("SET idle_session_timeout = 0")
            .execute(&mut conn)
            .await;
        let key = "SELECT pg_try_advisory_lock(hashtextextended('tokens:import', 0))";
        let got: bool = sqlx::query_scalar(key).fetch_one(&mut conn).await?;
        if !got {
            eprintln!("waiting for another token import on this store to finish");
            sqlx::query("SELECT pg_advisory_lock(hashtextextended('tokens:import', 0))")
                .execute(&mut conn)
                .await?;
        }
        Ok(crate::store::ImportTurn(Box::new(conn)))
    }

    pub(super) async fn import_tokens_impl(
        &self,
        tokens: &[(NewToken, TokenExtra)],
        replace: bool,
        audit: &[AuditRecord],
        seen: Option<&crate::store::InventorySeen>,
    ) -> Result<u64, StoreError> {
        // Seal outside the transaction: it is the CPU-heavy part and needs no lock.
        let mut rows = Vec::with_capacity(tokens.len());
        for (t, x) in tokens {
            let sealed = self.sealer.seal(t.secret.expose(), t.serial.as_bytes());
            rows.push((t, x, counter_to_sql(t.counter)?, sealed));
        }
        // One transaction: one commit for the whole batch instead of one per token, and
        // nothing stays behind if any row fails.
        // Inside a request: a savepoint in its transaction (see request_tx.rs).
        let mut w = self.writer().await?;
        let mut tx = sqlx::Connection::begin(w.conn()).await?;
        if let Some(seen) = seen {
            // Imports run one at a time already (`import_turn`). An enrollment's random seed
            // shares nothing, and a token stored by one with a lower id, committed after
            // this reads, is not worth refusing.
            let added: Option<String> =
                sqlx::query_scalar("SELECT serial FROM tokens WHERE id > $1 ORDER BY id LIMIT 1")
                    .bind(seen.last_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let mut now_owners = Vec::with_capacity(seen.owners.len());
            for (serial, _) in &seen.owners {
                // FOR UPDATE: an assign waits for this import's commit, and comes after it.
                let owner: Option<Option<String>> =
                    sqlx::query_scalar("SELECT username FROM tokens WHERE serial = $1 FOR UPDATE")
                        .bind(serial)
                        .fetch_optional(&mut *tx)
                        .await?;
                now_owners.push(owner);
            }
            crate::store::inventory_unchanged(seen, added, &now_owners)?;
        }
        let now = now_unix();
        let upsert = if replace {
            // As in the SQLite store: what radmfa learned about the token stays, and for the
            // same seed the counter never goes back ($15: the counter is kept, $16: the
            // drift; `kept_on_replace` says when), and a new period rescales the used step
            // and the drift. The seed is read FOR UPDATE, so no login on any node moves
            // the counter in between.
            " ON CONFLICT (serial) DO UPDATE SET \
             username = COALESCE(excluded.username, tokens.username), \
             kind = excluded.kind, algorithm = excluded.algorithm, digits = excluded.digits, \
             period = excluded.period, \
             last_step = CASE WHEN tokens.last_step IS NULL OR tokens.period = excluded.period \
                 OR tokens.period <= 0 OR excluded.period <= 0 THEN tokens.last_step \
                 ELSE ((tokens.last_step + 1) * tokens.period - 1) / excluded.period END, \
             counter = CASE WHEN $15 THEN GREATEST(tokens.counter, excluded.counter) \
                 ELSE excluded.counter END, \
             secret = excluded.secret, manufacturer = excluded.manufacturer, \
             model = excluded.model, \
             valid_from = CASE WHEN excluded.valid_from IS NULL \
                 AND excluded.valid_until IS NULL THEN tokens.valid_from \
                 ELSE excluded.valid_from END, \
             valid_until = CASE WHEN excluded.valid_from IS NULL \
                 AND excluded.valid_until IS NULL THEN tokens.valid_until \
                 ELSE excluded.valid_until END, \
             drift = CASE WHEN NOT $16 THEN excluded.drift \
                 WHEN tokens.period = excluded.period OR tokens.period <= 0 \
                     OR excluded.period <= 0 THEN tokens.drift \
                 ELSE (tokens.drift * tokens.period) / excluded.period END, \
             resync_counter = NULL, resync_at = NULL, origin = 'import'"
        } else {
            ""
        };
        let sql = format!(
            "INSERT INTO tokens (serial, username, kind, algorithm, digits, period, counter, \
             last_step, enabled, created_at, secret, manufacturer, model, valid_from, \
             valid_until, drift) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, TRUE, $8, $9, $10, $11, $12, $13, $14)\
             {upsert}"
        );
        let mut written = 0;
        for (t, x, counter, sealed) in rows {
            let kept = match replace {
                false => Kept::NOTHING,
                true => {
                    let stored: Option<(String, Vec<u8>)> = sqlx::query_as(
                        "SELECT kind, secret FROM tokens WHERE serial = $1 FOR UPDATE",
                    )
                    .bind(&t.serial)
                    .fetch_optional(&mut *tx)
                    .await?;
                    kept_on_replace(&self.sealer, t, stored)?
                }
            };
            let query = sqlx::query(&sql)
                .bind(&t.serial)
                .bind(&t.user)
                .bind(kind_str(t.kind))
                .bind(t.algorithm.as_str())
                .bind(i64::from(t.digits))
                .bind(i64::from(t.period))
                .bind(counter)
                .bind(now)
                .bind(sealed)
                .bind(&x.manufacturer)
                .bind(&x.model)
                .bind(x.valid_from)
                .bind(x.valid_until)
                .bind(x.drift);
            let query = if replace {
                query.bind(kept.counter).bind(kept.drift)
            } else {
                query
            };
            let result = query.execute(&mut *tx).await;
            match result {
                Ok(done) => written += done.rows_affected(),
                // Dropping `tx` rolls everything back.
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(format!("token serial {}", t.serial)))
                }
                Err(e) => return Err(e.into()),
            }
        }
        // In statements PostgreSQL takes (see `RECORDS_PER_INSERT`), all in this
        // transaction: 4,000 records in one was past its limit, and every import giving
        // 3,640 or more tokens to users failed.
        for chunk in audit.chunks(super::audit_batch::RECORDS_PER_INSERT) {
            let storable: Vec<_> = chunk.iter().map(AuditRecord::storable).collect();
            super::audit_batch::insert_records(&mut *tx, storable.iter().map(|r| &**r)).await?;
        }
        tx.commit().await?;
        w.done(Ok(()))?;
        Ok(written)
    }

    pub(super) async fn list_tokens_impl(
        &self,
        filter: &TokenFilter,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {RECORD_COLUMNS} FROM tokens WHERE TRUE"));
        if let Some(user) = &filter.user {
            q.push(" AND username = ").push_bind(user.clone());
        }
        if filter.unassigned {
            q.push(" AND username IS NULL");
        }
        if let Some(prefix) = &filter.serial_prefix {
            q.push(" AND left(serial, char_length(")
                .push_bind(prefix.clone())
                .push(")) = ")
                .push_bind(prefix.clone());
        }
        q.push(" ORDER BY serial COLLATE \"C\"");
        if let Some(limit) = filter.limit {
            q.push(" LIMIT ").push_bind(i64::from(limit));
        }
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.record_from_row(r, true)).collect()
    }

    pub(super) async fn token_record_impl(
        &self,
        serial: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM tokens WHERE serial = $1"
        ))
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| self.record_from_row(r, true))
            .transpose()
    }

    pub(super) async fn assign_token_impl(
        &self,
        serial: &str,
        holder: Option<&str>,
        user: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        // A pending resynchronisation belongs to whoever pressed the button: a new owner
        // starts without one.
        let r = sqlx::query(
            "UPDATE tokens SET username = $1, resync_counter = NULL, resync_at = NULL \
             WHERE serial = $2 AND username IS NOT DISTINCT FROM $3",
        )
        .bind(user)
        .bind(serial)
        .bind(holder)
        .execute(w.conn())
        .await;
        let done = w.done(r)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn set_token_enabled_impl(
        &self,
        serial: &str,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query("UPDATE tokens SET enabled = $1 WHERE serial = $2")
            .bind(enabled)
            .bind(serial)
            .execute(w.conn())
            .await;
        let done = w.done(r)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete_token_impl(&self, serial: &str) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query("DELETE FROM tokens WHERE serial = $1")
            .bind(serial)
            .execute(w.conn())
            .await;
        let done = w.done(r)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn consume_totp_step_with_drift_impl(
        &self,
        token_id: i64,
        step: i64,
        drift: i64,
    ) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE tokens SET last_step = $1, drift = $3 \
             WHERE id = $2 AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(token_id)
        .bind(drift)
        .execute(w.conn())
        .await;
        let done = w.done(r)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn consume_totp_step_seen_impl(
        &self,
        token_id: i64,
        read: TokenAsRead<'_>,
        seen: Option<i64>,
        step: i64,
        drift: i64,
    ) -> Result<StepUse, StoreError> {
        let (owner, period) = (read.owner, i64::from(read.period));
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE tokens SET last_step = $1, drift = $3 \
             WHERE id = $2 AND last_step IS NOT DISTINCT FROM $4 \
             AND ($4::BIGINT IS NULL OR $4 < $1) \
             AND enabled AND username IS NOT DISTINCT FROM $5 AND period = $6",
        )
        .bind(step)
        .bind(token_id)
        .bind(drift)
        .bind(seen)
        .bind(owner)
        .bind(period)
        .execute(w.conn())
        .await;
        if w.done(r)?.rows_affected() == 1 {
            return Ok(StepUse::Taken);
        }
        // On the request's own connection: a second one from the pool could wait for ever
        // on a pool of one, and the update above already waited for the winner's commit.
        let r = sqlx::query_as::<_, (Option<i64>, i64)>(
            "SELECT last_step, drift FROM tokens \
             WHERE id = $1 AND enabled AND username IS NOT DISTINCT FROM $2 AND period = $3",
        )
        .bind(token_id)
        .bind(owner)
        .bind(period)
        .fetch_optional(w.conn())
        .await;
        Ok(match w.done(r)? {
            Some((last_step, drift)) => StepUse::Moved { last_step, drift },
            None => StepUse::Gone,
        })
    }

    pub(super) async fn rewind_totp_step_impl(
        &self,
        token_id: i64,
        from: i64,
        step: i64,
        drift: i64,
    ) -> Result<bool, StoreError> {
        let mut w = self.writer().await?;
        let r = sqlx::query(
            "UPDATE tokens SET last_step = $1, drift = $3 \
             WHERE id = $2 AND last_step = $4 AND $1 <= $4",
        )
        .bind(step)
        .bind(token_id)
        .bind(drift)
        .bind(from)
        .execute(w.conn())
        .await;
        let done = w.done(r)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn set_hotp_resync_impl(
        &self,
        token_id: i64,
        pending: Option<(u64, i64)>,
    ) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let (counter, at) = match pending {
            Some((c, at)) => (Some(counter_to_sql(c)?), Some(at)),
            None => (None, None),
        };
        let r = sqlx::query("UPDATE tokens SET resync_counter = $1, resync_at = $2 WHERE id = $3")
            .bind(counter)
            .bind(at)
            .bind(token_id)
            .execute(w.conn())
            .await;
        w.done(r)?;
        Ok(())
    }
}

/// Inserts `token` as enrolled, on `conn` (a pooled connection, or a transaction's).
pub(super) async fn insert_token(
    conn: &mut PgConnection,
    token: &NewToken,
    row: SealedRow,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar::<_, i64>(
        "INSERT INTO tokens (serial, username, kind, algorithm, digits, period, counter, \
         last_step, enabled, created_at, secret, origin) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, TRUE, $8, $9, 'enroll') RETURNING id",
    )
    .bind(&token.serial)
    .bind(&token.user)
    .bind(kind_str(token.kind))
    .bind(token.algorithm.as_str())
    .bind(i64::from(token.digits))
    .bind(i64::from(token.period))
    .bind(row.counter)
    .bind(now_unix())
    .bind(row.sealed)
    .fetch_one(conn)
    .await
}

/// [`insert_token`]'s error: a serial already there is a `Conflict`.
pub(super) fn insert_error(e: sqlx::Error, serial: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("token serial {serial}"))
    } else {
        e.into()
    }
}
