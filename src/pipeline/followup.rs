//! The second round of a challenge: the request carries our State and the user's answer as
//! User-Password. The pending challenge may have been issued by any node sharing the store.
//! The answer is a TOTP code, an SMS code, Enter (after answering the call), or a switch:
//! "sms", "call", "app", "resend" — only to methods this prompt offered.

use super::login::LOCKED_MESSAGE;
use super::methods::{self, blocked, Subject};
use super::second_factor::{
    check_code_in_turn, oath_mode, refused_mode, sole_serial, take_turn, user_view, CodeCheck,
    UserView, Via, DISABLED_MESSAGE, RESYNC_MESSAGE,
};
use super::{aliases, followup_oob, oob, Fault, RequestContext, Verdict};
use crate::app::AppState;
use crate::auth::UserInfo;
use crate::mfa::challenge::{state_hash, ChallengeContext, SendsLimited, EARLIER_SMS_KEPT};
use crate::mfa::method::{parse_input, switch_hint, with_hint, Method, PromptInput};
use crate::radius::{Reply, ReplyCode, Request};
use crate::store::{ChallengeAttempt, PendingChallenge};

const EXPIRED_MESSAGE: &str = "The code prompt has expired. Please log in again.";

/// How long after the password check a resend or a switch of method may still open a new
/// prompt, in `challenge.timeout_secs` (10 minutes by default): each opens one with a fresh
/// lifetime, and without a bound someone holding the password and a prompt could keep
/// codes coming, or calls ringing, for ever without typing the password again.
const PROMPT_CHAIN_TIMEOUTS: i64 = 5;

/// One pending challenge being answered.
pub struct Round<'a> {
    pub state: &'a [u8],
    pub hash: Vec<u8>,
    pub pending: PendingChallenge,
    pub carried: ChallengeContext,
    pub now: i64,
    /// The request that answers the prompt.
    pub via: Via<'a>,
}

