//! TOTP (RFC 6238) verification with replay protection.
//!
//! Code generation is `totp-rs`; we call it per time step rather than using its `check`,
//! because replay protection needs to know *which* step matched: the store keeps the last
//! accepted step per token and accepts only a later one, atomically.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use crate::secret::Secret;
use crate::store::{OtpAlgorithm, Token, TokenKind};

/// How far behind a TOTP token's clock may be set (a resync, a PSKC file's `TimeDrift`)
/// without the admin saying it is (`--clock-behind`): a hardware token's clock loses minutes
/// a year, not hours, and a drift that far back would let in codes seen on its display long
/// ago (filmed, say).
pub const SLOW_CLOCK_LIMIT_SECS: i64 = 20 * 60;

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
    TotpCodes::new(secret, algorithm, digits, period).at(step)
}

/// One token's codes at any time step. A check with `window = 10` computes 21 codes: the
/// seed is copied and totp-rs set up once per check rather than once per step (that setup
/// was about 40 % of the check's CPU; the rest is the HMACs themselves).
pub struct TotpCodes {
    totp: TOTP,
    period: u64,
}

impl TotpCodes {
    pub fn new(secret: &Secret, algorithm: OtpAlgorithm, digits: u32, period: u32) -> Self {
        // `new_unchecked`: imported hardware seeds may be shorter than totp-rs's 128-bit
        // minimum.
        let totp = TOTP::new_unchecked(
            totp_algorithm(algorithm),
            digits as usize,
            0,
            u64::from(period),
            secret.expose().to_vec(),
        );
        TotpCodes {
            totp,
            period: u64::from(period),
        }
    }

    /// The code of time step `step` (steps before the epoch count as step 0).
    pub fn at(&self, step: i64) -> String {
        self.totp.generate(step.max(0) as u64 * self.period)
    }
}

impl Drop for TotpCodes {
    /// The seed's copy goes as `Secret` itself goes: overwritten.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.totp.secret);
    }
}

/// `code` as typed, made plain: without the spaces or dashes apps and hardware tokens show
/// codes in groups with ("123 456", "123-456"), a line's end or a field's trailing space,
/// and with full-width digits (an East Asian input method's "１２３４５６") made ASCII.
/// Anything else stays, to be refused as no code. Left in, each was refused as "not a
/// code" and counted as a wrong guess. Borrowed when there is nothing to change (nearly
/// always).
pub fn plain_code(code: &str) -> std::borrow::Cow<'_, str> {
    if code.bytes().all(|b| b.is_ascii_digit()) {
        return std::borrow::Cow::Borrowed(code);
    }
    let plain = code.chars().filter_map(|c| match c {
        '-' | '\u{FF0D}' => None,
        c if c.is_whitespace() => None,
        '\u{FF10}'..='\u{FF19}' => char::from_digit(u32::from(c) - 0xFF10, 10),
        c => Some(c),
    });
    std::borrow::Cow::Owned(plain.collect())
}

/// Something typed as a code, once [`plain_code`]: 4 to 10 digits. One of a length no
/// token has is a mistyped code, a wrong one; anything else is no code at all, and no
/// guess at one.
pub fn is_code_attempt(plain: &str) -> bool {
    (4..=10).contains(&plain.len()) && plain.bytes().all(|b| b.is_ascii_digit())
}

