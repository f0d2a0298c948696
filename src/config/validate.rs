//! `RawConfig` → `Config`: every value checked, every error naming its key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::raw::*;
use super::upstream::DEFAULT_GROUP;
use super::validate_ldap::ldap_settings;
use super::validate_store::store_config;
use super::*;
use crate::radius::reply_attr::ReplyAttr;

pub fn validate(raw: RawConfig, origin: &Path) -> Result<Config, ConfigError> {
    let names: Vec<String> = raw.clients.iter().map(|c| c.name.clone()).collect();
    checked(raw, origin).map_err(|e| naming_client(e, &names))
}

fn checked(raw: RawConfig, origin: &Path) -> Result<Config, ConfigError> {
    // Destructured exhaustively: a new section that is not wired here fails to compile.
    let RawConfig {
        server,
        store,
        users,
        ldap,
        totp,
        hotp,
        challenge,
        lockout,
        audit,
        metrics,
        radsec,
        phone,
        sms,
        voice,
        twilio,
        http_sms,
        callbacks,
        upstream,
        upstreams,
        clients,
    } = raw;
    let base = origin.parent().unwrap_or(Path::new("."));
    let server = server_config(server)?;
    let legacy_app_passwords = store.legacy_app_passwords;
    let mut store = store_config(store, base, server.request_deadline)?;
    let clients = client_configs(clients, base)?;
    let upstreams = super::upstream::upstream_groups(upstream, upstreams, base)?;
    for (i, c) in clients.iter().enumerate() {
        if let Primary::Upstream(group) = &c.primary {
            if !upstreams.iter().any(|u| &u.group == group) {
                return Err(if group == DEFAULT_GROUP {
                    ConfigError::invalid(
                        format!("client[{i}].primary"),
                        "\"upstream\" needs an [upstream] section naming the server(s)",
                    )
                } else {
                    ConfigError::invalid(
                        format!("client[{i}].upstream"),
                        format!(
                            "there is no [{}] section",
                            super::upstream::section_key(group)
                        ),
                    )
                });
            }
        }
    }
    if ldap.is_none() {
        without_directory(&clients)?;
    }
    let longest_request = clients
        .iter()
        .map(|c| c.factors.request_deadline(server.request_deadline))
        .fold(server.request_deadline, Duration::max);
    if let StoreConfig::Postgres { settings, .. } = &mut store {
        // The database ends a request transaction idle longer than any request may run.
        settings.max_request = longest_request;
    }
    let delivery = super::validate_delivery::validate(
        super::raw_delivery::RawDelivery {
            phone,
            sms,
            voice,
            twilio,
            http_sms,
            callbacks,
        },
        base,
    )?;
    held_calls_within_their_lifetime(&clients, &delivery)?;
    let config = Config {
        server,
        store,
        legacy_app_passwords,
        user_names: user_names(users, ldap.as_ref())?,
        ldap: ldap.map(|l| ldap_settings(l, base)).transpose()?,
        totp: totp_config(totp)?,
        hotp: hotp_config(hotp)?,
        challenge: challenge_config(challenge)?,
        lockout: lockout_config(lockout)?,
        audit: audit_config(audit)?,
        metrics: metrics.map(metrics_config).transpose()?,
        radsec: radsec
            .map(|r| radsec_config(r, base, longest_request))
            .transpose()?,
        delivery,
        upstreams,
        clients,
    };
    startable(&config)?;
    phone_sources_read(&config)?;
    Ok(config)
}

/// A directory attribute `[phone] sources` lists must be read: `""` in `[ldap.attributes]`
/// leaves it unread, and every number there would be missed without a word.
fn phone_sources_read(cfg: &Config) -> Result<(), ConfigError> {
    use super::delivery::PhoneSource;
    let Some(ldap) = &cfg.ldap else {
        return Ok(());
    };
    let names = &ldap.attributes;
    for (source, key, name) in [
        (PhoneSource::Mobile, "mobile", &names.mobile),
        (PhoneSource::Telephone, "telephone", &names.telephone),
    ] {
        if name.is_empty() && cfg.delivery.phone.sources.contains(&source) {
            return Err(ConfigError::invalid(
                format!("ldap.attributes.{key}"),
                format!(
                    "is \"\" (not read), but [phone] sources lists \"{key}\": name the \
                     attribute, or take it out of the sources"
                ),
            ));
        }
    }
    Ok(())
}

/// What `config check` cannot otherwise see before the start fails: one address listed
/// twice, two TCP listeners on one address. (Port 0, any free port, never collides.)
fn startable(cfg: &Config) -> Result<(), ConfigError> {
    let twice = |key: &str, addrs: &[SocketAddr]| -> Result<(), ConfigError> {
        for (i, a) in addrs.iter().enumerate() {
            if a.port() != 0 && addrs[..i].contains(a) {
                return Err(ConfigError::invalid(
                    format!("{key}[{i}]"),
                    format!("{a} is listed twice"),
                ));
            }
        }
        Ok(())
    };
    twice("server.listen", &cfg.server.listen)?;
    // The same port on a wildcard address takes every address of its family.
    let clash = |a: &SocketAddr, b: &SocketAddr| {
        a == b
            || (a.port() == b.port()
                && a.is_ipv4() == b.is_ipv4()
                && (a.ip().is_unspecified() || b.ip().is_unspecified()))
    };
    // UDP too: radmfa binds without SO_REUSEADDR, so 0.0.0.0:1812 beside 10.0.0.5:1812 passed
    // the check and then failed the start (the wildcard answers from the asked address).
    let udp = &cfg.server.listen;
    for (i, a) in udp.iter().enumerate().filter(|(_, a)| a.port() != 0) {
        if let Some(j) = udp[..i].iter().position(|b| clash(a, b)) {
            return Err(ConfigError::invalid(
                format!("server.listen[{i}]"),
                format!(
                    "{a} is in server.listen[{j}] ({}) already: a wildcard address takes the \
                     port on every address of its family; list one or the other",
                    udp[j]
                ),
            ));
        }
    }
    // The TCP listeners: RadSec, metrics, callbacks.
    let mut tcp: Vec<(String, SocketAddr)> = Vec::new();
    if let Some(r) = &cfg.radsec {
        twice("radsec.listen", &r.listen)?;
        tcp.extend(
            r.listen
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("radsec.listen[{i}]"), *a)),
        );
    }
    if let Some(m) = &cfg.metrics {
        tcp.push(("metrics.listen".into(), m.listen));
    }
    if let Some(c) = &cfg.delivery.callbacks {
        tcp.push(("callbacks.listen".into(), c.listen));
    }
    for (i, (key, a)) in tcp.iter().enumerate().filter(|(_, (_, a))| a.port() != 0) {
        if let Some((other, _)) = tcp[..i].iter().find(|(_, b)| clash(a, b)) {
            return Err(ConfigError::invalid(
                key,
                format!("{a} is {other}'s address too; give each listener its own"),
            ));
        }
    }
    Ok(())
}

