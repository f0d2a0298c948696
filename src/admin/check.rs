//! `radmfa config check --connect [--user NAME]`: after the offline checks, reach what the
//! server needs the way it will — each LDAP URL with the service account, each `[upstream]`
//! server (a made-up user it must reject), the SMS and call providers (nothing sent), the
//! store — and,
//! for a user, what a login would find: the directory entry, the groups that matter to each
//! client, and the tokens. Like Duo's connectivity tool, so an admin can tell a directory or
//! store problem from a NAS problem before any NAS is pointed at radmfa. Prints one line per
//! check; `Ok(false)` if any failed. Nothing is created or changed: no SQLite database, no
//! key file, no migration (a store behind this release's schema is reported, its key
//! checked, and not opened; see `schema_behind`).

use anyhow::Context;

use crate::auth::{LdapAuth, PrimaryAuth};
use crate::config::delivery::PhoneSource;
use crate::config::Config;
use crate::delivery::phone::mask;

pub async fn connect(cfg: &Config, user: Option<&str>) -> anyhow::Result<bool> {
    let mut ok = true;
    // What the directory and the servers say (a user's displayName, an error text) is
    // theirs to write: escaped, so no control character can rewrite the admin's terminal
    // (hide a FAIL line, say).
    let mut line = |good: bool, what: String| {
        ok &= good;
        let what = super::printable(&what);
        println!("{} {what}", if good { "ok  " } else { "FAIL" });
    };
    let ldap = cfg
        .ldap
        .as_ref()
        .map(|s| LdapAuth::new(s.clone()).context("[ldap]"))
        .transpose()?;
    let servers = match &ldap {
        Some(l) => l.check_servers().await,
        None => Vec::new(),
    };
    let reached = servers.iter().any(|s| s.result.is_ok());
    // wan: whether a failover fits in the request deadline, from the times measured here.
    let failover = super::ldap_failover::measured_warning(cfg, &servers);
    for s in servers {
        match s.result {
            Ok(t) => line(
                true,
                format!(
                    "ldap {}: connected and bound in {} ms",
                    s.url,
                    t.as_millis()
                ),
            ),
            Err(e) => line(false, format!("ldap {}: {e}", s.url)),
        }
        if let Some(e) = s.base {
            line(false, format!("ldap {}: {e}", s.url));
        }
    }
    if let Some(w) = failover {
        println!("WARN {}", super::printable(&w));
    }
    // Read as logins read them; not where no server could be reached (said above, once).
    if let (Some(ldap), Some(settings), true) = (&ldap, &cfg.ldap, reached) {
        super::check_groups::check(cfg, settings, ldap, &mut line).await;
    }
    // A health of its own: names are looked up now, as the first login after a restart
    // would.
    let health = crate::auth::upstream::Health::default();
    for up in &cfg.upstreams {
        use crate::auth::upstream::{probe, status_server_probe, Answer};
        use crate::config::upstream::StatusCheck;
        let label = up.label();
        // Where each server led: one listed by address and again by a name that resolves
        // to it (or by two such names) passes the loader's "listed twice", and the group
        // then fails over to the server that just failed.
        let mut seen: std::collections::HashMap<std::net::SocketAddr, String> =
            std::collections::HashMap::new();
        for server in &up.servers {
            let t = std::time::Instant::now();
            let shown = match health.address(server, up.timeout).await {
                Ok(addr) => {
                    if let Some(first) = seen.get(&addr) {
                        println!(
                            "WARN {}",
                            super::printable(&format!(
                                "{label} {server} is {first} again (both at {addr}): the \
                                 group has one server fewer to fail over to than it lists; \
                                 list another server or drop one of them"
                            ))
                        );
                    } else {
                        seen.insert(addr, server.to_string());
                    }
                    if addr.to_string() != server.name {
                        format!("{server} (at {addr})")
                    } else {
                        server.to_string()
                    }
                }
                Err(e) => {
                    line(false, format!("{label} {server}: {e}"));
                    continue;
                }
            };
            match probe(up, &health, server, &cfg.server.name).await {
                Ok(Answer::Reject) => {
                    let took = t.elapsed();
                    line(
                        true,
                        format!(
                            "{label} {shown}: rejected a made-up user in {} ms (reached; \
                             address, secret and signing accepted)",
                            took.as_millis()
                        ),
                    );
                    // FreeRADIUS holds every reject for reject_delay (1 s by default): a
                    // wrong password then lands at the edge of timeout_ms, and one that
                    // lands past it counts as the server down, for dead_time_secs.
                    if took >= up.timeout / 2 {
                        println!(
                            "WARN {}",
                            super::printable(&format!(
                                "{label} {shown}: its reject took {} ms of {} = {}: a server \
                                 that holds its rejects (FreeRADIUS reject_delay, 1 s by \
                                 default) makes a wrong password look like the server down; \
                                 set reject_delay = 0 there, or raise {}",
                                took.as_millis(),
                                up.key("timeout_ms"),
                                up.timeout.as_millis(),
                                up.key("timeout_ms")
                            ))
                        );
                    }
                }
                Ok(Answer::Refused(why)) => {
                    line(false, format!("{label} {shown}: {why}"));
                    continue;
                }
                Ok(Answer::Accept(_)) => line(
                    false,
                    format!(
                        "{label} {shown}: ACCEPTED a made-up user with a random password: \
                         check its policies"
                    ),
                ),
                // The error says where a name led.
                Err(e) => {
                    line(false, format!("{label} {server}: {e}"));
                    continue;
                }
            }
            // A server that answers logins but not Status-Server would stay at the back
            // for good once it missed one request: its checks never succeed.
            if up.status_check == Some(StatusCheck::StatusServer) {
                let t = std::time::Instant::now();
                match status_server_probe(up, &health, server).await {
                    Ok(()) => line(
                        true,
                        format!(
                            "{label} {shown}: answered Status-Server in {} ms ({})",
                            t.elapsed().as_millis(),
                            up.key("status_check")
                        ),
                    ),
                    Err(e) => line(
                        false,
                        format!(
                            "{label} {server}: answers logins but not Status-Server ({e}); \
                             once it missed a request, {} = \"status-server\" would keep it \
                             at the back for good. NPS does not answer Status-Server: use \
                             \"access-request\"",
                            up.key("status_check")
                        ),
                    ),
                }
            }
        }
    }
    // Reached without sending anything: a wrong token or a gateway behind an unknown CA
    // shows here, not at the first login that needs a text or a call.
    super::check_delivery::check(cfg, &mut line).await;
    // A check creates nothing: on a fresh install `radmfa serve` creates the database and
    // the key file, as its own user. A database without its key file is an error: the
    // seeds in it cannot be unsealed, and opening would make a new, wrong key.
    // Known to hold nothing yet (no database, or one without radmfa's schema): `--user`
    // reads it as the first login will find it, empty, not as unread.
    let mut empty = matches!(&cfg.store, crate::config::StoreConfig::Sqlite { path, key_file }
        if !crate::app::has_database(path) && !key_file.exists());
    let unopened = match &cfg.store {
        crate::config::StoreConfig::Sqlite { path, key_file } => {
            let state = if path.exists() {
                "is an empty file (radmfa serve sets it up)"
            } else {
                "does not exist yet (radmfa serve creates it)"
            };
            // Not "does not exist": the file may well be there, out of this account's reach.
            let out_of_reach = crate::app::database_out_of_reach(path);
            match (crate::app::has_database(path), key_file.exists()) {
                _ if out_of_reach.is_some() => Some((
                    false,
                    format!("store: {}", out_of_reach.unwrap_or_default()),
                )),
                (true, true) => None,
                // The key file outlives its database only when the database went: moved
                // away for a restore whose backup then landed at another path, say. `serve`
                // refuses to start on it, as this says.
                (false, true) => Some((false, crate::app::key_without_database(path, key_file))),
                (false, false) => Some((true, format!("store: {} {state}", path.display()))),
                (true, false) => Some((
                    false,
                    format!(
                        "store: the key file {} is missing; the seeds in {} cannot be \
                         unsealed without it (restore it from your backup)",
                        key_file.display(),
                        path.display()
                    ),
                )),
            }
        }
        // Without its key file, opening the store would create one and record its key in
        // the database, tying the database to a file made by whoever ran the check.
        crate::config::StoreConfig::Postgres { settings, key_file } if !key_file.exists() => Some(
            match crate::store::postgres::PgStore::key_recorded(settings).await {
                Ok(false) => (
                    true,
                    format!(
                        "store: reached; the key file {} does not exist yet (radmfa serve \
                             creates it on the first node's first start)",
                        key_file.display()
                    ),
                ),
                Ok(true) => (
                    false,
                    format!(
                        "store: the key file {} is missing, and this database is in use: \
                             copy it from a node that uses this database, or restore it \
                             from its backup",
                        key_file.display()
                    ),
                ),
                Err(e) => (false, format!("store: {}: {e}", settings.url_source)),
            },
        ),
        crate::config::StoreConfig::Postgres { .. } => None,
    };
    // A store the service cannot write fails every login however good the rest: said
    // before anything good is said of it, as `serve` refuses it.
    let unopened = match (unopened, unwritable(&cfg.store)) {
        (Some((false, said)), _) => Some((false, said)),
        (_, Err(e)) => Some((false, format!("store: {e:#}"))),
        (said, Ok(presumed)) => {
            if let Some(w) = presumed {
                println!("WARN {}", super::printable(&format!("store: {w}")));
            }
            said
        }
    };
    // A store behind this release's schema is not opened: opening migrates it, and a check
    // of a new release run before installing it upgraded the running one's store, which
    // older releases then refused.
    let unopened = match unopened {
        Some(said) => Some(said),
        None => {
            let (said, no_schema) = schema_behind(&cfg.store).await;
            empty |= no_schema;
            said
        }
    };
    empty &= matches!(unopened, Some((true, _)));
    let store = match unopened {
        Some((good, what)) => {
            line(good, what);
            Err(None)
        }
        None => crate::app::open_store(&cfg.store).await.map_err(Some),
    };
    let store = match store {
        Err(None) => None,
        Ok(store) => {
            let damage = match &cfg.store {
                crate::config::StoreConfig::Sqlite { path, .. } => {
                    super::check_integrity::damage(path).await
                }
                crate::config::StoreConfig::Postgres { .. } => None,
            };
            match damage {
                None => {
                    line(true, "store: opened".into());
                    if let Some(w) = broken_tokens(&*store).await {
                        println!("WARN {}", super::printable(&w));
                    }
                }
                Some(said) => line(false, format!("store: {said}")),
            }
            Some(store)
        }
        Err(Some(e)) => {
            line(false, format!("store: {e:#}"));
            None
        }
    };
    if let Some(user) = user {
        let view = match (store.as_deref(), empty) {
            (Some(store), _) => StoreView::Open(store),
            (None, true) => StoreView::Empty,
            (None, false) => StoreView::Unread,
        };
        check_user(cfg, ldap.as_ref(), view, user, &mut line).await;
    }
    // On every path: a store left to the process's exit skipped PostgreSQL's Terminate
    // (the server logs a reset or an unexpected EOF) and left SQLite's WAL unmerged, its
    // -wal and -shm files behind.
    if let Some(store) = store {
        store.close().await;
    }
    Ok(ok)
}