pub async fn answer(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
    state: &[u8],
) -> Result<Verdict, Fault> {
    let now = app.clock.now();
    let hash = state_hash(state);
    let Some(pending) = app.store.challenge(&hash, now).await? else {
        return Ok(
            Verdict::reject(Box::pin(no_prompt(app, &hash, user, now)).await)
                .with_reply(Reply::reject().with_message(EXPIRED_MESSAGE)),
        );
    };
    // A State is bound to the user and NAS it was issued to; someone else's State must not
    // finish this login (nor be burned by it). The user hears only that the prompt is over.
    if pending.user != user {
        return Ok(Verdict::reject("State was issued to another user")
            .with_reply(Reply::reject().with_message(EXPIRED_MESSAGE)));
    }
    if pending.nas != ctx.client.name {
        // Most often one NAS, or a proxy pair, with an entry per address (IPv4 and IPv6,
        // proxy1 and proxy2): the answer came through another entry than the password.
        return Ok(Verdict::reject(format!(
            "State was issued through client {:?}, not this one: a NAS or proxy pair that \
             reaches radmfa from several addresses needs one [[client]] entry listing them \
             all",
            pending.nas
        ))
        .with_reply(Reply::reject().with_message(EXPIRED_MESSAGE)));
    }
    if pending.created_at > now + crate::clock::FUTURE_SLACK_SECS {
        // Issued while a clock ran ahead (this node's before a step back, or another
        // node's): its expiry is as far off as that clock was wrong, so it is over now.
        app.store.consume_challenge(&hash).await?;
        return Ok(Verdict::reject(format!(
            "State issued at {}, ahead of this server's clock: this clock or the one that \
             issued it is wrong (check NTP)",
            crate::clock::fmt_time(pending.created_at)
        ))
        .with_reply(Reply::reject().with_message(EXPIRED_MESSAGE)));
    }
    // Refused, not read as an empty context: that is a plain code prompt, with no SMS or
    // call to check against, no address list and no groups to look at again. A node of a
    // newer release sharing the store may write what this one cannot read (a method it
    // does not know).
    let carried: ChallengeContext = match serde_json::from_str(&pending.context) {
        Ok(carried) => carried,
        Err(e) => {
            app.store.consume_challenge(&hash).await?;
            return Ok(Verdict::reject(format!(
                "the prompt's stored context could not be read ({e}): a node of another \
                 release may have written it"
            ))
            .with_reply(Reply::reject().with_message(EXPIRED_MESSAGE)));
        }
    };
    // Answered from an address the entry of this name did not cover when the prompt was
    // opened: another device took the name over (a reload removed the entry and added it
    // back elsewhere, or a restart did), and must not finish the old one's logins.
    if !carried.answerable_from(ctx.src.ip()) {
        app.store.consume_challenge(&hash).await?;
        return Ok(Verdict::reject(format!(
            "State was issued through client {:?} when its addresses did not include this \
             NAS's (changed since the prompt)",
            pending.nas
        ))
        .with_reply(Reply::reject().with_message(EXPIRED_MESSAGE)));
    }
    let info = UserInfo {
        dn: carried.dn.clone().unwrap_or_default(),
        given_name: carried.first_name.clone(),
        surname: carried.last_name.clone(),
        mail: carried.email.clone(),
        name: carried.name.clone(),
        granted: carried.granted(),
        other_names: carried.other_names.clone(),
        ..Default::default()
    };
    // The password was checked then: a forget of remembered logins since (a token taken
    // away, a phone changed) must keep this login from being remembered.
    let started = carried.started_at.unwrap_or(pending.created_at);
    let with_context = |mut v: Verdict| {
        v.started_at = Some(started);
        v.info = Some(info.clone());
        v.client_ip = carried.client_ip.clone();
        // Not on a code's verdict (the user switched from a call or SMS to the app): the
        // audit named the phone in a TOTP row.
        if v.phone.is_none()
            && carried.method.is_some_and(|m| m != Method::Totp)
            && !matches!(v.mode, "totp" | "hotp")
        {
            v.phone = carried.phone.clone();
        }
        v
    };

    let view = user_view(app, user).await?;
    if let Some((reason, reply)) = blocked(&view.profile) {
        app.store.consume_challenge(&hash).await?;
        return Ok(with_context(Verdict::reject(reason).with_reply(reply)));
    }
    if view.standing.locked {
        app.store.consume_challenge(&hash).await?;
        return Ok(with_context(
            Verdict::reject("second factor locked")
                .with_reply(Reply::reject().with_message(LOCKED_MESSAGE)),
        ));
    }
    // A reload changed the client's allow_groups since the password was checked: the
    // group rule is applied again, as the new rule reads (a group taken away must not
    // let a prompt opened before finish).
    let groups_now = crate::mfa::challenge::groups_fingerprint(&ctx.client.groups.allow);
    if carried
        .allow_groups
        .as_ref()
        .is_some_and(|then| *then != groups_now)
        && !super::groups::allowed(ctx, user, &info).await?
    {
        app.store.consume_challenge(&hash).await?;
        return Ok(with_context(Verdict::reject(format!(
            "not a member of any allow_groups of client {:?} (changed by a reload since \
             the prompt)",
            ctx.client.name
        ))));
    }
    // A reload took the prompt's own method off the client since it opened (SMS dropped
    // after an SMS-pumping incident, say): the prompt closes, as one of a removed group
    // does. A switch or resend to it was refused already (`offered`); the method the
    // prompt waited on was not, and an open SMS prompt still let its user in.
    let current = carried.method.unwrap_or(Method::Totp);
    if !ctx.client.factors.methods.contains(&current) {
        app.store.consume_challenge(&hash).await?;
        return Ok(with_context(
            Verdict::reject(format!(
                "method {} is no longer one of client {:?}'s methods (changed by a reload \
                 since the prompt)",
                current.as_str(),
                ctx.client.name
            ))
            .with_reply(Reply::reject().with_message(EXPIRED_MESSAGE)),
        ));
    }
    if let Some(stopped) =
        aliases::stopped_under_another_name(app, user, &carried.other_names).await?
    {
        app.store.consume_challenge(&hash).await?;
        let (reason, message) = match stopped {
            aliases::OtherName::Blocked(other) => {
                (aliases::blocked_reason(&other), methods::BLOCKED_MESSAGE)
            }
            aliases::OtherName::Locked(other) | aliases::OtherName::Enrolled(other) => {
                (aliases::locked_reason(Some(&other)), LOCKED_MESSAGE)
            }
        };
        return Ok(with_context(
            Verdict::reject(reason).with_reply(Reply::reject().with_message(message)),
        ));
    }
    let typed = req
        .user_password(ctx.client.secret.expose())
        .and_then(|c| c.expose_str().map(|s| s.trim().to_string()))
        .unwrap_or_default();
    let allowed = offered(ctx, &carried);
    let switch = match parse_input(&typed) {
        PromptInput::Switch(m) if allowed.contains(&m) && m != current => Some(m),
        PromptInput::Switch(Method::Sms) | PromptInput::Resend
            if current == Method::Sms && allowed.contains(&Method::Sms) =>
        {
            Some(Method::Sms)
        }
        _ => None,
    };
    if let Some(method) = switch {
        // Boxed: rare, and its awaits would otherwise sit in every request's future.
        let asked = Switch {
            method,
            current,
            allowed,
            oath_mode: oath_mode(view.tokens()),
            now,
        };
        let v = Box::pin(switch_method(
            app, ctx, req, user, state, pending, &carried, &info, asked,
        ));
        return Ok(with_context(v.await?));
    }
    // A prompt word this prompt does not offer ("resend" at an app code's prompt, "call"
    // where calls are not allowed, "app" at the app's prompt) is no guess at a code: the
    // same prompt again, no attempt taken, nothing counted toward the lockout (checked as a
    // code, it took the prompt's only attempt and counted a wrong code).
    // Nor is an empty answer (Enter pressed out of habit after a call's prompt, which asks
    // for just that): it never matches a code, and it cost an attempt and a wrong code.
    let word = matches!(
        parse_input(&typed),
        PromptInput::Switch(_) | PromptInput::Resend
    );
    if (word || typed.is_empty()) && current != Method::Voice {
        // An HOTP token waiting for its resync code is asked for that, as the wrong code
        // before it was.
        let resync = current == Method::Totp
            && app.config().hotp.self_resync
            && view.tokens().iter().any(|t| t.extra.resync.is_some());
        let ask = if resync {
            Ask::plain(RESYNC_MESSAGE)
        } else {
            prompt_for(app, current, &carried, &allowed)
        };
        // A client answering empty in a loop (no input behind it) is stopped.
        // The prompt's own mode, as its other records have (not "none").
        let mode = match current {
            Method::Totp => oath_mode(view.tokens()),
            other => other.as_str(),
        };
        if !word && app.empty_answers.note(&hash) > super::empty_answers::MAX_EMPTY_ANSWERS {
            app.store.consume_challenge(&hash).await?;
            let mut v = Verdict::reject(format!(
                "more than {} empty answers: the prompt is closed",
                super::empty_answers::MAX_EMPTY_ANSWERS
            ))
            .with_reply(Reply::reject().with_message("Nothing was typed. Log in again."));
            v.mode = mode;
            return Ok(with_context(v));
        }
        let (why, reason) = if word {
            let why = format!("{:?} is not available here.", typed.to_ascii_lowercase());
            (why, "a prompt word this prompt does not offer")
        } else {
            ("Nothing was typed.".to_string(), "an empty answer")
        };
        let mut reply = Reply::challenge(state.to_vec(), reask(&why, &ask));
        reply.session_timeout = Some((pending.expires_at - now).max(1) as u32);
        let mut v = Verdict::reject(reason).with_reply(reply);
        v.mode = mode;
        return Ok(with_context(v));
    }
    // A typed code's Accept needs the directory's groups: asked before the code is used up,
    // so that a directory failure leaves the code and the prompt for a retry. (A call
    // answered is not used up by a failure: it is searched for when accepted.) Boxed: only
    // clients with group_attributes search, and the searches would otherwise sit in every
    // request's future.
    let groups = match current {
        Method::Voice => None,
        Method::Totp | Method::Sms => {
            Box::pin(super::accept_attributes::before_the_code(ctx, user, &info)).await?
        }
    };
    let round = Round {
        state,
        hash,
        pending,
        carried: carried.clone(),
        now,
        via: Via {
            ctx,
            req,
            station: carried.client_ip.as_deref(),
        },
    };
    let mut v = match current {
        Method::Totp => totp(app, user, &round, &view, &typed).await?,
        Method::Sms => followup_oob::sms_code(app, user, &round, &typed, view.standing).await?,
        Method::Voice => followup_oob::call_answered(app, ctx, user, &round).await?,
    };
    v.groups = groups;
    Ok(with_context(v))
}

