//! Checking a code against the user's tokens, consuming it, and counting failures toward the
//! lockout.

use crate::app::AppState;
use crate::mfa::otp;
use crate::store::{AuditRecord, StoreError, Token, TokenKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    Valid {
        serial: String,
        mode: &'static str,
    },
    /// Wrong code; `locked` when this failure triggered the lockout.
    Invalid {
        reason: String,
        locked: bool,
    },
}

/// Is the user's second factor locked right now?
pub async fn is_locked(app: &AppState, user: &str) -> Result<bool, StoreError> {
    let now = app.clock.now();
    Ok(app
        .store
        .user_status(user)
        .await?
        .locked_until
        .is_some_and(|t| t > now))
}

/// Verifies `code`; a match is consumed atomically in the store, so it works exactly once,
/// on any node. Failures count toward the lockout; success resets the count.
pub async fn check_code(
    app: &AppState,
    user: &str,
    tokens: &[Token],
    code: &str,
) -> Result<CodeCheck, StoreError> {
    let now = app.clock.now();
    let mut reason = "wrong code";
    if otp::looks_like_code(code) {
        for t in tokens.iter().filter(|t| t.enabled) {
            if t.kind != TokenKind::Totp {
                continue;
            }
            let Some(step) = otp::match_totp(t, code, now, app.config.totp.window) else {
                continue;
            };
            if app.store.consume_totp_step(t.id, step).await? {
                app.store.clear_failures(user).await?;
                return Ok(CodeCheck::Valid {
                    serial: t.serial.clone(),
                    mode: "totp",
                });
            }
            reason = "code already used";
        }
    } else {
        reason = "not a code";
    }
    let lock = &app.config.lockout;
    let (_, locked_until) = app
        .store
        .record_failure(user, lock.threshold, now, lock.duration.as_secs() as i64)
        .await?;
    if let Some(until) = locked_until {
        let rec = AuditRecord {
            time: now,
            user: user.to_string(),
            mode: "admin".into(),
            result: "lock".into(),
            reason: Some(format!(
                "{} consecutive wrong codes; second factor locked until {until}",
                lock.threshold
            )),
            server_name: app.config.server.name.clone(),
            ..Default::default()
        };
        app.store.append_audit(&rec).await?;
        tracing::warn!(target: "radmfa::audit", user, result = "lock", until, "second factor locked");
    }
    Ok(CodeCheck::Invalid {
        reason: reason.to_string(),
        locked: locked_until.is_some(),
    })
}
