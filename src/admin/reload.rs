//! SIGHUP: read the config file again and swap in its `[[client]]` table, its policy
//! sections (`[users]`, `[totp]`, `[hotp]`, `[challenge]`, `[lockout]`, `[audit]`,
//! `[upstream]`, `[upstreams.*]`: [`POLICY`]) and, if it changed
//! (or the file its `ca_file` names did), its `[ldap]` settings — so a NAS can be added, a
//! shared secret rotated, a client's policy or the lockout threshold changed, the
//! directory's service password rotated or a new directory server listed without a restart
//! (which would drop the duplicate cache and the requests in flight). The other sections
//! (`[server]`, `[store]`, `[radsec]`, `[metrics]`, the SMS and call providers) hold sockets,
//! files and connections opened at start: a change there is logged as needing a restart,
//! not applied. A file that does not validate, `[ldap]` settings that
//! cannot be set up (a CA file that does not parse, say), or changed `[ldap]` settings with
//! which no server takes the service account's bind (a mistyped password, no server of the
//! new list reachable), change nothing, and the log says why. Each UDP request looks its client up as it arrives, and so does each request on an
//! open RadSec connection; a RadSec connection whose address no longer has an entry, or
//! whose certificate no longer matches its entry's `radsec_name`, is closed at once. A
//! request in flight finishes with the directory it started with; the next one uses the new
//! settings (and new connections).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::app::AppState;
use crate::config::{ClientConfig, Config, StoreConfig};
use crate::file_stamp::{stamp, FileStamp};
use crate::secret::Secret;
use crate::server::clients::ClientTable;
use crate::server::metrics::Metrics;

pub struct Reloader {
    path: PathBuf,
    /// The file's sections that a reload does not apply, as the server started with them.
    fixed: toml::Table,
    /// The policy sections in use (as written in the file), to say which ones changed.
    policy: toml::Table,
    /// The `[ldap]` section in use (as written in the file).
    ldap: Option<toml::Value>,
    /// Its `ca_file` as it was read: a CA bundle replaced at the same path counts as a
    /// change too.
    ldap_ca: FileStamp,
    /// The service account's password in use: read from `bind_password_file`, it changes
    /// without the section changing.
    ldap_password: Option<Secret>,
    /// The longest request deadline of the starting clients: PostgreSQL connections were
    /// opened with it (`idle_in_transaction_session_timeout`).
    longest: Duration,
    /// SIGHUP, caught since `radmfa serve` began ([`catch_sighup`]).
    hup: Option<tokio::signal::unix::Signal>,
    /// The store's key file as the store was opened with it (read once it was: the first
    /// start creates it).
    store_key: Option<StoreKey>,
    /// The configuration warnings logged for the configuration in use (at the start, then
    /// at each applied reload): a reload logs only those it brings, not all of them again
    /// (a config tool reloading every minute filled the log with the same lines).
    warned: Vec<String>,
}

/// Every warning `config check` gives of `cfg` read from `text` at `path`, in its order.
fn config_warnings(cfg: &Config, path: &Path, text: &str) -> Vec<String> {
    let mut all = super::review::warnings(cfg);
    all.extend(super::review_file::warnings(path, text));
    all.extend(super::review_secret_files::warnings(path, text));
    all
}

/// `store.key_file` as in use: a key replaced at the same path changes no text of the
/// config file, yet the next start runs with it (or refuses to).
struct StoreKey {
    stamp: FileStamp,
    key: Option<crate::store::Sealer>,
}

impl StoreKey {
    fn read(store: &StoreConfig) -> StoreKey {
        let path = key_file(store);
        StoreKey {
            stamp: stamp(path),
            key: crate::store::KeyFile::load(path).ok(),
        }
    }
}

fn key_file(store: &StoreConfig) -> &Path {
    match store {
        StoreConfig::Sqlite { key_file, .. } | StoreConfig::Postgres { key_file, .. } => key_file,
    }
}

/// SIGHUP as [`catch_sighup`] caught it.
pub type Hangups = std::io::Result<tokio::signal::unix::Signal>;

