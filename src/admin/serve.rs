//! `radmfa serve`: build the backends, bind, serve until SIGTERM or Ctrl-C; SIGHUP reloads
//! the `[[client]]` table (`super::reload`).

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::config::Config;
use crate::server::metrics::HttpListener;

/// `text` is the file as `cfg` was parsed from it; `hup`, SIGHUP as caught before it was
/// read (`reload::catch_sighup`).
pub async fn serve(
    cfg: Config,
    text: &str,
    path: &std::path::Path,
    hup: super::reload::Hangups,
) -> anyhow::Result<()> {
    survive_file_size_limit();
    not_dumpable();
    #[cfg(unix)]
    let mut reloader = super::reload::Reloader::new(path, &cfg, text, hup)?;
    #[cfg(not(unix))]
    let _ = (path, text, hup);
    let sockets = crate::server::bind(&cfg.server.listen).context("binding listen addresses")?;
    let radsec = match &cfg.radsec {
        Some(r) => Some(radsec_listeners(r).await?),
        None => None,
    };
    // Held while serving: `store migrate-to-postgres` refuses to copy a database in use.
    #[cfg(unix)]
    let _serving = match &cfg.store {
        crate::config::StoreConfig::Sqlite { path, .. } => Some({
            // Said before the lock file, which a directory it cannot write refuses too,
            // with less to go on.
            crate::store::writable::refuse_unwritable(path)?;
            crate::store::serving_lock::serving(path)
                .with_context(|| format!("store.path {}", path.display()))?
        }),
        _ => None,
    };
    let app = AppState::build(cfg).await?;
    let stop_signals = StopSignals::catch();
    app.metrics.config_read(app.clock.now());
    #[cfg(unix)]
    reloader.store_opened(&app.config().store);
    // Which file, store, directory and clients this process serves, as `config check` says
    // it: after a restart with the wrong --config the journal shows it.
    tracing::info!("radmfa {} serving {}", crate::VERSION, path.display());
    for line in super::review::summary(&app.config()) {
        tracing::info!("{line}");
    }
    for w in reloader.warnings() {
        tracing::warn!("{w}");
    }
    #[cfg(unix)]
    {
        let (crate::config::StoreConfig::Sqlite { key_file, .. }
        | crate::config::StoreConfig::Postgres { key_file, .. }) = &app.config().store;
        if let Some(w) = crate::store::key_path::owner_warning(key_file) {
            tracing::warn!("{w}");
        }
    }
    // What a reload checks before it applies new [ldap] settings, checked at start too,
    // in the background (bounded by the timeouts per URL) so the listeners do not wait:
    // a wrong bind_password or CA file was otherwise first heard of at the first login.
    let directory = app.primary();
    tokio::spawn(async move { directory.warn_at_start().await });
    // A period lowered (or a client taken out) while radmfa was stopped applies to what is
    // remembered as a reload's does; before the first request, so none is let in by it.
    crate::pipeline::remembered::fit_to_clients(&*app.store, &app.config().clients).await;
    let delivery = &app.config().delivery;
    let proxy = crate::delivery::proxy_variables();
    if (delivery.sms.is_some() || delivery.voice.is_some()) && !proxy.is_empty() {
        tracing::info!(
            "SMS and call providers are reached through the proxy settings in {}",
            proxy.join(", ")
        );
    }
    let shutdown = app.stopping.clone();
    // The HTTP listeners stop after the requests in flight: a held login waiting for its
    // call's keypress must still hear the callback during the shutdown grace.
    let http_shutdown = CancellationToken::new();
    say_audit_kept_forever(
        app.config().audit.keep_days,
        matches!(
            app.config().store,
            crate::config::StoreConfig::Sqlite { .. }
        ),
    );
    let mut housekeeper = tokio::spawn(housekeeping(app.clone(), shutdown.clone()));
    // A database file deleted or replaced under the server is said (see `file_watch`).
    #[cfg(unix)]
    if let crate::config::StoreConfig::Sqlite { path, .. } = &app.config().store {
        tokio::spawn(crate::store::file_watch::watch(
            path.clone(),
            shutdown.clone(),
        ));
    }
    // Provider callbacks (calls): bound before the RADIUS sockets serve, so no call placed
    // by the first request can report back to a closed port.
    if let Some(cb) = &app.config().delivery.callbacks {
        let router = crate::callbacks::router(app.clone());
        spawn_http(
            &app,
            &http_shutdown,
            cb.listen,
            HttpListener::Callbacks,
            router,
        )
        .await?;
    }
    // Prometheus scrapes http://ADDR/metrics.
    if let Some(m) = &app.config().metrics {
        let router = crate::server::metrics_http::router(app.clone());
        spawn_http(
            &app,
            &http_shutdown,
            m.listen,
            HttpListener::Metrics,
            router,
        )
        .await?;
    }
    #[cfg(unix)]
    tokio::spawn(super::reload::on_sighup(
        app.clone(),
        reloader,
        shutdown.clone(),
    ));
    let signal = shutdown.clone();
    tokio::spawn(async move {
        stop_signals.recv().await;
        signal.cancel();
    });
    crate::server::run(app.clone(), sockets, radsec, shutdown).await;
    http_shutdown.cancel();
    // A fraud report being recorded, an overturned verdict's record: finished before the
    // store closes under them, within a bound that keeps the stop inside the unit's
    // TimeoutStopSec with the default grace.
    app.background.close();
    if tokio::time::timeout(BACKGROUND_GRACE, app.background.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = app.background.len(),
            "background work (a fraud block, a record) not finished at shutdown"
        );
    }
    // Housekeeping sees the stop between its statements: one under way (a tick overdue
    // after a stalled store, a purge batch) is let finish, briefly, rather than meet the
    // store closed under it ("attempted to acquire a connection on a closed pool").
    if tokio::time::timeout(HOUSEKEEPING_GRACE, &mut housekeeper)
        .await
        .is_err()
    {
        housekeeper.abort();
    }
    app.store.close().await;
    Ok(())
}

