//! RadSec connection slots: `radsec.max_connections` in all, and at most
//! `radsec.max_connections_per_address` from one source address, so that one host of a
//! client's network (a /24 entry, say) cannot take every slot from the NAS boxes beside it.
//! A slot is taken before the TLS handshake and held until the connection's last reply is
//! written; `radmfa_radsec_connections` counts the slots held.
//!
//! A connection that has not finished its handshake has shown no certificate: when every
//! slot is taken, one still in its handshake gives its slot up to the newcomer (counted as
//! a `connection_limit` close; see [`CutLine`] for which one). Otherwise max_connections /
//! max_connections_per_address hosts of a wide entry's range, connecting and sending
//! nothing each handshake timeout, held every slot, and a NAS reconnecting found none.
//! Connections past their handshake are never given up.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::cut_line::CutLine;
use super::drop_log::DropKind;
use super::metrics::Metrics;
use crate::app::AppState;

pub(super) struct Slots {
    all: Arc<Semaphore>,
    /// `max_connections`.
    max: usize,
    per_address: usize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    /// Connections in their TLS handshake.
    handshaking: CutLine,
}

/// How long a newcomer waits for the slot of the handshake cut short to come free (its task
/// ends at once; this bounds the accept loop's pause).
const FREED_WITHIN: Duration = Duration::from_millis(500);

impl Slots {
    pub(super) fn new(max: usize, per_address: usize) -> Arc<Slots> {
        Arc::new(Slots {
            all: Arc::new(Semaphore::new(max)),
            max,
            per_address,
            by_address: Mutex::new(HashMap::new()),
            handshaking: CutLine::default(),
        })
    }

    /// A connection from `ip` starts its handshake: its place in line and what cuts it
    /// short.
    pub(super) fn handshake_started(&self, ip: IpAddr) -> (u64, CancellationToken) {
        let cut = CancellationToken::new();
        let id =
            (self.handshaking.join(address_share(ip), &cut)).expect("a new token is not cancelled");
        (id, cut)
    }

    /// Its handshake is over, one way or the other.
    pub(super) fn handshake_done(&self, id: u64) {
        self.handshaking.leave(id)
    }

    fn address_full(&self, ip: IpAddr) -> bool {
        let by = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        by.get(&address_share(ip))
            .is_some_and(|&n| n >= self.per_address)
    }

    /// A slot for a connection from `ip`, or which limit is reached (counted). A host at its
    /// own share, smaller than the total, is refused for that, every slot taken or not: it
    /// would be refused all the same with slots free, and an alert on the total must not
    /// fire for one host's reconnects (a share as large as the total is the total, and
    /// `max_connections` is what to raise). Otherwise, when every slot is taken, that is
    /// what the admin needs to know; unless a connection still in its handshake gives its
    /// slot up (a host at its own share gets none that way).
    pub(super) async fn take(
        self: &Arc<Self>,
        ip: IpAddr,
        app: &Arc<AppState>,
    ) -> Result<Slot, DropKind> {
        let permit = match self.all.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) if self.per_address < self.max && self.address_full(ip) => {
                Metrics::inc(&app.metrics.radsec_address_limit);
                return Err(DropKind::TlsAddressLimit);
            }
            Err(_) => {
                let freed = if self.address_full(ip) || !self.handshaking.cut_one() {
                    None
                } else {
                    // The cut connection was closed for the limit too.
                    Metrics::inc(&app.metrics.radsec_connection_limit);
                    tokio::time::timeout(FREED_WITHIN, self.all.clone().acquire_owned())
                        .await
                        .ok()
                        .and_then(Result::ok)
                };
                let Some(permit) = freed else {
                    Metrics::inc(&app.metrics.radsec_connection_limit);
                    return Err(DropKind::TlsConnectionLimit);
                };
                permit
            }
        };
        let ip = address_share(ip);
        let mut by = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        let n = by.entry(ip).or_default();
        if *n >= self.per_address {
            Metrics::inc(&app.metrics.radsec_address_limit);
            return Err(DropKind::TlsAddressLimit); // `permit` goes back as it drops
        }
        *n += 1;
        Metrics::inc(&app.metrics.radsec_connections);
        Ok(Slot {
            _permit: permit,
            slots: self.clone(),
            ip,
            app: app.clone(),
        })
    }
}

/// Whose share of a per-address limit a connection from `ip` takes: an IPv4 address (an
/// IPv4-mapped one as such), or an IPv6 /64: one host is usually given a whole /64, and
/// could otherwise take a share for each address in it. Also the HTTP listeners' grouping.
pub(crate) fn address_share(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// One connection's slot; given back when dropped.
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    slots: Arc<Slots>,
    ip: IpAddr,
    app: Arc<AppState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by = self
            .slots
            .by_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by.remove(&self.ip);
            }
        }
        let open = &self.app.metrics.radsec_connections;
        open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::address_share;
    use std::net::IpAddr;

    #[test]
    fn an_ipv6_slash_64_is_one_address_and_ipv4_stays_itself() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_share(ip("2001:db8:10::1")),
            address_share(ip("2001:db8:10::abcd:2"))
        );
        assert_ne!(
            address_share(ip("2001:db8:10::1")),
            address_share(ip("2001:db8:11::1"))
        );
        assert_eq!(address_share(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_share(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }
}