/// SIGHUP, caught from here on: called first thing in `radmfa serve`, before the config
/// file is read. The signal's default action ends the process, and systemd's
/// `ExecReload=/bin/kill -HUP $MAINPID` sends it whenever asked (`systemctl restart` then
/// `reload`, a reload during a slow start with the database still starting): the server
/// died with nothing logged. A SIGHUP that arrives before the server serves is kept (tokio
/// remembers it until it is waited for) and applied as a reload once it does, rather than
/// dropped: the file may have changed after it was read. Before this runs (the program
/// loading, the runtime starting) nothing can catch it.
pub fn catch_sighup() -> Hangups {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
}

/// SIGHUP's disposition as the process was started with it, while [`ignore_sighup`] has it
/// ignored.
pub struct SighupIgnored(libc::sighandler_t);

/// SIGHUP ignored from the first line of `main`, before the runtime starts and the command
/// line is parsed (milliseconds, in which [`catch_sighup`] cannot run yet): `serve` then
/// catches it before reading its file, so one ignored meanwhile asked for nothing the read
/// does not see; every other command puts it back as it was ([`SighupIgnored::restore`]), so
/// a closed terminal still ends `audit --follow` (and `nohup` still keeps it going).
pub fn ignore_sighup() -> SighupIgnored {
    // SAFETY: sets a signal's disposition, before any other thread exists; no handler runs.
    SighupIgnored(unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) })
}

impl SighupIgnored {
    pub fn restore(self) {
        if self.0 != libc::SIG_ERR {
            // SAFETY: puts back the disposition `signal` returned (SIG_DFL, or SIG_IGN).
            unsafe { libc::signal(libc::SIGHUP, self.0) };
        }
    }
}

impl Reloader {
    /// `text`: the file as `started` was parsed from it; `hup`: [`catch_sighup`]'s.
    pub fn new(path: &Path, started: &Config, text: &str, hup: Hangups) -> anyhow::Result<Self> {
        // Said here, once the log is set up.
        let hup = hup
            .map_err(
                |e| warn!(error = %e, "cannot catch SIGHUP; reloading clients needs a restart"),
            )
            .ok();
        let Sections {
            fixed,
            policy,
            ldap,
        } = sections_of(text, path)?;
        Ok(Reloader {
            path: path.to_path_buf(),
            fixed,
            policy,
            ldap,
            ldap_ca: ca_stamp(started),
            ldap_password: bind_password(started),
            longest: longest_request(started, &started.clients),
            hup,
            store_key: None,
            warned: config_warnings(started, path, text),
        })
    }

    /// The configuration's warnings, for the start to log (worked out once, here).
    pub fn warnings(&self) -> &[String] {
        &self.warned
    }

