//! The dates in the `[radsec]` certificate and CRL files, read ahead of time so they do not
//! cut every NAS off by surprise. Nothing in the TLS stack warns before the fact: rustls
//! goes on presenting `cert_file` past its notAfter (each NAS that checks it then refuses
//! the handshake), and with `crl_file` the client verifier enforces every CRL's nextUpdate
//! (`enforce_revocation_expiration` in `radsec::build`, webpki's `CrlExpired`), so one CRL
//! not republished in time refuses every client certificate under its CA. `config check`,
//! and `serve` at start and after each reload (`admin::review::warnings`), warn from here,
//! and a running server checks again every minute ([`watch_dates`]: a server runs for
//! months, and a certificate that was fine at its start expires one day). The served
//! certificate's notAfter and the CRLs' earliest nextUpdate are also gauges, for alerts
//! well before. The running server's gauges and warnings are about what it serves: the
//! files as its TLS configuration was last built from them, which a changed file that
//! cannot be used does not replace.
//!
//! A file that cannot be read or parsed gives no warning here: validation and the TLS build
//! report it with the key that names it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::radsec::Acceptors;
use crate::app::AppState;

use crate::clock::fmt_time;
use crate::config::RadsecConfig;

/// A certificate that expires within this many seconds is warned about.
pub const WARN_AHEAD_SECS: i64 = 30 * 86_400;

/// A CRL is warned about once less than this share of its life (thisUpdate to nextUpdate)
/// is left: a day-and-a-half ahead for the common week-long CRL republished daily, which
/// means the publishing job has missed several runs; 6 hours for a day-long one. A fixed
/// lead time would warn all the time about short-lived CRLs republished every hour.
const CRL_WARN_SHARE: i64 = 4;

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

/// Whether a CRL still in date at `now` has less than a [`CRL_WARN_SHARE`]th of its life
/// left.
fn crl_nearly_out_of_date(this_update: i64, next_update: i64, now: i64) -> bool {
    let life = next_update - this_update;
    now < next_update && life > 0 && next_update - now <= life / CRL_WARN_SHARE
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

/// One CRL's issuer and dates, in Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CrlDates {
    issuer: String,
    this_update: i64,
    next_update: Option<i64>,
}

/// Each CRL in the PEM file `path`.
fn crls(path: &Path) -> Vec<CrlDates> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    rustls_pemfile::crls(&mut std::io::BufReader::new(f))
        .map_while(Result::ok)
        .filter_map(|der| {
            let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).ok()?;
            Some(CrlDates {
                issuer: crl.issuer().to_string(),
                this_update: crl.last_update().timestamp(),
                next_update: crl.next_update().map(|t| t.timestamp()),
            })
        })
        .collect()
}

/// The dates in the `[radsec]` files, read together: as `config check` finds them on disk,
/// or as the running server last built its TLS configuration from them
/// (`radsec::Acceptors`), which is what it serves — a renewed file that cannot be used
/// (a key that does not match, a file open to everyone) leaves the previous one served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RadsecDates {
    cert: Vec<CertDates>,
    ca: Vec<CertDates>,
    crls: Vec<CrlDates>,
}

impl RadsecDates {
    pub fn read(cfg: &RadsecConfig) -> Self {
        RadsecDates {
            cert: certificates(&cfg.cert_file),
            ca: certificates(&cfg.ca_file),
            crls: cfg.crl_file.as_deref().map(crls).unwrap_or_default(),
        }
    }

    /// The server certificate's notAfter (the first in `cert_file`).
    pub fn not_after(&self) -> Option<i64> {
        self.cert.first().map(|c| c.not_after)
    }

    /// The earliest nextUpdate of the CRLs.
    pub fn earliest_crl_next_update(&self) -> Option<i64> {
        self.crls.iter().filter_map(|c| c.next_update).min()
    }
}

