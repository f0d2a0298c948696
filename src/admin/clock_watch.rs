//! The wall clock checked against the time that has really passed since radmfa started, for
//! housekeeping: an NTP step, a VM resumed from suspend or a wrong hardware clock moves the
//! wall clock by minutes or years at once. Logins take care of themselves (codes are
//! checked against the steps they were made for, stamps ahead of now are distrusted:
//! `clock::FUTURE_SLACK_SECS`), but the audit purge (`[audit] keep_days`) would read records
//! written a minute ago as days old after a forward step, and delete the trail. So its
//! cutoff never runs ahead of the wall clock at start plus the time passed since (counted
//! with CLOCK_BOOTTIME, which goes on through a suspend, unlike `Instant`): a wrong forward
//! step deletes nothing early, a right one keeps that much more until a restart. A clock
//! already wrong at start is not seen that way: for its first minutes (while NTP puts right
//! a clock that was wrong at boot) the cutoff is also held to the newest record found at
//! start plus the time passed since.

use std::time::Duration;

use crate::clock::{fmt_time, FUTURE_SLACK_SECS};

/// How long after start the cutoff is also held to the newest record found at start:
/// chrony and systemd-timesyncd step a clock that was wrong at boot within this.
pub(super) const NEWEST_HOLDS_FOR: Duration = Duration::from_secs(600);

pub(super) struct ClockWatch {
    wall_start: i64,
    boot_start: Duration,
    /// The newest audit record's time at start, if any.
    newest: Option<i64>,
    /// The offset last logged, so that a step is logged once, not every minute.
    logged: i64,
}

/// Time since boot, suspend included (CLOCK_BOOTTIME).
fn since_boot() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}

impl ClockWatch {
    /// `newest`: the newest audit record's time at start.
    pub(super) fn new(now: i64, newest: Option<i64>) -> ClockWatch {
        ClockWatch {
            wall_start: now,
            boot_start: since_boot(),
            newest,
            logged: 0,
        }
    }

    /// Once per housekeeping round, with the wall clock's `now`: the cutoff for audit
    /// records `keep` old (`None`: no `keep`).
    pub(super) fn audit_cutoff(&mut self, now: i64, keep: Option<Duration>) -> Option<i64> {
        let elapsed = since_boot().saturating_sub(self.boot_start);
        self.judge(now, elapsed, keep)
    }

    fn judge(&mut self, now: i64, elapsed: Duration, keep: Option<Duration>) -> Option<i64> {
        let counted = self.wall_start + elapsed.as_secs() as i64;
        let offset = now - counted;
        if (offset - self.logged).abs() > FUTURE_SLACK_SECS {
            self.logged = offset;
            log_step(now, offset, keep.is_some());
        }
        let keep = keep?.as_secs() as i64;
        let mut upto = now.min(counted);
        if let (Some(newest), true) = (self.newest, elapsed < NEWEST_HOLDS_FOR) {
            upto = upto.min(newest + elapsed.as_secs() as i64);
        }
        Some(upto - keep)
    }
}

fn log_step(now: i64, offset: i64, purging: bool) {
    if offset.abs() <= FUTURE_SLACK_SECS {
        tracing::info!(
            now = %fmt_time(now),
            "the wall clock agrees again with the time passed since radmfa started"
        );
    } else if offset > 0 {
        tracing::warn!(
            stepped_secs = offset,
            now = %fmt_time(now),
            "the wall clock is {offset} s ahead of the time passed since radmfa started (an \
             NTP step, a wrong hardware clock put right, or a wrong clock now). Codes are \
             checked for the new time.{}",
            if purging {
                " [audit] keep_days counts from the time passed since start, so records are \
                 kept that much longer; restart radmfa once the new time is known right"
            } else {
                ""
            }
        );
    } else {
        tracing::warn!(
            stepped_secs = offset,
            now = %fmt_time(now),
            "the wall clock is {} s behind the time passed since radmfa started (an NTP \
             step back). Codes are checked for the new time; prompts and remembered logins \
             stamped ahead of it, and bypasses ending more than a day ahead, are not used; \
             locks set meanwhile last that much longer (`radmfa user unlock`)",
            -offset
        );
    }
}

/// At start: the newest audit record's time. One stamped ahead of this clock says this clock
/// is behind (or another node's ahead): every right TOTP code would be refused as wrong,
/// and counted; that is warned of.
pub(super) async fn newest_audit(store: &dyn crate::store::Store, now: i64) -> Option<i64> {
    let filter = crate::store::AuditFilter {
        limit: 1,
        ..Default::default()
    };
    let newest = store.audit(&filter).await.ok()?.into_iter().next()?;
    if newest.time > now + FUTURE_SLACK_SECS {
        tracing::warn!(
            newest_record = %fmt_time(newest.time),
            now = %fmt_time(now),
            server = %newest.server_name,
            "an audit record is stamped {} s ahead of this server's clock: this clock is \
             behind, or the node that wrote it is ahead (check NTP). Right codes are refused \
             as wrong while a clock is off",
            newest.time - now
        );
    }
    Some(newest.time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_cutoff_never_runs_ahead_of_the_time_passed() {
        let t0 = 1_800_000_000;
        let day = Duration::from_secs(86_400);
        let at = |secs: u64| Duration::from_secs(secs);
        // Started three days ahead, the last record written just before: for its first
        // minutes the cutoff counts from that record.
        let mut w = ClockWatch::new(t0 + 3 * 86_400, Some(t0 - 5));
        assert_eq!(
            w.judge(t0 + 3 * 86_400 + 60, at(60), Some(day)),
            Some(t0 + 55 - 86_400)
        );
        // A clock that is right: the newest record is just behind it.
        let mut w = ClockWatch::new(t0, Some(t0 - 5));
        assert_eq!(w.judge(t0, at(0), Some(day)), Some(t0 - 5 - 86_400));
        let after = NEWEST_HOLDS_FOR.as_secs();
        let t = t0 + after as i64;
        assert_eq!(w.judge(t, at(after), Some(day)), Some(t - 86_400));
        // Three days ahead of the time passed: the cutoff stays where time has really got.
        let ahead = t + 3 * 86_400;
        assert_eq!(w.judge(ahead, at(after), Some(day)), Some(t - 86_400));
        // Stepped back behind it: the wall clock, deleting less.
        assert_eq!(
            w.judge(t - 3_600, at(after), Some(day)),
            Some(t - 3_600 - 86_400)
        );
        // Without keep_days, nothing to cut.
        assert_eq!(w.judge(t, at(after), None), None);
    }
}
