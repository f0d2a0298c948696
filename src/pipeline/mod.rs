//! One Access-Request, start to finish. `handle` reads like the request path:
//!
//! ```text
//! Status-Server            -> Accept (health check, not audited); for a client with
//!                             on_backend_failure = "no_reply", no reply while the
//!                             directory or store fails (see `health`)
//! State present            -> followup: the answer to a pending challenge (code, Enter, switch)
//! otherwise                -> login: app password, or password (LDAP) then the second factor:
//!                             inline code, TOTP/SMS prompt, or a phone call (held or prompted);
//!                             second-factor-only clients (RD Gateway): no password, a call
//! any backend fault        -> Reject (fail closed), reason in the audit; or no reply at all
//!                             for a client with on_backend_failure = "no_reply"
//! deadline passed          -> the same (a client that holds calls gets its call budget as
//!                             deadline). The reply leaves by the deadline, counted from
//!                             arrival: the decision stops short of it to leave time for
//!                             the audit record.
//! ```
//! Every verified Access-Request leaves exactly one audit record, written here at the single
//! exit, and no reply leaves before the request's writes (audit record included) are on disk.

mod accept_attributes;
pub(crate) mod aliases;
mod app_login;
pub(crate) mod audit;
pub mod audit_line;
pub(crate) mod bypass;
pub mod code_turns;
pub mod empty_answers;
pub(crate) mod fault_log;
mod followup;
mod followup_oob;
mod groups;
pub mod health;
mod inline_reply;
mod login;
mod methods;
pub(crate) mod networks;
mod oob;
mod primary;
mod rdg;
pub(crate) mod remembered;
mod second_factor;
mod skipped_code;
mod static_challenge;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::AppState;
use crate::auth::{AuthError, UserInfo};
use crate::config::{BackendFailure, ClientConfig};
use crate::radius::{Reply, ReplyCode, Request, RequestKind};
use crate::server::metrics::Metrics;
use crate::store::{durability, RememberedLogin, StoreError};

/// Where a request came from and when, and the directory it is served by.
pub struct RequestContext {
    pub client: Arc<ClientConfig>,
    pub src: SocketAddr,
    pub local: Option<SocketAddr>,
    pub received: Instant,
    /// Came over RadSec: a copy may come again on a new connection, from another port.
    pub over_tls: bool,
    /// The directory as the request found it: a reload that swaps `[ldap]` meanwhile must
    /// not have the password checked on one directory and the groups on another.
    pub primary: Arc<dyn crate::auth::PrimaryAuth>,
    /// This request's store failure is counted (once: the decision, its audit record and
    /// its commit may each meet the same outage).
    pub store_failure_counted: std::sync::atomic::AtomicBool,
    /// This request's missed deadline is counted (once: the decision can run out of time,
    /// and then its audit record and commit too).
    pub deadline_counted: std::sync::atomic::AtomicBool,
    /// No reply, though a decision was made whose writes may be on disk (its audit record
    /// failed, or its commit ran past the deadline): a retransmit must not decide again. A
    /// wrong code or password checked afresh counted towards the lockout (and the
    /// directory's bad-password count) once per resend. Also set when the password went to
    /// a server that gave no answer (`withhold_retransmits`).
    pub withheld: std::sync::atomic::AtomicBool,
    /// User binds sent for this login and not answered (`auth::BindOut`). Made when a
    /// login starts (`decide`), so that a round 2 or a Status-Server allocates nothing.
    pub binds_out: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicU32>>,
    /// The upstream RADIUS servers' check in progress (`primary = "upstream"`): what a
    /// login cut short by its deadline was waiting for.
    pub upstream: crate::auth::upstream::Progress,
    /// What the audit record adds to the verdict's reason, each once: a configured group
    /// the directory no longer has, met on the way to whatever was decided (a missing
    /// exempt group makes a normal login, which must not read as a plain one).
    pub notes: std::sync::Mutex<Vec<String>>,
    /// The request's audit log line, written once its reply is known.
    pub audit_line: audit_line::AuditLine,
}