/// A switch or resend typed at a prompt, and what it asks for.
struct Switch {
    method: Method,
    current: Method,
    allowed: Vec<Method>,
    oath_mode: &'static str,
    now: i64,
}

/// Why no open prompt has this State, for the audit. An expired prompt stays in the store
/// until housekeeping deletes it (a minute after: `admin::serve`'s `PURGE_LATE_SECS`): found
/// so, and the user's, it is said to have expired, and when. Otherwise (never issued, used,
/// gone, or a read that failed: the answer is refused either way) it cannot be told apart.
async fn no_prompt(app: &AppState, hash: &[u8], user: &str, now: i64) -> String {
    match app.store.challenge(hash, i64::MIN).await {
        Ok(Some(p)) if p.user == user && p.expires_at <= now => format!(
            "challenge expired: the code prompt closed {} s before this answer (opened at {})",
            now - p.expires_at,
            crate::clock::fmt_time(p.created_at)
        ),
        _ => "unknown, used or expired State".into(),
    }
}

/// The prompt ends, and the method asked for starts with a new State; unless nothing could
/// be sent (the send limit, the provider), when the prompt stays.
#[allow(clippy::too_many_arguments)]
async fn switch_method(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
    state: &[u8],
    pending: PendingChallenge,
    carried: &ChallengeContext,
    info: &UserInfo,
    asked: Switch,
) -> Result<Verdict, Fault> {
    let Switch {
        method,
        current,
        allowed,
        oath_mode,
        now,
    } = asked;
    if !app.store.consume_challenge(&pending.state_hash).await? {
        return Ok(Verdict::reject("State already used"));
    }
    let started = carried.started_at.unwrap_or(pending.created_at);
    let chain = PROMPT_CHAIN_TIMEOUTS * app.config().challenge.timeout.as_secs() as i64;
    if now - started >= chain {
        // Under the method asked for, as its prompt's rows are: audited as mode `none`, a
        // chain of resends that ran out read as a login with no second factor at all.
        let mode = match method {
            Method::Totp => oath_mode,
            other => other.as_str(),
        };
        return Ok(Verdict {
            mode,
            ..Verdict::reject(format!(
                "{} requested {} s after the password check (at most {chain} s)",
                if method == current {
                    "resend"
                } else {
                    "switch"
                },
                now - started
            ))
            .with_reply(Reply::reject().with_message(EXPIRED_MESSAGE))
        });
    }
    // Should nothing go out, the prompt stays, offering what it did but the method that
    // just failed (a resend still offers itself: it may work once the send limit allows).
    let still_offered: Vec<Method> = allowed
        .iter()
        .copied()
        .filter(|m| *m != method || method == current)
        .collect();
    let subject = Subject {
        user,
        info: info.clone(),
        phone: carried.phone.clone(),
        available: allowed,
        client_ip: carried.client_ip.clone(),
        from: super::audit::Source::of(ctx, req),
        oath_mode,
        started_at: Some(started),
        earlier_sms: earlier_sms(carried, current),
        sends_limited: carried.sends_limited_now(now, send_window(app)),
        sends_limited_at: carried.sends_limited_at,
    };
    let key = oob::request_key(ctx, req);
    let v = methods::begin(app, ctx, &key, &subject, method).await?;
    if let Some(why) = nothing_sent(&v) {
        // The send limit, or the provider, refused the new code or call: the prompt being
        // answered stays, so a code already on its way (the one a "resend" was typed for,
        // slow to arrive) still finishes the login. It was taken above so that one State
        // cannot ask twice at once, and is put back with its expiry and at most one
        // attempt left: its count as read at the start may miss attempts answers sent
        // meanwhile took, and putting that count back would give them again.
        let max = max_attempts(app, ctx);
        let restored = PendingChallenge {
            attempts: pending.attempts.max(max.saturating_sub(1)),
            ..pending
        };
        // Texts and calls share the send limits: after a limit's refusal the prompt offers
        // no other of them (it offered "call" after a text's refusal and "sms" after the
        // call's, each refused in turn: red team), and a resend only while waiting may
        // bring it back (not past the day's cap). Kept with the prompt, for every
        // re-prompt of it (an empty answer's offered them all again: review).
        let limited = limit_that_refused(why);
        // In a block: the context's copy is not kept across the store's await (each
        // request's future carries what it holds there; see `a_requests_future_stays_small`).
        let (restored, ask) = {
            let mut carried = carried.clone();
            // A method the provider failed (or whose number it refuses) is not taken again
            // at this prompt: the hint left it out while typing it still asked the provider
            // again, and counted another send (red team). A send limit's refusal keeps it:
            // the window's lapses, and the prompt offers it again then.
            if limited.is_none() {
                carried.methods = still_offered.clone();
            }
            carried.sends_limited = carried
                .sends_limited_now(now, send_window(app))
                .max(limited);
            if limited.is_some() {
                carried.sends_limited_at = Some(now);
            }
            let ask = prompt_for(app, current, &carried, &still_offered);
            let restored = PendingChallenge {
                context: serde_json::to_string(&carried).unwrap_or(restored.context),
                ..restored
            };
            (restored, ask)
        };
        app.store.put_challenge(&restored).await?;
        // "or use another method" only where the prompt offers one (an SMS-only client's
        // failed resend offers just the resend again).
        let why = if still_offered.iter().any(|m| *m != method) {
            why
        } else {
            oob::without_another_method(why)
        };
        let mut reply = Reply::challenge(state.to_vec(), reask(why, &ask));
        reply.session_timeout = Some((restored.expires_at - now).max(1) as u32);
        return Ok(Verdict { reply, ..v });
    }
    if current == Method::Voice {
        if let Some(id) = carried.oob.as_deref() {
            let why = format!(
                "{}{} instead",
                crate::mfa::voice::ABANDONED_FOR,
                method.as_str()
            );
            oob::abandon_call(app, id, &why).await?;
        }
    }
    Ok(v)
}

