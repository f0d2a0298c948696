//! One-time bypass (`radmfa user bypass USER`): the helpdesk's answer to a lost or dead
//! phone, as the product radmfa replaces offered it. The user's next login with the right
//! password (on an RD Gateway client: the gateway's own check) within the set time needs no
//! second factor, once. It never lifts a fraud block or a group rule: those are checked
//! first. The store clears it in the statement that checks it, so it works once even when
//! the user's logins race on two nodes.

use super::{Fault, Verdict};
use crate::app::AppState;
use crate::auth::UserInfo;
use crate::store::{durability, UserProfile};

/// The start of the reason of the record a login writes when it takes away a bypass set
/// while a clock ran ahead (see [`take`]).
pub const TAKEN_AWAY: &str = "taken away at a login";

/// The audit mode of a login the bypass lets in (see [`claim`]).
pub const MODE: &str = "bypass";

/// An Accept if a bypass is waiting for this user (the user's snapshot says so). Not yet
/// used: [`claim`] takes it once the login's Accept is final, so a login refused after this
/// (a group's attributes the directory cannot give, an Accept that does not fit beside the
/// request's Proxy-State) leaves it for the next try.
pub async fn take(
    app: &AppState,
    user: &str,
    profile: &UserProfile,
    info: &UserInfo,
) -> Result<Option<Verdict>, Fault> {
    let now = app.clock.now();
    if let Some(until) = profile
        .bypass_set(now)
        .filter(|&t| t > crate::store::delivery::bypass_latest_end(now))
    {
        // Longer than any `--for`: set while a clock ran ahead (the admin's host's, or this
        // node's before a step back). Taken away, as a remembered login stamped so is
        // forgotten: left, it waited until its end came within a day, then let the
        // password alone in for that day. Only if still that one (an admin may grant
        // another meanwhile).
        let cleared = app.store.restore_bypass(user, until, None).await?;
        if cleared {
            // Recorded as the grant was, so `user bypass --cancel` and the audit say where
            // it went (it said "check the spelling").
            let rec = crate::store::AuditRecord {
                time: now,
                user: user.to_string(),
                mode: "admin".into(),
                result: "bypass".into(),
                reason: Some(format!(
                    "{TAKEN_AWAY}: it ended at {}, more than 24 hours away, so it was set \
                     while a clock ran ahead",
                    crate::clock::fmt_time(until)
                )),
                server_name: app.config().server.name.clone(),
                ..Default::default()
            };
            app.store
                .append_audit(&rec)
                .await
                .inspect_err(|_| super::audit::count_lost(app))?;
        }
        tracing::warn!(
            user,
            until = %crate::clock::fmt_time(until),
            cleared,
            "a one-time bypass ends more than 24 hours from now: it was set while this \
             clock or the admin's ran ahead (check NTP); not used, and taken away: grant it \
             again"
        );
        return Ok(None);
    }
    if !profile.bypass_pending(now) {
        return Ok(None);
    }
    Ok(Some(Verdict::accept(
        MODE,
        Some("one-time bypass set by an admin; used".into()),
        info.clone(),
    )))
}

/// Uses the bypass a final Accept of mode [`MODE`] rests on. The store clears it in the
/// statement that checks it: of two logins racing on two nodes, one gets in; the other, and
/// a login whose bypass expired meanwhile, is refused.
/// Takes the verdict and gives it back, or the refusal.
pub async fn claim(app: &AppState, user: &str, mut v: Verdict) -> Result<Verdict, Fault> {
    if app.store.take_bypass(user, app.clock.now()).await? {
        return Ok(v);
    }
    // On PostgreSQL the write opened this request's transaction, which holds a pooled
    // connection: committing the no-op releases it.
    durability::settle().await?;
    let info = v.info.take();
    let mut lost = Verdict::reject("one-time bypass already used by another login, or expired")
        .with_info(info);
    // Audited under the bypass's mode, beside the login that used it: under "none",
    // `audit --mode bypass` showed the winner only, and a race (the stolen password and the
    // user at once) read as one plain use.
    lost.mode = MODE;
    Ok(lost)
}
