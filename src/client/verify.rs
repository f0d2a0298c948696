//! Checking a reply before believing it. Two strengths, because the load generator also
//! measures servers that predate the BlastRADIUS rules:
//!
//! - `Strict` is `crypto::verify_reply`: Message-Authenticator present and first, both
//!   authenticators valid. What radmfa sends and what a hardened NAS insists on.
//! - `Lenient` checks the Response Authenticator always and the Message-Authenticator wherever
//!   it is, if present. FreeRADIUS 3.2.1 (Debian 12) predates the rule that replies carry
//!   Message-Authenticator first (it came with the BlastRADIUS fixes in 3.2.5); holding it to
//!   the strict rule would count every one of its replies as forged.
//! - `Signed` is `Lenient` with the Message-Authenticator required: for such a server told to
//!   sign its replies (the benchmark's FreeRADIUS), so that it is measured doing the same
//!   work as radmfa and a reply it failed to sign is not counted.

use crate::radius::crypto;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Verify {
    Strict,
    Lenient,
    Signed,
}

pub fn verify(
    mode: Verify,
    reply: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<(), &'static str> {
    match mode {
        Verify::Strict => crypto::verify_reply(reply, request_authenticator, secret),
        Verify::Lenient => {
            crypto::verify_reply_lenient(reply, request_authenticator, secret).map(|_| ())
        }
        Verify::Signed => {
            match crypto::verify_reply_lenient(reply, request_authenticator, secret) {
                Ok(true) => Ok(()),
                Ok(false) => Err("no Message-Authenticator"),
                Err(e) => Err(e),
            }
        }
    }
}

/// Why a reply was not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Its authenticators are right, but the Message-Authenticator the mode requires is
    /// missing, or (strict) not first: a server that predates the BlastRADIUS rules
    /// (FreeRADIUS 3.2.1), not a forgery. Carries what to tell the admin.
    Unsigned(String),
    /// A check failed: a wrong secret, a forgery, a broken packet.
    Bad(&'static str),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unsigned(why) => f.write_str(why),
            Failure::Bad(why) => f.write_str(why),
        }
    }
}

/// What to do about servers that do not sign their replies, or sign them last.
pub const LENIENT_HINT: &str = "`--verify lenient` for servers such as FreeRADIUS 3.2";

/// [`verify`], telling a reply that is right but unsigned (or signed last) from one that
/// fails its checks: counting the first as forged, with no word of `--verify`, sent admins
/// looking for a wrong secret.
pub fn check(
    mode: Verify,
    reply: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<(), Failure> {
    let Err(why) = verify(mode, reply, request_authenticator, secret) else {
        return Ok(());
    };
    let unsigned = match (mode, why) {
        (Verify::Strict, "no attributes") | (Verify::Signed, "no Message-Authenticator") => {
            "no Message-Authenticator"
        }
        (Verify::Strict, "first attribute is not Message-Authenticator") => {
            "Message-Authenticator not first"
        }
        _ => return Err(Failure::Bad(why)),
    };
    // Only if everything else is right: a lenient check passing means the Response
    // Authenticator (and any Message-Authenticator) is good under this secret.
    match crypto::verify_reply_lenient(reply, request_authenticator, secret) {
        Ok(signed) => {
            // Strict found attributes but no MA first: is there one at all?
            let unsigned = if mode == Verify::Strict && !signed {
                "no Message-Authenticator"
            } else {
                unsigned
            };
            let rule = match mode {
                Verify::Signed => "signed requires one",
                _ => "strict requires it first",
            };
            Err(Failure::Unsigned(format!(
                "{unsigned} ({rule}; {LENIENT_HINT})"
            )))
        }
        // Its authenticators are wrong too: that, not the missing signature, is what to say
        // (a wrong shared secret looks like this).
        Err(e) => Err(Failure::Bad(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::client::AccessRequestBuilder;
    use crate::radius::{decode_request, encode_reply, Reply};

    #[test]
    fn both_modes_accept_our_replies_and_refuse_forgeries() {
        let (raw, auth) = AccessRequestBuilder::new(3, "u").password(b"p").build(b"s");
        let req = decode_request(&raw, b"s", true).unwrap();
        let reply = encode_reply(&req, &Reply::accept(), b"s");
        for mode in [Verify::Strict, Verify::Lenient, Verify::Signed] {
            assert_eq!(verify(mode, &reply, &auth, b"s"), Ok(()));
            assert!(verify(mode, &reply, &auth, b"other").is_err());
            let mut bad = reply.clone();
            *bad.last_mut().unwrap() ^= 1;
            assert!(verify(mode, &bad, &auth, b"s").is_err());
        }
        // A reply with no Message-Authenticator at all: only the lenient mode takes it.
        let mut plain = vec![2, 3, 0, 20];
        plain.extend([0; 16]);
        let mut work = plain.clone();
        work[4..20].copy_from_slice(&auth);
        let ra = crypto::response_authenticator(&work, b"s");
        plain[4..20].copy_from_slice(&ra);
        assert!(verify(Verify::Strict, &plain, &auth, b"s").is_err());
        assert!(verify(Verify::Signed, &plain, &auth, b"s").is_err());
        assert_eq!(verify(Verify::Lenient, &plain, &auth, b"s"), Ok(()));
    }

    /// A right reply without a Message-Authenticator, or with it last, is told apart from a
    /// forgery, with the hint to use `--verify lenient`; under another secret it is bad.
    #[test]
    fn unsigned_replies_are_told_from_forged_ones() {
        let (_, auth) = AccessRequestBuilder::new(3, "u").password(b"p").build(b"s");
        let sign = |attrs: &[u8], ma_at: Option<usize>| {
            let mut pkt = vec![2, 3, 0, 0];
            pkt.extend_from_slice(&auth);
            pkt.extend_from_slice(attrs);
            let len = (pkt.len() as u16).to_be_bytes();
            pkt[2..4].copy_from_slice(&len);
            if let Some(at) = ma_at {
                let ma = crypto::message_authenticator(&pkt, b"s");
                pkt[20 + at + 2..20 + at + 18].copy_from_slice(&ma);
            }
            let ra = crypto::response_authenticator(&pkt, b"s");
            pkt[4..20].copy_from_slice(&ra);
            pkt
        };
        let none = sign(&[], None);
        let mut last_attrs = vec![18, 4, b'o', b'k', 80, 18];
        last_attrs.extend([0; 16]);
        let last = sign(&last_attrs, Some(4));
        let unsigned = |r| matches!(r, Err(Failure::Unsigned(_)));
        for (reply, what) in [(&none, "no Message-Authenticator"), (&last, "not first")] {
            let got = check(Verify::Strict, reply, &auth, b"s");
            assert!(unsigned(got.clone()), "{got:?}");
            let text = got.unwrap_err().to_string();
            assert!(
                text.contains(what) && text.contains("--verify lenient"),
                "{text}"
            );
            assert!(matches!(
                check(Verify::Strict, reply, &auth, b"other"),
                Err(Failure::Bad(_))
            ));
            assert_eq!(check(Verify::Lenient, reply, &auth, b"s"), Ok(()));
        }
        assert!(unsigned(check(Verify::Signed, &none, &auth, b"s")));
        assert_eq!(check(Verify::Signed, &last, &auth, b"s"), Ok(()));
    }
}