/// A held call waits up to the client's `voice_budget_secs`; a key pressed after the call's
/// lifetime approves nothing (the callback refuses it). So a budget longer than the
/// lifetime would hold logins for approvals that can no longer count.
pub(crate) fn held_calls_within_their_lifetime(
    clients: &[ClientConfig],
    delivery: &super::delivery::DeliveryConfig,
) -> Result<(), ConfigError> {
    let Some(voice) = &delivery.voice else {
        return Ok(());
    };
    for (i, c) in clients.iter().enumerate() {
        let f = &c.factors;
        let holds = f.methods.contains(&crate::mfa::method::Method::Voice)
            && f.voice_mode == super::delivery::VoiceMode::Hold;
        if holds && f.voice_budget > voice.call_lifetime {
            return Err(ConfigError::invalid(
                format!("client[{i}].voice_budget_secs"),
                format!(
                    "{} s is longer than voice.call_lifetime_secs ({} s): a call answered \
                     after its lifetime approves nothing",
                    f.voice_budget.as_secs(),
                    voice.call_lifetime.as_secs()
                ),
            ));
        }
    }
    Ok(())
}

/// Without `[ldap]`, radmfa knows users by name alone: every client must send its
/// passwords upstream and use nothing that reads the directory.
fn without_directory(clients: &[ClientConfig]) -> Result<(), ConfigError> {
    for (i, c) in clients.iter().enumerate() {
        let (k, why) = if c.factors.second_factor_only {
            (
                "second_factor_only",
                "needs an [ldap] section: the user's entry is read there",
            )
        } else if c.primary == Primary::Ldap {
            (
                "primary",
                "is \"ldap\" (the default), and there is no [ldap] section: add one, or \
                 set primary = \"upstream\"",
            )
        } else if !c.groups.allow.is_empty() {
            (
                "allow_groups",
                "needs an [ldap] section: membership is read there",
            )
        } else if !c.groups.exempt.is_empty() {
            (
                "exempt_groups",
                "needs an [ldap] section: membership is read there",
            )
        } else if !c.accept_attributes.by_group.is_empty() {
            (
                "group_attributes",
                "needs an [ldap] section: membership is read there",
            )
        } else if c.no_factor == NoFactorPolicy::Allow {
            // The upstream server takes CORP\alice, alice@corp.example.org and alice for one
            // account; without a directory each is a user of its own here, and one with no
            // token would pass on the password alone.
            (
                "no_factor",
                "\"allow\" needs an [ldap] section: without one, every form of a name the \
                 upstream server accepts (CORP\\alice, alice@corp.example.org) is a user of its \
                 own, and one without a token would get in on the password alone",
            )
        } else if c.factors.app_passwords {
            (
                "app_passwords",
                "needs an [ldap] section: an app-password login skips the password check, \
                 and the directory is where a disabled account shows",
            )
        } else {
            continue;
        };
        return Err(ConfigError::invalid(format!("client[{i}].{k}"), why));
    }
    Ok(())
}

fn radsec_config(
    raw: RawRadsec,
    base: &Path,
    longest_request: Duration,
) -> Result<RadsecConfig, ConfigError> {
    let RawRadsec {
        listen,
        cert_file,
        key_file,
        ca_file,
        crl_file,
        max_connections,
        max_connections_per_address,
        idle_timeout_secs,
    } = raw;
    if !(1..=65_536).contains(&max_connections) {
        return Err(ConfigError::invalid(
            "radsec.max_connections",
            format!("must be between 1 and 65536, not {max_connections}"),
        ));
    }
    let max_connections_per_address = max_connections_per_address
        .unwrap_or(DEFAULT_RADSEC_MAX_CONNECTIONS_PER_ADDRESS.min(max_connections));
    if !(1..=max_connections).contains(&max_connections_per_address) {
        return Err(ConfigError::invalid(
            "radsec.max_connections_per_address",
            format!(
                "must be between 1 and radsec.max_connections ({max_connections}), not \
                 {max_connections_per_address}"
            ),
        ));
    }
    // The idle timer counts from the last packet received, so a request still being
    // answered (a held phone call) must end before it fires.
    let idle_timeout = Duration::from_secs(idle_timeout_secs);
    if idle_timeout <= longest_request || idle_timeout_secs > 86_400 {
        return Err(ConfigError::invalid(
            "radsec.idle_timeout_secs",
            format!(
                "must be longer than the longest request deadline ({} ms, a held call's \
                 voice_budget_secs included) and at most 86400, not {idle_timeout_secs}",
                longest_request.as_millis()
            ),
        ));
    }
    let listen = listen_addrs("radsec.listen", &listen, 2083)?;
    let file = |key: &str, p: PathBuf| {
        let p = resolve(&format!("radsec.{key}"), base, p)?;
        if p.is_file() {
            Ok(p)
        } else {
            Err(ConfigError::invalid(
                format!("radsec.{key}"),
                format!("{} does not exist", p.display()),
            ))
        }
    };
    let cert_file = file("cert_file", cert_file)?;
    let key_file = file("key_file", key_file)?;
    not_for_everyone("radsec.key_file", &key_file)?;
    let ca_file = file("ca_file", ca_file)?;
    not_writable_by_everyone("radsec.ca_file", &ca_file)?;
    let crl_file = crl_file.map(|p| file("crl_file", p)).transpose()?;
    if let Some(crl) = &crl_file {
        not_writable_by_everyone("radsec.crl_file", crl)?;
    }
    Ok(RadsecConfig {
        listen,
        cert_file,
        key_file,
        ca_file,
        crl_file,
        max_connections: max_connections as usize,
        max_connections_per_address: max_connections_per_address as usize,
        idle_timeout,
    })
}

/// A non-empty list of address:port; errors name `key[i]`. `port` is for the example.
fn listen_addrs(key: &str, addrs: &[String], port: u16) -> Result<Vec<SocketAddr>, ConfigError> {
    if addrs.is_empty() {
        return Err(ConfigError::invalid(
            key,
            format!("needs at least one address, e.g. \"0.0.0.0:{port}\""),
        ));
    }
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let addr = a.parse::<SocketAddr>().map_err(|_| {
                ConfigError::invalid(
                    format!("{key}[{i}]"),
                    format!("{a:?} is not an address:port (IPv6 as \"[::]:{port}\")"),
                )
            })?;
            not_v4_mapped(&format!("{key}[{i}]"), addr)
        })
        .collect()
}

