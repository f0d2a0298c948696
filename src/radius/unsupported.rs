//! Answers for the packet types radmfa does not serve, where RadSec expects one.
//!
//! Over UDP an Accounting-Request sent to the authentication port is simply dropped: the NAS
//! sends accounting to another port and never waits on this one. RadSec carries every packet
//! type on one connection, so a client that sends accounting (or a CoA/Disconnect) there
//! waits for an answer that never comes, retransmits, and may take the server for dead.
//! RFC 6614 §2.5: "When an unwanted packet of type 'CoA-Request' or 'Disconnect-Request' is
//! received, a RADIUS/TLS server needs to respond with a 'CoA-NAK' or 'Disconnect-NAK',
//! respectively. The NAK SHOULD contain an attribute Error-Cause with the value 406
//! ('Unsupported Extension') ... When an unwanted packet of type 'Accounting-Request' is
//! received, the RADIUS/TLS server SHOULD reply with an Accounting-Response containing an
//! Error-Cause attribute with value 406". Hand-written: the `radius` crate has no
//! accounting or CoA authenticator arithmetic.

use md5::{Digest, Md5};

use super::crypto::{attribute_spans, ct_eq, framed, response_authenticator, HEADER_LEN};

/// RFC 3576/5176 Error-Cause, Type 101; 406 = "Unsupported Extension".
const ERROR_CAUSE: u8 = 101;
const UNSUPPORTED_EXTENSION: u32 = 406;
/// RFC 2865 §5.33.
const PROXY_STATE: u8 = 33;

/// The reply code for a request code radmfa refuses this way, if it is one.
fn reply_code(request_code: u8) -> Option<u8> {
    match request_code {
        4 => Some(5),   // Accounting-Request → Accounting-Response (RFC 2866)
        40 => Some(42), // Disconnect-Request → Disconnect-NAK (RFC 5176)
        43 => Some(45), // CoA-Request → CoA-NAK (RFC 5176)
        _ => None,
    }
}

/// The refusal for `raw`, an Accounting-, Disconnect- or CoA-Request, if its Request
/// Authenticator verifies under `secret`; `None` for any other packet, a malformed one or a
/// forged one (those are dropped as before). RFC 2866 §3 and RFC 5176 §2.3 define the same
/// Request Authenticator: MD5(Code+Identifier+Length+16 zero octets+Attributes+Secret).
/// The reply copies the request's Proxy-States in order (RFC 2866 §5, "Proxy-State ... MUST
/// be copied unmodified") and carries Error-Cause 406, signed with the Response
/// Authenticator of RFC 2866 §3.
///
/// A verified request whose refusal would not fit in a packet (its Proxy-States within six
/// octets of the limit) gets [`Refusal::TooBig`]: nothing to send, but not a forgery either,
/// so the RadSec connection it came on stays.
pub fn refusal(raw: &[u8], secret: &[u8]) -> Option<Refusal> {
    let pkt = framed(raw)?;
    let code = reply_code(pkt[0])?;
    let spans = attribute_spans(&pkt[HEADER_LEN..])?;
    let mut md5 = Md5::new();
    md5.update(&pkt[..4]);
    md5.update([0u8; 16]);
    md5.update(&pkt[HEADER_LEN..]);
    md5.update(secret);
    let expected: [u8; 16] = md5.finalize().into();
    if !ct_eq(&expected, &pkt[4..HEADER_LEN]) {
        return None;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + 6 + pkt.len());
    out.extend_from_slice(&[code, pkt[1], 0, 0]);
    out.extend_from_slice(&pkt[4..HEADER_LEN]);
    out.extend_from_slice(&[ERROR_CAUSE, 6]);
    out.extend_from_slice(&UNSUPPORTED_EXTENSION.to_be_bytes());
    for s in spans.iter().filter(|s| s.typ == PROXY_STATE) {
        let attrs = &pkt[HEADER_LEN..];
        // The span's value starts two octets after its attribute's type octet.
        out.extend_from_slice(&attrs[s.value.start - 2..s.value.end]);
    }
    // The request fit in 4096 octets; its Proxy-States plus six octets may not.
    let Some(len) = u16::try_from(out.len())
        .ok()
        .filter(|&l| usize::from(l) <= super::MAX_PACKET)
    else {
        return Some(Refusal::TooBig);
    };
    out[2..4].copy_from_slice(&len.to_be_bytes());
    let auth = response_authenticator(&out, secret);
    out[4..HEADER_LEN].copy_from_slice(&auth);
    Some(Refusal::Reply(out))
}

