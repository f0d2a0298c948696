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
}
