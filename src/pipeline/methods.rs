//! Starting a second factor once the user is known: a TOTP prompt, an SMS code and its
//! prompt, or a phone call (held within the client's budget, or "answer, then press Enter").
//! Used by a fresh login, by a switch at a prompt, and by second-factor-only clients.

use std::time::Instant;

use super::oob::{self, Delivered, NotSent};
use super::{Fault, RequestContext, Verdict};
use crate::app::AppState;
use crate::auth::UserInfo;
use crate::config::delivery::{ProviderFailure, VoiceMode};
use crate::delivery::phone::mask;
use crate::mfa::challenge::{new_state, state_hash, ChallengeContext, SendsLimited};
use crate::mfa::method::{switch_hint, Method};
use crate::radius::Reply;
use crate::server::metrics::Metrics;
use crate::store::{
    durability, LoginOrigin, OobStatus, OobTransaction, PendingChallenge, UserProfile,
};

pub const BLOCKED_MESSAGE: &str =
    "Sign-in is blocked after a fraud alert. Contact your administrator.";
/// Extra life of an SMS prompt beyond the code's, so a late code is refused as "expired"
/// (with that reason in the audit) rather than as an unknown State.
const SMS_PROMPT_GRACE_SECS: i64 = 60;

/// The user, as far as the second factor needs to know them.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub user: &'a str,
    pub info: UserInfo,
    pub phone: Option<String>,
    /// Usable methods on this client, preferred first.
    pub available: Vec<Method>,
    /// The Calling-Station-Id of the login's first request.
    pub client_ip: Option<String>,
    /// The request's NAS, as its audit record names it.
    pub from: super::audit::Source,
    /// The audit mode of a code prompt: `hotp` for a user with HOTP tokens only.
    pub oath_mode: &'static str,
    /// When the password was checked, for a prompt opened by a switch or resend; `None`
    /// for the first prompt of a login (now).
    pub started_at: Option<i64>,
    /// The login's earlier SMS transactions, whose codes an SMS prompt still takes (carried
    /// by every prompt of the login, whatever its method).
    pub earlier_sms: Vec<String>,
    /// A send limit met at an earlier prompt of the login: a code prompt opened by a
    /// switch to the app keeps it, so that it too offers no text or call that the limit
    /// refuses ([`ChallengeContext::sends_limited`]).
    pub sends_limited: Option<SendsLimited>,
    /// When it last refused, kept with a code prompt for its lapse.
    pub sends_limited_at: Option<i64>,
}

impl Subject<'_> {
    /// Where the login came from, as its audit record says it (the station, else the NAS's
    /// address), kept with its SMS or call for the records written when that is decided.
    fn origin(&self) -> Box<LoginOrigin> {
        Box::new(LoginOrigin {
            client_ip: self.client_ip.clone().or_else(|| self.from.nas_ip.clone()),
            nas_ip: self.from.nas_ip.clone(),
            nas_identifier: self.from.nas_identifier.clone(),
        })
    }

    fn context(&self, method: Method, oob: Option<&str>) -> ChallengeContext {
        ChallengeContext {
            client_ip: self.client_ip.clone(),
            first_name: self.info.given_name.clone(),
            last_name: self.info.surname.clone(),
            email: self.info.mail.clone(),
            method: Some(method),
            oob: oob.map(str::to_string),
            phone: self.phone.clone(),
            methods: self.available.clone(),
            dn: Some(self.info.dn.clone()).filter(|dn| !dn.is_empty()),
            name: self.info.name.clone(),
            granted: ChallengeContext::keep_granted(&self.info.granted),
            started_at: self.started_at,
            other_names: self.info.other_names.clone(),
            allow_groups: None,
            client_addresses: None,
            // Kept through a call's or an app code's prompt too: sms, call, sms again, and
            // the first text's code still finishes the login.
            earlier_sms: self.earlier_sms.clone(),
            // A text or call that went out shows no limit stands in its way now.
            sends_limited: self.sends_limited.filter(|_| method == Method::Totp),
            sends_limited_at: self.sends_limited_at.filter(|_| method == Method::Totp),
            unconfirmed: false,
        }
    }

    fn verdict(&self, reply: Reply, mode: &'static str, reason: impl Into<String>) -> Verdict {
        Verdict {
            reply,
            mode,
            reason: Some(reason.into()),
            token_serial: None,
            info: Some(self.info.clone()),
            client_ip: None,
            phone: self.phone.clone(),
            started_at: self.started_at,
            groups: None,
            unanswered: false,
            maybe_sent: false,
        }
    }
}