/// How long a stop waits for housekeeping's statement under way.
const HOUSEKEEPING_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long the stop waits for background work after the requests in flight.
const BACKGROUND_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The TLS configuration (certificates checked now, so a bad file stops the start) and the
/// bound `[radsec] listen` addresses.
async fn radsec_listeners(
    cfg: &crate::config::RadsecConfig,
) -> anyhow::Result<crate::server::RadsecListeners> {
    let acceptors = std::sync::Arc::new(crate::server::radsec::Acceptors::new(cfg)?);
    let mut listeners = Vec::new();
    for (i, addr) in cfg.listen.iter().enumerate() {
        match bind_tcp(*addr) {
            Ok(l) => listeners.push(l),
            // As for UDP (`server::bind`): the IPv6 wildcard of the default list on a kernel
            // without IPv6, while another address is bound.
            Err(e) if crate::server::no_ipv6_here(addr, &e) && cfg.listen.len() > 1 => {
                tracing::warn!(%addr, "this host has no IPv6 ({e}); RadSec not listening on {addr}");
            }
            Err(e) => {
                let hint = crate::server::bind_hint(addr, &e);
                return Err(e).with_context(|| format!("binding radsec.listen[{i}] {addr}{hint}"));
            }
        }
    }
    if listeners.is_empty() {
        anyhow::bail!("binding radsec.listen: none of its addresses could be bound");
    }
    Ok(crate::server::RadsecListeners {
        listeners,
        acceptors,
    })
}

/// A TCP listener; IPv6 ones are IPv6-only, so "0.0.0.0:2083" and "[::]:2083" coexist
/// (RadSec, metrics and callbacks alike, as the UDP sockets).
fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sock = Socket::new(domain, Type::STREAM, None)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    TcpListener::from_std(sock.into())
}

