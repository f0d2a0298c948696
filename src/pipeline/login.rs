//! A fresh login (no State): an app password (clients that allow them), or the password
//! against the directory and then the second factor — a TOTP code inline in the same field,
//! or the user's method (TOTP prompt, SMS code, phone call) chosen among what the client
//! allows. Second-factor-only clients (RD Gateway) go to `rdg`.

use std::time::{Duration, Instant};

use super::aliases::{self, OtherName};
use super::groups::{self, Membership};
use super::methods::{self, blocked, Subject};
use super::second_factor::{
    check_code, oath_mode, refused_mode, sole_serial, user_view, validity_message, CodeCheck,
    UserView, Via, DISABLED_MESSAGE, RESYNC_MESSAGE,
};
use super::skipped_code;
use super::{
    app_login, bypass, inline_reply, networks, oob, primary, rdg, remembered, static_challenge,
    Fault, RequestContext, Verdict,
};
use crate::app::AppState;
use crate::auth::{Denial, PrimaryOutcome, UserInfo};
use crate::config::delivery::VoiceMode;
use crate::config::{NoFactorPolicy, OtpMode, Primary};
use crate::delivery::phone::UnusedNumber;
use crate::mfa::method::{available, choose, Capabilities, Method};
use crate::mfa::otp;
use crate::mfa::verify::{self, VerifyOptions};
use crate::radius::{Reply, ReplyCode, Request};
use crate::secret::Secret;
use crate::store::TokenRecord;

pub const LOCKED_MESSAGE: &str = "Too many wrong codes. Try again later.";
const NO_INLINE_CODE: &str = "no code found in the password field";
/// A code-only client's User-Password that holds no code: most often a NAS that sends the
/// password there, which this entry does not check.
const NOT_A_CODE: &str = "the User-Password is not a code (4 to 10 digits), and this client has \
     otp_mode = \"code_only\": its NAS must check the password itself and send only the code \
     (a NAS that sends the password wants \"challenge\" or \"inline\")";

/// 4 to 10 digits, spaces and dashes aside (as typed from a token's display, "123 456",
/// "123-456"; see [`otp::plain_code`]).
fn is_code(field: &Secret) -> bool {
    field
        .expose_str()
        .is_some_and(|s| otp::is_code_attempt(&otp::plain_code(s)))
}

/// Why a password was not text, for its audit reason. Only an unsigned request over UDP can
/// carry a password hidden with another shared secret (a signed one with a wrong secret is
/// dropped before, and RadSec's is fixed), and such a client shows a wrong secret only so:
/// the log says it too, once in a while per client. Otherwise the secret is proven, and the
/// NAS sent another character set.
fn password_not_text(ctx: &RequestContext, req: &Request) -> String {
    if req.has_message_authenticator || ctx.over_tls {
        return ": the NAS may send another character set (such as Latin-1)".into();
    }
    let client = &ctx.client.name;
    crate::warn_once!(
        &format!("password-not-text:{client}"),
        client = %client,
        "a User-Password from this client did not decode as text: the NAS and its \
         [[client]] entry probably have different shared secrets (a NAS that sends \
         Message-Authenticator would show it as such); compare them"
    );
    ": the NAS and this client entry probably have different shared secrets".into()
}

pub async fn start(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
) -> Result<Verdict, Fault> {
    // Inline, a refusal says no more than a wrong password's (see `inline_reply`).
    let v = fresh_login(app, ctx, req, user).await?;
    Ok(inline_reply::as_sent(ctx, v))
}

