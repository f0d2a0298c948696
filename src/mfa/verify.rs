//! One code against one token, with the state long-lived tokens need: TOTP drift, the HOTP
//! look-ahead window, self-service HOTP resynchronisation, and validity dates. Every
//! acceptance is consumed atomically in the store, so a code works once, on any node.

use crate::config::HotpConfig;
use crate::mfa::{hotp, otp};
use crate::store::{CounterUse, StepUse, Store, StoreError, TokenAsRead, TokenKind, TokenRecord};

/// How long a remembered out-of-window HOTP code waits for its successor.
pub const RESYNC_PENDING_SECS: i64 = 600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// The code verified and has been consumed.
    Accepted {
        mode: &'static str,
        /// Set when this code finished a self-service resynchronisation: the accept's audit
        /// reason.
        note: Option<String>,
    },
    /// The code matched but was used already (or a racing request consumed it first).
    Replayed,
    /// The code is one of a step (HOTP: a counter) before the last one the token used:
    /// older than the last code used, so never accepted now, but not necessarily used
    /// itself (skipped, say).
    Stale,
    /// The token was disabled, deleted or given to someone else since the login read it
    /// (TOTP: or replaced with another period).
    Withdrawn,
    /// HOTP self-service: the code lies beyond the window; remembered, waiting for the next.
    ResyncPending,
    /// The token is outside its validity period.
    NotValidNow,
    /// Not this token's code.
    NoMatch,
}

/// Settings that shape verification, taken from the config.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub totp_window: u32,
    pub hotp: HotpConfig,
}

impl VerifyOptions {
    /// The `[totp]` and `[hotp]` settings of `config`.
    pub fn of(config: &crate::config::Config) -> Self {
        VerifyOptions {
            totp_window: config.totp.window,
            hotp: config.hotp.clone(),
        }
    }
}

/// Enabled, and its seed opened: a record whose seed did not ([`crate::store::TokenExtra::
/// unreadable_seed`]) carries an empty one, which must match nothing.
fn usable(rec: &TokenRecord) -> bool {
    rec.token.enabled && rec.extra.unreadable_seed.is_none() && !rec.token.secret.is_empty()
}

/// Is the token usable at `now` by its validity dates?
pub fn valid_at(rec: &TokenRecord, now: i64) -> bool {
    validity_at(rec, now).is_none()
}

/// Why the token's validity dates refuse it at `now`: "expired" or "not yet valid"; `None`
/// within them. What the admin views show in place of "enabled", since every code of such a
/// token is refused ("token outside its validity period").
pub fn validity_at(rec: &TokenRecord, now: i64) -> Option<&'static str> {
    if rec.extra.valid_until.is_some_and(|u| now >= u) {
        Some("expired")
    } else if rec.extra.valid_from.is_some_and(|f| now < f) {
        Some("not yet valid")
    } else {
        None
    }
}

pub async fn verify_token(
    store: &dyn Store,
    opts: &VerifyOptions,
    rec: &TokenRecord,
    code: &str,
    now: i64,
) -> Result<TokenCheck, StoreError> {
    let t = &rec.token;
    if !usable(rec) {
        return Ok(TokenCheck::NoMatch);
    }
    if !valid_at(rec, now) {
        return Ok(TokenCheck::NotValidNow);
    }
    match t.kind {
        TokenKind::Totp => verify_totp(store, opts, rec, code, now).await,
        TokenKind::Hotp => verify_hotp(store, &opts.hotp, rec, code, now).await,
    }
}

/// How often a code is judged again after another login of the same token used a step (or
/// moved an HOTP counter) between this one's read and its write. Each retry means some login of this token was let
/// in meanwhile, so a few are plenty; past them the code is refused as used.
const RACE_RETRIES: usize = 3;

async fn verify_totp(
    store: &dyn Store,
    opts: &VerifyOptions,
    rec: &TokenRecord,
    code: &str,
    now: i64,
) -> Result<TokenCheck, StoreError> {
    // Copied (seed and all) only if a race makes it read again: not on every login.
    let mut t = std::borrow::Cow::Borrowed(&rec.token);
    let mut drift = rec.extra.drift;
    for _ in 0..=RACE_RETRIES {
        let Some(step) = otp::match_totp_with_drift(&t, code, now, opts.totp_window, drift) else {
            return Ok(
                if otp::used_before(&t, code, now, opts.totp_window, drift) {
                    if otp::is_last_step_code(&t, code) {
                        TokenCheck::Replayed
                    } else {
                        TokenCheck::Stale
                    }
                } else {
                    TokenCheck::NoMatch
                },
            );
        };
        let new_drift = step - otp::current_step(&t, now);
        match store
            .consume_totp_step_seen(
                t.id,
                TokenAsRead {
                    owner: t.user.as_deref(),
                    period: t.period,
                },
                t.last_step,
                step,
                new_drift,
            )
            .await?
        {
            StepUse::Taken => {
                return Ok(TokenCheck::Accepted {
                    mode: "totp",
                    note: None,
                })
            }
            // Another login of this token used a step since it was read: judged against
            // the step it used, this code may be a replay (the same code, or an older one)
            // or still a fresh later one (the user's second device, a code typed again a
            // step later), which would be refused for nothing if the stale reading decided.
            StepUse::Moved {
                last_step,
                drift: now_drift,
            } => {
                t.to_mut().last_step = last_step;
                drift = now_drift;
            }
            // Disabled, deleted, given to someone else or replaced with another period
            // meanwhile: not the token this login read.
            StepUse::Gone => return Ok(TokenCheck::Withdrawn),
        }
    }
    Ok(TokenCheck::Replayed)
}

