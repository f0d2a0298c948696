//! RFC 5080 §2.2.2 duplicate detection, hand-written because no crate does it.
//!
//! A request is identified by (source address and port, Identifier, Request Authenticator);
//! over RadSec the port is left out (a resend comes on a new connection).
//! While it is being processed, retransmits attach to it and are answered with its reply when
//! it completes; for `window` after that, retransmits get the cached reply bytes unchanged.
//! The pipeline (LDAP bind, code check, challenge creation) therefore runs once per request.
//! A packet with the same key but different bytes is not a retransmit; it is dropped.

use std::collections::hash_map::{Entry as MapEntry, HashMap, RandomState};
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::radius::crypto::HEADER_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub src: SocketAddr,
    pub id: u8,
    pub authenticator: [u8; 16],
}

impl RequestKey {
    /// None for datagrams too short to carry a header; they are malformed anyway.
    pub fn of(src: SocketAddr, raw: &[u8]) -> Option<Self> {
        if raw.len() < HEADER_LEN {
            return None;
        }
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&raw[4..20]);
        Some(RequestKey {
            src,
            id: raw[1],
            authenticator,
        })
    }
}

#[derive(Debug)]
enum Entry {
    InFlight {
        digest: u64,
        /// Copies that came where the first one did: it sends them their replies.
        attached: u32,
        /// The address the first copy was sent to (`None`: not told).
        path: Option<SocketAddr>,
        /// Copies that came to another of radmfa's addresses or ports (a NAS failing over
        /// with the same bytes): each waits for the reply and sends it from where it came,
        /// since a NAS drops a reply from another address than it asked.
        elsewhere: u32,
    },
    Done {
        digest: u64,
        reply: Option<Arc<[u8]>>,
    },
}

/// Whether [`DuplicateCache::settle`] keeps an answered entry.
enum Keep {
    Always,
    Never,
    IfAttached,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// First time: process it, then call `finish` or `abandon`.
    New,
    /// Already answered: send these bytes again.
    Replay(Arc<[u8]>),
    /// Answered with silence (e.g. the deadline passed): stay silent.
    Silent,
    /// Still being processed: it will be answered when the original completes. The number
    /// of retransmits attached so far, this one included.
    Attached(u32),
    /// Still being processed, and this copy came to another address or port than the first:
    /// it waits for the reply ([`DuplicateCache::peek`]) and sends it from its own. The
    /// number of such copies so far, this one included.
    AttachedElsewhere(u32),
    /// Same key, different content: not a retransmit.
    Mismatch,
}

/// [`DuplicateCache::peek`]'s answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek {
    InFlight,
    /// Answered: these bytes, or silence.
    Done(Option<Arc<[u8]>>),
    /// Not known (abandoned, or expired).
    Gone,
}

/// Answered requests kept at most. A flood of valid requests would otherwise hold every
/// reply for the whole window: 200,000 entries at 6,600 logins/s for 30 s. Each entry costs
/// about 340 bytes with a 120-byte reply (measured: map slot, reply, expiry slot), so 50,000 are ~18 MiB, and they still
/// cover the first retransmits (3–5 s) at 6,000 requests/s. Past the cap the oldest answers
/// are forgotten first; a late retransmit of one of those is processed again, which the
/// replay guards downstream keep harmless (a used State or code is refused).
pub const MAX_ANSWERED: usize = 50_000;

/// Reply bytes kept at most. A reply echoes the request's Proxy-State, so a client may make
/// each one up to 4 KiB: by count alone 50,000 of them would be ~220 MiB. Typical replies
/// (~120 bytes) fill [`MAX_ANSWERED`] long before this.
pub const MAX_ANSWERED_BYTES: usize = 16 << 20;

/// Retransmits that arrived while a reply was being worked out, counted at most: a NAS
/// retransmits a few times during a long login (a push, a call); more than that is a
/// replayed packet. Over UDP they get no copy of their own (one reply per request, see
/// `serve_one`); the count is what `finish` reports.
pub const MAX_ATTACHED_COPIES: u32 = 4;

pub struct DuplicateCache {
    window: Duration,
    max_answered: usize,
    max_bytes: usize,
    hasher: RandomState,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<RequestKey, Entry>,
    /// Completion times in order, for cheap expiry from the front.
    expiry: VecDeque<(Instant, RequestKey)>,
    /// Reply bytes held by the answered entries.
    bytes: usize,
}