async fn fresh_login(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
) -> Result<Verdict, Fault> {
    if ctx.client.factors.second_factor_only {
        return rdg::start(app, ctx, req, user).await;
    }
    let Some(field) = req.user_password(ctx.client.secret.expose()) else {
        let why = if let Some(len) = req.user_password_len() {
            // Present, but not what RFC 2865 §5.2 hiding makes (16 to 128 octets, whole
            // blocks): the admin should look at the NAS, not for a missing attribute.
            format!(
                "a User-Password of {} octets is not a hidden password (16 to 128 octets in \
                 blocks of 16)",
                len
            )
        } else if req.carries_other_credentials() {
            "no User-Password: only PAP can carry a code (CHAP, EAP, MS-CHAP and the like are not supported)"
                .into()
        } else {
            "no User-Password".into()
        };
        return Ok(Verdict::reject(why));
    };
    // The NAS checked the password and sends only the code: the directory is asked whether
    // the user exists, never to bind (a code taken as a password would count toward the
    // account's lockout there).
    let code_only = ctx.client.otp_mode == OtpMode::CodeOnly;
    if code_only && !is_code(&field) {
        // Before any read, and not counted toward the lockout: no code was tried.
        return Ok(Verdict::reject(NOT_A_CODE));
    }
    // OpenVPN's static challenge wraps the field: the password (or app password) and the
    // code come apart.
    let static_parts = if code_only {
        None
    } else {
        static_challenge::split(&field)
    };
    if !code_only && static_parts.is_none() && static_challenge::malformed(&field) {
        return Ok(Verdict::reject(
            "a mangled OpenVPN static-challenge field (SCRV1: with a password part but no \
             base64 code part): not sent to the directory",
        ));
    }
    if ctx.client.factors.app_passwords {
        let typed = static_parts.as_ref().map_or(&field, |(p, _)| p);
        if let Some(v) = app_login::try_app_password(app, ctx, user, typed).await? {
            return Ok(v);
        }
    }
    // Tokens, lockout state and profile in one read. An inline client needs them before the
    // directory (to split the field, and to refuse an enrolled user's field that holds no
    // code without a bind), so there every name pays for the read, an unknown one too.
    // Elsewhere the read waits until the password is accepted, so a refused password reads
    // nothing for any name: a read that finds tokens takes longer than one that finds none
    // (12-14 µs more, measured on SQLite), and before the directory that told token holders
    // from other names by how long their wrong passwords took to refuse.
    let inline_client = matches!(ctx.client.otp_mode, OtpMode::Inline { .. });
    let early = if inline_client {
        Some(user_view(app, user).await?)
    } else {
        None
    };
    let tokens: &[TokenRecord] = early.as_ref().map_or(&[], |v| v.tokens());
    // Disabled tokens split the field too (never checked: a code of theirs is told as one):
    // without their lengths, a disabled 6-digit token's code beside an 8-digit token was
    // cut 8 from the end, and the password's last two characters went with it — a refused
    // bind, counted by the directory, for a user who typed the right password.
    let disabled: &[TokenRecord] = early.as_ref().map_or(&[], |v| v.disabled());

    // OpenVPN's static challenge carries password and code apart, whatever the mode (with
    // no code typed, the password alone); otherwise an inline client's field is split — for
    // a user with a token, on a client that takes OATH codes, only: otherwise there is no
    // code to find, and a password that holds the delimiter (or ends in digits) is the
    // password.
    let takes_codes = ctx.client.factors.methods.contains(&Method::Totp);
    // Inline, where the field may be the password alone: the client has exempt groups or
    // remembers second factors, the request comes from an exempt network, or the user has
    // a bypass waiting.
    let bypass_pending = early
        .as_ref()
        .is_some_and(|v| v.profile.bypass_pending(app.clock.now()));
    let exempt_station = networks::exempt_station(ctx, req);
    // Only where codes are a method: on an inline client that holds phone calls and takes
    // no codes, a token holder's password alone leads to the call.
    // Nor for a token holder whose chosen method (`user set-method voice`) is a call this
    // client holds: the password alone leads to it, as for a user without a token. The
    // choice is read with the tokens, for every name alike.
    let calls_instead = ctx.client.factors.voice_mode == VoiceMode::Hold
        && ctx.client.factors.methods.contains(&Method::Voice)
        && early
            .as_ref()
            .and_then(|v| v.profile.method.as_deref())
            .and_then(Method::parse)
            == Some(Method::Voice);
    let may_skip_code = !ctx.client.groups.exempt.is_empty()
        || ctx.client.factors.remember.is_some()
        || exempt_station.is_some()
        || bypass_pending;
    // The field's other splits (see `split_inline`), whose passwords are asked in turn when
    // the directory refuses the one taken.
    let mut other_splits: Vec<InlineSplit> = Vec::new();
    // An inline field taken whole though it looks like password<delim>code: said in a
    // refused password's audit reason (see `TakenWhole`).
    let mut taken_whole = match (&static_parts, &ctx.client.otp_mode) {
        (None, OtpMode::Inline { delimiter }) if tokens.is_empty() || !takes_codes => {
            TakenWhole::of(&field, delimiter, takes_codes, disabled.is_empty())
        }
        _ => None,
    };
    let (mut password, mut code) = match (static_parts, &ctx.client.otp_mode) {
        (_, OtpMode::CodeOnly) => (Secret::from(""), Some(field)),
        (Some(parts), _) => parts,
        (None, OtpMode::Inline { .. }) if tokens.is_empty() || !takes_codes => (field, None),
        (None, OtpMode::Inline { delimiter }) => {
            // Every token asked (no early exit), so the time taken does not say which fits.
            // Only called where two splits end in digits: nothing to set up otherwise.
            let fits = |code: &str| {
                let (opts, now) = (VerifyOptions::of(&app.config()), app.clock.now());
                let usable = tokens
                    .iter()
                    .fold(false, |any, t| any | verify::fits(&opts, t, code, now));
                // A disabled token's code fits too: its split's password is the one typed.
                disabled.iter().fold(usable, |any, t| {
                    any | verify::matches_unusable(&opts, t, code, now)
                })
            };
            let lengths = code_lengths(tokens.iter().chain(disabled));
            let mut splits = split_inline(&field, delimiter, &lengths, fits);
            // Digits after the delimiter that no token of the user's has as many of
            // ("Pass,2024" for 6-digit tokens) are no code, where the field may be the
            // password alone: split, "Pass" went to the directory, and a remembered
            // station, an exempt network, a bypass or a held call never let the user in
            // ("bad password", each try counted by the directory's lockout). Elsewhere the
            // field needs a code, and such digits stay a mistyped one, counted as any.
            let tail = splits
                .first()
                .and_then(|sp| sp.code.expose_str().map(|c| otp::plain_code(c).len()));
            let no_code_here = !delimiter.is_empty()
                && (may_skip_code || calls_instead)
                && tail.is_some_and(|n| !lengths.contains(&n));
            if no_code_here {
                taken_whole = tail.map(|digits| TakenWhole {
                    digits,
                    why: "no token of this user's has codes that long",
                });
            }
            if splits.is_empty() || no_code_here {
                (field, None)
            } else {
                let first = splits.remove(0);
                other_splits = splits;
                (first.password, Some(first.code))
            }
        }
        (None, OtpMode::Challenge) => (field, None),
    };
    // Inline, a field without a code is refused — unless the client has exempt groups or
    // remembers second factors, the request comes from an exempt network, or the user has
    // a bypass waiting: then the field may be the password alone, so it is checked as the
    // password, and the refusal waits for those checks (`may_skip_code`, above).
    let no_code = inline_client
        && code.is_none()
        && !tokens.is_empty()
        && ctx.client.factors.methods.contains(&Method::Totp);
    let code_missing = no_code && !calls_instead;
    // A password refused for every name alike is refused at once, for every name: the
    // refusal below takes a check's time, and for these a check takes none.
    if let Some(denial) =
        primary::refused_unasked(&ctx.client.primary, &password).filter(|_| !code_only)
    {
        let mut reason = denial.reason();
        if denial == Denial::PasswordNotText {
            reason.push_str(&password_not_text(ctx, req));
        }
        return Ok(Verdict::reject(reason));
    }
    if code_missing && !may_skip_code {
        // Refused without a bind (one with a field that held no code would count against
        // the account's lockout), but not sooner than a check, nor where a check would
        // fail: only enrolled users get here, and a quick answer would tell them from the
        // rest. The directory's own path for an unknown user where there is one; else the
        // upstream servers asked about a made-up name (neither the user's name nor the field
        // goes there; the domain typed and the NAS's attributes do),
        // whose refusal takes their time for a name they do not know and whose silence
        // fails this login as it fails everyone's.
        match ctx.client.primary {
            Primary::Ldap => {
                ctx.primary.imitate_check(user).await?;
                // And the rest of a known user's refusal (see `refusal_floor`). Boxed:
                // inline, its sleep took the request's future past its bound.
                let cap = pad_cap(app, ctx);
                Box::pin(app.refused_login_latency.sleep_rest(
                    &ctx.client.name,
                    ctx.received.elapsed(),
                    cap,
                ))
                .await;
            }
            Primary::Upstream(ref group) => {
                // And not sooner than the servers' refusals of real logins take (mostly
                // known names with a wrong password, which a server may be slower to
                // refuse than a name it does not know).
                let asked = Instant::now();
                primary::imitate_upstream(app, ctx, req, group).await?;
                let cap = pad_cap(app, ctx);
                let floor = app.upstream_latency.get(group);
                floor.sleep_rest(asked.elapsed(), cap).await;
            }
        }
        return Ok(Verdict::reject(NO_INLINE_CODE));
    }

    let mut asked = Instant::now();
    let mut checked = if code_only {
        match ctx.primary.lookup(user).await? {
            Some(info) => PrimaryOutcome::Accepted(info),
            None => PrimaryOutcome::Denied(Denial::UnknownUser),
        }
    } else {
        primary::check(app, ctx, req, user, &password).await?
    };
    // A field that splits two ways, its password refused: the other split's is asked, so a
    // right password is found whichever code was meant, and its wrong code is counted
    // toward the lockout. Without it, a caller with the password could try codes for the
    // shorter token without end: each wrong one made the longest split's password wrong, a
    // refusal never counted, and the right one fitted and got in. Every split is asked on a
    // refusal, whatever fitted, so the time a wrong password takes does not tell whether a
    // guessed code fitted. Not counted without a password that binds: no one can lock a
    // user's second factor by knowing the name. The cost: a wrong password in such a field
    // is one refused bind per split (the directory's own lockout counts each), and takes
    // that much longer than one for a user whose field splits one way.
    for next in other_splits {
        let refused = matches!(
            checked,
            PrimaryOutcome::Denied(
                Denial::BadPassword
                    | Denial::UpstreamReject(_)
                    | Denial::Directory(crate::auth::ad_codes::AdReason::BadPassword)
            )
        );
        if !refused {
            break;
        }
        (password, code) = (next.password, Some(next.code));
        asked = Instant::now();
        checked = primary::check(app, ctx, req, user, &password).await?;
    }
    // The floor under the refusal above: the upstream servers' own refusals only. Their
    // accepts are followed by a directory lookup, and a server may delay its rejects
    // (FreeRADIUS: reject_delay), so an average of all answers would tell them apart.
    if let (Primary::Upstream(group), PrimaryOutcome::Denied(Denial::UpstreamReject(_))) =
        (&ctx.client.primary, &checked)
    {
        app.upstream_latency.get(group).record(asked.elapsed());
    }
    let info = match checked {
        PrimaryOutcome::Accepted(info) => info,
        PrimaryOutcome::Denied(d) => {
            let mut reason = d.reason();
            // Only where the password was wrong (or the name unknown): a refusal for the
            // account's state (AD's expired or must-change, a lockout) may follow the right
            // password, and the hint would tell the audit that it is all digits. The store
            // is read either way: skipping the read for some refusals would time them apart.
            // With the floor under a directory client's refusal (`refusal_floor`), in one
            // boxed step: a wait of its own took the request's future past its bound.
            let unechoed = Box::pin(async {
                if code_only {
                    code_refusal_floor(app, ctx, &d).await;
                    return false;
                }
                let unechoed = looks_like_unechoed_answer(app, ctx, user, &password).await;
                if ctx.client.primary == Primary::Ldap {
                    refusal_floor(app, ctx, &d).await;
                }
                unechoed
            })
            .await;
            let wrong = matches!(
                d,
                Denial::BadPassword
                    | Denial::UnknownUser
                    | Denial::UpstreamReject(_)
                    | Denial::Directory(
                        crate::auth::ad_codes::AdReason::BadPassword
                            | crate::auth::ad_codes::AdReason::UserNotFound
                    )
            );
            if wrong && unechoed {
                reason.push_str(STATE_NOT_ECHOED);
            }
            if let Some(whole) = taken_whole.filter(|_| wrong && !names_no_user(&d)) {
                reason.push_str(&whole.to_string());
            }
            return Ok(Verdict::reject(reason));
        }
    };
    let view = match early {
        Some(view) => view,
        None => user_view(app, user).await?,
    };
    let tokens = view.tokens();
    let own_state = aliases::holds_state(
        !view.tokens().is_empty() || view.has_disabled_tokens(),
        &view.profile,
    );
    let mut locked_as = None;
    match aliases::enrolled_under_another_name(app, user, own_state, &info).await? {
        Some(OtherName::Enrolled(other)) => return Ok(aliases::refused(other, info)),
        Some(OtherName::Locked(other)) => locked_as = Some(other),
        Some(OtherName::Blocked(other)) => return Ok(aliases::blocked_as(&other, info)),
        None => {}
    }
    let locked = view.standing.locked || locked_as.is_some();
    let profile = &view.profile;
    if let Some((reason, reply)) = blocked(profile) {
        return Ok(Verdict::reject(reason)
            .with_info(Some(info))
            .with_reply(reply));
    }
    // A code typed inline with the password of a login let in without one is used up
    // all the same (`skipped_code`): the field must not log in again from elsewhere.
    // Boxed: rare, and its awaits would otherwise sit in every request's future.
    let use_up = async |info: &UserInfo| {
        let via = Via {
            ctx,
            req,
            station: None,
        };
        skipped_code::use_up(app, via, user, &view, code.as_ref(), info).await
    };
    match groups::check(app, ctx, user, &info).await? {
        Membership::Allowed => {}
        Membership::NotAllowed => return Ok(groups::not_allowed(ctx, info)),
        Membership::Exempt(group) => {
            Box::pin(use_up(&info)).await?;
            return Ok(groups::exempt(group, info));
        }
    }
    if let Some(ip) = exempt_station {
        Box::pin(use_up(&info)).await?;
        return Ok(networks::exempt(ip, info));
    }
    // A remembered second factor is not one more chance at a locked one; and it is asked
    // before the bypass so that a waiting bypass is not spent when it was not needed.
    if !locked {
        if let Some(v) = remembered::take(app, ctx, req, user, &info, tokens).await? {
            Box::pin(use_up(&info)).await?;
            return Ok(v);
        }
    }
    let phone = oob::phone_for(app, profile, &info);
    // Tokens outside their validity dates refuse every code: no prompt for them.
    let has_tokens = !tokens.is_empty() && view.outside_validity.is_none();
    let usable = available(
        &ctx.client.factors.methods,
        capabilities(app, ctx, has_tokens, phone.is_some()),
    );
    // No factor usable here: refused, or let in on the password alone (no_factor =
    // "allow"). A login let in anyway needs no bypass, and a waiting one is not spent on it:
    // spent, the user's next login on a client that asks for a factor was refused.
    let without_factor = usable
        .is_empty()
        .then(|| without_usable_factor(app, ctx, &view, &info, has_tokens, code_only));
    // A locked user is refused that login (below): a waiting bypass is what lets them in,
    // as on RD Gateway's path.
    let needs_no_bypass = !locked
        && !code_missing
        && !no_code
        && without_factor
            .as_ref()
            .is_some_and(|v| v.reply.code == ReplyCode::Accept);
    if !needs_no_bypass {
        if let Some(v) = bypass::take(app, user, profile, &info).await? {
            Box::pin(use_up(&info)).await?;
            return Ok(v);
        }
    }
    if code_missing {
        return Ok(Verdict::reject(NO_INLINE_CODE).with_info(Some(info)));
    }
    if no_code && !usable.contains(&Method::Voice) {
        // Chose calls, but no number of theirs can be called: the code prompt the choice
        // would fall back to cannot be shown on this client.
        return Ok(Verdict::reject(format!(
            "{NO_INLINE_CODE}; the user chose calls (user set-method voice), but has no \
             number that can be called"
        ))
        .with_info(Some(info)));
    }

    // The lock before a login on the password alone (no_factor = "allow" for a user with
    // no factor usable here), as RD Gateway's path has it: the wrong codes that locked the
    // user came after the right password, and whoever sent them got in on a client that
    // allows users without a factor (the token then deleted as lost, say).
    if locked {
        let mut v = Verdict::reject(aliases::locked_reason(locked_as.as_deref()))
            .with_info(Some(info))
            .with_reply(Reply::reject().with_message(LOCKED_MESSAGE));
        if code.is_some() {
            // A code came inline: refused as a code, in the code's mode.
            v.mode = oath_mode(tokens);
        }
        return Ok(v);
    }
    if let Some(v) = without_factor {
        return Ok(v);
    }

    if let Some(code) = code {
        // A code in the request is an OATH code: only where the client allows that factor.
        if !usable.contains(&Method::Totp) {
            let why = if tokens.is_empty() {
                "a code came with the password, but the user has no token"
            } else {
                "a code came with the password, but this client's methods do not include totp"
            };
            return Ok(Verdict::reject(why).with_info(Some(info)));
        }
        let via = Via {
            ctx,
            req,
            station: None,
        };
        let v = inline(app, via, user, &view, &code, info).await?;
        // A plain wrong code (no lock, no resync message): what an unknown name's refusal
        // must look like on this client (`code_refusal_floor`).
        if code_only
            && v.reply.code == crate::radius::ReplyCode::Reject
            && v.reply.messages.is_empty()
        {
            app.refused_code_latency
                .record(&ctx.client.name, ctx.received.elapsed());
        }
        return Ok(v);
    }
    let preferred = profile.method.as_deref().and_then(Method::parse);
    let Some(method) = choose(&usable, preferred) else {
        return Ok(Verdict::reject("no usable second factor"));
    };
    let subject = Subject {
        user,
        info,
        phone,
        available: usable,
        client_ip: req.calling_station_id(),
        from: super::audit::Source::of(ctx, req),
        oath_mode: oath_mode(tokens),
        started_at: None,
        earlier_sms: Vec::new(),
        sends_limited: None,
        sends_limited_at: None,
    };
    let key = oob::request_key(ctx, req);
    let v = methods::begin(app, ctx, &key, &subject, method).await?;
    if let Some(why) = super::followup::nothing_sent(&v) {
        // Not where the call may still ring (a slow provider): it would ring on while the
        // user is at the app's prompt, and its approval approve nothing. A text that may
        // still come has a prompt of its own (`Delivered::Unconfirmed`), which takes its
        // late code.
        if method != Method::Totp && subject.available.contains(&Method::Totp) && !v.maybe_sent {
            return Box::pin(app_instead(app, ctx, &key, subject, method, v, why)).await;
        }
    }
    Ok(oob::no_other_method(v))
}

