//! Row conversion and the small helpers every `PgStore` file shares.

pub(super) use crate::store::columns::{counter_to_sql, kind_str, to_u32, to_u64};
use crate::store::columns::{open_seed, open_seed_or_reason, token_algorithm, token_kind};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PgStore;
use crate::store::{AuditRecord, PendingChallenge, StoreError, Token, UserStatus, UserSummary};

impl PgStore {
    /// The token in `row`, and why its seed did not open if `seed_may_fail` (the admin
    /// reads: [`crate::store::columns::open_seed_or_reason`]); otherwise that is an error.
    pub(super) fn token_from_row(
        &self,
        row: &PgRow,
        seed_may_fail: bool,
    ) -> Result<(Token, Option<String>), StoreError> {
        let serial: String = row.try_get("serial")?;
        let kind: String = row.try_get("kind")?;
        let kind = token_kind(&serial, &kind)?;
        let algorithm: String = row.try_get("algorithm")?;
        let algorithm = token_algorithm(&serial, &algorithm)?;
        let sealed: Vec<u8> = row.try_get("secret")?;
        let (secret, unreadable) = if seed_may_fail {
            open_seed_or_reason(&self.sealer, &serial, &sealed)?
        } else {
            (open_seed(&self.sealer, &serial, &sealed)?, None)
        };
        let token = Token {
            id: row.try_get("id")?,
            user: row.try_get("username")?,
            kind,
            algorithm,
            digits: to_u32(row.try_get("digits")?, "tokens.digits")?,
            period: to_u32(row.try_get("period")?, "tokens.period")?,
            counter: to_u64(row.try_get("counter")?, "tokens.counter")?,
            last_step: row.try_get("last_step")?,
            enabled: row.try_get("enabled")?,
            created_at: row.try_get("created_at")?,
            secret,
            serial,
        };
        Ok((token, unreadable))
    }
}

pub(super) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(super) fn challenge_from_row(row: &PgRow) -> Result<PendingChallenge, StoreError> {
    Ok(PendingChallenge {
        state_hash: row.try_get("state_hash")?,
        user: row.try_get("username")?,
        nas: row.try_get("nas")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        attempts: to_u32(row.try_get("attempts")?, "challenges.attempts")?,
        context: row.try_get("context")?,
    })
}

pub(super) fn audit_from_row(row: &PgRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        time: row.try_get("time")?,
        user: row.try_get("username")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        token_serial: row.try_get("token_serial")?,
        mode: row.try_get("mode")?,
        result: row.try_get("result")?,
        reason: row.try_get("reason")?,
        server_name: row.try_get("server_name")?,
        server_ip: row.try_get("server_ip")?,
        client_ip: row.try_get("client_ip")?,
        nas_ip: row.try_get("nas_ip")?,
        nas_identifier: row.try_get("nas_identifier")?,
        nas_name: row.try_get("nas_name")?,
        latency_ms: row.try_get("latency_ms")?,
        actor: row.try_get("actor")?,
    })
}

pub(super) fn user_status_from_row(row: &PgRow) -> Result<UserStatus, StoreError> {
    Ok(UserStatus {
        user: row.try_get("username")?,
        failures: to_u32(row.try_get("failures")?, "user_state.failures")?,
        locked_until: row.try_get("locked_until")?,
        token_count: to_u32(row.try_get("token_count")?, "token count")?,
    })
}

pub(super) fn user_summary_from_row(row: &PgRow) -> Result<UserSummary, StoreError> {
    Ok(UserSummary {
        status: user_status_from_row(row)?,
        method: row.try_get("method")?,
        phone: row.try_get("has_phone")?,
        blocked_at: row.try_get("blocked_at")?,
        bypass_until: row.try_get("bypass_until")?,
        app_passwords: to_u32(row.try_get("app_password_count")?, "app password count")?,
        remembered: to_u32(row.try_get("remembered_count")?, "remembered login count")?,
    })
}
