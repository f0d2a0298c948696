//! One code check at a time per user, on this node.
//!
//! The lockout counts wrong codes, but a request reads the user's lockout state early (with the
//! tokens; on an inline client before the directory bind) and counts its own wrong code only after
//! checking it. Without turns, a caller who has the password could open a hundred logins at once,
//! each with another guess: all would read "not locked", all would be checked, and the threshold
//! would stop nothing until they were done. So a request checks its code in its user's turn: it
//! looks at the lockout state as the previous turn left it (read again when a wrong code was
//! counted since the request first read it), checks the code, and counts a wrong one, on disk,
//! before the next turn starts. Several nodes on one database each take turns of their own; a guess
//! can then slip past the threshold only once per other node.
//!
//! Users share a lock by a hash of the name (a fixed table, no per-user entries to clean
//! up): two users on one lock only wait for each other's check, which is short. Each lock
//! also counts the wrong codes counted under it, so a request that saw none counted since
//! its first read needs no second one.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, MutexGuard};

/// Locks in the table: enough that the users of 100-odd requests in flight rarely share one.
const LOCKS: usize = 1024;

struct Lane {
    turn: Mutex<()>,
    /// Wrong codes counted (and committed) under this lock since the process started.
    failures: AtomicU64,
}

pub struct CodeTurns {
    lanes: Box<[Lane]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for CodeTurns {
    fn default() -> Self {
        CodeTurns {
            lanes: (0..LOCKS)
                .map(|_| Lane {
                    turn: Mutex::new(()),
                    failures: AtomicU64::new(0),
                })
                .collect(),
            hasher: Default::default(),
        }
    }
}

impl CodeTurns {
    fn lane(&self, user: &str) -> &Lane {
        &self.lanes[self.hasher.hash_one(user) as usize % LOCKS]
    }

    /// Taken before the user's lockout state is read, and kept with it.
    pub fn seen(&self, user: &str) -> u64 {
        self.lane(user).failures.load(Ordering::Acquire)
    }

    /// Waits for the user's turn.
    pub async fn take(&self, user: &str) -> Turn<'_> {
        let lane = self.lane(user);
        Turn {
            _held: lane.turn.lock().await,
            lane,
        }
    }
}

pub struct Turn<'a> {
    _held: MutexGuard<'a, ()>,
    lane: &'a Lane,
}

impl Turn<'_> {
    /// Was a wrong code counted since `seen`? Then the lockout state read then is stale.
    pub fn counted_since(&self, seen: u64) -> bool {
        self.lane.failures.load(Ordering::Acquire) != seen
    }

    /// A wrong code is being counted: later turns read the lockout from disk.
    pub fn counted(&self) {
        self.lane.failures.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn one_turn_at_a_time_and_a_count_shows_to_later_readers() {
        let turns = Arc::new(CodeTurns::default());
        let seen = turns.seen("alice");
        let first = turns.take("alice").await;
        assert!(!first.counted_since(seen));
        // A second check for alice waits until the first is done.
        let waiting = {
            let turns = turns.clone();
            tokio::spawn(async move {
                let second = turns.take("alice").await;
                second.counted_since(seen)
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the second turn did not wait");
        first.counted();
        drop(first);
        assert!(waiting.await.unwrap(), "the second turn sees the count");
    }
}
