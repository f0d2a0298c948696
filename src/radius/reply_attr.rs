//! Attributes an admin adds to Access-Accepts (`accept_attributes`, `group_attributes`):
//! what a NAS reads to pick the user's policy or group — FortiGate's Fortinet-Group-Name,
//! Palo Alto's PaloAlto-User-Group, Cisco ASA's `Class = "OU=policy;"`, a switch's
//! `Service-Type = Administrative-User`.
//!
//! Hand-written: the radius crate has a typed function per attribute but no lookup by name,
//! and no vendor dictionaries. So this is a small table of the RFC 2865 attributes a NAS
//! takes policy from and the common VPN and firewall vendors' string attributes; any other
//! vendor's string attribute is written `Vendor-<id>-Attr-<type>`, FreeRADIUS's spelling for
//! an attribute without a dictionary entry.

/// One attribute, ready to go on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAttr {
    /// The attribute type; 26 (Vendor-Specific) for vendor attributes.
    pub typ: u8,
    /// The value as sent: for Vendor-Specific the vendor id, vendor type, vendor length and
    /// the data (RFC 2865 §5.26).
    pub value: Vec<u8>,
}

const VENDOR_SPECIFIC: u8 = 26;
/// An attribute's value is at most 253 octets; a vendor attribute's data 6 fewer.
const MAX_VALUE: usize = 253;
const VSA_HEADER: usize = 6;

#[derive(Clone, Copy)]
enum Kind {
    /// Text, configured as text and sent as its bytes.
    Text,
    /// Octets (Class): as text, or `0x` and hex digits for the bytes themselves (see
    /// [`octets`]).
    Octets,
    /// 32-bit integer, by number or by one of these names.
    Integer(&'static [(&'static str, u32)]),
    /// An IPv6 address (`2001:db8::1`), its 16 octets.
    Ipv6Addr,
    /// An IPv6 prefix (`2001:db8::/64`): a reserved octet of 0, the prefix length and the
    /// prefix's octets (RFC 3162 §2.3).
    Ipv6Prefix,
    /// An IPv6 interface identifier (`0:0:0:1`, four groups of hex as FreeRADIUS writes
    /// it): 8 octets (RFC 3162 §2.1).
    Ifid,
}

/// RFC 2865 §5.6.
const SERVICE_TYPES: &[(&str, u32)] = &[
    ("Login-User", 1),
    ("Framed-User", 2),
    ("Callback-Login-User", 3),
    ("Callback-Framed-User", 4),
    ("Outbound-User", 5),
    ("Administrative-User", 6),
    ("NAS-Prompt-User", 7),
    ("Authenticate-Only", 8),
    ("Callback-NAS-Prompt", 9),
    ("Call-Check", 10),
    ("Callback-Administrative", 11),
];

/// Standard attributes a NAS takes authorization from (RFC 2865, RFC 2869 Framed-Pool), and
/// the IPv6 addressing a VPN concentrator assigns (RFC 3162, 4818, 6911): typed, so their
/// values are checked at load and sent as the NAS reads them, not as text.
const STANDARD: &[(&str, u8, Kind)] = &[
    ("Service-Type", 6, Kind::Integer(SERVICE_TYPES)),
    ("Filter-Id", 11, Kind::Text),
    ("Class", 25, Kind::Octets),
    ("Session-Timeout", 27, Kind::Integer(&[])),
    ("Idle-Timeout", 28, Kind::Integer(&[])),
    ("Framed-Pool", 88, Kind::Text),
    ("Framed-Interface-Id", 96, Kind::Ifid),
    ("Framed-IPv6-Prefix", 97, Kind::Ipv6Prefix),
    ("Framed-IPv6-Route", 99, Kind::Text),
    ("Framed-IPv6-Pool", 100, Kind::Text),
    ("Delegated-IPv6-Prefix", 123, Kind::Ipv6Prefix),
    ("Framed-IPv6-Address", 168, Kind::Ipv6Addr),
    ("DNS-Server-IPv6-Address", 169, Kind::Ipv6Addr),
    ("Delegated-IPv6-Prefix-Pool", 171, Kind::Text),
];

/// SonicWall-User-Privilege (FreeRADIUS's dictionary.sonicwall).
const SONICWALL_PRIVILEGES: &[(&str, u32)] = &[
    ("Remote-Access", 1),
    ("Bypass-Filters", 2),
    ("VPN-Client-Access", 3),
    ("Access-To-VPN", 4),
    ("Limited-Management", 5),
    ("L2TP-Client-Access", 6),
    ("Wireless-Guest", 7),
    ("Wireless-Add-ACL", 8),
    ("Internet-Access", 9),
];

/// Vendor attributes: name, vendor id, vendor type, kind (FreeRADIUS's dictionaries). The
/// integer ones are here because `Vendor-<id>-Attr-<type>` sends text: Check Point's
/// CP-Gaia-SuperUser-Access given as "1" is one octet, not the four of an integer.
const VENDOR: &[(&str, u32, u8, Kind)] = &[
    ("Cisco-AVPair", 9, 1, Kind::Text),
    ("Citrix-User-Groups", 66, 16, Kind::Text),
    ("CP-Gaia-User-Role", 2620, 229, Kind::Text),
    ("CP-Gaia-SuperUser-Access", 2620, 230, Kind::Integer(&[])),
    ("Juniper-Local-User-Name", 2636, 1, Kind::Text),
    ("Juniper-Local-Group-Name", 2636, 46, Kind::Text),
    (
        "SonicWall-User-Privilege",
        8741,
        1,
        Kind::Integer(SONICWALL_PRIVILEGES),
    ),
    ("SonicWall-User-Group", 8741, 3, Kind::Text),
    ("Fortinet-Group-Name", 12356, 1, Kind::Text),
    ("Fortinet-Access-Profile", 12356, 6, Kind::Text),
    ("Aruba-User-Role", 14823, 1, Kind::Text),
    ("Aruba-Admin-Role", 14823, 4, Kind::Text),
    ("PaloAlto-Admin-Role", 25461, 1, Kind::Text),
    ("PaloAlto-User-Group", 25461, 5, Kind::Text),
];

