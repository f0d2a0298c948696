//! TOTP (RFC 6238) verification with replay protection.
//!
//! Code generation is `totp-rs`; we call it per time step rather than using its `check`,
//! because replay protection needs to know *which* step matched: the store keeps the last
//! accepted step per token and accepts only a later one, atomically.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use crate::secret::Secret;
use crate::store::{OtpAlgorithm, Token, TokenKind};

fn totp_algorithm(a: OtpAlgorithm) -> Algorithm {
    match a {
        OtpAlgorithm::Sha1 => Algorithm::SHA1,
        OtpAlgorithm::Sha256 => Algorithm::SHA256,
        OtpAlgorithm::Sha512 => Algorithm::SHA512,
    }
}

/// The code a TOTP token shows during time step `step`.
pub fn totp_code(
    secret: &Secret,
    algorithm: OtpAlgorithm,
    digits: u32,
    period: u32,
    step: i64,
) -> String {
    // `new_unchecked`: imported hardware seeds may be shorter than totp-rs's 128-bit minimum.
    let totp = TOTP::new_unchecked(
        totp_algorithm(algorithm),
        digits as usize,
        0,
        period as u64,
        secret.expose().to_vec(),
    );
    totp.generate(step.max(0) as u64 * period as u64)
}

/// Does `code` look like an OTP at all (digits only, 6 to 8 of them)?
pub fn looks_like_code(code: &str) -> bool {
    (6..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

/// Finds the time step within ±`window` of `now` whose code equals `code`.
///
/// Every step in the window is computed and compared in constant time, so the time taken
/// does not tell how close a guess was. Returns the matched step, later steps preferred.
pub fn match_totp(token: &Token, code: &str, now: i64, window: u32) -> Option<i64> {
    if token.kind != TokenKind::Totp || token.period == 0 || code.len() != token.digits as usize {
        return None;
    }
    let current = now / token.period as i64;
    let w = window as i64;
    let mut matched = None;
    for step in (current - w)..=(current + w) {
        let expected = totp_code(
            &token.secret,
            token.algorithm,
            token.digits,
            token.period,
            step,
        );
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step);
        }
    }
    // A step already used (or earlier) can never verify again; the store enforces this
    // atomically, this is just the cheap early answer.
    match (matched, token.last_step) {
        (Some(s), Some(last)) if s <= last => None,
        (m, _) => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(seed: &[u8], alg: OtpAlgorithm, digits: u32) -> Token {
        Token {
            id: 1,
            serial: "t".into(),
            user: Some("u".into()),
            kind: TokenKind::Totp,
            algorithm: alg,
            digits,
            period: 30,
            counter: 0,
            last_step: None,
            enabled: true,
            created_at: 0,
            secret: Secret::new(seed.to_vec()),
        }
    }

    // RFC 6238 Appendix B. The SHA256/SHA512 vectors use 32- and 64-byte seeds.
    const SEED1: &[u8] = b"12345678901234567890";
    const SEED256: &[u8] = b"12345678901234567890123456789012";
    const SEED512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let cases: &[(i64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in cases {
            let step = t / 30;
            let s = |b: &[u8]| Secret::new(b.to_vec());
            assert_eq!(
                totp_code(&s(SEED1), OtpAlgorithm::Sha1, 8, 30, step),
                *sha1,
                "SHA1 T={t}"
            );
            assert_eq!(
                totp_code(&s(SEED256), OtpAlgorithm::Sha256, 8, 30, step),
                *sha256,
                "SHA256 T={t}"
            );
            assert_eq!(
                totp_code(&s(SEED512), OtpAlgorithm::Sha512, 8, 30, step),
                *sha512,
                "SHA512 T={t}"
            );
        }
    }

    #[test]
    fn window_accepts_neighbouring_steps_only() {
        let t = token(SEED1, OtpAlgorithm::Sha1, 8);
        let now = 1111111111;
        let step = now / 30;
        let prev = totp_code(&t.secret, t.algorithm, 8, 30, step - 1);
        let far = totp_code(&t.secret, t.algorithm, 8, 30, step - 2);
        assert_eq!(match_totp(&t, &prev, now, 1), Some(step - 1));
        assert_eq!(match_totp(&t, &far, now, 1), None);
        assert_eq!(match_totp(&t, &far, now, 2), Some(step - 2));
        assert_eq!(match_totp(&t, "00000000", now, 1), None);
        assert_eq!(match_totp(&t, "1234567", now, 1), None, "wrong length");
    }

    #[test]
    fn used_step_is_refused() {
        let mut t = token(SEED1, OtpAlgorithm::Sha1, 6);
        let now = 1234567890;
        let step = now / 30;
        let code = totp_code(&t.secret, t.algorithm, 6, 30, step);
        assert_eq!(match_totp(&t, &code, now, 1), Some(step));
        t.last_step = Some(step);
        assert_eq!(match_totp(&t, &code, now, 1), None);
    }

    #[test]
    fn code_shape() {
        assert!(looks_like_code("123456"));
        assert!(looks_like_code("12345678"));
        assert!(!looks_like_code("12345"));
        assert!(!looks_like_code("12345a"));
        assert!(!looks_like_code(""));
    }
}
