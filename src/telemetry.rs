//! Logging: human-readable text or one JSON object per line (for a SIEM), to stderr.
//! `RUST_LOG` overrides the configured level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat, level: &str) {
    let level = with_quiet_tls(level);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: under systemd, or redirected to a file, escape codes would
    // land in the journal and in whatever reads it (a SIEM, grep).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// rustls logs its own warnings (an IP address sent as SNI, an unexpected handshake
/// message) through the `log` bridge: one line per connection any host in a RadSec
/// client's network can cause, with no peer address and past the drop log's rate limit.
/// ldap3 warns of each connection's receive error ("socket receive error: decoding
/// error") with no server named, beside radmfa's own line for the operation that failed.
/// radmfa reports failed handshakes and directory failures itself; these crates say only
/// errors unless the level names them (`"info,rustls=debug"` to look into a TLS problem).
const QUIET_CRATES: [&str; 2] = ["rustls", "ldap3"];

fn with_quiet_tls(level: &str) -> String {
    if level.trim().eq_ignore_ascii_case("off") {
        return level.to_string();
    }
    let mut out = level.to_string();
    for name in QUIET_CRATES {
        let named = level.split(',').any(|d| {
            let target = d.trim().split(['=', '[']).next().unwrap_or("");
            target == name || target.starts_with(&format!("{name}::"))
        });
        if !named {
            out.push_str(&format!(",{name}=error"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn rustls_and_ldap3_say_only_errors_unless_the_level_names_them() {
        assert_eq!(
            super::with_quiet_tls("info"),
            "info,rustls=error,ldap3=error"
        );
        assert_eq!(
            super::with_quiet_tls("debug,rustls=debug"),
            "debug,rustls=debug,ldap3=error"
        );
        assert_eq!(
            super::with_quiet_tls("info,ldap3::conn=debug"),
            "info,ldap3::conn=debug,rustls=error"
        );
        assert_eq!(super::with_quiet_tls("off"), "off");
        assert_eq!(
            super::with_quiet_tls("info,tokio_rustls=debug"),
            "info,tokio_rustls=debug,rustls=error,ldap3=error"
        );
    }
}
