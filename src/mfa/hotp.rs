//! HOTP (RFC 4226): event-based codes, a look-ahead window, and resynchronisation with two
//! consecutive codes.
//!
//! Hand-written on `hmac` + `sha1`/`sha2` rather than a crate: the OATH crates either hide
//! which counter matched (we must store it to make each code single-use), compare codes with
//! `==`, or force a minimum seed length that real hardware seeds do not meet. The algorithm
//! itself is a dozen lines.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::secret::Secret;
use crate::store::{OtpAlgorithm, Token, TokenKind};

/// HMAC over the 8-byte big-endian counter with the token's hash.
fn hmac_digest(secret: &[u8], algorithm: OtpAlgorithm, counter: u64) -> Vec<u8> {
    let msg = counter.to_be_bytes();
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    match algorithm {
        OtpAlgorithm::Sha1 => {
            let mut m = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("any key length");
            m.update(&msg);
            m.finalize().into_bytes().to_vec()
        }
        OtpAlgorithm::Sha256 => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
            m.update(&msg);
            m.finalize().into_bytes().to_vec()
        }
        OtpAlgorithm::Sha512 => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret).expect("any key length");
            m.update(&msg);
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// The seed as HMAC really uses it, so that two seeds giving the same codes compare equal:
/// HMAC (RFC 2104) hashes a key longer than the hash's block (64 bytes for SHA-1 and
/// SHA-256, 128 for SHA-512) and pads a shorter one with zero bytes, so `K`, `K‖00` and,
/// for a long `K`, its digest, are one key. Without this, a seed re-exported padded to a
/// fixed width passed as a different seed: under a second serial (two owners sharing
/// codes), or as a replacement that reset an HOTP counter and let used codes in again.
pub fn hmac_key_form(algorithm: OtpAlgorithm, seed: &[u8]) -> Secret {
    use sha2::Digest;
    let block = match algorithm {
        OtpAlgorithm::Sha1 | OtpAlgorithm::Sha256 => 64,
        OtpAlgorithm::Sha512 => 128,
    };
    let mut key = match algorithm {
        _ if seed.len() <= block => seed.to_vec(),
        OtpAlgorithm::Sha1 => sha1::Sha1::digest(seed).to_vec(),
        OtpAlgorithm::Sha256 => sha2::Sha256::digest(seed).to_vec(),
        OtpAlgorithm::Sha512 => sha2::Sha512::digest(seed).to_vec(),
    };
    let used = key.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    key.truncate(used);
    Secret::new(key)
}