/// Attributes an Access-Accept may carry at most once ("0-1" in the tables of RFC 2865 §5.44
/// and RFC 2869 §5.19): Service-Type (6), Framed-Protocol (7), Framed-IP-Address (8),
/// Framed-IP-Netmask (9), Framed-Routing (10), Framed-MTU (12), Login-Service (15),
/// Login-TCP-Port (16), Callback-Number (19), Callback-Id (20), Framed-IPX-Network (23),
/// Session-Timeout (27), Idle-Timeout (28), Termination-Action (29), Login-LAT-Service,
/// -Node and -Group (34-36), Framed-AppleTalk-Link (37), Framed-AppleTalk-Zone (39),
/// Port-Limit (62), Login-LAT-Port (63); ARAP-Features (71), ARAP-Zone-Access (72),
/// ARAP-Challenge-Response (84), Acct-Interim-Interval (85), Framed-Pool (88); RFC 3162's
/// Framed-Interface-Id (96) and Framed-IPv6-Pool (100), RFC 6911's Delegated-IPv6-Prefix-Pool
/// (171) and Stateful-IPv6-Address-Pool (172). A NAS given
/// two picks one, and which one is up to its implementation. State (24) and
/// Message-Authenticator (80) are 0-1 too, but radmfa writes those itself. Filter-Id, Class,
/// Reply-Message, Framed-Route, Framed-Compression, Login-IP-Host, Framed-AppleTalk-Network,
/// Vendor-Specific and the IPv6 prefixes, routes and addresses may repeat ("0+").
const SINGLE_VALUED: &[u8] = &[
    6, 7, 8, 9, 10, 12, 15, 16, 19, 20, 23, 27, 28, 29, 34, 35, 36, 37, 39, 62, 63, 71, 72, 84, 85,
    88, 96, 100, 171, 172,
];

/// May an Access-Accept carry the attribute `typ` at most once (see [`SINGLE_VALUED`])?
pub fn single_valued(typ: u8) -> bool {
    SINGLE_VALUED.contains(&typ)
}

/// Vendor attributes that name one thing a NAS applies, so two values make it pick one by
/// its own rule: a yes/no flag (CP-Gaia-SuperUser-Access), the one admin profile or role
/// (Fortinet-Access-Profile, PaloAlto-Admin-Role, Aruba-Admin-Role), the one user role an
/// Aruba controller puts the session in (Aruba-User-Role), the one local template account
/// (Juniper-Local-User-Name). RFC 2865 lets Vendor-Specific repeat, so no vendor attribute
/// is single-valued by the RFC's tables; these are by meaning. Group names
/// (Fortinet-Group-Name, PaloAlto-User-Group, …), AVPairs and SonicWall's privileges do
/// repeat, and each value counts.
const SINGLE_VALUED_VENDOR: &[(u32, u8)] = &[
    (2620, 230),
    (2636, 1),
    (12356, 6),
    (14823, 1),
    (14823, 4),
    (25461, 1),
];

impl ReplyAttr {
    /// The attribute's name for a message: as configured for the ones radmfa knows by
    /// name, `Attr-<type>` for another standard attribute and `Vendor-<id>-Attr-<type>` for
    /// another vendor's.
    pub fn name(&self) -> String {
        match self.key() {
            AttrKey::Standard(typ) => STANDARD
                .iter()
                .find(|&&(_, t, _)| t == typ)
                .map(|&(n, _, _)| n.to_string())
                .or_else(|| {
                    PASS_THROUGH_ONLY
                        .iter()
                        .find(|&&(_, t)| t == typ)
                        .map(|&(n, _)| n.to_string())
                })
                .unwrap_or_else(|| format!("Attr-{typ}")),
            AttrKey::Vendor(vendor, vtype) => VENDOR
                .iter()
                .find(|&&(_, v, t, _)| (v, t) == (vendor, vtype))
                .map(|&(n, _, _, _)| n.to_string())
                .unwrap_or_else(|| format!("Vendor-{vendor}-Attr-{vtype}")),
        }
    }

    /// Which attribute this is: its type, or for Vendor-Specific the vendor and the vendor
    /// type. Each [`ReplyAttr`] holds one vendor attribute: [`ReplyAttr::parse`] builds it
    /// so, and an upstream server's Vendor-Specific packing several is not passed through
    /// ([`AttrKey::matches`]).
    pub fn key(&self) -> AttrKey {
        match (self.typ, self.value.as_slice()) {
            (VENDOR_SPECIFIC, [a, b, c, d, vtype, ..]) => {
                AttrKey::Vendor(u32::from_be_bytes([*a, *b, *c, *d]), *vtype)
            }
            (typ, _) => AttrKey::Standard(typ),
        }
    }

    /// The value's length as the attribute's type counts it: for a vendor attribute, its
    /// data after the vendor id, type and length.
    pub fn data_len(&self) -> usize {
        match self.key() {
            AttrKey::Standard(_) => self.value.len(),
            AttrKey::Vendor(..) => self.value.len().saturating_sub(VSA_HEADER),
        }
    }

    /// Whether the value has a length its attribute can have (RFC 2865 §5, RFC 3162, RFC
    /// 8044): none empty, an integer or IPv4 address four octets, an IPv6 address 16, an
    /// interface id 8, a prefix 2 to 18; what radmfa knows no type of, anything not empty.
    /// An upstream server's Accept passed a 2-octet Session-Timeout and a 3-octet
    /// Framed-IP-Address on to the NAS, which may take the whole Accept as malformed
    /// (red team).
    pub fn well_formed(&self) -> bool {
        let (kind, value) = match self.key() {
            AttrKey::Standard(typ) => {
                let kind = STANDARD
                    .iter()
                    .find(|&&(_, t, _)| t == typ)
                    .map(|&(_, _, k)| k);
                if FOUR_OCTETS.contains(&typ) {
                    return self.value.len() == 4;
                }
                (kind, self.value.as_slice())
            }
            AttrKey::Vendor(vendor, vtype) => {
                let kind = VENDOR
                    .iter()
                    .find(|&&(_, v, t, _)| (v, t) == (vendor, vtype))
                    .map(|&(_, _, _, k)| k);
                (kind, self.value.get(VSA_HEADER..).unwrap_or_default())
            }
        };
        match kind {
            Some(Kind::Integer(_)) => value.len() == 4,
            Some(Kind::Ipv6Addr) => value.len() == 16,
            Some(Kind::Ifid) => value.len() == 8,
            Some(Kind::Ipv6Prefix) => (2..=18).contains(&value.len()),
            _ => !value.is_empty(),
        }
    }

    /// May an Access-Accept carry this attribute at most once: the RFCs' 0-1 attributes
    /// ([`SINGLE_VALUED`]) and the vendor attributes that name one thing
    /// ([`SINGLE_VALUED_VENDOR`]).
    pub fn single(&self) -> bool {
        match self.key() {
            AttrKey::Standard(typ) => single_valued(typ),
            AttrKey::Vendor(vendor, vtype) => SINGLE_VALUED_VENDOR.contains(&(vendor, vtype)),
        }
    }

