//! Decoding and authenticating an incoming Access-Request or Status-Server. Attribute parsing
//! and the attribute dictionary come from the `radius` crate; framing checks, the
//! Message-Authenticator rules and the BlastRADIUS (CVE-2024-3596) rules are ours.

use std::fmt;
use std::net::IpAddr;

use ::radius::core::avp::AVP;
use ::radius::core::packet::Packet;
use ::radius::core::{rfc2865, rfc2869, rfc3162};

use super::crypto::{self, HEADER_LEN, MA_LEN, MESSAGE_AUTHENTICATOR};
use super::MAX_PACKET;
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    AccessRequest,
    StatusServer,
}

/// An authenticated request. Built only by [`decode_request`], so holding one means framing,
/// attribute lengths and the Message-Authenticator rules have all been checked.
#[derive(Clone)]
pub struct Request {
    pub kind: RequestKind,
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub has_message_authenticator: bool,
    /// Decoded with an empty secret: the crate would otherwise keep a copy of the shared secret
    /// inside every request. The secret is passed explicitly where it is needed. Visible to
    /// `reply`, which derives the response packet (identifier, authenticator) from it.
    pub(super) packet: Packet,
}

impl fmt::Debug for Request {
    // Hand-written so that no attribute value (User-Password ciphertext, State) reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("kind", &self.kind)
            .field("identifier", &self.identifier)
            .field("has_message_authenticator", &self.has_message_authenticator)
            .finish_non_exhaustive()
    }
}

fn lossy(avp: Option<&AVP>) -> Option<String> {
    avp.map(|a| String::from_utf8_lossy(&a.encode_bytes()).into_owned())
}

/// A string attribute that is kept (in audit records, remembered stations) as text without
/// NULs. Some NAS end their strings with a NUL although RFC 2865 §5 says not to; those are
/// dropped, so `00-11-22-33-44-55\0` is the station `00-11-22-33-44-55`. A NUL inside
/// becomes U+FFFD: PostgreSQL refuses NUL in text, and the login would fail there only.
/// (User-Name loses only its trailing NULs, as such a NAS sends them: a name holding one
/// inside is refused.)
fn text(avp: Option<&AVP>) -> Option<String> {
    lossy(avp).map(|s| {
        let s = s.trim_end_matches('\0');
        if s.contains('\0') {
            s.replace('\0', "\u{FFFD}")
        } else {
            s.to_string()
        }
    })
}

impl Request {
    /// Without the trailing NULs some NAS end their strings with (they refused every login
    /// from such a NAS, as names with control characters); a NUL inside stays, to be refused.
    pub fn user_name(&self) -> Option<String> {
        lossy(self.packet.lookup(rfc2865::USER_NAME_TYPE)).map(|mut s| {
            let kept = s.trim_end_matches('\0').len();
            s.truncate(kept);
            s
        })
    }

    /// RFC 2865 §5.2 decryption. The crate accepts any length from 16 to 128; we also insist on
    /// a multiple of 16, since "the String field is between 16 and 128 octets long, inclusive"
    /// and the cipher works in 16-octet blocks: anything else was not produced by a NAS.
    pub fn user_password(&self, secret: &[u8]) -> Option<Secret> {
        let avp = self.packet.lookup(rfc2865::USER_PASSWORD_TYPE)?;
        let len = avp.encode_bytes().len();
        if !(16..=128).contains(&len) || len % 16 != 0 {
            return None;
        }
        avp.encode_user_password(secret, &self.authenticator)
            .ok()
            .map(Secret::new)
    }

    /// The User-Password attribute's length as sent (whether or not it is one
    /// [`Request::user_password`] accepts).
    pub fn user_password_len(&self) -> Option<usize> {
        self.packet
            .lookup(rfc2865::USER_PASSWORD_TYPE)
            .map(|a| a.encode_bytes().len())
    }

    pub fn state(&self) -> Option<Vec<u8>> {
        rfc2865::lookup_state(&self.packet)
    }

    /// In packet order, which RFC 2865 §5 requires be kept: "the order of Attributes with the
    /// same Type MUST be preserved by any proxies".
    pub fn proxy_states(&self) -> Vec<Vec<u8>> {
        rfc2865::lookup_all_proxy_state(&self.packet)
    }

    pub fn nas_identifier(&self) -> Option<String> {
        text(self.packet.lookup(rfc2865::NAS_IDENTIFIER_TYPE))
    }