    /// Reloads the client table, the policy sections (and the directory, if `[ldap]`
    /// changed) from the file; the number of clients and the names of the entries taken
    /// out, or why not.
    pub async fn reload(&mut self, app: &AppState) -> Result<(usize, Vec<String>), String> {
        // Read once: the configuration and the sections compared below come from the same
        // text, even if the file is being rewritten (an editor, a config tool) meanwhile.
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("reading {}: {e}", self.path.display()))?;
        // As at start (`Config::load`): a file every account may change is not applied.
        let file = self.path.display().to_string();
        crate::config::validate::not_writable_by_everyone(&file, &self.path)
            .map_err(|e| e.to_string())?;
        let new = Config::parse(&text, &self.path).map_err(|e| e.to_string())?;
        let running = app.config();
        let longest = longest_request(&running, &new.clients);
        if longest > self.longest && matches!(running.store, StoreConfig::Postgres { .. }) {
            return Err(format!(
                "a client's request deadline grew to {} ms, beyond the {} ms the database \
                 connections were opened with; restart radmfa to apply it",
                longest.as_millis(),
                self.longest.as_millis()
            ));
        }
        // [voice] too waits for a restart: the new clients' held calls must fit the running
        // call lifetime, as at start (a key pressed after it approves nothing).
        crate::config::validate::held_calls_within_their_lifetime(&new.clients, &running.delivery)
            .map_err(|e| {
                format!("{e} (the running [voice]; a [voice] change waits for a restart)")
            })?;
        // The RadSec listener keeps the idle timeout it started with (a [radsec] change
        // waits for a restart), so the new clients are held to that one, as at start: a
        // held call must end before its connection's idle timer fires.
        if let Some(r) = &running.radsec {
            if r.idle_timeout <= longest {
                return Err(format!(
                    "a client's request deadline ({} ms, a held call's voice_budget_secs \
                     included) is not shorter than the running radsec.idle_timeout_secs ({} s); \
                     raise idle_timeout_secs and restart radmfa first",
                    longest.as_millis(),
                    r.idle_timeout.as_secs()
                ));
            }
        }
        let Sections {
            fixed: now,
            policy,
            ldap,
        } = sections_of(&text, &self.path).map_err(|e| format!("{e:#}"))?;
        // Built before anything is swapped: settings that cannot be used change nothing.
        let ldap_ca = ca_stamp(&new);
        let ldap_password = bind_password(&new);
        let ldap_keys = self.ldap_changes(&ldap, &ldap_ca, &ldap_password);
        let ldap_changed = !ldap_keys.is_empty();
        // An unchanged [ldap] keeps the running directory client, and its open connections:
        // a new one made every login after the reload pay for connecting again (two round
        // trips more at a branch office's distance from its directory, more with TLS).
        let directory = if ldap_changed {
            Some(directory_for(&new, &ldap_keys).await?)
        } else {
            None
        };
        let mut changed = waiting_for_restart(&self.fixed, &now, &running, &new);
        if let Some(key) = self.key_file_replaced(&new.store).await {
            // Said once, with what the next start will make of it.
            changed.retain(|c| c != "store.key_file");
            changed.push(key);
        }
        if !changed.is_empty() {
            warn!(
                "reload: {} changed in {} (or a file it names); only [[client]] entries, \
                 [ldap] and the policy sections are reloaded, the rest takes effect after a \
                 restart",
                changed.join(", "),
                self.path.display()
            );
        }
        // A refused service account holds binds off; the admin reloading may have fixed it
        // in the directory, where this file does not show it.
        app.primary().forget_refusals();
        if let Some(directory) = directory {
            app.set_primary(directory);
            // New directory settings are unproven, as at start: the node's health (the
            // gauge, no-reply clients' Status-Server) follows a probe of them, not the old
            // directory's last answer, so a new DC out of reach or a wrong rotated
            // password does not say "alive" until a login fails.
            app.backend_health.prove_again();
            self.ldap = ldap;
            self.ldap_ca = ldap_ca;
            self.ldap_password = ldap_password;
            info!("reload: new [ldap] settings in use from the next request");
            // Said only when there was one to empty (not when this reload turns it on).
            if caches_entries(&running) {
                info!("reload: LDAP entry cache emptied");
            }
        } else if app.primary().empty_entry_cache() {
            // Every reload empties the entry cache: `systemctl reload` is how an admin makes
            // a changed phone number or a renamed account count at once.
            info!("reload: LDAP entry cache emptied");
        }
        let policy_changed = changed_sections(&self.policy, &policy);
        self.policy = policy;
        let keep_days_changed = running.audit.keep_days != new.audit.keep_days;
        let clients = new.clients.len();
        let removed: Vec<String> = running
            .clients
            .iter()
            .filter(|c| !new.clients.iter().any(|n| n.name == c.name))
            .map(|c| c.name.clone())
            .collect();
        if let Some(what) = client_changes(&running.clients, &new.clients) {
            info!("reload: [[client]] entries {what}");
        }
        app.metrics
            .add_clients(new.clients.iter().map(|c| c.name.as_str()));
        app.set_clients(ClientTable::new(&new.clients));
        // What holds sockets, files and connections stays as the server started with it
        // (their TOML sections are the `fixed` ones); anything else is taken from the file,
        // so a new Config field is reloaded unless it is listed here.
        app.upstream_health.retain(&new.upstreams);
        let new_legacy = new.legacy_app_passwords;
        app.set_config(Config {
            server: running.server.clone(),
            store: running.store.clone(),
            metrics: running.metrics,
            radsec: running.radsec.clone(),
            delivery: running.delivery.clone(),
            ..new
        });
        // The audit purge reads its keep_days once a minute, not at a request: "from the
        // next request" was said of it, and nothing happened until the next minute. (A
        // whole [audit] section added or taken away is said both ways: its other keys
        // apply from the next request.)
        let per_request: Vec<String> = policy_changed
            .into_iter()
            .filter(|k| k != "audit.keep_days")
            .collect();
        if !per_request.is_empty() {
            info!(
                "reload: {} in use from the next request",
                per_request.join(", ")
            );
        }
        if keep_days_changed {
            info!("reload: audit.keep_days in use from the next housekeeping run, within a minute");
        }
        // Policy, though in [store] (whose other keys wait for a restart, and whose section
        // compares only them): applied, and said. Turned off by a reload, it had been left
        // on with nothing said (review).
        if running.legacy_app_passwords != new_legacy {
            info!("reload: store.legacy_app_passwords = {new_legacy} in use from the next request");
        }
        // Each new or changed entry as the start-up log describes it, against the sections
        // running: a client given methods = ["voice"] while [voice] waits for a restart
        // showed only its name, and refused everyone until the restart with nothing said.
        let applied = app.config();
        for c in &applied.clients {
            let was = running.clients.iter().find(|o| o.name == c.name);
            if was.is_none_or(|o| format!("{o:?}") != format!("{c:?}")) {
                info!(
                    "reload: client {:?}: {}",
                    c.name,
                    super::review::client_line(&applied, c)
                );
            }
        }
        let warnings = config_warnings(&app.config(), &self.path, &text);
        for w in warnings.iter().filter(|w| !self.warned.contains(w)) {
            tracing::warn!("{w}");
        }
        let still = warnings.iter().filter(|w| self.warned.contains(w)).count();
        if still > 0 {
            info!(
                "reload: {still} warning(s) logged before still apply (`radmfa config check` \
                 lists every one)"
            );
        }
        self.warned = warnings;
        // For monitoring: an applied reload whose file also changed what only a restart
        // applies leaves the running configuration behind the file.
        app.metrics.restart_pending.store(
            u64::from(!changed.is_empty()),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok((clients, removed))
    }
}

