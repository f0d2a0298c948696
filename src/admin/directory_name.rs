//! Commands that give a user something (a token, a bypass, an app password, a number) look
//! the name up in the directory first, as a login does. A helpdesk typo (`user bypass
//! alcie`) otherwise answers "done" while the real user still gets a prompt. Commands that
//! take things away do not check: a name the directory has lost (a leaver) must still be
//! cleaned up.

use crate::auth::{LdapAuth, PrimaryAuth};
use crate::config::Config;

/// Whether the command may go on for `user` (already keyed as logins key it): yes without
/// `[ldap]` (the upstream server vouches for names at login), with `overridden` (the
/// command's `flag`, which the refusal names), when the directory has the name, and when
/// the directory cannot be asked (said on stderr: the name was not checked). No, with the
/// refusal on stderr, when the directory answers that no entry is that user's.
pub async fn may_grant(cfg: &Config, user: &str, flag: &str, overridden: bool) -> bool {
    let Some(settings) = &cfg.ldap else {
        return true;
    };
    if overridden {
        return true;
    }
    let name = super::printable(user);
    let looked_up = match LdapAuth::new(settings.clone()) {
        Ok(ldap) => ldap.lookup(user).await,
        Err(e) => Err(e),
    };
    match looked_up {
        Ok(Some(_)) => true,
        Ok(None) => {
            // A refusal (exit 1), not an error: see docs/operations.md.
            eprintln!(
                "{name}: not in the directory (no single entry matches [ldap] user_filter{}), \
                 so no login would reach a second factor; nothing done. Check the spelling, \
                 or add {flag} if the name is right and the directory does not have it yet",
                if settings.enabled_filter.is_some() {
                    " and enabled_filter"
                } else {
                    ""
                }
            );
            false
        }
        Err(e) => {
            eprintln!(
                "warning: {name}: not checked against the directory ({e}); going ahead as if \
                 the name were right"
            );
            true
        }
    }
}