/// Sets `radmfa_radsec_certificate_expiry_timestamp_seconds`,
/// `radmfa_radsec_crl_next_update_timestamp_seconds` and `radmfa_radsec_files_unusable`
/// from what the server serves (0, and no date gauge, where there is nothing to show).
pub fn set_gauges(metrics: &crate::server::metrics::Metrics, served: &RadsecDates, unusable: bool) {
    let unix = |t: Option<i64>| t.map_or(0, |t| u64::try_from(t).unwrap_or(0));
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    metrics
        .radsec_certificate_expiry
        .store(unix(served.not_after()), relaxed);
    metrics
        .radsec_crl_next_update
        .store(unix(served.earliest_crl_next_update()), relaxed);
    metrics
        .radsec_files_unusable
        .store(u64::from(unusable), relaxed);
}

/// How often the same warning is logged again while it stands.
const REPEAT_SECS: i64 = 86_400;

/// The running server's check of the dates (see the module's text): of the warnings
/// [`warnings`] gives each minute, the ones not logged in the last day. A countdown in the
/// text ("in 3 days", "in 5 hours") makes each new count a new warning, so an expiry comes
/// closer in the log once a day, and a CRL's in its last hours once an hour.
#[derive(Debug, Default)]
pub struct DateWatch {
    logged: std::collections::HashMap<String, i64>,
}

impl DateWatch {
    /// A watch that takes `already` (the warnings just logged at start) as logged at `now`.
    pub fn after(already: Vec<String>, now: i64) -> Self {
        DateWatch {
            logged: already.into_iter().map(|w| (w, now)).collect(),
        }
    }

    /// Takes `w` as logged at `now` unless it already is: a warning logged elsewhere when it
    /// arose, to be repeated from here once a day.
    pub fn logged_elsewhere(&mut self, w: &str, now: i64) {
        if !self.logged.contains_key(w) {
            self.logged.insert(w.to_string(), now);
        }
    }

    /// Of `current`, those to log now; remembers them. A warning that no longer stands is
    /// forgotten, so it is logged at once if it comes back.
    pub fn due(&mut self, current: Vec<String>, now: i64) -> Vec<String> {
        self.logged.retain(|w, _| current.contains(w));
        current
            .into_iter()
            .filter(|w| match self.logged.get(w) {
                Some(&at) if now - at < REPEAT_SECS => false,
                _ => {
                    self.logged.insert(w.clone(), now);
                    true
                }
            })
            .collect()
    }
}

/// The warnings for `cfg`'s files as they are on disk, at `now` (Unix seconds).
pub fn warnings(cfg: &RadsecConfig, now: i64) -> Vec<String> {
    warnings_for(cfg, &RadsecDates::read(cfg), now)
}