/// radmfa's IPv6 sockets are IPv6-only (an IPv4 address is listed as itself), and such a
/// socket cannot bind an IPv4-mapped address: the start failed with "Invalid argument",
/// after `config check` and a reload had passed it.
///
/// Nor is a multicast or the broadcast address one to listen on: RADIUS is unicast, a TCP
/// listener cannot bind one, and a UDP one bound there cannot answer from it.
pub(super) fn not_v4_mapped(key: &str, addr: SocketAddr) -> Result<SocketAddr, ConfigError> {
    let broadcast = matches!(addr.ip(), std::net::IpAddr::V4(v4) if v4.is_broadcast());
    if addr.ip().is_multicast() || broadcast {
        let kind = if broadcast {
            "the broadcast"
        } else {
            "a multicast"
        };
        return Err(ConfigError::invalid(
            key,
            format!(
                "\"{addr}\" is {kind} address, which nothing can be served on: give one of \
                 this host's own addresses, or 0.0.0.0 / [::] for all of them"
            ),
        ));
    }
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => Err(ConfigError::invalid(
                key,
                format!(
                    "\"{addr}\" is an IPv4-mapped address: write it as IPv4, \"{v4}:{}\"",
                    v6.port()
                ),
            )),
            None => Ok(addr),
        },
        SocketAddr::V4(_) => Ok(addr),
    }
}

fn metrics_config(raw: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let listen = raw.listen.parse().map_err(|_| {
        ConfigError::invalid(
            "metrics.listen",
            format!(
                "{:?} is not an address:port (e.g. \"127.0.0.1:9812\")",
                raw.listen
            ),
        )
    })?;
    let listen = not_v4_mapped("metrics.listen", listen)?;
    Ok(MetricsConfig { listen })
}

/// `[users] strip_domains`, or its older place in `[ldap]`; a list in both is refused rather
/// than merged, so the file says in one place which domains are taken off.
fn user_names(users: RawUsers, ldap: Option<&RawLdap>) -> Result<UserNames, ConfigError> {
    let in_ldap = ldap.map(|l| l.strip_domains.clone()).unwrap_or_default();
    match (users.strip_domains.is_empty(), in_ldap.is_empty()) {
        (false, false) => Err(ConfigError::invalid(
            "users.strip_domains",
            "also given as ldap.strip_domains; list the domains in one place ([users])",
        )),
        (true, false) => {
            UserNames::new("ldap.strip_domains", in_ldap).map(UserNames::read_from_ldap)
        }
        _ => UserNames::new("users.strip_domains", users.strip_domains),
    }
}

fn server_config(raw: RawServer) -> Result<ServerConfig, ConfigError> {
    let RawServer {
        name,
        listen,
        max_in_flight,
        request_deadline_ms,
        duplicate_window_secs,
        shutdown_grace_ms,
        log_format,
        log_level,
    } = raw;
    let listen = listen_addrs("server.listen", &listen, 1812)?;
    // Bounded (tokio's semaphores refuse more than usize::MAX >> 3 permits, by panicking).
    if !(1..=1_000_000).contains(&max_in_flight) {
        return Err(ConfigError::invalid(
            "server.max_in_flight",
            "must be between 1 and 1000000",
        ));
    }
    if !(100..=120_000).contains(&request_deadline_ms) {
        return Err(ConfigError::invalid(
            "server.request_deadline_ms",
            "must be between 100 and 120000",
        ));
    }
    // A stop that waits longer than a minute is a hung stop; systemd's unit kills at 15 s.
    if shutdown_grace_ms > 60_000 {
        return Err(ConfigError::invalid(
            "server.shutdown_grace_ms",
            "must be at most 60000 (and below the service's TimeoutStopSec)",
        ));
    }
    if !(1..=300).contains(&duplicate_window_secs) {
        return Err(ConfigError::invalid(
            "server.duplicate_window_secs",
            "must be between 1 and 300 (RFC 5080 suggests about 30)",
        ));
    }
    let log_format = super::one_of(
        "server.log_format",
        &log_format,
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
    )?;
    log_level_config(&log_level)?;
    let name = match name {
        Some(n) if n.trim().is_empty() => {
            return Err(ConfigError::invalid("server.name", "must not be empty"))
        }
        // It is the NAS-Identifier of requests to an upstream server: one attribute.
        Some(n) if n.len() > 253 => {
            return Err(ConfigError::invalid(
                "server.name",
                format!(
                    "is {} octets; at most 253 fit in a RADIUS attribute",
                    n.len()
                ),
            ))
        }
        // Every audit record carries it, and `audit --server` reads it back: a control
        // character (an ESC sequence) would reach whoever reads them, as a client's name
        // would.
        Some(n) if n.chars().any(char::is_control) => {
            return Err(ConfigError::invalid(
                "server.name",
                "must not contain control characters",
            ))
        }
        Some(n) => n,
        None => hostname(),
    };
    Ok(ServerConfig {
        name,
        listen,
        max_in_flight,
        request_deadline: Duration::from_millis(request_deadline_ms),
        duplicate_window: Duration::from_secs(duplicate_window_secs),
        shutdown_grace: Duration::from_millis(shutdown_grace_ms),
        log_format,
        log_level,
    })
}

/// The kernel's host name (what `hostname` prints), so that nodes of a cluster tell their
/// audit records apart even where /etc/hostname is missing (containers).
fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "radmfa".into())
}

/// A file holding a secret (a shared secret, a password, an auth token, a private key) that
/// every local account may read is refused, naming `key`: a NAS's shared secret read there
/// lets anyone on the host forge requests and unhide User-Passwords. Group access stays
/// allowed (mode 0640, group radmfa, as the README sets it up). Unix permissions only.
#[cfg(unix)]
pub(crate) fn not_for_everyone(key: &str, path: &Path) -> Result<(), ConfigError> {
    if let Some(mode) = mode_with(path, 0o007) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{} is open to every account on this host (mode {mode:o}); `chmod o-rwx` it \
                 (0640 with group radmfa, or 0600)",
                path.display()
            ),
        ));
    }
    not_in_open_directory(key, path)
}

/// The secret a `*_file` holds: its first line, as conf/radmfa.toml says (a note on a later
/// line, "rotated 2026-11", is not part of it), less what editors add that no one typed: a
/// byte-order mark (PowerShell 5, old Notepad) and a carriage return ending the line (an old
/// Mac file, or a lone CR left by a tool). Kept, every request from the NAS failed as if
/// signed with another secret. `radmfa client --secret-file` reads the same way.
pub fn secret_file_value(text: &str) -> &str {
    let first = text.lines().next().unwrap_or("");
    let first = first.strip_prefix('\u{feff}').unwrap_or(first);
    first.trim_end_matches('\r')
}

/// `path`'s permission bits when any of `bits` is set. A file that cannot be stat'ed has
/// none: the caller's read reports it, with its reason.
#[cfg(unix)]
fn mode_with(path: &Path, bits: u32) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & bits != 0).then_some(mode)
}

/// A file that decides whom radmfa trusts or what it does (the config file itself, a CA or
/// CRL file) that every local account may change is refused, naming `key`: any of them
/// could point [ldap] at a server of its own, exempt itself, or add a CA, from the next
/// reload. Unix permissions only.
#[cfg(unix)]
pub(crate) fn not_writable_by_everyone(key: &str, path: &Path) -> Result<(), ConfigError> {
    if let Some(mode) = mode_with(path, 0o002) {
        // The config file is its own key: named once, not twice.
        let named = path.display().to_string();
        let what = if named == key { "it" } else { &named };
        return Err(ConfigError::invalid(
            key,
            format!(
                "{what} can be changed by every account on this host (mode {mode:o}), so any \
                 of them could decide whom radmfa trusts; `chmod o-w` it (0640, owner root, \
                 group radmfa; 0644 for a CA file)"
            ),
        ));
    }
    not_in_open_directory(key, path)
}

