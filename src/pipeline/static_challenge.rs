//! OpenVPN's static challenge (`static-challenge "Code" 0` in the client's config): the
//! client shows a second field for the code and sends both in User-Password as
//! `SCRV1:<base64 password>:<base64 code>`. A RADIUS plugin on the OpenVPN server (such as
//! openvpn-auth-radius) passes that string on unchanged, so radmfa takes it apart here.
//! (A client whose `static-challenge` takes `concat` sends password and code run together
//! instead: that is `otp_mode = "inline"` with `inline_delimiter = ""`.) Hand-written: a
//! prefix and two base64 parts, for which no crate exists.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::secret::Secret;

const PREFIX: &[u8] = b"SCRV1:";

/// Standard base64, with or without its `=` padding: OpenVPN pads, but a client or plugin
/// of another make that leaves it off (as many base64 encoders do) sent a field radmfa
/// took for a mangled one, and refused.
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The password and, if the user typed one, the code of a field in SCRV1 form; `None` for
/// any other field (a password that merely starts with `SCRV1:` but is not two base64
/// parts stays a password).
pub fn split(field: &Secret) -> Option<(Secret, Option<Secret>)> {
    let rest = field.expose().strip_prefix(PREFIX)?;
    let mut parts = rest.split(|&b| b == b':');
    let (password, code) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let password = STANDARD.decode(password).ok()?;
    let code = STANDARD.decode(code).ok()?;
    if password.is_empty() {
        return None;
    }
    let code = (!code.is_empty()).then(|| Secret::new(code));
    Some((Secret::new(password), code))
}

/// A field that is OpenVPN's SCRV1 form by its start (the prefix, then a password part that
/// decodes) but not by its rest (no code part, one that is not base64, a third part): a
/// client or plugin that mangled it. Not taken as a password: binding the whole string
/// would only count a failed logon against the account in the directory.
pub fn malformed(field: &Secret) -> bool {
    let Some(rest) = field.expose().strip_prefix(PREFIX) else {
        return false;
    };
    let Some(colon) = rest.iter().position(|&b| b == b':') else {
        return false;
    };
    split(field).is_none() && STANDARD.decode(&rest[..colon]).is_ok_and(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mangled_scrv1_field_is_told_from_a_password() {
        let bad = |f: &str| malformed(&Secret::from(f));
        assert!(bad("SCRV1:ZnJhbmstcHc=:!!notbase64"));
        assert!(bad("SCRV1:ZnJhbmstcHc=:MTIz:MTIz"));
        assert!(!bad("SCRV1:ZnJhbmstcHc=:MTIzNDU2"), "well formed");
        assert!(
            !bad("SCRV1:not base64 at all:x"),
            "a password that starts so"
        );
        assert!(!bad("SCRV1:ZnJhbmstcHc="), "no colon after the first part");
        assert!(!bad("hunter2"));
    }

    fn parts(field: &str) -> Option<(String, Option<String>)> {
        split(&Secret::from(field)).map(|(p, c)| {
            let text = |s: &Secret| s.expose_str().unwrap().to_string();
            (text(&p), c.as_ref().map(text))
        })
    }

    #[test]
    fn password_and_code_are_decoded() {
        // base64("pa:ss,word") and base64("123456"), as OpenVPN sends them.
        assert_eq!(
            parts("SCRV1:cGE6c3Msd29yZA==:MTIzNDU2"),
            Some(("pa:ss,word".into(), Some("123456".into())))
        );
        assert_eq!(
            parts("SCRV1:cGFzcw==:"),
            Some(("pass".into(), None)),
            "no code typed"
        );
        // Without the padding, as some encoders write it.
        assert_eq!(
            parts("SCRV1:cGE6c3Msd29yZA:MTIzNDU2"),
            Some(("pa:ss,word".into(), Some("123456".into())))
        );
        assert_eq!(parts("SCRV1:cGFzcw:"), Some(("pass".into(), None)));
    }

    #[test]
    fn anything_else_is_not_a_static_challenge_answer() {
        for field in [
            "password,123456",
            "SCRV1:",
            "SCRV1::MTIzNDU2",
            "SCRV1:cGFzcw==",
            "SCRV1:cGFzcw==:MTIz:NDU2",
            "SCRV1:not base64!:MTIzNDU2",
            "scrv1:cGFzcw==:MTIzNDU2",
        ] {
            assert_eq!(parts(field), None, "{field}");
        }
    }
}