/// Whether `code` is one this token would take now or has already used, by the readings
/// [`verify_token`] and [`is_replay`] make, without using anything up. Only for telling
/// where a password ends and a code begins (`inline_delimiter = ""` and tokens of several
/// lengths): a yes here is still checked, and consumed, as any code is.
pub fn fits(opts: &VerifyOptions, rec: &TokenRecord, code: &str, now: i64) -> bool {
    let t = &rec.token;
    if !usable(rec) || !valid_at(rec, now) || code.len() != t.digits as usize {
        return false;
    }
    is_replay(opts, rec, code, now)
        || match t.kind {
            TokenKind::Totp => {
                otp::match_totp_with_drift(t, code, now, opts.totp_window, rec.extra.drift)
                    .is_some()
            }
            TokenKind::Hotp => hotp::match_hotp(t, code, opts.hotp.window).is_some(),
        }
}

/// Whether `code` is one this token would take now were it enabled and within its validity
/// dates, by the reading [`verify_token`] makes, without using anything up. Only for a code
/// every usable token refused: the right code of a token the user cannot use now (expired,
/// not valid yet, disabled) is no guess, and is told as what it is
/// (`second_factor::check_code`), where "wrong code" counted it toward the lockout.
pub fn matches_unusable(opts: &VerifyOptions, rec: &TokenRecord, code: &str, now: i64) -> bool {
    let t = &rec.token;
    if rec.extra.unreadable_seed.is_some() || t.secret.is_empty() {
        return false;
    }
    match t.kind {
        TokenKind::Totp => {
            otp::match_totp_with_drift(t, code, now, opts.totp_window, rec.extra.drift).is_some()
        }
        TokenKind::Hotp => hotp::match_hotp(t, code, opts.hotp.window).is_some(),
    }
}

/// How far this token's clock seems off, in seconds (negative: behind), when `code` is its
/// code for a time up to [`CLOCK_HINT_REACH_SECS`] from now but outside the window: for a
/// wrong code's audit reason ([`otp::clock_offset`]). TOTP tokens that could check a code
/// now only.
pub fn clock_offset(opts: &VerifyOptions, rec: &TokenRecord, code: &str, now: i64) -> Option<i64> {
    if !usable(rec) || !valid_at(rec, now) || rec.token.kind != TokenKind::Totp {
        return None;
    }
    otp::clock_offset(
        &rec.token,
        code,
        now,
        opts.totp_window,
        rec.extra.drift,
        CLOCK_HINT_REACH_SECS,
    )
}

/// How far from now a wrong TOTP code is looked for to tell a clock that is off: a phone
/// set by hand, a hardware token gone a few minutes astray. Within `token resync`'s reach
/// of a slow clock ([`otp::SLOW_CLOCK_LIMIT_SECS`]).
pub const CLOCK_HINT_REACH_SECS: i64 = 10 * 60;

/// Whether `code` is one this token already used, by the same reading [`verify_token`]
/// makes (a used TOTP step in the window; the HOTP code just before the counter, or one of
/// the `[hotp] window` before it that no code ahead matches). Only reads: asked of every
/// token before any is checked (`second_factor::check_code`).
pub fn is_replay(opts: &VerifyOptions, rec: &TokenRecord, code: &str, now: i64) -> bool {
    let t = &rec.token;
    if !usable(rec) {
        return false;
    }
    match t.kind {
        TokenKind::Totp => otp::used_before(t, code, now, opts.totp_window, rec.extra.drift),
        TokenKind::Hotp => {
            hotp::repeats_last_used(t, code)
                // The look-behind first: the window ahead is computed only for the rare
                // code found behind (a twin ahead makes it a fresh code).
                || (hotp::older_than_last_used(t, code, opts.hotp.window)
                    && hotp::match_hotp(t, code, opts.hotp.window).is_none())
        }
    }
}