/// What [`refusal`] makes of a verified request.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Reply(Vec<u8>),
    TooBig,
}

impl Refusal {
    #[cfg(test)]
    fn bytes(self) -> Vec<u8> {
        match self {
            Refusal::Reply(b) => b,
            Refusal::TooBig => panic!("no refusal: too big"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Accounting-Request signed as RFC 2866 §3 says, with `attrs` after the header.
    fn signed(code: u8, attrs: &[u8], secret: &[u8]) -> Vec<u8> {
        let len = (HEADER_LEN + attrs.len()) as u16;
        let mut p = vec![code, 7];
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p.extend_from_slice(attrs);
        let mut md5 = Md5::new();
        md5.update(&p);
        md5.update(secret);
        let auth: [u8; 16] = md5.finalize().into();
        p[4..20].copy_from_slice(&auth);
        p
    }

    #[test]
    fn accounting_gets_a_signed_response_with_error_cause_and_proxy_states_in_order() {
        // Acct-Status-Type Start, then two Proxy-States.
        let attrs = [40, 6, 0, 0, 0, 1, 33, 3, b'a', 33, 4, b'b', b'c'];
        let req = signed(4, &attrs, b"radsec");
        let r = refusal(&req, b"radsec")
            .expect("a verified Accounting-Request is answered")
            .bytes();
        assert_eq!(r[0], 5, "Accounting-Response");
        assert_eq!(r[1], 7, "same identifier");
        assert_eq!(usize::from(u16::from_be_bytes([r[2], r[3]])), r.len());
        assert_eq!(&r[20..26], &[101, 6, 0, 0, 1, 150], "Error-Cause 406");
        assert_eq!(&r[26..], &[33, 3, b'a', 33, 4, b'b', b'c']);
        // Response Authenticator: MD5 over the reply with the request's authenticator in it.
        let mut check = r.clone();
        check[4..20].copy_from_slice(&req[4..20]);
        let mut md5 = Md5::new();
        md5.update(&check);
        md5.update(b"radsec");
        let auth: [u8; 16] = md5.finalize().into();
        assert_eq!(&r[4..20], &auth);
    }

    #[test]
    fn coa_and_disconnect_get_their_naks() {
        assert_eq!(
            refusal(&signed(43, &[], b"s"), b"s").unwrap().bytes()[0],
            45
        );
        assert_eq!(
            refusal(&signed(40, &[], b"s"), b"s").unwrap().bytes()[0],
            42
        );
    }

    /// Proxy-States that fill the request to the limit: the refusal (six octets more)
    /// cannot be sent, but the request verified, and is not taken for a forgery.
    #[test]
    fn a_refusal_too_big_to_send_is_told_from_a_forgery() {
        let mut attrs = Vec::new();
        while HEADER_LEN + attrs.len() + 255 <= crate::radius::MAX_PACKET {
            attrs.push(33);
            attrs.push(255);
            attrs.extend_from_slice(&[b'p'; 253]);
        }
        let rest = crate::radius::MAX_PACKET - HEADER_LEN - attrs.len();
        attrs.extend_from_slice(&[33, rest as u8]);
        attrs.extend(std::iter::repeat_n(b'q', rest - 2));
        let req = signed(4, &attrs, b"s");
        assert_eq!(req.len(), crate::radius::MAX_PACKET);
        assert_eq!(refusal(&req, b"s"), Some(Refusal::TooBig));
        assert_eq!(refusal(&req, b"other"), None);
    }

    #[test]
    fn forged_malformed_and_other_codes_get_nothing() {
        let req = signed(4, &[40, 6, 0, 0, 0, 1], b"radsec");
        assert!(refusal(&req, b"other").is_none(), "wrong secret");
        let mut bad = req.clone();
        bad[25] ^= 1;
        assert!(refusal(&bad, b"radsec").is_none(), "changed attribute");
        let mut broken = req.clone();
        broken[21] = 9;
        assert!(refusal(&broken, b"radsec").is_none(), "attribute overruns");
        assert!(
            refusal(&signed(2, &[], b"s"), b"s").is_none(),
            "Access-Accept"
        );
        assert!(refusal(&signed(5, &[], b"s"), b"s").is_none(), "a response");
        assert!(refusal(&req[..10], b"radsec").is_none());
    }
}
