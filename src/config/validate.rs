//! `RawConfig` → `Config`: every value checked, every error naming its key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::raw::*;
use super::*;
use crate::auth::ldap::{AttributeNames, LdapSettings};

pub fn validate(raw: RawConfig, origin: &Path) -> Result<Config, ConfigError> {
    // Destructured exhaustively: a new section that is not wired here fails to compile.
    let RawConfig {
        server,
        store,
        ldap,
        totp,
        hotp,
        challenge,
        lockout,
        audit,
        phone,
        sms,
        voice,
        twilio,
        http_sms,
        callbacks,
        clients,
    } = raw;
    let base = origin.parent().unwrap_or(Path::new("."));
    let server = server_config(server)?;
    let mut store = store_config(store, base, server.request_deadline)?;
    let clients = client_configs(clients, base)?;
    if let StoreConfig::Postgres { settings, .. } = &mut store {
        // The database ends a request transaction idle longer than any request may run.
        settings.max_request = clients
            .iter()
            .map(|c| c.factors.request_deadline(server.request_deadline))
            .fold(server.request_deadline, Duration::max);
    }
    Ok(Config {
        server,
        store,
        ldap: ldap_settings(ldap, base)?,
        totp: totp_config(totp)?,
        hotp: hotp_config(hotp)?,
        challenge: challenge_config(challenge)?,
        lockout: lockout_config(lockout)?,
        audit: AuditConfig {
            include_name: audit.include_name,
            include_email: audit.include_email,
        },
        delivery: super::validate_delivery::validate(
            super::raw_delivery::RawDelivery {
                phone,
                sms,
                voice,
                twilio,
                http_sms,
                callbacks,
            },
            base,
        )?,
        clients,
    })
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
    if listen.is_empty() {
        return Err(ConfigError::invalid(
            "server.listen",
            "needs at least one address",
        ));
    }
    let listen = listen
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse::<SocketAddr>().map_err(|_| {
                ConfigError::invalid(
                    format!("server.listen[{i}]"),
                    format!("{a:?} is not an address:port (IPv6 as \"[::]:1812\")"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if max_in_flight == 0 {
        return Err(ConfigError::invalid(
            "server.max_in_flight",
            "must be at least 1",
        ));
    }
    if !(100..=120_000).contains(&request_deadline_ms) {
        return Err(ConfigError::invalid(
            "server.request_deadline_ms",
            "must be between 100 and 120000",
        ));
    }
    if !(1..=300).contains(&duplicate_window_secs) {
        return Err(ConfigError::invalid(
            "server.duplicate_window_secs",
            "must be between 1 and 300 (RFC 5080 suggests about 30)",
        ));
    }
    let log_format = match log_format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::invalid(
                "server.log_format",
                format!("{other:?} is not one of \"text\", \"json\""),
            ))
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        return Err(ConfigError::invalid(
            "server.log_level",
            format!("{log_level:?} is not a log filter (error, warn, info, debug, trace)"),
        ));
    }
    let name = match name {
        Some(n) if n.trim().is_empty() => {
            return Err(ConfigError::invalid("server.name", "must not be empty"))
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

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "radmfa".into())
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

fn store_config(
    raw: RawStore,
    base: &Path,
    request_deadline: Duration,
) -> Result<StoreConfig, ConfigError> {
    let RawStore {
        kind,
        key_file,
        path,
        url,
        url_file,
        pool_size,
        connect_timeout_ms,
        sslmode,
        ssl_root_cert,
    } = raw;
    let key_file = resolve(base, key_file);
    // A key meant for the other store type is a mistake, not something to ignore.
    let refuse = |key: &str, set: bool, only: &str| {
        if set {
            Err(ConfigError::invalid(
                format!("store.{key}"),
                format!("only applies to type = {only:?}"),
            ))
        } else {
            Ok(())
        }
    };
    match kind.as_str() {
        "sqlite" => {
            refuse("url", url.is_some(), "postgres")?;
            refuse("url_file", url_file.is_some(), "postgres")?;
            refuse("pool_size", pool_size.is_some(), "postgres")?;
            refuse(
                "connect_timeout_ms",
                connect_timeout_ms.is_some(),
                "postgres",
            )?;
            refuse("sslmode", sslmode.is_some(), "postgres")?;
            refuse("ssl_root_cert", ssl_root_cert.is_some(), "postgres")?;
            let path = resolve(base, path.unwrap_or_else(|| DEFAULT_SQLITE_PATH.into()));
            if path == key_file {
                return Err(ConfigError::invalid(
                    "store.key_file",
                    "must not be the database file: the key has to live apart from the data",
                ));
            }
            Ok(StoreConfig::Sqlite { path, key_file })
        }
        "postgres" => {
            refuse("path", path.is_some(), "sqlite")?;
            let url = secret_value("store.url", url, url_file, base)?;
            let text = url.expose_str().unwrap_or_default();
            crate::store::postgres::parse_url(text)
                .map_err(|problem| ConfigError::invalid("store.url", problem))?;
            let pool_size = pool_size.unwrap_or(DEFAULT_PG_POOL_SIZE);
            if !(1..=1000).contains(&pool_size) {
                return Err(ConfigError::invalid(
                    "store.pool_size",
                    "must be between 1 and 1000",
                ));
            }
            let timeout_ms = connect_timeout_ms.unwrap_or(DEFAULT_PG_CONNECT_TIMEOUT_MS);
            // With the database down a login waits this long twice (its store call, then
            // the audit record) before the Reject; that must fit in the request deadline.
            let deadline_ms = request_deadline.as_millis() as u64;
            if timeout_ms < 50 || timeout_ms.saturating_mul(2) >= deadline_ms {
                return Err(ConfigError::invalid(
                    "store.connect_timeout_ms",
                    format!(
                        "must be at least 50 and less than half of server.request_deadline_ms \
                         ({deadline_ms})"
                    ),
                ));
            }
            let ssl_mode = sslmode
                .map(|m| {
                    m.parse::<sqlx::postgres::PgSslMode>().map_err(|_| {
                        ConfigError::invalid(
                            "store.sslmode",
                            format!(
                                "{m:?} is not one of \"disable\", \"allow\", \"prefer\", \
                                 \"require\", \"verify-ca\", \"verify-full\""
                            ),
                        )
                    })
                })
                .transpose()?;
            let ssl_root_cert = ssl_root_cert.map(|p| resolve(base, p));
            if let Some(ca) = &ssl_root_cert {
                if !ca.is_file() {
                    return Err(ConfigError::invalid(
                        "store.ssl_root_cert",
                        format!("{} does not exist", ca.display()),
                    ));
                }
            }
            Ok(StoreConfig::Postgres {
                settings: crate::store::postgres::PgSettings {
                    url,
                    pool_size,
                    connect_timeout: Duration::from_millis(timeout_ms),
                    ssl_mode,
                    ssl_root_cert,
                    max_request: request_deadline,
                },
                key_file,
            })
        }
        other => Err(ConfigError::invalid(
            "store.type",
            format!("{other:?} is not a supported store (\"sqlite\", \"postgres\")"),
        )),
    }
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
            let f = resolve(base, f);
            let text = std::fs::read_to_string(&f).map_err(|e| {
                ConfigError::invalid(format!("{key}_file"), format!("{}: {e}", f.display()))
            })?;
            Ok(Secret::from(
                text.trim_end_matches(['\r', '\n']).to_string(),
            ))
        }
        (None, None) => Err(ConfigError::invalid(
            key,
            format!("missing: set {key} or {key}_file"),
        )),
    }
}

fn ldap_settings(raw: RawLdap, base: &Path) -> Result<LdapSettings, ConfigError> {
    let RawLdap {
        urls,
        starttls,
        ca_file,
        tls_insecure_skip_verify,
        bind_dn,
        bind_password,
        bind_password_file,
        base_dn,
        user_filter,
        enabled_filter,
        connect_timeout_ms,
        timeout_ms,
        pool_size,
        max_concurrent_binds,
        attributes,
    } = raw;
    if urls.is_empty() {
        return Err(ConfigError::invalid("ldap.urls", "needs at least one URL"));
    }
    for (i, u) in urls.iter().enumerate() {
        if !(u.starts_with("ldap://") || u.starts_with("ldaps://")) {
            return Err(ConfigError::invalid(
                format!("ldap.urls[{i}]"),
                format!("{u:?} must start with ldap:// or ldaps://"),
            ));
        }
        if starttls && u.starts_with("ldaps://") {
            return Err(ConfigError::invalid(
                "ldap.starttls",
                format!("StartTLS cannot be used with {u:?}, which is already TLS"),
            ));
        }
    }
    let ca_file = ca_file.map(|p| resolve(base, p));
    if let Some(ca) = &ca_file {
        if !ca.is_file() {
            return Err(ConfigError::invalid(
                "ldap.ca_file",
                format!("{} does not exist", ca.display()),
            ));
        }
    }
    if !user_filter.contains("{user}") {
        return Err(ConfigError::invalid(
            "ldap.user_filter",
            "must contain the {user} placeholder, e.g. \"(uid={user})\"",
        ));
    }
    if let Some(f) = &enabled_filter {
        if !(f.starts_with('(') && f.ends_with(')')) || ldap3::parse_filter(f).is_err() {
            return Err(ConfigError::invalid(
                "ldap.enabled_filter",
                format!("{f:?} is not an LDAP filter in parentheses"),
            ));
        }
    }
    if !(user_filter.starts_with('(') && user_filter.ends_with(')')) {
        return Err(ConfigError::invalid(
            "ldap.user_filter",
            "must be an LDAP filter in parentheses",
        ));
    }
    if base_dn.trim().is_empty() {
        return Err(ConfigError::invalid("ldap.base_dn", "must not be empty"));
    }
    let bind_password = secret_value(
        "ldap.bind_password",
        bind_password,
        bind_password_file,
        base,
    )?;
    if !(100..=30_000).contains(&connect_timeout_ms) {
        return Err(ConfigError::invalid(
            "ldap.connect_timeout_ms",
            "must be between 100 and 30000",
        ));
    }
    if !(100..=30_000).contains(&timeout_ms) {
        return Err(ConfigError::invalid(
            "ldap.timeout_ms",
            "must be between 100 and 30000",
        ));
    }
    if pool_size == 0 || pool_size > 256 {
        return Err(ConfigError::invalid(
            "ldap.pool_size",
            "must be between 1 and 256",
        ));
    }
    if max_concurrent_binds == 0 {
        return Err(ConfigError::invalid(
            "ldap.max_concurrent_binds",
            "must be at least 1",
        ));
    }
    let RawLdapAttributes {
        display_name,
        given_name,
        surname,
        mail,
        mobile,
        telephone,
    } = attributes;
    Ok(LdapSettings {
        urls,
        starttls,
        ca_file,
        tls_insecure_skip_verify,
        bind_dn,
        bind_password,
        base_dn,
        user_filter,
        enabled_filter,
        attributes: AttributeNames {
            display_name,
            given_name,
            surname,
            mail,
            mobile,
            telephone,
        },
        connect_timeout: Duration::from_millis(connect_timeout_ms),
        op_timeout: Duration::from_millis(timeout_ms),
        pool_size,
        user_bind_concurrency: max_concurrent_binds,
    })
}

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
    if resync_window <= window || resync_window > 100_000 {
        return Err(ConfigError::invalid(
            "hotp.resync_window",
            "must be larger than hotp.window and at most 100000",
        ));
    }
    Ok(HotpConfig {
        window: u64::from(window),
        resync_window: u64::from(resync_window),
        self_resync,
    })
}

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
    if prompt.is_empty() || prompt.len() > 253 {
        return Err(ConfigError::invalid(
            "challenge.prompt",
            "must be 1 to 253 bytes (one Reply-Message attribute)",
        ));
    }
    Ok(ChallengeConfig {
        timeout: Duration::from_secs(timeout_secs),
        max_attempts,
        prompt,
    })
}

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
    if duration_secs == 0 {
        return Err(ConfigError::invalid(
            "lockout.duration_secs",
            "must be at least 1",
        ));
    }
    Ok(LockoutConfig {
        threshold,
        duration: Duration::from_secs(duration_secs),
    })
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
        let RawClient {
            name,
            address,
            secret,
            secret_file,
            require_message_authenticator,
            otp_mode,
            inline_delimiter,
            no_factor,
            methods,
            voice_mode,
            voice_budget_secs,
            app_passwords,
            second_factor_only,
        } = c;
        let key = |k: &str| format!("client[{i}].{k}");
        if name.trim().is_empty() {
            return Err(ConfigError::invalid(key("name"), "must not be empty"));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(ConfigError::invalid(
                key("name"),
                format!("{name:?} is used by another client"),
            ));
        }
        let mut networks = Vec::new();
        for a in address.items() {
            let net = a
                .parse::<IpNet>()
                .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConfigError::invalid(
                        key("address"),
                        format!("{a:?} is not an IP address or CIDR"),
                    )
                })?;
            networks.push(net.trunc());
        }
        if networks.is_empty() {
            return Err(ConfigError::invalid(key("address"), "must not be empty"));
        }
        let secret = secret_value(&key("secret"), secret, secret_file, base)?;
        // RFC 2865 §3 wants the secret unguessable; RFC 6614 recommends at least 16 characters.
        if secret.len() < 8 {
            return Err(ConfigError::invalid(
                key("secret"),
                "is too short: use at least 8 characters (16 or more recommended)",
            ));
        }
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
            other => {
                return Err(ConfigError::invalid(
                    key("otp_mode"),
                    format!("{other:?} is not one of \"challenge\", \"inline\""),
                ))
            }
        };
        let no_factor = match no_factor.as_str() {
            "reject" => NoFactorPolicy::Reject,
            "allow" => NoFactorPolicy::Allow,
            other => {
                return Err(ConfigError::invalid(
                    key("no_factor"),
                    format!("{other:?} is not one of \"reject\", \"allow\""),
                ))
            }
        };
        let factors = super::validate_delivery::client_factors(
            super::raw_delivery::RawClientFactors {
                methods,
                voice_mode,
                voice_budget_secs,
                app_passwords,
                second_factor_only,
            },
            &key,
        )?;
        out.push(ClientConfig {
            name,
            networks,
            secret,
            require_message_authenticator,
            otp_mode,
            no_factor,
            factors,
        });
    }
    // Overlapping networks would make the shared secret depend on table order.
    for (i, a) in out.iter().enumerate() {
        for (j, b) in out.iter().enumerate().skip(i + 1) {
            for na in &a.networks {
                for nb in &b.networks {
                    if na == nb {
                        return Err(ConfigError::invalid(
                            format!("client[{j}].address"),
                            format!("{nb} is also listed for client {:?} (client[{i}])", a.name),
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}
