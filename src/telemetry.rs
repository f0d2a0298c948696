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
/// radmfa reports failed handshakes itself; rustls says only errors unless the level names
/// it (`"info,rustls=debug"` to look into a TLS problem).
fn with_quiet_tls(level: &str) -> String {
    let names_rustls = level.split(',').any(|d| {
        let target = d.trim().split(['=', '[']).next().unwrap_or("");
        target == "rustls" || target.starts_with("rustls::")
    });
    if names_rustls || level.trim().eq_ignore_ascii_case("off") {
        level.to_string()
    } else {
        format!("{level},rustls=error")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rustls_says_only_errors_unless_the_level_names_it() {
        assert_eq!(super::with_quiet_tls("info"), "info,rustls=error");
        assert_eq!(
            super::with_quiet_tls("debug,rustls=debug"),
            "debug,rustls=debug"
        );
        assert_eq!(super::with_quiet_tls("off"), "off");
        assert_eq!(
            super::with_quiet_tls("info,tokio_rustls=debug"),
            "info,tokio_rustls=debug,rustls=error"
        );
    }
}
