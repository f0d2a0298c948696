//! Connection slots of the HTTP listeners: a total, and a share per source address (an IPv6
//! /64 counts as one; 127.0.0.1 and ::1, where a reverse proxy in front connects from, have
//! only the total).
//!
//! A connection waiting for a request (a new one, a kept-alive one between requests, or one
//! whose request's body is still coming in) has asked for nothing yet: when every slot is
//! taken, one of them gives its slot up to the newcomer (see [`CutLine`] for which one), as
//! RadSec's handshakes do. Otherwise 16 addresses, each holding its 16 connections open and
//! sending nothing, reconnecting as the head timeout closed them, kept every slot, and every
//! Twilio callback (a caller's keypress) was refused for as long as they went on. A
//! connection whose request is being answered (its body whole) is never cut.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::server::cut_line::CutLine;
use crate::server::metrics::HttpRefusal;
use crate::server::radsec_slots::address_share;

/// How long a newcomer waits for the slot of the connection cut to come free (its task
/// ends at once; this bounds the accept loop's pause).
const FREED_WITHIN: Duration = Duration::from_millis(500);

pub(super) struct Slots {
    all: Arc<Semaphore>,
    per_address: usize,
    /// Connections open per source (see [`source`]).
    by_address: Mutex<HashMap<IpAddr, usize>>,
    /// Connections waiting for a request (each address its own, loopback too).
    waiting: CutLine,
}

impl Slots {
    pub(super) fn new(max: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Slots {
            all: Arc::new(Semaphore::new(max)),
            per_address,
            by_address: Mutex::default(),
            waiting: CutLine::default(),
        })
    }

    /// A slot for a connection from `ip`, or which cap refuses it (the total first: when
    /// every slot is taken by requests being answered, or a source at its own share asks,
    /// that is what the admin needs to know); and whether a waiting connection was cut for
    /// it (closed, and to be counted, even if its slot did not come free in time).
    pub(super) async fn take(self: &Arc<Self>, ip: IpAddr) -> (Result<Slot, HttpRefusal>, bool) {
        let permit = match self.all.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.address_full(ip) || !self.waiting.cut_one() {
                    return (Err(HttpRefusal::ConnectionLimit), false);
                }
                let freed = tokio::time::timeout(FREED_WITHIN, self.all.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok);
                let Some(permit) = freed else {
                    return (Err(HttpRefusal::ConnectionLimit), true);
                };
                return (self.share_for(ip, permit), true);
            }
        };
        (self.share_for(ip, permit), false)
    }

    /// The slot of `permit`, if `ip`'s share has room.
    fn share_for(
        self: &Arc<Self>,
        ip: IpAddr,
        permit: OwnedSemaphorePermit,
    ) -> Result<Slot, HttpRefusal> {
        let share = source(ip);
        if let Some(share) = share {
            let mut by = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
            let n = by.entry(share).or_default();
            if *n >= self.per_address {
                return Err(HttpRefusal::AddressLimit); // `permit` goes back as it drops
            }
            *n += 1;
        }
        let slot = Slot {
            _permit: permit,
            slots: self.clone(),
            share,
            ip: address_share(ip),
            close: CancellationToken::new(),
            waiting_as: Mutex::new(None),
        };
        Ok(slot)
    }

    fn address_full(&self, ip: IpAddr) -> bool {
        let Some(share) = source(ip) else {
            return false;
        };
        let by = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        by.get(&share).is_some_and(|&n| n >= self.per_address)
    }
}

/// Whose share a connection from `ip` takes: an IPv4 address; an IPv6 /64 (one host is
/// usually given a whole /64, and could otherwise take a share per address in it); none
/// for 127.0.0.1 and ::1, where a TLS reverse proxy on the same host (the documented setup)
/// connects from with every callback (it has only the total).
pub(super) fn source(ip: IpAddr) -> Option<IpAddr> {
    let ip = ip.to_canonical();
    if ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST) {
        return None;
    }
    Some(address_share(ip))
}

/// One connection's slot; given back when dropped.
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    slots: Arc<Slots>,
    share: Option<IpAddr>,
    /// Its address, for picking whom to cut.
    ip: IpAddr,
    /// Cancelled when the connection is cut for a newcomer.
    pub(super) close: CancellationToken,
    /// Its place in the waiting line, while it waits for a request's head.
    waiting_as: Mutex<Option<u64>>,
}

impl Slot {
    /// Waiting for a request's head: in line to be cut.
    pub(super) fn waiting(&self) {
        let mut waiting_as = self.waiting_as.lock().unwrap_or_else(|p| p.into_inner());
        // Once in line (a stale place would outlive the connection), and never again
        // once cut.
        if waiting_as.is_none() {
            *waiting_as = self.slots.waiting.join(self.ip, &self.close);
        }
    }

