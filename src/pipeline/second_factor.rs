//! Checking a code against the user's tokens (TOTP and HOTP, see `mfa::verify`), consuming it,
//! and counting failures toward the lockout.

use super::code_turns::Turn;
use crate::app::AppState;
use crate::mfa::otp;
use crate::mfa::verify::{
    is_last_used, is_replay, matches_unusable, valid_at, validity_at, verify_token, TokenCheck,
    VerifyOptions,
};
use crate::store::{
    durability, AuditRecord, StoreError, TokenKind, TokenRecord, UserProfile, UserStatus,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    Valid {
        serial: String,
        mode: &'static str,
        /// The accept's audit reason: set when this code finished a self-service HOTP
        /// resynchronisation, which has no record of its own.
        note: Option<String>,
    },
    /// Wrong code; `locked` when this failure triggered the lockout, or when the second
    /// factor was locked by the time this check's turn came (the code was not checked);
    /// `resync` when an HOTP token's code was far ahead and its next code will resynchronise
    /// it.
    Invalid {
        reason: String,
        locked: bool,
        resync: bool,
        /// Wrong codes left before the lockout, when this one was counted.
        before_lock: Option<u32>,
        /// The token the refusal is about, when the code was one token's: one the user
        /// cannot use now (disabled, or outside its validity dates), or a code it used
        /// already, an older one, one beyond its window (a resync), or its token withdrawn.
        serial: Option<String>,
        /// That token's kind, whose audit mode the refusal takes ([`token_mode`]), with
        /// `serial`: an HOTP token's code is no TOTP code because the user also holds an app.
        kind: Option<TokenKind>,
        /// What the user is told, in every flow, when the code was such a token's.
        message: Option<&'static str>,
    },
}

/// Told to the user whose token is past its validity dates (PSKC ExpiryDate).
pub const EXPIRED_MESSAGE: &str = "Your second factor has expired. Contact your administrator.";

/// Told to the user whose token is before its validity dates (PSKC StartDate).
pub const NOT_YET_VALID_MESSAGE: &str =
    "Your second factor is not valid yet. Contact your administrator.";

/// Told to the user whose token an admin disabled (reported lost, say).
pub const DISABLED_MESSAGE: &str = "Your second factor is disabled. Contact your administrator.";

/// What the user is told for a token outside its validity dates, by why
/// ([`validity_at`]: "expired" or "not yet valid").
pub fn validity_message(why: &str) -> &'static str {
    if why == "expired" {
        EXPIRED_MESSAGE
    } else {
        NOT_YET_VALID_MESSAGE
    }
}

/// Told to the user whose HOTP token ran ahead of its window (with `[hotp] self_resync`):
/// without it they would only see a reject and try the same kind of code again.
pub const RESYNC_MESSAGE: &str =
    "Your token is out of sync: enter its next code to resynchronise it.";

/// The serial a wrong code is recorded under: the user's token when there is one (which
/// token keeps failing, a hardware token drifting, say, is what the admin looks for); none
/// when several could have been meant.
pub fn sole_serial(tokens: &[TokenRecord]) -> Option<String> {
    let mut enabled = tokens.iter().filter(|r| r.token.enabled);
    match (enabled.next(), enabled.next()) {
        (Some(only), None) => Some(only.token.serial.clone()),
        _ => None,
    }
}

/// The audit mode of a refused code: the kind of the token it was found to be (`kind`), else
/// [`oath_mode`] of the user's tokens.
pub fn refused_mode(kind: Option<TokenKind>, tokens: &[TokenRecord]) -> &'static str {
    kind.map_or_else(|| oath_mode(tokens), crate::store::columns::kind_str)
}

/// The audit mode of a code prompt or a wrong code: `hotp` when every token the user has is
/// an HOTP token, else `totp`.
pub fn oath_mode(tokens: &[TokenRecord]) -> &'static str {
    let hotp_only = !tokens.is_empty() && tokens.iter().all(|r| r.token.kind == TokenKind::Hotp);
    if hotp_only {
        "hotp"
    } else {
        "totp"
    }
}