/// The SMS transactions whose codes the next prompt of this login still takes: the ones
/// this prompt kept, and its own if it was an SMS prompt (the newest last, the oldest
/// dropped past [`EARLIER_SMS_KEPT`]).
fn earlier_sms(carried: &ChallengeContext, current: Method) -> Vec<String> {
    let mut ids = carried.earlier_sms.clone();
    if current == Method::Sms {
        ids.extend(carried.oob.clone());
    }
    let extra = ids.len().saturating_sub(EARLIER_SMS_KEPT);
    ids.drain(..extra);
    ids
}

/// One Reply-Message attribute's worth of text (RFC 2865 §5.18).
const ONE_REPLY_MESSAGE: usize = 253;

/// `why` the prompt is shown again, then the prompt with the words it offers (", or type
/// resend or call"): in one Reply-Message, the only one pam_radius_auth shows. A long
/// `[challenge] prompt` (up to 222 bytes) after a refusal (up to 107) would be split in
/// two, and the user would see the prompt cut off mid-word; the prompt was shown in full a
/// moment ago, so a short one stands in for it then, still with the words it offers
/// (without them a user would not know that "resend" still works), and without them only
/// if even that does not fit.
pub(super) fn reask(why: &str, ask: &Ask) -> String {
    [
        format!("{why} {}", ask.text(true)),
        format!("{why} {}", ask.text(false)),
        // Ending in ": " as every prompt does (pam_radius_auth shows it as it is).
        format!("{why} Enter the code{}: ", ask.hint),
    ]
    .into_iter()
    .find(|m| m.len() <= ONE_REPLY_MESSAGE)
    .unwrap_or_else(|| format!("{why} Enter the code: "))
}