    /// A request has begun: out of the line until it is answered. False if the connection
    /// was cut already: a cut cancels under the line's lock, so once out of the line, a
    /// token not cancelled stays so.
    pub(super) fn busy(&self) -> bool {
        let id = self
            .waiting_as
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(id) = id {
            self.slots.waiting.leave(id);
        }
        !self.close.is_cancelled()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.busy();
        let Some(share) = self.share else {
            return;
        };
        let mut by = self
            .slots
            .by_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by.get_mut(&share) {
            *n -= 1;
            if *n == 0 {
                by.remove(&share);
            }
        }
    }
}

/// A request in progress on `slot`'s connection; it waits again once this is dropped.
pub(super) struct Busy(pub(super) Arc<Slot>);

impl Busy {
    /// None if the connection was cut already: the request is not to be answered.
    pub(super) fn of(slot: &Arc<Slot>) -> Option<Self> {
        slot.busy().then(|| Busy(slot.clone()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.waiting();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_now(slots: &Arc<Slots>, ip: IpAddr) -> Result<(Slot, bool), HttpRefusal> {
        let (taken, cut) = block_on(slots.take(ip));
        taken.map(|slot| (slot, cut))
    }

    /// The tests below never wait for a freed slot longer than a poll: a current-thread
    /// runtime drives `take` to its end.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Each refusal says which cap it met: the metric's `reason` and the warning follow it.
    /// Connections that are all busy are not cut.
    #[test]
    fn slots_cap_the_total_and_each_address() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let (a1, _) = take_now(&slots, a).unwrap();
        let _a2 = take_now(&slots, a).unwrap();
        assert_eq!(
            take_now(&slots, a).err(),
            Some(HttpRefusal::AddressLimit),
            "a's share is used up"
        );
        let _b1 = take_now(&slots, b).unwrap();
        assert_eq!(
            take_now(&slots, b).err(),
            Some(HttpRefusal::ConnectionLimit),
            "all taken, none waiting"
        );
        drop(a1);
        assert!(
            take_now(&slots, a).is_ok(),
            "a slot given back is free again"
        );
        assert_eq!(slots.by_address.lock().unwrap().get(&a), Some(&1));
    }

    #[test]
    fn localhost_has_only_the_total_and_ipv6_shares_go_by_64() {
        let slots = Slots::new(5, 1);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let _l1 = take_now(&slots, lo).unwrap();
        let _l2 = take_now(&slots, lo).unwrap();
        let other_loopback: IpAddr = "127.0.0.2".parse().unwrap();
        let _o = take_now(&slots, other_loopback).unwrap();
        assert_eq!(
            take_now(&slots, other_loopback).err(),
            Some(HttpRefusal::AddressLimit),
            "only 127.0.0.1 and ::1"
        );
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _x = take_now(&slots, x).unwrap();
        assert_eq!(
            take_now(&slots, y).err(),
            Some(HttpRefusal::AddressLimit),
            "the same /64"
        );
        let _z = take_now(&slots, z).unwrap();
        assert_eq!(
            take_now(&slots, lo).err(),
            Some(HttpRefusal::ConnectionLimit),
            "the total still holds"
        );
    }

    /// With every slot taken, a newcomer cuts the oldest waiting connection of the address
    /// with the most waiting: never one in a request, and not for a source at its share.
    #[test]
    fn a_newcomer_cuts_the_flooders_oldest_waiting_connection() {
        let slots = Slots::new(4, 3);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (twilio, flood) = (ip("192.0.2.9"), ip("198.51.100.7"));
        let taken = |who| Arc::new(take_now(&slots, who).unwrap().0);
        let t = taken(twilio);
        t.waiting();
        let f: Vec<Arc<Slot>> = (0..3).map(|_| taken(flood)).collect();
        for s in &f {
            s.waiting();
        }
        // The flooder's share is used up: it cuts nothing for itself.
        assert_eq!(
            take_now(&slots, flood).err(),
            Some(HttpRefusal::ConnectionLimit)
        );
        assert!(f.iter().all(|s| !s.close.is_cancelled()));
        // The newcomer gets the flooder's oldest slot once that connection lets it go.
        let cutter = {
            let slots = slots.clone();
            std::thread::spawn(move || take_now(&slots, ip("203.0.113.5")).map(|(_, cut)| cut))
        };
        while !f[0].close.is_cancelled() {
            std::thread::yield_now();
        }
        let [first, second, third] = <[Arc<Slot>; 3]>::try_from(f).ok().unwrap();
        drop(first);
        assert_eq!(cutter.join().unwrap(), Ok(true));
        assert!(!t.close.is_cancelled() && !second.close.is_cancelled());
        // The flooder still has the most waiting; then a connection in a request is not
        // cut, and the lone waiting one goes.
        assert!(slots.waiting.cut_one());
        assert!(second.close.is_cancelled() && !third.close.is_cancelled());
        let busy = Busy::of(&third).unwrap();
        assert!(slots.waiting.cut_one());
        assert!(t.close.is_cancelled() && !third.close.is_cancelled());
        assert!(!slots.waiting.cut_one(), "only the busy one is left");
        drop(busy);
        assert!(slots.waiting.cut_one(), "answered, it waits again");
        // Cut as its request began: the request is not answered.
        assert!(Busy::of(&third).is_none());
        assert!(third.close.is_cancelled());
    }
}