/// The user's lockout state, read once per request (and again in [`check_code`] when a
/// wrong code was counted since).
#[derive(Debug, Clone, Copy)]
pub struct Standing {
    /// The second factor is locked right now.
    pub locked: bool,
    /// Consecutive wrong codes so far.
    pub failures: u32,
    /// [`CodeTurns::seen`](super::code_turns::CodeTurns::seen) before the read.
    seen: u64,
}

impl Standing {
    fn of(app: &AppState, status: &UserStatus, seen: u64) -> Self {
        let now = app.clock.now();
        Standing {
            locked: status.locked_until.is_some_and(|t| t > now),
            failures: status.failures,
            seen,
        }
    }
}

/// What a request needs about the user, from one store read.
pub struct UserView {
    /// The user's tokens with their inventory data (drift, resync state, validity): the
    /// enabled ones first ([`UserView::tokens`]), then the disabled ones
    /// ([`UserView::disabled`]). One list: every request's future holds a view, and its size
    /// is paid per request.
    held: Vec<TokenRecord>,
    /// How many of `held` are enabled.
    enabled: u32,
    /// Every enabled token is outside its validity dates: why ("expired", "not yet
    /// valid"). None when one is usable now, or there are none.
    pub outside_validity: Option<&'static str>,
    pub standing: Standing,
    pub profile: UserProfile,
}

pub async fn user_view(app: &AppState, user: &str) -> Result<UserView, StoreError> {
    // Before the read: a wrong code counted after it shows as a changed count.
    let seen = app.code_turns.seen(user);
    let mut snap = app.store.user_snapshot(user).await?;
    // Stable: each part stays in the store's order (by serial).
    snap.tokens.sort_by_key(|r| !r.token.enabled);
    let enabled = snap.tokens.iter().filter(|r| r.token.enabled).count();
    let tokens = &snap.tokens[..enabled];
    let now = app.clock.now();
    let outside_validity = if tokens.iter().any(|r| valid_at(r, now)) {
        None
    } else {
        tokens.iter().find_map(|r| validity_at(r, now))
    };
    Ok(UserView {
        outside_validity,
        standing: Standing::of(app, &snap.status, seen),
        held: snap.tokens,
        enabled: enabled as u32,
        profile: snap.profile,
    })
}

impl UserView {
    /// The enabled tokens: the ones codes are checked against.
    pub fn tokens(&self) -> &[TokenRecord] {
        &self.held[..self.enabled as usize]
    }

    /// The disabled tokens (reported lost, say): never checked, only recognised (a code of
    /// theirs is told as such, not counted as a wrong guess), and their code lengths used
    /// to split an inline field.
    pub fn disabled(&self) -> &[TokenRecord] {
        &self.held[self.enabled as usize..]
    }

    /// The user holds tokens that are all or partly disabled.
    pub fn has_disabled_tokens(&self) -> bool {
        !self.disabled().is_empty()
    }
}

/// Is the user's second factor locked right now?
pub async fn is_locked(app: &AppState, user: &str) -> Result<bool, StoreError> {
    Ok(Standing::of(app, &app.store.user_status(user).await?, 0).locked)
}

/// Verifies `code` against the user's tokens (`view`, from [`user_view`]); a match is consumed
/// atomically in the store, so it works exactly once, on any node. Failures count toward the
/// lockout; success resets the count — a write skipped when `standing` (read earlier in the
/// same request) saw no failures, which saves a commit on nearly every login.
///
/// Runs in the user's turn ([`CodeTurns`](super::code_turns::CodeTurns)): a locked second
/// factor is refused as it stands after the previous check, and a wrong code is counted on
/// disk before the next check.
///
/// `other_names`: the directory entry's other names, which share its allowance of guesses
/// (see [`failures_under_other_names`]): one turn for all of them, a lock under any of them
/// refuses the check, and their wrong answers count toward this name's threshold.
pub async fn check_code(
    app: &AppState,
    user: &str,
    other_names: &[String],
    view: &UserView,
    code: &str,
    nas: Via<'_>,
) -> Result<CodeCheck, StoreError> {
    let turn = take_turn(app, user, other_names).await;
    let asked = (view, code, nas);
    check_code_in_turn(app, &turn, user, other_names, asked).await
}

