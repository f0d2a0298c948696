//! RadSec connection slots: `radsec.max_connections` in all, and at most
//! `radsec.max_connections_per_address` from one source address, so that one host of a
//! client's network (a /24 entry, say) cannot take every slot from the NAS boxes beside it.
//! A slot is taken before the TLS handshake and held until the connection's last reply is
//! written; `radmfa_radsec_connections` counts the slots held.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::drop_log::DropKind;
use super::metrics::Metrics;
use crate::app::AppState;

pub(super) struct Slots {
    all: Arc<Semaphore>,
    per_address: usize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

impl Slots {
    pub(super) fn new(max: usize, per_address: usize) -> Arc<Slots> {
        Arc::new(Slots {
            all: Arc::new(Semaphore::new(max)),
            per_address,
            by_address: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a connection from `ip`, or which limit is reached (counted). The total
    /// is checked first: when every slot is taken, that is what the admin needs to know.
    pub(super) fn take(
        self: &Arc<Self>,
        ip: IpAddr,
        app: &Arc<AppState>,
    ) -> Result<Slot, DropKind> {
        let Ok(permit) = self.all.clone().try_acquire_owned() else {
            Metrics::inc(&app.metrics.radsec_connection_limit);
            return Err(DropKind::TlsConnectionLimit);
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