/// The first text or call of a login that did not go out (the provider down, the send
/// limit reached, the number refused), for a user with a token this client takes: the
/// app's prompt instead, after why. A Reject here kept every token holder whose default
/// is a text or call out for as long as the provider was down, and anyone who knew the
/// password of another account on the same number could use up its day's cap and keep
/// them out till the next day (red team); at a prompt the same refusal already offered
/// the other method.
async fn app_instead(
    app: &AppState,
    ctx: &RequestContext,
    key: &str,
    subject: Subject<'_>,
    failed: Method,
    refused: Verdict,
    why: &'static str,
) -> Result<Verdict, Fault> {
    let limited = super::followup::limit_that_refused(why);
    // A provider's failure takes the method out of this login, as a failed switch at a
    // prompt does; a send limit's refusal hides it while the limit holds.
    let mut available = subject.available.clone();
    if limited.is_none() {
        available.retain(|m| *m != failed);
    }
    let subject = Subject {
        available,
        sends_limited: limited,
        sends_limited_at: limited.map(|_| app.clock.now()),
        ..subject
    };
    let mut v = methods::begin(app, ctx, key, &subject, Method::Totp).await?;
    if v.reply.code != ReplyCode::Challenge {
        return Ok(v);
    }
    let offered = crate::mfa::challenge::offered_under(limited, &subject.available, Method::Totp);
    v.reply.messages = vec![super::followup::reask(
        why,
        &super::followup::Ask::app(app, &offered),
    )];
    v.reason = Some(format!(
        "{}; the app's code asked for instead",
        refused.reason.as_deref().unwrap_or("nothing sent")
    ));
    v.phone = refused.phone;
    Ok(v)
}

