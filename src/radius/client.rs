//! The NAS side, for integration tests and the load generator: build requests as a NAS would
//! (Message-Authenticator first, RFC 2865 §5.2 password hiding) and take replies apart.
//! No I/O here either.

use ::radius::core::avp::AVP;
use ::radius::core::code::Code;
use ::radius::core::packet::Packet;
use ::radius::core::{rfc2865, rfc2869};

use super::crypto::{self, HEADER_LEN, MA_LEN};

/// Builds an Access-Request. Attribute order: Message-Authenticator (unless disabled), User-Name,
/// User-Password, State, the extra attributes, then Proxy-States, as a proxy would append them.
#[derive(Debug, Clone)]
pub struct AccessRequestBuilder {
    identifier: u8,
    user: Vec<u8>,
    /// A Secret: on the upstream path this is the user's real password.
    password: Option<crate::secret::Secret>,
    state: Option<Vec<u8>>,
    extra: Vec<(u8, Vec<u8>)>,
    proxy_states: Vec<Vec<u8>>,
    message_authenticator: bool,
}

impl AccessRequestBuilder {
    pub fn new(identifier: u8, user: &str) -> Self {
        Self::with_raw_user(identifier, user.as_bytes())
    }

    /// A User-Name as octets, as a NAS sent it: RFC 2865 does not promise UTF-8, and a
    /// proxy passes on what it got rather than a lossy re-encoding of it.
    pub fn with_raw_user(identifier: u8, user: &[u8]) -> Self {
        AccessRequestBuilder {
            identifier,
            user: user.to_vec(),
            password: None,
            state: None,
            extra: Vec::new(),
            proxy_states: Vec::new(),
            // draft-ietf-radext-deprecating-radius: "Clients MUST add Message-Authenticator to
            // all Access-Request packets." Turning it off exists only to test the server's rules.
            message_authenticator: true,
        }
    }

    /// Plain-text password, at most 128 octets (RFC 2865 §5.2).
    pub fn password(mut self, password: &[u8]) -> Self {
        self.password = Some(crate::secret::Secret::new(password));
        self
    }

    pub fn state(mut self, state: &[u8]) -> Self {
        self.state = Some(state.to_vec());
        self
    }

    pub fn proxy_state(mut self, value: &[u8]) -> Self {
        self.proxy_states.push(value.to_vec());
        self
    }

    /// Any raw attribute (value at most 253 octets), e.g. NAS-Identifier or a deliberately
    /// malformed User-Password or second Message-Authenticator for negative tests.
    pub fn attribute(mut self, typ: u8, value: &[u8]) -> Self {
        self.extra.push((typ, value.to_vec()));
        self
    }

    pub fn message_authenticator(mut self, on: bool) -> Self {
        self.message_authenticator = on;
        self
    }

    /// Returns the datagram and its Request Authenticator (random, as RFC 2865 §3 asks).
    ///
    /// # Panics
    /// On misuse only: an empty secret, a password over 128 octets, an attribute value over
    /// 253 octets, or a packet over 4096 octets.
    pub fn build(&self, secret: &[u8]) -> (Vec<u8>, [u8; 16]) {
        // The crate draws the Request Authenticator from rand's thread RNG, and hides the
        // password with it and the secret it holds.
        let mut packet = Packet::new_with_identifier(Code::AccessRequest, secret, self.identifier);
        if self.message_authenticator {
            rfc2869::add_message_authenticator(&mut packet, &[0; MA_LEN]);
        }
        packet.add(AVP::from_bytes(rfc2865::USER_NAME_TYPE, &self.user));
        if let Some(pw) = &self.password {
            rfc2865::add_user_password(&mut packet, pw.expose())
                .expect("password of at most 128 octets");
        }
        if let Some(state) = &self.state {
            rfc2865::add_state(&mut packet, state);
        }
        for (typ, value) in &self.extra {
            packet.add(AVP::from_bytes(*typ, value));
        }
        for ps in &self.proxy_states {
            rfc2865::add_proxy_state(&mut packet, ps);
        }
        sign(packet, self.message_authenticator)
    }
}

