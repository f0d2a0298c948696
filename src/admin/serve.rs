//! `radmfa serve`: build the backends, bind, serve until SIGTERM or Ctrl-C.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::config::Config;

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    survive_file_size_limit();
    let sockets = crate::server::bind(&cfg.server.listen).context("binding listen addresses")?;
    let app = AppState::build(cfg).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(purge_expired_challenges(app.clone(), shutdown.clone()));
    // Provider callbacks (calls): bound before the RADIUS sockets serve, so no call placed
    // by the first request can report back to a closed port.
    if let Some(cb) = &app.config.delivery.callbacks {
        let listener = tokio::net::TcpListener::bind(cb.listen)
            .await
            .with_context(|| format!("binding callbacks.listen {}", cb.listen))?;
        let (app, stop) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::callbacks::serve(app, listener, stop).await {
                tracing::error!(error = %e, "callback listener stopped");
            }
        });
    }
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    crate::server::run(app.clone(), sockets, shutdown).await;
    app.store.close().await;
    Ok(())
}

/// A file-size limit (`ulimit -f`, systemd's `LimitFSIZE=`) reached by the store's files
/// must fail that write — its login is refused, fail closed, and the server carries on —
/// rather than kill the server with SIGXFSZ's default action (PostgreSQL ignores the signal
/// for the same reason). A handler is enough: a caught signal does not terminate, the write
/// returns EFBIG, and tokio keeps the handler for the life of the process.
fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Err(e) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            tracing::warn!(error = %e, "cannot catch SIGXFSZ; a file-size limit would stop the server");
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Expired challenges are refused on lookup anyway; this only keeps the table small.
async fn purge_expired_challenges(app: std::sync::Arc<AppState>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = app.store.purge_expired_challenges(app.clock.now()).await {
                    tracing::warn!(error = %e, "purging expired challenges");
                }
                if app.config.delivery.sms.is_some() || app.config.delivery.voice.is_some() {
                    if let Err(e) = app.store.purge_delivery_state(app.clock.now()).await {
                        tracing::warn!(error = %e, "purging SMS/call transactions");
                    }
                }
            }
        }
    }
}