/// Tokens whose seed no longer opens (a damaged row, a key file swapped for another that
/// happens to open the key check): their holders' logins all fail, and only `token list`
/// said so; a check of the deployment passed over them.
async fn broken_tokens(store: &dyn crate::store::Store) -> Option<String> {
    let tokens = store
        .list_tokens(&crate::store::TokenFilter::default())
        .await
        .ok()?;
    let broken: Vec<&str> = tokens
        .iter()
        .filter(|r| r.extra.unreadable_seed.is_some())
        .map(|r| r.token.serial.as_str())
        .collect();
    let first = broken.first()?;
    let more = match broken.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    Some(format!(
        "store: {} token(s) BROKEN, their seed does not open ({first}{more}): their holders \
         cannot log in at all (but with an app password) until they are repaired; `radmfa \
         token list` names them and says how",
        broken.len()
    ))
}

/// The store as `--user` reads it.
enum StoreView<'a> {
    Open(&'a dyn crate::store::Store),
    /// Not there yet, or without radmfa's schema: it holds nothing for anyone.
    Empty,
    /// Not opened for a reason said above (behind this release's schema, failing).
    Unread,
}

/// What a client's groups make of a login of the user there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Groups {
    /// Allowed and not exempt: the second factor decides.
    Decide,
    /// Not in any of allow_groups: refused whatever the factors (said above).
    NotAllowed,
    /// In exempt_groups: the password is enough.
    Exempt,
    /// A membership check failed: nothing to say.
    Unknown,
}

