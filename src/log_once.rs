//! Warnings about a setting, not a request: a group the config names that the directory
//! does not have fails every login that asks about it, and a warning per login flooded the
//! journal (two per login where the directory also referred the search elsewhere). Each is
//! warned of once per [`EVERY`], keyed by what it is about; the repeats go to debug. The
//! HTTP listeners' closes at their connection caps use it too, keyed by listener and cap:
//! what they show is a setup (a load balancer over its share), and anyone can open
//! connections. Request-made lines use [`info_once!`] (a user name the directory matched
//! by a rule radmfa does not follow: once per entry).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one problem is warned of again while it lasts.
pub const EVERY: Duration = Duration::from_secs(300);

/// Keys are names from the config (group DNs), so few; the cap only guards against a
/// config that keeps changing them.
const MAX_KEYS: usize = 4096;

static WARNED: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

/// Whether a warning about `key` is due (and, if so, it is counted as given now).
pub fn due(key: &str) -> bool {
    let now = Instant::now();
    let mut guard = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if map.len() >= MAX_KEYS && !map.contains_key(key) {
        map.clear();
    }
    match map.get(key) {
        Some(at) if now.duration_since(*at) < EVERY => false,
        _ => {
            map.insert(key.to_string(), now);
            true
        }
    }
}

/// `tracing::$level!` when a line about `$key` is [`due`], else `tracing::debug!`: what
/// [`warn_once!`] and [`info_once!`] expand to.
#[doc(hidden)]
#[macro_export]
macro_rules! once_else_debug {
    ($level:ident, $key:expr, $($arg:tt)+) => {
        if $crate::log_once::due($key) {
            tracing::$level!($($arg)+)
        } else {
            tracing::debug!($($arg)+)
        }
    };
}

/// `tracing::warn!` when a warning about `$key` is [`due`], else `tracing::debug!`.
#[macro_export]
macro_rules! warn_once {
    ($key:expr, $($arg:tt)+) => { $crate::once_else_debug!(warn, $key, $($arg)+) };
}

/// `tracing::info!` when a line about `$key` is [`due`], else `tracing::debug!`: for a line
/// anyone can make repeat by sending requests (a near-miss user name, say), which is worth
/// saying once per [`EVERY`] and not once per request.
#[macro_export]
macro_rules! info_once {
    ($key:expr, $($arg:tt)+) => { $crate::once_else_debug!(info, $key, $($arg)+) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_warning_per_key_per_interval() {
        assert!(super::due("test:a"));
        assert!(!super::due("test:a"));
        assert!(super::due("test:b"));
    }
}
