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

/// An Accept if a bypass was waiting for this user and this login took it.
pub async fn take(
    app: &AppState,
    user: &str,
    profile: &UserProfile,
    info: &UserInfo,
) -> Result<Option<Verdict>, Fault> {
    let now = app.clock.now();
    // The snapshot read before the directory says whether to try: no write otherwise.
    if !profile.bypass_pending(now) {
        return Ok(None);
    }
    if !app.store.take_bypass(user, now).await? {
        // Taken by a racing login or expired since the snapshot. On PostgreSQL the write
        // opened this request's transaction, which holds a pooled connection; the login goes
        // on to reads that take another and may wait for the user's turn, so under a full
        // pool it would wait while holding one. Committing the no-op releases it.
        durability::settle().await?;
        return Ok(None);
    }
    Ok(Some(Verdict::accept(
        "bypass",
        Some("one-time bypass set by an admin; used".into()),
        info.clone(),
    )))
}