/// What the store and the directory hold for the user, for [`super::check_refusal`].
pub(super) struct Held<'a> {
    pub tokens: &'a [crate::store::Token],
    /// Serials of the tokens whose validity dates refuse every code now.
    pub out_of_dates: &'a [String],
    pub profile: &'a crate::store::UserProfile,
    pub entry: Option<&'a crate::auth::UserInfo>,
    pub app_passwords: bool,
}

/// What a login of `user` would find: the directory entry, the tokens, the phone number.
async fn check_user(
    cfg: &Config,
    ldap: Option<&LdapAuth>,
    store: StoreView<'_>,
    user: &str,
    line: &mut impl FnMut(bool, String),
) {
    let typed = user;
    let user = cfg.user_names.key(user);
    let mut entry = None;
    let mut groups = vec![Groups::Decide; cfg.clients.len()];
    if let Some(ldap) = ldap {
        entry = directory_entry(cfg, ldap, (typed, &user), &mut *line)
            .await
            .map(|(info, g)| {
                groups = g;
                info
            });
    } else {
        line(
            true,
            format!("user {user}: no [ldap]: known by name, as the upstream server accepts it"),
        );
    }
    let store = match store {
        StoreView::Open(store) => store,
        StoreView::Empty => return nothing_stored(cfg, &user, entry.as_ref(), &groups, line),
        StoreView::Unread => return,
    };
    let tokens = match store.tokens_for_user(&user).await {
        Ok(tokens) => {
            let serials: Vec<&str> = tokens.iter().map(|t| t.serial.as_str()).collect();
            line(
                true,
                format!(
                    "user {user}: {} token(s) enrolled{}{}",
                    tokens.len(),
                    if serials.is_empty() { "" } else { ": " },
                    serials.join(", ")
                ),
            );
            Some(tokens)
        }
        Err(e) => {
            line(false, format!("user {user}: reading tokens: {e}"));
            None
        }
    };
    // Not where the directory has the user's entry but it could not be read (said above):
    // its numbers would be missing from what is shown.
    let unread = ldap.is_some() && entry.is_none();
    let profile = match store.user_profile(&user).await {
        Ok(_) if unread => None,
        Ok(profile) => {
            phone_line(cfg, &user, &profile, entry.as_ref(), &mut *line);
            // The method a login starts with where several are offered, as `user show`
            // says it: the admin asking why alice was texted, not prompted, sees it here.
            if let Some(method) = &profile.method {
                line(
                    true,
                    format!("user {user}: default method {method} (user set-method)"),
                );
            }
            Some(profile)
        }
        Err(e) => {
            line(false, format!("user {user}: reading the profile: {e}"));
            None
        }
    };
    let app_passwords = store.app_passwords(&user).await.map(|p| !p.is_empty());
    // The tokens' validity dates (imported hardware tokens carry them): enabled, yet every
    // code refused, is no usable token.
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let out_of_dates = store
        .list_tokens(&crate::store::TokenFilter {
            user: Some(user.clone()),
            ..Default::default()
        })
        .await
        .map(|records| {
            records
                .iter()
                .filter(|r| crate::mfa::verify::validity_at(r, now).is_some())
                .map(|r| r.token.serial.clone())
                .collect::<Vec<_>>()
        });
    // Only what was all read: a guess would warn of a refusal that does not happen.
    if let (Some(tokens), Some(profile), Ok(app_passwords), Ok(out_of_dates)) =
        (tokens, profile, app_passwords, out_of_dates)
    {
        let held = Held {
            out_of_dates: &out_of_dates,
            tokens: &tokens,
            profile: &profile,
            entry: entry.as_ref(),
            app_passwords,
        };
        warn_of_refusals(cfg, &user, &held, &groups);
        // Whatever the factors: a fraud block or a lockout refuses the login everywhere.
        if profile.blocked_at.is_some() {
            println!(
                "WARN user {}: blocked after a fraud report (user show says when and why): \
                 every login with a second factor is refused until radmfa user unblock",
                super::printable(&user)
            );
        }
    }
    match store.user_status(&user).await {
        Ok(status) => {
            if let Some(until) = status.locked_until.filter(|t| *t > now) {
                println!(
                    "WARN user {}: second factor locked until {} after wrong codes: every \
                     login that needs it is refused until then, or radmfa user unlock",
                    super::printable(&user),
                    super::audit::fmt_time(until)
                );
            }
        }
        Err(e) => line(false, format!("user {user}: reading the lockout: {e}")),
    }
}