    /// NAS-IP-Address (4), else NAS-IPv6-Address (95); a value of the wrong size counts as absent.
    pub fn nas_ip_address(&self) -> Option<IpAddr> {
        let v4 = rfc2865::lookup_nas_ip_address(&self.packet).and_then(Result::ok);
        v4.map(IpAddr::V4).or_else(|| {
            rfc3162::lookup_nas_ipv6_address(&self.packet)
                .and_then(Result::ok)
                .map(IpAddr::V6)
        })
    }

    /// `None` for an empty (or blank) one too: a NAS's empty attribute names no station,
    /// and the audit's client_ip then falls back to the NAS's address as for none (it was
    /// "", so such logins fell out of `audit --client-ip` and `--count-by client-ip`).
    pub fn calling_station_id(&self) -> Option<String> {
        text(self.packet.lookup(rfc2865::CALLING_STATION_ID_TYPE)).filter(|s| !s.trim().is_empty())
    }

    pub fn called_station_id(&self) -> Option<String> {
        text(self.packet.lookup(rfc2865::CALLED_STATION_ID_TYPE))
    }

    pub fn nas_port_type(&self) -> Option<u32> {
        rfc2865::lookup_nas_port_type(&self.packet).and_then(Result::ok)
    }

    /// The first attribute of type `typ`, as sent: for forwarding it unchanged.
    pub fn raw_attribute(&self, typ: u8) -> Option<Vec<u8>> {
        self.packet.lookup(typ).map(AVP::encode_bytes)
    }

    pub fn has_chap_password(&self) -> bool {
        self.packet.lookup(rfc2865::CHAP_PASSWORD_TYPE).is_some()
    }

    /// MS-CHAP-Response or MS-CHAP2-Response (Microsoft's vendor attributes 1 and 25,
    /// RFC 2548): what ASA with password-management, FortiGate's `auth-type auto` and NPS
    /// proxies send instead of User-Password.
    pub fn has_ms_chap_response(&self) -> bool {
        self.has_microsoft(&[MS_CHAP_RESPONSE, MS_CHAP2_RESPONSE])
    }

    /// Whether the request carries a credential of any kind other than User-Password: CHAP,
    /// EAP, any part of an MS-CHAP exchange (RFC 2548: the responses, MS-CHAP-Challenge, and
    /// the password-change attributes CPW-1/2, MS-CHAP2-CPW, NT/LM-Enc-PW, which come
    /// without a response), ARAP-Password (RFC 2869) or HTTP Digest (RFC 5090). None of
    /// these can carry a code, and a second-factor-only client must not take any of them
    /// for a request that brings no password.
    pub fn carries_other_credentials(&self) -> bool {
        const ARAP_PASSWORD: u8 = 70;
        const DIGEST_RESPONSE: u8 = 103;
        const DIGEST_ATTRIBUTES: u8 = 104;
        self.has_chap_password()
            || self.has_eap_message()
            || [ARAP_PASSWORD, DIGEST_RESPONSE, DIGEST_ATTRIBUTES]
                .iter()
                .any(|t| self.packet.lookup(*t).is_some())
            || self.has_microsoft(&[
                MS_CHAP_RESPONSE,
                3,  // MS-CHAP-CPW-1
                4,  // MS-CHAP-CPW-2
                5,  // MS-CHAP-LM-Enc-PW
                6,  // MS-CHAP-NT-Enc-PW
                11, // MS-CHAP-Challenge
                MS_CHAP2_RESPONSE,
                27, // MS-CHAP2-CPW
            ])
    }

    /// Whether a Microsoft (vendor 311) sub-attribute of one of `types` is present.
    fn has_microsoft(&self, types: &[u8]) -> bool {
        const MICROSOFT: u32 = 311;
        self.packet.lookup_all(26).iter().any(|avp| {
            let v = avp.encode_bytes();
            if v.len() < 4 || u32::from_be_bytes([v[0], v[1], v[2], v[3]]) != MICROSOFT {
                return false;
            }
            // Sub-attributes: type, length (including these two bytes), value.
            let mut rest = &v[4..];
            while rest.len() >= 2 {
                let (typ, len) = (rest[0], usize::from(rest[1]));
                if types.contains(&typ) {
                    return true;
                }
                if len < 2 || len > rest.len() {
                    return false;
                }
                rest = &rest[len..];
            }
            false
        })
    }