/// Encodes a request and, if asked, fills in its first attribute, the zeroed
/// Message-Authenticator, with the HMAC over the whole packet (RFC 3579 §3.2).
fn sign(packet: Packet, with_ma: bool) -> (Vec<u8>, [u8; 16]) {
    let secret = packet.get_secret().clone();
    let mut bytes = packet.encode().expect("request within RADIUS size limits");
    if with_ma {
        let ma = crypto::message_authenticator(&bytes, &secret);
        bytes[HEADER_LEN + 2..HEADER_LEN + 2 + MA_LEN].copy_from_slice(&ma);
    }
    let mut auth = [0u8; 16];
    auth.copy_from_slice(&bytes[4..HEADER_LEN]);
    (bytes, auth)
}

/// A Status-Server probe (RFC 5997) carrying the Message-Authenticator it requires.
pub fn status_server(identifier: u8, secret: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let mut packet = Packet::new_with_identifier(Code::StatusServer, secret, identifier);
    rfc2869::add_message_authenticator(&mut packet, &[0; MA_LEN]);
    sign(packet, true)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReply {
    pub code: u8,
    pub identifier: u8,
    /// Every attribute in packet order.
    pub attributes: Vec<(u8, Vec<u8>)>,
}

/// Splits a datagram into header fields and ordered attributes, checking framing only; use
/// `crypto::verify_reply` for the authenticators. Hand-written because the `radius` crate does
/// not expose its attributes in order.
pub fn parse_reply(raw: &[u8]) -> Option<ParsedReply> {
    let pkt = crypto::framed(raw)?;
    let body = &pkt[HEADER_LEN..];
    let spans = crypto::attribute_spans(body)?;
    Some(ParsedReply {
        code: pkt[0],
        identifier: pkt[1],
        attributes: spans
            .into_iter()
            .map(|s| (s.typ, body[s.value].to_vec()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::request::{decode_request, RequestKind};

    const SECRET: &[u8] = b"xyzzy5461";

    #[test]
    fn a_builders_debug_shows_no_password() {
        let b = AccessRequestBuilder::new(1, "alice").password(b"hunter2");
        let shown = format!("{b:?}");
        assert!(shown.contains("Secret(***)"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("104, 117, 110"),
            "{shown}"
        );
    }

    #[test]
    fn built_request_decodes_with_password_and_message_authenticator() {
        let (raw, auth) = AccessRequestBuilder::new(77, "carol")
            .password(b"correct horse battery staple") // two cipher blocks
            .state(b"st")
            .attribute(32, b"vpn-gw")
            .attribute(31, b"10.0.0.9")
            .attribute(61, &5u32.to_be_bytes())
            .proxy_state(b"p1")
            .proxy_state(b"p2")
            .build(SECRET);
        assert_eq!(&raw[4..20], &auth);
        assert_eq!(&raw[20..22], &[80, 18], "Message-Authenticator first");
        let req = decode_request(&raw, SECRET, true).expect("decodes");
        assert_eq!((req.kind, req.identifier), (RequestKind::AccessRequest, 77));
        assert!(req.has_message_authenticator);
        assert_eq!(req.authenticator, auth);
        assert_eq!(req.user_name().as_deref(), Some("carol"));
        let pw = req.user_password(SECRET).unwrap();
        assert_eq!(pw.expose(), b"correct horse battery staple");
        assert!(req.user_password(b"wrong").unwrap().expose() != pw.expose());
        assert_eq!(req.state(), Some(b"st".to_vec()));
        assert_eq!(req.nas_identifier().as_deref(), Some("vpn-gw"));
        assert_eq!(req.calling_station_id().as_deref(), Some("10.0.0.9"));
        assert_eq!(req.nas_port_type(), Some(5));
        assert_eq!(req.proxy_states(), vec![b"p1".to_vec(), b"p2".to_vec()]);
        assert!(!req.has_chap_password() && !req.has_eap_message());
        assert!(decode_request(&raw, b"other secret", false).is_err());

        // The radius crate's own decoder agrees on the hidden password.
        let p = Packet::decode(&raw, SECRET).unwrap();
        assert_eq!(
            rfc2865::lookup_user_password(&p).unwrap().unwrap(),
            b"correct horse battery staple"
        );
    }

    #[test]
    fn status_server_probe_decodes() {
        let (raw, auth) = status_server(5, SECRET);
        assert_eq!((raw[0], &raw[20..22]), (12, &[80u8, 18][..]));
        let req = decode_request(&raw, SECRET, false).unwrap();
        assert_eq!(
            (req.kind, req.identifier, req.authenticator),
            (RequestKind::StatusServer, 5, auth)
        );
        assert!(
            matches!(decode_request(&raw, b"nope", false), Err(e) if e.label() == "bad_message_authenticator")
        );
    }

    #[test]
    fn builder_without_message_authenticator() {
        let (raw, _) = AccessRequestBuilder::new(1, "d")
            .message_authenticator(false)
            .build(SECRET);
        assert_eq!(raw[20], 1, "User-Name comes first");
        assert!(
            !decode_request(&raw, SECRET, false)
                .unwrap()
                .has_message_authenticator
        );
    }

    #[test]
    fn parse_reply_framing() {
        let mut reply = vec![2, 9, 0, 25];
        reply.extend([0; 16]);
        reply.extend([18, 3, b'x', 33, 2, 0xff, 0xee]); // last two octets are padding
        let p = parse_reply(&reply).unwrap();
        assert_eq!((p.code, p.identifier), (2, 9));
        assert_eq!(p.attributes, vec![(18, b"x".to_vec()), (33, vec![])]);

        assert!(parse_reply(&[]).is_none());
        assert!(parse_reply(&reply[..19]).is_none());
        assert!(parse_reply(&reply[..24]).is_none(), "shorter than Length");
        let mut bad = reply.clone();
        bad[21] = 1; // attribute length 1
        assert!(parse_reply(&bad).is_none());
        bad[21] = 9; // overruns Length
        assert!(parse_reply(&bad).is_none());
        bad[3] = 19;
        assert!(parse_reply(&bad).is_none());
    }
}

/// `decode_request` against builder-made, hand-broken and pseudo-random packets. Kept here,
/// next to the builder they start from, so request.rs stays readable.
#[cfg(test)]
mod decode_tests {
    use super::*;
    use crate::radius::request::{
        decode_request, fuzz_roundtrip, DecodeError, Request, RequestKind,
    };
    use rand::{Rng, RngCore, SeedableRng};
    use std::net::IpAddr;
    use DecodeError::*;

    const SECRET: &[u8] = b"s3cr3t";

    fn decode(raw: &[u8], require: bool) -> Result<Request, DecodeError> {
        decode_request(raw, SECRET, require)
    }

    fn builder() -> AccessRequestBuilder {
        AccessRequestBuilder::new(7, "alice").password(b"pw")
    }

    #[test]
    fn tampering_breaks_the_message_authenticator() {
        let (raw, _) = builder().attribute(95, &[0xfe; 16]).build(SECRET);
        let req = decode(&raw, true).unwrap();
        assert_eq!(req.nas_ip_address(), Some(IpAddr::from([0xfe; 16])));
        for i in [1, 4, 19, 22, 37, raw.len() - 1] {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            assert_eq!(
                decode(&t, false).unwrap_err(),
                BadMessageAuthenticator,
                "byte {i}"
            );
        }
        // Padding beyond Length is ignored, also by the MAC.
        let mut padded = raw.clone();
        padded.extend([0xaa; 7]);
        assert!(decode(&padded, true).is_ok());
    }

    #[test]
    fn status_server_requires_message_authenticator() {
        let mut raw = vec![12, 1, 0, 20];
        raw.extend([9; 16]);
        assert_eq!(
            decode(&raw, false).unwrap_err(),
            MissingMessageAuthenticator
        );
        let (ok, _) = status_server(1, SECRET);
        assert_eq!(decode(&ok, false).unwrap().kind, RequestKind::StatusServer);
    }

    #[test]
    fn malformed_inputs() {
        let (good, _) = builder().build(SECRET);
        let with_len = |len: u16| {
            let mut r = good.clone();
            r[2..4].copy_from_slice(&len.to_be_bytes());
            r
        };
        assert_eq!(decode(&[], false).unwrap_err(), TooShort(0));
        assert_eq!(decode(&good[..19], false).unwrap_err(), TooShort(19));
        let n = good.len();
        assert_eq!(
            decode(&with_len(n as u16 + 1), false).unwrap_err(),
            LengthMismatch {
                header: n + 1,
                actual: n
            }
        );
        assert_eq!(
            decode(&good[..n - 1], false).unwrap_err(),
            LengthMismatch {
                header: n,
                actual: n - 1
            }
        );
        assert_eq!(decode(&with_len(19), false).unwrap_err(), InvalidLength(19));
        assert_eq!(decode(&with_len(0), false).unwrap_err(), InvalidLength(0));
        let mut big = with_len(4097);
        big.resize(5000, 0);
        assert_eq!(decode(&big, false).unwrap_err(), InvalidLength(4097));
        for code in [0, 2, 3, 4, 11, 13, 255] {
            let mut r = good.clone();
            r[0] = code;
            assert_eq!(decode(&r, false).unwrap_err(), NotARequest(code));
        }
        // Attribute length 0, 1, and one that overruns Length.
        for bad_len in [0u8, 1, 200] {
            let mut r = good.clone();
            r[21] = bad_len;
            let err = decode(&r, false).unwrap_err();
            assert!(matches!(err, Malformed(_)), "{bad_len}: {err:?}");
            assert_eq!(err.label(), "malformed");
        }
        // User-Password that is not 16..=128 octets in whole blocks.
        for len in [0, 15, 17, 144] {
            let (raw, _) = AccessRequestBuilder::new(1, "u")
                .attribute(2, &vec![1; len])
                .build(SECRET);
            assert!(
                decode(&raw, true).unwrap().user_password(SECRET).is_none(),
                "{len}"
            );
        }
    }

    #[test]
    fn pseudo_random_inputs_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_4ad1);
        let (signed, _) = builder()
            .proxy_state(b"p")
            .state(b"s")
            .build(b"fuzz-secret");
        let (unsigned, _) = builder()
            .message_authenticator(false)
            .attribute(32, b"nas")
            .build(SECRET);
        let mut decoded = 0;
        for i in 0..6000 {
            let buf = match i % 3 {
                // Pure noise.
                0 => {
                    let mut b = vec![0u8; rng.gen_range(0..300)];
                    rng.fill_bytes(&mut b);
                    b
                }
                // A plausible header with Length fixed up, so the attribute walk is reached.
                1 => {
                    let mut b = vec![0u8; rng.gen_range(20..400)];
                    rng.fill_bytes(&mut b);
                    b[0] = if rng.gen() { 1 } else { 12 };
                    let len = (b.len() - rng.gen_range(0..3).min(b.len() - 20)) as u16;
                    b[2..4].copy_from_slice(&len.to_be_bytes());
                    b
                }
                // Valid requests with a few octets mutated.
                _ => {
                    let mut b = if rng.gen() {
                        signed.clone()
                    } else {
                        unsigned.clone()
                    };
                    for _ in 0..rng.gen_range(0..4) {
                        let at = rng.gen_range(0..b.len());
                        b[at] = rng.gen();
                    }
                    b
                }
            };
            if decode_request(&buf, b"fuzz-secret", false).is_ok() {
                decoded += 1;
            }
            let _ = decode(&buf, true);
            fuzz_roundtrip(&buf);
        }
        assert!(
            decoded > 100,
            "the generator must reach the success path ({decoded})"
        );
        fuzz_roundtrip(&builder().build(b"fuzz-secret").0);
    }
}

#[cfg(test)]
mod empty_state_tests {
    use super::*;
    use crate::radius::{decode_request, DecodeError};

    /// Found by libFuzzer: an empty State decoded, and the reply path then disagreed with the
    /// request about it. RFC 2865 §5.24 requires at least one octet.
    #[test]
    fn empty_state_is_malformed() {
        let (pkt, _) = AccessRequestBuilder::new(1, "u")
            .password(b"p")
            .state(b"")
            .build(b"fuzz-secret");
        assert_eq!(
            decode_request(&pkt, b"fuzz-secret", true).unwrap_err(),
            DecodeError::EmptyState
        );
        crate::radius::request::fuzz_roundtrip(&pkt);
    }
}
