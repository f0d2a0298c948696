//! `config check`'s warning for a client network no listen address can hear: an IPv6
//! wildcard is IPv6-only here (`[::]` does not take IPv4, as it does by Linux's default),
//! and a loopback address hears only the box itself. Either left every request of the
//! entry's NASes unanswered, with `config check` saying "ok".

use std::net::SocketAddr;

use ipnet::IpNet;

/// Why no address of `listen` (the `key` section's list) can receive a request from `net`,
/// or `None` when one can.
pub(super) fn unreachable(key: &str, listen: &[SocketAddr], net: &IpNet) -> Option<String> {
    let same_family: Vec<&SocketAddr> = listen
        .iter()
        .filter(|l| l.is_ipv4() == net.addr().is_ipv4())
        .collect();
    // A loopback address hears the network's part in the loopback range, if it has one
    // (0.0.0.0/0 does).
    let loopback: IpNet = if net.addr().is_ipv4() {
        "127.0.0.0/8".parse().expect("a network")
    } else {
        "::1/128".parse().expect("a network")
    };
    let overlaps = net.contains(&loopback) || loopback.contains(net);
    let hears = |l: &&SocketAddr| !l.ip().is_loopback() || overlaps;
    if same_family.iter().any(hears) {
        return None;
    }
    let port = listen.first().map_or(1812, |l| l.port());
    Some(if same_family.is_empty() {
        // For a client on this host, its loopback address; else the wildcard.
        let (family, wildcard) = match (net.addr().is_ipv4(), net.addr().is_loopback()) {
            (true, true) => ("IPv4", format!("127.0.0.1:{port}")),
            (true, false) => ("IPv4", format!("0.0.0.0:{port}")),
            (false, true) => ("IPv6", format!("[::1]:{port}")),
            (false, false) => ("IPv6", format!("[::]:{port}")),
        };
        // Admins expect [::] to take IPv4 too, as Linux's default sockets do.
        let why = if net.addr().is_ipv4() {
            " (an IPv6 address such as [::] takes IPv6 only)"
        } else {
            ""
        };
        format!(
            "address {net}: {key} has no {family} address, so its requests go unanswered{why}; \
             add \"{wildcard}\" or one of this host's {family} addresses"
        )
    } else {
        format!(
            "address {net}: {key} has only loopback addresses of its family, which hear \
             this host alone, so its requests go unanswered; add an address of this host \
             on the NAS's network"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::unreachable;

    fn check(listen: &[&str], net: &str) -> Option<String> {
        let listen: Vec<_> = listen.iter().map(|l| l.parse().unwrap()).collect();
        unreachable("server.listen", &listen, &net.parse().unwrap())
    }

    #[test]
    fn a_network_no_listen_address_hears_is_named() {
        let w = check(&["[::]:1812"], "10.0.0.0/8").unwrap();
        assert!(
            w.contains("no IPv4 address") && w.contains("\"0.0.0.0:1812\""),
            "{w}"
        );
        let w = check(&["127.0.0.1:1812"], "2001:db8::/32").unwrap();
        assert!(
            w.contains("no IPv6 address") && w.contains("\"[::]:1812\""),
            "{w}"
        );
        let w = check(&["127.0.0.1:1812"], "::1/128").unwrap();
        assert!(w.contains("\"[::1]:1812\""), "{w}");
        let w = check(&["[::1]:1812", "0.0.0.0:1812"], "2001:db8::/32").unwrap();
        assert!(w.contains("only loopback"), "{w}");
        assert!(check(&["127.0.0.1:1812"], "10.0.0.0/8").is_some());
    }

    #[test]
    fn a_network_some_listen_address_hears_is_not() {
        assert_eq!(check(&["0.0.0.0:1812"], "10.0.0.0/8"), None);
        assert_eq!(check(&["127.0.0.1:1812"], "127.0.0.0/8"), None);
        assert_eq!(check(&["[::1]:1812"], "::1/128"), None);
        assert_eq!(check(&["127.0.0.1:1812"], "0.0.0.0/1"), None, "holds 127/8");
        assert_eq!(check(&["192.0.2.1:1812", "[::]:1812"], "10.0.0.0/8"), None);
        assert_eq!(check(&["[::]:1812", "0.0.0.0:1812"], "2001:db8::/32"), None);
    }
}