/// Appended to the audit reason of a failed password that was probably a code answering
/// our prompt: some NAS boxes (F5 FirePass, for one) send the answer as a new request
/// without the State we gave them, so it cannot reach the prompt it answers.
const STATE_NOT_ECHOED: &str = "; the password field held only digits and this user has an \
     open code prompt from this client: the NAS may not send State back (otp_mode = \"inline\" \
     works without it)";

/// An inline field taken whole as the password though it ends in the delimiter and digits,
/// as `password,123456` does: its user has no token (or none enabled), or the client takes
/// no codes, so there is no code to split off, and a password may hold the delimiter. When
/// the directory refuses it, "bad password" alone sent the help desk to reset a password
/// that was right. Only the digits' count is kept: nothing of the field is written.
#[derive(Clone, Copy)]
struct TakenWhole {
    digits: usize,
    /// Why no code was split off.
    why: &'static str,
}

impl TakenWhole {
    fn of(field: &Secret, delimiter: &str, takes_codes: bool, none_disabled: bool) -> Option<Self> {
        // Without a delimiter every password that ends in digits would be one.
        if delimiter.is_empty() {
            return None;
        }
        let split = split_inline(field, delimiter, &[], |_| false)
            .into_iter()
            .next()?;
        // All digits, once spaces and dashes are out (`split_inline`).
        let digits = split
            .code
            .expose_str()
            .map_or(0, |c| otp::plain_code(c).len());
        let why = if !takes_codes {
            "this client's methods leave out totp"
        } else if none_disabled {
            "this user has no token"
        } else {
            "this user has no enabled token"
        };
        Some(TakenWhole { digits, why })
    }
}

