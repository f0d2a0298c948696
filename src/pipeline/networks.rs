//! `exempt_networks`: logins from addresses the admin trusts (the office's own network on
//! a VPN that also serves home workers, a jump host) need the password alone, as Duo's
//! "authorized networks" and Azure MFA's trusted IPs offered. The address is the request's
//! Calling-Station-Id, as the NAS reports it; a NAS that sends none, or a MAC address,
//! never matches. Checked after the password, a fraud block and allow_groups; audited as
//! mode "exempt" with the address.

use std::net::{IpAddr, SocketAddr};

use super::{RequestContext, Verdict};
use crate::auth::UserInfo;
use crate::radius::Request;

/// The request's Calling-Station-Id as an address, if it is one.
fn station_address(req: &Request) -> Option<IpAddr> {
    parse_station(&req.calling_station_id()?)
}

/// `192.0.2.5`, `2001:db8::5`, either with a port, or an IPv6 address in brackets without
/// one (`[2001:db8::5]`, as some NAS write every IPv6 station). An IPv4 address a NAS
/// reports IPv4-mapped (`::ffff:192.0.2.5`) is taken as IPv4, so it matches the IPv4
/// networks it is in.
fn parse_station(station: &str) -> Option<IpAddr> {
    let station = station.trim();
    let bracketed = station
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6);
    station
        .parse::<IpAddr>()
        .ok()
        .or(bracketed)
        .or_else(|| station.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// The station's address if it is in the client's `exempt_networks`.
pub fn exempt_station(ctx: &RequestContext, req: &Request) -> Option<IpAddr> {
    let networks = &ctx.client.factors.exempt_networks;
    if networks.is_empty() {
        return None;
    }
    let ip = station_address(req)?;
    networks.iter().any(|n| n.contains(&ip)).then_some(ip)
}

pub fn exempt(ip: IpAddr, info: UserInfo) -> Verdict {
    Verdict::accept(
        "exempt",
        Some(format!("Calling-Station-Id {ip} is in exempt_networks")),
        info,
    )
}

#[cfg(test)]
mod tests {
    use super::parse_station;

    fn ip(s: &str) -> Option<String> {
        parse_station(s).map(|ip| ip.to_string())
    }

    #[test]
    fn stations_are_read_in_the_forms_nas_write_them() {
        assert_eq!(ip("192.0.2.5").as_deref(), Some("192.0.2.5"));
        assert_eq!(ip(" 192.0.2.5:4500 ").as_deref(), Some("192.0.2.5"));
        assert_eq!(ip("::ffff:192.0.2.5").as_deref(), Some("192.0.2.5"));
        assert_eq!(ip("2001:db8::5").as_deref(), Some("2001:db8::5"));
        assert_eq!(ip("[2001:db8::5]:443").as_deref(), Some("2001:db8::5"));
        assert_eq!(ip("[2001:db8::5]").as_deref(), Some("2001:db8::5"));
        assert_eq!(ip("[::ffff:192.0.2.5]").as_deref(), Some("192.0.2.5"));
    }

    #[test]
    fn what_is_no_address_never_matches() {
        for s in [
            "00-11-22-33-44-55",
            "",
            "[192.0.2.5]",
            "[2001:db8::5",
            "example.org",
        ] {
            assert_eq!(ip(s), None, "{s:?}");
        }
    }
}
