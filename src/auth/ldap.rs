//! Password check against LDAP / Active Directory.
//!
//! # How a check runs
//!
//! 1. An empty password is refused at once, before any network traffic: an empty simple bind
//!    is an *anonymous* bind, which directories accept. Refusing before the search means an
//!    empty password says nothing about whether the user exists.
//! 2. The user is searched with a **service-account connection** taken from a small pool
//!    (`pool_size` connections kept open, bound as `bind_dn`; dead or long-idle connections
//!    are dropped and re-created on demand, so the pool recovers by itself after a directory
//!    restart). The user name is escaped with [`ldap3::ldap_escape`] before it replaces every
//!    `{user}` in `user_filter`, so `*` or `a)(uid=*` match nothing. No entry →
//!    [`Denial::UnknownUser`]; more than one → [`Denial::AmbiguousUser`].
//! 3. The password is checked by a simple bind as the found DN on a **bind-only connection**
//!    from a second pool (`ldap_pool.rs`). A bind changes a connection's identity, so
//!    search connections are never used for it; bind-only connections carry nothing but user
//!    binds, so whoever bound last does not matter. A connection goes back to the pool only
//!    after the bind got an LDAP result (any result code); after a timeout or an I/O error,
//!    or when the check is cancelled, it is closed. A semaphore bounds concurrent user binds
//!    (`user_bind_concurrency`), and at most that many bind connections are kept idle.
//!
//! # Bind results
//!
//! * rc 0 → [`PrimaryOutcome::Accepted`] with the attributes read during the search.
//! * rc 49 (invalidCredentials) → [`Denial::BadPassword`], unless the diagnostic text carries an
//!   Active Directory sub-code ([`super::ad_codes`]): `52e` is [`Denial::BadPassword`], `525`
//!   (account vanished between search and bind) is [`Denial::UnknownUser`], every other code is
//!   [`Denial::Directory`] (disabled, locked out, expired, must change password, ...).
//! * rc 32 (noSuchObject: the DN is gone) → [`Denial::UnknownUser`].
//! * rc 19 (constraintViolation: 389-ds's policy lockout), 48 (inappropriateAuthentication:
//!   an entry without a password), 50 (insufficientAccessRights), and 53 (unwillingToPerform)
//!   whose text speaks of the account (inactivated, disabled, locked, expired in 389-ds, FreeIPA,
//!   eDirectory) →
//!   [`Denial::AccountRefused`], a refusal like a wrong password, not a fault.
//! * Any other result code is an [`AuthError::Ldap`]: the policy stage rejects, and the
//!   operator sees the directory's message.
//! * A password that is not valid UTF-8 cannot be sent through `ldap3`'s simple bind and is
//!   refused as [`Denial::BadPassword`] without a bind.
//!
//! # Timing
//!
//! An unknown (or ambiguous) user costs a search but no bind. To keep "unknown user" and
//! "wrong password" from being told apart by response time, the unknown-user path sleeps for
//! as long as one of the last refused checks of known users took, search to answer, less
//! its own search (`timing_pad`: drawn from the durations themselves, capped at
//! `connect_timeout + op_timeout`); the pipeline then tops the whole request up the same way
//! (`pipeline::login`). We chose this over a real bind to a dummy DN: it costs
//! the directory nothing and writes no failed-logon events there.
//!
//! # Timeouts and failover
//!
//! Every connect (TCP, TLS handshake, StartTLS) is bounded by `connect_timeout`, every
//! operation (service bind, search, user bind) by `op_timeout`, and every wait for a pool or
//! bind slot by twice that. URLs are tried in order, starting with the preferred one:
//! the first listed, or while it is held off the one that took its place (the first is
//! preferred again once it answers, `back_to_the_listed_order`). A search that times out
//! on a pooled connection idle for [`IDLE_SUSPECT`] or more
//! is first asked again on a new connection (a firewall may have forgotten the idle one;
//! every connection has TCP keepalive, `ldap_conn`). A search that times out is asked once
//! of the next URL (it changes nothing), and
//! so are the searches and service binds still waiting on that server: its timeout wakes
//! them (`url_failed`), rather than each waiting out its own. A URL
//! that just failed is held off for [`FAILED_URL_HOLDOFF`]: it is tried only after
//! every other URL has failed too, and it is not first again when the hold-off ends (the
//! next URL took its place): a background probe asks the URLs listed before the preferred
//! one every [`FAILED_URL_HOLDOFF`] (less often for one that keeps failing again) for a
//! service bind and a read of `base_dn`, and the first that answers is preferred again
//! (`ldap_return`). A search that fails with an I/O error on a *reused*
//! pooled connection (server restarted, idle connection cut) is retried once on a fresh
//! connection, and the idle bind connections to that server are closed with it. A user's
//! bind is asked again only when ldap3 says it was never handed to the connection (its
//! driver had ended: "op send error"); once handed over, a connection that ends before the
//! answer (closed, reset) may have carried it to the server, so the answer is lost
//! ([`AuthError::BindAnswerLost`]) and the bind not asked again. A search or bind the server answers with
//! busy (51) or unavailable (52), a search answered unwillingToPerform (53) and a bind's 53
//! about the server rather than the account did not run there either: that server is put
//! behind the others and the operation asked once of the next. All URLs unreachable →
//! [`AuthError::Unavailable`] (or [`AuthError::Tls`] when every failure was a TLS failure);
//! an operation that outlives `op_timeout` → [`AuthError::Timeout`]. A timed-out user bind
//! ([`AuthError::BindTimeout`]) is not retried at all (not on another server, not on a fresh
//! connection, nor for a `no_reply` client's retransmit of the request), since the first
//! attempt may already have counted against the account's lockout. A server that accepts
//! TCP but does not answer the service bind in time counts as down (next URL); a service bind
//! the directory *refuses* (rc 48/49/50, and a 53 whose text is about the account) is
//! [`AuthError::ServiceBind`] at once, since every server of the directory would refuse it. An empty `bind_dn` means anonymous
//! searches.
//!
//! # TLS
//!
//! `ldaps://` URLs and `starttls = true` (for `ldap://` URLs) go through rustls (ring). With
//! `ca_file` set, only the CA certificates in that PEM file are trusted; without it, the
//! system store (loaded by `ldap_tls`, each unreadable certificate left out). `tls_insecure_skip_verify` disables certificate
//! checks and exists for tests only.
//!
//! # Entry cache
//!
//! With `entry_cache_seconds`, a login whose entry was found for an accepted password
//! lately skips step 2 and binds as that DN; see `ldap_cache.rs` for what that can and
//! cannot notice.
//!
//! Passwords (`Secret`) never reach a log line; user names and DNs do.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ldap3::{LdapConnSettings, LdapError, LdapResult, Scope, SearchEntry, SearchOptions};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::ldap_cache::EntryCache;
use super::ldap_conn::LdapConn;
use super::ldap_pool::{ConnPool, Pooled};
use super::ldap_tls::tls_config;
use super::{ad_codes, AuthError, Denial, PrimaryAuth, PrimaryOutcome, UserInfo};
use crate::secret::Secret;
use crate::timing_pad::Pad;

/// `groupOfNames` and Active Directory groups (direct members).
pub const DEFAULT_GROUP_FILTER: &str = "(member={dn})";

/// How long a URL that just failed is put behind the others.
pub const FAILED_URL_HOLDOFF: Duration = Duration::from_secs(10);

/// While a URL keeps failing, its failures are warned of this often (see
/// [`LdapAuth::warn_of`]); the rest are logged at debug.
const REWARN_AFTER: Duration = Duration::from_secs(300);

/// A URL that answered again since its last warning is warned of again after this long: a
/// new outage is said, but a server that fails every other operation (answers binds, not
/// searches) logs two lines a minute, not two a login.
const REWARN_AFTER_RECOVERY: Duration = Duration::from_secs(60);

/// Per URL: when its hold-off after a failure ends, and its outage's log bookkeeping.
#[derive(Debug, Clone, Default)]
struct UrlHealth {
    held_until: Option<Instant>,
    /// When a failure was last warned of.
    warned_at: Option<Instant>,
    /// Failed since it last answered.
    down: bool,
    /// "Answers again" was logged since the last warning.
    recovery_said: bool,
}

/// A URL's failure: a warning when [`LdapAuth::warn_of`] says one is due, else debug.
macro_rules! url_warn {
    ($auth:expr, $idx:expr, $($arg:tt)+) => {
        if $auth.warn_of($idx) {
            tracing::warn!($($arg)+)
        } else {
            tracing::debug!($($arg)+)
        }
    };
}

/// Pooled (search and bind) connections idle longer than this are closed instead of reused
/// (`[ldap] idle_close_secs`'s default), so a connection silently dropped by a firewall or
/// the server's idle timeout is not trusted.
pub const POOL_MAX_IDLE: Duration = Duration::from_secs(120);

/// A search that gets no answer on a pooled connection idle at least this long is asked
/// again on a new connection before its server counts as hung: a firewall may have dropped
/// the idle connection without a word. Busy connections are idle for milliseconds.
pub const IDLE_SUSPECT: Duration = Duration::from_secs(5);

/// Names of the LDAP attributes copied into [`UserInfo`]. An empty name means "don't read".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeNames {
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub mail: String,
    pub mobile: String,
    pub telephone: String,
}

impl Default for AttributeNames {
    fn default() -> Self {
        AttributeNames {
            display_name: "displayName".into(),
            given_name: "givenName".into(),
            surname: "sn".into(),
            mail: "mail".into(),
            mobile: "mobile".into(),
            telephone: "telephoneNumber".into(),
        }
    }
}