/// [`check_user`]'s tail for a store that holds nothing yet: no token, no stored number,
/// as the first login will find it (refused where the client has `no_factor = "reject"`).
fn nothing_stored(
    cfg: &Config,
    user: &str,
    entry: Option<&crate::auth::UserInfo>,
    groups: &[Groups],
    line: &mut impl FnMut(bool, String),
) {
    line(
        true,
        format!("user {user}: 0 token(s) enrolled (the store holds nothing yet)"),
    );
    // Not where the directory has the user's entry but it could not be read (said above).
    if cfg.ldap.is_some() && entry.is_none() {
        return;
    }
    let profile = crate::store::UserProfile::default();
    phone_line(cfg, user, &profile, entry, &mut *line);
    let held = Held {
        tokens: &[],
        out_of_dates: &[],
        profile: &profile,
        entry,
        app_passwords: false,
    };
    warn_of_refusals(cfg, user, &held, groups);
}

/// A WARN line per reason the user's login would be refused on some clients.
fn warn_of_refusals(cfg: &Config, user: &str, held: &Held<'_>, groups: &[Groups]) {
    for warning in super::check_refusal::refusals(cfg, user, held, groups) {
        println!("WARN {}", super::printable(&warning));
    }
}

/// The number texts and calls would go to, found as a login finds it (`[phone] sources`
/// in order, the stored number included), or why there is none. Not a failure: a user
/// without a number may have a token.
fn phone_line(
    cfg: &Config,
    user: &str,
    profile: &crate::store::UserProfile,
    entry: Option<&crate::auth::UserInfo>,
    line: &mut impl FnMut(bool, String),
) {
    let empty = crate::auth::UserInfo::default();
    let info = entry.unwrap_or(&empty);
    let phone = &cfg.delivery.phone;
    let what = match crate::delivery::phone::phone_from(phone, profile, info) {
        Some((source, number)) => format!(
            "texts and calls go to {} (from {})",
            mask(&number),
            source_name(source)
        ),
        // Listed, but not dialable (the login stops there, see `phone_from`).
        None if phone
            .sources
            .contains(&crate::config::delivery::PhoneSource::Store)
            && profile
                .phone
                .as_deref()
                .is_some_and(|p| crate::delivery::phone::dialable(p, phone).is_err()) =>
        {
            let why = profile
                .phone
                .as_deref()
                .and_then(|p| crate::delivery::phone::dialable(p, phone).err())
                .map_or_else(String::new, |e| e.masked());
            format!(
                "no number texts or calls could use: the stored number cannot be dialled \
                 ({why}; store another with user set-phone); the directory's is not used in \
                 its place"
            )
        }
        None => match crate::delivery::phone::unused_number(phone, info) {
            Some(crate::delivery::phone::UnusedNumber::Unlisted) => {
                "no number texts or calls could use: the directory has one, in an attribute \
                 [phone] sources leaves out (without another second factor, such a user is \
                 refused where texts or calls could be used, not let in on the password: a \
                 warning below names those clients)"
                    .into()
            }
            Some(crate::delivery::phone::UnusedNumber::Unusable {
                why,
                no_country_code,
            }) => format!(
                "no number texts or calls could use: the directory's cannot be dialled \
                 ({why}; {}, or store one with user set-phone; without another second \
                 factor, such a user is refused where texts or calls could be used: a \
                 warning below names those clients)",
                if no_country_code {
                    "set [phone] default_country_code"
                } else {
                    "correct it in the directory"
                }
            ),
            None => "no number texts or calls could use".into(),
        },
    };
    line(true, format!("user {user}: {what}"));
}

