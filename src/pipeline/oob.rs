//! Out-of-band delivery for one request: which number, the rate limit, sending the SMS or
//! placing the call exactly once, and waiting for the call's decision.
//!
//! "Exactly once": the transaction is inserted under the request's key before anything is
//! sent. Retransmits on this node never get here (the duplicate cache attaches them); a
//! retransmit that reaches another node sharing the store (a load balancer in front)
//! finds the transaction and follows it instead of sending again. A NAS failing over to its
//! next server sends a new request (its own Identifier and Request Authenticator), which is
//! a new login here: docs/rd-gateway.md says to keep the NAS's timeout above the budget.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Fault, RequestContext, Verdict};
use crate::app::AppState;
use crate::auth::UserInfo;
use crate::callbacks::public_url;
use crate::config::delivery::SmsProvider;
use crate::delivery::phone::{self, mask};
use crate::delivery::{CallRequest, ProviderError};
use crate::mfa::{sms, voice};
use crate::radius::Request;
use crate::server::metrics::Metrics;
use crate::store::{
    durability, LoginOrigin, OobBegin, OobKind, OobStatus, OobTransaction, SendLimit, StoreError,
    UserProfile,
};

/// How often a request waiting on a call looks at the store (the callback may land on
/// another node); a callback on this node wakes it at once.
const POLL: Duration = Duration::from_millis(250);
/// Stop waiting on a call this long before the request's decision is due (its deadline less
/// the audit reserve), so that closing the call as failed — a store write — still fits and
/// the audit says "no answer within the budget" rather than "deadline exceeded". 250 ms and
/// then 500 ms were each overrun once on a loaded 2-core CI machine; a second out of a
/// budget of 30–60 s costs the user nothing they would notice.
const VERDICT_MARGIN: Duration = Duration::from_secs(1);

pub const RATE_LIMITED: &str =
    "Too many codes or calls were requested. Wait a few minutes, then try again.";
/// The day's cap ([sms] max_per_user_per_day): minutes of waiting do not lift it.
pub const DAILY_LIMITED: &str =
    "Today's codes and calls are used up. Try again tomorrow, or ask your administrator.";
pub const NOT_SENT: &str = "The code could not be sent. Try again later or use another method.";
pub const NOT_CALLED: &str = "The call could not be placed. Try again later or use another method.";
/// The prompt of a text the provider did not confirm in time ([`Delivered::Unconfirmed`]).
pub fn unconfirmed_prompt(phone: &str) -> String {
    format!(
        "The text to {} was not confirmed. If it comes, enter its code: ",
        mask(phone)
    )
}

/// The audit reason's start for such a text, kept on its pending transaction
/// (`Store::note_pending_oob`): how a copy of its request, on any node, knows it.
const UNCONFIRMED: &str = "SMS not confirmed: ";
/// Noted on a pending text the provider took without a reference to keep (`settle`).
const SMS_SENT: &str = "SMS sent";

/// [`NOT_SENT`] and [`NOT_CALLED`] for a login's first send, answered with a Reject.
pub const NOT_SENT_AT_LOGIN: &str = "The code could not be sent. Try again later.";
pub const NOT_CALLED_AT_LOGIN: &str = "The call could not be placed. Try again later.";

/// [`NOT_SENT`] and [`NOT_CALLED`] without "or use another method", where there is none;
/// any other message as it is.
pub fn without_another_method(message: &str) -> &str {
    match message {
        NOT_SENT => NOT_SENT_AT_LOGIN,
        NOT_CALLED => NOT_CALLED_AT_LOGIN,
        other => other,
    }
}

/// A first send or call that failed at login is answered with a Reject: there is no prompt
/// to type "call" or "sms" at (nor any other method on RD Gateway), so the reply does not
/// offer "another method" (a prompt's failed switch keeps the prompt, and says it).
pub fn no_other_method(mut v: Verdict) -> Verdict {
    if v.reply.code == crate::radius::ReplyCode::Reject {
        for m in &mut v.reply.messages {
            match m.as_str() {
                NOT_SENT => *m = NOT_SENT_AT_LOGIN.to_string(),
                NOT_CALLED => *m = NOT_CALLED_AT_LOGIN.to_string(),
                _ => {}
            }
        }
    }
    v
}
/// The provider refuses the number itself ([`ProviderError::refused_number`]): a landline,
/// an opted-out recipient, an invalid number. "Try again later" would never work.
pub const NUMBER_CANNOT_TEXT: &str = "The code could not be sent: the phone number on record \
     cannot take texts. Ask the helpdesk to check it.";
pub const NUMBER_CANNOT_CALL: &str = "The call could not be placed: the phone number on record \
     cannot be called. Ask the helpdesk to check it.";