impl std::fmt::Display for TakenWhole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            " (the field ends in the delimiter and {} digits, but {}: the whole field was \
             taken as the password)",
            self.digits, self.why
        )
    }
}

/// A failed password made of 4–10 digits, on a challenge-mode client, from a user with an
/// open prompt from the same client. Only failed logins pay for the read; a store error just
/// leaves the hint out (the login is refused either way).
async fn looks_like_unechoed_answer(
    app: &AppState,
    ctx: &RequestContext,
    user: &str,
    password: &Secret,
) -> bool {
    let digits = password
        .expose_str()
        .is_some_and(|p| (4..=10).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if !digits || ctx.client.otp_mode != OtpMode::Challenge {
        return false;
    }
    let now = app.clock.now();
    match app
        .store
        .has_open_challenge(user, &ctx.client.name, now)
        .await
    {
        Ok(open) => open,
        Err(e) => {
            tracing::debug!(error = %e, "open-prompt check for a failed password");
            false
        }
    }
}

/// How a login ends with no second factor usable on this client: refused (a token this
/// client cannot use, disabled or outside its dates; a number or a chosen method it cannot
/// use), or, for a user with none at all, as the client's `no_factor` says.
fn without_usable_factor(
    app: &AppState,
    ctx: &RequestContext,
    view: &UserView,
    info: &UserInfo,
    has_tokens: bool,
    code_only: bool,
) -> Verdict {
    let profile = &view.profile;
    if has_tokens {
        // Enrolled, but this client cannot use the token (its methods leave OATH codes
        // out): no_factor is for users who have no second factor, not for this one.
        return Verdict::reject(
            "the user's tokens cannot be used on this client (its methods leave out totp)",
        )
        .with_info(Some(info.clone()))
        .with_reply(
            Reply::reject().with_message(
                "Your second factor cannot be used here. Contact your administrator.",
            ),
        );
    }
    if view.has_disabled_tokens() {
        // The admin took the user's token out of service: that is not "never enrolled", and
        // no_factor = "allow" must not turn it into a login with the password alone.
        return Verdict::reject("the user's tokens are disabled")
            .with_info(Some(info.clone()))
            .with_reply(Reply::reject().with_message(DISABLED_MESSAGE));
    }
    if let Some(why) = view.outside_validity {
        // Every code would be refused, and counted toward the lockout: a user typing the
        // right code of an expired hardware token locked themselves out. Like a disabled
        // token, not "never enrolled": no_factor = "allow" does not let them in.
        let message = validity_message(why);
        let mut v = Verdict::reject(format!(
            "{} ({why})",
            super::second_factor::OUTSIDE_VALIDITY
        ))
        .with_info(Some(info.clone()))
        .with_reply(Reply::reject().with_message(message));
        // Which token ran out, when there is one: what the admin renews (it was "-").
        v.token_serial = sole_serial(view.tokens());
        return v;
    }
    if profile.phone.is_some() {
        // An admin stored a number for this user: enrolled for texts or calls, which this
        // client cannot use (it cannot prompt, its methods leave them out, or [sms] and
        // [voice] are not set up). Not "no second factor", so not a password-only login.
        // Or the number itself cannot be dialled (outside [phone] allowed_country_codes,
        // stored before that was set): said, so the admin fixes the number, not the client.
        let stored = profile.phone.as_deref().unwrap_or_default();
        let reason = match crate::delivery::phone::dialable(stored, &app.config().delivery.phone) {
            Err(e) => format!(
                "the user's stored phone number cannot be used ({}): store another (user \
                 set-phone)",
                e.masked()
            ),
            Ok(_) => "the user's stored phone cannot be used on this client".into(),
        };
        return Verdict::reject(reason)
            .with_info(Some(info.clone()))
            .with_reply(Reply::reject().with_message(
                "Your second factor cannot be used here. Contact your administrator.",
            ));
    }
    let chosen = profile.method.as_deref().filter(|m| {
        matches!(Method::parse(m), Some(Method::Sms | Method::Voice))
            && oob::phone_for(app, profile, info).is_some()
    });
    if let Some(method) = chosen {
        // An admin chose texts or calls for this user (user set-method sms), and a number
        // is there for them (the directory's): a second factor, which this client cannot
        // use (its methods leave it out, or it cannot prompt). Not "no second factor": with
        // no_factor = "allow" the password alone let such a user in wherever the method was
        // left out, while a user with a disabled token was refused there. A choice with no
        // number to go with it is no factor (set-method says logins go on as if unset).
        return Verdict::reject(format!(
            "the user's chosen method {method} (user set-method) cannot be used on this client"
        ))
        .with_info(Some(info.clone()))
        .with_reply(
            Reply::reject().with_message(
                "Your second factor cannot be used here. Contact your administrator.",
            ),
        );
    }
    let unused = oob::unused_directory_number(app, info);
    if let Some(unused) = unused.filter(|_| {
        !available(
            &ctx.client.factors.methods,
            capabilities(app, ctx, false, true),
        )
        .is_empty()
    }) {
        // A text or a call would work here if the directory's number counted (it did by
        // default before the store-only default), or could be dialled (written nationally,
        // with no [phone] default_country_code): not a user without a second factor.
        return Verdict::reject(unused_number_reason(unused))
            .with_info(Some(info.clone()))
            .with_reply(Reply::reject().with_message(
                "Your second factor cannot be used here. Contact your administrator.",
            ));
    }
    match ctx.client.no_factor {
        NoFactorPolicy::Allow => Verdict::accept(
            "primary-only",
            Some(if code_only {
                "no second factor enrolled; client policy allows the NAS's password check \
                     alone"
                    .into()
            } else {
                "no second factor enrolled; client policy allows password only".into()
            }),
            info.clone(),
        ),
        NoFactorPolicy::Reject => Verdict::reject("no second factor enrolled")
            .with_info(Some(info.clone()))
            .with_reply(Reply::reject().with_message(
                "No second factor is enrolled for your account. Contact your administrator.",
            )),
    }
}

/// What could work for this user on this client.
pub fn capabilities(
    app: &AppState,
    ctx: &RequestContext,
    has_token: bool,
    has_phone: bool,
) -> Capabilities {
    Capabilities {
        has_token,
        has_phone,
        sms_configured: app.delivery.sms.is_some(),
        voice_configured: app.delivery.voice.is_some(),
        can_prompt: ctx.client.otp_mode == OtpMode::Challenge,
        holds_calls: ctx.client.factors.voice_mode == VoiceMode::Hold,
    }
}

/// The longest the floor under an imitated upstream check reaches.
const PAD_CAP: Duration = Duration::from_secs(5);

/// How long a pad may sleep: never past the point the request must be decided by (a
/// refusal cut off there would be a backend failure, silence on no_reply clients, that
/// only some names met), and at most [`PAD_CAP`].
fn pad_cap(app: &AppState, ctx: &RequestContext) -> Duration {
    let deadline = ctx
        .client
        .factors
        .request_deadline(app.config().server.request_deadline);
    let decide_by = (ctx.received + deadline)
        .checked_sub(super::audit_reserve(deadline) + Duration::from_millis(100));
    decide_by
        .map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        })
        .min(PAD_CAP)
}