    pub fn has_eap_message(&self) -> bool {
        self.packet.lookup(rfc2869::EAP_MESSAGE_TYPE).is_some()
    }
}

/// RFC 2548 MS-CHAP-Response and MS-CHAP2-Response.
const MS_CHAP_RESPONSE: u8 = 1;
const MS_CHAP2_RESPONSE: u8 = 25;

/// Why a datagram was silently discarded. Every variant means "drop, do not answer".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("datagram of {0} octets is shorter than the 20-octet header")]
    TooShort(usize),
    #[error("Length field {0} is outside 20..=4096")]
    InvalidLength(usize),
    #[error("Length field says {header} octets but the datagram has {actual}")]
    LengthMismatch { header: usize, actual: usize },
    #[error("malformed attributes: {0}")]
    Malformed(String),
    #[error("{}", not_a_request(*.0))]
    NotARequest(u8),
    #[error("Message-Authenticator required but absent")]
    MissingMessageAuthenticator,
    #[error("Message-Authenticator does not verify")]
    BadMessageAuthenticator,
    #[error("Message-Authenticator value has {0} octets instead of 16")]
    InvalidMessageAuthenticatorLength(usize),
    #[error("more than one Message-Authenticator")]
    DuplicateMessageAuthenticator,
    #[error("Proxy-State present without Message-Authenticator")]
    ProxyStateWithoutMessageAuthenticator,
    #[error("EAP-Message present without Message-Authenticator")]
    EapWithoutMessageAuthenticator,
    /// A verified request with a State of no octets: one NAS's bad attribute, which a proxy
    /// passes on unchanged; counted as malformed.
    #[error("malformed attributes: empty State")]
    EmptyState,
}

/// What a packet of `code` is, and where it should have gone, for the admin reading why it
/// was dropped: "code 4" alone does not say that the NAS sent its accounting here.
fn not_a_request(code: u8) -> String {
    let (name, advice) = match code {
        4 => (
            "an Accounting-Request",
            "radmfa does no accounting; send it to an accounting server",
        ),
        40 => (
            "a Disconnect-Request",
            "radmfa takes no dynamic authorization",
        ),
        43 => ("a CoA-Request", "radmfa takes no dynamic authorization"),
        2 => (
            "an Access-Accept",
            "a reply, sent here as if it were a request",
        ),
        3 => (
            "an Access-Reject",
            "a reply, sent here as if it were a request",
        ),
        11 => (
            "an Access-Challenge",
            "a reply, sent here as if it were a request",
        ),
        _ => ("a packet", "no RADIUS request radmfa knows"),
    };
    format!("{name} (code {code}): {advice}")
}

impl DecodeError {
    /// Stable snake_case label for metrics counters.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::TooShort(_) => "too_short",
            DecodeError::InvalidLength(_) => "invalid_length",
            DecodeError::LengthMismatch { .. } => "length_mismatch",
            DecodeError::Malformed(_) | DecodeError::EmptyState => "malformed",
            DecodeError::NotARequest(_) => "not_a_request",
            DecodeError::MissingMessageAuthenticator => "missing_message_authenticator",
            DecodeError::BadMessageAuthenticator => "bad_message_authenticator",
            DecodeError::InvalidMessageAuthenticatorLength(_) => {
                "invalid_message_authenticator_length"
            }
            DecodeError::DuplicateMessageAuthenticator => "duplicate_message_authenticator",
            DecodeError::ProxyStateWithoutMessageAuthenticator => {
                "proxy_state_without_message_authenticator"
            }
            DecodeError::EapWithoutMessageAuthenticator => "eap_without_message_authenticator",
        }
    }
}