/// In the audit reason of a send whose number the provider refuses, before why: how a
/// retransmit that reaches another node tells it from other failures.
const NUMBER_REFUSED: &str = "the provider refuses this number";
/// The audit reason's prefix for a call the provider did not take: a retransmit of its
/// request is told the call could not be placed, not why a placed call ended.
const CALL_NOT_PLACED: &str = "call not placed";
/// Before the audit reason of a request whose SMS or call an earlier copy of it already
/// decided: a retransmit that missed the duplicate cache (it came after
/// `duplicate_window_secs`, to a restarted process, or to another node). It gets the same
/// answer, but it is no new login: without this, one approved call read as several
/// accepted logins in the audit.
pub const REPEAT: &str = "repeat of a decided request: ";

/// The same for every retransmit of `req`, on any node: the NAS's configured name, its
/// address and port, the Identifier and the Request Authenticator (RFC 5080 §2.2.2).
/// Over RadSec without the port: a peer resends a request whose connection closed on a new
/// connection (RFC 6613 allows it once the old one is closed), from a new port, and that
/// copy must not send a second code or place a second call. The Request Authenticator (16
/// random octets) keeps requests apart.
pub fn request_key(ctx: &RequestContext, req: &Request) -> String {
    let mut h = Sha256::new();
    h.update(ctx.client.name.as_bytes());
    h.update([0]);
    if ctx.over_tls {
        h.update(ctx.src.ip().to_string().as_bytes());
    } else {
        h.update(ctx.src.to_string().as_bytes());
    }
    h.update([0, req.identifier]);
    h.update(req.authenticator);
    hex::encode(h.finalize())
}

/// The user's number in E.164, from the first configured source that has a valid one.
pub fn phone_for(app: &AppState, profile: &UserProfile, info: &UserInfo) -> Option<String> {
    phone::phone_from(&app.config().delivery.phone, profile, info).map(|(_, p)| p)
}

/// Whether the directory has a number for the user that texts and calls do not use: in an
/// attribute `[phone] sources` leaves out (the store only, by default since directory
/// numbers are often the user's own to change), or in a listed one but not dialable (a
/// national number without `default_country_code`). Such a user was meant to get texts or
/// calls: not "no second factor", so `no_factor = "allow"` must not let them in on the
/// password.
pub fn unused_directory_number(app: &AppState, info: &UserInfo) -> Option<phone::UnusedNumber> {
    phone::unused_number(&app.config().delivery.phone, info)
}

/// What came of an attempt to send or call.
#[derive(Debug)]
pub enum Delivered {
    /// Sent (or already sent for this request): follow this transaction.
    Yes(OobTransaction),
    /// Not sent.
    No(NotSent),
    /// A text the provider took without confirming it in time (`NotSent::maybe_sent`): it
    /// may still come, so its transaction stays pending and its prompt takes its code. Not
    /// sent as far as `provider_failure = "allow"` is concerned (see `methods::sms_prompt`).
    Unconfirmed(OobTransaction, NotSent),
}

/// Why an SMS or call did not go out: tell the user `message`, audit `reason`.
/// `provider_failed`: the provider was asked and failed for everyone (an outage, see
/// `ProviderError::is_outage`), as opposed to refusing this message, a limit, or missing
/// configuration.
#[derive(Debug)]
pub struct NotSent {
    pub message: &'static str,
    pub reason: String,
    pub provider_failed: bool,
    /// The provider may have taken it though it answered with a failure: a timeout, or a
    /// connection lost, after the request left. The text may still arrive (or the phone
    /// ring) late.
    pub maybe_sent: bool,
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The daily send limit's window.
const DAY: i64 = 86_400;

/// `entry`: the user's [`aliases::entry_key`](super::aliases::entry_key), so that the names
/// of one directory entry share one allowance. The number has `max_per_user` of its own:
/// accounts pointed at one number (from a stolen password list, at a premium-rate or
/// "pumping" destination) do not each bring it another allowance.
fn rate_limits(app: &AppState, ctx: &RequestContext, entry: &str, phone: &str) -> Vec<SendLimit> {
    let limits = app.config().delivery.send_limits;
    let (per_user, per_nas, window) = (
        limits.max_per_user,
        limits.max_per_nas,
        limits.window.as_secs() as i64,
    );
    // And a day's: the window alone let one stolen password send 5 every 5 minutes, about
    // 1,440 texts or calls a day, forever.
    let per_day = limits.max_per_user_per_day;
    vec![
        SendLimit {
            key: format!("user:{entry}"),
            max: per_user,
            window_secs: window,
        },
        SendLimit {
            key: format!("phone:{phone}"),
            max: per_user,
            window_secs: window,
        },
        SendLimit {
            key: format!("nas:{}", ctx.client.name),
            max: per_nas,
            window_secs: window,
        },
        SendLimit {
            key: format!("user-day:{entry}"),
            max: per_day,
            window_secs: DAY,
        },
        SendLimit {
            key: format!("phone-day:{phone}"),
            max: per_day,
            window_secs: DAY,
        },
    ]
}

/// What the user was told when the SMS or call of a transaction closed as failed for
/// `reason`, for a retransmit of its request to be told the same.
fn failed_message(kind: OobKind, reason: &str) -> &'static str {
    // By the start radmfa's own limit writes ("sms daily limit: …"): a provider's refusal
    // is stored with its own text, which may say "rate limit" too, and the retransmit was
    // then told "too many codes" for a text that was never limited here.
    let limit = reason.strip_prefix(kind.as_str()).unwrap_or_default();
    if limit.starts_with(" daily limit:") {
        DAILY_LIMITED
    } else if limit.starts_with(" rate limit:") {
        RATE_LIMITED
    } else if reason == "second factor locked" {
        super::login::LOCKED_MESSAGE
    } else if reason.contains(NUMBER_REFUSED) {
        number_refused(kind)
    } else if kind == OobKind::Sms {
        NOT_SENT
    } else if reason.starts_with(CALL_NOT_PLACED) {
        NOT_CALLED
    } else {
        // Placed, and ended unapproved (busy, unanswered, radmfa stopping): "could not be
        // placed" would be false, and sent the user to another method for a busy line.
        super::methods::unanswered_message(reason)
    }
}

