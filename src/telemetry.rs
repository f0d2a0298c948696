//! Logging: human-readable text or one JSON object per line (for a SIEM), to stderr.
//! `RUST_LOG` overrides the configured level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

mod writer;
pub use writer::{drain, lines_lost, queue_lines, say, stopping};

pub fn init(format: LogFormat, level: &str) {
    let level = with_quiet_tls(level);
    // An empty RUST_LOG (`Environment=RUST_LOG=` in a drop-in, `docker -e RUST_LOG=`, a
    // script's `RUST_LOG=${RUST_LOG}`) is unset, not a filter of no directives: taken as
    // one, it turned every line off, the reload's errors and the audit lines included.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // Colours only on a terminal: under systemd, or redirected to a file, escape codes would
    // land in the journal and in whatever reads it (a SIEM, grep).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        // A line the disk or pipe will not take is dropped and counted, never a panic
        // (see `writer`); and tracing-subscriber is not to print about it either.
        .with_writer(writer::Stderr {
            json: format == LogFormat::Json,
        })
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Some(word) = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| misspelt_level(&v).map(str::to_string))
    {
        // Straight to stderr: the filter this word made may pass no line of ours at all.
        let text = format!(
            "RUST_LOG names \"{word}\", which is no level: alone it is taken as a module's \
             name and hides nearly every line, after a module's name it is dropped; the \
             levels are trace, debug, info, warn, error and off"
        );
        match format {
            LogFormat::Text => say(&format!("radmfa: {text}")),
            LogFormat::Json => say(
                &serde_json::json!({"level": "WARN", "target": "radmfa", "message": text})
                    .to_string(),
            ),
        }
    }
}

/// `RUST_LOG=warning` (or `err`, `fatal`…) is taken by the filter as the name of a module
/// to log, not as a level, and the daemon then logs nothing. `log_level` in the config
/// refuses such a word; RUST_LOG is used as written, so the mistake is named at start.
fn misspelt_level(value: &str) -> Option<&str> {
    const LOOK_LIKE_LEVELS: [&str; 9] = [
        "warning",
        "err",
        "fatal",
        "critical",
        "crit",
        "information",
        "notice",
        "verbose",
        "all",
    ];
    // A bare word, or the level after a module's name (`radmfa=warning`, which the filter
    // drops, leaving that module at the default level).
    value
        .split(',')
        .map(|d| d.rsplit_once('=').map_or(d, |(_, level)| level).trim())
        .find(|d| LOOK_LIKE_LEVELS.iter().any(|w| d.eq_ignore_ascii_case(w)))
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

/// What `f` logs, as JSON lines or as text lines (no colours): for unit tests of what a
/// piece of code says.
#[cfg(test)]
pub(crate) fn captured(json: bool, f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let out = buf.clone();
    let writer = move || out.clone();
    let builder = tracing_subscriber::fmt().with_ansi(false);
    if json {
        let subscriber = builder.json().with_writer(writer).finish();
        tracing::subscriber::with_default(subscriber, f);
    } else {
        let subscriber = builder.with_writer(writer).finish();
        tracing::subscriber::with_default(subscriber, f);
    }
    let text = buf.0.lock().unwrap().clone();
    String::from_utf8(text).unwrap()
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_that_look_like_levels_but_are_not_are_named() {
        assert_eq!(super::misspelt_level("warning"), Some("warning"));
        assert_eq!(super::misspelt_level("radmfa=debug, ERR"), Some("ERR"));
        assert_eq!(
            super::misspelt_level("info,radmfa=warning"),
            Some("warning")
        );
        for ok in [
            "warn",
            "info,rustls=debug",
            "radmfa",
            "error",
            "warning=debug",
        ] {
            assert_eq!(super::misspelt_level(ok), None, "{ok}");
        }
    }

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