/// Decodes and authenticates one datagram. `require_message_authenticator` is the per-client
/// "require Message-Authenticator" flag of draft-ietf-radext-deprecating-radius (BlastRADIUS).
pub fn decode_request(
    raw: &[u8],
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<Request, DecodeError> {
    decode_request_over(raw, secret, require_message_authenticator, false)
}

/// [`decode_request`] for a packet that came `over_tls` (RadSec) or over UDP. Over TLS a
/// request with Proxy-State needs no Message-Authenticator unless the client requires one:
/// the rule against it is for UDP, where a man in the middle can add the MD5 collision
/// blocks (BlastRADIUS) in a Proxy-State; TLS lets no one but the peer add anything. An
/// older proxy (FreeRADIUS before 3.2.5) adds Proxy-State without signing.
pub fn decode_request_over(
    raw: &[u8],
    secret: &[u8],
    require_message_authenticator: bool,
    over_tls: bool,
) -> Result<Request, DecodeError> {
    // RFC 2865 §3: "Octets outside the range of the Length field MUST be treated as padding and
    // ignored on reception. If the packet is shorter than the Length field indicates, it MUST
    // be silently discarded. The minimum length is 20 and maximum length is 4096."
    if raw.len() < HEADER_LEN {
        return Err(DecodeError::TooShort(raw.len()));
    }
    let header = u16::from_be_bytes([raw[2], raw[3]]) as usize;
    if !(HEADER_LEN..=MAX_PACKET).contains(&header) {
        return Err(DecodeError::InvalidLength(header));
    }
    if header > raw.len() {
        return Err(DecodeError::LengthMismatch {
            header,
            actual: raw.len(),
        });
    }
    let pkt = &raw[..header];

    let kind = match pkt[0] {
        1 => RequestKind::AccessRequest,
        12 => RequestKind::StatusServer,
        code => return Err(DecodeError::NotARequest(code)),
    };
    // The crate checks every attribute length (2..=255, no overrun) and never panics on them.
    let packet = Packet::decode(pkt, &[]).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let spans = crypto::attribute_spans(&pkt[HEADER_LEN..])
        .ok_or_else(|| DecodeError::Malformed("attribute lengths".into()))?;

    let mut mas = spans.iter().filter(|s| s.typ == MESSAGE_AUTHENTICATOR);
    let ma = mas.next();
    // RFC 2869 §5.19 / RFC 3579 §3.3 tables: Message-Authenticator may appear "0-1" times.
    if mas.next().is_some() {
        return Err(DecodeError::DuplicateMessageAuthenticator);
    }
    match ma {
        Some(span) => {
            // RFC 3579 §3.2: Message-Authenticator "Length 18", i.e. a 16-octet String.
            if span.value.len() != MA_LEN {
                return Err(DecodeError::InvalidMessageAuthenticatorLength(
                    span.value.len(),
                ));
            }
            // RFC 3579 §3.2: "A RADIUS server receiving an Access-Request with a
            // Message-Authenticator attribute present MUST calculate the correct value of the
            // Message-Authenticator and silently discard the packet if it does not match the
            // value sent." Requests carry their own Request Authenticator in the header.
            let value = HEADER_LEN + span.value.start..HEADER_LEN + span.value.end;
            let mut zeroed = pkt.to_vec();
            zeroed[value.clone()].fill(0);
            if !crypto::ct_eq(&crypto::message_authenticator(&zeroed, secret), &pkt[value]) {
                return Err(DecodeError::BadMessageAuthenticator);
            }
        }
        // RFC 5997 §3 requires a Message-Authenticator in every Status-Server packet and that
        // packets lacking one be silently discarded; no client flag can relax this.
        None if kind == RequestKind::StatusServer => {
            return Err(DecodeError::MissingMessageAuthenticator)
        }
        // draft-ietf-radext-deprecating-radius, "limit Proxy-State": 'RADIUS servers MUST
        // require that all Access-Request packets which contain a Proxy-State attribute also
        // contain a Message-Authenticator attribute.' Proxy-State is the attacker's vehicle
        // for the MD5 collision blocks. Asked before the client's flag: refused whatever it
        // says, so the drop must not be put down to the flag (whose log line advises turning
        // it off, which cannot help an NPS that forwards for RD Gateway).
        None if !over_tls && spans.iter().any(|s| s.typ == rfc2865::PROXY_STATE_TYPE) => {
            return Err(DecodeError::ProxyStateWithoutMessageAuthenticator)
        }
        // Same draft: 'When this flag is set to "true", all Access-Request packets which do
        // not contain Message-Authenticator MUST be silently discarded.'
        None if require_message_authenticator => {
            return Err(DecodeError::MissingMessageAuthenticator)
        }
        // Over TLS it may come unsigned, but its reply must still hold every Proxy-State and
        // the Message-Authenticator radmfa adds: Proxy-States that leave no room for it
        // could not be answered (`reply::encode_reply`), so the request is refused here.
        None if spans
            .iter()
            .filter(|s| s.typ == rfc2865::PROXY_STATE_TYPE)
            .map(|s| 2 + s.value.len())
            .sum::<usize>()
            > MAX_PACKET - HEADER_LEN - 18 =>
        {
            return Err(DecodeError::ProxyStateWithoutMessageAuthenticator)
        }
        // RFC 3579 §3.1: "the Message-Authenticator attribute MUST be used to protect all
        // Access-Request, Access-Challenge, Access-Accept, and Access-Reject packets containing
        // an EAP-Message attribute."
        None if spans.iter().any(|s| s.typ == rfc2869::EAP_MESSAGE_TYPE) => {
            return Err(DecodeError::EapWithoutMessageAuthenticator)
        }
        None => {}
    }

    // RFC 2865 §5.24: State "Length >= 3", i.e. at least one octet. An empty State would be
    // looked up as a (never-issued) challenge; refuse the packet as malformed instead.
    if spans
        .iter()
        .any(|s| s.typ == rfc2865::STATE_TYPE && s.value.is_empty())
    {
        return Err(DecodeError::EmptyState);
    }

    if let Some(why) = contradictory(&spans) {
        return Err(DecodeError::Malformed(why.into()));
    }

    let mut authenticator = [0u8; 16];
    authenticator.copy_from_slice(&pkt[4..HEADER_LEN]);
    Ok(Request {
        kind,
        identifier: pkt[1],
        authenticator,
        has_message_authenticator: ma.is_some(),
        packet,
    })
}

/// Why a verified request cannot be taken at its word, if it cannot. radmfa reads the first
/// User-Name and User-Password; a proxy or policy in front that read the last would act on
/// another user than the one radmfa checked. So what RFC 2865 §5.44 allows at most once in
/// an Access-Request (User-Name, User-Password, CHAP-Password, State, Calling-Station-Id)
/// comes once, and of
/// User-Password, CHAP-Password and EAP-Message only one kind (RFC 2865 §5.44 note 1,
/// RFC 3579 §3.3 note 1): a request with a PAP password beside them was answered as PAP.
fn contradictory(spans: &[crypto::Span]) -> Option<&'static str> {
    let count = |typ: u8| spans.iter().filter(|s| s.typ == typ).count();
    for (typ, what) in [
        (rfc2865::USER_NAME_TYPE, "User-Name more than once"),
        (rfc2865::USER_PASSWORD_TYPE, "User-Password more than once"),
        (rfc2865::CHAP_PASSWORD_TYPE, "CHAP-Password more than once"),
        (rfc2865::STATE_TYPE, "State more than once"),
        // It decides exempt_networks and remembered logins: one that read the last would
        // exempt or remember another station than the one radmfa judged.
        (
            rfc2865::CALLING_STATION_ID_TYPE,
            "Calling-Station-Id more than once",
        ),
    ] {
        if count(typ) > 1 {
            return Some(what);
        }
    }
    let kinds = [
        rfc2865::USER_PASSWORD_TYPE,
        rfc2865::CHAP_PASSWORD_TYPE,
        rfc2869::EAP_MESSAGE_TYPE,
    ]
    .into_iter()
    .filter(|&t| count(t) > 0)
    .count();
    (kinds > 1).then_some("more than one of User-Password, CHAP-Password and EAP-Message")
}