/// What the prompt being answered asks for, to ask it again as it was first asked.
pub(super) struct Ask {
    prompt: String,
    /// The words it offers, as [`switch_hint`] writes them (", or type resend or call").
    hint: String,
}

impl Ask {
    /// A prompt that offers nothing else (the resync of an HOTP token).
    pub(super) fn plain(prompt: &str) -> Ask {
        Ask {
            prompt: prompt.to_string(),
            hint: String::new(),
        }
    }

    /// The app's prompt, offering `offered` (as they stand after any send limit).
    pub(super) fn app(app: &AppState, offered: &[Method]) -> Ask {
        Ask {
            prompt: app.config().challenge.prompt.clone(),
            hint: switch_hint(offered, Method::Totp),
        }
    }

    fn text(&self, with_words: bool) -> String {
        let hint = if with_words { self.hint.as_str() } else { "" };
        with_hint(&self.prompt, hint)
    }
}

/// What the prompt being answered asks for, offering `offered` as its first round did (the
/// re-prompt after a wrong code left out ", or type resend or call", though both still
/// worked there).
pub(super) fn prompt_for(
    app: &AppState,
    current: Method,
    carried: &ChallengeContext,
    offered: &[Method],
) -> Ask {
    let phone = carried.phone.as_deref().unwrap_or_default();
    let prompt = match current {
        Method::Sms if carried.unconfirmed => oob::unconfirmed_prompt(phone),
        Method::Sms => format!(
            "Enter the code sent to {}: ",
            crate::delivery::phone::mask(phone)
        ),
        Method::Voice => "Answer the call, then press Enter: ".into(),
        Method::Totp => app.config().challenge.prompt.clone(),
    };
    // After a send limit's refusal at this prompt, no other text or call is offered, and
    // no resend past the day's cap (see `ChallengeContext::sends_limited`).
    let limit = carried.sends_limited_now(app.clock.now(), send_window(app));
    let hinted = crate::mfa::challenge::offered_under(limit, offered, current);
    Ask {
        prompt,
        hint: switch_hint(&hinted, current),
    }
}

/// The send limits' window, in seconds (`[sms] window_secs`).
pub(super) fn send_window(app: &AppState) -> i64 {
    app.config().delivery.send_limits.window.as_secs() as i64
}

/// The methods a prompt offered that the client still allows (a reload may have taken one
/// away since): what a switch at it may ask for, and what asking again offers.
pub(super) fn offered(ctx: &RequestContext, carried: &ChallengeContext) -> Vec<Method> {
    carried
        .methods
        .iter()
        .copied()
        .filter(|m| ctx.client.factors.methods.contains(m))
        .collect()
}