/// Runtime settings of the LDAP backend (the config module maps `[ldap]` onto this).
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// `ldap://` or `ldaps://` URLs, tried in order with failover.
    pub urls: Vec<String>,
    /// Upgrade `ldap://` connections with StartTLS.
    pub starttls: bool,
    /// PEM file with the CA certificate(s) to trust; `None` = system store.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Tests only.
    pub tls_insecure_skip_verify: bool,
    /// Service account used for searches; empty = anonymous search.
    pub bind_dn: String,
    pub bind_password: Secret,
    pub base_dn: String,
    /// Search filter; every `{user}` is replaced by the escaped user name, e.g.
    /// `(uid={user})` or `(&(objectClass=user)(sAMAccountName={user}))`.
    pub user_filter: String,
    /// ANDed to `user_filter` on every search, so a disabled account is not found — which
    /// matters where no password bind happens (second-factor-only clients such as RD
    /// Gateway). Active Directory: `(!(userAccountControl:1.2.840.113556.1.4.803:=2))`.
    /// May hold the time placeholders of [`super::ldap_now`], filled in per search.
    pub enabled_filter: Option<String>,
    /// Membership test for the clients' `allow_groups` / `exempt_groups`: searched with the
    /// group's DN as base (scope base); `{dn}` is the user's DN and `{user}` the user name,
    /// both escaped. The group's entry coming back means "member".
    pub group_filter: String,
    pub attributes: AttributeNames,
    pub connect_timeout: Duration,
    pub op_timeout: Duration,
    /// Service-account search connections kept open (at least 1).
    pub pool_size: usize,
    /// User binds in flight at once (at least 1).
    pub user_bind_concurrency: usize,
    /// Pooled connections idle longer than this are closed instead of reused: below the
    /// idle timeout of every firewall on the way and of the server itself.
    pub idle_close: Duration,
    /// How long a user's entry found for an accepted password is reused for their next
    /// logins (`ldap_cache.rs`); zero (the default) searches on every login.
    pub entry_cache_ttl: Duration,
    /// At most this many entries are remembered.
    pub entry_cache_size: usize,
}

impl Default for LdapSettings {
    fn default() -> Self {
        LdapSettings {
            urls: Vec::new(),
            starttls: false,
            ca_file: None,
            tls_insecure_skip_verify: false,
            bind_dn: String::new(),
            bind_password: Secret::default(),
            base_dn: String::new(),
            user_filter: "(uid={user})".into(),
            enabled_filter: None,
            group_filter: DEFAULT_GROUP_FILTER.into(),
            attributes: AttributeNames::default(),
            connect_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(5),
            pool_size: 16,
            user_bind_concurrency: 32,
            idle_close: POOL_MAX_IDLE,
            entry_cache_ttl: Duration::ZERO,
            entry_cache_size: 10_000,
        }
    }
}

/// The LDAP / Active Directory primary-factor backend. Cheap to share behind an `Arc`.
pub struct LdapAuth {
    pub(super) settings: LdapSettings,
    conn_settings: LdapConnSettings,
    /// Attribute list sent with the search.
    search_attrs: Vec<String>,
    /// `search_attrs` and the entry's identity ([`ENTRY_ID_ATTRS`]), for
    /// [`PrimaryAuth::lookup_with_identity`].
    identity_attrs: Vec<String>,
    /// The attribute `user_filter` matches the name with first, read into `UserInfo::name`.
    name_attr: Option<String>,
    /// Every attribute the filter compares the name with (`naming_attributes`).
    pub(super) name_attrs: Vec<String>,
    /// Idle, service-bound search connections.
    searches: ConnPool<LdapConn>,
    /// One permit per search connection that may exist at once.
    pool_slots: Semaphore,
    /// Idle bind-only connections, for user password checks.
    binds: ConnPool<LdapConn>,
    /// One permit per user bind in flight.
    user_bind_slots: Semaphore,
    bind_count: AtomicU64,
    /// Index of the URL that last worked.
    preferred: AtomicUsize,
    /// Per URL: its hold-off after a failure, and whether its outage was logged.
    url_health: Mutex<Vec<UrlHealth>>,
    /// Per URL: woken when it is marked failed, so that searches and service binds still
    /// waiting on it (a server paused or cut off mid-traffic) move to the next URL at once
    /// instead of each waiting out its own timeout there.
    url_failed: Vec<tokio::sync::Notify>,
    /// Asks the URLs listed before the preferred one whether they answer again.
    return_probe: std::sync::Arc<super::ldap_return::ReturnProbe>,
    /// Moving average of user-bind latency (bind, plus connect when one had to be opened).
    bind_latency: Pad,
    /// The same for refused binds only: what an unknown user's answer must look like. A
    /// directory may take longer to refuse than to accept (AD checks a bad password again
    /// at the PDC emulator), so a mix of both would make unknown users the quicker ones.
    refused_bind_latency: Pad,
    /// Whole refused checks of known users, search to answer: what an unknown user's whole
    /// check is padded to. The bind's own time left out the work around it (the bind
    /// slot, ldap3's tasks handing the answer back), so padded refusals came out ~50 µs
    /// quicker than real ones on loopback once the pad stopped overshooting.
    refused_check_latency: Pad,
    /// Entries of users whose password was accepted lately; None unless configured.
    cache: Option<EntryCache>,
    /// Holds service binds off after the directory refused one.
    pub(super) service_hold: super::ldap_service_hold::ServiceHold,
}

enum SearchOutcome {
    Found(Box<UserInfo>),
    NotFound,
    Ambiguous,
}

/// Why one connection attempt failed.
pub(super) enum ConnectFailure {
    Timeout,
    Tls(String),
    Other(String),
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailure::Timeout => f.write_str("connect timed out"),
            ConnectFailure::Tls(e) => write!(f, "TLS: {e}"),
            ConnectFailure::Other(e) => f.write_str(e),
        }
    }
}

impl fmt::Debug for LdapAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapAuth")
            .field("urls", &self.settings.urls)
            .field("base_dn", &self.settings.base_dn)
            .field("user_filter", &self.settings.user_filter)
            .finish_non_exhaustive()
    }
}

fn config_error(msg: impl fmt::Display) -> AuthError {
    AuthError::Ldap(format!("invalid LDAP settings: {msg}"))
}

impl LdapAuth {
    /// Check the settings and prepare TLS. Opens no connection.
    pub fn new(mut settings: LdapSettings) -> Result<Self, AuthError> {
        if settings.urls.is_empty() {
            return Err(config_error("no URL"));
        }
        for url in &settings.urls {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("ldap://") || lower.starts_with("ldaps://")) {
                return Err(config_error(format_args!(
                    "URL {url:?} must start with ldap:// or ldaps://"
                )));
            }
        }
        if !settings.user_filter.contains("{user}") {
            return Err(config_error("user_filter has no {user} placeholder"));
        }
        if ldap3::parse_filter(settings.user_filter.replace("{user}", "x")).is_err() {
            return Err(config_error(format_args!(
                "user_filter {:?} is not a valid LDAP filter",
                settings.user_filter
            )));
        }
        if let Some(f) = &settings.enabled_filter {
            if let Some(word) = super::ldap_now::unknown_placeholder(f) {
                return Err(config_error(format_args!(
                    "enabled_filter {f:?} has {word}, which is not {{now_filetime}} or \
                     {{now_generalized}}"
                )));
            }
            if ldap3::parse_filter(super::ldap_now::fill(f, std::time::SystemTime::now())).is_err()
            {
                return Err(config_error(format_args!(
                    "enabled_filter {f:?} is not a valid LDAP filter"
                )));
            }
        }
        if settings.connect_timeout.is_zero() || settings.op_timeout.is_zero() {
            return Err(config_error("timeouts must be greater than zero"));
        }
        settings.pool_size = settings.pool_size.max(1);
        settings.user_bind_concurrency = settings.user_bind_concurrency.max(1);

        let mut conn_settings = LdapConnSettings::new()
            .set_conn_timeout(settings.connect_timeout)
            .set_starttls(settings.starttls)
            .set_no_tls_verify(settings.tls_insecure_skip_verify);
        if let Some(config) = tls_config(&settings)? {
            conn_settings = conn_settings.set_config(config);
        }