/// [`check_code`] in a `turn` taken already (with the prompt's attempt taken in it).
pub async fn check_code_in_turn(
    app: &AppState,
    turn: &Turn<'_>,
    user: &str,
    other_names: &[String],
    (view, code, nas): (&UserView, &str, Via<'_>),
) -> Result<CodeCheck, StoreError> {
    let (tokens, standing) = (view.tokens(), view.standing);
    // Apps and tokens show codes in groups ("123 456", "123-456"), a field may end in a
    // space, an input method may type full-width digits: none of that is the code's (left
    // in, the code was refused as none and counted as a wrong guess).
    let plain = otp::plain_code(code);
    let code = plain.as_ref();
    let standing = in_turn(app, turn, user, other_names, standing).await?;
    if let Some(reason) = stopped(app, user, other_names, standing).await? {
        return Ok(CodeCheck::Invalid {
            reason,
            locked: true,
            resync: false,
            before_lock: None,
            serial: None,
            kind: None,
            message: None,
        });
    }
    let now = app.clock.now();
    let config = app.config();
    let mut reason = WRONG_CODE;
    // The token `reason` is about, when it is one token's (not a wrong code).
    let mut about: Option<&TokenRecord> = None;
    let mut resync = false;
    // Whether any token could check the code (one outside its validity dates cannot).
    let mut checked = false;
    if otp::looks_like_code(code) {
        let opts = VerifyOptions::of(&config);
        // With more than one token: a code one of them already used is refused, uncounted,
        // before any is asked; the others must not check it (a used code known to whoever
        // sends it, say one a VPN client kept, would make an uncounted guess at every other
        // token each time). Not with one token: it refuses its used steps itself (and a
        // fresh code whose twin is a used step of its window, as the replay it may be).
        let several = tokens.iter().filter(|r| r.token.enabled).count() > 1;
        let used = || tokens.iter().filter(|rec| is_replay(&opts, rec, code, now));
        if let Some(first_used) = several.then(|| used().next()).flatten() {
            // The very code a token used last is a replay; an earlier one of its window is
            // only older than that (maybe skipped, never used).
            let last = used().find(|rec| is_last_used(rec, code));
            let rec = last.unwrap_or(first_used);
            return Ok(CodeCheck::Invalid {
                reason: if last.is_some() { REPLAYED } else { STALE }.to_string(),
                locked: false,
                resync: false,
                before_lock: None,
                serial: Some(rec.token.serial.clone()),
                kind: Some(rec.token.kind),
                message: None,
            });
        }
        for rec in tokens.iter().filter(|r| r.token.enabled) {
            match verify_token(app.store.as_ref(), &opts, rec, code, now).await? {
                TokenCheck::Accepted { mode, note } => {
                    if standing.failures > 0 {
                        app.store.clear_failures(user).await?;
                    }
                    clear_under_other_names(app, user, other_names).await?;
                    if let Some(note) = &note {
                        // As a str (quoted and escaped), not Display: serials are imported.
                        tracing::info!(user, token = rec.token.serial.as_str(), "{note}");
                    }
                    return Ok(CodeCheck::Valid {
                        serial: rec.token.serial.clone(),
                        mode,
                        note,
                    });
                }
                // Used meanwhile (the snapshot checked above was read before the password
                // check): refused here too, before any other token is asked.
                TokenCheck::Replayed => {
                    (reason, about) = (REPLAYED, Some(rec));
                    checked = true;
                    break;
                }
                // As a replay: a code of this token, not a guess, never accepted again.
                TokenCheck::Stale => {
                    (reason, about) = (STALE, Some(rec));
                    checked = true;
                    break;
                }
                // An admin's change, not a guess: refused, uncounted, and said so in the
                // audit (not "code already used", which would send the admin after a replay).
                TokenCheck::Withdrawn => {
                    (reason, about) = (WITHDRAWN, Some(rec));
                    checked = true;
                    break;
                }
                TokenCheck::ResyncPending => {
                    checked = true;
                    resync = true;
                    about = Some(rec);
                    reason =
                        "HOTP token out of sync: log in again with its next code to resynchronise"
                }
                TokenCheck::NotValidNow => {}
                TokenCheck::NoMatch => checked = true,
            }
        }
        if !checked && tokens.iter().any(|r| r.token.enabled) {
            // Every token is outside its validity dates (one expired between the prompt
            // and the answer): no code could pass, so this was no guess to count.
            return Ok(CodeCheck::Invalid {
                reason: OUTSIDE_VALIDITY.to_string(),
                locked: false,
                resync: false,
                before_lock: None,
                serial: None,
                kind: None,
                message: tokens
                    .iter()
                    .find_map(|r| validity_at(r, now))
                    .map(validity_message),
            });
        }
        // Every usable token refused it: the right code of a token the user cannot use now
        // (one of several expired, not valid yet, or disabled) is no guess either. Counted,
        // a user trying their expired token's code with another one still valid locked
        // themselves out, told only "wrong code". Only a code that matches such a token
        // gets this: any other is a wrong code, counted, as before.
        if let (true, Some(unusable)) =
            (reason == WRONG_CODE, unusable_match(&opts, view, code, now))
        {
            return Ok(unusable.refusal());
        }
    } else if otp::is_code_attempt(code) {
        // 4 to 10 digits of a length no token has: a mistyped code, counted as any wrong
        // code is.
        reason = "not a code (not 6 to 8 digits)";
    } else {
        // No code at all ("abc", a password typed at the prompt, a digit or two): no guess
        // at one, since it can match nothing; not counted, as a code-only client refuses
        // such a field uncounted before anything is asked. Counted, a user confused at the
        // prompt locked themselves out without trying a single code.
        return Ok(CodeCheck::Invalid {
            reason: NO_CODE.to_string(),
            locked: false,
            resync: false,
            before_lock: None,
            serial: None,
            kind: None,
            message: None,
        });
    }
    // A code already used is no guess: it matched, it can never be accepted again, and
    // the reply is the same refusal. Counted, a VPN client reconnecting with the field it
    // kept (or a NAS failing over to another node with a login already accepted) would
    // lock its own user out.
    let (locked, before_lock) = if [REPLAYED, STALE, WITHDRAWN].contains(&reason) {
        (false, None)
    } else {
        let elsewhere = failures_under_other_names(app, user, other_names).await?;
        let counted = count_failure_after(app, turn, user, "wrong codes", elsewhere, nas).await?;
        if counted.locked {
            clear_under_other_names(app, user, other_names).await?;
        }
        (counted.locked, Some(counted.left))
    };
    // Refused and counted as any wrong code; only the audit reason says when it was the
    // code of a time minutes off (the user is told nothing more).
    let reason = match reason {
        WRONG_CODE => clock_hint(&VerifyOptions::of(&config), tokens, code, now).map_or_else(
            || WRONG_CODE.to_string(),
            |hint| format!("{WRONG_CODE} {hint}"),
        ),
        other => other.to_string(),
    };
    Ok(CodeCheck::Invalid {
        reason,
        locked,
        resync,
        before_lock,
        serial: about.map(|rec| rec.token.serial.clone()),
        kind: about.map(|rec| rec.token.kind),
        message: None,
    })
}

/// "(it is the token's code for 3 min ahead of this server's clock …)" when a wrong code is
/// one of the user's TOTP tokens' for a time minutes off ([`verify::clock_offset`]): a
/// phone or token whose clock is off, which `radmfa token resync` mends. Without it the
/// audit said "wrong code", and the help desk looked for a typo. Every token is asked (no
/// early exit); nothing of the code is written.
fn clock_hint(
    opts: &VerifyOptions,
    tokens: &[TokenRecord],
    code: &str,
    now: i64,
) -> Option<String> {
    let offsets: Vec<i64> = tokens
        .iter()
        .filter_map(|rec| crate::mfa::verify::clock_offset(opts, rec, code, now))
        .collect();
    let offset = offsets.into_iter().min_by_key(|o| o.abs())?;
    let size = offset.unsigned_abs();
    let amount = if size < 90 {
        format!("{size} s")
    } else {
        format!("{} min", (size + 30) / 60)
    };
    let way = if offset > 0 { "ahead of" } else { "behind" };
    Some(format!(
        "(it is the token's code for {amount} {way} this server's clock: is the phone's or \
         token's clock off? radmfa token resync)"
    ))
}

/// Why an answer was refused that is no code at all (not 4 to 10 digits, spaces and dashes
/// aside).
pub const NO_CODE: &str = "not a code (4 to 10 digits)";

/// Why a code was refused that matched none of the user's tokens.
const WRONG_CODE: &str = "wrong code";

/// A token of the user's that cannot be used now, whose code was typed.
struct Unusable<'a> {
    serial: &'a str,
    kind: TokenKind,
    /// "expired", "not yet valid" ([`validity_at`]) or "disabled".
    why: &'static str,
}

