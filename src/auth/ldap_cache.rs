//! `[ldap] entry_cache_seconds`: the directory entries of users who logged in recently, so
//! their next password check is one bind instead of a search and a bind.
//!
//! Why it exists: on the benchmark machine a search costs slapd at least what a bind does,
//! and radmfa's LDAP client as much again (BENCHMARKS.md), and a login's search only finds
//! the DN the bind needs and the attributes the second factor reads. Off by default,
//! because what it remembers can be out of date:
//! - A password change, and in Active Directory a disabled, locked or expired account, are
//!   seen at once: every login still binds, and the bind refuses.
//! - A refused bind forgets the entry and searches again before answering, so an entry that
//!   was moved or renamed is found where it is now, and one the search no longer finds
//!   (deleted, or excluded by `enabled_filter`) is an unknown user, as it would be uncached.
//! - What only the search reads is up to `entry_cache_seconds` old on a login whose bind
//!   succeeds: the name → DN mapping (an account renamed in AD, whose DN stays, still logs
//!   in under its old name; a new account given a remembered DN logs in under the old
//!   name with its own password), the phone numbers and names read for SMS, calls and the
//!   audit. The configuration refuses the cache with a `user_filter` that tests more than
//!   the name and object class (a `memberOf` in it would not be tested again), and with an
//!   `enabled_filter` other than AD's disabled bit or ppolicy's lock, which the bind
//!   refuses as well. Group membership is not cached: `allow_groups` and `exempt_groups`
//!   are searched on every login. Every reload (SIGHUP) empties the cache.
//! - The first bind after an entry moved goes to its old DN. Should another account have
//!   been given that DN since, that account is charged the failed logon.
//!
//! Only a password the directory accepted puts an entry here, so unknown names and wrong
//! passwords cannot fill it, and at most `entry_cache_size` entries are kept (quick_cache's
//! S3-FIFO eviction). Second-factor-only clients (no bind) never read it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::UserInfo;

pub(super) struct EntryCache {
    ttl: Duration,
    /// A well-kept concurrent cache with a size bound (S3-FIFO eviction); expiry is ours,
    /// checked on read.
    entries: quick_cache::sync::Cache<String, Arc<(Instant, UserInfo)>>,
    /// Counts [`EntryCache::clear`]s: an entry searched before one is not remembered after
    /// it (a reload that empties the cache is how an admin makes a changed phone number
    /// count at once, and a login in flight read the old one).
    epoch: AtomicU64,
}

impl EntryCache {
    /// None when `ttl` is zero: no cache at all, not an empty one.
    pub(super) fn new(ttl: Duration, capacity: usize) -> Option<Self> {
        (!ttl.is_zero() && capacity > 0).then(|| EntryCache {
            ttl,
            entries: quick_cache::sync::Cache::new(capacity),
            epoch: AtomicU64::new(0),
        })
    }

    /// The entry found for `user` less than `ttl` ago.
    pub(super) fn fresh(&self, user: &str) -> Option<UserInfo> {
        let hit = self.entries.get(user)?;
        if hit.0.elapsed() < self.ttl {
            return Some(hit.1.clone());
        }
        self.entries.remove(user);
        None
    }

    /// Remembers `info`, found by a search that began at `epoch` ([`Self::epoch`]), unless
    /// the cache was emptied since.
    pub(super) fn remember(&self, user: &str, info: &UserInfo, epoch: u64) {
        if self.epoch() != epoch {
            return;
        }
        let mut info = info.clone();
        // Granted attributes belong to one upstream answer, not to the directory entry.
        info.granted.clear();
        self.entries
            .insert(user.to_string(), Arc::new((Instant::now(), info)));
        // Emptied between the look and the insert: not kept either.
        if self.epoch() != epoch {
            self.entries.remove(user);
        }
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Forgets every entry (a reload), and whatever a search begun before finds.
    pub(super) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }

    pub(super) fn forget(&self, user: &str) {
        self.entries.remove(user);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(dn: &str) -> UserInfo {
        UserInfo {
            dn: dn.into(),
            ..UserInfo::default()
        }
    }

    #[test]
    fn off_when_ttl_or_size_is_zero() {
        assert!(EntryCache::new(Duration::ZERO, 10).is_none());
        assert!(EntryCache::new(Duration::from_secs(60), 0).is_none());
    }

    #[test]
    fn remembers_until_ttl_then_forgets() {
        let c = EntryCache::new(Duration::from_millis(200), 10).unwrap();
        c.remember("alice", &info("uid=alice"), 0);
        assert_eq!(c.fresh("alice").unwrap().dn, "uid=alice");
        assert!(c.fresh("Alice").is_none(), "keyed on the name as typed");
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.fresh("alice").is_none());
        assert_eq!(c.len(), 0, "an expired entry is dropped when read");
    }

    #[test]
    fn forget_and_size_bound() {
        let c = EntryCache::new(Duration::from_secs(60), 100).unwrap();
        c.remember("alice", &info("uid=alice"), 0);
        c.forget("alice");
        assert!(c.fresh("alice").is_none());
        for i in 0..1000 {
            c.remember(&format!("u{i}"), &info("x"), 0);
        }
        assert!(c.len() <= 100, "{} entries kept", c.len());
        // Bounded by dropping the oldest, not by emptying itself.
        assert!(c.len() >= 50, "{} entries kept", c.len());
        assert!(c.fresh("u999").is_some(), "the latest entry was dropped");
    }

    #[test]
    fn clear_forgets_and_refuses_what_was_searched_before() {
        let c = EntryCache::new(Duration::from_secs(60), 100).unwrap();
        let before = c.epoch();
        c.remember("alice", &info("uid=alice"), before);
        c.clear();
        assert!(c.fresh("alice").is_none());
        // A login whose search began before the clear comes back after it.
        c.remember("bob", &info("uid=bob"), before);
        assert!(
            c.fresh("bob").is_none(),
            "an entry read before the clear was kept"
        );
        c.remember("bob", &info("uid=bob"), c.epoch());
        assert_eq!(c.fresh("bob").unwrap().dn, "uid=bob");
    }
}