/// The keys and sections a reload does not apply that differ between the running
/// configuration and the file: `fixed` and `now` are their sections as written.
fn waiting_for_restart(
    fixed: &toml::Table,
    now: &toml::Table,
    running: &Config,
    new: &Config,
) -> Vec<String> {
    let mut changed = changed_sections(fixed, now);
    // A key written out with its default (a config tool writing every key) changes
    // nothing in effect: not reported as waiting for a restart.
    changed.retain(|key| !same_in_effect(running, new, key));
    // A secret read from a file (`auth_token_file`, `url_file`) changes with the file, not
    // the section's text: a rotated one must not look applied. Not named again when its
    // whole section is (`[twilio]` added: not "[twilio], twilio.auth_token").
    for key in fixed_secrets_changed(running, new) {
        let section = key.split('.').next().map(|s| format!("[{s}]"));
        if !changed
            .iter()
            .any(|c| c == key || Some(c) == section.as_ref())
        {
            changed.push(key.to_string());
        }
    }
    changed
}

/// The secrets of the sections a reload does not apply that differ between `old` and `new`,
/// as their keys.
fn fixed_secrets_changed(old: &Config, new: &Config) -> Vec<&'static str> {
    use crate::config::delivery::HttpAuth;
    let twilio = |c: &Config| c.delivery.twilio.as_ref().map(|t| t.auth_token.clone());
    let http = |c: &Config, bearer: bool| match c.delivery.http_sms.as_ref().map(|h| &h.auth) {
        Some(HttpAuth::Basic { password, .. }) if !bearer => Some(password.clone()),
        Some(HttpAuth::Bearer(token)) if bearer => Some(token.clone()),
        _ => None,
    };
    let store = |c: &Config| match &c.store {
        StoreConfig::Postgres { settings, .. } => Some(settings.url.clone()),
        StoreConfig::Sqlite { .. } => None,
    };
    let differ = |a: Option<Secret>, b: Option<Secret>| match (a, b) {
        (Some(a), Some(b)) => !crate::radius::crypto::ct_eq(a.expose(), b.expose()),
        (a, b) => a.is_some() != b.is_some(),
    };
    // The gateway's URL, headers and body are masked in its Debug (an API key in the query,
    // an X-Api-Key header, a key in a JSON body), so the section comparison cannot see a
    // rotated key there: compared here, as the secrets are.
    let gateway = |c: &Config, part: fn(&crate::config::delivery::HttpSmsConfig) -> String| {
        c.delivery.http_sms.as_ref().map(|h| Secret::from(part(h)))
    };
    let url = |h: &crate::config::delivery::HttpSmsConfig| h.url.clone();
    let headers = |h: &crate::config::delivery::HttpSmsConfig| format!("{:?}", h.headers);
    let body = |h: &crate::config::delivery::HttpSmsConfig| h.body.clone();
    [
        ("http_sms.url", differ(gateway(old, url), gateway(new, url))),
        (
            "http_sms.headers",
            differ(gateway(old, headers), gateway(new, headers)),
        ),
        (
            "http_sms.body",
            differ(gateway(old, body), gateway(new, body)),
        ),
        ("twilio.auth_token", differ(twilio(old), twilio(new))),
        (
            "http_sms.password",
            differ(http(old, false), http(new, false)),
        ),
        ("http_sms.token", differ(http(old, true), http(new, true))),
        ("store.url", differ(store(old), store(new))),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

impl Reloader {
    /// Notes the store's key file as the store was just opened with it (the first start
    /// creates it): a reload compares the file with this.
    pub fn store_opened(&mut self, store: &StoreConfig) {
        self.store_key = Some(StoreKey::read(store));
    }

    /// `store.key_file` of the file's `store` if it holds another key than the one in use,
    /// named with what the next start will find: a key the database's seeds are not sealed
    /// with stops it. (A file touched, or the same key copied over it, is no change.)
    async fn key_file_replaced(&self, store: &StoreConfig) -> Option<String> {
        let in_use = self.store_key.as_ref()?;
        let path = key_file(store);
        if stamp(path) == in_use.stamp {
            return None;
        }
        let why = match crate::store::KeyFile::load(path) {
            Err(_) if !path.exists() => format!(
                "{} is gone: the next start makes a new key, which this database's seeds are \
                 not sealed with, and refuses to run",
                path.display()
            ),
            Err(e) => format!("{e}: the next start refuses to run"),
            Ok(key) => {
                let same = in_use
                    .key
                    .as_ref()
                    .is_some_and(|k| crate::radius::crypto::ct_eq(k.code_key(), key.code_key()));
                if same {
                    return None;
                }
                match super::check::key_opens(store, &key).await {
                    Ok(true) => "another key".to_string(),
                    Ok(false) => "another key, not the one this database's seeds are sealed \
                                  with: the next start refuses to run; put the key in use back"
                        .to_string(),
                    Err(e) => format!(
                        "another key; whether this database's seeds are sealed with it could \
                         not be checked: {e}"
                    ),
                }
            }
        };
        Some(format!("store.key_file ({why})"))
    }

    /// What differs between the `[ldap]` in use and the file's (`ldap`, and the files it
    /// names as read now): its keys (`ldap.urls`), and a password or CA file replaced under
    /// the same name. Empty: nothing.
    fn ldap_changes(
        &self,
        ldap: &Option<toml::Value>,
        ca: &FileStamp,
        password: &Option<Secret>,
    ) -> Vec<String> {
        let section = |v: &Option<toml::Value>| -> toml::Table {
            v.iter().map(|v| ("ldap".to_string(), v.clone())).collect()
        };
        let mut keys = changed_sections(&section(&self.ldap), &section(ldap));
        // The text the same, the value not: read from the file the section names.
        if keys.is_empty() && *password != self.ldap_password {
            keys.push("ldap.bind_password_file (its contents)".into());
        }
        if *ca != self.ldap_ca && !keys.iter().any(|k| k == "ldap.ca_file") {
            keys.push("ldap.ca_file (its contents)".into());
        }
        keys
    }
}

/// The directory `new` describes. When its `[ldap]` changed (`changed`, its keys), the new
/// settings are tried first, as `config check --connect` does: applied untried, a mistyped
/// rotated password or a server list none of whose servers answers refused every login
/// until the next reload. A reload is all or nothing, so the rest of the file waits too;
/// the running directory keeps serving meanwhile (this runs on the reload's own task).
async fn directory_for(
    new: &Config,
    changed: &[String],
) -> Result<Arc<dyn crate::auth::PrimaryAuth>, String> {
    let Some(settings) = new.ldap.as_ref().filter(|_| !changed.is_empty()) else {
        return crate::auth::directory(new.ldap.as_ref()).map_err(|e| format!("[ldap]: {e}"));
    };
    let ldap = crate::auth::LdapAuth::new(settings.clone()).map_err(|e| format!("[ldap]: {e}"))?;
    let passed_over = ldap.first_to_bind().await.map_err(|e| {
        format!(
            "{} changed, but no server of the new [ldap] settings took the service \
             account's bind and read base_dn ({e}); nothing of the file is applied (its \
             [[client]] entries and policy sections neither) while the new [ldap] does not \
             work: correct it, or reload again once the directory answers",
            changed.join(", ")
        )
    })?;
    // Servers of the new list that failed before one passed: warned of, as at start (only
    // a gauge told of a mistyped first URL).
    for failed in passed_over {
        tracing::warn!(
            "reload: new [ldap] settings: {failed}; logins that need that server fail \
             over to the next"
        );
    }
    Ok(Arc::new(ldap))
}

/// Whether `config` has `[ldap] entry_cache_seconds` on.
fn caches_entries(config: &Config) -> bool {
    config
        .ldap
        .as_ref()
        .is_some_and(|l| !l.entry_cache_ttl.is_zero())
}

/// Reloads on every SIGHUP until `stop`.
pub async fn on_sighup(app: Arc<AppState>, mut reloader: Reloader, stop: CancellationToken) {
    let Some(mut hup) = reloader.hup.take() else {
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            r = hup.recv() => if r.is_none() { return },
        }
        match reloader.reload(&app).await {
            Ok((n, removed)) => {
                Metrics::inc(&app.metrics.reloads_applied);
                app.metrics.config_read(app.clock.now());
                // Before the line that says the reload is done: what it ends is ended then.
                crate::pipeline::remembered::fit_to_clients(&*app.store, &app.config().clients)
                    .await;
                info!(
                    "reload: {n} [[client]] entries from {}",
                    reloader.path.display()
                );
                close_prompts_of(&app, &removed).await;
            }
            Err(e) => {
                // `systemctl reload` returns success whatever happens here: the counter is
                // how monitoring learns that the running configuration is not the file.
                Metrics::inc(&app.metrics.reloads_refused);
                error!("reload: {e}; the running configuration is unchanged")
            }
        }
    }
}

