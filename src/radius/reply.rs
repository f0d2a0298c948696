//! Building Access-Accept / Access-Reject / Access-Challenge. The `radius` crate serialises the
//! attributes; the Message-Authenticator (first, per BlastRADIUS) and the Response
//! Authenticator are computed here, because the crate's `encode` computes the Response
//! Authenticator itself and has no notion of a Message-Authenticator that must precede it.

use ::radius::core::avp::AVP;
use ::radius::core::code::Code;
use ::radius::core::{rfc2865, rfc2869};

use super::crypto::{self, HEADER_LEN, MA_LEN};
use super::reply_attr::ReplyAttr;
use super::request::Request;
use super::MAX_PACKET;

/// RFC 2865 §5: an attribute's Length octet covers Type and Length, so a value is <= 253.
const MAX_VALUE: usize = 253;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCode {
    Accept,
    Reject,
    Challenge,
}

impl ReplyCode {
    /// As the audit's `result` column and log lines write it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyCode::Accept => "accept",
            ReplyCode::Reject => "reject",
            ReplyCode::Challenge => "challenge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: ReplyCode,
    /// Reply-Message texts, shown to the user by NASes that support it.
    pub messages: Vec<String>,
    /// State for a challenge; the NAS returns it unmodified in the next Access-Request.
    /// Values longer than 253 octets cannot be sent and are left out.
    pub state: Option<Vec<u8>>,
    pub session_timeout: Option<u32>,
    /// The client's `accept_attributes` and `group_attributes` (Access-Accept only).
    pub attributes: Vec<ReplyAttr>,
    /// Prompt (RFC 2869 §5.10) on an Access-Challenge: whether the NAS should echo what
    /// the user types (the client's `challenge_echo`); `None`: no Prompt.
    pub echo: Option<bool>,
}

impl Reply {
    fn new(code: ReplyCode) -> Self {
        Reply {
            code,
            messages: Vec::new(),
            state: None,
            session_timeout: None,
            attributes: Vec::new(),
            echo: None,
        }
    }

    pub fn accept() -> Self {
        Self::new(ReplyCode::Accept)
    }

    pub fn reject() -> Self {
        Self::new(ReplyCode::Reject)
    }

    pub fn challenge(state: Vec<u8>, message: impl Into<String>) -> Self {
        Reply {
            state: Some(state),
            ..Self::new(ReplyCode::Challenge)
        }
        .with_message(message)
    }

    pub fn with_message(mut self, m: impl Into<String>) -> Self {
        self.messages.push(m.into());
        self
    }

    pub fn with_session_timeout(mut self, seconds: u32) -> Self {
        self.session_timeout = Some(seconds);
        self
    }

    /// The client's `challenge_echo` as a Prompt, on an Access-Challenge only (RFC 2869
    /// §5.10 allows it nowhere else).
    pub fn with_echo(mut self, echo: Option<bool>) -> Self {
        if self.code == ReplyCode::Challenge {
            self.echo = echo;
        }
        self
    }
}

/// Splits text into Reply-Message values of at most 253 octets without cutting a UTF-8
/// character, so each attribute is valid text on its own (RFC 2865 §5.18: Text is UTF-8).
fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(MAX_VALUE);
        while !rest.is_char_boundary(end) {
            end -= 1; // at most 3 steps: a UTF-8 character is at most 4 octets
        }
        let (head, tail) = rest.split_at(end);
        out.push(head);
        rest = tail;
    }
    out
}

fn tlv_len(values: &[&[u8]]) -> usize {
    values.iter().map(|v| v.len() + 2).sum()
}

/// The room for configured attributes in an Access-Accept (4096 octets less the header
/// and the Message-Authenticator), when the request carried no Proxy-State: an Accept
/// carries no State and no Session-Timeout of radmfa's own, and its Reply-Messages are
/// dropped first (see [`encode_reply`]). Each Proxy-State a request carries takes its
/// length (and 2) from this.
pub const ACCEPT_ROOM: usize = MAX_PACKET - HEADER_LEN - 2 - MA_LEN;

/// The octets `attributes` take in a packet: each value and its type and length octets.
pub fn wire_len(attributes: &[ReplyAttr]) -> usize {
    attributes.iter().map(|a| a.value.len() + 2).sum()
}

