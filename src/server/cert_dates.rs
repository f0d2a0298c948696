//! The dates in the `[radsec]` certificate and CRL files, read ahead of time so they do not
//! cut every NAS off by surprise. Nothing in the TLS stack warns before the fact: rustls
//! goes on presenting `cert_file` past its notAfter (each NAS that checks it then refuses
//! the handshake), and with `crl_file` the client verifier enforces every CRL's nextUpdate
//! (`enforce_revocation_expiration` in `radsec::build`, webpki's `CrlExpired`), so one CRL
//! not republished in time refuses every client certificate under its CA. `config check`,
//! and `serve` at start and after each reload (`admin::review::log_warnings`), warn from
//! here; the served certificate's notAfter is also a gauge, for an alert well before.
//!
//! A file that cannot be read or parsed gives no warning here: validation and the TLS build
//! report it with the key that names it.

use std::path::Path;

use crate::clock::fmt_time;
use crate::config::RadsecConfig;

/// A certificate that expires within this many seconds is warned about.
pub const WARN_AHEAD_SECS: i64 = 30 * 86_400;

/// One certificate's name and validity, in Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDates {
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// What a certificate's dates say at `now`, if anything worth a warning: `Some` when it is
/// not valid yet (`check_start`), has expired, or expires within [`WARN_AHEAD_SECS`].
pub fn validity_note(c: &CertDates, now: i64, check_start: bool) -> Option<String> {
    if check_start && now < c.not_before {
        return Some(format!("is not valid before {}", fmt_time(c.not_before)));
    }
    if now >= c.not_after {
        return Some(format!("has expired on {}", fmt_time(c.not_after)));
    }
    let left = c.not_after - now;
    if left <= WARN_AHEAD_SECS {
        // Rounded up: a certificate with 23 hours left expires "in 1 day", not "in 0 days".
        let days = (left + 86_399) / 86_400;
        let plural = if days == 1 { "" } else { "s" };
        return Some(format!(
            "expires on {} (in {days} day{plural})",
            fmt_time(c.not_after)
        ));
    }
    None
}

/// Whether a CRL with this nextUpdate is out of date at `now`, as webpki decides it
/// (`now >= nextUpdate`); a CRL without one never is.
pub fn crl_out_of_date(next_update: Option<i64>, now: i64) -> bool {
    next_update.is_some_and(|t| now >= t)
}

/// The certificates in the PEM file `path`, in order; none if it cannot be read.
pub fn certificates(path: &Path) -> Vec<CertDates> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    rustls_pemfile::certs(&mut std::io::BufReader::new(f))
        .map_while(Result::ok)
        .filter_map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            let v = cert.validity();
            Some(CertDates {
                subject: cert.subject().to_string(),
                not_before: v.not_before.timestamp(),
                not_after: v.not_after.timestamp(),
            })
        })
        .collect()
}

/// Each CRL in the PEM file `path`: its issuer and nextUpdate.
fn crls(path: &Path) -> Vec<(String, Option<i64>)> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    rustls_pemfile::crls(&mut std::io::BufReader::new(f))
        .map_while(Result::ok)
        .filter_map(|der| {
            let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).ok()?;
            Some((
                crl.issuer().to_string(),
                crl.next_update().map(|t| t.timestamp()),
            ))
        })
        .collect()
}

/// The served certificate's notAfter (the first in `cert_file`), for the gauge.
pub fn served_not_after(cfg: &RadsecConfig) -> Option<i64> {
    certificates(&cfg.cert_file).first().map(|c| c.not_after)
}

/// Sets `radmfa_radsec_certificate_expiry_timestamp_seconds` from the `[radsec]` of `cfg`
/// as the server runs it (0, and no gauge, without one or when the file cannot be read).
pub fn set_expiry_gauge(metrics: &crate::server::metrics::Metrics, cfg: &crate::config::Config) {
    let expiry = cfg
        .radsec
        .as_ref()
        .and_then(served_not_after)
        .map_or(0, |t| u64::try_from(t).unwrap_or(0));
    metrics
        .radsec_certificate_expiry
        .store(expiry, std::sync::atomic::Ordering::Relaxed);
}

