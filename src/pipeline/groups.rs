//! A client's group rules (`allow_groups`, `exempt_groups`), checked once the directory has
//! vouched for the user (password bind, or the search of a second-factor-only client or an
//! app-password login): not in an allowed group → Reject; in an exempt group → Accept
//! without a second factor. A directory failure during the check refuses the login.

use super::{Fault, RequestContext, Verdict};
use crate::auth::{AuthError, UserInfo};

pub enum Membership {
    /// No rule stops the login; the second factor follows.
    Allowed,
    /// The client has allowed groups and the user is in none of them.
    NotAllowed,
    /// In this exempt group: password (or the gateway's word) alone.
    Exempt(String),
}

/// The client's group rules for a user whose password (or the gateway's word) was found
/// right, with the allow rule's searches timed: a wrong password on this client sleeps
/// about as long (`app.allow_check_latency`), or the refusal of a user the rule keeps out,
/// which follows the right password only, told an attacker spraying passwords which were
/// right (about a millisecond per group on loopback, a round trip each to a remote
/// directory).
pub async fn check(
    app: &crate::app::AppState,
    ctx: &RequestContext,
    user: &str,
    info: &UserInfo,
) -> Result<Membership, Fault> {
    let allow = &ctx.client.groups.allow;
    if !allow.is_empty() {
        let t = std::time::Instant::now();
        let member = first_member(ctx, user, info, "allow_groups", allow).await?;
        // A member's check stops at its group: scaled to every group's search, the time
        // a non-member's takes (which is what the wrong passwords are padded to).
        let searched = member
            .and_then(|g| allow.iter().position(|a| a == g))
            .map_or(allow.len(), |i| i + 1);
        let all = t.elapsed() * allow.len() as u32 / searched.max(1) as u32;
        app.allow_check_latency.record(&ctx.client.name, all);
        if member.is_none() {
            return Ok(Membership::NotAllowed);
        }
    }
    Ok(
        match first_member(ctx, user, info, "exempt_groups", &ctx.client.groups.exempt).await? {
            Some(group) => Membership::Exempt(group.to_string()),
            None => Membership::Allowed,
        },
    )
}

/// A wrong password on a client with `allow_groups`, before the client's pad has durations
/// enough to draw from (after a start, or for a client a reload added): the groups' searches
/// themselves, for a name nobody has, timed into the pad. Padded from nothing, such a
/// refusal came back a search per group sooner than a right password's (an outsider's
/// Reject) until some right password had run the check, so a sprayer starting just after a
/// restart could tell the right ones apart. Errors are the check's to report; here only the
/// time counts.
pub async fn imitate_allow_check(app: &crate::app::AppState, ctx: &RequestContext) {
    let nobody = UserInfo {
        dn: "cn=radmfa-timing-probe".into(),
        name: Some("radmfa-timing-probe".into()),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    for g in &ctx.client.groups.allow {
        let _ = ctx
            .primary
            .is_member("radmfa-timing-probe", &nobody, g)
            .await;
    }
    app.allow_check_latency
        .record(&ctx.client.name, t.elapsed());
}

/// The allowed-groups rule alone: true when the client has none or the user is in one.
pub async fn allowed(ctx: &RequestContext, user: &str, info: &UserInfo) -> Result<bool, Fault> {
    let allow = &ctx.client.groups.allow;
    Ok(allow.is_empty()
        || first_member(ctx, user, info, "allow_groups", allow)
            .await?
            .is_some())
}

async fn first_member<'g>(
    ctx: &RequestContext,
    user: &str,
    info: &UserInfo,
    kind: &str,
    groups: &'g [String],
) -> Result<Option<&'g str>, Fault> {
    for g in groups {
        match ctx.primary.is_member(user, info, g).await {
            Ok(true) => return Ok(Some(g)),
            Ok(false) => {}
            // Not "member" — nor a fault that would stop every login: nobody is a member.
            // The audit record says so, or it would blame the user (a refusal for "not a
            // member", an exempt user asked for a code) for a group renamed in the
            // directory.
            Err(AuthError::NoSuchGroup(_)) => {
                crate::warn_once!(
                    &format!("no such group {g}"),
                    group = g,
                    "group not found in the directory; it has no members"
                );
                ctx.note(format!(
                    "{kind} group {g} is not in the directory (renamed or moved?)"
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// The Reject for a user outside the client's allowed groups: a plain one, since the NAS
/// shows the user nothing more useful than "access denied"; the audit record says why.
pub fn not_allowed(ctx: &RequestContext, info: UserInfo) -> Verdict {
    Verdict::reject(format!(
        "not a member of any allow_groups of client {:?}",
        ctx.client.name
    ))
    .with_info(Some(info))
}

pub fn exempt(group: String, info: UserInfo) -> Verdict {
    Verdict::accept(
        "exempt",
        Some(format!("member of exempt group {group}")),
        info,
    )
}