        let a = &settings.attributes;
        let mut search_attrs: Vec<String> = [
            &a.display_name,
            &a.given_name,
            &a.surname,
            &a.mail,
            &a.mobile,
            &a.telephone,
        ]
        .into_iter()
        .filter(|n| !n.is_empty())
        .cloned()
        .collect();
        // Read always: for `{user}` in group_filter, and for the other names of an entry
        // (`pipeline::aliases`).
        let name_attrs = naming_attributes(&settings.user_filter);
        let name_attr = name_attrs.first().cloned();
        for attr in &name_attrs {
            if !search_attrs.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
                search_attrs.push(attr.clone());
            }
        }
        if search_attrs.is_empty() {
            // RFC 4511: "1.1" asks for no attributes.
            search_attrs.push("1.1".into());
        }
        // The entry's identity, for what must stay with the entry and not with its name
        // (app passwords), in searches of their own: asked for in every login's search,
        // slapd spent 11-12 µs more per login (72 → 83 µs, quick benchmark). Operational
        // attributes come only when asked for by name; a directory ignores the names it
        // does not know (RFC 4511 4.5.1.8).
        let mut identity_attrs: Vec<String> = search_attrs
            .iter()
            .filter(|a| *a != "1.1")
            .cloned()
            .collect();
        for attr in ENTRY_ID_ATTRS {
            if !identity_attrs.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
                identity_attrs.push((*attr).into());
            }
        }

        let n = settings.urls.len();
        Ok(LdapAuth {
            pool_slots: Semaphore::new(settings.pool_size),
            user_bind_slots: Semaphore::new(settings.user_bind_concurrency),
            conn_settings,
            search_attrs,
            identity_attrs,
            name_attr,
            name_attrs,
            searches: ConnPool::new(settings.pool_size, settings.idle_close),
            binds: ConnPool::new(settings.user_bind_concurrency, settings.idle_close),
            bind_count: AtomicU64::new(0),
            preferred: AtomicUsize::new(0),
            url_health: Mutex::new(vec![UrlHealth::default(); n]),
            url_failed: (0..n).map(|_| tokio::sync::Notify::new()).collect(),
            return_probe: super::ldap_return::ReturnProbe::new(),
            bind_latency: Pad::default(),
            refused_bind_latency: Pad::default(),
            refused_check_latency: Pad::default(),
            cache: EntryCache::new(settings.entry_cache_ttl, settings.entry_cache_size),
            service_hold: Default::default(),
            settings,
        })
    }

    /// User binds attempted so far (for tests and metrics).
    pub fn bind_count(&self) -> u64 {
        self.bind_count.load(Ordering::Relaxed)
    }

    /// Until when `idx` is held off after a failure, if it is.
    fn held_until(&self, idx: usize) -> Option<Instant> {
        self.url_health.lock().expect("url_health lock")[idx].held_until
    }

    /// Whether the URL at `idx` was marked failed since its hold read `before`: a later
    /// hold, not merely another one. Another request's success there clears the hold
    /// (`mark_good`), and taken for a failure, every request that connected with it as a
    /// directory came back skipped a server that worked, and was refused.
    fn failed_since(&self, idx: usize, before: Option<Instant>) -> bool {
        self.held_until(idx)
            .is_some_and(|now| before.is_none_or(|before| now > before))
    }

    /// How long a request waits for a search or bind slot: two operations' time. The
    /// slots' holders may each wait out `op_timeout` on a server that hangs, then ask the
    /// next one; a waiter that came with them and gave up after one `op_timeout` failed
    /// just as the slots came free.
    fn slot_patience(&self) -> Duration {
        self.settings.op_timeout * 2
    }

    fn op_timeout_err(&self) -> AuthError {
        AuthError::Timeout(self.settings.op_timeout.as_millis() as u64)
    }

    // ---- failover bookkeeping -------------------------------------------------------

    /// URL indexes in the order to try: the last good one, then the others in configured
    /// order; URLs in hold-off go last.
    fn url_order(&self) -> Vec<usize> {
        let n = self.settings.urls.len();
        let preferred = self.preferred.load(Ordering::Relaxed).min(n - 1);
        let mut order = Vec::with_capacity(n);
        order.push(preferred);
        order.extend((0..n).filter(|&i| i != preferred));
        let now = Instant::now();
        let health = self.url_health.lock().expect("url_health lock");
        let (fresh, held_off): (Vec<usize>, Vec<usize>) = order
            .into_iter()
            .partition(|&i| health[i].held_until.is_none_or(|until| until <= now));
        fresh.into_iter().chain(held_off).collect()
    }

    /// A connection to `idx` opened (and its service bind, if any, passed): preferred, and
    /// no longer held off. Not yet an answer to a search or bind (see [`Self::answered`]).
    fn mark_good(&self, idx: usize) {
        let mut health = self.url_health.lock().expect("url_health lock");
        // Preferred only in place of one held off (this connect is the failover): a connect
        // that set out before the preferred URL changed back (`back_to_the_listed_order`)
        // must not undo that, and send every login back to the server left behind.
        let preferred = self.preferred.load(Ordering::Relaxed);
        let now = Instant::now();
        if preferred != idx
            && health[preferred]
                .held_until
                .is_some_and(|until| until > now)
        {
            self.preferred.store(idx, Ordering::Relaxed);
        }
        health[idx].held_until = None;
    }

    /// A search or a user bind on `idx` got the server's answer: an outage warned of is
    /// over, and said so once. Not at connect: a server that takes connections but never
    /// answers would otherwise be "back" at every login and warned of again.
    fn answered(&self, idx: usize) {
        let said = {
            let mut health = self.url_health.lock().expect("url_health lock");
            let h = &mut health[idx];
            let say = h.down && h.warned_at.is_some() && !h.recovery_said;
            h.down = false;
            h.recovery_said |= say;
            say
        };
        if said {
            let url = &self.settings.urls[idx];
            tracing::info!(%url, "LDAP server answers again");
        }
    }

    /// An operation on a connection to `idx` got no answer in time: the server may hang
    /// with its connections open (a paused VM, a firewall dropping packets), so its idle
    /// connections in both pools go too. Each would otherwise cost the next login the
    /// whole timeout before the held-off server was left for the next URL.
    fn timed_out(&self, idx: usize) {
        self.mark_failed(idx);
        self.searches.drop_idle_to(idx);
        self.binds.drop_idle_to(idx);
    }

    /// Watches an operation on `idx` (see [`CutShort`]).
    fn watch(&self, idx: usize) -> CutShort<'_> {
        CutShort {
            auth: self,
            idx,
            started: Instant::now(),
            done: false,
        }
    }

    /// `idx` failed: held off, and if it was the preferred URL, the next one not held off
    /// takes its place. Otherwise, once its hold-off ran out, a server that takes
    /// connections but never answers was first again: with anonymous searches (no service
    /// bind to catch it at connect) every login that came more than the hold-off after the
    /// last waited out its timeout there and failed, however healthy the next URL.
    fn mark_failed(&self, idx: usize) {
        let now = Instant::now();
        let mut health = self.url_health.lock().expect("url_health lock");
        health[idx].held_until = Some(now + FAILED_URL_HOLDOFF);
        let n = health.len();
        let next = (1..n)
            .map(|k| (idx + k) % n)
            .find(|&i| health[i].held_until.is_none_or(|until| until <= now));
        if let Some(next) = next {
            let _ =
                self.preferred
                    .compare_exchange(idx, next, Ordering::Relaxed, Ordering::Relaxed);
        }
        drop(health);
        self.url_failed[idx].notify_waiters();
        self.return_probe.failed(idx);
    }

    /// `op` on a connection to `idx`, unless `idx` is marked failed (by another request's
    /// timeout, say) before it ends: then `None`, and the caller may ask the next URL.
    /// Only for operations that may run twice (searches, service binds), never a user's
    /// bind, which may already have counted against the account.
    async fn unless_failed<F: std::future::Future>(&self, idx: usize, op: F) -> Option<F::Output> {
        // Registered at creation: a failure marked from now on wakes it, polled or not.
        let failed = self.url_failed[idx].notified();
        tokio::select! {
            biased;
            out = op => Some(out),
            () = failed => None,
        }
    }

    /// After a failover (a URL other than the first preferred): a URL listed before the
    /// preferred one that answered the background probe is preferred again, and a probe
    /// starts when one is due (see `ldap_return`). One atomic load otherwise.
    fn back_to_the_listed_order(&self) {
        let preferred = self.preferred.load(Ordering::Relaxed);
        if preferred == 0 {
            return;
        }
        if let Some(idx) = self.return_probe.take_answered().filter(|&i| i < preferred) {
            if self
                .preferred
                .compare_exchange(preferred, idx, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                // Connections to the URL left behind are closed as they come back (`keep`),
                // not here: this request's bind may be on one, and a bind is not retried.
                self.url_health.lock().expect("url_health lock")[idx].held_until = None;
                self.return_probe.restored(idx);
                tracing::info!(url = %self.settings.urls[idx], instead_of = %self.settings.urls[preferred],
                    "LDAP server listed earlier answers again; new connections go to it");
            }
            return;
        }
        self.return_probe
            .maybe_start(|| super::ldap_return::ProbeTargets {
                urls: (0..preferred)
                    .filter(|&i| !self.held_off(i))
                    .map(|i| (i, self.settings.urls[i].clone()))
                    .collect(),
                settings: self.conn_settings.clone(),
                connect_timeout: self.settings.connect_timeout,
                op_timeout: self.settings.op_timeout,
                bind_dn: self.settings.bind_dn.clone(),
                bind_password: self.settings.bind_password.clone(),
                base_dn: self.settings.base_dn.clone(),
            });
    }

    /// A connection whose operation went well, back to `pool`; unless it is to a URL no
    /// longer preferred (a failover, or the way back after one), when it is closed, so that
    /// logins under steady load, which never leave a connection idle long, move too.
    fn keep(&self, pool: &ConnPool<LdapConn>, conn: Pooled<LdapConn>) {
        if conn.url_idx == self.preferred.load(Ordering::Relaxed) {
            pool.put(conn);
        }
    }

    /// Whether `idx` is held off now (it failed within [`FAILED_URL_HOLDOFF`]).
    fn held_off(&self, idx: usize) -> bool {
        self.held_until(idx)
            .is_some_and(|until| until > Instant::now())
    }

    /// Whether a failure of `idx` is worth a warning: the first of an outage, then one
    /// every [`REWARN_AFTER`] while it lasts, or [`REWARN_AFTER_RECOVERY`] after it last
    /// answered (the others go to debug). Each request met it and logged it: with every URL
    /// down, a line per URL per login flooded the journal, and nothing said when the server
    /// came back ([`Self::answered`] does now).
    fn warn_of(&self, idx: usize) -> bool {
        let now = Instant::now();
        let mut health = self.url_health.lock().expect("url_health lock");
        let h = &mut health[idx];
        h.down = true;
        let after = if h.recovery_said {
            REWARN_AFTER_RECOVERY
        } else {
            REWARN_AFTER
        };
        let due = h.warned_at.is_none_or(|at| now.duration_since(at) >= after);
        if due {
            h.warned_at = Some(now);
            h.recovery_said = false;
        }
        due
    }

    // ---- connections ------------------------------------------------------------------

    pub(super) async fn connect_one(&self, idx: usize) -> Result<LdapConn, ConnectFailure> {
        let url = &self.settings.urls[idx];
        let fut = LdapConn::open(url, &self.conn_settings);
        let watch = self.watch(idx);
        let connected = timeout(self.settings.connect_timeout, fut).await;
        watch.done();
        match connected {
            Err(_) => Err(ConnectFailure::Timeout),
            Ok(Err(e)) => Err(match classify_connect_error(e) {
                ConnectFailure::Tls(msg) => {
                    ConnectFailure::Tls(self.port_hinted(idx, self.tls_hint(msg)))
                }
                ConnectFailure::Other(msg) => ConnectFailure::Other(self.port_hinted(idx, msg)),
                other => other,
            }),
            Ok(Ok(conn)) => Ok(conn),
        }
    }

    /// A TLS failure's text, with what to check for the two an admin meets most: rustls
    /// says "UnknownIssuer" alike for a wrong ca_file and for none (the system's store),
    /// and names no file.
    /// How long a new connection to a server whose idle connection went unanswered may take
    /// (connect, service bind) before the next URL is asked: a server that is well answers
    /// in a few round trips (a firewall forgot the idle connection), and one that hangs took
    /// the new connection too and waited out timeout_ms again, which with the defaults ran
    /// past the request's window where the next server would have answered (red team).
    /// Going to the next URL at once instead failed when that one was down (review). `None`
    /// with a single URL: nothing else to ask.
    fn fresh_patience(&self) -> Option<Duration> {
        (self.settings.urls.len() > 1).then(|| self.settings.op_timeout / 2)
    }

    fn tls_hint(&self, msg: String) -> String {
        let lower = msg.to_ascii_lowercase();
        // BadSignature: a CA of the issuer's name, but not the key that signed it.
        let issuer = [
            "unknownissuer",
            "unknown issuer",
            "badsignature",
            "bad signature",
        ];
        let hint = if issuer.iter().any(|i| lower.contains(i)) {
            match &self.settings.ca_file {
                Some(path) => format!(
                    "the server's certificate is not from a CA in [ldap] ca_file {}",
                    path.display()
                ),
                None => "no [ldap] ca_file is set, and the system's CA store does not know \
                         the server's CA: set ca_file to its PEM file"
                    .to_string(),
            }
        } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
            "the server's certificate is not issued to the host name in the URL (connect by \
             the name it names)"
                .to_string()
        } else if lower.contains("causedasendentity") || lower.contains("ca used as end entity") {
            // `openssl req -x509` makes CA:TRUE by default, as most slapd tutorials do, and
            // OpenLDAP's own tools take such a certificate: only rustls's name said why not.
            "the server's own certificate is a CA certificate (basicConstraints CA:TRUE, as \
             `openssl req -x509` makes by default), which TLS refuses as a server's: issue \
             the server a CA:FALSE certificate from a CA, and put that CA in [ldap] ca_file"
                .to_string()
        } else if lower.contains("expired") {
            "the server's certificate has expired, or this host's clock is wrong".to_string()
        } else if lower.contains("not valid yet") || lower.contains("notvalidyet") {
            // A fresh certificate on a DC whose clock runs ahead of this host's, or this
            // host's clock behind (a VM restored from a snapshot).
            "the server's certificate is not valid yet: this host's clock may be behind, or \
             the certificate was issued with a start date in the future"
                .to_string()
        } else {
            return msg;
        };
        format!("{msg} ({hint})")
    }

    /// Open a connection to the first URL that answers; with `service_bind`, also bind it as
    /// the service account (a server that accepts TCP but does not answer the bind counts as
    /// down, and the next URL is tried).
    async fn connect_any(&self, service_bind: bool) -> Result<(LdapConn, usize), AuthError> {
        if service_bind && !self.settings.bind_dn.is_empty() {
            // Refused lately: not tried again yet (see `ldap_service_hold`).
            self.service_hold
                .check(Instant::now())
                .map_err(AuthError::ServiceBind)?;
        }
        let mut failures: Vec<String> = Vec::new();
        let mut all_tls = true;
        let mut all_op_timeouts = true;
        for idx in self.url_order() {
            let url = &self.settings.urls[idx];
            let mut ldap = match self.connect_one(idx).await {
                Ok(ldap) => ldap,
                Err(failure) => {
                    url_warn!(self, idx, %url, error = %failure, "LDAP server unreachable");
                    all_tls &= matches!(failure, ConnectFailure::Tls(_));
                    all_op_timeouts = false;
                    failures.push(format!("{url}: {failure}"));
                    self.mark_failed(idx);
                    continue;
                }
            };
            if service_bind && !self.settings.bind_dn.is_empty() {
                let password =
                    self.settings.bind_password.expose_str().ok_or_else(|| {
                        AuthError::ServiceBind("bind password is not UTF-8".into())
                    })?;
                // One service bind at a time, and none once one was refused: see
                // `ldap_service_hold`.
                let held_before = self.held_until(idx);
                let turn = self.service_hold.turn().await;
                self.service_hold
                    .check(Instant::now())
                    .map_err(AuthError::ServiceBind)?;
                // This URL failed another request's bind while this one waited for its turn
                // (it hangs, say): left for the next URL, as `url_order` would have put it.
                if self.failed_since(idx, held_before) {
                    // Not this request's timeout: the reason must not claim it waited the
                    // op_timeout (audited as "timed out after 2000 ms" at 100 ms).
                    all_tls = false;
                    all_op_timeouts = false;
                    failures.push(format!(
                        "{url}: failed another request while this one waited its turn"
                    ));
                    continue;
                }
                let bind = timeout(
                    self.settings.op_timeout,
                    ldap.ldap.simple_bind(&self.settings.bind_dn, password),
                );
                tokio::pin!(bind);
                let watch = self.watch(idx);
                // A bind not answered within the patience gives its turn up and goes on
                // waiting: refusals come back in milliseconds, and a directory that hangs
                // must not hold every other bind (on it, or on the next URL) behind its
                // timeout.
                let answer = match timeout(super::ldap_service_hold::TURN_PATIENCE, &mut bind).await
                {
                    Ok(answer) => Some(answer),
                    Err(_) => {
                        drop(turn);
                        // Another request's bind or search there timing out says it
                        // hangs: this one leaves for the next URL, not waiting out its own
                        // timeout (a burst of logins took ~100 ms more each, up to the
                        // request deadline).
                        self.unless_failed(idx, bind).await
                    }
                };
                watch.done();
                let Some(answer) = answer else {
                    all_tls = false;
                    all_op_timeouts = false;
                    failures.push(format!(
                        "{url}: failed another request while this one's service bind waited"
                    ));
                    continue;
                };
                match answer {
                    Err(_) => {
                        url_warn!(self, idx, %url, "LDAP service bind timed out");
                        all_tls = false;
                        failures.push(format!("{url}: service bind timed out"));
                        self.mark_failed(idx);
                        continue;
                    }
                    Ok(Err(e)) => {
                        let e = self.port_hinted(idx, e.to_string());
                        url_warn!(self, idx, %url, error = %e, "LDAP service bind failed");
                        all_tls = false;
                        all_op_timeouts = false;
                        failures.push(format!("{url}: service bind: {e}"));
                        self.mark_failed(idx);
                        continue;
                    }
                    // 48 inappropriateAuthentication, 49 invalidCredentials,
                    // 50 insufficientAccessRights, and 53 unwillingToPerform when its text
                    // speaks of the account: the directory refuses this account; another
                    // server of it would say the same. A 53 about the server (389-ds's
                    // offline or read-only backend) is this server's trouble, below.
                    Ok(Ok(res))
                        if matches!(res.rc, 48..=50)
                            || (res.rc == RC_UNWILLING_TO_PERFORM
                                && speaks_of_the_account(&res.text)) =>
                    {
                        let reason = format!("{}: {res}", self.settings.bind_dn);
                        let hold = self.service_hold.refused(Instant::now(), reason.clone());
                        tracing::error!(%url, bind_dn = %self.settings.bind_dn, result = %res,
                            hold_secs = hold.as_secs(),
                            "LDAP service account bind refused; not tried again until the \
                             hold ends (each refused bind counts towards the account's lockout)");
                        self.mark_good(idx);
                        return Err(AuthError::ServiceBind(reason));
                    }
                    Ok(Ok(res)) if res.rc != 0 => {
                        // busy, unavailable, ...: this server's trouble, try the next.
                        url_warn!(self, idx, %url, result = %res, "LDAP service bind failed");
                        all_tls = false;
                        all_op_timeouts = false;
                        failures.push(format!("{url}: service bind: {res}"));
                        self.mark_failed(idx);
                        continue;
                    }
                    Ok(Ok(_)) => self.service_hold.bound(),
                }
            }
            tracing::debug!(%url, service_bind, "LDAP connection open");
            self.mark_good(idx);
            return Ok((ldap, idx));
        }
        let msg = failures.join("; ");
        if all_tls && !failures.is_empty() {
            Err(AuthError::Tls(msg))
        } else if all_op_timeouts && !failures.is_empty() {
            // Every server accepted the connection but none answered the bind.
            Err(self.op_timeout_err())
        } else {
            Err(AuthError::Unavailable(msg))
        }
    }

    // ---- search ------------------------------------------------------------------------

    /// An idle connection from `pool`, or a new one (service-bound for searches).
    async fn take_or_connect(
        &self,
        pool: &ConnPool<LdapConn>,
        service_bind: bool,
    ) -> Result<Pooled<LdapConn>, AuthError> {
        if let Some(conn) = pool.take() {
            return Ok(conn);
        }
        // Boxed: connecting (ldap3's connect and TLS futures, ~4.5 KiB) is the rare path, and
        // inline it would make every search and bind future that large, copied and allocated
        // on every request.
        let (ldap, url_idx) = Box::pin(self.connect_any(service_bind)).await?;
        Ok(Pooled::fresh(ldap, url_idx))
    }

    async fn search_user(&self, user: &str) -> Result<SearchOutcome, AuthError> {
        self.search_user_for(user, &self.search_attrs).await
    }

    /// The entry of `user`, read with `attrs`: `Ok(None)` for an unknown user, and also
    /// for an ambiguous one (logged as a warning): a name that matches several entries
    /// identifies nobody.
    async fn lookup_for(
        &self,
        user: &str,
        attrs: &[String],
    ) -> Result<Option<UserInfo>, AuthError> {
        if user.is_empty() {
            return Ok(None);
        }
        Ok(match self.search_user_for(user, attrs).await? {
            SearchOutcome::Found(info) => Some(*info),
            SearchOutcome::NotFound | SearchOutcome::Ambiguous => None,
        })
    }

    /// `user_filter` for `user` (escaped), and `enabled_filter` with it when there is one.
    pub(super) fn login_filter(&self, user: &str) -> String {
        let filter = self.name_filter(user);
        match &self.settings.enabled_filter {
            Some(enabled) => {
                // Time placeholders are filled in now, per search (an account expiring while
                // radmfa runs is refused from that moment).
                let enabled = super::ldap_now::fill(enabled, std::time::SystemTime::now());
                format!("(&{filter}{enabled})")
            }
            None => filter,
        }
    }

    /// `user_filter` for `user` (escaped), without `enabled_filter`.
    pub(super) fn name_filter(&self, user: &str) -> String {
        self.settings
            .user_filter
            .replace("{user}", &ldap3::ldap_escape(user))
    }

    async fn search_user_for(
        &self,
        user: &str,
        attrs: &[String],
    ) -> Result<SearchOutcome, AuthError> {
        let filter = self.login_filter(user);
        let base = &self.settings.base_dn;
        let (entries, res) = self
            .search(base, Scope::Subtree, &filter, attrs, 2, user)
            .await?;
        // rc 4 = sizeLimitExceeded: more entries matched than were returned — more than our
        // limit of 2, or more than a lower limit of the server's (1: then one entry comes
        // back, and it is still one of several).
        let size_limit_hit = res.rc == 4 && !entries.is_empty();
        if res.rc != 0 && !size_limit_hit {
            tracing::warn!(user, result = %res, "LDAP search refused");
            if res.rc == RC_NO_SUCH_OBJECT {
                // What the admin must fix, named: the bare result reads like a missing user.
                let missing = super::ldap_hints::base_dn_missing(&self.settings, &res);
                return Err(AuthError::Ldap(format!("search: {missing}")));
            }
            return Err(AuthError::Ldap(format!("search: {res}")));
        }
        if size_limit_hit {
            tracing::warn!(
                user,
                returned = entries.len(),
                filter = filter.as_str(),
                "LDAP user filter matched more entries than the size limit"
            );
            return Ok(SearchOutcome::Ambiguous);
        }
        Ok(match entries.len() {
            0 => SearchOutcome::NotFound,
            1 => {
                let entry = entries.into_iter().next().expect("one");
                let entry = super::ldap_entry::read(entry.0).map_err(|e| {
                    tracing::warn!(
                        user,
                        error = e.as_str(),
                        "malformed entry from the directory"
                    );
                    AuthError::Ldap(format!("search: a malformed entry: {e}"))
                })?;
                if let Some(names) = self.name_not_in_entry(&entry, user) {
                    // The directory matched the name by a rule radmfa does not follow (a
                    // fullwidth letter, a name it keeps out of reach): keyed by what was
                    // typed, the login would find none of the entry's second-factor state.
                    // Once per entry per log_once::EVERY: a spray of such names (each
                    // audited) flooded the log past `radmfa::audit=warn`.
                    crate::info_once!(
                        &format!("ldap-name-not-in-entry:{}", entry.dn),
                        user,
                        dn = entry.dn.as_str(),
                        names = names.as_str(),
                        "LDAP entry found for a name it does not have: taken as unknown; \
                         log in with the name as the directory has it"
                    );
                    return Ok(SearchOutcome::NotFound);
                }
                SearchOutcome::Found(Box::new(self.user_info(entry, user)))
            }
            n => {
                tracing::warn!(
                    user,
                    matches = n,
                    filter = filter.as_str(),
                    "LDAP user filter matched several entries"
                );
                SearchOutcome::Ambiguous
            }
        })
    }

    /// One search on a pooled service-account connection, within `op_timeout`, retried once
    /// on a fresh connection if a reused one turns out dead. Returns the entries and the
    /// result for the caller to judge (which result codes are fine depends on the search);
    /// a timeout or a connection failure is an error. `user` is for the log only.
    pub(super) async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        size_limit: i32,
        user: &str,
    ) -> Result<(Vec<ldap3::ResultEntry>, LdapResult), AuthError> {
        let options = SearchOptions::new().sizelimit(size_limit);
        self.search_with(base, scope, filter, attrs, options, user)
            .await
    }

    /// [`Self::search`] with the search's options given whole (`typesonly`, for one).
    pub(super) async fn search_with(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        options: SearchOptions,
        user: &str,
    ) -> Result<(Vec<ldap3::ResultEntry>, LdapResult), AuthError> {
        let _slot = timeout(self.slot_patience(), self.pool_slots.acquire())
            .await
            .map_err(|_| self.op_timeout_err())?
            .expect("pool semaphore never closed");
        let mut retried = false;
        // A search is asked of a second URL once when the first does not answer in time
        // (or another request found it hanging meanwhile): it changes nothing, and the next
        // server may well answer while the request still has time.
        let mut moved_on = false;
        // A search that got no answer on a connection idle for [`IDLE_SUSPECT`] or more is
        // asked again, once, on a new connection (see the timeout below).
        let mut asked_fresh = false;
        // The server whose idle connection got no answer, to be asked on a new one.
        let mut fresh: Option<usize> = None;
        // When the new connection's search must have answered (its connect's patience
        // spans the search too: with anonymous searches the connect is only TCP's, which a
        // hung server's kernel completes, and the search then waited a whole timeout).
        let mut fresh_until: Option<Instant> = None;
        loop {
            let mut conn = if let Some(idle_idx) = fresh.take() {
                // The first URL in order is still the one the idle connection went to (not
                // marked failed); if it does not answer a new connection either, the next.
                let connect = Box::pin(self.connect_any(true));
                let patience = self.fresh_patience();
                fresh_until = patience.map(|p| Instant::now() + p);
                let connected = match patience {
                    Some(patience) => timeout(patience, connect).await,
                    None => Ok(connect.await),
                };
                match connected {
                    Ok(connected) => {
                        let (ldap, url_idx) = connected?;
                        Pooled::fresh(ldap, url_idx)
                    }
                    // Nor a new connection in the patience: it hangs. The next URL, with the
                    // request's time left for it.
                    Err(_) => {
                        let url = &self.settings.urls[idle_idx];
                        url_warn!(self, idle_idx, %url, user,
                            "LDAP server took no new connection after its idle one went \
                             unanswered; asking the next");
                        self.timed_out(idle_idx);
                        moved_on = true;
                        // The patience was that server's: the next one's search has the
                        // request's time. Kept, it left that search the patience's end, past
                        // already, so 1 ms, and every login after a hang met on an idle
                        // connection was refused with the next server well (review).
                        fresh_until = None;
                        continue;
                    }
                }
            } else {
                self.take_or_connect(&self.searches, true).await?
            };
            if moved_on && self.held_off(conn.url_idx) {
                // An idle connection to the server just left (returned meanwhile).
                drop(conn);
                conn = self.take_or_connect(&self.searches, true).await?;
            }
            let may_move = !moved_on && self.settings.urls.len() > 1;
            let op_timeout = match fresh_until.take() {
                Some(until) => until
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
                None => self.settings.op_timeout,
            };
            let search = conn
                .conn
                .ldap
                .with_search_options(options.clone())
                .with_timeout(op_timeout)
                .search(base, scope, filter, attrs);
            let watch = self.watch(conn.url_idx);
            let answer = if may_move {
                self.unless_failed(conn.url_idx, timeout(op_timeout, search))
                    .await
            } else {
                Some(timeout(op_timeout, search).await)
            };
            watch.done();
            let Some(answer) = answer else {
                let url = &self.settings.urls[conn.url_idx];
                tracing::debug!(%url, user, "LDAP server failed another request; asking the next");
                self.searches.drop_idle_to(conn.url_idx);
                moved_on = true;
                continue;
            };
            let result = match answer {
                Err(_) | Ok(Err(LdapError::Timeout { .. }))
                    if conn.idle_for >= IDLE_SUSPECT && !asked_fresh =>
                {
                    // A firewall that forgets idle connections without a word (before
                    // idle_close_secs) leaves them looking open, and a search on one waits out
                    // timeout_ms: that says nothing about the server. Asked again on a new
                    // connection before the server counts as hung; the other idle
                    // connections to it are as old, and go too (a user's bind on one could
                    // not be asked again).
                    let url = &self.settings.urls[conn.url_idx];
                    crate::warn_once!(&format!("ldap-idle:{url}"), %url, user,
                        idle_secs = conn.idle_for.as_secs(), timeout_ms = op_timeout.as_millis() as u64,
                        "LDAP search on a pooled connection that sat idle got no answer; asking \
                         again on a new connection (a firewall may drop idle connections \
                         silently: keep [ldap] idle_close_secs below its idle timeout)");
                    self.searches.drop_idle_to(conn.url_idx);
                    self.binds.drop_idle_to(conn.url_idx);
                    asked_fresh = true;
                    fresh = Some(conn.url_idx);
                    continue;
                }
                Err(_) | Ok(Err(LdapError::Timeout { .. })) => {
                    let url = &self.settings.urls[conn.url_idx];
                    url_warn!(self, conn.url_idx, %url, user, "LDAP search timed out");
                    self.timed_out(conn.url_idx);
                    if may_move {
                        moved_on = true;
                        continue;
                    }
                    return Err(self.op_timeout_err());
                }
                Ok(Err(e)) => {
                    let url = &self.settings.urls[conn.url_idx];
                    if conn.reused && !retried {
                        // A pooled connection died (server restart, idle cut): drop its
                        // siblings and try once more on a fresh connection (a search may
                        // run twice). The idle bind connections to the server went the same
                        // way, most likely, and a bind found dead cannot be asked again:
                        // closed too, so this login's bind gets a fresh one.
                        tracing::debug!(%url, error = %e, "pooled LDAP connection dead, reconnecting");
                        self.searches.drop_idle_to(conn.url_idx);
                        self.binds.drop_idle_to(conn.url_idx);
                        retried = true;
                        continue;
                    }
                    // An anonymous search is the first request on its connection.
                    let cause = conn.conn.end_reason(&e).await;
                    let cause = self.port_hinted(conn.url_idx, cause);
                    url_warn!(self, conn.url_idx, %url, error = %cause, "LDAP search failed");
                    self.mark_failed(conn.url_idx);
                    return Err(AuthError::SearchAnswerLost {
                        url: url.clone(),
                        cause,
                    });
                }
                Ok(Ok(result)) => result,
            };
            let ldap3::SearchResult(entries, res) = result;
            // A search is never about one account, so an unwillingToPerform (389-ds: backend
            // offline) is the server's trouble like busy / unavailable.
            let refused = server_unwilling(res.rc) || res.rc == RC_UNWILLING_TO_PERFORM;
            if refused && !retried && self.settings.urls.len() > 1 {
                // This server's trouble, not the search's. Put it behind the others and ask
                // the next one (it did not run the search).
                let url = &self.settings.urls[conn.url_idx];
                url_warn!(self, conn.url_idx, %url, result = %res, "LDAP server refused the search; trying the next");
                self.mark_failed(conn.url_idx);
                self.searches.drop_idle_to(conn.url_idx);
                retried = true;
                continue;
            }
            self.answered(conn.url_idx);
            self.back_to_the_listed_order();
            self.keep(&self.searches, conn);
            return Ok((entries, res));
        }
    }

    /// The entry's names (the values of `user_filter`'s naming attributes), when none of
    /// them is `user` as radmfa compares names (`store::user_key`: case and spacing
    /// aside). `None` when one is, and when the entry shows none (values the service
    /// account may not read), or the filter also matches the name otherwise (a
    /// `{user}@domain` term): nothing to go by.
    pub(super) fn name_not_in_entry(&self, entry: &SearchEntry, user: &str) -> Option<String> {
        if !only_plain_name_terms(&self.settings.user_filter) {
            return None;
        }
        let typed = crate::store::user_key(user);
        let mut names = self
            .name_attrs
            .iter()
            .flat_map(|attr| all_values(&entry.attrs, attr))
            .filter(|v| !v.trim().is_empty())
            .peekable();
        names.peek()?;
        let names: Vec<&String> = names.collect();
        if names.iter().any(|v| crate::store::user_key(v) == typed) {
            return None;
        }
        Some(
            names
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    fn user_info(&self, entry: SearchEntry, user: &str) -> UserInfo {
        let a = &self.settings.attributes;
        let get = |name: &str| first_value(&entry.attrs, name);
        // Cut to a sane length: these go into every audit record, log line and message of
        // the user's logins, and a user may write their own (OpenLDAP ACLs often let users
        // edit givenName and sn). 300 KB names filled the disk by 600 KB a login.
        let shown = |name: &str| get(name).map(|v| cut_chars(v, MAX_SHOWN_CHARS));
        // The naming attribute may hold several names (`uid: jdoe`, `uid: john.doe`), in no
        // set order: the one the user logged in with, as the directory spells it.
        let name = self.name_attr.as_deref().and_then(|attr| {
            let typed = user.to_lowercase();
            all_values(&entry.attrs, attr)
                .find(|v| v.to_lowercase() == typed)
                .cloned()
                .or_else(|| get(attr))
        });
        // Every name but the one typed: when the entry was found by another attribute (a
        // filter that also matches `mail`), all of them, the first included, which `name`
        // falls back to but the login is not keyed on.
        // The values of every naming attribute count: a token enrolled under the UPN must
        // not be skipped by a login under the sAMAccountName.
        let typed = user.to_lowercase();
        let mut other_names: Vec<String> = Vec::new();
        for attr in &self.name_attrs {
            for v in all_values(&entry.attrs, attr) {
                let folded = v.to_lowercase();
                if !v.is_empty()
                    && folded != typed
                    && !other_names.iter().any(|o| o.to_lowercase() == folded)
                {
                    other_names.push(v.clone());
                }
            }
        }
        UserInfo {
            display_name: shown(&a.display_name),
            given_name: shown(&a.given_name),
            surname: shown(&a.surname),
            mail: shown(&a.mail),
            mobile: shown(&a.mobile),
            telephone: shown(&a.telephone),
            name,
            other_names,
            entry_id: entry_id(&entry),
            dn: entry.dn,
            granted: Vec::new(),
        }
    }

    // ---- user bind ---------------------------------------------------------------------

    async fn bind_user(
        &self,
        user: &str,
        info: UserInfo,
        password: &str,
    ) -> Result<PrimaryOutcome, AuthError> {
        let _slot = timeout(self.slot_patience(), self.user_bind_slots.acquire())
            .await
            .map_err(|_| self.op_timeout_err())?
            .expect("bind semaphore never closed");

        let started = Instant::now();
        let res = self.bind_on_pooled(user, &info.dn, password).await?;
        let took = started.elapsed();
        self.record_bind_latency(took);

        let outcome = bind_outcome(&res);
        if matches!(outcome, Ok(PrimaryOutcome::Denied(_))) {
            self.refused_bind_latency.record(took);
        }
        match &outcome {
            Ok(PrimaryOutcome::Accepted(_)) => {
                tracing::debug!(user, dn = info.dn.as_str(), "LDAP password accepted")
            }
            // Debug, as the unknown user's line: the login's audit line and record say it.
            Ok(PrimaryOutcome::Denied(d)) => {
                tracing::debug!(user, dn = info.dn.as_str(), reason = %d.reason(), "LDAP password refused")
            }
            Err(_) => {
                tracing::warn!(user, dn = info.dn.as_str(), result = %res, "LDAP user bind error")
            }
        }
        outcome.map(|o| match o {
            PrimaryOutcome::Accepted(_) => PrimaryOutcome::Accepted(info),
            denied => denied,
        })
    }

    /// One simple bind as `dn` on a bind-only connection: an idle one when there is one,
    /// else a fresh one. The caller holds a `user_bind_slots` permit.
    ///
    /// Reusing a connection whose identity is "the last user who bound on it" is safe
    /// because nothing but user binds ever runs on these connections: no search, no other
    /// operation that the previous user's rights could apply to, and every bind replaces the
    /// identity (a failed bind leaves it anonymous).
    async fn bind_on_pooled(
        &self,
        user: &str,
        dn: &str,
        password: &str,
    ) -> Result<LdapResult, AuthError> {
        let mut counted = false;
        let mut retried = false;
        loop {
            let mut conn = self.take_or_connect(&self.binds, false).await?;
            if !counted {
                // One per user bind, even when it takes a second connection.
                self.bind_count.fetch_add(1, Ordering::Relaxed);
                counted = true;
            }
            let url = &self.settings.urls[conn.url_idx];
            // If this future is dropped (request deadline), `conn` is dropped with it and the
            // connection closed: a bind whose answer nobody read is never reused.
            // With the password policy request control: only its answer tells a password
            // an admin reset ("must change") from the user's own (see `ppolicy`).
            let bind = conn
                .conn
                .ldap
                .with_controls(super::ppolicy::request())
                .simple_bind(dn, password);
            let watch = self.watch(conn.url_idx);
            // Counted for the login until its answer comes: cut off by the request's
            // deadline meanwhile, it stays counted (see `BindOut`).
            let out = super::BindOut::sent();
            let answer = timeout(self.settings.op_timeout, bind).await;
            watch.done();
            match answer {
                // Not retried anywhere: the bind may have reached the server and counted
                // against the account's lockout. The connection is dropped.
                Err(_) | Ok(Err(LdapError::Timeout { .. })) => {
                    url_warn!(self, conn.url_idx, %url, user, dn, "LDAP user bind timed out");
                    self.timed_out(conn.url_idx);
                    return Err(AuthError::BindTimeout(
                        self.settings.op_timeout.as_millis() as u64
                    ));
                }
                Ok(Err(LdapError::OpSend { .. })) if !retried => {
                    // The connection had ended before the bind was handed to it (its
                    // driver gone: ldap3's "op send error"), so nothing was written: asked
                    // once more on a fresh connection.
                    tracing::debug!(%url, "LDAP bind connection closed before the bind was sent, reconnecting");
                    out.answered();
                    self.binds.drop_idle_to(conn.url_idx);
                    retried = true;
                }
                Ok(Err(e)) => {
                    // The bind was handed to the connection, which ended before the answer
                    // came (ldap3's "result recv error": closed or reset). ldap3 does not say
                    // whether it was written, and a connection that looks alive may be dead
                    // (a DC's host rebooted, a firewall that forgot it) as well as reset
                    // after the DC took the bind: it may have counted towards the account's
                    // lockout, so it is asked nowhere again. The other idle connections to
                    // the server went the same way, most likely: closed, so that the next
                    // logins' binds are not lost too.
                    let cause = conn.conn.end_reason(&e).await;
                    url_warn!(self, conn.url_idx, %url, user, dn, error = %cause,
                        "LDAP user bind's answer lost; not asked again");
                    self.mark_failed(conn.url_idx);
                    self.searches.drop_idle_to(conn.url_idx);
                    self.binds.drop_idle_to(conn.url_idx);
                    return Err(AuthError::BindAnswerLost {
                        url: url.clone(),
                        cause,
                    });
                }
                Ok(Ok(res))
                    if (server_unwilling(res.rc) || unwilling_server(&res))
                        && !retried
                        && self.settings.urls.len() > 1 =>
                {
                    // busy / unavailable: the server did not check the password (nothing
                    // counted against the account), so the next server may.
                    out.answered();
                    url_warn!(self, conn.url_idx, %url, result = %res, "LDAP server refused the bind; trying the next");
                    self.mark_failed(conn.url_idx);
                    self.binds.drop_idle_to(conn.url_idx);
                    retried = true;
                }
                Ok(Ok(res)) => {
                    // An LDAP answer, whatever its result code: the connection is healthy.
                    out.answered();
                    self.answered(conn.url_idx);
                    self.keep(&self.binds, conn);
                    return Ok(res);
                }
            }
        }
    }

    /// The bind, and with `entry_cache_seconds` the entry remembered when it was accepted,
    /// unless the cache was emptied since `epoch` (taken before the search that found it).
    async fn bind_and_remember(
        &self,
        user: &str,
        info: UserInfo,
        password: &str,
        epoch: u64,
    ) -> Result<PrimaryOutcome, AuthError> {
        let outcome = self.bind_user(user, info, password).await?;
        if let (Some(cache), PrimaryOutcome::Accepted(info)) = (&self.cache, &outcome) {
            cache.remember(user, info, epoch);
        }
        Ok(outcome)
    }

    /// The entry cache's epoch now (0 without one), for [`Self::bind_and_remember`].
    fn cache_epoch(&self) -> u64 {
        self.cache.as_ref().map_or(0, EntryCache::epoch)
    }

    /// A login whose entry was found lately: bind as that DN at once. Anything but an
    /// acceptance forgets the entry. A refusal asks the directory again before answering,
    /// so the answer is the one an uncached login gets now (an entry moved since is bound
    /// where it is; one no longer found is an unknown user), and a refusal costs the search
    /// and the bind an uncached wrong password costs (no quicker "known user" answer to
    /// time).
    async fn authenticate_cached(
        &self,
        user: &str,
        cached: UserInfo,
        password: &str,
    ) -> Result<PrimaryOutcome, AuthError> {
        let dn = cached.dn.clone();
        let bound = self.bind_user(user, cached, password).await;
        if !matches!(bound, Ok(PrimaryOutcome::Accepted(_))) {
            if let Some(cache) = &self.cache {
                cache.forget(user);
            }
        }
        let refused = match bound? {
            accepted @ PrimaryOutcome::Accepted(_) => return Ok(accepted),
            PrimaryOutcome::Denied(d) => d,
        };
        // A search that fails fails the login, as an uncached login's does: answered as a
        // refusal here, it would tell a name that logged in lately (a Reject) from every
        // other name (silence on no_reply clients) while searches fail and binds do not
        // (the service account's password expired, say). The NAS asking another node then
        // binds the same wrong password once more, as any retried backend failure does.
        let epoch = self.cache_epoch();
        let found = self.search_user(user).await?;
        match found {
            // Bound again only where the first bind cannot have counted against the
            // account: the remembered DN is gone (AD: 525, or a plain invalidCredentials for a
            // DN that no longer exists) and the entry is elsewhere now.
            SearchOutcome::Found(info)
                if !same_dn(&info.dn, &dn)
                    && matches!(refused, Denial::BadPassword | Denial::UnknownUser) =>
            {
                tracing::info!(
                    user,
                    old = dn.as_str(),
                    new = info.dn.as_str(),
                    "LDAP entry moved since it was cached"
                );
                self.bind_and_remember(user, *info, password, epoch).await
            }
            SearchOutcome::Found(_) => Ok(PrimaryOutcome::Denied(refused)),
            SearchOutcome::NotFound => {
                tracing::info!(user, "LDAP user no longer found");
                Ok(PrimaryOutcome::Denied(Denial::UnknownUser))
            }
            SearchOutcome::Ambiguous => Ok(PrimaryOutcome::Denied(Denial::AmbiguousUser)),
        }
    }

    fn record_bind_latency(&self, sample: Duration) {
        self.bind_latency.record(sample);
    }

    /// Make an unknown user take about as long as a bind would have: first the wait for a
    /// bind slot that a known user's bind waits for (under load that wait is most of the
    /// time, and past `op_timeout` it is the same timeout error), then the bind's time,
    /// holding the slot as the bind would.
    ///
    /// Until a bind has been timed (after a start, or a reload that made a new directory),
    /// the search's own time stands in for it: one round trip to the same server.
    async fn pad_like_a_bind(&self, searched: Duration) -> Result<(), AuthError> {
        let waited = Instant::now();
        let _slot = timeout(self.slot_patience(), self.user_bind_slots.acquire())
            .await
            .map_err(|_| self.op_timeout_err())?
            .expect("bind semaphore never closed");
        let cap = self.settings.connect_timeout + self.settings.op_timeout;
        // A wrong password is what an unknown user must look like; until one has been
        // timed, any bind is the nearest thing.
        // Best, the whole of a known user's refused check, less what this one spent so far
        // (its search and its wait for the slot); else the bind's time alone.
        if self.refused_check_latency.has_sample() {
            let spent = searched + waited.elapsed();
            self.refused_check_latency.sleep_rest(spent, cap).await;
            return Ok(());
        }
        let pad = if self.refused_bind_latency.has_sample() {
            &self.refused_bind_latency
        } else {
            &self.bind_latency
        };
        pad.sleep_or(searched, cap).await;
        Ok(())
    }
}

/// Two spellings of one DN: attribute types and (for the directories radmfa meets) values
/// compare without case, spaces around `,`, `=` and `+` are not part of it, and escapes
/// are read (RFC 4514: slapd gives `ou=Sales\2C EMEA` for `ou=Sales\, EMEA`). Text that is
/// no DN compares as it is spelt, as a directory's own DN it may still be.
pub(crate) fn same_dn(a: &str, b: &str) -> bool {
    use super::ldap_hints::{parse_dn, rdns};
    match (parse_dn(a), parse_dn(b)) {
        (Some(a), Some(b)) => a == b,
        _ => rdns(a) == rdns(b),
    }
}

pub(crate) use super::ldap_hints::parse_dn;

/// How long an operation must have waited for its answer before its future being dropped
/// unfinished says something about the server: healthy ones answer in milliseconds.
const CUT_SHORT_AFTER: Duration = Duration::from_secs(1);

/// An operation on a server whose future is dropped before its answer (the request's
/// deadline came first) after waiting at least [`CUT_SHORT_AFTER`]: the server is held off
/// and its idle connections go, as after the operation's own timeout. With `timeout_ms`
/// near or above the time a request has to decide, a hung server's operations were always
/// cut by the deadline first, so it was never held off and stayed preferred: every login
/// failed while the next server would have answered.
struct CutShort<'a> {
    auth: &'a LdapAuth,
    idx: usize,
    started: Instant,
    done: bool,
}