/// A fraud-blocked user gets nothing until an admin runs `radmfa user unblock`.
pub fn blocked(profile: &UserProfile) -> Option<(String, Reply)> {
    profile.blocked_at?;
    let why = profile.blocked_reason.as_deref().unwrap_or("fraud alert");
    Some((
        format!("user blocked: {why}"),
        Reply::reject().with_message(BLOCKED_MESSAGE),
    ))
}

pub async fn begin(
    app: &AppState,
    ctx: &RequestContext,
    request_key: &str,
    s: &Subject<'_>,
    method: Method,
) -> Result<Verdict, Fault> {
    // The SMS and call paths are boxed: they hold HTTP futures of ~1.5 KiB, and inline they
    // would make every request's future (TOTP logins included) that much larger.
    match method {
        Method::Totp => totp_prompt(app, ctx, s).await,
        Method::Sms => Box::pin(sms_prompt(app, ctx, request_key, s)).await,
        Method::Voice => match ctx.client.factors.voice_mode {
            VoiceMode::Hold => Box::pin(held_call(app, ctx, request_key, s)).await,
            VoiceMode::Challenge => Box::pin(call_prompt(app, ctx, request_key, s)).await,
        },
    }
}

/// Stores the pending challenge and builds the Access-Challenge.
async fn issue(
    app: &AppState,
    ctx: &RequestContext,
    s: &Subject<'_>,
    mut context: ChallengeContext,
    prompt: String,
    lifetime_secs: i64,
) -> Result<Reply, Fault> {
    let now = app.clock.now();
    context.started_at.get_or_insert(now);
    // The client's allow_groups as they are now: a prompt that follows another (a resend, a
    // switch) takes the current ones too, after `followup::answer` checked the user against
    // them if they changed since the earlier prompt.
    context
        .allow_groups
        .get_or_insert_with(|| crate::mfa::challenge::groups_fingerprint(&ctx.client.groups.allow));
    context
        .client_addresses
        .get_or_insert_with(|| ChallengeContext::addresses_of(&ctx.client.networks));
    let state = new_state();
    app.store
        .put_challenge(&PendingChallenge {
            state_hash: state_hash(&state),
            user: s.user.to_string(),
            nas: ctx.client.name.clone(),
            created_at: now,
            expires_at: now + lifetime_secs,
            attempts: 0,
            context: serde_json::to_string(&context).unwrap_or_default(),
        })
        .await?;
    let mut reply = Reply::challenge(state, prompt);
    reply.session_timeout = Some(lifetime_secs.max(1) as u32);
    Ok(reply)
}

async fn totp_prompt(
    app: &AppState,
    ctx: &RequestContext,
    s: &Subject<'_>,
) -> Result<Verdict, Fault> {
    let cfg = &app.config().challenge;
    // A switch to the app after a send limit's refusal offers no text or call it refuses.
    let offered = crate::mfa::challenge::offered_under(s.sends_limited, &s.available, Method::Totp);
    let prompt = crate::mfa::method::with_hint(&cfg.prompt, &switch_hint(&offered, Method::Totp));
    let reply = issue(
        app,
        ctx,
        s,
        s.context(Method::Totp, None),
        prompt,
        cfg.timeout.as_secs() as i64,
    )
    .await?;
    // Reached from a prompt (`started_at` set): the user chose the app there, and no
    // password was checked in this request; the audit said "password ok" of it.
    let why = if s.started_at.is_some() {
        "the app chosen at the prompt; waiting for code"
    } else {
        "password ok; waiting for code"
    };
    let mut v = s.verdict(reply, s.oath_mode, why);
    // The audit names a phone only when an SMS or call used it.
    v.phone = None;
    Ok(v)
}

