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
    let owner = user.to_string();
    let hashes: Vec<(i64, String, Bound)> = stored
        .into_iter()
        .map(|p| {
            let bound = Bound {
                dn: p.dn,
                entry_id: p.entry_id,
            };
            (p.id, p.hash, bound)
        })
        .collect();
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
        let i = app_password::find(&key, &owner, &typed, &stored)?;
        hashes.into_iter().nth(i)
    })
    .await
    .unwrap_or(None);
    let Some((id, hash, bound_to)) = matched else {
        return Ok(None);
    };
    let serial = Some(format!("app-password-{id}"));
    // A form from before app passwords were bound to their user: anyone who can write to
    // the database, without the key file, can copy it to another user or make one up.
    // Refused unless the admin allows them while users move to new ones; said in the audit
    // so that the admin knows which to re-issue.
    if app_password::form(&hash) == app_password::Form::Legacy && !app.config().legacy_app_passwords
    {
        let mut v = Verdict::reject(
            "app password in a form from before they were bound to their user, refused \
             ([store] legacy_app_passwords = false): re-issue it (user app-password add)",
        );
        v.mode = "app-password";
        v.token_serial = serial;
        return Ok(Some(v));
    }
    let profile = app.store.user_profile(user).await?;
    if let Some((reason, reply)) = blocked(&profile) {
        let mut v = Verdict::reject(reason).with_reply(reply);
        v.mode = "app-password";
        v.token_serial = serial;
        return Ok(Some(v));
    }
    // The directory stays the authority on whether the account exists.
    let Some(info) = ctx.primary.lookup_with_identity(user).await? else {
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
    // passwords on. (One made where `user app-password add` did not ask the directory, or
    // before radmfa recorded entries, binds at its next use.)
    if let Some(reason) = bound_to.other_entry(&info) {
        let mut v = Verdict::reject(format!("{reason}: delete it (user app-password delete)"));
        v.mode = "app-password";
        v.token_serial = serial;
        return Ok(Some(v));
    }
    let dn = Some(info.dn.as_str()).filter(|d| !d.is_empty());
    let entry_id = info.entry_id.as_deref();
    // Deleted while this login was checked (argon2, the directory): an admin taking app
    // passwords away after a lost phone must not watch one more login get in with one.
    if !app
        .store
        .touch_app_password(id, user, &hash, app.clock.now(), dn, entry_id)
        .await?
    {
        let mut v = Verdict::reject("app password deleted while it was checked");
        v.mode = "app-password";
        v.token_serial = serial;
        return Ok(Some(v));
    }
    tracing::debug!(
        user,
        nas = ctx.client.name.as_str(),
        "app password accepted"
    );
    Ok(Some(Verdict {
        token_serial: serial,
        ..Verdict::accept("app-password", None, info)
    }))
}

/// The directory entry an app password was first used by, as recorded then.
struct Bound {
    dn: Option<String>,
    entry_id: Option<String>,
}

impl Bound {
    /// Why the entry the name finds now is not the one recorded, if it is not: another DN
    /// (the name moved to another account), or the same DN with another identity (the
    /// entry deleted and made again: a leaver's name given to a new hire in a directory
    /// that names entries by it). What was never recorded, or what the directory does not
    /// show, is not held against it.
    fn other_entry(&self, now: &crate::auth::UserInfo) -> Option<String> {
        // The identity decides where both show it under the same attribute: a value that
        // differs is another entry, whatever the DN; one that matches is the same entry,
        // moved or renamed since (an AD user moved to another OU). Under different
        // attributes (389 DS gaining entryUUID beside nsUniqueId, an ACL hiding one) it
        // says nothing, and the DN decides.
        let then = self.entry_id.as_deref().and_then(|i| i.split_once(':'));
        let id = now.entry_id.as_deref().and_then(|i| i.split_once(':'));
        if let (Some((attr, was)), Some((now_attr, is))) = (then, id) {
            if attr.eq_ignore_ascii_case(now_attr) {
                if was == is {
                    return None;
                }
                return Some(format!(
                    "app password of another directory entry ({attr}:{was}); {} is \
                     {now_attr}:{is} now (deleted and made again)",
                    now.dn
                ));
            }
        }
        let bound = self.dn.as_deref().filter(|d| !d.is_empty())?;
        (!now.dn.is_empty() && !crate::auth::ldap::same_dn(bound, &now.dn)).then(|| {
            format!(
                "app password of another directory entry ({bound}); the name is {}'s now",
                now.dn
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Bound;
    use crate::auth::UserInfo;

    fn info(dn: &str, id: Option<&str>) -> UserInfo {
        UserInfo {
            dn: dn.into(),
            entry_id: id.map(String::from),
            ..UserInfo::default()
        }
    }

    fn bound(dn: Option<&str>, id: Option<&str>) -> Bound {
        Bound {
            dn: dn.map(String::from),
            entry_id: id.map(String::from),
        }
    }

    #[test]
    fn the_same_dn_with_another_identity_is_another_entry() {
        let dn = "uid=frank,ou=people,dc=example,dc=org";
        let b = bound(Some(dn), Some("entryUUID:aaaa"));
        assert_eq!(b.other_entry(&info(dn, Some("entryUUID:aaaa"))), None);
        let why = b
            .other_entry(&info(dn, Some("entryUUID:bbbb")))
            .expect("recreated entry");
        assert!(why.contains("entryUUID:aaaa") && why.contains("deleted and made again"));
        // The same identity under another DN is the same entry, moved or renamed.
        let moved = info(
            "uid=frank,ou=moved,dc=example,dc=org",
            Some("entryUUID:aaaa"),
        );
        assert_eq!(b.other_entry(&moved), None);
    }

    #[test]
    fn an_identity_under_another_attribute_leaves_it_to_the_dn() {
        let dn = "uid=frank,ou=people,dc=example,dc=org";
        // 389 DS: recorded under nsUniqueId, entryUUID shown since its fixup task ran.
        let b = bound(Some(dn), Some("nsUniqueId:1111"));
        assert_eq!(b.other_entry(&info(dn, Some("entryUUID:2222"))), None);
        // ...and then the DN is all there is to go by.
        let elsewhere = info(
            "uid=frank,ou=other,dc=example,dc=org",
            Some("entryUUID:2222"),
        );
        assert!(b.other_entry(&elsewhere).is_some());
    }

    #[test]
    fn what_was_not_recorded_or_is_not_shown_counts_for_nothing() {
        let dn = "uid=frank,ou=people,dc=example,dc=org";
        assert_eq!(bound(None, None).other_entry(&info(dn, Some("x"))), None);
        assert_eq!(
            bound(Some(dn), None).other_entry(&info(dn, Some("x"))),
            None
        );
        assert_eq!(
            bound(Some(dn), Some("x")).other_entry(&info(dn, None)),
            None
        );
        // No directory (upstream passwords only): no DN to compare.
        assert_eq!(
            bound(Some(dn), Some("x")).other_entry(&info("", None)),
            None
        );
    }
}