/// The log line of a copy of a request that follows what an earlier copy sent.
fn following(kind: OobKind) -> &'static str {
    match kind {
        OobKind::Sms => {
            "following the SMS an earlier copy of this request sent (here or on another \
             node); none sent again"
        }
        OobKind::Voice => {
            "following the call an earlier copy of this request placed (here or on another \
             node); none placed again"
        }
    }
}

/// Claims the request's transaction and a rate-limit slot. `Ok(None)`: the caller sends.
async fn claim(
    app: &AppState,
    ctx: &RequestContext,
    txn: &OobTransaction,
    entry: &str,
    other_names: &[String],
) -> Result<Option<Delivered>, Fault> {
    // The lockout as it stands now, not as the request read it before the password check:
    // wrong codes counted meanwhile (another prompt, another node) may have locked the
    // user, and a locked user gets no more codes sent or calls placed. Read before the
    // claim is written, and after this request's earlier writes are committed (on
    // PostgreSQL the read then sees every node's committed lock; it no longer needs a second
    // pooled connection since reads go through the request's transaction, `reader`). The
    // claim, its send slot and a refusal then still commit together.
    durability::settle().await?;
    if super::second_factor::is_locked(app, &txn.user).await? {
        return Ok(Some(Delivered::No(NotSent {
            message: super::login::LOCKED_MESSAGE,
            reason: "second factor locked".into(),
            provider_failed: false,
            maybe_sent: false,
        })));
    }
    // The same for a fraud block, under this name or another of the entry's (a report
    // blocks the name whose call it was on): a report made while this login was at the
    // directory cancelled the user's calls and codes, and this one must not text or ring
    // the phone seconds later (it could approve nothing, but the user just said it is not
    // them).
    let blocked = match super::methods::blocked(&app.store.user_profile(&txn.user).await?) {
        Some((reason, _)) => Some(reason),
        None => super::aliases::blocked_under_another_name(app, &txn.user, other_names)
            .await?
            .map(|other| super::aliases::blocked_reason(&other)),
    };
    if let Some(reason) = blocked {
        return Ok(Some(Delivered::No(NotSent {
            message: super::methods::BLOCKED_MESSAGE,
            reason,
            provider_failed: false,
            maybe_sent: false,
        })));
    }
    if let OobBegin::Existing(t) = app.store.begin_oob(txn).await? {
        // The key names a request by its NAS, source, Identifier and Request Authenticator,
        // not by its bytes. A transaction of another user, NAS or kind, one past its
        // lifetime, or one older than a copy of its request could be (the NAS gives up on a
        // request after its deadline; a retransmit to another node comes before that)
        // belongs to another request — a NAS reusing an authenticator, or a copy replayed
        // later: lend it nothing, and send nothing.
        let config = app.config();
        let same_request_for = ctx
            .client
            .factors
            .request_deadline(config.server.request_deadline)
            + config.server.duplicate_window;
        let too_old = txn.created_at - t.created_at > same_request_for.as_secs() as i64 + 1;
        if t.user != txn.user
            || t.nas != txn.nas
            || t.kind != txn.kind
            || t.expires_at <= txn.created_at
            || too_old
        {
            return Ok(Some(Delivered::No(NotSent {
                message: if txn.kind == OobKind::Sms {
                    NOT_SENT
                } else {
                    NOT_CALLED
                },
                reason: "another request's transaction has this request's key".into(),
                provider_failed: false,
                maybe_sent: false,
            })));
        }
        // Another node (or an earlier copy) handled this very request: same outcome, no send.
        let failed = |t: &OobTransaction| {
            let reason = t.reason.clone().unwrap_or_default();
            // Answered from the decision on record, as the duplicate cache would have.
            Metrics::inc(&app.metrics.duplicate_replayed);
            // Decided on another node or an earlier copy: fail closed whatever the cause.
            Delivered::No(NotSent {
                message: failed_message(t.kind, &reason),
                reason: format!("{REPEAT}{reason}"),
                provider_failed: false,
                maybe_sent: false,
            })
        };
        // A text still at the provider for the first copy (a NAS that failed over to this
        // node while the first waited): its outcome, not "sent" before anyone knows. Told
        // "Enter the code sent", the user waited for a text that had failed, and the
        // first copy's app prompt or fail-open never reached them (review).
        let (t, unheard) = if in_flight(&t) {
            let (t, unheard) = await_text(app, ctx, *t).await?;
            (Box::new(t), unheard)
        } else {
            (t, false)
        };
        return Ok(Some(match t.status {
            OobStatus::Failed => failed(&t),
            OobStatus::Pending => {
                // Said, so that a login two nodes waited on reads as one in the logs.
                tracing::info!(user = t.user.as_str(), "{}", following(t.kind));
                match t.reason.clone().filter(|r| r.starts_with(UNCONFIRMED)) {
                    // Told as the first copy was: the text was not confirmed (review). Where
                    // this copy only ran out of time waiting for the first, nothing says
                    // the provider failed: no fail-open, and the shared transaction stays
                    // open for the first copy's prompt (review).
                    Some(reason) => Delivered::Unconfirmed(
                        *t,
                        NotSent {
                            message: NOT_SENT,
                            reason,
                            provider_failed: !unheard,
                            maybe_sent: true,
                        },
                    ),
                    None => Delivered::Yes(*t),
                }
            }
            _ => Delivered::Yes(*t),
        }));
    }
    let limits = rate_limits(app, ctx, entry, &txn.phone);
    // Under the transaction's id, so that this send's slot, and no other's, can be given back.
    if let Some(i) = app
        .store
        .take_send_slot(&limits, txn.created_at, &txn.id)
        .await?
    {
        let l = &limits[i];
        // The number itself stays out of the reason (it is logged too; the audit record
        // has it in its own field).
        let whose = if l.key.starts_with("phone") {
            "the number it goes to"
        } else {
            l.key.as_str()
        };
        let daily = l.window_secs == DAY;
        let reason = if daily {
            let whose = whose.strip_prefix("user-day:").unwrap_or(whose);
            format!(
                "{} daily limit: {} a day reached for {whose}",
                txn.kind.as_str(),
                l.max
            )
        } else {
            format!(
                "{} rate limit: {} per {} s reached for {whose}",
                txn.kind.as_str(),
                l.max,
                l.window_secs,
            )
        };
        Metrics::inc(&app.metrics.send_limited);
        app.store
            .resolve_oob(&txn.id, OobStatus::Failed, Some(&reason))
            .await?;
        return Ok(Some(Delivered::No(NotSent {
            message: if daily { DAILY_LIMITED } else { RATE_LIMITED },
            reason,
            provider_failed: false,
            maybe_sent: false,
        })));
    }
    // The claim and the slot must be on disk before anything goes to the provider: a send
    // that a crash could forget would be repeated, and not counted against the limit.
    durability::settle().await?;
    Ok(None)
}