async fn sms_prompt(
    app: &AppState,
    ctx: &RequestContext,
    request_key: &str,
    s: &Subject<'_>,
) -> Result<Verdict, Fault> {
    let Some(phone) = s.phone.as_deref() else {
        return Ok(s.verdict(Reply::reject(), "sms", "no phone number"));
    };
    let (names, origin) = (&s.info.other_names, s.origin());
    let (txn, unconfirmed) =
        match oob::send_sms(app, ctx, request_key, s.user, names, phone, origin).await? {
            Delivered::Yes(t) => (t, None),
            Delivered::No(why) => return Ok(not_delivered(app, ctx, s, "sms", why)),
            // Where this client fails open on a provider outage, a text not confirmed is
            // not sent, as before: the admin chose a login on the password alone over a
            // wait for a text a hung provider may never send. Its transaction closes, so
            // a late code finishes nothing.
            Delivered::Unconfirmed(t, why) if fails_open(ctx, s, why.provider_failed) => {
                app.store
                    .resolve_oob(&t.id, OobStatus::Failed, Some(&why.reason))
                    .await?;
                return Ok(not_delivered(app, ctx, s, "sms", why));
            }
            Delivered::Unconfirmed(t, why) => (t, Some(why.reason)),
        };
    // Ends ": " as the app's default prompt does: pam_radius_auth and SSH show the prompt
    // as it is, and the user types right after it. After a resend (or a switch back to
    // texts) it says that a new code went out: the same words as the first prompt's read as
    // if nothing had happened.
    let ask = if unconfirmed.is_some() {
        // Not "sent": the user would wait for a text that may never come, with no word
        // that another method is there.
        oob::unconfirmed_prompt(phone)
    } else if s.earlier_sms.is_empty() {
        format!("Enter the code sent to {}: ", mask(phone))
    } else {
        format!("A new code was sent to {}. Enter the code: ", mask(phone))
    };
    let prompt = crate::mfa::method::with_hint(&ask, &switch_hint(&s.available, Method::Sms));
    let lifetime = (txn.expires_at - txn.created_at) + SMS_PROMPT_GRACE_SECS;
    let reply = issue(
        app,
        ctx,
        s,
        ChallengeContext {
            unconfirmed: unconfirmed.is_some(),
            ..s.context(Method::Sms, Some(&txn.id))
        },
        prompt,
        lifetime,
    )
    .await?;
    let why = match unconfirmed {
        Some(reason) => format!("{reason}; waiting for its code, in case it was sent"),
        // A resend's (or a switch back's) told apart from the login's first text, so the
        // audit shows how many texts a login took.
        None if !s.earlier_sms.is_empty() => {
            "another code sent by SMS (a resend); waiting for it".to_string()
        }
        None => "code sent by SMS; waiting for it".to_string(),
    };
    Ok(s.verdict(reply, "sms", why))
}

/// Whether a text or call that did not go out lets this login in on the password alone
/// (see [`refused`]).
fn fails_open(ctx: &RequestContext, s: &Subject<'_>, provider_failed: bool) -> bool {
    provider_failed
        && ctx.client.factors.provider_failure == ProviderFailure::Allow
        && !s.available.contains(&Method::Totp)
        && s.started_at.is_none()
}

/// An SMS or call that did not go out: a Reject telling the user why — or, when the
/// provider failed and the client's `provider_failure = "allow"`, an Accept on the password
/// alone (fail open), audited as mode `fail-open` with the provider's error. Never for a
/// user with a token usable here: fail-open is for users whose only factor is the phone,
/// and a caller with the password must not get in by typing "sms" at a code prompt while
/// the provider is down. Nor for a switch or resend (`started_at` set): the first SMS or
/// call went out, so the provider is not down for this user, and a caller with the
/// password must not get in by typing "sms" at a call's prompt while only the SMS API
/// fails (or "call" while only calls fail); the prompt stays instead.
fn not_delivered(
    app: &AppState,
    ctx: &RequestContext,
    s: &Subject<'_>,
    mode: &'static str,
    why: NotSent,
) -> Verdict {
    let NotSent {
        message,
        reason,
        provider_failed,
        maybe_sent,
    } = why;
    let mut v = refused(app, ctx, s, mode, (message, reason, provider_failed));
    v.maybe_sent = maybe_sent;
    v
}