/// Ends the open prompts of the entries a reload took out. A NAS removed is cut off, and
/// its prompts with it: kept, they waited for the challenge timeout, and an entry added
/// again under the name (another device at another address, with another secret) finished
/// the old device's logins. On a shared store this ends them on every node, as the removal
/// will once each node reloads. The entry is already out of the table, so nothing can
/// answer them meanwhile; a store that fails here leaves them to expire, and says so.
async fn close_prompts_of(app: &AppState, removed: &[String]) {
    for name in removed {
        match app.store.close_client_challenges(name).await {
            Ok(0) => {}
            Ok(n) => info!("reload: {n} open prompt(s) of removed client {name:?} closed"),
            Err(e) => warn!(
                error = %e,
                "reload: the open prompts of removed client {name:?} could not be closed; \
                 they expire with [challenge] timeout_secs"
            ),
        }
    }
}

/// When `[ldap] ca_file` last changed, if there is one.
fn bind_password(cfg: &Config) -> Option<Secret> {
    cfg.ldap.as_ref().map(|l| l.bind_password.clone())
}

fn ca_stamp(cfg: &Config) -> FileStamp {
    cfg.ldap.as_ref()?.ca_file.as_deref().and_then(stamp)
}

fn longest_request(cfg: &Config, clients: &[ClientConfig]) -> Duration {
    clients
        .iter()
        .map(|c| c.factors.request_deadline(cfg.server.request_deadline))
        .fold(cfg.server.request_deadline, Duration::max)
}