/// A text whose first copy is still at the provider: pending, and neither its reference
/// nor a reason ([`SMS_SENT`], [`UNCONFIRMED`]) written yet.
fn in_flight(t: &OobTransaction) -> bool {
    t.kind == OobKind::Sms
        && t.status == OobStatus::Pending
        && t.provider_ref.is_none()
        && t.reason.is_none()
}

/// Waits, within this request's time, for the first copy of its request to hear from the
/// provider about `t`. Still unheard at the end (`true` beside it): taken as a text not
/// confirmed, which is what the user is told (its code is taken if it comes).
async fn await_text(
    app: &AppState,
    ctx: &RequestContext,
    t: OobTransaction,
) -> Result<(OobTransaction, bool), Fault> {
    // This request's claim attempt is committed first: its connection is not held meanwhile.
    durability::settle().await?;
    let until = reply_by(app, ctx);
    loop {
        let now = app.store.oob(&t.id).await?;
        match now {
            Some(n) if in_flight(&n) && Instant::now() < until => {}
            Some(n) if in_flight(&n) => {
                let unheard = OobTransaction {
                    reason: Some(format!(
                        "{UNCONFIRMED}no word from the provider within this copy's time"
                    )),
                    ..n
                };
                return Ok((unheard, true));
            }
            Some(n) => return Ok((n, false)),
            None => return Ok((t, false)),
        }
        tokio::time::sleep(POLL.min(until.saturating_duration_since(Instant::now()))).await;
    }
}