impl CutShort<'_> {
    /// The operation ended (answered, failed or timed out): its own outcome decides.
    fn done(mut self) {
        self.done = true;
    }
}

impl Drop for CutShort<'_> {
    fn drop(&mut self) {
        // Dropped with a request abandoned at shutdown: not the deadline's doing, and said.
        if !self.done && self.started.elapsed() >= CUT_SHORT_AFTER && !crate::server::abandoned() {
            let url = &self.auth.settings.urls[self.idx];
            url_warn!(self.auth, self.idx, %url, waited = ?self.started.elapsed(),
                "LDAP operation cut short before its own timeout (by the request deadline, or \
                 by the time left for a new connection after an idle one went unanswered); \
                 trying the next server first");
            self.auth.timed_out(self.idx);
        }
    }
}

/// LDAP result codes that say the server did not do the operation, for its own reasons:
/// 51 busy, 52 unavailable (a replica catching up, a server shutting down).
fn server_unwilling(rc: u32) -> bool {
    matches!(rc, 51 | 52)
}

/// Map a user bind's result to an outcome (the `UserInfo` is filled in by the caller).
fn bind_outcome(res: &LdapResult) -> Result<PrimaryOutcome, AuthError> {
    if res.rc == 0 && super::ppolicy::must_change(res) {
        return Ok(PrimaryOutcome::Denied(Denial::MustChangePassword));
    }
    if res.rc == 0 {
        return Ok(PrimaryOutcome::Accepted(UserInfo::default()));
    }
    if let Some(reason) = ad_codes::parse(&res.text) {
        return Ok(PrimaryOutcome::Denied(match reason {
            ad_codes::AdReason::BadPassword => Denial::BadPassword,
            ad_codes::AdReason::UserNotFound => Denial::UnknownUser,
            other => Denial::Directory(other),
        }));
    }
    if res.rc == 49 {
        if let Some(why) = super::ppolicy::refusal(res) {
            return Ok(PrimaryOutcome::Denied(Denial::AccountRefused {
                rc: res.rc,
                text: format!("{why}, says the password policy control"),
            }));
        }
        return Ok(PrimaryOutcome::Denied(Denial::BadPassword));
    }
    // noSuchObject: the DN bound is gone (deleted or moved since the search, or since it
    // was cached: the caller searches again then).
    if res.rc == RC_NO_SUCH_OBJECT {
        return Ok(PrimaryOutcome::Denied(Denial::UnknownUser));
    }
    // The account's state, not the directory's health (see `Denial::AccountRefused`): as a
    // fault these marked the node unhealthy, and a `no_reply` client's silence for a locked
    // account (a Reject for an unknown one) told an attacker the name exists.
    // inappropriateAuthentication and insufficientAccessRights on a user's bind are about
    // that entry too: older 389-ds answers 48 for an entry with no password, and as a
    // fault it told such accounts apart (silence on no_reply clients) and flipped the
    // node's health at every try.
    if res.rc == RC_CONSTRAINT_VIOLATION
        || res.rc == RC_INAPPROPRIATE_AUTHENTICATION
        || res.rc == RC_INSUFFICIENT_ACCESS
        || (res.rc == RC_UNWILLING_TO_PERFORM && speaks_of_the_account(&res.text))
    {
        let text: String = res
            .text
            .chars()
            .filter(|c| !c.is_control())
            .take(160)
            .collect();
        return Ok(PrimaryOutcome::Denied(Denial::AccountRefused {
            rc: res.rc,
            text,
        }));
    }
    Err(AuthError::Ldap(format!("user bind: {res}")))
}