impl Unusable<'_> {
    /// Refused, uncounted, naming the token (the admin sees which one the user still
    /// tries), and telling the user what a login with that token alone would.
    fn refusal(&self) -> CodeCheck {
        let (reason, message) = if self.why == "disabled" {
            (
                format!("code of token {}, which is disabled", self.serial),
                DISABLED_MESSAGE,
            )
        } else {
            (
                format!(
                    "code of token {}, {OUTSIDE_VALIDITY} ({})",
                    self.serial, self.why
                ),
                validity_message(self.why),
            )
        };
        CodeCheck::Invalid {
            reason,
            locked: false,
            resync: false,
            before_lock: None,
            serial: Some(self.serial.to_string()),
            kind: Some(self.kind),
            message: Some(message),
        }
    }
}

/// The first of the user's tokens that cannot be used now (enabled but outside its dates,
/// or disabled) whose code `code` is. Each is computed (no early exit), so the time taken
/// does not tell which one matched, nor whether one did.
fn unusable_match<'a>(
    opts: &VerifyOptions,
    view: &'a UserView,
    code: &str,
    now: i64,
) -> Option<Unusable<'a>> {
    let dated = view
        .tokens()
        .iter()
        .filter_map(|r| Some((r, validity_at(r, now)?)));
    let disabled = view.disabled().iter().map(|r| (r, "disabled"));
    dated.chain(disabled).fold(None, |found, (rec, why)| {
        let matched = matches_unusable(opts, rec, code, now);
        found.or_else(|| {
            matched.then_some(Unusable {
                serial: &rec.token.serial,
                kind: rec.token.kind,
                why,
            })
        })
    })
}