/// Binds `addr` (an error names the listener's config key) and serves `router` on it until
/// `shutdown`, with the connection limits and timeouts of `http_listener`.
async fn spawn_http(
    app: &std::sync::Arc<AppState>,
    shutdown: &CancellationToken,
    addr: SocketAddr,
    which: HttpListener,
    router: axum::Router,
) -> anyhow::Result<()> {
    let key = which.key();
    // IPv6-only like every other listener: tokio's own bind on [::] took IPv4 too, so
    // `[::]:9100` beside `0.0.0.0:9100` passed `config check` and failed the start.
    let listener = bind_tcp(addr).map_err(|e| {
        let hint = crate::server::bind_hint(&addr, &e);
        anyhow::Error::new(e).context(format!("binding {key} {addr}{hint}"))
    })?;
    // Logged here, before the RADIUS sockets serve, so the line precedes "listening on udp".
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "{key}: serving http://{addr}{}", which.path());
    }
    tokio::spawn(super::http_listener::serve(
        listener,
        router,
        shutdown.clone(),
        which,
        app.clone(),
    ));
    Ok(())
}

/// The server's memory holds the shared secrets, the store key and, for a moment, every
/// password and code typed: no core dump of it (whatever `ulimit -c` or the unit's
/// `LimitCORE=` say), and no other process of the service's user may attach to it or read
/// its `/proc` memory and environment (root still can: `perf` and `gdb` as root work).
fn not_dumpable() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "could not mark the process non-dumpable (PR_SET_DUMPABLE)");
    }
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

/// SIGTERM and Ctrl-C (SIGINT), caught from the moment this is made: one that arrives
/// before anything waits for it is kept (tokio remembers a delivery until it is received)
/// and stops the process cleanly once it does. `serve` catches them as soon as its store
/// is open, before the first lines that say it is starting: a stop sent on reading those
/// (an admin, systemd, a test) killed it with the signal's default action instead, when it
/// came before the task that waits for it had first run.
pub(super) struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    pub(super) fn catch() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Until one of them arrives (or has arrived since [`StopSignals::catch`]).
    pub(super) async fn recv(self) {
        #[cfg(unix)]
        {
            // A signal that could not be caught (no such failure is known on Linux) is
            // waited for never, not taken as having come.
            async fn one(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = one(self.term) => {}
                _ = one(self.int) => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `[audit] keep_days = 0`, the default, keeps every record: each answered request adds
/// one (about 200 bytes in SQLite), and at a few dozen requests a second the table grows by
/// hundreds of MB a day without a word. Said at start, where the admin reading the log
/// learns it before the disk does; the default stays, as changing it would delete an
/// upgrader's records.
fn say_audit_kept_forever(keep_days: Option<u32>, sqlite: bool) {
    // The size measured for SQLite; a PostgreSQL node's was said in SQLite's terms.
    let size = if sqlite {
        "about 200 MB per million"
    } else {
        "pg_total_relation_size('audit') says how much so far"
    };
    if keep_days.is_none() {
        tracing::info!(
            "audit records are kept forever ([audit] keep_days = 0): each answered request \
             adds one, {size}; set [audit] keep_days to the days to keep, and older records \
             are deleted"
        );
    }
}

/// Once a minute: dropped requests held back from the log (see server::drop_log), expired
/// challenges (refused on lookup anyway; this keeps the table small) and a count of the
/// open ones (`radmfa_challenges_open`), spent SMS/call state, and audit records past
/// `[audit] keep_days` (counted as `clock_watch` allows).
async fn housekeeping(app: std::sync::Arc<AppState>, stop: CancellationToken) {
    let newest = super::clock_watch::newest_audit(&*app.store, app.clock.now()).await;
    let mut clock = super::clock_watch::ClockWatch::new(app.clock.now(), newest);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    // Records deleted by the audit purge's backlog so far, over the ticks it takes.
    let mut backlog = Backlog::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                // A backlog's purge between two of its slices: said, as within one.
                if backlog.deleted > 0 {
                    say_purge_stopped(&backlog, app.config().audit.keep_days.unwrap_or(0));
                }
                return;
            }
            _ = tick.tick() => {
                for w in app.drops.flush(std::time::Instant::now()) {
                    w.log_flushed();
                }
                let now = app.clock.now();
                purge_expired(&*app.store, now).await;
                crate::server::metrics_process::count_challenges(&*app.store, now).await;
                let days = app.config().audit.keep_days;
                let keep = days.map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400));
                if let (Some(days), Some(before)) = (days, clock.audit_cutoff(now, keep)) {
                    purge_old_audit(&app, days, before, &stop, &mut backlog).await;
                } else {
                    say_purge_ended_by_reload(&mut backlog);
                }
            }
        }
    }
}