/// Sends a fresh code by SMS for this request (once, within the rate limit).
pub async fn send_sms(
    app: &AppState,
    ctx: &RequestContext,
    request_key: &str,
    user: &str,
    other_names: &[String],
    phone: &str,
    origin: Box<LoginOrigin>,
) -> Result<Delivered, Fault> {
    let entry = super::aliases::entry_key(app, user, other_names);
    let (Some(cfg), Some(provider)) = (&app.config().delivery.sms, &app.delivery.sms) else {
        return Ok(Delivered::No(NotSent {
            message: NOT_SENT,
            reason: "SMS is not configured".into(),
            provider_failed: false,
            maybe_sent: false,
        }));
    };
    let now = app.clock.now();
    let code = sms::new_code(cfg.code_length);
    let txn = OobTransaction {
        id: new_id(),
        request_key: request_key.to_string(),
        user: user.to_string(),
        nas: ctx.client.name.clone(),
        kind: OobKind::Sms,
        phone: phone.to_string(),
        code_hash: Some(sms::hash_code(app.store.sms_code_key(), &code)),
        status: OobStatus::Pending,
        reason: None,
        provider_ref: None,
        created_at: now,
        expires_at: now + cfg.code_ttl.as_secs() as i64,
        origin,
    };
    if let Some(done) = claim(app, ctx, &txn, &entry, other_names).await? {
        return Ok(done);
    }
    let text = sms::render_message(&cfg.message, &code);
    // Twilio reports an SMS it took but could not deliver (a phone off, a landline, a
    // carrier's filter) to [callbacks], where it is logged and counted; without [callbacks]
    // nothing is asked for. The generic HTTP gateway has no such report.
    let status_callback = match cfg.provider {
        SmsProvider::Twilio => public_url(app, &format!("/twilio/sms/{}/status", txn.id)),
        SmsProvider::Http => None,
    };
    let sent = provider
        .send_sms_reporting(phone, &text, &code, status_callback.as_deref())
        .await;
    settle(app, txn, sent, ("SMS code sent", "SMS not sent", NOT_SENT)).await
}