/// Does `code` look like an OTP at all (digits only, 6 to 8 of them)?
pub fn looks_like_code(code: &str) -> bool {
    (6..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

/// Finds the time step within ±`window` of `now` whose code equals `code`.
///
/// Every step in the window is computed and compared in constant time, so the time taken
/// does not tell how close a guess was. Returns the matched step: of two showing the
/// same code, the nearer now; none when the code is also a used step's (see
/// [`match_totp_with_drift`]).
pub fn match_totp(token: &Token, code: &str, now: i64, window: u32) -> Option<i64> {
    match_totp_with_drift(token, code, now, window, 0)
}

/// The time step the token shows at `now` by our clock.
pub fn current_step(token: &Token, now: i64) -> i64 {
    now / i64::from(token.period.max(1))
}

/// The steps a code is looked for in: `window` steps either side of now, and as many either
/// side of where the token's learned drift puts it (each once). Both: one accepted code a
/// step early (a token a few seconds fast, read just after its display changed) stores a
/// drift of +1, and a window around that alone would refuse the next code typed slowly
/// enough to be a step late, though it is within `window` of now; with several nodes, a
/// drift learned against one node's clock would refuse good codes on another's. With no
/// drift, the window alone (2·window+1 steps); with one, at most twice that.
fn search_ranges(
    token: &Token,
    now: i64,
    window: u32,
    drift: i64,
) -> [std::ops::RangeInclusive<i64>; 2] {
    let now_step = current_step(token, now);
    let w = window as i64;
    let drifted = now_step.saturating_add(drift);
    [
        (now_step - w)..=(now_step + w),
        (drifted - w)..=(drifted + w),
    ]
}

/// The steps whose codes a code is compared with, to refuse one a used step showed: each of
/// the [`search_ranges`] with the `2·window` steps below it. A code accepted at step `s`
/// whose twin `s'` lies ahead leaves `s'` unused; once the window has moved past `s` but
/// not `s'`, the same code, replayed, would match `s'`. [`match_totp_with_drift`] takes no
/// step more than `2·window` below an unused twin, so while `s'` is in one of the ranges,
/// `s` is in that range or in the `2·window` steps below it, and the code is found used
/// there. Below each range, not only the lower one: with a drift of more than `2·window`
/// the ranges lie apart, and `s` can sit in the gap between them.
fn compared_steps(token: &Token, now: i64, window: u32, drift: i64) -> impl Iterator<Item = i64> {
    let below = 2 * i64::from(window);
    let [plain, around_drift] = search_ranges(token, now, window, drift);
    let extend = |r: std::ops::RangeInclusive<i64>| (r.start() - below)..=*r.end();
    let (plain, around_drift) = (extend(plain), extend(around_drift));
    let first = plain.clone();
    plain.chain(around_drift.filter(move |s| !first.contains(s)))
}

/// [`match_totp`] with the window also centred on the token's learned clock drift (in
/// steps), so a hardware token whose clock has wandered keeps working: each accepted code
/// re-centres it (the caller stores `matched - current_step` as the new drift). See
/// [`search_ranges`].
pub fn match_totp_with_drift(
    token: &Token,
    code: &str,
    now: i64,
    window: u32,
    drift: i64,
) -> Option<i64> {
    if token.kind != TokenKind::Totp || token.period == 0 || code.len() != token.digits as usize {
        return None;
    }
    // Every step of the window is computed and compared (no early exit), so the time taken
    // does not tell which step matched. With 2·window+1 steps, two steps showing the same
    // code happens about once in 50,000 codes at window 10. Of two unused twins, the one
    // nearest where the token's clock is taken: it is the step the user most likely read,
    // and the drift learned from it is the token's, not a twin's. The earlier rule took the
    // latest, to use the code up for good; when that twin was steps ahead, every code the
    // user typed until it passed was refused as used (minutes at window 10, and the load
    // generator's few unexplained Rejects). Used up for good it still is: a code that is
    // also the code of a used step is refused, as the replay it may be — in the window, and
    // in the `2·window` steps below it, where the step it was accepted at may have gone
    // while its twin ahead is still in the window ([`compared_steps`]). That costs a user
    // whose fresh code happens to repeat a used one (about one login in 30,000 at window
    // 10) a second try at the next step — as HOTP does (`hotp::repeats_last_used`).
    let codes = TotpCodes::new(&token.secret, token.algorithm, token.digits, token.period);
    let expected = current_step(token, now).saturating_add(drift);
    let [plain, around_drift] = search_ranges(token, now, window, drift);
    let mut twins: Vec<i64> = Vec::new();
    let mut repeats_used = false;
    // Each step's code computed once: for the match (the searched steps) and for the used
    // steps it may repeat (`compared_steps`, which holds the searched ones).
    for step in compared_steps(token, now, window, drift) {
        // Steps before the epoch (a clock not yet set, or a large drift) are not steps: they
        // would all show step 0's code, and each would count as a fresh use of it.
        if step < 0 {
            continue;
        }
        let same = bool::from(codes.at(step).as_bytes().ct_eq(code.as_bytes()));
        let used = token.last_step.is_some_and(|last| step <= last);
        repeats_used |= same && used;
        let searched = plain.contains(&step) || around_drift.contains(&step);
        if same && !used && searched {
            twins.push(step);
        }
    }
    // Only a step no more than 2·window below every unused twin may be taken: a twin
    // further ahead (possible with a learned drift, whose range lies apart from now's)
    // could still be in the window when the taken step is below the reach of
    // [`compared_steps`], and the code would be accepted there again. Among those, the
    // nearest `expected`; the highest twin always qualifies.
    let highest = twins.iter().copied().max();
    let w2 = 2 * i64::from(window);
    let matched = twins
        .iter()
        .copied()
        .filter(|&s| highest.is_some_and(|h| h - s <= w2))
        .min_by_key(|&s| ((s - expected).abs(), s));
    // A step already used (or earlier) never verifies again; the store enforces this
    // atomically, this is just the cheap early answer.
    if repeats_used {
        None
    } else {
        matched
    }
}

/// Whether `code` is the code of a step in the window that is already used up: a code typed
/// twice, or replayed by someone who saw it. Asked before any of the user's tokens is
/// checked (`second_factor::check_code`), and again when this one matched nothing, so that
/// the audit can say "code already used" rather than "wrong code".
pub fn used_before(token: &Token, code: &str, now: i64, window: u32, drift: i64) -> bool {
    if token.last_step.is_none()
        || token.kind != TokenKind::Totp
        || token.period == 0
        || code.len() != token.digits as usize
    {
        return false;
    }
    let Some(last) = token.last_step else {
        return false;
    };
    let codes = TotpCodes::new(&token.secret, token.algorithm, token.digits, token.period);
    // The same used steps compared as in the match itself.
    compared_steps(token, now, window, drift)
        .filter(|&step| step >= 0 && step <= last)
        .fold(false, |found, step| {
            found | bool::from(codes.at(step).as_bytes().ct_eq(code.as_bytes()))
        })
}

/// Whether `code` is the code of the very step the token used last: a replay, where a
/// [`used_before`] code of an earlier step is older than the last used one (a code from
/// minutes ago, skipped or used: only the last step is known).
pub fn is_last_step_code(token: &Token, code: &str) -> bool {
    let Some(last) = token.last_step.filter(|&l| l >= 0) else {
        return false;
    };
    token.kind == TokenKind::Totp
        && token.period > 0
        && code.len() == token.digits as usize
        && bool::from(
            TotpCodes::new(&token.secret, token.algorithm, token.digits, token.period)
                .at(last)
                .as_bytes()
                .ct_eq(code.as_bytes()),
        )
}

/// How far from this server's clock (seconds, negative: behind) the token shows `code`:
/// the step nearest now, within `reach_secs` of it, outside the steps a login searches
/// ([`search_ranges`]) and after the last one used. For a wrong code's audit reason only
/// (a phone or token whose clock is minutes off, which `radmfa token resync` mends): it
/// accepts nothing, and runs after the code was refused and counted. Every step is
/// computed (2·reach/period codes, 40 at ±10 minutes of 30 s), so the time does not tell
/// whether one matched.
pub fn clock_offset(
    token: &Token,
    code: &str,
    now: i64,
    window: u32,
    drift: i64,
    reach_secs: i64,
) -> Option<i64> {
    if token.kind != TokenKind::Totp || token.period == 0 || code.len() != token.digits as usize {
        return None;
    }
    let period = i64::from(token.period);
    let codes = TotpCodes::new(&token.secret, token.algorithm, token.digits, token.period);
    let current = current_step(token, now);
    let reach = reach_secs / period;
    let [plain, around_drift] = search_ranges(token, now, window, drift);
    ((current - reach)..=(current + reach))
        .filter(|s| *s >= 0 && !plain.contains(s) && !around_drift.contains(s))
        .filter(|s| token.last_step.is_none_or(|last| *s > last))
        .fold(None, |nearest: Option<i64>, s| {
            let same = bool::from(codes.at(s).as_bytes().ct_eq(code.as_bytes()));
            let nearer = nearest.is_none_or(|n| (s - current).abs() < (n - current).abs());
            if same && nearer {
                Some(s)
            } else {
                nearest
            }
        })
        .map(|s| (s - current) * period)
}

/// `radmfa token resync` for TOTP: the step `s` within ±`range` steps of now (the drift
/// left out: this is what finds it) where `code1` = code(s) and `code2` = code(s + 1). Returns `s + 1`.
pub fn find_consecutive_steps(
    token: &Token,
    code1: &str,
    code2: &str,
    now: i64,
    range: i64,
) -> Option<i64> {
    if token.kind != TokenKind::Totp
        || token.period == 0
        || code1.len() != token.digits as usize
        || code2.len() != token.digits as usize
    {
        return None;
    }
    let codes = TotpCodes::new(&token.secret, token.algorithm, token.digits, token.period);
    let code = |s: i64| codes.at(s);
    let current = current_step(token, now);
    let mut found = None;
    let mut previous = code(current - range);
    for s in (current - range)..=(current + range) {
        let next = code(s + 1);
        let hit = bool::from(previous.as_bytes().ct_eq(code1.as_bytes()))
            & bool::from(next.as_bytes().ct_eq(code2.as_bytes()));
        if hit {
            found = Some(s + 1);
        }
        previous = next;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As tokens, apps and input methods write codes: spaces, dashes, full-width digits.
    #[test]
    fn a_code_is_made_plain_as_typed() {
        for typed in [
            "426679",
            "426 679",
            "426-679",
            "426679 ",
            " 426-679\n",
            "４２６６７９",
            "４２６－６７９",
        ] {
            assert_eq!(plain_code(typed), "426679", "{typed:?}");
            assert!(is_code_attempt(&plain_code(typed)), "{typed:?}");
        }
        assert!(matches!(
            plain_code("426679"),
            std::borrow::Cow::Borrowed(_)
        ));
        for typed in ["abc", "12", "12345678901", "42667x", "", "--", "pass word"] {
            assert!(!is_code_attempt(&plain_code(typed)), "{typed:?}");
        }
        assert!(is_code_attempt("1234") && is_code_attempt("1234567890"));
    }

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

    /// A code of a time minutes off is found for the audit, ahead or behind, but not one the
    /// window searches, nor one at or before the last used step, nor one past the reach.
    #[test]
    fn a_code_minutes_off_tells_how_far() {
        let mut t = token(SEED1, OtpAlgorithm::Sha1, 6);
        let now = 1111111111;
        let cur = now / 30;
        let at = |s: i64| totp_code(&t.secret, t.algorithm, 6, 30, s);
        assert_eq!(clock_offset(&t, &at(cur + 6), now, 1, 0, 600), Some(180));
        assert_eq!(clock_offset(&t, &at(cur - 6), now, 1, 0, 600), Some(-180));
        assert_eq!(
            clock_offset(&t, &at(cur + 1), now, 1, 0, 600),
            None,
            "in the window"
        );
        assert_eq!(
            clock_offset(&t, &at(cur + 6), now, 1, 6, 600),
            None,
            "the drift's"
        );
        assert_eq!(
            clock_offset(&t, &at(cur + 30), now, 1, 0, 600),
            None,
            "past reach"
        );
        t.last_step = Some(cur - 3);
        assert_eq!(
            clock_offset(&t, &at(cur - 6), now, 1, 0, 600),
            None,
            "used or older"
        );
    }

    #[test]
    fn a_used_code_is_told_from_a_wrong_one() {
        let mut t = token(SEED1, OtpAlgorithm::Sha1, 6);
        let now = 1111111111;
        let cur = now / 30;
        let code = totp_code(&t.secret, t.algorithm, 6, 30, cur);
        assert!(!used_before(&t, &code, now, 1, 0), "nothing used yet");
        t.last_step = Some(cur);
        assert!(used_before(&t, &code, now, 1, 0));
        // The step before the current one, also used up (last_step is the highest used).
        let earlier = totp_code(&t.secret, t.algorithm, 6, 30, cur - 1);
        assert!(used_before(&t, &earlier, now, 1, 0));
        // The next step's code is not used yet; a code of no step in the window never was.
        let next = totp_code(&t.secret, t.algorithm, 6, 30, cur + 1);
        assert!(!used_before(&t, &next, now, 1, 0));
        let wrong = (0..1_000_000)
            .map(|n| format!("{n:06}"))
            .find(|c| {
                ((cur - 1)..=(cur + 1)).all(|s| totp_code(&t.secret, t.algorithm, 6, 30, s) != *c)
            })
            .unwrap();
        assert!(!used_before(&t, &wrong, now, 1, 0));
    }

    #[test]
    fn of_two_steps_showing_the_same_code_the_nearest_wins_and_the_code_is_used_up() {
        // With 1-digit codes, several of the 21 steps of a ±10 window show the same code.
        let mut t = token(SEED1, OtpAlgorithm::Sha1, 1);
        let code_at = |s: i64| totp_code(&t.secret, t.algorithm, 1, 30, s);
        let twins_of = |cur: i64| -> Vec<i64> {
            ((cur - 10)..=(cur + 10))
                .filter(|s| code_at(*s) == code_at(cur))
                .collect()
        };
        // The first step from here whose code shows again within the window ahead, and
        // whose next step's code repeats none as far back as a used step is looked for.
        let cur = (1111111111 / 30..)
            .find(|&c| {
                twins_of(c).iter().any(|&s| s > c)
                    && (c - 30..=c).all(|s| code_at(s) != code_at(c + 1))
            })
            .unwrap();
        let now = cur * 30 + 7;
        let code = code_at(cur);
        let twins = twins_of(cur);
        assert_eq!(match_totp(&t, &code, now, 10), Some(cur), "the step of now");
        // Consumed (the store keeps the highest step used): the code works once, whichever
        // of its steps the user meant, though a twin ahead is unused.
        t.last_step = Some(cur);
        assert_eq!(match_totp(&t, &code, now, 10), None, "a replay of the code");
        assert!(used_before(&t, &code, now, 10, 0), "told apart as a replay");
        // The twin ahead does not hold the user's next codes up until it passes (the latest
        // twin used to be taken): the next step's code works.
        let next = code_at(cur + 1);
        assert_eq!(match_totp(&t, &next, now + 30, 10), Some(cur + 1));
        // The code accepted at `cur`, replayed once the window has moved past `cur` but not
        // past its twin ahead: still refused, as used.
        let ahead = *twins.iter().find(|&&s| s > cur).unwrap();
        let later = (ahead + 10) * 30 + 5;
        assert!(later / 30 - 10 > cur, "cur is out of the window then");
        assert_eq!(match_totp(&t, &code, later, 10), None, "replayed later");
        assert!(
            used_before(&t, &code, later, 10, 0),
            "told apart as a replay"
        );
        // Of two unused twins, the one nearest the token's learned drift.
        t.last_step = None;
        assert_eq!(
            match_totp_with_drift(&t, &code, now, 10, ahead - cur),
            Some(ahead)
        );
    }

    /// With a learned drift the search covers two ranges apart, and a twin in the upper one
    /// can lie more than 2·window above the step nearest the drift. Taking that nearer step
    /// would leave the twin unused and out of the look-back's reach once the window moves
    /// on, so the code could be replayed there: the twin is taken instead.
    #[test]
    fn a_twin_far_ahead_in_the_other_range_is_taken_not_left_open() {
        let mut t = token(SEED1, OtpAlgorithm::Sha1, 1);
        let (w, drift) = (2u32, -20i64);
        let code_at = |s: i64| totp_code(&t.secret, t.algorithm, 1, 30, s);
        // A step whose drifted step shows its code: one near the drift, one 20 above.
        let cur = (1111111111 / 30..)
            .find(|&c| {
                code_at(c) == code_at(c + drift)
                    && (c + drift + 1..c).all(|s| code_at(s) != code_at(c))
            })
            .unwrap();
        let now = cur * 30 + 7;
        let code = code_at(cur);
        assert_eq!(
            match_totp_with_drift(&t, &code, now, w, drift),
            Some(cur),
            "the twin far ahead, not the one at the drift"
        );
        // Used there, none of the steps that showed the code then is taken again, while
        // the window moves on (a step that comes to show it later is another matter: with
        // one digit, every tenth).
        let [plain, around_drift] = search_ranges(&t, now, w, drift);
        let then: Vec<i64> = plain
            .chain(around_drift)
            .filter(|&s| code_at(s) == code)
            .collect();
        t.last_step = Some(cur);
        for later in (0..40).map(|k| now + 30 * k) {
            let got = match_totp_with_drift(&t, &code, later, w, drift);
            assert!(
                !got.is_some_and(|s| then.contains(&s)),
                "{got:?} of {then:?} at step {}",
                later / 30
            );
        }
    }

    /// A token whose clock runs fast (a drift above 2·window): the search's two ranges lie
    /// apart. A code taken near the drift with its twin just above stays refused once the
    /// step it was taken at has dropped into the gap between the ranges, while the twin is
    /// still in the upper one (found by a review: the look-back went below the lower range
    /// only, and the code was accepted again at its twin).
    #[test]
    fn a_used_step_in_the_gap_between_the_ranges_still_refuses_its_code() {
        let mut t = token(SEED1, OtpAlgorithm::Sha1, 1);
        let (w, drift) = (1u32, 10i64);
        let code_at = |s: i64| totp_code(&t.secret, t.algorithm, 1, 30, s);
        // A step whose drifted step's code shows again one step on, and on none of the
        // steps compared two steps later below the upper range (all before the step used,
        // they would refuse the code by themselves).
        let cur = (1111111111 / 30..)
            .find(|&c| {
                let code = code_at(c + drift);
                code_at(c + drift + 1) == code
                    && code_at(c + drift - 1) != code
                    && (c - 1..=c + 3).all(|s| code_at(s) != code)
            })
            .unwrap();
        let code = code_at(cur + drift);
        let now = cur * 30 + 5;
        let got = match_totp_with_drift(&t, &code, now, w, drift);
        assert_eq!(got, Some(cur + drift), "the step at the drift");
        t.last_step = got;
        // Two steps on: the ranges are now [cur+1, cur+3] and [cur+11, cur+13], the step
        // taken (cur+10) between them, its twin (cur+11) in the upper one.
        let later = (cur + 2) * 30 + 5;
        assert_eq!(match_totp_with_drift(&t, &code, later, w, drift), None);
        assert!(
            used_before(&t, &code, later, w, drift),
            "told apart as a replay"
        );
    }

    #[test]
    fn steps_before_the_epoch_never_verify() {
        // At 15 s past the epoch with window 1, steps -1 and 0 would both show step 0's code.
        let mut t = token(SEED1, OtpAlgorithm::Sha1, 8);
        let code0 = totp_code(&t.secret, t.algorithm, 8, 30, 0);
        assert_eq!(match_totp(&t, &code0, 15, 1), Some(0));
        t.last_step = Some(0);
        assert_eq!(match_totp(&t, &code0, 15, 1), None, "used once only");
        // A drift pointing before the epoch finds nothing there either: the step found is
        // the one at now, and once used, nothing.
        t.last_step = None;
        assert_eq!(match_totp_with_drift(&t, &code0, 15, 1, -5), Some(0));
        t.last_step = Some(0);
        assert_eq!(match_totp_with_drift(&t, &code0, 15, 1, -5), None);
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
    fn window_follows_the_learned_drift() {
        let t = token(SEED1, OtpAlgorithm::Sha1, 6);
        let now = 1111111111;
        let step = now / 30;
        let ahead = totp_code(&t.secret, t.algorithm, 6, 30, step + 4);
        assert_eq!(match_totp(&t, &ahead, now, 1), None);
        assert_eq!(match_totp_with_drift(&t, &ahead, now, 1, 3), Some(step + 4));
        assert_eq!(match_totp_with_drift(&t, &ahead, now, 1, -3), None);
    }

    #[test]
    fn consecutive_steps_find_a_far_drifted_token() {
        let t = token(SEED1, OtpAlgorithm::Sha1, 6);
        let now = 1234567890;
        let step = now / 30;
        let c = |s| totp_code(&t.secret, t.algorithm, 6, 30, s);
        assert_eq!(
            find_consecutive_steps(&t, &c(step - 40), &c(step - 39), now, 100),
            Some(step - 39)
        );
        assert_eq!(
            find_consecutive_steps(&t, &c(step - 40), &c(step - 38), now, 100),
            None
        );
        assert_eq!(
            find_consecutive_steps(&t, &c(step - 40), &c(step - 39), now, 10),
            None
        );
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