/// A directory client's refused password, timed from the request's arrival: a known
/// user's wrong password is one more sample of what such a refusal takes; an unknown
/// (or ambiguous) name's is topped up to one of them. The directory layer pads the
/// unknown name's missing bind already (`LdapAuth`); what is left is the rest of the
/// request's work that only a found entry costs, which a red team measured at ~20 µs on
/// loopback, enough to tell names apart in a few hundred tries.
async fn refusal_floor(app: &AppState, ctx: &RequestContext, d: &Denial) {
    use crate::auth::ad_codes::AdReason;
    match d {
        Denial::BadPassword | Denial::Directory(AdReason::BadPassword) => {
            // On a client with allow_groups, the right password of a user outside them is
            // refused after the groups' searches: a wrong one waits about as long
            // (`groups::check`): until the client's pad knows that time, by doing the
            // searches (`groups::imitate_allow_check`). Before its own time is recorded,
            // which unknown names are topped up to.
            if !ctx.client.groups.allow.is_empty() {
                if app.allow_check_latency.knows(&ctx.client.name) {
                    app.allow_check_latency
                        .sleep_rest(&ctx.client.name, Duration::ZERO, pad_cap(app, ctx))
                        .await;
                } else {
                    super::groups::imitate_allow_check(app, ctx).await;
                }
            }
            app.refused_login_latency
                .record(&ctx.client.name, ctx.received.elapsed())
        }
        d if names_no_user(d) => {
            let cap = pad_cap(app, ctx);
            app.refused_login_latency
                .sleep_rest(&ctx.client.name, ctx.received.elapsed(), cap)
                .await
        }
        _ => {}
    }
}

