//! `GET /metrics` for Prometheus, on `[metrics] listen` (axum). Plain HTTP and no
//! authentication, like most exporters: it holds counts only (no user names, secrets or
//! addresses), but bind it to a management address, not the NAS-facing one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::app::AppState;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn metrics(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        app.metrics.prometheus(),
    )
}
