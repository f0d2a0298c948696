//! Series read at each scrape from where they are kept, not from [`Metrics`]' counters:
//! the log lines stderr refused (counted by the log's writer, which starts before any
//! `Metrics` exists), the duplicate cache's entries, and the store's open challenges as
//! housekeeping last counted them.
//!
//! [`Metrics`]: super::metrics::Metrics

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::app::AppState;

/// Open challenges as last counted (`u64::MAX`: not yet). A static beside the log's lost
/// lines: one server per process, and housekeeping sets it without a `Metrics` of its own.
static CHALLENGES_OPEN: AtomicU64 = AtomicU64::new(u64::MAX);

/// Counts the store's open challenges for `radmfa_challenges_open`: once a minute, by
/// housekeeping, so that a scrape never waits on the store. A count that fails leaves the
/// last one (the store's failure is said and counted where logins meet it).
pub async fn count_challenges(store: &dyn crate::store::Store, now: i64) {
    match store.count_open_challenges(now).await {
        Ok(n) => CHALLENGES_OPEN.store(n, Ordering::Relaxed),
        Err(e) => tracing::debug!(error = %e, "counting open challenges"),
    }
}

/// What these series say, gathered for one scrape.
#[derive(Debug, Default)]
pub struct Values {
    pub log_lines_lost: u64,
    pub duplicate_cache_entries: u64,
    /// `None` until housekeeping has counted them.
    pub challenges_open: Option<u64>,
}

impl Values {
    /// As they stand now.
    pub fn now(app: &AppState) -> Self {
        let open = CHALLENGES_OPEN.load(Ordering::Relaxed);
        Values {
            log_lines_lost: crate::telemetry::lines_lost(),
            duplicate_cache_entries: app.dedup.entries() as u64,
            challenges_open: (open != u64::MAX).then_some(open),
        }
    }

    /// Appends them to `out` in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut family = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        family(
            "radmfa_log_lines_lost_total",
            "counter",
            "Log lines stderr would not take (a full disk under a redirected log, a log \
             shipper's pipe closed): dropped, the logins go on. The audit table still has \
             every login.",
            self.log_lines_lost,
        );
        family(
            "radmfa_duplicate_cache_entries",
            "gauge",
            "Requests held for retransmits (RFC 5080): in flight, or answered within the \
             duplicate window (at most 50,000 answered).",
            self.duplicate_cache_entries,
        );
        if let Some(open) = self.challenges_open {
            family(
                "radmfa_challenges_open",
                "gauge",
                "Access-Challenges (code, SMS or call prompts) issued and not yet answered \
                 or expired, in the store (the nodes sharing one count the same); counted \
                 once a minute.",
                open,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    /// Each of these has its row in docs/operations.md's metrics table, as `Metrics`' own
    /// do (`metrics::tests::the_operations_guide_lists_every_metric`).
    #[test]
    fn the_operations_guide_lists_them() {
        let doc = include_str!("../../docs/operations.md");
        let mut text = String::new();
        super::Values {
            challenges_open: Some(0),
            ..Default::default()
        }
        .render(&mut text);
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(names.len(), 3, "{text}");
        for name in names {
            assert!(
                doc.contains(&format!("| `{name}` |")),
                "{name} is not in docs/operations.md's metrics table"
            );
        }
    }
}