/// Records the provider's answer on the transaction: its reference when the SMS or call went
/// out, otherwise the transaction fails with the reason the audit shows. `words` are the log
/// message for success, the reason prefix for failure, and what the user is told.
async fn settle(
    app: &AppState,
    txn: OobTransaction,
    sent: Result<Option<String>, ProviderError>,
    words: (&str, &str, &'static str),
) -> Result<Delivered, Fault> {
    let (done, failed, message) = words;
    let (user, phone) = (txn.user.as_str(), txn.phone.as_str());
    match sent {
        Ok(provider_ref) => {
            // Counted as soon as the provider took it: it is sent (and paid for) even if
            // keeping its reference below fails on the store.
            Metrics::inc(match txn.kind {
                OobKind::Sms => &app.metrics.sms_sent,
                OobKind::Voice => &app.metrics.calls_placed,
            });
            match provider_ref.as_deref().map(storable_ref) {
                Some(Some(r)) => {
                    let now = app.store.set_oob_provider_ref(&txn.id, r).await?;
                    // Cancelled while it was being placed (user reset, a new number, a
                    // fraud report on another call): that cancel found no call to hang up.
                    // Not one the user switched away from ("abandoned"): that one rings on
                    // for a fraud report (`abandon_call`).
                    let cancelled = matches!(
                        &now,
                        Some((OobStatus::Failed, Some(why))) if why.starts_with(crate::store::OOB_CANCELLED)
                    );
                    if txn.kind == OobKind::Voice && cancelled {
                        app.delivery.hang_up_later(
                            &app.background,
                            txn.user.clone(),
                            vec![r.to_string()],
                            "while it was placed",
                        );
                    }
                }
                Some(None) => tracing::warn!(
                    user,
                    "the provider's reference is not kept: \
                     it has control characters or is over 128 bytes"
                ),
                None => {}
            }
            // A text the provider took with no reference kept (the generic gateway): said on
            // its transaction, so a copy of the request on another node waiting for it
            // (`await_text`) knows it went out.
            let kept = matches!(provider_ref.as_deref().map(storable_ref), Some(Some(_)));
            if txn.kind == OobKind::Sms && !kept {
                app.store.note_pending_oob(&txn.id, SMS_SENT).await?;
            }
            tracing::info!(user, phone = %mask(phone), "{done}");
            Ok(Delivered::Yes(txn))
        }
        Err(e) => {
            // Before the transaction is closed: on PostgreSQL that write opens the request's
            // transaction, holding a connection, and the give-back takes one of its own (with
            // `pool_size = 1` it would wait for the request's).
            if e.surely_not_sent() {
                give_back_slot(app, &txn).await;
            }
            // A text the provider took and did not confirm in time (or whose answer was
            // lost) may still come: its transaction stays pending, so that the code it
            // brings finishes the login at its prompt, or at a later prompt of the login
            // (`ChallengeContext::earlier_sms`). Closed as failed, the late code was a wrong
            // code counted toward the lockout (red team). Still counted as a provider
            // failure, and against the send limits.
            if e.maybe_sent() && e.refused_number().is_none() && txn.kind == OobKind::Sms {
                tracing::warn!(user, error = %e,
                    "SMS not confirmed by the provider; its code is taken if it comes");
                app.metrics.count_provider_failure(e.kind());
                let reason = format!("{UNCONFIRMED}{e}");
                app.store.note_pending_oob(&txn.id, &reason).await?;
                let why = NotSent {
                    message,
                    reason,
                    provider_failed: e.is_outage(),
                    maybe_sent: true,
                };
                return Ok(Delivered::Unconfirmed(txn, why));
            }
            let (reason, message) = match e.refused_number() {
                Some(why) => (
                    format!("{failed}: {e}; {NUMBER_REFUSED}: {why}"),
                    number_refused(txn.kind),
                ),
                None => (format!("{failed}: {e}"), message),
            };
            let closed = app
                .store
                .resolve_oob(&txn.id, OobStatus::Failed, Some(&reason))
                .await?;
            // Not pending any more, and decided by its callback while the provider's answer
            // was late (a Calls API slower than `[twilio] timeout_ms` that placed the call
            // anyway, and the callee pressed `#`): the call went out, and the login follows
            // its decision, as a repeat of the request would. Refused here, the NAS got a
            // Reject while the callee heard "approved", and a repeat of the same request
            // then an Accept. Not for one cancelled meanwhile (a reset, a new number): that
            // is the failure it looks like.
            let decided = !closed
                && app.store.oob(&txn.id).await?.is_some_and(|t| {
                    matches!(
                        t.status,
                        OobStatus::Approved | OobStatus::Denied | OobStatus::Fraud
                    )
                });
            if decided {
                Metrics::inc(match txn.kind {
                    OobKind::Sms => &app.metrics.sms_sent,
                    OobKind::Voice => &app.metrics.calls_placed,
                });
                tracing::warn!(user, error = %e,
                    "{failed} by the provider's answer, but its callback has decided it already; \
                     the login follows that decision");
                return Ok(Delivered::Yes(txn));
            }
            match e.refused_number() {
                Some(why) => tracing::warn!(
                    user,
                    phone = %mask(phone),
                    error = %e,
                    refused_number = why,
                    "{failed}: the provider refuses the number on record"
                ),
                None => tracing::warn!(user, error = %e, "{failed}"),
            }
            app.metrics.count_provider_failure(e.kind());
            Ok(Delivered::No(NotSent {
                message,
                reason,
                provider_failed: e.is_outage(),
                maybe_sent: e.maybe_sent(),
            }))
        }
    }
}

/// What the user is told when the provider refuses the number for a text or a call.
fn number_refused(kind: OobKind) -> &'static str {
    match kind {
        OobKind::Sms => NUMBER_CANNOT_TEXT,
        OobKind::Voice => NUMBER_CANNOT_CALL,
    }
}

/// Gives back the send-limit slot `claim` took for `txn` (under the user's, the number's and
/// the NAS's keys), for a send the provider surely did not take
/// ([`ProviderError::surely_not_sent`]): nothing went out and nothing was paid for. Kept, an
/// outage or a refused credential used up every user's allowance, and at `max_per_nas`
/// logins the whole NAS's, for the window after the provider was back. A send that may have
/// gone out stays counted: the limits are there against toll fraud and SMS pumping.
/// The transaction stays, failed, so a retransmit of this request still sends nothing.
/// Best effort: a failure is logged and nothing else — the send failed either way, and the
/// reply and the audit record stay what they were.
async fn give_back_slot(app: &AppState, txn: &OobTransaction) {
    if let Err(e) = app.store.release_send_slot(&txn.id).await {
        tracing::warn!(
            user = txn.user.as_str(),
            error = %e,
            "the send limits still count this send, which the provider refused"
        );
    }
}

