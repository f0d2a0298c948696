//! A service account bind the directory refused is not tried again on every request.
//!
//! Why: a refusal (wrong password, account locked or disabled) is the same on every server
//! and for every request until someone fixes the account or the config. Tried again per
//! request, each try is a failed bind on the service account, and Active Directory counts
//! those towards the account's lockout: a service password rotated in AD without updating
//! radmfa, or a burst from anyone holding a NAS secret, locked the account, which then
//! stayed locked after the config was fixed. One ERROR line per request flooded the log too.
//! So a refusal holds further tries off, 5 s at first, doubling while they keep being
//! refused, up to 10 minutes; requests meanwhile fail at once as the refused one did. A
//! service bind that works ends the hold, and so does a reload (`SIGHUP`). And service
//! binds take turns ([`ServiceHold::turn`]): a burst of logins on an empty pool (at start,
//! after a directory restart) made one fresh connection each, all binding at once, so a
//! refused account collected a bind per connection (16 with the default pool) before the
//! first refusal was known. A bind keeps its turn for [`TURN_PATIENCE`] at most: one that
//! hangs lets the next go, so a hung server costs the others no more than that each.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a service bind keeps its turn while unanswered: a refusal takes milliseconds,
/// and a hung directory's timeout must not hold up every other bind behind it.
pub(super) const TURN_PATIENCE: Duration = Duration::from_millis(100);

/// The first hold after a refusal.
const FIRST_HOLD: Duration = Duration::from_secs(5);
/// The longest hold: at most six refused binds an hour, under any lockout threshold in use.
const LONGEST_HOLD: Duration = Duration::from_secs(600);

#[derive(Default)]
pub(super) struct ServiceHold {
    held: Mutex<Option<Held>>,
    turns: tokio::sync::Mutex<()>,
}

struct Held {
    until: Instant,
    hold: Duration,
    /// The directory's answer to the refused bind, for the requests held off.
    reason: String,
}

impl ServiceHold {
    /// The turn to bind as the service account: one bind at a time, so that the next one
    /// sees the hold a refusal set. A bind takes a millisecond on a healthy directory.
    pub(super) async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turns.lock().await
    }

    /// `Err` with the refusal's reason while a refusal holds tries off, at `now`.
    pub(super) fn check(&self, now: Instant) -> Result<(), String> {
        match &*self.held.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(h) if now < h.until => Err(format!(
                "{} (not tried again for {} s)",
                h.reason,
                h.until.duration_since(now).as_secs() + 1
            )),
            _ => Ok(()),
        }
    }

    /// A bind refused at `now` for `reason`: the hold it starts. Twice the last if this
    /// refusal came when that hold ended (tried again, refused again); the same while it
    /// runs (a bind that started before it); from the first again once it ended longer ago
    /// than the longest hold (a new trouble, not the same one going on).
    pub(super) fn refused(&self, now: Instant, reason: String) -> Duration {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let hold = match held.as_ref() {
            None => FIRST_HOLD,
            Some(h) if now < h.until => h.hold,
            Some(h) if now.duration_since(h.until) > LONGEST_HOLD => FIRST_HOLD,
            Some(h) => (h.hold * 2).min(LONGEST_HOLD),
        };
        *held = Some(Held {
            until: now + hold,
            hold,
            reason,
        });
        hold
    }

    /// A service bind worked: no hold.
    pub(super) fn bound(&self) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_hold_off_longer_each_time_until_a_bind_works() {
        let h = ServiceHold::default();
        let t = Instant::now();
        assert!(h.check(t).is_ok());
        assert_eq!(h.refused(t, "rc=49".into()), FIRST_HOLD);
        // A second refusal of the same moment (a bind already under way) does not double.
        assert_eq!(h.refused(t, "rc=49".into()), FIRST_HOLD);
        let held = h.check(t + Duration::from_secs(1)).unwrap_err();
        assert_eq!(held, "rc=49 (not tried again for 5 s)");
        let t = t + FIRST_HOLD;
        assert!(h.check(t).is_ok(), "tried again once the hold ends");
        assert_eq!(h.refused(t, "rc=49".into()), FIRST_HOLD * 2);
        let mut t = t + FIRST_HOLD * 2;
        let mut hold = FIRST_HOLD * 2;
        for _ in 0..10 {
            hold = h.refused(t, "rc=49".into());
            t += hold;
        }
        assert_eq!(hold, LONGEST_HOLD);
        assert!(h.check(t - Duration::from_secs(1)).is_err());
        // Refused again long after the last hold ended: a new trouble, the first hold.
        let later = t + LONGEST_HOLD + Duration::from_secs(1);
        assert_eq!(h.refused(later, "rc=49".into()), FIRST_HOLD);
        h.bound();
        assert!(h.check(t).is_ok());
        assert_eq!(
            h.refused(t, "rc=49".into()),
            FIRST_HOLD,
            "afresh after a bind"
        );
    }
}
