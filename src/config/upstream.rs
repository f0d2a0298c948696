//! `[upstream]`: another RADIUS server (NPS, FreeRADIUS, an older OTP server) that checks the
//! password for clients with `primary = "upstream"`. The directory still supplies the user's
//! name, phone and groups; only the password check moves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::validate::shared_secret;
use super::ConfigError;
use crate::radius::reply_attr::AttrKey;
use crate::secret::Secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub servers: Vec<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default = "d_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "d_dead")]
    pub dead_time_secs: u64,
    #[serde(default = "super::raw::yes")]
    pub require_message_authenticator: bool,
    #[serde(default)]
    pub nas_identifier: Option<String>,
    #[serde(default)]
    pub pass_through: Vec<String>,
    #[serde(default = "d_status_check")]
    pub status_check: String,
    #[serde(default = "d_check_interval")]
    pub check_interval_secs: u64,
}

fn d_timeout() -> u64 {
    1000
}
fn d_dead() -> u64 {
    30
}
fn d_status_check() -> String {
    "none".into()
}
fn d_check_interval() -> u64 {
    10
}

/// How a server that stopped answering is asked between logins (`status_check`), so that
/// no login waits for it while it stays silent and its return is seen without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCheck {
    /// RFC 5997 Status-Server: FreeRADIUS (`status_server = yes`), radmfa itself. NPS does
    /// not answer it.
    StatusServer,
    /// An Access-Request for a made-up user with a random password, as FreeRADIUS's
    /// `status_check = request`: any server answers it (NPS logs each as a failed logon).
    AccessRequest,
}

fn status_check_name(c: Option<StatusCheck>) -> &'static str {
    match c {
        None => "none",
        Some(StatusCheck::StatusServer) => "status-server",
        Some(StatusCheck::AccessRequest) => "access-request",
    }
}

/// One entry of `servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamServer {
    /// How the file names it, an address in its usual form: the key of its health, its
    /// `/metrics` label, and what the log calls it.
    pub name: String,
    pub host: UpstreamHost,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamHost {
    Addr(SocketAddr),
    /// A DNS name and port, looked up when radmfa asks (`auth::upstream_health`), so an
    /// NPS moved to a new address is followed without a reload, and a name that does not
    /// resolve at start-up stops neither `serve` nor the admin commands.
    Name(String, u16),
}

impl std::fmt::Display for UpstreamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// The group name of `[upstream]`; `[upstreams.NAME]` are the others.
pub const DEFAULT_GROUP: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// `"default"` for `[upstream]`, NAME for `[upstreams.NAME]`: what a client's
    /// `upstream` key names, and the `/metrics` label.
    pub group: String,
    /// Tried in this order; one that did not answer goes last for `dead_time`.
    pub servers: Vec<UpstreamServer>,
    pub secret: Secret,
    /// How long to wait for one server before trying the next.
    pub timeout: Duration,
    pub dead_time: Duration,
    /// Refuse replies without a valid Message-Authenticator (BlastRADIUS).
    pub require_message_authenticator: bool,
    /// NAS-Identifier in the requests radmfa sends; `None`: `[server] name`.
    pub nas_identifier: Option<String>,
    /// Attributes of the upstream Access-Accept copied into radmfa's, with the names given.
    pub pass_through: Vec<(String, AttrKey)>,
    /// `None`: a dead server is asked again by a login once its dead time is over.
    pub status_check: Option<StatusCheck>,
    /// How often a dead server is checked, when `status_check` is set.
    pub check_interval: Duration,
}

impl UpstreamConfig {
    /// The section as written in the file: `[upstream]` or `[upstreams.NAME]`.
    pub fn section(&self) -> String {
        format!("[{}]", section_key(&self.group))
    }

    /// A key of the group's section, as error messages name keys: `upstream.timeout_ms`.
    pub fn key(&self, key: &str) -> String {
        format!("{}.{key}", section_key(&self.group))
    }

    /// How `config check` and audit reasons call the group: `upstream`, or `upstream NAME`.
    pub fn label(&self) -> String {
        if self.group == DEFAULT_GROUP {
            "upstream".into()
        } else {
            format!("upstream {}", self.group)
        }
    }
}

/// The dotted key of a group's section: `upstream` or `upstreams.NAME`.
pub fn section_key(group: &str) -> String {
    if group == DEFAULT_GROUP {
        "upstream".into()
    } else {
        format!("upstreams.{group}")
    }
}