/// A provider's reference as it may be stored: Twilio's SIDs are 34 letters and digits. One
/// with control characters (a NUL, which PostgreSQL refuses in text, so the login failed
/// there after its SMS or call went out, and not on SQLite) or over 128 bytes, from a
/// look-alike gateway, is not kept: callbacks then match the call by its number.
fn storable_ref(r: &str) -> Option<&str> {
    (!r.is_empty() && r.len() <= 128 && !r.chars().any(char::is_control)).then_some(r)
}

/// A call this request placed, until its login has decided it. Only `call_verdict` closes
/// a call still pending; a login that ends before it (a store error after the call went
/// out, an unissued challenge, or its future dropped at the request's deadline) would leave
/// the call pending, and a # pressed on it later would be taken and the callee told the
/// sign-in is approved, while the NAS got a Reject (or nothing). Dropped armed, the guard
/// closes the call as failed in the background, so the callee hears that it ended. It is
/// not hung up, as a call whose budget ran out is not (its owner may still report fraud),
/// unless the store refuses that write too: then a # could still be taken.
pub struct CallGuard<'a> {
    app: &'a AppState,
    /// The call's transaction and user, while armed.
    armed: Option<(String, String)>,
    provider_ref: Option<String>,
}

impl<'a> CallGuard<'a> {
    pub fn new(app: &'a AppState) -> Self {
        CallGuard {
            app,
            armed: None,
            provider_ref: None,
        }
    }

    /// Whether it guards a call this request placed (not one it follows), not yet decided.
    pub fn armed(&self) -> bool {
        self.armed.is_some()
    }

    /// The login decided the call (or handed it to a challenge): nothing to close.
    pub fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        let Some((id, user)) = self.armed.take() else {
            return;
        };
        let (store, voice, sid) = (
            self.app.store.clone(),
            self.app.delivery.voice.clone(),
            self.provider_ref.take(),
        );
        self.app.background.spawn(async move {
            let why = "login ended before the call was decided";
            match store.resolve_oob(&id, OobStatus::Failed, Some(why)).await {
                Ok(closed) => tracing::info!(user, closed, "{why}: a # on it approves nothing"),
                Err(e) => {
                    tracing::error!(user, error = %e, "{why}, and it could not be closed; hanging up");
                    if let (Some(voice), Some(sid)) = (voice, sid) {
                        if let Err(e) = voice.end_call(&sid).await {
                            tracing::warn!(user, error = %e, "{why}; it could not be hung up");
                        }
                    }
                }
            }
        });
    }
}

/// Places the approval call for this request (once, within the rate limit). `guard` is
/// armed once this request places a call of its own (not one it follows), and stays armed
/// on `Delivered::Yes`. `origin`: where the login came from, for the fraud report's record.
#[allow(clippy::too_many_arguments)]
pub async fn place_call(
    app: &AppState,
    ctx: &RequestContext,
    request_key: &str,
    user: &str,
    other_names: &[String],
    phone: &str,
    origin: Box<LoginOrigin>,
    guard: &mut CallGuard<'_>,
) -> Result<Delivered, Fault> {
    let entry = super::aliases::entry_key(app, user, other_names);
    let (Some(cfg), Some(provider)) = (&app.config().delivery.voice, &app.delivery.voice) else {
        return Ok(Delivered::No(NotSent {
            message: NOT_CALLED,
            reason: "calls are not configured".into(),
            provider_failed: false,
            maybe_sent: false,
        }));
    };
    let now = app.clock.now();
    let txn = OobTransaction {
        id: new_id(),
        request_key: request_key.to_string(),
        user: user.to_string(),
        nas: ctx.client.name.clone(),
        kind: OobKind::Voice,
        phone: phone.to_string(),
        code_hash: None,
        status: OobStatus::Pending,
        reason: None,
        provider_ref: None,
        created_at: now,
        expires_at: now + cfg.call_lifetime.as_secs() as i64,
        origin,
    };
    if let Some(done) = claim(app, ctx, &txn, &entry, other_names).await? {
        return Ok(done);
    }
    let (Some(action), Some(status)) = (
        public_url(app, &format!("/twilio/voice/{}/gather", txn.id)),
        public_url(app, &format!("/twilio/voice/{}/status", txn.id)),
    ) else {
        return Ok(Delivered::No(NotSent {
            message: NOT_CALLED,
            reason: "no [callbacks] public_url".into(),
            provider_failed: false,
            maybe_sent: false,
        }));
    };
    let call = CallRequest {
        to: phone.to_string(),
        twiml: voice::call_twiml(&cfg.greeting, &action),
        status_callback: status,
    };
    guard.armed = Some((txn.id.clone(), txn.user.clone()));
    let placed = provider.place_call(&call).await;
    if let Ok(Some(sid)) = &placed {
        guard.provider_ref = storable_ref(sid).map(str::to_string);
    }
    let delivered = settle(
        app,
        txn,
        placed,
        ("approval call placed", CALL_NOT_PLACED, NOT_CALLED),
    )
    .await?;
    if matches!(delivered, Delivered::No(_)) {
        // Not placed: `settle` closed it.
        guard.disarm();
    }
    Ok(delivered)
}