/// An unwillingToPerform about the server, not the account (389-ds's backend offline or
/// read-only): the password was not checked, so the next server may check it.
fn unwilling_server(res: &LdapResult) -> bool {
    res.rc == RC_UNWILLING_TO_PERFORM && !speaks_of_the_account(&res.text)
}

/// Whether an unwillingToPerform's text is about the account (389-ds: "Account
/// inactivated", eDirectory: "login lockout", "account disabled", "account expired") rather
/// than the server (389-ds answers 53 for a backend that is offline or read-only too: a
/// fault, which moves logins to the next server).
pub(super) fn speaks_of_the_account(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "account",
        "inactivat",
        "lockout",
        "locked",
        "disabled",
        "expired",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// LDAP result codes (RFC 4511 §4.1.9) a directory answers a bind with for the account's
/// state: a password-policy lockout (389-ds, FreeIPA) and an inactivated account.
const RC_CONSTRAINT_VIOLATION: u32 = 19;
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INAPPROPRIATE_AUTHENTICATION: u32 = 48;
const RC_INSUFFICIENT_ACCESS: u32 = 50;
const RC_UNWILLING_TO_PERFORM: u32 = 53;

/// Every attribute `user_filter` compares the name with, as in `(uid={user})` or
/// `(&(objectClass=user)(sAMAccountName={user}))`, in order, each once; none when `{user}`
/// is used otherwise (`(mail={user}@example.org)`). A login may
/// come under any of their values (AD: `jdoe` or `jdoe@corp.example.org`), so all of them
/// are the entry's names (`UserInfo::other_names`): a token enrolled under one must not be
/// skipped by a login under another.
pub(crate) fn naming_attributes(user_filter: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for attr in plain_name_terms(user_filter) {
        if !out.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
            out.push(attr.to_string());
        }
    }
    out
}