/// `[upstream]` and the `[upstreams.NAME]` groups, in that order.
pub(super) fn upstream_groups(
    default: Option<RawUpstream>,
    named: std::collections::BTreeMap<String, RawUpstream>,
    base: &Path,
) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let mut groups = Vec::new();
    if let Some(raw) = default {
        groups.push(upstream_config(DEFAULT_GROUP, raw, base)?);
    }
    for (name, raw) in named {
        // The name goes into log lines and a Prometheus label as it is.
        let plain = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain || name == DEFAULT_GROUP {
            return Err(ConfigError::invalid(
                format!("upstreams.{name}"),
                format!(
                    "a group name is 1 to 64 letters, digits, '-' or '_', and not \
                     {DEFAULT_GROUP:?} (that is [upstream])"
                ),
            ));
        }
        groups.push(upstream_config(&name, raw, base)?);
    }
    Ok(groups)
}

fn upstream_config(
    group: &str,
    raw: RawUpstream,
    base: &Path,
) -> Result<UpstreamConfig, ConfigError> {
    let section = section_key(group);
    let key = |k: &str| format!("{section}.{k}");
    let RawUpstream {
        servers,
        secret,
        secret_file,
        timeout_ms,
        dead_time_secs,
        require_message_authenticator,
        nas_identifier,
        pass_through,
        status_check,
        check_interval_secs,
    } = raw;
    if servers.is_empty() {
        return Err(ConfigError::invalid(
            key("servers"),
            "must list at least one server (\"address:port\")",
        ));
    }
    let servers = servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            server(s).map_err(|why| ConfigError::invalid(format!("{section}.servers[{i}]"), why))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (i, s) in servers.iter().enumerate() {
        if servers[..i].iter().any(|t| t.name == s.name) {
            return Err(ConfigError::invalid(
                format!("{section}.servers[{i}]"),
                format!("{} is listed twice", s.name),
            ));
        }
    }
    let secret = shared_secret(&key("secret"), secret, secret_file, base)?;
    if !(100..=10_000).contains(&timeout_ms) {
        return Err(ConfigError::invalid(
            key("timeout_ms"),
            format!("{timeout_ms} is outside 100..=10000"),
        ));
    }
    if dead_time_secs > 3600 {
        return Err(ConfigError::invalid(
            key("dead_time_secs"),
            format!("{dead_time_secs} is more than 3600"),
        ));
    }
    if let Some(n) = &nas_identifier {
        if n.is_empty() || n.len() > 253 {
            return Err(ConfigError::invalid(
                key("nas_identifier"),
                "must be 1 to 253 characters",
            ));
        }
        // The upstream server logs it (NPS's event log, FreeRADIUS's detail file).
        if n.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                key("nas_identifier"),
                "must not contain control characters",
            ));
        }
    }
    let status_check = super::one_of(
        key("status_check"),
        &status_check,
        &[
            ("none", None),
            ("status-server", Some(StatusCheck::StatusServer)),
            ("access-request", Some(StatusCheck::AccessRequest)),
        ],
    )?;
    // Checks run while a server is held back: with no dead time there is none.
    if status_check.is_some() && dead_time_secs < 2 {
        return Err(ConfigError::invalid(
            key("dead_time_secs"),
            format!(
                "{dead_time_secs} leaves no time between checks of a silent server \
                 (status_check = {:?} checks it every check_interval_secs while it is held \
                 back): use 2 or more, or status_check = \"none\"",
                status_check_name(status_check)
            ),
        ));
    }
    if status_check.is_some() && !(1..dead_time_secs).contains(&check_interval_secs) {
        return Err(ConfigError::invalid(
            key("check_interval_secs"),
            format!(
                "must be at least 1 and less than dead_time_secs ({dead_time_secs}), not \
                 {check_interval_secs}: a check must come before dead_time_secs runs out, or \
                 logins ask the silent server between two checks"
            ),
        ));
    }
    let pass_through = pass_through
        .into_iter()
        .enumerate()
        .map(|(i, name)| match AttrKey::by_name(&name) {
            Ok(key) => Ok((name.trim().to_string(), key)),
            Err(e) => Err(ConfigError::invalid(
                format!("{section}.pass_through[{i}]"),
                e,
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Listed twice, one of them under another spelling (Class and Attr-25), it reads as
    // two rules where there is one.
    for (i, (name, k)) in pass_through.iter().enumerate() {
        if let Some((first, _)) = pass_through[..i].iter().find(|(_, other)| other == k) {
            return Err(ConfigError::invalid(
                format!("{section}.pass_through[{i}]"),
                format!("{name:?} is {first:?} again: list each attribute once"),
            ));
        }
    }
    Ok(UpstreamConfig {
        group: group.to_string(),
        servers,
        secret,
        timeout: Duration::from_millis(timeout_ms),
        dead_time: Duration::from_secs(dead_time_secs),
        require_message_authenticator,
        nas_identifier,
        pass_through,
        status_check,
        check_interval: Duration::from_secs(check_interval_secs),
    })
}

/// `"10.0.0.5:1812"`, `"[2001:db8::5]:1812"` or `"nps1.corp.example:1812"`. The port is
/// required: a server's port is part of what the admin agreed with its owner.
fn server(s: &str) -> Result<UpstreamServer, String> {
    let s = s.trim();
    let usage = "(\"10.0.0.5:1812\", \"[2001:db8::5]:1812\" or \"nps1.corp.example:1812\")";
    if let Ok(addr) = s.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("{s:?}: 0 is not a port {usage}"));
        }
        // No one server answers there: a listener's wildcard, or a group of hosts.
        let ip = addr.ip();
        let v4_broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
        if ip.is_unspecified() || ip.is_multicast() || v4_broadcast {
            return Err(format!(
                "{s:?}: {ip} is a {} address, not one server's {usage}",
                if ip.is_unspecified() {
                    "wildcard (unspecified)"
                } else if v4_broadcast {
                    "broadcast"
                } else {
                    "multicast"
                }
            ));
        }
        return Ok(UpstreamServer {
            name: addr.to_string(),
            host: UpstreamHost::Addr(addr),
        });
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} has no port {usage}"));
    };
    if host.parse::<std::net::IpAddr>().is_ok() || host.contains(':') || host.starts_with('[') {
        return Err(format!("{s:?} is not an address with its port {usage}"));
    }
    let port: u16 = match port.parse() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("{s:?}: {port:?} is not a port {usage}")),
    };
    if looks_like_ipv4(host) {
        return Err(format!(
            "{s:?}: {host:?} looks like an IPv4 address but is not one (four numbers 0-255, \
             no leading zeros) {usage}"
        ));
    }
    if !is_dns_name(host) {
        return Err(format!(
            "{s:?}: {host:?} is neither an IP address nor a DNS name {usage}"
        ));
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    Ok(UpstreamServer {
        name: format!("{host}:{port}"),
        host: UpstreamHost::Name(host, port),
    })
}

