//! Group membership, for the clients' `allow_groups` and `exempt_groups`: one search per
//! group, with the group's DN as base (scope base) and `group_filter` — by default
//! `(member={dn})` — so the group's entry comes back only if the user is listed in it. This
//! works on any directory without the memberOf overlay: groupOfNames in OpenLDAP, groups in
//! Active Directory (direct members; nested ones with the in-chain matching rule
//! `(member:1.2.840.113556.1.4.1941:={dn})`), posixGroup with `(memberUid={user})`.

use ldap3::Scope;

use super::ldap::LdapAuth;
use super::{AuthError, UserInfo};

/// LDAP result code noSuchObject: the base DN (here, the group) does not exist.
const NO_SUCH_OBJECT: u32 = 32;

impl LdapAuth {
    pub(super) async fn member_of(
        &self,
        user: &str,
        info: &UserInfo,
        group_dn: &str,
    ) -> Result<bool, AuthError> {
        let filter = self
            .settings
            .group_filter
            .replace("{dn}", &ldap3::ldap_escape(&info.dn))
            .replace("{user}", &ldap3::ldap_escape(user));
        // "1.1": no attributes, only whether the group's entry matched.
        let no_attrs = ["1.1".to_string()];
        let (entries, res) = self
            .search(group_dn, Scope::Base, &filter, &no_attrs, 1, user)
            .await?;
        match res.rc {
            0 => Ok(!entries.is_empty()),
            NO_SUCH_OBJECT => {
                // A typo in the config must not read as "member" — nor stop every login:
                // nobody is a member, and the admin is told.
                tracing::warn!(
                    group = group_dn,
                    "group not found in the directory; it has no members"
                );
                Ok(false)
            }
            _ => Err(AuthError::Ldap(format!("group search {group_dn}: {res}"))),
        }
    }
}
