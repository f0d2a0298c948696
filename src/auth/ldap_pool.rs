//! The idle lists behind [`super::ldap::LdapAuth`]: one for service-bound search connections,
//! one for bind-only connections used to check user passwords.
//!
//! Hand-written on purpose: `ldap3` has no pool, and a generic pool crate (deadpool, bb8)
//! would let us neither drop every idle connection to one URL (after one of them turned out
//! dead) nor tell a reused connection from a freshly opened one, which decides whether a
//! failed operation may be retried once on a fresh connection. How many connections are in
//! use at once is bounded by the caller's semaphore; this type only keeps the idle ones.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the pool needs to know about a connection.
pub(super) trait PoolConn {
    /// The connection is known to be gone (its driver task ended).
    fn is_closed(&mut self) -> bool;
}

/// A connection on loan from (or on its way back to) a [`ConnPool`].
pub(super) struct Pooled<C> {
    pub(super) conn: C,
    /// Index of the URL it is connected to.
    pub(super) url_idx: usize,
    /// Taken from the idle list (`true`) rather than just opened: an I/O error on it may
    /// mean it died while idle, and the operation never reached the server.
    pub(super) reused: bool,
    /// How long it sat idle before it was taken (zero for a fresh one): a connection idle
    /// for long may have been dropped by a firewall without a word.
    pub(super) idle_for: Duration,
    idle_since: Instant,
}

impl<C> Pooled<C> {
    /// A freshly opened connection.
    pub(super) fn fresh(conn: C, url_idx: usize) -> Self {
        Pooled {
            conn,
            url_idx,
            reused: false,
            idle_for: Duration::ZERO,
            idle_since: Instant::now(),
        }
    }
}

/// Idle connections, most recently returned first out. Dropping a connection closes it.
pub(super) struct ConnPool<C> {
    idle: Mutex<Vec<Pooled<C>>>,
    /// At most this many idle connections are kept; one more is dropped on return.
    max_idle: usize,
    /// Connections idle longer than this are closed instead of reused.
    max_idle_time: Duration,
}

impl<C: PoolConn> ConnPool<C> {
    pub(super) fn new(max_idle: usize, max_idle_time: Duration) -> Self {
        ConnPool {
            idle: Mutex::new(Vec::new()),
            max_idle,
            max_idle_time,
        }
    }

    /// An idle connection that is neither closed nor idle for too long, if there is one.
    pub(super) fn take(&self) -> Option<Pooled<C>> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(mut c) = idle.pop() {
            let idle_for = c.idle_since.elapsed();
            if c.conn.is_closed() || idle_for > self.max_idle_time {
                continue; // dropped: closes the connection
            }
            c.reused = true;
            c.idle_for = idle_for;
            return Some(c);
        }
        None
    }

    /// Return a connection after an operation got an answer on it. Expired and closed idle
    /// connections are closed on the way; beyond `max_idle`, `c` itself is dropped.
    pub(super) fn put(&self, mut c: Pooled<C>) {
        let max_idle_time = self.max_idle_time;
        let mut idle = self.idle.lock().expect("pool lock");
        idle.retain_mut(|old| !old.conn.is_closed() && old.idle_since.elapsed() <= max_idle_time);
        if idle.len() < self.max_idle {
            c.idle_since = Instant::now();
            idle.push(c);
        }
    }

    /// Drop every idle connection to `url_idx` (after one of them turned out dead).
    pub(super) fn drop_idle_to(&self, url_idx: usize) {
        self.idle
            .lock()
            .expect("pool lock")
            .retain(|c| c.url_idx != url_idx);
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().expect("pool lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A stand-in connection: `id` to tell them apart, `closed` to kill it from outside.
    struct Fake {
        id: u32,
        closed: Arc<AtomicBool>,
    }

    impl PoolConn for Fake {
        fn is_closed(&mut self) -> bool {
            self.closed.load(Ordering::Relaxed)
        }
    }

    fn fake(id: u32, url_idx: usize) -> (Pooled<Fake>, Arc<AtomicBool>) {
        let closed = Arc::new(AtomicBool::new(false));
        let conn = Fake {
            id,
            closed: closed.clone(),
        };
        (Pooled::fresh(conn, url_idx), closed)
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn take_returns_last_put_and_marks_it_reused() {
        let pool = ConnPool::new(4, LONG);
        assert!(pool.take().is_none());
        let (a, _) = fake(1, 0);
        let (b, _) = fake(2, 0);
        assert!(!a.reused);
        pool.put(a);
        pool.put(b);
        std::thread::sleep(Duration::from_millis(2));
        let c = pool.take().unwrap();
        assert_eq!(c.conn.id, 2);
        assert!(c.reused);
        assert!(c.idle_for > Duration::ZERO);
        assert_eq!(pool.take().unwrap().conn.id, 1);
        assert!(pool.take().is_none());
    }

    #[test]
    fn keeps_at_most_max_idle() {
        let pool = ConnPool::new(2, LONG);
        for id in 0..5 {
            pool.put(fake(id, 0).0);
        }
        assert_eq!(pool.idle_count(), 2);
        assert_eq!(pool.take().unwrap().conn.id, 1);
        assert_eq!(pool.take().unwrap().conn.id, 0);
    }

    #[test]
    fn closed_connections_are_not_reused() {
        let pool = ConnPool::new(4, LONG);
        let (a, _) = fake(1, 0);
        let (b, b_closed) = fake(2, 0);
        pool.put(a);
        pool.put(b);
        b_closed.store(true, Ordering::Relaxed);
        assert_eq!(pool.take().unwrap().conn.id, 1);
        assert!(pool.take().is_none());
    }

    #[test]
    fn long_idle_connections_are_closed() {
        let pool = ConnPool::new(4, Duration::from_millis(20));
        pool.put(fake(1, 0).0);
        std::thread::sleep(Duration::from_millis(40));
        // Returning another one sweeps out the expired one.
        pool.put(fake(2, 0).0);
        assert_eq!(pool.idle_count(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(pool.take().is_none());
    }

    #[test]
    fn drop_idle_to_only_touches_that_url() {
        let pool = ConnPool::new(4, LONG);
        pool.put(fake(1, 0).0);
        pool.put(fake(2, 1).0);
        pool.put(fake(3, 0).0);
        pool.drop_idle_to(0);
        let c = pool.take().unwrap();
        assert_eq!((c.conn.id, c.url_idx), (2, 1));
        assert!(pool.take().is_none());
    }
}
