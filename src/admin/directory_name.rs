//! Commands that give a user something (a token, a bypass, an app password, a number) look
//! the name up in the directory first, as a login does. A helpdesk typo (`user bypass
//! alcie`) otherwise answers "done" while the real user still gets a prompt. Commands that
//! take things away do not check: a name the directory has lost (a leaver) must still be
//! cleaned up.

use crate::auth::{LdapAuth, PrimaryAuth};
use crate::config::Config;
use std::collections::HashMap;

/// What a command that gives a user something found of the user's directory entry.
#[derive(Debug, Default)]
pub struct Granted {
    /// The entry's other names (a multi-valued `uid`).
    pub other_names: Vec<String>,
    /// Its DN and its identity (entryUUID, objectGUID), for what is bound to the entry
    /// from the start (an app password).
    pub dn: Option<String>,
    pub entry_id: Option<String>,
}

/// Whether the command may go on for `user` (already keyed as logins key it): yes without
/// `[ldap]` (the upstream server vouches for names at login), with `overridden` (the
/// command's `flag`, which the refusal names), when the directory has the name, and when
/// the directory cannot be asked (said on stderr: the name was not checked). No, with the
/// refusal on stderr, when the directory answers that no entry is that user's. A yes comes
/// with what it found ([`Granted`]), nothing where the directory was not asked or could
/// not be. `None` for a no.
pub async fn granted_entry(
    cfg: &Config,
    user: &str,
    flag: &str,
    overridden: bool,
) -> Option<Granted> {
    let Some(settings) = &cfg.ldap else {
        return Some(Granted::default());
    };
    if overridden {
        return Some(Granted::default());
    }
    let name = super::printable(user);
    let looked_up = match LdapAuth::new(settings.clone()) {
        // With the identity: an app password is bound to it from the start (one search of
        // an admin command; logins ask for it only where app passwords are checked).
        Ok(ldap) => ldap.lookup_with_identity(user).await,
        Err(e) => Err(e),
    };
    match looked_up {
        Ok(Some(info)) => Some(Granted {
            dn: Some(info.dn).filter(|d| !d.is_empty()),
            entry_id: info.entry_id,
            other_names: info.other_names,
        }),
        Ok(None) => {
            // A name copied with its domain from an export (alice@corp.example.org, CORP\alice)
            // that [users] strip_domains leaves on: the fix is the name, not the spelling.
            let domain = if user.contains(['@', '\\']) {
                " (the name keeps its domain: give the name users log in with, or list the \
                 domain in [users] strip_domains)"
            } else {
                ""
            };
            // A refusal (exit 1), not an error: see docs/operations.md.
            eprintln!(
                "{name}: not in the directory (no single entry matches [ldap] user_filter{}), \
                 so no login would reach a second factor; nothing done. Check the spelling{domain}, \
                 or add {flag} if the name is right and the directory does not have it yet",
                if settings.enabled_filter.is_some() {
                    " and enabled_filter"
                } else {
                    ""
                }
            );
            None
        }
        Err(e) => {
            eprintln!(
                "warning: {name}: not checked against the directory ({e}); going ahead as if \
                 the name were right"
            );
            Some(Granted::default())
        }
    }
}

/// The other names of `user`'s directory entry (a multi-valued `uid`) that radmfa keys
/// apart ([`entry_names_of`](crate::pipeline::aliases::entry_names_of)), with their store
/// keys: empty without `[ldap]` or when the entry has none; why not, when the directory
/// could not be asked. Logins learn them from the directory only; the store does not link
/// the names, so `user show` and `user unlock` ask it too.
pub async fn other_names(cfg: &Config, user: &str) -> Result<Vec<(String, String)>, String> {
    Ok(other_names_of(
        cfg,
        user,
        entry_of(cfg, user).await?.as_ref(),
    ))
}

/// `user`'s directory entry: none without `[ldap]` or when no entry is that user's; why
/// not, when the directory could not be asked.
pub async fn entry_of(cfg: &Config, user: &str) -> Result<Option<crate::auth::UserInfo>, String> {
    let Some(settings) = &cfg.ldap else {
        return Ok(None);
    };
    let ldap = LdapAuth::new(settings.clone()).map_err(|e| e.to_string())?;
    ldap.lookup(user).await.map_err(|e| e.to_string())
}