/// [`not_delivered`]'s verdict: a Reject with `message`, or the fail-open.
fn refused(
    app: &AppState,
    ctx: &RequestContext,
    s: &Subject<'_>,
    mode: &'static str,
    (message, reason, provider_failed): (&'static str, String, bool),
) -> Verdict {
    if provider_failed && ctx.client.factors.provider_failure == ProviderFailure::Allow {
        if s.available.contains(&Method::Totp) {
            return s.verdict(
                Reply::reject().with_message(message),
                mode,
                format!("{reason}; not failed open: the user has a token for this client"),
            );
        }
        if s.started_at.is_some() {
            return s.verdict(
                Reply::reject().with_message(message),
                mode,
                format!("{reason}; not failed open: a switch or resend, after a first send"),
            );
        }
        Metrics::inc(&app.metrics.fail_open);
        tracing::warn!(
            user = s.user,
            "{reason}; accepted without a second factor (provider_failure = allow)"
        );
        return s.verdict(
            Reply::accept(),
            "fail-open",
            format!("{reason}; accepted without a second factor (provider_failure = allow)"),
        );
    }
    s.verdict(Reply::reject().with_message(message), mode, reason)
}

async fn place(
    app: &AppState,
    ctx: &RequestContext,
    request_key: &str,
    s: &Subject<'_>,
    guard: &mut oob::CallGuard<'_>,
) -> Result<Result<OobTransaction, Verdict>, Fault> {
    let Some(phone) = s.phone.as_deref() else {
        return Ok(Err(s.verdict(Reply::reject(), "voice", "no phone number")));
    };
    let names = &s.info.other_names;
    Ok(
        match oob::place_call(
            app,
            ctx,
            request_key,
            s.user,
            names,
            phone,
            s.origin(),
            guard,
        )
        .await?
        {
            Delivered::Yes(t) => Ok(t),
            Delivered::No(why) | Delivered::Unconfirmed(_, why) => {
                Err(not_delivered(app, ctx, s, "voice", why))
            }
        },
    )
}

/// Hold mode: this request stays open until the call is decided or the budget runs out;
/// the NAS's retransmits attach to it and get the same reply.
async fn held_call(
    app: &AppState,
    ctx: &RequestContext,
    request_key: &str,
    s: &Subject<'_>,
) -> Result<Verdict, Fault> {
    // Until `call_verdict` has decided the call: an error or the request's deadline before
    // that would otherwise leave it pending, for a # to be announced as approved.
    let mut guard = oob::CallGuard::new(app);
    let txn = match place(app, ctx, request_key, s, &mut guard).await? {
        Ok(t) => t,
        // Not placed: inline, said no more than a wrong password (`inline_reply`).
        Err(v) => return Ok(super::inline_reply::bare_on_inline(ctx, v)),
    };
    // Armed only for a call placed here: otherwise an earlier copy of this request (on
    // another node, or before a restart) placed it, and may record its outcome too.
    let followed = !guard.armed();
    if txn.status != OobStatus::Pending {
        // A call this request's earlier copy placed and that was decided since (a call
        // placed here now is pending): a retransmit the duplicate cache no longer held.
        return repeat_of_decided_call(app, ctx, s, txn).await;
    }
    let reply_by = oob::reply_by(app, ctx);
    let txn = oob::await_call(app, &txn.id, reply_by)
        .await?
        .unwrap_or(txn);
    if leave_to_other_nodes(app, &txn, reply_by) {
        // Nothing was decided: the guard must not close the call the others follow.
        guard.disarm();
        return Ok(left_to_other_nodes(s));
    }
    let mut verdict = call_verdict(app, ctx, s, txn).await?;
    if followed {
        mark_followed(&mut verdict);
    }
    // Only once the call's decision is committed: a commit that fails later would roll
    // it back and leave the call pending, the guard already off.
    durability::settle().await?;
    guard.disarm();
    Ok(verdict)
}

/// Before the audit reason of a held login that followed a call an earlier copy of its
/// request placed (a failover retransmit to another node while the call rang). Both copies
/// get the call's answer and a record; without this, one approved call read as two plain
/// accepts from two nodes.
const FOLLOWED: &str = "followed the call of an earlier copy of this request: ";

fn mark_followed(v: &mut Verdict) {
    let why = v
        .reason
        .take()
        .unwrap_or_else(|| "approved on the call".into());
    v.reason = Some(format!("{FOLLOWED}{why}"));
}

/// Whether this node stops while the call it waits on is still pending and within this
/// request's budget, with other nodes on its store (PostgreSQL): they can follow the call
/// and take its keypress, so a planned stop of one node (a rolling restart) must not end
/// it. On SQLite no one else could: the call is closed as failed (`call_verdict`).
fn leave_to_other_nodes(app: &AppState, txn: &OobTransaction, reply_by: Instant) -> bool {
    txn.status == OobStatus::Pending
        && app.stopping.is_cancelled()
        && app.config().store.shared()
        && Instant::now() < reply_by
}

/// The verdict of a held login this stopping node leaves to the others: no reply, so the
/// NAS sends its retransmit to its next server, which finds the call pending and follows
/// it. A Reject here (or the call closed as failed) would have been the answer that
/// retransmit got too, as a repeat of a decided request, and the call hung up.
fn left_to_other_nodes(s: &Subject<'_>) -> Verdict {
    tracing::info!(
        user = s.user,
        "radmfa is stopping: the call is left ringing for the other nodes sharing the store, \
         and the request unanswered so that the NAS asks its next server, which follows \
         the call"
    );
    let mut v = s.verdict(
        Reply::reject(),
        "voice",
        format!(
            "{LEFT_TO_OTHER_NODES}: radmfa stopped before the call was answered; the call \
             goes on, and the NAS's retransmit to another node follows it"
        ),
    );
    v.unanswered = true;
    v
}

/// The start of the audit reason of a held login left to the other nodes at a stop.
const LEFT_TO_OTHER_NODES: &str = "left to the other nodes";

/// A retransmit of a held login whose call is decided: the same verdict as its first copy
/// got (the NAS may have lost that reply; a block since turns an approval into a Reject),
/// audited as a repeat rather than as another login. The request's key holds its
/// Authenticator, so only a copy of that very request gets here: a new login places a call
/// of its own.
async fn repeat_of_decided_call(
    app: &AppState,
    ctx: &RequestContext,
    s: &Subject<'_>,
    txn: OobTransaction,
) -> Result<Verdict, Fault> {
    Metrics::inc(&app.metrics.duplicate_replayed);
    let began = txn.created_at;
    let mut v = call_verdict(app, ctx, s, txn).await?;
    let why = v
        .reason
        .take()
        .unwrap_or_else(|| "approved on the call".into());
    v.reason = Some(format!("{}{why}", oob::REPEAT));
    // When the login began, for a remembered approval: a `user forget` since its call is
    // not undone by its retransmit. And where its password came from, which a verdict with
    // `started_at` must carry to be remembered (`remembered::to_remember`).
    v.started_at = Some(began);
    v.client_ip = v.client_ip.take().or_else(|| s.client_ip.clone());
    Ok(v)
}

async fn call_prompt(
    app: &AppState,
    ctx: &RequestContext,
    request_key: &str,
    s: &Subject<'_>,
) -> Result<Verdict, Fault> {
    // Until the prompt is issued: without its challenge no Enter can decide the call.
    let mut guard = oob::CallGuard::new(app);
    let txn = match place(app, ctx, request_key, s, &mut guard).await? {
        Ok(t) => t,
        Err(v) => return Ok(v),
    };
    let phone = s.phone.as_deref().unwrap_or_default();
    // Ends ": " as the code prompts do: pam_radius_auth and SSH show the Reply-Message as
    // it is, and what the user types (Enter, or "sms") follows it.
    let prompt = format!(
        "We are calling {}. Answer the call, then press Enter{}: ",
        mask(phone),
        switch_hint(&s.available, Method::Voice)
    );
    let reply = issue(
        app,
        ctx,
        s,
        s.context(Method::Voice, Some(&txn.id)),
        prompt,
        txn.expires_at - txn.created_at,
    )
    .await?;
    // Only once the challenge (and the call's reference) is committed: see `held_call`.
    durability::settle().await?;
    guard.disarm();
    Ok(s.verdict(reply, "voice", "calling; waiting for the answer"))
}

/// The verdict for a call as it stands. A call still pending here has run out of time: it
/// is closed as failed (unless a callback decided it in the meantime).
pub async fn call_verdict(
    app: &AppState,
    ctx: &RequestContext,
    s: &Subject<'_>,
    mut txn: OobTransaction,
) -> Result<Verdict, Fault> {
    if txn.status == OobStatus::Pending {
        let reason = if app.stopping.is_cancelled() {
            STOPPED_DURING_CALL.to_string()
        } else if ctx.client.factors.voice_mode == VoiceMode::Challenge {
            // Enter pressed after the call's own lifetime: voice_budget_secs (a held
            // call's setting) had nothing to do with it.
            format!(
                "no answer to the call within its lifetime of {} s ([voice] \
                 call_lifetime_secs)",
                txn.expires_at - txn.created_at
            )
        } else {
            let budget = ctx.client.factors.voice_budget.as_secs();
            format!("no answer to the call within the client's budget of {budget} s")
        };
        if !app
            .store
            .resolve_oob(&txn.id, OobStatus::Failed, Some(&reason))
            .await?
        {
            // Decided elsewhere in the meantime (a callback, or another node). Settle this
            // request's writes first: on PostgreSQL they hold a pooled connection, and the
            // read takes another, so under a full pool every such request would wait for a
            // second connection while holding one, until the acquire timeout.
            durability::settle().await?;
            if let Some(t) = app.store.oob(&txn.id).await? {
                txn = t;
            }
        } else {
            if reason == STOPPED_DURING_CALL {
                hang_up_at_stop(app, &txn);
            }
            txn.status = OobStatus::Failed;
            txn.reason = Some(reason);
        }
    }
    let reason = txn.reason.clone().unwrap_or_default();
    Ok(match txn.status {
        OobStatus::Approved => {
            // A fraud report on another of the user's calls cancels this one too, unless
            // this login placed its call just after that cancel (it read the profile before
            // the block): the block is read again before the # counts.
            // Under another name of the same entry too: a fraud report on jdoe's call blocks
            // jdoe, and john.doe's call in flight must not get in either.
            durability::settle().await?;
            // Bound first, so the profile is dropped before the next await (it would
            // otherwise be held in every request's future).
            let own = blocked(&app.store.user_profile(&txn.user).await?);
            let block = match own {
                Some(own) => Some(own),
                None => {
                    super::aliases::blocked_under_another_name(app, &txn.user, &s.info.other_names)
                        .await?
                        .map(|other| {
                            (
                                super::aliases::blocked_reason(&other),
                                Reply::reject().with_message(BLOCKED_MESSAGE),
                            )
                        })
                }
            };
            match block {
                Some((reason, reply)) => s.verdict(reply, "voice", reason),
                None => {
                    // A passed second factor, as a right code is: the wrong answers before
                    // it (an SMS code mistyped, then "call") are forgotten, under every
                    // name of the entry, or the next typo days later would lock.
                    // Boxed: inline, it took the request's future past its bound.
                    Box::pin(async {
                        app.store.clear_failures(&txn.user).await?;
                        super::second_factor::clear_under_other_names(
                            app,
                            &txn.user,
                            &s.info.other_names,
                        )
                        .await
                    })
                    .await?;
                    let mut v = s.verdict(Reply::accept(), "voice", "approved on the call");
                    v.reason = None;
                    v
                }
            }
        }
        OobStatus::Fraud => s.verdict(
            Reply::reject().with_message(BLOCKED_MESSAGE),
            "voice",
            reason,
        ),
        OobStatus::Denied => s.verdict(
            Reply::reject().with_message("The sign-in was not approved on the call."),
            "voice",
            reason,
        ),
        OobStatus::Failed | OobStatus::Pending => s.verdict(
            Reply::reject().with_message(unanswered_message(&reason)),
            "voice",
            reason,
        ),
    })
}

/// What the user is told of a call that ended unapproved without an answer, from the
/// provider's status (the reason `callbacks::twilio` records). A busy line or a number the
/// call could not reach is not "not answered in time": that sends the user back to wait by
/// a phone that will never ring.
pub(super) fn unanswered_message(reason: &str) -> &'static str {
    match reason {
        "call busy" => "The line was busy. Try again when the phone is free.",
        "call failed" => {
            "The call could not be completed. Ask the helpdesk to check that the phone \
             number on record can be called."
        }
        // Ended by radmfa, not by the callee (a fraud report on another call, a number
        // changed, a user reset): "not answered in time" would send them back to the phone.
        r if r.starts_with(crate::store::OOB_CANCELLED) => {
            "The call was cancelled. Contact your administrator if you did not expect this."
        }
        STOPPED_DURING_CALL => "The sign-in was interrupted. Please try again.",
        _ => "The call was not answered in time.",
    }
}

/// Why a held call's login ended when radmfa stopped.
const STOPPED_DURING_CALL: &str = "radmfa stopped before the call was answered";

/// Hangs up a held call whose login ended because radmfa stops: left ringing, it was
/// answered after the login had ended (to "the sign-in has already ended"), or after the
/// process had gone, with no one to take its keypress. In the background, which the stop
/// waits for within its own bound, after the requests in flight.
fn hang_up_at_stop(app: &AppState, txn: &OobTransaction) {
    if let Some(sid) = txn.provider_ref.clone() {
        app.delivery.hang_up_later(
            &app.background,
            txn.user.clone(),
            vec![sid],
            "as radmfa stopped",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_radmfa_ended_is_not_said_to_be_unanswered() {
        let cancelled = format!("{}fraud alert on another call", crate::store::OOB_CANCELLED);
        assert!(unanswered_message(&cancelled).contains("cancelled"));
        assert!(unanswered_message(STOPPED_DURING_CALL).contains("interrupted"));
        assert_eq!(
            unanswered_message("no key pressed on the call"),
            "The call was not answered in time."
        );
    }
}