/// How long after it expires housekeeping deletes a challenge, an SMS or call transaction,
/// or a remembered login: a node whose clock runs ahead must not delete what another node
/// (by its own clock) would still accept. Lookups refuse what has expired by themselves.
const PURGE_LATE_SECS: i64 = 60;

/// Housekeeping's deletes of expired login state, as of `now`.
async fn purge_expired(store: &dyn crate::store::Store, now: i64) {
    let cutoff = now - PURGE_LATE_SECS;
    if let Err(e) = store.purge_expired_challenges(cutoff).await {
        tracing::warn!(error = %e, "purging expired challenges");
    }
    // Whatever is configured: remembered logins (which say where each user logged in from)
    // expire on a TOTP-only site too, and SMS/call state (phone numbers) stays behind when a
    // provider is taken out of the file.
    if let Err(e) = store.purge_delivery_state(cutoff).await {
        tracing::warn!(error = %e, "purging SMS/call state and remembered logins");
    }
}

/// Audit records per delete: small enough that logins never wait long for the write lock.
const AUDIT_PURGE_BATCH: u32 = 2_000;

/// The pause after a batch, as a multiple of the time the batch took (20 ms at least): the
/// purge of a backlog holds the store's write lock a third of the time at most. With a
/// fixed 20 ms after batches of some 70 ms (a year of records, 1.9 million, turned on by
/// `keep_days`) it held it three quarters of the time, and logins waited 16 times longer.
const AUDIT_PURGE_PAUSE_FACTOR: u32 = 2;

/// The most of one minute's housekeeping the purge takes; a backlog goes on at the next
/// tick. The rest of housekeeping (expired challenges, the drop log's summary) waited
/// behind a backlog's whole purge.
const AUDIT_PURGE_SLICE: std::time::Duration = std::time::Duration::from_secs(30);

/// A backlog of audit records being purged over several ticks.
#[derive(Default)]
struct Backlog {
    deleted: u64,
    said: bool,
}

/// A backlog's purge ended by the stop: not "deleted" as at its end, since records are
/// left, for the next start.
fn say_purge_stopped(backlog: &Backlog, days: u32) {
    tracing::info!(
        deleted = backlog.deleted,
        keep_days = days,
        "old audit records deleted until the stop; the rest of the backlog at the next start"
    );
}

/// `keep_days` taken away (set to 0) by a reload between two slices of a backlog's purge:
/// its end said now. It waited for the next stop, and said "until the stop" then.
fn say_purge_ended_by_reload(backlog: &mut Backlog) {
    if backlog.deleted > 0 {
        tracing::info!(
            deleted = backlog.deleted,
            "old audit records deleted until a reload set [audit] keep_days = 0; the rest \
             of the backlog is kept"
        );
    }
    *backlog = Backlog::default();
}