/// Why a code was refused when every token of the user is outside its validity dates.
pub const OUTSIDE_VALIDITY: &str = "token outside its validity period";

/// Why a code that matched was refused: its step (or counter) was used already.
pub const REPLAYED: &str = "code already used";

/// Why a code that matched was refused: its step is before the one the token used last
/// (a code from a minute ago, used or skipped; "already used" sent the admin after a
/// replay that may not be one).
pub const STALE: &str = "code older than the last one used";

/// Why a code was refused whose token an admin disabled, deleted, reassigned or replaced
/// while the login was on its way.
pub const WITHDRAWN: &str = "token disabled, reassigned or replaced during the login";

/// The turn of the whole directory entry (`user` and its `other_names`): answers under its
/// names are checked one after another, as one name's are, so none of them is checked
/// against a lockout another has just reached.
pub async fn take_turn<'a>(app: &'a AppState, user: &str, other_names: &[String]) -> Turn<'a> {
    // Nearly every user has one name: their own turn, without working out (and allocating)
    // the entry's key on every code check.
    if other_names.is_empty() {
        return app.code_turns.take(user).await;
    }
    app.code_turns
        .take(&super::aliases::entry_key(app, user, other_names))
        .await
}

/// Why no code may be checked now: the user's own lock as it stands in the turn, or a
/// lock or block under another name of the entry, read again in the turn (a lock that
/// landed there while this answer waited). `None`: check it.
pub async fn stopped(
    app: &AppState,
    user: &str,
    other_names: &[String],
    standing: Standing,
) -> Result<Option<String>, StoreError> {
    if standing.locked {
        return Ok(Some("second factor locked".into()));
    }
    if !shares_names(app, user, other_names) {
        return Ok(None);
    }
    use super::aliases::OtherName;
    Ok(
        match super::aliases::stopped_under_another_name(app, user, other_names).await? {
            Some(OtherName::Blocked(other)) => Some(super::aliases::blocked_reason(&other)),
            Some(OtherName::Locked(other) | OtherName::Enrolled(other)) => {
                Some(super::aliases::locked_reason(Some(&other)))
            }
            None => None,
        },
    )
}

