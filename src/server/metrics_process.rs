//! Series read at each scrape from where they are kept, not from [`Metrics`]' counters:
//! the log lines stderr refused (counted by the log's writer, which starts before any
//! `Metrics` exists).
//!
//! [`Metrics`]: super::metrics::Metrics

use std::fmt::Write;

/// What these series say, gathered for one scrape.
#[derive(Debug, Default)]
pub struct Values {
    pub log_lines_lost: u64,
}

impl Values {
    /// As they stand now.
    pub fn now() -> Self {
        Values {
            log_lines_lost: crate::telemetry::lines_lost(),
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
        super::Values::default().render(&mut text);
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(!names.is_empty());
        for name in names {
            assert!(
                doc.contains(&format!("| `{name}` |")),
                "{name} is not in docs/operations.md's metrics table"
            );
        }
    }
}