    /// Parses `Name = value` (the value may be in double or single quotes, as FreeRADIUS
    /// takes it). The error says what is wrong, for a config message that names the key.
    pub fn parse(spec: &str) -> Result<ReplyAttr, String> {
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?} is not \"Name = value\""))?;
        let name = name.trim();
        let value = value.trim();
        // A FreeRADIUS operator (`:=`, `+=`, `==`, `=~`, …) copied from a users file: `==`
        // and `=~` went on the wire as "= vpn-admins" and "~ restricted", which no NAS
        // matches, and `:=` read as an attribute named "Session-Timeout :".
        let op_in_name = name.ends_with([':', '+', '!', '<', '>', '-']);
        if op_in_name || value.starts_with(['=', '~']) {
            let bare_name = name.trim_end_matches([':', '+', '!', '<', '>', '-']).trim();
            let bare_value = value.trim_start_matches(['=', '~']).trim();
            return Err(format!(
                "{spec:?} has a FreeRADIUS operator: radmfa takes \"Name = value\" only \
                 (every attribute given is sent); write \"{bare_name} = {bare_value}\""
            ));
        }
        // Single quotes too: an admin used to FreeRADIUS writes 'vpn admins', and a group
        // name sent with its quotes matched nothing at the NAS, silently.
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|&q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)));
        let quoted = unquoted.is_some();
        let value = unquoted.unwrap_or(value);
        if value.is_empty() {
            return Err(format!("{spec:?} has no value"));
        }
        if let Some(&(_, typ, kind)) = STANDARD
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        {
            return fits(name, typ, data(name, value, quoted, kind)?);
        }
        let (vendor, vtype, kind) = match VENDOR
            .iter()
            .find(|(n, _, _, _)| n.eq_ignore_ascii_case(name))
        {
            Some(&(_, vendor, vtype, kind)) => (vendor, vtype, kind),
            // Written by number, an attribute radmfa knows by name is still what it is:
            // `Vendor-2620-Attr-230 = 1` (CP-Gaia-SuperUser-Access) went as the text "1",
            // which Gaia cannot read as the integer it expects.
            None => {
                let (vendor, vtype) = generic_vendor(name).ok_or_else(|| not_generic(name))?;
                generic_vendor_sendable(name, vendor, vtype)?;
                // Any other: octets, as FreeRADIUS takes an attribute it has no dictionary
                // entry for. Text is sent as its bytes all the same; an unquoted 0x value is
                // the bytes it spells (it went as the text "0x41", where FreeRADIUS sent
                // "A", so a value copied from its config meant something else here).
                let kind = VENDOR
                    .iter()
                    .find(|&&(_, v, t, _)| (v, t) == (vendor, vtype))
                    .map_or(Kind::Octets, |&(_, _, _, kind)| kind);
                (vendor, vtype, kind)
            }
        };
        let data = data(name, value, quoted, kind)?;
        let data = data.as_slice();
        if data.len() > MAX_VALUE - VSA_HEADER {
            return Err(too_long(name, MAX_VALUE - VSA_HEADER));
        }
        let mut v = Vec::with_capacity(VSA_HEADER + data.len());
        v.extend_from_slice(&vendor.to_be_bytes());
        v.push(vtype);
        v.push((2 + data.len()) as u8);
        v.extend_from_slice(data);
        Ok(ReplyAttr {
            typ: VENDOR_SPECIFIC,
            value: v,
        })
    }
}

/// An attribute of a received reply as `client login` shows it, `Name = value`: named as
/// in the configuration where radmfa knows the name (so an admin can check
/// `accept_attributes` and `group_attributes` without radclient), `Attr-<type>` or
/// `Vendor-<id>-Attr-<type>` otherwise. Integers radmfa knows are shown by value name or
/// number; other values as quoted text if they are printable UTF-8 (escaped where they
/// hold what could drive a terminal), else as hex. A Vendor-Specific attribute that is
/// not one well-formed vendor attribute is `Vendor-Specific = 0x…`.
pub fn shown(typ: u8, value: &[u8]) -> String {
    let attr = ReplyAttr {
        typ,
        value: value.to_vec(),
    };
    let (name, kind, data) = match attr.key() {
        AttrKey::Standard(t) => {
            let known = STANDARD.iter().find(|&&(_, st, _)| st == t);
            let name = known.map(|&(n, _, _)| n).or_else(|| {
                PASS_THROUGH_ONLY
                    .iter()
                    .find(|&&(_, st)| st == t)
                    .map(|&(n, _)| n)
            });
            let name = name.map_or_else(|| format!("Attr-{t}"), str::to_string);
            (name, known.map(|&(_, _, k)| k), value)
        }
        AttrKey::Vendor(vendor, vtype) if AttrKey::Vendor(vendor, vtype).matches(typ, value) => {
            let kind = VENDOR
                .iter()
                .find(|&&(_, v, t, _)| (v, t) == (vendor, vtype))
                .map(|&(_, _, _, k)| k);
            (attr.name(), kind, &value[VSA_HEADER..])
        }
        AttrKey::Vendor(..) => ("Vendor-Specific".to_string(), None, value),
    };
    format!("{name} = {}", shown_value(kind, data))
}

fn shown_value(kind: Option<Kind>, data: &[u8]) -> String {
    if let (Some(Kind::Integer(names)), Ok(four)) = (kind, <[u8; 4]>::try_from(data)) {
        let n = u32::from_be_bytes(four);
        return names
            .iter()
            .find(|&&(_, v)| v == n)
            .map_or_else(|| n.to_string(), |&(name, _)| name.to_string());
    }
    if let Some(addressing) = kind.and_then(|k| shown_ipv6(k, data)) {
        return addressing;
    }
    match std::str::from_utf8(data) {
        Ok(text) if !text.is_empty() && !text.chars().any(char::is_control) => {
            format!("\"{}\"", crate::admin::printable(text))
        }
        _ => {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

/// An IPv6 address, prefix or interface id as configured; None for another kind, or a
/// value that is not well formed (shown as hex then).
fn shown_ipv6(kind: Kind, data: &[u8]) -> Option<String> {
    match kind {
        Kind::Ipv6Addr => {
            Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?).to_string())
        }
        Kind::Ipv6Prefix => {
            let (&[0, len], prefix) = data.split_first_chunk::<2>()? else {
                return None;
            };
            if len > 128 || prefix.len() > 16 {
                return None;
            }
            let mut octets = [0u8; 16];
            octets[..prefix.len()].copy_from_slice(prefix);
            Some(format!("{}/{len}", std::net::Ipv6Addr::from(octets)))
        }
        Kind::Ifid => {
            let id = <[u8; 8]>::try_from(data).ok()?;
            let groups: Vec<String> = id
                .chunks(2)
                .map(|g| format!("{:x}", u16::from_be_bytes([g[0], g[1]])))
                .collect();
            Some(groups.join(":"))
        }
        _ => None,
    }
}

/// An attribute named in `[upstream] pass_through`: what to copy from an upstream server's
/// Access-Accept into radmfa's. Matched by type (and vendor and vendor type), value as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKey {
    Standard(u8),
    Vendor(u32, u8),
}

