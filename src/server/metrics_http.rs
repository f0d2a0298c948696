//! `GET /metrics` for Prometheus, on `[metrics] listen` (axum). Plain HTTP and no
//! authentication, like most exporters: it holds counts only (no user names or secrets;
//! its labels name `[[client]]` entries, groups and upstream servers' host:port), so bind
//! it to a management address, not the NAS-facing one.

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
    let mut text = app.metrics.prometheus();
    upstream_answering(&app, &mut text);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text)
}

/// One sample per upstream server of each group in the configuration now: 0 while its last
/// request went unanswered, worth an alert (the next server is carrying the logins, or none
/// is).
fn upstream_answering(app: &AppState, out: &mut String) {
    use std::fmt::Write;
    let cfg = app.config();
    if cfg.upstreams.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP radmfa_upstream_answering 1 if the upstream RADIUS server answered the last \
         request sent to it (or has not been asked yet), 0 if that request went unanswered.\n\
         # TYPE radmfa_upstream_answering gauge"
    );
    for group in &cfg.upstreams {
        for server in &group.servers {
            let up = u8::from(app.upstream_health.answering(&group.group, server));
            let _ = writeln!(
                out,
                "radmfa_upstream_answering{{group=\"{}\",server=\"{server}\"}} {up}",
                group.group
            );
        }
    }
}