/// `[audit] keep_days`: deletes older records in batches, paced so that a backlog (the
/// setting just turned on) does not crowd out logins, and said at its start and its end.
/// Every node of a cluster does this; the deletes are idempotent.
async fn purge_old_audit(
    app: &AppState,
    days: u32,
    before: i64,
    stop: &CancellationToken,
    backlog: &mut Backlog,
) {
    let started = std::time::Instant::now();
    loop {
        let t0 = std::time::Instant::now();
        let n = match app.store.purge_audit(before, AUDIT_PURGE_BATCH).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "deleting audit records older than {days} days");
                return;
            }
        };
        backlog.deleted += n;
        if n < u64::from(AUDIT_PURGE_BATCH) {
            break;
        }
        if !backlog.said {
            backlog.said = true;
            tracing::info!(
                keep_days = days,
                "deleting a backlog of audit records past [audit] keep_days = {days}, \
                 {AUDIT_PURGE_BATCH} at a time with pauses between, at most {} s of each \
                 minute; logins go on meanwhile, a little slower",
                AUDIT_PURGE_SLICE.as_secs()
            );
        }
        if started.elapsed() >= AUDIT_PURGE_SLICE {
            return;
        }
        let pause =
            (t0.elapsed() * AUDIT_PURGE_PAUSE_FACTOR).max(std::time::Duration::from_millis(20));
        tokio::select! {
            _ = stop.cancelled() => {
                say_purge_stopped(backlog, days);
                // Said: the stop's own branch in housekeeping says nothing more.
                *backlog = Backlog::default();
                return;
            }
            _ = tokio::time::sleep(pause) => {}
        }
    }
    if backlog.deleted > 0 {
        tracing::info!(
            deleted = backlog.deleted,
            keep_days = days,
            "old audit records deleted"
        );
    }
    *backlog = Backlog::default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        OobKind, OobStatus, OobTransaction, RememberedLogin, Sealer, SqliteStore, Store,
    };

    const T: i64 = 1_800_000_000;

    /// What `f` logs, as text lines.
    fn logged(f: impl FnOnce()) -> String {
        crate::telemetry::captured(false, f)
    }

    /// A reload that sets `keep_days = 0` between two slices of a backlog's purge: the
    /// count so far is said at the next housekeeping run, once, not left for the stop.
    #[test]
    fn a_backlog_ended_by_a_reload_is_said_at_once() {
        let mut backlog = Backlog {
            deleted: 120_000,
            said: true,
        };
        let text = logged(|| say_purge_ended_by_reload(&mut backlog));
        assert!(
            text.contains("deleted=120000")
                && text.contains("until a reload set [audit] keep_days = 0"),
            "{text}"
        );
        assert_eq!((backlog.deleted, backlog.said), (0, false));
        // Nothing more at the runs after it.
        assert_eq!(logged(|| say_purge_ended_by_reload(&mut backlog)), "");
    }

    /// What expires at T is still there after housekeeping runs at T (another node whose
    /// clock is behind still accepts it), and gone once it is a minute late.
    #[tokio::test]
    async fn housekeeping_keeps_delivery_state_a_minute_past_its_expiry() {
        let store = SqliteStore::open_in_memory(Sealer::from_key([7; 32]))
            .await
            .unwrap();
        let sms = OobTransaction {
            id: "sms".into(),
            request_key: "r-sms".into(),
            user: "alice".into(),
            nas: "vpn".into(),
            kind: OobKind::Sms,
            phone: "+15550100".into(),
            code_hash: Some("h".into()),
            status: OobStatus::Pending,
            reason: None,
            provider_ref: None,
            created_at: T - 300,
            expires_at: T,
            origin: Default::default(),
        };
        store.begin_oob(&sms).await.unwrap();
        let login = RememberedLogin {
            user: "alice".into(),
            nas: "vpn".into(),
            station: "203.0.113.5".into(),
            mode: "sms".into(),
            verified_at: T - 300,
            expires_at: T,
        };
        store.remember_login(&login).await.unwrap();

        purge_expired(&store, T).await;
        assert!(store.oob("sms").await.unwrap().is_some(), "SMS purged at T");
        // Listed as of a second earlier (a node whose clock is behind): still there.
        let remembered = store.remembered_logins("alice", T - 1).await.unwrap();
        assert_eq!(remembered.len(), 1, "remembered login purged at T");

        purge_expired(&store, T + PURGE_LATE_SECS).await;
        assert_eq!(store.oob("sms").await.unwrap(), None);
        let remembered = store.remembered_logins("alice", T - 1).await.unwrap();
        assert!(remembered.is_empty());
    }
}