/// A file (checked by the two above) in a directory every account may change is refused
/// as the file would be, naming the directory: any account could rename a file of its own
/// over it, whatever the file's own mode (a `chmod 777 /etc/radmfa` passed unnoticed).
#[cfg(unix)]
pub(super) fn not_in_open_directory(key: &str, path: &Path) -> Result<(), ConfigError> {
    let Some((dir, mode)) = open_directory(path) else {
        return Ok(());
    };
    // The config file is its own key: named once, not twice.
    let named = path.display().to_string();
    let what = if named == key { "it" } else { &named };
    Err(ConfigError::invalid(
        key,
        format!(
            "the directory {} can be changed by every account on this host (mode {mode:o}, \
             no sticky bit), so any of them could put a file of their own in place of \
             {what}; `chmod o-w {}`",
            dir.display(),
            dir.display()
        ),
    ))
}

/// The nearest directory above `path` that every account may write to and that has no
/// sticky bit, with its mode. A sticky directory (/tmp) lets no one rename over an entry
/// that is not theirs. Both the path as written and where it leads are walked: a symbolic
/// link is replaced in its own directory, its target in the target's.
#[cfg(unix)]
fn open_directory(path: &Path) -> Option<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let written = std::path::absolute(path).ok();
    let real = std::fs::canonicalize(path).ok();
    [written, real].into_iter().flatten().find_map(|p| {
        p.ancestors().skip(1).find_map(|dir| {
            let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o7777;
            (mode & 0o002 != 0 && mode & 0o1000 == 0).then(|| (dir.to_path_buf(), mode))
        })
    })
}

#[cfg(not(unix))]
pub(crate) fn not_writable_by_everyone(_key: &str, _path: &Path) -> Result<(), ConfigError> {
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn not_for_everyone(_key: &str, _path: &Path) -> Result<(), ConfigError> {
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn not_in_open_directory(_key: &str, _path: &Path) -> Result<(), ConfigError> {
    Ok(())
}

/// A path from the config, relative to the config file's directory. `key` names it in the
/// error: an empty one was that directory itself, and failed later as "srv/ exists" or
/// "… does not exist" about a directory that does.
pub(super) fn resolve(key: &str, base: &Path, p: PathBuf) -> Result<PathBuf, ConfigError> {
    if p.as_os_str().to_string_lossy().trim().is_empty() {
        return Err(ConfigError::invalid(
            key,
            "must not be empty: give a file's path",
        ));
    }
    Ok(if p.is_absolute() { p } else { base.join(p) })
}

/// An address or a CIDR, as a network with its host bits cleared (`192.0.2.7/24` is
/// `192.0.2.0/24`), for client addresses. `key` names it in the error.
pub(super) fn network(key: &str, s: &str) -> Result<IpNet, ConfigError> {
    let net = s
        .parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| ConfigError::invalid(key, format!("{s:?} is not an IP address or CIDR")))?;
    // Requests from IPv4 NASes are matched as IPv4 (a dual-stack socket's ::ffff:a.b.c.d
    // included), so an IPv4-mapped entry would never match anything.
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped().filter(|_| v6.prefix_len() >= 96) {
            let len = v6.prefix_len() - 96;
            return Err(ConfigError::invalid(
                key,
                format!("{s:?} is an IPv4-mapped address: write it as IPv4, {v4}/{len}"),
            ));
        }
    }
    Ok(net)
}

/// As [`network`], but host bits are an error: `192.168.1.10/8` is far more likely a typo
/// for a /28 or a /32 than a wish for 192.0.0.0/8 — which, as a client address, would take
/// the shared secret for the whole /8, and in exempt_networks would let logins in from all
/// of it with the password alone.
pub(super) fn exact_network(key: &str, s: &str) -> Result<IpNet, ConfigError> {
    let net = network(key, s)?;
    match s.parse::<IpNet>() {
        Ok(given) if given.addr() != net.addr() => Err(ConfigError::invalid(
            key,
            format!(
                "{s:?} has host bits set: write {net} for that whole network, or {}/{} for \
                 the one address",
                given.addr(),
                given.max_prefix_len()
            ),
        )),
        _ => Ok(net),
    }
}

/// A RADIUS shared secret (a NAS's, or the upstream server's), inline or from a file.
pub(super) fn shared_secret(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Secret, ConfigError> {
    // A secret read from a file is said of the file's key: the config has no `key` then
    // (red team: "client[0].secret: is too short" of a config with only secret_file).
    let named = match &file {
        Some(_) if inline.is_none() => format!("{key}_file"),
        _ => key.to_string(),
    };
    let from = match &file {
        Some(f) if inline.is_none() => format!("{}: the secret ", f.display()),
        _ => String::new(),
    };
    let secret = secret_value(key, inline, file, base)?;
    // RFC 2865 §3 wants the secret unguessable; RFC 6614 recommends at least 16 characters.
    // Counted in bytes, as the RADIUS hash takes it (an accented letter is two).
    if secret.len() < 8 {
        return Err(ConfigError::invalid(
            named,
            format!(
                "{from}is too short ({} bytes): use at least 8 characters, 16 or more \
                 recommended",
                secret.len()
            ),
        ));
    }
    if secret.expose().iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::invalid(
            named,
            format!("{from}is blank: only spaces"),
        ));
    }
    Ok(secret)
}

/// [`secret_value`] that must not be empty: a provider credential (an empty one fails every
/// send, and Twilio's auth token also keys the callback signatures).
pub(super) fn required_secret(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Secret, ConfigError> {
    let secret = secret_value(key, inline, file, base)?;
    if secret.expose().trim_ascii().is_empty() {
        return Err(ConfigError::invalid(
            key,
            "is empty (or its file's first line is blank)",
        ));
    }
    Ok(secret)
}

pub(super) fn secret_value(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Secret, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            key,
            format!("give either {key} or {key}_file, not both"),
        )),
        (Some(s), None) => Ok(Secret::from(s)),
        (None, Some(f)) => {
            let f = resolve(&format!("{key}_file"), base, f)?;
            not_for_everyone(&format!("{key}_file"), &f)?;
            let text = std::fs::read_to_string(&f).map_err(|e| {
                ConfigError::invalid(format!("{key}_file"), format!("{}: {e}", f.display()))
            })?;
            let value = secret_file_value(&text);
            // Named as the file's problem: reported under `key` ("is too short"), it sent
            // the admin to a key they never wrote, about a secret they had written (on the
            // second line, after a blank one).
            if value.is_empty() {
                let why = if text.trim().is_empty() {
                    format!("{} is empty", f.display())
                } else {
                    format!(
                        "{}: its first line is empty; the secret must be on the first line \
                         (later lines are taken as notes)",
                        f.display()
                    )
                };
                return Err(ConfigError::invalid(format!("{key}_file"), why));
            }
            Ok(Secret::from(value.to_string()))
        }
        (None, None) => Err(ConfigError::invalid(
            key,
            format!("missing: set {key} or {key}_file"),
        )),
    }
}

