//! What an inline client's refusal tells: no more than a wrong password's.
//!
//! Inline, the password and the code come in one request, and a wrong password gets a bare
//! Access-Reject. A Reply-Message on a Reject that only comes once the directory has taken
//! the password ("No second factor is enrolled", "Your second factor cannot be used here",
//! "is disabled", "has expired", "Too many wrong codes", "out of sync", a fraud block, "Log
//! in with the user name your second factor is enrolled under", an SMS or a call that could
//! not go out) tells whoever sprays passwords which one was right: for a locked or blocked
//! user, and during a roll-out for every user not enrolled yet. So each such Reject is sent
//! bare, the very reply a wrong password gets; its audit record keeps the reason, for the
//! help desk (docs/operations.md, "What the user sees").
//!
//! Kept: the outcome of a phone call a held login placed (not approved, busy, not answered,
//! the fraud digits). The request was held for the call, and its length has told the
//! password was right already, as the ringing phone has told the user; the user needs to
//! know which it was. Not for other clients: a challenge client's Access-Challenge tells
//! the password was right anyway, and a `code_only` client's NAS checked the password
//! before it sent the code (an entry given only to such a NAS, docs/nas.md), so its
//! messages speak to someone who has the password, about their second factor. A
//! second-factor-only client (RD Gateway) has no password to tell of.

use super::{RequestContext, Verdict};
use crate::config::OtpMode;
use crate::radius::{Reply, ReplyCode};

/// `v` as an inline client sends it: a Reject bare, unless a held call decided it (mode
/// "voice": see the module comment; a call that was not placed is made bare where it is
/// refused, [`bare_on_inline`]). Other clients' verdicts as they are.
pub fn as_sent(ctx: &RequestContext, v: Verdict) -> Verdict {
    if v.mode == "voice" {
        return v;
    }
    bare_on_inline(ctx, v)
}

/// `v`, a Reject on an inline client, without its Reply-Message (or anything else a bare
/// Reject does not carry).
pub fn bare_on_inline(ctx: &RequestContext, mut v: Verdict) -> Verdict {
    let inline = matches!(ctx.client.otp_mode, OtpMode::Inline { .. });
    if inline && !ctx.client.factors.second_factor_only && v.reply.code == ReplyCode::Reject {
        v.reply = Reply::reject();
    }
    v
}
