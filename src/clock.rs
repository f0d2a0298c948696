//! Time as a dependency, so TOTP windows, challenge expiry and lockouts are testable at fixed
//! instants.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock tests move by hand.
#[derive(Debug, Clone, Default)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    pub fn at(t: i64) -> Self {
        FixedClock(Arc::new(AtomicI64::new(t)))
    }
    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst)
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How far ahead of now a stored time may be and still be taken as written by a clock that
/// was right: a remembered login's or a prompt's start stamped later than this was written
/// while this node's clock ran ahead (before an NTP step back, a VM resumed), or by another
/// node whose clock does. Trusted, it would last as long as the clock's error (a day of
/// password-only logins from a 10-minute setting). Two minutes covers the skew between
/// synchronised nodes.
pub const FUTURE_SLACK_SECS: i64 = 120;

/// Unix seconds as RFC 3339 UTC (`2026-12-01T08:00:00Z`), for people: audit tables, reasons.
pub fn fmt_time(t: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}