/// The longest `[totp] issuer`, in characters.
const MAX_ISSUER_CHARS: usize = 64;

fn totp_config(raw: RawTotp) -> Result<TotpConfig, ConfigError> {
    let RawTotp {
        issuer,
        window,
        algorithm,
        digits,
        period,
    } = raw;
    let algorithm = OtpAlgorithm::parse(&algorithm).ok_or_else(|| {
        ConfigError::invalid(
            "totp.algorithm",
            format!("{algorithm:?} is not one of SHA1, SHA256, SHA512"),
        )
    })?;
    if !(6..=8).contains(&digits) {
        return Err(ConfigError::invalid("totp.digits", "must be 6, 7 or 8"));
    }
    if !(10..=300).contains(&period) {
        return Err(ConfigError::invalid(
            "totp.period",
            "must be between 10 and 300 seconds",
        ));
    }
    if window > 10 {
        return Err(ConfigError::invalid(
            "totp.window",
            "must be at most 10 steps either side",
        ));
    }
    if issuer.contains(':') || issuer.trim().is_empty() {
        return Err(ConfigError::invalid(
            "totp.issuer",
            "must be non-empty and contain no ':'",
        ));
    }
    // It goes into every enrollment's URI twice: a long one made a QR code too big to draw
    // (every enrollment then had the URI typed in by hand), and apps cut it off anyway.
    if issuer.chars().count() > MAX_ISSUER_CHARS {
        return Err(ConfigError::invalid(
            "totp.issuer",
            format!(
                "is {} characters; at most {MAX_ISSUER_CHARS} (the app shows it beside the \
                 account name, and the QR code holds it twice)",
                issuer.chars().count()
            ),
        ));
    }
    Ok(TotpConfig {
        issuer,
        window,
        algorithm,
        digits,
        period,
    })
}

fn hotp_config(raw: RawHotp) -> Result<HotpConfig, ConfigError> {
    let RawHotp {
        window,
        resync_window,
        self_resync,
    } = raw;
    // RFC 4226 §7.4: the look-ahead window must stay small, since every counter in it is a
    // code a guesser may hit.
    if !(1..=100).contains(&window) {
        return Err(ConfigError::invalid(
            "hotp.window",
            "must be between 1 and 100",
        ));
    }
    if resync_window <= window || resync_window > super::MAX_RESYNC_WINDOW {
        return Err(ConfigError::invalid(
            "hotp.resync_window",
            format!(
                "must be larger than hotp.window and at most {}",
                super::MAX_RESYNC_WINDOW
            ),
        ));
    }
    Ok(HotpConfig {
        window: u64::from(window),
        resync_window: u64::from(resync_window),
        self_resync,
    })
}

/// The longest `challenge.prompt` (see `challenge_config`).
const MAX_PROMPT: usize = 222;

fn challenge_config(raw: RawChallenge) -> Result<ChallengeConfig, ConfigError> {
    let RawChallenge {
        timeout_secs,
        max_attempts,
        prompt,
    } = raw;
    if !(2..=3600).contains(&timeout_secs) {
        return Err(ConfigError::invalid(
            "challenge.timeout_secs",
            "must be between 2 and 3600",
        ));
    }
    if !(1..=10).contains(&max_attempts) {
        return Err(ConfigError::invalid(
            "challenge.max_attempts",
            "must be between 1 and 10",
        ));
    }
    // The prompt is sent with up to 31 bytes more ("Wrong code. 9 attempt(s) left. " before
    // it at a re-prompt; ", or type sms or call: ", 23, after it at the first, the ": " added
    // where the prompt has no colon of its own) and must still
    // fit one Reply-Message (253 bytes): pam_radius_auth shows only the first one, and a
    // split one breaks mid-word. After a refused switch or resend (up to 107 bytes of why),
    // a long prompt gives way to a short one (`pipeline::followup::reask`).
    if prompt.is_empty() || prompt.len() > MAX_PROMPT {
        return Err(ConfigError::invalid(
            "challenge.prompt",
            format!(
                "must be 1 to {MAX_PROMPT} bytes, so that with the text radmfa adds to it \
                 (\"Wrong code. 9 attempt(s) left. \" or \", or type sms or call\") it fits \
                 one Reply-Message attribute; it is {} bytes",
                prompt.len()
            ),
        ));
    }
    Ok(ChallengeConfig {
        timeout: Duration::from_secs(timeout_secs),
        max_attempts,
        prompt,
    })
}

/// A century: above that, a number of days is more likely a typo (seconds?) than a policy.
const MAX_KEEP_DAYS: u32 = 36_500;

fn audit_config(raw: RawAudit) -> Result<AuditConfig, ConfigError> {
    let RawAudit {
        include_name,
        include_email,
        keep_days,
    } = raw;
    if keep_days > MAX_KEEP_DAYS {
        return Err(ConfigError::invalid(
            "audit.keep_days",
            format!("{keep_days} days is over a century; use 0 to keep every record"),
        ));
    }
    Ok(AuditConfig {
        include_name,
        include_email,
        keep_days: (keep_days > 0).then_some(keep_days),
    })
}

const MAX_LOCKOUT_SECS: u64 = 366 * 86_400;

fn lockout_config(raw: RawLockout) -> Result<LockoutConfig, ConfigError> {
    let RawLockout {
        threshold,
        duration_secs,
    } = raw;
    if threshold == 0 {
        return Err(ConfigError::invalid(
            "lockout.threshold",
            "must be at least 1",
        ));
    }
    // Bounded: the lock's end is `now + duration` in signed seconds, which must stay a
    // date; and a lock of more than a year is a block, for an admin to lift.
    if !(1..=MAX_LOCKOUT_SECS).contains(&duration_secs) {
        return Err(ConfigError::invalid(
            "lockout.duration_secs",
            format!("must be between 1 and {MAX_LOCKOUT_SECS} (a year)"),
        ));
    }
    Ok(LockoutConfig {
        threshold,
        duration: Duration::from_secs(duration_secs),
    })
}

fn group_dn(key: &str, g: &str) -> Result<(), ConfigError> {
    let why = if g.trim() != g {
        Some("it starts or ends with a space".to_string())
    } else {
        dn_syntax_error(g)
    };
    match why {
        None => Ok(()),
        Some(why) => Err(ConfigError::invalid(
            key,
            format!(
                "{g:?} is not a group DN ({why}), e.g. \
                 \"cn=vpn-users,ou=groups,dc=example,dc=org\""
            ),
        )),
    }
}