/// The sections a reload applies besides `[[client]]` and `[ldap]`: read per request.
const POLICY: [&str; 8] = [
    "users",
    "totp",
    "hotp",
    "challenge",
    "lockout",
    "audit",
    "upstream",
    "upstreams",
];

/// A config file's top-level sections, as written, sorted by what a reload does with them.
struct Sections {
    /// Not applied by a reload.
    fixed: toml::Table,
    /// The [`POLICY`] sections (those present).
    policy: toml::Table,
    ldap: Option<toml::Value>,
}

/// A config file's sections, from the text its configuration was parsed from (so this
/// cannot fail on it; toml's own message, which quotes the line, is not passed on anyway).
fn sections_of(text: &str, path: &Path) -> anyhow::Result<Sections> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|_| anyhow::anyhow!("parsing {}", path.display()))?;
    table.remove("client");
    let ldap = table.remove("ldap");
    let policy = POLICY
        .iter()
        .filter_map(|k| Some((k.to_string(), table.remove(*k)?)))
        .collect();
    Ok(Sections {
        fixed: table,
        policy,
        ldap,
    })
}

/// What differs: the keys of a section in both (`server.max_in_flight`), else the section
/// added or taken out (`[metrics]`). "[server] changed" left the admin to find the key.
fn changed_sections(old: &toml::Table, new: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    for k in union(old, new) {
        match (old.get(k), new.get(k)) {
            (a, b) if a == b => {}
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => out.extend(
                union(a, b)
                    .into_iter()
                    .filter(|key| a.get(*key) != b.get(*key))
                    .map(|key| format!("{k}.{key}")),
            ),
            _ => out.push(format!("[{k}]")),
        }
    }
    out
}