/// An unknown (or ambiguous) name: the refusals padded to a known user's.
fn names_no_user(d: &Denial) -> bool {
    use crate::auth::ad_codes::AdReason;
    matches!(
        d,
        Denial::UnknownUser | Denial::AmbiguousUser | Denial::Directory(AdReason::UserNotFound)
    )
}

/// A code-only client's unknown name, topped up to a known user's wrong code on such a
/// client: the reply is the same, and without the pad the name's absence showed in the
/// time (1.5 against 3.2 ms median on loopback; beside a directory client, padded to its
/// binds, 91 against 5 ms). Only code-only clients' refusals fill this ring.
async fn code_refusal_floor(app: &AppState, ctx: &RequestContext, d: &Denial) {
    if names_no_user(d) {
        let cap = pad_cap(app, ctx);
        app.refused_code_latency
            .sleep_rest(&ctx.client.name, ctx.received.elapsed(), cap)
            .await
    }
}

async fn inline(
    app: &AppState,
    via: Via<'_>,
    user: &str,
    view: &UserView,
    code: &Secret,
    info: UserInfo,
) -> Result<Verdict, Fault> {
    let code = code.expose_str().unwrap_or("");
    let tokens = view.tokens();
    Ok(
        match check_code(app, user, &info.other_names, view, code, via).await? {
            CodeCheck::Valid { serial, mode, note } => Verdict {
                token_serial: Some(serial),
                ..Verdict::accept(mode, note, info)
            },
            CodeCheck::Invalid {
                reason,
                locked,
                resync,
                serial,
                kind,
                ..
            } => {
                // A code of a token the user cannot use now (disabled, outside its dates) gets
                // no message of its own here, only its audit record: inline and code-only, a
                // Reply-Message after a refused code tells the right password (or, code-only,
                // a known name) from a wrong one, and such codes are not counted, so whoever
                // holds a lost token could try passwords with it. At a prompt the password is
                // known right already, and the message is shown. The lock and resync messages
                // reach code-only clients; inline, `inline_reply` sends every refusal bare.
                let reply = if locked {
                    Reply::reject().with_message(LOCKED_MESSAGE)
                } else if resync {
                    Reply::reject().with_message(RESYNC_MESSAGE)
                } else {
                    Reply::reject()
                };
                let mut v = Verdict::reject(reason)
                    .with_info(Some(info))
                    .with_reply(reply);
                // As a wrong code at a prompt is recorded: the mode the code was checked
                // in (audit --count-by mode filed these under "none"), or its token's.
                v.mode = refused_mode(kind, tokens);
                v.token_serial = serial.or_else(|| sole_serial(tokens));
                v
            }
        },
    )
}