/// A host that is no IPv4 address as Rust reads one, but that the system resolver would
/// take for one: its last label all digits, or a hex number (no top-level domain is numeric,
/// RFC 3696 §2). glibc reads "192.168.110" as 192.168.0.110 and "10.0.0.010" as 10.0.0.8 (the
/// old inet_aton forms), so a mistyped address would send logins to another host instead of
/// being refused.
pub(super) fn looks_like_ipv4(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return false;
    }
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || hex)
}

/// Letters, digits and hyphens in dot-separated labels of 1–63 characters (RFC 1123), at
/// most 253 in all; one trailing dot allowed.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_addresses_or_names_with_a_port() {
        let a = server("10.0.0.5:1812").unwrap();
        assert_eq!(a.name, "10.0.0.5:1812");
        assert_eq!(a.host, UpstreamHost::Addr(([10, 0, 0, 5], 1812).into()));
        let v6 = server("[2001:DB8::5]:1812").unwrap();
        assert_eq!(v6.name, "[2001:db8::5]:1812");
        let n = server(" NPS1.corp.example.:1645 ").unwrap();
        assert_eq!(n.name, "nps1.corp.example:1645");
        assert_eq!(n.host, UpstreamHost::Name("nps1.corp.example".into(), 1645));
        assert_eq!(
            server("localhost:1812").unwrap().host,
            UpstreamHost::Name("localhost".into(), 1812)
        );
        for (bad, says) in [
            ("nps.example.org", "has no port"),
            ("10.0.0.5", "has no port"),
            ("2001:db8::5", "not an address with its port"),
            ("[2001:db8::5]", "not an address with its port"),
            ("10.0.0.5:0", "is not a port"),
            ("0.0.0.0:1812", "wildcard (unspecified)"),
            ("[::]:1812", "wildcard (unspecified)"),
            ("255.255.255.255:1812", "broadcast"),
            ("224.0.0.1:1812", "multicast"),
            ("[ff02::1]:1812", "multicast"),
            ("nps:radius", "is not a port"),
            ("nps_1.example:1812", "neither an IP address nor a DNS name"),
            ("-nps.example:1812", "neither"),
            ("nps..example:1812", "neither"),
            (":1812", "neither"),
            // What glibc would take for 192.168.0.110, 10.0.0.8 and 10.0.0.1.
            ("192.168.110:1812", "looks like an IPv4 address"),
            ("10.0.0.010:1812", "looks like an IPv4 address"),
            ("0xa000001:1812", "looks like an IPv4 address"),
        ] {
            let e = server(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