impl DuplicateCache {
    pub fn new(window: Duration) -> Self {
        Self::with_capacity(window, MAX_ANSWERED)
    }

    pub fn with_capacity(window: Duration, max_answered: usize) -> Self {
        Self::with_limits(window, max_answered, MAX_ANSWERED_BYTES)
    }

    /// At most `max_answered` answered entries holding at most `max_bytes` of replies.
    pub fn with_limits(window: Duration, max_answered: usize, max_bytes: usize) -> Self {
        DuplicateCache {
            window,
            max_answered: max_answered.max(1),
            max_bytes,
            hasher: RandomState::new(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn digest(&self, raw: &[u8]) -> u64 {
        self.hasher.hash_one(raw)
    }

    pub fn begin(&self, key: RequestKey, raw: &[u8]) -> Seen {
        self.begin_at(key, raw, None)
    }

    /// [`Self::begin`] for a copy sent to `path`, one of radmfa's addresses.
    pub fn begin_at(&self, key: RequestKey, raw: &[u8], path: Option<SocketAddr>) -> Seen {
        let digest = self.digest(raw);
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.expire(now, self.window);
        inner.cap(self.max_answered, self.max_bytes);
        match inner.map.entry(key) {
            MapEntry::Vacant(v) => {
                v.insert(Entry::InFlight {
                    digest,
                    attached: 0,
                    path,
                    elsewhere: 0,
                });
                Seen::New
            }
            MapEntry::Occupied(mut o) => match o.get_mut() {
                Entry::InFlight { digest: d, .. } if *d != digest => Seen::Mismatch,
                Entry::Done { digest: d, .. } if *d != digest => Seen::Mismatch,
                Entry::InFlight {
                    path: first,
                    elsewhere,
                    ..
                } if *first != path => {
                    *elsewhere = elsewhere.saturating_add(1);
                    Seen::AttachedElsewhere(*elsewhere)
                }
                Entry::InFlight { attached, .. } => {
                    *attached = attached.saturating_add(1);
                    Seen::Attached(*attached)
                }
                Entry::Done { reply: Some(r), .. } => Seen::Replay(r.clone()),
                Entry::Done { reply: None, .. } => Seen::Silent,
            },
        }
    }

    /// Records the reply; returns how many retransmits attached meanwhile that are owed a copy
    /// (at most [`MAX_ATTACHED_COPIES`]).
    pub fn finish(&self, key: RequestKey, reply: Option<Arc<[u8]>>) -> u32 {
        self.settle(key, reply, Keep::Always)
    }

    /// Drop an answered request's in-flight entry without caching its reply; returns how many
    /// retransmits attached meanwhile (over UDP they get no copy of their own: one reply per
    /// request, see `serve_one`). For replies that are
    /// cheaper to compute again than to keep (Status-Server).
    pub fn forget(&self, key: RequestKey) -> u32 {
        self.settle(key, None, Keep::Never)
    }

    /// As [`Self::forget`], unless resends attached meanwhile: then the reply is kept as
    /// [`Self::finish`] keeps it. Over RadSec a resend on another connection waits for the
    /// answer in the cache (`resend_when_answered`); forgotten, it would never be answered.
    pub fn forget_unless_attached(&self, key: RequestKey, reply: Arc<[u8]>) -> u32 {
        self.settle(key, Some(reply), Keep::IfAttached)
    }

    /// Ends an in-flight entry: kept as answered with `reply`, or removed, as `keep` says
    /// (decided under the lock, with the count of attached retransmits it returns).
    fn settle(&self, key: RequestKey, reply: Option<Arc<[u8]>>, keep: Keep) -> u32 {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(&Entry::InFlight {
            digest,
            attached,
            elsewhere,
            ..
        }) = inner.map.get(&key)
        else {
            return 0;
        };
        // Copies waiting elsewhere read the reply from here: it is kept for them.
        let kept = match keep {
            Keep::Always => true,
            Keep::Never => false,
            Keep::IfAttached => attached > 0 || elsewhere > 0,
        };
        if kept {
            inner.bytes += reply.as_ref().map_or(0, |r| r.len());
            inner.map.insert(key, Entry::Done { digest, reply });
            inner.expiry.push_back((Instant::now(), key));
        } else {
            inner.map.remove(&key);
        }
        attached.min(MAX_ATTACHED_COPIES)
    }

    /// Where the request stands, without counting anything: for a RadSec resend that came on
    /// another connection while its first copy was being worked out, which waits for the
    /// reply to send it on its own connection.
    pub fn peek(&self, key: RequestKey) -> Peek {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.map.get(&key) {
            Some(Entry::InFlight { .. }) => Peek::InFlight,
            Some(Entry::Done { reply, .. }) => Peek::Done(reply.clone()),
            None => Peek::Gone,
        }
    }

    /// Forget a request that failed verification, so nothing about it is cached.
    pub fn abandon(&self, key: RequestKey) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(inner.map.get(&key), Some(Entry::InFlight { .. })) {
            inner.map.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or(0)
    }

    /// Entries held now (in flight and answered), those past the window dropped first: for
    /// `radmfa_duplicate_cache_entries`, which would otherwise show the last burst's
    /// answers long after it, until the next request expired them.
    pub fn entries(&self) -> usize {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.expire(Instant::now(), self.window);
        inner.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Drops the oldest answered entries beyond `max` entries or `max_bytes` of replies
    /// (in-flight ones are bounded by the server's permits and never dropped here).
    fn cap(&mut self, max: usize, max_bytes: usize) {
        while self.expiry.len() > max || self.bytes > max_bytes {
            let Some((_, key)) = self.expiry.pop_front() else {
                break;
            };
            self.remove_answered(&key);
        }
    }

    /// Removes `key`'s entry if it is an answered one (not one in flight again).
    fn remove_answered(&mut self, key: &RequestKey) {
        if let MapEntry::Occupied(o) = self.map.entry(*key) {
            if let Entry::Done { reply, .. } = o.get() {
                self.bytes = self
                    .bytes
                    .saturating_sub(reply.as_ref().map_or(0, |r| r.len()));
                o.remove();
            }
        }
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((at, key)) = self.expiry.front().copied() {
            if now.duration_since(at) < window {
                break;
            }
            self.expiry.pop_front();
            self.remove_answered(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> RequestKey {
        RequestKey {
            src: "127.0.0.1:5000".parse().unwrap(),
            id,
            authenticator: [7; 16],
        }
    }

    #[test]
    fn retransmit_lifecycle() {
        let c = DuplicateCache::new(Duration::from_secs(30));
        assert_eq!(c.begin(key(1), b"abc"), Seen::New);
        assert_eq!(c.begin(key(1), b"abc"), Seen::Attached(1));
        assert_eq!(c.begin(key(1), b"abd"), Seen::Mismatch);
        let reply: Arc<[u8]> = Arc::from(&b"reply"[..]);
        assert_eq!(c.finish(key(1), Some(reply.clone())), 1);
        assert_eq!(c.begin(key(1), b"abc"), Seen::Replay(reply));
        // A datagram that copies an answered request's header but not its body (forged or
        // broken) is not given the cached reply.
        assert_eq!(c.begin(key(1), b"abd"), Seen::Mismatch);
        assert_eq!(
            c.begin(key(2), b"abc"),
            Seen::New,
            "other identifier is new"
        );
    }

    #[test]
    fn answered_entries_are_capped_oldest_first() {
        let c = DuplicateCache::with_capacity(Duration::from_secs(30), 3);
        for id in 0..10u8 {
            assert_eq!(c.begin(key(id), b"x"), Seen::New);
            c.finish(key(id), None);
        }
        assert!(c.len() <= 4, "{} entries kept", c.len());
        assert_eq!(c.begin(key(9), b"x"), Seen::Silent, "newest kept");
        assert_eq!(c.begin(key(0), b"x"), Seen::New, "oldest forgotten");
    }

    #[test]
    fn answered_replies_are_capped_by_their_bytes() {
        let c = DuplicateCache::with_limits(Duration::from_secs(30), 1000, 10_000);
        let big: Arc<[u8]> = Arc::from(vec![0u8; 4000]);
        for id in 0..10u8 {
            assert_eq!(c.begin(key(id), b"x"), Seen::New);
            c.finish(key(id), Some(big.clone()));
        }
        // Checked on the next arrival: at most 10,000 bytes, so two of the 4,000-byte replies.
        assert_eq!(c.begin(key(100), b"x"), Seen::New);
        assert_eq!(c.len(), 3, "two answered and one in flight");
        assert_eq!(
            c.begin(key(9), b"x"),
            Seen::Replay(big.clone()),
            "newest kept"
        );
        assert_eq!(c.begin(key(7), b"x"), Seen::New, "older ones forgotten");
        let inner = c.inner.lock().unwrap();
        assert_eq!(inner.bytes, 8000, "the count follows what is held");
    }

    #[test]
    fn a_flood_of_retransmits_is_owed_a_few_copies_only() {
        let c = DuplicateCache::new(Duration::from_secs(30));
        assert_eq!(c.begin(key(1), b"x"), Seen::New);
        for n in 1..=1000 {
            assert_eq!(c.begin(key(1), b"x"), Seen::Attached(n));
        }
        assert_eq!(c.finish(key(1), None), MAX_ATTACHED_COPIES);
        assert_eq!(c.begin(key(2), b"x"), Seen::New);
        assert_eq!(c.begin(key(2), b"x"), Seen::Attached(1));
        assert_eq!(c.forget(key(2)), 1, "a real retransmit still gets its copy");
    }

    #[test]
    fn an_answer_awaited_by_a_resend_is_kept() {
        let c = DuplicateCache::new(Duration::from_secs(30));
        let reply: Arc<[u8]> = Arc::from(&b"reply"[..]);
        assert_eq!(c.begin(key(1), b"x"), Seen::New);
        assert_eq!(c.forget_unless_attached(key(1), reply.clone()), 0);
        assert!(c.is_empty(), "nobody waits: not cached");
        assert_eq!(c.begin(key(2), b"x"), Seen::New);
        assert_eq!(c.begin(key(2), b"x"), Seen::Attached(1));
        assert_eq!(c.forget_unless_attached(key(2), reply.clone()), 1);
        assert_eq!(
            c.peek(key(2)),
            Peek::Done(Some(reply)),
            "the waiter finds it"
        );
    }

    #[test]
    fn a_copy_sent_to_another_address_waits_for_the_reply_itself() {
        let c = DuplicateCache::new(Duration::from_secs(30));
        let (a, b) = (
            Some("127.0.0.1:1812".parse().unwrap()),
            Some("127.0.0.1:1645".parse().unwrap()),
        );
        let reply: Arc<[u8]> = Arc::from(&b"reply"[..]);
        assert_eq!(c.begin_at(key(1), b"x", a), Seen::New);
        assert_eq!(c.begin_at(key(1), b"x", b), Seen::AttachedElsewhere(1));
        assert_eq!(c.begin_at(key(1), b"x", a), Seen::Attached(1));
        assert_eq!(c.begin_at(key(1), b"x", b), Seen::AttachedElsewhere(2));
        // The first copy sends the one that came where it did; the others read the cache.
        assert_eq!(c.forget_unless_attached(key(1), reply.clone()), 1);
        assert_eq!(c.peek(key(1)), Peek::Done(Some(reply.clone())));
        // A Status-Server answer is kept for a copy elsewhere alone, too.
        assert_eq!(c.begin_at(key(2), b"x", a), Seen::New);
        assert_eq!(c.begin_at(key(2), b"x", b), Seen::AttachedElsewhere(1));
        assert_eq!(c.forget_unless_attached(key(2), reply.clone()), 0);
        assert_eq!(c.peek(key(2)), Peek::Done(Some(reply)));
    }

    #[test]
    fn abandoned_and_expired_entries_are_forgotten() {
        // A window long enough that no scheduler pause between `finish` and the next
        // `begin` outlasts it.
        let c = DuplicateCache::new(Duration::from_millis(300));
        assert_eq!(c.begin(key(1), b"x"), Seen::New);
        c.abandon(key(1));
        assert_eq!(c.begin(key(1), b"x"), Seen::New);
        c.finish(key(1), None);
        assert_eq!(c.begin(key(1), b"x"), Seen::Silent);
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(c.begin(key(1), b"x"), Seen::New);
    }

    #[test]
    fn forgotten_entries_leave_nothing_cached() {
        let c = DuplicateCache::new(Duration::from_secs(30));
        assert_eq!(c.begin(key(1), b"x"), Seen::New);
        assert_eq!(c.begin(key(1), b"x"), Seen::Attached(1));
        assert_eq!(c.forget(key(1)), 1, "the attached retransmit gets a copy");
        assert!(c.is_empty());
        assert_eq!(
            c.begin(key(1), b"x"),
            Seen::New,
            "not replayed from a cache"
        );
    }
}