/// A SQLite store the service could not write, refused as `serve` refuses it (and, for a
/// check run as root, as the service's user would find it: see `store::writable`).
fn unwritable(store: &crate::config::StoreConfig) -> anyhow::Result<Option<String>> {
    match store {
        #[cfg(unix)]
        crate::config::StoreConfig::Sqlite { path, key_file } => {
            crate::store::writable::refuse_unwritable_by_service(path, key_file)
        }
        #[cfg(unix)]
        crate::config::StoreConfig::Postgres { key_file, .. } => {
            Ok(crate::store::writable::key_unreadable_by_service(key_file))
        }
        #[cfg(not(unix))]
        _ => Ok(None),
    }
}

/// What to say instead of opening a store whose schema this release would upgrade (and
/// the check passes: the first start does it), or that cannot be asked; `None` to open it.
/// And whether the database holds no radmfa schema at all (nothing stored yet).
async fn schema_behind(store: &crate::config::StoreConfig) -> (Option<(bool, String)>, bool) {
    use crate::config::StoreConfig;
    let behind = match store {
        StoreConfig::Sqlite { path, .. } => {
            crate::store::sqlite::SqliteStore::schema_behind(path).await
        }
        StoreConfig::Postgres { settings, .. } => {
            crate::store::postgres::PgStore::schema_behind(settings).await
        }
    };
    // The key is still checked, from what the database recorded, without opening it as the
    // start does: a wrong key file passed the check and stopped the start.
    if let Ok(Some(_)) = behind {
        if let Some(refused) = key_refused(store).await {
            return (Some((false, refused)), false);
        }
    }
    let no_schema = matches!(behind, Ok(Some((0, _))));
    let said = match behind {
        Ok(None) => None,
        Ok(Some((0, _))) => Some((
            true,
            "store: reached; it holds no radmfa schema yet: `radmfa serve` (or `radmfa db \
             migrate`) sets it up. This check changed nothing"
                .into(),
        )),
        Ok(Some((version, known))) => Some((
            true,
            format!(
                "store: reached; its schema is at version {version} and this release's at \
                 {known}: this release's first start (or `radmfa db migrate`) brings it up to \
                 date. This check changed nothing, so it read nothing further from the store \
                 (see Upgrading in docs/operations.md before migrating)"
            ),
        )),
        Err(e) => Some((false, format!("store: {e}"))),
    };
    (said, no_schema)
}