/// The warnings for `dates`, read from `cfg`'s files, at `now` (Unix seconds).
pub fn warnings_for(cfg: &RadsecConfig, dates: &RadsecDates, now: i64) -> Vec<String> {
    let mut out = Vec::new();
    let cert_file = cfg.cert_file.display();
    for (i, c) in dates.cert.iter().enumerate() {
        let Some(note) = validity_note(c, now, true) else {
            continue;
        };
        let which = if i == 0 {
            format!("cert_file {cert_file}")
        } else {
            format!("cert_file {cert_file}: chain certificate {:?}", c.subject)
        };
        // Said as it stands: a certificate that still works is refused only once it expires.
        let refused = if now >= c.not_before && now < c.not_after {
            "radmfa goes on presenting it, and every NAS that checks it will refuse the TLS \
             handshake once it expires"
        } else {
            "radmfa presents it all the same, and every NAS that checks it refuses the TLS \
             handshake"
        };
        out.push(format!(
            "radsec: {which} {note}: {refused}; install a renewed certificate (it is used from \
             the next connection, no restart)"
        ));
    }
    let ca_file = cfg.ca_file.display();
    for c in &dates.ca {
        // A CA certificate's start is checked by nobody here: only its end is warned about.
        let Some(note) = validity_note(c, now, false) else {
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
        out.extend(unmatched_crls(crl_file, dates));
        for CrlDates {
            issuer,
            this_update,
            next_update,
        } in dates.crls.iter().cloned()
        {
            let Some(next) = next_update else {
                continue;
            };
            if crl_nearly_out_of_date(this_update, next, now) {
                // Rounded up, as a certificate's days are.
                let hours = (next - now + 3_599) / 3_600;
                let plural = if hours == 1 { "" } else { "s" };
                out.push(format!(
                    "radsec: crl_file {}: the CRL from {issuer:?} goes out of date on {} (in \
                     {hours} hour{plural}): publish a new one before then; from then radmfa \
                     refuses every client certificate under that CA at the handshake (an \
                     expired CRL fails closed)",
                    crl_file.display(),
                    fmt_time(next)
                ));
                continue;
            }
            if !crl_out_of_date(next_update, now) {
                continue;
            }
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

/// With a crl_file, revocation fails closed: a CA in ca_file with no CRL in the file gets
/// every certificate it issued refused at the handshake, and a CRL from a CA that is not in
/// ca_file may be the other CA's file, copied by mistake, which protects nothing. Both
/// passed every check before and showed only as refused NASes. Names are compared as
/// printed: the same DN from one CA's certificate and its CRL prints the same.
///
/// A CRL from no CA in ca_file is not necessarily a mistake: webpki checks revocation along
/// the whole chain a NAS presents, so the CRL of an intermediate (issuing) CA the NASes
/// send is needed, and without it their certificates are refused. Which it is cannot be
/// told from these files (that CA's certificate comes only in the handshakes), so the note
/// says both.
fn unmatched_crls(crl_file: &Path, dates: &RadsecDates) -> Vec<String> {
    let crl_file = crl_file.display();
    let mut out = Vec::new();
    for ca in &dates.ca {
        if !dates.crls.iter().any(|c| c.issuer == ca.subject) {
            out.push(format!(
                "radsec: crl_file {crl_file} holds no CRL from CA {:?} (in ca_file): every \
                 client certificate it issued is refused at the handshake (revocation fails \
                 closed); add its CRL to the file",
                ca.subject
            ));
        }
    }
    for crl in &dates.crls {
        if !dates.ca.iter().any(|ca| ca.subject == crl.issuer) {
            out.push(format!(
                "radsec: crl_file {crl_file}: the CRL from {issuer:?} is from no CA in \
                 ca_file: it applies only if {issuer:?} is an intermediate CA that the NASes \
                 send in their certificate chains (then it is needed: without it their \
                 certificates are refused); if not, it revokes nothing here (another CA's \
                 file?)",
                issuer = crl.issuer
            ));
        }
    }
    out
}

/// Every minute, until `stop`: the dates of what is served (a renewed file is picked up
/// here too, without waiting for a connection) into the gauges, and their warnings (see
/// `cert_dates`) into the log, each once a day while it stands. The start's warnings were
/// logged already (`review::warnings`, by `serve` and each reload).
pub async fn watch_dates(app: Arc<AppState>, acceptors: Arc<Acceptors>, stop: CancellationToken) {
    let unusable_warning = |e: &str| {
        format!(
            "radsec: a certificate, key, CA or CRL file changed but cannot be used, so radmfa \
             still serves the previous ones (and their dates): {e}"
        )
    };
    let warnings = |served: &RadsecDates, unusable: &Option<String>| {
        let mut w = warnings_for(acceptors.config(), served, app.clock.now());
        w.extend(unusable.as_deref().map(unusable_warning));
        w
    };
    // The gauges were set as the server started (`server::run`).
    let (served, unusable) = acceptors.served();
    let mut logged = DateWatch::after(warnings(&served, &unusable), app.clock.now());
    let minute = Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + minute, minute);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
            // A connection found a changed file: the gauges now, the log at the tick.
            _ = acceptors.changed.notified() => {
                let (served, unusable) = acceptors.served();
                set_gauges(&app.metrics, &served, unusable.is_some());
                continue;
            }
        }
        let (served, unusable) = acceptors.served();
        set_gauges(&app.metrics, &served, unusable.is_some());
        // `Acceptors::refreshed` warned when it found the file unusable: repeated from here
        // a day on, not at once.
        if let Some(e) = &unusable {
            logged.logged_elsewhere(&unusable_warning(e), app.clock.now());
        }
        for w in logged.due(warnings(&served, &unusable), app.clock.now()) {
            warn!("{w}");
        }
    }
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

    /// A CRL from a CA not in ca_file may be an issuing CA's, which the NASes' chains need:
    /// the note must not say that it revokes nothing (it said so, for a CRL without which
    /// every handshake under that CA was refused).
    #[test]
    fn a_crl_from_no_ca_in_ca_file_may_be_an_intermediate_s() {
        let root = CertDates {
            subject: "CN=Root CA".into(),
            not_before: NOW - DAY,
            not_after: NOW + 400 * DAY,
        };
        let crl = |issuer: &str| CrlDates {
            issuer: issuer.into(),
            this_update: NOW - DAY,
            next_update: Some(NOW + 7 * DAY),
        };
        let dates = RadsecDates {
            cert: vec![],
            ca: vec![root],
            crls: vec![crl("CN=Root CA"), crl("CN=Issuing CA")],
        };
        let notes = unmatched_crls(Path::new("crls.pem"), &dates);
        assert_eq!(notes.len(), 1, "{notes:?}");
        let note = &notes[0];
        assert!(
            note.contains("\"CN=Issuing CA\" is from no CA in ca_file"),
            "{note}"
        );
        assert!(
            note.contains("applies only if \"CN=Issuing CA\" is an intermediate CA")
                && note.contains("if not, it revokes nothing here"),
            "{note}"
        );
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

    #[test]
    fn a_crl_is_warned_about_in_the_last_quarter_of_its_life() {
        let hour = 3_600;
        // A week-long CRL: from 42 hours before its nextUpdate.
        let (this, next) = (NOW, NOW + 7 * DAY);
        assert!(!crl_nearly_out_of_date(this, next, next - 43 * hour));
        assert!(crl_nearly_out_of_date(this, next, next - 42 * hour));
        assert!(crl_nearly_out_of_date(this, next, next - 1));
        // Out of date is another warning.
        assert!(!crl_nearly_out_of_date(this, next, next));
        // A CRL republished every hour for a day never comes near it.
        assert!(!crl_nearly_out_of_date(NOW, NOW + DAY, NOW + hour));
        // Dates the wrong way round: no warning made up from them.
        assert!(!crl_nearly_out_of_date(NOW, NOW - DAY, NOW - 2 * DAY));
    }

    #[test]
    fn a_running_server_logs_each_date_warning_once_a_day_while_it_stands() {
        let w = |s: &str| vec![s.to_string()];
        let mut watch = DateWatch::after(w("a"), NOW);
        // Logged at start: not again within the day.
        assert!(watch.due(w("a"), NOW + 60).is_empty());
        assert_eq!(watch.due(vec!["a".into(), "b".into()], NOW + 120), w("b"));
        assert!(watch
            .due(vec!["a".into(), "b".into()], NOW + 180)
            .is_empty());
        assert_eq!(watch.due(w("a"), NOW + DAY), w("a"), "a day on");
        // Gone (the file renewed), then back: logged at once.
        assert!(watch.due(Vec::new(), NOW + DAY + 60).is_empty());
        assert_eq!(watch.due(w("a"), NOW + DAY + 120), w("a"));
        // Logged elsewhere when it arose: not again at once, but a day on.
        watch.logged_elsewhere("c", NOW + DAY + 180);
        assert_eq!(
            watch.due(vec!["a".into(), "c".into()], NOW + DAY + 240),
            Vec::<String>::new()
        );
        assert_eq!(watch.due(w("c"), NOW + 2 * DAY + 180), w("c"));
    }
}