/// The attribute of each plain `(attr={user})` term of `user_filter`, in order.
fn plain_name_terms(user_filter: &str) -> impl Iterator<Item = &str> {
    user_filter
        .match_indices("={user})")
        .filter_map(move |(at, _)| {
            let before = &user_filter[..at];
            let attr = &before[before.rfind('(')? + 1..];
            let plain = !attr.is_empty()
                && attr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ';');
            plain.then_some(attr)
        })
}

/// Whether every `{user}` in `user_filter` is a plain `(attr={user})` term: then a name the
/// filter matched is a value of one of those attributes, and the entry's values say which
/// names it has. A term such as `(userPrincipalName={user}@corp.example.org)` matches names
/// no attribute holds as such (`john.doe` for that UPN).
fn only_plain_name_terms(user_filter: &str) -> bool {
    plain_name_terms(user_filter).count() == user_filter.matches("{user}").count()
}

/// The most characters of a directory value radmfa shows (names, mail, phone numbers):
/// far more than any real one, and bounded whatever the entry holds.
const MAX_SHOWN_CHARS: usize = 256;

/// `v` cut to at most `max` characters.
fn cut_chars(mut v: String, max: usize) -> String {
    if let Some((at, _)) = v.char_indices().nth(max) {
        v.truncate(at);
    }
    v
}