/// Why the store's key file is not the one its database recorded, if it is not (none to
/// check where the file is missing: said before this, when the database is in use).
async fn key_refused(store: &crate::config::StoreConfig) -> Option<String> {
    use crate::config::StoreConfig;
    let key_file = match store {
        StoreConfig::Sqlite { key_file, .. } | StoreConfig::Postgres { key_file, .. } => key_file,
    };
    if !key_file.exists() {
        return None;
    }
    let sealer = match crate::store::KeyFile::load(key_file) {
        Ok(sealer) => sealer,
        Err(e) => return Some(format!("store: {e}")),
    };
    let wrong = match store {
        StoreConfig::Sqlite { .. } => {
            "is not the key this database's seeds are sealed with; restore the key file that \
             belongs to this database"
        }
        StoreConfig::Postgres { .. } => crate::store::postgres::WRONG_KEY,
    };
    match key_opens(store, &sealer).await {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "store: store.key_file {}: {wrong}",
            key_file.display()
        )),
        Err(e) => Some(format!("store: {e}")),
    }
}

/// Whether the store's database was set up with `sealer`'s key (its `key_check` row, or its
/// first seeds), read without opening it as the start does.
pub(super) async fn key_opens(
    store: &crate::config::StoreConfig,
    sealer: &crate::store::Sealer,
) -> Result<bool, crate::store::StoreError> {
    use crate::config::StoreConfig;
    match store {
        StoreConfig::Sqlite { path, .. } => {
            crate::store::sqlite::SqliteStore::key_matches(path, sealer).await
        }
        StoreConfig::Postgres { settings, .. } => {
            crate::store::postgres::PgStore::recorded_key_opens(settings, sealer).await
        }
    }
}