/// Which send limit a [`nothing_sent`] message says refused the text or call, if one did.
pub(super) fn limit_that_refused(why: &str) -> Option<SendsLimited> {
    match why {
        oob::RATE_LIMITED => Some(SendsLimited::Window),
        oob::DAILY_LIMITED => Some(SendsLimited::Day),
        _ => None,
    }
}

/// A switch or resend refused before anything was sent (the send limit, the provider):
/// its message. Not a lock or a block, whose refusal ends the prompt too.
pub(super) fn nothing_sent(v: &Verdict) -> Option<&'static str> {
    if v.reply.code != ReplyCode::Reject {
        return None;
    }
    let m = v.reply.messages.first()?.as_str();
    [
        oob::RATE_LIMITED,
        oob::DAILY_LIMITED,
        oob::NOT_SENT,
        oob::NOT_CALLED,
        oob::NUMBER_CANNOT_TEXT,
        oob::NUMBER_CANNOT_CALL,
    ]
    .into_iter()
    .find(|known| *known == m)
}

async fn totp(
    app: &AppState,
    user: &str,
    r: &Round<'_>,
    view: &UserView,
    code: &str,
) -> Result<Verdict, Fault> {
    let others = &r.carried.other_names;
    // Every token taken from the user since the prompt (disabled, deleted, given to another
    // user, on any node): an admin's change, not a guess. No code could be checked, so
    // none is counted toward the lockout (the code was counted as wrong, and a user told
    // to try again after a lost token was reported locked themselves out), and the reply
    // says what a new login would.
    // A text this login sent is not the token's: its code is still looked at below, as
    // its own prompt would (review).
    let withdrawn = || async {
        app.store.consume_challenge(&r.hash).await?;
        let (reason, message) = if view.has_disabled_tokens() {
            ("the user's tokens are disabled", DISABLED_MESSAGE)
        } else {
            (super::second_factor::WITHDRAWN, EXPIRED_MESSAGE)
        };
        Ok::<_, Fault>(Verdict::reject(reason).with_reply(Reply::reject().with_message(message)))
    };
    if view.tokens().is_empty() && r.carried.earlier_sms.is_empty() {
        return withdrawn().await;
    }
    // The turn first: the attempt is a write, and on PostgreSQL the request's transaction
    // holds a pooled connection from its first write to its commit. Taken before the turn,
    // answers sent all at once for one user each held a connection while they queued for
    // it, and a few hundred took every one of the node's, refusing other users' logins
    // and losing audit records.
    let turn = take_turn(app, user, others).await;
    let Some(attempt) = take_attempt(app, r).await? else {
        return Ok(Verdict::reject(NO_ATTEMPT));
    };
    // Boxed, and only where a text went out earlier in the login: the rare path stays out
    // of every round 2's future and costs the usual one no allocation.
    // Whether the code was checked against the login's texts, and matched none.
    let mut missed_texts = false;
    let attempt = if r.carried.earlier_sms.is_empty() {
        attempt
    } else {
        match Box::pin(followup_oob::earlier_text_at_app_prompt(
            app,
            user,
            r,
            (&turn, view.standing),
            code,
            attempt,
        ))
        .await?
        {
            Ok(accepted) => return Ok(accepted),
            Err((attempt, checked)) => {
                missed_texts = checked;
                attempt
            }
        }
    };
    if view.tokens().is_empty() {
        // A code checked against the login's texts that matched none is a wrong guess at
        // them, counted as at a text's prompt: uncounted, each prompt opened before a
        // token was disabled was a free guess (review). One no text was asked about (a
        // prompt word, a lock, texts taken off the client) is not.
        if missed_texts {
            Box::pin(count_wrong_text_code(app, user, r, &turn)).await?;
        }
        return withdrawn().await;
    }
    let asked = (view, code, r.via);
    match check_code_in_turn(app, &turn, user, others, asked).await? {
        CodeCheck::Valid { serial, mode, note } => {
            if !closes(app, r, attempt).await? {
                return Ok(Verdict::reject("State already used"));
            }
            Ok(Verdict {
                reply: Reply::accept(),
                mode,
                reason: note,
                token_serial: Some(serial),
                info: None,
                client_ip: None,
                phone: None,
                // Set by `answer`'s `with_context`, and the groups after it.
                started_at: None,
                groups: None,
                unanswered: false,
                maybe_sent: false,
            })
        }
        CodeCheck::Invalid {
            reason,
            locked,
            resync,
            before_lock,
            serial,
            kind,
            message,
        } => {
            // A resync-pending HOTP token: the next code at this very prompt finishes it.
            let ask = if resync {
                Ask::plain(RESYNC_MESSAGE)
            } else {
                prompt_for(
                    app,
                    Method::Totp,
                    &r.carried,
                    &offered(r.via.ctx, &r.carried),
                )
            };
            // The code's token's mode, when it was one token's: "press the button" for an
            // HOTP token's used code, though the user holds an app too.
            let mode = refused_mode(kind, view.tokens());
            // The code of a token the user cannot use now: said so, as a login with that
            // token alone is told (the prompt stays while attempts are left, for a code of
            // another token).
            let said = message.or_else(|| reused_message(&reason, mode));
            // Boxed with the re-prompt: a wrong answer's path, kept out of every request's
            // future (its size is bounded by a test).
            let mut v = Box::pin(async {
                // Not counted (no code at all, a used one): the lockout as it stands still
                // bounds the attempts left.
                let before_lock = match before_lock {
                    None if !locked => {
                        Some(super::second_factor::left_before_lock(app, user, others).await?)
                    }
                    counted => counted,
                };
                let lock = Lockout {
                    locked,
                    before_lock,
                };
                wrong_answer(app, r, attempt, mode, reason, lock, &ask, said).await
            })
            .await?;
            v.token_serial = serial.or_else(|| sole_serial(view.tokens()));
            if resync && !locked && v.reply.code == ReplyCode::Reject {
                // Out of attempts: the next login's code will do it. Said instead of "Wrong
                // code.": pam_radius_auth shows only the first Reply-Message.
                v.reply = Reply::reject().with_message(RESYNC_MESSAGE);
            }
            Ok(v)
        }
    }
}