/// The attributes that hold an entry's lasting identity, in the order tried: RFC 4530's
/// (OpenLDAP, 389 DS 1.4.4+, OpenDJ), Active Directory's and Samba's, 389 DS's and
/// FreeIPA's own.
const ENTRY_ID_ATTRS: &[&str] = &["entryUUID", "objectGUID", "nsUniqueId"];

/// The entry's identity as `attribute:value` (see [`UserInfo::entry_id`]): text values
/// lower-cased (a UUID's case means nothing), binary ones (AD's `objectGUID`) in hex.
fn entry_id(entry: &SearchEntry) -> Option<String> {
    ENTRY_ID_ATTRS.iter().find_map(|attr| {
        let binary = entry
            .bin_attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(attr))
            .and_then(|(_, v)| v.iter().find(|b| !b.is_empty()))
            .map(hex::encode);
        // A GUID whose 16 bytes happen to be UTF-8 arrives as text: it is still the bytes.
        let text = || {
            first_value(&entry.attrs, attr).map(|v| {
                if attr.eq_ignore_ascii_case("objectGUID") {
                    hex::encode(v.as_bytes())
                } else {
                    v.trim().to_ascii_lowercase()
                }
            })
        };
        binary.or_else(text).map(|v| format!("{attr}:{v}"))
    })
}