/// The code lengths of the user's tokens, shortest first, each once.
fn code_lengths<'a>(tokens: impl Iterator<Item = &'a TokenRecord>) -> Vec<usize> {
    let mut lengths: Vec<usize> = tokens.map(|t| t.token.digits as usize).collect();
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

/// Splits `password<delim>code`, or with an empty delimiter the trailing digits whose count
/// is one of `lengths` (the user's tokens' code lengths, ascending). The password may itself
/// contain the delimiter, so the split is at the last one, and only where what follows it
/// is digits (spaces allowed: "123 456"): "pa,ss" is a password that holds the delimiter,
/// sent alone (a bypass, a remembered station), not "pa" and the code "ss" — whose bind
/// would have failed and counted against the account's directory lockout.
///
/// Without a delimiter, a user with tokens of two lengths whose password ends in digits
/// ("Summer24" and a 6-digit code) has two splits that both end in digits; the longest
/// always won, so the 6-digit token could never be used and each try was a wrong password
/// counted by the directory. So where several lengths fit, every split is returned, for the
/// caller to ask each password in turn: first the one whose code `fits` one of the user's
/// tokens (a read-only check), if one does, then the others longest first.
///
/// Empty: no code in the field.
fn split_inline(
    field: &Secret,
    delimiter: &str,
    lengths: &[usize],
    fits: impl Fn(&str) -> bool,
) -> Vec<InlineSplit> {
    let Some(text) = field.expose_str() else {
        return Vec::new();
    };
    let one = |(p, c): (&str, &str)| InlineSplit {
        password: Secret::from(p),
        code: Secret::from(c),
    };
    if delimiter.is_empty() {
        // Longest first: an 8-digit token's code ends with 6 digits too.
        let splits: Vec<(&str, &str)> = lengths
            .iter()
            .rev()
            .filter_map(|&n| {
                let at = text.len().checked_sub(n).filter(|&at| at > 0)?;
                let (p, c) = (text.get(..at)?, text.get(at..)?);
                c.bytes().all(|b| b.is_ascii_digit()).then_some((p, c))
            })
            .collect();
        // One split: nothing to choose, and no code is looked at before the password.
        // Several: each is asked (no early exit), the longest that fits put first.
        let mut splits = splits;
        if splits.len() > 1 {
            let fitting: Vec<bool> = splits.iter().map(|(_, c)| fits(c)).collect();
            if let Some(at) = fitting.iter().position(|&f| f) {
                let taken = splits.remove(at);
                splits.insert(0, taken);
            }
        }
        splits.into_iter().map(one).collect()
    } else {
        let Some((p, c)) = text.rsplit_once(delimiter) else {
            return Vec::new();
        };
        // Digits, as a code is typed ([`otp::plain_code`]: "123 456", "123-456").
        let plain = otp::plain_code(c);
        let digits = !plain.is_empty() && plain.bytes().all(|b| b.is_ascii_digit());
        if p.is_empty() || !digits {
            return Vec::new();
        }
        vec![one((p, c))]
    }
}

/// A password and code [`split_inline`] found in an inline field.
struct InlineSplit {
    password: Secret,
    code: Secret,
}

/// The audit reason for a directory number texts and calls do not use, with what to do.
pub(super) fn unused_number_reason(unused: UnusedNumber) -> String {
    match unused {
        UnusedNumber::Unlisted => "the directory has a phone number for this user, but \
             [phone] sources leaves the directory out: list \"mobile\" there or store the \
             number (user set-phone)"
            .to_string(),
        UnusedNumber::Unusable {
            why,
            no_country_code,
        } => format!(
            "the directory's phone number for this user cannot be used ({why}): {}",
            if no_country_code {
                "set [phone] default_country_code or store the number (user set-phone)"
            } else {
                "correct it in the directory or store a number (user set-phone)"
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(field: &str, delim: &str, digits: &[usize]) -> Option<(String, String)> {
        split_fitting(field, delim, digits, |_| false)
    }

    /// The split asked first.
    fn split_fitting(
        field: &str,
        delim: &str,
        digits: &[usize],
        fits: impl Fn(&str) -> bool,
    ) -> Option<(String, String)> {
        splits_fitting(field, delim, digits, fits)
            .into_iter()
            .next()
    }

    /// Every split, in the order their passwords are asked.
    fn splits_fitting(
        field: &str,
        delim: &str,
        digits: &[usize],
        fits: impl Fn(&str) -> bool,
    ) -> Vec<(String, String)> {
        split_inline(&Secret::from(field), delim, digits, fits)
            .into_iter()
            .map(|s| {
                (
                    s.password.expose_str().unwrap().to_string(),
                    s.code.expose_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn delimiter_split_is_at_the_last_delimiter() {
        assert_eq!(
            split("pa,ss,123456", ",", &[6]),
            Some(("pa,ss".into(), "123456".into()))
        );
        assert_eq!(split("password", ",", &[6]), None);
        assert_eq!(split(",123456", ",", &[6]), None);
        // Not a code after the last delimiter: the whole field is the password.
        assert_eq!(split("pa,ss", ",", &[6]), None);
        assert_eq!(split("pw,", ",", &[6]), None);
        assert_eq!(split("pw, ", ",", &[6]), None);
        // Digits are the code, of any length (a mistyped one is a wrong code), in groups too.
        assert_eq!(
            split("pw,12345", ",", &[6]),
            Some(("pw".into(), "12345".into()))
        );
        assert_eq!(
            split("pw,123 456", ",", &[6]),
            Some(("pw".into(), "123 456".into()))
        );
        // Dashes and full-width digits, as a token or an input method writes them.
        assert_eq!(
            split("pw,426-679", ",", &[6]),
            Some(("pw".into(), "426-679".into()))
        );
        assert_eq!(
            split("pw,４２６６７９", ",", &[6]),
            Some(("pw".into(), "４２６６７９".into()))
        );
        assert_eq!(split("pw,-", ",", &[6]), None);
        assert_eq!(split("pw,12a", ",", &[6]), None);
    }

    #[test]
    fn trailing_digits_use_token_lengths() {
        assert_eq!(
            split("secret123456", "", &[6]),
            Some(("secret".into(), "123456".into()))
        );
        assert_eq!(
            split("secret12345678", "", &[6, 8]),
            Some(("secret".into(), "12345678".into()))
        );
        assert_eq!(split("secret", "", &[6]), None);
        assert_eq!(split("123456", "", &[6]), None, "no password left");
        assert_eq!(
            split("é123456", "", &[6, 8]),
            Some(("é".into(), "123456".into()))
        );
    }

    /// "Summer24" and a 6-digit code: the 8-digit split ends in digits too, and only the
    /// user's tokens can tell which was meant.
    #[test]
    fn a_password_ending_in_digits_splits_where_a_token_fits() {
        let field = "Summer24123456";
        assert_eq!(
            split_fitting(field, "", &[6, 8], |c| c == "123456"),
            Some(("Summer24".into(), "123456".into()))
        );
        assert_eq!(
            split_fitting(field, "", &[6, 8], |c| c == "24123456"),
            Some(("Summer".into(), "24123456".into()))
        );
        // Every split is returned whatever fits (so a refused password costs the same time
        // either way): the fitting one first, else longest first.
        let both = |first: (&str, &str), second: (&str, &str)| {
            vec![
                (first.0.to_string(), first.1.to_string()),
                (second.0.to_string(), second.1.to_string()),
            ]
        };
        assert_eq!(
            splits_fitting(field, "", &[6, 8], |c| c == "123456"),
            both(("Summer24", "123456"), ("Summer", "24123456"))
        );
        assert_eq!(
            splits_fitting(field, "", &[6, 8], |_| false),
            both(("Summer", "24123456"), ("Summer24", "123456"))
        );
        assert_eq!(
            splits_fitting("Summerx123456", "", &[6, 8], |_| false).len(),
            1
        );
        // Only the lengths whose tail is all digits are asked, and with one such split,
        // none: nothing about a code is looked at before the password.
        let asked = std::cell::Cell::new(0);
        let counting = |c: &str| {
            asked.set(asked.get() + 1);
            c.len() == 8
        };
        assert_eq!(
            split_fitting("Summerx123456", "", &[6, 8], counting),
            Some(("Summerx".into(), "123456".into()))
        );
        assert_eq!(
            split_fitting("secret123456", "", &[6], counting).unwrap().1,
            "123456"
        );
        assert_eq!(asked.get(), 0);
        // Several: every one asked, even after one fits.
        split_fitting(field, "", &[6, 8], counting);
        assert_eq!(asked.get(), 2);
    }
}
