//! The "directory" of a deployment without `[ldap]`: every client sends its passwords to an
//! upstream RADIUS server (as Duo's proxy runs with only a `radius_client`), and a user is
//! known by name alone. Phone numbers come from the store (`radmfa user set-phone`); the
//! configuration refuses everything else that reads the directory (groups, app passwords,
//! second-factor-only clients), so only `lookup` is ever asked.

use std::sync::Arc;

use async_trait::async_trait;

use super::ldap::LdapSettings;
use super::{AuthError, LdapAuth, PrimaryAuth, PrimaryOutcome, UserInfo};
use crate::secret::Secret;

pub struct NoDirectory;

#[async_trait]
impl PrimaryAuth for NoDirectory {
    async fn authenticate(&self, _: &str, _: &Secret) -> Result<PrimaryOutcome, AuthError> {
        // Refused, never accepted, should a client ever reach it.
        Err(AuthError::Ldap(
            "there is no [ldap] section to check a password".into(),
        ))
    }

    /// Every name exists: the upstream server that accepted the password vouches for it.
    async fn lookup(&self, _: &str) -> Result<Option<UserInfo>, AuthError> {
        Ok(Some(UserInfo::default()))
    }

    async fn is_member(&self, _: &str, _: &UserInfo, _: &str) -> Result<bool, AuthError> {
        Err(AuthError::Ldap(
            "there is no [ldap] section to read groups from".into(),
        ))
    }
}

/// The directory the settings describe: LDAP, or none.
pub fn directory(settings: Option<&LdapSettings>) -> Result<Arc<dyn PrimaryAuth>, AuthError> {
    Ok(match settings {
        Some(s) => Arc::new(LdapAuth::new(s.clone())?),
        None => Arc::new(NoDirectory),
    })
}