fn first_value(attrs: &HashMap<String, Vec<String>>, name: &str) -> Option<String> {
    all_values(attrs, name).find(|s| !s.is_empty()).cloned()
}

/// Every value of the attribute `name` (its name compared without case, as LDAP does), and
/// then of its subtypes (`uid;lang-en` for `uid`): a filter on `uid` matches those too, so
/// they are names of the entry as much as the plain attribute's.
fn all_values<'a>(
    attrs: &'a HashMap<String, Vec<String>>,
    name: &'a str,
) -> impl Iterator<Item = &'a String> {
    let exact = move |k: &String| !name.is_empty() && k.eq_ignore_ascii_case(name);
    let subtype = move |k: &String| {
        !name.is_empty()
            && k.split_once(';')
                .is_some_and(|(base, _)| base.eq_ignore_ascii_case(name))
    };
    let plain = attrs.iter().filter(move |(k, _)| exact(k));
    let tagged = attrs.iter().filter(move |(k, _)| !exact(k) && subtype(k));
    plain.chain(tagged).flat_map(|(_, v)| v.iter())
}

fn classify_connect_error(e: LdapError) -> ConnectFailure {
    match e {
        LdapError::Timeout { .. } => ConnectFailure::Timeout,
        LdapError::Rustls { source } => ConnectFailure::Tls(source.to_string()),
        LdapError::DNSName { source } => ConnectFailure::Tls(source.to_string()),
        // During connect, an LDAP result can only come from a refused StartTLS.
        LdapError::LdapResult { result } => {
            ConnectFailure::Tls(format!("StartTLS refused: {result}"))
        }
        LdapError::Io { source } => {
            let tls = source
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
            if tls {
                ConnectFailure::Tls(source.to_string())
            } else {
                ConnectFailure::Other(source.to_string())
            }
        }
        other => ConnectFailure::Other(other.to_string()),
    }
}

#[async_trait]
impl PrimaryAuth for LdapAuth {
    fn forget_refusals(&self) {
        self.service_hold.bound();
    }

    async fn warn_at_start(&self) {
        self.check_at_start().await;
    }

    fn empty_entry_cache(&self) -> bool {
        self.cache.as_ref().map(EntryCache::clear).is_some()
    }

    fn servers_answering(&self) -> Vec<(String, bool)> {
        let health = self.url_health.lock().expect("url_health lock");
        self.settings
            .urls
            .iter()
            .zip(health.iter())
            .map(|(url, h)| (url.clone(), !h.down))
            .collect()
    }

    async fn authenticate(
        &self,
        user: &str,
        password: &Secret,
    ) -> Result<PrimaryOutcome, AuthError> {
        // Before the search: an empty simple bind is an anonymous bind that "succeeds", and
        // answering before the search says nothing about whether the user exists.
        // The refusals below are debug: each login has its audit line and record already,
        // and at info a password spray would write a line per request past
        // `radmfa::audit=warn`, the documented cut for journald's rate limit.
        if password.is_empty() {
            tracing::debug!(user, "empty password refused");
            return Ok(PrimaryOutcome::Denied(Denial::EmptyPassword));
        }
        // A simple bind carries UTF-8 (RFC 4513 §5.1.1). Refused before the search as well:
        // after it, a known user would be answered at once and an unknown one padded, and
        // the difference would tell which names exist.
        let Some(password) = password.expose_str() else {
            tracing::debug!(user, "password is not valid UTF-8, refused without a bind");
            return Ok(PrimaryOutcome::Denied(Denial::BadPassword));
        };
        if user.is_empty() {
            self.pad_like_a_bind(Duration::ZERO).await?;
            return Ok(PrimaryOutcome::Denied(Denial::UnknownUser));
        }
        if let Some(cached) = self.cache.as_ref().and_then(|c| c.fresh(user)) {
            return self.authenticate_cached(user, cached, password).await;
        }
        let epoch = self.cache_epoch();
        let searching = Instant::now();
        match self.search_user(user).await? {
            SearchOutcome::NotFound => {
                tracing::debug!(user, "LDAP user not found");
                self.pad_like_a_bind(searching.elapsed()).await?;
                Ok(PrimaryOutcome::Denied(Denial::UnknownUser))
            }
            SearchOutcome::Ambiguous => {
                self.pad_like_a_bind(searching.elapsed()).await?;
                Ok(PrimaryOutcome::Denied(Denial::AmbiguousUser))
            }
            SearchOutcome::Found(info) => {
                let outcome = self.bind_and_remember(user, *info, password, epoch).await?;
                if matches!(outcome, PrimaryOutcome::Denied(_)) {
                    self.refused_check_latency.record(searching.elapsed());
                }
                Ok(outcome)
            }
        }
    }

    async fn lookup(&self, user: &str) -> Result<Option<UserInfo>, AuthError> {
        self.lookup_for(user, &self.search_attrs).await
    }

    async fn lookup_with_identity(&self, user: &str) -> Result<Option<UserInfo>, AuthError> {
        self.lookup_for(user, &self.identity_attrs).await
    }

    async fn is_member(
        &self,
        user: &str,
        info: &UserInfo,
        group_dn: &str,
    ) -> Result<bool, AuthError> {
        self.member_of(user, info, group_dn).await
    }

    /// The unknown user's path: the search, then the bind's time.
    async fn imitate_check(&self, user: &str) -> Result<(), AuthError> {
        let searching = Instant::now();
        self.search_user(user).await?;
        self.pad_like_a_bind(searching.elapsed()).await
    }
}

#[cfg(test)]
#[path = "ldap_tests.rs"]
mod tests;
