//! Answers to out-of-band prompts: the SMS code (checked against the transaction, valid until
//! its expiry, used once), and Enter after the call (whatever was typed; the call decides).

use std::time::{Duration, Instant};

use super::followup::{closes, take_attempt, wrong_answer, Attempt, Lockout, Round, NO_ATTEMPT};
use super::methods::{call_verdict, Subject};
use super::second_factor::{self, Standing};
use super::{oob, Fault, RequestContext, Verdict};
use crate::app::AppState;
use crate::mfa::method::Method;
use crate::mfa::sms::verify_code;
use crate::radius::Reply;
use crate::store::{OobKind, OobStatus};

const SMS_EXPIRED: &str = "The code has expired. Please log in again.";
/// After Enter, how long to wait for a call still being decided before prompting again:
/// short, because NAS boxes in challenge mode have short timeouts (NPS: 3 s).
const ENTER_WAIT: Duration = Duration::from_millis(1500);

pub async fn sms_code(
    app: &AppState,
    user: &str,
    r: &Round<'_>,
    typed: &str,
    standing: Standing,
) -> Result<Verdict, Fault> {
    let txn = match &r.carried.oob {
        Some(id) => app.store.oob(id).await?,
        None => None,
    };
    let Some(txn) = txn.filter(|t| t.kind == OobKind::Sms && t.user == user) else {
        app.store.consume_challenge(&r.hash).await?;
        return Ok(sms_reject("SMS code expired", SMS_EXPIRED));
    };
    if r.now >= txn.expires_at {
        app.store.consume_challenge(&r.hash).await?;
        let age = r.now - txn.created_at;
        return Ok(sms_reject(
            format!("SMS code expired ({age} s after sending)"),
            SMS_EXPIRED,
        ));
    }
    if txn.status != OobStatus::Pending {
        app.store.consume_challenge(&r.hash).await?;
        return Ok(sms_reject("SMS code already used", SMS_EXPIRED));
    }
    let prompt = || {
        let offered = super::followup::offered(r.via.ctx, &r.carried);
        super::followup::prompt_for(app, Method::Sms, &r.carried, &offered)
    };
    // As for OATH codes: checked in the user's turn against the lockout as it stands, so
    // answers sent all at once (to one State or to several) are counted one after another
    // and stop at the lockout threshold.
    // The turn before the attempt, a write (see `followup::totp`).
    let others = &r.carried.other_names;
    let turn = second_factor::take_turn(app, user, others).await;
    let Some(attempt) = take_attempt(app, r).await? else {
        return Ok(Verdict::reject(NO_ATTEMPT));
    };
    let standing = second_factor::in_turn(app, &turn, user, others, standing).await?;
    if let Some(why) = second_factor::stopped(app, user, others, standing).await? {
        let lock = Lockout {
            locked: true,
            before_lock: None,
        };
        return wrong_answer(app, r, attempt, "sms", why, lock, &prompt(), None).await;
    }
    // No code at all (the password typed again at the prompt, "abc", a digit or two): not
    // counted, as at a code prompt (`second_factor::NO_CODE`). It can match no SMS code,
    // and counted, a user confused at the prompt locked themselves out without trying one.
    if !crate::mfa::otp::is_code_attempt(&crate::mfa::otp::plain_code(typed)) {
        drop(turn);
        let lock = Lockout {
            locked: false,
            before_lock: Some(second_factor::left_before_lock(app, user, others).await?),
        };
        let why = second_factor::NO_CODE.to_string();
        return wrong_answer(app, r, attempt, "sms", why, lock, &prompt(), None).await;
    }
    let matches = |t: &crate::store::OobTransaction| {
        t.code_hash
            .as_deref()
            .is_some_and(|h| verify_code(app.store.sms_code_key(), h, typed))
    };
    let txn = if matches(&txn) {
        Some(txn)
    } else {
        match earlier_code(app, user, r, typed).await? {
            Earlier::Usable(t) => Some(*t),
            Earlier::Expired(age) => {
                drop(turn);
                return expired_earlier(app, user, r, (attempt, age), &prompt()).await;
            }
            Earlier::None => None,
        }
    };
    let Some(txn) = txn else {
        // The code went to the entry's phone, which its other names reach too.
        let elsewhere =
            second_factor::failures_under_other_names(app, user, &r.carried.other_names).await?;
        let counted =
            second_factor::count_failure_after(app, &turn, user, "wrong answers", elsewhere, r.via)
                .await?;
        if counted.locked {
            second_factor::clear_under_other_names(app, user, others).await?;
        }
        drop(turn);
        let why = "wrong SMS code".to_string();
        let lock = Lockout {
            locked: counted.locked,
            before_lock: Some(counted.left),
        };
        return wrong_answer(app, r, attempt, "sms", why, lock, &prompt(), None).await;
    };
    sms_accepted(app, user, r, attempt, txn).await
}