/// The lockout as it stands in the user's `turn`: `standing` as read earlier in the request,
/// unless a wrong code or answer was counted since (or another node may have counted one);
/// then as it is in the store now. With `other_names`, always from the store: the turn is
/// the entry's, whose count of failures is not the one `standing.seen` was read from.
pub async fn in_turn(
    app: &AppState,
    turn: &Turn<'_>,
    user: &str,
    other_names: &[String],
    standing: Standing,
) -> Result<Standing, StoreError> {
    // With a store shared by several nodes (PostgreSQL), wrong codes counted on another
    // node do not show in this node's turns: a lock written there while this request
    // checked the password would go unseen. So there the lockout is read again in every
    // turn (one read per code check); on SQLite, one node, only after a count.
    let shared = matches!(
        app.config().store,
        crate::config::StoreConfig::Postgres { .. }
    );
    Ok(
        if shared || shares_names(app, user, other_names) || turn.counted_since(standing.seen) {
            Standing::of(app, &app.store.user_status(user).await?, standing.seen)
        } else {
            standing
        },
    )
}

/// Wrong answers counted under the entry's `other_names` (a multi-valued `uid`): the
/// names of one directory entry reach the same phone, and must share one allowance of
/// guesses, so a wrong answer under one name locks it once all of them together reach
/// the threshold. The lock lands on the name used; its other names are then refused too
/// (`aliases::OtherName::Locked`), and `radmfa user unlock` of that name lifts it.
/// Wrong answers still to go before the lock, for an answer that was not counted (no code
/// at all, a used one): the re-prompt's "N attempt(s) left" must not fall back to the
/// prompt's own attempts when the lockout comes first. The entry's other names' count
/// shares the allowance, as a counted answer's `left` has it.
pub async fn left_before_lock(
    app: &AppState,
    user: &str,
    other_names: &[String],
) -> Result<u32, StoreError> {
    let here = app.store.user_status(user).await?.failures;
    let elsewhere = failures_under_other_names(app, user, other_names).await?;
    Ok(app
        .config()
        .lockout
        .threshold
        .saturating_sub(here.saturating_add(elsewhere))
        // At or over a threshold lowered since they were counted: the next wrong code
        // locks, one attempt, as a counted answer's allowance never goes below.
        .max(1))
}

pub async fn failures_under_other_names(
    app: &AppState,
    user: &str,
    other_names: &[String],
) -> Result<u32, StoreError> {
    let mut sum = 0u32;
    for (_, key) in super::aliases::entry_names(app, user, other_names) {
        sum = sum.saturating_add(app.store.user_status(&key).await?.failures);
    }
    Ok(sum)
}

/// Whether the directory entry has names besides `user` that radmfa keeps apart
/// ([`aliases::entry_names`](super::aliases::entry_names)): then its turn is the entry's,
/// and its allowance of guesses is shared.
fn shares_names(app: &AppState, user: &str, other_names: &[String]) -> bool {
    !other_names.is_empty() && !super::aliases::entry_names(app, user, other_names).is_empty()
}

/// After a right answer, or a lock (which starts the allowance again): the entry's other
/// names' wrong answers are forgotten too, as this name's are. Left, they would make the
/// entry's next typo a lock, long after the login that counted them.
pub async fn clear_under_other_names(
    app: &AppState,
    user: &str,
    other_names: &[String],
) -> Result<(), StoreError> {
    for (_, key) in super::aliases::entry_names(app, user, other_names) {
        app.store.clear_failures(&key).await?;
    }
    Ok(())
}

/// A wrong code or answer counted toward the lockout.
#[derive(Clone, Copy, Debug)]
pub struct Counted {
    /// The second factor is locked: by this failure, or by another node just before it
    /// (then nothing was counted, and the lock's record is that node's).
    pub locked: bool,
    /// Wrong answers still to go before the lock (0 when locked): a prompt that offers
    /// more attempts than this must not promise them.
    pub left: u32,
}

/// The request a wrong code came in, for the lock's record: the client entry, and the NAS
/// behind it (read only if the failure locks).
#[derive(Clone, Copy)]
pub(crate) struct Via<'a> {
    pub ctx: &'a super::RequestContext,
    pub req: &'a crate::radius::request::Request,
    /// The user's station as the prompt's first round carried it, for an answer that
    /// comes without Calling-Station-Id.
    pub station: Option<&'a str>,
}