/// What makes `dn` no DN as RFC 4514 writes one, if anything: RDNs separated by commas,
/// each one `attribute=value` (or several joined by `+`), the attribute a name or a dotted
/// OID, a value's special characters escaped with `\`. The directory refuses such a DN
/// (invalidDNSyntax) at every login's group search, a fault refusing the login: a filter
/// pasted in its place (`(cn=vpn-users)`) or a doubled comma is found here instead.
/// Spaces around the separators are let through, as directories take them; so are what
/// directories take beside RFC 4514: Active Directory's `<GUID=…>` and `<SID=…>` (a name
/// that survives renames), an LDAPv2 quoted value (`cn="VPN Users"`) and an empty value.
fn dn_syntax_error(dn: &str) -> Option<String> {
    if ad_extended_dn(dn) {
        return None;
    }
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = dn.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' => quoted = false,
                '\\' => {
                    chars.next();
                }
                _ => {}
            }
            parts.last_mut().expect("one part").push('x');
            continue;
        }
        match c {
            '"' if parts.last().is_some_and(|p| p.trim_end().ends_with('=')) => quoted = true,
            '\\' => {
                let next = chars.next();
                let special = next.is_some_and(|n| " \"#+,;<=>\\".contains(n));
                let hex = next.is_some_and(|n| n.is_ascii_hexdigit())
                    && chars.next().is_some_and(|n| n.is_ascii_hexdigit());
                if !(special || hex) {
                    return Some(
                        "a backslash escapes a special character or two hex digits".into(),
                    );
                }
                // An escaped character is part of the value, whatever it is.
                parts.last_mut().expect("one part").push('x');
            }
            ',' | '+' => parts.push(String::new()),
            '"' | '<' | '>' => {
                return Some(format!("{c:?} in a value must be escaped as \\{c}"));
            }
            c => parts.last_mut().expect("one part").push(c),
        }
    }
    if quoted {
        return Some("a quoted value has no closing '\"'".into());
    }
    parts.iter().find_map(|part| ava_error(part))
}

/// `<GUID=…>`, `<SID=…>` or `<WKGUID=…>`: Active Directory takes these as a DN.
fn ad_extended_dn(dn: &str) -> bool {
    dn.strip_prefix('<')
        .and_then(|d| d.strip_suffix('>'))
        .and_then(|d| d.split_once('='))
        .is_some_and(|(kind, value)| {
            ["GUID", "SID", "WKGUID"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(kind))
                && !value.is_empty()
                && !value.contains(['<', '>'])
        })
}

/// What makes `ava` (one `attribute=value` of a DN, escapes already taken out) wrong.
fn ava_error(ava: &str) -> Option<String> {
    // An empty value is allowed: RFC 4514's attributeValue may be empty.
    let Some((attr, _value)) = ava.split_once('=') else {
        return Some(if ava.trim().is_empty() {
            "an empty RDN between two commas, or at either end".into()
        } else {
            format!("{:?} is not attribute=value", ava.trim())
        });
    };
    let attr = attr.trim();
    let name = attr.starts_with(|c: char| c.is_ascii_alphabetic())
        && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = attr.contains('.')
        && attr
            .split('.')
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    if !(name || oid) {
        return Some(format!(
            "{attr:?} is not an attribute name{}",
            if attr.starts_with('(') {
                " (an LDAP filter in place of a DN?)"
            } else {
                ""
            }
        ));
    }
    None
}

fn accept_attributes_config(
    key: &dyn Fn(&str) -> String,
    always: Vec<String>,
    by_group: Vec<RawGroupAttributes>,
) -> Result<AcceptAttributes, ConfigError> {
    let parse = |k: String, specs: &[String]| -> Result<Vec<ReplyAttr>, ConfigError> {
        specs
            .iter()
            .enumerate()
            .map(|(j, s)| {
                ReplyAttr::parse(s).map_err(|e| ConfigError::invalid(format!("{k}[{j}]"), e))
            })
            .collect()
    };
    let mut out = AcceptAttributes {
        always: parse(key("accept_attributes"), &always)?,
        by_group: Vec::new(),
    };
    // Every Accept carries them all, or the login is refused (see `pipeline::finish_accept`):
    // more than a packet holds would refuse every login, found only at runtime.
    let needed = crate::radius::reply::wire_len(&out.always);
    let room = crate::radius::reply::ACCEPT_ROOM;
    if needed > room {
        return Err(ConfigError::invalid(
            key("accept_attributes"),
            format!(
                "these {} attributes take {needed} octets in a packet, more than the {room} \
                 an Access-Accept has room for (4096 less its header and \
                 Message-Authenticator): every login would be refused",
                out.always.len()
            ),
        ));
    }
    for (j, g) in by_group.iter().enumerate() {
        let k = key(&format!("group_attributes[{j}]"));
        group_dn(&format!("{k}.group"), &g.group)?;
        if g.attributes.is_empty() {
            return Err(ConfigError::invalid(
                format!("{k}.attributes"),
                "must not be empty",
            ));
        }
        let attrs = parse(format!("{k}.attributes"), &g.attributes)?;
        // A member of this one group gets the client's attributes and the rule's (a
        // single-valued one of the rule's replacing the client's): more than a packet
        // holds refused every member's login, where `config check` only warned "a user in
        // enough of the groups".
        let kept: Vec<ReplyAttr> = out
            .always
            .iter()
            .filter(|a| !(a.single() && attrs.iter().any(|r| r.key() == a.key())))
            .cloned()
            .collect();
        let member = crate::radius::reply::wire_len(&kept) + crate::radius::reply::wire_len(&attrs);
        if member > room {
            return Err(ConfigError::invalid(
                format!("{k}.attributes"),
                format!(
                    "with accept_attributes, a member of {:?} gets {member} octets of \
                     attributes, more than the {room} an Access-Accept has room for: every \
                     login of its members would be refused",
                    g.group
                ),
            ));
        }
        out.by_group.push((g.group.clone(), attrs));
    }
    Ok(out)
}