fn source_name(source: PhoneSource) -> &'static str {
    match source {
        PhoneSource::Store => "the number stored with user set-phone",
        PhoneSource::Mobile => "the directory's mobile",
        PhoneSource::Telephone => "the directory's telephoneNumber",
    }
}

/// The user's entry and, per client, the groups that matter to it: printed, and what they
/// make of a login there (in `cfg.clients`' order).
async fn directory_entry(
    cfg: &Config,
    ldap: &LdapAuth,
    (typed, user): (&str, &str),
    line: &mut impl FnMut(bool, String),
) -> Option<(crate::auth::UserInfo, Vec<Groups>)> {
    let info = match ldap.lookup(user).await {
        Ok(Some(info)) => info,
        Ok(None) => {
            // Logins refuse such a name as unknown (the reply must not tell): the admin
            // asking why alice cannot log in is told here.
            let mut why = match ldap.why_not_found(user).await {
                Ok(why) => why,
                Err(e) => format!("not found (or not unique) with the user filter ({e})"),
            };
            if let Some(hint) = domain_hint(cfg, typed) {
                why.push_str("; ");
                why.push_str(&hint);
            }
            line(false, format!("user {user}: {why}"));
            return None;
        }
        Err(e) => {
            line(false, format!("user {user}: search failed: {e}"));
            return None;
        }
    };
    line(
        true,
        format!(
            "user {user}: {} (name {}, mail {})",
            info.dn,
            info.display_name.as_deref().unwrap_or("-"),
            info.mail.as_deref().unwrap_or("-"),
        ),
    );
    let mut standing = Vec::new();
    for client in &cfg.clients {
        // Per rule: Some(member of one of its groups), None when a check failed.
        let (mut allowed, mut exempt) = (Some(client.groups.allow.is_empty()), Some(false));
        let attribute_groups: Vec<String> = client
            .accept_attributes
            .by_group
            .iter()
            .map(|(g, _)| g.clone())
            .collect();
        for (kind, groups) in [
            ("allow_groups", &client.groups.allow),
            ("exempt_groups", &client.groups.exempt),
            ("group_attributes", &attribute_groups),
        ] {
            for group in groups {
                let member = match ldap.is_member(user, &info, group).await {
                    Ok(m) => {
                        line(
                            true,
                            format!(
                                "user {user}: {} {group} (client {:?} {kind})",
                                if m { "member of" } else { "not a member of" },
                                client.name
                            ),
                        );
                        Some(m)
                    }
                    Err(e) => {
                        // A login counts nobody a member of a group the directory lacks.
                        let none = matches!(e, crate::auth::AuthError::NoSuchGroup(_));
                        // Each error names the group.
                        line(false, e.to_string());
                        none.then_some(false)
                    }
                };
                let rule = match kind {
                    "allow_groups" => &mut allowed,
                    "exempt_groups" => &mut exempt,
                    _ => continue,
                };
                *rule = match (*rule, member) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                };
            }
        }
        standing.push(match (allowed, exempt) {
            (Some(false), _) => Groups::NotAllowed,
            (Some(true), Some(true)) => Groups::Exempt,
            (Some(true), Some(false)) => Groups::Decide,
            _ => Groups::Unknown,
        });
    }
    Some((info, standing))
}

/// For a name not found that came with a domain (`CORP\alice`, `alice@corp.example.org`)
/// which `[users] strip_domains` left on: the directory has `alice`, and the fix is the
/// list, not the spelling.
fn domain_hint(cfg: &Config, typed: &str) -> Option<String> {
    let domain = match typed.split_once('\\') {
        Some((domain, _)) => domain,
        None => typed.rsplit_once('@')?.1,
    };
    if domain.is_empty() || cfg.user_names.key(typed) != crate::store::user_key(typed) {
        return None;
    }
    Some(format!(
        "the name keeps its domain {domain:?}, which [users] strip_domains does not take \
         off: if users log in so, list {domain:?} there"
    ))
}
