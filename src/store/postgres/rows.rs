//! Row conversion and the small helpers every `PgStore` file shares.

use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PgStore;
use crate::store::{
    AuditRecord, OtpAlgorithm, PendingChallenge, StoreError, Token, TokenKind, UserStatus,
};

impl PgStore {
    pub(super) fn token_from_row(&self, row: &PgRow) -> Result<Token, StoreError> {
        let serial: String = row.try_get("serial")?;
        let kind: String = row.try_get("kind")?;
        let kind = match kind.as_str() {
            "totp" => TokenKind::Totp,
            "hotp" => TokenKind::Hotp,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "token {serial}: unknown kind {other:?}"
                )))
            }
        };
        let algorithm: String = row.try_get("algorithm")?;
        let algorithm = OtpAlgorithm::parse(&algorithm).ok_or_else(|| {
            StoreError::Corrupt(format!("token {serial}: unknown algorithm {algorithm:?}"))
        })?;
        let sealed: Vec<u8> = row.try_get("secret")?;
        let secret = self
            .sealer
            .open(&sealed, serial.as_bytes())
            .map_err(|e| match e {
                StoreError::Decrypt(reason) => {
                    StoreError::Decrypt(format!("token {serial}: {reason}"))
                }
                other => other,
            })?;
        Ok(Token {
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
        })
    }
}

pub(super) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) fn to_u32(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {v}")))
}

pub(super) fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {v}")))
}

/// HOTP counters are u64 in the API but BIGINT (i64) in SQL; values beyond i64::MAX are
/// refused rather than wrapped.
pub(super) fn counter_to_sql(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("HOTP counter out of range: {v}")))
}

pub(super) fn kind_str(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Totp => "totp",
        TokenKind::Hotp => "hotp",
    }
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
        nas_name: row.try_get("nas_name")?,
        latency_ms: row.try_get("latency_ms")?,
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