/// Whether every configured attribute of `reply` (the NAS's policy for the user) goes out
/// with it: each value within one attribute, and all of them in the packet beside the
/// Message-Authenticator, the request's Proxy-State echo, State and Session-Timeout.
/// [`encode_reply`] drops what does not fit; an Access-Accept without its policy
/// attributes can leave the user on the NAS's broader default policy, so the pipeline asks
/// first and refuses instead.
pub fn attributes_fit(req: &Request, reply: &Reply) -> bool {
    let proxy_states: usize = req.proxy_states().iter().map(|p| p.len() + 2).sum();
    let state = reply.state.as_ref().map_or(0, |s| s.len() + 2);
    let timeout = 6 * usize::from(reply.session_timeout.is_some());
    let attributes = wire_len(&reply.attributes);
    reply.attributes.iter().all(|a| a.value.len() <= MAX_VALUE)
        && HEADER_LEN + 2 + MA_LEN + proxy_states + state + timeout + attributes <= MAX_PACKET
}

/// Whether the reply's State fits beside the request's Proxy-State echo: an Access-Challenge
/// sent without it could not be answered (the code would come back as a new login, its
/// password checked against the directory).
pub fn state_fits(req: &Request, reply: &Reply) -> bool {
    let proxy_states: usize = req.proxy_states().iter().map(|p| p.len() + 2).sum();
    let state = reply.state.as_ref().map_or(0, |s| s.len() + 2);
    // One attribute carries the State: one longer than that is dropped by the encoder.
    reply.state.as_ref().is_none_or(|s| s.len() <= MAX_VALUE)
        && HEADER_LEN + 2 + MA_LEN + proxy_states + state <= MAX_PACKET
}

