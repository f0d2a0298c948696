//! The client table: source address → NAS (name, shared secret, policy).
//! RFC 2865 §3: "A request from a client for which the RADIUS server does not have a shared
//! secret MUST be silently discarded." Lookup is longest-prefix match, so a specific host can
//! carry its own secret inside a broader network entry.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::ClientConfig;

#[derive(Debug, Clone)]
pub struct ClientTable {
    /// (network, client), most specific network first.
    entries: Vec<(IpNet, Arc<ClientConfig>)>,
}

impl ClientTable {
    pub fn new(clients: &[ClientConfig]) -> Self {
        let mut entries: Vec<(IpNet, Arc<ClientConfig>)> = Vec::new();
        for c in clients {
            let c = Arc::new(c.clone());
            for n in &c.networks {
                entries.push((*n, c.clone()));
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.0.prefix_len()));
        ClientTable { entries }
    }

    /// The most specific entry covering `ip` that takes requests over this listener (RadSec
    /// when `over_tls`, else UDP): a RadSec-only host entry inside a UDP network leaves that
    /// host's UDP requests to the network's entry, and the other way round. With none for
    /// this listener, the most specific entry covering `ip` at all, so the caller drops the
    /// request saying which entry is for the other transport.
    pub fn lookup(&self, ip: IpAddr, over_tls: bool) -> Option<&Arc<ClientConfig>> {
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; match them as IPv4.
        let ip = ip.to_canonical();
        let mut first = None;
        for (net, c) in &self.entries {
            if !net.contains(&ip) {
                continue;
            }
            if (over_tls && c.transport.radsec()) || (!over_tls && c.transport.udp()) {
                return Some(c);
            }
            first.get_or_insert(c);
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendFailure, NoFactorPolicy, OtpMode};
    use crate::secret::Secret;

    fn client(name: &str, nets: &[&str]) -> ClientConfig {
        ClientConfig {
            name: name.into(),
            networks: nets.iter().map(|n| n.parse().unwrap()).collect(),
            secret: Secret::from(name),
            require_message_authenticator: true,
            primary: Default::default(),
            otp_mode: OtpMode::Challenge,
            no_factor: NoFactorPolicy::Reject,
            on_backend_failure: BackendFailure::Reject,
            factors: Default::default(),
            groups: Default::default(),
            accept_attributes: Default::default(),
            radsec_name: None,
            transport: crate::config::Transport::Udp,
            challenge: Default::default(),
        }
    }

    #[test]
    fn longest_prefix_wins_and_unknown_is_none() {
        let t = ClientTable::new(&[
            client("lan", &["10.0.0.0/8"]),
            client("vpn", &["10.1.2.3/32", "2001:db8::/64"]),
        ]);
        let name = |ip: &str| t.lookup(ip.parse().unwrap(), false).map(|c| c.name.clone());
        assert_eq!(name("10.1.2.3").as_deref(), Some("vpn"));
        assert_eq!(name("10.9.9.9").as_deref(), Some("lan"));
        assert_eq!(name("::ffff:10.1.2.3").as_deref(), Some("vpn"));
        assert_eq!(name("2001:db8::5").as_deref(), Some("vpn"));
        assert_eq!(name("192.0.2.1"), None);
    }

    /// A RadSec-only proxy's host entry inside a UDP network: its UDP requests go to the
    /// network's entry, its TLS connections to its own; a host only a UDP entry covers is
    /// still found over TLS, for the caller to refuse as the wrong transport.
    #[test]
    fn the_most_specific_entry_for_the_listener_wins() {
        let mut proxy = client("proxy", &["10.20.0.5/32"]);
        proxy.transport = crate::config::Transport::Radsec;
        let t = ClientTable::new(&[client("branch", &["10.20.0.0/16"]), proxy]);
        let name = |ip: &str, tls| t.lookup(ip.parse().unwrap(), tls).map(|c| c.name.clone());
        assert_eq!(name("10.20.0.5", false).as_deref(), Some("branch"));
        assert_eq!(name("10.20.0.5", true).as_deref(), Some("proxy"));
        assert_eq!(
            name("10.20.0.6", true).as_deref(),
            Some("branch"),
            "for the caller"
        );
        assert_eq!(name("10.21.0.5", true), None);
    }
}
