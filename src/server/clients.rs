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

    pub fn lookup(&self, ip: IpAddr) -> Option<&Arc<ClientConfig>> {
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; match them as IPv4.
        let ip = ip.to_canonical();
        self.entries
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, c)| c)
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
        }
    }

    #[test]
    fn longest_prefix_wins_and_unknown_is_none() {
        let t = ClientTable::new(&[
            client("lan", &["10.0.0.0/8"]),
            client("vpn", &["10.1.2.3/32", "2001:db8::/64"]),
        ]);
        let name = |ip: &str| t.lookup(ip.parse().unwrap()).map(|c| c.name.clone());
        assert_eq!(name("10.1.2.3").as_deref(), Some("vpn"));
        assert_eq!(name("10.9.9.9").as_deref(), Some("lan"));
        assert_eq!(name("::ffff:10.1.2.3").as_deref(), Some("vpn"));
        assert_eq!(name("2001:db8::5").as_deref(), Some("vpn"));
        assert_eq!(name("192.0.2.1"), None);
    }
}