/// Encodes `reply` to `req`. Attribute order: Message-Authenticator, Reply-Message(s), State,
/// Session-Timeout, Prompt, the configured attributes, then every Proxy-State of the request
/// in its original order.
///
/// Never panics and never exceeds 4096 octets: what does not fit is dropped, messages first,
/// then configured attributes from the last, then Prompt, then Session-Timeout, then State.
/// Message-Authenticator and the Proxy-State echo always fit: `decode_request` refuses
/// Proxy-State without a Message-Authenticator (over RadSec, Proxy-States that leave no
/// room for one), so the request already held both, or room for both. The result is empty only if the crate refused to encode, which these size limits
/// rule out.
pub fn encode_reply(req: &Request, reply: &Reply, secret: &[u8]) -> Vec<u8> {
    // RFC 2865 §5.33: Proxy-State "MUST be returned unmodified in the Access-Accept,
    // Access-Reject or Access-Challenge", and §5: "the order of Attributes with the same Type
    // MUST be preserved".
    let proxy_states = req.proxy_states();
    let ps_refs: Vec<&[u8]> = proxy_states.iter().map(Vec::as_slice).collect();
    let mut used = HEADER_LEN + 2 + MA_LEN + tlv_len(&ps_refs);

    // State before Session-Timeout: a challenge without its State cannot be answered.
    let state = reply
        .state
        .as_deref()
        .filter(|s| (1..=MAX_VALUE).contains(&s.len()) && used + s.len() + 2 <= MAX_PACKET);
    used += state.map_or(0, |s| s.len() + 2);
    let timeout = reply.session_timeout.filter(|_| used + 6 <= MAX_PACKET);
    used += 6 * usize::from(timeout.is_some());
    let prompt = reply.echo.filter(|_| used + 6 <= MAX_PACKET);
    used += 6 * usize::from(prompt.is_some());
    // The NAS's policy for the user: before the messages, which are only for show.
    let mut attributes: Vec<&ReplyAttr> = Vec::new();
    for a in &reply.attributes {
        if used + a.value.len() + 2 > MAX_PACKET {
            break;
        }
        used += a.value.len() + 2;
        attributes.push(a);
    }

    // Whole messages in order while they fit; a message is never sent half.
    let mut messages: Vec<&str> = Vec::new();
    for message in &reply.messages {
        let parts = chunks(message);
        let size: usize = parts.iter().map(|p| p.len() + 2).sum();
        if used + size > MAX_PACKET {
            break;
        }
        used += size;
        messages.extend(parts);
    }

    let code = match reply.code {
        ReplyCode::Accept => Code::AccessAccept,
        ReplyCode::Reject => Code::AccessReject,
        ReplyCode::Challenge => Code::AccessChallenge,
    };
    // Carries the request's Identifier and Request Authenticator; its secret is empty (see
    // `Request::packet`), so the Response Authenticator the crate computes is discarded below.
    let mut packet = req.packet.make_response_packet(code);
    // draft-ietf-radext-deprecating-radius: "Servers MUST add Message-Authenticator as the
    // first attribute in all responses to Access-Request packets." Zeroed for now.
    rfc2869::add_message_authenticator(&mut packet, &[0; MA_LEN]);
    for m in messages {
        rfc2865::add_reply_message(&mut packet, m);
    }
    if let Some(s) = state {
        rfc2865::add_state(&mut packet, s);
    }
    if let Some(t) = timeout {
        rfc2865::add_session_timeout(&mut packet, t);
    }
    if let Some(echo) = prompt {
        let value = if echo {
            rfc2869::PROMPT_ECHO
        } else {
            rfc2869::PROMPT_NO_ECHO
        };
        rfc2869::add_prompt(&mut packet, value);
    }
    for a in attributes {
        packet.add(AVP::from_bytes(a.typ, &a.value));
    }
    for ps in &ps_refs {
        rfc2865::add_proxy_state(&mut packet, ps);
    }
    let Ok(mut bytes) = packet.encode() else {
        return Vec::new();
    };
    if bytes.len() < HEADER_LEN + 2 + MA_LEN || bytes.len() > MAX_PACKET {
        return Vec::new();
    }

    // RFC 2869 §5.14: for replies "the Message-Authenticator is calculated as follows, using
    // the Request-Authenticator from the Access-Request this packet is in reply to", over the
    // packet with the value zeroed. Only then the RFC 2865 §3 Response Authenticator, which
    // covers the finished Message-Authenticator.
    bytes[4..HEADER_LEN].copy_from_slice(&req.authenticator);
    let ma = crypto::message_authenticator(&bytes, secret);
    bytes[HEADER_LEN + 2..HEADER_LEN + 2 + MA_LEN].copy_from_slice(&ma);
    let response = crypto::response_authenticator(&bytes, secret);
    bytes[4..HEADER_LEN].copy_from_slice(&response);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::client::{parse_reply, AccessRequestBuilder};
    use crate::radius::crypto::verify_reply;
    use crate::radius::request::decode_request;
    use ::radius::core::packet::Packet;

    const SECRET: &[u8] = b"s3cr3t";

    fn request(build: AccessRequestBuilder) -> (Vec<u8>, Request) {
        let (raw, _) = build.build(SECRET);
        let req = decode_request(&raw, SECRET, true).expect("decodes");
        (raw, req)
    }

    fn types(raw: &[u8]) -> Vec<u8> {
        parse_reply(raw)
            .unwrap()
            .attributes
            .iter()
            .map(|a| a.0)
            .collect()
    }

    #[test]
    fn message_authenticator_first_and_every_bit_flip_fails() {
        let (raw_req, req) = request(AccessRequestBuilder::new(9, "alice").password(b"pw"));
        let reply = Reply::challenge(b"st-1".to_vec(), "Enter code").with_session_timeout(90);
        let raw = encode_reply(&req, &reply, SECRET);
        assert_eq!(raw[1], 9);
        assert_eq!(&raw[20..22], &[80, 18]);
        assert_eq!(verify_reply(&raw, &req.authenticator, SECRET), Ok(()));
        assert!(verify_reply(&raw, &req.authenticator, b"wrong").is_err());
        assert!(verify_reply(&raw, &[0; 16], SECRET).is_err());
        // Independent Response Authenticator check by the radius crate.
        assert!(Packet::is_authentic_response(&raw, &raw_req, SECRET));
        // Independent Message-Authenticator check with the hmac crate directly.
        use hmac::Mac;
        let mut work = raw.clone();
        work[4..20].copy_from_slice(&req.authenticator);
        work[22..38].fill(0);
        let mut mac = hmac::Hmac::<md5::Md5>::new_from_slice(SECRET).unwrap();
        mac.update(&work);
        assert_eq!(mac.finalize().into_bytes().as_slice(), &raw[22..38]);

        for i in 0..raw.len() {
            for bit in [0x01, 0x80] {
                let mut t = raw.clone();
                t[i] ^= bit;
                assert!(
                    verify_reply(&t, &req.authenticator, SECRET).is_err(),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn attribute_order_and_proxy_state_echo() {
        let b = AccessRequestBuilder::new(3, "bob")
            .password(b"pw")
            .proxy_state(b"first");
        let (_, req) = request(b.proxy_state(b"").proxy_state(b"third"));
        let reply = Reply::challenge(vec![7; 16], "one")
            .with_message("two")
            .with_session_timeout(60);
        let raw = encode_reply(&req, &reply, SECRET);
        assert_eq!(types(&raw), vec![80, 18, 18, 24, 27, 33, 33, 33]);
        let attrs = parse_reply(&raw).unwrap().attributes;
        assert_eq!(attrs[1].1, b"one");
        assert_eq!(attrs[3].1, vec![7; 16]);
        assert_eq!(attrs[4].1, 60u32.to_be_bytes());
        let echoed: Vec<&[u8]> = attrs[5..].iter().map(|a| a.1.as_slice()).collect();
        assert_eq!(echoed, vec![&b"first"[..], b"", b"third"]);
        assert_eq!(parse_reply(&raw).unwrap().code, 11);

        let raw = encode_reply(&req, &Reply::accept(), SECRET);
        assert_eq!((raw[0], types(&raw)), (2, vec![80, 33, 33, 33]));
        let raw = encode_reply(&req, &Reply::reject().with_message(""), SECRET);
        assert_eq!((raw[0], types(&raw)), (3, vec![80, 33, 33, 33]));
    }

    #[test]
    fn a_state_that_does_not_fit_beside_the_proxy_state_is_told() {
        // 15 × 253 + 205 octets of Proxy-State leave room for less than a 32-octet State.
        let mut b = AccessRequestBuilder::new(5, "bob").password(b"p");
        for _ in 0..15 {
            b = b.proxy_state(&[7; 253]);
        }
        let (_, crowded) = request(b.proxy_state(&[7; 205]));
        let (_, roomy) = request(AccessRequestBuilder::new(6, "bob").password(b"p"));
        let challenge = Reply::challenge(vec![1; 32], "Enter code");
        assert!(state_fits(&roomy, &challenge));
        assert!(!state_fits(&crowded, &challenge));
        let raw = encode_reply(&crowded, &challenge, SECRET);
        assert!(
            !types(&raw).contains(&24),
            "sent as is, it would lack its State"
        );
    }

    #[test]
    fn configured_attributes_go_before_the_proxy_state_echo_and_fit_the_packet() {
        use crate::radius::reply_attr::ReplyAttr;
        let (_, req) = request(
            AccessRequestBuilder::new(5, "carol")
                .password(b"pw")
                .proxy_state(b"ps"),
        );
        let mut reply = Reply::accept().with_message("Welcome");
        reply.attributes = vec![
            ReplyAttr::parse("Class = vpn").unwrap(),
            ReplyAttr::parse("Fortinet-Group-Name = admins").unwrap(),
        ];
        let raw = encode_reply(&req, &reply, SECRET);
        assert_eq!(verify_reply(&raw, &req.authenticator, SECRET), Ok(()));
        assert_eq!(types(&raw), vec![80, 18, 25, 26, 33]);
        let attrs = parse_reply(&raw).unwrap().attributes;
        assert_eq!(attrs[2].1, b"vpn");
        assert_eq!(&attrs[3].1[..6], &[0, 0, 0x30, 0x44, 1, 8]);
        assert!(attributes_fit(&req, &reply));

        // More than a packet holds: whole attributes are dropped from the last, and the
        // messages go before any of them.
        let mut reply = Reply::accept().with_message("m".repeat(200));
        reply.attributes = (0..20)
            .map(|i| ReplyAttr::parse(&format!("Filter-Id = {i:02}{}", "x".repeat(240))).unwrap())
            .collect();
        // The pipeline asks first, and refuses such an Accept (see `attributes_fit`); a
        // reply built anyway still never exceeds the packet.
        assert!(!attributes_fit(&req, &reply));
        let raw = encode_reply(&req, &reply, SECRET);
        assert!(raw.len() <= MAX_PACKET);
        assert_eq!(verify_reply(&raw, &req.authenticator, SECRET), Ok(()));
        let attrs = parse_reply(&raw).unwrap().attributes;
        let kept: Vec<&[u8]> = attrs
            .iter()
            .filter(|a| a.0 == 11)
            .map(|a| &a.1[..2])
            .collect();
        assert_eq!(
            kept.len(),
            16,
            "4096 octets hold 16 of them with MA and Proxy-State"
        );
        assert_eq!(kept[15], b"15", "the first ones, in order");
        assert!(!attrs.iter().any(|a| a.0 == 18), "the message went first");
        assert_eq!(attrs.last().unwrap().0, 33);
    }

    #[test]
    fn long_reply_message_split_at_253_on_char_boundaries() {
        let (_, req) = request(AccessRequestBuilder::new(1, "u").password(b"p"));
        let ascii = "a".repeat(600);
        let raw = encode_reply(&req, &Reply::reject().with_message(ascii.clone()), SECRET);
        let parts: Vec<Vec<u8>> = parse_reply(&raw).unwrap().attributes[1..]
            .iter()
            .map(|a| a.1.clone())
            .collect();
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![253, 253, 94]
        );
        assert_eq!(parts.concat(), ascii.as_bytes());

        let accented = "é".repeat(200); // 400 octets of 2-octet characters
        let raw = encode_reply(
            &req,
            &Reply::reject().with_message(accented.clone()),
            SECRET,
        );
        let parts: Vec<Vec<u8>> = parse_reply(&raw).unwrap().attributes[1..]
            .iter()
            .map(|a| a.1.clone())
            .collect();
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![252, 148]
        );
        assert!(parts.iter().all(|p| std::str::from_utf8(p).is_ok()));
        assert_eq!(parts.concat(), accented.as_bytes());
    }

    #[test]
    fn oversized_reply_drops_messages_not_echoes() {
        let mut b = AccessRequestBuilder::new(4, "u").password(b"p");
        for i in 0..12u8 {
            b = b.proxy_state(&[i; 253]);
        }
        let (_, req) = request(b);
        let mut reply = Reply::challenge(vec![1; 32], "short first").with_session_timeout(30);
        for _ in 0..10 {
            reply = reply.with_message("m".repeat(500));
        }
        let raw = encode_reply(&req, &reply, SECRET);
        assert!(raw.len() <= MAX_PACKET);
        assert_eq!(verify_reply(&raw, &req.authenticator, SECRET), Ok(()));
        let attrs = parse_reply(&raw).unwrap().attributes;
        assert_eq!(attrs.iter().filter(|a| a.0 == 33).count(), 12);
        assert!(attrs.iter().any(|a| a.0 == 24) && attrs.iter().any(|a| a.0 == 27));
        let text: Vec<u8> = attrs
            .iter()
            .filter(|a| a.0 == 18)
            .flat_map(|a| a.1.clone())
            .collect();
        assert!(text.starts_with(b"short first") && text.len() < 11 + 5000);
        assert_eq!((text.len() - 11) % 500, 0, "messages are dropped whole");

        // A State that cannot be encoded (> 253 octets) is left out rather than failing.
        let raw = encode_reply(&req, &Reply::challenge(vec![0; 300], "x"), SECRET);
        assert_eq!(verify_reply(&raw, &req.authenticator, SECRET), Ok(()));
        assert!(!types(&raw).contains(&24));
    }

    #[test]
    fn reply_to_rfc2865_request_without_message_authenticator() {
        let raw_req = hex::decode(
            "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93\
             d413ce3196e43f782a0aee0406c0a80110050600000003",
        )
        .unwrap();
        let req = decode_request(&raw_req, b"xyzzy5461", false).unwrap();
        let raw = encode_reply(&req, &Reply::accept(), b"xyzzy5461");
        assert_eq!(verify_reply(&raw, &req.authenticator, b"xyzzy5461"), Ok(()));
        assert!(Packet::is_authentic_response(&raw, &raw_req, b"xyzzy5461"));
    }
}
