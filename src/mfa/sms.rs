//! One-way SMS codes: generated uniformly, sent once, stored only as salt ‖ HMAC-SHA256(key,
//! salt ‖ code) and compared in constant time. The key comes from the store's key file
//! ([`crate::store::Sealer::code_key`]): without it, a code's million candidates cannot be
//! tried against a row read from the database. A code also answers nothing without the State
//! of its challenge, which only the NAS holds (the store keeps the State's hash).

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::secret::Secret;

const SALT_LEN: usize = 16;

/// `len` random decimal digits.
pub fn new_code(len: u32) -> Secret {
    let mut rng = rand::rngs::OsRng;
    let code: String = (0..len)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    Secret::from(code)
}

fn mac(key: &[u8], salt: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(salt);
    m
}

/// salt ‖ HMAC-SHA256(key, salt ‖ code).
pub fn hash_code(key: &[u8], code: &Secret) -> Vec<u8> {
    let salt: [u8; SALT_LEN] = rand::random();
    let mut m = mac(key, &salt);
    m.update(code.expose());
    let mut out = salt.to_vec();
    out.extend_from_slice(&m.finalize().into_bytes());
    out
}

/// Constant-time check of a typed code against [`hash_code`]'s output. The code is read as
/// an OATH code is ([`crate::mfa::otp::plain_code`]: spaces and dashes left out, full-width
/// digits made ASCII): a code typed in groups ("123 456", "123-456") is the code, not a
/// wrong guess counted toward the lockout.
pub fn verify_code(key: &[u8], stored: &[u8], typed: &str) -> bool {
    if stored.len() <= SALT_LEN {
        return false;
    }
    let (salt, tag) = stored.split_at(SALT_LEN);
    let mut m = mac(key, salt);
    m.update(crate::mfa::otp::plain_code(typed).as_bytes());
    m.verify_slice(tag).is_ok()
}

/// The SMS text: the template with `{code}` filled in. A `Secret`, since it holds the code.
pub fn render_message(template: &str, code: &Secret) -> Secret {
    Secret::from(template.replace("{code}", code.expose_str().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_length_and_only_digits() {
        for len in [4, 6, 8, 10] {
            let c = new_code(len);
            let s = c.expose_str().unwrap();
            assert_eq!(s.len(), len as usize);
            assert!(s.bytes().all(|b| b.is_ascii_digit()));
        }
        // Uniform enough that 200 codes are not all the same.
        let set: std::collections::HashSet<String> = (0..200)
            .map(|_| new_code(6).expose_str().unwrap().to_string())
            .collect();
        assert!(set.len() > 190);
    }

    #[test]
    fn hash_verifies_only_the_code_and_is_salted_and_keyed() {
        let key = [7u8; 32];
        let code = Secret::from("123456");
        let h = hash_code(&key, &code);
        assert!(verify_code(&key, &h, "123456"));
        assert!(verify_code(&key, &h, " 123456 "));
        assert!(verify_code(&key, &h, "123 456"));
        assert!(verify_code(&key, &h, "12 34\t56\n"));
        assert!(verify_code(&key, &h, "123-456"));
        assert!(verify_code(
            &key,
            &h,
            "\u{FF11}\u{FF12}\u{FF13}\u{FF14}\u{FF15}\u{FF16}"
        ));
        assert!(!verify_code(&key, &h, "123457"));
        assert!(!verify_code(&key, &h, ""));
        assert!(!verify_code(&key, &h[..10], "123456"));
        assert_ne!(h, hash_code(&key, &code), "salted");
        assert!(!h.windows(6).any(|w| w == b"123456"));
        // Without the key, the row tells nothing: another key does not verify the code.
        assert!(!verify_code(&[8u8; 32], &h, "123456"));
        assert!(!verify_code(&[], &h, "123456"));
    }

    #[test]
    fn message_template() {
        let m = render_message("Code: {code}.", &Secret::from("0042"));
        assert_eq!(m.expose_str(), Some("Code: 0042."));
    }
}
