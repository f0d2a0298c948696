//! Connections that have asked for nothing yet (RadSec's in their TLS handshake, the HTTP
//! listeners' waiting for a request): when every slot is taken, one of them gives its slot
//! up to a newcomer. Otherwise hosts connecting and sending nothing, as fast as the
//! timeouts closed them, held every slot. The one cut is the oldest of the address with the
//! most in line: a peer with its one connection is cut only once every other address is
//! down to one too, so a few hosts flooding cannot keep cutting it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

/// The line, oldest first: each connection's address (share) and what closes it.
#[derive(Default)]
pub(crate) struct CutLine {
    line: Mutex<BTreeMap<u64, (IpAddr, CancellationToken)>>,
    next: AtomicU64,
}

impl CutLine {
    /// A connection from `ip` joins the line: its place, or `None` if `close` was
    /// cancelled already (checked under the line's lock: a connection cut never rejoins).
    pub(crate) fn join(&self, ip: IpAddr, close: &CancellationToken) -> Option<u64> {
        let mut line = self.line.lock().unwrap_or_else(|p| p.into_inner());
        if close.is_cancelled() {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        line.insert(id, (ip, close.clone()));
        Some(id)
    }

    /// The connection at `id` leaves the line (it began its work, or it is gone).
    pub(crate) fn leave(&self, id: u64) {
        let mut line = self.line.lock().unwrap_or_else(|p| p.into_inner());
        line.remove(&id);
    }

    /// Closes one connection in line: the oldest of the address with the most (of those
    /// tied, the one whose oldest is oldest); false if the line is empty. Cancelled under
    /// the line's lock, so a connection leaving at that moment finds its token cancelled.
    pub(crate) fn cut_one(&self) -> bool {
        let mut line = self.line.lock().unwrap_or_else(|p| p.into_inner());
        let victim = pick_victim(line.iter().map(|(&id, (ip, _))| (id, *ip)));
        match victim.and_then(|id| line.remove(&id)) {
            Some((_, close)) => {
                close.cancel();
                true
            }
            None => false,
        }
    }
}

/// Of connections `(id, address)` in arrival order, the one to cut: the oldest of the
/// address with the most.
fn pick_victim(in_line: impl Iterator<Item = (u64, IpAddr)>) -> Option<u64> {
    // Per address: how many, and its oldest (the first seen, ids ascending).
    let mut by: HashMap<IpAddr, (usize, u64)> = HashMap::new();
    for (id, ip) in in_line {
        by.entry(ip).or_insert((0, id)).0 += 1;
    }
    by.into_values()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, oldest)| oldest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flooding address loses its oldest; a lone connection (a NAS's) is cut only when
    /// every address is down to one, and then the oldest goes.
    #[test]
    fn the_address_with_most_in_line_loses_its_oldest() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let nas = ip("192.0.2.1");
        let (a, b) = (ip("192.0.2.7"), ip("192.0.2.8"));
        let line = [(1, nas), (2, a), (3, b), (4, a), (5, b), (6, a)];
        assert_eq!(pick_victim(line.into_iter()), Some(2));
        assert_eq!(pick_victim([(1, nas), (3, b), (5, b)].into_iter()), Some(3));
        assert_eq!(pick_victim([(1, nas), (3, b)].into_iter()), Some(1));
        assert_eq!(pick_victim(std::iter::empty()), None);
    }

    /// A connection cut is closed and out of the line, and cannot join it again.
    #[test]
    fn a_connection_cut_is_closed_and_does_not_rejoin() {
        let line = CutLine::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let close = CancellationToken::new();
        let id = line.join(ip, &close).unwrap();
        assert!(line.cut_one());
        assert!(close.is_cancelled());
        assert!(!line.cut_one(), "the line is empty");
        line.leave(id);
        assert_eq!(line.join(ip, &close), None);
    }
}