/// Until when a request from this client may wait on a call: the NAS gets our Reject, not
/// silence, and the verdict's own write still fits before the decision is due.
pub fn reply_by(app: &AppState, ctx: &RequestContext) -> Instant {
    let deadline = ctx
        .client
        .factors
        .request_deadline(app.config().server.request_deadline);
    ctx.received
        + deadline
            .saturating_sub(super::audit_reserve(deadline))
            .saturating_sub(VERDICT_MARGIN)
}

/// Waits until the call is decided or `until`; returns the transaction as it then stands.
pub async fn await_call(
    app: &AppState,
    id: &str,
    until: Instant,
) -> Result<Option<OobTransaction>, StoreError> {
    // The callback that decides the call writes the row this request may hold locked (the
    // PostgreSQL store keeps a request's writes in one open transaction): commit first.
    durability::settle().await?;
    let mut until = until;
    let grace_left = || Instant::now() + app.config().server.shutdown_grace / 2;
    // A call placed after the stop began (its request was already in flight) is held to
    // the same bound.
    let mut stop_seen = app.stopping.is_cancelled();
    if stop_seen {
        until = until.min(grace_left());
    }
    loop {
        // Registered before reading, so a callback between the read and the wait wakes us.
        let woken = app.delivery.wake.notified();
        let txn = app.store.oob(id).await?;
        let now = Instant::now();
        match &txn {
            Some(t) if t.status == OobStatus::Pending && now < until => {}
            _ => return Ok(txn),
        }
        let nap = POLL.min(until - now);
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(nap) => {}
            // radmfa is stopping: wait at most half the shutdown grace more (a keypress
            // then still counts), leaving the other half for the verdict and its audit
            // record, so the request is answered and recorded before the process ends.
            _ = app.stopping.cancelled(), if !stop_seen => {
                stop_seen = true;
                until = until.min(grace_left());
            }
        }
    }
}

/// The user chose another method at the call's prompt: the call fails, so a # pressed on it
/// now approves nothing and the callee is told the sign-in ended. It is not hung up: the
/// phone ringing on is what lets its owner report fraud (0#) when someone with the password
/// switched away at once, and an attacker could otherwise silence it within a second.
pub async fn abandon_call(app: &AppState, id: &str, why: &str) -> Result<(), Fault> {
    app.store
        .resolve_oob(id, OobStatus::Failed, Some(why))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::storable_ref;

    /// A retransmit is told the limit only where radmfa's own limit refused the send, not
    /// where the provider's refusal happens to say "rate limit".
    #[test]
    fn only_radmfas_own_limits_are_told_as_limits() {
        use super::{failed_message, DAILY_LIMITED, RATE_LIMITED};
        use crate::store::OobKind;
        let said = |kind, reason: &str| failed_message(kind, reason);
        assert_eq!(
            said(OobKind::Sms, "sms daily limit: 10 a day reached for alice"),
            DAILY_LIMITED
        );
        assert_eq!(
            said(
                OobKind::Voice,
                "voice rate limit: 3 per 600 s reached for alice"
            ),
            RATE_LIMITED
        );
        let provider = "SMS not sent: twilio sms: HTTP 429: error 20429: rate limit exceeded";
        assert_ne!(said(OobKind::Sms, provider), RATE_LIMITED);
        let daily = "SMS not sent: gateway: HTTP 400: daily limit reached for the account";
        assert_ne!(said(OobKind::Sms, daily), DAILY_LIMITED);
    }

    #[test]
    fn only_plain_provider_references_are_stored() {
        let sid = "CA0123456789abcdef0123456789abcdef";
        assert_eq!(storable_ref(sid), Some(sid));
        assert_eq!(storable_ref("SM1\u{0}"), None, "PostgreSQL refuses a NUL");
        assert_eq!(storable_ref("a\nb"), None);
        assert_eq!(storable_ref(""), None);
        assert_eq!(storable_ref(&"x".repeat(129)), None);
        assert_eq!(storable_ref(&"x".repeat(128)).map(str::len), Some(128));
    }
}
