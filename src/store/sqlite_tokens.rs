//! `SqliteStore`'s token inventory: bulk import in one transaction, listing, assignment, and
//! the per-token state long-lived tokens need (TOTP drift, pending HOTP resynchronisation).
//!
//! Kept apart from `sqlite.rs` so that file stays about the core trait; the trait impl there
//! delegates here.

use super::columns::{kept_on_replace, Kept};
use super::sqlite::{counter_to_sql, is_unique_violation, kind_str, now_unix, returned_id};
use super::sqlite_reads::Seed::MayFail;
use super::sqlite_writer::sqlite_err;
use super::{
    AuditRecord, FirstToken, InventorySeen, NewToken, SqliteStore, StepUse, StoreError,
    TokenAsRead, TokenExtra, TokenFilter, TokenRecord,
};
use rusqlite::OptionalExtension;
use sqlx::SqliteConnection;

impl SqliteStore {
    /// Inserts `token` as enrolled, on `conn` (the pool's, or a transaction's).
    pub(super) async fn insert_token(
        &self,
        conn: &mut SqliteConnection,
        token: &NewToken,
    ) -> Result<i64, StoreError> {
        let counter = counter_to_sql(token.counter)?;
        let sealed = self
            .sealer
            .seal(token.secret.expose(), token.serial.as_bytes());
        let result = sqlx::query_scalar::<_, i64>(
            "INSERT INTO tokens (serial, user, kind, algorithm, digits, period, counter, \
             last_step, enabled, created_at, secret, origin) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, 1, ?8, ?9, 'enroll') RETURNING id",
        )
        .bind(&token.serial)
        .bind(&token.user)
        .bind(kind_str(token.kind))
        .bind(token.algorithm.as_str())
        .bind(i64::from(token.digits))
        .bind(i64::from(token.period))
        .bind(counter)
        .bind(now_unix())
        .bind(sealed)
        .fetch_all(conn)
        .await;
        match result {
            Ok(ids) => returned_id(ids),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "token serial {}",
                token.serial
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn add_first_token_impl(
        &self,
        token: NewToken,
        holders: &[String],
    ) -> Result<FirstToken, StoreError> {
        // IMMEDIATE: the look and the insert under the file's write lock, which another
        // process's enrollment waits for (busy_timeout) and then sees this token.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut held = Vec::new();
        for holder in holders {
            let serials: Vec<String> =
                sqlx::query_scalar("SELECT serial FROM tokens WHERE user = ?1 ORDER BY id")
                    .bind(holder)
                    .fetch_all(&mut *tx)
                    .await?;
            held.extend(serials.into_iter().map(|s| (holder.clone(), s)));
        }
        if !held.is_empty() {
            tx.rollback().await?;
            return Ok(FirstToken::Held(held));
        }
        let id = self.insert_token(&mut tx, &token).await?;
        tx.commit().await?;
        Ok(FirstToken::Added(id))
    }

    pub(super) async fn import_tokens_impl(
        &self,
        tokens: &[(NewToken, TokenExtra)],
        replace: bool,
        audit: &[AuditRecord],
        seen: Option<&InventorySeen>,
    ) -> Result<u64, StoreError> {
        // Seal outside the transaction: it is the CPU-heavy part and needs no lock.
        let mut rows = Vec::with_capacity(tokens.len());
        for (t, x) in tokens {
            let sealed = self.sealer.seal(t.secret.expose(), t.serial.as_bytes());
            rows.push((t, x, counter_to_sql(t.counter)?, sealed));
        }
        // One IMMEDIATE transaction: one fsync for the whole file instead of one per token,
        // and nothing stays behind if any row fails.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(seen) = seen {
            // Under the write lock BEGIN IMMEDIATE took: no other writer until the commit.
            let added: Option<String> =
                sqlx::query_scalar("SELECT serial FROM tokens WHERE id > ?1 ORDER BY id LIMIT 1")
                    .bind(seen.last_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let mut now_owners = Vec::with_capacity(seen.owners.len());
            for (serial, _) in &seen.owners {
                let owner: Option<Option<String>> =
                    sqlx::query_scalar("SELECT user FROM tokens WHERE serial = ?1")
                        .bind(serial)
                        .fetch_optional(&mut *tx)
                        .await?;
                now_owners.push(owner);
            }
            super::inventory_unchanged(seen, added, &now_owners)?;
        }
        let now = now_unix();
        let upsert = if replace {
            // The owner stays when the new data names none, and so do the validity dates
            // (a CSV has no columns for them: an expired token came back to life). What
            // radmfa learned about the
            // token stays too: disabled stays disabled, the last TOTP step used stays used
            // (with a new seed that refuses only steps already past), and for the same seed
            // the counter never goes back and the learned drift stays. A pending
            // resync goes. (?15: the counter is kept, ?16: the drift; `kept_on_replace`
            // says when.) The seed is compared under this transaction's write lock, so no
            // login can move the counter in between. Steps and drift are counted in periods,
            // so a new period rescales them: the used step becomes the last new step that
            // starts before the old one ended (a 30 s step number read as a 60 s one would
            // refuse every code for decades), and the drift keeps its seconds.
            " ON CONFLICT (serial) DO UPDATE SET user = COALESCE(excluded.user, tokens.user), \
             kind = excluded.kind, algorithm = excluded.algorithm, digits = excluded.digits, \
             period = excluded.period, \
             last_step = CASE WHEN tokens.last_step IS NULL OR tokens.period = excluded.period \
                 OR tokens.period <= 0 OR excluded.period <= 0 THEN tokens.last_step \
                 ELSE ((tokens.last_step + 1) * tokens.period - 1) / excluded.period END, \
             counter = CASE WHEN ?15 THEN MAX(tokens.counter, excluded.counter) \
                 ELSE excluded.counter END, \
             secret = excluded.secret, manufacturer = excluded.manufacturer, \
             model = excluded.model, \
             valid_from = CASE WHEN excluded.valid_from IS NULL \
                 AND excluded.valid_until IS NULL THEN tokens.valid_from \
                 ELSE excluded.valid_from END, \
             valid_until = CASE WHEN excluded.valid_from IS NULL \
                 AND excluded.valid_until IS NULL THEN tokens.valid_until \
                 ELSE excluded.valid_until END, \
             drift = CASE WHEN NOT ?16 THEN excluded.drift \
                 WHEN tokens.period = excluded.period OR tokens.period <= 0 \
                     OR excluded.period <= 0 THEN tokens.drift \
                 ELSE (tokens.drift * tokens.period) / excluded.period END, \
             resync_counter = NULL, resync_at = NULL, origin = 'import'"
        } else {
            ""
        };
        let sql = format!(
            "INSERT INTO tokens (serial, user, kind, algorithm, digits, period, counter, \
             last_step, enabled, created_at, secret, manufacturer, model, valid_from, \
             valid_until, drift) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, 1, ?8, ?9, ?10, ?11, ?12, ?13, ?14){upsert}"
        );
        let mut written = 0;
        for (t, x, counter, sealed) in rows {
            let kept = match replace {
                false => Kept::NOTHING,
                true => {
                    let stored: Option<(String, Vec<u8>)> =
                        sqlx::query_as("SELECT kind, secret FROM tokens WHERE serial = ?1")
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
        for r in audit {
            insert_audit(&mut tx, r).await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    pub(super) async fn list_tokens_impl(
        &self,
        filter: &TokenFilter,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        use rusqlite::types::Value;
        let mut clauses = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(user) = &filter.user {
            params.push(Value::Text(user.clone()));
            clauses.push(format!("user = ?{}", params.len()));
        }
        if filter.unassigned {
            clauses.push("user IS NULL".to_string());
        }
        if let Some(prefix) = &filter.serial_prefix {
            params.push(Value::Text(prefix.clone()));
            let n = params.len();
            clauses.push(format!("substr(serial, 1, length(?{n})) = ?{n}"));
        }
        let mut rest = match clauses.is_empty() {
            true => String::new(),
            false => format!("WHERE {}", clauses.join(" AND ")),
        };
        rest.push_str(" ORDER BY serial");
        if let Some(limit) = filter.limit {
            params.push(Value::Integer(i64::from(limit)));
            rest.push_str(&format!(" LIMIT ?{}", params.len()));
        }
        let _turn = self.readers.turn().await;
        self.readers.token_records(
            &self.sealer,
            &rest,
            rusqlite::params_from_iter(params),
            MayFail,
        )
    }

    pub(super) async fn token_record_impl(
        &self,
        serial: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let _turn = self.readers.turn().await;
        let records =
            self.readers
                .token_records(&self.sealer, "WHERE serial = ?1", [serial], MayFail)?;
        Ok(records.into_iter().next())
    }

    pub(super) async fn assign_token_impl(
        &self,
        serial: &str,
        holder: Option<&str>,
        user: Option<&str>,
    ) -> Result<bool, StoreError> {
        // A pending resynchronisation belongs to whoever pressed the button: a new owner
        // starts without one. `IS` matches NULL (stock) as well as a name.
        let done = sqlx::query(
            "UPDATE tokens SET user = ?1, resync_counter = NULL, resync_at = NULL \
             WHERE serial = ?2 AND user IS ?3",
        )
        .bind(user)
        .bind(serial)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn set_token_enabled_impl(
        &self,
        serial: &str,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE tokens SET enabled = ?1 WHERE serial = ?2")
            .bind(enabled)
            .bind(serial)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete_token_impl(&self, serial: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM tokens WHERE serial = ?1")
            .bind(serial)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn consume_totp_step_with_drift_impl(
        &self,
        token_id: i64,
        step: i64,
        drift: i64,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE tokens SET last_step = ?1, drift = ?3 \
                         WHERE id = ?2 AND (last_step IS NULL OR last_step < ?1)",
                    )
                    .and_then(|mut st| st.execute(rusqlite::params![step, token_id, drift]))
                    .map_err(sqlite_err)?;
                Ok(changed == 1)
            })
            .await
    }

    pub(super) async fn consume_totp_step_seen_impl(
        &self,
        token_id: i64,
        read: TokenAsRead<'_>,
        seen: Option<i64>,
        step: i64,
        drift: i64,
    ) -> Result<StepUse, StoreError> {
        let owner = read.owner.map(str::to_string);
        let period = i64::from(read.period);
        self.writer
            .write(move |c| {
                // `IS`: equal, NULL included.
                let changed = c
                    .prepare_cached(
                        "UPDATE tokens SET last_step = ?1, drift = ?3 \
                         WHERE id = ?2 AND last_step IS ?4 AND (?4 IS NULL OR ?4 < ?1) \
                         AND enabled = 1 AND user IS ?5 AND period = ?6",
                    )
                    .and_then(|mut st| {
                        st.execute(rusqlite::params![
                            step, token_id, drift, seen, owner, period
                        ])
                    })
                    .map_err(sqlite_err)?;
                if changed == 1 {
                    return Ok(StepUse::Taken);
                }
                // On the writer's connection: it sees the batch's writes not yet committed,
                // which a reader would not.
                let now = c
                    .prepare_cached(
                        "SELECT last_step, drift FROM tokens \
                         WHERE id = ?1 AND enabled = 1 AND user IS ?2 AND period = ?3",
                    )
                    .and_then(|mut st| {
                        st.query_row(rusqlite::params![token_id, owner, period], |r| {
                            Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, i64>(1)?))
                        })
                        .optional()
                    })
                    .map_err(sqlite_err)?;
                Ok(match now {
                    Some((last_step, drift)) => StepUse::Moved { last_step, drift },
                    None => StepUse::Gone,
                })
            })
            .await
    }

    pub(super) async fn rewind_totp_step_impl(
        &self,
        token_id: i64,
        from: i64,
        step: i64,
        drift: i64,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE tokens SET last_step = ?1, drift = ?3 \
                         WHERE id = ?2 AND last_step = ?4 AND ?1 <= ?4",
                    )
                    .and_then(|mut st| st.execute(rusqlite::params![step, token_id, drift, from]))
                    .map_err(sqlite_err)?;
                Ok(changed == 1)
            })
            .await
    }

    pub(super) async fn set_hotp_resync_impl(
        &self,
        token_id: i64,
        pending: Option<(u64, i64)>,
    ) -> Result<(), StoreError> {
        let (counter, at) = match pending {
            Some((c, at)) => (Some(counter_to_sql(c)?), Some(at)),
            None => (None, None),
        };
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE tokens SET resync_counter = ?1, resync_at = ?2 WHERE id = ?3",
                )
                .and_then(|mut st| st.execute(rusqlite::params![counter, at, token_id]))
                .map_err(sqlite_err)?;
                Ok(())
            })
            .await
    }
}

/// Writes one audit record in `tx`, the transaction of the change it records.
pub(super) async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    r: &AuditRecord,
) -> Result<(), StoreError> {
    let r = r.storable();
    sqlx::query(
        "INSERT INTO audit (time, user, first_name, last_name, email, phone, \
             token_serial, mode, result, reason, server_name, server_ip, client_ip, \
             nas_name, latency_ms, actor, nas_ip, nas_identifier) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?18)",
    )
    .bind(r.time)
    .bind(&r.user)
    .bind(&r.first_name)
    .bind(&r.last_name)
    .bind(&r.email)
    .bind(&r.phone)
    .bind(&r.token_serial)
    .bind(&r.mode)
    .bind(&r.result)
    .bind(&r.reason)
    .bind(&r.server_name)
    .bind(&r.server_ip)
    .bind(&r.client_ip)
    .bind(&r.nas_name)
    .bind(r.latency_ms)
    .bind(&r.actor)
    .bind(&r.nas_ip)
    .bind(&r.nas_identifier)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
