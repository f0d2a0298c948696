//! Twilio's request signature: `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, the full
//! URL Twilio requested + every POST parameter name and value, sorted by name, concatenated)).
//! https://www.twilio.com/docs/usage/webhooks/webhooks-security

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

pub fn expected(auth_token: &[u8], url: &str, params: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Stable: parameters with the same name keep their order, as Twilio does.
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac.finalize().into_bytes().to_vec()
}

/// Whether the header value can be a signature at all: base64 of 20 bytes. Checked before
/// the body is parsed (axum has read it, within the 32 KiB limit), so a request that cannot
/// be signed costs no form parsing and no HMAC.
pub fn well_formed(header: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .is_ok_and(|b| b.len() == 20)
}

/// Constant-time check of the header value.
pub fn verify(auth_token: &[u8], url: &str, params: &[(String, String)], header: &str) -> bool {
    use subtle::ConstantTimeEq;
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    let want = expected(auth_token, url, params);
    given.len() == want.len() && bool::from(given.ct_eq(&want))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from Twilio's webhook-security documentation.
    #[test]
    fn twilio_documentation_example() {
        let token = b"12345";
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sig = base64::engine::general_purpose::STANDARD.encode(expected(token, url, &params));
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify(token, url, &params, &sig));
        assert!(!verify(b"54321", url, &params, &sig));
        assert!(!verify(token, "https://mycompany.com/other", &params, &sig));
        let mut changed = params.clone();
        changed[2].1 = "1".into();
        assert!(!verify(token, url, &changed, &sig));
        assert!(!verify(token, url, &params, "not base64!"));
        assert!(well_formed(&sig));
        for bad in ["", "not base64!", "eA==", "bm90LWEtc2lnbmF0dXJl"] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
