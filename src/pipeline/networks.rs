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
/// one (`[2001:db8::5]`, as some NAS write every IPv6 station). strongSwan writes the port
/// after the address in brackets (`192.0.2.5[4500]`, `2001:db8::5[4500]`: its eap-radius
/// `station_id_with_port`, on by default); that port is left off as any other. An IPv4
/// address a NAS reports IPv4-mapped (`::ffff:192.0.2.5`) is taken as IPv4, so it matches
/// the IPv4 networks it is in.
fn parse_station(station: &str) -> Option<IpAddr> {
    let station = trim_station(station);
    if let Some((address, port)) = station
        .strip_suffix(']')
        .and_then(|s| s.rsplit_once('['))
        .filter(|(address, port)| {
            !address.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        })
    {
        return port
            .parse::<u16>()
            .ok()
            .and_then(|_| address.parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical());
    }
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

/// The whitespace a Calling-Station-Id is trimmed of: ASCII's (space, tab, line breaks,
/// vertical tab, form feed), what a NAS pads with. Not Unicode's other spaces: `audit
/// --client-ip` trims this same set in SQL, and PostgreSQL refuses chr() above 127 in a
/// SQL_ASCII or LATIN1 database (the filter failed outright there, review).
pub const STATION_SPACE: [char; 6] = [' ', '\t', '\n', '\u{b}', '\u{c}', '\r'];

/// `station` without [`STATION_SPACE`] around it.
pub fn trim_station(station: &str) -> &str {
    station.trim_matches(&STATION_SPACE[..])
}

/// What a remembered login is stored and looked up under for this Calling-Station-Id
/// (trimmed, not blank): the same device or address however its NAS writes it. An address
/// is its bare IP as [`parse_station`] reads it: a NAS that reports `ip:port` sends a new
/// port with each connection, and compared as text no remembered login ever matched there.
/// A MAC address is lowercase and colon-separated, whichever of the usual forms it came
/// in. Anything else (a phone number, a name) is the text as sent.
pub fn station_key(station: &str) -> String {
    let station = trim_station(station);
    if let Some(ip) = parse_station(station) {
        return ip.to_string();
    }
    canonical_mac(station).unwrap_or_else(|| station.to_string())
}

/// `00-11-22-33-44-55` (RFC 3580's form) and `00:11:22:33:44:55`, in either case, and
/// Cisco's `0011.2233.4455`, as `00:11:22:33:44:55`. Twelve bare hex digits are left
/// alone: a phone number can be that too.
fn canonical_mac(station: &str) -> Option<String> {
    let groups: Vec<&str> = match station.as_bytes() {
        [_, _, sep @ (b'-' | b':'), ..] => station.split(char::from(*sep)).collect(),
        [_, _, _, _, b'.', ..] => station.split('.').collect(),
        _ => return None,
    };
    let sizes_fit = match groups.len() {
        6 => groups.iter().all(|g| g.len() == 2),
        3 => groups.iter().all(|g| g.len() == 4),
        _ => false,
    };
    let hex = groups.concat();
    if !sizes_fit || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    let pairs: Vec<&str> = (0..12).step_by(2).map(|i| &hex[i..i + 2]).collect();
    Some(pairs.join(":"))
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
    use super::{parse_station, station_key};

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
        // strongSwan's eap-radius, with station_id_with_port (its default).
        assert_eq!(ip("10.9.1.1[4500]").as_deref(), Some("10.9.1.1"));
        assert_eq!(
            ip("2001:db8:100::5[4500]").as_deref(),
            Some("2001:db8:100::5")
        );
        assert_eq!(ip("::ffff:10.9.1.1[500]").as_deref(), Some("10.9.1.1"));
    }

    #[test]
    fn what_is_no_address_never_matches() {
        for s in [
            "00-11-22-33-44-55",
            "",
            "[192.0.2.5]",
            "[2001:db8::5",
            "example.org",
            "10.9.1.1[]",
            "10.9.1.1[65536]",
            "10.9.1.1[45x]",
            "[4500]",
            "host[4500]",
            "[2001:db8::5][4500]",
        ] {
            assert_eq!(ip(s), None, "{s:?}");
        }
    }

    #[test]
    fn a_station_is_remembered_under_one_form_of_its_address_or_mac() {
        for (sent, key) in [
            ("198.51.100.7", "198.51.100.7"),
            ("198.51.100.7:51234", "198.51.100.7"),
            (" 198.51.100.7:51999 ", "198.51.100.7"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
            ("[2001:DB8::5]:443", "2001:db8::5"),
            ("198.51.100.7[4500]", "198.51.100.7"),
            ("2001:DB8::5[61234]", "2001:db8::5"),
            ("2001:0db8:0:0:0:0:0:5", "2001:db8::5"),
            ("00-11-22-33-44-6A", "00:11:22:33:44:6a"),
            ("00:11:22:33:44:6a", "00:11:22:33:44:6a"),
            ("00:11:22:33:44:6A", "00:11:22:33:44:6a"),
            ("0011.2233.446A", "00:11:22:33:44:6a"),
        ] {
            assert_eq!(station_key(sent), key, "{sent:?}");
        }
    }

    #[test]
    fn a_station_that_is_no_address_or_mac_is_kept_as_sent() {
        for (sent, key) in [
            (" +4930123456 ", "+4930123456"),
            ("001122334455", "001122334455"),
            ("00-11:22-33:44-55", "00-11:22-33:44-55"),
            ("00-11-22-33-44", "00-11-22-33-44"),
            ("00-11-22-33-44-5g", "00-11-22-33-44-5g"),
            ("0011.2233.4455.6677", "0011.2233.4455.6677"),
            ("host.example", "host.example"),
            ("é1-22-33-44-55-66", "é1-22-33-44-55-66"),
        ] {
            assert_eq!(station_key(sent), key, "{sent:?}");
        }
    }
}