/// Fuzz entry point: decode with a fixed secret; whatever decodes must
/// - encode back to the octets it came from and decode again to the same request;
/// - survive being passed on as radmfa passes a request to an upstream server (its octets
///   re-signed under another secret, the password hidden again), arriving unchanged;
/// - yield a reply that verifies and parses back with the same identifier, State and
///   Proxy-States.
#[doc(hidden)]
pub fn fuzz_roundtrip(data: &[u8]) {
    use super::client::parse_reply;
    use super::reply::{encode_reply, Reply};
    const SECRET: &[u8] = b"fuzz-secret";

    let Ok(req) = decode_request(data, SECRET, false) else {
        return;
    };
    fuzz_reencode(
        &data[..usize::from(u16::from_be_bytes([data[2], data[3]]))],
        &req,
        SECRET,
    );
    fuzz_forward(&req, SECRET);
    // Every accessor must cope with whatever decoded.
    let name = req.user_name().unwrap_or_default();
    let _ = (
        req.user_password(SECRET),
        req.nas_identifier(),
        req.nas_ip_address(),
    );
    let _ = (
        req.calling_station_id(),
        req.called_station_id(),
        req.nas_port_type(),
    );
    let _ = (req.has_chap_password(), req.has_eap_message());

    let state = req.state().unwrap_or_else(|| b"fuzz".to_vec());
    let reply = Reply::challenge(state.clone(), name).with_message("x".repeat(600));
    let raw = encode_reply(&req, &reply, SECRET);
    assert!(raw.len() <= MAX_PACKET);
    assert_eq!(
        crypto::verify_reply(&raw, &req.authenticator, SECRET),
        Ok(())
    );
    let parsed = parse_reply(&raw).expect("our own reply parses");
    assert_eq!((parsed.code, parsed.identifier), (11, req.identifier));
    assert_eq!(parsed.attributes[0].0, MESSAGE_AUTHENTICATOR);
    let echoed: Vec<Vec<u8>> = parsed
        .attributes
        .iter()
        .filter(|(t, _)| *t == rfc2865::PROXY_STATE_TYPE)
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(echoed, req.proxy_states());
    // State goes only when it still fits beside the mandatory Message-Authenticator and echoes.
    let states: Vec<&Vec<u8>> = parsed
        .attributes
        .iter()
        .filter(|a| a.0 == 24)
        .map(|a| &a.1)
        .collect();
    let echo_len: usize = echoed.iter().map(|v| v.len() + 2).sum();
    if HEADER_LEN + 2 + MA_LEN + echo_len + 2 + state.len() <= MAX_PACKET {
        assert_eq!(states, vec![&state]);
    }
}