/// A wrong code where only the login's texts could check it: counted toward the lockout,
/// under the entry's other names too (the text went to the entry's phone).
async fn count_wrong_text_code(
    app: &AppState,
    user: &str,
    r: &Round<'_>,
    turn: &super::code_turns::Turn<'_>,
) -> Result<(), Fault> {
    let others = &r.carried.other_names;
    let elsewhere = super::second_factor::failures_under_other_names(app, user, others).await?;
    let counted = super::second_factor::count_failure_after(
        app,
        turn,
        user,
        "wrong answers",
        elsewhere,
        r.via,
    )
    .await?;
    if counted.locked {
        super::second_factor::clear_under_other_names(app, user, others).await?;
    }
    Ok(())
}

/// What a prompt tells of a code a token used already (or an older one of it), instead of
/// "Wrong code.": the user typed the code on the display, and needs its next one. Nothing
/// an attacker learns from it: such a code is one the prompt's user saw, and the prompt
/// already said the password was right. `mode`: "hotp" when the code was an HOTP token's
/// (or every token of the user's is one), whose next code comes with a press of its
/// button, not by waiting.
fn reused_message(reason: &str, mode: &str) -> Option<&'static str> {
    let hotp = mode == "hotp";
    match reason {
        super::second_factor::REPLAYED if hotp => {
            Some("That code was already used; press the button for a new one.")
        }
        super::second_factor::REPLAYED => {
            Some("That code was already used; wait for the next one.")
        }
        super::second_factor::STALE if hotp => {
            Some("That code is older than the last one used; press the button for a new one.")
        }
        super::second_factor::STALE => {
            Some("That code is older than the last one used; wait for the next one.")
        }
        _ => None,
    }
}

/// Why an answer was refused unchecked.
pub const NO_ATTEMPT: &str = "State already used, or its attempts all taken";

/// Takes one of the prompt's attempts for the answer about to be checked (`None`: there is
/// none left, and the answer must not be checked). Taken before the check, not counted
/// after it: answers sent all at once to one State, whose checks interleave, would
/// otherwise each be checked before any of them was counted.
pub async fn take_attempt(app: &AppState, r: &Round<'_>) -> Result<Option<Attempt>, Fault> {
    let max = max_attempts(app, r.via.ctx);
    Ok(match app.store.take_attempt(&r.hash, max).await? {
        ChallengeAttempt::Closed => None,
        taken => Some(Attempt { taken, max }),
    })
}

/// The codes a prompt of this client takes: its entry's `max_attempts`, else
/// `[challenge] max_attempts`. The answering client is the one that opened the prompt
/// (`answer` refuses any other), so its entry is the one that decides.
fn max_attempts(app: &AppState, ctx: &RequestContext) -> u32 {
    ctx.client
        .challenge
        .max_attempts(app.config().challenge.max_attempts)
}

/// An attempt taken at a prompt that allows `max`.
#[derive(Clone, Copy)]
pub struct Attempt {
    taken: ChallengeAttempt,
    max: u32,
}

/// For a right answer: whether this request closed the prompt (single use: only the one
/// that deletes the challenge may accept). The last attempt closed it when it was taken.
pub async fn closes(app: &AppState, r: &Round<'_>, attempt: Attempt) -> Result<bool, Fault> {
    Ok(match attempt.taken {
        ChallengeAttempt::Open(_) => app.store.consume_challenge(&r.hash).await?,
        ChallengeAttempt::Last | ChallengeAttempt::Closed => true,
    })
}

