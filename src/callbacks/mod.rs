//! The HTTP listener for provider callbacks (axum): the call's keypad result and its final
//! status, and an SMS's delivery status. Every request must carry a valid provider signature over the public URL and its
//! parameters; anything else is refused with 403 and changes nothing.
//!
//! Routes (relative to `[callbacks] public_url`, which must map to this listener's root):
//! - `POST /twilio/voice/{txn}/gather`: `<Gather>` result (`Digits`)
//! - `POST /twilio/voice/{txn}/status`: the call ended (`CallStatus`)
//! - `POST /twilio/sms/{txn}/status`: the SMS's delivery status (`MessageStatus`,
//!   `ErrorCode`): an undelivered one is logged and counted, nothing more

pub mod signature;
mod twilio;

use std::sync::Arc;

use axum::routing::post;
use axum::Router;

use crate::app::AppState;

/// The URL the provider calls for `path` (e.g. `/twilio/voice/{txn}/gather`), with
/// `[callbacks]` configured.
pub fn public_url(app: &AppState, path: &str) -> Option<String> {
    app.config()
        .delivery
        .callbacks
        .as_ref()
        .map(|c| format!("{}{path}", c.public_url))
}

/// The largest callback body taken, in octets. Twilio's voice callbacks are a form of a few
/// dozen short fields (well under 4 KiB); the body is parsed before its signature can be
/// checked, so anyone who reaches the listener chooses what is parsed, and axum's default
/// (2 MiB, about a million empty fields) would let each request cost tens of MiB and a sort.
pub const MAX_BODY: usize = 32 * 1024;

pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/twilio/voice/{txn}/gather", post(twilio::gather))
        .route("/twilio/voice/{txn}/status", post(twilio::status))
        .route("/twilio/sms/{txn}/status", post(twilio::sms_status))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}