/// The code for `counter`: RFC 4226 §5.3 dynamic truncation, then `digits` decimal digits.
pub fn hotp_code(secret: &Secret, algorithm: OtpAlgorithm, digits: u32, counter: u64) -> String {
    let hs = hmac_digest(secret.expose(), algorithm, counter);
    // "Let OffsetBits be the low-order 4 bits of String[19]" — the last byte, for any hash.
    let offset = (hs[hs.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([hs[offset], hs[offset + 1], hs[offset + 2], hs[offset + 3]])
        & 0x7fff_ffff;
    let modulus = 10u64.pow(digits.min(9));
    format!(
        "{:0width$}",
        u64::from(bin) % modulus,
        width = digits as usize
    )
}

fn code_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Counters `from ..= from + span`, without overflowing at the top of the range.
fn counters(from: u64, span: u64) -> impl Iterator<Item = u64> {
    (0..=span).map_while(move |i| from.checked_add(i))
}

/// Finds the first counter in `[token.counter, token.counter + window]` whose code is `code`.
///
/// Every counter in the window is computed and compared in constant time, so the time taken
/// does not tell how far ahead a guess landed. On success the caller moves the stored counter
/// to `matched + 1` (compare-and-set), which makes this and every earlier code unusable.
pub fn match_hotp(token: &Token, code: &str, window: u64) -> Option<u64> {
    if token.kind != TokenKind::Hotp || code.len() != token.digits as usize {
        return None;
    }
    let mut matched = None;
    for c in counters(token.counter, window) {
        let ok = code_eq(
            &hotp_code(&token.secret, token.algorithm, token.digits, c),
            code,
        );
        if ok && matched.is_none() {
            matched = Some(c);
        }
    }
    matched
}

/// Whether `code` is the code of the counter last used (`token.counter - 1`). The same code
/// may come up again within the window ahead (one in 10^digits per counter), and a code
/// someone watched being typed must not work twice: the caller refuses it as a replay,
/// which costs a user whose next code happens to repeat the last one a second press.
/// Only the last used code: once the user has logged in again, an older watched code can
/// still match a twin ahead in the window, with the odds of any guess (about window in
/// 10^digits), so it is worth no more to whoever watched than a random code.
pub fn repeats_last_used(token: &Token, code: &str) -> bool {
    token.kind == TokenKind::Hotp
        && token.counter > 0
        && code.len() == token.digits as usize
        && code_eq(
            &hotp_code(
                &token.secret,
                token.algorithm,
                token.digits,
                token.counter - 1,
            ),
            code,
        )
}

/// Whether `code` is the code of one of the `span` counters before the last used one
/// (`token.counter - 1 - span ..= token.counter - 2`): a code the token showed before its
/// last used one, used or skipped, never accepted again. The caller asks only of a code
/// that matched nothing ahead (a twin ahead is a fresh code, and [`repeats_last_used`]
/// says why an older watched code is worth no more than a guess there), and refuses it
/// uncounted as older than the last one used: a user typing a code from an earlier press
/// again is no guesser, and TOTP's earlier steps are refused so too. Every counter is
/// computed and compared in constant time, as [`match_hotp`] does.
pub fn older_than_last_used(token: &Token, code: &str, span: u64) -> bool {
    if token.kind != TokenKind::Hotp || token.counter < 2 || code.len() != token.digits as usize {
        return false;
    }
    let last_used = token.counter - 1;
    let from = last_used.saturating_sub(span);
    let mut matched = false;
    for c in from..last_used {
        matched |= code_eq(
            &hotp_code(&token.secret, token.algorithm, token.digits, c),
            code,
        );
    }
    matched
}

/// Finds `c` in `[token.counter, token.counter + window]` with `code1` = code(c) and
/// `code2` = code(c + 1); returns `c + 1`, the counter of the second code. Two consecutive
/// codes make a false match over a wide window unlikely (about window / 10^(2·digits)),
/// where one code alone would match by chance once in 10^digits / window tries.
pub fn find_consecutive(token: &Token, code1: &str, code2: &str, window: u64) -> Option<u64> {
    if token.kind != TokenKind::Hotp
        || code1.len() != token.digits as usize
        || code2.len() != token.digits as usize
    {
        return None;
    }
    let code = |c: u64| hotp_code(&token.secret, token.algorithm, token.digits, c);
    let mut previous = code(token.counter);
    for c in counters(token.counter, window) {
        let next = code(c.checked_add(1)?);
        if code_eq(&previous, code1) && code_eq(&next, code2) {
            return Some(c + 1);
        }
        previous = next;
    }
    None
}

/// Self-service resynchronisation's first half: the counter of `code` in the resync range
/// beyond the normal window, `(counter + window, counter + resync_window]`: the first one,
/// if the code comes up more than once there. The caller only remembers that one (the
/// counter after it); [`completes_resync`] finds the code's other counters again.
pub fn match_beyond_window(
    token: &Token,
    code: &str,
    window: u64,
    resync_window: u64,
) -> Option<u64> {
    if token.kind != TokenKind::Hotp || code.len() != token.digits as usize {
        return None;
    }
    let start = token.counter.checked_add(window)?.checked_add(1)?;
    let span = resync_window.saturating_sub(window + 1);
    let mut matched = None;
    for c in counters(start, span) {
        let ok = code_eq(
            &hotp_code(&token.secret, token.algorithm, token.digits, c),
            code,
        );
        if ok && matched.is_none() {
            matched = Some(c);
        }
    }
    matched
}

/// The most counters of the first code a resync's second code is tried after. A code
/// comes up again in the resync range by chance (about `resync_window` in 10^digits: one
/// resync in ten at the largest range), so its owner's press may follow any of its
/// counters; but each one tried is one more second code that finishes the resync, which
/// is what a guesser aims at. Two or three are all a real range holds (eight twins of one
/// code in 100000 counters: about one in 10^12); the cap bounds a guesser's odds whatever
/// the range.
const RESYNC_TWINS: usize = 8;

/// Self-service resynchronisation's second half: the counter of `code` when it is the code
/// right after one of the counters of the first code, which [`match_beyond_window`] found
/// first at `expected - 1` (the pending resync stores `expected`). The first code may also
/// come up later in the resync range, at the counter the user really pressed: only the
/// first one's successor was taken, and the user's next code was refused as out of sync.
/// The first code's counters are found again from the seed, so nothing but `expected` is
/// stored. The earliest match wins. Every counter of the range is computed and compared in
/// constant time, as [`match_hotp`] does.
pub fn completes_resync(
    token: &Token,
    expected: u64,
    code: &str,
    resync_window: u64,
) -> Option<u64> {
    if token.kind != TokenKind::Hotp || code.len() != token.digits as usize {
        return None;
    }
    let first_at = expected.checked_sub(1)?;
    let last = token.counter.saturating_add(resync_window);
    // Past the range (`resync_window` lowered since the first code came): no resync.
    if first_at > last {
        return None;
    }
    let hotp = |c: u64| hotp_code(&token.secret, token.algorithm, token.digits, c);
    let first = hotp(first_at);
    let mut twins = 0;
    let mut matched = None;
    let mut previous = first.clone();
    for c in counters(first_at, last.saturating_sub(first_at)) {
        let next = hotp(c.checked_add(1)?);
        let twin = code_eq(&previous, &first) && twins < RESYNC_TWINS;
        if twin {
            twins += 1;
        }
        if twin && code_eq(&next, code) && matched.is_none() {
            matched = Some(c + 1);
        }
        previous = next;
    }
    matched
}

#[cfg(test)]
mod tests {

    /// Seeds that HMAC treats as one key give the same codes, and have one key form;
    /// a seed that differs in a byte other than trailing zeros does not.
    #[test]
    fn seeds_that_give_the_same_codes_have_one_key_form() {
        let seed = b"12345678901234567890".to_vec();
        let padded = [seed.clone(), vec![0; 7]].concat();
        let long: Vec<u8> = (0..80u8).collect();
        let digest = {
            use sha2::Digest;
            sha1::Sha1::digest(&long).to_vec()
        };
        let long512: Vec<u8> = (0..130u8).collect();
        let digest512 = {
            use sha2::Digest;
            sha2::Sha512::digest(&long512).to_vec()
        };
        let code = |s: &[u8], alg| hotp_code(&Secret::new(s), alg, 8, 7);
        for (a, b, alg) in [
            (&seed, &padded, OtpAlgorithm::Sha1),
            (&seed, &padded, OtpAlgorithm::Sha256),
            (&seed, &padded, OtpAlgorithm::Sha512),
            (&long, &digest, OtpAlgorithm::Sha1),
            (&long512, &digest512, OtpAlgorithm::Sha512),
        ] {
            assert_eq!(code(a, alg), code(b, alg), "{alg:?}");
            assert_eq!(hmac_key_form(alg, a), hmac_key_form(alg, b), "{alg:?}");
        }
        // 80 bytes is within SHA-512's block: not hashed, so not its SHA-1 digest's form.
        assert_ne!(
            hmac_key_form(OtpAlgorithm::Sha512, &long),
            hmac_key_form(OtpAlgorithm::Sha512, &digest)
        );
        let mut other = seed.clone();
        other[0] ^= 1;
        assert_ne!(
            hmac_key_form(OtpAlgorithm::Sha1, &seed),
            hmac_key_form(OtpAlgorithm::Sha1, &other)
        );
        let leading = [vec![0], seed.clone()].concat();
        assert_ne!(
            hmac_key_form(OtpAlgorithm::Sha1, &seed),
            hmac_key_form(OtpAlgorithm::Sha1, &leading)
        );
    }
    use super::*;

    const SEED: &[u8] = b"12345678901234567890";

    fn token(counter: u64, digits: u32) -> Token {
        Token {
            id: 1,
            serial: "h".into(),
            user: None,
            kind: TokenKind::Hotp,
            algorithm: OtpAlgorithm::Sha1,
            digits,
            period: 0,
            counter,
            last_step: None,
            enabled: true,
            created_at: 0,
            secret: Secret::new(SEED.to_vec()),
        }
    }

    /// RFC 4226 Appendix D.
    const RFC4226: [&str; 10] = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];

    #[test]
    fn rfc4226_appendix_d_vectors() {
        let s = Secret::new(SEED.to_vec());
        for (c, want) in RFC4226.iter().enumerate() {
            assert_eq!(
                hotp_code(&s, OtpAlgorithm::Sha1, 6, c as u64),
                *want,
                "count {c}"
            );
        }
    }

    #[test]
    fn sha2_and_eight_digits_match_rfc6238_at_counter_1() {
        // RFC 6238 Appendix B, T = 59 s: TOTP is HOTP with counter floor(59 / 30) = 1.
        let s256 = Secret::new(b"12345678901234567890123456789012".to_vec());
        let s512 = Secret::new(
            b"1234567890123456789012345678901234567890123456789012345678901234".to_vec(),
        );
        let s1 = Secret::new(SEED.to_vec());
        assert_eq!(hotp_code(&s1, OtpAlgorithm::Sha1, 8, 1), "94287082");
        assert_eq!(hotp_code(&s256, OtpAlgorithm::Sha256, 8, 1), "46119246");
        assert_eq!(hotp_code(&s512, OtpAlgorithm::Sha512, 8, 1), "90693936");
    }

    #[test]
    fn window_finds_the_first_match_ahead_only() {
        let t = token(3, 6);
        assert_eq!(match_hotp(&t, RFC4226[3], 10), Some(3));
        assert_eq!(match_hotp(&t, RFC4226[8], 10), Some(8));
        assert_eq!(match_hotp(&t, RFC4226[8], 4), None, "beyond the window");
        assert_eq!(match_hotp(&t, RFC4226[2], 10), None, "behind the counter");
        assert_eq!(match_hotp(&t, "75522", 10), None, "wrong length");
    }

    #[test]
    fn resync_needs_two_consecutive_codes() {
        let t = token(0, 6);
        assert_eq!(find_consecutive(&t, RFC4226[6], RFC4226[7], 1000), Some(7));
        assert_eq!(find_consecutive(&t, RFC4226[7], RFC4226[6], 1000), None);
        assert_eq!(find_consecutive(&t, RFC4226[5], RFC4226[7], 1000), None);
        assert_eq!(find_consecutive(&t, RFC4226[6], RFC4226[7], 5), None);
    }

    #[test]
    fn beyond_window_range_excludes_the_normal_window() {
        let t = token(0, 6);
        assert_eq!(match_beyond_window(&t, RFC4226[2], 3, 1000), None);
        assert_eq!(match_beyond_window(&t, RFC4226[3], 3, 1000), None);
        assert_eq!(match_beyond_window(&t, RFC4226[4], 3, 1000), Some(4));
        assert_eq!(match_beyond_window(&t, RFC4226[9], 3, 8), None);
    }

    /// The second code of a resync is the code after any counter of the first code in the
    /// range, not only after the first one found: a pair of counters with one code, found
    /// by search over the seed, shows it.
    #[test]
    fn a_resync_completes_after_any_counter_of_the_first_code() {
        let t = token(0, 6);
        let at = |c: u64| hotp_code(&t.secret, t.algorithm, 6, c);
        let mut seen = std::collections::HashMap::new();
        let (twin, pressed) = (11u64..)
            .find_map(|c| seen.insert(at(c), c).map(|earlier| (earlier, c)))
            .unwrap();
        assert_eq!(at(twin), at(pressed), "a twin");
        assert!(at(twin + 1) != at(pressed + 1) && pressed <= 100_000);
        let found = match_beyond_window(&t, &at(pressed), 10, 100_000);
        assert_eq!(found, Some(twin), "the first one is what is remembered");
        let expected = twin + 1;
        assert_eq!(
            completes_resync(&t, expected, &at(pressed + 1), 100_000),
            Some(pressed + 1)
        );
        assert_eq!(
            completes_resync(&t, expected, &at(twin + 1), 100_000),
            Some(twin + 1)
        );
        // Not after a counter of the first code: a press skipped, or one behind.
        assert_eq!(
            completes_resync(&t, expected, &at(pressed + 2), 100_000),
            None
        );
        assert_eq!(completes_resync(&t, expected, &at(twin), 100_000), None);
        // Not past the range: the twin beyond it is not the first code's any more.
        assert_eq!(
            completes_resync(&t, expected, &at(pressed + 1), pressed - 1),
            None
        );
    }

    /// RFC 4226's vectors: the code after the remembered counter finishes a resync.
    #[test]
    fn a_resync_completes_with_the_next_code() {
        let t = token(0, 6);
        assert_eq!(completes_resync(&t, 5, RFC4226[5], 1000), Some(5));
        assert_eq!(completes_resync(&t, 5, RFC4226[6], 1000), None);
        assert_eq!(
            completes_resync(&t, 5, RFC4226[5], 3),
            None,
            "past the range"
        );
        assert_eq!(completes_resync(&t, 5, "25467", 1000), None, "wrong length");
    }

    #[test]
    fn counter_at_the_top_does_not_overflow() {
        let t = token(u64::MAX - 1, 6);
        let at = |c: u64| hotp_code(&t.secret, t.algorithm, 6, c);
        // The counters that remain are found; the window does not wrap round to 0.
        assert_eq!(match_hotp(&t, &at(u64::MAX - 1), 10), Some(u64::MAX - 1));
        assert_eq!(match_hotp(&t, &at(u64::MAX), 10), Some(u64::MAX));
        assert_eq!(
            match_hotp(&t, RFC4226[0], 10),
            None,
            "counter 0 after a wrap"
        );
        assert_eq!(
            match_hotp(&t, RFC4226[1], 10),
            None,
            "counter 1 after a wrap"
        );
        assert_eq!(find_consecutive(&t, "000000", "111111", 10), None);
        assert_eq!(match_beyond_window(&t, "000000", 10, 100), None);
        assert_eq!(completes_resync(&t, u64::MAX, "000000", 100), None);
    }
}
