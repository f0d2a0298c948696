//! The wall clock checked against the monotonic one, for housekeeping: an NTP step, a VM
//! resumed from suspend or a wrong hardware clock moves the wall clock by minutes or years
//! at once. Logins take care of themselves (codes are checked against the steps they were
//! made for, stamps ahead of now are distrusted: `clock::FUTURE_SLACK_SECS`), but the audit
//! purge (`[audit] keep_days`) would read records written a minute ago as days old after a
//! forward step, and delete the trail. So it waits while the wall clock is ahead of the time
//! that has really passed since radmfa started.

use std::time::Instant;

use crate::clock::{fmt_time, FUTURE_SLACK_SECS};

pub(super) struct ClockWatch {
    wall_start: i64,
    mono_start: Instant,
    /// The offset last warned about, so that a step is logged once, not every minute.
    warned: i64,
}

impl ClockWatch {
    pub(super) fn new(now: i64) -> ClockWatch {
        ClockWatch {
            wall_start: now,
            mono_start: Instant::now(),
            warned: 0,
        }
    }

    /// Once per housekeeping round, with the wall clock's `now`: whether the audit purge may
    /// run (the wall clock is not ahead of the time passed since start by more than the
    /// slack). A step either way is logged once.
    pub(super) fn purge_allowed(&mut self, now: i64) -> bool {
        let elapsed = self.mono_start.elapsed().as_secs() as i64;
        self.judge(now, elapsed)
    }

    fn judge(&mut self, now: i64, elapsed: i64) -> bool {
        let offset = (now - self.wall_start) - elapsed;
        if (offset - self.warned).abs() > FUTURE_SLACK_SECS {
            self.warned = offset;
            if offset.abs() > FUTURE_SLACK_SECS {
                tracing::warn!(
                    stepped_secs = offset,
                    now = %fmt_time(now),
                    "the wall clock has moved {offset} s against the time passed since radmfa \
                     started (an NTP step, a VM resumed, a wrong hardware clock). TOTP codes \
                     are checked for the new time. While it is ahead, audit records are not \
                     deleted for [audit] keep_days (a record written a minute ago would read \
                     as days old); if the new time is right, restart radmfa to resume"
                );
            } else {
                tracing::info!(
                    now = %fmt_time(now),
                    "the wall clock agrees again with the time passed since radmfa started"
                );
            }
        }
        offset <= FUTURE_SLACK_SECS
    }
}

/// At start: the newest audit record stamped ahead of this clock says this clock is behind
/// (or another node's ahead): every right TOTP code would be refused as wrong, and counted.
pub(super) async fn warn_if_behind_the_audit(store: &dyn crate::store::Store, now: i64) {
    let filter = crate::store::AuditFilter {
        since: Some(now + FUTURE_SLACK_SECS),
        limit: 1,
        ..Default::default()
    };
    if let Ok(Some(newest)) = store.audit(&filter).await.map(|r| r.into_iter().next()) {
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
}

#[cfg(test)]
mod tests {
    use super::ClockWatch;

    #[test]
    fn a_forward_step_holds_the_purge_until_the_clock_comes_back() {
        let t0 = 1_800_000_000;
        let mut w = ClockWatch::new(t0);
        assert!(w.judge(t0 + 60, 60), "in step");
        assert!(w.judge(t0 + 180, 120), "within the slack");
        // Three days ahead of the 3 minutes that passed.
        assert!(!w.judge(t0 + 3 * 86_400 + 180, 180));
        assert!(!w.judge(t0 + 3 * 86_400 + 240, 240), "still ahead");
        // Stepped back: purging resumes.
        assert!(w.judge(t0 + 300, 300));
        // A step back alone loses nothing (records read younger than they are).
        assert!(w.judge(t0 - 86_400, 360));
    }
}