/// Standard attributes whose value is four octets (RFC 2865, 2866, 2868, 2869: integers,
/// tagged integers and IPv4 addresses), for [`ReplyAttr::well_formed`]: a 2-octet
/// Framed-MTU from an upstream server reached the NAS while only the integers radmfa lets
/// an admin configure were checked (review).
const FOUR_OCTETS: &[u8] = &[
    4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 23, 27, 28, 29, 37, 38, 40, 41, 42, 43, 45, 46, 47,
    48, 49, 51, 52, 53, 55, 61, 62, 64, 65, 72, 73, 75, 76, 83, 85, 86,
];

/// Standard attributes worth passing on that nobody configures by hand: the address and
/// routes an upstream server assigns.
const PASS_THROUGH_ONLY: &[(&str, u8)] = &[
    ("Framed-IP-Address", 8),
    ("Framed-IP-Netmask", 9),
    ("Framed-Route", 22),
    ("Reply-Message", 18),
];

/// Never copied from another server's reply: they belong to this exchange (State,
/// Proxy-State, Message-Authenticator), to EAP, which radmfa does not relay, or to requests.
const NOT_PASSED: &[u8] = &[2, 3, 24, 26, 33, 79, 80];

/// Hidden with the upstream server's secret and radmfa's Request Authenticator (RFC 2868
/// §3.5 Tunnel-Password; RFC 2548 MS-CHAP-MPPE-Keys, MS-MPPE-Send-Key, MS-MPPE-Recv-Key):
/// copied as sent, the NAS would decrypt them with its own secret into garbage. The vendor
/// ones are every attribute FreeRADIUS 3.2's dictionaries mark `encrypt=1`, `2` or `3`
/// (Aruba-MPSK-Passphrase, Ascend and Lucent secrets, the WiMAX and Alcatel keys, …):
/// with only Microsoft's listed, the others passed `config check` and reached the NAS
/// as garbage.
const ENCRYPTED_STANDARD: &[u8] = &[69];
const ENCRYPTED_VENDOR: &[(u32, u8)] = &[
    (161, 11),
    (311, 12),
    (311, 16),
    (311, 17),
    (529, 214),
    (529, 215),
    (831, 116),
    (831, 117),
    (831, 118),
    (831, 119),
    (2356, 19),
    (2356, 20),
    (4846, 214),
    (4846, 215),
    (4874, 58),
    (4874, 59),
    (4874, 60),
    (4874, 61),
    (5535, 58),
    (6527, 122),
    (6527, 123),
    (6527, 124),
    (6527, 125),
    (6527, 138),
    (6527, 139),
    (6527, 142),
    (14823, 44),
    (24757, 5),
    (24757, 10),
    (24757, 12),
    (24757, 14),
    (24757, 15),
    (24757, 19),
    (24757, 40),
    (24757, 66),
    (24757, 67),
    (24757, 70),
    (24757, 75),
    (24757, 131),
    (26928, 3),
];
const ENCRYPTED: &str =
    "is encrypted for the exchange between radmfa and the upstream server (its secret, \
     radmfa's Request Authenticator), so the NAS could not read it: it cannot be passed through";

impl AttrKey {
    /// A name from the table above, `Attr-<type>` for another standard attribute, or a
    /// vendor attribute as in [`ReplyAttr::parse`].
    pub fn by_name(name: &str) -> Result<AttrKey, String> {
        let name = name.trim();
        let standard = STANDARD
            .iter()
            .map(|&(n, t, _)| (n, t))
            .chain(PASS_THROUGH_ONLY.iter().copied())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| t)
            .or_else(|| name.strip_prefix("Attr-")?.parse::<u8>().ok());
        if let Some(typ) = standard {
            if typ == 0 || NOT_PASSED.contains(&typ) {
                let why = match typ {
                    2 | 3 => "a password, which only requests carry",
                    24 | 33 => "it belongs to the exchange between radmfa and the upstream server",
                    26 => "name the vendor attribute itself (Cisco-AVPair, Vendor-9-Attr-1)",
                    79 => "radmfa does not relay EAP",
                    80 => "it signs the exchange between radmfa and the upstream server",
                    _ => "type 0 is no attribute",
                };
                return Err(format!("{name:?} cannot be passed through: {why}"));
            }
            if ENCRYPTED_STANDARD.contains(&typ) {
                return Err(format!("{name:?} {ENCRYPTED}"));
            }
            return Ok(AttrKey::Standard(typ));
        }
        let vendor = VENDOR
            .iter()
            .find(|(n, _, _, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v, t, _)| (v, t))
            .or_else(|| generic_vendor(name));
        if vendor.is_some_and(|vt| ENCRYPTED_VENDOR.contains(&vt)) {
            return Err(format!("{name:?} {ENCRYPTED}"));
        }
        vendor.map(|(v, t)| AttrKey::Vendor(v, t)).ok_or_else(|| {
            let extra: Vec<&str> = PASS_THROUGH_ONLY.iter().map(|(n, _)| *n).collect();
            format!(
                "{}; also {}, or Attr-<type>",
                unknown(name),
                extra.join(", ")
            )
        })
    }

    /// Does the attribute `typ` with `value` (as on the wire) match? A Vendor-Specific
    /// attribute matches by its vendor id and sub-attribute type, and only when it carries
    /// that one sub-attribute: RFC 2865 §5.26 lets one attribute pack several, and a
    /// packed one would carry vendor attributes nobody named (an access profile beside a
    /// group name) to the NAS.
    pub fn matches(&self, typ: u8, value: &[u8]) -> bool {
        match *self {
            AttrKey::Standard(t) => t == typ,
            AttrKey::Vendor(vendor, vtype) => {
                typ == VENDOR_SPECIFIC
                    && value.len() >= VSA_HEADER - 2 + 2
                    && value[..4] == vendor.to_be_bytes()
                    && value[4] == vtype
                    && usize::from(value[5]) == value.len() - 4
            }
        }
    }
}

/// The value's bytes as sent, for an attribute of `kind`; `quoted` when the config wrote
/// it in quotes.
fn data(name: &str, value: &str, quoted: bool, kind: Kind) -> Result<Vec<u8>, String> {
    Ok(match kind {
        Kind::Text => value.as_bytes().to_vec(),
        Kind::Octets => octets(name, value, quoted)?,
        Kind::Integer(names) => integer(name, value, names)?.to_be_bytes().to_vec(),
        Kind::Ipv6Addr => value
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{name}: {value:?} is not an IPv6 address"))?
            .octets()
            .to_vec(),
        Kind::Ipv6Prefix => ipv6_prefix(name, value)?,
        Kind::Ifid => interface_id(name, value)?.to_vec(),
    })
}