/// Whether `code` is the very code this token used last (the TOTP step last used, the HOTP
/// counter before the current one): a replay. Any other [`is_replay`] code is older than it.
pub fn is_last_used(rec: &TokenRecord, code: &str) -> bool {
    let t = &rec.token;
    usable(rec)
        && match t.kind {
            TokenKind::Totp => otp::is_last_step_code(t, code),
            TokenKind::Hotp => hotp::repeats_last_used(t, code),
        }
}

async fn verify_hotp(
    store: &dyn Store,
    cfg: &HotpConfig,
    rec: &TokenRecord,
    code: &str,
    now: i64,
) -> Result<TokenCheck, StoreError> {
    // Copied only if a race makes it read again, as for TOTP.
    let mut t = std::borrow::Cow::Borrowed(&rec.token);
    for _ in 0..=RACE_RETRIES {
        if hotp::repeats_last_used(&t, code) {
            return Ok(TokenCheck::Replayed);
        }
        let Some(c) = hotp::match_hotp(&t, code, cfg.window) else {
            return match t {
                // Judged again after a race: it matched at the counter this login read, so
                // it is a code the other login's move used up or skipped.
                std::borrow::Cow::Owned(_) => Ok(TokenCheck::Replayed),
                // A code of an earlier press (the look-behind as long as the window ahead):
                // the user's, typed again, not a guess to count toward the lockout.
                std::borrow::Cow::Borrowed(_)
                    if hotp::older_than_last_used(&t, code, cfg.window) =>
                {
                    Ok(TokenCheck::Stale)
                }
                std::borrow::Cow::Borrowed(_) => beyond_window(store, cfg, rec, code, now).await,
            };
        };
        // Compare-and-set: a racing request with the same code, on any node, loses here.
        match store
            .advance_hotp_counter(t.id, t.counter, c + 1, t.user.as_deref())
            .await?
        {
            CounterUse::Taken => {
                if rec.extra.resync.is_some() {
                    store.set_hotp_resync(t.id, None).await?;
                }
                return Ok(TokenCheck::Accepted {
                    mode: "hotp",
                    note: None,
                });
            }
            // Another login moved the counter since this one read it: this code may be the
            // one it used, an earlier one, or still a later one (two people pressing one
            // shared token's button), which the stale reading would refuse for nothing.
            CounterUse::Moved { counter } => t.to_mut().counter = counter,
            // Disabled, deleted or given to someone else meanwhile.
            CounterUse::Gone => return Ok(TokenCheck::Withdrawn),
        }
    }
    Ok(TokenCheck::Replayed)
}

