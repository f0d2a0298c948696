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
/// LDAP result code referral: the base DN is held by another server.
const REFERRAL: u32 = 10;

impl LdapAuth {
    pub(super) async fn member_of(
        &self,
        user: &str,
        info: &UserInfo,
        group_dn: &str,
    ) -> Result<bool, AuthError> {
        // The directory's spelling of the name where it was read: memberUid compares case
        // exactly, and `user` is the case-folded key.
        let name = info.name.as_deref().unwrap_or(user);
        let filter = fill_group_filter(&self.settings.group_filter, &info.dn, name);
        // "1.1": no attributes, only whether the group's entry matched.
        let no_attrs = ["1.1".to_string()];
        let (entries, res) = self
            .search(group_dn, Scope::Base, &filter, &no_attrs, 1, user)
            .await
            .map_err(|e| AuthError::During {
                what: format!("group search {group_dn}"),
                cause: Box::new(e),
            })?;
        match res.rc {
            0 => Ok(!entries.is_empty()),
            // A typo in the config must not read as "member"; the caller decides what it
            // means (for allow/exempt groups: nobody is a member, and the admin is told).
            NO_SUCH_OBJECT => Err(AuthError::NoSuchGroup(group_dn.to_string())),
            // The group is in another naming context (a sibling domain of an AD forest):
            // the servers in `urls` can only refer to it, and ldap3 follows no referrals.
            // As for a group they lack: nobody is a member (fail-closed for allow_groups,
            // a normal login for exempt_groups), instead of a fault refusing every login.
            REFERRAL => {
                crate::warn_once!(
                    &format!("group referred {group_dn}"),
                    group = group_dn,
                    referred_to = res.refs.join(" "),
                    "the directory refers this group's search to another server, which \
                     radmfa does not follow; use a Global Catalog (port 3268) in [ldap] urls \
                     or a group in the users' own domain"
                );
                Err(AuthError::NoSuchGroup(group_dn.to_string()))
            }
            _ => Err(AuthError::Ldap(format!("group search {group_dn}: {res}"))),
        }
    }
}

/// What `config check --connect` reads of a configured group, as the service account
/// sees it: a membership check that cannot read the attribute it compares says "not a
/// member" for everyone, and nothing at login tells that apart from a real "no".
pub struct GroupView {
    /// The entry's objectClass values (none when they are hidden too).
    pub object_classes: Vec<String>,
    /// Of [`membership_attributes`], the ones the entry showed.
    pub visible: Vec<String>,
}

impl LdapAuth {
    /// Reads `group_dn` with the service account: its object classes, then which of the
    /// attributes `group_filter` compares it shows (their names only: an AD group's
    /// member list can be long). `NoSuchGroup` when the service account finds no entry.
    pub async fn read_group(&self, group_dn: &str) -> Result<GroupView, AuthError> {
        let classes = ["objectClass".to_string()];
        let entry = self.read_entry(group_dn, &classes, false).await?;
        let object_classes = entry
            .attrs
            .into_iter()
            .filter(|(a, _)| a.eq_ignore_ascii_case("objectClass"))
            .flat_map(|(_, v)| v)
            .collect();
        let wanted = membership_attributes(&self.settings.group_filter);
        if wanted.is_empty() {
            return Ok(GroupView {
                object_classes,
                visible: Vec::new(),
            });
        }
        let entry = self.read_entry(group_dn, &wanted, true).await?;
        let visible = wanted
            .into_iter()
            .filter(|w| {
                // AD names a long list `member;range=0-1499`.
                entry.attrs.keys().chain(entry.bin_attrs.keys()).any(|a| {
                    a.split(';')
                        .next()
                        .is_some_and(|base| base.eq_ignore_ascii_case(w))
                })
            })
            .collect();
        Ok(GroupView {
            object_classes,
            visible,
        })
    }

    async fn read_entry(
        &self,
        dn: &str,
        attrs: &[String],
        types_only: bool,
    ) -> Result<ldap3::SearchEntry, AuthError> {
        let options = ldap3::SearchOptions::new()
            .sizelimit(1)
            .typesonly(types_only);
        let (entries, res) = self
            .search_with(dn, Scope::Base, "(objectClass=*)", attrs, options, "-")
            .await?;
        match (res.rc, entries.into_iter().next()) {
            // Not ldap3's `construct`, which panics on a malformed entry.
            (0, Some(entry)) => super::ldap_entry::read(entry.0)
                .map_err(|e| AuthError::Ldap(format!("reading {dn}: a malformed entry: {e}"))),
            (0, None) | (NO_SUCH_OBJECT | REFERRAL, _) => {
                Err(AuthError::NoSuchGroup(dn.to_string()))
            }
            _ => Err(AuthError::Ldap(format!("reading {dn}: {res}"))),
        }
    }
}

/// The attributes `group_filter` compares with the user's DN or name: `member` in
/// `(member={dn})` and in AD's `(member:1.2.840.113556.1.4.1941:={dn})`, `memberUid` in
/// `(memberUid={user})`; in the filter's order, each once.
pub fn membership_attributes(group_filter: &str) -> Vec<String> {
    let mut at: Vec<usize> = ["{dn}", "{user}"]
        .iter()
        .flat_map(|p| group_filter.match_indices(p).map(|(i, _)| i))
        .collect();
    at.sort_unstable();
    let mut out: Vec<String> = Vec::new();
    for i in at {
        let before = &group_filter[..i];
        let Some(open) = before.rfind('(') else {
            continue;
        };
        let term = &before[open + 1..];
        let attr = term
            .split(['=', ':', '~', '<', '>'])
            .next()
            .unwrap_or("")
            .trim();
        let plain = !attr.is_empty()
            && attr
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if plain && !out.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
            out.push(attr.to_string());
        }
    }
    out
}

/// `group_filter` with `{dn}` and `{user}` filled in, both escaped, in one pass: a second
/// pass would also fill a `{user}` that came in with the DN (a user who can name their own
/// entry `cn={user}-admin` would be checked as someone else).
fn fill_group_filter(template: &str, dn: &str, user: &str) -> String {
    let mut out = String::with_capacity(template.len() + dn.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{dn}") {
            out.push_str(&ldap3::ldap_escape(dn));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{user}") {
            out.push_str(&ldap3::ldap_escape(user));
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_attributes_are_the_ones_compared_with_the_user() {
        for (filter, want) in [
            ("(member={dn})", &["member"][..]),
            ("(member:1.2.840.113556.1.4.1941:={dn})", &["member"]),
            (
                "(&(objectClass=groupOfNames)(|(uniqueMember={dn})(memberUid={user})))",
                &["uniqueMember", "memberUid"],
            ),
            ("(|(member={dn})(Member={dn}))", &["member"]),
        ] {
            assert_eq!(membership_attributes(filter), want, "{filter}");
        }
    }

    #[test]
    fn the_group_filter_is_filled_in_one_pass() {
        assert_eq!(
            fill_group_filter(
                "(|(member={dn})(memberUid={user}))",
                "cn={user}-admin,dc=x",
                "bob"
            ),
            "(|(member=cn={user}-admin,dc=x)(memberUid=bob))"
        );
        assert_eq!(
            fill_group_filter("(member={dn})", "cn=a\\2a(b),dc=x", "u"),
            "(member=cn=a\\5c2a\\28b\\29,dc=x)"
        );
        assert_eq!(fill_group_filter("{x}{user}{", "d", "a*"), "{x}a\\2a{");
    }
}