/// [`other_names`] of an entry already read.
pub fn other_names_of(
    cfg: &Config,
    user: &str,
    entry: Option<&crate::auth::UserInfo>,
) -> Vec<(String, String)> {
    let names = entry.map(|i| i.other_names.as_slice()).unwrap_or_default();
    crate::pipeline::aliases::entry_names_of(&cfg.user_names, user, names)
}

/// How many owners an import asks the directory about at once: a 5,000-owner file is not
/// 5,000 searches in a row, nor 5,000 at once against a directory logins also use.
const IMPORT_LOOKUPS_AT_ONCE: usize = 8;

/// An import's owners the directory has no entry for, as one warning (`None` when all are
/// there, or without `[ldap]`). A warning, not a refusal as `token assign` gives: a file
/// exported from the old system names leavers too, and their tokens sit harmlessly under
/// names no login reaches. But a misspelt owner or a wrong `--map` column would otherwise
/// import "fine" while the real user is refused at the code prompt.
///
/// Also the other names of each owner's entry found (a multi-valued `uid`), for the warning of
/// tokens those names hold (`token_import`).
pub async fn owners_in_directory(
    cfg: &Config,
    owners: &[&str],
) -> (
    Option<String>,
    Vec<(String, Vec<String>)>,
    HashMap<String, String>,
) {
    use futures_util::{StreamExt, TryStreamExt};
    let Some(settings) = cfg.ldap.as_ref() else {
        return (None, Vec::new(), HashMap::new());
    };
    let mut owners = owners.to_vec();
    owners.sort_unstable();
    owners.dedup();
    if owners.is_empty() {
        return (None, Vec::new(), HashMap::new());
    }
    let ldap = match LdapAuth::new(settings.clone()) {
        Ok(ldap) => ldap,
        Err(e) => {
            return (
                Some(format!("owners not checked against the directory ({e})")),
                Vec::new(),
                HashMap::new(),
            )
        }
    };
    // Each owner with its entry's DN and other names, `None` for no entry.
    type Found<'a> = Vec<(&'a str, Option<(String, Vec<String>)>)>;
    let looked_up: Result<Found, _> = futures_util::stream::iter(owners.iter())
        .map(|&owner| {
            let ldap = &ldap;
            async move {
                let found = ldap
                    .lookup(owner)
                    .await?
                    .map(|info| (info.dn, info.other_names));
                Ok::<_, crate::auth::AuthError>((owner, found))
            }
        })
        .buffered(IMPORT_LOOKUPS_AT_ONCE)
        .try_collect()
        .await;
    let found = match looked_up {
        Ok(found) => found,
        Err(e) => {
            return (
                Some(format!("owners not checked against the directory ({e})")),
                Vec::new(),
                HashMap::new(),
            )
        }
    };
    let dns = found
        .iter()
        .filter_map(|(o, f)| Some((o.to_string(), f.as_ref()?.0.clone())))
        .collect();
    let missing: Vec<&str> = found
        .iter()
        .filter(|(_, f)| f.is_none())
        .map(|(o, _)| *o)
        .collect();
    let other_names = found
        .iter()
        .filter_map(|(o, f)| Some((o.to_string(), f.clone()?.1)))
        .filter(|(_, names)| !names.is_empty())
        .collect();
    let first: Vec<String> = missing
        .iter()
        .take(5)
        .map(|o| super::printable(o).into_owned())
        .collect();
    let warning = (!missing.is_empty()).then(|| {
        format!(
            "{} of the {} owner(s) are not in the directory (no single entry matches [ldap] \
             user_filter): {}{}. Their tokens are imported under those names, which no login \
             reaches; check the spelling or --map, and give such a token to the right user \
             with `radmfa token assign SERIAL USER --force`",
            missing.len(),
            owners.len(),
            first.join(", "),
            if missing.len() > first.len() {
                ", …"
            } else {
                ""
            }
        )
    });
    (warning, other_names, dns)
}