/// A code outside the window of the counter the login read: with `[hotp] self_resync`, the
/// first or second half of a self-service resynchronisation.
async fn beyond_window(
    store: &dyn Store,
    cfg: &HotpConfig,
    rec: &TokenRecord,
    code: &str,
    now: i64,
) -> Result<TokenCheck, StoreError> {
    let t = &rec.token;
    if !cfg.self_resync {
        return Ok(TokenCheck::NoMatch);
    }
    // The second half of a self-service resync: exactly the counter after the remembered one,
    // or after a later counter of the same first code.
    // Its first code's time stamped ahead of this clock (an NTP step back since) is no
    // pending resync: taken, the 10 minutes lasted as long as the clock's error besides.
    let pending = rec.extra.resync.filter(|(_, at)| {
        (-crate::clock::FUTURE_SLACK_SECS..=RESYNC_PENDING_SECS).contains(&now.saturating_sub(*at))
    });
    if let Some((expected, _)) = pending {
        if let Some(second) = hotp::completes_resync(t, expected, code, cfg.resync_window) {
            return Ok(
                match store
                    .advance_hotp_counter(t.id, t.counter, second + 1, t.user.as_deref())
                    .await?
                {
                    CounterUse::Taken => {
                        store.set_hotp_resync(t.id, None).await?;
                        // The audit reason of the accept: the resync's own record, as an
                        // admin's `token resync` has one.
                        TokenCheck::Accepted {
                            mode: "hotp",
                            note: Some(format!(
                                "token {} resynchronised: counter moved from {} to {}",
                                t.serial,
                                t.counter,
                                second + 1
                            )),
                        }
                    }
                    CounterUse::Moved { .. } => TokenCheck::Replayed,
                    CounterUse::Gone => TokenCheck::Withdrawn,
                },
            );
        }
    }
    if let Some(c) = hotp::match_beyond_window(t, code, cfg.window, cfg.resync_window) {
        store.set_hotp_resync(t.id, Some((c + 1, now))).await?;
        return Ok(TokenCheck::ResyncPending);
    }
    Ok(TokenCheck::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::{NewToken, OtpAlgorithm, Sealer, SqliteStore, TokenExtra, TokenFilter};

    const SEED: &[u8] = b"12345678901234567890";

    async fn store_with(kind: TokenKind, extra: TokenExtra) -> SqliteStore {
        store_with_token(kind, 6, 0, extra).await
    }

    async fn store_with_token(
        kind: TokenKind,
        digits: u32,
        counter: u64,
        extra: TokenExtra,
    ) -> SqliteStore {
        let store = SqliteStore::open_in_memory(Sealer::from_key([1; 32]))
            .await
            .unwrap();
        let t = NewToken {
            serial: "T".into(),
            user: Some("alice".into()),
            kind,
            algorithm: OtpAlgorithm::Sha1,
            digits,
            period: 30,
            counter,
            secret: Secret::new(SEED.to_vec()),
        };
        store.import_tokens(&[(t, extra)], false).await.unwrap();
        store
    }

    async fn record(store: &SqliteStore) -> TokenRecord {
        store
            .list_tokens(&TokenFilter::default())
            .await
            .unwrap()
            .remove(0)
    }

    fn opts(self_resync: bool) -> VerifyOptions {
        VerifyOptions {
            totp_window: 1,
            hotp: HotpConfig {
                window: 10,
                resync_window: 1000,
                self_resync,
            },
        }
    }

    /// A TOTP window of two steps each way: room for two logins of one token to match
    /// different steps, as the race tests need.
    fn two_steps_each_way() -> VerifyOptions {
        VerifyOptions {
            totp_window: 2,
            ..opts(false)
        }
    }

    fn code(c: u64) -> String {
        hotp::hotp_code(&Secret::new(SEED.to_vec()), OtpAlgorithm::Sha1, 6, c)
    }

    async fn check(store: &SqliteStore, o: &VerifyOptions, c: &str, now: i64) -> TokenCheck {
        let rec = record(store).await;
        verify_token(store, o, &rec, c, now).await.unwrap()
    }

    fn accepted(c: &TokenCheck) -> bool {
        matches!(c, TokenCheck::Accepted { mode: "hotp", .. })
    }

    #[tokio::test]
    async fn hotp_code_once_ahead_then_earlier_fail() {
        let s = store_with(TokenKind::Hotp, TokenExtra::default()).await;
        let o = opts(false);
        assert!(accepted(&check(&s, &o, &code(0), 0).await));
        // The code just used is told apart from a wrong one.
        assert_eq!(check(&s, &o, &code(0), 0).await, TokenCheck::Replayed);
        assert!(accepted(&check(&s, &o, &code(6), 0).await), "5 ahead");
        // Used (0) or skipped (1 to 5): older than the last one used, never a wrong guess.
        for c in 0..=5 {
            assert_eq!(check(&s, &o, &code(c), 0).await, TokenCheck::Stale, "{c}");
        }
        assert_eq!(check(&s, &o, &code(6), 0).await, TokenCheck::Replayed);
        assert_eq!(record(&s).await.token.counter, 7);
    }

    /// An earlier used HOTP code typed again is refused as older than the last one used
    /// (uncounted), as far back as the window reaches ahead, and so the several-tokens
    /// reading ([`is_replay`]) has it; past the look-behind it is a wrong code. Only the
    /// very last code was told apart, and the one before it counted as a wrong guess.
    #[tokio::test]
    async fn an_earlier_used_hotp_code_is_older_than_the_last_one_used() {
        let s = store_with_token(TokenKind::Hotp, 6, 1001, TokenExtra::default()).await;
        let o = opts(false);
        assert!(accepted(&check(&s, &o, &code(1001), 0).await));
        assert!(accepted(&check(&s, &o, &code(1002), 0).await));
        assert_eq!(check(&s, &o, &code(1002), 0).await, TokenCheck::Replayed);
        assert_eq!(check(&s, &o, &code(1001), 0).await, TokenCheck::Stale);
        let rec = record(&s).await;
        assert!(is_replay(&o, &rec, &code(1001), 0));
        assert!(!is_last_used(&rec, &code(1001)));
        // The look-behind is the window's size: 10 codes before the last used one.
        let edge = 1002 - o.hotp.window;
        assert_eq!(check(&s, &o, &code(edge), 0).await, TokenCheck::Stale);
        // Codes of those counters matching nothing else (6 digits: a chance twin is rare).
        let far = edge - 1;
        assert_ne!(code(far), code(edge));
        assert_eq!(check(&s, &o, &code(far), 0).await, TokenCheck::NoMatch);
        assert!(!is_replay(&o, &rec, &code(far), 0));
        // Nothing was consumed, and the next press still works.
        assert_eq!(record(&s).await.token.counter, 1003);
        assert!(accepted(&check(&s, &o, &code(1003), 0).await));
    }

    /// A code found behind the counter that is also a fresh code ahead (1-digit codes, so
    /// nearly always) is the fresh one: accepted, as before the look-behind.
    #[tokio::test]
    async fn an_hotp_code_behind_with_a_twin_ahead_is_accepted() {
        let o = opts(false);
        let one_digit = |c| hotp::hotp_code(&Secret::new(SEED.to_vec()), OtpAlgorithm::Sha1, 1, c);
        // Counter 20 is next: a code of 10..=18 (behind), not 19's (the last used), found
        // ahead in 20..=30.
        let twin = (10..=18u64)
            .map(one_digit)
            .find(|d| *d != one_digit(19) && (20..=30).any(|c| one_digit(c) == *d))
            .unwrap();
        let store = store_with_token(TokenKind::Hotp, 1, 20, TokenExtra::default()).await;
        let rec = record(&store).await;
        assert!(!is_replay(&o, &rec, &twin, 0));
        assert!(accepted(&check(&store, &o, &twin, 0).await));
    }

    /// A code comes up again within the window ahead now and then (here 1-digit codes, so
    /// nearly always): the code just accepted must not work a second time through its twin.
    #[tokio::test]
    async fn an_accepted_hotp_code_does_not_work_again_through_a_later_twin() {
        let o = opts(false);
        let one_digit = |c| hotp::hotp_code(&Secret::new(SEED.to_vec()), OtpAlgorithm::Sha1, 1, c);
        // The first counter whose code repeats within the window after it, and not at once
        // (the next press showing the same code is another matter), nor the one before.
        let first = (0..1000u64)
            .find(|&c| {
                one_digit(c + 1) != one_digit(c)
                    && (c == 0 || one_digit(c - 1) != one_digit(c))
                    && (c + 2..=c + 1 + o.hotp.window).any(|t| one_digit(t) == one_digit(c))
            })
            .unwrap();
        let store = store_with_token(TokenKind::Hotp, 1, first, TokenExtra::default()).await;
        let watched = one_digit(first);
        assert!(accepted(&check(&store, &o, &watched, 0).await));
        assert_eq!(check(&store, &o, &watched, 0).await, TokenCheck::Replayed);
        assert_eq!(record(&store).await.token.counter, first + 1);
        // The next press still works.
        assert!(accepted(&check(&store, &o, &one_digit(first + 1), 0).await));
    }

    /// A TOTP code whose twin is a step ahead in the window (1-digit codes, so often): the
    /// step of now is used, the code never works again, and the user's next step still
    /// works through the store, rather than waiting for the twin to pass.
    #[tokio::test]
    async fn a_totp_code_with_a_twin_ahead_does_not_hold_up_the_next_steps() {
        let o = VerifyOptions {
            totp_window: 10,
            ..opts(false)
        };
        let at = |s: i64| {
            crate::mfa::otp::totp_code(&Secret::new(SEED.to_vec()), OtpAlgorithm::Sha1, 1, 30, s)
        };
        // A step whose code shows again ahead in the window, and whose next step's code
        // repeats no step up to it as far back as a used step is looked for (that one
        // would rightly be refused).
        let cur = (1_000_000i64..)
            .find(|&c| {
                (c + 1..=c + 10).any(|s| at(s) == at(c)) && (c - 30..=c).all(|s| at(s) != at(c + 1))
            })
            .unwrap();
        let store = store_with_token(TokenKind::Totp, 1, 0, TokenExtra::default()).await;
        let now = cur * 30 + 5;
        let got = check(&store, &o, &at(cur), now).await;
        assert!(
            matches!(got, TokenCheck::Accepted { mode: "totp", .. }),
            "{got:?}"
        );
        assert_eq!(record(&store).await.token.last_step, Some(cur));
        assert_eq!(check(&store, &o, &at(cur), now).await, TokenCheck::Replayed);
        let next = check(&store, &o, &at(cur + 1), now + 30).await;
        assert!(
            matches!(next, TokenCheck::Accepted { mode: "totp", .. }),
            "{next:?}"
        );
    }

    /// Two requests with one code, read from the same record, their nows a step apart, a
    /// twin in the window: each matches its own step (the nearest), and only the first to
    /// write is let in (with `step > last` alone, both were).
    #[tokio::test]
    async fn one_code_racing_across_a_step_boundary_is_accepted_once() {
        let o = opts(false);
        let at = |s: i64| {
            crate::mfa::otp::totp_code(&Secret::new(SEED.to_vec()), OtpAlgorithm::Sha1, 1, 30, s)
        };
        let n = (1_000_000i64..)
            .find(|&n| at(n) == at(n + 1) && at(n - 1) != at(n) && at(n + 2) != at(n))
            .unwrap();
        let store = store_with_token(TokenKind::Totp, 1, 0, TokenExtra::default()).await;
        let rec = record(&store).await;
        let code = at(n);
        let first = verify_token(&store, &o, &rec, &code, n * 30 + 29)
            .await
            .unwrap();
        assert!(matches!(first, TokenCheck::Accepted { .. }), "{first:?}");
        let second = verify_token(&store, &o, &rec, &code, (n + 1) * 30)
            .await
            .unwrap();
        assert_eq!(second, TokenCheck::Replayed);
    }

    /// Two logins of one token read the same record; the first uses an earlier step's code,
    /// the second a later step's: the second is judged against the step the first used and
    /// let in (it was refused as "already used"), while an older code than the one used, or
    /// the same code, is still refused.
    #[tokio::test]
    async fn a_later_code_racing_an_earlier_one_is_judged_on_the_fresh_record() {
        let o = two_steps_each_way();
        let store = store_with(TokenKind::Totp, TokenExtra::default()).await;
        let rec = record(&store).await;
        let t = rec.token.clone();
        let c = |st| otp::totp_code(&t.secret, t.algorithm, 6, 30, st);
        let now = 1_700_000_000;
        let step = now / 30;
        let first = verify_token(&store, &o, &rec, &c(step), now).await.unwrap();
        assert!(matches!(first, TokenCheck::Accepted { .. }), "{first:?}");
        let later = verify_token(&store, &o, &rec, &c(step + 1), now)
            .await
            .unwrap();
        assert!(matches!(later, TokenCheck::Accepted { .. }), "{later:?}");
        assert_eq!(record(&store).await.token.last_step, Some(step + 1));
        // The step used last is a replay; the ones before it are older than it (the first
        // login's step among them: only the last used step is known).
        for (st, want) in [
            (step - 1, TokenCheck::Stale),
            (step, TokenCheck::Stale),
            (step + 1, TokenCheck::Replayed),
        ] {
            let got = verify_token(&store, &o, &rec, &c(st), now).await.unwrap();
            assert_eq!(got, want, "step {}", st - step);
        }
    }

    /// A login whose token, since the login read it, was given to someone else, disabled or
    /// deleted must not be let in: with another login of the token racing it (judged again
    /// on the fresh reading) or without (its own write finds the token changed).
    #[tokio::test]
    async fn a_login_is_refused_when_its_token_changed_hands_meanwhile() {
        let o = two_steps_each_way();
        let now = 1_700_000_000;
        let step = now / 30;
        for (change, raced) in ["assign", "disable", "delete"]
            .into_iter()
            .flat_map(|c| [(c, true), (c, false)])
        {
            let store = store_with(TokenKind::Totp, TokenExtra::default()).await;
            let rec = record(&store).await;
            let t = rec.token.clone();
            let c = |st| otp::totp_code(&t.secret, t.algorithm, 6, 30, st);
            let first_step = raced.then_some(step);
            if raced {
                let first = verify_token(&store, &o, &rec, &c(step), now).await.unwrap();
                assert!(matches!(first, TokenCheck::Accepted { .. }), "{first:?}");
            }
            let changed = match change {
                "assign" => store.assign_token("T", Some("alice"), Some("bob")).await,
                "disable" => store.set_token_enabled("T", false).await,
                _ => store.delete_token("T").await,
            };
            assert!(changed.unwrap(), "{change}");
            let later = verify_token(&store, &o, &rec, &c(step + 1), now)
                .await
                .unwrap();
            assert_eq!(later, TokenCheck::Withdrawn, "{change}, raced {raced}");
            let left = store.token_record("T").await.unwrap();
            assert!(
                left.is_none_or(|r| r.token.last_step == first_step),
                "{change}, raced {raced}"
            );
        }
    }

    /// A TOTP token replaced (`token import --replace`) with another period while a login
    /// was on its way: the login's step, in the old period's numbers, must not be written
    /// into the new one (twice the current step, it refused every code for decades), and
    /// its code, of the old seed, is not accepted.
    #[tokio::test]
    async fn a_login_does_not_write_its_step_into_a_token_replaced_with_another_period() {
        let o = two_steps_each_way();
        let now = 1_700_000_000;
        let step = now / 30;
        let store = store_with(TokenKind::Totp, TokenExtra::default()).await;
        let first = record(&store).await;
        let t = first.token.clone();
        let c = |st| otp::totp_code(&t.secret, t.algorithm, 6, 30, st);
        let got = verify_token(&store, &o, &first, &c(step - 2), now)
            .await
            .unwrap();
        assert!(matches!(got, TokenCheck::Accepted { .. }), "{got:?}");
        let rec = record(&store).await;
        let replacement = NewToken {
            serial: "T".into(),
            user: Some("alice".into()),
            kind: TokenKind::Totp,
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 60,
            counter: 0,
            secret: Secret::new(b"another seed, period".to_vec()),
        };
        store
            .import_tokens(&[(replacement, TokenExtra::default())], true)
            .await
            .unwrap();
        let converted = record(&store).await.token.last_step;
        let got = verify_token(&store, &o, &rec, &c(step), now).await.unwrap();
        assert_eq!(got, TokenCheck::Withdrawn);
        assert_eq!(record(&store).await.token.last_step, converted);
    }

    /// An HOTP login whose token was disabled, given to bob or deleted since the login read
    /// it is refused as withdrawn (not "code already used", which sends the admin after a
    /// replay), and the counter stays.
    #[tokio::test]
    async fn an_hotp_login_is_refused_when_its_token_changed_hands_meanwhile() {
        let o = opts(false);
        for change in ["assign", "disable", "delete"] {
            let store = store_with(TokenKind::Hotp, TokenExtra::default()).await;
            let rec = record(&store).await;
            let changed = match change {
                "assign" => store.assign_token("T", Some("alice"), Some("bob")).await,
                "disable" => store.set_token_enabled("T", false).await,
                _ => store.delete_token("T").await,
            };
            assert!(changed.unwrap(), "{change}");
            let got = verify_token(&store, &o, &rec, &code(0), 0).await.unwrap();
            assert_eq!(got, TokenCheck::Withdrawn, "{change}");
            let left = store.token_record("T").await.unwrap();
            assert!(left.is_none_or(|r| r.token.counter == 0), "{change}");
        }
    }

    /// Two logins of one HOTP token read it at counter 0, and the first uses code 2: the
    /// second's code is judged against the counter the first left (3), not refused as used
    /// for having read the token before. A later code gets in; the one used, or one it
    /// skipped, is refused as used.
    #[tokio::test]
    async fn an_hotp_code_racing_another_is_judged_on_the_counter_it_left() {
        let o = opts(false);
        let store = store_with(TokenKind::Hotp, TokenExtra::default()).await;
        let rec = record(&store).await;
        assert!(accepted(
            &verify_token(&store, &o, &rec, &code(2), 0).await.unwrap()
        ));
        for used in [2, 1] {
            let got = verify_token(&store, &o, &rec, &code(used), 0)
                .await
                .unwrap();
            assert_eq!(got, TokenCheck::Replayed, "code {used}");
        }
        let later = verify_token(&store, &o, &rec, &code(4), 0).await.unwrap();
        assert!(accepted(&later), "{later:?}");
        assert_eq!(record(&store).await.token.counter, 5);
    }

    #[tokio::test]
    async fn hotp_self_resync_needs_the_very_next_code_in_time() {
        let s = store_with(TokenKind::Hotp, TokenExtra::default()).await;
        // Off: far codes are just wrong.
        assert_eq!(
            check(&s, &opts(false), &code(50), 0).await,
            TokenCheck::NoMatch
        );
        let o = opts(true);
        assert_eq!(check(&s, &o, &code(50), 0).await, TokenCheck::ResyncPending);
        // Not the next one: refused (and it becomes the new pending one).
        assert_eq!(
            check(&s, &o, &code(53), 10).await,
            TokenCheck::ResyncPending
        );
        let got = check(&s, &o, &code(54), 20).await;
        assert!(accepted(&got), "{got:?}");
        assert_eq!(record(&s).await.token.counter, 55);
        assert_eq!(record(&s).await.extra.resync, None);
        // Too late: the pending code expires.
        assert_eq!(
            check(&s, &o, &code(200), 100).await,
            TokenCheck::ResyncPending
        );
        let late = 100 + RESYNC_PENDING_SECS + 1;
        assert_eq!(
            check(&s, &o, &code(201), late).await,
            TokenCheck::ResyncPending
        );
        assert!(accepted(&check(&s, &o, &code(202), late + 1).await));
        // A first code stamped by a clock a day ahead (an NTP step back since): no pending
        // resync, or its 10 minutes lasted the day besides.
        let ahead = late + 86_400;
        assert_eq!(
            check(&s, &o, &code(300), ahead).await,
            TokenCheck::ResyncPending
        );
        assert_eq!(
            check(&s, &o, &code(301), late + 660).await,
            TokenCheck::ResyncPending
        );
        assert_eq!(record(&s).await.token.counter, 203);
    }

    /// The first code of a self-service resync whose code also comes up earlier in the
    /// resync range (a chance twin: about one resync in ten with `resync_window = 100000`):
    /// the next code after the user's press finishes it. Only the successor of the first
    /// match was taken, so the user's next code was refused ("out of sync") and counted,
    /// and only the one after it got in.
    #[tokio::test]
    async fn a_resync_whose_first_code_has_a_twin_earlier_takes_the_next_code() {
        let mut o = opts(true);
        o.hotp.resync_window = 100_000;
        // The first pair of counters in the resync range (past the window of 10) with one
        // code: found by search, so the test shows it is a twin.
        let mut seen = std::collections::HashMap::new();
        let (twin, pressed) = (11u64..)
            .find_map(|c| seen.insert(code(c), c).map(|earlier| (earlier, c)))
            .unwrap();
        assert!(pressed <= o.hotp.resync_window, "{twin} {pressed}");
        assert_eq!(code(twin), code(pressed));
        let s = store_with(TokenKind::Hotp, TokenExtra::default()).await;
        assert_eq!(
            check(&s, &o, &code(pressed), 0).await,
            TokenCheck::ResyncPending
        );
        let got = check(&s, &o, &code(pressed + 1), 10).await;
        assert!(accepted(&got), "{got:?}");
        assert_eq!(record(&s).await.token.counter, pressed + 2);
        assert_eq!(record(&s).await.extra.resync, None);
    }

    #[tokio::test]
    async fn totp_drift_is_learned_and_window_follows() {
        let s = store_with(TokenKind::Totp, TokenExtra::default()).await;
        let o = opts(false);
        let now = 1_700_000_000;
        let step = now / 30;
        let t = record(&s).await.token;
        let c = |st| otp::totp_code(&t.secret, t.algorithm, 6, 30, st);
        // One step ahead: accepted, drift +1 learned.
        assert!(matches!(
            check(&s, &o, &c(step + 1), now).await,
            TokenCheck::Accepted { .. }
        ));
        assert_eq!(record(&s).await.extra.drift, 1);
        // Two ahead: now within the drift-centred window.
        assert!(matches!(
            check(&s, &o, &c(step + 2), now).await,
            TokenCheck::Accepted { .. }
        ));
        assert_eq!(record(&s).await.extra.drift, 2);
        // A used step never verifies again, and is told apart from a wrong code.
        assert_eq!(check(&s, &o, &c(step + 2), now).await, TokenCheck::Replayed);
    }

    /// A drift of one step learned from a code read just as the display changed must not
    /// refuse the next code typed a step late: within `window` of now, it is accepted, as
    /// it is a step early for a drift of -1 (a drift learned against another node's clock).
    #[tokio::test]
    async fn a_learned_drift_keeps_the_window_around_now() {
        let o = opts(false);
        for (first_offset, later_offset) in [(1, -1), (-1, 1)] {
            let s = store_with(TokenKind::Totp, TokenExtra::default()).await;
            let t = record(&s).await.token;
            let c = |st| otp::totp_code(&t.secret, t.algorithm, 6, 30, st);
            let now = 1_700_000_010;
            let step = now / 30;
            assert!(matches!(
                check(&s, &o, &c(step + first_offset), now).await,
                TokenCheck::Accepted { .. }
            ));
            assert_eq!(record(&s).await.extra.drift, first_offset);
            let later = now + 300;
            let later_step = later / 30 + later_offset;
            assert!(
                matches!(
                    check(&s, &o, &c(later_step), later).await,
                    TokenCheck::Accepted { .. }
                ),
                "drift {first_offset}, then a code {later_offset} step(s) from now"
            );
            // Two steps from now and from the drift: still refused (behind, a step before
            // the last used: told apart as older than it).
            let far = later / 30 + 3 * later_offset;
            let want = if later_offset < 0 {
                TokenCheck::Stale
            } else {
                TokenCheck::NoMatch
            };
            assert_eq!(check(&s, &o, &c(far), later).await, want);
        }
    }

    /// A record whose seed did not open (an admin read) verifies nothing, even were its seed
    /// field somehow filled: the mark alone is enough.
    #[tokio::test]
    async fn a_token_whose_seed_did_not_open_matches_nothing() {
        let s = store_with(TokenKind::Hotp, TokenExtra::default()).await;
        let o = opts(false);
        let mut rec = record(&s).await;
        assert!(fits(&o, &rec, &code(0), 0), "control: the code fits");
        rec.extra.unreadable_seed = Some("damaged".into());
        assert!(!fits(&o, &rec, &code(0), 0));
        let got = verify_token(&s, &o, &rec, &code(0), 0).await.unwrap();
        assert_eq!(got, TokenCheck::NoMatch);
        let mut rec = record(&s).await;
        rec.token.secret = Secret::new(Vec::new());
        let empty_key = hotp::hotp_code(&rec.token.secret, OtpAlgorithm::Sha1, 6, 0);
        let got = verify_token(&s, &o, &rec, &empty_key, 0).await.unwrap();
        assert_eq!(got, TokenCheck::NoMatch, "an empty seed matches nothing");
        assert_eq!(record(&s).await.token.counter, 0, "nothing was consumed");
    }

    #[tokio::test]
    async fn validity_dates_bound_the_token() {
        let extra = TokenExtra {
            valid_from: Some(100),
            valid_until: Some(200),
            ..Default::default()
        };
        let s = store_with(TokenKind::Hotp, extra).await;
        let o = opts(false);
        assert_eq!(check(&s, &o, &code(0), 99).await, TokenCheck::NotValidNow);
        assert_eq!(check(&s, &o, &code(0), 200).await, TokenCheck::NotValidNow);
        assert!(accepted(&check(&s, &o, &code(0), 150).await));
    }
}