/// The login's end by a texted code `txn` took: single use, twice over (the State and the
/// code's transaction each move exactly once), and the user's failures cleared.
async fn sms_accepted(
    app: &AppState,
    user: &str,
    r: &Round<'_>,
    attempt: Attempt,
    txn: crate::store::OobTransaction,
) -> Result<Verdict, Fault> {
    if !closes(app, r, attempt).await?
        || !app
            .store
            .resolve_oob(&txn.id, OobStatus::Approved, None)
            .await?
    {
        return Ok(sms_reject("SMS code already used", SMS_EXPIRED));
    }
    app.store.clear_failures(user).await?;
    second_factor::clear_under_other_names(app, user, &r.carried.other_names).await?;
    let mut v = Verdict::reject("").with_reply(Reply::accept());
    v.reason = None;
    v.mode = "sms";
    v.phone = Some(txn.phone);
    Ok(v)
}

/// At the app's prompt, the code of a text this login sent before the user typed "app" (one
/// slow to come, or one the provider did not confirm): it finishes the login as at a text's
/// prompt, rather than count as a wrong app code toward the lockout (review). Only while
/// no lock or block stops code checks, and only for a text of this login, unexpired and
/// unused. `Err` hands the attempt back for the app's check, with whether the code was
/// checked against the texts (and matched none).
pub async fn earlier_text_at_app_prompt(
    app: &AppState,
    user: &str,
    r: &Round<'_>,
    (turn, standing): (&super::code_turns::Turn<'_>, Standing),
    typed: &str,
    attempt: Attempt,
) -> Result<Result<Verdict, (Attempt, bool)>, Fault> {
    let others = &r.carried.other_names;
    let plain = crate::mfa::otp::plain_code(typed);
    // Not where a reload took texts off the client since: a text's own prompt closes then,
    // and its code must not finish the login at the app's (review).
    let texts_taken = r.via.ctx.client.factors.methods.contains(&Method::Sms);
    if r.carried.earlier_sms.is_empty() || !texts_taken || !crate::mfa::otp::is_code_attempt(&plain)
    {
        return Ok(Err((attempt, false)));
    }
    let standing = second_factor::in_turn(app, turn, user, others, standing).await?;
    if second_factor::stopped(app, user, others, standing)
        .await?
        .is_some()
    {
        return Ok(Err((attempt, false)));
    }
    match earlier_code(app, user, r, &plain).await? {
        Earlier::Usable(txn) => Ok(Ok(sms_accepted(app, user, r, attempt, *txn).await?)),
        Earlier::Expired(age) => {
            let offered = super::followup::offered(r.via.ctx, &r.carried);
            let ask = super::followup::prompt_for(app, Method::Totp, &r.carried, &offered);
            Ok(Ok(
                expired_earlier(app, user, r, (attempt, age), &ask).await?
            ))
        }
        Earlier::None => Ok(Err((attempt, true))),
    }
}

/// What an earlier text's code typed too late is told, at any prompt of the login: that it
/// expired, uncounted, and the prompt again while attempts are left (its newer text, or
/// the app, may still finish the login). Counted as a wrong code, a user's own genuine
/// late code (most likely from a text the provider was slow to take) brought them nearer
/// the lockout (review).
async fn expired_earlier(
    app: &AppState,
    user: &str,
    r: &Round<'_>,
    (attempt, age): (Attempt, i64),
    ask: &super::followup::Ask,
) -> Result<Verdict, Fault> {
    let lock = Lockout {
        locked: false,
        before_lock: Some(
            second_factor::left_before_lock(app, user, &r.carried.other_names).await?,
        ),
    };
    let why = format!("SMS code expired ({age} s after sending)");
    wrong_answer(
        app,
        r,
        attempt,
        "sms",
        why,
        lock,
        ask,
        Some(EXPIRED_EARLIER),
    )
    .await
}

/// [`expired_earlier`]'s words, before the attempts left (or alone, when none are).
const EXPIRED_EARLIER: &str = "That code has expired.";

/// A code typed against this login's earlier texts.
enum Earlier {
    /// Its text's, pending and unexpired.
    Usable(Box<crate::store::OobTransaction>),
    /// Its text's, pending but expired (seconds after sending).
    Expired(i64),
    None,
}

/// The earlier SMS of this login (before a "resend") whose code `typed` is, if it is still
/// pending: usable while unexpired, else expired. Each is checked, so that which one
/// matched, or whether one had expired, takes no less time than a wrong code does.
async fn earlier_code(
    app: &AppState,
    user: &str,
    r: &Round<'_>,
    typed: &str,
) -> Result<Earlier, Fault> {
    let mut found = Earlier::None;
    for id in &r.carried.earlier_sms {
        let Some(t) = app.store.oob(id).await? else {
            continue;
        };
        let ours = t.kind == OobKind::Sms && t.user == user && t.status == OobStatus::Pending;
        let good = t
            .code_hash
            .as_deref()
            .is_some_and(|h| verify_code(app.store.sms_code_key(), h, typed));
        if ours && good {
            found = match found {
                Earlier::Usable(_) => found,
                _ if r.now < t.expires_at => Earlier::Usable(Box::new(t)),
                Earlier::None => Earlier::Expired(r.now - t.created_at),
                expired => expired,
            };
        }
    }
    Ok(found)
}

fn sms_reject(reason: impl Into<String>, message: &str) -> Verdict {
    let mut v = Verdict::reject(reason).with_reply(Reply::reject().with_message(message));
    v.mode = "sms";
    v
}

/// "Answer the call, then press Enter": whatever the user typed, the call decides. If it is
/// still ringing, wait within this request's deadline, then ask again with the same State.
pub async fn call_answered(
    app: &AppState,
    ctx: &RequestContext,
    user: &str,
    r: &Round<'_>,
) -> Result<Verdict, Fault> {
    let Some(id) = r.carried.oob.as_deref() else {
        app.store.consume_challenge(&r.hash).await?;
        return Ok(Verdict::reject("no call for this prompt"));
    };
    let until = oob::reply_by(app, ctx).min(Instant::now() + ENTER_WAIT);
    let txn = oob::await_call(app, id, until).await?;
    let Some(txn) = txn.filter(|t| t.kind == OobKind::Voice && t.user == user) else {
        app.store.consume_challenge(&r.hash).await?;
        let mut v = Verdict::reject("call expired");
        v.mode = "voice";
        return Ok(v);
    };
    if txn.status == OobStatus::Pending && r.now < txn.expires_at {
        // With the other methods the call's prompt offered: `app` still works here, and
        // the re-prompt left it out.
        let offered = crate::mfa::challenge::offered_under(
            r.carried
                .sends_limited_now(r.now, super::followup::send_window(app)),
            &super::followup::offered(ctx, &r.carried),
            crate::mfa::method::Method::Voice,
        );
        let prompt = crate::mfa::method::with_hint(
            "The call is not answered yet. Answer it and press #, then press Enter: ",
            &crate::mfa::method::switch_hint(&offered, crate::mfa::method::Method::Voice),
        );
        let mut reply = Reply::challenge(r.state.to_vec(), prompt);
        reply.session_timeout = Some((r.pending.expires_at - r.now).max(1) as u32);
        let mut v = Verdict::reject("call not answered yet").with_reply(reply);
        v.mode = "voice";
        return Ok(v);
    }
    // Decided (or out of time): this prompt is over either way.
    if !app.store.consume_challenge(&r.hash).await? {
        return Ok(Verdict::reject("State already used"));
    }
    let subject = Subject {
        user,
        // The entry's other names, for the block check before an approval counts.
        info: crate::auth::UserInfo {
            other_names: r.carried.other_names.clone(),
            ..Default::default()
        },
        phone: Some(txn.phone.clone()),
        available: r.carried.methods.clone(),
        client_ip: None,
        from: super::audit::Source::of(ctx, r.via.req),
        // The call's outcome is final here; no code prompt follows.
        oath_mode: "totp",
        started_at: None,
        earlier_sms: Vec::new(),
        sends_limited: None,
        sends_limited_at: None,
    };
    call_verdict(app, ctx, &subject, txn).await
}
