//! App passwords on clients that allow them (`app_passwords = true`): legacy clients that
//! cannot do a second factor send an app password in place of the directory password. It
//! replaces password and second factor together, so it is accepted only on those clients,
//! only for users that still exist in the directory, and never for a blocked user.

use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use super::groups;
use super::methods::blocked;
use super::{Fault, RequestContext, Verdict};
use crate::app::AppState;
use crate::mfa::app_password;
use crate::secret::Secret;

/// One permit per app-password comparison running at once: as many as there are cores.
fn argon2_slots() -> &'static Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Semaphore::new(cores))
    })
}

/// `Some` when `field` is one of the user's app passwords (Accept, or Reject if the user is
/// blocked or gone from the directory); `None` to go on with the directory password.
pub async fn try_app_password(
    app: &AppState,
    ctx: &RequestContext,
    user: &str,
    field: &Secret,
) -> Result<Option<Verdict>, Fault> {
    let stored = app.store.app_passwords(user).await?;
    let typed = field.expose_str().unwrap_or_default().to_string();
    let hashes: Vec<(i64, String, Option<String>)> =
        stored.into_iter().map(|p| (p.id, p.hash, p.dn)).collect();
    let key = zeroize::Zeroizing::new(app.store.sms_code_key().to_vec());
    // argon2 takes milliseconds of CPU: off the async workers, and no more at once than
    // there are cores, so a flood of logins on this client queues (and meets the request
    // deadline) instead of starting a blocking thread each.
    // The permit goes with the comparison, not with this future: a request cut off by its
    // deadline does not stop a comparison already running, and must not free its slot.
    let permit = argon2_slots()
        .clone()
        .acquire_owned()
        .await
        .expect("argon2 semaphore never closed");
    let matched = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // The same time for any number of app passwords, none included (see `find`).
        let stored: Vec<&str> = hashes.iter().map(|(_, h, _)| h.as_str()).collect();
        let i = app_password::find(&key, &typed, &stored)?;
        hashes.into_iter().nth(i)
    })
    .await
    .unwrap_or(None);
    let Some((id, hash, bound_to)) = matched else {
        return Ok(None);
    };
    let serial = Some(format!("app-password-{id}"));
    let profile = app.store.user_profile(user).await?;
    if let Some((reason, reply)) = blocked(&profile) {
        let mut v = Verdict::reject(reason).with_reply(reply);
        v.mode = "app-password";
        v.token_serial = serial;
        return Ok(Some(v));
    }
    // The directory stays the authority on whether the account exists.
    let Some(info) = ctx.primary.lookup(user).await? else {
        let mut v = Verdict::reject("app password for a user not in the directory");
        v.mode = "app-password";
        return Ok(Some(v));
    };
    // A fraud report was about the person, whichever name of the entry it came under.
    if let Some(other) =
        super::aliases::blocked_under_another_name(app, user, &info.other_names).await?
    {
        let mut v = super::aliases::blocked_as(&other, info);
        v.mode = "app-password";
        v.token_serial = serial;
        return Ok(Some(v));
    }
    // An app password stands in for password and second factor, not for the right to use
    // this client: the allowed groups apply (exempt groups change nothing here).
    if !groups::allowed(ctx, user, &info).await? {
        let mut v = groups::not_allowed(ctx, info);
        v.mode = "app-password";
        v.token_serial = serial;
        return Ok(Some(v));
    }
    // An app password belongs to the entry that first used it: a name given to another
    // account since (a leaver's, reused for a new hire) does not pass the old one's app
    // passwords on. (One made before radmfa recorded entries binds at its next use.)
    if let Some(bound) = bound_to.as_deref().filter(|d| !d.is_empty()) {
        if !info.dn.is_empty() && !crate::auth::ldap::same_dn(bound, &info.dn) {
            let mut v = Verdict::reject(format!(
                "app password of another directory entry ({bound}); the name is {}'s now: \
                 delete it (user app-password delete)",
                info.dn
            ));
            v.mode = "app-password";
            v.token_serial = serial;
            return Ok(Some(v));
        }
    }
    let dn = Some(info.dn.as_str()).filter(|d| !d.is_empty());
    // Deleted while this login was checked (argon2, the directory): an admin taking app
    // passwords away after a lost phone must not watch one more login get in with one.
    if !app
        .store
        .touch_app_password(id, user, &hash, app.clock.now(), dn)
        .await?
    {
        let mut v = Verdict::reject("app password deleted while it was checked");
        v.mode = "app-password";
        v.token_serial = serial;
        return Ok(Some(v));
    }
    tracing::debug!(user, nas = %ctx.client.name, "app password accepted");
    Ok(Some(Verdict {
        token_serial: serial,
        ..Verdict::accept("app-password", None, info)
    }))
}