impl RequestContext {
    /// Adds `note` to this request's audit reason (see [`RequestContext::notes`]).
    pub fn note(&self, note: String) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if !notes.contains(&note) {
            notes.push(note);
        }
    }

    /// The verdict's reason with this request's notes after it.
    pub fn reason_with_notes(&self, reason: Option<&str>) -> Option<String> {
        let notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        let all: Vec<&str> = reason
            .into_iter()
            .chain(notes.iter().map(String::as_str))
            .collect();
        (!all.is_empty()).then(|| all.join("; "))
    }

    /// Counts this request in `radmfa_backend_failures_total{backend="store"}`, once.
    pub fn store_failed(&self, app: &AppState) {
        if !self
            .store_failure_counted
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            Metrics::inc(&app.metrics.store_failures);
        }
    }

    /// Counts this request in `radmfa_deadline_exceeded_total`, once: one request whose
    /// decision and then whose commit ran out of time was counted twice (red team).
    pub fn deadline_exceeded(&self, app: &AppState) {
        if !self
            .deadline_counted
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            Metrics::inc(&app.metrics.deadline_exceeded);
        }
    }
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("client", &self.client.name)
            .field("src", &self.src)
            .field("local", &self.local)
            .field("over_tls", &self.over_tls)
            .finish_non_exhaustive()
    }
}

/// The decision for one request plus what the audit record needs to say about it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub reply: Reply,
    /// totp, hotp, sms, voice, app-password, primary-only, exempt, bypass, remembered,
    /// fail-open, none
    pub mode: &'static str,
    pub reason: Option<String>,
    pub token_serial: Option<String>,
    pub info: Option<UserInfo>,
    /// Calling-Station-Id carried over from the first round of a challenge.
    pub client_ip: Option<String>,
    /// The number an SMS or call went to, for the audit record.
    pub phone: Option<String>,
    /// When the login began (its password check, Unix seconds), for a challenge's later
    /// rounds; `None` for a login decided in this one request, which began at its arrival.
    pub started_at: Option<i64>,
    /// The `group_attributes` found before an answer's code was checked, for its Accept
    /// (`accept_attributes::before_the_code`); `None`: searched when the Accept is made.
    /// Boxed: a verdict is held across awaits in every request's future, and this is rare.
    pub groups: Option<Box<accept_attributes::GroupMatch>>,
    /// No reply at all, whatever the client's `on_backend_failure`: the request is left to
    /// the NAS's next server, and audited as `unanswered` (a held call's login that a
    /// stopping node leaves to the nodes sharing its store, see `methods::held_call`).
    pub unanswered: bool,
    /// A call that failed may have been placed all the same (`NotSent::maybe_sent`): it
    /// may still ring, so the login is not moved to another method. (A text that may
    /// still come gets a prompt, not a failure.)
    pub maybe_sent: bool,
}

impl Verdict {
    pub fn reject(reason: impl Into<String>) -> Self {
        Verdict {
            reply: Reply::reject(),
            mode: "none",
            reason: Some(reason.into()),
            token_serial: None,
            info: None,
            client_ip: None,
            phone: None,
            started_at: None,
            groups: None,
            unanswered: false,
            maybe_sent: false,
        }
    }

    /// An Access-Accept in `mode` for the user the directory found. The token, the carried
    /// station and the phone are left for whoever has them.
    pub fn accept(mode: &'static str, reason: Option<String>, info: UserInfo) -> Self {
        Verdict {
            reply: Reply::accept(),
            mode,
            reason,
            token_serial: None,
            info: Some(info),
            client_ip: None,
            phone: None,
            started_at: None,
            groups: None,
            unanswered: false,
            maybe_sent: false,
        }
    }

    pub fn with_reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    pub fn with_info(mut self, info: Option<UserInfo>) -> Self {
        self.info = info;
        self
    }

    /// Turns this Accept into a Reject for `reason`, at its last steps: the user, the
    /// mode and the token of the factor that passed stay in its audit record.
    pub fn refuse(&mut self, reason: impl Into<String>) {
        self.reply = Reply::reject();
        self.reason = Some(reason.into());
    }
}