/// The warnings for `cfg`'s files at `now` (Unix seconds).
pub fn warnings(cfg: &RadsecConfig, now: i64) -> Vec<String> {
    let mut out = Vec::new();
    let cert_file = cfg.cert_file.display();
    for (i, c) in certificates(&cfg.cert_file).iter().enumerate() {
        let Some(note) = validity_note(c, now, true) else {
            continue;
        };
        let which = if i == 0 {
            format!("cert_file {cert_file}")
        } else {
            format!("cert_file {cert_file}: chain certificate {:?}", c.subject)
        };
        out.push(format!(
            "radsec: {which} {note}: radmfa presents it all the same, and every NAS that checks \
             it refuses the TLS handshake; install a renewed certificate (it is used from the \
             next connection, no restart)"
        ));
    }
    let ca_file = cfg.ca_file.display();
    for c in certificates(&cfg.ca_file) {
        // A CA certificate's start is checked by nobody here: only its end is warned about.
        let Some(note) = validity_note(&c, now, false) else {
            continue;
        };
        out.push(format!(
            "radsec: ca_file {ca_file}: CA certificate {:?} {note}: radmfa itself does not \
             check a trusted CA's own dates (webpki), but the client certificates it signed \
             should not outlive it and other TLS stacks refuse them; set up a new CA in \
             ca_file and reissue the NAS certificates",
            c.subject
        ));
    }
    if let Some(crl_file) = &cfg.crl_file {
        for (issuer, next) in crls(crl_file) {
            let Some(next) = next.filter(|_| crl_out_of_date(next, now)) else {
                continue;
            };
            out.push(format!(
                "radsec: crl_file {}: the CRL from {issuer:?} is out of date since {}: \
                 publish a new one; until then radmfa refuses every client certificate under \
                 that CA at the handshake (an expired CRL fails closed) and closes their open \
                 connections within a minute",
                crl_file.display(),
                fmt_time(next)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    /// 2026-01-01T00:00:00Z.
    const NOW: i64 = 1_767_225_600;

    fn cert(not_before: i64, not_after: i64) -> CertDates {
        CertDates {
            subject: "CN=test".into(),
            not_before,
            not_after,
        }
    }

    #[test]
    fn dates_are_warned_about_within_30_days_and_once_past() {
        let note = |nb: i64, na: i64| validity_note(&cert(nb, na), NOW, true);
        // Valid for long enough: nothing.
        assert_eq!(note(NOW - DAY, NOW + 31 * DAY), None);
        assert_eq!(
            note(NOW - DAY, NOW + 30 * DAY).as_deref(),
            Some("expires on 2026-01-31T00:00:00Z (in 30 days)")
        );
        // Hours left: "1 day", rounded up.
        assert_eq!(
            note(NOW - DAY, NOW + 3600).as_deref(),
            Some("expires on 2026-01-01T01:00:00Z (in 1 day)")
        );
        assert_eq!(
            note(NOW - 10 * DAY, NOW).as_deref(),
            Some("has expired on 2026-01-01T00:00:00Z")
        );
        assert_eq!(
            note(NOW + 2 * DAY, NOW + 400 * DAY).as_deref(),
            Some("is not valid before 2026-01-03T00:00:00Z")
        );
        // A CA's start is not checked.
        assert_eq!(
            validity_note(&cert(NOW + DAY, NOW + 400 * DAY), NOW, false),
            None
        );
    }

    #[test]
    fn a_crl_is_out_of_date_from_its_next_update_on() {
        assert!(!crl_out_of_date(Some(NOW + 1), NOW));
        assert!(crl_out_of_date(Some(NOW), NOW), "webpki: now >= nextUpdate");
        assert!(crl_out_of_date(Some(NOW - DAY), NOW));
        assert!(!crl_out_of_date(None, NOW));
    }
}