fn client_configs(raw: Vec<RawClient>, base: &Path) -> Result<Vec<ClientConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::invalid(
            "client",
            "no [[client]] defined: every request would be dropped",
        ));
    }
    let mut out: Vec<ClientConfig> = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let client = client_config(i, c, &out, base)?;
        out.push(client);
    }
    // Overlapping networks would make the shared secret depend on table order.
    for (i, a) in out.iter().enumerate() {
        for (j, b) in out.iter().enumerate().skip(i + 1) {
            for na in &a.networks {
                for nb in &b.networks {
                    if na == nb {
                        // One NAS over UDP and RadSec is one entry: said, as two entries per
                        // transport is what an admin tries first.
                        let hint = if a.transport != b.transport {
                            "; one NAS that uses both UDP and RadSec is one entry with \
                             transport = \"both\" (and its secret)"
                        } else {
                            ""
                        };
                        return Err(ConfigError::invalid(
                            format!("client[{j}].address"),
                            format!(
                                "{nb} is also listed for client {:?} (client[{i}]){hint}",
                                a.name
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Adds the client's name to a problem with one of its keys (`client[7].…`, `names` in
/// file order): `client[7]` alone sends an admin counting `[[client]]` blocks from zero
/// through a file of twenty, and a refused reload is read in a log, away from the file.
/// Not where the name itself is the problem.
fn naming_client(e: ConfigError, names: &[String]) -> ConfigError {
    let ConfigError::Invalid { key, problem } = e else {
        return e;
    };
    let name = key
        .strip_prefix("client[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(i, _)| i.parse::<usize>().ok())
        .and_then(|i| names.get(i))
        .filter(|n| !n.trim().is_empty() && !n.chars().any(char::is_control));
    match name {
        Some(name) if !key.ends_with(".name") => ConfigError::Invalid {
            problem: format!("{problem} (in the [[client]] named {name:?})"),
            key,
        },
        _ => ConfigError::Invalid { key, problem },
    }
}

const CODE_ONLY_NOT_SECOND_FACTOR_ONLY: &str = "is for RD Gateway (no password, a held \
     call); otp_mode = \"code_only\" takes a code: choose one";

/// What else `otp_mode = "code_only"` cannot go with (second_factor_only is refused
/// before the factors are read). Its request carries a code and nothing
/// else, so there is no password to send upstream, to take as an app password or to log
/// in with alone (a remembered second factor); nor a prompt to send an SMS or make a call
/// from, so those methods are left out of the default `methods`, and refused in a list the
/// admin wrote (`methods_written`).
fn code_only_client(
    key: &dyn Fn(&str) -> String,
    primary: &Primary,
    factors: &mut crate::config::delivery::ClientFactors,
    methods_written: bool,
) -> Result<(), ConfigError> {
    let refuse = |k: &str, why: &str| Err(ConfigError::invalid(key(k), why.to_string()));
    let totp_only = |m: &crate::mfa::method::Method| *m == crate::mfa::method::Method::Totp;
    if methods_written && !factors.methods.iter().all(totp_only) {
        return refuse(
            "methods",
            "with otp_mode = \"code_only\" only \"totp\" can be used: an SMS or a call \
             needs a prompt, and the NAS sends only the code (methods = [\"totp\"])",
        );
    }
    if matches!(primary, Primary::Upstream(_)) {
        return refuse(
            "primary",
            "\"upstream\" checks a password, and with otp_mode = \"code_only\" the NAS \
             checked it and sends only the code",
        );
    }
    if factors.app_passwords {
        return refuse(
            "app_passwords",
            "an app password stands in for password and code; with otp_mode = \"code_only\" \
             the NAS sends only the code",
        );
    }
    if factors.remember.is_some() {
        return refuse(
            "remember_second_factor_secs",
            "with otp_mode = \"code_only\" every request is a code: there is no login \
             without one to remember it for",
        );
    }
    factors.methods.retain(totp_only);
    if factors.methods.is_empty() {
        return refuse(
            "methods",
            "must include \"totp\": a code_only client takes codes from tokens (an SMS or a \
             call needs a prompt)",
        );
    }
    Ok(())
}

/// One `[[client]]` entry; `earlier` are the entries before it, whose names it must not
/// repeat.
fn client_config(
    i: usize,
    c: RawClient,
    earlier: &[ClientConfig],
    base: &Path,
) -> Result<ClientConfig, ConfigError> {
    let RawClient {
        name,
        address,
        secret,
        secret_file,
        require_message_authenticator,
        primary,
        upstream,
        otp_mode,
        inline_delimiter,
        no_factor,
        on_backend_failure,
        methods,
        voice_mode,
        voice_budget_secs,
        app_passwords,
        second_factor_only,
        provider_failure,
        remember_second_factor_secs,
        exempt_networks,
        allow_groups,
        exempt_groups,
        accept_attributes,
        group_attributes,
        radsec_name,
        transport,
        challenge_echo,
        max_attempts,
    } = c;
    let key = |k: &str| format!("client[{i}].{k}");
    let transport = match transport.as_deref() {
        None if radsec_name.is_some() => Transport::Radsec,
        None | Some("udp") => Transport::Udp,
        Some("radsec") => Transport::Radsec,
        Some("both") => Transport::Both,
        Some(other) => {
            return Err(ConfigError::invalid(
                key("transport"),
                format!("{other:?} is not one of \"udp\", \"radsec\", \"both\""),
            ))
        }
    };
    if transport == Transport::Udp && radsec_name.is_some() {
        return Err(ConfigError::invalid(
            key("radsec_name"),
            "is for RadSec, but transport = \"udp\"",
        ));
    }
    if name.trim().is_empty() {
        return Err(ConfigError::invalid(key("name"), "must not be empty"));
    }
    // It goes into log lines, audit rows and metric labels: a control character (an
    // ESC sequence) would reach whoever reads them.
    if name.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            key("name"),
            "must not contain control characters",
        ));
    }
    // Case aside too: "nas" and "NAS" would be two metrics series and two audit names
    // for what reads as one client.
    if let Some((j, o)) = earlier
        .iter()
        .enumerate()
        .find(|(_, o)| o.name.eq_ignore_ascii_case(&name))
    {
        return Err(ConfigError::invalid(
            key("name"),
            format!("{name:?} is client[{j}]'s name already ({:?})", o.name),
        ));
    }
    let mut networks = Vec::new();
    for a in address.items() {
        networks.push(exact_network(&key("address"), &a)?);
    }
    if networks.is_empty() {
        return Err(ConfigError::invalid(key("address"), "must not be empty"));
    }
    // Over TLS the shared secret is "radsec" (RFC 6614) whatever the entry says, so a
    // RadSec-only entry needs none.
    let secret = if transport == Transport::Radsec && secret.is_none() && secret_file.is_none() {
        Secret::from("radsec")
    } else {
        shared_secret(&key("secret"), secret, secret_file, base)?
    };
    let otp_mode = match otp_mode.as_str() {
        "challenge" => OtpMode::Challenge,
        "inline" => {
            if inline_delimiter.chars().any(|ch| ch.is_ascii_digit()) {
                return Err(ConfigError::invalid(
                    key("inline_delimiter"),
                    "must not contain digits",
                ));
            }
            OtpMode::Inline {
                delimiter: inline_delimiter,
            }
        }
        "code_only" => OtpMode::CodeOnly,
        other => {
            return Err(ConfigError::invalid(
                key("otp_mode"),
                format!("{other:?} is not one of \"challenge\", \"inline\", \"code_only\""),
            ))
        }
    };
    let primary = match (primary.as_str(), upstream) {
        ("upstream", _) if second_factor_only => {
            return Err(ConfigError::invalid(
                key("primary"),
                "\"upstream\" checks a password, and a second_factor_only client sends none",
            ))
        }
        ("upstream", group) => Primary::Upstream(group.unwrap_or_else(|| DEFAULT_GROUP.into())),
        ("ldap", Some(_)) => {
            return Err(ConfigError::invalid(
                key("upstream"),
                "names a group of upstream servers, for primary = \"upstream\" only",
            ))
        }
        ("ldap", None) => Primary::Ldap,
        (other, _) => {
            return Err(ConfigError::invalid(
                key("primary"),
                format!("{other:?} is not one of \"ldap\", \"upstream\""),
            ))
        }
    };
    let no_factor = super::one_of(
        key("no_factor"),
        &no_factor,
        &[
            ("reject", NoFactorPolicy::Reject),
            ("allow", NoFactorPolicy::Allow),
        ],
    )?;
    let on_backend_failure = super::one_of(
        key("on_backend_failure"),
        &on_backend_failure,
        &[
            ("reject", BackendFailure::Reject),
            ("no_reply", BackendFailure::NoReply),
        ],
    )?;
    // Before the factors' own checks: one of those asks a second_factor_only entry for
    // held calls, which is not the way out here.
    if otp_mode == OtpMode::CodeOnly && second_factor_only {
        return Err(ConfigError::invalid(
            key("second_factor_only"),
            CODE_ONLY_NOT_SECOND_FACTOR_ONLY,
        ));
    }
    // Written out by the admin (not the default list, which code_only narrows quietly):
    // an sms or voice there is asked for, and cannot be given.
    let methods_written = methods.is_some();
    let methods = methods.unwrap_or_else(super::raw_delivery::d_methods);
    let mut factors = super::validate_delivery::client_factors(
        super::raw_delivery::RawClientFactors {
            methods,
            voice_mode,
            voice_budget_secs,
            app_passwords,
            second_factor_only,
            provider_failure,
            remember_second_factor_secs,
            exempt_networks,
        },
        &key,
    )?;
    if otp_mode == OtpMode::CodeOnly {
        code_only_client(&key, &primary, &mut factors, methods_written)?;
    }
    for (k, groups) in [
        ("allow_groups", &allow_groups),
        ("exempt_groups", &exempt_groups),
    ] {
        for (j, g) in groups.iter().enumerate() {
            group_dn(&key(&format!("{k}[{j}]")), g)?;
        }
    }
    let accept_attributes = accept_attributes_config(&key, accept_attributes, group_attributes)?;
    let challenge = super::client_challenge::client_challenge(
        &key,
        &otp_mode,
        factors.second_factor_only,
        challenge_echo,
        max_attempts,
    )?;
    Ok(ClientConfig {
        name,
        networks,
        secret,
        require_message_authenticator,
        primary,
        otp_mode,
        no_factor,
        on_backend_failure,
        factors,
        groups: GroupPolicy {
            allow: allow_groups,
            exempt: exempt_groups,
        },
        accept_attributes,
        radsec_name: radsec_name
            // "nas.example.org." (a fully qualified name with its root dot) is the same
            // name; kept, it matched no certificate, which carry names without the dot.
            .map(|n| n.strip_suffix('.').map(str::to_string).unwrap_or(n))
            .map(|n| {
                rustls::pki_types::DnsName::try_from(n.as_str())
                    .map(|_| n.clone())
                    .map_err(|_| {
                        ConfigError::invalid(
                            key("radsec_name"),
                            format!("{n:?} is not a DNS name, e.g. \"vpn1.example.org\""),
                        )
                    })
            })
            .transpose()?,
        transport,
        challenge,
    })
}

/// `server.log_level`: a level, or `target=level` directives. A bare word that is not a
/// level parses too, as a target to log at `trace` with everything else off: `"warning"`
/// (for `warn`) passed and then the server logged nothing at all, not even its errors.
fn log_level_config(log_level: &str) -> Result<(), ConfigError> {
    let hint = "use error, warn, info, debug, trace or off, or target=level directives \
                separated by commas";
    let refuse = |m: String| Err(ConfigError::invalid("server.log_level", m));
    if log_level.trim().is_empty() {
        return refuse(format!("must not be empty ({hint})"));
    }
    if tracing_subscriber::EnvFilter::try_new(log_level).is_err() {
        return refuse(format!("{log_level:?} is not a log filter ({hint})"));
    }
    // A directive with a span or field filter may hold commas in its quotes: only plain
    // words are checked. A bare word that is not a level is a target at `trace`; beside a
    // level ("info,radmfa::pipeline") that is what was meant, but with no level at all
    // everything else is off.
    let plain = |d: &str| !d.contains(['=', '[', ']', '{', '}', '"']);
    let is_level = |d: &str| d.parse::<tracing_subscriber::filter::LevelFilter>().is_ok();
    let directives: Vec<&str> = log_level
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let has_level = directives.iter().any(|d| plain(d) && is_level(d));
    if let Some(word) = directives.iter().find(|d| plain(d) && !is_level(d)) {
        if !has_level {
            return refuse(format!(
                "{word:?} is not a level; without one it logs only a target of that name \
                 and nothing else, errors included ({hint})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{dn_syntax_error, log_level_config};

    #[test]
    fn group_dns_are_checked_as_rfc_4514_writes_them() {
        for good in [
            "cn=vpn-users,ou=groups,dc=example,dc=org",
            "CN=VPN Users,OU=Groups,DC=corp,DC=example,DC=com",
            "cn=vpn-users, ou=groups, dc=example, dc=org",
            "cn=Smith\\, John+uid=js,dc=x",
            "cn=a\\2cb (contractors),dc=x",
            "2.5.4.3=vpn,dc=x",
            "cn=a=b,dc=x",
            "<GUID=0f3a9f1e-5c1b-4b8e-9d3e-2a1b3c4d5e6f>",
            "<SID=S-1-5-21-1004336348-1177238915-682003330-512>",
            "cn=\"VPN, Users\",ou=groups,dc=x",
            "cn=,dc=x",
        ] {
            assert_eq!(dn_syntax_error(good), None, "{good}");
        }
        for (bad, says) in [
            ("(cn=vpn-users)", "an LDAP filter in place of a DN"),
            ("cn=foo,,dc=example,dc=org", "an empty RDN"),
            ("cn=foo,dc=example,", "an empty RDN"),
            ("cn=foo,dc", "is not attribute=value"),
            ("cn=\"x,dc=x", "no closing"),
            ("<GUID=>", "must be escaped"),
            ("1cn=x", "is not an attribute name"),
            ("cn=a\\", "a backslash escapes"),
            ("cn=a\\zz,dc=x", "a backslash escapes"),
            ("cn=a\"x\",dc=x", "must be escaped"),
            ("vpn-users", "is not attribute=value"),
        ] {
            let e = dn_syntax_error(bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn log_levels_and_directives_pass_and_bare_words_that_are_not_levels_do_not() {
        for good in [
            "info",
            "WARN",
            "off",
            "radmfa=debug,info",
            "warn,radmfa::server=trace",
            "info,",
            "info,radmfa::pipeline",
            "info,warning",
        ] {
            assert!(log_level_config(good).is_ok(), "{good:?}");
        }
        for bad in ["", " ", "warning", "inf", "radmfa::pipeline", "=debug"] {
            let e = log_level_config(bad).expect_err(bad).to_string();
            assert!(e.contains("server.log_level"), "{bad:?}: {e}");
        }
    }
}