/// Everything radmfa reads from a request, for comparing two decodings of it.
fn fuzz_fields(req: &Request, secret: &[u8]) -> impl PartialEq + fmt::Debug {
    (
        (req.kind, req.identifier, req.authenticator),
        req.has_message_authenticator,
        (
            req.user_name(),
            req.user_password(secret).map(|p| p.expose().to_vec()),
        ),
        (req.state(), req.proxy_states(), req.nas_identifier()),
        (req.nas_ip_address(), req.calling_station_id()),
        (req.called_station_id(), req.nas_port_type()),
        (req.has_chap_password(), req.has_ms_chap_response()),
        req.has_eap_message(),
    )
}

/// decode → encode → decode: the crate writes back exactly the octets it read (attributes
/// in order, none lost, merged or split), and they decode, verify and read the same again,
/// under the strictest client setting too when a Message-Authenticator came with them.
fn fuzz_reencode(pkt: &[u8], req: &Request, secret: &[u8]) {
    let encoded = req.packet.encode().expect("a decoded request encodes");
    assert_eq!(encoded, pkt, "decode → encode changed the octets");
    let again = decode_request(&encoded, secret, req.has_message_authenticator)
        .expect("a re-encoded request decodes");
    assert_eq!(fuzz_fields(&again, secret), fuzz_fields(req, secret));
    assert!(
        again.packet == req.packet,
        "the two decodings hold different attributes"
    );
}