/// A backend failed. The policy here is fail closed: the login is rejected, never accepted.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error("{}", auth_fault(.0))]
    Auth(#[from] AuthError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// "directory: …" for LDAP; an upstream server's failure already names itself.
fn auth_fault(e: &AuthError) -> String {
    match e {
        AuthError::Upstream(_) => e.to_string(),
        _ => format!("directory: {e}"),
    }
}

/// The reply to send; `None` when a backend failed and the client wants no reply then.
pub async fn handle(app: &AppState, ctx: &RequestContext, req: &Request) -> Option<Reply> {
    if req.kind == RequestKind::StatusServer {
        // RFC 5997 §3: answer Status-Server sent to the authentication port with
        // Access-Accept. A client that wants silence when the backends fail gets silence
        // here too while they do, so its NAS or proxy keeps using another node.
        Metrics::inc(&app.metrics.status_server);
        if ctx.client.on_backend_failure == BackendFailure::NoReply
            && !(health::answering(app).await && health::upstream_answering(app, ctx))
        {
            return None;
        }
        return Some(Reply::accept());
    }
    // A client that holds the request during a phone call gets its call budget.
    let deadline = ctx
        .client
        .factors
        .request_deadline(app.config().server.request_deadline);
    // The deadline is when the reply leaves, counted from the packet's arrival: the NAS's
    // own timeout started then. The decision gets the deadline less a reserve for its audit
    // record and commit, so that a store that is down (each call waiting
    // `store.connect_timeout_ms`) cannot push the Reject past the NAS's timeout.
    let reply_by = tokio::time::Instant::from_std(ctx.received + deadline);
    let decide_by = reply_by - audit_reserve(deadline);
    // The request's store writes are answered as they run; the reply waits once, here, for
    // all of them to be on disk (see store::durability). If one is not: fail closed.
    let settled = tokio::time::timeout_at(
        reply_by,
        durability::deferred(answer(app, ctx, req, decide_by, deadline)),
    )
    .await;
    let reply = match settled {
        Ok(((reply, remember), Ok(()))) => {
            let accepted = reply.as_ref().is_some_and(|r| r.code == ReplyCode::Accept);
            if let Some(login) = remember.filter(|_| accepted) {
                remembered::keep(app, &login, reply_by).await;
            }
            reply
        }
        Ok(((decided, _), Err(e))) => {
            // Its audit record went to the store with the writes that failed, and is lost
            // with them, whatever it said: a Reject's as much as an Accept's. (On SQLite
            // it is the request's last write, in the last batch; were that batch committed
            // after an earlier one failed, it is counted lost though it is on disk.)
            if ctx.audit_line.was_handed_in() {
                audit::count_lost(app);
                fault_log::AUDIT.error(
                    &format!(
                        "audit record could not be written: the request's store writes were \
                         not committed; {}",
                        refusal(ctx)
                    ),
                    &e,
                );
            } else {
                fault_log::COMMIT.error(
                    &format!(
                        "the request's store writes were not committed; {}",
                        refusal(ctx)
                    ),
                    &e,
                );
            }
            ctx.store_failed(app);
            app.backend_health
                .failed("a login's store writes were not committed");
            // The NAS gets the failure reply instead of what was decided. Unless they are
            // the same (a Reject to a rejecting client), the audit line and a record after
            // the decision's say what the NAS got: a decided Challenge refused, or a
            // no_reply client's Reject never sent.
            let sent = on_failure(ctx);
            if let Some(r) = decided.filter(|r| sent.as_ref().map(|s| s.code) != Some(r.code)) {
                overturned(
                    app,
                    ctx,
                    req,
                    &format!(
                        "{} withheld: its writes were not committed",
                        r.code.as_str()
                    ),
                );
            }
            sent
        }
        // Whether its writes and its record reached the disk is unknown: fail closed. A
        // record already handed to the store's writer is still written if the store
        // recovers (both stores' writers finish what they were given).
        Err(_) => {
            fault_log::COMMIT.error(
                &format!(
                    "the request's audit record and writes were not known to be committed \
                     within the {} ms deadline (they may be, later); {}",
                    deadline.as_millis(),
                    refusal(ctx)
                ),
                &"deadline",
            );
            ctx.store_failed(app);
            app.backend_health
                .failed("a login's writes were not known to be committed within its deadline");
            ctx.deadline_exceeded(app);
            ctx.withheld
                .store(true, std::sync::atomic::Ordering::Relaxed);
            // What was decided is not known to be recorded (its record may still land, or
            // its store give up on it): this is what the NAS got, recorded always. When both
            // land and say the same, the request has two rows; skipping this one whenever
            // the decided record said the same lost requests' only row when the store gave
            // up on it, silently (review of a fix for the two rows), and telling which
            // landed needs the record's own identity, which the audit has not.
            overturned(
                app,
                ctx,
                req,
                "its writes were not committed within the deadline",
            );
            on_failure(ctx)
        }
    };
    // Counted here, as sent: a verdict turned into a Reject by a failing store counts as one.
    match &reply {
        Some(r) => app.metrics.count_reply(&ctx.client.name, r.code),
        None => Metrics::inc(&app.metrics.unanswered),
    }
    ctx.audit_line.write();
    reply
}

/// The decision's record (should the store recover and write it) says "accept", or may;
/// the request's audit line says what the NAS got instead (`audit_line`), for whoever reads
/// the log (or a SIEM fed from it) instead of the table. And a record saying so goes to the
/// store after it, in the background (the store is failing; the reply does not wait):
/// the "accept" record already handed to the store's writer may still be written when it
/// recovers (a PostgreSQL INSERT waiting on a lock commits once the lock goes), and the
/// table must not be left saying this login got in. SQLite's writer keeps their order; on
/// PostgreSQL a record stuck behind a lock on an abandoned connection may get the higher
/// id, but not the later time. If that one never lands, this is the only one, and true.
fn overturned(app: &AppState, ctx: &RequestContext, req: &Request, reason: &str) {
    let config = app.config();
    let user = config.user_names.key(&req.user_name().unwrap_or_default());
    let result = if on_failure(ctx).is_some() {
        "reject"
    } else {
        "unanswered"
    };
    let from = audit::Source::of(ctx, req);
    let rec = crate::store::AuditRecord {
        time: app.clock.now(),
        user,
        mode: "none".into(),
        result: result.into(),
        reason: Some(format!("overturned: {reason}")),
        server_name: config.server.name.clone(),
        server_ip: ctx.local.map(|a| a.ip().to_string()),
        client_ip: req.calling_station_id().or_else(|| from.nas_ip.clone()),
        nas_ip: from.nas_ip,
        nas_identifier: from.nas_identifier,
        nas_name: Some(ctx.client.name.clone()),
        latency_ms: ctx.received.elapsed().as_millis() as i64,
        ..Default::default()
    };
    ctx.audit_line.overturned(rec.clone(), reason);
    let store = app.store.clone();
    let lost = app.metrics.audit_records_lost.clone();
    // In the request's span (user, client, request id): the line must say whose it was.
    let span = tracing::Span::current();
    app.background.spawn(tracing::Instrument::instrument(
        async move {
            if let Err(e) = store.append_audit(&rec).await {
                Metrics::inc(&lost);
                fault_log::AUDIT.error("the overturned login's record could not be written", &e);
            }
        },
        span,
    ));
}

/// What [`on_failure`] does, for a log line.
fn refusal(ctx: &RequestContext) -> &'static str {
    match ctx.client.on_backend_failure {
        BackendFailure::Reject => "rejecting",
        BackendFailure::NoReply => "not answering (on_backend_failure = \"no_reply\")",
    }
}