/// `2001:db8::/64` → 0, 64, and the prefix's first 8 octets: the octets the length covers,
/// as RFC 8044 §3.10 allows (up to 16). Bits past the length must be zero there, so an
/// address with its host part (`2001:db8::1/64`) is refused: which prefix was meant?
fn ipv6_prefix(name: &str, value: &str) -> Result<Vec<u8>, String> {
    let net: ipnet::Ipv6Net = value.parse().map_err(|_| {
        format!("{name}: {value:?} is not an IPv6 prefix with its length (e.g. 2001:db8::/64)")
    })?;
    if net.network() != net.addr() {
        return Err(format!(
            "{name}: {value:?} has bits set past its length /{}: write {}",
            net.prefix_len(),
            net.trunc()
        ));
    }
    let len = net.prefix_len();
    let mut v = vec![0, len];
    v.extend_from_slice(&net.addr().octets()[..usize::from(len).div_ceil(8)]);
    Ok(v)
}

/// `0:0:0:1`, four groups of hex as FreeRADIUS writes an interface id → its 8 octets.
fn interface_id(name: &str, value: &str) -> Result<[u8; 8], String> {
    let bad = || {
        format!(
            "{name}: {value:?} is not an interface id: four groups of 1-4 hex digits, e.g. \
             0:0:0:1 or 21a:2bff:fe3c:4d5e"
        )
    };
    let groups: Vec<&str> = value.split(':').collect();
    if groups.len() != 4 {
        return Err(bad());
    }
    let mut id = [0u8; 8];
    for (i, g) in groups.iter().enumerate() {
        // Checked first: from_str_radix takes a leading '+'.
        if !(1..=4).contains(&g.len()) || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let n = u16::from_str_radix(g, 16).map_err(|_| bad())?;
        id[2 * i..2 * i + 2].copy_from_slice(&n.to_be_bytes());
    }
    Ok(id)
}

/// An octets value: unquoted `0x` and hex digits are the bytes, as FreeRADIUS writes octets
/// and `radclient -x` shows a Class (`0x4f553d...`), so a value copied from either means
/// what it meant there, not its 2 + 2n characters of text. Any other value, and any quoted
/// one, is text sent as its bytes. A `0x` value that is not whole bytes of hex is refused:
/// sent as text, it would match nothing at the NAS, silently.
fn octets(name: &str, value: &str, quoted: bool) -> Result<Vec<u8>, String> {
    let hex = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) if !quoted => hex,
        _ => return Ok(value.as_bytes().to_vec()),
    };
    let digits = hex.as_bytes();
    if digits.is_empty() || digits.len() % 2 != 0 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!(
            "{name}: {value:?} is not 0x followed by whole bytes in hex digits (an even \
             number of 0-9, a-f); to send this text as it is, put it in quotes"
        ));
    }
    Ok(digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ASCII hex digits");
            u8::from_str_radix(pair, 16).expect("two hex digits")
        })
        .collect())
}

fn integer(name: &str, value: &str, names: &[(&str, u32)]) -> Result<u32, String> {
    if let Ok(n) = value.parse::<u32>() {
        return Ok(n);
    }
    names
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(value))
        .map(|&(_, v)| v)
        .ok_or_else(|| {
            // "4294967296" is a number, just not one an attribute's four octets hold.
            let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            if known.is_empty() {
                format!("{name}: {value:?} is not a number from 0 to {}", u32::MAX)
            } else {
                format!(
                    "{name}: {value:?} is not one of {} or a number from 0 to {}",
                    known.join(", "),
                    u32::MAX
                )
            }
        })
}

fn fits(name: &str, typ: u8, value: Vec<u8>) -> Result<ReplyAttr, String> {
    if value.len() > MAX_VALUE {
        return Err(too_long(name, MAX_VALUE));
    }
    Ok(ReplyAttr { typ, value })
}

fn too_long(name: &str, max: usize) -> String {
    format!("{name}: the value is longer than the {max} octets an attribute can carry")
}

fn unknown(name: &str) -> String {
    let standard: Vec<&str> = STANDARD.iter().map(|(n, _, _)| *n).collect();
    let vendor: Vec<&str> = VENDOR.iter().map(|(n, _, _, _)| *n).collect();
    format!(
        "{name:?} is not an attribute radmfa knows: use one of {}, {}, or \
         Vendor-<vendor id>-Attr-<type> for another vendor's string attribute",
        standard.join(", "),
        vendor.join(", ")
    )
}

/// `Vendor-12356-Attr-1`: vendor id and type, for any vendor's string attribute.
fn generic_vendor(name: &str) -> Option<(u32, u8)> {
    let rest = name.strip_prefix("Vendor-")?;
    let (vendor, vtype) = rest.split_once("-Attr-")?;
    let vendor: u32 = vendor.parse().ok()?;
    let vtype: u8 = vtype.parse().ok()?;
    (vendor > 0 && vendor < 1 << 24 && vtype > 0).then_some((vendor, vtype))
}

/// Why `name` is no attribute: [`unknown`], or for `Vendor-<id>-Attr-<type>` with a type
/// past 255, that such a type needs a layout radmfa does not write.
fn not_generic(name: &str) -> String {
    let wide = name
        .strip_prefix("Vendor-")
        .and_then(|r| r.split_once("-Attr-"))
        .and_then(|(_, t)| t.parse::<u32>().ok())
        .is_some_and(|t| t > 255);
    if wide {
        format!(
            "{name:?}: a vendor type past 255 needs a vendor layout with wider types, and \
             radmfa writes a 1-octet type only"
        )
    } else {
        unknown(name)
    }
}

/// Vendors whose attributes are not laid out as RFC 2865 §5.26 suggests (a 1-octet type
/// and a 1-octet length), with FreeRADIUS's dictionary `format=` for each: written as
/// such, their NAS would read the type and length from the wrong octets.
const OTHER_LAYOUT_VENDORS: [(u32, &str); 8] = [
    (54, "2,1"),      // DHCP
    (429, "4,0"),     // USR
    (637, "2,1"),     // Alcatel-ESAM
    (4846, "2,1"),    // Lucent
    (5323, "1,1,c"),  // Telrad (a continuation octet)
    (8164, "2,2"),    // Starent
    (16445, "2,1"),   // Kineto
    (24757, "1,1,c"), // WiMAX (a continuation octet)
];