/// What `primary = "upstream"` sends on (pipeline/primary.rs, auth/upstream.rs): the
/// User-Name's octets, the password hidden under the upstream secret and a new
/// authenticator, NAS-Identifier, and the forwarded NAS attributes. The upstream server
/// must read the same name, password and attributes.
fn fuzz_forward(req: &Request, secret: &[u8]) {
    use super::client::AccessRequestBuilder;
    const UPSTREAM: &[u8] = b"upstream-secret";
    if req.kind != RequestKind::AccessRequest {
        return;
    }
    let (Some(user), Some(password)) = (
        req.raw_attribute(rfc2865::USER_NAME_TYPE),
        req.user_password(secret),
    ) else {
        return;
    };
    // The checks `by_upstream` and `upstream::check` make before building (the builder
    // asserts its limits; an empty password is refused before anything is asked).
    if user.is_empty() || password.is_empty() || password.len() > 128 {
        return;
    }
    let forwarded: Vec<(u8, Vec<u8>)> = crate::auth::upstream::FORWARDED
        .iter()
        .filter_map(|t| Some((*t, req.raw_attribute(*t)?)))
        .collect();
    let mut b = AccessRequestBuilder::with_raw_user(req.identifier, &user)
        .password(password.expose())
        .attribute(rfc2865::NAS_IDENTIFIER_TYPE, b"radmfa");
    for (typ, value) in &forwarded {
        b = b.attribute(*typ, value);
    }
    let (raw, auth) = b.build(UPSTREAM);
    let up = decode_request(&raw, UPSTREAM, true).expect("the forwarded request decodes");
    assert_eq!(up.authenticator, auth);
    assert_eq!(up.raw_attribute(rfc2865::USER_NAME_TYPE), Some(user));
    // RFC 2865 §5.2 pads with NULs, so the decoder stops at the first one: what came out
    // of the NAS's request holds none, and goes on whole.
    let read = up.user_password(UPSTREAM);
    assert_eq!(read.as_ref().map(|p| p.expose()), Some(password.expose()));
    for (typ, value) in &forwarded {
        assert_eq!(up.raw_attribute(*typ).as_ref(), Some(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::client::AccessRequestBuilder;

    const SECRET: &[u8] = b"s3cr3t";
    use DecodeError::*;

    fn decode(raw: &[u8], require: bool) -> Result<Request, DecodeError> {
        decode_request(raw, SECRET, require)
    }

    fn builder() -> AccessRequestBuilder {
        AccessRequestBuilder::new(7, "alice").password(b"pw")
    }

    /// A request that names two users, or carries two passwords or two kinds of password,
    /// is dropped as malformed: radmfa read the first, and a proxy in front that read the
    /// last acted on another user (a red team's find: `User-Name=eve, User-Name=alice`
    /// with eve's password was accepted as eve). One of each still decodes.
    #[test]
    fn repeated_or_contradicting_credentials_are_malformed() {
        let one = builder()
            .attribute(33, b"proxy")
            .attribute(31, b"10.0.0.8")
            .build(SECRET)
            .0;
        decode(&one, true).expect("one of each");
        for (extra, why) in [
            ((1u8, &b"mallory"[..]), "User-Name more than once"),
            ((2, &[7u8; 16][..]), "User-Password more than once"),
            ((24, &b"st"[..]), "State more than once"),
            ((31, &b"10.0.0.9"[..]), "Calling-Station-Id more than once"),
            ((3, &[1u8; 17][..]), "more than one of User-Password"),
            (
                (79, &[2u8, 0, 0, 5, 1][..]),
                "more than one of User-Password",
            ),
        ] {
            let mut b = builder().attribute(extra.0, extra.1);
            if extra.0 == 24 {
                b = b.state(b"s1");
            }
            if extra.0 == 31 {
                b = b.attribute(31, b"10.0.0.8");
            }
            let (raw, _) = b.build(SECRET);
            match decode(&raw, true) {
                Err(Malformed(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{why}: {other:?}"),
            }
        }
    }

    #[test]
    fn rfc2865_7_1_access_request() {
        let raw = hex::decode(
            "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93\
             d413ce3196e43f782a0aee0406c0a80110050600000003",
        )
        .unwrap();
        let req = decode_request(&raw, b"xyzzy5461", false).unwrap();
        assert_eq!((req.kind, req.identifier), (RequestKind::AccessRequest, 0));
        assert!(!req.has_message_authenticator);
        assert_eq!(req.user_name().as_deref(), Some("nemo"));
        assert_eq!(
            req.user_password(b"xyzzy5461").unwrap().expose(),
            b"arctangent"
        );
        assert_eq!(req.nas_ip_address(), Some("192.168.1.16".parse().unwrap()));
        assert_eq!(req.state(), None);
        // The same request is refused once the client must sign its requests.
        assert_eq!(
            decode_request(&raw, b"xyzzy5461", true).unwrap_err(),
            MissingMessageAuthenticator
        );
    }

    /// A NAS that ends its strings with a NUL names the same station as one that does not;
    /// a NUL inside is kept visible but is no NUL (PostgreSQL refuses those in text).
    #[test]
    fn station_and_nas_names_hold_no_nul() {
        let (raw, _) = builder()
            .attribute(31, b"00-11-22-33-44-55\0")
            .attribute(30, b"UserAuthType:PW\0\0")
            .attribute(32, b"vpn\0gw")
            .build(SECRET);
        let req = decode(&raw, true).unwrap();
        assert_eq!(
            req.calling_station_id().as_deref(),
            Some("00-11-22-33-44-55")
        );
        assert_eq!(req.called_station_id().as_deref(), Some("UserAuthType:PW"));
        assert_eq!(req.nas_identifier().as_deref(), Some("vpn\u{FFFD}gw"));
        // The name loses its trailing NULs; one inside stays, to be refused.
        let name = |n: &str| {
            let (raw, _) = AccessRequestBuilder::new(7, n)
                .password(b"pw")
                .build(SECRET);
            decode(&raw, true).unwrap().user_name()
        };
        assert_eq!(name("alice\0").as_deref(), Some("alice"));
        assert_eq!(name("alice\0\0").as_deref(), Some("alice"));
        assert_eq!(name("al\0ice\0").as_deref(), Some("al\0ice"));
    }

    #[test]
    fn blastradius_rules() {
        let unsigned = builder().message_authenticator(false);
        let (raw, _) = unsigned.clone().build(SECRET);
        assert_eq!(decode(&raw, true).unwrap_err(), MissingMessageAuthenticator);
        assert!(decode(&raw, false).is_ok());

        let (raw, _) = unsigned.clone().proxy_state(b"ps").build(SECRET);
        // Refused whatever the client's flag, and said so: not put down to the flag, whose
        // log line advises turning it off (which cannot help a proxy).
        for required in [false, true] {
            assert_eq!(
                decode(&raw, required).unwrap_err(),
                ProxyStateWithoutMessageAuthenticator
            );
        }
        // Over TLS it is taken (no one but the peer can add a Proxy-State) unless the
        // client requires Message-Authenticator, and unless its Proxy-States leave no room
        // for the Message-Authenticator of the reply.
        assert!(decode_request_over(&raw, SECRET, false, true).is_ok());
        assert_eq!(
            decode_request_over(&raw, SECRET, true, true).unwrap_err(),
            MissingMessageAuthenticator
        );
        // Proxy-States of `total` octets (15 of 255, then the rest) in a request with nothing
        // else but a one-letter name: a reply has room for 4058.
        let filled = |total: usize| {
            let mut b = AccessRequestBuilder::new(1, "a").message_authenticator(false);
            for _ in 0..15 {
                b = b.proxy_state(&[7; 253]);
            }
            b.proxy_state(&vec![7; total - 15 * 255 - 2])
                .build(SECRET)
                .0
        };
        let (fits, too_many) = (filled(4058), filled(4059));
        assert!(decode_request_over(&fits, SECRET, false, true).is_ok());
        assert!(too_many.len() <= MAX_PACKET, "{}", too_many.len());
        assert_eq!(
            decode_request_over(&too_many, SECRET, false, true).unwrap_err(),
            ProxyStateWithoutMessageAuthenticator
        );
        let (raw, _) = unsigned
            .clone()
            .attribute(79, &[2, 0, 0, 5, 1])
            .build(SECRET);
        assert_eq!(
            decode(&raw, false).unwrap_err(),
            EapWithoutMessageAuthenticator
        );

        let (raw, _) = builder().attribute(80, &[0; 16]).build(SECRET);
        assert_eq!(
            decode(&raw, false).unwrap_err(),
            DuplicateMessageAuthenticator
        );
        for len in [0, 15, 17] {
            let (raw, _) = unsigned.clone().attribute(80, &vec![0; len]).build(SECRET);
            assert_eq!(
                decode(&raw, false).unwrap_err(),
                InvalidMessageAuthenticatorLength(len)
            );
        }
        let (mut raw, _) = builder().proxy_state(b"ps").build(SECRET);
        raw[30] ^= 0xff; // inside the Message-Authenticator value
        assert_eq!(decode(&raw, false).unwrap_err(), BadMessageAuthenticator);
        assert_eq!(
            decode_request(&raw, b"", false).unwrap_err(),
            BadMessageAuthenticator
        );
    }

    #[test]
    fn labels_are_snake_case() {
        let all = [
            TooShort(0),
            InvalidLength(0),
            LengthMismatch {
                header: 0,
                actual: 0,
            },
            Malformed(String::new()),
            NotARequest(0),
            MissingMessageAuthenticator,
            BadMessageAuthenticator,
            InvalidMessageAuthenticatorLength(0),
            DuplicateMessageAuthenticator,
            ProxyStateWithoutMessageAuthenticator,
            EapWithoutMessageAuthenticator,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(DecodeError::label).collect();
        assert_eq!(labels.len(), all.len());
        assert!(labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }
}