/// Whether the login's password went to a server that gave no answer: a user's LDAP bind,
/// or an upstream request, that timed out or lost its answer.
fn password_unanswered(ctx: &RequestContext, fault: &Fault) -> bool {
    match fault {
        Fault::Auth(e) => {
            e.password_unanswered() || ctx.upstream.password_unanswered() || binds_out(ctx)
        }
        Fault::Store(_) => false,
    }
}

/// Whether a user bind of this login went out and got no answer (its deadline cut it off).
fn binds_out(ctx: &RequestContext) -> bool {
    ctx.binds_out
        .get()
        .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed) > 0)
}

/// A request left unanswered after its password went to a server that gave no answer: for
/// a `no_reply` client, its retransmits get the same silence for the duplicate window
/// instead of a fresh try. The server may be slow rather than down (FreeRADIUS's
/// reject_delay, a loaded NPS or DC), and each try may count towards the account's
/// lockout: a reviewer saw a NAS's three tries reach two slow upstream servers as six
/// authentications. The NAS asks its next server; the user's next login is a new request.
fn withhold_retransmits(ctx: &RequestContext) {
    if on_failure(ctx).is_none() {
        ctx.withheld
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The reply when a backend failed: a Reject, or none for a client whose NAS should ask
/// its next server instead (`on_backend_failure = "no_reply"`).
fn on_failure(ctx: &RequestContext) -> Option<Reply> {
    match ctx.client.on_backend_failure {
        BackendFailure::Reject => Some(Reply::reject()),
        BackendFailure::NoReply => None,
    }
}

/// Kept back from a request's deadline for its audit record and commit: an eighth, at most
/// half a second (a healthy store needs milliseconds; a failing one is cut off here).
pub(crate) fn audit_reserve(deadline: Duration) -> Duration {
    (deadline / 8).min(Duration::from_millis(500))
}

async fn answer(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    decide_by: tokio::time::Instant,
    deadline: Duration,
) -> (Option<Reply>, Option<RememberedLogin>) {
    // Everything below uses the key (a listed domain off, case folded); the directory sees
    // the same name either way.
    let user = app
        .config()
        .user_names
        .key(&req.user_name().unwrap_or_default());
    let span = tracing::Span::current();
    span.record("user", user.as_str());
    let failed = |reason: String| {
        let unanswered = on_failure(ctx).is_none();
        let reason = if unanswered {
            format!("{reason}; not answered (on_backend_failure = \"no_reply\")")
        } else {
            reason
        };
        (Verdict::reject(reason), unanswered)
    };
    let deciding = decide(app, ctx, req, &user);
    let (verdict, unanswered) = match tokio::time::timeout_at(decide_by, deciding).await {
        Ok(Ok(v)) => {
            let left = v.unanswered;
            (v, left)
        }
        // A stored secret of this login's user that does not open (a BROKEN token: a
        // damaged row) is that user's problem, not a store outage: a Reject, whatever
        // on_backend_failure says, and the node stays alive to Status-Server. Handled as a
        // failing store, one user's retries silenced a no_reply client's NAS and marked the
        // node down for every NAS that checks it (policy red team). A wrong key file for
        // the whole store never gets here: the start refuses it.
        Ok(Err(Fault::Store(crate::store::StoreError::Decrypt(why)))) => {
            // Said in the log too (once in a while per token): with the audit's lines at
            // WARN, nothing else an operator watches showed it (review).
            crate::warn_once!(&format!("broken-seed:{why}"), user = %user,
                "a login was refused: a stored secret of this user does not open ({why}); \
                 `radmfa token list` marks it BROKEN and says how to repair it");
            (
                Verdict::reject(Fault::Store(crate::store::StoreError::Decrypt(why)).to_string()),
                false,
            )
        }
        Ok(Err(fault)) => {
            // An upstream RADIUS server has its own health (`[upstream]` dead time);
            // the probe here checks the directory and the store.
            match &fault {
                Fault::Auth(AuthError::Upstream(_)) => {}
                Fault::Auth(_) => app.backend_health.failed("a login met a directory failure"),
                Fault::Store(_) => app.backend_health.failed("a login met a store failure"),
            }
            if password_unanswered(ctx, &fault) {
                withhold_retransmits(ctx);
            }
            match fault {
                Fault::Auth(AuthError::Upstream(_)) => Metrics::inc(&app.metrics.upstream_failures),
                Fault::Auth(_) => Metrics::inc(&app.metrics.directory_failures),
                Fault::Store(_) => ctx.store_failed(app),
            }
            failed(fault.to_string())
        }
        Err(_) => {
            ctx.deadline_exceeded(app);
            let exceeded = format!("request deadline of {} ms exceeded", deadline.as_millis());
            if ctx.upstream.password_unanswered() || binds_out(ctx) {
                withhold_retransmits(ctx);
            }
            match ctx.upstream.waiting() {
                // As a login no upstream server answered: counted with them, and no
                // mark on the directory and the store (whose probe would find them
                // answering and say so): the upstream's own health (`[upstream]` dead
                // time, Status-Server of no_reply clients) stands for it. Unless the
                // servers had no fair wait, the time having gone elsewhere.
                Some((servers, fair)) => {
                    Metrics::inc(&app.metrics.upstream_failures);
                    if !fair {
                        app.backend_health.failed(
                            "a login ran past its request deadline (a slow directory or \
                                 store before its upstream servers were asked)",
                        );
                    }
                    failed(format!("{exceeded} waiting for {servers}"))
                }
                None => {
                    // Either cause is possible, and the time spent queued is not
                    // told apart: the log must not send the on-call admin to the
                    // database while the node is simply flooded.
                    // What moves with each cause: a directory server that stalls
                    // counts no backend failure while its timeout is still running
                    // (nor does a slow failover), only its own gauge.
                    app.backend_health.failed(
                        "a login ran past its request deadline (a directory server that \
                             stalls, or a failover that took too long: radmfa_ldap_answering \
                             is 0 for the server and the log names it; a slow store: the log's \
                             store lines; more requests than this node can answer in time: \
                             radmfa_requests_in_flight near server.max_in_flight, and \
                             radmfa_requests_dropped_total{reason=\"overloaded\"} rising)",
                    );
                    failed(exceeded)
                }
            }
        }
    };
    let recorded = audit::record(app, ctx, req, &user, &verdict, !unanswered).await;
    if unanswered {
        return (None, None);
    }
    if !recorded {
        // The store is failing: a Status-Server must not call this node alive (its probe
        // clears this only once the audit table takes rows again).
        app.backend_health
            .failed("a login's audit record could not be written");
        let code = verdict.reply.code;
        // A login that cannot be recorded is not granted, nor taken to its next round: fail
        // closed. A Reject stays a Reject, except for a no_reply client, whose NAS asks a
        // node that can record it (every answered request has its record).
        if code != ReplyCode::Reject || on_failure(ctx).is_none() {
            overturned(
                app,
                ctx,
                req,
                &format!(
                    "{} withheld: its audit record could not be written",
                    code.as_str()
                ),
            );
            ctx.withheld
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return (on_failure(ctx), None);
        }
    }
    let remember = remembered::to_remember(app, ctx, req, &user, &verdict);
    (Some(verdict.reply), remember)
}

/// Unicode format characters (general category Cf) that are part of no one's spelling:
/// soft hyphen, zero-width space, direction marks and embeddings, word joiners, BOM,
/// interlinear annotation, tags, the Arabic end of ayah and the Syriac abbreviation mark;
/// and the combining grapheme joiner and variation selectors that RFC 4518 matching drops
/// too. Listed by hand: std has no category lookup. Every Cf mark on RFC 4518's
/// map-to-nothing list is here, but for those left alone on purpose: ZWNJ and ZWJ (U+200C, U+200D) and the Mongolian vowel separator,
/// which Persian, Indic and Mongolian names are spelt with (the alias check stands guard
/// there: a name must be one of its entry's own).
pub(crate) fn invisible_format(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{6DD}' | '\u{70F}' | '\u{1806}' | '\u{180B}'..='\u{180D}' | '\u{180F}'
        | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFC}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Nobody's name holds a control character or an invisible formatting one (a soft hyphen,
/// a zero-width space, a direction mark). A directory may ignore them when it compares
/// (`alice\u{AD}` finds alice's entry) while radmfa's store keys on them, which would give
/// alice's password a second name with no tokens, lockout or block. Checked on the
/// User-Name as the NAS sent it, not on its key: the key folds whitespace, so `alice\r\n`
/// would pass as `alice` and `al\x0bice` be searched as `al ice`. The reason quotes the
/// name escaped, as that is the only place the name as sent is kept (the log and the audit
/// record name the key).
fn unprintable_name(req: &Request) -> Option<Verdict> {
    let sent = req.user_name()?;
    sent.chars()
        .any(|c| c.is_control() || invisible_format(c))
        .then(|| {
            Verdict::reject(format!(
                "a User-Name with control or invisible formatting characters: {:?}",
                sent
            ))
        })
}

async fn decide(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
) -> Result<Verdict, Fault> {
    if let Some(refused) = unprintable_name(req) {
        return Ok(refused);
    }
    if user.is_empty() {
        return Ok(Verdict::reject("no User-Name"));
    }
    let mut v = match req.state() {
        Some(state) => followup::answer(app, ctx, req, user, &state).await?,
        // One quantile for every timing pad of the login (`timing_pad::one_draw`), and the
        // count of its user binds out (`auth::BindOut`: a login's binds are all here).
        // Boxed: the scope holds the login's future, which inline doubled the request's.
        None => {
            Box::pin(crate::auth::BINDS_OUT.scope(
                ctx.binds_out.get_or_init(Default::default).clone(),
                crate::timing_pad::one_draw(login::start(app, ctx, req, user)),
            ))
            .await?
        }
    };
    if v.reply.code == ReplyCode::Accept {
        // Boxed: the attribute searches and the bypass's write would otherwise sit in every
        // request's future (a Reject or a Challenge needs neither).
        return Box::pin(finish_accept(app, ctx, req, user, v)).await;
    }
    if v.reply.code == ReplyCode::Challenge && !crate::radius::state_fits(req, &v.reply) {
        let info = v.info.take();
        v = Verdict::reject(
            "the Access-Challenge's State does not fit in one packet beside the request's \
             Proxy-State; refused rather than sent without it",
        )
        .with_info(info);
    }
    Ok(v)
}

/// An Accept's last steps: the client's and the groups' attributes, whether they fit, and
/// the bypass it rests on used only now that it stands (see `bypass::take`).
async fn finish_accept(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
    mut v: Verdict,
) -> Result<Verdict, Fault> {
    accept_attributes::add(ctx, user, &mut v).await?;
    if v.reply.code == ReplyCode::Accept && !crate::radius::attributes_fit(req, &v.reply) {
        // Sent without some of them, the Accept could leave the user on the NAS's broader
        // default policy: refuse rather than grant more than was configured.
        // Proxy-State named only where the request had some: without, it is the
        // attributes alone (a user in many group_attributes groups).
        let beside = if req.proxy_states().is_empty() {
            ""
        } else {
            " beside the request's Proxy-State"
        };
        v.refuse(format!(
            "the Access-Accept's attributes do not fit in one packet{beside}; refused rather \
             than sent without some of them"
        ));
    }
    if v.reply.code == ReplyCode::Accept && v.mode == bypass::MODE {
        v = bypass::claim(app, user, v).await?;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    /// The size of the future `f` returns, from its type alone (nothing is run).
    fn future_size<'a, F: Future>(
        _: impl FnOnce(&'a AppState, &'a RequestContext, &'a Request) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request's future is allocated and moved into its task, so its size is paid per
    /// request. Rare paths (connecting to LDAP, SMS and calls) are boxed to keep it small,
    /// and `durability::deferred` must not hold the request's future twice. In a debug build
    /// this was 2,720 bytes, and 4,016 on 2026-12-03 (a prompt's switch or resend is boxed
    /// since it went past the bound), and 4,136 on 2026-12-05 (the directory entry's
    /// identity in `UserInfo`, held at several awaits, and the tokens' validity in the
    /// user's view), and 4,360 later that day (the group_attributes found before an answer's
    /// code is checked, boxed, held in the verdict), and 4,424 on 2026-12-07 (when a send
    /// limit last refused, kept with a prompt's context, which a code round holds); the old
    /// `deferred` alone made it 7,952 (11,016 for the whole task in a release build before
    /// both fixes).
    #[test]
    fn a_requests_future_stays_small() {
        let size = future_size(handle);
        assert!(size <= 4448, "pipeline::handle's future is {size} bytes");
    }
}