/// Where a wrong answer left the user's lockout.
#[derive(Clone, Copy, Debug)]
pub struct Lockout {
    /// It locked the second factor (or found it locked).
    pub locked: bool,
    /// Wrong answers still to go before the lock, when this one was counted.
    pub before_lock: Option<u32>,
}

/// Told after a wrong answer at a prompt. The prompt already said the password was right,
/// so this tells no more than the refusal does. Not on inline or code-only clients: there a
/// wrong code's Reject is a wrong password's, and saying it would tell them apart.
const WRONG_CODE_MESSAGE: &str = "Wrong code.";

/// A wrong code: closes the prompt if the lockout hit or attempts are used up, else asks
/// again with the same State. `said`: what the user is told instead of
/// [`WRONG_CODE_MESSAGE`], before the attempts left or as the refusal's message.
#[allow(clippy::too_many_arguments)]
pub async fn wrong_answer(
    app: &AppState,
    r: &Round<'_>,
    attempt: Attempt,
    mode: &'static str,
    reason: String,
    lock: Lockout,
    ask: &Ask,
    said: Option<&str>,
) -> Result<Verdict, Fault> {
    if lock.locked {
        app.store.consume_challenge(&r.hash).await?;
        let mut v =
            Verdict::reject(reason).with_reply(Reply::reject().with_message(LOCKED_MESSAGE));
        v.mode = mode;
        return Ok(v);
    }
    let mut v = match attempt.taken {
        ChallengeAttempt::Open(n) => {
            // The prompt's attempts, or fewer when the lockout comes first: with
            // max_attempts above the lockout threshold, "2 attempt(s) left" was followed
            // by a lock at the next wrong code.
            let left = attempt.max.saturating_sub(n);
            let left = lock.before_lock.map_or(left, |b| left.min(b));
            let said = said.unwrap_or(WRONG_CODE_MESSAGE);
            let why = format!("{said} {left} attempt(s) left.");
            let mut reply = Reply::challenge(r.state.to_vec(), reask(&why, ask));
            reply.session_timeout = Some((r.pending.expires_at - r.now).max(1) as u32);
            Verdict::reject(reason).with_reply(reply)
        }
        // The prompt is over: said all the same (a bare Reject left the user guessing
        // whether the code, the password or the server was at fault).
        ChallengeAttempt::Last | ChallengeAttempt::Closed => Verdict::reject(reason)
            .with_reply(Reply::reject().with_message(said.unwrap_or(WRONG_CODE_MESSAGE))),
    };
    v.mode = mode;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest prompt the config takes, after the longest refusal (or a wrong code):
    /// one Reply-Message, keeping the words the prompt offers while they fit.
    #[test]
    fn a_re_prompt_after_a_refusal_fits_one_reply_message() {
        let all = [Method::Totp, Method::Sms, Method::Voice];
        let ask = |prompt: &str, current| Ask {
            prompt: prompt.to_string(),
            hint: switch_hint(&all, current),
        };
        let typed = format!("{:?} is not available here.", "resend");
        for why in [
            oob::RATE_LIMITED,
            oob::DAILY_LIMITED,
            oob::NOT_SENT,
            oob::NOT_CALLED,
            oob::NUMBER_CANNOT_TEXT,
            oob::NUMBER_CANNOT_CALL,
            "Wrong code. 9 attempt(s) left.",
            typed.as_str(),
        ] {
            let longest = "x".repeat(222);
            let long = reask(why, &ask(&longest, Method::Totp));
            assert!(long.len() <= ONE_REPLY_MESSAGE, "{} bytes", long.len());
            assert!(long.starts_with(why));
            // The whole prompt where it fits (after a wrong code: the 31 bytes the config
            // leaves for that), else the short one with the words it offers.
            assert!(
                long == format!("{why} {longest}")
                    || long == format!("{why} Enter the code, or type sms or call: "),
                "{long}"
            );
            let short = reask(why, &ask("Enter the code sent to ****2333: ", Method::Sms));
            assert_eq!(
                short,
                format!("{why} Enter the code sent to ****2333, or type resend, app or call: ")
            );
        }
        // A prompt that just fits after a wrong code keeps itself whole, without the words.
        let why = "Wrong code. 2 attempt(s) left.";
        let fits = "x".repeat(ONE_REPLY_MESSAGE - why.len() - 1);
        assert_eq!(
            reask(why, &ask(&fits, Method::Totp)),
            format!("{why} {fits}")
        );
    }
}
