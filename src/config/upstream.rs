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

#[derive(Debug, Deserialize)]
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
}

fn d_timeout() -> u64 {
    1000
}
fn d_dead() -> u64 {
    30
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Tried in this order; one that did not answer goes last for `dead_time`.
    pub servers: Vec<SocketAddr>,
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
}

pub(super) fn upstream_config(
    raw: RawUpstream,
    base: &Path,
) -> Result<UpstreamConfig, ConfigError> {
    let RawUpstream {
        servers,
        secret,
        secret_file,
        timeout_ms,
        dead_time_secs,
        require_message_authenticator,
        nas_identifier,
        pass_through,
    } = raw;
    if servers.is_empty() {
        return Err(ConfigError::invalid(
            "upstream.servers",
            "must list at least one server (\"address:port\")",
        ));
    }
    let servers = servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<SocketAddr>().map_err(|_| {
                ConfigError::invalid(
                    format!("upstream.servers[{i}]"),
                    format!("{s:?} is not \"address:port\" (e.g. \"10.0.0.5:1812\")"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secret = shared_secret("upstream.secret", secret, secret_file, base)?;
    if !(100..=10_000).contains(&timeout_ms) {
        return Err(ConfigError::invalid(
            "upstream.timeout_ms",
            format!("{timeout_ms} is outside 100..=10000"),
        ));
    }
    if dead_time_secs > 3600 {
        return Err(ConfigError::invalid(
            "upstream.dead_time_secs",
            format!("{dead_time_secs} is more than 3600"),
        ));
    }
    if let Some(n) = &nas_identifier {
        if n.is_empty() || n.len() > 253 {
            return Err(ConfigError::invalid(
                "upstream.nas_identifier",
                "must be 1 to 253 characters",
            ));
        }
    }
    let pass_through = pass_through
        .into_iter()
        .enumerate()
        .map(|(i, name)| match AttrKey::by_name(&name) {
            Ok(key) => Ok((name.trim().to_string(), key)),
            Err(e) => Err(ConfigError::invalid(
                format!("upstream.pass_through[{i}]"),
                e,
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(UpstreamConfig {
        servers,
        secret,
        timeout: Duration::from_millis(timeout_ms),
        dead_time: Duration::from_secs(dead_time_secs),
        require_message_authenticator,
        nas_identifier,
        pass_through,
    })
}