/// Counts a wrong code or answer toward the user's lockout, in the user's `turn`, and waits
/// until the count is on disk, so the next turn reads it; when this one locks the second
/// factor, the lock gets an audit record of its own. `what` names the failures in its
/// reason ("wrong codes", "wrong answers"); `elsewhere` wrong answers are already counted
/// under the entry's other names ([`failures_under_other_names`]): the lock comes that
/// much sooner. `nas`: the client entry and the NAS the failing answer came through, for the
/// lock's record.
/// Returns whether this failure locked the user, and how many more it takes.
pub async fn count_failure_after(
    app: &AppState,
    turn: &Turn<'_>,
    user: &str,
    what: &str,
    elsewhere: u32,
    nas: Via<'_>,
) -> Result<Counted, StoreError> {
    // Marked before the write, not after it is settled: if this request is cut off (its
    // deadline) between the two, the count may still reach the disk, and the next turn
    // must read it from there rather than trust the standing its request read earlier.
    // A mark for a count that failed costs the next turn only a re-read.
    turn.counted();
    let now = app.clock.now();
    let config = app.config();
    let lock = &config.lockout;
    let threshold = lock.threshold.saturating_sub(elsewhere).max(1);
    let (failures, locked_until) = app
        .store
        .record_failure(user, threshold, now, lock.duration.as_secs() as i64)
        .await?;
    if let Some(until) = locked_until {
        crate::server::metrics::Metrics::inc(&app.metrics.lockouts);
        let until_at = crate::clock::fmt_time(until);
        // Not an admin's act (mode "admin" put it among them), and through the NAS where
        // the last wrong answer came from, so that `audit --count-by nas` counts it there.
        let under_others = if elsewhere > 0 {
            format!(" ({elsewhere} of them under the entry's other names)")
        } else {
            String::new()
        };
        let from = super::audit::Source::of(nas.ctx, nas.req);
        // Where the guessing came from, as the login records beside it say it.
        let client_ip = nas
            .req
            .calling_station_id()
            .or_else(|| nas.station.map(str::to_string))
            .or_else(|| from.nas_ip.clone());
        let rec = AuditRecord {
            time: now,
            user: user.to_string(),
            mode: "lockout".into(),
            result: "lock".into(),
            reason: Some(format!(
                "{} consecutive {what}{under_others}; second factor locked until {until_at}",
                lock.threshold
            )),
            server_name: config.server.name.clone(),
            nas_name: Some(nas.ctx.client.name.clone()),
            server_ip: nas.ctx.local.map(|a| a.ip().to_string()),
            client_ip,
            nas_ip: from.nas_ip,
            nas_identifier: from.nas_identifier,
            ..Default::default()
        };
        app.store
            .append_audit(&rec)
            .await
            .inspect_err(|_| super::audit::count_lost(app))?;
        // `until` stays Unix seconds, as a SIEM has typed it; `until_at` is for people,
        // as the audit reason and `user show` say it. The NAS as the record names it.
        tracing::warn!(
            target: "radmfa::audit",
            user,
            result = "lock",
            nas = nas.ctx.client.name.as_str(),
            client_ip = rec.client_ip.as_deref().unwrap_or(""),
            nas_ip = rec.nas_ip.as_deref().unwrap_or(""),
            nas_identifier = rec.nas_identifier.as_deref().unwrap_or(""),
            until,
            until_at = %until_at,
            "second factor locked"
        );
    }
    let settled = durability::settle().await;
    if settled.is_err() && locked_until.is_some() {
        // The lock's record went to the store with the failure count it records, and is
        // lost with it.
        super::audit::count_lost(app);
    }
    settled?;
    // And again once it is on disk. A request that read its `seen` after the mark above but
    // its snapshot before the commit holds the lockout as it was without this failure, and
    // its `seen` matches the mark: without a second one, its turn would trust that stale
    // standing, and a guess could pass the lock this failure set.
    turn.counted();
    // (0, None): locked already, by another node since this turn read the standing. The
    // answer is refused as locked; the lock and its record are that node's.
    let already = failures == 0 && locked_until.is_none();
    Ok(Counted {
        locked: locked_until.is_some() || already,
        left: match locked_until {
            Some(_) => 0,
            None if already => 0,
            None => threshold.saturating_sub(failures),
        },
    })
}
