//! `[store]` → `StoreConfig`: SQLite or PostgreSQL, each refusing the other's keys.

use std::path::Path;
use std::time::Duration;

use super::raw::*;
use super::validate::{
    not_for_everyone, not_in_open_directory, not_writable_by_everyone, resolve, secret_value,
};
use super::*;

pub(super) fn store_config(
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
        // Taken out by the caller: it is policy, not where the store is.
        legacy_app_passwords: _,
    } = raw;
    let key_file = resolve("store.key_file", base, key_file)?;
    // The seed key, and below the database: in a directory every account may change, any
    // of them could delete them (every enrollment gone at the next start, a new key made)
    // or put their own in place, whatever the files' own modes.
    not_in_open_directory("store.key_file", &key_file)?;
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
            let path = resolve(
                "store.path",
                base,
                path.unwrap_or_else(|| DEFAULT_SQLITE_PATH.into()),
            )?;
            if path == key_file {
                return Err(ConfigError::invalid(
                    "store.key_file",
                    "must not be the database file: the key has to live apart from the data",
                ));
            }
            // The state directory given for the file (`/var/lib/radmfa`): every command then
            // took the directory for a database without its key file, and told the admin to
            // restore a key that never existed (red team).
            if path.is_dir() {
                return Err(ConfigError::invalid(
                    "store.path",
                    format!(
                        "{} is a directory; give the database file's path (such as {})",
                        path.display(),
                        path.join("radmfa.db").display()
                    ),
                ));
            }
            not_in_open_directory("store.path", &path)?;
            Ok(StoreConfig::Sqlite { path, key_file })
        }
        "postgres" => {
            refuse("path", path.is_some(), "sqlite")?;
            let url_source = match &url_file {
                Some(f) if url.is_none() => {
                    format!(
                        "store.url_file {}",
                        resolve("store.url_file", base, f.clone())?.display()
                    )
                }
                _ => "store.url".to_string(),
            };
            let url = secret_value("store.url", url, url_file, base)?;
            // A URL holds no white space of its own: a space an editor left at the end of
            // url_file's line was read into the last parameter, and the error said
            // "sslmode takes one of disable, …" of a file that said `sslmode=disable`.
            let url = crate::secret::Secret::from(
                url.expose_str()
                    .unwrap_or_default()
                    .trim_ascii()
                    .to_string(),
            );
            let text = url.expose_str().unwrap_or_default();
            crate::store::postgres::parse_url(text)
                .map_err(|problem| ConfigError::invalid(&url_source, problem))?;
            url_files_guarded(text)?;
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
            let ssl_root_cert = ssl_root_cert
                .map(|p| resolve("store.ssl_root_cert", base, p))
                .transpose()?;
            if let Some(ca) = &ssl_root_cert {
                if !ca.is_file() {
                    return Err(ConfigError::invalid(
                        "store.ssl_root_cert",
                        format!("{} does not exist", ca.display()),
                    ));
                }
                // As ldap.ca_file and radsec.ca_file: sqlx reads it again for each new
                // connection, so a CA any account can add to lets it pose as the database.
                not_writable_by_everyone("store.ssl_root_cert", ca)?;
            }
            Ok(StoreConfig::Postgres {
                settings: crate::store::postgres::PgSettings {
                    url,
                    pool_size,
                    connect_timeout: Duration::from_millis(timeout_ms),
                    ssl_mode,
                    ssl_root_cert,
                    max_request: request_deadline,
                    url_source,
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

/// The files a `store.url` names (`sslrootcert`, `sslcert`, `sslkey` and their sqlx
/// spellings) are held to what the config's own `ssl_root_cert` and the other CA and key
/// files are: a CA or certificate nobody else can change, a key nobody else can read.
/// Relative paths are as sqlx reads them, from the working directory.
fn url_files_guarded(url: &str) -> Result<(), ConfigError> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let path = Path::new(value.as_ref());
        let key = format!("store.url ({name})");
        match name.as_ref() {
            "sslkey" | "ssl-key" => not_for_everyone(&key, path)?,
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" | "sslcert" | "ssl-cert" => {
                not_writable_by_everyone(&key, path)?
            }
            _ => {}
        }
    }
    Ok(())
}