/// The keys of both tables, sorted, each once.
fn union<'a>(a: &'a toml::Table, b: &'a toml::Table) -> Vec<&'a String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Whether the section `key` names (`server.max_in_flight`, `[metrics]`) has the same
/// settings in effect in `old` and `new`, for the sections a reload does not apply. Secrets
/// are masked in what is compared; [`fixed_secrets_changed`] compares them.
fn same_in_effect(old: &Config, new: &Config, key: &str) -> bool {
    let section = key.trim_start_matches('[').split(['.', ']']).next();
    let same =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") == format!("{b:?}");
    match section {
        Some("server") => same(&old.server, &new.server),
        Some("store") => same(&old.store, &new.store),
        Some("metrics") => same(&old.metrics, &new.metrics),
        Some("radsec") => same(&old.radsec, &new.radsec),
        Some("sms" | "voice" | "twilio" | "http_sms" | "callbacks" | "phone") => {
            same(&old.delivery, &new.delivery)
        }
        _ => false,
    }
}

/// The `[[client]]` entries a reload adds, takes out and changes, by name, for its log
/// line ("3 entries" said nothing of a client removed or a secret rotated). `None`: the
/// same entries.
fn client_changes(old: &[ClientConfig], new: &[ClientConfig]) -> Option<String> {
    fn named<'a>(list: &'a [ClientConfig], name: &str) -> Option<&'a ClientConfig> {
        list.iter().find(|c| c.name == name)
    }
    let mut parts = Vec::new();
    let added: Vec<&str> = new
        .iter()
        .filter(|c| named(old, &c.name).is_none())
        .map(|c| c.name.as_str())
        .collect();
    let removed: Vec<&str> = old
        .iter()
        .filter(|c| named(new, &c.name).is_none())
        .map(|c| c.name.as_str())
        .collect();
    let mut changed = Vec::new();
    for c in new {
        let Some(was) = named(old, &c.name) else {
            continue;
        };
        // Debug masks the secret: compared on its own, and said apart from the rest. The
        // addresses' order matters to no lookup.
        let secret = !crate::radius::crypto::ct_eq(was.secret.expose(), c.secret.expose());
        let sorted = |c: &ClientConfig| {
            let mut c = c.clone();
            c.networks.sort();
            format!("{c:?}")
        };
        let rest = sorted(was) != sorted(c);
        match (secret, rest) {
            (true, true) => changed.push(format!("{} (its secret too)", c.name)),
            (true, false) => changed.push(format!("{} (its secret)", c.name)),
            (false, true) => changed.push(c.name.clone()),
            (false, false) => {}
        }
    }
    for (what, names) in [
        ("added", added.join(", ")),
        ("removed", removed.join(", ")),
        ("changed", changed.join(", ")),
    ] {
        if !names.is_empty() {
            parts.push(format!("{what}: {names}"));
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section added whole is named once, not again by the secrets in it; a secret
    /// rotated in a section otherwise the same is named by its key.
    #[test]
    fn a_section_added_is_named_once_and_a_rotated_secret_by_its_key() {
        let base = "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                    bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                    [[client]]\nname = \"vpn\"\naddress = \"127.0.0.1\"\n\
                    secret = \"0123456789abcdef\"\n";
        let gateway = |key: &str| {
            format!(
                "{base}[http_sms]\nurl = \"https://sms.example.org/send?key={key}&to={{phone}}\
                 &text={{message}}\"\nmethod = \"GET\"\nauth = \"bearer\"\ntoken = \"{key}\"\n"
            )
        };
        let path = Path::new("radmfa.toml");
        let read = |text: &str| {
            let config = Config::parse(text, path).expect("valid");
            (sections_of(text, path).unwrap().fixed, config)
        };
        let (none, without) = read(base);
        let (first, with) = read(&gateway("first"));
        let (_, rotated) = read(&gateway("second"));
        assert_eq!(
            waiting_for_restart(&none, &first, &without, &with),
            ["[http_sms]"]
        );
        let (second, _) = read(&gateway("second"));
        assert_eq!(
            waiting_for_restart(&first, &second, &with, &rotated),
            ["http_sms.url", "http_sms.token"]
        );
    }

    #[test]
    fn changed_sections_are_named_and_clients_ignored() {
        let t = |s: &str| {
            let mut t: toml::Table = s.parse().unwrap();
            t.remove("client");
            t
        };
        let old = t("[server]\nmax_in_flight = 5\n[ldap]\nurls = []\n[[client]]\nname = \"a\"\n");
        let same = t("[ldap]\nurls = []\n[server]\nmax_in_flight = 5\n[[client]]\nname = \"b\"\n");
        assert!(changed_sections(&old, &same).is_empty());
        let new = t("[server]\nmax_in_flight = 6\n[ldap]\nurls = []\n[metrics]\nlisten = \"x\"\n");
        assert_eq!(
            changed_sections(&old, &new),
            ["[metrics]", "server.max_in_flight"]
        );
    }

    #[test]
    fn client_changes_are_named() {
        let c = |name: &str, secret: &str, address: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 [[client]]\nname = \"{name}\"\naddress = \"{address}\"\n\
                 secret = \"{secret}\"\n"
            );
            let cfg = Config::parse(&text, Path::new("radmfa.toml")).expect("valid");
            cfg.clients[0].clone()
        };
        let (s1, s2) = ("0123456789abcdef", "fedcba9876543210");
        let old = [
            c("a", s1, "10.0.0.1"),
            c("b", s1, "10.0.0.2"),
            c("d", s1, "10.0.0.4"),
        ];
        let new = [
            c("a", s2, "10.0.0.1"),
            c("c", s1, "10.0.0.3"),
            c("d", s2, "10.0.0.5"),
        ];
        assert_eq!(
            client_changes(&old, &new).unwrap(),
            "added: c; removed: b; changed: a (its secret), d (its secret too)"
        );
        assert_eq!(client_changes(&old, &old), None);
        let two = |first: &str, second: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 [[client]]\nname = \"b\"\naddress = [\"{first}\", \"{second}\"]\n\
                 secret = \"{s1}\"\n"
            );
            Config::parse(&text, Path::new("radmfa.toml"))
                .expect("valid")
                .clients
        };
        let (a, b) = ("10.20.0.0/16", "10.30.0.0/16");
        assert_eq!(client_changes(&two(a, b), &two(b, a)), None, "reordered");
    }

    /// A default written out is no change waiting for a restart; another value is.
    #[test]
    fn a_default_written_out_changes_nothing() {
        let cfg = |server: &str| {
            let text = format!(
                "[server]\n{server}\n[ldap]\nurls = [\"ldap://127.0.0.1\"]\n\
                 bind_dn = \"cn=a\"\nbind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 [[client]]\nname = \"a\"\naddress = \"10.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\n"
            );
            Config::parse(&text, Path::new("radmfa.toml")).expect("valid")
        };
        let (bare, written) = (cfg(""), cfg("log_format = \"text\""));
        assert!(same_in_effect(&bare, &written, "server.log_format"));
        let json = cfg("log_format = \"json\"");
        assert!(!same_in_effect(&bare, &json, "server.log_format"));
    }
}
