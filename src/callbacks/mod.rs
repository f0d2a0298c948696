//! The HTTP listener for provider callbacks (axum): the call's keypad result and its final
//! status. Every request must carry a valid provider signature over the public URL and its
//! parameters; anything else is refused with 403 and changes nothing.
//!
//! Routes (relative to `[callbacks] public_url`, which must map to this listener's root):
//! - `POST /twilio/voice/{txn}/gather`: `<Gather>` result (`Digits`)
//! - `POST /twilio/voice/{txn}/status`: the call ended (`CallStatus`)

pub mod signature;
mod twilio;

use std::sync::Arc;

use axum::routing::post;
use axum::Router;

use crate::app::AppState;

/// The URL the provider calls for `path` (e.g. `/twilio/voice/{txn}/gather`).
pub fn public_url(app: &AppState, path: &str) -> Option<String> {
    app.config()
        .delivery
        .callbacks
        .as_ref()
        .map(|c| format!("{}{path}", c.public_url))
}

pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/twilio/voice/{txn}/gather", post(twilio::gather))
        .route("/twilio/voice/{txn}/status", post(twilio::status))
        .with_state(app)
}