/// Whether `Vendor-<vendor>-Attr-<vtype>` can be sent as radmfa sends it: as text, in the
/// usual layout. Microsoft's MPPE keys are encrypted with the NAS's secret (RFC 2548),
/// which radmfa does not do: sent plain they would be read as garbage keys.
fn generic_vendor_sendable(name: &str, vendor: u32, vtype: u8) -> Result<(), String> {
    if ENCRYPTED_VENDOR.contains(&(vendor, vtype)) {
        return Err(format!(
            "{name:?} is sent encrypted with the NAS's shared secret (RFC 2548 and its \
             like: the dictionary's encrypt=), which radmfa does not do: the NAS would read a \
             plain value as garbage"
        ));
    }
    if let Some((_, format)) = OTHER_LAYOUT_VENDORS.iter().find(|(v, _)| *v == vendor) {
        return Err(format!(
            "{name:?}: vendor {vendor} lays out its attributes differently (FreeRADIUS's \
             dictionary says format={format}), and radmfa writes a 1-octet type and length \
             only, which its NAS would misread"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_a_length_their_attribute_cannot_have_are_told() {
        let a = |typ: u8, value: &[u8]| ReplyAttr {
            typ,
            value: value.to_vec(),
        };
        assert!(a(27, &[0, 0, 0, 5]).well_formed(), "Session-Timeout");
        assert!(!a(27, &[0, 5]).well_formed());
        assert!(!a(27, &[0; 8]).well_formed());
        assert!(a(8, &[10, 0, 0, 1]).well_formed(), "Framed-IP-Address");
        assert!(!a(8, &[10, 0, 0]).well_formed());
        assert!(!a(25, &[]).well_formed(), "an empty Class");
        assert!(a(25, b"x").well_formed());
        assert!(!a(168, &[0; 4]).well_formed(), "Framed-IPv6-Address");
        assert!(a(168, &[0; 16]).well_formed());
        assert!(
            a(200, b"anything").well_formed(),
            "a type radmfa knows nothing of"
        );
        assert!(!a(12, &[5, 220]).well_formed(), "Framed-MTU");
        assert!(!a(23, &[1, 2]).well_formed(), "Framed-IPX-Network");
        assert!(a(85, &[0, 0, 1, 44]).well_formed(), "Acct-Interim-Interval");
        assert!(!a(85, &[1, 44]).well_formed());
        assert_eq!(a(8, &[10, 0, 0]).name(), "Framed-IP-Address");
        // CP-Gaia-SuperUser-Access: a vendor integer.
        let vsa = |data: &[u8]| {
            let mut v = 2620u32.to_be_bytes().to_vec();
            v.extend([230, 2 + data.len() as u8]);
            v.extend(data);
            a(26, &v)
        };
        assert!(vsa(&[0, 0, 0, 1]).well_formed());
        assert!(!vsa(&[1]).well_formed());
        assert_eq!(vsa(&[1]).data_len(), 1);
    }

    #[test]
    fn standard_attributes_by_name_and_value() {
        let class = ReplyAttr::parse("Class = \"OU=vpn-admins;\"").unwrap();
        assert_eq!(
            (class.typ, class.value.as_slice()),
            (25, &b"OU=vpn-admins;"[..])
        );
        let unquoted = ReplyAttr::parse("Class = OU=Engineering;").unwrap();
        assert_eq!(unquoted.value, b"OU=Engineering;", "split at the first =");
        // FreeRADIUS's single quotes are quotes too, not part of the group name.
        let single = ReplyAttr::parse("Fortinet-Group-Name = 'vpn admins'").unwrap();
        assert!(
            single.value.ends_with(b"\x0cvpn admins"),
            "{:?}",
            single.value
        );
        let half = ReplyAttr::parse("Class = 'OU=x").unwrap();
        assert_eq!(half.value, b"'OU=x", "one quote alone is the value's own");
        let st = ReplyAttr::parse("service-type=Administrative-User").unwrap();
        assert_eq!((st.typ, st.value), (6, vec![0, 0, 0, 6]));
        let to = ReplyAttr::parse("Session-Timeout = 28800").unwrap();
        assert_eq!((to.typ, to.value), (27, 28_800u32.to_be_bytes().to_vec()));
    }

    /// FreeRADIUS's operators, copied from a users file, are refused with the spec to
    /// write: `==` and `=~` went on the wire as "= vpn-admins" and "~ restricted", and `:=`
    /// was "not an attribute radmfa knows: use one of … Session-Timeout". A value that
    /// holds = or ~ further on, or quoted, is a value.
    #[test]
    fn freeradius_operators_are_refused_with_the_spec_to_write() {
        for (spec, write) in [
            (
                "Fortinet-Group-Name == vpn-admins",
                "Fortinet-Group-Name = vpn-admins",
            ),
            ("Filter-Id =~ restricted", "Filter-Id = restricted"),
            ("Session-Timeout := 3600", "Session-Timeout = 3600"),
            (
                "Cisco-AVPair += shell:priv-lvl=15",
                "Cisco-AVPair = shell:priv-lvl=15",
            ),
        ] {
            let e = ReplyAttr::parse(spec).unwrap_err();
            assert!(
                e.contains("FreeRADIUS operator") && e.contains(&format!("write \"{write}\"")),
                "{spec}: {e}"
            );
        }
        assert!(ReplyAttr::parse("Class = \"=x\"").is_ok());
        assert!(ReplyAttr::parse("Cisco-AVPair = ip:addr~x=1").is_ok());
    }

    /// Class is octets: `0x` and hex digits are its bytes, as FreeRADIUS writes it and
    /// `radclient -x` (and `client login`) show it; quoted, or not hex, it is text.
    /// A vendor attribute written by number is octets, as FreeRADIUS takes it: unquoted
    /// 0x and hex digits are those bytes; text, or a quoted value, is sent as written.
    #[test]
    fn a_generic_vendor_attribute_in_hex_is_its_bytes() {
        let data = |spec: &str| ReplyAttr::parse(spec).map(|a| a.value[VSA_HEADER..].to_vec());
        assert_eq!(data("Vendor-99999-Attr-7 = 0x41ff"), Ok(vec![0x41, 0xff]));
        assert_eq!(data("Vendor-99999-Attr-7 = \"0x41\""), Ok(b"0x41".to_vec()));
        assert_eq!(
            data("Vendor-99999-Attr-7 = vpn-admins"),
            Ok(b"vpn-admins".to_vec())
        );
        let e = data("Vendor-99999-Attr-7 = 0x4").unwrap_err();
        assert!(e.contains("put it in quotes"), "{e}");
        // A vendor attribute radmfa knows by name keeps its kind written by number.
        assert_eq!(data("Vendor-12356-Attr-1 = 0x41"), Ok(b"0x41".to_vec()));
    }

    #[test]
    fn a_class_in_hex_is_its_bytes() {
        let class = |spec: &str| ReplyAttr::parse(spec).map(|a| (a.typ, a.value));
        assert_eq!(
            class("Class = 0x4f553d456e67696e656572696e673b"),
            Ok((25, b"OU=Engineering;".to_vec()))
        );
        assert_eq!(class("Class = 0X00ff"), Ok((25, vec![0, 0xff])));
        assert_eq!(class("Class = \"0x4f55\""), Ok((25, b"0x4f55".to_vec())));
        assert_eq!(class("Class = OU=x;"), Ok((25, b"OU=x;".to_vec())));
        for bad in ["Class = 0x4f5", "Class = 0x4g55", "Class = 0x"] {
            let e = class(bad).unwrap_err();
            assert!(
                e.starts_with("Class: ") && e.contains("put it in quotes"),
                "{bad}: {e}"
            );
        }
        // Shown back as configured: the text again.
        let a = ReplyAttr::parse("Class = 0x4f553d783b").unwrap();
        assert_eq!(shown(a.typ, &a.value), "Class = \"OU=x;\"");
        // Text attributes take 0x as text (FreeRADIUS's string type does too).
        let f = ReplyAttr::parse("Filter-Id = 0x41").unwrap();
        assert_eq!(f.value, b"0x41");
        let long = format!("Class = 0x{}", "ab".repeat(254));
        assert!(class(&long).unwrap_err().contains("longer than"));
        assert!(class(&format!("Class = 0x{}", "ab".repeat(253))).is_ok());
    }

    #[test]
    fn pass_through_names_match_attributes_as_sent() {
        let class = AttrKey::by_name("class").unwrap();
        assert_eq!(class, AttrKey::Standard(25));
        assert!(class.matches(25, b"x") && !class.matches(11, b"x"));
        assert_eq!(
            AttrKey::by_name("Framed-IP-Address"),
            Ok(AttrKey::Standard(8))
        );
        assert_eq!(AttrKey::by_name("Attr-89"), Ok(AttrKey::Standard(89)));
        let forti = AttrKey::by_name("Fortinet-Group-Name").unwrap();
        let sent = ReplyAttr::parse("Fortinet-Group-Name = admins").unwrap();
        assert!(forti.matches(sent.typ, &sent.value));
        let other = ReplyAttr::parse("Fortinet-Access-Profile = x").unwrap();
        assert!(!forti.matches(other.typ, &other.value));
        assert!(!forti.matches(26, &[0, 0, 0x30]), "short VSA");
        // Two vendor attributes packed in one Vendor-Specific: the named one first, an
        // access profile nobody named after it. Not passed on.
        let profile = ReplyAttr::parse("Fortinet-Access-Profile = super_admin").unwrap();
        let mut packed = sent.value.clone();
        packed.extend_from_slice(&profile.value[4..]);
        assert!(!forti.matches(26, &packed), "packed VSA");
        // A sub-attribute length that disagrees with the attribute's is not one either.
        let mut short = sent.value.clone();
        short[5] -= 1;
        assert!(!forti.matches(26, &short));
        for bad in [
            "State",
            "Attr-80",
            "Attr-26",
            "Proxy-State",
            "Attr-0",
            "Nope",
        ] {
            assert!(AttrKey::by_name(bad).is_err(), "{bad}");
        }
        for encrypted in [
            "Attr-69",
            "Vendor-311-Attr-12",
            "Vendor-311-Attr-16",
            "Vendor-311-Attr-17",
            // Aruba-MPSK-Passphrase, Ascend-Send-Secret: not Microsoft's, as hidden.
            "Vendor-14823-Attr-44",
            "Vendor-529-Attr-214",
        ] {
            let err = AttrKey::by_name(encrypted).unwrap_err();
            assert!(err.contains("encrypted"), "{encrypted}: {err}");
        }
        assert!(AttrKey::by_name("Vendor-311-Attr-25").is_ok());
        // Each refusal says why.
        for (bad, why) in [
            ("Attr-33", "belongs to the exchange"),
            ("Attr-24", "belongs to the exchange"),
            ("Attr-80", "signs the exchange"),
            ("Attr-26", "name the vendor attribute"),
            ("Attr-79", "EAP"),
            ("Attr-2", "a password"),
        ] {
            let err = AttrKey::by_name(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn vendor_attributes_are_wrapped_in_vendor_specific() {
        let f = ReplyAttr::parse("Fortinet-Group-Name = vpn-admins").unwrap();
        assert_eq!(f.typ, 26);
        let mut want = 12356u32.to_be_bytes().to_vec();
        want.extend_from_slice(&[1, 2 + 10]);
        want.extend_from_slice(b"vpn-admins");
        assert_eq!(f.value, want);
        for (bad, why) in [
            (
                "Vendor-311-Attr-16 = key",
                "encrypted with the NAS's shared secret",
            ),
            (
                "Vendor-311-Attr-12 = key",
                "encrypted with the NAS's shared secret",
            ),
            ("Vendor-4846-Attr-1 = x", "format=2,1"),
            ("Vendor-429-Attr-1 = x", "format=4,0"),
            ("Vendor-24757-Attr-1 = x", "format=1,1,c"),
            ("Vendor-9-Attr-256 = x", "vendor type past 255"),
        ] {
            let err = ReplyAttr::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(ReplyAttr::parse("Vendor-311-Attr-25 = x").is_ok());
        let g = ReplyAttr::parse("Vendor-12356-Attr-1 = vpn-admins").unwrap();
        assert_eq!(g, f, "the generic spelling encodes the same");
    }

    /// Check Point's and SonicWall's integer attributes go as four octets, by number or by
    /// FreeRADIUS's value name; the generic spelling would send the digits as text.
    #[test]
    fn vendor_integer_attributes_are_four_octets() {
        let vsa = |vendor: u32, vtype: u8, data: &[u8]| {
            let mut v = vendor.to_be_bytes().to_vec();
            v.extend_from_slice(&[vtype, 2 + data.len() as u8]);
            v.extend_from_slice(data);
            v
        };
        let su = ReplyAttr::parse("CP-Gaia-SuperUser-Access = 1").unwrap();
        assert_eq!((su.typ, &su.value), (26, &vsa(2620, 230, &[0, 0, 0, 1])));
        let by_number = ReplyAttr::parse("Vendor-2620-Attr-230 = 1").unwrap();
        assert_eq!(by_number, su, "the generic spelling of a known integer");
        let text = ReplyAttr::parse("Vendor-2620-Attr-231 = 1").unwrap();
        assert_eq!(text.value, vsa(2620, 231, b"1"), "an unknown one is text");
        let e = ReplyAttr::parse("CP-Gaia-SuperUser-Access = 4294967296").unwrap_err();
        assert!(e.contains("from 0 to 4294967295"), "{e}");
        let named = ReplyAttr::parse("SonicWall-User-Privilege = Access-To-VPN").unwrap();
        assert_eq!(named.value, vsa(8741, 1, &[0, 0, 0, 4]));
        let role = ReplyAttr::parse("CP-Gaia-User-Role = adminRole").unwrap();
        assert_eq!(role.value, vsa(2620, 229, b"adminRole"));
        let e = ReplyAttr::parse("CP-Gaia-SuperUser-Access = yes").unwrap_err();
        assert!(e.contains("is not a number"), "{e}");
        // Passed through from an upstream server by name too.
        assert_eq!(
            AttrKey::by_name("Citrix-User-Groups").unwrap(),
            AttrKey::Vendor(66, 16)
        );
    }

    /// What `client login` prints of an Access-Accept: names and values as configured.
    #[test]
    fn ipv6_addressing_attributes_go_as_the_rfcs_lay_them_out() {
        let a = |spec: &str| {
            let r = ReplyAttr::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            (r.typ, r.value)
        };
        // RFC 3162 §2.3: reserved 0, the length, the octets the length covers.
        assert_eq!(
            a("Framed-IPv6-Prefix = 2001:db8::/64"),
            (97, vec![0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0])
        );
        assert_eq!(
            a("Delegated-IPv6-Prefix = \"2001:db8:1200::/40\""),
            (123, vec![0, 40, 0x20, 0x01, 0x0d, 0xb8, 0x12])
        );
        assert_eq!(a("Framed-IPv6-Prefix = ::/0"), (97, vec![0, 0]));
        let mut host = vec![0, 128];
        host.extend_from_slice(
            &"2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        assert_eq!(a("framed-ipv6-prefix = 2001:db8::7/128"), (97, host));
        assert_eq!(
            a("Framed-Interface-Id = 0:0:0:1"),
            (96, vec![0, 0, 0, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            a("Framed-Interface-Id = 21a:2bff:fe3c:4d5e").1,
            [0x02, 0x1a, 0x2b, 0xff, 0xfe, 0x3c, 0x4d, 0x5e]
        );
        let dns = a("DNS-Server-IPv6-Address = 2001:db8::53");
        assert_eq!((dns.0, dns.1.len(), dns.1[15]), (169, 16, 0x53));
        assert_eq!(a("Framed-IPv6-Address = ::1").0, 168);
        assert_eq!(
            a("Framed-IPv6-Pool = v6-users"),
            (100, b"v6-users".to_vec())
        );
        assert_eq!(a("Delegated-IPv6-Prefix-Pool = pd").0, 171);
        assert_eq!(a("Framed-IPv6-Route = \"2001:db8:5::/48 :: 1\"").0, 99);
        for (bad, says) in [
            ("Framed-IPv6-Prefix = 2001:db8::", "is not an IPv6 prefix"),
            ("Framed-IPv6-Prefix = 10.0.0.0/8", "is not an IPv6 prefix"),
            (
                "Framed-IPv6-Prefix = 2001:db8::/129",
                "is not an IPv6 prefix",
            ),
            ("Framed-IPv6-Prefix = 2001:db8::1/64", "write 2001:db8::/64"),
            ("Delegated-IPv6-Prefix = pool", "is not an IPv6 prefix"),
            (
                "Framed-IPv6-Address = 2001:db8::/64",
                "is not an IPv6 address",
            ),
            (
                "DNS-Server-IPv6-Address = 10.0.0.53",
                "is not an IPv6 address",
            ),
            ("Framed-Interface-Id = ::1", "is not an interface id"),
            ("Framed-Interface-Id = 0:0:0:+1", "is not an interface id"),
            (
                "Framed-Interface-Id = 0:0:0:10000",
                "is not an interface id",
            ),
        ] {
            let err = ReplyAttr::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        // Shown by `client login` as configured; a malformed one as its bytes.
        assert_eq!(
            shown(97, &[0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0]),
            "Framed-IPv6-Prefix = 2001:db8::/64"
        );
        assert_eq!(
            shown(96, &[0, 0, 0, 0, 0, 0, 0, 1]),
            "Framed-Interface-Id = 0:0:0:1"
        );
        assert_eq!(
            shown(169, &a("DNS-Server-IPv6-Address = 2001:db8::53").1),
            "DNS-Server-IPv6-Address = 2001:db8::53"
        );
        assert_eq!(shown(97, &[1, 64]), "Framed-IPv6-Prefix = 0x0140");
        // Named in pass_through too, where Attr-100 is Framed-IPv6-Pool.
        assert_eq!(
            AttrKey::by_name("Framed-IPv6-Pool"),
            AttrKey::by_name("Attr-100")
        );
        assert_eq!(
            AttrKey::by_name("Delegated-IPv6-Prefix"),
            Ok(AttrKey::Standard(123))
        );
    }

    #[test]
    fn received_attributes_are_shown_as_configured() {
        let show = |spec: &str| {
            let a = ReplyAttr::parse(spec).unwrap();
            shown(a.typ, &a.value)
        };
        assert_eq!(show("Class = OU=vpn;"), "Class = \"OU=vpn;\"");
        assert_eq!(show("Session-Timeout = 28800"), "Session-Timeout = 28800");
        assert_eq!(
            show("Service-Type = Administrative-User"),
            "Service-Type = Administrative-User"
        );
        assert_eq!(
            show("Fortinet-Group-Name = vpn admins"),
            "Fortinet-Group-Name = \"vpn admins\""
        );
        assert_eq!(
            show("CP-Gaia-SuperUser-Access = 1"),
            "CP-Gaia-SuperUser-Access = 1"
        );
        assert_eq!(show("Vendor-99-Attr-7 = x"), "Vendor-99-Attr-7 = \"x\"");
        assert_eq!(shown(8, &[10, 0, 0, 1]), "Framed-IP-Address = 0x0a000001");
        assert_eq!(shown(98, b"\x1b[2J"), "Attr-98 = 0x1b5b324a");
        assert_eq!(
            shown(98, "\u{202e}x".as_bytes()),
            "Attr-98 = \"\\u{202e}x\""
        );
        // Two vendor attributes packed in one: shown whole, not as the first alone.
        let mut packed = ReplyAttr::parse("Fortinet-Group-Name = a").unwrap().value;
        packed.extend_from_slice(&[1, 3, b'b']);
        assert_eq!(
            shown(26, &packed),
            "Vendor-Specific = 0x00003044010361010362"
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("Class", "is not \"Name = value\""),
            ("Class = ", "has no value"),
            ("Frobnicate = 1", "is not an attribute radmfa knows"),
            ("Service-Type = Superuser", "is not one of Login-User"),
            ("Session-Timeout = forever", "is not a number"),
            ("Vendor-0-Attr-1 = x", "is not an attribute"),
        ] {
            let e = ReplyAttr::parse(spec).unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
        let long = format!("Fortinet-Group-Name = {}", "x".repeat(248));
        assert!(ReplyAttr::parse(&long).unwrap_err().contains("longer than"));
        assert!(ReplyAttr::parse(&format!("Filter-Id = {}", "x".repeat(253))).is_ok());
    }
}
