//! `GET /metrics` for Prometheus and `GET /health` for HTTP health checks, on `[metrics]
//! listen` (axum). Plain HTTP and no
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
        .route("/health", get(health))
        .with_state(app)
}

/// `GET /health` for an HTTP health check (keepalived, an orchestrator, a load balancer
/// that cannot send Status-Server): 200 while this node's directory and store answer, 503
/// otherwise, from the same state and probe as `radmfa_backends_answering`. Status-Server
/// stays the check for RADIUS peers; this one is for tools that speak only HTTP.
async fn health(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    use axum::http::StatusCode;
    // Told to stop: the RADIUS listeners take no new request while the ones in flight
    // finish (the shutdown grace, long where calls are held). Said 200 from the backends'
    // state, a load balancer went on sending logins to a node that no longer read them.
    let (status, text) = if app.stopping.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping: no new requests are taken\n",
        )
    } else if crate::pipeline::health::answering(&app).await {
        (StatusCode::OK, "ok: the directory and the store answer\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "failing: the directory or the store did not answer (the log says which)\n",
        )
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
}

async fn metrics(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    let mut text = app.metrics.prometheus();
    super::metrics_process::Values::now(&app).render(&mut text);
    backends_answering(&app, &mut text).await;
    upstream_answering(&app, &mut text);
    ldap_answering(&app, &mut text);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text)
}

/// 1 while this node's directory and store answer, 0 from a login's backend failure until
/// a probe finds them answering again. The scrape asks as a no_reply client's Status-Server
/// does (`pipeline::health`): while failing, it runs the probe (at most one per 2 s on the
/// node, within 2 s), so the gauge recovers without waiting for such a client, and a node
/// started with its directory down shows 0 from its first scrape.
async fn backends_answering(app: &AppState, out: &mut String) {
    use std::fmt::Write;
    let up = u8::from(crate::pipeline::health::answering(app).await);
    let _ = writeln!(
        out,
        "# HELP radmfa_backends_answering 1 if this node's directory and store answer, 0 \
         after a login met a failure of either, until a probe finds both answering.\n\
         # TYPE radmfa_backends_answering gauge\nradmfa_backends_answering {up}"
    );
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

/// One sample per `[ldap] urls` entry: 0 from a failure of that server (unreachable, no
/// answer in time, its connection lost under an operation, busy) until it answers a search
/// or a bind again. A server that stalls shows here while the logins it held up only count
/// as `radmfa_deadline_exceeded_total`.
fn ldap_answering(app: &AppState, out: &mut String) {
    use std::fmt::Write;
    let servers = app.primary().servers_answering();
    if servers.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP radmfa_ldap_answering 1 if the directory server answered the last operation \
         asked of it (or has not been asked yet), 0 from a failure until it answers again.\n\
         # TYPE radmfa_ldap_answering gauge"
    );
    for (url, up) in servers {
        // Config text, checked at load to hold no user information; quoted as Prometheus
        // label values are.
        let url = url.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "radmfa_ldap_answering{{url=\"{url}\"}} {}",
            u8::from(up)
        );
    }
}
